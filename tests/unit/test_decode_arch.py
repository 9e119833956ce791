"""Decode-attention kernel facts by chip architecture (kernels.decode_attention.by_architecture, the chip
file's `architecture`): the entry applies on chips of that architecture only, the loader locates bad
entries, and the default stack prices FlashAttention-3's split policy on Hopper and FlashAttention-2's
elsewhere. Hand-checkable split counts on the 100-core toy chip."""

from pathlib import Path

import pytest

from hwmodels.errors import SpecError
from hwmodels.loader import load_chip, load_hardware
from hwmodels.stack import load_stack
from sim.cost import CostModel, CostOptions
from workloads import Batch, build_graph

TOY = Path(__file__).parents[1] / "data" / "toy-chip.yaml"

STACK = """version: 1
kind: stack
name: toy-stack
source: round numbers for tests
kernels:
  attention_prefill: flash
  attention_decode: paged
  source: test
  decode_attention:
    page_size: 16
    gqa: grouped
    split_ctas_per_core: 2
    kv_tile_tokens: 128
    split_threshold: 0.8
    split_gqa_only: true
    split_partials: true
    pipeline_fill: true
    by_architecture:
      hopper:
        split_ctas_per_core: 1
        split_min_kv_tiles: 5
        source: test
    source: test
runtime: {step_overhead: 1 ms, per_request_overhead: 10 us, overlap: false, cuda_graphs: true, eager_launch: 0 s,
          source: test}
scheduler: {chunked_prefill: true, max_num_batched_tokens: 2048, max_num_seqs: 64, source: test}
"""


def _toy(tmp_path, architecture: str | None) -> str:
    """The toy chip (100 cores) with an L2 and, where given, an architecture."""
    src = TOY.read_text().replace(
        "  - {name: hbm, kind: dram, capacity: 10 GiB, bandwidth: 1 TB/s}",
        "  - {name: l2, kind: cache, capacity: 200 MiB, bandwidth: 5 TB/s, latency: 100 ns}\n"
        "  - {name: hbm, kind: dram, capacity: 10 GiB, bandwidth: 1 TB/s, latency: 500 ns}")
    name = f"toy-{architecture or 'none'}"
    src = src.replace("name: toy-chip", f"name: {name}" + (f"\narchitecture: {architecture}" if architecture else ""))
    p = tmp_path / f"{name}.yaml"
    p.write_text(src)
    return str(p)


def _stack(tmp_path, text=STACK) -> str:
    p = tmp_path / "toy-stack.yaml"
    p.write_text(text)
    return str(p)


def _decode(model: str, batch: int, kv: int):
    return next(o for o in build_graph(model, Batch.decode(batch, kv)).ops if o.kind == "attention")


def test_an_architecture_entry_applies_on_that_architecture_only(tmp_path):
    """qwen2.5-0.5b (2 KV heads), one request: 2 (request, KV head) units. At 500 tokens (4 tiles of 128):
    FA2's policy splits to min(ceil(200 slots / 2), 4) = 4; the hopper entry (100 slots, no split under 5
    tiles) runs 1. At 1,000 tokens (8 tiles) both split 8 (min(ceil(100 / 2), 8) on hopper)."""
    dk = load_stack(_stack(tmp_path)).decode_kernel
    assert dk.by_architecture == (("hopper", (("split_ctas_per_core", 1), ("split_min_kv_tiles", 5))),)
    assert dk.on("hopper").split_ctas_per_core == 1 and dk.on("hopper").by_architecture == ()
    assert dk.on("ampere") is dk and dk.on(None) is dk
    hop, amp, bare = (load_chip(_toy(tmp_path, a)) for a in ("hopper", "ampere", None))
    assert hop.architecture == "hopper" and bare.architecture is None

    def detail(chip, op):
        return CostModel(chip, CostOptions(decode_kernel=dk)).op_cost(op).detail

    short, long = _decode("qwen2.5-0.5b", 1, 500), _decode("qwen2.5-0.5b", 1, 1000)
    assert detail(hop, short) == "split-kv 1, 2 cores"
    assert detail(amp, short) == detail(bare, short) == "split-kv 4, 8 cores"
    assert detail(hop, long) == detail(amp, long) == "split-kv 8, 16 cores"
    # 60 requests: 120 units; FA2: 120 < 0.8 x 200, split min(ceil(200 / 120), 8) = 2; with 100 slots
    # (hopper) 120 >= 0.8 x 100: one split
    many = _decode("qwen2.5-0.5b", 60, 1000)
    assert detail(amp, many) == "split-kv 2, 100 cores"
    assert detail(hop, many) == "split-kv 1, 100 cores"
    # the stack as a whole: its JSON form names the entry
    assert load_stack(_stack(tmp_path)).to_dict()["decode_attention"]["by_architecture"] == {
        "hopper": {"split_ctas_per_core": 1, "split_min_kv_tiles": 5}}


def test_bad_architecture_entries_are_located(tmp_path):
    with pytest.raises(SpecError) as e:
        load_stack(_stack(tmp_path, STACK.replace("      hopper:", "      hoper:")))
    assert "toy-stack.yaml:" in str(e.value) and "did you mean 'hopper'" in str(e.value)
    with pytest.raises(SpecError, match="split_ctas_per_cor"):
        load_stack(_stack(tmp_path, STACK.replace("        split_ctas_per_core: 1", "        split_ctas_per_cor: 1")))
    with pytest.raises(SpecError, match="source"):
        load_stack(_stack(tmp_path, STACK.replace("        split_min_kv_tiles: 5\n        source: test\n",
                                                 "        split_min_kv_tiles: 5\n")))
    with pytest.raises(SpecError, match="split_min_kv_tiles"):
        load_stack(_stack(tmp_path, STACK.replace("split_min_kv_tiles: 5", "split_min_kv_tiles: 0")))
    bad = Path(_toy(tmp_path, "hopper"))
    bad.write_text(bad.read_text().replace("architecture: hopper", "architecture: hoppr"))
    with pytest.raises(SpecError) as e:
        load_chip(str(bad))
    assert "architecture" in str(e.value) and "hopper" in str(e.value)


def test_default_stack_runs_fa3_splits_on_hopper_and_fa2_elsewhere():
    """vllm: a multi-head model (llama-2-7b, 32 heads) at batch 1 and 4,000 tokens: FA2 (A100) splits
    grouped-query models only, so 1 split; FA3 (H100) splits it by its varlen dynamic rule: 32 units,
    132 slots, 32 tiles of 128 tokens: ceil(1.1 x 32 x 32 / 132) = 9 tiles a split, ceil(32 / 9) = 4
    splits (the one-request occupancy cap is 4 too: 4 x 32 / 132 = 0.97 of a wave), 128 CTAs."""
    dk = load_stack("vllm").decode_kernel
    assert dk.split_ctas_per_core == 2 and dk.on("hopper").split_ctas_per_core == 1
    op = _decode("llama-2-7b", 1, 4000)
    opts = load_stack("vllm").cost_options(CostOptions(cuda_graphs=True))
    h100, a100 = load_hardware("h100-sxm"), load_hardware("a100-sxm")
    assert h100.architecture == "hopper" and a100.architecture == "ampere"
    assert CostModel(a100, opts).op_cost(op).detail == "split-kv 1, 32 cores"
    assert CostModel(h100, opts).op_cost(op).detail == "split-kv 4, 128 cores"


def test_occupancy_split_heuristic_by_hand():
    """FlashAttention's num_splits_heuristic (split_rule occupancy): over the split counts up to min(128,
    slots, KV tiles) that change the tiles per split (eligible), the smallest whose wave efficiency
    w / ceil(w), w = units x splits / slots, reaches 0.85 of the best.
    32 units over 264 slots, 18 tiles: eligible 1, 2, 3, 4, 5, 6, 9, 18 (7 and 8 also give 3 tiles a
    split); efficiencies s x 32 / 264 = 0.121 s up to s = 6 (0.727), 9: 1.09 / 2 = 0.545, 18: 2.18 / 3
    = 0.727; best 0.727, so 6 (fill would take min(ceil(264 / 32), 18) = 9: a second wave of 24 CTAs).
    8 units, 264 slots, 64 tiles: best 0.97 (s = 32: 256 of 264 slots); 0.85 of it needs s >= 28, and
    23-31 give 3 tiles a split like 22 (eligible, 0.667): 32. 212 units (>= 0.8 x 264): 1; 211: w = 0.799 s,
    s = 5 gives 3.996 waves (0.999): 5."""
    from sim.attention import _occupancy

    assert _occupancy(32, 264, 18) == 6
    assert _occupancy(8, 264, 64) == 32
    assert _occupancy(212, 264, 64) == 1 and _occupancy(211, 264, 64) == 5
    assert _occupancy(8, 264, 1) == 1


def test_occupancy_arrays_equal_numbers():
    """The array form (steps, design points) gives the per-case count everywhere."""
    import numpy as np

    from sim.attention import _occupancy

    units = np.array([1, 2, 3, 7, 8, 16, 31, 32, 50, 64, 100, 131, 200, 211, 212, 300], dtype=float)
    for slots in (108, 132, 264):
        for tiles in (1, 2, 4, 5, 9, 18, 33, 64, 128, 1000):
            arr = _occupancy(units, slots, np.full(units.shape, float(tiles)))
            assert list(arr) == [_occupancy(int(u), slots, tiles) for u in units], (slots, tiles)


def test_dynamic_split_by_hand():
    """FlashAttention-3's varlen split (split_rule dynamic, hopper/flash_prepare_scheduler.cu): blocks per
    SM = ceil(1.1 x units x tiles / slots), splits = ceil(tiles / that), at most the occupancy count of one
    request's KV heads. 8 units (one request, 8 KV heads), 132 slots, 128 tiles: ceil(1.1 x 8 x 128 / 132)
    = ceil(8.53) = 9 blocks per SM, ceil(128 / 9) = 15 splits (fill: min(ceil(132 / 8), 128) = 17).
    16 requests (128 units): 1.1 x 128 >= 132, so 1."""
    from hwmodels.arith import NUMBERS
    from hwmodels.stack import DecodeKernel
    from sim.attention import _occupancy, decode_splits

    dyn = DecodeKernel(split_rule="dynamic", split_threshold=0.909)
    assert _occupancy(8, 132, 128) >= 15
    assert decode_splits(NUMBERS, dyn, 8, 132, 128, 8) == 15
    assert decode_splits(NUMBERS, DecodeKernel(), 8, 132, 128, 8) == 17
    assert decode_splits(NUMBERS, dyn, 128, 132, 128, 8) == 1
    # no split under split_min_kv_tiles tiles
    assert decode_splits(NUMBERS, DecodeKernel(split_rule="dynamic", split_min_kv_tiles=5), 8, 132, 4, 8) == 1


def test_decode_splits_arrays_equal_numbers():
    """Every split rule gives, over arrays (a decode run's steps: one batch, tiles growing; design points:
    units varying), the count it gives each case as numbers."""
    import numpy as np

    from hwmodels.arith import ARRAYS, NUMBERS
    from hwmodels.stack import DecodeKernel
    from sim.attention import decode_splits

    rules = [DecodeKernel(split_rule=r, split_threshold=th, split_min_kv_tiles=m)
             for r, th, m in (("fill", 1.0, 1), ("occupancy", 0.8, 1), ("dynamic", 0.909, 5))]
    tiles = np.ceil(np.arange(100, 2100, 75) / 128.0)
    for dk in rules:
        for units in (8, 32, 100, 300):
            run = decode_splits(ARRAYS, dk, np.full(tiles.shape, float(units)), 132, tiles, 8)
            assert list(run) == [decode_splits(NUMBERS, dk, units, 132, int(t), 8) for t in tiles], (dk.split_rule, units)
        us = np.arange(1.0, 300.0, 7.0)
        pts = decode_splits(ARRAYS, dk, us, 264, np.full(us.shape, 40.0), 8)
        assert list(pts) == [decode_splits(NUMBERS, dk, int(u), 264, 40, 8) for u in us], dk.split_rule
    # several runs' steps in one array: a few batch sizes, tiles growing
    us = np.repeat([8.0, 16.0, 40.0], 9)
    ts = np.tile(np.arange(4.0, 13.0), 3)
    for dk in rules:
        mixed = decode_splits(ARRAYS, dk, us, 132, ts, 8)
        assert list(mixed) == [decode_splits(NUMBERS, dk, int(u), 132, int(t), 8) for u, t in zip(us, ts)], dk.split_rule


def test_decode_splits_remembered_spans_follow_moving_tile_ranges():
    """A batch's split counts are kept as one array over a span of tile counts, widened when a later call
    reaches past it (sim.attention._splits_span): calls whose tile ranges move up, down and past both ends,
    for one batch and for several in one array, give each step the count it gets as numbers."""
    import numpy as np

    from hwmodels.arith import ARRAYS, NUMBERS
    from hwmodels.stack import DecodeKernel
    from sim import attention
    from sim.attention import decode_splits

    attention._SPANS.clear()
    for dk in (DecodeKernel(split_rule="occupancy", split_threshold=0.8),
               DecodeKernel(split_rule="dynamic", split_threshold=0.909, split_min_kv_tiles=5)):
        for lo, hi in ((20, 30), (25, 40), (5, 12), (3, 60), (30, 31), (1, 2)):
            tiles = np.arange(float(lo), float(hi + 1))
            for units in (8.0, 24.0):
                got = decode_splits(ARRAYS, dk, np.full(tiles.shape, units), 132, tiles, 8)
                assert list(got) == [decode_splits(NUMBERS, dk, int(units), 132, int(t), 8) for t in tiles]
            us = np.repeat([8.0, 16.0, 40.0], len(tiles))
            ts = np.tile(tiles, 3)
            got = decode_splits(ARRAYS, dk, us, 132, ts, 8)
            assert list(got) == [decode_splits(NUMBERS, dk, int(u), 132, int(t), 8) for u, t in zip(us, ts)]


def test_default_stack_runs_triton_unified_attention_on_cdna3_only():
    """vllm on AMD CDNA 3 (MI300X, MI325X, MI300A: architecture cdna3) prices vLLM V1's default ROCm decode,
    the Triton unified attention 2D kernel: 16-row query tiles (BLOCK_M), 32-key tiles (TILE_SIZE_PREFILL),
    one K and one V tile in flight; every other fact (FA2's split policy, 16-token pages) is the section's.
    Hopper and Ampere keep their kernels, and CDNA 4 (MI355X, no entry) the section's FA2 facts.
    By hand on llama-3.1-8b (32 heads, 8 KV heads: group 4) at batch 8, 1,000 tokens of context (1,001 keys
    with the new token's): a unit's 4 query rows padded to 16 rows (FA2: 64) over ceil(1001 / 32) = 32 tiles
    of 32 keys (FA2: 8 of 128): 16 x 1,024 = 16,384 (query, key) pairs per unit where the op has 4 x 1,001 =
    4,004: pad 4.092 (FA2: 64 x 1,024 / 4,004 = 16.37)."""
    from sim.attention import decode_tile_pad

    dk = load_stack("vllm").decode_kernel
    amd = dk.on("cdna3")
    assert (amd.q_tile_rows, amd.kv_tile_tokens, amd.kv_tiles_in_flight) == (16, 32, 2)
    assert (amd.split_ctas_per_core, amd.split_rule, amd.page_size) == (2, "occupancy", 16)
    for name in ("mi300x", "mi325x", "mi300a"):
        assert load_chip(name).architecture == "cdna3"
    assert load_chip("mi355x").architecture == "cdna4" and dk.on("cdna4") is dk
    for arch in ("ampere", "hopper"):
        assert dk.on(arch).q_tile_rows == 64 and dk.on(arch).kv_tile_tokens == 128
    op = _decode("llama-3.1-8b", 8, 1000)
    opts = load_stack("vllm").cost_options(CostOptions(cuda_graphs=True))
    mi300x = load_hardware("mi300x")
    assert decode_tile_pad(CostModel(mi300x, opts), op, amd, False) == pytest.approx(16 * 1024 / 4004)
    assert decode_tile_pad(CostModel(mi300x, opts), op, dk, False) == pytest.approx(64 * 1024 / 4004)


def test_prepare_kernel_adds_one_kernel_and_one_round_trip(tmp_path):
    """prepare_kernel (upstream FlashAttention-3's prepare_varlen_num_blocks before each varlen call): on the
    toy chip with a 2 us kernel fixed time and 500 ns main-memory latency, the decode attention op takes
    exactly 2 us + 500 ns more, under CUDA graphs, on the per-op and the array path; a stack file reads it,
    the default stack runs none (vLLM passes scheduler_metadata computed once per step) and the published
    fa3_upstream profile does."""
    from dataclasses import replace

    from sim.validation.published import decode_kernel_profiles

    chip = Path(_toy(tmp_path, "hopper"))
    chip.write_text(chip.read_text().replace("launch_overhead: 0 s", "launch_overhead: 0 s\nkernel_fixed_time: 2 us"))
    hw = load_chip(str(chip))
    base = load_stack(_stack(tmp_path)).decode_kernel
    op = _decode("llama-2-7b", 16, 2000)
    t = {}
    for prep in (False, True):
        cm = CostModel(hw, CostOptions(decode_kernel=replace(base, prepare_kernel=prep), cuda_graphs=True))
        t[prep] = cm.op_cost(op).time_s
        assert float(cm.over_steps()._price(op).time_s) == pytest.approx(t[prep], rel=1e-12)
    assert t[True] - t[False] == pytest.approx(2e-6 + 500e-9, rel=1e-9)
    with_prep = STACK.replace("    pipeline_fill: true\n", "    pipeline_fill: true\n    prepare_kernel: true\n", 1)
    assert load_stack(_stack(tmp_path, with_prep)).decode_kernel.prepare_kernel is True
    with pytest.raises(SpecError, match="prepare_kernel"):
        load_stack(_stack(tmp_path, with_prep.replace("prepare_kernel: true", "prepare_kernel: 3")))
    vllm = load_stack("vllm").decode_kernel
    assert not vllm.prepare_kernel and not vllm.on("hopper").prepare_kernel
    assert decode_kernel_profiles()["fa3_upstream"].prepare_kernel is True


def test_decode_rows_scorer_matches_the_report_function():
    """sim.validation.decode_rows: the decode rows of kernels.csv only, its default-stack column equal to
    score_attention_kernels' and its own column differing only on rows that name a kernel profile."""
    from sim.validation.decode_rows import score_decode_rows
    from sim.validation.published import score_attention_kernels

    d = score_decode_rows()
    ref = score_attention_kernels()
    ref = ref[ref["phase"].astype(str).str.lower().eq("decode")].reset_index(drop=True)
    assert len(d) == len(ref) > 0 and (d["predicted"] == ref["predicted"]).all()
    plain = d["kernel_profile"].astype(str).str.strip().eq("")
    assert (d.loc[plain, "own_predicted"] == d.loc[plain, "predicted"]).all()
    assert (d.loc[~plain, "own_predicted"] != d.loc[~plain, "predicted"]).any()
