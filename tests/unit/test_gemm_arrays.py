"""GEMMs whose shape quantities are arrays (M, and with it the FLOPs and the activation bytes; one
element per token count) priced by ``CostModel.over_steps()._price(op)``: every element must equal
pricing that element's GEMM alone (the vectorized tile search and the scalar path share one
formula; 1e-12 relative), over M = 1..8192, several N and K, bf16/fp8/w4a16, tp > 1, MoE routing,
chips with a cache, with native tiles, with SRAM homes, and the toy chip."""

from pathlib import Path

import numpy as np
import pytest

from hwmodels import load_system
from sim.cost import CostModel, CostOptions
from workloads import Batch, Parallelism, build_graph
from workloads.opdata import stacked

TOY = str(Path(__file__).parent.parent / "data" / "toy-chip.yaml")
# token counts: tile edges (32, 64, 128, 256) and their neighbours, wave edges, odd sizes, 8192
TOKENS = [1, 2, 3, 7, 16, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 500, 512, 777, 1000,
          1024, 1500, 2048, 3000, 4095, 4096, 5000, 8191, 8192]


def gemms(model, quant, par, tokens):
    """Per GEMM of the graph: its op at every token count (prefill of one request)."""
    graphs = [build_graph(model, Batch.prefill(1, t), quant, parallel=par) for t in tokens]
    names = [o.name for o in graphs[0].ops if o.kind == "gemm"]
    return {name: [next(o for o in g.ops if o.name == name) for g in graphs] for name in names}


def assert_elementwise_equal(cm, ops):
    arr = cm.over_steps()._price(stacked(ops))
    refs = [cm._price(o) for o in ops]
    for field in ("compute_s", "memory_s", "comm_s", "overhead_s", "time_s", "flops", "bytes_main", "energy_j"):
        got = np.broadcast_to(getattr(arr, field), (len(ops),))
        want = np.array([getattr(r, field) for r in refs])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=f"{ops[0].name} {field}")
    for i in range(len(arr.level_bytes)):
        got = np.broadcast_to(arr.level_bytes[i], (len(ops),))
        want = np.array([r.level_bytes[i] for r in refs])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=f"{ops[0].name} level {i}")


CASES = [
    ("llama-3.1-8b", "h100-sxm", "bf16", Parallelism(), CostOptions()),
    ("llama-3.1-70b", "hgx-h100-8", "fp8", Parallelism(tp=8), CostOptions()),
    ("llama-3.1-8b", "a100-sxm", "w4a16", Parallelism(), CostOptions(dequant_per_tile=True)),
    ("qwen2.5-7b", "hgx-h100-8", "bf16", Parallelism(tp=2), CostOptions(sparse=True)),  # qkv bias: vector FLOPs
    ("mixtral-8x7b", "hgx-h100-8", "bf16", Parallelism(tp=2), CostOptions(moe_efficiency=0.75)),  # MoE routing
    ("mixtral-8x7b", "mi300x", "w4a16", Parallelism(), CostOptions(dequant_per_tile=True)),
    ("llama-3.1-8b", "h100-pcie", "bf16", Parallelism(), CostOptions()),  # sustained clock: boost under the power limit
    ("llama-3.1-8b", "tpu-v5e", "bf16", Parallelism(), CostOptions()),  # native 128x128 tiles
    ("llama-3.1-8b", "groq-lpu", "fp8", Parallelism(), CostOptions()),  # SRAM home, partial residency
    ("llama-3.1-8b", TOY, "bf16", Parallelism(), CostOptions()),  # no cache level
    ("llama-3.1-8b", TOY, "fp8", Parallelism(), CostOptions(tiling=False, dequant_per_tile=True)),
]


@pytest.mark.parametrize("model,hw,quant,par,opts", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_array_m_gemm_equals_scalar_pricing(model, hw, quant, par, opts):
    system = load_system(hw)
    by_name = gemms(model, quant, par, TOKENS)
    weights = sum(o.bytes_of("weight") * o.count for ops in by_name.values() for o in ops[:1])
    for resident in (0.0, weights):  # weights off-chip / at their home (SRAM chips: partial residency)
        cm = CostModel(system, opts, resident_bytes=resident, tp=par.tp, shared_memo=False)
        for ops in by_name.values():
            assert_elementwise_equal(cm, ops)


def test_array_m_on_toy_chip_by_hand():
    """The toy chip (100 cores, 100 TFLOP/s bf16, no efficiency factor) and llama-3.1-8b's down
    projection (N = 4096, K = 14336) at M = 6400 and 12800: every candidate's tile grid (M/Tm x N/Tn,
    Tm, Tn in 32..256) is a whole number of tiles and of waves of 100, with no split-K, so whichever
    tile wins, the compute time is the plain 2 M N K / peak, elementwise."""
    system = load_system(TOY)
    ops = [next(o for o in build_graph("llama-3.1-8b", Batch.prefill(1, t), "bf16").ops if o.name == "mlp.down_proj")
           for t in (6400, 12800)]
    assert (ops[0].gemm.n, ops[0].gemm.k) == (4096, 14336)
    p = CostModel(system, shared_memo=False).over_steps()._price(stacked(ops))
    m = np.array([6400.0, 12800.0])
    np.testing.assert_allclose(p.compute_s, 2 * m * 4096 * 14336 / 100e12, rtol=1e-12)


def test_stacked_keeps_equal_values_and_refuses_other_differences():
    ops = gemms("llama-3.1-8b", "bf16", Parallelism(), [64, 128])["attn.o_proj"]
    s = stacked(ops)
    assert s.name == "attn.o_proj" and s.gemm.n == 4096 and s.gemm.k == 4096
    assert list(s.gemm.m) == [64, 128] and list(s.flops_matrix) == [o.flops_matrix for o in ops]
    with pytest.raises(ValueError):
        stacked([ops[0], gemms("llama-3.1-8b", "bf16", Parallelism(), [64])["attn.qkv_proj"][0]])
