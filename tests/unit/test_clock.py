"""Clocks under the power limit (docs/cost-model.md): a matrix unit's ``sustained_clock`` beside the chip's boost
``clock``. A GEMM is priced at the boost clock's rate (clock / sustained_clock x the efficiency rate) unless its
average matrix FLOP rate would then exceed the efficiency rate, the most the power limit allows; its energy counts
``flops / efficiency rate`` seconds at full power. Checked by hand on the toy chip (100 cores, 100 TFLOP/s bf16, no
cache level: no operand feed, no fill)."""

from pathlib import Path

import numpy as np
import pytest

from hwmodels import load_chip, load_system
from sim.cost import CostModel, CostOptions
from workloads.graph import GemmShape, Op, TensorIO

DATA = Path(__file__).parent.parent / "data"
EFF = {"compute.matrix.efficiency": 0.5, "compute.matrix.efficiency_source": "test"}
CLOCKED = {**EFF, "clock": "1.25 GHz", "compute.matrix.sustained_clock": "1 GHz",
           "compute.matrix.sustained_clock_source": "test"}


def gemm(m, n, k, dt="bf16"):
    b = 2
    return Op(f"g{m}x{n}x{k}", "gemm", 1, 2.0 * m * n * k, 0.0, dt,
              (TensorIO("a", "activation", dt, m * k * b, False), TensorIO("w", "weight", dt, k * n * b, False),
               TensorIO("c", "activation", dt, m * n * b, True)), gemm=GemmShape(m, n, k))


@pytest.fixture(scope="module")
def chips():
    return load_chip(DATA / "toy-chip.yaml", EFF), load_chip(DATA / "toy-chip.yaml", CLOCKED)


def test_full_chip_gemm_stays_at_the_efficiency_rate(chips):
    # 6400 x 6400 x 4096: 400 tiles of 256 x 256 (or 1600 of 128 x 128...), whole waves of 100 cores: at boost it
    # would run at 1.25 x 50 TFLOP/s, above the power limit's 50 TFLOP/s, so the clock falls to the sustained one
    plain, clocked = chips
    op = gemm(6400, 6400, 4096)
    a, b = CostModel(plain).op_cost(op), CostModel(clocked).op_cost(op)
    assert a.compute_s == pytest.approx(op.flops_matrix / 50e12)
    assert b.compute_s == pytest.approx(a.compute_s)
    # the untiled roofline too: at boost every roofline GEMM would exceed the power limit
    a, b = (CostModel(c, CostOptions(tiling=False)).op_cost(op) for c in chips)
    assert b.compute_s == pytest.approx(a.compute_s)


def test_part_filled_gemm_keeps_the_boost_clock(chips):
    # 256 x 256 x 128: at most 64 tiles of 32 x 32 on 100 cores (K = 128 is one split's worth: no split-K), so its
    # average rate is at most 64% of the chip's: 0.64 x 1.25 x 50 = 40 TFLOP/s at boost, under 50. It keeps the
    # boost clock: compute / 1.25
    plain, clocked = chips
    op = gemm(256, 256, 128)
    a, b = CostModel(plain).op_cost(op), CostModel(clocked).op_cost(op)
    assert op.flops_matrix / a.compute_s <= 0.64 * 50e12 * (1 + 1e-12)
    assert b.compute_s == pytest.approx(a.compute_s / 1.25)


def test_gemm_between_boost_and_the_limit_runs_at_the_limit():
    # with a 2x boost the same part-filled GEMM would reach 0.64 x 2 x 50 = 64 TFLOP/s > 50: the clock falls until
    # its rate is the power-limited 50 TFLOP/s
    c = load_chip(DATA / "toy-chip.yaml", {**CLOCKED, "clock": "2 GHz"})
    op = gemm(256, 256, 128)
    assert CostModel(c).op_cost(op).compute_s == pytest.approx(op.flops_matrix / 50e12)


def test_energy_follows_the_flop_rate(chips):
    # TDP 1000 W, idle 100 W: a GEMM at the power limit draws the whole TDP while it computes; one at boost under
    # the limit draws (TDP - idle) for flops / 50 TFLOP/s seconds only
    plain, clocked = chips
    big = CostModel(clocked).op_cost(gemm(6400, 6400, 4096))
    assert big.energy_j == pytest.approx(100 * big.time_s + 900 * big.compute_s)
    small_op = gemm(256, 256, 128)
    small = CostModel(clocked).op_cost(small_op)
    assert small.bound == "compute"
    assert small.energy_j == pytest.approx(100 * small.time_s + 900 * max(small_op.flops_matrix / 50e12, small.memory_s))
    assert small.energy_j < CostModel(plain).op_cost(small_op).energy_j


def test_no_efficiency_and_no_sustained_clock_are_unchanged(chips):
    plain, clocked = chips
    op = gemm(256, 256, 128)
    opts = CostOptions(use_efficiency=False)
    assert CostModel(clocked, opts).op_cost(op).time_s == CostModel(plain, opts).op_cost(op).time_s
    toy = load_chip(DATA / "toy-chip.yaml", {**EFF, "clock": "1.25 GHz"})  # a clock alone changes nothing
    assert CostModel(toy).op_cost(op).time_s == CostModel(plain).op_cost(op).time_s


def test_h100_pcie_small_gemm_at_boost_large_at_the_power_limit():
    # the catalog's power-limited card (sustained 1.395 GHz, boost 1.755 GHz; efficiency 0.656 of 756 TFLOP/s
    # measured at the sustained clock): 8192^3 runs at the efficiency rate; 2048^3 (three part-filled waves of
    # 128 x 128 tiles on 114 SMs) is faster than that rate's share of its waves would allow
    hw = load_system("h100-pcie")
    cm = CostModel(hw, CostOptions(cuda_graphs=True))
    big = gemm(8192, 8192, 8192)
    assert cm.op_cost(big).compute_s == pytest.approx(big.flops_matrix / (756e12 * 0.656), rel=1e-3)
    small = gemm(2048, 2048, 2048)
    rate = small.flops_matrix / cm.op_cost(small).compute_s
    assert 756e12 * 0.656 * 0.7 < rate < 756e12 * 0.656


def test_sweep_points_price_as_the_single_chip():
    # the vectorized path (design points as arrays) prices with the same formula
    from sim.hwparams import HwPoints

    hw = load_system("h100-pcie")
    pts = HwPoints(hw, {"chip.memory.hbm.bandwidth": np.array([2.0e12, 3.0e12])})
    arr = CostModel(pts, CostOptions()).op_arrays(gemm(2048, 2048, 2048))
    one = CostModel(hw, CostOptions()).op_cost(gemm(2048, 2048, 2048))
    assert np.asarray(arr.time_s)[0] == pytest.approx(one.time_s, rel=1e-12)
    assert np.asarray(arr.energy_j)[0] == pytest.approx(one.energy_j, rel=1e-12)


def test_power_limited_rate_follows_the_tdp():
    # sustained_clock_power 1000 W (toy: TDP 1000 W, idle 100 W): at TDP 550 W the matrix units have (550 - 100) /
    # (1000 - 100) = half the power, so a full-chip GEMM runs at half the efficiency rate (25 TFLOP/s) and takes the
    # same energy; at 2000 W the power would allow 2.1 x, but the boost clock (1.25 x) is the most it runs at
    base = {**CLOCKED, "compute.matrix.sustained_clock_power": "1000 W"}
    op = gemm(6400, 6400, 4096)
    at = {t: CostModel(load_chip(DATA / "toy-chip.yaml", {**base, "power.tdp": t})).op_cost(op)
          for t in ("550 W", "1000 W", "2000 W")}
    assert at["1000 W"].compute_s == pytest.approx(op.flops_matrix / 50e12)
    assert at["550 W"].compute_s == pytest.approx(op.flops_matrix / 25e12)
    assert at["2000 W"].compute_s == pytest.approx(op.flops_matrix / (1.25 * 50e12))
    e = {t: c.energy_j - 100 * c.time_s for t, c in at.items()}  # the energy above idle: per FLOP, the same
    assert e["550 W"] == pytest.approx(e["1000 W"])


def test_sweep_over_tdp_prices_each_point_as_its_chip():
    from sim.hwparams import HwPoints

    hw = load_system("h100-pcie")
    pts = HwPoints(hw, {"chip.power.tdp": np.array([250.0, 350.0, 450.0])})
    arr = CostModel(pts, CostOptions()).op_arrays(gemm(8192, 8192, 8192))
    for i, t in enumerate(("250 W", "350 W", "450 W")):
        one = CostModel(load_system("h100-pcie", {"chip.power.tdp": t}), CostOptions()).op_cost(gemm(8192, 8192, 8192))
        assert np.asarray(arr.time_s)[i] == pytest.approx(one.time_s, rel=1e-12)
        assert np.asarray(arr.energy_j)[i] == pytest.approx(one.energy_j, rel=1e-12)
