"""Steady-state statistics (sim/steady.py) on series whose answer is known by construction."""

import numpy as np

from sim.steady import delay_slope, mser5, quantile_ci, queue_growth, t975


def test_mser5_drops_a_warm_up_transient():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(20.0, 1.0, 200), 1.0 + 0.1 * rng.standard_normal(2000)])
    cut = mser5(x)
    assert cut % 5 == 0 and 150 <= cut <= 260  # the 200-value ramp, give or take a few batches
    assert mser5(1.0 + 0.1 * rng.standard_normal(2000)) < 200  # a stationary series keeps (nearly) all
    assert mser5([1.0, 2.0, 3.0]) == 0  # too short to judge
    # a flat series whose values differ only in rounding (a deterministic queue-free run) has no warm-up
    flat = 0.3684059641456088 + np.array([0.0, 5.551115123125783e-17, -5.551115123125783e-17] * 300)
    assert mser5(flat) == 0


def test_mser5_on_a_trend_cuts_the_most_it_may():
    # a queue that grows all along never settles: MSER-5 drops the largest share it may (half)
    cut = mser5(np.arange(1000.0))
    assert cut == 5 * (200 // 2)


def test_quantile_ci_by_hand():
    x = np.tile(np.arange(100.0), 10)  # ten identical batches: their p99s agree, the interval is 0
    est, half = quantile_ci(x, 0.99)
    assert est == np.quantile(x, 0.99) and half == 0.0
    est, half = quantile_ci(np.arange(500.0), 0.99)  # 50 per batch: a batch p99 is not yet meaningful
    assert half == float("inf")
    assert t975(9) == 2.262 and t975(100) == 1.96


def test_quantile_ci_covers_the_true_p99_of_iid_samples():
    rng = np.random.default_rng(1)
    true = -np.log(0.01)  # p99 of an exponential with mean 1
    hits = 0
    for _ in range(40):
        est, half = quantile_ci(rng.exponential(1.0, 5000), 0.99)
        hits += abs(est - true) <= half
    assert hits >= 32  # a 95 % interval; at least 80 % of 40 trials


def test_queue_growth_and_delay_slope():
    arr = np.arange(0, 100, 0.1)  # 10 req/s for 100 s
    steady = arr + 2.0  # each served in 2 s: no growth
    g = queue_growth(arr, steady)
    assert abs(g.share) < 0.01 and g.arrivals == 500
    over = np.arange(1000) / 8.0 + 0.5  # served at 8 req/s: 2 of every 10 arrivals accumulate
    g = queue_growth(arr, over)
    assert 0.18 <= g.share <= 0.22
    assert abs(delay_slope(arr, np.zeros_like(arr))) < 1e-12
    assert 0.24 <= delay_slope(arr, over - 0.5 - arr) <= 0.26  # waiting grows 1/8 - 1/10 s per 0.1 s
