"""The one formatter: SI floats shown as numbers a person reads, with their unit and a sensible prefix.

Every table, plot label and text line of llmsim formats its quantities here (CSV, JSON and
Parquet keep the raw SI floats). It lives in ``hwmodels`` because that is the lowest package that
shows quantities (``hwmodels.units.format_quantity`` writes hardware strings, ``sim`` describes
sweep axes); ``reports`` and the CLI import it from here.

- Quantities: :func:`fmt_time` (``87.2 ms``), :func:`fmt_bytes` (``16.1 GB``, decimal prefixes as
  the hardware files use for capacities), :func:`fmt_bandwidth` (``3.35 TB/s``),
  :func:`fmt_compute` (``989 TFLOP/s``; integer dtypes count operations, not floating-point ones:
  ``1.98 POP/s`` for int8), :func:`fmt_rate` (``1,166 tok/s``), :func:`fmt_usd` (``$1.17``,
  ``$4.92/h``), :func:`fmt_energy` (``469 mJ``), :func:`fmt_power` (``700 W``), :func:`fmt_pct`
  (``8.4%``), :func:`fmt_count` (``1,024``), :func:`fmt_si` (any unit). Never an exponent:
  numbers are fixed-notation with about three significant digits.
- Columns: :func:`format_value` picks the unit from the column's name (``ttft_s``,
  ``weights_bytes``, ``output_tok_s``, ``usd_per_hour``, ``hw.memory.hbm.bandwidth``...).
- Labels: :func:`label` turns a snake_case result key or a dotted hardware key into the words a
  person reads (``tpot_s`` -> ``TPOT``, ``hw.memory.hbm.bandwidth`` -> ``HBM bandwidth``), with
  :func:`unit_of` the key's unit; :func:`axis_scale` picks one prefix for a plot axis.
- :func:`format_quantity` writes an SI float for a hardware dimension in a form
  ``hwmodels.units.parse_quantity`` reads back.
"""

from __future__ import annotations

import math
import numbers
import re
import sys

__all__ = [
    "LABELS",
    "MISSING",
    "axis_label",
    "axis_scale",
    "fmt_bandwidth",
    "fmt_bytes",
    "fmt_compute",
    "fmt_count",
    "fmt_energy",
    "fmt_number",
    "fmt_pct",
    "fmt_power",
    "fmt_rate",
    "fmt_si",
    "fmt_time",
    "fmt_usd",
    "format_quantity",
    "format_value",
    "is_integer_dtype",
    "label",
    "placement_text",
    "title_of",
    "unit_of",
]

MISSING = "-"

_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
             (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f"))


def _missing(v) -> bool:
    if v is None:
        return True
    pd = sys.modules.get("pandas")  # only when already loaded: formatting never imports pandas
    if pd is not None and (v is pd.NA or v is pd.NaT):
        return True
    try:
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isnan(float(v))
    except (TypeError, ValueError):
        return False


def _sig(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits in fixed notation (never an exponent)."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    s = f"{x:.{decimals}f}"
    # rounding can carry into a new digit (999.96 -> '1000.0'): drop the surplus decimal
    if decimals and len(s.replace("-", "").replace(".", "").lstrip("0")) > digits:
        s = f"{x:.{decimals - 1}f}"
    return s


def _prefixed(v: float, unit: str, digits: int, prefixes=_PREFIXES, group: bool = True) -> str:
    scale, prefix = prefixes[-1]
    for sc, pf in prefixes:
        if abs(v) >= sc * (1 - 0.5 * 10 ** (1 - digits)):
            scale, prefix = sc, pf
            break
    x = v / scale
    body = f"{x:,.0f}" if group and abs(x) >= 10 ** digits else _sig(x, digits)
    return f"{body} {prefix}{unit}".strip()


def fmt_si(value, unit: str = "", digits: int = 3) -> str:
    """A decimal SI prefix and ``digits`` significant digits: ``fmt_si(9.894e14, 'FLOP/s')`` -> '989 TFLOP/s'."""
    if _missing(value):
        return MISSING
    v = float(value)
    if v == 0:
        return f"0 {unit}".strip()
    if not math.isfinite(v):
        return f"{'-' if v < 0 else ''}inf {unit}".strip()
    return _prefixed(v, unit, digits)


def fmt_time(seconds, digits: int = 3) -> str:
    """Seconds in ns/us/ms/s (and min/h above 1000 s): 0.0872 -> '87.2 ms'."""
    if _missing(seconds):
        return MISSING
    s = float(seconds)
    if not math.isfinite(s):
        return "inf"
    a = abs(s)
    if a >= 7200:
        return f"{_sig(s / 3600, digits)} h"
    if a >= 1000:
        return f"{_sig(s / 60, digits)} min"
    if s == 0:
        return "0 s"
    return _prefixed(s, "s", digits, ((1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")))


def fmt_bytes(nbytes, digits: int = 3) -> str:
    """Bytes with decimal prefixes: 16.06e9 -> '16.1 GB'."""
    if _missing(nbytes):
        return MISSING
    b = float(nbytes)
    if abs(b) < 1000:
        return f"{b:.0f} B"
    return fmt_si(b, "B", digits)


def fmt_bandwidth(bytes_per_s, digits: int = 3) -> str:
    """Bytes per second: 3.35e12 -> '3.35 TB/s'."""
    return fmt_si(bytes_per_s, "B/s", digits)


_INT_DTYPES = ("int", "uint", "i8", "i4", "u8", "u4", "bool")


def is_integer_dtype(dtype: str | None) -> bool:
    """int8, int4, uint8...: rates of these dtypes are operations per second, not FLOP/s."""
    return bool(dtype) and str(dtype).lower().startswith(_INT_DTYPES)


def fmt_compute(ops_per_s, dtype: str | None = None, digits: int = 3) -> str:
    """A compute rate: '989 TFLOP/s' for floating-point dtypes, '1.98 POP/s' for integer ones."""
    return fmt_si(ops_per_s, "OP/s" if is_integer_dtype(dtype) else "FLOP/s", digits)


def fmt_rate(value, unit: str = "tok/s") -> str:
    """A rate with thousands separators: 1166.2 -> '1,166 tok/s'; 0.52 -> '0.52 tok/s'; 3.2e6 -> '3.2 M tok/s'."""
    if _missing(value):
        return MISSING
    v = float(value)
    if not math.isfinite(v):
        return f"inf {unit}"
    if abs(v) >= 1e6:
        return f"{fmt_si(v, '', 3)} {unit}"
    if abs(v) >= 100:
        return f"{v:,.0f} {unit}"
    return f"{_sig(v, 3)} {unit}"


def fmt_pct(fraction, digits: int = 1) -> str:
    """A fraction as a percentage: 0.0844 -> '8.4%'."""
    if _missing(fraction):
        return MISSING
    p = float(fraction) * 100
    if p != 0 and abs(p) < 10 ** -digits:
        return f"{_sig(p, 2)}%"
    return f"{p:.{digits}f}%"


def fmt_usd(value, per: str = "") -> str:
    """US dollars, 3 significant digits: 1.1709 -> '$1.17'; per='h' -> '$4.92/h'."""
    if _missing(value):
        return MISSING
    v = float(value)
    if abs(v) >= 1e9:
        body = fmt_si(v, "", 3)
    elif abs(v) >= 1000:
        body = f"{v:,.0f}"
    else:
        body = _sig(v, 3)
    return f"${body}" + (f"/{per}" if per else "")


def fmt_energy(joules, digits: int = 3) -> str:
    """Joules with a prefix: 0.4688 -> '469 mJ'."""
    return fmt_si(joules, "J", digits)


def fmt_power(watts, digits: int = 3) -> str:
    """Watts with a prefix: 700 -> '700 W'; 10200 -> '10.2 kW'."""
    return fmt_si(watts, "W", digits)


def fmt_count(n) -> str:
    """A count with thousands separators (large ones with a prefix): 1024 -> '1,024'; 3.2e9 -> '3.2 G'."""
    if _missing(n):
        return MISSING
    v = float(n)
    if not math.isfinite(v):
        return "inf"
    if abs(v) >= 1e9:
        return fmt_si(v, "", 3)
    if v.is_integer():
        return f"{int(v):,}"
    return fmt_number(v)


def fmt_number(value) -> str:
    """A plain number: integers with separators, floats with 4 significant digits, never an exponent."""
    if _missing(value):
        return MISSING
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        v = int(value)
        return f"{v:,}" if abs(v) < 1e9 else fmt_si(v, "", 3)
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        if v.is_integer() and abs(v) < 1e9:
            return f"{int(v):,}"
        if abs(v) >= 1e6 or abs(v) < 1e-3:
            return fmt_si(v, "", 3)
        return _sig(v, 4)
    return str(value)


# ---------------------------------------------------------------------------------------------
# hardware dimensions (strings the hardware parser reads back)

_DIM_UNIT = {"bytes": "B", "bandwidth": "B/s", "rate": "FLOP/s", "flops": "FLOP", "power": "W",
             "frequency": "Hz", "energy": "J", "energy_per_flop": "J/FLOP", "energy_per_byte": "J/B"}


def format_quantity(value: float, dimension: str, digits: int = 3) -> str:
    """An SI float of a hardware dimension as a unit string: 3.35e12, 'bandwidth' -> '3.35 TB/s'.

    The output is what ``hwmodels.units.parse_quantity`` accepts for that dimension; trailing
    zeros are dropped ('1 TB/s', as a person writes a hardware file).
    """
    text = _format_quantity(value, dimension, digits)
    return re.sub(r"^(-?\d+)\.(\d*?)0+(?=\D|$)", lambda m: m.group(1) + ("." + m.group(2) if m.group(2) else ""), text)


def _format_quantity(value: float, dimension: str, digits: int) -> str:
    if _missing(value):
        return MISSING
    v = float(value)
    if dimension == "time":
        if v == 0:
            return "0 s"
        return _prefixed(v, "s", digits, ((1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")), False)
    if dimension == "bytes":
        return _prefixed(v, "B", digits, _PREFIXES[:7], False) if abs(v) >= 1000 else f"{_sig(v, digits)} B"
    if dimension in ("energy_per_flop", "energy_per_byte", "energy"):
        if v == 0:
            return f"0 {_DIM_UNIT[dimension]}"
        return _prefixed(v, _DIM_UNIT[dimension], digits, _PREFIXES[6:], False)  # J, mJ, uJ, nJ, pJ, fJ
    if dimension == "money":
        return f"{_sig(v, max(digits, 4)) if abs(v) < 1e4 else f'{v:.0f}'} USD"
    if dimension == "money_rate":
        return f"{_sig(v * 3600, digits)} USD/h"
    if dimension in ("power", "frequency", "bandwidth", "rate", "flops"):
        if v == 0:
            return f"0 {_DIM_UNIT[dimension]}"
        small = dimension == "power"
        return _prefixed(v, _DIM_UNIT[dimension], digits, _PREFIXES if small else _PREFIXES[:7], False)
    from hwmodels.units import DIMENSIONS

    return f"{_sig(v, digits)} {DIMENSIONS[dimension].si_unit}"


# ---------------------------------------------------------------------------------------------
# labels: the words a person reads for a result column or a hardware key

#: display label and unit of result columns (the unit selects the formatter of their values)
LABELS = {
    "ttft_s": ("TTFT", "s"),
    "tpot_s": ("TPOT", "s"),
    "itl_s": ("inter-token latency", "s"),
    "max_itl_s": ("longest inter-token gap", "s"),
    "mean_s": ("mean", "s"),
    "count": ("count", ""),
    "e2e_s": ("end-to-end latency", "s"),
    "queue_s": ("queueing delay", "s"),
    "prefill_s": ("prefill time", "s"),
    "decode_s": ("decode time", "s"),
    "output_throughput_tok_s": ("output throughput", "tok/s"),
    "output_tok_s": ("output throughput", "tok/s"),
    "output_tok_s_per_chip": ("output throughput per chip", "tok/s"),
    "per_chip_output_throughput_tok_s": ("output throughput per chip", "tok/s"),
    "input_tok_s": ("input throughput", "tok/s"),
    "usd_per_mtok_output": ("USD per million output tokens", "USD"),
    "usd_per_mtok_input": ("USD per million input tokens", "USD"),
    "usd_per_hour": ("price", "USD/h"),
    "joules_per_output_token": ("energy per output token", "J"),
    "tokens_per_joule": ("output tokens per joule", "tok/J"),
    "mfu": ("MFU", "%"),
    "mbu": ("MBU", "%"),
    "weights_bytes": ("weights per chip", "B"),
    "kv_cache_bytes": ("KV cache per chip", "B"),
    "activation_bytes": ("activations per chip", "B"),
    "memory_bytes": ("memory per chip", "B"),
    "memory_capacity_bytes": ("memory capacity per chip", "B"),
    "kv_utilization": ("KV-cache utilization", "%"),
    "batch_size": ("batch size", ""),
    "batch": ("batch size", ""),
    "chips": ("chips", ""),
    "tp": ("tensor parallel", ""),
    "pp": ("pipeline parallel", ""),
    "ep": ("expert parallel", ""),
    "input_len": ("input length", "tokens"),
    "output_len": ("output length", "tokens"),
    "goodput_rps": ("goodput", "req/s"),
    "rate_rps": ("request rate", "req/s"),
    "slo_attainment": ("SLO attainment", "%"),
    "watts": ("power", "W"),
    "power_w": ("power", "W"),
    "share": ("share of variance", "%"),
    "elasticity": ("elasticity", ""),
    "levels": ("levels", ""),
    "best_level": ("best level", ""),
    "best_mean": ("mean at best level", ""),
    "axis": ("axis", ""),
    "status": ("status", ""),
    "hw": ("hardware", ""),
    "model": ("model", ""),
    "quant": ("quantization", ""),
}

TITLES = LABELS  # the name reports.tables used

_ACRONYMS = {"hbm": "HBM", "sram": "SRAM", "dram": "DRAM", "l1": "L1", "l2": "L2", "l3": "L3", "smem": "SMEM",
             "kv": "KV", "usd": "USD", "tdp": "TDP", "mfu": "MFU", "mbu": "MBU", "ttft": "TTFT", "tpot": "TPOT",
             "e2e": "end-to-end", "slo": "SLO", "gpu": "GPU", "cpu": "CPU", "bf16": "bf16", "fp8": "fp8",
             "nvlink": "NVLink", "ib": "IB", "pcie": "PCIe", "ddr": "DDR", "lpddr": "LPDDR", "io": "I/O"}

_SUFFIX_UNITS = (("_tok_s_per_chip", "tok/s"), ("_tok_s", "tok/s"), ("_per_chip_tok_s", "tok/s"),
                 ("_bytes_per_s", "B/s"), ("_flop_s", "FLOP/s"), ("_usd_per_hour", "USD/h"), ("_per_hour", "USD/h"),
                 ("_usd", "USD"), ("_bytes", "B"), ("_rps", "req/s"), ("_s", "s"), ("_j", "J"), ("_w", "W"),
                 ("_hz", "Hz"), ("_frac", "%"), ("_fraction", "%"), ("_share", "%"), ("_utilization", "%"))


def _words(text: str) -> str:
    return " ".join(_ACRONYMS.get(w.lower(), w) for w in text.replace("-", " ").split("_") if w)


def _hw_key(key: str) -> tuple[str, str] | None:
    """('HBM bandwidth', 'B/s') for 'hw.memory.hbm.bandwidth' and other dotted hardware keys."""
    parts = key.split(".")
    if parts[0] in ("hw", "chip", "system"):
        parts = parts[1:]
    if not parts:
        return None
    last = parts[-1]
    if parts[0] == "memory" and len(parts) >= 3:
        level = _ACRONYMS.get(parts[1].lower(), parts[1])
        unit = {"bandwidth": "B/s", "capacity": "B", "latency": "s", "energy_per_byte": "J/B"}.get(last, "")
        return f"{level} {_words(last)}", unit
    if parts[0] == "compute" and "peak" in parts:
        kind = parts[1] if len(parts) > 2 else ""
        return f"{kind} {last} peak".strip(), "OP/s" if is_integer_dtype(last) else "FLOP/s"
    if parts[0] == "compute" and len(parts) >= 3:
        return f"{parts[1]} {_words(last)}", {"gemm_fixed_time": "s", "sustained_clock": "Hz"}.get(last, "")
    if parts[0] in ("tiers", "interconnect") and len(parts) >= 3:
        unit = {"bandwidth": "B/s", "latency": "s"}.get(last, "")
        return f"{_words(parts[1])} {_words(last)}", unit
    simple = {"tdp": ("TDP", "W"), "idle": ("idle power", "W"), "clock": ("clock", "Hz"), "cores": ("cores", ""),
              "launch_overhead": ("launch overhead", "s"), "kernel_fixed_time": ("kernel fixed time", "s"),
              "count": ("chips", "")}
    if last in simple and len(parts) <= 2:
        return simple[last]
    if parts[-2:] == ["price", "cloud"]:
        return "cloud price", "USD/h"
    if parts[-2:] == ["price", "list"]:
        return "list price", "USD"
    if len(parts) > 1 or key.startswith("hw."):
        return " ".join(_words(p) for p in parts), ""
    return None


def label(key: str, unit: bool = False) -> str:
    """The words for a column or key: 'tpot_s' -> 'TPOT'; with ``unit``: 'TPOT (s)'.

    Dotted hardware keys read as hardware: 'hw.memory.hbm.bandwidth' -> 'HBM bandwidth'.
    """
    key = str(key)
    u = unit_of(key)
    if key in LABELS:
        text = LABELS[key][0]
    elif "." in key and (hw := _hw_key(key)) is not None:
        text = hw[0]
    else:
        text = key
        for suffix, _ in _SUFFIX_UNITS:
            if key.endswith(suffix) and len(key) > len(suffix):
                text = key[: -len(suffix)]
                break
        text = _words(text)
    return f"{text} ({u})" if unit and u and u != "%" else text


def title_of(column: str, unit: bool = False) -> str:
    """Alias of :func:`label` (the name the report modules used)."""
    return label(column, unit)


def unit_of(key: str) -> str:
    """The unit a column or key carries ('s', 'B', 'B/s', 'tok/s', 'USD', '%', ''...)."""
    key = str(key)
    if key in LABELS:
        return LABELS[key][1]
    if "." in key and (hw := _hw_key(key)) is not None:
        return hw[1]
    c = key.lower()
    if c in _PCT_NAMES or c.startswith(("share", "mfu", "mbu")) or "utilization" in c or \
            c.endswith(("hit_rate", "attainment")):
        return "%"
    for suffix, u in _SUFFIX_UNITS:
        if c.endswith(suffix):
            return u
    if "usd" in c:
        return "USD"
    if c.endswith("bytes") or c.startswith("bytes"):
        return "B"
    if "joules" in c or "_j_per_" in c:
        return "J"
    if "flops" in c:
        return "FLOP"
    return ""


_PCT_NAMES = ("mfu", "mbu", "share", "utilization", "kv_utilization", "rel_error", "abs_rel_error", "fraction",
              "efficiency", "median_ape", "mean_ape", "p90_ape", "bias", "within_10", "within_20")


def format_value(column: str, value) -> str:
    """``value`` formatted by the unit its column name carries (see the module docstring)."""
    if _missing(value):
        return MISSING
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_value(str(k), v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if not isinstance(value, numbers.Real):
        return str(value)
    c = str(column).lower()
    if "." in c and (hw := _hw_key(c)) is not None and hw[1]:
        return _by_unit(value, hw[1])
    if c.endswith(("tok_s", "tokens_per_s", "tok_s_per_chip")):
        return fmt_rate(value, "tok/s")
    if c.endswith(("_rps", "req_s")):
        return fmt_rate(value, "req/s")
    if c.endswith(("flop_s", "flops_per_s")):
        return fmt_si(value, "FLOP/s")
    if c.endswith(("bytes_per_s", "_b_s")):
        return fmt_si(value, "B/s")
    if c.endswith("_per_s"):  # steps_per_s -> 'steps/s'
        return fmt_rate(value, c[: -len("_per_s")].rsplit("_", 1)[-1] + "/s")
    if "usd" in c:
        return fmt_usd(value, "h" if c.endswith(("per_hour", "_h")) else "")
    if c.endswith("bytes") or c.startswith("bytes"):
        return fmt_bytes(value)
    if c.endswith(("_s", "_time")) or c == "s":
        return fmt_time(value)
    if c.endswith("_j") or "joules" in c or c.startswith("energy_j") or "_j_per_" in c:
        return fmt_energy(value)
    if c.endswith(("_w", "watts")):
        return fmt_power(value)
    if c.endswith("_hz"):
        return fmt_si(value, "Hz")
    if unit_of(c) == "%":
        return fmt_pct(value)
    if "flops" in c:
        return fmt_si(value, "FLOP")
    return fmt_number(value)


def _by_unit(value, unit: str) -> str:
    if unit == "s":
        return fmt_time(value)
    if unit == "B":
        return fmt_bytes(value)
    if unit == "USD/h":
        return fmt_usd(value, "h")
    if unit == "USD":
        return fmt_usd(value)
    if unit == "%":
        return fmt_pct(value)
    if unit in ("tok/s", "req/s"):
        return fmt_rate(value, unit)
    return fmt_si(value, unit)


_PLACEMENT_NAMES = {"weights": "weights", "kv_cache": "KV cache", "activations": "activations",
                    "draft model": "draft model"}


def placement_text(placement: dict) -> list[tuple[str, str]]:
    """(tensor class, 'sram 1.00 GB (25%) + hbm 3.00 GB (75%)') per class of a prediction's ``placement``."""
    out = []
    for key, levels in placement.items():
        total = sum(levels.values()) or 1.0
        parts = [f"{lvl} {fmt_bytes(b)}" + (f" ({fmt_pct(b / total, 0)})" if len(levels) > 1 else "")
                 for lvl, b in levels.items() if b > 0 or len(levels) == 1]
        out.append((_PLACEMENT_NAMES.get(key, key), " + ".join(parts)))
    return out


# ---------------------------------------------------------------------------------------------
# plot axes

_TIME_SCALES = ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))


def axis_scale(values, unit: str = "s") -> tuple[float, str]:
    """(scale, prefixed unit) for an axis whose largest value is max(|values|): plot values / scale.

    Times get s/ms/us/ns; other units a decimal SI prefix ('B/s' -> 'TB/s'); '%' and '' get 1.
    """
    try:
        m = float(max(abs(float(v)) for v in values)) if hasattr(values, "__iter__") else abs(float(values))
    except ValueError:  # empty
        m = 0.0
    if unit == "s":
        if not math.isfinite(m) or m == 0:
            return 1e-3, "ms"
        for scale, u in _TIME_SCALES:
            if m >= scale:
                return scale, u
        return _TIME_SCALES[-1]
    if unit == "%":
        return 0.01, "%"
    if not unit or unit in ("tok/s", "req/s", "USD", "USD/h") or not math.isfinite(m) or m == 0:
        return 1.0, unit
    for scale, prefix in _PREFIXES:
        if m >= scale:
            return scale, prefix + unit
    return _PREFIXES[-1][0], _PREFIXES[-1][1] + unit


def axis_label(key: str, values=None) -> tuple[str, float]:
    """('HBM bandwidth (TB/s)', 1e12) for a key and the values its axis shows: plot values / scale."""
    u = unit_of(key)
    if values is None or not u:
        return label(key, unit=True), 1.0
    scale, su = axis_scale(values, u)
    return (f"{label(key)} ({su})" if su else label(key)), scale
