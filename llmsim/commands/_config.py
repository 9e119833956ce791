"""CLI flags derived from the configuration objects (sim/config.py): each field's flag, default,
type and help text come from its metadata, so a new setting is added in one place."""

from __future__ import annotations

from dataclasses import fields

from sim.config import cli_fields, default_of


def add_config_arguments(target, cls, group: str | None = None, skip=()) -> None:
    """Add the flags of ``cls``'s fields in ``group`` (all with a flag if None) to ``target`` (a
    parser or an argument group), in declaration order; ``skip``: field names a caller adds itself."""
    for f in cli_fields(cls, group):
        if f.name in skip:
            continue
        kw = dict(f.metadata["argparse"])
        if "default" not in kw and not kw.get("required"):
            kw["default"] = default_of(f)
        kw["help"] = f.metadata["help"]
        target.add_argument(f.metadata["flag"], **kw)


def dest_of(f) -> str:
    """The argparse dest of a field's flag."""
    return f.metadata["argparse"].get("dest") or f.metadata["flag"][2:].replace("-", "_")


def config_values(cls, args, names=None) -> dict:
    """{field: parsed value} for the fields of ``cls`` with a flag of their own (those in
    ``names`` if given) that ``args`` holds."""
    out = {}
    for f in cli_fields(cls):
        if names is not None and f.name not in names:
            continue
        d = dest_of(f)
        if hasattr(args, d):
            out[f.name] = getattr(args, d)
    return out


def field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]
