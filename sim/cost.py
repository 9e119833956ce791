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
chip-level cache to the cores = A x ceil(n/Tn) + B x ceil(m/Tm); traffic from main memory =
A x ceil(n/Bn) + B x ceil(m/Bm) + C, with cache-level blocks Bm = Bn chosen so that the two
operand panels fill half of the cache. The candidate with the least time wins.

Options that default off (``CostOptions``): 2:4 sparsity (``sparse``: every GEMM with a weight
tensor runs at the chip's ``sparse_peak``; without it only ops the graph marks ``Op.sparse``,
see ``build_graph(sparsity=...)``, do; attention never does), and per-tile dequantization of
weight-only quantized GEMMs (``dequant_per_tile``, below in ``_gemm``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hwmodels.chip import Chip, MemoryLevel, System, interpolate_efficiency
from hwmodels.dtype import get_dtype
from sim.collective import collective_time


#: op costs memoized per CostModel before the memo is cleared (bounds memory in long runs)
MEMO_LIMIT = 50_000

# Constants of the formulas below (docs/cost-model.md); sim/vector.py imports the same names.
GEMM_TILES = (32, 64, 128, 256)  # candidate CTA tile sizes along M and N
GEMM_MIN_TK = 32  # K-step: max(4 x native K, 32)
GEMM_K_STEPS_PER_SPLIT = 4  # split-K never cuts K below 4 K-steps
PARTIAL_SUM_BYTES = 4.0  # fp32 partial sums of split-K
DECODE_KV_SPLIT = 256  # paged/decode attention splits the KV length in chunks of at least 256
FLASH_BLOCK_ROWS = 128  # flash prefill: query rows per block


@dataclass(frozen=True)
class CostOptions:
    """How the software runs the work (not what the hardware is)."""

    fused: bool = False  # fuse elementwise/norm chains: intermediates stay on chip, no extra launches
    cuda_graphs: bool = False  # launch overhead removed (kernels replayed from a graph)
    overlap_comm: bool = False  # collectives overlap compute (step time = max instead of sum)
    use_efficiency: bool = True  # apply the hardware file's achievable-efficiency fields
    tiling: bool = True  # GEMM tiling, padding and waves; False = plain roofline
    sparse: bool = False  # 2:4 structured sparsity on every weight GEMM where the chip lists a sparse peak
    # weight-only quantized GEMMs (w4a16, w8a16) dequantize their weight panel once per M tile inside
    # the kernel (Marlin-style): DEQUANT_FLOPS x weight elements x (M tiles - 1) vector FLOPs on top
    # of the graph's one dequant pass, serialized with the tensor-core work. Off: the graph's dequant op only.
    dequant_per_tile: bool = False


@dataclass(frozen=True)
class OpCost:
    """The cost of one execution of one op on one chip (times in seconds, energy in joules)."""

    name: str
    kind: str
    count: int
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float
    time_s: float
    bound: str  # compute | memory | comm | overhead
    flops: float
    bytes_main: float  # bytes moved at the main-memory (weights/KV) level
    bytes_by_level: tuple  # ((level name, bytes), ...)
    energy_j: float
    layer: str = "layer"
    detail: str = ""

    @property
    def total_s(self) -> float:
        return self.time_s * self.count


def kv_read_bytes(op) -> float:
    """Bytes of keys and values an attention op reads: its KV cache plus the new tokens' K and V."""
    return sum(t.bytes for t in op.tensors if not t.write and (t.role == "kv" or t.name == "kv_new"))


def visible_fraction(a) -> float:
    """Share of the (query, key) rectangle a causal (or windowed) attention actually visits."""
    if not a.causal:
        return 1.0
    from workloads.graph import _attn_stats

    pairs, rect, _ = _attn_stats(tuple((q, kv - q) for q, kv in a.seqs), a.window)
    return pairs / rect if rect else 1.0


def _bytes(dtype: str) -> float:
    return get_dtype(dtype).bytes


@dataclass
class _View:
    """What the cost model needs from a chip, derived once."""

    chip: Chip
    core_level: MemoryLevel | None
    cache_level: MemoryLevel | None  # innermost chip-level on-chip memory (L2, global SRAM)
    main: MemoryLevel


def _view(chip: Chip) -> _View:
    core = next((m for m in chip.memory if m.per == "core" and m.kind in ("sram", "cache")), None)
    cache = next((m for m in chip.memory if m.per == "chip" and m.kind in ("sram", "cache")), None)
    return _View(chip, core, cache, chip.main_memory)


class CostModel:
    """Prices ops of one graph family on one system; memoizes op costs by op (ops are frozen)."""

    def __init__(self, system: System | Chip, options: CostOptions = CostOptions(), resident_bytes: float = 0.0,
                 tp: int = 1):
        self.system = system if isinstance(system, System) else System.single(system)
        self.chip = self.system.chip
        self.options = options
        self.view = _view(self.chip)
        self.tp = tp
        self.home = self._home_level(resident_bytes)
        self._memo: dict = {}

    # -- placement --------------------------------------------------------------------------
    def _home_level(self, resident_bytes: float) -> MemoryLevel:
        """Innermost managed level (sram/dram) whose capacity holds the weights and KV cache."""
        for m in self.chip.memory:
            if m.kind in ("sram", "dram") and m.per == "chip" and m.total_capacity_bytes(self.chip.cores) >= resident_bytes:
                return m
        return self.view.main

    def _bw(self, level: MemoryLevel, nbytes: float, kind: str | None = None) -> float:
        """Achievable bandwidth of ``level`` for ``nbytes``; ``kind`` (streaming ops only) selects the
        level's ``efficiency_by_kind`` factor for that op kind."""
        if self.options.use_efficiency:
            return level.effective_bandwidth(nbytes, kind)
        return level.bandwidth_bytes_per_s

    def _rate(self, dtype: str, kind: str, sparse: bool = False, size: float | None = None) -> float:
        """Achievable FLOP/s for ``dtype`` math on ``kind``; a unit's efficiency table is read at
        ``size`` (the op's FLOPs on that unit per execution), a plain fraction applies as is."""
        chip = self.chip
        unit = chip.matrix_unit() if kind == "matrix" else chip.vector_unit()
        r = unit.rate_for(dtype, sparse=sparse)
        if r is None and kind == "matrix":
            unit = chip.vector_unit()
            r = unit.rate_for(dtype, sparse=False)
        if r is None:
            other = chip.vector_unit() if kind == "matrix" else chip.matrix_unit()
            r = other.rate_for(dtype)
            unit = other
        if r is None:
            raise ValueError(f"{chip.name} lists no rate for {dtype} math")
        eff = interpolate_efficiency(unit.efficiency, max(size or 1.0, 1.0)) \
            if (self.options.use_efficiency and unit.efficiency) else 1.0
        return r[0] * eff

    # -- public -----------------------------------------------------------------------------
    def op_cost(self, op) -> OpCost:
        c = self._memo.get(op)
        if c is None:
            c = self._price(op)
            if len(self._memo) >= MEMO_LIMIT:  # long serving runs see endless attention shapes
                self._memo.clear()
            self._memo[op] = c
        return c

    def _price(self, op) -> OpCost:
        kind = op.kind
        if kind == "collective":
            return self._collective(op)
        if kind == "gemm" and op.gemm is not None:
            return self._gemm(op)
        if kind == "attention" and op.attention is not None:
            return self._attention(op)
        return self._streaming(op)

    # -- building blocks ------------------------------------------------------------------------
    def _traffic(self, op, fused_act: bool):
        """Bytes per level from the op's tensors: weights/KV at home, activations at main or on chip."""
        home, main = self.home, self.view.main
        on_chip = self.view.cache_level or self.view.core_level
        per_level: dict = {}
        for t in op.tensors:
            if t.role in ("weight", "kv"):
                lvl = home
            elif fused_act and on_chip is not None:
                lvl = on_chip
            else:
                lvl = main if home.kind != "sram" else home
            per_level[lvl.name] = per_level.get(lvl.name, 0.0) + t.bytes
        return per_level

    def _memory_time(self, per_level: dict, kind: str | None = None) -> float:
        t = 0.0
        for name, nbytes in per_level.items():
            if nbytes > 0:
                lvl = self.chip.memory_level(name)
                t = max(t, nbytes / self._bw(lvl, nbytes, kind))
        return t

    def _overhead(self, op, launches: float = 1.0) -> float:
        if self.options.cuda_graphs:
            return 0.0
        if self.options.fused and getattr(op, "fusable", False):
            return 0.0
        return self.chip.launch_overhead_s * launches

    def _finish(self, op, compute_s, memory_s, comm_s, per_level, flops, detail="", latency=True) -> OpCost:
        overhead = self._overhead(op)
        lat = 0.0
        if latency and per_level:
            lat = max((self.chip.memory_level(n).latency_s for n, b in per_level.items() if b > 0), default=0.0)
        time_s = max(compute_s, memory_s) + comm_s + overhead + lat
        terms = {"compute": compute_s, "memory": memory_s, "comm": comm_s, "overhead": overhead + lat}
        bound = max(terms, key=terms.get)
        main_b = per_level.get(self.home.name, 0.0)
        if self.view.main.name != self.home.name:
            main_b += per_level.get(self.view.main.name, 0.0)
        energy = self._energy(op, time_s, flops, compute_s, memory_s, per_level)
        return OpCost(op.name, op.kind, op.count, compute_s, memory_s, comm_s, overhead + lat, time_s, bound, flops,
                      main_b, tuple(sorted(per_level.items())), energy, getattr(op, "layer", "layer"), detail)

    def _energy(self, op, time_s, flops, compute_s, memory_s, per_level) -> float:
        """Joules: per-FLOP and per-byte energies where the chip gives them, else a TDP model.

        TDP model: P = idle + (TDP - idle) x max(compute share, memory share of the op's time);
        without an idle figure, P = TDP x the same share (documented in docs/cost-model.md).
        """
        chip = self.chip
        epf = chip.energy_per_flop_j.get(get_dtype(op.compute_dtype).rate_key) if chip.energy_per_flop_j else None
        if epf is not None:
            e = flops * epf
            for name, nbytes in per_level.items():
                lvl = chip.memory_level(name)
                if lvl.energy_per_byte_j:
                    e += nbytes * lvl.energy_per_byte_j
            return e + (chip.idle_w or 0.0) * time_s
        if not chip.tdp_w or time_s <= 0:
            return 0.0
        share = min(1.0, max(compute_s, memory_s) / time_s)
        idle = chip.idle_w or 0.0
        return (idle + (chip.tdp_w - idle) * share) * time_s

    # -- op kinds -----------------------------------------------------------------------------
    def _streaming(self, op) -> OpCost:
        """Elementwise, norm, rope, embedding, router, dequant, sampling: a roofline per op."""
        fused = self.options.fused and getattr(op, "fusable", False)
        per_level = self._traffic(op, fused)
        vec = op.flops_vector / self._rate(op.compute_dtype, "vector", size=op.flops_vector) if op.flops_vector else 0.0
        mat = op.flops_matrix / self._rate(op.compute_dtype, "matrix", size=op.flops_matrix) if op.flops_matrix else 0.0
        compute = max(vec, mat)
        memory = self._memory_time(per_level, op.kind)  # per-kind bandwidth efficiency: streaming ops only
        return self._finish(op, compute, memory, 0.0, per_level, op.flops_matrix + op.flops_vector, latency=not fused)

    def _collective(self, op) -> OpCost:
        c = op.collective
        try:
            t, tiers = collective_time(self.system, c.op, c.bytes, self._span(c))
        except ValueError as e:
            raise ValueError(f"{op.name}: {e}") from None
        per_level = self._traffic(op, False)
        cost = self._finish(op, 0.0, 0.0, t, {}, 0.0, detail=tiers, latency=False)
        # collectives are issued as kernels too; their traffic through memory overlaps the wire time
        return replace(cost, bytes_by_level=tuple(sorted(per_level.items())))

    def _span(self, c) -> int:
        """Chips a collective spans: TP groups are consecutive chips; a PP send crosses a TP group."""
        if c.op == "sendrecv" and c.group == "pp":
            return min(self.system.count, max(2, 2 * self.tp))
        return c.group_size

    def _gemm(self, op) -> OpCost:
        g = op.gemm
        m, n, k, batch = g.m, g.n, g.k, max(1, g.batch)
        dt = op.compute_dtype
        sparse = getattr(op, "sparse", False) or (self.options.sparse and any(t.role == "weight" for t in op.tensors))
        rate = self._rate(dt, "matrix", sparse=sparse, size=op.flops_matrix)
        vrate = self._rate(dt, "vector", size=op.flops_vector) if op.flops_vector else 0.0
        per_level = self._traffic(op, False)
        flops = op.flops_matrix + op.flops_vector
        deq = self._dequant_per_tile_flops(op) if self.options.dequant_per_tile else 0.0
        if not self.options.tiling or self.view.core_level is None:
            compute = op.flops_matrix / rate + (op.flops_vector / vrate if op.flops_vector else 0.0)
            if deq:
                compute += deq * (math.ceil(m / 128) - 1) / self._rate(dt, "vector")
            return self._finish(op, compute, self._memory_time(per_level), 0.0, per_level, flops, detail="roofline")
        best = None
        for cand in self._gemm_candidates(m, n, k, batch, dt, rate, op, per_level, deq):
            if best is None or cand[0] < best[0]:
                best = cand
        _, compute, levels, detail = best
        if op.flops_vector:
            compute = max(compute, op.flops_vector / vrate)
        return self._finish(op, compute, self._memory_time(levels), 0.0, levels, flops, detail=detail)

    def _dequant_per_tile_flops(self, op) -> float:
        """Vector FLOPs of one extra dequantization pass over a weight-only GEMM's weights (0 if
        the weights are as wide as the math). Counted per weight element as the graph's dequant op."""
        from workloads.graph import DEQUANT_FLOPS

        w = [t for t in op.tensors if t.role == "weight" and t.name != "bias"]
        if not w or get_dtype(w[0].dtype).bits >= get_dtype(op.compute_dtype).bits:
            return 0.0
        g = op.gemm
        return DEQUANT_FLOPS * g.n * g.k * max(1, g.batch)

    def _gemm_candidates(self, m, n, k, batch, dt, rate, op, per_level, deq: float = 0.0):
        chip, view = self.chip, self.view
        unit = chip.matrix_unit()
        nm, nn, nk = unit.tile or (1, 1, 1)
        a_bytes = _bytes(dt)
        # operand bytes as the workload states them (weights may be narrower than the math dtype)
        w_bytes = sum(t.bytes for t in op.tensors if t.role == "weight")
        act_in = sum(t.bytes for t in op.tensors if t.role != "weight" and not t.write)
        out_b = sum(t.bytes for t in op.tensors if t.write)
        cores = chip.cores
        smem = view.core_level.capacity_bytes
        tk = max(4 * nk, GEMM_MIN_TK)
        cache = view.cache_level
        side = math.ceil(math.sqrt(cores))  # a wave's tiles, rasterized as a square of side x side
        for tm0 in GEMM_TILES:
            tm = max(tm0, nm) if nm > 1 else tm0
            tm_p = math.ceil(tm / nm) * nm
            for tn0 in GEMM_TILES:
                tn_p = math.ceil(tn0 / nn) * nn if nn > 1 else tn0
                # the smallest candidate always runs (a chip whose per-core memory holds no tile
                # still computes, with a tile spilled to its next level)
                smallest = tm0 == GEMM_TILES[0] and tn0 == GEMM_TILES[0]
                if 2 * (tm_p + tn_p) * tk * a_bytes > smem and not smallest:
                    continue
                mt, nt = math.ceil(m / tm_p), math.ceil(n / tn_p)
                tiles = mt * nt * batch
                k_p = math.ceil(k / nk) * nk
                split = 1
                if tiles < cores:
                    split = max(1, min(cores // tiles, math.ceil(k_p / (GEMM_K_STEPS_PER_SPLIT * tk))))
                units = tiles * split
                waves = math.ceil(units / cores)
                unit_flops = 2.0 * tm_p * tn_p * math.ceil(k_p / split)
                compute = waves * unit_flops / (rate / cores)
                if deq:  # the weight panel is dequantized again by every further M tile
                    compute += deq * (mt - 1) / self._rate(dt, "vector")
                levels = dict(per_level)
                # cache -> cores: each tile loads its A rows and B columns
                if cache is not None:
                    l2 = act_in * nt + w_bytes * mt + out_b
                    levels[cache.name] = levels.get(cache.name, 0.0) + l2
                    # main-memory re-reads when the operands do not fit half the cache: the tiles of
                    # one wave (side x side, swizzled) share their A rows and B columns through the
                    # cache as they step through K together, so A is read once per wave-wide band
                    # of columns and B once per wave-tall band of rows
                    cap = cache.total_capacity_bytes(cores)
                    spill = act_in + w_bytes > cap / 2
                    extra_a = act_in * max(0, math.ceil(n / (side * tn_p)) - 1) if spill else 0.0
                    extra_b = w_bytes * max(0, math.ceil(m / (side * tm_p)) - 1) if spill else 0.0
                    home = self.home.name
                    levels[home] = levels.get(home, 0.0) + extra_b
                    mainn = view.main.name if self.home.kind != "sram" else home
                    levels[mainn] = levels.get(mainn, 0.0) + extra_a
                if split > 1:  # fp32 partial sums written and read back
                    mainn = view.main.name
                    levels[mainn] = levels.get(mainn, 0.0) + 2 * (split - 1) * m * n * batch * PARTIAL_SUM_BYTES
                t = max(compute, self._memory_time(levels))
                yield t, compute, levels, f"tile {tm_p}x{tn_p} split{split} waves {waves}"

    def _attention(self, op) -> OpCost:
        a = op.attention
        dt = op.compute_dtype
        flops = op.flops_matrix + op.flops_vector
        per_level = self._traffic(op, False)
        cores = self.chip.cores
        rate = self._rate(dt, "matrix", size=op.flops_matrix)
        vec_rate = self._rate("fp32", "vector", size=op.flops_vector)
        nreq = len(a.seqs)
        if a.kernel == "paged" or a.phase == "decode":
            # work units: (request, kv head) pairs, split along the KV length when too few
            units = max(1, nreq * a.kv_heads)
            max_kv = max((kv for _, kv in a.seqs), default=1)
            split = 1 if units >= cores else max(1, min(math.ceil(cores / units), math.ceil(max_kv / DECODE_KV_SPLIT)))
            active = min(cores, units * split)
            frac = active / cores
            memory = self._memory_time(per_level) / frac
            compute = op.flops_matrix / (rate * frac) + op.flops_vector / (vec_rate * frac)
            return self._finish(op, compute, memory, 0.0, per_level, flops, detail=f"split-kv {split}, {active} cores")
        # flash (fused) or naive prefill: blocks of 128 query rows per (request, head)
        br = FLASH_BLOCK_ROWS
        blocks = sum(math.ceil(q / br) for q, _ in a.seqs) * a.heads
        waves = math.ceil(blocks / cores)
        wq = waves * cores / max(blocks, 1)  # wave quantization factor (>= 1)
        compute = max(op.flops_matrix / rate, op.flops_vector / vec_rate) * wq
        if a.kernel != "naive" and self.view.cache_level is not None:
            # K and V (cached and new) are re-read from the cache once per query block and query
            # head of a KV group; a causal block reads only the keys it can see
            kvb = kv_read_bytes(op)
            qblocks = sum(math.ceil(q / br) for q, _ in a.seqs) / max(nreq, 1)
            lvl = self.view.cache_level.name
            per_level = dict(per_level)
            per_level[lvl] = per_level.get(lvl, 0.0) + kvb * max(1.0, qblocks) * max(1, a.heads // max(a.kv_heads, 1)) \
                * visible_fraction(a)
        memory = self._memory_time(per_level)
        return self._finish(op, compute, memory, 0.0, per_level, flops, detail=f"{a.kernel}, {blocks} blocks, {waves} waves")
