"""Helpers shared by CLI subcommands: JSON output, the --set override option, help texts."""

from __future__ import annotations

import argparse
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


class HelpFormatter(argparse.HelpFormatter):
    """Shows '(default: X)' for options that have a default worth saying (not None or False) and whose
    help does not state it already."""

    def _get_help_string(self, action):
        h = action.help or ""
        d = action.default
        if "%(default)" in h or "default" in h or d is None or d is False or d is argparse.SUPPRESS \
                or action.required or not action.option_strings:
            return h
        return h + " (default: %(default)s)"


def add_set_option(parser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
        help='override a hardware field without editing files, e.g. --set memory.hbm.bandwidth="6 TB/s"',
    )


def add_price_option(parser) -> None:
    """``--price USD/h``: the price of one chip-hour for this run, given as the override
    ``chip.price.cloud`` (a system keeps its documented premium over its chips; docs/hardware-format.md)."""
    import argparse

    from hwmodels.units import UnitError, parse_quantity

    class PriceAction(argparse.Action):
        def __call__(self, p, namespace, values, option_string=None):
            text = values.strip()
            q = text if any(c.isalpha() for c in text) else f"{text} USD/h"
            try:
                v = parse_quantity(q, "money_rate")
            except UnitError as e:
                p.error(f"--price: {e}")
            if not v > 0:
                p.error(f"--price: must be greater than zero; got {values!r}")
            items = list(getattr(namespace, "overrides", None) or [])
            items.append(f"chip.price.cloud={q}")
            setattr(namespace, "overrides", items)

    parser.add_argument("--price", action=PriceAction, metavar="USD/h",
                        help="price of one chip-hour for this run (e.g. 2.49 or '2.49 USD/h'): replaces the catalog "
                             "price of every chip; a system adds its documented premium; same as "
                             "--set chip.price.cloud=...")


class Progress:
    """Progress of a long run on stderr, only when stderr is a terminal and not ``quiet`` (piped
    output and logs stay clean). ``sim_callback`` gives ``sim.serving.simulate`` a cheap hook
    (called every few hundred finished requests); the line is redrawn at most every 0.2 s."""

    def __init__(self, quiet: bool = False):
        self.on = not quiet and sys.stderr.isatty()
        self._last = 0.0
        self._drawn = False

    def say(self, text: str) -> None:
        if self.on:
            self.clear()
            print(text, file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self._drawn:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._drawn = False

    def sim_callback(self, total: int | None = None):
        """callable(simulated s, finished, arrived) for RunControls.progress, or None when off."""
        if not self.on:
            return None
        import time

        t0 = time.perf_counter()

        def cb(now_s: float, done: int, arrived: int) -> None:
            t = time.perf_counter()
            if t - self._last < 0.2:
                return
            self._last = t
            of = f"/{total:,}" if total else ""
            rate = done / now_s if now_s > 0 else 0.0
            sys.stderr.write(f"\r\033[K  {now_s:,.1f} s simulated, {done:,}{of} requests done ({arrived:,} arrived), "
                             f"{rate:,.1f} req/s served, {done / max(t - t0, 1e-9):,.0f} requests per wall second")
            sys.stderr.flush()
            self._drawn = True

        return cb


def module_doc(module: str) -> str:
    """The docstring of ``module``, read from its source without importing it (a command's help
    text must not load the library behind it: ``llmsim --help`` builds every parser)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module)
    with open(spec.origin, encoding="utf-8") as f:
        return ast.get_docstring(ast.parse(f.read())) or ""
