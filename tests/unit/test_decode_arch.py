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
    grouped-query models only, so 1 split; FA3 (H100) splits it over the SMs: 32 units, 132 slots,
    min(ceil(132 / 32), 32 tiles) = 5 splits, 160 CTAs over the 132 SMs."""
    dk = load_stack("vllm").decode_kernel
    assert dk.split_ctas_per_core == 2 and dk.on("hopper").split_ctas_per_core == 1
    op = _decode("llama-2-7b", 1, 4000)
    opts = load_stack("vllm").cost_options(CostOptions(cuda_graphs=True))
    h100, a100 = load_hardware("h100-sxm"), load_hardware("a100-sxm")
    assert h100.architecture == "hopper" and a100.architecture == "ampere"
    assert CostModel(a100, opts).op_cost(op).detail == "split-kv 1, 32 cores"
    assert CostModel(h100, opts).op_cost(op).detail == "split-kv 5, 132 cores"
