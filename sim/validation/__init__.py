"""Validation against real kernel runs: the measurement side.

- ``measure``: the ``llmsim measure`` harness (microbenchmarks written as per-kernel CSV rows) and
  ``load_measurements`` (read and check measured CSVs, including the built-in data sets);
- ``environment``: the side file ``FILE.env.json`` describing where a measurement ran;
- ``vidur``: converter of Vidur's published GPU profiles into the per-kernel CSV format;
- ``kineto``: import of PyTorch profiler (Kineto) Chrome traces.

Nothing here imports torch at import time (it is the optional ``[measure]`` extra). The names
below are loaded lazily, so that ``python -m llmsim.commands.measure`` stays light.
"""

_FROM_MEASURE = ("CSV_COLUMNS", "KNOWN_OPS", "OP_COLUMNS", "builtin_measurements", "load_measurements", "shape_id",
                 "validate_measurements")

__all__ = list(_FROM_MEASURE)


def __getattr__(name):
    if name in _FROM_MEASURE:
        from sim.validation import measure

        return getattr(measure, name)
    raise AttributeError(name)
