"""The vectorized cost path equals the scalar one (sim/cost.py) on random hardware points.

For each graph (prefill and decode, tp=1 and tp>1, dense and MoE, a chip whose weights may or may
not fit on-chip SRAM, hierarchical collectives, TPU-like native tiles) and each option set, every
op's time, the step time, energy and main-memory bytes at 200 random points must equal
``CostModel.op_cost`` on the same point's System to a relative 1e-9.
"""

from pathlib import Path

import numpy as np
import pytest

from hwmodels import load_system
from sim.cost import CostModel, CostOptions
from sim.estimate import estimate, resident_bytes
from sim.vector import HwPoints, canonical_key, evaluate_graph, param_table
from workloads import Batch, Parallelism, build_graph
from workloads.quant import Sparsity

DATA = Path(__file__).parent.parent / "data"
VEC_SYS = str(DATA / "sweep" / "vec-system.yaml")
VEC_CHIP = str(DATA / "sweep" / "vec-chip.yaml")
# per-op-kind bandwidth efficiencies on the HBM (and the on-chip SRAM) level: streaming ops of these kinds
BY_KIND = {"memory.hbm.efficiency_by_kind": {"norm": 0.55, "elementwise": 0.9, "embedding": 0.2, "rope": 0.6},
           "memory.gsram.efficiency_by_kind": {"norm": 0.7, "sampling": 0.5},
           "memory.gsram.efficiency_source": "test"}


def random_points(system, n, seed):
    """Every numeric parameter varied at once, over ranges that cross the model's branches."""
    rng = np.random.default_rng(seed)
    vals = {}
    for k, b in param_table(system).items():
        if k == "chip.cores":
            vals[k] = rng.integers(max(1, int(b) // 4), int(b) * 3 + 1, n)
        elif k.endswith("capacity"):
            vals[k] = b * rng.uniform(0.3, 3.0, n)
        elif k.endswith("efficiency") or ".efficiency_by_kind." in k:
            vals[k] = rng.uniform(0.2 if "by_kind" in k else 0.4, 1.0, n)
        elif np.isfinite(b) and b > 0:
            vals[k] = b * np.exp(rng.uniform(np.log(0.2), np.log(5.0), n))
        elif k in ("chip.launch_overhead", "chip.power.idle"):
            vals[k] = rng.uniform(0.0, 5e-6 if "launch" in k else 100.0, n)
    # the per-core memory must hold at least the smallest tile (the scalar loop has no fallback)
    for k, v in vals.items():
        if k.endswith(".capacity") and "smem" in k:
            vals[k] = np.maximum(v, 64 * 1024)
    return HwPoints(system, vals)


CASES = [
    ("h100-sxm", "llama-3.1-8b", Batch.decode(16, 1000), 1),
    ("h100-sxm", "llama-3.1-8b", Batch.prefill(2, 700), 1),
    ("hgx-h100-8", "llama-3.1-70b", Batch.decode(32, 2000), 4),
    ("hgx-h100-8", "llama-3.1-70b", Batch.prefill(1, 3000), 8),
    ("mi300x-8", "mixtral-8x7b", Batch.decode(8, 500), 2),
    ("tpu-v5e-256", "llama-3.1-8b", Batch.decode(64, 300), 4),
    ("hypo-sram-infer", "qwen2.5-0.5b", Batch.decode(4, 100), 1),
    (VEC_CHIP, "qwen2.5-0.5b", Batch.decode(8, 4000), 1),
    (VEC_CHIP, "qwen2.5-0.5b", Batch.prefill(3, 900), 1),
    (VEC_SYS, "llama-3.1-8b", Batch.decode(16, 2000), 16),
    (VEC_SYS, "llama-3.1-8b", Batch(((300, 0), (1, 500), (1, 1200))), 8),
    ((VEC_CHIP, BY_KIND), "qwen2.5-0.5b", Batch.decode(8, 4000), 1),
    ((VEC_CHIP, BY_KIND), "qwen2.5-0.5b", Batch.prefill(3, 900), 1),
]
OPTIONS = [CostOptions(), CostOptions(fused=True, overlap_comm=True, sparse=True),
           CostOptions(tiling=False, use_efficiency=False, cuda_graphs=True)]


def _rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)) / np.maximum(np.abs(np.asarray(b)), 1e-30)


def _case_id(c):
    hw = c[0] if isinstance(c[0], str) else f"{Path(c[0][0]).stem}-by-kind"
    return f"{Path(hw).stem}-{c[1]}-{c[2].phase}-tp{c[3]}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_vector_equals_scalar(case):
    hwname, model, batch, tp = case
    system = load_system(*hwname) if isinstance(hwname, tuple) else load_system(hwname)
    hwname = hwname[0] if isinstance(hwname, tuple) else hwname
    graph = build_graph(model, batch, "bf16", Parallelism(tp=tp))
    hw = random_points(system, 200, seed=len(graph.ops) + tp)
    # a resident size that straddles the chip-level SRAM on the test chip: placement differs per point
    res = resident_bytes(graph) if "vec-" not in hwname else 1.0e9
    for opts in OPTIONS:
        ga = evaluate_graph(graph, hw, opts, res, keep_ops=True)
        for i in range(0, 200, 9):
            s = hw.system_at(i)
            gc = estimate(graph, s, opts, model=CostModel(s, opts, res, tp))
            assert np.all(_rel(ga.op_time_s[i], [c.time_s for c in gc.ops]) < 1e-9), (opts, i)
            assert _rel(ga.time_s[i], gc.time_s) < 1e-9
            assert _rel(ga.energy_j[i], gc.energy_j) < 1e-9 or (np.isnan(ga.energy_j[i]) and np.isnan(gc.energy_j))
            assert _rel(ga.bytes_main[i], gc.bytes_main) < 1e-9


def test_placement_varies_per_point():
    system = load_system(VEC_CHIP)
    graph = build_graph("qwen2.5-0.5b", Batch.decode(4, 100), "bf16")
    hw = HwPoints(system, {"chip.memory.gsram.capacity": [0.5e9, 2e9]})
    ga = evaluate_graph(graph, hw, resident_bytes=1e9)
    # weights in gsram (12 TB/s) at the second point, in HBM (2 TB/s) at the first
    assert ga.time_s[1] < ga.time_s[0]
    for i in range(2):
        s = hw.system_at(i)
        cm = CostModel(s, resident_bytes=1e9)
        assert cm.home.name == ("hbm", "gsram")[i]
        assert ga.time_s[i] == pytest.approx(estimate(graph, s, model=cm).time_s, rel=1e-12)


def test_per_op_bound_matches_scalar():
    system = load_system("h100-sxm")
    graph = build_graph("llama-3.1-8b", Batch.decode(8, 512), "bf16")
    hw = HwPoints(system, {"chip.memory.hbm.bandwidth": [1e12, 3.35e12, 50e12]})
    from sim.vector import BOUNDS, VectorCostModel

    vm = VectorCostModel(hw, resident_bytes=resident_bytes(graph))
    for op in graph.ops:
        b = vm.op_arrays(op).bound()
        for i in range(3):
            s = hw.system_at(i)
            assert BOUNDS[int(np.broadcast_to(b, (3,))[i])] == CostModel(s, resident_bytes=resident_bytes(graph)) \
                .op_cost(op).bound


def test_unknown_parameter_says_did_you_mean():
    with pytest.raises(KeyError, match="did you mean 'chip.memory.hbm.bandwidth'"):
        HwPoints(load_system("h100-sxm"), {"chip.memory.hbm.bandwith": [1.0]})


def test_canonical_keys_from_override_paths():
    h100 = load_system("h100-sxm")
    hgx = load_system("hgx-h100-8")
    assert canonical_key(h100, "memory.hbm.bandwidth") == "chip.memory.hbm.bandwidth"
    assert canonical_key(h100, "memory[2].bandwidth") == "chip.memory.hbm.bandwidth"
    assert canonical_key(hgx, "memory.hbm.bandwidth") == "chip.memory.hbm.bandwidth"
    assert canonical_key(hgx, "chip.price.cloud") == "chip.price.cloud"
    assert canonical_key(hgx, "price.cloud") == "system.price.cloud"
    assert canonical_key(hgx, "tiers.0.latency") == "system.tiers.nvlink.latency"
    assert canonical_key(hgx, "compute.matrix.peak.bf16") == "chip.compute.matrix.peak.bf16"


def test_system_at_matches_loader_overrides():
    """A point's System equals what the loader builds from the same overrides (numbers only)."""
    from hwmodels.loader import load_hardware

    base = load_system("hgx-h100-8")
    hw = HwPoints(base, {"chip.memory.hbm.bandwidth": [6e12], "system.tiers.nvlink.latency": [3e-6],
                         "chip.cores": [100]})
    s = hw.system_at(0)
    ref = load_hardware("hgx-h100-8", {"memory.hbm.bandwidth": "6 TB/s", "tiers.nvlink.latency": "3 us",
                                       "cores": 100})
    assert s.chip.main_memory.bandwidth_bytes_per_s == ref.chip.main_memory.bandwidth_bytes_per_s
    assert s.tiers[0].latency_s == ref.tiers[0].latency_s and s.chip.cores == ref.chip.cores
    g = build_graph("llama-3.1-8b", Batch.decode(8, 100), "bf16", Parallelism(tp=2))
    assert estimate(g, s).time_s == pytest.approx(estimate(g, ref).time_s, rel=1e-12)


def test_efficiency_by_kind_parameters_listed_and_varied():
    system = load_system(VEC_CHIP, BY_KIND)
    p = param_table(system)
    assert p["chip.memory.hbm.efficiency_by_kind.norm"] == 0.55
    assert p["chip.memory.gsram.efficiency_by_kind.sampling"] == 0.5
    graph = build_graph("qwen2.5-0.5b", Batch.decode(8, 500), "bf16")
    hw = HwPoints(system, {"chip.memory.hbm.efficiency_by_kind.norm": [0.25, 0.5, 1.0]})
    ga = evaluate_graph(graph, hw, resident_bytes=1e11, keep_ops=True)
    norms = [j for j, op in enumerate(graph.ops) if op.kind == "norm"]
    gemms = [j for j, op in enumerate(graph.ops) if op.kind == "gemm"]
    assert norms and gemms
    assert np.all(ga.op_time_s[0, norms] > ga.op_time_s[2, norms])  # slower norms at the lower efficiency
    assert np.all(ga.op_time_s[0, gemms] == ga.op_time_s[2, gemms])  # GEMMs never see the per-kind field
    for i in range(3):
        assert hw.system_at(i).chip.main_memory.efficiency_by_kind["norm"] == [0.25, 0.5, 1.0][i]


def test_every_option_and_op_kind_through_both_entry_points():
    """Each CostOptions field flipped on its own (and kind_scale), over graphs that hold every op
    kind the graph builder makes: the array path at 40 random points equals the per-op path on
    each point's System to 1e-9 (one formula source: both run sim/cost.py)."""
    import dataclasses

    from workloads.graph import KINDS

    system = load_system("hgx-h100-8")
    graphs = [build_graph("mixtral-8x7b", Batch.decode(8, 700), "w4a16", Parallelism(tp=2, pp=2, ep=2)),
              build_graph("mixtral-8x7b", Batch.prefill(2, 300), "w4a16", Parallelism(tp=2, pp=2, ep=2)),
              build_graph("llama-3.1-8b", Batch(((200, 0), (1, 900))), "w8a16", Parallelism(tp=2), sparsity=Sparsity(layers=("mlp",))),
              build_graph("deepseek-v3", Batch.decode(4, 300), "fp8", Parallelism(tp=8, ep=8))]
    kinds = {op.kind for g in graphs for op in g.ops}
    assert kinds == set(KINDS), sorted(set(KINDS) - kinds)
    fields = [f for f in dataclasses.fields(CostOptions)]
    variants = [CostOptions()]
    for f in fields:
        if f.type in (bool, "bool"):
            variants.append(CostOptions(**{f.name: not f.default}))
    variants.append(CostOptions(kind_scale=(("gemm", 1.3), ("attention", 0.7), ("collective", 2.0))))
    variants.append(CostOptions(kind_scale=(("gemm", 1.3), ("gemm/memory", 0.6), ("norm/overhead", 3.0))))
    variants += [CostOptions(softmax="serial"), CostOptions(softmax="overlapped")]  # the special-function unit
    variants += [CostOptions(collectives="nccl"), CostOptions(collectives="nccl-nvls"),  # NCCL's algorithm choice
                 CostOptions(collectives="custom-allreduce")]  # vLLM's custom all-reduce below 8 MiB
    variants.append(CostOptions(moe_efficiency=0.75))  # the MoE kernel's rate on routed expert GEMMs
    # the MoE kernel's weight stream on this vendor's chips, by weight dtype (int4 and fp8 experts here)
    variants.append(CostOptions(moe_weight_stream=(("NVIDIA", (("int4", 0.5), ("fp8", 0.4))),)))
    from hwmodels.stack import DecodeKernel, load_stack

    variants += [CostOptions(decode_kernel=load_stack("vllm").decode_kernel),  # split, partials, Little's law
                 CostOptions(decode_kernel=DecodeKernel(gqa="per_query_head", page_size=16, split_partials=True,
                                                        pipeline_fill=True, q_tile_rows=128,
                                                        kv_stream_efficiency=0.6))]
    pk = load_stack("vllm").prefill_kernel  # FA3 tiles, pipeline fill, hidden softmax; and a non-persistent one
    variants += [CostOptions(softmax="serial", prefill_kernel=pk),
                 CostOptions(softmax="serial", prefill_kernel=dataclasses.replace(pk, persistent=False))]
    from sim.validation.vidur import ROW_KERNELS

    variants.append(CostOptions(row_kernels=ROW_KERNELS))  # norms, activations, rope as waves of round trips
    variants.append(CostOptions(block_fp8=load_stack("vllm").block_fp8))  # deepseek-v3's fp8 is block-scaled
    covered = {f.name for f in fields if any(getattr(v, f.name) != f.default for v in variants)}
    assert covered == {f.name for f in fields}, "a CostOptions field is not exercised"
    hw = random_points(system, 40, seed=7)
    for graph in graphs:
        tp = graph.parallel.tp
        res = resident_bytes(graph)
        for opts in variants:
            ga = evaluate_graph(graph, hw, opts, res, keep_ops=True)
            for i in range(0, 40, 13):
                s = hw.system_at(i)
                gc = estimate(graph, s, opts, model=CostModel(s, opts, res, tp))
                assert np.all(_rel(ga.op_time_s[i], [c.time_s for c in gc.ops]) < 1e-9), (opts, i)
                # a chip without power data has unknown (NaN) energy on both paths
                assert _rel(ga.energy_j[i], gc.energy_j) < 1e-9 or (np.isnan(ga.energy_j[i]) and np.isnan(gc.energy_j))


def test_dequant_per_tile_reaches_the_array_path():
    """The drift the one-source rewrite removed: w4a16 prefill with per-tile dequantization."""
    system = load_system("h100-sxm")
    graph = build_graph("llama-3.1-8b", Batch.prefill(4, 1024), "w4a16")
    opts = CostOptions(dequant_per_tile=True)
    scalar = estimate(graph, system, opts).time_s
    arrays = evaluate_graph(graph, HwPoints(system, {"chip.cores": [system.chip.cores]}), opts).time_s[0]
    assert arrays == pytest.approx(scalar, rel=1e-12)
    assert scalar > estimate(graph, system).time_s


def test_kind_scale_scales_only_that_kind():
    system = load_system("h100-sxm")
    graph = build_graph("llama-3.1-8b", Batch.decode(8, 512), "bf16")
    base = estimate(graph, system)
    scaled = estimate(graph, system, CostOptions(kind_scale=(("gemm", 2.0),)))
    for a, b in zip(base.ops, scaled.ops):
        assert b.time_s == pytest.approx(a.time_s * (2.0 if a.kind == "gemm" else 1.0), rel=1e-12)


def test_kind_bound_scale_scales_only_ops_of_that_bound():
    """A 'kind/bound' key scales the ops of that kind whose unscaled bound it is; the kind's key the others."""
    system = load_system("h100-sxm")
    graph = build_graph("llama-3.1-8b", Batch(((200, 0), (1, 900))), "bf16")
    base = estimate(graph, system)
    bounds = {a.bound for a in base.ops if a.kind == "gemm"}
    assert {"compute", "memory"} <= bounds
    scaled = estimate(graph, system, CostOptions(kind_scale=(("gemm", 2.0), ("gemm/memory", 3.0))))
    for a, b in zip(base.ops, scaled.ops):
        f = 1.0 if a.kind != "gemm" else 3.0 if a.bound == "memory" else 2.0
        assert b.time_s == pytest.approx(a.time_s * f, rel=1e-12) and b.bound == a.bound
