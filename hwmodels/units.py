"""Physical quantities written with their units, parsed once into SI floats.

Hardware files state every dimensioned value as a string with its unit, e.g. ``"3.35 TB/s"``,
``"80 GiB"``, ``"989 TFLOP/s"``, ``"2 us"``, ``"700 W"``, ``"2.49 USD/h"``. This module is the one
place where those strings become floats in SI base units (bytes, seconds, FLOP/s, watts, USD/s...).

Rules:
- k, M, G, T, P, E are decimal (10^3 steps); Ki, Mi, Gi, Ti, Pi are binary (2^10 steps). Nothing
  converts one into the other silently.
- A bare number in a dimensioned field is an error (the message shows the expected form).
- Each *dimension* lists the units it accepts; a unit of another dimension ("3.35 TB" where a
  bandwidth is expected) is an error naming what was expected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["DIMENSIONS", "UnitError", "parse_quantity", "format_quantity", "Dimension"]


class UnitError(ValueError):
    """A quantity string that cannot be parsed for the expected dimension."""


DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
SMALL = {"m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}


@dataclass(frozen=True)
class Dimension:
    """A kind of quantity: its name, its SI unit and the unit spellings it accepts."""

    name: str
    si_unit: str
    example: str
    units: dict  # unit spelling -> factor to SI

    def parse(self, text: str) -> float:
        return parse_quantity(text, self)


def _prefixed(base: str, factor: float = 1.0, decimal=True, binary=False, small=False) -> dict:
    out = {}
    if decimal:
        for p, f in DECIMAL.items():
            out[p + base] = f * factor
    if binary:
        for p, f in BINARY.items():
            out[p + base] = f * factor
    if small:
        for p, f in SMALL.items():
            out[p + base] = f * factor
    return out


def _bytes_units() -> dict:
    u = _prefixed("B", binary=True)
    u.update(_prefixed("byte", binary=True))
    u.update(_prefixed("bytes", binary=True))
    return u


def _bandwidth_units() -> dict:
    u = {}
    for k, f in _bytes_units().items():
        u[k + "/s"] = f
    for k, f in _prefixed("bit/s", 1 / 8).items():
        u[k] = f
    for k, f in _prefixed("b/s", 1 / 8).items():
        u[k] = f
    for k, f in _prefixed("bps", 1 / 8).items():
        u[k] = f
    return u


def _time_units() -> dict:
    u = _prefixed("s", decimal=False, small=True)
    u["s"] = 1.0
    u["us"] = 1e-6
    u["min"] = 60.0
    u["h"] = 3600.0
    return u


def _rate_units() -> dict:
    u = {}
    for base in ("FLOP/s", "FLOPS", "flop/s", "OP/s", "OPS", "op/s"):
        u.update(_prefixed(base))
    return u


DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in [
        Dimension("bytes", "B", "80 GiB", _bytes_units()),
        Dimension("bandwidth", "B/s", "3.35 TB/s", _bandwidth_units()),
        Dimension("time", "s", "2 us", _time_units()),
        Dimension("rate", "FLOP/s", "989 TFLOP/s", _rate_units()),
        Dimension("flops", "FLOP", "1 GFLOP", {**_prefixed("FLOP"), **_prefixed("OP")}),
        Dimension("power", "W", "700 W", _prefixed("W", small=True)),
        Dimension("frequency", "Hz", "1.83 GHz", _prefixed("Hz")),
        Dimension("energy", "J", "0.5 pJ", {**_prefixed("J", small=True)}),
        Dimension(
            "energy_per_flop", "J/FLOP", "0.4 pJ/FLOP",
            {**{k + "/FLOP": f for k, f in _prefixed("J", small=True).items()},
             **{k + "/OP": f for k, f in _prefixed("J", small=True).items()}},
        ),
        Dimension(
            "energy_per_byte", "J/B", "7 pJ/B",
            {**{k + "/B": f for k, f in _prefixed("J", small=True).items()},
             **{k + "/bit": f * 8 for k, f in _prefixed("J", small=True).items()}},
        ),
        Dimension("money", "USD", "25000 USD", {"USD": 1.0, "kUSD": 1e3, "MUSD": 1e6}),
        Dimension(
            "money_rate", "USD/s", "2.49 USD/h",
            {"USD/h": 1 / 3600.0, "USD/hr": 1 / 3600.0, "USD/s": 1.0, "USD/month": 1 / (730 * 3600.0),
             "USD/year": 1 / (8760 * 3600.0)},
        ),
        Dimension("area", "mm2", "814 mm2", {"mm2": 1.0, "mm^2": 1.0, "cm2": 100.0, "cm^2": 100.0}),
        Dimension("energy_price", "USD/J", "0.10 USD/kWh", {"USD/kWh": 1 / 3.6e6, "USD/MWh": 1 / 3.6e9}),
        Dimension("money_per_area", "USD/mm2", "0.25 USD/mm2", {"USD/mm2": 1.0}),
    ]
}

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_QTY = re.compile(rf"^\s*({_NUMBER})\s*([^\s\d].*?)?\s*$")


def parse_seconds(text) -> float:
    """A time as a CLI flag gives it: a bare number is seconds ('0.5'), or a number with a time
    unit ('500ms', '1 s'). Must be finite and > 0; raises UnitError otherwise."""
    t = str(text).strip()
    try:
        v = float(t)
    except ValueError:
        try:
            v = parse_quantity(t, "time")
        except UnitError as e:
            raise UnitError(f"{e} (or bare seconds, e.g. 0.5)") from None
    if not (v > 0 and math.isfinite(v)):
        raise UnitError(f"must be a time > 0 in seconds (e.g. 0.5) or with a unit (e.g. 500ms); got {t!r}")
    return v


def parse_quantity(text, dimension: Dimension | str) -> float:
    """Parse ``text`` ("3.35 TB/s") into an SI float for ``dimension`` ("bandwidth").

    Raises UnitError with a message that names the expected form.
    """
    dim = DIMENSIONS[dimension] if isinstance(dimension, str) else dimension
    if isinstance(text, bool) or text is None:
        raise UnitError(f"expected a {dim.name} with its unit, e.g. '{dim.example}'; got {text!r}")
    if isinstance(text, (int, float)):
        raise UnitError(
            f"a bare number ({text!r}) has no unit; write the {dim.name} with its unit, e.g. '{dim.example}'"
        )
    if not isinstance(text, str):
        raise UnitError(f"expected a {dim.name} string such as '{dim.example}'; got {type(text).__name__}")
    m = _QTY.match(text)
    if not m:
        raise UnitError(f"cannot read {text!r} as a {dim.name}; expected a number and a unit, e.g. '{dim.example}'")
    value = float(m.group(1))
    unit = (m.group(2) or "").strip()
    unit = unit.replace(" ", "") if unit.replace(" ", "") in dim.units else unit
    if not unit:
        raise UnitError(
            f"{text!r} has no unit; write the {dim.name} with its unit, e.g. '{dim.example}'"
        )
    if unit not in dim.units:
        other = [d.name for d in DIMENSIONS.values() if unit in d.units]
        hint = f" ('{unit}' is a unit of {other[0]})" if other else ""
        raise UnitError(f"unit '{unit}' in {text!r} is not a {dim.name} unit{hint}; expected e.g. '{dim.example}'")
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is not a finite number")
    return value * dim.units[unit]


def format_quantity(value: float, dimension: str, digits: int = 3) -> str:
    """Human-readable form of an SI float (decimal prefixes), e.g. 3.35e12 B/s -> '3.35 TB/s'.

    The formatter lives in :mod:`hwmodels.format`; this name stays for the callers that write
    hardware strings (the output parses back with :func:`parse_quantity`).
    """
    from hwmodels.format import format_quantity as _fq

    return _fq(value, dimension, digits)
