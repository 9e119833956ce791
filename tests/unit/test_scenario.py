"""Scenarios: determinism, arrival-process statistics, length bounds, prefixes, validation, speed."""

from __future__ import annotations

import dataclasses
import math
import time
from itertools import islice

import numpy as np
import pytest

from hwmodels.errors import SpecError
from workloads.scenario import (
    CHUNK,
    AllAtOnce,
    Empirical,
    Fixed,
    FixedRate,
    Gamma,
    LogNormal,
    Poisson,
    Replay,
    Request,
    Scenario,
    TraceArrivals,
    Uniform,
    Zipf,
    arrival_process,
    parse_rate,
)


def _scn(arrivals, n=1000, inp=None, out=None, **kw):
    return Scenario(arrivals, inp or Uniform(1, 4096), out or Zipf(1.1, 1, 2048), num_requests=n, **kw)


# ---- determinism


def test_same_seed_same_requests_bit_for_bit():
    s = _scn(Gamma(7.0, 2.5), n=CHUNK + 1234, shared_prefix_tokens=64, num_prefixes=5)
    a, b = s.to_frame(seed=42), s.to_frame(seed=42)
    for c in a.columns:
        assert np.array_equal(a[c].to_numpy(), b[c].to_numpy())
    assert a["arrival_s"].to_numpy().tobytes() == b["arrival_s"].to_numpy().tobytes()


def test_requests_iterator_matches_frame():
    s = _scn(Poisson(3.0), n=CHUNK + 10, shared_prefix_tokens=16, num_prefixes=3)
    df = s.to_frame(seed=7)
    reqs = list(s.requests(seed=7))
    assert len(reqs) == len(df)
    assert reqs[0] == Request(0, 0.0, int(df.input_tokens[0]), int(df.output_tokens[0]),
                              int(df.prefix_id[0]), 16)
    assert [r.arrival_s for r in reqs] == df.arrival_s.tolist()
    assert [r.input_tokens for r in reqs] == df.input_tokens.tolist()
    assert [r.output_tokens for r in reqs] == df.output_tokens.tolist()
    assert [r.id for r in reqs] == list(range(len(df)))
    assert all(type(r.input_tokens) is int and type(r.arrival_s) is float for r in reqs[:10])


def test_different_seeds_different_arrivals():
    s = _scn(Poisson(10.0), n=100)
    a, b = s.to_frame(1).arrival_s.to_numpy(), s.to_frame(2).arrival_s.to_numpy()
    assert not np.array_equal(a, b)


def test_components_draw_from_independent_streams():
    # changing the output lengths leaves the arrivals (and the input lengths) of a seed unchanged
    a = _scn(Poisson(10.0), out=Fixed(5)).to_frame(3)
    b = _scn(Poisson(10.0), out=Uniform(1, 99)).to_frame(3)
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert np.array_equal(a.input_tokens, b.input_tokens)


def test_no_global_random_state_used():
    np.random.seed(0)
    s = _scn(Poisson(10.0), n=50)
    a = s.to_frame(5)
    np.random.seed(1)
    np.random.random(10)
    assert np.array_equal(a.arrival_s, s.to_frame(5).arrival_s)


def test_requests_stream_lazily():
    s = Scenario(Poisson(1e6), Fixed(10), Fixed(10), num_requests=10**12)
    t0 = time.perf_counter()
    first = list(islice(s.requests(0), 5))
    assert len(first) == 5 and time.perf_counter() - t0 < 30.0  # eager generation of 10^12 would never return


def test_request_is_frozen():
    r = Request(0, 0.0, 10, 5)
    assert r.prefix_id is None and r.prefix_tokens == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.input_tokens = 3


def test_chunk_boundaries_are_seamless():
    df = _scn(Poisson(50.0), n=2 * CHUNK + 3).to_frame(0)
    assert len(df) == 2 * CHUNK + 3
    assert np.array_equal(df.request_id, np.arange(len(df)))
    assert (np.diff(df.arrival_s) >= 0).all()


# ---- arrival processes


def test_poisson_mean_rate_and_cv():
    t = _scn(Poisson(20.0), n=100_000).to_frame(11).arrival_s.to_numpy()
    assert t[0] == 0.0
    rate = (t.size - 1) / t[-1]
    assert rate == pytest.approx(20.0, rel=0.02)
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("cv", [0.25, 0.5, 2.0, 4.0])
def test_gamma_cv_and_rate(cv):
    t = _scn(Gamma(5.0, cv), n=100_000).to_frame(12).arrival_s.to_numpy()
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.06)
    assert (t.size - 1) / t[-1] == pytest.approx(5.0, rel=0.06)


def test_fixed_rate_exact_spacing():
    t = _scn(FixedRate(4.0), n=CHUNK + 100).to_frame(0).arrival_s.to_numpy()
    assert np.array_equal(t, np.arange(t.size) / 4.0)
    assert np.all(np.diff(t) == 0.25)


def test_all_at_once_and_infinite_rates():
    assert (_scn(AllAtOnce(), n=500).to_frame(0).arrival_s == 0).all()
    for proc in (Poisson(math.inf), Gamma(math.inf, 2.0), FixedRate(math.inf)):
        assert (_scn(proc, n=100).to_frame(0).arrival_s == 0).all()
    assert arrival_process(math.inf) == AllAtOnce()
    assert arrival_process(3.0) == Poisson(3.0)
    assert arrival_process(3.0, cv=0) == FixedRate(3.0)
    assert arrival_process(3.0, cv=2.0) == Gamma(3.0, 2.0)


def test_duration_bounds_the_stream():
    df = Scenario(Poisson(100.0), Fixed(8), Fixed(8), duration_s=50.0).to_frame(1)
    assert df.arrival_s.max() < 50.0
    assert len(df) == pytest.approx(100 * 50, rel=0.05)
    df = Scenario(FixedRate(10.0), Fixed(8), Fixed(8), duration_s=2.0).to_frame(1)
    assert len(df) == 20  # 0.0, 0.1, ..., 1.9
    # both limits: whichever comes first
    assert len(Scenario(FixedRate(10.0), 8, 8, num_requests=5, duration_s=2.0).to_frame(0)) == 5
    assert len(Scenario(FixedRate(10.0), 8, 8, num_requests=500, duration_s=2.0).to_frame(0)) == 20


def test_trace_arrivals_speedup_and_loop():
    times = np.array([0.0, 1.0, 3.0, 4.0])
    s = Scenario(TraceArrivals(times, speedup=2.0), Replay([1, 2, 3, 4]), Replay([5, 6, 7, 8]))
    df = s.to_frame(99)
    assert df.arrival_s.tolist() == [0.0, 0.5, 1.5, 2.0]
    assert df.input_tokens.tolist() == [1, 2, 3, 4] and df.output_tokens.tolist() == [5, 6, 7, 8]
    # looping: each cycle shifted by the span (4 s) + one mean gap (4/3 s)
    s = Scenario(TraceArrivals(times, loop=True), Replay([1, 2, 3, 4]), Fixed(1), num_requests=10)
    df = s.to_frame(0)
    p = 16 / 3
    assert df.arrival_s.to_numpy() == pytest.approx([0, 1, 3, 4, p, p + 1, p + 3, p + 4, 2 * p, 2 * p + 1])
    assert df.input_tokens.tolist() == [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]
    with pytest.raises(SpecError, match="only 4 arrivals"):
        Scenario(TraceArrivals(times), 1, 1, num_requests=5)
    with pytest.raises(SpecError, match="non-decreasing"):
        TraceArrivals([0.0, 2.0, 1.0])


# ---- length distributions


def test_length_bounds():
    rng = np.random.default_rng(0)
    u = Uniform(3, 9).sample(rng, 50_000)
    assert u.min() == 3 and u.max() == 9 and u.dtype == np.int64
    z = Zipf(1.3, 5, 500).sample(rng, 50_000)
    assert z.min() >= 5 and z.max() <= 500
    # P(k) ~ k^-a: compare the first two counts
    c5, c6 = (z == 5).sum(), (z == 6).sum()
    assert c5 / c6 == pytest.approx((6 / 5) ** 1.3, rel=0.1)
    big = Zipf(0.8, 10, 50_000_000).sample(rng, 50_000)  # continuous approximation path
    assert big.min() >= 10 and big.max() <= 50_000_000
    assert (Fixed(7).sample(rng, 10) == 7).all()
    assert Uniform(4, 4).sample(rng, 5).tolist() == [4] * 5


def test_lognormal_mean_and_clipping():
    x = LogNormal(800, 0.7).sample(np.random.default_rng(1), 200_000)
    assert x.min() >= 1 and x.mean() == pytest.approx(800, rel=0.02)
    assert LogNormal(800, 2.0, hi=1000).sample(np.random.default_rng(1), 10_000).max() <= 1000


def test_empirical_and_replay():
    vals = [5, 50, 500]
    e = Empirical(vals).sample(np.random.default_rng(2), 3000)
    assert set(e.tolist()) == set(vals)
    assert Replay(vals).sample(np.random.default_rng(2), 7).tolist() == [5, 50, 500, 5, 50, 500, 5]
    with pytest.raises(SpecError, match="Empirical.values"):
        Empirical([])
    with pytest.raises(SpecError, match=">= 1"):
        Empirical([3, 0])


def test_int_lengths_mean_fixed():
    s = Scenario(Poisson(1.0), 128, 16, num_requests=3)
    assert s.input_tokens == Fixed(128) and s.output_tokens == Fixed(16)


# ---- prefix sharing


def test_prefix_sharing():
    s = Scenario(Poisson(5.0), Fixed(100), Fixed(10), num_requests=2000, shared_prefix_tokens=512,
                 num_prefixes=4)
    df = s.to_frame(0)
    assert set(df.prefix_id) == {0, 1, 2, 3}
    assert (df.prefix_tokens == 512).all() and (df.input_tokens == 612).all()
    r = next(s.requests(0))
    assert r.prefix_tokens == 512 and r.prefix_id in range(4)
    assert "prefix_id" not in _scn(Poisson(1.0), n=3).to_frame(0).columns
    with pytest.raises(SpecError, match="go together"):
        Scenario(Poisson(5.0), 10, 10, num_requests=5, shared_prefix_tokens=512)


# ---- validation


@pytest.mark.parametrize("make, fragment", [
    (lambda: Poisson(0), "Poisson.rate_rps: must be > 0"),
    (lambda: Poisson(-3), "Poisson.rate_rps: must be > 0"),
    (lambda: Poisson(float("nan")), "Poisson.rate_rps"),
    (lambda: Poisson("10"), "Poisson.rate_rps: must be a number"),
    (lambda: Gamma(1.0, 0), "Gamma.cv: must be > 0"),
    (lambda: Gamma(1.0, -1), "Gamma.cv"),
    (lambda: FixedRate(0), "FixedRate.rate_rps"),
    (lambda: Uniform(10, 5), "Uniform.lo: must be <= hi"),
    (lambda: Uniform(0, 5), "Uniform.lo: must be >= 1"),
    (lambda: Zipf(1.0, 9, 2), "Zipf.lo: must be <= hi"),
    (lambda: Zipf(0, 1, 2), "Zipf.a: must be > 0"),
    (lambda: Fixed(0), "Fixed.n: must be >= 1"),
    (lambda: Fixed(2.5), "Fixed.n: must be an integer"),
    (lambda: LogNormal(-1, 1), "LogNormal.mean"),
    (lambda: TraceArrivals([0, 1], speedup=0), "TraceArrivals.speedup"),
    (lambda: Scenario(Poisson(1.0), 1, 1), "give num_requests or duration_s"),
    (lambda: Scenario(AllAtOnce(), 1, 1, duration_s=10), "give num_requests"),
    (lambda: Scenario(Poisson(1.0), 1, 1, num_requests=0), "Scenario.num_requests: must be >= 1"),
    (lambda: Scenario(Poisson(1.0), 1, 1, duration_s=-1), "Scenario.duration_s"),
    (lambda: Scenario(Poisson(1.0), "x", 1, num_requests=1), "Scenario.input_tokens"),
    (lambda: Scenario(10, 1, 1, num_requests=1), "Scenario.arrivals"),
    (lambda: next(Scenario(Poisson(1.0), 1, 1, num_requests=1).requests(-1)), "seed"),
])
def test_bad_parameters_name_the_parameter(make, fragment):
    with pytest.raises(SpecError) as e:
        make()
    assert fragment in str(e.value)


def test_all_problems_reported_at_once():
    with pytest.raises(SpecError) as e:
        Uniform(0, -1)
    assert len(e.value.problems) == 2


@pytest.mark.parametrize("text, value", [("10", 10.0), ("2.5", 2.5), ("inf", math.inf), (" INF ", math.inf),
                                         ("1e3", 1000.0), ("4 rps", 4.0)])
def test_parse_rate(text, value):
    assert parse_rate(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "nan", "abc", ""])
def test_parse_rate_rejects(text):
    with pytest.raises(SpecError, match="rate"):
        parse_rate(text)


def test_to_dict():
    d = _scn(Gamma(2.0, 3.0), n=5, name="x").to_dict()
    assert d["arrivals"] == {"type": "gamma", "rate_rps": 2.0, "cv": 3.0}
    assert d["num_requests"] == 5 and d["input_tokens"]["type"] == "uniform"


# ---- speed


def test_large_scenarios_generate():
    """A large scenario generates every request (its speed: benchmarks/bench_inputs.py)."""
    s = Scenario(Gamma(50.0, 2.0), Uniform(16, 8192), Zipf(1.2, 1, 4096), num_requests=200_000)
    df = s.to_frame(1)
    assert len(df) == 200_000 and (df["input_tokens"] >= 16).all()
