"""Terminal tables that fit 80 columns, and numbers shown with sensible units.

Result columns carry their unit in the name (``ttft_s``, ``weights_bytes``,
``output_throughput_tok_s``, ``usd_per_mtok_output``, ``joules_per_output_token``); that suffix
is how :func:`format_value` picks a unit: seconds become ``87.2 ms`` or ``41 us``, bytes ``16.1 GB``
(decimal prefixes, as the hardware files use for capacities in GB), rates ``1,166 tok/s``,
fractions such as ``mfu`` ``8.4%``, prices ``$1.17``. The formatters are also usable directly
(:func:`fmt_time`, :func:`fmt_bytes`, ...).

:func:`render_table` lays a frame out in at most ``width`` columns: cells are formatted by their
column's unit, numbers are right-aligned, over-long cells are cut with an ellipsis, and a table
too wide for the terminal is split into blocks of columns that each repeat the first (key)
column. :func:`render_metrics` shows a few results side by side, one row per metric.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

__all__ = [
    "fmt_bytes",
    "fmt_energy",
    "fmt_number",
    "fmt_pct",
    "fmt_rate",
    "fmt_si",
    "fmt_time",
    "fmt_usd",
    "format_frame",
    "format_value",
    "render_kv",
    "render_metrics",
    "render_table",
    "title_of",
]

MISSING = "-"

#: display titles and units of well-known result columns (for table rows and axis labels)
TITLES = {
    "ttft_s": ("TTFT", "s"),
    "tpot_s": ("TPOT", "s"),
    "e2e_s": ("end-to-end latency", "s"),
    "queue_s": ("queueing delay", "s"),
    "output_throughput_tok_s": ("output throughput", "tok/s"),
    "per_chip_output_throughput_tok_s": ("output throughput per chip", "tok/s"),
    "usd_per_mtok_output": ("USD per million output tokens", "USD"),
    "usd_per_mtok_input": ("USD per million input tokens", "USD"),
    "usd_per_hour": ("price", "USD/h"),
    "joules_per_output_token": ("energy per output token", "J"),
    "mfu": ("MFU", "%"),
    "mbu": ("MBU", "%"),
    "weights_bytes": ("weights per chip", "bytes"),
    "kv_cache_bytes": ("KV cache per chip", "bytes"),
    "activation_bytes": ("activations per chip", "bytes"),
    "memory_capacity_bytes": ("memory capacity per chip", "bytes"),
    "kv_utilization": ("KV-cache utilization", "%"),
    "batch_size": ("batch size", "requests"),
}


def title_of(column: str, unit: bool = False) -> str:
    """A display title for a result column ('ttft_s' -> 'TTFT'; with ``unit``: 'TTFT (s)')."""
    if column in TITLES:
        t, u = TITLES[column]
        return f"{t} ({u})" if unit else t
    for suffix, u in (("_tok_s", "tok/s"), ("_usd", "USD"), ("_bytes", "bytes"), ("_rps", "req/s"), ("_s", "s"),
                      ("_j", "J"), ("_w", "W")):
        if column.endswith(suffix):
            base = column[: -len(suffix)].replace("_", " ")
            return f"{base} ({u})" if unit else base
    return column.replace("_", " ")


def _missing(v) -> bool:
    if v is None or v is pd.NA:
        return True
    try:
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isnan(float(v))
    except (TypeError, ValueError):
        return False


def _sig(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits in fixed notation (no exponent)."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
             (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"))


def fmt_si(value, unit: str = "", digits: int = 3) -> str:
    """Engineering notation with a decimal SI prefix: ``fmt_si(9.894e14, 'FLOP/s')`` -> '989 TFLOP/s'."""
    if _missing(value):
        return MISSING
    v = float(value)
    if v == 0:
        return f"0 {unit}".strip()
    if not math.isfinite(v):
        return f"{'-' if v < 0 else ''}inf {unit}".strip()
    for scale, prefix in _PREFIXES:
        if abs(v) >= scale * 0.9995:
            return f"{_sig(v / scale, digits)} {prefix}{unit}".strip()
    scale, prefix = _PREFIXES[-1]
    return f"{_sig(v / scale, digits)} {prefix}{unit}".strip()


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
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if a >= scale * 0.9995:
            return f"{_sig(s / scale, digits)} {unit}"
    return "0 s" if s == 0 else f"{_sig(s / 1e-9, digits)} ns"


def fmt_bytes(nbytes, digits: int = 3) -> str:
    """Bytes with decimal prefixes: 16.06e9 -> '16.1 GB'."""
    if _missing(nbytes):
        return MISSING
    b = float(nbytes)
    if abs(b) < 1000:
        return f"{b:.0f} B"
    return fmt_si(b, "B", digits)


def fmt_rate(value, unit: str = "tok/s") -> str:
    """A rate with thousands separators: 1166.2 -> '1,166 tok/s'; 0.52 -> '0.52 tok/s'; 3.2e6 -> '3.20 M tok/s'."""
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
    return f"{float(fraction) * 100:.{digits}f}%"


def fmt_usd(value, per: str = "") -> str:
    """US dollars, 3 significant digits: 1.1709 -> '$1.17'; per='h' -> '$4.92/h'."""
    if _missing(value):
        return MISSING
    v = float(value)
    body = f"{v:,.0f}" if abs(v) >= 1000 else _sig(v, 3)
    return f"${body}" + (f"/{per}" if per else "")


def fmt_energy(joules) -> str:
    """Joules with a prefix: 0.4688 -> '469 mJ'."""
    return fmt_si(joules, "J")


def fmt_number(value) -> str:
    """A plain number: integers with separators, floats with 4 significant digits."""
    if _missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        if abs(v) >= 1e6 or abs(v) < 1e-3:
            return f"{v:.4g}"
        return _sig(v, 4)
    return str(value)


_PCT_NAMES = ("mfu", "mbu", "share", "utilization", "kv_utilization", "rel_error", "abs_rel_error", "fraction",
              "efficiency", "median_ape", "mean_ape", "p90_ape", "bias", "within_10", "within_20")


def format_value(column: str, value) -> str:
    """``value`` formatted by the unit its column name carries (see the module docstring)."""
    if _missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
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
    if c.endswith(("tok_s", "tokens_per_s")):
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
        return fmt_si(value, "W")
    if c in _PCT_NAMES or c.endswith(("_share", "_frac", "_fraction", "hit_rate", "attainment")) \
            or c.startswith(("share", "mfu", "mbu")) or "utilization" in c:
        return fmt_pct(value)
    if "flops" in c:
        return fmt_si(value, "FLOP")
    return fmt_number(value)


def format_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every cell formatted as text by its column's unit."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        out[c] = [format_value(str(c), v) for v in df[c].tolist()]
    return out


# ---------------------------------------------------------------------------------------------
# layout


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: max(n - 1, 0)] + "\u2026"


def _is_num(v) -> bool:
    return isinstance(v, numbers.Number) and not isinstance(v, bool)


def render_table(data, columns=None, headers: dict | None = None, width: int = 80, title: str | None = None,
                 max_cell: int = 36, formatted: bool = False) -> str:
    """``data`` (a DataFrame or a list of dicts) as text lines of at most ``width`` characters.

    ``columns`` picks and orders columns; ``headers`` renames them for display; cells are formatted
    by :func:`format_value` unless ``formatted`` (the cells are already text). Tables wider than
    ``width`` are split into blocks of columns, each block repeating the first column.
    """
    df = data if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data))
    if columns is not None:
        df = df[list(columns)]
    headers = headers or {}
    cols = list(df.columns)
    if not cols:
        return (title + "\n" if title else "") + "(empty)"
    names = [str(headers.get(c, c)) for c in cols]
    raw = {c: df[c].tolist() for c in cols}
    cells = {c: [(v if isinstance(v, str) else str(v)) if formatted else format_value(str(c), v) for v in raw[c]]
             for c in cols}
    right = {c: (not formatted and any(_is_num(v) for v in raw[c]))
             or (formatted and all(_looks_numeric(s) for s in cells[c] if s != MISSING) and cells[c]) for c in cols}
    sep = 2
    first_cap = min(max_cell, max(12, width // 3))
    cap = {c: (first_cap if i == 0 else min(max_cell, width - first_cap - sep)) for i, c in enumerate(cols)}
    w = {c: min(cap[c], max([len(n)] + [len(s) for s in cells[c]])) for c, n in zip(cols, names)}

    # blocks of columns that fit, each starting with the key column
    blocks, cur, used = [], [], w[cols[0]]
    for c in cols[1:]:
        if cur and used + sep + w[c] > width:
            blocks.append(cur)
            cur, used = [], w[cols[0]]
        cur.append(c)
        used += sep + w[c]
    blocks.append(cur)

    lines = [title] if title else []
    for bi, block in enumerate(blocks):
        show = [cols[0]] + block
        if bi:
            lines.append("")

        def fmt_row(vals, show=show):
            parts = []
            for c, v in zip(show, vals):
                v = _cut(v, w[c])
                parts.append(v.rjust(w[c]) if right[c] and c != cols[0] else v.ljust(w[c]))
            return (" " * sep).join(parts).rstrip()

        lines.append(fmt_row([names[cols.index(c)] for c in show]))
        lines.append((" " * sep).join("-" * w[c] for c in show))
        for i in range(len(df)):
            lines.append(fmt_row([cells[c][i] for c in show]))
    return "\n".join(lines)


def _looks_numeric(s: str) -> bool:
    s = s.strip().lstrip("$-+")
    return bool(s) and (s[0].isdigit() or s.startswith("."))


def render_metrics(results, label: str = "hardware", metrics=None, width: int = 80, title: str | None = None) -> str:
    """Results side by side: one row per metric, one column per result.

    ``results``: a DataFrame (one row per result) or a list of dicts; ``label``: the column that
    names each result (becomes the header); ``metrics``: ``[(column, title), ...]`` (default: every
    other column, titled by its name).
    """
    df = results if isinstance(results, pd.DataFrame) else pd.DataFrame(list(results))
    if metrics is None:
        metrics = [(c, c) for c in df.columns if c != label]
    labels = [str(x) for x in df[label].tolist()] if label in df.columns else [str(i) for i in range(len(df))]
    # duplicate labels (the same chip twice) get a suffix so the columns stay apart
    seen: dict = {}
    uniq = []
    for lb in labels:
        seen[lb] = seen.get(lb, 0) + 1
        uniq.append(lb if seen[lb] == 1 else f"{lb} #{seen[lb]}")
    rows = []
    for col, name in metrics:
        row = {"metric": name}
        for lb, rec in zip(uniq, df.to_dict("records")):
            row[lb] = format_value(col, rec.get(col)) if col in rec else MISSING
        rows.append(row)
    return render_table(pd.DataFrame(rows, columns=["metric"] + uniq), width=width, title=title, formatted=True,
                        max_cell=max(20, width // 3))


def render_kv(pairs, width: int = 80, indent: int = 2) -> str:
    """``[(key, value), ...]`` as aligned ``key  value`` lines (values formatted by the key's unit)."""
    pairs = list(pairs)
    if not pairs:
        return ""
    kw = min(max(len(str(k)) for k, _ in pairs), width // 2)
    out = []
    for k, v in pairs:
        text = format_value(str(k), v)
        out.append(_cut(" " * indent + f"{_cut(str(k), kw):<{kw}}  {text}", width))
    return "\n".join(out)
