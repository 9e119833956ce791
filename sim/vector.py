"""The cost model over arrays of hardware parameters: sim/cost.py's formulas, vectorized with numpy.

A design-space sweep prices the same graph on many variants of one hardware description (more
HBM bandwidth, a bigger L2, fewer cores...). ``CostModel.op_cost`` prices one op on one chip in
Python; this module evaluates the *same formulas* for one op over ``P`` design points at once:

    hw = HwPoints(system, {"chip.memory.hbm.bandwidth": bw_array, "chip.cores": cores_array})
    ga = evaluate_graph(graph, hw, resident_bytes=...)   # ga.time_s: (P,) step times
    ga.op_time_s                                          # (P, ops) per-op times (keep_ops=True)

What may vary per point (the *numeric* parameters, keys listed by :func:`param_table`):
core count, matrix/vector peaks per dtype (and sparse peaks) with their efficiencies, every memory
level's capacity, bandwidth, latency, scalar efficiency, per-op-kind efficiencies and energy per byte, launch overhead,
TDP and idle power, prices, and every interconnect tier's bandwidth, latency and efficiency.
What is fixed by the base description (the *structure*): which levels and units exist and their
kinds, native tile shapes, efficiency *tables*, which dtype keys a unit lists (rate fallbacks),
tier fan-outs and topologies, the chip count. A sweep that varies structure groups its points
by structure and evaluates each group here (sim/sweep/static.py).

Every branch of the scalar model is mirrored: placement of weights/KV (the home level may differ
per point when capacities vary), the GEMM tile candidates with padding, split-K, waves, cache
re-reads and split-K partial sums (the candidate with the least time wins, first on ties, as in
the scalar loop), paged/flash attention with KV splits and wave quantization, streaming ops,
alpha-beta collectives over tiers (ring/tree/INR, hierarchical groups), launch overhead and the
main-memory latency, the TDP energy model. tests/unit/test_vector.py holds the two paths equal
(relative 1e-9) on random hardware points and several graphs.

Known divergence on purpose: where the chip lists ``power.energy_per_flop`` the scalar
``CostModel._energy`` iterates the per-level dict as pairs (a bug: it raises for level names
that are not two characters long); here the evidently intended ``items()`` sum is used. No
catalog chip lists energy per FLOP today.
"""

from __future__ import annotations

import difflib
import itertools
import math
from dataclasses import dataclass

import numpy as np

from hwmodels.chip import Chip, System, interpolate_efficiency
from hwmodels.dtype import get_dtype
from sim.cost import (
    DECODE_KV_SPLIT,
    FLASH_BLOCK_ROWS,
    GEMM_K_STEPS_PER_SPLIT,
    GEMM_MIN_TK,
    GEMM_TILES,
    PARTIAL_SUM_BYTES,
    CostOptions,
    _view,
    kv_read_bytes,
    visible_fraction,
)

_DEFAULT = CostOptions()

__all__ = [
    "GEMM_TILES",
    "PARTIAL_SUM_BYTES",
    "GraphArrays",
    "HwPoints",
    "OpArrays",
    "VectorCostModel",
    "canonical_key",
    "evaluate_graph",
    "param_table",
]

# The formulas' constants are sim/cost.py's own (imported above): one source of truth.


# ---------------------------------------------------------------------------------------------
# parameters: canonical keys <-> hardware fields

def param_table(hw: System | Chip) -> dict:
    """Every numeric parameter the vector path can vary, with its base value (SI floats).

    Keys are canonical override paths: ``chip.<path>`` for chip fields, ``system.<path>`` for
    system fields, list entries by name (memory levels, tiers) or kind (compute units), e.g.
    ``chip.memory.hbm.bandwidth``, ``chip.compute.matrix.peak.bf16``, ``system.tiers.nvlink.latency``.
    Absent optional values are NaN for prices and 0 for power/overhead, as the scalar model reads them.
    """
    system = hw if isinstance(hw, System) else System.single(hw)
    chip = system.chip
    p: dict = {"chip.cores": float(chip.cores), "chip.launch_overhead": chip.launch_overhead_s,
               "chip.power.tdp": chip.tdp_w or 0.0, "chip.power.idle": chip.idle_w or 0.0,
               "chip.price.cloud": np.nan if chip.cloud_usd_per_s is None else chip.cloud_usd_per_s,
               "chip.price.list": np.nan if chip.list_price_usd is None else chip.list_price_usd}
    for key, v in (chip.energy_per_flop_j or {}).items():
        p[f"chip.power.energy_per_flop.{key}"] = v
    for u in chip.compute:
        for key, v in u.peak.items():
            p[f"chip.compute.{u.kind}.peak.{key}"] = v
        for key, v in (u.sparse_peak or {}).items():
            p[f"chip.compute.{u.kind}.sparse_peak.{key}"] = v
        # a fraction is a parameter; a table by op size is structure (read per op in _rate)
        if not isinstance(u.efficiency, (tuple, list)):
            p[f"chip.compute.{u.kind}.efficiency"] = 1.0 if u.efficiency is None else float(u.efficiency)
    for m in chip.memory:
        pre = f"chip.memory.{m.name}"
        p[f"{pre}.capacity"] = m.capacity_bytes
        p[f"{pre}.bandwidth"] = m.bandwidth_bytes_per_s
        p[f"{pre}.latency"] = m.latency_s
        if not isinstance(m.efficiency, (tuple, list)):
            p[f"{pre}.efficiency"] = 1.0 if m.efficiency is None else float(m.efficiency)
        if m.energy_per_byte_j is not None:
            p[f"{pre}.energy_per_byte"] = m.energy_per_byte_j
        for kind, v in (m.efficiency_by_kind or {}).items():
            p[f"{pre}.efficiency_by_kind.{kind}"] = float(v)
    for t in system.tiers:
        pre = f"system.tiers.{t.name}"
        p[f"{pre}.bandwidth"] = t.bandwidth_bytes_per_s
        p[f"{pre}.latency"] = t.latency_s
        p[f"{pre}.efficiency"] = t.efficiency or 1.0
    p["system.price.cloud"] = np.nan if system.cloud_usd_per_s is None else system.cloud_usd_per_s
    p["system.price.list"] = np.nan if system.list_price_usd is None else system.list_price_usd
    p["system.power.overhead"] = system.power_overhead_w or 0.0
    return p


_SYSTEM_FIELDS = ("version", "kind", "name", "description", "hypothetical", "source", "chip", "count", "tiers",
                  "price", "power")


def canonical_key(hw: System | Chip, path: str) -> str:
    """An override path as the loader reads it (on ``hw``) -> the canonical key of that field.

    List entries given by index become names (``memory.2.bandwidth`` -> ``chip.memory.hbm.bandwidth``).
    The result may name a structural field that :func:`param_table` does not list.
    """
    segs = [s for s in str(path).replace("[", ".").replace("]", "").split(".") if s]
    is_system = isinstance(hw, System)
    if segs and segs[0] == "chip" and (len(segs) > 1 or not is_system):
        scope, segs = "chip", segs[1:]
    elif is_system and segs and segs[0] in _SYSTEM_FIELDS:
        scope = "system"
    else:
        scope = "chip"
    chip = hw.chip if is_system else hw
    if len(segs) >= 2:
        lists = {("chip", "memory"): [m.name for m in chip.memory],
                 ("chip", "compute"): [u.kind for u in chip.compute],
                 ("system", "tiers"): [t.name for t in hw.tiers] if is_system else []}
        names = lists.get((scope, segs[0]))
        if names is not None and segs[1].isdigit() and int(segs[1]) < len(names):
            segs = [segs[0], names[int(segs[1])]] + segs[2:]
    return ".".join([scope] + segs)


class HwPoints:
    """``P`` design points: a base system (the structure) and arrays for the parameters that vary.

    ``values`` maps canonical keys (:func:`param_table`) to arrays of length ``P`` (or scalars);
    parameters not given keep the base value. Values are SI floats (``chip.cores`` integers).
    """

    def __init__(self, hw: System | Chip, values: dict | None = None, n: int | None = None):
        self.system = hw if isinstance(hw, System) else System.single(hw)
        self.base = param_table(self.system)
        vals: dict = {}
        sizes = set()
        for k, v in (values or {}).items():
            if k not in self.base:
                hint = difflib.get_close_matches(k, list(self.base), n=1)
                dym = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise KeyError(f"'{k}' is not a numeric parameter of {self.system.name} that the vector path "
                               f"can vary{dym}")
            a = np.asarray(v, dtype=np.int64 if k == "chip.cores" else np.float64)
            if a.ndim == 0:
                a = a.reshape(1)
            if a.ndim != 1:
                raise ValueError(f"{k}: expected a 1-d array, got shape {a.shape}")
            sizes.add(a.size)
            vals[k] = a
        if len(sizes - {1}) > 1:
            raise ValueError(f"parameter arrays differ in length: {sorted(sizes)}")
        self.n = n if n is not None else (max(sizes) if sizes else 1)
        for k, a in vals.items():
            if a.size == 1 and self.n != 1:
                vals[k] = np.broadcast_to(a, (self.n,))
            elif a.size != self.n:
                raise ValueError(f"{k}: {a.size} values for {self.n} points")
        self.values = vals

    def __len__(self) -> int:
        return self.n

    def get(self, key: str):
        """The array for ``key`` if it varies, else its base value (a float; cores an int)."""
        v = self.values.get(key)
        if v is not None:
            return v
        b = self.base[key]
        return int(b) if key == "chip.cores" else b

    def array(self, key: str) -> np.ndarray:
        """``key`` as a length-P array (base values broadcast)."""
        v = self.get(key)
        return v if isinstance(v, np.ndarray) else np.full(self.n, v, dtype=np.int64 if key == "chip.cores" else float)

    def system_at(self, i: int) -> System:
        """The scalar System of point ``i`` (the base with this point's values; for the scalar path)."""
        from dataclasses import replace

        v = {k: a[i] for k, a in self.values.items()}
        if not v:
            return self.system
        sysobj, chip = self.system, self.system.chip

        def num(key, cur, none_if=None):
            if key not in v:
                return cur
            x = v[key]
            if none_if == "nan" and np.isnan(x):
                return None
            return float(x)

        units = []
        for u in chip.compute:
            pre = f"chip.compute.{u.kind}"
            peak = {k: num(f"{pre}.peak.{k}", x) for k, x in u.peak.items()}
            sparse = {k: num(f"{pre}.sparse_peak.{k}", x) for k, x in (u.sparse_peak or {}).items()}
            eff = num(f"{pre}.efficiency", u.efficiency)
            units.append(replace(u, peak=peak, sparse_peak=sparse, efficiency=eff))
        levels = []
        for m in chip.memory:
            pre = f"chip.memory.{m.name}"
            levels.append(replace(m, capacity_bytes=num(f"{pre}.capacity", m.capacity_bytes),
                                  bandwidth_bytes_per_s=num(f"{pre}.bandwidth", m.bandwidth_bytes_per_s),
                                  latency_s=num(f"{pre}.latency", m.latency_s),
                                  efficiency=num(f"{pre}.efficiency", m.efficiency),
                                  energy_per_byte_j=num(f"{pre}.energy_per_byte", m.energy_per_byte_j),
                                  efficiency_by_kind={k: num(f"{pre}.efficiency_by_kind.{k}", x)
                                                      for k, x in (m.efficiency_by_kind or {}).items()}))
        epf = {k: num(f"chip.power.energy_per_flop.{k}", x) for k, x in (chip.energy_per_flop_j or {}).items()}
        new_chip = replace(chip, cores=int(v.get("chip.cores", chip.cores)), compute=tuple(units), memory=tuple(levels),
                           launch_overhead_s=num("chip.launch_overhead", chip.launch_overhead_s),
                           tdp_w=num("chip.power.tdp", chip.tdp_w), idle_w=num("chip.power.idle", chip.idle_w),
                           energy_per_flop_j=epf, cloud_usd_per_s=num("chip.price.cloud", chip.cloud_usd_per_s, "nan"),
                           list_price_usd=num("chip.price.list", chip.list_price_usd, "nan"))
        tiers = tuple(replace(t, bandwidth_bytes_per_s=num(f"system.tiers.{t.name}.bandwidth", t.bandwidth_bytes_per_s),
                              latency_s=num(f"system.tiers.{t.name}.latency", t.latency_s),
                              efficiency=num(f"system.tiers.{t.name}.efficiency", t.efficiency))
                      for t in sysobj.tiers)
        return replace(sysobj, chip=new_chip, tiers=tiers,
                       cloud_usd_per_s=num("system.price.cloud", sysobj.cloud_usd_per_s, "nan"),
                       list_price_usd=num("system.price.list", sysobj.list_price_usd, "nan"),
                       power_overhead_w=num("system.power.overhead", sysobj.power_overhead_w))

    def slice(self, start: int, stop: int) -> HwPoints:
        out = HwPoints.__new__(HwPoints)
        out.system, out.base = self.system, self.base
        out.values = {k: v[start:stop] for k, v in self.values.items()}
        out.n = max(0, min(stop, self.n) - start)
        return out

    def take(self, idx) -> HwPoints:
        out = HwPoints.__new__(HwPoints)
        out.system, out.base = self.system, self.base
        idx = np.asarray(idx)
        out.values = {k: np.asarray(v)[idx] for k, v in self.values.items()}
        out.n = int(idx.size) if idx.dtype != bool else int(idx.sum())
        return out


# ---------------------------------------------------------------------------------------------
# results

@dataclass
class OpArrays:
    """One op priced at every point: arrays of length P (or scalars where nothing varies)."""

    kind: str
    count: int
    compute_s: object
    memory_s: object
    comm_s: object
    overhead_s: object
    time_s: object
    flops: float
    bytes_main: object
    energy_j: object
    level_bytes: list  # per memory level (chip.memory order): bytes moved, array or scalar

    def bound(self) -> np.ndarray:
        """0 compute, 1 memory, 2 comm, 3 overhead (first largest, as the scalar model's max)."""
        terms = np.broadcast_arrays(self.compute_s, self.memory_s, self.comm_s, self.overhead_s)
        return np.argmax(np.stack(terms), axis=0)


BOUNDS = ("compute", "memory", "comm", "overhead")


@dataclass
class GraphArrays:
    """A whole step at every point (as :class:`sim.estimate.GraphCost`, with arrays)."""

    time_s: np.ndarray  # (P,) the step, all pipeline stages
    stage_s: np.ndarray
    compute_s: np.ndarray
    comm_s: np.ndarray
    flops: float  # per chip, per step (one stage): the same at every point
    bytes_main: np.ndarray  # (P,)
    energy_j: np.ndarray  # (P,)
    level_bytes: np.ndarray  # (P, levels): count-weighted bytes per memory level, per chip per stage
    pp: int = 1
    op_time_s: np.ndarray | None = None  # (P, ops) when keep_ops
    op_names: tuple = ()


# ---------------------------------------------------------------------------------------------
# the model

def _interp_eff(table, size):
    """interpolate_efficiency(table, size) for an array of sizes (same arithmetic, per element)."""
    size = np.asarray(size, dtype=float)
    out = np.full(size.shape, table[-1][1], dtype=float)
    out = np.where(size <= table[0][0], table[0][1], out)
    logs = np.log(np.maximum(size, 1e-300))
    done = (size <= table[0][0]) | (size >= table[-1][0])
    for (s0, f0), (s1, f1) in itertools.pairwise(table):
        inside = ~done & (s0 <= size) & (size <= s1)
        if inside.any():
            t = (logs - math.log(s0)) / (math.log(s1) - math.log(s0))
            out = np.where(inside, f0 + t * (f1 - f0), out)
            done = done | inside
    return out


class VectorCostModel:
    """Prices ops at every point of ``hw``; mirrors :class:`sim.cost.CostModel` formula by formula."""

    def __init__(self, hw: HwPoints, options: CostOptions = _DEFAULT, resident_bytes: float = 0.0, tp: int = 1):
        self.hw = hw
        self.system = hw.system
        self.chip = self.system.chip
        self.options = options
        self.tp = tp
        self.view = _view(self.chip)
        mem = self.chip.memory
        self.levels = mem
        self.L = len(mem)
        self.idx = {m.name: i for i, m in enumerate(mem)}
        self.main = self.idx[self.view.main.name]
        self.cache = None if self.view.cache_level is None else self.idx[self.view.cache_level.name]
        self.core = None if self.view.core_level is None else self.idx[self.view.core_level.name]
        on_chip = self.view.cache_level or self.view.core_level
        self.on_chip = None if on_chip is None else self.idx[on_chip.name]
        g = hw.get
        self.cores = g("chip.cores")
        self.bw = [g(f"chip.memory.{m.name}.bandwidth") for m in mem]
        self.lat = [g(f"chip.memory.{m.name}.latency") for m in mem]
        self.cap = [g(f"chip.memory.{m.name}.capacity") for m in mem]
        self.eff_table = [m.efficiency if isinstance(m.efficiency, (tuple, list)) else None for m in mem]
        self.eff = [None if t is not None else g(f"chip.memory.{m.name}.efficiency") for m, t in zip(mem, self.eff_table)]
        self.eff_kind = [{k: g(f"chip.memory.{m.name}.efficiency_by_kind.{k}") for k in (m.efficiency_by_kind or {})}
                         for m in mem]
        self.launch = g("chip.launch_overhead")
        self.tdp = g("chip.power.tdp")
        self.idle = g("chip.power.idle")
        self._home(resident_bytes)
        self._memo: dict = {}
        self._rates: dict = {}

    # -- placement --------------------------------------------------------------------------
    def _home(self, resident: float) -> None:
        """Index of the home level per point (an int when it is the same everywhere)."""
        cands = [i for i, m in enumerate(self.levels) if m.kind in ("sram", "dram") and m.per == "chip"]
        home = self.main
        for i in reversed(cands):  # the innermost level that holds the resident bytes wins
            ok = np.asarray(self.cap[i]) >= resident
            if ok.ndim == 0:
                if bool(ok):
                    home = i
            else:
                home = np.where(ok, i, home)
        if isinstance(home, np.ndarray) and home.size and np.all(home == home[0]):
            home = int(home[0])
        if isinstance(home, np.ndarray) and not home.size:
            home = self.main
        sram = np.array([m.kind == "sram" for m in self.levels])
        if isinstance(home, np.ndarray):
            self.home = home
            self.act = np.where(sram[home], home, self.main)
        else:
            self.home = int(home)
            self.act = self.home if sram[self.home] else self.main

    def _add(self, cols: list, where, value) -> None:
        """cols[where] += value; ``where`` an int or an array of level indices per point."""
        if isinstance(where, (int, np.integer)):
            cols[where] = cols[where] + value
            return
        for i in np.unique(where):
            cols[i] = cols[i] + np.where(where == i, value, 0.0)

    def _traffic(self, op, fused_act: bool) -> list:
        wkv = act = 0.0
        for t in op.tensors:
            if t.role in ("weight", "kv"):
                wkv += t.bytes
            else:
                act += t.bytes
        cols = [0.0] * self.L
        if wkv:
            self._add(cols, self.home, wkv)
        if act:
            if fused_act and self.on_chip is not None:
                self._add(cols, self.on_chip, act)
            else:
                self._add(cols, self.act, act)
        return cols

    def _bw_at(self, i: int, nbytes, kind: str | None = None):
        bw = self.bw[i]
        if not self.options.use_efficiency:
            return bw
        if self.eff_table[i] is not None:
            bw = bw * _interp_eff(self.eff_table[i], np.maximum(nbytes, 1.0))
        else:
            bw = bw * self.eff[i]
        if kind is not None and kind in self.eff_kind[i]:
            bw = bw * self.eff_kind[i][kind]
        return bw

    def _memory_time(self, cols: list, kind: str | None = None):
        t = 0.0
        for i, b in enumerate(cols):
            if isinstance(b, float) or np.ndim(b) == 0:
                if b > 0:
                    t = np.maximum(t, b / self._bw_at(i, b, kind))
                continue
            if not np.any(b > 0):
                continue
            safe = np.where(b > 0, b, 1.0)
            t = np.maximum(t, np.where(b > 0, safe / self._bw_at(i, safe, kind), 0.0))
        return t

    def _rate(self, dtype: str, kind: str, sparse: bool = False, size: float | None = None):
        key = (dtype, kind, sparse)
        r = self._rates.get(key)
        if r is None:
            r = self._rates[key] = self._rate_source(dtype, kind, sparse)
        ukind, table, rkey = r
        peak = self.hw.get(f"chip.compute.{ukind}.{table}.{rkey}")
        if self.options.use_efficiency:
            eff = self.chip.unit(ukind).efficiency
            if isinstance(eff, (tuple, list)):
                return peak * interpolate_efficiency(eff, max(size or 1.0, 1.0))
            return peak * self.hw.get(f"chip.compute.{ukind}.efficiency")
        return peak

    def _rate_source(self, dtype, kind, sparse):
        """Which unit and which peak key CostModel._rate uses (structure, from the base chip)."""
        chip = self.chip
        unit = chip.matrix_unit() if kind == "matrix" else chip.vector_unit()
        use_sparse = sparse
        r = unit.rate_for(dtype, sparse=sparse)
        if r is None and kind == "matrix":
            unit = chip.vector_unit()
            use_sparse = False
            r = unit.rate_for(dtype, sparse=False)
        if r is None:
            unit = chip.vector_unit() if kind == "matrix" else chip.matrix_unit()
            use_sparse = False
            r = unit.rate_for(dtype)
        if r is None:
            raise ValueError(f"{chip.name} lists no rate for {dtype} math")
        table = "sparse_peak" if (use_sparse and unit.sparse_peak) else "peak"
        return unit.kind, table, r[1]

    def _overhead(self, op):
        if self.options.cuda_graphs:
            return 0.0
        if self.options.fused and getattr(op, "fusable", False):
            return 0.0
        return self.launch

    # -- public -----------------------------------------------------------------------------
    def op_arrays(self, op) -> OpArrays:
        c = self._memo.get(op)
        if c is None:
            kind = op.kind
            if kind == "collective":
                c = self._collective(op)
            elif kind == "gemm" and op.gemm is not None:
                c = self._gemm(op)
            elif kind == "attention" and op.attention is not None:
                c = self._attention(op)
            else:
                c = self._streaming(op)
            self._memo[op] = c
        return c

    # -- shared tail --------------------------------------------------------------------------
    def _finish(self, op, compute, memory, comm, cols, flops, latency=True) -> OpArrays:
        overhead = self._overhead(op)
        lat = 0.0
        if latency:
            for i, b in enumerate(cols):
                if isinstance(b, float) or np.ndim(b) == 0:
                    if b > 0:
                        lat = np.maximum(lat, self.lat[i])
                elif np.any(b > 0):
                    lat = np.maximum(lat, np.where(b > 0, self.lat[i], 0.0))
        time_s = np.maximum(compute, memory) + comm + overhead + lat
        if isinstance(self.home, int):
            main_b = cols[self.home] if self.home == self.main else cols[self.home] + cols[self.main]
        else:
            hb = 0.0
            for i in np.unique(self.home):
                hb = hb + np.where(self.home == i, cols[i], 0.0)
            main_b = hb + np.where(self.home != self.main, cols[self.main], 0.0)
        energy = self._energy(op, time_s, flops, compute, memory, cols)
        return OpArrays(op.kind, op.count, compute, memory, comm, overhead + lat, time_s, flops, main_b, energy, cols)

    def _energy(self, op, time_s, flops, compute, memory, cols):
        chip = self.chip
        rk = get_dtype(op.compute_dtype).rate_key
        if chip.energy_per_flop_j and rk in chip.energy_per_flop_j:
            e = flops * self.hw.get(f"chip.power.energy_per_flop.{rk}")
            for i, b in enumerate(cols):
                m = self.levels[i]
                if m.energy_per_byte_j:
                    e = e + b * self.hw.get(f"chip.memory.{m.name}.energy_per_byte")
            return e + self.idle * time_s
        tdp, idle = self.tdp, self.idle
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.minimum(1.0, np.maximum(compute, memory) / time_s)
            e = (idle + (tdp - idle) * share) * time_s
        return np.where((np.asarray(tdp) > 0) & (np.asarray(time_s) > 0), e, 0.0)

    # -- op kinds -----------------------------------------------------------------------------
    def _streaming(self, op) -> OpArrays:
        fused = self.options.fused and getattr(op, "fusable", False)
        cols = self._traffic(op, fused)
        vec = op.flops_vector / self._rate(op.compute_dtype, "vector", size=op.flops_vector) \
            if op.flops_vector else 0.0
        mat = op.flops_matrix / self._rate(op.compute_dtype, "matrix", size=op.flops_matrix) if op.flops_matrix else 0.0
        compute = np.maximum(vec, mat)
        memory = self._memory_time(cols, op.kind)
        return self._finish(op, compute, memory, 0.0, cols, op.flops_matrix + op.flops_vector, latency=not fused)

    def _collective(self, op) -> OpArrays:
        c = op.collective
        try:
            t = self._collective_time(c.op, c.bytes, self._span(c))
        except ValueError as e:
            raise ValueError(f"{op.name}: {e}") from None
        cols = self._traffic(op, False)
        res = self._finish(op, 0.0, 0.0, t, [0.0] * self.L, 0.0, latency=False)
        res.level_bytes = cols
        return res

    def _span(self, c) -> int:
        if c.op == "sendrecv" and c.group == "pp":
            return min(self.system.count, max(2, 2 * self.tp))
        return c.group_size

    def _tier_time(self, op: str, nbytes: float, p: int, ti: int, tiers):
        t = tiers[ti]
        if p <= 1 or nbytes <= 0:
            return 0.0
        g = self.hw.get
        a = g(f"system.tiers.{t.name}.latency")
        B = g(f"system.tiers.{t.name}.bandwidth") * g(f"system.tiers.{t.name}.efficiency")
        links = (p - 1) if t.topology == "fully_connected" else 1
        if op == "sendrecv":
            return nbytes / B + a
        if op == "allreduce":
            if t.in_network_reduction and t.topology == "switch":
                return nbytes / B + 2 * a
            ring = 2 * (p - 1) / p * nbytes / (B * links) + 2 * (p - 1) * a
            if t.topology == "fully_connected":
                return ring
            tree = 2 * nbytes / B + 2 * math.ceil(math.log2(p)) * a
            return np.minimum(ring, tree)
        if op in ("allgather", "reducescatter"):
            return (p - 1) / p * nbytes / (B * links) + (p - 1) * a
        if op == "alltoall":
            if t.topology in ("ring", "torus", "mesh"):
                return max(p / 4, (p - 1) / p) * nbytes / B + (p - 1) * a
            return (p - 1) / p * nbytes / (B * links) + (p - 1) * a
        raise ValueError(f"unknown collective '{op}'")

    def _collective_time(self, op: str, nbytes: float, group: int, tiers=None, count=None):
        """sim.collective.collective_time with the tiers' numbers taken from the points."""
        tiers = self.system.tiers if tiers is None else tiers
        count = self.system.count if count is None else count
        if group <= 1 or nbytes <= 0:
            return 0.0
        if group > max(count, 1) or not tiers:
            raise ValueError(f"a {op} among {group} chips needs a system of at least {group} chips; "
                             f"{self.system.name} has {count}")
        sub = System(self.system.name, self.system.source, self.chip, count, tuple(tiers))
        spans = sub.tiers_for_group(group)
        pos = {id(t): i for i, t in enumerate(tiers)}
        if len(spans) == 1 or op == "sendrecv":
            t, p = spans[-1] if op == "sendrecv" else spans[0]
            return self._tier_time(op, nbytes, p if op != "sendrecv" else 2, pos[id(t)], tiers)
        inner, p0 = spans[0]
        i0 = pos[id(inner)]
        rest, rcount = tuple(tiers[1:]), math.ceil(group / p0)
        if op == "allreduce":
            outer = self._collective_time("allreduce", nbytes / p0, rcount, rest, rcount)
            return (self._tier_time("reducescatter", nbytes, p0, i0, tiers) + outer
                    + self._tier_time("allgather", nbytes, p0, i0, tiers))
        if op in ("allgather", "reducescatter"):
            outer = self._collective_time(op, nbytes / p0, rcount, rest, rcount)
            return self._tier_time(op, nbytes, p0, i0, tiers) + outer
        if op == "alltoall":
            q = math.ceil(group / p0)
            inner_part = self._tier_time("alltoall", nbytes / q, p0, i0, tiers)
            outer = self._collective_time("alltoall", nbytes, q, rest, q)
            return inner_part + outer
        raise ValueError(f"unknown collective '{op}'")

    def _gemm(self, op) -> OpArrays:
        g = op.gemm
        m, n, k, batch = g.m, g.n, g.k, max(1, g.batch)
        dt = op.compute_dtype
        sparse = getattr(op, "sparse", False) or (self.options.sparse and any(t.role == "weight" for t in op.tensors))
        rate = self._rate(dt, "matrix", sparse=sparse, size=op.flops_matrix)
        vrate = self._rate(dt, "vector", size=op.flops_vector) if op.flops_vector else 0.0
        cols0 = self._traffic(op, False)
        flops = op.flops_matrix + op.flops_vector
        if not self.options.tiling or self.core is None:
            compute = op.flops_matrix / rate + (op.flops_vector / vrate if op.flops_vector else 0.0)
            return self._finish(op, compute, self._memory_time(cols0), 0.0, cols0, flops)
        unit = self.chip.matrix_unit()
        nm, nn, nk = unit.tile or (1, 1, 1)
        a_bytes = get_dtype(dt).bytes
        w_bytes = sum(t.bytes for t in op.tensors if t.role == "weight")
        act_in = sum(t.bytes for t in op.tensors if t.role != "weight" and not t.write)
        out_b = sum(t.bytes for t in op.tensors if t.write)
        cores = self.cores
        smem = self.cap[self.core]
        tk = max(4 * nk, GEMM_MIN_TK)
        k_p = math.ceil(k / nk) * nk
        kmax = math.ceil(k_p / (GEMM_K_STEPS_PER_SPLIT * tk))
        # unique (tm_p, tn_p) candidates in the scalar loop's order; 32x32 is always allowed
        cands: dict = {}
        for tm0 in GEMM_TILES:
            tm = max(tm0, nm) if nm > 1 else tm0
            tm_p = math.ceil(tm / nm) * nm
            for tn0 in GEMM_TILES:
                tn_p = math.ceil(tn0 / nn) * nn if nn > 1 else tn0
                always = tm0 == GEMM_TILES[0] and tn0 == GEMM_TILES[0]
                key = (tm_p, tn_p)
                cands[key] = cands.get(key, False) or always
        P = self.hw.n
        cache = self.cache
        cap = self.cap[cache] if cache is not None else None
        # columns a candidate can change (cache, home, activations' level, main); the others are
        # the op's own traffic, the same for every candidate: their memory time is taken once
        changed = {self.main}
        for w in (self.home, self.act):
            changed |= {int(w)} if isinstance(w, (int, np.integer)) else set(np.unique(w).tolist())
        if cache is not None:
            changed.add(cache)
        changed = sorted(changed)
        m_fixed = self._memory_time([0.0 if i in changed else c for i, c in enumerate(cols0)])
        # A candidate with the same tile counts as an earlier, smaller one (same waves, split and
        # traffic, more padded FLOPs) can never be strictly faster, so the earlier one wins at every
        # point: skip it. Exact only when no point spills the cache (the spill re-reads shrink with
        # the tile size); otherwise every candidate is priced.
        side = math.ceil(math.sqrt(cores)) if not isinstance(cores, np.ndarray) else np.ceil(np.sqrt(cores))
        if cache is None or not np.any(act_in + w_bytes > np.asarray(cap) / 2):
            panel_free = math.inf
        else:
            panel_free = -math.inf
        kept: list = []
        ts, cs, colsets = [], [], []
        for (tm_p, tn_p), always in cands.items():
            need = 2 * (tm_p + tn_p) * tk * a_bytes
            valid = True if always else (np.asarray(smem) >= need)
            if valid is not True and not np.any(valid):
                continue
            mt, nt = math.ceil(m / tm_p), math.ceil(n / tn_p)
            if any(q_mt == mt and q_nt == nt and q_tm <= tm_p and q_tn <= tn_p and q_need <= need
                   and max(tm_p, q_tm) <= panel_free for q_tm, q_tn, q_mt, q_nt, q_need in kept):
                continue
            kept.append((tm_p, tn_p, mt, nt, 0 if always else need))
            tiles = mt * nt * batch
            if isinstance(cores, np.ndarray):
                split = np.where(tiles < cores, np.maximum(1, np.minimum(cores // tiles, kmax)), 1)
                units = tiles * split
                waves = -(-units // cores)
                unit_flops = 2.0 * tm_p * tn_p * np.ceil(k_p / split)
            else:
                split = max(1, min(cores // tiles, kmax)) if tiles < cores else 1
                units = tiles * split
                waves = math.ceil(units / cores)
                unit_flops = 2.0 * tm_p * tn_p * math.ceil(k_p / split)
            compute = waves * unit_flops / (rate / cores)
            cols = list(cols0)
            if cache is not None:
                cols[cache] = cols[cache] + (act_in * nt + w_bytes * mt + out_b)
                spill = act_in + w_bytes > np.asarray(cap) / 2
                if np.any(spill):
                    extra_a = np.where(spill, act_in * np.maximum(0, np.ceil(n / (side * tn_p)) - 1), 0.0)
                    extra_b = np.where(spill, w_bytes * np.maximum(0, np.ceil(m / (side * tm_p)) - 1), 0.0)
                    self._add(cols, self.home, extra_b)
                    self._add(cols, self.act, extra_a)
            if np.any(np.asarray(split) > 1):
                cols[self.main] = cols[self.main] + np.where(np.asarray(split) > 1,
                                                             2 * (split - 1) * m * n * batch * PARTIAL_SUM_BYTES, 0.0)
            mem = np.maximum(m_fixed, self._memory_time([cols[i] if i in changed else 0.0 for i in range(self.L)]))
            t = np.maximum(compute, mem)
            if valid is not True:
                t = np.where(valid, t, np.inf)
            ts.append(np.broadcast_to(t, (P,)))
            cs.append(np.broadcast_to(compute, (P,)))
            colsets.append([np.broadcast_to(np.asarray(cols[i], dtype=float), (P,)) for i in changed])
        if not ts:  # no tile fits the per-core memory at any point (the scalar loop has no answer either)
            ts, cs, colsets = [np.full(P, np.inf)], [np.full(P, np.inf)], [[np.zeros(P) for _ in changed]]
        # the least time wins, the first candidate on ties (as the scalar loop's strict '<')
        pick = np.argmin(np.stack(ts), axis=0)
        ar = np.arange(P)
        best_c = np.stack(cs)[pick, ar]
        best_cols = list(cols0)
        for j, i in enumerate(changed):
            best_cols[i] = np.stack([cset[j] for cset in colsets])[pick, ar]
        compute = best_c
        if op.flops_vector:
            compute = np.maximum(compute, op.flops_vector / vrate)
        return self._finish(op, compute, self._memory_time(best_cols), 0.0, best_cols, flops)

    def _attention(self, op) -> OpArrays:
        a = op.attention
        dt = op.compute_dtype
        flops = op.flops_matrix + op.flops_vector
        cols = self._traffic(op, False)
        cores = self.cores
        rate = self._rate(dt, "matrix", size=op.flops_matrix)
        vec_rate = self._rate("fp32", "vector", size=op.flops_vector)
        nreq = len(a.seqs)
        if a.kernel == "paged" or a.phase == "decode":
            units = max(1, nreq * a.kv_heads)
            max_kv = max((kv for _, kv in a.seqs), default=1)
            kv_split = math.ceil(max_kv / DECODE_KV_SPLIT)
            if isinstance(cores, np.ndarray):
                split = np.where(units >= cores, 1.0, np.maximum(1.0, np.minimum(np.ceil(cores / units), kv_split)))
                active = np.minimum(cores, units * split)
            else:
                split = 1 if units >= cores else max(1, min(math.ceil(cores / units), kv_split))
                active = min(cores, units * split)
            frac = active / cores
            memory = self._memory_time(cols) / frac
            compute = op.flops_matrix / (rate * frac) + op.flops_vector / (vec_rate * frac)
            return self._finish(op, compute, memory, 0.0, cols, flops)
        br = FLASH_BLOCK_ROWS
        blocks = sum(math.ceil(q / br) for q, _ in a.seqs) * a.heads
        if isinstance(cores, np.ndarray):
            waves = np.ceil(blocks / cores)
        else:
            waves = math.ceil(blocks / cores)
        wq = waves * cores / max(blocks, 1)
        compute = np.maximum(op.flops_matrix / rate, op.flops_vector / vec_rate) * wq
        if a.kernel != "naive" and self.cache is not None:
            kvb = kv_read_bytes(op)
            qblocks = sum(math.ceil(q / br) for q, _ in a.seqs) / max(nreq, 1)
            cols = list(cols)
            cols[self.cache] = cols[self.cache] + kvb * max(1.0, qblocks) * max(1, a.heads // max(a.kv_heads, 1)) \
                * visible_fraction(a)
        memory = self._memory_time(cols)
        return self._finish(op, compute, memory, 0.0, cols, flops)


# ---------------------------------------------------------------------------------------------
# whole graphs

def _full(x, n):
    a = np.asarray(x, dtype=float)
    return np.broadcast_to(a, (n,)) if a.ndim == 0 else a


def evaluate_ops(ops, hw: HwPoints, options: CostOptions = _DEFAULT, resident_bytes: float = 0.0,
                 tp: int = 1, chunk: int = 32768) -> list:
    """Price ``ops`` at every point, chunk by chunk; returns per op a dict of (P,) arrays.

    Keys: time_s, energy_j, bytes_main, level_bytes (P, levels); plus kind, count, flops.
    Ops that occur in several graphs (the GEMMs of decode steps at different contexts) are
    priced once when passed once.
    """
    n = hw.n
    out = [{"kind": op.kind, "count": op.count, "flops": op.flops_matrix + op.flops_vector,
            "time_s": np.empty(n), "energy_j": np.empty(n), "bytes_main": np.empty(n),
            "level_bytes": np.empty((n, len(hw.system.chip.memory)))} for op in ops]
    for s in range(0, n, chunk):
        part = hw.slice(s, s + chunk)
        m = part.n
        vm = VectorCostModel(part, options, resident_bytes, tp)
        for op, o in zip(ops, out):
            c = vm.op_arrays(op)
            o["time_s"][s:s + m] = _full(c.time_s, m)
            o["energy_j"][s:s + m] = _full(c.energy_j, m)
            o["bytes_main"][s:s + m] = _full(c.bytes_main, m)
            for i, b in enumerate(c.level_bytes):
                o["level_bytes"][s:s + m, i] = _full(b, m)
    return out


def combine_arrays(priced: list, pp: int, options: CostOptions, keep_ops: bool = False, names=()) -> GraphArrays:
    """sim.estimate.combine over arrays: the same sums in the same order."""
    n = priced[0]["time_s"].shape[0] if priced else 0
    compute = np.zeros(n)
    comm = np.zeros(n)
    energy = np.zeros(n)
    bytes_main = np.zeros(n)
    levels = np.zeros((n, priced[0]["level_bytes"].shape[1])) if priced else np.zeros((0, 0))
    flops = 0.0
    for o in priced:
        k = o["count"]
        if o["kind"] == "collective":
            comm += o["time_s"] * k
        else:
            compute += o["time_s"] * k
        flops += o["flops"] * k
        bytes_main += o["bytes_main"] * k
        energy += o["energy_j"] * k
        if o["kind"] != "collective":
            levels += o["level_bytes"] * k
    stage = np.maximum(compute, comm) if options.overlap_comm else compute + comm
    op_t = np.stack([o["time_s"] for o in priced], axis=1) if keep_ops and priced else None
    return GraphArrays(stage * pp, stage, compute, comm, flops, bytes_main, energy, levels, pp, op_t, tuple(names))


def evaluate_graph(graph, hw: HwPoints, options: CostOptions = _DEFAULT, resident_bytes: float | None = None,
                   keep_ops: bool = False, chunk: int = 32768) -> GraphArrays:
    """Price every op of ``graph`` at every point of ``hw``: the vector form of sim.estimate.estimate.

    ``resident_bytes`` (weights + KV cache per chip) decides placement as in CostModel; default:
    what the graph's footprint says (sim.estimate.resident_bytes).
    """
    from sim.estimate import resident_bytes as _resident

    par = getattr(graph, "parallel", None)
    tp = getattr(par, "tp", 1) or 1
    pp = getattr(par, "pp", 1) or 1
    res = _resident(graph) if resident_bytes is None else resident_bytes
    priced = evaluate_ops(graph.ops, hw, options, res, tp, chunk)
    return combine_arrays(priced, pp, options, keep_ops, [op.name for op in graph.ops])
