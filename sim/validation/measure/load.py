"""Loading measured per-kernel CSV files (or built-in data sets) and checking every row."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd

from hwmodels.errors import Problem, SpecError
from hwmodels.limits import read_text
from hwmodels import csvtext
from sim.validation.measure.csvformat import (
    MAX_DIM,
    max_of,
    _INT_COLUMNS,
    COLLECTIVE_OPS,
    KNOWN_OPS,
    OP_COLUMNS,
    OPTIONAL_COLUMNS,
    _parse_bool,
)

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")

#: built-in data sets: name -> path relative to DATA_DIR
BUILTIN = {
    "vidur-a100": "vidur/a100.csv.gz",
    "vidur-h100": "vidur/h100.csv.gz",
    "vidur-a40": "vidur/a40.csv.gz",
    "vidur-network": "vidur/network.csv.gz",
    "host-cpu-xeon-2vcpu": "cpu/host-cpu-xeon-2vcpu.csv",
    "h100-sxm-own": "h100-sxm/kernels.csv",
    "h100-sxm-own-attention": "h100-sxm/attention.csv",
}
#: names that stand for several built-in sets
BUILTIN_GROUPS = {
    "vidur": ["vidur-a100", "vidur-h100", "vidur-a40", "vidur-network"],
    "vidur-compute": ["vidur-a100", "vidur-h100", "vidur-a40"],
}



def builtin_measurements() -> dict[str, str]:
    """Built-in data set names and their files (only those present)."""
    return {k: os.path.join(DATA_DIR, v) for k, v in BUILTIN.items() if os.path.exists(os.path.join(DATA_DIR, v))}


def _read_table(path: str) -> pd.DataFrame:
    if not os.path.exists(path):
        raise SpecError(f"no such file or built-in data set; built-in: "
                        f"{', '.join(list(BUILTIN) + list(BUILTIN_GROUPS))}", file=path)
    text = read_text(path, "csv_bytes", "a per-kernel CSV", gz=True)  # a regular file, bounded (hwmodels.limits)
    df, line = csvtext.frame(text, path, lambda what, kind: f"not a valid CSV: {what}", skipinitialspace=True,
                             dtype=str, keep_default_na=False)  # each whole-file problem at its line and column
    df.columns = [str(c).strip() for c in df.columns]
    if "op" not in df.columns:
        raise SpecError(Problem(f"no 'op' column (columns: {', '.join(df.columns[:12])}); a per-kernel CSV needs "
                                "hardware, op, dtype and the shape columns of each op", file=path, line=line, col=1))
    if df.empty:
        raise csvtext.no_rows(path, line)
    return df


def load_measurements(path_or_name: str, *, require_time: bool = True) -> pd.DataFrame:
    """Read a per-kernel CSV file or built-in data set and check every row.

    Bad rows are kept and flagged: the ``error`` column holds the reasons ('' for good rows).
    Counts are in ``df.attrs['counts']``: rows, ok, bad, and bad rows per reason. A file that is
    not a CSV, is empty, gives a column twice, has no ``op`` column or no data row raises SpecError
    naming the file, the line and the column (``csvtext``)."""
    names = BUILTIN_GROUPS.get(path_or_name, [path_or_name])
    frames = []
    for name in names:
        path = os.path.join(DATA_DIR, BUILTIN[name]) if name in BUILTIN else name
        df = _read_table(path)
        df["file"] = name if name in BUILTIN else os.path.basename(path)
        frames.append(df)
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True).fillna("")
    return validate_measurements(df, require_time=require_time)


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df.columns:
        return pd.Series(np.nan, index=df.index)
    s = df[col]
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        s = s.astype(str).str.strip().replace({"": np.nan, "nan": np.nan, "NaN": np.nan, "None": np.nan})
    return pd.to_numeric(s, errors="coerce")


def _blank(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df.columns:
        return pd.Series(True, index=df.index)
    s = df[col]
    return s.isna() | s.astype(str).str.strip().isin(["", "nan", "NaN", "None"])


def validate_measurements(df: pd.DataFrame, *, require_time: bool = True) -> pd.DataFrame:
    """Check rows of a per-kernel frame; returns a copy with typed columns and an ``error`` column."""
    from hwmodels.dtype import get_dtype

    df = df.copy()
    reasons: list[list[str]] = [[] for _ in range(len(df))]
    idx_pos = {ix: i for i, ix in enumerate(df.index)}

    def flag(mask: pd.Series, reason) -> None:
        for ix in df.index[mask.fillna(False).to_numpy(dtype=bool)]:
            r = reason(ix) if callable(reason) else reason
            reasons[idx_pos[ix]].append(r)

    df["op"] = df["op"].astype(str).str.strip().str.lower()
    known = df["op"].isin(KNOWN_OPS)
    flag(~known, lambda ix: f"unknown op {df.at[ix, 'op']!r}")
    flag(_blank(df, "hardware"), "missing hardware")
    if "dtype" in df.columns:
        dts = df["dtype"].astype(str).str.strip()
        bad_dt = {}
        for v in dts.unique():
            if v in ("", "nan"):
                bad_dt[v] = "missing dtype"
                continue
            try:
                get_dtype(v)
            except Exception:  # noqa: BLE001
                bad_dt[v] = f"unknown dtype {v!r}"
        for v, why in bad_dt.items():
            # a memcpy is fully described by its bytes: a blank dtype is allowed there
            flag((dts == v) & ~((df["op"] == "memcpy") & (why == "missing dtype")), why)
    else:
        flag(pd.Series(True, index=df.index), "missing dtype")

    numeric: dict[str, pd.Series] = {}
    for col in set(_INT_COLUMNS) | {"flops_per_element", "measured_time_s", "spread", "reps"}:
        if col in df.columns:
            numeric[col] = _num(df, col)

    for op, cols in OP_COLUMNS.items():
        sel = df["op"] == op
        if not sel.any():
            continue
        for col in cols:
            if col not in df.columns:
                flag(sel, f"missing {col}")
                continue
            if col == "phase":
                ph = df[col].astype(str).str.strip().str.lower()
                df.loc[sel, col] = ph[sel]
                flag(sel & _blank(df, col), "missing phase")
                flag(sel & ~_blank(df, col) & ~ph.isin(["prefill", "decode"]),
                     lambda ix: f"bad phase {df.at[ix, 'phase']!r} (prefill or decode)")
                continue
            if col == "causal":
                parsed = df[col].map(_parse_bool)
                flag(sel & _blank(df, col), "missing causal")
                flag(sel & ~_blank(df, col) & parsed.isna(), lambda ix: f"bad causal {df.at[ix, 'causal']!r}")
                continue
            v = numeric[col]
            flag(sel & _blank(df, col), f"missing {col}")
            flag(sel & ~_blank(df, col) & v.isna(), lambda ix, c=col: f"bad {c} {df.at[ix, c]!r}")
            flag(sel & v.notna() & ((v <= 0) | ~np.isfinite(v) | (v != np.floor(v)) | (v > max_of(col))),
                 lambda ix, c=col: f"bad {c} {df.at[ix, c]!r} (a positive integer up to {max_of(c):,})")
        for col, default in OPTIONAL_COLUMNS.get(op, {}).items():
            if col not in df.columns or col == "kernel":
                continue
            v = numeric[col]
            present = sel & ~_blank(df, col)
            flag(present & v.isna(), lambda ix, c=col: f"bad {c} {df.at[ix, c]!r}")
            lo_bad = (v < 0) if col == "flops_per_element" else (v <= 0)
            flag(present & v.notna() & (lo_bad | ~np.isfinite(v) | (v > max_of(col))),
                 lambda ix, c=col: f"bad {c} {df.at[ix, c]!r}")
        if op == "attention" and "kernel" in df.columns:
            kern = df["kernel"].astype(str).str.strip().str.lower()
            flag(sel & ~_blank(df, "kernel") & ~kern.isin(["flash", "naive"]),
                 lambda ix: f"bad kernel {df.at[ix, 'kernel']!r} (flash or naive)")
        if op in COLLECTIVE_OPS and "num_devices" in numeric:
            flag(sel & (numeric["num_devices"] < 2), "num_devices < 2")
        if op == "attention" and "heads" in numeric and "kv_heads" in numeric:
            h, kvh = numeric["heads"], numeric["kv_heads"]
            flag(sel & h.notna() & kvh.notna() & (kvh > 0) & ((h % kvh) != 0),
                 "heads not a multiple of kv_heads")

    if require_time:
        if "measured_time_s" not in df.columns:
            flag(pd.Series(True, index=df.index), "missing measured_time_s")
        else:
            t = numeric["measured_time_s"]
            flag(_blank(df, "measured_time_s"), "missing measured_time_s")
            flag(~_blank(df, "measured_time_s") & t.isna(),
                 lambda ix: f"bad measured_time_s {df.at[ix, 'measured_time_s']!r}")
            flag(t.notna() & ~np.isfinite(t), "non-finite measured_time_s")
            flag(t.notna() & np.isfinite(t) & (t <= 0), "non-positive measured_time_s")

    # typed columns for the caller
    for col, v in numeric.items():
        if col in _INT_COLUMNS:
            df[col] = v.where(v.notna() & np.isfinite(v) & (v == np.floor(v))
                              & (v.abs() <= max_of(col))).astype("Int64")
        else:
            df[col] = v
    if "causal" in df.columns:
        df["causal"] = df["causal"].map(_parse_bool).astype("boolean")
    # pass-through columns that hold numbers only become numeric
    for col in df.columns:
        if col in numeric or col in ("causal", "error") or not (df[col].dtype == object
                                                              or pd.api.types.is_string_dtype(df[col])):
            continue
        blank = _blank(df, col)
        if blank.all():
            continue
        v = _num(df, col)
        if v[~blank].notna().all():
            whole = (v[~blank] == np.floor(v[~blank])).all() and (v[~blank].abs() <= MAX_DIM).all()
            df[col] = v.astype("Int64") if whole else v
    for col, default in (("batch", 1), ("inputs", 1), ("outputs", 1), ("flops_per_element", 1.0)):
        ops_using = {"batch": ("gemm",), "inputs": ("elementwise",), "outputs": ("elementwise",),
                     "flops_per_element": ("elementwise", "rope")}[col]
        uses = df["op"].isin(ops_using)
        if col not in df.columns:
            if not uses.any():
                continue
            df[col] = pd.array([pd.NA] * len(df), dtype="Float64" if col == "flops_per_element" else "Int64")
        fill = uses & df[col].isna()
        df.loc[fill, col] = default
    df["error"] = ["; ".join(r) for r in reasons]
    bad = df["error"] != ""
    by_reason: dict[str, int] = {}
    for r in reasons:
        for why in {re.sub(r" '.*", "", x) for x in r}:
            by_reason[why] = by_reason.get(why, 0) + 1
    df.attrs["counts"] = {"rows": len(df), "ok": int((~bad).sum()), "bad": int(bad.sum()),
                          "by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1]))}
    return df
