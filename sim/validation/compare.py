"""Compare predictions with measured kernel times: the scoring half of validation.

A measured per-kernel CSV (the ``llmsim ops`` row format plus ``measured_time_s``) is checked row
by row; every row that can be priced is predicted with the shared cost model (``sim.ops``), and
each scored row gets

- ``predicted_time_s`` and ``measured_time_s`` (seconds),
- ``rel_error`` = (predicted - measured) / measured (signed: +1.0 means predicted twice the
  measured time, -0.5 means predicted half of it), ``abs_rel_error`` = |rel_error|,
- ``log_ratio`` = ln(predicted / measured) (the quantity calibration minimises),
- ``size`` and ``size_unit``: the row's work, FLOPs for gemm/attention and bytes for the rest.

Rows that cannot be scored are kept apart with their reason (unknown op, missing shape column,
zero or negative or missing time, NaN, hardware the catalog does not know, a collective on a
single chip, ...); the counts say how many rows were read, scored and rejected, by reason.

Per group (hardware, op, dtype) the summary gives the median and mean absolute percentage error,
the 90th percentile, the signed bias (median of rel_error) and the share of rows within 10 % and
20 %. This module does no plotting (``reports.validation`` does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hwmodels.errors import SpecError
from hwmodels.loader import load_hardware
from sim.cost import CostOptions
from sim.validation.vidur import scoring_options
from sim.ops import row_to_op
from sim.validation.measure import load_measurements, validate_measurements

DEFAULT_OPTIONS = CostOptions()
#: which size a row is plotted against: FLOPs for math-bound op kinds, bytes for the rest
FLOP_OPS = ("gemm", "attention")
GROUP_COLUMNS = ("hardware", "op", "dtype")
#: columns of the scored frame that this module adds
SCORE_COLUMNS = ("predicted_time_s", "rel_error", "abs_rel_error", "log_ratio", "size", "size_unit", "bound")


# ---------------------------------------------------------------------------------------------
# error statistics


def error_stats(predicted, measured) -> dict:
    """Error statistics of predicted versus measured times (arrays of seconds, same length).

    Percentages are fractions (0.1 = 10 %). ``bias`` is the median signed error; ``gmean_ratio``
    the geometric mean of predicted/measured.
    """
    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    n = len(p)
    if n == 0:
        return {"n": 0, "median_ape": math.nan, "mean_ape": math.nan, "p90_ape": math.nan, "bias": math.nan,
                "within_10": math.nan, "within_20": math.nan, "mean_abs_log": math.nan, "gmean_ratio": math.nan}
    rel = (p - m) / m
    ape = np.abs(rel)
    lr = np.log(p / m)
    return {
        "n": n,
        "median_ape": float(np.median(ape)),
        "mean_ape": float(np.mean(ape)),
        "p90_ape": float(np.quantile(ape, 0.9)),
        "bias": float(np.median(rel)),
        "within_10": float(np.mean(ape <= 0.10)),
        "within_20": float(np.mean(ape <= 0.20)),
        "mean_abs_log": float(np.mean(np.abs(lr))),
        "gmean_ratio": float(np.exp(np.mean(lr))),
    }


def summarize(scored: pd.DataFrame, by=GROUP_COLUMNS) -> pd.DataFrame:
    """One row of error statistics per group of the scored frame (``by``: column names)."""
    by = [c for c in by if c in scored.columns]
    rows = []
    if scored.empty:
        return pd.DataFrame(columns=list(by) + list(error_stats([], []).keys()))
    groups = scored.groupby(by, sort=True, dropna=False) if by else [((), scored)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **error_stats(g["predicted_time_s"], g["measured_time_s"])})
    return pd.DataFrame(rows)


_WHOLE = ("cannot predict", "unknown hardware", "bad hardware")


def reason_kind(reason: str) -> str:
    """A reason without its row-specific values, for counting ('unknown op 'foo'' -> 'unknown op')."""
    r = re.sub(r"\s*'[^']*'", "", str(reason))
    r = re.sub(r"\s*\([^)]*\)", "", r)
    r = re.sub(r"\s*:.*$", "", r)
    return r.strip() or "rejected"


def count_reasons(reasons) -> dict:
    """Rows per reason kind (a row with several reasons counts once under each)."""
    out: dict = {}
    for rs in reasons:
        rs = str(rs)
        # the checks join several reasons with '; '; a predictor's own message is one reason
        parts = [rs] if rs.startswith(_WHOLE) else rs.split("; ")
        for k in {reason_kind(x) for x in parts if x.strip()}:
            out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


# ---------------------------------------------------------------------------------------------
# the comparison


@dataclass
class Comparison:
    """Scored rows, rejected rows (with ``reason``), counts and the per-group summary."""

    scored: pd.DataFrame
    rejected: pd.DataFrame
    counts: dict
    summary: pd.DataFrame = field(default=None)

    def __post_init__(self):
        if self.summary is None:
            self.summary = summarize(self.scored)

    def overall(self, by=("op",)) -> pd.DataFrame:
        return summarize(self.scored, by)

    def worst(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` rows with the largest absolute error (largest first)."""
        if self.scored.empty:
            return self.scored
        return self.scored.sort_values("abs_rel_error", ascending=False).head(n)

    def to_dict(self, worst: int = 10) -> dict:
        cols = [c for c in ("hardware", "op", "dtype", "shape_id", "name", "measured_time_s", "predicted_time_s",
                            "rel_error", "bound") if c in self.scored.columns]
        return {"counts": self.counts,
                "summary": self.summary.to_dict("records"),
                "by_op": self.overall(("op",)).to_dict("records"),
                "worst": self.worst(worst)[cols].to_dict("records"),
                "rejected_examples": self.rejected.head(worst)[
                    [c for c in ("hardware", "op", "reason") if c in self.rejected.columns]].to_dict("records")}


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns with NaN for missing values (pandas NA and nullable dtypes confuse row dicts)."""
    out = df.astype(object)
    return out.where(pd.notna(out), np.nan)


#: the columns that describe one kernel (what the predictor reads)
SHAPE_COLUMNS = ("op", "dtype", "m", "n", "k", "batch", "phase", "heads", "kv_heads", "head_dim", "seqlen_q",
                 "seqlen_kv", "causal", "kernel", "bytes", "num_devices", "numel", "inputs", "outputs",
                 "flops_per_element", "fresh_bytes", "out_dtype", "fresh_span_bytes", "numel_q", "kernel_profile")


def unique_shapes(df: pd.DataFrame, extra=()) -> tuple[pd.DataFrame, np.ndarray]:
    """(one row per distinct kernel, the position of each input row's kernel in it).

    Distinct by the shape columns (plus ``extra``), so each kernel is priced once.
    """
    cols = [c for c in tuple(extra) + SHAPE_COLUMNS if c in df.columns]
    keyframe = _plain(df[cols]).astype(str)
    codes, _ = pd.factorize(pd.Series(list(map(tuple, keyframe.to_numpy()))))
    first = pd.Series(np.arange(len(df))).groupby(codes).first().to_numpy()
    return _plain(df.iloc[first][cols]).reset_index(drop=True), codes


def _size(row: dict) -> tuple[float, str]:
    """Work of a row: (FLOPs, 'FLOP') for gemm/attention, else (bytes, 'B'); NaN when not computable."""
    try:
        op = row_to_op(row)
    except Exception:  # noqa: BLE001 - a row the predictor rejects has no size either
        return math.nan, ""
    if op.collective is not None:
        return float(op.collective.bytes), "B"
    if str(row.get("op", "")).strip().lower() in FLOP_OPS:
        return float(op.flops_matrix), "FLOP"
    return float(sum(t.bytes for t in op.tensors)), "B"


def _check_rows(df: pd.DataFrame, validated: bool) -> tuple[pd.Series, pd.DataFrame]:
    """Reasons ('' when good) from the measurement loader's row checks (reused when already run)."""
    if validated:
        return df["error"].astype(str).where(df["error"].notna(), ""), df
    checked = validate_measurements(df)
    return checked["error"].astype(str), checked


def compare(measured, hw: str | None = None, *, options: CostOptions = DEFAULT_OPTIONS, overrides=None,
            hardware: dict | None = None, predictor: Callable | None = None, price: bool = True) -> Comparison:
    """Score every row of ``measured`` (a frame, a CSV path or a built-in data set name).

    ``hw`` replaces the ``hardware`` column (to score a calibrated file against the same rows);
    ``overrides``/``options``/``hardware`` go to the predictor (``sim.ops.predict_ops`` unless
    ``predictor`` is given, a function with its signature). Raises SpecError for a file that is not
    a measurement CSV; bad rows are rejected with their reason, never raised. ``price=False``
    only checks the rows (no predictions, so rows only the predictor would reject stay in).
    """
    if predictor is None:
        from sim.ops import predict_ops as predictor
    if isinstance(measured, (str, Path)):
        df = load_measurements(str(measured))
    else:
        df = measured.copy()
    if "op" not in df.columns:
        raise SpecError("the measurements have no 'op' column; a per-kernel CSV needs hardware, op, dtype, the "
                        "shape columns of each op and measured_time_s")
    df = df.drop(columns=[c for c in SCORE_COLUMNS + ("reason",) if c in df.columns])
    # frames from load_measurements carry their row checks (an 'error' column and attrs['counts'])
    validated = "error" in df.columns and "counts" in getattr(df, "attrs", {})
    if "error" in df.columns and not validated:
        df = df.drop(columns=["error"])
    options = scoring_options(df, options)  # rows timed on known kernels (Vidur's) are priced as those kernels
    if hw is not None:
        df["hardware"] = str(hw)
    if "hardware" not in df.columns:
        df["hardware"] = ""
    df = df.reset_index(drop=True)
    reasons, checked = _check_rows(df, validated)
    reasons = reasons.tolist()
    times = pd.to_numeric(checked.get("measured_time_s", pd.Series(np.nan, index=df.index)), errors="coerce")
    df["measured_time_s"] = times.to_numpy(dtype=float)

    # hardware the catalog (or the caller) knows
    known: dict = {}
    for name in df["hardware"].astype(str).str.strip().unique():
        if name in ("", "nan"):
            continue
        if hardware and name in hardware:
            known[name] = None
            continue
        try:
            load_hardware(name, overrides)
            known[name] = None
        except SpecError as e:
            msg = str(e.problems[0].message) if getattr(e, "problems", None) else str(e)
            known[name] = f"unknown hardware {name!r}" if "unknown hardware" in msg or "no such" in msg \
                else f"bad hardware {name!r}: {msg}"
    names = df["hardware"].astype(str).str.strip()
    for i, name in enumerate(names):
        if not reasons[i] and known.get(name):
            reasons[i] = known[name]

    ok = np.array([not r for r in reasons])
    good_idx = np.flatnonzero(ok)
    ptime = np.full(len(df), np.nan)
    pbound = np.array([""] * len(df), dtype=object)
    if len(good_idx) and not price:
        ptime[good_idx] = np.nan
    elif len(good_idx):
        # price each distinct kernel once (measurement files repeat shapes across models and runs)
        uniq, codes = unique_shapes(df.iloc[good_idx], extra=("hardware",))
        pred = predictor(uniq, overrides=overrides, options=options, hardware=hardware)
        perr = pred["error"].astype(str).to_numpy()[codes]
        pt = pred["time_s"].to_numpy(dtype=float)[codes]
        pb = pred["bound"].to_numpy()[codes]
        for j, i in enumerate(good_idx):
            if perr[j] and perr[j] != "nan":
                reasons[i] = f"cannot predict: {perr[j]}"
            elif not (np.isfinite(pt[j]) and pt[j] > 0):
                reasons[i] = "cannot predict: the model gives no positive time"
        ptime[good_idx] = pt
        pbound[good_idx] = pb
    df["predicted_time_s"] = ptime
    df["bound"] = pbound
    df["reason"] = reasons
    if "error" in df.columns:
        df = df.drop(columns=["error"])
    keep = df["reason"] == ""
    scored = df[keep].drop(columns=["reason"]).copy()
    rejected = df[~keep].copy()
    scored["predicted_time_s"] = scored["predicted_time_s"].astype(float)
    p, m = scored["predicted_time_s"].to_numpy(), scored["measured_time_s"].to_numpy()
    scored["rel_error"] = (p - m) / m
    scored["abs_rel_error"] = np.abs(scored["rel_error"])
    scored["log_ratio"] = np.log(p / m)
    if len(scored) and price:
        uniq, codes = unique_shapes(scored)
        sizes = [_size(r) for r in uniq.to_dict("records")]
        scored["size"] = np.array([s for s, _ in sizes], dtype=float)[codes]
        scored["size_unit"] = np.array([u for _, u in sizes], dtype=object)[codes]
    else:
        scored["size"], scored["size_unit"] = np.nan, ""
    counts = {"rows": len(df), "scored": int(keep.sum()), "rejected": int((~keep).sum()),
              "by_reason": count_reasons(rejected["reason"])}
    return Comparison(scored.reset_index(drop=True), rejected.reset_index(drop=True), counts)


def write_outputs(cmp: Comparison, out_dir, *, worst: int = 20) -> list[Path]:
    """Write scored.csv, rejected.csv, summary.csv and summary.json into ``out_dir``; returns the paths."""
    import json

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / "scored.csv", d / "rejected.csv", d / "summary.csv", d / "summary.json"]
    cmp.scored.to_csv(paths[0], index=False)
    cmp.rejected.to_csv(paths[1], index=False)
    cmp.summary.to_csv(paths[2], index=False)
    paths[3].write_text(json.dumps(_json_clean(cmp.to_dict(worst)), indent=2, default=_json_default) + "\n")
    return paths


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return str(o)


def _json_clean(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _json_clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_clean(v) for v in o]
    if o is pd.NA:
        return None
    return o
