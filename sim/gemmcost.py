"""GEMM pricing of the cost model: the tile search (CTA tiles, split-K, waves, the traffic each
candidate moves through the memory levels), weight-only dequantization, MoE routed blocks and the
output-store epilogue.

``CostModel`` (sim/cost.py) inherits these methods from :class:`GemmPricing`; they read the model's
chip, rates, placement and memory-time formula through ``self``, so there is still one formula per
quantity (docs/cost-model.md, "GEMM"). Split out of sim/cost.py to keep modules under 800 lines.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from hwmodels.arith import isarr
from hwmodels.dtype import get_dtype
from sim.costtypes import OpArrays
from workloads.graph import DEQUANT_FLOPS
from workloads.routing import expected_blocks, expected_touched

# Constants of the GEMM formulas (docs/cost-model.md).
GEMM_TILES = (32, 64, 128, 256)  # candidate CTA tile sizes along M and N
GEMM_MIN_TK = 32  # K-step: max(4 x native K, 32)
GEMM_K_STEPS_PER_SPLIT = 4  # split-K never cuts K below 4 K-steps
PARTIAL_SUM_BYTES = 4.0  # fp32 partial sums of split-K
DEQUANT_TILE_ROWS = 128  # an un-tiled (roofline) weight-only GEMM re-dequantizes per 128 rows of M


@dataclass
class _TileContext:
    """What the GEMM tile search reads besides the op (``CostModel._tile_context``)."""

    tm: np.ndarray  # candidate tile m (padded to the native tile), in the search order
    tn: np.ndarray  # candidate tile n
    tile_flops: np.ndarray  # 2 tm tn: a tile's FLOPs per element of K
    valid: np.ndarray | None  # per candidate (and point): its panels fit the per-core memory; None: all do
    wave_m: np.ndarray  # rows of a wave of tiles (side x side, side = ceil(sqrt(cores))), per candidate (and point)
    wave_n: np.ndarray  # its columns
    nk: int  # native tile K
    tk: int  # K-step
    changed: list  # levels whose bytes a candidate changes
    moved: list  # per level: is it one of them


class GemmPricing:
    """The GEMM methods of :class:`sim.cost.CostModel` (a mixin: it has no state of its own)."""

    def _dequant_per_tile_flops(self, op) -> float:
        """Vector FLOPs of one extra dequantization pass over a weight-only GEMM's weights (0 if
        the weights are as wide as the math). Counted per weight element as the graph's dequant op."""
        w = [t for t in op.tensors if t.role == "weight" and t.name != "bias"]
        if not w or get_dtype(w[0].dtype).bits >= get_dtype(op.compute_dtype).bits:
            return 0.0
        g = op.gemm
        return DEQUANT_FLOPS * g.n * g.k * self.x.max(1, g.batch)

    def _gemm(self, op) -> OpArrays:
        x = self.x
        m = op.gemm.m
        dt = op.compute_dtype
        sparse = getattr(op, "sparse", False) or (self.options.sparse and any(t.role == "weight" for t in op.tensors))
        rate = cap = self._rate(dt, "matrix", sparse=sparse, size=op.flops_matrix)  # cap: the power-limited rate
        if op.gemm.routing is not None and self.options.moe_efficiency is not None:
            rate = rate * self.options.moe_efficiency  # the MoE kernel's own efficiency (serving stack)
        elif getattr(op, "scale_block", 0):
            rate = rate * self._block_fp8().gemm_efficiency  # the block-scaled GEMM kernel's (serving stack)
        rate = rate * self._boost()  # the boost clock's rate (1 x where the chip gives no sustained clock)
        stream = self._moe_stream(op)
        vrate = self._rate(dt, "vector", size=op.flops_vector) if x.any(op.flops_vector) else 0.0
        cols0 = self._traffic(op, False)
        flops = op.flops_matrix + op.flops_vector
        deq = self._dequant_per_tile_flops(op) if self.options.dequant_per_tile else 0.0
        epi = self._epilogue_time(op)
        if not self.options.tiling or self.core is None:
            compute = op.flops_matrix / rate + (op.flops_vector / vrate if x.any(op.flops_vector) else 0.0) + epi
            if x.any(deq):
                compute = compute + deq * (x.ceil(m / DEQUANT_TILE_ROWS) - 1) / self._rate(dt, "vector")
            compute, busy = self._power_limited(compute, op.flops_matrix, cap)
            return self._finish(op, compute, self._memory_time(cols0) / stream, 0.0, cols0, flops, detail="roofline",
                                extra_overhead=self._gemm_fixed(op), busy=busy)
        compute, cols, best = self._best_tile(op, rate, cols0, deq, epi, stream)
        compute, busy = self._power_limited(compute, op.flops_matrix, cap)
        if x.any(op.flops_vector):
            compute = x.max(compute, op.flops_vector / vrate)
        detail = "" if self.arrays else "tile {}x{} split{} waves {}".format(*best)
        return self._finish(op, compute, self._memory_time(cols) / stream, 0.0, cols, flops, detail=detail,
                            extra_overhead=self._split_reduce(op, best[2]) + self._gemm_fixed(op), busy=busy)

    def _boost(self) -> float:
        """How much faster than its efficiency rate the matrix unit runs at the boost clock: the chip's ``clock``
        over the matrix unit's ``sustained_clock``, the clock a long full-chip GEMM settles at under the power
        limit, where the efficiency figures were measured (docs/cost-model.md, Clocks under the power limit).
        1 where the unit gives no sustained clock, and for the datasheet roofline (``use_efficiency`` off)."""
        f_s = self.chip.matrix_unit().sustained_clock_hz
        if not f_s or not self.chip.clock_hz or not self.options.use_efficiency:
            return 1.0
        return self.chip.clock_hz / f_s

    def _power_limited(self, compute, flops, cap):
        """(compute seconds, seconds at full power) of a GEMM whose ``compute`` was priced at the boost clock
        (``_boost``), under the chip's power limit (docs/cost-model.md, Clocks under the power limit). The matrix
        units' power follows the FLOP rate they sustain, and ``cap`` (the efficiency rate, FLOP/s; on another TDP
        scaled by ``_power_share``) is the rate at which a full-chip GEMM draws the whole power limit, measured at the
        sustained clock: a GEMM whose average
        rate at boost, ``flops / compute``, stays under ``cap`` (few tiles, a part-filled last wave, small or
        memory-bound GEMMs) keeps the boost clock; above it the clock falls until the rate is ``cap``, so
        ``compute = max(compute, flops / cap)``. Its power is ``flops / cap`` seconds at full power (the energy
        model's busy time; None: ``compute``, as for every chip without a sustained clock)."""
        if self._boost() == 1.0:
            return compute, None
        busy = flops / (cap * self._power_share())
        return self.x.max(compute, busy), busy

    def _power_share(self):
        """The power-limited GEMM rate on this chip's power limit over the rate the efficiency was measured at:
        ``(tdp - idle) / (sustained_clock_power - idle)``, the matrix units' energy per FLOP being the same at the
        clocks involved (docs/cost-model.md, Clocks under the power limit); 1 where the unit gives no
        ``sustained_clock_power``. A share above the boost clock's is harmless: the boost time is the floor."""
        ref = self.chip.matrix_unit().sustained_clock_power_w
        if not ref:
            return 1.0
        head = ref - self.idle  # > 0: the loader checks sustained_clock_power > idle
        return self.x.max(self.tdp - self.idle, 1e-9 * head) / head  # a point with no headroom: ~no rate, no crash

    def _split_reduce(self, op, split):
        """A split-K GEMM on a chip whose library GEMMs are not persistent (``epilogue_overlap`` false: cuBLAS's
        sm80 kernels) sums its fp32 partials in a second kernel (cuBLAS's splitKreduce_kernel): that kernel's
        fixed time (``_overhead``) and one main-memory round trip; its bytes are the partial sums' traffic the
        tile search counts already. 0 where the split is 1, or where persistent kernels reduce in place."""
        if self.chip.matrix_unit().epilogue_overlap is not False:
            return 0.0
        return self.x.where(split > 1, self._overhead(op) + self.lat[self.main], 0.0)

    def _gemm_fixed(self, op) -> float:
        """The matrix unit's ``gemm_fixed_time``: GPU-side seconds a GEMM kernel takes beyond the chip's
        ``kernel_fixed_time`` and its priced work (docs/cost-model.md, GEMM fixed time), serial with both its
        compute and its memory time; 0 where the chip gives none, and for an op fused into its neighbour."""
        if self.options.fused and getattr(op, "fusable", False):
            return 0.0
        return self.chip.matrix_unit().gemm_fixed_time_s or 0.0

    def _fill_drain(self, op, tm, tn, tk, units, waves, cols0):
        """Seconds a GEMM's matrix units wait outside the overlap of its main loop (docs/cost-model.md, GEMM
        prologue and epilogue), per tile candidate: before a CTA's first MMA its first K-step of A and B must
        arrive: one main-memory round trip plus the bytes of that stage that main memory serves, at its
        achievable rate for the op's transfer. The CTAs that start together (``min(units, cores)``) share
        their A rows and B columns through the chip-level cache (``_fill_bytes``), so main memory serves each
        distinct row and column once. A non-persistent kernel (the chip's ``epilogue_overlap`` false) pays the
        fill once per wave (each wave's CTAs start empty; their output store is ``_epilogue_time``); a
        persistent, warp-specialized kernel (``epilogue_overlap`` true) loads a tile's operands under the
        previous tile's math, so pays the fill once, and then the store of its last tiles after their main
        loop. The first round trip is the one ``_finish`` adds to every op."""
        overlap = self.chip.matrix_unit().epilogue_overlap
        if overlap is None:  # no kernel facts (a hand-checkable toy chip): the kernel-only model
            return 0.0
        x = self.x
        m, n = op.gemm.m, op.gemm.n
        active = np.minimum(units, self.cores)
        eb = get_dtype(op.compute_dtype).bytes
        stage = self._fill_bytes(m, n, tm, tn, active) * tk * eb
        bw = self._bw(self.main, x.max(cols0[self.main], 1.0))
        lat = self.lat[self.main]
        if overlap is False:
            return waves * (lat + stage / bw) - lat
        out = [t for t in op.tensors if t.write]
        ob = get_dtype(out[0].dtype).bytes if out else eb
        last = np.minimum(active * tm * tn, x.max(m, 1) * n * x.max(1, op.gemm.batch)) * ob
        return (stage + last) / bw

    def _fill_bytes(self, m, n, tm, tn, active):
        """Distinct A rows plus B columns (elements per unit of K) that ``active`` CTAs starting together
        read, per tile candidate: the tiles are rasterized as the wave's square (``ceil(sqrt(cores))`` tiles a
        side, as the cache-traffic count assumes), so ``active`` CTAs cover ``r = min(m tiles, side, active)``
        tile rows by ``c = min(n tiles, ceil(active / r))`` tile columns: ``min(r tm, m)`` rows of A and
        ``min(c tn, n)`` columns of B, once per such block (further blocks: other GEMMs of the batch, or
        other K ranges of a split-K GEMM). Never more than each CTA's own ``min(tm, m) + min(tn, n)``."""
        x = self.x
        side = x.ceil(x.sqrt(self.cores))
        r = np.minimum(np.minimum(np.ceil(m / tm), side), active)
        c = np.minimum(np.ceil(n / tn), np.ceil(active / r))
        blocks = np.ceil(active / (r * c))
        shared = blocks * (np.minimum(r * tm, m) + np.minimum(c * tn, n))
        return np.minimum(shared, active * (np.minimum(tm, m) + np.minimum(tn, n)))

    def _operand_feed(self, g, tm, tn, k_split, act_in, w_bytes, cols0):
        """Seconds one CTA takes to stream its A rows and B columns (``tm x k_split`` and ``k_split x tn``
        elements, as far as the rows and columns exist) from the chip-level cache into its core, at the
        core's share of the cache bandwidth (``bandwidth / cores``: the published L2 figure is the sum of the
        cores' ports). A CTA alone on its core cannot draw on the ports of idle cores, so a GEMM of few
        tiles streams at the few cores' share; at full occupancy this is the cache-level traffic time the
        search already counts. 0 on a chip without a chip-level cache."""
        if self.cache is None:
            return 0.0
        x = self.x
        m, n, k, batch = g.m, g.n, g.k, x.max(1, g.batch)
        a_b = act_in / x.max(m * k * batch, 1.0)  # bytes per element as the workload states them
        b_b = w_bytes / x.max(n * k * batch, 1.0)
        per_cta = (np.minimum(tm, x.max(m, 1)) * a_b + np.minimum(tn, n) * b_b) * k_split
        # the cache's ports run on the core clock: at the boost clock where the chip gives a sustained one (_boost)
        return per_cta / (self._bw(self.cache, x.max(cols0[self.cache], 1.0)) * self._boost() / self.cores)

    def _block_fp8(self):
        """The stack's block-FP8 GEMM kernel facts on this chip's architecture (``CostOptions.block_fp8``,
        hwmodels.stack.BlockFp8; None: the dense FP8 rate), made once per model and options."""
        bf = self.options.block_fp8
        got = self.__dict__.get("_bf")
        if got is None or got[0] is not bf:
            from hwmodels.stack import BlockFp8

            got = self._bf = (bf, (bf or BlockFp8()).on(self.chip.architecture))
        return got[1]

    def _moe_stream(self, op) -> float:
        """The share of the achievable memory bandwidth a routed (MoE) expert GEMM's kernel reaches on this
        chip (the stack's ``kernels.moe_weight_stream`` entry for the chip's vendor and the op's weight
        dtype; docs/stacks.md); 1 for every other GEMM, chip and dtype. The op's memory time is divided by it."""
        facts = self.options.moe_weight_stream
        if op.gemm.routing is None or not facts:
            return 1.0
        vendor = self.chip.vendor
        dt = next((t.dtype for t in op.tensors if t.role == "weight" and t.name != "bias"), None)
        for v, by_dtype in facts:
            if v == vendor:
                return dict(by_dtype).get(get_dtype(dt).name if dt else None, 1.0)
        return 1.0

    def _epilogue_time(self, op):
        """Seconds of a GEMM's output store that the matrix unit waits for (0 where the chip's GEMM kernels
        overlap it, ``epilogue_overlap``): a CTA that stores its output tile after its main loop leaves its
        SM's tensor cores idle meanwhile, and the tiles of a wave store together, so the whole output takes
        its write time at the activations' level (docs/cost-model.md, GEMM epilogue)."""
        if self.chip.matrix_unit().epilogue_overlap is not False:
            return 0.0
        out_b = sum(t.bytes for t in op.tensors if t.write)
        if not self.x.any(out_b):
            return 0.0
        cols = [0.0] * self.L
        self._add(cols, self.act, out_b)
        return self._memory_time(cols)

    def _best_tile(self, op, rate, cols0: list, deq: float, epi=0.0, stream=1.0):
        """The GEMM tile candidate with the least time (the first on ties): (compute, bytes per level,
        (tile m, tile n, split, waves)); ``epi``: the exposed epilogue seconds (``_epilogue_time``), added to
        every candidate's compute; ``stream``: the kernel's share of the achievable bandwidth (``_moe_stream``),
        dividing every candidate's memory time. See the module docstring for the tiling model.

        Every candidate is evaluated at once, as numpy arrays whose first axis is the candidates (after
        it the design points' or steps' axis, when the model's or the op's numbers are arrays); the
        least time is taken along that axis (``_least``: the first candidate on ties)."""
        x = self.x
        g = op.gemm
        m, n, k, batch = g.m, g.n, g.k, x.max(1, g.batch)
        dt = op.compute_dtype
        # operand bytes as the workload states them (weights may be narrower than the math dtype)
        w_bytes = act_in = out_b = 0.0
        for t in op.tensors:
            if t.role == "weight":
                w_bytes = w_bytes + t.bytes
            elif t.write:
                out_b = out_b + t.bytes
            else:
                act_in = act_in + t.bytes
        cores = self.cores
        c = self._tile_context(dt)
        tm_p, tn_p, tile_flops, valid, wave_m, wave_n = c.tm, c.tn, c.tile_flops, c.valid, c.wave_m, c.wave_n
        k_p = math.ceil(k / c.nk) * c.nk
        kmax = math.ceil(k_p / (GEMM_K_STEPS_PER_SPLIT * c.tk))
        cache = self.cache
        changed, moved = c.changed, c.moved
        fixed = [0.0 if mv else b for b, mv in zip(cols0, moved)]
        m_fixed = self._memory_time(fixed) / stream if x.any(sum(fixed)) else 0.0
        # main-memory re-reads when the operands do not fit half the cache (below)
        spill = (act_in + w_bytes > self.cap[cache] / 2) if cache is not None else False
        if self.arrays:  # the candidates along axis 0, the points' (or steps') axis after it
            nd = max(1 if self.hw.values else 0, *(np.ndim(v) for v in (m, w_bytes, act_in, out_b, rate, *cols0)))
            if nd:
                tm_p, tn_p, tile_flops = (a.reshape(a.shape + (1,) * nd) for a in (tm_p, tn_p, tile_flops))
                if valid is not None and valid.ndim == 1:
                    valid = valid.reshape(valid.shape + (1,) * nd)
                if wave_m.ndim == 1:
                    wave_m, wave_n = (a.reshape(a.shape + (1,) * nd) for a in (wave_m, wave_n))
        mt, nt = np.ceil(m / tm_p), np.ceil(n / tn_p)
        # MoE experts (GemmShape.routing): each expert's expected rows padded to the tile, summed over
        # the experts (expected M tiles); each expert's weight panel is re-read once per its M tile
        route = g.routing
        if route:
            m_tiles = _routed_blocks(route[0], route[1], tm_p)
            touched = expected_touched(route[0], route[1])  # numbers or arrays of counts alike
            tiles = np.maximum(1, np.ceil(m_tiles * nt))  # expected tiles are fractional: the launch covers whole ones
        else:
            m_tiles = mt * batch
            touched = batch
            tiles = m_tiles * nt
        # split-K while the tiles are fewer than the cores (elsewhere cores // tiles <= 1: no split)
        split = np.maximum(1, np.minimum(cores // tiles, kmax))
        waves = np.ceil(tiles * split / cores)  # exact: integers below 2**53
        k_split = np.ceil(k_p / split)
        compute = waves * np.maximum(tile_flops * k_split / (rate / cores),
                                     self._operand_feed(g, tm_p, tn_p, k_split, act_in, w_bytes, cols0))
        if x.any(deq):  # the weight panel is dequantized again by every further M tile
            compute = compute + deq * (mt - 1) / self._rate(dt, "vector")
        compute = compute + epi  # the output store after the main loop (0 where the kernels overlap it)
        # the pipeline fill before each wave's first MMA (and a persistent kernel's last store)
        compute = compute + self._fill_drain(op, tm_p, tn_p, c.tk, tiles * split, waves, cols0)
        cols = list(cols0)
        if cache is not None:
            # cache -> cores: each tile loads its A rows and B columns
            cols[cache] = cols[cache] + (act_in * nt + w_bytes * m_tiles / x.max(touched, 1e-9) + out_b)
            # the tiles of one wave (side x side, swizzled) share their A rows and B columns through
            # the cache as they step through K together, so A is read once per wave-wide band of
            # columns and B once per wave-tall band of rows (m, n >= 1: at least one band)
            if x.any(spill):
                self._add(cols, self.home_index, x.where(spill, w_bytes * (np.ceil(m / wave_m) - 1), 0.0))
                self._add(cols, self.act, x.where(spill, act_in * (np.ceil(n / wave_n) - 1), 0.0))
        if kmax > 1:  # fp32 partial sums written and read back (none where split is 1)
            cols[self.main] = cols[self.main] + (split - 1) * (2 * m * n * batch * PARTIAL_SUM_BYTES)
        # the memory time of the levels the candidates change, elementwise over the candidates
        t = np.maximum(compute, np.maximum(m_fixed, self._elementwise()._memory_time(
            [b if mv else 0.0 for b, mv in zip(cols, moved)]) / stream))
        i = _least(t if valid is None else np.where(valid, t, np.inf))
        if not self.arrays:
            pick = [cols[j] for j in changed]
            cols = list(cols0)
            for j, b in zip(changed, pick):
                cols[j] = float(b[i]) if isinstance(b, np.ndarray) else b
            return float(compute[i]), cols, (int(tm_p[i]), int(tn_p[i]), int(split[i]), int(waves[i]))

        def at(a):  # each point's (or step's) winning candidate
            return np.take_along_axis(np.broadcast_to(a, t.shape), np.asarray(i)[None], axis=0)[0]

        pick = [at(cols[j]) if np.ndim(cols[j]) == t.ndim else cols[j] for j in changed]
        cols = list(cols0)
        for j, b in zip(changed, pick):
            cols[j] = b
        return at(compute), cols, (at(tm_p), at(tn_p), at(split), at(waves))

    def _tile_context(self, dt: str) -> _TileContext:
        """What the tile search reads besides the op: the candidates (``_tile_candidates``), which of
        them fit the per-core memory at this operand width, a wave's extent in rows and columns, and
        the levels a candidate changes (cache, home, activations' level, main; the others hold the
        op's own traffic, the same for every candidate). One chip: remembered per dtype and placement."""
        key = (dt, self.home_index, self.act) if not self.arrays else None
        memo = self.__dict__.setdefault("_tiles", {})
        c = memo.get(key) if key is not None else None
        if c is not None:
            return c
        nm, nn, nk = self.chip.matrix_unit().tile or (1, 1, 1)
        tk = max(4 * nk, GEMM_MIN_TK)
        tm, tn, always = _tile_candidates(nm, nn)
        smem = self.cap[self.core]
        # the smallest candidate always runs (a chip whose per-core memory holds no tile still computes,
        # with a tile spilled to its next level); double-buffered A and B panels of one K-step
        need = 2 * (tm + tn) * tk * get_dtype(dt).bytes
        valid = always | (smem >= need) if not isarr(smem) else always[:, None] | (smem >= need[:, None])
        if not isarr(smem) and valid.all():
            valid = None
        side = self.x.ceil(self.x.sqrt(self.cores))  # a wave's tiles, rasterized as a square of side x side
        wave_m, wave_n = (side * tm, side * tn) if not isarr(side) else (side * tm[:, None], side * tn[:, None])
        changed = {self.main}
        for w in (self.home_index, self.act):
            changed |= set(_levels_in(w, self.L)) if isarr(w) else {int(w)}
        if self.cache is not None:
            changed.add(self.cache)
        changed = sorted(changed)
        c = _TileContext(tm, tn, 2.0 * tm * tn, valid, wave_m, wave_n, nk, tk, changed,
                         [i in changed for i in range(self.L)])
        if key is not None:
            memo[key] = c
        return c


@functools.lru_cache(maxsize=64)
def _tile_candidates(nm: int, nn: int) -> tuple:
    """Distinct (tile m, tile n) CTA tiles padded to the native tile, in the search order, as three
    read-only arrays: tile m, tile n, and whether the candidate always runs (the smallest)."""
    out: dict = {}
    for tm0 in GEMM_TILES:
        tm = max(tm0, nm) if nm > 1 else tm0
        tm_p = math.ceil(tm / nm) * nm
        for tn0 in GEMM_TILES:
            tn_p = math.ceil(tn0 / nn) * nn if nn > 1 else tn0
            always = tm0 == GEMM_TILES[0] and tn0 == GEMM_TILES[0]
            out[(tm_p, tn_p)] = out.get((tm_p, tn_p), False) or always
    cols = (np.array([tm for tm, _ in out], dtype=float), np.array([tn for _, tn in out], dtype=float),
            np.array(list(out.values()), dtype=bool))
    for a in cols:
        a.flags.writeable = False
    return cols


def _least(t):
    """Index of the least time along axis 0, the first on ties (an int for a 1-d ``t``); a NaN time
    never wins unless it is the first candidate's (what a loop keeping the first strictly smaller
    time picks)."""
    i = t.argmin(axis=0)
    if t.ndim == 1 and not (i and math.isnan(t[i])):
        return int(i)
    nan = np.isnan(t)
    nan[0] = False
    i = np.where(nan, np.inf, t).argmin(axis=0)
    return int(i) if t.ndim == 1 else i


def _routed_blocks(tokens, probs, tm_p):
    """Expected padded M tiles of a routed (MoE) grouped GEMM per candidate tile m (``tm_p``'s first
    axis; after it the counts' axis when ``tokens`` is an array)."""
    by: dict = {}
    rows = [by[t] if t in by else by.setdefault(t, expected_blocks(tokens, probs, t))
            for t in tm_p.ravel().tolist()]
    out = np.array(rows, dtype=float)
    return out.reshape(tm_p.shape) if out.ndim == 1 else out


def _levels_in(where: np.ndarray, n: int) -> list:
    """The level indices (0..n-1) present in an array of them, ascending: ``np.unique`` without its
    import of ``numpy.ma`` (about 10 ms of a command's start-up)."""
    return [i for i in range(n) if (where == i).any()]
