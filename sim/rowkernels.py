"""Row-per-block kernels (the stack's ``row_kernels``: RMSNorm, SiluAndMul, rotary as vLLM's and sarathi-serve's
CUDA kernels run them: one thread block per token row): their waves of dependent loop trips, each trip's round
trips and the loop body's instructions issued by class (hwmodels.isa). Part of the cost model: ``CostModel`` calls
:func:`row_trips` for every streaming op it prices one at a time (docs/cost-model.md, Row-per-block kernels)."""

from __future__ import annotations

from hwmodels.arith import at_level
from hwmodels.dtype import get_dtype
from hwmodels.isa import issue_rates

__all__ = ["WARP", "row_trips", "row_issue"]

WARP = 32  # threads per warp of the CUDA row-per-block kernels (CUDA C++ Programming Guide, SIMT architecture)


def row_trips(cm, op, memory, cols):
    """A row-per-block kernel (the stack's ``row_kernels``: vLLM's RMSNorm, SiluAndMul, rotary) takes at
    least its waves of dependent loop trips: a block of ``threads = min(items / per, cap)`` threads per
    token row walks its ``items`` output elements, ``per`` per thread per loop trip; ``cores x
    (resident_threads // threads)`` blocks run at once. A loop trip waits ``dram`` main-memory and
    ``cache`` chip-level-cache latencies one after another (the chain), its warps issue the loop body on the
    core (:func:`row_issue`), and its loads cross each level at its achievable bandwidth: main memory the
    op's reads there and the writes the cache evicts while it runs (``CostModel._spilled_writes``), the cache its
    ``cache`` re-reads per output element and the fresh input it holds. A kernel whose trip ends at a block
    barrier pays chain, its block's issue and its bytes one after another (another block's issue fills the
    wait); one without takes the longest of the chain, the core's issue and the bytes. ``memory`` where the
    kernel streams faster or the stack gives no facts (the kernel-only model); CUDA kernels: priced on chips
    that list a special-function unit, as the prefill kernel (docs/cost-model.md)."""
    rk = cm.options.row_kernels
    facts = None if rk is None else rk.of(op.kind)
    x = cm.x
    if facts is None or not x.any(op.rows > 0) or cm.chip.unit("special") is None:
        return memory
    cap, per, dram, cache, barrier = facts[0], facts[1], facts[2], facts[3], facts[6]
    wb = sum(t.bytes for t in op.tensors if t.write)
    out = sum(t.bytes / get_dtype(t.dtype).bytes for t in op.tensors if t.write)
    rows = x.max(op.rows, 1)
    items = x.max(out / rows, 1)
    # two loops one after the other (Op.first_loop: rotary's q, then k), the block sized on the first
    first = x.where(op.first_loop > 0, x.min(op.first_loop, items), items)
    threads = x.min(x.ceil(first / per), cap)
    per_core = x.max(1, rk.resident_threads // threads)  # blocks a core holds at once
    lat = at_level(cm.lat, cm.act)
    c = cm.cache
    chain = dram * lat + cache * (lat if c is None else cm.lat[c])
    warp = row_issue(cm, rk, op.kind, facts[4])
    waves = x.ceil(rows / (cm.cores * per_core))
    blocks = x.min(x.ceil(rows / cm.cores), per_core)  # the busiest core's blocks
    trips = trip_issue = trip_core = trip_wait = 0.0  # over the loops: trips, and their issue and waits
    for n in (first, items - first):
        loop = waves * x.ceil(n / (threads * per))  # waves x this loop's trips
        block = x.ceil(x.min(threads, x.ceil(n / per)) / WARP) * warp  # one block's issue per trip
        trips = trips + loop
        trip_issue = trip_issue + loop * block
        trip_core = trip_core + loop * blocks * block
        trip_wait = trip_wait + loop * x.max(chain, blocks * block)
    m = cm.main
    main_b = x.max(cols[m] - wb, 0.0) + cm._spilled_writes(op, wb)
    loads = main_b / cm._bw(m, x.max(main_b, 1.0), op.kind)
    if c is not None:
        cache_b = cols[c] + cache * wb
        loads = loads + cache_b / cm._bw(c, x.max(cache_b, 1.0), op.kind)
    if barrier:
        waits = x.max(trips * chain + trip_issue + loads, trip_core)
    else:
        waits = x.max(trip_wait, loads)
    # the waits count the first round trip, which _finish adds to every op (the first byte's latency)
    return x.where(op.rows > 0, x.max(memory, waits - lat), memory)

def row_issue(cm, rk, kind, instructions) -> float:
    """Seconds one warp of a row kernel occupies its core per loop trip: the loop body's instructions by class
    (the stack's ``instruction_mix`` for the chip's architecture) each at its unit's rate
    (hwmodels.isa.issue_rates: warp instructions per second per core), the units taking turns; where the
    stack or the chip gives no mix or rates, ``instructions`` at the stack's ``issue_per_clock``; 0 without
    a clock."""
    if not cm.chip.clock_hz:
        return 0.0
    mix = rk.mix(kind, cm.chip.architecture)
    rates = None
    if mix:
        vec, g = cm.chip.unit("vector"), cm.hw.get
        pk = "chip.compute.{}.peak.{}".format
        rates = None if vec is None or "fp32" not in vec.peak else issue_rates(
            cm.chip.architecture, cm.chip.clock_hz, cm.cores, g(pk("vector", "fp32")),
            g(pk("vector", "fp16")) if "fp16" in vec.peak else None, g(pk("special", "fp32")))
    if rates is not None:
        return sum(n / rates[cls] for cls, n in mix.items())
    return instructions / (rk.issue_per_clock * cm.chip.clock_hz)
