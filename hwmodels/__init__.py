"""Hardware descriptions: chips and systems, their YAML schema, units, loader and catalog."""

_LAZY = {"list_hardware", "load_chip", "load_system", "load_hardware", "Chip", "System"}


def __getattr__(name):  # lazy, so that `import hwmodels.dtype` stays light
    if name in ("Chip", "System"):
        from hwmodels import chip

        return getattr(chip, name)
    if name in _LAZY:
        from hwmodels import loader

        return getattr(loader, name)
    raise AttributeError(name)
