"""Pareto fronts and sensitivity on hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from hwmodels.errors import SpecError
from sim.sweep import pareto_front, parse_objectives, sensitivity


def test_pareto_two_objectives_by_hand():
    # throughput up, cost down: a(10, 5) b(20, 6) c(15, 7: beaten by b) d(20, 6: a tie with b) e(5, 5: beaten by a)
    t = pd.DataFrame({"id": list("abcdefg"), "thr": [10, 20, 15, 20, 5, 30, 99], "usd": [5, 6, 7, 6, 5, 9, np.nan],
                      "status": ["ok"] * 6 + ["ok"]})
    f = pareto_front(t, {"thr": "max", "usd": "min"})
    assert f["id"].tolist() == ["f", "b", "d", "a"]  # sorted by the first objective, best first; NaN rows left out
    t.loc[5, "status"] = "error"
    assert "f" not in pareto_front(t, {"thr": "max", "usd": "min"})["id"].tolist()


def test_pareto_three_objectives_and_fits():
    t = pd.DataFrame({"x": [1, 2, 3, 1, 2], "y": [3, 2, 1, 3, 2], "z": [1, 1, 1, 0, 5],
                      "fits": [True, True, True, True, False]})
    f = pareto_front(t, {"x": "min", "y": "min", "z": "min"})
    # (1,3,1) is beaten by (1,3,0); (2,2,5) does not fit
    assert sorted(f.index.tolist()) == [1, 2, 3]


def test_pareto_2d_matches_brute_force():
    rng = np.random.default_rng(3)
    t = pd.DataFrame({"a": rng.integers(0, 20, 400).astype(float), "b": rng.integers(0, 20, 400).astype(float)})
    fast = set(pareto_front(t, {"a": "min", "b": "max"}).index)
    A, B = t["a"].to_numpy(), -t["b"].to_numpy()
    brute = {i for i in range(len(t)) if not np.any((A <= A[i]) & (B <= B[i]) & ((A < A[i]) | (B < B[i])))}
    assert fast == brute


def test_parse_objectives():
    assert parse_objectives("thr:max, usd:min") == {"thr": "max", "usd": "min"}
    with pytest.raises(SpecError, match="did you mean 'usd'"):
        parse_objectives("thr:max,uds:min", columns=["thr", "usd"])
    with pytest.raises(SpecError, match="at least two"):
        parse_objectives("thr:max")


def test_sensitivity_finds_the_axis_that_matters():
    rng = np.random.default_rng(0)
    n = 2000
    t = pd.DataFrame({"hw.bw": rng.choice([1.0, 2.0, 4.0, 8.0], n), "hw.noise": rng.uniform(1, 2, n),
                      "batch": rng.choice([1, 2], n), "status": "ok"})
    t["cost"] = 10.0 / t["hw.bw"]  # cost halves when bandwidth doubles: elasticity -1
    s = sensitivity(t, "cost", axes=["hw.bw", "hw.noise", "batch"])
    assert s["axis"].iloc[0] == "hw.bw" and s["share"].iloc[0] == pytest.approx(1.0)
    assert s.set_index("axis").loc["hw.bw", "elasticity"] == pytest.approx(-1.0)
    assert s.set_index("axis").loc["hw.bw", "best_level"] == 8.0
    assert s.set_index("axis").loc["hw.noise", "share"] < 0.01
