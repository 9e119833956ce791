"""Terminal tables that fit 80 columns, and numbers shown with sensible units.

Result columns carry their unit in the name (``ttft_s``, ``weights_bytes``,
``output_throughput_tok_s``, ``usd_per_mtok_output``, ``joules_per_output_token``); that suffix
is how :func:`format_value` picks a unit: seconds become ``87.2 ms`` or ``41 us``, bytes ``16.1 GB``
(decimal prefixes, as the hardware files use for capacities in GB), rates ``1,166 tok/s``,
fractions such as ``mfu`` ``8.4%``, prices ``$1.17``. The formatters live in
:mod:`hwmodels.format` (the one formatter of the project) and are re-exported here.

:func:`render_table` lays a frame out in at most ``width`` columns: cells are formatted by their
column's unit, numbers are right-aligned, over-long cells are cut with an ellipsis, and a table
too wide for the terminal is split into blocks of columns that each repeat the first (key)
column. :func:`render_metrics` shows a few results side by side, one row per metric.
"""

from __future__ import annotations

import numbers

import pandas as pd

from hwmodels.format import (
    LABELS,
    fmt_bytes,
    fmt_energy,
    fmt_number,
    fmt_pct,
    fmt_rate,
    fmt_si,
    fmt_time,
    fmt_usd,
    format_value,
    label,
    placement_text,
    title_of,
)

__all__ = [
    "fmt_bytes",
    "fmt_energy",
    "fmt_number",
    "fmt_pct",
    "fmt_rate",
    "fmt_si",
    "fmt_time",
    "fmt_usd",
    "TITLES",
    "format_frame",
    "format_value",
    "placement_text",
    "render_kv",
    "render_metrics",
    "render_table",
    "title_of",
]

MISSING = "-"

TITLES = LABELS  # display titles and units of well-known result columns (hwmodels.format.LABELS)


#: columns whose values name other columns or keys (shown by their label: 'ttft_s' -> 'TTFT')
KEY_COLUMNS = ("metric", "axis", "parameter", "objective")


def format_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every cell formatted as text by its column's unit (and the cells of
    :data:`KEY_COLUMNS` shown by their label)."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        if str(c) in KEY_COLUMNS:
            out[c] = [label(v) if isinstance(v, str) else format_value(str(c), v) for v in df[c].tolist()]
        else:
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
