"""Alpha-beta collectives on the toy system (8 chips, 100 GB/s per direction, 1 us): by hand."""

import math
from pathlib import Path

import pytest

from hwmodels import load_system
from sim.collective import collective_time, link_class, nccl_candidates, tier_time

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module")
def toy():
    return load_system(DATA / "toy-system.yaml")


def test_ring_allreduce_by_hand(toy):
    # 1 GB over 8: ring = 2*7/8*1e9/1e11 + 2*7*1e-6 = 17.5 ms + 14 us; tree = 20 ms + 6 us -> ring
    t, tiers = collective_time(toy, "allreduce", 1e9, 8)
    assert t == pytest.approx(2 * 7 / 8 * 1e-2 + 14e-6)
    assert tiers == "link"


def test_small_allreduce_takes_tree(toy):
    # 1 kB: ring latency 14 us vs tree 2*log2(8)=6 us
    t, _ = collective_time(toy, "allreduce", 1e3, 8)
    assert t == pytest.approx(2 * 1e3 / 1e11 + 6e-6)


def test_allgather_and_sendrecv(toy):
    assert collective_time(toy, "allgather", 8e8, 8)[0] == pytest.approx(7 / 8 * 8e-3 + 7e-6)
    assert collective_time(toy, "sendrecv", 1e8, 2)[0] == pytest.approx(1e-3 + 1e-6)


def test_group_of_one_is_free(toy):
    assert collective_time(toy, "allreduce", 1e9, 1)[0] == 0.0


def test_group_larger_than_system(toy):
    with pytest.raises(ValueError, match="at least 16 chips"):
        collective_time(toy, "allreduce", 1e6, 16)


def test_in_network_reduction_halves_ring_volume(toy):
    from dataclasses import replace
    t = toy.tiers[0]
    inr = replace(t, in_network_reduction=True)
    assert tier_time("allreduce", 1e9, 8, inr) == pytest.approx(1e-2 + 2e-6)


def test_hierarchical_allreduce():
    s = load_system(DATA / "toy-system.yaml")
    from dataclasses import replace
    from hwmodels.chip import Tier
    outer = Tier("net", 2, "switch", 10e9, 5e-6)
    s = replace(s, tiers=s.tiers + (outer,), count=16)
    t, tiers = collective_time(s, "allreduce", 8e8, 16)
    inner = s.tiers[0]
    expect = (tier_time("reducescatter", 8e8, 8, inner) + tier_time("allreduce", 1e8, 2, outer)
              + tier_time("allgather", 8e8, 8, inner))
    assert t == pytest.approx(expect)
    assert tiers == "link+net"
    assert not math.isnan(t)


# -- NCCL's algorithm x protocol model (sim.collective.NCCL: tuning.cc constants) -------------------

def _nccl(toy, op, nbytes, p, library="nccl"):
    return collective_time(toy, op, nbytes, p, library=library)[0]


def test_nccl_large_allreduce_is_ring_simple_by_hand(toy):
    # 1 GB over 8 on 100 GB/s: ring Simple = 8.4 + 14 x 3.4 us + 1e9 / (100e9 x 8/14) (3.4 us is above
    # the tier's 1 us per step)
    t = _nccl(toy, "allreduce", 1e9, 8)
    assert t == pytest.approx((8.4 + 14 * 3.4) * 1e-6 + 1e9 / (100e9 * 8 / 14))
    c = nccl_candidates("allreduce", 1e9, 8, toy.tiers[0], 100e9)
    assert min(c, key=c.get) == ("ring", "Simple")
    # LL128 carries 120 of 128 bytes (0.92), tree halves the bus: both slower at 1 GB
    assert c[("ring", "LL128")] > c[("ring", "Simple")] and c[("tree", "Simple")] > c[("ring", "Simple")]


def test_nccl_small_allreduce_is_ring_ll_by_hand(toy):
    # 2 KB over 8: ring LL = 6.6 us + 14 steps x max(0.6 us, the tier's 1 us) + 2048 / (0.38 x 100e9 x 8/14)
    # (LL capped at 0.38 of the bus)
    t = _nccl(toy, "allreduce", 2048, 8)
    assert t == pytest.approx(6.6e-6 + 14e-6 + 2048 / (0.38e11 * 8 / 14))
    c = nccl_candidates("allreduce", 2048, 8, toy.tiers[0], 100e9, a=1e-6)
    assert min(c, key=c.get) == ("ring", "LL")
    # NCCL's own constants alone (no floor): 6.6 + 14 x 0.6 us
    assert nccl_candidates("allreduce", 2048, 8, toy.tiers[0], 100e9)[("ring", "LL")] == pytest.approx(
        15e-6 + 2048 / (0.38e11 * 8 / 14))


def test_nccl_is_slower_than_alpha_beta_and_monotone(toy):
    sizes = [2 ** k for k in range(11, 31)]
    for p in (2, 4, 8):
        ts = [_nccl(toy, "allreduce", s, p) for s in sizes]
        assert all(b >= a for a, b in zip(ts, ts[1:]))  # never faster for more bytes
        assert all(_nccl(toy, "allreduce", s, p) >= collective_time(toy, "allreduce", s, p)[0] for s in sizes)


def test_nccl_allgather_ring_by_hand(toy):
    # 8e8 gathered over 8, Simple: 8.4 + 7 x 3.4 us + 8e8 x 7/8 / 100e9
    t = _nccl(toy, "allgather", 8e8, 8)
    assert t == pytest.approx((8.4 + 7 * 3.4) * 1e-6 + 8e8 * 7 / 8 / 1e11)


def test_nccl_keeps_alpha_beta_for_p2p(toy):
    for op in ("sendrecv", "alltoall"):
        assert _nccl(toy, op, 1e8, 2 if op == "sendrecv" else 8) == collective_time(
            toy, op, 1e8, 2 if op == "sendrecv" else 8)[0]


def test_nvls_only_where_enabled_and_switch_reduces(toy):
    from dataclasses import replace
    inr = replace(toy, tiers=(replace(toy.tiers[0], in_network_reduction=True),))
    # NVLS: 25 us + S / (B x 5/6); with nccl (NVLS off) the same tier runs ring
    assert _nccl(inr, "allreduce", 1e9, 8, "nccl-nvls") == pytest.approx(25e-6 + 1e9 / (1e11 * 5 / 6))
    assert _nccl(inr, "allreduce", 1e9, 8, "nccl") == _nccl(toy, "allreduce", 1e9, 8)
    assert ("nvls", "Simple") not in nccl_candidates("allreduce", 1e9, 8, toy.tiers[0], 1e11, "nccl-nvls")
    # NCCL turns NVLS on only above 2 GPUs
    assert ("nvls", "Simple") not in nccl_candidates("allreduce", 1e9, 2, inr.tiers[0], 1e11, "nccl-nvls")


def test_link_classes_and_pcie_has_no_ll128():
    from hwmodels.chip import Tier
    pcie = Tier("pcie", 8, "switch", 32e9, 8e-6, type="PCIe Gen4 through the host")
    ib = Tier("infiniband", 4, "switch", 50e9, 5e-6, type="InfiniBand NDR 400 Gb/s")
    nv = Tier("nvlink", 8, "switch", 450e9, 2e-6, type="NVLink 4 + NVSwitch gen 3")
    assert (link_class(pcie), link_class(ib), link_class(nv)) == ("pci", "net", "nvlink")
    assert not any(p == "LL128" for _, p in nccl_candidates("allreduce", 1e6, 8, pcie, 32e9))
    # across nodes the tree is a double binary tree: 2 log2 p hops, not a chain
    c = nccl_candidates("allreduce", 64, 4, ib, 50e9)
    assert c[("tree", "LL")] == pytest.approx((6.8 + 2 * 2 * 5.0) * 1e-6 + 64 / (50e9 * 0.92 / 3.8 * 0.5))


def test_tier_latency_is_a_per_step_floor(toy):
    from dataclasses import replace
    slow = replace(toy, tiers=(replace(toy.tiers[0], latency_s=10e-6),))
    # every ring step of the 1 GB all-reduce now takes at least 10 us (Simple's 3.4 us is below it)
    assert _nccl(slow, "allreduce", 1e9, 8) == pytest.approx((8.4 + 14 * 10) * 1e-6 + 1e9 / (100e9 * 8 / 14))


def test_nccl_on_arrays_equals_each_point(toy):
    import numpy as np
    lat, bw = np.array([1e-6, 5e-6, 2e-6]), np.array([100e9, 30e9, 450e9])
    for s in (2048, 3e6, 1e9):
        arr = collective_time(toy, "allreduce", s, 8, numbers=lambda t: (lat, bw), library="nccl")[0]
        for i in range(3):
            one = collective_time(toy, "allreduce", s, 8, numbers=lambda t, i=i: (lat[i], bw[i]), library="nccl")[0]
            assert arr[i] == pytest.approx(one, rel=1e-12)


def test_stacks_name_their_collective_library():
    from hwmodels.stack import load_stack
    from sim.cost import CostOptions
    assert load_stack("ideal").collectives == "alpha-beta"
    assert load_stack("vllm").collectives == "custom-allreduce"
    assert load_stack("sglang").collectives == "custom-allreduce"
    assert load_stack("tensorrt-llm").collectives == "nccl"
    assert load_stack("vllm").cost_options(CostOptions()).collectives == "custom-allreduce"
    assert load_stack("vllm").cost_options(CostOptions(collectives="alpha-beta")).collectives == "alpha-beta"


# -- what NCCL's runs reach on Ampere (sim.collective.NCCL_RUNTIME: fitted, see its comment) ---------

def _nv(gen, latency=1e-6):
    """The toy switch (8 x 100 GB/s, 1 us per step) with NVLink of generation ``gen``."""
    from hwmodels.chip import Tier
    return Tier("nvlink", 8, "switch", 100e9, latency, type=f"NVLink {gen} + NVSwitch")


def test_nvlink_generation_from_the_tier_type(toy):
    from sim.collective import nvlink_generation
    assert [nvlink_generation(_nv(g)) for g in (3, 4, 5)] == [3, 4, 5]
    assert nvlink_generation(toy.tiers[0]) is None


def test_nccl_picks_by_its_tuner_and_runs_at_amperes_rates():
    # 1 GB over 8 on NVLink 3: the tuner picks ring Simple (as on the toy, test above); on Ampere each of
    # its 14 steps takes 12 us instead of 3.4, at the full bandwidth: 8.4 + 14 x 12 us + 1e9 / (1e11 x 8/14)
    t = tier_time("allreduce", 1e9, 8, _nv(3), library="nccl")
    assert t == pytest.approx((8.4 + 14 * 12) * 1e-6 + 1e9 / (1e11 * 8 / 14))
    # Hopper keeps NCCL's own step: 8.4 + 14 x 3.4 us
    assert tier_time("allreduce", 1e9, 8, _nv(4), library="nccl") == pytest.approx(
        (8.4 + 14 * 3.4) * 1e-6 + 1e9 / (1e11 * 8 / 14))


def test_ampere_ll128_runs_at_065_of_the_tuner_bandwidth():
    # 4 MB over 8: the tuner's LL128 prediction (14 + 14 x 1.9 us + 4e6 / (0.92 x 1e11 x 8/14) = 116.7 us)
    # beats Simple (8.4 + 14 x 3.4 + 70 = 126 us), so NCCL runs LL128; on Ampere at 0.65 of that bandwidth
    c = nccl_candidates("allreduce", 4e6, 8, _nv(3), 1e11)
    assert min(c, key=c.get) == ("ring", "LL128")
    t = tier_time("allreduce", 4e6, 8, _nv(3), library="nccl")
    assert t == pytest.approx((14 + 14 * 1.9) * 1e-6 + 4e6 / (0.92 * 0.65 * 1e11 * 8 / 14))


def test_the_tier_latency_floors_the_run_not_the_pick():
    # 64 KB over 8 with 10 us per step: NCCL's own constants pick LL (6.6 + 14 x 0.6 us); it then runs
    # every step at 10 us (LL capped at Hopper's LL ceiling, 141 GB/s of 18 x 20.6 GB/s, of the bus)
    slow = _nv(4, latency=10e-6)
    pick = nccl_candidates("allreduce", 65536, 8, slow, 1e11)
    assert min(pick, key=pick.get) == ("ring", "LL")
    assert tier_time("allreduce", 65536, 8, slow, library="nccl") == pytest.approx(
        6.6e-6 + 14 * 10e-6 + 65536 / (141 / (18 * 20.6) * 1e11 * 8 / 14))


# -- vLLM's custom all-reduce (sim.collective.CUSTOM_AR) ------------------------------------------

def test_custom_allreduce_one_shot_by_hand():
    # 64 KiB over 8 on NVLink 4 (below 256 KiB: one-shot): 2 barriers x 1 us + 7 x 64 KiB pulled at the
    # kernel's 60 GB/s (below the link's 100 GB/s)
    t = tier_time("allreduce", 65536, 8, _nv(4), library="custom-allreduce")
    assert t == pytest.approx(2e-6 + 7 * 65536 / 60e9)
    # 2 GPUs are always one-shot, even at 4 MiB: 2 us + 4 MiB / 60 GB/s
    assert tier_time("allreduce", 4 << 20, 2, _nv(4), library="custom-allreduce") == pytest.approx(
        2e-6 + (4 << 20) / 60e9)


def test_custom_allreduce_two_shot_by_hand():
    # 1 MiB over 4 (512 KiB and above: two-shot): 2 us + 2 x 3/4 x 1 MiB at 60 GB/s; Ampere pulls 47 GB/s
    assert tier_time("allreduce", 1 << 20, 4, _nv(4), library="custom-allreduce") == pytest.approx(
        2e-6 + 1.5 * (1 << 20) / 60e9)
    assert tier_time("allreduce", 1 << 20, 4, _nv(3), library="custom-allreduce") == pytest.approx(
        2e-6 + 1.5 * (1 << 20) / 47e9)
    # 256 KiB over 4 is still one-shot (below 512 KiB), over 8 already two-shot (not below 256 KiB)
    assert tier_time("allreduce", 256 << 10, 4, _nv(4), library="custom-allreduce") == pytest.approx(
        2e-6 + 3 * (256 << 10) / 60e9)
    assert tier_time("allreduce", 256 << 10, 8, _nv(4), library="custom-allreduce") == pytest.approx(
        2e-6 + 1.75 * (256 << 10) / 60e9)


def test_custom_allreduce_falls_back_to_nccl():
    from dataclasses import replace
    from hwmodels.chip import Tier
    nv = _nv(4)
    nccl = lambda n, p, t=nv: tier_time("allreduce", n, p, t, library="nccl")  # noqa: E731
    custom = lambda n, p, t=nv: tier_time("allreduce", n, p, t, library="custom-allreduce")  # noqa: E731
    assert custom(8 << 20, 8) == nccl(8 << 20, 8)  # 8 MiB is not below max_size
    assert custom(1 << 20, 3) == nccl(1 << 20, 3)  # world size 3 is not supported
    pcie = Tier("pcie", 8, "switch", 32e9, 8e-6, type="PCIe Gen4 through the host")
    assert custom(1 << 20, 4, pcie) == nccl(1 << 20, 4, pcie)  # more than 2 GPUs without NVLink
    assert custom(1 << 20, 2, pcie) == pytest.approx(16e-6 + (1 << 20) / 32e9)  # 2 PCIe GPUs: one-shot
    for op in ("allgather", "reducescatter"):
        assert tier_time(op, 1 << 20, 8, nv, library="custom-allreduce") == tier_time(op, 1 << 20, 8, nv, library="nccl")
    # a group across nodes is NCCL's (hierarchical), even for a small buffer
    s = load_system(DATA / "toy-system.yaml")
    s = replace(s, tiers=(nv, Tier("net", 2, "switch", 10e9, 5e-6, type="InfiniBand")), count=16)
    assert (collective_time(s, "allreduce", 1 << 16, 16, library="custom-allreduce")
            == collective_time(s, "allreduce", 1 << 16, 16, library="nccl"))


def test_custom_allreduce_on_arrays_equals_each_point():
    import numpy as np
    lat, bw = np.array([1e-6, 5e-6]), np.array([100e9, 30e9])
    s = load_system(DATA / "toy-system.yaml")
    from dataclasses import replace
    s = replace(s, tiers=(_nv(4),))
    for n in (4096, 1 << 20, 16 << 20):
        arr = collective_time(s, "allreduce", n, 8, numbers=lambda t: (lat, bw), library="custom-allreduce")[0]
        for i in range(2):
            one = collective_time(s, "allreduce", n, 8, numbers=lambda t, i=i: (lat[i], bw[i]),
                                  library="custom-allreduce")[0]
            assert arr[i] == pytest.approx(one, rel=1e-12)
