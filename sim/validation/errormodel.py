"""Fit the error model behind prediction intervals from the validation record, and measure its coverage.

Inputs are the held-out rows of the calibrations ``llmsim validate-report`` runs (``Calibration.test``:
each row priced three ways) and the published end-to-end rows:

- ``peak_s`` (datasheet peaks, no efficiency fields) gives the **class-default** state,
  ``catalog_s`` (the catalog file with its published efficiencies) the **published** state,
  ``calibrated_s`` (fitted on other shapes, scored on this held-out fold) the **measured** state;
- a row's residual is ``ln(measured / predicted)``; its cell is (state, hardware family, op kind,
  bound, size bucket of the predicted time), its configuration (for splits) the Vidur model it was
  profiled for, else its shape.

Per cell the file keeps quantiles of the residual at ``PROBS``; a cell needs ``MIN_ROWS`` rows, else
the lookup falls back along ``FALLBACK``. Chips not in the record get their quantiles widened about
the median by a factor measured leave-one-chip-out (A100 <-> H100). The end-to-end ("engine") term
per state is a lognormal fitted to the published end-to-end rows after the kernel Monte Carlo.

Coverage is measured on rows held out from the fit: kernel rows by configuration (5 folds of the
configuration hash), end-to-end rows leaving one (model, hardware, tp) configuration out at a time.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from sim.version import llmsim_version
from sim.uncertainty import (INTENSITY_SPLIT, ErrorModel, cell_key, cell_kind, central_interval, chip_family,
                             factor_interval, metric_samples, op_bytes, record_name, row_kind, size_label)

PROBS = tuple(round(x, 4) for x in np.linspace(0.005, 0.995, 199))
MIN_ROWS = 20
FALLBACK = ("state/family/kind/bound/size", "state/family/kind/*/size", "state/family/kind/bound", "state/family/kind",
            "state/*/kind/*/size", "state/*/kind", "state/family", "state")
#: size buckets: log10 of a row's predicted time (seconds, one kernel call) in the pricing of its state, cut here
#: (small launch-bound ops and big streaming ones miss in different ways; the prediction knows its own time)
SIZE_EDGES = (-5.0, -4.5, -4.0, -3.5, -3.0)
#: graph op kinds without validation rows of their own, and the kind whose rows stand in for them
KIND_MAP = {"sampling": "elementwise", "router": "elementwise", "dequant": "elementwise"}
#: how each pricing of a held-out row maps to a calibration state (catalog: the catalog chip's own state)
STATE_COLUMNS = {"peak_s": "none", "catalog_s": "catalog", "calibrated_s": "measured"}
#: a kind without rows of its own on a family reads this kind's cells (same bound), widened like an unseen chip:
#: a flash-attention kernel is two fused GEMMs on the same matrix units (compute-bound) or a stream of the KV
#: cache (memory-bound), which the GEMM cells of that bound describe best among the kinds the record has
KIND_PROXY = {"attention": "gemm"}
#: a state without rows of its own reads another's cells, both ways: the record holds one class-default
#: accelerator (a100-sxm) and one published (h100-sxm, whose main memory is fitted on llmsim's own run), so
#: leaving one chip out (unseen_chip_widening) leaves one of the two states without rows
STATE_FALLBACK = {"published": "class-default", "class-default": "published"}
#: kinds whose record holds rows of several independent sources (a configuration = a source and phase: another
#: kernel build, harness and card), so that a user's own run is a source the record does not hold; their cells are
#: spread by the shifts of sources left out of the fit (:func:`unseen_source_shifts`)
SOURCE_KINDS = ("attention",)
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
SHRINK_GRID = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)
WIDENING_GRID = tuple(round(1.0 + 0.05 * i, 2) for i in range(81))
FOLDS = 5


def _fold(key: str, folds: int = FOLDS) -> int:
    return int(hashlib.md5(("errmodel|" + str(key)).encode("utf-8")).hexdigest(), 16) % folds


def _catalog_state(chip) -> str:
    """The calibration state of the catalog file a chip (or its calibrated file) comes from."""
    from hwmodels.errors import SpecError
    from hwmodels.loader import load_hardware
    from sim.uncertainty import calibration_state

    try:
        return calibration_state(load_hardware(record_name(chip)))
    except SpecError:
        return calibration_state(chip)


def _cell_kinds(t: pd.DataFrame, kinds, chip) -> np.ndarray:
    """Each row's cell kind: its kind, split by arithmetic intensity where INTENSITY_SPLIT says (the row's Op as
    sim.ops builds it, priced on ``chip``: its FLOPs over the bytes it moves)."""
    from sim.cost import CostModel
    from sim.ops import row_to_op

    out = np.asarray(kinds, dtype=object).copy()
    ops = t["op"].astype(str).str.strip().str.lower().to_numpy()
    for i, k in enumerate(kinds):
        if k == "collective":  # a collective row's op names its operation
            out[i] = cell_kind(k, name=ops[i])
    idx = [i for i, k in enumerate(kinds) if k in INTENSITY_SPLIT]
    if not idx:
        return out
    cm = CostModel(chip)
    recs = t.iloc[idx].to_dict("records")
    for i, r in zip(idx, recs):
        try:
            c = cm.op_cost(row_to_op({k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}))
        except Exception:  # noqa: BLE001  (a row sim.ops cannot build keeps its kind)
            continue
        out[i] = cell_kind(kinds[i], c.flops, op_bytes(c))
    return out


def kernel_residuals(cals: dict) -> pd.DataFrame:
    """One row per (held-out kernel row, state): source, chip, family, state, kind, bound, group, log_f."""
    from sim.validation.calibrate import shape_keys

    frames = []
    for label, cal in cals.items():
        t = cal.test
        if t is None or t.empty:
            continue
        chip = getattr(cal.base, "chip", cal.base)
        catalog_state = _catalog_state(chip)
        names = t["name"].astype(str) if "name" in t.columns else pd.Series([""] * len(t), index=t.index)
        kinds = _cell_kinds(t, [row_kind(o, n) for o, n in zip(t["op"].astype(str), names)], chip)
        if "model" in t.columns and t["model"].notna().all():
            group = label + "|" + t["model"].astype(str)
        else:
            group = label + "|" + shape_keys(t).astype(str)
        for col, state in STATE_COLUMNS.items():
            if col not in t.columns:
                continue
            state = catalog_state if state == "catalog" else state
            p = t[col].to_numpy(float)
            m = t["measured_time_s"].to_numpy(float)
            ok = np.isfinite(p) & (p > 0) & np.isfinite(m) & (m > 0)
            frames.append(pd.DataFrame({
                "source": label, "chip": record_name(chip), "family": chip_family(chip), "state": state,
                "pricing": col[:-2],
                "kind": np.asarray(kinds)[ok], "bound": t["bound"].astype(str).to_numpy()[ok] if "bound" in t else "*",
                "group": group.to_numpy()[ok], "log_f": np.log(m[ok] / p[ok]), "pred_s": p[ok],
                "size": [size_label(x, SIZE_EDGES) for x in np.log10(p[ok])]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["source", "chip", "family", "state", "kind", "bound", "group", "log_f", "pricing", "pred_s", "size"])


def attention_residuals() -> pd.DataFrame:
    """The published attention kernel rows (kernels.csv, op == attention: validation.md sections 4c and 4d) as
    rows of the kernel record, in the columns of :func:`kernel_residuals`: each priced as ``llmsim ops`` prices
    it on the catalog file with the default stack's kernels (what a user's prediction gets), in the catalog
    file's state; configuration (``group``) = the source and phase. Rows a profile value was chosen on
    (column ``fit``) are left out: they are not held out."""
    from hwmodels.loader import load_hardware
    from sim.validation.published import score_attention_kernels

    df = score_attention_kernels()
    df = df[df["fit"].astype(str).str.strip().eq("")] if "fit" in df.columns else df
    p, m = df["predicted"].to_numpy(float), df["measured_time_s"].astype(float).to_numpy()
    ok = np.isfinite(p) & (p > 0) & np.isfinite(m) & (m > 0)
    df, p, m = df[ok], p[ok], m[ok]
    loaded = {h: load_hardware(h) for h in df["hardware"].astype(str).unique()}
    chips = {h: getattr(o, "chip", o) for h, o in loaded.items()}
    hw = df["hardware"].astype(str)
    return pd.DataFrame({
        "source": "published attention", "chip": [record_name(chips[h]) for h in hw],
        "family": [chip_family(chips[h]) for h in hw], "state": [_catalog_state(chips[h]) for h in hw],
        "pricing": "catalog", "kind": "attention", "bound": df["bound"].astype(str).to_numpy(),
        "group": ("attention|" + df["source"].astype(str) + "|" + df["phase"].astype(str)).to_numpy(),
        "log_f": np.log(m / p), "pred_s": p, "size": [size_label(x, SIZE_EDGES) for x in np.log10(p)]})


def _level_columns(level: str) -> list[str]:
    return [c for c in level.split("/") if c != "*"]


def _with_size(rows: pd.DataFrame) -> pd.DataFrame:
    return rows if "size" in rows.columns else rows.assign(size="*")


def fit_cells(rows: pd.DataFrame, min_rows: int = MIN_ROWS) -> dict:
    """{key: {"n", "q"}}: quantiles of log_f per cell of every fallback level with at least ``min_rows``
    rows (the last level, a whole state, is kept whatever its size)."""
    cells: dict = {}
    rows = _with_size(rows)
    for i, level in enumerate(FALLBACK):
        cols = _level_columns(level)
        last = i == len(FALLBACK) - 1
        for vals, g in rows.groupby(cols, sort=True):
            vals = vals if isinstance(vals, tuple) else (vals,)
            if len(g) < (1 if last else min_rows) or ("size" in cols and dict(zip(cols, vals))["size"] == "*"):
                continue
            q = np.quantile(g["log_f"].to_numpy(float), PROBS)
            cells[cell_key(level, dict(zip(cols, vals)))] = {"n": int(len(g)), "q": [round(float(x), 5) for x in q]}
    return cells


def model_from(cells: dict, chips=(), widening: float = 1.0, engine: dict | None = None,
               by_kind: dict | None = None, shifts: dict | None = None) -> ErrorModel:
    return ErrorModel({"probs": list(PROBS), "cells": cells, "fallback": list(FALLBACK), "kind_map": KIND_MAP,
                       "state_fallback": STATE_FALLBACK, "kind_proxy": KIND_PROXY,
                       "chips_in_record": sorted(chips),
                       "unseen_chip_widening": {"factor": widening, "by_kind": dict(by_kind or {})},
                       "unseen_source_shifts": {"by_kind": dict(shifts or {})},
                       "engine": engine or {},
                       "size_buckets": {"log10_time_edges": list(SIZE_EDGES),
                                        "what": "log10 of an op's predicted time (seconds, one execution) in the "
                                                "pricing of its state; a cell level naming 'size' holds one bucket"}})


def score_rows(model: ErrorModel, rows: pd.DataFrame, levels=LEVELS, unseen: bool = False) -> pd.DataFrame:
    """Per row and level: covered (bool) and width ((hi - lo) / point) of its cell's interval."""
    out = []
    rows = _with_size(rows)
    for (state, fam, kind, bound, size), g in rows.groupby(["state", "family", "kind", "bound", "size"], sort=False):
        cell = model.cell(state, fam, kind, bound, chip_name="<unseen>" if unseen else None, size=size)
        f = np.exp(g["log_f"].to_numpy(float))
        for lv in levels:
            lo, hi = factor_interval(cell, lv)
            out.append(pd.DataFrame({"state": state, "kind": kind.partition(":")[0], "cell_kind": kind, "size": size,
                                     "level": lv,
                                     "covered": (f >= lo) & (f <= hi), "width": hi - lo,
                                     "width_of_measured": (hi - lo) / f, "cell": cell.level,
                                     "idx": g.index}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def cross_validate(rows: pd.DataFrame, folds: int = FOLDS, min_rows: int = MIN_ROWS, widening: float = 1.0,
                   by_kind: dict | None = None, sources: bool = True) -> pd.DataFrame:
    """Coverage of kernel rows held out from the fit, split by configuration (``group``); the models carry the
    unseen-chip ``widening`` (``by_kind``), which also widens a cell read from the nearest size bucket, and
    (``sources``) the unseen-source shifts of SOURCE_KINDS, measured on each fold's training rows alone."""
    fold = rows["group"].map(lambda k: _fold(k, folds)).to_numpy()
    parts = []
    for f in range(folds):
        train, test = rows[fold != f], rows[fold == f]
        if test.empty or train.empty:
            continue
        cells = fit_cells(train, min_rows)
        shifts = unseen_source_shifts(train, min_rows=min_rows, cells=cells)[0] if sources else None
        parts.append(score_rows(model_from(cells, widening=widening, by_kind=by_kind, shifts=shifts), test))
    return pd.concat(parts, ignore_index=True)


def _kind_rows(rows: pd.DataFrame, kind: str) -> pd.Series:
    return rows["kind"].astype(str).str.partition(":")[0] == kind


def unseen_source_shifts(rows: pd.DataFrame, min_rows: int = MIN_ROWS, kinds=SOURCE_KINDS,
                         cells: dict | None = None) -> tuple[dict, dict]:
    """Per kind of ``kinds`` and hardware family with rows from at least two configurations (sources): each
    configuration's shift, the median over its rows of ln(measured / predicted) less the median of the cell the
    row reads in a fit without that configuration (every other row, of every kind, stays in it): how far a source
    the fit has not seen sits from what the cells expect. A cell of the kind on that family then stands for a new
    source as the sum of a draw from it and one of these shifts (``ErrorModel.cell``). ({kind: {family: sorted
    shifts}}, details). ``cells``: the fit of all ``rows`` (only the cells a configuration's rows fall in are
    refitted without it)."""
    by_kind, det = {}, {}
    cells = fit_cells(rows, min_rows) if cells is None else cells
    for kind in kinds:
        own = _with_size(rows[_kind_rows(rows, kind)])
        for fam, fam_rows in own.groupby("family", sort=True):
            groups = sorted(fam_rows["group"].unique())
            if len(groups) < 2:
                continue
            shifts = []
            for g in groups:
                m = model_from(_fit_without(rows, own, g, cells, min_rows))
                t = fam_rows[fam_rows["group"] == g]
                med = np.array([float(np.interp(0.5, m.probs, m.cell(state, f, k, bound, size=size).q))
                                for state, f, k, bound, size in t[["state", "family", "kind", "bound", "size"]]
                                .itertuples(index=False, name=None)])
                shifts.append(float(np.median(t["log_f"].to_numpy(float) - med)))
            by_kind.setdefault(kind, {})[str(fam)] = sorted(round(v, 5) for v in shifts)
            det.setdefault(kind, {})[str(fam)] = {"configurations": len(groups), "rows": int(len(fam_rows))}
    how = ("per op kind and hardware family, leave one configuration (source and phase) out: fit on every other "
           "row; its shift is the median over its rows of ln(measured / predicted) less the median of the cell "
           "each row reads; a cell of the kind stands for a source not in the record as a draw from the cell plus "
           "one of the family's shifts, each equally likely")
    return by_kind, {"how": how, "by_kind": det}


def _fit_without(rows: pd.DataFrame, own: pd.DataFrame, group: str, cells: dict, min_rows: int) -> dict:
    """fit_cells(rows without ``group``'s rows): ``cells`` (the fit of all rows) with the cells that hold any of the
    group's rows refitted without them (a cell left with too few rows is dropped, as fit_cells drops it)."""
    out_rows = own[own["group"] == group]
    rest = rows.drop(index=out_rows.index)
    touched = fit_cells(out_rows, min_rows=1)
    out = {k: v for k, v in cells.items() if k not in touched}
    refit = fit_cells(_holding(rest, out_rows), min_rows)
    out.update({k: v for k, v in refit.items() if k in touched})
    return out


def _holding(rest: pd.DataFrame, out_rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``rest`` that share a state with ``out_rows`` (every cell holding one of those rows is of its
    state: each fallback level names the state)."""
    return rest[rest["state"].isin(set(out_rows["state"]))]


def unseen_chip_widening(rows: pd.DataFrame, level: float = 0.8, min_rows: int = MIN_ROWS) -> tuple[float, dict]:
    """Smallest factor (on the grid) that widens the quantiles of a model fitted on one accelerator so that
    its ``level`` intervals cover at least ``level`` of another accelerator's rows (leave one chip out,
    both ways, all states pooled): over all kinds (the factor) and per op kind with at least ``min_rows``
    rows (``by_kind``: a kind whose errors move less between chips is widened less); (factor, details)."""
    acc = rows[rows["family"] != "cpu"]
    chips = sorted(acc["chip"].unique())
    if len(chips) < 2:
        return 1.0, {"how": "fewer than two accelerators in the record: no widening measured", "coverage": {},
                     "by_kind": {}}
    fits = {c: fit_cells(acc[acc["chip"] != c], min_rows) for c in chips}
    cov: dict = {}
    by_kind: dict = {}
    for w in WIDENING_GRID:
        s = pd.concat([score_rows(model_from(fits[c], widening=w), acc[acc["chip"] == c], levels=(level,),
                                  unseen=True) for c in chips], ignore_index=True)
        cov[w] = float(s["covered"].mean())
        for k, g in s.groupby("kind"):
            if len(g) >= min_rows and k not in by_kind and g["covered"].mean() >= level:
                by_kind[k] = w
        if cov[w] >= level and all(k in by_kind for k, g in s.groupby("kind") if len(g) >= min_rows):
            break
    w = next((k for k, v in cov.items() if v >= level), WIDENING_GRID[-1])
    return w, {"how": f"leave one chip out over {', '.join(chips)}: fit on one, widen, score the other; the "
                      f"smallest factor whose {level:.0%} intervals cover {level:.0%} of the other chip's rows, "
                      f"over all kinds and per kind",
               "coverage": {str(k): round(v, 4) for k, v in cov.items()}, "by_kind": by_kind}


# ---------------------------------------------------------------------------------------------
# end to end


def e2e_predictions(chips_cal: dict, systems_cal: dict) -> list[dict]:
    """Every published end-to-end row predicted in each state it can be: the prediction, the hardware used,
    the metric and the measured value."""
    from dataclasses import replace

    from hwmodels.errors import InfeasibleError, SpecError
    from hwmodels.loader import load_hardware
    from sim.cost import CostOptions
    from sim.predict import predict
    from sim.validation.published import _with_chip, load_e2e

    out = []
    for r in load_e2e().to_dict("records"):
        base = str(r["hardware"])
        cal_hw = _with_chip(base, chips_cal, systems_cal)
        try:
            state = _catalog_state(load_hardware(base))
        except SpecError:  # hardware the catalog lacks: the row cannot be predicted in any state
            continue
        cases = [("none", base, replace(CostOptions(), use_efficiency=False)), (state, base, CostOptions())]
        if cal_hw is not base and not isinstance(cal_hw, str):
            cases.append(("measured", cal_hw, CostOptions()))
        for state, hw, opts in cases:
            try:
                p = predict(str(r["model"]), hw, int(r["batch"]), int(r["input_len"]), int(r["output_len"]),
                            tp=int(r["tp"]), quant=str(r.get("quant") or "bf16"), options=opts)
            except (SpecError, InfeasibleError, ValueError):
                continue
            obj = load_hardware(hw) if isinstance(hw, str) else hw
            chip = getattr(obj, "chip", obj)
            out.append({"state": state, "pred": p, "chip": chip, "metric": r["metric"], "measured": float(r["measured"]),
                        "config": f"{r['model']} on {base} tp{r['tp']}", "case": f"{r['batch']} x {r['input_len']}/"
                        f"{r['output_len']}", "overlap": opts.overlap_comm})
    return out


_RATES = ("output_throughput_tok_s", "per_chip_output_throughput_tok_s")


def _draws(it: dict, model: ErrorModel, engine: bool = True) -> np.ndarray:
    """The Monte Carlo draws of an end-to-end row's metric under ``model``: ``metric_samples``, with the kernel
    draws (which depend on the cells and the step shrink only) kept on the row and the engine factor applied
    as metric_samples applies it (every time times it, a rate divided by it; same uniforms), so the many
    refits of the end-to-end term (per shrink, per left-out configuration) price each row once per shrink."""
    cache = it.setdefault("_draws", {})
    key = (id(model.data["cells"]), model.shrink)
    if key not in cache:
        fam, name = chip_family(it["chip"]), record_name(it["chip"])
        k = metric_samples(it["pred"], it["state"], fam, name, model=model, overlap_comm=it["overlap"],
                           engine=False)[it["metric"]]
        unit = ErrorModel(dict(model.data, engine={"*": {"mu": 0.0, "sd_pred": 1.0}}))  # keeps the state fallback
        z = np.log(metric_samples(it["pred"], it["state"], fam, name, model=unit, overlap_comm=it["overlap"])[
            it["metric"]] / k)
        cache[key] = (k, -z if it["metric"] in _RATES else z)
    k, z = cache[key]
    if not engine:
        return k
    mu, sd = model.engine_term(it["state"])
    return k * np.exp((mu + sd * z) * (-1.0 if it["metric"] in _RATES else 1.0))


def _engine_fit(items: list[dict], kernel: ErrorModel) -> dict:
    """(mu, sd_pred) of ln(measured / kernel-median) in time terms, the kernel spread subtracted."""
    e, v = [], []
    for it in items:
        s = _draws(it, kernel, engine=False)
        med = float(np.median(s))
        r = math.log(it["measured"] / med)
        e.append(-r if it["metric"] in ("output_throughput_tok_s", "per_chip_output_throughput_tok_s") else r)
        v.append(float(np.var(np.log(s))))
    n = len(e)
    if n == 0:
        return {"n": 0, "mu": 0.0, "sd": 0.0, "sd_pred": 0.0}
    mu = float(np.mean(e))
    var = float(np.var(e, ddof=1)) if n > 1 else 0.0
    sd = math.sqrt(max(0.0, var - float(np.mean(v))))
    return {"n": n, "mu": round(mu, 5), "sd": round(sd, 5), "sd_pred": round(math.sqrt(sd * sd + var / n), 5)}


def fit_engine(items: list[dict], kernel: ErrorModel) -> dict:
    """Engine term per state (a state with fewer than 3 rows uses all states' rows)."""
    out = {"*": _engine_fit(items, kernel)}
    for s in sorted({it["state"] for it in items}):
        sub = [it for it in items if it["state"] == s]
        out[s] = _engine_fit(sub, kernel) if len(sub) >= 3 else dict(out["*"])
    return out


def _covered(model: ErrorModel, it: dict, level: float) -> bool:
    s = _draws(it, model)
    lo, hi = central_interval(s, float(getattr(it["pred"], it["metric"])), level)
    return lo <= it["measured"] <= hi


def fit_e2e(items: list[dict], kernel_data: dict, level: float = 0.8) -> tuple[float, dict, dict]:
    """(step shrink, engine term, coverage per shrink): the share of each cell's spread a whole step keeps
    (per-op residuals carry shape-specific noise that partly averages out over a step's many ops; the
    cells' quantiles are pulled toward their medians by this factor in step Monte Carlo) is the largest on
    ``SHRINK_GRID`` whose in-sample ``level`` coverage of ``items`` is closest to ``level``; the engine
    term is refitted for each."""
    best = None
    tried = {}
    for lam in SHRINK_GRID:
        d = dict(kernel_data, step_shrink={"factor": lam})
        eng = fit_engine(items, ErrorModel(d))
        m = ErrorModel(dict(d, engine=eng))
        cov = float(np.mean([_covered(m, it, level) for it in items])) if items else math.nan
        tried[lam] = round(cov, 4)
        if best is None or abs(cov - level) < abs(best[2] - level) - 1e-9:
            best = (lam, eng, cov)
    return best[0], best[1], tried


def e2e_coverage(items: list[dict], kernel_data: dict, levels=LEVELS) -> pd.DataFrame:
    """Leave one configuration out: the step shrink and the engine term refitted without it, its rows scored."""
    rows = []
    for cfg in sorted({it["config"] for it in items}):
        train = [it for it in items if it["config"] != cfg]
        lam, eng, _ = fit_e2e(train, kernel_data)
        model = ErrorModel(dict(kernel_data, step_shrink={"factor": lam}, engine=eng))
        for it in items:
            if it["config"] != cfg:
                continue
            s = _draws(it, model)
            point = float(getattr(it["pred"], it["metric"]))
            for lv in levels:
                lo, hi = central_interval(s, point, lv)
                rows.append({"state": it["state"], "config": cfg, "case": it["case"], "metric": it["metric"],
                             "level": lv, "covered": lo <= it["measured"] <= hi, "width": (hi - lo) / point,
                             "width_of_measured": (hi - lo) / it["measured"],
                             "lo": lo, "hi": hi, "point": point, "measured": it["measured"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# the whole fit


def _commit() -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                           cwd=Path(__file__).resolve().parent)
        return r.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_error_model(cals: dict, chips_cal: dict, systems_cal: dict, log=print) -> tuple[dict, dict]:
    """(the error model as JSON data, evaluation frames: kernel_cv, e2e_cv, rows, items); the serving engine
    term is added by :func:`sim.validation.serving_term.add_serving_term`."""
    kernel = kernel_residuals(cals)
    log(f"error model: {len(kernel):,} kernel residuals ({kernel['group'].nunique()} configurations)")
    # the unseen-chip widening and the chips in the record come from the calibrations' rows (every op kind on
    # the same chips); the published attention rows add attention's own cells on the chips they were timed on
    widening, wdet = unseen_chip_widening(kernel)
    log(f"error model: unseen-chip widening {widening:.2f} (by kind: {wdet['by_kind']})")
    att = attention_residuals()
    log(f"error model: {len(att)} published attention rows ({att['group'].nunique()} configurations)")
    rows = pd.concat([kernel, att], ignore_index=True)
    kernel_cv = cross_validate(rows, widening=widening, by_kind=wdet["by_kind"])
    cells = fit_cells(rows)
    shifts, sdet = unseen_source_shifts(rows, cells=cells)
    log(f"error model: unseen-source shifts {shifts}")
    data = model_from(cells, set(kernel["chip"]), widening, by_kind=wdet["by_kind"], shifts=shifts).data
    data["unseen_chip_widening"] = {"factor": widening, **wdet}
    data["unseen_source_shifts"] = {"by_kind": shifts, "how": sdet["how"], "details": sdet["by_kind"]}
    items = e2e_predictions(chips_cal, systems_cal)
    e2e_cv = e2e_coverage(items, data)
    lam, data["engine"], tried = fit_e2e(items, data)
    data["step_shrink"] = {"factor": lam, "how": "share of each cell's spread about its median kept in a whole "
                           "step's Monte Carlo: the largest factor whose in-sample 80% coverage of the published "
                           "end-to-end rows is closest to 80%", "coverage": {str(k): v for k, v in tried.items()}}
    log(f"error model: step shrink {lam:.2f}")
    counts = rows.groupby(["source", "state"]).size()
    data = {
        "format": 2,
        "what": "llmsim prediction-interval error model: quantiles of ln(measured / predicted) per cell "
                "(calibration state | hardware family | op kind | bound); docs/uncertainty.md",
        "provenance": {
            "llmsim_version": llmsim_version(), "commit": _commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
            "generator": "make validate (llmsim validate-report --error-model ...), sim/validation/errormodel.py",
            "kernel_rows": {f"{s} / {st}": int(n) for (s, st), n in counts.items()},
            "kernel_rows_are": "the held-out fold of each calibration (Calibration.test), priced with datasheet "
                               "peaks (class-default), the catalog file (published) and the calibrated file "
                               "(measured); and the published attention kernel rows (kernels.csv, op == attention, "
                               "not the fitted ones) priced with the catalog file and the default stack "
                               "(source 'published attention')",
            "e2e_rows": len(items), "e2e_source": "sim/validation/data/published/e2e.csv",
            "min_rows": MIN_ROWS,
        },
        "quantity": "ln(measured / predicted)",
        **{k: v for k, v in data.items() if k not in ("provenance",)},
    }
    return data, {"kernel_cv": kernel_cv, "e2e_cv": e2e_cv, "rows": rows, "items": items}


def write_error_model(data: dict, path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cells = {k: {**v, "q": " ".join(repr(float(x)) for x in v["q"])} for k, v in data["cells"].items()}
    p.write_text(json.dumps({**data, "format": 2, "cells": cells}, indent=1) + "\n", encoding="utf-8")
    from sim.uncertainty import _load

    _load.cache_clear()
    return p


def _summary(g: pd.DataFrame) -> dict:
    d = {"n": len(g), "coverage": float(g["covered"].mean()), "median_width": float(g["width"].median())}
    if "width_of_measured" in g.columns:
        d["median_width_of_measured"] = float(g["width_of_measured"].median())
    return d


def coverage_table(cv: pd.DataFrame, level: float = 0.8, by=("state", "kind")) -> pd.DataFrame:
    """Rows, coverage and median width (of the point, and of the measured value where known) at ``level`` per
    group (and per state over all kinds)."""
    c = cv[np.isclose(cv["level"], level)]
    out = []
    for key, g in c.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        out.append({**dict(zip(by, key)), **_summary(g)})
    if "kind" in by:
        for st, g in c.groupby("state", sort=True):
            out.append({"state": st, "kind": "all", **({"size": "all"} if "size" in by else {}), **_summary(g)})
    return pd.DataFrame(out)


def reliability(cv: pd.DataFrame, by="state") -> pd.DataFrame:
    """Empirical coverage per nominal level (and group)."""
    return cv.groupby([by, "level"], sort=True)["covered"].mean().reset_index()


__all__ = ["FALLBACK", "KIND_MAP", "MIN_ROWS", "PROBS", "SIZE_EDGES", "build_error_model", "coverage_table", "cross_validate",
           "attention_residuals", "e2e_coverage", "e2e_predictions", "fit_cells", "fit_engine", "kernel_residuals", "reliability",
           "score_rows", "unseen_chip_widening", "write_error_model"]
