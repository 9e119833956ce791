"""Row-per-block streaming kernels (norm, activation, rotary: one thread block per token row, a few elements
per thread per memory round trip) on a toy GPU with round numbers (tests/data/toy-gpu-rows.yaml: 100 SMs,
1 TB/s HBM at 1 us, L2 at 0.5 us, no launch overhead): checkable by hand."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwmodels import load_chip
from hwmodels.stack import RowKernels, load_stack
from sim.cost import CostModel, CostOptions
from sim.ops import row_to_op
from sim.validation.vidur import ROW_KERNELS, scoring_options
from workloads.opdata import stacked

DATA = Path(__file__).parent.parent / "data"
# (kind, threads at most, elements per thread per loop trip, HBM trips, L2 trips per loop trip[, instructions,
# instruction mix, block barrier]); one 1024-thread block per SM; the norm's trips end at a block barrier
FACTS = RowKernels(kinds=(("norm", 1024, 1, 1, 2, 0, (), True), ("elementwise", 1024, 1, 2, 0),
                          ("rope", 512, 2, 2, 0)),
                   resident_threads=1024)
ROWS = CostOptions(row_kernels=FACTS)


@pytest.fixture(scope="module")
def gpu():
    return load_chip(DATA / "toy-gpu-rows.yaml")


def norm(m, n=2048):
    return row_to_op({"op": "norm", "dtype": "bf16", "m": m, "n": n})


def test_norm_waves_of_round_trips_by_hand(gpu):
    """n = 2048: a 1024-thread block per row walks it in 2 loop trips of 1 HBM + 2 L2 round trips (2 us);
    100 blocks at once (one per SM). 100 rows: one wave, 4 us of latency; then the loads cross the memory
    behind it: HBM the 409.6 kB of x and the 4 kB weight (0.4137 us at 1 TB/s; the 409.6 kB output stays in the
    10 MB L2, a write-back cache), L2 two re-reads of x (819.2 kB at 10 TB/s, 0.0819 us): 4.4956 us. 101 rows:
    two waves (8 us) plus 101 rows' loads. The op's time is max(bandwidth, waits less the first round trip) +
    that first round trip (the latency every op pays)."""
    cm = CostModel(gpu, ROWS)
    x = 2048 * 2
    assert cm.op_cost(norm(100)).time_s == pytest.approx(4e-6 + (100 * x + 4096) / 1e12 + 2 * 100 * x / 1e13)
    assert cm.op_cost(norm(101)).time_s == pytest.approx(8e-6 + (101 * x + 4096) / 1e12 + 2 * 101 * x / 1e13)
    assert cm.op_cost(norm(1)).time_s == pytest.approx(4e-6 + (x + 4096) / 1e12 + 2 * x / 1e13)  # a lone row
    assert cm.op_cost(norm(100)).bound == "memory"
    # the kernel-only model (no row kernels) streams at the bandwidth: 819.2 kB + 4 kB weight -> 0.8232 us + 1 us
    plain = CostModel(gpu).op_cost(norm(100))
    assert plain.time_s == pytest.approx((100 * 2048 * 4 + 4096) / 1e12 + 1e-6)


def test_activation_and_rope_by_hand(gpu):
    """SiluAndMul over 64 rows of d = 3000 (inputs x and y): 1024 threads, ceil(3000 / 1024) = 3 loop trips of
    2 HBM round trips: 6 us; no block barrier, so the 768 kB of x and y (0.768 us at 1 TB/s) cross under the
    round trips. Rotary over 64 rows of 4096 elements (2048 pairs): min(2048, 512) = 512 threads, 4 loop trips of
    2 HBM round trips: 8 us, its 524 kB of q and k under them. A residual add (no rows) streams."""
    cm = CostModel(gpu, ROWS)
    act = row_to_op({"op": "elementwise", "dtype": "bf16", "numel": 64 * 3000, "inputs": 2, "m": 64})
    assert cm.op_cost(act).time_s == pytest.approx(6e-6)
    rope = row_to_op({"op": "rope", "dtype": "bf16", "numel": 64 * 4096, "m": 64})
    assert cm.op_cost(rope).time_s == pytest.approx(8e-6)
    # 40,000 rows: 400 waves of 3 trips (2.4 ms of round trips) hide their 480 MB (0.48 ms at 1 TB/s)
    many = row_to_op({"op": "elementwise", "dtype": "bf16", "numel": 40_000 * 3000, "inputs": 2, "m": 40_000})
    assert cm.op_cost(many).time_s == pytest.approx(2.4e-3)
    add = row_to_op({"op": "elementwise", "dtype": "bf16", "numel": 64 * 3000, "inputs": 2})
    assert cm.op_cost(add).time_s == pytest.approx(64 * 3000 * 2 * 3 / 1e12 + 1e-6)


def test_loop_body_instructions_by_hand(gpu):
    """A 1 GHz clock and 400 instructions per loop trip: one 1024-thread block (32 warps) on an SM issues 32 x 400
    = 12,800 warp instructions per trip, 4 per clock: 3.2 us a trip, longer than its 2 us of round trips, which
    it hides (no block barrier). 150 rows on 100 SMs that hold 2 blocks each: one wave, but 2 blocks on the
    busiest SM issue 6.4 us a trip. The 64 rows' 768 kB (0.768 us at 1 TB/s) cross under the issue."""
    from dataclasses import replace as dc_replace

    clocked = dc_replace(gpu, clock_hz=1e9)
    facts = RowKernels(kinds=(("elementwise", 1024, 1, 2, 0, 400),), resident_threads=2048, issue_per_clock=4)
    cm = CostModel(clocked, CostOptions(row_kernels=facts))

    def act(m):
        return row_to_op({"op": "elementwise", "dtype": "bf16", "numel": m * 3000, "inputs": 2, "m": m})

    assert cm.op_cost(act(64)).time_s == pytest.approx(3 * 3.2e-6)
    assert cm.op_cost(act(150)).time_s == pytest.approx(3 * 6.4e-6)
    # no clock in the chip file: the instructions are not priced, the round trips stand
    assert CostModel(gpu, CostOptions(row_kernels=facts)).op_cost(act(64)).time_s == pytest.approx(6e-6)


def test_instruction_mix_by_hand(gpu):
    """The loop body by class on an 'ampere' chip (hwmodels/isa.py) at 1 GHz: 40 integer instructions at 64
    results per clock per SM (2 warp instructions a clock: 20 ns a warp) and 4 special-function ones at the toy's
    1 TFLOP/s over 100 SMs (10 G results/s, 0.3125 G warp instructions/s: 12.8 ns a warp): 32.8 ns a warp, 1.0496
    us for a 1024-thread block, the units taking turns. 64 rows: the 2 us of round trips bound each trip (6 us);
    150 rows: 2 blocks on the busiest SM issue 2.0992 us a trip (6.2976 us). A chip of another architecture
    (none listed in the mix) prices the 44 instructions at 4 per clock: 0.352 us a block, under the round
    trips."""
    from dataclasses import replace as dc_replace

    mix = (("ampere", (("integer", 40.0), ("special", 4.0))),)
    facts = RowKernels(kinds=(("elementwise", 1024, 1, 2, 0, 44, mix, False),), resident_threads=2048)
    amp = CostModel(dc_replace(gpu, clock_hz=1e9, architecture="ampere"), CostOptions(row_kernels=facts))

    def act(m):
        return row_to_op({"op": "elementwise", "dtype": "bf16", "numel": m * 3000, "inputs": 2, "m": m})

    assert amp.op_cost(act(64)).time_s == pytest.approx(6e-6)
    assert amp.op_cost(act(150)).time_s == pytest.approx(3 * 2 * 32 * (40 / 2e9 + 4 / 3.125e8))
    other = CostModel(dc_replace(gpu, clock_hz=1e9, architecture="hopper"), CostOptions(row_kernels=facts))
    assert other.op_cost(act(150)).time_s == pytest.approx(6e-6)
    assert facts.mix("elementwise", "ampere") == {"integer": 40.0, "special": 4.0}
    assert facts.mix("elementwise", "hopper") is None


def test_loads_cross_the_memory_behind_the_latencies(gpu):
    """With 8 elements per thread per trip (vector loads) and 2048 resident threads, a norm over 100,000 rows of
    2048 runs 256-thread blocks, 8 per SM: 800 rows per wave, 125 waves of 1 loop trip (2 us) = 250 us of
    latency, then its loads: 409.6 MB of x and the weight from HBM plus the writes the 10 MB L2 evicts while it
    runs (409.6 MB x (1 - 10 MB / 819.2 MB)), 819.2 MB of re-reads from L2: more than the 819 us its 819 MB take
    at 1 TB/s alone. The scalar kernel (1 block per SM, 2 trips) waits 1000 waves x 4 us = 4 ms more."""
    fast = RowKernels(kinds=(("norm", 1024, 8, 1, 2, 0, (), True),), resident_threads=2048)
    x, total = 100_000 * 2048 * 2, 100_000 * 2048 * 4 + 4096
    loads = (x + 4096 + x * (1 - 10e6 / total)) / 1e12 + 2 * x / 1e13
    assert CostModel(gpu, CostOptions(row_kernels=fast)).op_cost(norm(100_000)).time_s == pytest.approx(
        250e-6 + loads)
    assert CostModel(gpu, ROWS).op_cost(norm(100_000)).time_s == pytest.approx(4e-3 + loads)


def test_not_applied_without_facts_or_special_unit_or_when_fused(gpu):
    cpu_like = load_chip(DATA / "toy-chip-l2.yaml")  # lists no special-function unit: not a CUDA GPU
    op = norm(100)
    assert CostModel(cpu_like, ROWS).op_cost(op).time_s == CostModel(cpu_like).op_cost(op).time_s
    fused = CostModel(gpu, replace(ROWS, fused=True)).op_cost(replace(op, fusable=True))
    assert fused.time_s == CostModel(gpu, CostOptions(fused=True)).op_cost(replace(op, fusable=True)).time_s
    # the default stack (vLLM V1: Inductor's kernels, custom ops off) lists none
    assert load_stack("vllm").row_kernels is None


@pytest.mark.parametrize("kind", ["norm", "elementwise", "rope"])
def test_time_monotone_in_tokens(gpu, kind):
    """More token rows never take less time (waves only grow; the bandwidth term only grows)."""
    cm = CostModel(gpu, ROWS)
    rng = np.random.default_rng(1)
    ts = np.unique(np.concatenate([np.arange(1, 400), rng.integers(1, 200_000, 300)]))

    def op(t):
        if kind == "norm":
            return norm(int(t), 4096)
        if kind == "rope":
            return row_to_op({"op": "rope", "dtype": "bf16", "numel": int(t) * 5120, "m": int(t)})
        return row_to_op({"op": "elementwise", "dtype": "bf16", "numel": int(t) * 14336, "inputs": 2, "m": int(t)})

    times = np.array([cm.op_cost(op(t)).time_s for t in ts])
    assert np.all(np.diff(times) >= -1e-18)


@pytest.mark.parametrize("clocked", [False, True])
def test_array_path_equals_per_op_path(gpu, clocked):
    """over_steps() prices a stacked op (rows and bytes arrays over token counts) as each op alone (with the
    Vidur kernels' instruction counts on a clocked chip too)."""
    cm = CostModel(replace(gpu, clock_hz=1.4e9), CostOptions(row_kernels=ROW_KERNELS)) if clocked \
        else CostModel(gpu, ROWS)
    ts = [1, 99, 100, 101, 555, 4096, 70_000]
    for make in (lambda t: norm(t, 5120),
                 lambda t: row_to_op({"op": "elementwise", "dtype": "bf16", "numel": t * 7168, "inputs": 2, "m": t}),
                 lambda t: row_to_op({"op": "rope", "dtype": "bf16", "numel": t * 1536, "m": t})):
        ops = [make(t) for t in ts]
        arr = cm.over_steps()._price(stacked(ops)).time_s
        assert list(arr) == pytest.approx([cm.op_cost(o).time_s for o in ops], rel=1e-12)


def test_graph_marks_rows_of_row_kernels():
    """Llama-3.1-8B, 512 tokens: norms, the activation and rope run one block per token; the residual adds
    are flat elementwise kernels."""
    from workloads import Batch, build_graph

    ops = {o.name: o for o in build_graph("llama-3.1-8b", Batch.prefill(1, 512)).ops}
    for name in ("attn.norm", "mlp.norm", "mlp.act", "attn.rope"):
        assert ops[name].rows == 512, name
    assert ops["attn.residual"].rows == 0 and ops["mlp.residual"].rows == 0


def test_vidur_rows_priced_as_the_kernels_vidur_timed():
    rows = pd.DataFrame([{"source": "vidur:compute/a100/x/mlp.csv"}] * 2)
    assert scoring_options(rows, CostOptions()).row_kernels is ROW_KERNELS
    assert scoring_options(rows.assign(source=["vidur:a", "mine"]), CostOptions()).row_kernels is None
    assert scoring_options(rows, ROWS).row_kernels is FACTS  # the caller's choice stands


def test_rope_and_elementwise_rows_check_m():
    from sim.ops import RowError

    with pytest.raises(RowError, match="rows must divide numel"):
        row_to_op({"op": "rope", "dtype": "bf16", "numel": 1000, "m": 3})
    with pytest.raises(RowError, match="rows must divide numel"):
        row_to_op({"op": "elementwise", "dtype": "bf16", "numel": 1000, "m": 3})
    assert row_to_op({"op": "elementwise", "dtype": "bf16", "numel": 1000}).rows == 0


def test_stack_file_row_kernels(tmp_path):
    """A stack that runs row-per-block kernels lists them (kernels.row_kernels); typos are named."""
    from hwmodels.errors import SpecError
    from hwmodels.stack import STACKS

    text = (STACKS / "vllm.yaml").read_text().replace("name: vllm", "name: rows").replace(
        "  decode_attention:", "  row_kernels:\n"
        "    norm: {threads: 1024, items_per_thread: 1, dram_trips: 1, cache_trips: 2, block_barrier: true,\n"
        "           instruction_mix: {ampere: {integer: 13, memory: 4}}}\n"
        "    resident_threads: 1024\n    source: [test]\n  decode_attention:", 1)
    p = tmp_path / "rows.yaml"
    p.write_text(text)
    st = load_stack(str(p))
    mix = (("ampere", (("integer", 13.0), ("memory", 4.0))),)
    assert st.row_kernels == RowKernels(kinds=(("norm", 1024, 1, 1, 2, 0, mix, True),), resident_threads=1024)
    assert st.cost_options(CostOptions()).row_kernels == st.row_kernels
    assert st.row_kernels.of("norm") == (1024, 1, 1, 2, 0, mix, True)  # no instructions given: 0
    assert st.to_dict()["row_kernels"]["norm"] == {"threads": 1024, "items_per_thread": 1, "dram_trips": 1,
                                                   "cache_trips": 2, "instructions": 0, "block_barrier": True,
                                                   "instruction_mix": {"ampere": {"integer": 13.0, "memory": 4.0}}}
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("name: rows", "name: bad").replace("dram_trips: 1", "dram_trip: 1"))
    with pytest.raises(SpecError, match="dram_trip"):
        load_stack(str(bad))


def test_rope_two_loops_by_hand(gpu):
    """vLLM's rotary kernel sizes its block on q's pairs and walks q, then k (Op.first_loop; ``numel_q``). 64 rows
    of 4 q heads and 1 k head of 128 (512 + 128 elements a row): a 256-thread block, one q trip and one k trip,
    2 x 2 HBM round trips = 4 us; the same row as one loop (no numel_q) is 320 pairs, one trip of a 320-thread
    block: 2 us. With 400 instructions a trip at 1 GHz (100 ns a warp): 150 rows of 16 q heads and 4 k heads
    (1024 + 256 pairs): 512-thread blocks, 2 on the busiest SM: the q trips issue 2 x 16 warps (3.2 us, over
    the 2 us of round trips), the k trip's 2 x 8 warps (1.6 us) wait the 2 us: 2 x 3.2 + 2 = 8.4 us; one loop of
    1280 pairs counts 3 trips of 16 warps (its last, 256 pairs, as a full block): 9.6 us."""
    from dataclasses import replace as dc_replace

    cm = CostModel(gpu, ROWS)

    def rope(m, q, k, split=True):
        return row_to_op({"op": "rope", "dtype": "bf16", "numel": m * (q + k), "m": m,
                          **({"numel_q": m * q} if split else {})})

    assert rope(64, 512, 128).first_loop == 512
    assert cm.op_cost(rope(64, 512, 128)).time_s == pytest.approx(4e-6)
    assert cm.op_cost(rope(64, 512, 128, split=False)).time_s == pytest.approx(2e-6)
    facts = RowKernels(kinds=(("rope", 512, 2, 2, 0, 400),), resident_threads=2048, issue_per_clock=4)
    clocked = CostModel(dc_replace(gpu, clock_hz=1e9), CostOptions(row_kernels=facts))
    assert clocked.op_cost(rope(150, 2048, 512)).time_s == pytest.approx(2 * 3.2e-6 + 2e-6)
    assert clocked.op_cost(rope(150, 2048, 512, split=False)).time_s == pytest.approx(3 * 3.2e-6)
    # q's elements all of the row: one loop, as without numel_q
    assert cm.op_cost(rope(64, 640, 0)).time_s == cm.op_cost(rope(64, 640, 0, split=False)).time_s
    from sim.ops import RowError

    with pytest.raises(RowError, match="numel_q"):
        row_to_op({"op": "rope", "dtype": "bf16", "numel": 640, "m": 1, "numel_q": 700})


def test_graph_rope_walks_q_then_k():
    """Llama-3.1-8B at TP 8: 4 q heads and 1 k head of 128 a rank: the first loop is q's 512 elements a row."""
    from workloads import Batch, Parallelism, build_graph

    op = build_graph("llama-3.1-8b", Batch.prefill(1, 512), parallel=Parallelism(tp=8)).find("attn.rope")
    assert op.first_loop == 512 and op.bytes_written / 2 / op.rows == 640
