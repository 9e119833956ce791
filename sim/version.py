"""The llmsim version, for provenance lines in reports and measurement environment files.

Read from the installed package's metadata (``importlib.metadata``), so that the libraries below
the front door never import ``llmsim``. In a source checkout that was never installed, it is read
from ``pyproject.toml`` beside the packages; ``"unknown"`` when neither is there.
"""

from __future__ import annotations

import importlib.metadata
import os
import tomllib
from functools import cache

_PYPROJECT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")


@cache
def llmsim_version() -> str:
    """The version string of the llmsim distribution, e.g. ``'0.1.0'``."""
    try:
        return importlib.metadata.version("llmsim")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        with open(_PYPROJECT, "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"
