"""Prediction intervals from llmsim's own validation record (method: docs/uncertainty.md).

The error model (``sim/validation/data/error_model.json``, written by ``make validate`` through
``sim.validation.errormodel``) holds, per cell (calibration state, hardware family, op kind,
bound), empirical quantiles of ``ln(measured / predicted)`` of validation rows. This module reads
it and turns point predictions into intervals:

- one op: its time times the cell's factor quantiles (``op_interval``), the interval widened to
  contain the point itself (``central_interval``);
- a whole prediction: Monte Carlo over one shared factor per op kind (errors of one kind on one chip
  are correlated, kinds are drawn independently; the bound cells of a kind share the kind's
  uniform draw), applied to the per-kind time sums of the prefill step and the mean decode step
  (``metric_samples``), times one end-to-end factor for what the kernel model leaves out (the
  "engine" term, fitted on the published end-to-end rows); TTFT, TPOT, e2e, throughput, USD and
  energy are recomputed per draw and the interval read from the draws.

Nothing here changes a point prediction.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from hwmodels.errors import SpecError
from sim.metrics import RequestTotals, request_metrics

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "validation", "data", "error_model.json")
CALIBRATED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hwmodels", "catalog",
                              "calibrated")
STATES = ("measured", "published", "class-default", "none")
DEFAULT_LEVEL = 0.8
DEFAULT_DRAWS = 400
DEFAULT_SEED = 0
#: metrics whose intervals predict --json reports (a time-like metric grows with the factors)
TIME_METRICS = ("ttft_s", "tpot_s", "e2e_s")
RATE_METRICS = ("output_throughput_tok_s", "per_chip_output_throughput_tok_s")
COST_METRICS = ("usd_per_mtok_output", "usd_per_mtok_input", "joules_per_output_token")
INTERVAL_METRICS = TIME_METRICS + RATE_METRICS + COST_METRICS


def check_level(level) -> float:
    """The interval level as a float in (0, 1); SpecError otherwise."""
    try:
        p = float(level)
    except (TypeError, ValueError):
        raise SpecError(f"interval level must be a number between 0 and 1 (exclusive); got {level!r}") from None
    if not (0.0 < p < 1.0) or isinstance(level, bool):
        raise SpecError(f"interval level must be between 0 and 1 (exclusive), e.g. 0.8; got {level!r}")
    return p


# ---------------------------------------------------------------------------------------------
# which cell a chip and an op fall in


def _calibrated_names() -> frozenset:
    try:
        return frozenset(os.path.splitext(f)[0] for f in os.listdir(CALIBRATED_DIR) if f.endswith((".yaml", ".yml")))
    except OSError:
        return frozenset()


def _has_efficiency(chip) -> bool:
    if any(u.efficiency not in (None, 1.0) for u in chip.compute):
        return True
    return any(m.efficiency is not None or m.efficiency_by_kind for m in chip.memory)


def calibration_state(chip, use_efficiency: bool = True) -> str:
    """measured | published | class-default | none for a Chip (or a System's chip).

    The chip's ``calibration`` (the weakest of its GEMM and main-memory efficiency fields, from the
    catalog); ``none`` when efficiencies are ignored (``use_efficiency=False``: datasheet peaks). For a
    chip object without the property: measured when it comes from hwmodels/catalog/calibrated/,
    published when it carries efficiency fields, else none.
    """
    chip = getattr(chip, "chip", chip)
    if not use_efficiency:
        return "none"
    s = getattr(chip, "calibration", None)
    if s in STATES:
        return s
    path = getattr(chip, "path", None) or ""
    if chip.name in _calibrated_names() or os.path.abspath(path).startswith(CALIBRATED_DIR + os.sep):
        return "measured"
    return "published" if _has_efficiency(chip) else "none"


def chip_family(chip) -> str:
    """Hardware family: 'cpu' (no matrix unit), '<vendor>-accelerator' otherwise ('nvidia-accelerator')."""
    chip = getattr(chip, "chip", chip)
    if chip.unit("matrix") is None:
        return "cpu"
    v = (chip.vendor or "other").split("(")[0].strip().lower().replace(" ", "-") or "other"
    return f"{v}-accelerator"


def row_kind(op: str, name: str = "") -> str:
    """The graph op kind a kernel row (``sim.ops`` format) stands for; Vidur's rotary (``attn_rope``) and
    embedding (``emb``) rows have their own kinds."""
    op, name = str(op).strip().lower(), str(name)
    if op == "elementwise" and name == "attn_rope":
        return "rope"
    if op == "memcpy" and name == "emb":
        return "embedding"
    if op in ("allreduce", "allgather", "reducescatter", "alltoall", "sendrecv"):
        return "collective"
    return op


#: kinds split by arithmetic intensity (FLOPs per byte moved, what the prediction knows of the op): a residual add
#: (1 FLOP per 6 bytes in bf16) and a gated activation (5 FLOPs per 6 bytes) miss in opposite directions
INTENSITY_SPLIT = {"elementwise": 0.5}


#: collective operations, each its own cell kind (``collective:allreduce``...): NCCL's all-reduce and send/recv
#: miss by different factors (held out on the HGX systems: about 1.8x and 1.1x their predictions)
COLLECTIVE_OPS = ("allreduce", "allgather", "reducescatter", "alltoall", "sendrecv")


def cell_kind(kind: str, flops: float = math.nan, nbytes: float = math.nan, name: str = "") -> str:
    """The kind an op's cell is looked up under: ``kind``; ``kind:math`` / ``kind:stream`` for a kind split
    by arithmetic intensity (``INTENSITY_SPLIT``: FLOPs per byte at or above the threshold: math) when the
    op's FLOPs and bytes are known; ``collective:<operation>`` for a collective whose name names its
    operation (the graph's 'tp.allreduce_attn', sim.ops' 'allreduce'). A cell kind without cells of its own
    reads its kind's."""
    if kind == "collective":
        op = next((o for o in COLLECTIVE_OPS if o in str(name)), None)
        return f"collective:{op}" if op else kind
    t = INTENSITY_SPLIT.get(kind)
    if t is None or not (nbytes > 0) or not math.isfinite(flops):
        return kind
    return f"{kind}:math" if flops / nbytes >= t else f"{kind}:stream"


def op_bytes(c) -> float:
    """Bytes an OpCost moves over all memory levels."""
    return float(sum(b for _, b in c.bytes_by_level))


def record_name(chip) -> str:
    """The name a chip has in the validation record (a calibrated file counts as its base chip)."""
    chip = getattr(chip, "chip", chip)
    n = chip.name
    return n[: -len("-calibrated")] if n.endswith("-calibrated") else n


# ---------------------------------------------------------------------------------------------
# the error model


@dataclass(frozen=True)
class Cell:
    key: str  # state|family|kind|bound ('*' = pooled)
    level: str  # which fallback level answered
    n: int
    q: np.ndarray  # quantiles of ln(measured / predicted) at ErrorModel.probs
    widen: float = 1.0

    def quantile(self, u):
        """ln factor at probability ``u`` (scalar or array); outside the grid the end values hold."""
        return np.interp(u, self._probs, self.q)

    _probs: np.ndarray = None


class _Cells(dict):
    """cell key -> quantile array (ln factors at the file's ``probs``). The file stores each cell's quantiles as
    one space-separated string (format 2; a list in format 1 and in models built in memory), parsed on first
    use: a prediction reads a few dozen of the ~500 cells, and parsing all of them as JSON numbers was ~10 ms
    of every `llmsim predict` start (docs/performance.md)."""

    def __init__(self, path: str, raw: dict):
        super().__init__(raw)
        self.path = path

    def __getitem__(self, key):
        v = dict.__getitem__(self, key)
        if isinstance(v, np.ndarray):
            return v
        try:
            q = np.array(v.split() if isinstance(v, str) else v, dtype=float)
        except (TypeError, ValueError) as e:
            raise SpecError(f"{self.path}: cells.{key}.q: expected numbers ({type(e).__name__}: {e})") from None
        if q.ndim != 1 or not np.all(np.isfinite(q)):
            raise SpecError(f"{self.path}: cells.{key}.q: expected a list of finite numbers")
        dict.__setitem__(self, key, q)
        return q


class ErrorModel:
    """The error model file: quantile cells with a fallback hierarchy, the unseen-chip widening and the
    end-to-end (engine) terms per state: static batches' (``engine``, fitted on the published end-to-end rows)
    and serving runs' (``serving_engine``, fitted on the published offline-serving rows)."""

    def __init__(self, data: dict, path: str = "<memory>"):
        self.data = data
        self.path = path
        self.probs = np.asarray(data["probs"], dtype=float)
        self.cells = _Cells(path, {k: v["q"] for k, v in data["cells"].items()})
        self.counts = {k: int(v["n"]) for k, v in data["cells"].items()}
        self.kind_map = dict(data.get("kind_map", {}))
        self.fallback = list(data["fallback"])
        self.chips = frozenset(data.get("chips_in_record", ()))
        self.widening = float(data.get("unseen_chip_widening", {}).get("factor", 1.0))
        self.widening_by_kind = {k: float(v) for k, v in
                                 (data.get("unseen_chip_widening", {}).get("by_kind") or {}).items()}
        # kinds whose record comes from several sources (kernel builds and harnesses): the shifts of sources left out
        # of the fit, added to a draw from any cell of the kind (a user's run is a source the record lacks)
        self.source_shifts = _shifts(path, "unseen_source_shifts.by_kind",
                                     (data.get("unseen_source_shifts") or {}).get("by_kind"))
        self._shifted: dict = {}  # (cell key, widening, shifts) -> the quantiles of cell + shift
        self.engine = _engine_table(path, "engine", data.get("engine"))
        self.serving_engine = _engine_table(path, "serving_engine", data.get("serving_engine"))
        self.shrink = float(data.get("step_shrink", {}).get("factor", 1.0))
        self.state_fallback = dict(data.get("state_fallback", {}))
        self.kind_proxy = dict(data.get("kind_proxy", {}))
        # size buckets: log10 of an op's predicted time (seconds, one execution), cut at these edges
        self.size_edges = tuple(float(x) for x in (data.get("size_buckets") or {}).get("log10_time_edges", ()))

    def size_of(self, time_s) -> str:
        """The size bucket of an op predicted to take ``time_s`` (one execution): ``'<e0'``, ``'e0..e1'``, ...,
        ``'>=eN'`` (log10 seconds); ``'*'`` when the file has no buckets or the time is unknown."""
        if not self.size_edges or time_s is None or not (time_s > 0 and math.isfinite(time_s)):
            return "*"
        return size_label(math.log10(time_s), self.size_edges)

    @classmethod
    def load(cls, path: str | None = None) -> ErrorModel:
        return _load(os.path.abspath(path or DATA))

    def widening_for(self, kind: str) -> float:
        """The unseen-chip widening of a kind (its own where measured, else the pooled factor)."""
        return self.widening_by_kind.get(self.base_kind(kind).partition(":")[0], self.widening)

    def base_kind(self, kind: str) -> str:
        """A kind as the file's cells name it: mapped (``kind_map``), an intensity class kept (``kind:math``)."""
        base, _, sub = kind.partition(":")
        base = self.kind_map.get(base, base)
        return f"{base}:{sub}" if sub else base

    def keys_for(self, state: str, family: str, kind: str, bound: str, size: str = "*") -> list[tuple[str, str]]:
        kind = self.base_kind(kind)
        parts = {"state": state, "family": family, "kind": kind, "bound": bound or "*", "size": size or "*"}
        out = []
        for lvl in self.fallback:
            if "size" not in lvl.split("/"):
                out.append((cell_key(lvl, parts), lvl))
            elif parts["size"] != "*":
                # the op's bucket, then the nearest buckets (the residuals drift with size: a bucket next
                # to the op's describes it better than all sizes pooled)
                out += [(cell_key(lvl, dict(parts, size=b)), lvl + ("" if b == parts["size"] else " (nearest size)"))
                        for b in self.nearest_sizes(parts["size"])]
        return out

    def nearest_sizes(self, size: str) -> list[str]:
        """The size buckets ordered by distance from ``size`` (itself first, the smaller of two equally near
        first); ``[size]`` when it is not one of the file's buckets."""
        labels = size_labels(self.size_edges)
        if size not in labels:
            return [size]
        i = labels.index(size)
        return sorted(labels, key=lambda b: (abs(labels.index(b) - i), labels.index(b)))

    def cell(self, state: str, family: str, kind: str, bound: str = "*", chip_name: str | None = None,
             _widen: float = 1.0, size: str = "*", _from: tuple = ()) -> Cell:
        """The first cell of the fallback hierarchy that has enough rows; widened around its median by the
        unseen-chip factor when ``chip_name`` is not in the record. ``size``: the op's size bucket
        (``size_of(time_s)``; '*' skips the levels that need it). A kind with a proxy (``kind_proxy``:
        attention reads GEMM cells) that has no cell of its own on the family reads its proxy's cells of
        the same bound and size, widened by the same factor (a kind the record does not cover). A kind with
        unseen-source shifts (``unseen_source_shifts``: attention) reads each cell as a draw from it plus one of the
        shifts, each equally likely (the cell's quantiles of that sum). A state
        without a cell reads the one ``state_fallback`` names (``_from``: the states already tried, so that
        a two-way fallback ends)."""
        if state not in STATES:
            raise SpecError(f"unknown calibration state {state!r}; known: {', '.join(STATES)}")
        keys = self.keys_for(state, family, kind, bound, size)
        proxy = self.kind_proxy.get(self.base_kind(kind))
        own = [k for k, lvl in keys if {"family", "kind"} <= set(lvl.split("/"))]
        if ":" in kind and not any(k in self.cells for k, lvl in keys if "kind" in lvl.split("/")):
            # an intensity class without cells of its own (a file fitted without the split): the whole kind
            return self.cell(state, family, kind.partition(":")[0], bound, chip_name, _widen, size, _from)
        if proxy and not any(k in self.cells for k in own):
            return self.cell(state, family, proxy, bound, chip_name, _widen * self.widening_for(proxy), size, _from)
        for key, lvl in keys:
            if key in self.cells:
                q = self.cells[key]
                w = _widen * (1.0 if chip_name is None or chip_name in self.chips else self.widening_for(kind))
                if lvl.endswith("(nearest size)"):  # an op size the record lacks: widened like an unseen chip
                    w *= self.widening_for(kind)
                if w != 1.0:
                    med = float(np.interp(0.5, self.probs, q))
                    q = med + w * (q - med)
                shifts = self.source_shifts.get((self.base_kind(kind).partition(":")[0], family))
                if shifts is not None:  # a draw from the cell plus a left-out source's shift, each equally likely
                    ck = (key, w, id(shifts))
                    got = self._shifted.get(ck)
                    if got is None:
                        s = np.sort(np.add.outer(np.asarray(q, dtype=float), shifts).ravel())
                        got = self._shifted[ck] = _sorted_quantile(s, self.probs)
                    q = got
                return Cell(key, lvl + (" (proxy)" if _widen != 1.0 else ""), self.counts[key], q, w, self.probs)
        nxt = self.state_fallback.get(state)
        if nxt is not None and nxt not in _from:
            return self.cell(nxt, family, kind, bound, chip_name, _widen, size, _from + (state,))
        raise SpecError(f"{self.path}: no cell for state {state!r} at any fallback level (a broken error model file)")

    def engine_term(self, state: str, term: str = "e2e") -> tuple[float, float]:
        """(mu, sd) of the end-to-end log factor for ``state`` (0, 0 when the file has none): ``term`` "e2e" for a
        static batch (``predict``), "serving" for a serving run (``serve``, ``plan``; the static batches' term
        where the file has no serving term)."""
        t = self.serving_engine if term == "serving" and self.serving_engine else self.engine
        e = t.get(state) or t.get(self.state_fallback.get(state, "")) or t.get("*") or {}
        return float(e.get("mu", 0.0)), float(e.get("sd_pred", 0.0))


def _shifts(path: str, name: str, table) -> dict:
    """Unseen-source shifts ({kind: {family: [ln shift, ...]}}), checked: a non-empty list of finite numbers per
    kind and family, else a SpecError naming the file and the field."""
    if table is None:
        return {}
    out = {}
    if not isinstance(table, dict):
        raise SpecError(f"{path}: {name}: expected a mapping of op kind to its families' shifts, got "
                        f"{type(table).__name__}")
    for kind, fams in table.items():
        if not isinstance(fams, dict):
            raise SpecError(f"{path}: {name}.{kind}: expected a mapping of hardware family to its list of shifts, got "
                            f"{type(fams).__name__}")
        for fam, v in fams.items():
            if not isinstance(v, list) or not v or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
                raise SpecError(f"{path}: {name}.{kind}.{fam}: expected a non-empty list of finite numbers (ln shifts), "
                                f"got {v!r}")
            out[(str(kind), str(fam))] = np.asarray(v, dtype=float)
    return out


def _engine_table(path: str, name: str, table) -> dict:
    """An engine term's table ({state: {"mu", "sd_pred", ...}}), checked: a finite ``mu`` and a finite ``sd_pred``
    >= 0 per state (read by every interval), else a SpecError naming the file and the field."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise SpecError(f"{path}: {name}: expected a mapping of calibration state to its term, got {type(table).__name__}")
    for state, t in table.items():
        if not isinstance(t, dict):
            raise SpecError(f"{path}: {name}.{state}: expected a mapping with mu and sd_pred")
        for k, lo in (("mu", -math.inf), ("sd_pred", 0.0)):
            v = t.get(k, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= lo):
                raise SpecError(f"{path}: {name}.{state}.{k}: expected a finite number"
                                + (" >= 0" if lo == 0.0 else "") + f", got {v!r}")
    return dict(table)


def cell_key(level: str, parts: dict) -> str:
    """A cell's key: the level's names (state/family/kind/bound[/size], '*' for any) filled from ``parts``,
    padded to state|family|kind|bound; a level that names the size adds it as a fifth part."""
    names = level.split("/")
    vals = [str(parts[n]) if n in parts else "*" for n in names]
    vals += ["*"] * (4 - len(vals))
    return "|".join(vals)


def size_labels(edges) -> list[str]:
    """Every bucket of ``edges``, smallest first."""
    if not edges:
        return []
    return [f"<{edges[0]:g}"] + [f"{a:g}..{b:g}" for a, b in zip(edges, edges[1:])] + [f">={edges[-1]:g}"]


def size_label(log10_t: float, edges) -> str:
    """The bucket of a log10 time among ``edges`` (ascending): '<e0', 'e0..e1', ..., '>=eN'."""
    if not edges:
        return "*"
    i = int(np.searchsorted(np.asarray(edges, dtype=float), log10_t, side="right"))
    if i == 0:
        return f"<{edges[0]:g}"
    return f">={edges[-1]:g}" if i == len(edges) else f"{edges[i - 1]:g}..{edges[i]:g}"


@functools.lru_cache(maxsize=4)
def _load(path: str) -> ErrorModel:
    if not os.path.exists(path):
        raise SpecError(f"no error model at {path}; run `make validate` to build it")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return ErrorModel(data, path)
    except (ValueError, KeyError, TypeError) as e:
        raise SpecError(f"{path}: not an llmsim error model ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------------------------------------
# intervals


def central_interval(samples, point: float, level: float) -> tuple[float, float]:
    """The central ``level`` interval of ``samples``, moved to contain ``point``.

    When the point lies below the central interval the interval becomes [point, Q(F(point) + level)]
    (F: the samples' distribution function), above it [Q(F(point) - level), point]: it still holds
    ``level`` of the samples, contains the point, and is nested in level (a higher level never gives
    a narrower interval).
    """
    s = np.sort(np.asarray(samples, dtype=float))
    a = (1.0 - level) / 2.0
    lo, hi = _sorted_quantile(s, a), _sorted_quantile(s, 1.0 - a)
    if point < lo:
        f = float(np.searchsorted(s, point, side="right")) / len(s)
        return float(point), _sorted_quantile(s, min(1.0, f + level))
    if point > hi:
        f = float(np.searchsorted(s, point, side="left")) / len(s)
        return _sorted_quantile(s, max(0.0, f - level)), float(point)
    return lo, hi


def _sorted_quantile(s: np.ndarray, p):
    """``np.quantile(s, p)`` (its default, linear method) of sorted ``s``, read by interpolation at rank
    p (n - 1): the same numbers without np.quantile's import of numpy.ma (~10 ms of every CLI start); a float
    for one ``p``, an array for an array of them."""
    q = np.interp(np.asarray(p, dtype=float) * (len(s) - 1), np.arange(len(s)), s)
    return float(q) if q.ndim == 0 else q


def factor_interval(cell: Cell, level: float) -> tuple[float, float]:
    """(lo, hi) multipliers of a point time for one op at ``level``: the cell's central ``level`` quantiles of
    measured / predicted. Not moved to contain 1: where the record says the cost model misses an op kind one
    way (an embedding gather measured several times its prediction), the range lies on that side of the point,
    which says so, instead of stretching to the point and saying little (docs/uncertainty.md)."""
    a = (1.0 - level) / 2.0
    return float(math.exp(cell.quantile(a))), float(math.exp(cell.quantile(1.0 - a)))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vigna's splitmix64 output function of uint64 counters (wrapping arithmetic): a counter-based generator,
    so the draws need no numpy.random (its import was ~10 ms of every `llmsim predict` start)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniforms(seed: int, n: int, k: int) -> np.ndarray:
    """(n, k) stratified uniforms: each column (i + U) / n for i = 0..n-1, in an order of its own (a Latin
    hypercube), from splitmix64 of counters that start at a per-seed offset."""
    start = _splitmix64(np.array([int(seed) % 2**64], dtype=np.uint64))
    bits = _splitmix64(start + np.arange(2 * n * k, dtype=np.uint64))
    unit = (bits >> np.uint64(11)).astype(float) * 2.0**-53  # 53 random bits -> [0, 1)
    u = (np.arange(n)[:, None] + unit[:n * k].reshape(n, k)) / n
    return np.take_along_axis(u, np.argsort(bits[n * k:].reshape(n, k), axis=0, kind="stable"), axis=0)


# Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9; P. J. Acklam,
# "An algorithm for computing the inverse normal cumulative distribution function", 2003)
_ACKLAM_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
             -3.066479806614716e+01, 2.506628277459239e+00)
_ACKLAM_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
             -1.328068155288572e+01, 1.0)
_ACKLAM_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
             4.374664141464968e+00, 2.938163982698783e+00)
_ACKLAM_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00, 1.0)


def normal_quantile(p) -> np.ndarray:
    """The standard normal quantile of probabilities ``p`` in (0, 1), vectorised (Acklam's approximation)."""
    p = np.asarray(p, dtype=float)
    tail = np.minimum(p, 1.0 - p)
    q = np.sqrt(-2.0 * np.log(np.maximum(tail, 1e-300)))
    x_tail = np.polyval(_ACKLAM_C, q) / np.polyval(_ACKLAM_D, q)  # the lower tail's quantile
    c = p - 0.5
    r = c * c
    x_mid = c * np.polyval(_ACKLAM_A, r) / np.polyval(_ACKLAM_B, r)
    return np.where(tail < 0.02425, np.where(p < 0.5, x_tail, -x_tail), x_mid)


@functools.lru_cache(maxsize=1)
def _normal_table() -> tuple[np.ndarray, np.ndarray]:
    """(p, z) of the standard normal quantile function on a fine grid (vectorised lookups)."""
    p = np.concatenate([[1e-6], np.linspace(0.0005, 0.9995, 2000), [1 - 1e-6]])
    return p, normal_quantile(p)


def kind_factors(model: ErrorModel, groups, state: str, family: str, chip_name: str | None,
                 draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED, term: str = "e2e") -> tuple[np.ndarray, np.ndarray]:
    """(factors (draws x len(groups)), engine (draws,)): multipliers of each (kind, bound[, size]) group's time.

    Groups of one kind share its uniform draw (one factor per kind and chip, read through each bound and
    size cell's quantiles: comonotone); kinds are independent. The engine factor is lognormal with the state's
    end-to-end (mu, sd) of ``term`` (ErrorModel.engine_term).
    """
    kinds = sorted({model.kind_map.get(g[0], g[0]) for g in groups})
    u = _uniforms(seed, draws, len(kinds) + 1)
    out = np.ones((draws, len(groups)))
    for j, g in enumerate(groups):
        k, b = g[0], g[1]
        c = model.cell(state, family, g[3] if len(g) > 3 else k, b, chip_name, size=g[2] if len(g) > 2 else "*")
        x = c.quantile(u[:, kinds.index(model.kind_map.get(k, k))])
        if model.shrink != 1.0:  # the share of a cell's spread a whole step keeps (docs/uncertainty.md)
            med = float(c.quantile(0.5))
            x = med + model.shrink * (x - med)
        out[:, j] = np.exp(x)
    mu, sd = model.engine_term(state, term)
    return out, np.exp(mu + sd * np.interp(u[:, -1], *_normal_table()))


def _group(model: ErrorModel, c) -> tuple:
    """The (kind, bound, size bucket, cell kind) group of a priced op (an OpCost)."""
    return c.kind, c.bound, model.size_of(c.time_s), cell_kind(c.kind, c.flops, op_bytes(c), c.name)


def _phase_ratio(gc, groups, factors, overlap: bool, model: ErrorModel):
    """Per draw: (time ratio, energy ratio) of one step whose (kind, bound, size) groups are scaled."""
    from sim.cost import CostOptions
    from sim.estimate import stage_time

    opts = CostOptions(overlap_comm=overlap)
    comp = np.zeros(factors.shape[0])
    comm = np.zeros(factors.shape[0])
    energy = np.zeros(factors.shape[0])
    idx = {g: j for j, g in enumerate(groups)}
    t_by: dict = {}
    e_by: dict = {}
    for c in gc.ops:
        g = _group(model, c)
        t_by[g] = t_by.get(g, 0.0) + c.time_s * c.count
        e_by[g] = e_by.get(g, 0.0) + c.energy_j * c.count
    for g, t in t_by.items():
        f = factors[:, idx[g]]
        if g[0] == "collective":
            comm += f * t
        else:
            comp += f * t
        energy += f * e_by[g]
    base = stage_time(gc.compute_s, gc.comm_s, opts)
    stages = np.fromiter((stage_time(a, b, opts) for a, b in zip(comp, comm)), float, len(comp))
    ratio = stages / base if base > 0 else np.ones_like(comp)
    eb = gc.energy_j
    return ratio, (energy / eb if eb > 0 else np.ones_like(comp))


def _groups(model: ErrorModel, *gcs) -> list:
    seen: dict = {}
    for gc in gcs:
        if gc is None:
            continue
        for c in gc.ops:
            seen[_group(model, c)] = None
    return list(seen)


def metric_samples(pred, state: str, family: str, chip_name: str | None = None, *, model: ErrorModel | None = None,
                   overlap_comm: bool = False, draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED,
                   engine: bool = True, term: str = "e2e") -> dict:
    """Monte Carlo draws of every interval metric of a ``sim.predict.Prediction``.

    The prefill step's and the mean decode step's (kind, bound) time sums are scaled by the draws'
    factors; TTFT scales with the prefill ratio, the decode time with the decode ratio (the draft
    model, speculative round cost and offload link time scale with them: an approximation), every
    time by the engine factor. Energy scales each op's energy like its time (the TDP model: the same
    power for longer) and takes no engine factor.
    """
    model = model or ErrorModel.load()
    groups = _groups(model, pred.prefill, pred.decode)
    f, eng = kind_factors(model, groups, state, family, chip_name, draws, seed, term)
    if not engine:
        eng = np.ones(draws)
    r_pre, e_pre = _phase_ratio(pred.prefill, groups, f, overlap_comm, model) if pred.prefill is not None \
        else (np.ones(draws), np.ones(draws))
    r_dec, e_dec = _phase_ratio(pred.decode, groups, f, overlap_comm, model) if pred.decode is not None \
        else (np.ones(draws), np.ones(draws))
    ttft = pred.ttft_s * r_pre * eng
    decode = (pred.e2e_s - pred.ttft_s) * r_dec * eng
    # TPOT, e2e, throughput and USD from the one place they are computed (sim.metrics), per draw
    zero = np.zeros(draws)
    m = request_metrics(RequestTotals(ttft=ttft, decode_time=decode, busy=zero, energy=zero, flops=zero,
                                      decode_bytes=zero), batch=pred.batch, input_len=pred.input_len,
                        output_len=pred.output_len, chips=pred.chips, pp=pred.pp, idle_w=0.0, peak_flops=1.0,
                        home_bandwidth=1.0, usd_per_s=None if pred.usd_per_hour is None else pred.usd_per_hour / 3600)
    out = {"ttft_s": ttft, **{k: np.asarray(m[k], dtype=float) for k in TIME_METRICS[1:] + RATE_METRICS}}
    if pred.usd_per_mtok_output is not None:
        out["usd_per_mtok_output"] = np.asarray(m["usd_per_mtok_output"], dtype=float)
        out["usd_per_mtok_input"] = np.asarray(m["usd_per_mtok_input"], dtype=float)
    w = pred.ttft_s / pred.e2e_s if pred.e2e_s > 0 else 1.0
    out["joules_per_output_token"] = pred.joules_per_output_token * (w * e_pre + (1 - w) * e_dec)
    return out


def intervals_from_samples(samples: dict, points: dict, level: float) -> dict:
    return {k: list(central_interval(v, float(points[k]), level)) for k, v in samples.items()
            if points.get(k) is not None and np.all(np.isfinite(v))}


def prediction_intervals(pred, hw, level: float = DEFAULT_LEVEL, *, options=None, model: ErrorModel | None = None,
                         draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED, unseen: bool = False) -> dict:
    """``{metric: [lo, hi]}`` at ``level`` for a Prediction made on ``hw`` (a name, path, Chip or System)
    with cost ``options`` (see ``describe`` for the cells it reads). ``unseen``: treat the chip as outside
    the validation record (a modified design)."""
    level = check_level(level)
    chip = _chip(hw)
    use_eff = True if options is None else options.use_efficiency
    name = "<modified>" if unseen else record_name(chip)
    samples = metric_samples(pred, calibration_state(chip, use_eff), chip_family(chip), name, model=model,
                             overlap_comm=bool(getattr(options, "overlap_comm", False)), draws=draws, seed=seed)
    return intervals_from_samples(samples, pred.to_dict(), level)


@functools.lru_cache(maxsize=64)
def _load_chip(name: str):
    from hwmodels.loader import load_hardware

    obj = load_hardware(name)
    return getattr(obj, "chip", obj)


def _chip(hw):
    """The chip of a name, path, Chip or System (files read once per process)."""
    if isinstance(hw, str) or hasattr(hw, "__fspath__"):
        return _load_chip(str(hw))
    return getattr(hw, "chip", hw)


def describe(hw, options=None, model: ErrorModel | None = None) -> dict:
    """Which calibration state, family and widening a chip's intervals use (for JSON and text output)."""
    model = model or ErrorModel.load()
    chip = _chip(hw)
    use_eff = True if options is None else options.use_efficiency
    name = record_name(chip)
    return {"calibration": calibration_state(chip, use_eff), "family": chip_family(chip),
            "in_validation_record": name in model.chips,
            "widening": 1.0 if name in model.chips else model.widening,
            "widening_by_kind": {} if name in model.chips else dict(model.widening_by_kind),
            # kinds whose ranges add the shift of a kernel source not in the record (count of shifts), on every chip
            "source_shifts_by_kind": {k: len(v) for (k, f), v in model.source_shifts.items()
                                      if f == chip_family(chip)},
            "error_model": os.path.relpath(model.path, os.path.dirname(os.path.dirname(DATA)))
            if model.path.startswith(os.path.dirname(DATA)) else model.path}


def op_intervals(kinds, bounds, times, hw_objs, level: float = DEFAULT_LEVEL, *, use_efficiency: bool = True,
                 model: ErrorModel | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) arrays for per-op times (``sim.ops`` rows): each op's cell (``kinds``: cell kinds, see ``cell_kind``;
    its size bucket from its time), its central interval (``factor_interval``);
    NaN where the time is NaN or the hardware object is missing."""
    level = check_level(level)
    model = model or ErrorModel.load()
    n = len(times)
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    cache: dict = {}
    for i in range(n):
        t, hw = times[i], hw_objs[i]
        if hw is None or not (isinstance(t, (int, float)) and math.isfinite(t)):
            continue
        chip = getattr(hw, "chip", hw)
        size = model.size_of(t)
        kind = kinds[i]
        key = (id(chip), kind, bounds[i], size)
        if key not in cache:
            c = model.cell(calibration_state(chip, use_efficiency), chip_family(chip), kind, bounds[i] or "*",
                           record_name(chip), size=size)
            cache[key] = factor_interval(c, level)
        a, b = cache[key]
        lo[i], hi[i] = t * a, t * b
    return lo, hi


def pessimistic(intervals: dict, metric: str, point: float) -> float:
    """The slow end of a metric's interval (the high end of a time or cost, the low end of a rate): what
    a planner ranks by when the SLOs must hold at the interval's slow end. ``point`` without one."""
    iv = intervals.get(metric)
    if not iv:
        return point
    return iv[0] if metric in RATE_METRICS or "throughput" in metric or metric.endswith(("_rps", "attainment")) \
        else iv[1]


def overlap(a: list, b: list) -> bool:
    """Whether two [lo, hi] intervals overlap."""
    return a[0] <= b[1] and b[0] <= a[1]


def _draw_setup(pred, hw, options, model, draws, seed, term="e2e"):
    """(e2e draws, per-group factors, engine factors, groups, each group's time in one request) of a prediction."""
    model = model or ErrorModel.load()
    chip = _chip(hw)
    use_eff = True if options is None else options.use_efficiency
    state, fam, name = calibration_state(chip, use_eff), chip_family(chip), record_name(chip)
    groups = _groups(model, pred.prefill, pred.decode)
    f, eng = kind_factors(model, groups, state, fam, name, draws, seed, term)
    s = metric_samples(pred, state, fam, name, model=model, overlap_comm=bool(getattr(options, "overlap_comm", False)),
                       draws=draws, seed=seed, term=term)["e2e_s"]
    # a request's time per group: the prefill step once, the mean decode step once per decode step
    steps = (pred.e2e_s - pred.ttft_s) / pred.decode.time_s if pred.decode is not None and pred.decode.time_s > 0 \
        else 0.0
    t_by: dict = {}
    for gc, w in ((pred.prefill, 1.0), (pred.decode, steps)):
        for c in (gc.ops if gc is not None else ()):
            g = _group(model, c)
            t_by[g] = t_by.get(g, 0.0) + w * c.time_s * c.count
    return s, f, eng, groups, t_by


def _draw_kinds(j: int, f, groups, t_by) -> tuple:
    """Draw ``j``'s factors as ``CostOptions.kind_scale`` entries, one ``kind/bound`` key per (kind, bound):
    its size buckets' factors weighted by their time in one request."""
    acc: dict = {}
    for gi, g in enumerate(groups):
        a = acc.setdefault(f"{g[0]}/{g[1]}", [0.0, 0.0, 0.0])
        t = t_by.get(g, 0.0)
        a[0] += t * float(f[j, gi])
        a[1] += t
        a[2] = float(f[j, gi]) if a[1] == 0 else a[2]
    return tuple(sorted((k, a[0] / a[1] if a[1] > 0 else a[2]) for k, a in acc.items()))


def quantile_draw(pred, hw, q: float, *, options=None, model: ErrorModel | None = None, draws: int = DEFAULT_DRAWS,
                  seed: int = DEFAULT_SEED, term: str = "e2e") -> tuple[tuple, float]:
    """The per-kind factors of the Monte Carlo draw whose e2e time sits at quantile ``q`` of the draws
    (for re-running the serving simulator at an interval's ends): ((kind, factor), ...) and the draw's
    engine factor. The factors are keyed ``kind/bound`` (each cell group's own factor; CostOptions.kind_scale
    applies them by the op's bound). ``term``: the engine term the draws carry (ErrorModel.engine_term)."""
    s, f, eng, groups, t_by = _draw_setup(pred, hw, options, model, draws, seed, term)
    order = np.argsort(s)
    j = int(order[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))])
    return _draw_kinds(j, f, groups, t_by), float(eng[j])


def slow_end_scales(pred, hw, level: float, *, options=None, model: ErrorModel | None = None,
                    draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED, term: str = "e2e") -> tuple[tuple, float]:
    """The op-time scaling that prices a prediction at the slow end of its ``level`` interval: the per-kind
    factors (``CostOptions.kind_scale``, the draw's engine factor folded into every kind) of the Monte Carlo
    draw whose e2e time is the smallest at or above the interval's high end (keys ``kind/bound``) (the interval ``predict``
    reports, which contains the point), and that draw's e2e over the point. ``((), 1.0)`` when the high
    end is the point itself. As ``level`` goes to 0 the high end goes to the point, so the scaling goes to
    none; a higher level never gives a faster end. ``term``: the engine term of the draws ("serving" for a
    planner's serving runs; ErrorModel.engine_term)."""
    level = check_level(level)
    s, f, eng, groups, t_by = _draw_setup(pred, hw, options, model, draws, seed, term)
    point = float(pred.e2e_s)
    hi = central_interval(s, point, level)[1]
    if not point > 0 or hi <= point:
        return (), 1.0
    above = np.flatnonzero(s >= hi * (1 - 1e-12))
    j = int(above[np.argmin(s[above])]) if above.size else int(np.argmax(s))
    return tuple((k, x * float(eng[j])) for k, x in _draw_kinds(j, f, groups, t_by)), float(s[j] / point)


__all__ = ["DEFAULT_LEVEL", "ErrorModel", "INTERVAL_METRICS", "STATES", "calibration_state", "central_interval",
           "check_level", "chip_family", "describe", "factor_interval", "intervals_from_samples", "metric_samples",
           "op_intervals", "overlap", "pessimistic", "prediction_intervals", "quantile_draw", "record_name", "row_kind",
           "slow_end_scales",
           "cell_kind", "op_bytes", "COLLECTIVE_OPS"]
