"""Cost, power and area models (sim/tco.py) by hand on round numbers, and the catalog calibration."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwmodels import load_chip, load_system
from hwmodels.errors import SpecError
from sim.tco import (
    MemoryTech,
    Node,
    TcoAssumptions,
    area_mm2,
    chip_cost,
    die_cost,
    die_yield,
    dies_per_wafer,
    load_memory_tech,
    load_node,
    tco_per_hour,
    tdp_w,
)
from sim.vector import HwPoints

DATA = Path(__file__).parent.parent / "data"

ROUND = Node(name="round", description="", source=(), sram_mm2_per_mb=0.5, hbm_phy_mm2_per_stack=10.0,
             link_mm2_per_gb_s=0.1, fixed_mm2=50.0, logic_mm2_per_tflop=1.0, reticle_mm2=800.0, wafer_usd=10000.0,
             wafer_diameter_mm=300.0, defect_density_per_cm2=0.1, cluster_alpha=3.0, matrix_pj_per_flop=1.0,
             core_sram_pj_per_byte=1.0, chip_sram_pj_per_byte=2.0, link_pj_per_byte=10.0, static_w_per_mm2=0.1)
HBM = MemoryTech("round-hbm", stack_capacity_gb=5.0, stack_bandwidth_gb_s=500.0, pj_per_byte=10.0, usd_per_gb=10.0,
                 packaging_usd=500.0)


@pytest.fixture(scope="module")
def toy():
    return load_chip(DATA / "toy-chip.yaml")  # 100 TFLOP/s bf16, 100 cores x 1 MiB SRAM, 10 GiB at 1 TB/s


def test_area_by_hand(toy):
    a = area_mm2(toy, ROUND, HBM)
    sram_mb = 100 * 2**20 / 1e6  # 104.8576 MB of per-core SRAM
    stacks = math.ceil(max(10 * 2**30 / (5 * 2**30), 1e12 / 500e9))  # 10 GiB of 5 GiB stacks, 1 TB/s of 500 GB/s: 2
    assert a["logic"] == pytest.approx(100.0)
    assert a["sram"] == pytest.approx(0.5 * sram_mb)
    assert a["hbm_stacks"] == stacks == 2 and a["phy"] == pytest.approx(20.0)
    assert a["links"] == 0.0  # the toy chip lists no links
    assert a["total"] == pytest.approx(100 + 0.5 * sram_mb + 20 + 50)


def test_dies_per_wafer_yield_and_cost_by_hand():
    # 100 mm2 on 300 mm: pi 150^2 / 100 - pi 300 / sqrt(200) = 706.86 - 66.64 = 640.2 -> 640
    assert dies_per_wafer(100.0) == 640
    # A D0 = 1 cm2 x 0.1 = 0.1: negative binomial (1 + 0.1/3)^-3, Murphy ((1 - e^-0.1)/0.1)^2
    assert die_yield(100.0, 0.1) == pytest.approx((1 + 0.1 / 3) ** -3)
    assert die_yield(100.0, 0.1, "murphy") == pytest.approx(((1 - math.exp(-0.1)) / 0.1) ** 2)
    assert die_yield(100.0, 0.1, "poisson") == pytest.approx(math.exp(-0.1))
    d = die_cost(100.0, ROUND)
    assert d["usd_per_good_die"] == pytest.approx(10000 / (640 * (1 + 0.1 / 3) ** -3))
    # 1000 mm2 exceeds the 800 mm2 reticle: two 500 mm2 dies
    d2 = die_cost(1000.0, ROUND)
    assert d2["dies"] == 2 and d2["die_mm2"] == 500.0
    assert d2["silicon_usd"] == pytest.approx(2 * 10000 / (dies_per_wafer(500.0) * die_yield(500.0, 0.1)))
    with pytest.raises(SpecError, match="unknown yield model"):
        die_yield(1.0, 0.1, "gauss")


def test_chip_cost_by_hand(toy):
    c = chip_cost(toy, ROUND, HBM, gross_margin=0.5)
    hbm = 10 * 2**30 / 1e9 * 10.0
    assert c["hbm_usd"] == pytest.approx(hbm) and c["packaging_usd"] == 500.0
    assert c["price_usd"] == pytest.approx((c["silicon_usd"] + hbm + 500.0) / 0.5)


def test_tdp_by_hand(toy):
    t = tdp_w(toy, ROUND, HBM)
    assert t["compute"] == pytest.approx(100e12 * 1e-12)  # 100 W at 1 pJ/FLOP
    assert t["core_sram"] == pytest.approx(10e12 * 1e-12)  # 10 TB/s at 1 pJ/B
    assert t["dram"] == pytest.approx(1e12 * 10e-12)  # 1 TB/s at 10 pJ/B
    a = area_mm2(toy, ROUND, HBM)["total"]
    assert t["static"] == pytest.approx(0.1 * a)
    assert t["total"] == pytest.approx(100 + 10 + 10 + 0.1 * a)


def test_tco_purchase_by_hand(toy):
    # 8 chips at 10,000 USD over 4 y; 100 W idle + 0.5 x 900 W = 550 W each; PUE 1.5; 0.1 USD/kWh
    a = TcoAssumptions(source="purchase", lifetime_years=4, utilization=0.5, pue=1.5, usd_per_kwh=0.1,
                       purchase_usd_per_chip=10000.0)
    r = tco_per_hour(toy, 8, a)
    capex = 8 * 10000 / (4 * 8766)
    power = 8 * 550 * 1.5 / 1000 * 0.1
    assert r["capex_usd_per_hour"] == pytest.approx(capex)
    assert r["power_usd_per_hour"] == pytest.approx(power)
    assert r["usd_per_hour"] == pytest.approx(capex + power)
    assert str(r["source"]) == "purchase"


def test_tco_cloud_and_auto(toy):
    r = tco_per_hour(toy, 2, TcoAssumptions())  # the toy chip rents at 3.6 USD/h
    assert r["usd_per_hour"] == pytest.approx(7.2) and str(r["source"]) == "cloud"
    nd = load_system("azure-nd-h100-v5")  # its own price, 98.32 USD/h for 8: 4 chips pay half
    assert tco_per_hour(nd, 4)["usd_per_hour"] == pytest.approx(98.32 / 2)


def test_tco_over_arrays(toy):
    hw = HwPoints(toy, {"chip.power.tdp": [500.0, 1000.0]})
    r = tco_per_hour(hw, 1, TcoAssumptions(source="purchase", purchase_usd_per_chip=0.0, utilization=1.0, pue=1.0,
                                           usd_per_kwh=1.0))
    np.testing.assert_allclose(r["usd_per_hour"], [0.5, 1.0])


def test_bad_assumptions_name_the_field():
    with pytest.raises(SpecError, match="cost.pue"):
        TcoAssumptions(pue=0.5)
    with pytest.raises(SpecError, match="cost.source"):
        TcoAssumptions(source="lease")
    with pytest.raises(SpecError, match="did you mean 'tsmc-n5'"):
        load_node("tsmc-n55")


def test_calibration_reproduces_catalog_dies():
    """Each node's logic coefficient is calibrated on one catalog die; A100's TDP is a real check."""
    h100 = load_chip("h100-sxm")
    a = area_mm2(h100, load_node("tsmc-n5"), load_memory_tech("hbm3"))["total"]
    assert a == pytest.approx(h100.die_area_mm2, rel=0.005)
    assert tdp_w(h100, load_node("tsmc-n5"), load_memory_tech("hbm3"))["total"] == pytest.approx(700, rel=0.005)
    a100 = load_chip("a100-sxm")
    assert area_mm2(a100, load_node("tsmc-n7"), load_memory_tech("hbm2e"))["total"] == pytest.approx(826, rel=0.005)
    # not calibrated: N7 energies are N5's / 0.7 (TSMC's N5-vs-N7 power claim)
    assert tdp_w(a100, load_node("tsmc-n7"), load_memory_tech("hbm2e"))["total"] == pytest.approx(400, rel=0.05)


def test_every_node_file_has_sources():
    from sim.tco import list_nodes

    for name in list_nodes():
        n = load_node(name)
        assert n.source and all(isinstance(s, str) and s for s in n.source)
        assert replace(n).wafer_usd > 0
