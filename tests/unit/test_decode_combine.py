"""FlashAttention-2's decode facts that set a small decode's floor (docs/cost-model.md, Paged decode): the combine
kernel's round trips (``combine_splits_per_trip``: one for the log-sum-exps, then one per split) and the split
kernel's KV tile by head_dim (``kv_tile_tokens_by_head_dim``: block_n 256 / 128 / 64), on the H100 SXM with the
torch_fa2 profile of attention_kernels.yaml. Split counts checked by hand against num_splits_heuristic."""

from dataclasses import replace
from pathlib import Path

import pytest

from hwmodels.arith import NUMBERS
from hwmodels.errors import SpecError
from hwmodels.loader import load_hardware
from hwmodels.stack import load_stack
from sim.attention import decode_combine_trips, decode_kernel_at
from sim.cost import CostModel, CostOptions
from sim.ops import row_to_op
from sim.validation.kernel_profiles import decode_kernel_profiles


def _row(heads: int, kv_heads: int, head_dim: int, batch: int, kv: int):
    return row_to_op({"op": "attention", "dtype": "bf16", "phase": "decode", "batch": batch, "heads": heads,
                      "kv_heads": kv_heads, "head_dim": head_dim, "seqlen_q": 1, "seqlen_kv": kv, "causal": False})


def _cost(dk, op):
    """The op's cost; the array path (a run's steps) prices it the same."""
    cm = CostModel(load_hardware("h100-sxm"), CostOptions(decode_kernel=dk, cuda_graphs=True))
    c = cm.op_cost(op)
    assert float(cm.over_steps()._price(op).time_s) == pytest.approx(c.time_s, rel=1e-12)
    return c


def test_combine_pays_one_round_trip_per_split():
    """1 x 4,096 tokens, 32 query / 8 KV heads, head_dim 128: 8 units on 264 slots, 32 KV tiles of 128; the wave
    efficiency 8 s / 264 grows with s, and of the counts within 0.85 of the best (s >= 28) only 32 changes the
    tiles per split, so 32 splits. Their partials (32 heads x 32 splits x 129 fp32, written and read: 1 MiB) sit in
    L2, so the combine's 32 extra round trips add 32 x the chip's L2 latency (145 ns) = 4.64 us."""
    fa2 = decode_kernel_profiles()["torch_fa2"]
    assert fa2.combine_splits_per_trip == 1
    op = _row(32, 8, 128, 1, 4096)
    one, per_split = _cost(replace(fa2, combine_splits_per_trip=0), op), _cost(fa2, op)
    assert "split-kv 32," in one.detail and "split-kv 32," in per_split.detail
    assert per_split.time_s - one.time_s == pytest.approx(32 * 145e-9, rel=1e-9)
    assert decode_combine_trips(NUMBERS, fa2, 32) == 33
    assert decode_combine_trips(NUMBERS, replace(fa2, combine_splits_per_trip=0), 32) == 1
    assert decode_combine_trips(NUMBERS, replace(fa2, combine_splits_per_trip=4), 30) == 1 + 8


def test_split_kernel_kv_tile_follows_head_dim():
    """block_n 256 / 128 / 64 at head_dim <= 64 / <= 128 / above (the last row beyond them all). 1 x 4,096 tokens,
    16 query / 4 KV heads, head_dim 256: 4 units, 64 KV tiles of 64 keys; within 0.85 of the best efficiency
    (4 x 64 / 264 = 0.97) only s = 64 changes the tiles per split: 64 splits (32 with one 128-key tile for all)."""
    fa2 = decode_kernel_profiles()["torch_fa2"]
    assert [decode_kernel_at(fa2, d).kv_tile_tokens for d in (64, 96, 128, 256, 512)] == [256, 128, 128, 64, 64]
    assert decode_kernel_at(fa2, 256) is decode_kernel_at(fa2, 256)  # one object per head_dim (the split cache's key)
    plain = replace(fa2, kv_tile_tokens_by_head_dim=())
    assert decode_kernel_at(plain, 256) is plain
    op = _row(16, 4, 256, 1, 4096)
    assert "split-kv 64," in _cost(fa2, op).detail
    assert "split-kv 32," in _cost(plain, op).detail


def test_stack_files_read_and_check_the_two_facts(tmp_path):
    """A stack file gives both facts (rows as tuples, so the facts hash); bad values name the field."""
    src = (Path(__file__).parents[2] / "hwmodels" / "catalog" / "stacks" / "vllm-0.5.yaml").read_text()
    good = src.replace("    split_partials: true\n", "    split_partials: true\n    combine_splits_per_trip: 1\n"
                       "    kv_tile_tokens_by_head_dim: [[64, 256], [128, 128], [256, 64]]\n", 1)
    p = tmp_path / "vllm-0.5.yaml"  # a stack file is named after its name (hwmodels.schema.Name)
    p.write_text(good)
    dk = load_stack(str(p)).decode_kernel
    assert dk.combine_splits_per_trip == 1 and dk.kv_tile_tokens_by_head_dim == ((64, 256), (128, 128), (256, 64))
    hash(dk)
    for bad, field in (("combine_splits_per_trip: 1", "combine_splits_per_trip: -1"),
                       ("[[64, 256], [128, 128], [256, 64]]", "[[64]]")):
        p.write_text(good.replace(bad, field))
        with pytest.raises(SpecError, match="combine_splits_per_trip" if "combine" in bad else "kv_tile_tokens_by"):
            load_stack(str(p))
