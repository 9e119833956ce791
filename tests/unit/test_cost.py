"""The cost model on the toy chip (100 TFLOP/s bf16, 1 TB/s, 100 cores, no launch overhead): by hand."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwmodels import load_chip, load_system
from sim.cost import CostModel, CostOptions
from sim.estimate import estimate
from workloads import Batch, Parallelism, build_graph
from workloads.graph import CollectiveShape, GemmShape, Op, TensorIO

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module")
def toy():
    return load_chip(DATA / "toy-chip.yaml")


def gemm(m, n, k, dt="bf16"):
    b = 2
    return Op(f"g{m}x{n}x{k}", "gemm", 1, 2.0 * m * n * k, 0.0, dt,
              (TensorIO("a", "activation", dt, m * k * b, False), TensorIO("w", "weight", dt, k * n * b, False),
               TensorIO("c", "activation", dt, m * n * b, True)), gemm=GemmShape(m, n, k))


def stream(read, written):
    return Op("copy", "elementwise", 1, 0.0, 0.0, "bf16",
              (TensorIO("x", "activation", "bf16", read, False), TensorIO("y", "activation", "bf16", written, True)))


def test_streaming_op_by_hand(toy):
    c = CostModel(toy).op_cost(stream(1e9, 1e9))
    assert c.memory_s == pytest.approx(2e-3)  # 2 GB at 1 TB/s
    assert c.time_s == pytest.approx(2e-3) and c.bound == "memory"
    # TDP model: share 1 -> 1000 W for 2 ms
    assert c.energy_j == pytest.approx(2.0)


def test_large_gemm_plain_roofline_by_hand(toy):
    c = CostModel(toy, CostOptions(tiling=False)).op_cost(gemm(8192, 8192, 8192))
    assert c.compute_s == pytest.approx(2 * 8192**3 / 100e12)
    assert c.bound == "compute"


def test_large_gemm_tiled_waves(toy):
    # best candidate: 64x64 tiles -> 16384 tiles over 100 cores = 164 waves (163.84 full):
    # 164 x 2*64*64*8192 / (100e12/100) = 11.0056 ms vs 10.9951 ms plain
    c = CostModel(toy).op_cost(gemm(8192, 8192, 8192))
    assert c.compute_s == pytest.approx(164 * 2 * 64 * 64 * 8192 / 1e12)
    assert c.compute_s >= 2 * 8192**3 / 100e12


def test_padding_to_native_tile_costs_compute(toy):
    tiled = load_chip(DATA / "toy-chip.yaml", ["compute.matrix.tile=[64, 64, 16]"])
    # m = 65 pads to 128 rows on a 64-row native tile: compute as for m = 128
    a = CostModel(tiled).op_cost(gemm(65, 8192, 8192)).compute_s
    b = CostModel(tiled).op_cost(gemm(128, 8192, 8192)).compute_s
    assert a == pytest.approx(b)


def test_gemv_is_weight_bandwidth_bound(toy):
    c = CostModel(toy).op_cost(gemm(1, 8192, 8192))
    assert c.bound == "memory"
    assert c.time_s == pytest.approx((8192 * 8192 * 2 + 2 * 8192 * 2) / 1e12, rel=1e-6)


@pytest.mark.parametrize("bw", ["1 TB/s", "2 TB/s", "4 TB/s", "8 TB/s"])
def test_more_bandwidth_never_slower(bw):
    lo = load_chip(DATA / "toy-chip.yaml", [f"memory.hbm.bandwidth={bw}"])
    hi = load_chip(DATA / "toy-chip.yaml", [f"memory.hbm.bandwidth={float(bw.split()[0]) * 1.5} TB/s"])
    for op in (gemm(1, 4096, 4096), gemm(16, 11008, 4096), stream(1e8, 1e8)):
        assert CostModel(hi).op_cost(op).time_s <= CostModel(lo).op_cost(op).time_s


def test_more_peak_never_slower():
    lo = load_chip(DATA / "toy-chip.yaml")
    hi = load_chip(DATA / "toy-chip.yaml", ["compute.matrix.peak.bf16=150 TFLOP/s"])
    for op in (gemm(4096, 4096, 4096), gemm(512, 11008, 4096), gemm(1, 4096, 4096)):
        assert CostModel(hi).op_cost(op).time_s <= CostModel(lo).op_cost(op).time_s


@pytest.mark.parametrize("dim", ["m", "n", "k"])
def test_time_monotone_in_shape_at_tile_steps(toy, dim):
    times = []
    for x in (256, 512, 1024, 2048, 4096, 8192):
        shape = {"m": 2048, "n": 2048, "k": 2048, dim: x}
        times.append(CostModel(toy).op_cost(gemm(shape["m"], shape["n"], shape["k"])).time_s)
    assert times == sorted(times)


def test_efficiency_field_scales_compute(toy):
    eff = load_chip(DATA / "toy-chip.yaml", ["compute.matrix.efficiency=0.5",
                                              "compute.matrix.efficiency_source=test"])
    a = CostModel(toy, CostOptions(tiling=False)).op_cost(gemm(8192, 8192, 8192)).compute_s
    b = CostModel(eff, CostOptions(tiling=False)).op_cost(gemm(8192, 8192, 8192)).compute_s
    assert b == pytest.approx(2 * a)
    c = CostModel(eff, CostOptions(tiling=False, use_efficiency=False)).op_cost(gemm(8192, 8192, 8192)).compute_s
    assert c == pytest.approx(a)


def test_launch_overhead_and_cuda_graphs():
    chip = load_chip(DATA / "toy-chip.yaml", ["launch_overhead=5 us"])
    op = stream(1e3, 1e3)
    assert CostModel(chip).op_cost(op).overhead_s == pytest.approx(5e-6)
    assert CostModel(chip, CostOptions(cuda_graphs=True)).op_cost(op).overhead_s == 0.0


def test_collective_op_priced_on_tiers():
    sys8 = load_system(DATA / "toy-system.yaml")
    op = Op("ar", "collective", 1, 0, 0, "bf16", (), collective=CollectiveShape("allreduce", 1e9, 8, "tp"))
    c = CostModel(sys8).op_cost(op)
    assert c.comm_s == pytest.approx(2 * 7 / 8 * 1e-2 + 14e-6) and c.bound == "comm"


def test_tp2_on_free_interconnect_halves_per_chip_compute():
    free = load_system(DATA / "toy-system.yaml", ["tiers.link.bandwidth=1e6 TB/s", "tiers.link.latency=0 s"])
    opts = CostOptions(tiling=False)
    g1 = build_graph("llama-3.1-8b", Batch.prefill(4, 512), "bf16", Parallelism(tp=1))
    g2 = build_graph("llama-3.1-8b", Batch.prefill(4, 512), "bf16", Parallelism(tp=2))
    c1, c2 = estimate(g1, free, opts), estimate(g2, free, opts)
    gemm1 = sum(c.compute_s * c.count for c in c1.ops if c.kind == "gemm" and c.layer.startswith("layer"))
    gemm2 = sum(c.compute_s * c.count for c in c2.ops if c.kind == "gemm" and c.layer.startswith("layer"))
    assert gemm2 == pytest.approx(gemm1 / 2, rel=1e-9)
    assert c2.comm_s == pytest.approx(0.0, abs=1e-8)
    assert len([o for o in g2.ops if o.kind == "collective" and o.collective.op == "allreduce"
                and o.layer.startswith("layer")]) == 2  # after attention and after the MLP


def test_sram_chip_places_weights_on_chip():
    chip = load_chip(DATA / "toy-chip.yaml", ["memory.hbm.kind=sram"])
    cm = CostModel(chip, resident_bytes=1e9)
    assert cm.home.name == "hbm" and cm.home.kind == "sram"


def test_memo_returns_same_object(toy):
    cm = CostModel(toy)
    op = gemm(128, 128, 128)
    assert cm.op_cost(op) is cm.op_cost(replace(op))


BY_KIND = {"memory.hbm.efficiency_by_kind": {"norm": 0.5}, "memory.hbm.efficiency_source": "test: half for norms"}


def norm_op(rows, width):
    return Op("rmsnorm", "norm", 1, 0.0, 4.0 * rows * width, "bf16",
              (TensorIO("x", "activation", "bf16", rows * width * 2, False),
               TensorIO("w", "weight", "bf16", width * 2, False),
               TensorIO("y", "activation", "bf16", rows * width * 2, True)))


def test_efficiency_by_kind_norm_half_takes_twice_as_long(toy):
    """HBM 1 TB/s: a 1000 x 1000 bf16 norm moves 4.002 MB = 4.002 us; norm at 0.5 of it: 8.004 us."""
    half = load_chip(DATA / "toy-chip.yaml", BY_KIND)
    op = norm_op(1000, 1000)
    plain, slow = CostModel(toy).op_cost(op), CostModel(half).op_cost(op)
    assert plain.memory_s == pytest.approx(4.002e-6) and plain.bound == "memory"
    assert slow.memory_s == pytest.approx(8.004e-6)
    assert slow.time_s == pytest.approx(2 * plain.time_s)
    # other kinds and non-streaming ops are untouched: elementwise, GEMM (whose traffic is on the same HBM)
    for other in (stream(1e9, 1e9), gemm(16, 8192, 8192), gemm(4096, 4096, 4096)):
        assert CostModel(half).op_cost(other).time_s == CostModel(toy).op_cost(other).time_s
    # --no-efficiency ignores it, as every efficiency field
    off = CostOptions(use_efficiency=False)
    assert CostModel(half, off).op_cost(op).time_s == CostModel(toy, off).op_cost(op).time_s


def test_efficiency_by_kind_schema():
    from hwmodels.errors import SpecError

    with pytest.raises(SpecError, match="did you mean 'norm'"):
        load_chip(DATA / "toy-chip.yaml", {"memory.hbm.efficiency_by_kind": {"nrom": 0.5},
                                           "memory.hbm.efficiency_source": "x"})
    with pytest.raises(SpecError, match="efficiency_source"):
        load_chip(DATA / "toy-chip.yaml", {"memory.hbm.efficiency_by_kind": {"norm": 0.5}})
    with pytest.raises(SpecError, match="at most 1"):
        load_chip(DATA / "toy-chip.yaml", {"memory.hbm.efficiency_by_kind": {"norm": 1.5},
                                           "memory.hbm.efficiency_source": "x"})
    assert load_chip(DATA / "toy-chip.yaml").main_memory.efficiency_by_kind == {}


STORE_AFTER = {"compute.matrix.epilogue_overlap": False, "compute.matrix.epilogue_source": "test"}


def test_gemm_epilogue_store_after_main_loop_by_hand(toy):
    # a chip whose GEMM kernels store the output after the main loop (epilogue_overlap: false) adds the
    # output's write time to the compute: 8192 x 8192 bf16 = 134,217,728 B at 1 TB/s = 134.2 us
    after = load_chip(DATA / "toy-chip.yaml", STORE_AFTER)
    store = 8192 * 8192 * 2 / 1e12
    plain = CostModel(toy, CostOptions(tiling=False)).op_cost(gemm(8192, 8192, 8192)).compute_s
    assert CostModel(after, CostOptions(tiling=False)).op_cost(gemm(8192, 8192, 8192)).compute_s \
        == pytest.approx(plain + store)
    # tiled: the main loop's FLOPs of test_large_gemm_tiled_waves (164 waves of 64x64 tiles or, the same
    # FLOPs, 41 waves of 128x128), the store, and each wave's pipeline fill (a non-persistent kernel starts
    # every wave empty; its 100 CTAs, a 10 x 10 square of tiles, share their A rows and B columns through the
    # cache: (10 x 128 + 10 x 128) x 32 bf16 = 163,840 B at 1 TB/s, no latency on the toy), which makes the
    # 41 waves of 128x128 tiles the cheaper candidate
    c = CostModel(after).op_cost(gemm(8192, 8192, 8192))
    fill = 41 * (10 * 128 + 10 * 128) * 32 * 2 / 1e12
    assert c.compute_s == pytest.approx(164 * 2 * 64 * 64 * 8192 / 1e12 + store + fill)
    assert c.detail.startswith("tile 128x128")
    # an overlapped epilogue (the toy chip gives no field and has no class: nothing added) is unchanged
    assert CostModel(toy).op_cost(gemm(8192, 8192, 8192)).compute_s == pytest.approx(164 * 2 * 64 * 64 * 8192 / 1e12)


def test_gemm_fill_bytes_shared_by_the_wave_by_hand(toy):
    # the CTAs that start together read each distinct A row and B column once from main memory (the toy:
    # 100 cores, a wave is a 10 x 10 square of tiles)
    m = CostModel(toy)
    tm, tn = np.array([128.0]), np.array([64.0])
    # 8192 x 8192, 100 active CTAs: 10 tile rows x 10 tile columns = 1,280 rows + 640 columns
    assert m._fill_bytes(8192, 8192, tm, tn, np.array([100.0]))[0] == 10 * 128 + 10 * 64
    # 4 active CTAs of a 256 x 8192 output (2 tile rows): 2 x 2 tiles = 256 rows + 128 columns
    assert m._fill_bytes(256, 8192, tm, tn, np.array([4.0]))[0] == 256 + 128
    # a 100 x 32 output (one tile, rows and columns cut to the matrix) split 8 ways along K: 8 blocks
    assert m._fill_bytes(100, 32, tm, tn, np.array([8.0]))[0] == 8 * (100 + 32)
    # never more than each CTA's own rows and columns
    own = 100 * (128 + 64)
    assert m._fill_bytes(8192, 8192, tm, tn, np.array([100.0]))[0] <= own


def test_gemm_fixed_time_added_once_per_gemm(toy):
    # the matrix unit's gemm_fixed_time is added to a GEMM's fixed time, serial with its work; a streaming op
    # does not pay it
    fixed = load_chip(DATA / "toy-chip.yaml", {"compute.matrix.gemm_fixed_time": "3 us",
                                                 "compute.matrix.gemm_fixed_time_source": "test"})
    for opts in (CostOptions(), CostOptions(tiling=False)):
        a = CostModel(toy, opts).op_cost(gemm(256, 256, 256))
        b = CostModel(fixed, opts).op_cost(gemm(256, 256, 256))
        assert b.time_s == pytest.approx(a.time_s + 3e-6)
        assert b.overhead_s == pytest.approx(a.overhead_s + 3e-6)


def test_gemm_epilogue_matters_most_at_small_k(toy):
    # the store is output bytes (m n) against m n k FLOPs: its share falls as K grows
    after = load_chip(DATA / "toy-chip.yaml", STORE_AFTER)
    share = []
    for k in (512, 2048, 8192):
        a = CostModel(toy, CostOptions(tiling=False)).op_cost(gemm(8192, 8192, k)).time_s
        b = CostModel(after, CostOptions(tiling=False)).op_cost(gemm(8192, 8192, k)).time_s
        share.append(b / a - 1)
    assert share == sorted(share, reverse=True) and share[-1] > 0
