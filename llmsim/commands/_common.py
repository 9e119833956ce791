"""Helpers shared by CLI subcommands: JSON output, the --set override option."""

from __future__ import annotations

import json
import math
import sys

import numpy as np


def _default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


def _clean(o):
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def print_json(obj) -> None:
    json.dump(_clean(json.loads(json.dumps(obj, default=_default))), sys.stdout, indent=2)
    sys.stdout.write("\n")


def add_set_option(parser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
        help='override a hardware field without editing files, e.g. --set memory.hbm.bandwidth="6 TB/s"',
    )
