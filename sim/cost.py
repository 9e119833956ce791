"""The per-operator cost model: the one place where work meets hardware rates.

Workloads count (FLOPs, bytes per tensor, collective messages); hardware holds rates; this module
divides. Every engine (static predictor, serving simulator, sweeps, planning, ops) prices work
through ``CostModel.op_cost`` / ``estimate``.

For one op on one chip::

    compute_s  = FLOPs on the matrix unit / (peak[dtype] x efficiency), with the GEMM's tiles
                 padded to the unit's native tile and spread over the cores in waves
               + (max with) FLOPs on the vector unit / vector peak
    memory_s   = max over memory levels of (bytes moved at that level / achievable bandwidth)
                 (levels stream concurrently; the slowest one bounds the op)
    comm_s     = alpha-beta collective time on the system's tiers (sim.collective)
    time_s     = max(compute_s, memory_s) + comm_s + launch overhead + main-memory latency

``bound`` names the largest term. Where bytes live (placement): weights and the KV cache in the
innermost explicitly managed level (``sram`` or ``dram``, per chip) that holds the graph's
weights and KV cache together (HBM on a GPU, on-chip SRAM on Groq/Cerebras), else the next one
out; activations in main memory between kernels, except for fusable ops when fusion is on
(then they stay in the innermost chip-level on-chip memory).

GEMM tiling (LLMCompass-style, analytical): candidate CTA tiles (Tm, Tn) that fit twice
(double buffering) in the per-core memory with a K-step of 4 native K; the number of tiles,
split-K when tiles are fewer than cores, waves = ceil(work units / cores); traffic from the
chip-level cache to the cores = A x ceil(n/Tn) + B x ceil(m/Tm) + C; traffic from main memory =
A + B + C, plus, when A + B exceed half the cache, the re-reads A x (ceil(n / (s Tn)) - 1) +
B x (ceil(m / (s Tm)) - 1) of a wave of s x s tiles (s = ceil(sqrt(cores))). The candidates are
evaluated at once (numpy arrays along one axis); the one with the least time wins (the first on ties).

Options that default off (``CostOptions``): 2:4 sparsity (``sparse``: every GEMM with a weight
tensor runs at the chip's ``sparse_peak``; without it only ops the graph marks ``Op.sparse``,
see ``build_graph(sparsity=...)``, do; attention never does), and per-tile dequantization of
weight-only quantized GEMMs (``dequant_per_tile``, below in ``_gemm``).

One formula source: every formula here is written once over ``hwmodels.arith`` (numbers or numpy
arrays). ``CostModel(system)`` prices one op on one chip in plain Python floats (the per-op path,
the serving loop); ``CostModel(HwPoints(system, {key: array}))`` prices the same op at ``P``
design points at once (sweeps, ``sim.vector``). Hardware numbers are read by canonical key
(sim/hwparams.py) in both cases.

``kind_scale`` (an option) multiplies the time of every op of a kind (key ``kind``), or of a kind with a
given bound (key ``kind/bound``, the bound of its unscaled terms), by a factor: the prediction
intervals (sim/uncertainty) re-price with the error model's low and high ends through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwmodels.arith import ARRAYS, NUMBERS, at_level as _at_level, isarr, vwhere
from hwmodels.chip import PATTERN_OF_KIND, Chip, MemoryLevel, bandwidth_at, interpolate_efficiency
from hwmodels.dtype import get_dtype
from hwmodels.stack import DecodeKernel
from sim import costmemo
from sim.collective import collective_time
from sim.attention import (  # noqa: F401
    decode_combine_trips,
    decode_kernel_at,
    decode_prepare_time,
    decode_splits,
    decode_tile_pad,
    decode_tile_serial,
    flash_prefill,
    kv_read_bytes,
    tile_work,
    kv_rereads,
    visible_fraction,
    waves,
)
from sim.costtypes import BOUNDS, CostOptions, OpArrays, OpCost  # noqa: F401  (re-exported)
from sim.gemmcost import (  # noqa: F401  (re-exported)
    DEQUANT_TILE_ROWS,
    GEMM_K_STEPS_PER_SPLIT,
    GEMM_MIN_TK,
    GEMM_TILES,
    PARTIAL_SUM_BYTES,
    GemmPricing,
    _levels_in,
)
from sim.hwparams import HwPoints, scalar_points
from sim.rowkernels import row_trips
from workloads.graph import seq_blocks, seq_count, seq_max_second

_MIN = np.minimum.reduce  # ndarray.min without its Python wrapper

#: op costs memoized per CostModel before the memo is cleared (bounds memory in long runs)
MEMO_LIMIT = 50_000

# Constants of the formulas below (docs/cost-model.md); the GEMM ones live in sim/gemmcost.py.
PARTIAL_BYTES = 4.0  # split-KV partial outputs and log-sum-exps are fp32 (FlashAttention-2 out_accum, lse_accum)
FLASH_BLOCK_ROWS = 128  # flash prefill: query rows per block
# softmax overlapped with the matrix work (CostOptions.softmax = overlapped): FlashAttention-3's
# ping-pong schedule runs two consumer warpgroups per SM, one's softmax under the other's GEMMs
# (Shah et al. 2024, sec. 3.1), so a block takes max(GEMM, (GEMM + softmax) / 2)
PINGPONG_WARPGROUPS = 2


@dataclass
class _View:
    """What the cost model needs from a chip's structure, derived once."""

    chip: Chip
    core_level: MemoryLevel | None
    cache_level: MemoryLevel | None  # innermost chip-level on-chip memory (L2, global SRAM)
    main: MemoryLevel


def _view(chip: Chip) -> _View:
    core = next((m for m in chip.memory if m.per == "core" and m.kind in ("sram", "cache")), None)
    cache = next((m for m in chip.memory if m.per == "chip" and m.kind in ("sram", "cache")), None)
    return _View(chip, core, cache, chip.main_memory)


class CostModel(GemmPricing):
    """Prices ops on one system (or on ``P`` design points of one, given an ``HwPoints``).

    ``op_cost(op)`` -> OpCost (one chip: every figure a float, with the bound and a detail);
    ``op_arrays(op)`` -> OpArrays (any number of points). Both are memoized by op (ops are frozen).
    """

    def __init__(self, system, options: CostOptions = CostOptions(), resident_bytes: float = 0.0, tp: int = 1,
                 shared_memo: bool = True):
        hw = system if isinstance(system, HwPoints) else scalar_points(system)
        self.hw = hw
        self.system = hw.system
        self.chip = chip = self.system.chip
        self.options = options
        self.tp = tp
        self.view = _view(chip)
        mem = chip.memory
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
        # a level's efficiency: its table by transfer size (structure), else the fraction (a parameter)
        self.eff = [m.efficiency if isinstance(m.efficiency, (tuple, list)) else g(f"chip.memory.{m.name}.efficiency")
                    for m in mem]
        self.eff_kind = [{k: g(f"chip.memory.{m.name}.efficiency_by_kind.{k}") for k in (m.efficiency_by_kind or {})}
                         for m in mem]
        # a streaming kind with no factor of its own takes its access pattern's (efficiency_by_pattern)
        for m, byk in zip(mem, self.eff_kind):
            for k, pat in PATTERN_OF_KIND.items():
                if k not in byk and pat in (m.efficiency_by_pattern or {}):
                    byk[k] = g(f"chip.memory.{m.name}.efficiency_by_pattern.{pat}")
        self.launch = g("chip.launch_overhead")
        self.fixed = g("chip.kernel_fixed_time")
        self.tdp = g("chip.power.tdp")
        self.idle = g("chip.power.idle")
        self.scale = dict(options.kind_scale)
        self.arrays = bool(hw.values)
        # the formulas' max/min/where/ceil: the builtins for one chip, elementwise for design points
        self.x = ARRAYS if self.arrays else NUMBERS
        self._rates: dict = {}
        self._bws: dict = {}  # (level, bytes, op kind) -> achievable bandwidth (one chip)
        # one system priced (not design points): the process-wide memo (sim/costmemo.py), else its own
        self._shared = shared_memo and costmemo.ENABLED and not isinstance(system, HwPoints)
        self._set_home(resident_bytes)
        self._bind_memo()

    def over_steps(self) -> CostModel:
        """This model (same hardware, options and placement) with the formulas' helpers elementwise:
        it prices ops whose shape quantities are arrays, e.g. the attention ops of many decode
        contexts at once (``workloads.stepops.attention_ops`` over a ``SeqArrays``), or a GEMM at many
        token counts at once (its ``GemmShape`` M, batch and routed tokens, FLOPs and tensor bytes
        arrays over the counts: ``workloads.opdata.stacked`` of the GEMM built at each count), with
        the same formulas as one op at a time: each element equals pricing that element's op alone
        (tests/unit/test_gemm_arrays.py, test_predict_fast.py). ``_price(op)`` -> OpArrays; not
        memoized (arrays do not hash)."""
        import copy

        twin = copy.copy(self)
        twin.__dict__.pop("_rate", None)  # a caller's per-instance memo of _rate takes numbers only
        twin.x, twin.arrays = ARRAYS, True
        twin._memo, twin._amemo, twin._shared = {}, {}, False
        return twin

    def _elementwise(self) -> CostModel:
        """This model's ``over_steps`` twin, made once (the tile search evaluates its candidates as
        arrays through it); an elementwise model is its own."""
        if self.arrays:
            return self
        twin = self.__dict__.get("_twin")
        if twin is None:
            twin = self._twin = self.over_steps()
        return twin

    # -- placement --------------------------------------------------------------------------
    def _bind_memo(self) -> None:
        """Take the memo tables of this model's context (hardware content, options, tp, placement):
        shared with every model of the same context (sim/costmemo.py), or new ones of its own."""
        self._memo: dict = {}  # op -> OpCost
        self._amemo: dict = {}  # op -> OpArrays
        key = self.context_key()
        if key is None:  # design points, the shared memo off, or an option value that does not hash
            self._shared = False
            return
        self._memo, self._amemo = costmemo.tables(key)

    def context_key(self):
        """What pricing reads besides the op (hardware content, options, tp, placement), hashable: the key of
        the shared memo (sim/costmemo.py) and of the serving steps' shared parts (sim.step); None where this
        model keeps its own memo."""
        if not self._shared:
            return None
        key = (costmemo.hardware_key(self.hw), self.options, self.tp, self.home_index, self.part_index,
               self.part_share, self.act)
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def _set_home(self, resident: float) -> None:
        self._place(_home_of(self.levels, self.cap, resident, self.main))
        self._set_partial(resident, _managed(self.levels))

    @staticmethod
    def home_for(system, resident_bytes: float) -> MemoryLevel:
        """The level where weights and KV of ``resident_bytes`` live on ``system`` (one chip), without
        building a model: for callers that keep one model per placement."""
        hw = scalar_points(system)
        chip = hw.system.chip
        caps = [hw.get(f"chip.memory.{m.name}.capacity") for m in chip.memory]
        main = next(i for i, m in enumerate(chip.memory) if m.name == chip.main_memory.name)
        return chip.memory[_home_of(chip.memory, caps, resident_bytes, main)]

    def _set_partial(self, resident: float, cands: list) -> None:
        """Partial residency: when the innermost on-chip SRAM level (kind sram, per chip) does not hold
        all ``resident`` bytes, it holds the share that fits and the rest stays at home; an op reads
        its weights and KV from both levels at once (the memory time is the slower of the two), so
        the share is capped where both take equally long, bw_sram / (bw_sram + bw_home): more SRAM
        then buys nothing. Per point when capacities vary; no split where the SRAM is the home."""
        self.part_index, self.part_share = None, 0.0
        sram = [i for i in cands if self.levels[i].kind == "sram"]
        if not sram or not resident or resident <= 0:
            return
        s, home, x = sram[0], self.home_index, self.x
        bw_home = _at_level(self.bw, home)
        share = x.min(x.min(1.0, self.cap[s] / resident), self.bw[s] / (self.bw[s] + bw_home))
        share = x.where(np.asarray(home) <= s, 0.0, share)  # the SRAM (or a level inside it) holds it all
        if not x.any(share > 0):
            return
        self.part_index, self.part_share = s, share

    def _place(self, home) -> None:
        sram = np.array([m.kind == "sram" for m in self.levels])
        self.home_index = home
        self.part_index, self.part_share = None, 0.0
        # activations live in main memory between kernels, unless the home is on-chip SRAM
        self.act = np.where(sram[home], home, self.main) if isarr(home) else (home if sram[home] else self.main)

    def same_placement_as(self, other: CostModel) -> None:
        """Place weights, KV and activations as ``other`` does (a draft or verify step priced like its target)."""
        self._place(other.home_index)
        self.part_index, self.part_share = other.part_index, other.part_share
        self._bind_memo()

    def placement(self, weights_bytes: float, kv_bytes: float, activation_bytes: float) -> dict:
        """Where the tensors live between kernels (one chip): {'weights' | 'kv_cache' | 'activations':
        {level name: bytes}}, by the rule the traffic is priced with (home level, partial SRAM share)."""
        def at(i) -> str:
            return self.levels[int(i if not isarr(i) else i[0])].name

        share = self.part_share if not isarr(self.part_share) else float(self.part_share[0])

        def split(nbytes: float) -> dict:
            if self.part_index is None or share <= 0:
                return {at(self.home_index): nbytes}
            return {at(self.part_index): nbytes * share, at(self.home_index): nbytes * (1 - share)}

        return {"weights": split(weights_bytes), "kv_cache": split(kv_bytes),
                "activations": {at(self.act): activation_bytes}}

    @property
    def home(self) -> MemoryLevel:
        """The home level (one chip; with varying points, the first point's)."""
        h = self.home_index
        return self.levels[int(h if not isarr(h) else h[0])]

    @home.setter
    def home(self, level: MemoryLevel) -> None:
        self._place(self.idx[level.name])
        self._bind_memo()

    def _add(self, cols: list, where, value) -> None:
        """cols[where] += value; ``where`` a level index, or an array of them (one per point)."""
        if not isarr(where):
            cols[where] = cols[where] + value
            return
        for i in _levels_in(where, self.L):
            cols[i] = cols[i] + np.where(where == i, value, 0.0)

    def _traffic(self, op, fused_act: bool) -> list:
        """Bytes per level from the op's tensors: weights/KV at home (a share in SRAM, see _set_partial),
        activations at main or on chip."""
        wkv = act = 0.0
        for t in op.tensors:
            if t.role in ("weight", "kv"):
                wkv += t.bytes
            else:
                act += t.bytes
        cols = [0.0] * self.L
        x = self.x
        if not x.any(wkv):
            pass
        elif self.part_index is not None:  # partial residency: the SRAM's share, the rest at home
            self._add(cols, self.part_index, wkv * self.part_share)
            self._add(cols, self.home_index, wkv * (1 - self.part_share))
        else:
            self._add(cols, self.home_index, wkv)
        if x.any(act):
            self._add(cols, self.on_chip if fused_act and self.on_chip is not None else self.act, act)
        return cols

    def _fresh_from_cache(self, op, cols: list) -> list:
        """Inter-kernel L2 residency: the ``op.fresh_bytes`` of its input that the previous kernel just wrote
        are read from the chip-level cache instead of main memory when they are still there. With a
        least-recently-used cache a line written at position j of the fresh tensor survives until the op
        reads it if the lines the previous kernel wrote after it (the rest of its output, ``span`` =
        ``op.fresh_span`` bytes in all, at least the fresh ones) plus the op's other traffic before it (its
        other inputs and outputs, read and written alongside) fit in the cache: for the line at share u,
        (1 - u) x span + u x (bytes - fresh). Where the other traffic exceeds the span that grows along it
        and the first share u with ``span + u (bytes - fresh - span) <= capacity`` survives (a residual add
        over a tensor above half the cache reads its head from L2). Otherwise the last lines would survive,
        but every evicted line the op reads before them comes back into the cache and pushes them out (a
        scan larger than an LRU cache keeps nothing): the tensor is read from the cache iff max(span, other
        bytes) <= capacity."""
        f = getattr(op, "fresh_bytes", 0.0)
        c = self.cache
        x = self.x
        if c is None or not x.any(f):
            return cols
        cap = self.cap[c]
        span = x.max(getattr(op, "fresh_span", 0.0), f)  # what the previous kernel wrote, the fresh bytes among it
        slope = op.bytes - f - span  # the bytes between writing and reading a line grow (> 0) or shrink along it
        head = x.min(1.0, x.max(0.0, (cap - span) / x.where(slope > 0, slope, 1.0)))  # its first lines survive
        mv = f * x.where(slope > 0, head, x.where(span <= cap, 1.0, 0.0))
        if isarr(self.act):  # per point: only where activations live in main memory
            mv = np.where(self.act == self.main, mv, 0.0)
        elif self.act != self.main:
            return cols
        cols = list(cols)
        cols[self.main] = cols[self.main] - mv
        cols[c] = cols[c] + mv
        return cols

    def _bw(self, i: int, nbytes, kind: str | None = None):
        """Achievable bandwidth of level ``i`` for ``nbytes``; ``kind`` (streaming ops only) selects the
        level's ``efficiency_by_kind`` factor for that op kind, else its access pattern's
        ``efficiency_by_pattern`` fraction (an embedding is a row gather)."""
        if not self.options.use_efficiency:
            return self.bw[i]
        if self.arrays:
            return bandwidth_at(self.bw[i], self.eff[i], nbytes, self.eff_kind[i].get(kind) if kind else None)
        key = (i, nbytes, kind)  # one chip: the tile search asks for the same transfers again
        bw = self._bws.get(key)
        if bw is None:
            if len(self._bws) >= MEMO_LIMIT:
                self._bws.clear()
            bw = self._bws[key] = bandwidth_at(self.bw[i], self.eff[i], nbytes,
                                               self.eff_kind[i].get(kind) if kind else None)
        return bw

    def _memory_time(self, cols: list, kind: str | None = None):
        """The slowest level bounds the op: max over levels of bytes / achievable bandwidth."""
        x = self.x
        t = 0.0
        for i, b in enumerate(cols):
            if not x.isarr(b):
                if b > 0:
                    t = x.max(t, b / self._bw(i, b, kind))
            elif b.size and _MIN(b, axis=None) > 0:  # every element moves bytes here (steps of a run): fewer calls
                t = x.max(t, b / self._bw(i, b, kind))
            elif b.any():
                pos = b > 0
                safe = np.where(pos, b, 1.0)
                t = x.max(t, np.where(pos, safe / self._bw(i, safe, kind), 0.0))
        return t

    def _rate(self, dtype: str, kind: str, sparse: bool = False, size: float | None = None):
        """Achievable FLOP/s for ``dtype`` math on ``kind``; a unit's efficiency table is read at
        ``size`` (the op's FLOPs on that unit per execution), a plain fraction applies as is."""
        key = (dtype, kind, sparse)
        src = self._rates.get(key)
        if src is None:
            src = self._rates[key] = self._rate_source(dtype, kind, sparse)
        ukind, table, rkey, eff = src
        peak = self.hw.get(f"chip.compute.{ukind}.{table}.{rkey}")
        if not self.options.use_efficiency:
            return peak
        if type(eff) is float:  # a fraction: the same at every size (no size array to clamp)
            return peak * eff
        return peak * interpolate_efficiency(eff, 1.0 if size is None else self.x.max(size, 1.0))

    def _rate_source(self, dtype, kind, sparse) -> tuple:
        """(unit kind, peak table, rate key, efficiency) used for ``dtype`` math on ``kind``: the unit of
        that kind, else the other unit (a matrix op with no matrix rate runs on the vector unit)."""
        chip = self.chip
        unit = chip.matrix_unit() if kind == "matrix" else chip.vector_unit()
        use_sparse = sparse
        r = unit.rate_for(dtype, sparse=sparse)
        if r is None and kind == "matrix":
            unit, use_sparse = chip.vector_unit(), False
            r = unit.rate_for(dtype, sparse=False)
        if r is None:
            unit, use_sparse = (chip.vector_unit() if kind == "matrix" else chip.matrix_unit()), False
            r = unit.rate_for(dtype)
        if r is None:
            raise ValueError(f"{chip.name} lists no rate for {dtype} math")
        table = "sparse_peak" if (use_sparse and unit.sparse_peak) else "peak"
        eff = unit.efficiency_for(r[1])
        if not isinstance(eff, (tuple, list)):  # a fraction is a parameter (a sweep or override may vary it)
            eff = self.hw.get(f"chip.compute.{unit.kind}.efficiency_by_dtype.{r[1]}" if r[1] in unit.efficiency_by_dtype
                              else f"chip.compute.{unit.kind}.efficiency")
        return unit.kind, table, r[1], eff

    def _overhead(self, op):
        """The fixed time of one kernel (docs/cost-model.md, Fixed time per kernel): none for an op fused
        into its neighbour (no kernel of its own); else the chip's GPU-side ``kernel_fixed_time`` (grid
        launch, block scheduling, drain: paid under CUDA graphs too), plus, when launched eagerly (not
        ``cuda_graphs``), the CPU's ``launch_overhead``: a kernel the CPU cannot run ahead of waits for its
        launch. (A serving stack prices the eager launches of a whole step itself: Stack.step_time.)"""
        if self.options.fused and getattr(op, "fusable", False):
            return 0.0
        if self.options.cuda_graphs:
            return self.fixed
        return self.fixed + self.launch

    # -- public -----------------------------------------------------------------------------
    def op_arrays(self, op) -> OpArrays:
        c = self._amemo.get(op)
        if c is None:
            c = self._price(op)
            if len(self._amemo) >= MEMO_LIMIT:
                self._amemo.clear()
            self._amemo[op] = c
            if self._shared:
                costmemo.added()
        return c

    def op_cost(self, op) -> OpCost:
        c = self._memo.get(op)
        if c is None:
            c = self._to_cost(op, self._price(op))
            if len(self._memo) >= MEMO_LIMIT:  # long serving runs see endless attention shapes
                self._memo.clear()
            self._memo[op] = c
            if self._shared:
                costmemo.added()
        return c

    def _to_cost(self, op, p: OpArrays) -> OpCost:
        if self.arrays:
            raise ValueError("op_cost prices one chip; this model holds several design points (use op_arrays)")
        terms = (p.compute_s, p.memory_s, p.comm_s, p.overhead_s)
        bound = BOUNDS[max(range(4), key=terms.__getitem__)]
        levels = tuple(sorted((self.levels[i].name, b) for i, b in enumerate(p.level_bytes) if b > 0))
        return OpCost(op.name, op.kind, op.count, p.compute_s, p.memory_s, p.comm_s, p.overhead_s, p.time_s, bound,
                      p.flops, p.bytes_main, levels, p.energy_j, getattr(op, "layer", "layer"), p.detail)

    def _price(self, op) -> OpArrays:
        kind = op.kind
        if kind == "collective":
            return self._collective(op)
        if kind == "gemm" and op.gemm is not None:
            return self._gemm(op)
        if kind == "attention" and op.attention is not None:
            return self._attention(op)
        return self._streaming(op)

    # -- the shared tail ------------------------------------------------------------------------
    def _finish(self, op, compute, memory, comm, cols, flops, detail="", latency=True,
                extra_overhead=0.0, busy=None) -> OpArrays:
        """time = max(compute, memory) + comm + launch overhead + the latency of the slowest-to-reach
        level touched (+ ``extra_overhead``: a second kernel's launch and round trip); the op kind's
        ``kind_scale`` factor, energy and the main-memory bytes. ``busy``: the seconds of full power the
        compute stands for in the energy model where that is not ``compute`` (a GEMM under the power limit's
        clock model: sim.gemmcost.GemmPricing._power_limited)."""
        x = self.x
        overhead = self._overhead(op) + extra_overhead
        lat = 0.0
        if latency:
            for i, b in enumerate(cols):
                if not x.isarr(b):
                    if b > 0:
                        lat = x.max(lat, self.lat[i])
                elif b.any():
                    lat = x.max(lat, np.where(b > 0, self.lat[i], 0.0))
        overhead = overhead + lat
        s = self._scale(op.kind, (compute, memory, comm, overhead)) if self.scale else None
        if s is not None:
            compute, memory, comm, overhead = compute * s, memory * s, comm * s, overhead * s
            busy = None if busy is None else busy * s
        time_s = x.max(compute, memory) + comm + overhead
        home = self.home_index
        if not x.isarr(home):
            main_b = cols[home] if home == self.main else cols[home] + cols[self.main]
        else:
            main_b = sum(np.where(home == i, cols[i], 0.0) for i in _levels_in(home, self.L)) \
                + np.where(home != self.main, cols[self.main], 0.0)
        energy = self._energy(op, time_s, flops, compute if busy is None else busy, memory, cols)
        return OpArrays(op.kind, op.count, compute, memory, comm, overhead, time_s, flops, main_b, energy, cols, detail)

    def _scale(self, kind: str, terms):
        """The ``kind_scale`` factor of an op: its ``kind/bound`` entry (the bound of the unscaled terms, as
        OpCost.bound names it), else its kind's entry, else None."""
        s = self.scale.get(kind)
        per = [self.scale.get(f"{kind}/{b}") for b in BOUNDS]
        if all(v is None for v in per):
            return s
        per = [(1.0 if s is None else s) if v is None else v for v in per]
        if not any(self.x.isarr(t) for t in terms):
            return per[max(range(4), key=terms.__getitem__)]
        return np.asarray(per)[np.argmax(np.stack(np.broadcast_arrays(*terms)), axis=0)]

    def _energy(self, op, time_s, flops, compute, memory, cols):
        """Joules: per-FLOP and per-byte energies where the chip gives them, else a TDP model.

        Per-FLOP/per-byte: FLOPs x pJ/FLOP + bytes x pJ/B per level + idle x time, at most TDP x time (the power
        limiter holds the board at its TDP: a GEMM whose FLOPs would draw more runs at a lower clock instead).
        TDP model: P = idle + (TDP - idle) x max(compute share, memory share of the op's time);
        without an idle figure, P = TDP x the same share (documented in docs/cost-model.md).
        """
        x = self.x
        chip = self.chip
        rk = get_dtype(op.compute_dtype).rate_key
        if chip.energy_per_flop_j and rk in chip.energy_per_flop_j:
            e = flops * self.hw.get(f"chip.power.energy_per_flop.{rk}")
            for i, b in enumerate(cols):
                m = self.levels[i]
                if m.energy_per_byte_j:
                    e = e + b * self.hw.get(f"chip.memory.{m.name}.energy_per_byte")
            e = e + self.idle * time_s
            return x.where(self.tdp > 0, x.min(e, self.tdp * time_s), e)
        if x.isarr(time_s) and not x.isarr(self.tdp) and self.tdp > 0 and (time_s > 0).all():
            # every element takes time (the steps of a run): the same values as below, without the masks
            return (self.idle + (self.tdp - self.idle) * x.min(1.0, x.max(compute, memory) / time_s)) * time_s
        ok = (self.tdp > 0) & (time_s > 0)
        safe_t = x.where(ok, time_s, 1.0)
        share = x.min(1.0, x.max(compute, memory) / safe_t)
        # a chip without power data has unknown energy (NaN), never 0 J
        return x.where(ok, (self.idle + (self.tdp - self.idle) * share) * time_s, x.where(self.tdp > 0, 0.0, math.nan))

    # -- op kinds -----------------------------------------------------------------------------
    def _streaming(self, op) -> OpArrays:
        """Elementwise, norm, rope, embedding, router, dequant, sampling: a roofline per op."""
        x = self.x
        fused = self.options.fused and getattr(op, "fusable", False)
        cols = self._traffic(op, fused)
        if not fused:
            cols = self._fresh_from_cache(op, cols)
        vec = op.flops_vector / self._rate(op.compute_dtype, "vector", size=op.flops_vector) \
            if x.any(op.flops_vector) else 0.0
        mat = op.flops_matrix / self._rate(op.compute_dtype, "matrix", size=op.flops_matrix) \
            if x.any(op.flops_matrix) else 0.0
        memory = self._memory_time(cols, op.kind)  # per-kind bandwidth efficiency: streaming ops only
        if not fused:
            memory = row_trips(self, op, memory, cols)
        return self._finish(op, x.max(vec, mat), memory, 0.0, cols, op.flops_matrix + op.flops_vector,
                            latency=not fused)

    def _spilled_writes(self, op, written):
        """The written bytes of a streaming op that reach main memory while it runs: a write-back cache
        holds the last ``capacity`` bytes of the op's traffic when it ends (least recently used), so the
        writes among the rest, ``written x max(0, 1 - capacity / bytes)``, are evicted during the op;
        all of them without a chip-level cache."""
        if self.cache is None:
            return written
        x = self.x
        return written * x.max(0.0, 1.0 - self.cap[self.cache] / x.max(op.bytes, 1.0))

    def _collective(self, op) -> OpArrays:
        c = op.collective
        g = self.hw.get

        def numbers(t):
            return g(f"system.tiers.{t.name}.latency"), \
                g(f"system.tiers.{t.name}.bandwidth") * g(f"system.tiers.{t.name}.efficiency")

        span, lib = self._span(c), self.options.collectives
        try:
            if isarr(c.bytes):  # a block of step sizes (sim.step): the same formula for each size, once per size
                seen: dict = {}
                for b in c.bytes.ravel().tolist():
                    if b not in seen:
                        seen[b] = collective_time(self.system, c.op, b, span, numbers, lib)
                t = np.array([seen[b][0] for b in c.bytes.ravel().tolist()], dtype=float).reshape(c.bytes.shape)
                tiers = next(iter(seen.values()))[1] if seen else ""
            else:
                t, tiers = collective_time(self.system, c.op, c.bytes, span, numbers, lib)
        except ValueError as e:
            raise ValueError(f"{op.name}: {e}") from None
        res = self._finish(op, 0.0, 0.0, t, [0.0] * self.L, 0.0, detail=tiers, latency=False)
        # collectives are issued as kernels too; their traffic through memory overlaps the wire time
        res.level_bytes = self._traffic(op, False)
        return res

    def _span(self, c) -> int:
        """Chips a collective spans: TP groups are consecutive chips; a PP send crosses a TP group."""
        if c.op == "sendrecv" and c.group == "pp":
            return min(self.system.count, max(2, 2 * self.tp))
        return c.group_size

    def _softmax(self, op, vec_rate):
        """(vector seconds, special-function seconds, overlapped) of an attention op's softmax
        (CostOptions.softmax): ideal puts every softmax FLOP on the vector unit (special 0); serial
        and overlapped put the exponentials (``op.flops_special``) on the chip's special unit at its
        peak, overlapped under the matrix work only where the unit ``overlaps_matrix``. Special seconds
        are None when the special unit is not used (ideal, no unit, no exponentials)."""
        sfu = self.chip.unit("special")
        mode = self.options.softmax
        if mode in (None, "ideal") or sfu is None or not self.x.any(op.flops_special):
            return op.flops_vector / vec_rate, None, True
        srate = self.hw.get("chip.compute.special.peak.fp32")
        return ((op.flops_vector - op.flops_special) / vec_rate, op.flops_special / srate,
                mode == "overlapped" and sfu.overlaps_matrix)

    def _decode_attention(self, op, cols, rate, vec_rate, flops) -> OpArrays:
        """Decode (paged) attention as the stack's kernel runs it (CostOptions.decode_kernel,
        docs/cost-model.md): work units (request, KV head), or (request, query head) for a kernel
        that runs a CTA per query head (the group's L2 re-reads added); split along the KV length
        while the units fill less than ``split_threshold`` of the CTA slots; the splits' fp32 partial
        outputs written and read back by a combine kernel (in L2 when they fit: inter-kernel
        residency) with its own launch. A real kernel (``pipeline_fill``) streams its KV at most at
        Little's law's rate (bytes in flight / latency) and pays a pipeline fill (block-table read,
        then the first tile) per wave of CTAs; the kernel-only model gives the active cores their
        share of the bandwidth."""
        x = self.x
        a = op.attention
        dk = decode_kernel_at(self._decode_kernel(), a.head_dim)  # its KV tile at this head_dim
        soft = self._softmax(op, vec_rate)  # read by both tile terms
        cores = self.cores
        nreq = seq_count(a.seqs)
        per_q = dk.gqa == "per_query_head" and a.heads > a.kv_heads
        units = x.max(1, nreq * (a.heads if per_q else a.kv_heads))
        slots = cores * dk.split_ctas_per_core
        max_kv = seq_max_second(a.seqs)
        tiles = x.ceil(max_kv / dk.kv_tile_tokens)  # KV tiles of the longest context
        split = decode_splits(x, dk, units, slots, tiles, a.heads if per_q else a.kv_heads)
        if dk.split_gqa_only and a.heads == a.kv_heads:
            split = 1
        ctas = units * split
        active = x.min(cores, ctas)
        frac = active / cores
        cols = list(cols)
        if per_q and self.cache is not None:  # each query head's CTA reads its group's K and V through L2
            cols[self.cache] = cols[self.cache] + kv_read_bytes(op) * (a.heads / max(a.kv_heads, 1))
        extra = 0.0
        # (steps priced at once with no split anywhere: no partials, as one step without a split has none)
        if dk.split_partials and (not isarr(split) or split.max() > 1):
            # per split and query head: head_dim_v fp32 outputs and one fp32 log-sum-exp, written by the
            # split kernel and read by the combine kernel: from L2 when they fit there, else main memory
            part = x.where(split > 1, nreq * a.heads * split * (a.head_dim_v + 1) * PARTIAL_BYTES, 0.0)
            lvl = self.main if self.cache is None else x.where(2 * part <= self.cap[self.cache], self.cache, self.main)
            self._add(cols, lvl, 2 * part)
            lat = self.lat[self.main] if self.cache is None else x.where(lvl == self.cache, self.lat[self.cache],
                                                                          self.lat[self.main])
            # the combine kernel: a launch, its round trips (the log-sum-exps, then the partials)
            extra = x.where(split > 1, self._overhead(op) + lat * decode_combine_trips(x, dk, split), 0.0)
        extra = extra + decode_prepare_time(self, op, dk)  # a scheduler-metadata kernel before it, where the kernel runs one
        if not dk.pipeline_fill:  # the kernel-only model: the active cores' share of the bandwidth
            memory = self._memory_time(cols) / frac
        else:
            # Little's law: the KV stream reaches at most (bytes in flight) / latency, with each
            # resident CTA holding its K and V tiles of kv_tile_tokens in flight, or its whole KV
            # when shorter (a short context cannot keep the memory busy); a CTA first reads its block
            # table (paged), then its first tile: one round trip each before it streams, paid by each
            # wave of CTAs over the slots in turn (the first is the latency _finish adds)
            home = self.home_index
            lat = _at_level(self.lat, home)
            kvb = kv_read_bytes(op)
            # (kv_tiles_in_flight K or V tiles; a loop that waits for each load holds one: half its whole KV when short)
            tile = dk.kv_tile_tokens * (a.head_dim + a.head_dim_v) * get_dtype(a.kv_dtype).bytes  # one K and one V tile
            held = dk.kv_tiles_in_flight / 2
            inflight = x.min(ctas, slots) * x.min(tile * held, kvb / ctas * min(1.0, held))
            trips = 1 + (1 if dk.page_size > 0 else 0)
            # the KV gather at the kernel's share of the bandwidth, then the one tile per CTA it cannot hide
            memory = x.max(x.max(self._memory_time(cols) / dk.kv_stream_efficiency, kvb * lat / inflight),
                           (x.ceil(ctas / slots) * trips - 1) * lat) \
                + decode_tile_serial(self, op, dk, ctas, slots, rate, vec_rate, soft)
        # the whole tiles the kernel computes (padded query rows and keys), in the steady state, on the active cores
        compute = tile_work(self, op, rate, vec_rate, dk.softmax_hidden, soft)[0] * decode_tile_pad(self, op, dk, per_q) \
            / frac
        detail = "" if self.arrays else f"split-kv {split}, {active} cores" + (", per query head" if per_q else "")
        return self._finish(op, compute, memory, 0.0, cols, flops, detail=detail, extra_overhead=extra)

    def _decode_kernel(self) -> DecodeKernel:
        """The decode kernel's facts on this chip's generation (made once per model and options)."""
        dk = self.options.decode_kernel
        got = self.__dict__.get("_dk")
        if got is None or got[0] is not dk:
            got = self._dk = (dk, (dk or DecodeKernel()).on(self.chip.architecture))
        return got[1]

    def _prefill_kernel(self):
        """The prefill kernel's facts on this chip's architecture (``CostOptions.prefill_kernel``,
        PrefillKernel.on), made once per model and options, as _decode_kernel makes the decode kernel's."""
        pk = self.options.prefill_kernel
        got = self.__dict__.get("_pk")
        if got is None or got[0] is not pk:
            got = self._pk = (pk, pk.on(self.chip.architecture))
        return got[1]

    def _attention(self, op) -> OpArrays:
        x = self.x
        a = op.attention
        dt = op.compute_dtype
        flops = op.flops_matrix + op.flops_vector
        cols = self._traffic(op, False)
        cores = self.cores
        rate = self._rate(dt, "matrix", size=op.flops_matrix)
        vec_rate = self._rate("fp32", "vector", size=op.flops_vector)
        if a.kernel == "paged" or a.phase == "decode":
            return self._decode_attention(op, cols, rate, vec_rate, flops)
        pk = self.options.prefill_kernel  # a GPU kernel's facts: on chips that list the special unit they key on
        if pk is not None and a.kernel == "flash" and self.chip.unit("special") is not None:
            return flash_prefill(self, op, self._prefill_kernel(), cols, rate, vec_rate, flops)
        # flash (fused) or naive prefill: blocks of 128 query rows per (request, head)
        br = FLASH_BLOCK_ROWS
        blocks = seq_blocks(a.seqs, br) * a.heads
        nwaves, wq = waves(x, blocks, cores)
        vec, sfu, overlapped = self._softmax(op, vec_rate)
        mat = op.flops_matrix / rate
        if sfu is None:  # ideal: the softmax's vector FLOPs run under the matrix work
            compute = x.max(mat, vec) * wq
        elif overlapped:  # ping-pong: one warpgroup's softmax runs under the other's GEMMs
            compute = x.max(mat, (mat + sfu + vec) / PINGPONG_WARPGROUPS) * wq
        else:  # each warp takes turns: GEMM, then softmax (exponentials on the special unit)
            compute = (mat + sfu + vec) * wq
        if a.kernel != "naive":
            cols = kv_rereads(self, op, cols, br)
        detail = "" if self.arrays else f"{a.kernel}, {blocks} blocks, {nwaves} waves"
        return self._finish(op, compute, self._memory_time(cols), 0.0, cols, flops, detail=detail)


def _managed(levels) -> list:
    """Indices of the explicitly managed levels (sram or dram, per chip), innermost first."""
    return [i for i, m in enumerate(levels) if m.kind in ("sram", "dram") and m.per == "chip"]


def _home_of(levels, caps, resident, main):
    """The home of weights and KV: the innermost managed level (sram/dram, per chip) whose capacity
    holds ``resident`` bytes, else main memory (index; an array of them when capacities vary)."""
    home = main
    for i in reversed(_managed(levels)):
        home = vwhere(caps[i] >= resident, i, home)  # the innermost level that holds them wins
    if isarr(home):
        home = int(home[0]) if home.size and np.all(home == home[0]) else (home if home.size else main)
    return home
