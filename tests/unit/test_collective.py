"""Alpha-beta collectives on the toy system (8 chips, 100 GB/s per direction, 1 us): by hand."""

import math
from pathlib import Path

import pytest

from hwmodels import load_system
from sim.collective import collective_time, tier_time

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
