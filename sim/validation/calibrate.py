"""Calibrate a hardware description's achievable-efficiency fields to measured kernel times.

The hardware file states peaks (datasheet) and achievable fractions of them (``efficiency``
fields, each with a source). Calibration fits those fractions, and nothing else, to a
measurement file, so the result is still a plain hardware file of the same schema:

- ``compute.<matrix unit>.efficiency``: one fraction of the matrix (GEMM) peak, or a table by the
  op's FLOPs (one knot per decade or two of the GEMM FLOPs measured) where that predicts an inner
  validation fold of the training shapes better (``matrix_table="auto"``);
- ``memory.<main memory>.efficiency``: a table of fractions by transfer size (bytes), one knot
  per one or two decades of the sizes measured, interpolated in log(size) by the cost model;
- ``memory.<main memory>.efficiency_by_kind``: one fraction per streaming op kind (norm,
  elementwise, ...) multiplying the table for ops of that kind, fitted after the fields above on
  that kind's own exact training rows (``by_kind``);
- ``launch_overhead``: the fixed time every kernel pays (eager launches), or, for rows timed as GPU
  kernel durations (options ``cuda_graphs``: Vidur's profiles), ``kernel_fixed_time``, the GPU-side part
  (knob ``fixed``; a ``launch`` asked for on such rows fits it);
- on a system, the innermost interconnect tier's ``efficiency`` and ``latency`` (collectives).

The fit minimises the mean (or median) absolute log error ln(predicted / measured) over the
training shapes, each op kind weighted equally, by coordinate descent: a coarse grid then a
golden-section search per parameter in log space, a few sweeps. Every trial prices the rows with
the shared cost model (``sim.ops.predict_ops``) on a modified, in-memory Chip/System; the launch
overhead adds to every kernel's time, so its search needs no re-pricing.

Accuracy is reported on held-out shapes: rows are split BY SHAPE (``shape_id``, else the shape
columns) with a deterministic hash into ``folds`` folds, one of which is held out, so a shape
measured in several models or data sets never sits on both sides. The training error is reported
next to it, and only as the fit's residual, never as accuracy.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from hwmodels.chip import STREAMING_KINDS, Chip, System, interpolate_efficiency
from hwmodels.errors import SpecError
from hwmodels.loader import load_hardware
from sim.cost import CostOptions
from sim.validation.vidur import scoring_options
from sim.ops import COLLECTIVE_OPS, predict_ops, row_to_op
from sim.validation.compare import (
    SHAPE_COLUMNS,
    Comparison,
    _plain,
    _size,
    compare,
    count_reasons,
    error_stats,
    summarize,
    unique_shapes,
)
from sim.validation.measure import load_measurements, shape_id

BOUNDS = {"matrix": (0.02, 1.0), "memory": (0.02, 1.0), "launch": (0.0, 100e-6), "fixed": (0.0, 100e-6),
          "tier": (0.02, 1.0),
          "tier_latency": (0.05e-6, 500e-6), "by_kind": (0.02, 1.0)}
DEFAULT_OPTIONS = CostOptions()
KNOBS = ("matrix", "memory", "launch", "fixed", "tier", "tier_latency", "by_kind")


# ---------------------------------------------------------------------------------------------
# the split


def fold_of(shape_key: str, folds: int = 5) -> int:
    """Deterministic fold (0 .. folds-1) of a shape key (md5, so stable across runs and machines)."""
    return int(hashlib.md5(str(shape_key).encode("utf-8")).hexdigest(), 16) % folds


def shape_keys(df: pd.DataFrame) -> pd.Series:
    """The shape key of every row: its ``shape_id`` where given, else one built from the shape columns."""
    given = df["shape_id"].astype(str).str.strip() if "shape_id" in df.columns else pd.Series("", index=df.index)
    given = given.where(~given.isin(["", "nan", "None", "<NA>"]), "")
    missing = given == ""
    if not missing.any():
        return given
    out = given.copy()
    for ix, row in zip(df.index[missing], _plain(df[missing]).to_dict("records")):
        try:
            out[ix] = shape_id(row)
        except Exception:  # noqa: BLE001 - a row without a usable shape still needs a key
            out[ix] = "|".join(f"{c}={row.get(c)}" for c in SHAPE_COLUMNS if c in row)
    return out


def split_by_shape(df: pd.DataFrame, folds: int = 5, holdout: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train mask, test mask): the rows whose shape hashes to fold ``holdout`` are held out."""
    if folds < 2:
        raise SpecError(f"folds must be at least 2 (one held out); got {folds}")
    if not 0 <= holdout < folds:
        raise SpecError(f"holdout fold must be in 0..{folds - 1}; got {holdout}")
    f = np.array([fold_of(k, folds) for k in shape_keys(df)], dtype=int)
    test = f == holdout
    return ~test, test


# ---------------------------------------------------------------------------------------------
# knobs: the fields calibration sets, on an in-memory Chip/System


@dataclass(frozen=True)
class Knobs:
    """Values of the fitted fields (None: not fitted, the file's value stays)."""

    matrix: float | tuple | None = None  # fraction of the matrix unit's peak, or ((FLOPs, fraction), ...)
    memory: tuple | None = None  # ((transfer bytes, fraction), ...) for the main memory level
    launch: float | None = None  # seconds per kernel
    tier: float | None = None  # fraction of the innermost tier's bandwidth
    tier_latency: float | None = None  # seconds per step on the innermost tier
    by_kind: tuple | None = None  # ((streaming op kind, fraction), ...) for the main memory level
    fixed: float | None = None  # seconds per kernel on the GPU (kernel_fixed_time)

    def as_dict(self) -> dict:
        d = {}
        if self.matrix is not None:
            d["matrix_efficiency"] = [[s, f] for s, f in self.matrix] if isinstance(self.matrix, tuple) \
                else self.matrix
        if self.memory is not None:
            d["memory_efficiency"] = [[s, f] for s, f in self.memory]
        if self.launch is not None:
            d["launch_overhead_s"] = self.launch
        if self.fixed is not None:
            d["kernel_fixed_time_s"] = self.fixed
        if self.tier is not None:
            d["tier_efficiency"] = self.tier
        if self.tier_latency is not None:
            d["tier_latency_s"] = self.tier_latency
        if self.by_kind is not None:
            d["memory_efficiency_by_kind"] = dict(self.by_kind)
        return d


def _chip_of(hw) -> Chip:
    return hw.chip if isinstance(hw, System) else hw


def current_knobs(hw, knot_sizes=None) -> Knobs:
    """The file's values of the calibrated fields (efficiency 1.0 where the file gives none)."""
    chip = _chip_of(hw)
    mu = chip.matrix_unit()
    mem = chip.main_memory
    memory = None
    if knot_sizes is not None:
        memory = tuple((float(s), float(interpolate_efficiency(mem.efficiency, s))) for s in knot_sizes)
    tier = tl = None
    if isinstance(hw, System) and hw.tiers:
        tier, tl = float(hw.tiers[0].efficiency or 1.0), float(hw.tiers[0].latency_s)
    by_kind = tuple(sorted((k, float(v)) for k, v in (mem.efficiency_by_kind or {}).items()))
    return Knobs(matrix=float(interpolate_efficiency(mu.efficiency, 1.0)), memory=memory,
                 launch=float(chip.launch_overhead_s), tier=tier, tier_latency=tl, by_kind=by_kind or None,
                 fixed=float(chip.kernel_fixed_time_s))


def apply_knobs(hw, k: Knobs, source: str = "calibrated"):
    """A copy of ``hw`` (Chip or System) with the knobs' fields set."""
    chip = _chip_of(hw)
    if k.matrix is not None:
        mu = chip.matrix_unit()
        eff = tuple((float(s), float(f)) for s, f in k.matrix) if isinstance(k.matrix, tuple) else float(k.matrix)
        compute = tuple(replace(u, efficiency=eff, efficiency_source=source) if u is mu else u
                        for u in chip.compute)
        chip = replace(chip, compute=compute)
    if k.memory is not None:
        main = chip.main_memory
        table = tuple((float(s), float(f)) for s, f in k.memory)
        memory = tuple(replace(m, efficiency=table, efficiency_source=source) if m is main else m for m in chip.memory)
        chip = replace(chip, memory=memory)
    if k.by_kind is not None:
        main = chip.main_memory
        byk = {kind: float(f) for kind, f in k.by_kind}
        memory = tuple(replace(m, efficiency_by_kind=byk, efficiency_source=source) if m is main else m
                       for m in chip.memory)
        chip = replace(chip, memory=memory)
    if k.launch is not None:
        chip = replace(chip, launch_overhead_s=float(k.launch))
    if k.fixed is not None:
        chip = replace(chip, kernel_fixed_time_s=float(k.fixed), kernel_fixed_time_source=source)
    if not isinstance(hw, System):
        return chip
    tiers = hw.tiers
    if tiers and (k.tier is not None or k.tier_latency is not None):
        t0 = tiers[0]
        t0 = replace(t0, efficiency=float(k.tier) if k.tier is not None else t0.efficiency,
                     latency_s=float(k.tier_latency) if k.tier_latency is not None else t0.latency_s,
                     efficiency_source=source if k.tier is not None else t0.efficiency_source)
        tiers = (t0,) + tuple(tiers[1:])
    return replace(hw, chip=chip, tiers=tiers)


def knot_sizes_for(sizes, max_knots: int = 5) -> tuple:
    """Knots of a memory-efficiency table: decades spanning the measured transfer sizes (bytes)."""
    s = np.asarray([x for x in sizes if np.isfinite(x) and x > 0], dtype=float)
    if len(s) == 0:
        return ()
    lo, hi = math.floor(math.log10(s.min())), math.ceil(math.log10(s.max()))
    decades = list(range(lo, max(hi, lo + 1) + 1))
    step = max(1, math.ceil((len(decades) - 1) / max(1, max_knots - 1)))
    picked = decades[::step]
    if picked[-1] != decades[-1]:
        picked.append(decades[-1])
    return tuple(10.0 ** d for d in picked)


# ---------------------------------------------------------------------------------------------
# pricing unique shapes


def predict_times(df: pd.DataFrame, hw, options: CostOptions = DEFAULT_OPTIONS) -> np.ndarray:
    """Predicted seconds for every row of ``df`` on ``hw`` (a Chip/System object), each shape priced once."""
    if len(df) == 0:
        return np.array([], dtype=float)
    uniq, codes = unique_shapes(df)
    uniq["hardware"] = "__calibrating__"
    out = predict_ops(uniq, options=options, hardware={"__calibrating__": hw})
    t = out["time_s"].to_numpy(dtype=float)
    return t[codes]


# ---------------------------------------------------------------------------------------------
# the fit


def _loss(logr: np.ndarray, groups: list[np.ndarray], how: str) -> float:
    vals = []
    for g in groups:
        x = np.abs(logr[g])
        x = x[np.isfinite(x)]
        if len(x):
            vals.append(np.median(x) if how == "median" else np.mean(x))
    return float(np.mean(vals)) if vals else math.inf


def _golden(f, lo: float, hi: float, iters: int) -> tuple[float, float]:
    """Minimise f on [lo, hi] (golden section); returns (x, f(x))."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (c, fc) if fc <= fd else (d, fd)


def _search_log(f, lo: float, hi: float, x0: float, grid: int = 7, iters: int = 10) -> tuple[float, float]:
    """Minimise f(x) for x in [lo, hi] (lo > 0), searching in log(x): a grid, then golden section."""
    la, lb = math.log(lo), math.log(hi)
    xs = [math.exp(la + (lb - la) * i / (grid - 1)) for i in range(grid)]
    vals = [f(x) for x in xs]
    f0 = f(x0)
    if max(vals + [f0]) - min(vals + [f0]) < 1e-12:  # flat: these rows do not constrain it
        return x0, f0
    i = int(np.argmin(vals))
    a, b = xs[max(0, i - 1)], xs[min(grid - 1, i + 1)]
    x, fx = _golden(lambda u: f(math.exp(u)), math.log(a), math.log(b), iters)
    x = math.exp(x)
    best = min([(fx, x), (vals[i], xs[i]), (f0, x0)])
    return best[1], best[0]


@dataclass
class _Problem:
    rows: pd.DataFrame  # unique training shapes used for the fit (plain values)
    measured: np.ndarray  # seconds (median over the rows of that shape)
    groups: list  # index arrays, one per op kind
    sizes: np.ndarray  # bytes moved (a proxy of the main-memory transfer)
    flops: np.ndarray  # matrix FLOPs per execution (where a compute-efficiency table is read)
    kinds: np.ndarray  # the cost model's Op.kind of every row
    is_matrix: np.ndarray
    is_collective: np.ndarray
    how: str
    options: CostOptions
    evals: int = 0

    def predict(self, hw, idx=None) -> np.ndarray:
        self.evals += 1
        rows = self.rows if idx is None else self.rows.iloc[idx]
        if len(rows) == 0:
            return np.array([], dtype=float)
        out = predict_ops(rows, options=self.options, hardware={"__calibrating__": hw})
        return out["time_s"].to_numpy(dtype=float)

    smooth: float = 1e-3

    def subset(self, mask) -> _Problem:
        idx = np.flatnonzero(mask)
        ops = self.rows["op"].astype(str).to_numpy()[idx]
        return replace(self, rows=self.rows.iloc[idx].reset_index(drop=True), measured=self.measured[idx],
                       groups=[np.flatnonzero(ops == op) for op in sorted(set(ops))], sizes=self.sizes[idx],
                       flops=self.flops[idx], kinds=self.kinds[idx],
                       is_matrix=self.is_matrix[idx], is_collective=self.is_collective[idx])

    def loss(self, t, k: Knobs | None = None) -> float:
        v = _loss(np.log(t / self.measured), self.groups, self.how)
        # a weak smoothness prior between neighbouring knots keeps an unconstrained knot near its neighbour
        for table in ((k.memory, k.matrix) if k is not None else ()):
            if isinstance(table, tuple) and len(table) > 1:
                f = np.log([x for _, x in table])
                v += self.smooth * float(np.sum(np.diff(f) ** 2))
        return v


def _fit_problem(train: pd.DataFrame, max_shapes: int, how: str, options: CostOptions) -> _Problem:
    """Unique training shapes (at most ``max_shapes`` per op kind, spread over sizes)."""
    uniq, codes = unique_shapes(train)
    meas = pd.Series(train["measured_time_s"].to_numpy(dtype=float)).groupby(codes).median().to_numpy()
    recs = uniq.to_dict("records")
    size = np.array([_size(r)[0] for r in recs], dtype=float)
    nbytes, flops, kinds = [], [], []

    for r in recs:
        try:
            op = row_to_op(r)
            nbytes.append(op.collective.bytes if op.collective is not None else sum(t.bytes for t in op.tensors))
            flops.append(op.flops_matrix)
            kinds.append(op.kind)
        except Exception:  # noqa: BLE001
            nbytes.append(math.nan)
            flops.append(math.nan)
            kinds.append("")
    nbytes = np.array(nbytes, dtype=float)
    flops = np.array(flops, dtype=float)
    kinds = np.array(kinds, dtype=object)
    keep = []
    ops = uniq["op"].astype(str).to_numpy()
    for op in sorted(set(ops)):
        idx = np.flatnonzero(ops == op)
        if len(idx) > max_shapes:
            order = idx[np.argsort(size[idx], kind="stable")]
            idx = order[np.unique(np.linspace(0, len(order) - 1, max_shapes).round().astype(int))]
        keep.extend(idx.tolist())
    keep = np.array(sorted(keep), dtype=int)
    rows = uniq.iloc[keep].reset_index(drop=True)
    rows["hardware"] = "__calibrating__"
    ops = ops[keep]
    groups = [np.flatnonzero(ops == op) for op in sorted(set(ops))]

    return _Problem(rows=rows, measured=meas[keep], groups=groups, sizes=nbytes[keep], flops=flops[keep],
                    kinds=kinds[keep],
                    is_matrix=np.isin(ops, ["gemm", "attention"]), is_collective=np.isin(ops, COLLECTIVE_OPS),
                    how=how, options=options)


def fit_knobs(prob: _Problem, base, fit: tuple, knot_sizes: tuple, sweeps: int = 3, tol: float = 1e-3,
              log=None, matrix_knots: tuple = ()) -> tuple[Knobs, list]:
    """Coordinate descent over the fitted fields, starting from the file's values.

    ``matrix_knots`` (FLOPs): fit the matrix efficiency as a table with these knots (else one fraction)."""
    k0 = current_knobs(base, knot_sizes if "memory" in fit and knot_sizes else None)
    m0 = k0.matrix
    if matrix_knots:
        m0 = tuple((float(s), float(k0.matrix)) for s in matrix_knots)
    k = Knobs(matrix=m0 if "matrix" in fit else None,
              memory=k0.memory if "memory" in fit and knot_sizes else None,
              launch=k0.launch if "launch" in fit else None,
              fixed=k0.fixed if "fixed" in fit else None,
              tier=k0.tier if "tier" in fit else None,
              tier_latency=k0.tier_latency if "tier_latency" in fit else None)
    chip = _chip_of(base)
    matrix_is_vector = chip.matrix_unit() is chip.vector_unit()
    t = prob.predict(apply_knobs(base, k))
    history = [prob.loss(t, k)]
    n = len(prob.rows)

    for _sweep in range(sweeps):
        start = history[-1]
        for name in fit:
            now = getattr(k, name, None) if name in ("launch", "fixed") else None
            if now is not None and (name == "fixed" or not prob.options.cuda_graphs):
                base_t = t - now  # the per-kernel fixed time adds to every kernel

                def f(x, base_t=base_t, k=k):
                    return prob.loss(base_t + x, k)

                lo, hi = BOUNDS[name]
                x, fx = _search_log(f, 1e-8, hi, max(now, 1e-8), grid=13, iters=20)
                if f(0.0) <= fx:
                    x, fx = 0.0, f(0.0)
                k = replace(k, **{name: x})
                t = base_t + x
                history.append(fx)
                continue
            if name == "matrix" and isinstance(k.matrix, tuple):
                targets = []
                sizes = [s for s, _ in k.matrix]
                rows_m = np.ones(n, bool) if matrix_is_vector else prob.is_matrix
                for j, s in enumerate(sizes):
                    lo_s = sizes[j - 1] / 4 if j > 0 else 0.0
                    hi_s = sizes[j + 1] * 4 if j + 1 < len(sizes) else math.inf
                    idx = np.flatnonzero(rows_m & (prob.flops >= lo_s) & (prob.flops <= hi_s))
                    targets.append(("matrix", j, idx))
            elif name == "matrix" and k.matrix is not None:
                idx = np.arange(n) if matrix_is_vector else np.flatnonzero(prob.is_matrix)
                targets = [("matrix", None, idx)]
            elif name == "memory" and k.memory is not None:
                targets = []
                sizes = [s for s, _ in k.memory]
                for j, s in enumerate(sizes):
                    lo_s = sizes[j - 1] / 4 if j > 0 else 0.0
                    hi_s = sizes[j + 1] * 4 if j + 1 < len(sizes) else math.inf
                    idx = np.flatnonzero(~prob.is_collective & (prob.sizes >= lo_s) & (prob.sizes <= hi_s))
                    targets.append(("memory", j, idx))
            elif name in ("tier", "tier_latency") and getattr(k, name) is not None:
                targets = [(name, None, np.flatnonzero(prob.is_collective))]
            else:
                continue
            for knob, j, idx in targets:
                if len(idx) == 0:
                    continue

                def with_value(x, knob=knob, j=j, k=k):
                    if j is not None:  # a knot of a table (memory, or matrix by FLOPs)
                        tab = list(getattr(k, knob))
                        tab[j] = (tab[j][0], x)
                        return replace(k, **{knob: tuple(tab)})
                    return replace(k, **{knob: x})

                def f(x, idx=idx, with_value=with_value, t=t):
                    tt = t.copy()
                    kk = with_value(x)
                    tt[idx] = prob.predict(apply_knobs(base, kk), idx)
                    return prob.loss(tt, kk)

                lo, hi = BOUNDS[knob]
                x0 = min(max(getattr(k, knob)[j][1] if j is not None else getattr(k, knob), lo), hi)
                if _sweep == 0:
                    x, fx = _search_log(f, lo, hi, x0)
                else:  # later sweeps refine near the current value
                    x, fx = _search_log(f, max(lo, x0 / 2), min(hi, x0 * 2), x0, grid=5, iters=8)
                k = with_value(x)
                t = t.copy()
                t[idx] = prob.predict(apply_knobs(base, k), idx)
                history.append(prob.loss(t, k))
        t = prob.predict(apply_knobs(base, k))  # re-price everything: the windows above are approximate
        history.append(prob.loss(t, k))
        if log:
            log(f"sweep {_sweep + 1}: loss {history[-1]:.4f} ({prob.evals} pricings)")
        if start - history[-1] < tol:
            break
    return k, history


def fit_by_kind(prob: _Problem, hw, how_start: Knobs | None = None, log=None) -> tuple:
    """Per streaming op kind, the fraction of the main memory's (already fitted) efficiency that
    fits that kind's own rows best; returns ((kind, fraction), ...) sorted by kind."""
    start = dict((how_start.by_kind or ()) if how_start is not None else ())
    out = []
    for kind in sorted({str(x) for x in prob.kinds} & set(STREAMING_KINDS)):
        sub = prob.subset(prob.kinds == kind)

        def f(x, sub=sub, kind=kind):
            kk = Knobs(by_kind=tuple(sorted({**start, kind: x}.items())))
            return sub.loss(sub.predict(apply_knobs(hw, kk)))

        lo, hi = BOUNDS["by_kind"]
        x, fx = _search_log(f, lo, hi, min(max(start.get(kind, 1.0), lo), hi), grid=9, iters=14)
        out.append((kind, float(x)))
        if log:
            log(f"{kind}: {len(sub.rows)} shapes, efficiency_by_kind {x:.3f} (loss {fx:.4f})")
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# the result


@dataclass
class Calibration:
    """A fitted hardware description and its errors (held-out next to training)."""

    name: str  # the hardware calibrated (catalog name or path)
    base: object  # the original Chip/System
    calibrated: object  # the fitted Chip/System (in memory)
    knobs: Knobs
    initial: Knobs
    measurement: str  # label of the measurement file
    folds: int
    holdout: int
    loss: str
    history: list
    train: pd.DataFrame  # the fit's training shapes (median measured time each): catalog_s, calibrated_s
    test: pd.DataFrame  # every held-out row: peak_s, catalog_s, calibrated_s
    counts: dict
    fit_shapes: int
    evals: int
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    def scores(self) -> pd.DataFrame:
        """Error per op kind (and 'all'): split x model, as median/mean APE, bias, n."""
        rows = []
        for split, df, models in (("held-out", self.test, ("peak", "catalog", "calibrated")),
                                  ("training", self.train, ("catalog", "calibrated"))):
            if df.empty:
                continue
            for op, g in list(df.groupby("op")) + ([("all", df)] if df["op"].nunique() > 1 else []):
                for model in models:
                    s = error_stats(g[f"{model}_s"], g["measured_time_s"])
                    rows.append({"split": split, "op": op, "model": model, **s})
        return pd.DataFrame(rows)

    def table(self) -> pd.DataFrame:
        """One row per op kind: held-out median |error| and bias for peak, catalog, calibrated; training next to it."""
        sc = self.scores()
        out = []
        for op in sc["op"].unique():
            r = {"op": op}
            for split, model, tag in (("held-out", "peak", "peak"), ("held-out", "catalog", "catalog"),
                                      ("held-out", "calibrated", "calibrated"), ("training", "calibrated", "train")):
                m = sc[(sc.op == op) & (sc.split == split) & (sc.model == model)]
                if len(m):
                    r[f"{tag}_median_ape"] = float(m.iloc[0]["median_ape"])
                    r[f"{tag}_bias"] = float(m.iloc[0]["bias"])
                    if tag == "calibrated":
                        r["n_test"] = int(m.iloc[0]["n"])
                    if tag == "train":
                        r["n_train"] = int(m.iloc[0]["n"])
            out.append(r)
        return pd.DataFrame(out)

    def comparison(self, split: str = "held-out", model: str = "calibrated") -> Comparison:
        """The held-out (or training) rows scored with one model, as a Comparison (for plots)."""
        df = (self.test if split == "held-out" else self.train).copy()
        df["predicted_time_s"] = df[f"{model}_s"]
        p, m = df["predicted_time_s"].to_numpy(), df["measured_time_s"].to_numpy()
        df["rel_error"] = (p - m) / m
        df["abs_rel_error"] = np.abs(df["rel_error"])
        df["log_ratio"] = np.log(p / m)
        return Comparison(df, pd.DataFrame(columns=["reason"]), dict(self.counts))

    def to_dict(self) -> dict:
        return {"hardware": self.name, "calibrated_name": getattr(self.calibrated, "name", None),
                "measurement": self.measurement, "split": f"by shape, {self.folds} folds, fold {self.holdout} held out",
                "loss": f"{self.loss} |ln(pred/meas)| per op kind, op kinds weighted equally",
                "initial": self.initial.as_dict(), "fitted": self.knobs.as_dict(), "counts": self.counts,
                "fit_shapes": self.fit_shapes, "pricings": self.evals, "seconds": round(self.seconds, 2),
                "loss_history": [round(x, 5) for x in self.history], "table": self.table().to_dict("records"),
                "notes": self.notes}


def select_rows(df: pd.DataFrame, hw_name: str, hw, all_rows: bool = False) -> pd.DataFrame:
    """Rows measured on ``hw_name`` (or on its chip, for a system); all rows when ``all_rows``."""
    if all_rows:
        out = df.copy()
        out["hardware"] = hw_name
        return out
    names = {str(hw_name), str(getattr(hw, "name", hw_name))}
    if isinstance(hw, System):
        names.add(hw.chip.name)
    sel = df["hardware"].astype(str).str.strip().isin(names)
    if not sel.any():
        present = sorted(df["hardware"].astype(str).str.strip().unique())[:12]
        raise SpecError(f"no measured rows for hardware '{hw_name}'; the file has rows for: {', '.join(present)} "
                        f"(use --all-rows to treat every row as measured on {hw_name})")
    return df[sel].copy()


@dataclass(frozen=True)
class CalibrateOptions:
    """How ``calibrate`` fits (every field is also a keyword argument of ``calibrate``).

    ``fit`` picks the fields (default: every one the rows constrain, of matrix, memory, launch,
    tier, tier_latency). Rows are split by shape into ``folds`` folds; fold ``holdout`` is held
    out and scored, the rest are fitted. ``fit_ops`` limits the op kinds fitted to (all are
    scored); ``exact_only`` leaves out of the fit rows whose ``mapping`` column says the op only
    approximates what was timed. ``name``: the hardware column value to select (default: ``hw``'s
    name). ``matrix_table``: fit the matrix efficiency as a table by GEMM FLOPs (True), as one
    fraction (False), or ("auto") whichever predicts an inner validation fold of the training
    shapes better (the held-out fold is never looked at).
    """

    fit: tuple | None = None
    folds: int = 5
    holdout: int = 0
    loss: str = "mean"
    max_shapes: int = 200
    sweeps: int = 6
    max_knots: int = 4
    all_rows: bool = False
    fit_ops: tuple | None = None
    exact_only: bool = True
    name: str | None = None
    options: CostOptions = DEFAULT_OPTIONS
    label: str | None = None
    log: object = None
    matrix_table: object = "auto"


def _not_approx(df: pd.DataFrame, exact_only: bool) -> pd.DataFrame:
    if exact_only and "mapping" in df.columns:
        return df[df["mapping"].astype(str).str.strip().str.lower() != "approx"]
    return df


def _wanted_fields(o: CalibrateOptions, base, hw_name: str, ops: set) -> tuple:
    """The fields to fit: ``o.fit``, or every one the rows constrain (a system: only its tiers)."""
    is_system = isinstance(base, System)
    # a system file holds only its tiers: its chip is calibrated on its own (then named with --chip)
    wanted = o.fit or tuple(x for x in KNOBS if (
        x == "matrix" and not is_system and ops & {"gemm", "attention"}
        or x == "memory" and not is_system and ops - set(COLLECTIVE_OPS)
        or x == "launch" and not is_system and not o.options.cuda_graphs
        or x == "fixed" and not is_system and o.options.cuda_graphs
        or x in ("tier", "tier_latency") and is_system and ops & set(COLLECTIVE_OPS) and base.tiers
        or x == "by_kind" and not is_system))
    if o.options.cuda_graphs:  # GPU-time rows hold no CPU launch: their per-kernel time is the GPU-side one
        wanted = tuple(dict.fromkeys("fixed" if x == "launch" else x for x in wanted))
    for x in wanted:
        if x not in KNOBS:
            raise SpecError(f"unknown field to fit {x!r}; known: {', '.join(KNOBS)}")
        if is_system and x not in ("tier", "tier_latency"):
            raise SpecError(f"{hw_name} is a system: calibrate its chip ({base.chip.name}) on its own, then the "
                            f"system's tiers with --chip naming the calibrated chip file")
    if not wanted:
        raise SpecError(f"nothing to fit for {hw_name} from these rows (op kinds {', '.join(sorted(ops))}): a chip "
                        f"needs kernel rows, a system collective rows")
    return tuple(wanted)


def _matrix_knots(o: CalibrateOptions, prob: _Problem, base, wanted: tuple, knots: tuple, notes: list) -> tuple:
    """FLOP knots of a matrix-efficiency table, or () for one fraction (``o.matrix_table``; with
    "auto", the one that predicts an inner validation fold of the training shapes better)."""
    if "matrix" not in wanted or not o.matrix_table or isinstance(base, System):
        return ()
    chip0 = _chip_of(base)
    mrows = np.ones(len(prob.rows), bool) if chip0.matrix_unit() is chip0.vector_unit() else prob.is_matrix
    fl = prob.flops[mrows]
    cand = knot_sizes_for(fl[np.isfinite(fl) & (fl > 0)], o.max_knots)
    if len(cand) < 2:
        return ()
    if o.matrix_table is True:
        return cand
    if o.matrix_table != "auto":
        return ()
    inner = np.array([fold_of("inner|" + k, o.folds) == 0 for k in shape_keys(prob.rows)])
    pa, pv = prob.subset(~inner), prob.subset(inner)
    if not (len(pv.rows) and len(pa.rows)):
        return ()
    ks, _ = fit_knobs(pa, base, wanted, knots, sweeps=min(o.sweeps, 3))
    kt, _ = fit_knobs(pa, base, wanted, knots, sweeps=min(o.sweeps, 3), matrix_knots=cand)
    ls, lt = (pv.loss(pv.predict(apply_knobs(base, kk))) for kk in (ks, kt))
    prob.evals += pa.evals + pv.evals
    use = lt < ls
    notes.append(f"matrix efficiency as a table by FLOPs {'chosen' if use else 'not chosen'}: inner "
                 f"validation loss {lt:.4f} (table) vs {ls:.4f} (one fraction), on "
                 f"{len(pv.rows)} training shapes held out of a first fit")
    if o.log:
        o.log(notes[-1])
    return cand if use else ()


def _by_kind(o: CalibrateOptions, train: pd.DataFrame, base, knobs: Knobs, prob: _Problem, notes: list):
    """The main memory's per-kind fractions, fitted on each streaming kind's exact training rows with
    the fields already fitted in place (GEMM-only fits keep their matrix/HBM/launch values)."""
    srows = _not_approx(train, o.exact_only)
    srows = srows[~srows["op"].isin(["gemm", "attention", *COLLECTIVE_OPS])]
    if not len(srows):
        return None
    sp = _fit_problem(srows, o.max_shapes, o.loss, o.options)
    sp = sp.subset(np.isin(sp.kinds.astype(str), STREAMING_KINDS))
    if not len(sp.rows):
        return None
    shared = apply_knobs(base, replace(knobs, by_kind=None))
    tc = sp.predict(shared)
    sp = sp.subset(np.isfinite(tc))
    byk = fit_by_kind(sp, shared, current_knobs(base), log=o.log) if len(sp.rows) else None
    prob.evals += sp.evals
    counts_by_kind = {k: int((sp.kinds == k).sum()) for k, _ in (byk or ())}
    notes.append("per-kind bandwidth efficiency fitted on " + ", ".join(
        f"{k} ({n} shapes)" for k, n in counts_by_kind.items()))
    return byk


def _bound_notes(knobs: Knobs) -> list[str]:
    notes = []
    mfr = [f for _, f in knobs.matrix] if isinstance(knobs.matrix, tuple) else [knobs.matrix]
    if knobs.matrix is not None and max(mfr) >= BOUNDS["matrix"][1] - 1e-6:
        notes.append("matrix efficiency hit its upper bound 1.0: the measured GEMMs are faster than the model allows")
    if knobs.memory is not None and any(f >= BOUNDS["memory"][1] - 1e-6 for _, f in knobs.memory):
        notes.append("a memory-efficiency knot hit 1.0: some transfers run faster than the datasheet bandwidth "
                     "(cache hits the model does not see, or a low datasheet figure)")
    return notes


def _split_and_check(o: CalibrateOptions, measured, base, hw_name: str):
    """Select the rows of ``hw_name``, split them by shape, check them (the held-out ones priced with
    the file as it is). Returns (train, test, counts, fitting)."""
    rows = select_rows(measured, hw_name, base, o.all_rows)
    rows["hardware"] = hw_name
    hwmap = {hw_name: base}
    train_m, test_m = split_by_shape(rows, o.folds, o.holdout)
    # held-out rows: checked and priced with the file as it is; training rows: checked only (the fit prices them)
    test_cmp = compare(rows[test_m], hardware=hwmap, options=o.options)
    train_cmp = compare(rows[train_m], hardware=hwmap, options=o.options, price=False)
    test = test_cmp.scored.rename(columns={"predicted_time_s": "catalog_s"})
    train = train_cmp.scored
    rejected = pd.concat([test_cmp.rejected, train_cmp.rejected], ignore_index=True)
    counts = {"rows": len(rows), "scored": int(len(test) + len(train)), "rejected": len(rejected),
              "by_reason": count_reasons(rejected["reason"]) if len(rejected) else {}}
    if train.empty:
        raise SpecError(f"no usable training rows for {hw_name} ({len(rows)} rows, {len(rejected)} rejected: "
                        f"{', '.join(f'{k} ({v})' for k, v in counts['by_reason'].items())})")
    fitting = train
    if o.fit_ops:
        fitting = fitting[fitting["op"].isin(o.fit_ops)]
    fitting = _not_approx(fitting, o.exact_only)
    if fitting.empty:
        raise SpecError(f"no training rows left to fit (op kinds {', '.join(o.fit_ops or ())}, exact rows only: "
                        f"{o.exact_only}); the training rows have op kinds {', '.join(sorted(set(train['op'])))}")
    return train, test, counts, fitting


def calibrate(measured, hw: str, opts: CalibrateOptions | None = None, **kwargs) -> Calibration:
    """Fit ``hw``'s efficiency fields to ``measured`` (a frame, a CSV path or a built-in data set).

    How: ``opts`` (a :class:`CalibrateOptions`), or its fields as keyword arguments (``fit``,
    ``folds``, ``holdout``, ``loss``, ``max_shapes``, ``sweeps``, ``max_knots``, ``all_rows``,
    ``fit_ops``, ``exact_only``, ``name``, ``options``, ``label``, ``log``, ``matrix_table``).
    ``by_kind`` (the main memory's per-streaming-kind efficiencies) is fitted after the other
    fields, on each streaming kind's own exact training rows, whatever ``fit_ops`` says. Raises
    SpecError for bad arguments or no usable rows.
    """
    import time

    o = replace(opts or CalibrateOptions(), **kwargs)
    t0 = time.time()
    if o.loss not in ("mean", "median"):
        raise SpecError(f"loss must be mean or median; got {o.loss!r}")
    base = load_hardware(hw) if isinstance(hw, (str, Path)) else hw
    hw_name = o.name or (str(hw) if isinstance(hw, (str, Path)) else base.name)
    label = o.label
    if isinstance(measured, (str, Path)):
        label = label or str(measured)
        measured = load_measurements(str(measured))
    label = label or "measurements"
    o = replace(o, options=scoring_options(measured, o.options))  # Vidur's rows: the kernels Vidur timed
    train, test, counts, fitting = _split_and_check(o, measured, base, hw_name)
    prob = _fit_problem(fitting, o.max_shapes, o.loss, o.options)
    t_catalog = prob.predict(base)
    dropped = int((~np.isfinite(t_catalog)).sum())
    if dropped:  # shapes the predictor cannot price (e.g. a collective on a single chip)
        prob = prob.subset(np.isfinite(t_catalog))
        t_catalog = t_catalog[np.isfinite(t_catalog)]
    if len(prob.rows) == 0:
        raise SpecError(f"the cost model cannot price any of the training rows for {hw_name}")
    wanted = _wanted_fields(o, base, hw_name, set(prob.rows["op"]))
    knots = knot_sizes_for(prob.sizes[~prob.is_collective], o.max_knots) if "memory" in wanted else ()
    notes: list[str] = []
    mknots = _matrix_knots(o, prob, base, wanted, knots, notes)
    knobs, history = fit_knobs(prob, base, wanted, knots, sweeps=o.sweeps, log=o.log, matrix_knots=mknots)
    if "by_kind" in wanted:
        knobs = replace(knobs, by_kind=_by_kind(o, train, base, knobs, prob, notes) or None)
    calibrated = apply_knobs(base, knobs, f"llmsim calibrate: fitted to {label}")
    initial = current_knobs(base, knots or None)
    # training error: the fit's own shapes (one row per shape, its median measured time)
    fit_rows = prob.rows.copy()
    fit_rows["measured_time_s"] = prob.measured
    fit_rows["catalog_s"] = t_catalog
    fit_rows["calibrated_s"] = prob.predict(calibrated)
    # held-out error: every held-out row
    if len(test):
        test["calibrated_s"] = predict_times(test, calibrated, o.options)
        test["peak_s"] = predict_times(test, base, replace(o.options, use_efficiency=False))
    counts.update({"train_rows": len(train), "fit_rows": len(fitting), "fit_shapes": len(prob.rows),
                   "unpriceable_fit_shapes": dropped, "test_rows": len(test),
                   "train_shapes": int(shape_keys(train).nunique()),
                   "test_shapes": int(shape_keys(test).nunique()) if len(test) else 0})
    notes += _bound_notes(knobs)
    return Calibration(name=hw_name, base=base, calibrated=calibrated, knobs=knobs, initial=initial,
                       measurement=label, folds=o.folds, holdout=o.holdout, loss=o.loss, history=history,
                       train=fit_rows, test=test.reset_index(drop=True), counts=counts,
                       fit_shapes=len(prob.rows), evals=prob.evals, seconds=time.time() - t0, notes=notes)


__all__ = ["CalibrateOptions", "Calibration", "Knobs", "apply_knobs", "calibrate", "count_reasons", "current_knobs",
           "fold_of", "knot_sizes_for", "predict_times", "select_rows", "shape_keys", "split_by_shape",
           "summarize"]
