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


def calibration_text(state: str | None) -> str:
    """A chip's calibration state (hwmodels.classes: measured, published, class-default, none) as the text outputs
    say it: the two states that are not a measurement of the chip say what they rest on (docs/hardware-format.md)."""
    return {"none": "none (no efficiency data: datasheet peaks)",
            "class-default": "class-default (typical of its class, not measured)"}.get(state or "-", state or "-")


def say_warnings(warnings) -> None:
    """Each warning on stderr as ``warning: ...`` (the predict and serve commands' form)."""
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


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


# ---------------------------------------------------------------------------------------------
# numeric flags: one set of argparse types, checked finite and in range (hwmodels.limits.BOUNDS)

#: flag -> the kind of number it takes (a key of hwmodels.limits.BOUNDS); an int or float flag not
#: listed takes any 32-bit integer or any finite number of plausible size ("int", "real")
FLAG_KINDS = {
    "--batch": "batch",
    "--input-len": "tokens", "--output-len": "tokens", "--max-context": "tokens", "--max-model-len": "tokens",
    "--max-num-batched-tokens": "tokens", "--chunk-size": "tokens", "--kv-window": "tokens",
    "--shared-prefix": "tokens", "--block-size": "tokens",
    "--num-requests": "requests", "--requests": "requests", "--limit": "requests", "--max-num-seqs": "requests",
    "--num-prefixes": "requests",
    "--replicas": "replicas", "--prefill-replicas": "replicas", "--decode-replicas": "replicas",
    "--tp": "parallel", "--pp": "parallel", "--ep": "parallel",
    "--workers": "parallel", "--dask-workers": "parallel",
    "--seed": "seed",
    "--samples": "count", "--top": "count", "--worst": "count", "--folds": "count", "--holdout": "count",
    "--max-shapes": "count", "--timeline-steps": "count", "--spec-k": "count",
    "--cv": "cv",
    "--slo-ttft": "seconds", "--slo-tpot": "seconds", "--time-budget": "seconds", "--spec-step-cost": "seconds0",
    "--swap-space": "gib",
    "--memory-utilization": "fraction", "--watermark": "fraction", "--spec-acceptance": "fraction",
    "--api-price-in": "usd", "--api-price-out": "usd", "--budget": "usd",
    "--trace-speedup": "factor",
}


def number_type(kind: str, flag: str = "the value"):
    """An argparse ``type`` for numbers of ``kind`` (hwmodels.limits.BOUNDS): the text must be a
    finite number (an integer where the kind is one; ``1e3`` is read as 1000) in the kind's range.
    Errors become argparse's ``argument --flag: ...`` message and exit code 2."""
    import argparse

    from hwmodels.limits import BOUNDS, MAX_NUMBER_CHARS, check_bound

    b = BOUNDS[kind]

    def parse(text: str):
        s = str(text).strip()
        if len(s) > MAX_NUMBER_CHARS:
            raise argparse.ArgumentTypeError(f"a number of {len(s)} characters; at most {MAX_NUMBER_CHARS} are read")
        try:
            v = float(s) if not b.integer else int(s)
        except ValueError:
            try:
                f = float(s)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected {'an integer' if b.integer else 'a number'}; got {text!r}") from None
            if not (math.isfinite(f) and f.is_integer()):
                raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
            v = int(f)
        msg = check_bound(kind, v, repr(text))
        if msg is None and kind == "cv" and 0 < v:
            from workloads.scenario import CV_MAX, CV_MIN

            if not CV_MIN <= v <= CV_MAX:
                msg = f"must be 0 (fixed rate) or between {CV_MIN:g} and {CV_MAX:g}; got {text!r}"
        if msg:
            raise argparse.ArgumentTypeError(msg)
        return v

    parse.__name__ = f"{kind} number"
    return parse


#: flags naming a place llmsim writes to: an empty value (an unset shell variable) would be the working folder
PLACE_FLAGS = {"--out", "--plots"}


def _place(text: str) -> str:
    import argparse

    if not str(text).strip():
        raise argparse.ArgumentTypeError("an empty path; give a folder or file name (the working folder is '.')")
    return text


def bound_numeric_flags(parser) -> None:
    """Give every int/float flag of ``parser`` and its subcommands the checked type of its kind
    (FLAG_KINDS), so no command reads an unchecked number (``--batch 1e20``, ``--swap-space inf``);
    and every flag of PLACE_FLAGS a type that refuses an empty path."""
    import argparse

    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sp in a.choices.values():
                bound_numeric_flags(sp)
        elif a.type is None and PLACE_FLAGS & set(a.option_strings):
            a.type = _place
        elif a.type in (int, float):
            flag = next((o for o in a.option_strings if o.startswith("--")), None)
            kind = FLAG_KINDS.get(flag) or ("int" if a.type is int else "real")
            a.type = number_type(kind, flag or a.dest)
