"""The bulk bookkeeping of a decode run (sim/serving/metrics.py ``add_many`` / ``add_steps``) leaves
the histogram and the timeline exactly as one ``add`` call per value or step would."""

import random

from sim.serving.metrics import LogHistogram, Timeline


def test_histogram_add_many_equals_one_add_per_value():
    rng = random.Random(5)
    xs = [rng.choice([0.0, 1e-9, 0.0123, 0.0123, 7.5, 1e6]) * rng.uniform(0.5, 2) for _ in range(300)]
    xs[10:20] = [0.02] * 10  # repeats take the remembered bin
    ks = [rng.choice([0, 1, 3]) for _ in xs]
    a, b = LogHistogram(), LogHistogram()
    a.add(0.5)
    b.add(0.5)
    for x, k in zip(xs, ks):
        if k:
            a.add(x, k)
    b.add_many(xs, ks)
    assert (a.counts == b.counts).all() and (a.n, a.total, a.max) == (b.n, b.total, b.max)
    assert b.max < 2e6 and all(x <= b.max for x, k in zip(xs, ks) if k)


def test_timeline_add_steps_equals_one_add_per_step():
    rng = random.Random(6)
    a, b = Timeline(0, max_points=16), Timeline(0, max_points=16)  # decimation by halving happens
    for _ in range(7):
        n = rng.randint(1, 40)
        ts = sorted(rng.uniform(0, 100) for _ in range(n))
        batches = [rng.randint(1, 64) for _ in range(n)]
        kvs = [rng.random() for _ in range(n)]
        dts = [rng.uniform(1e-3, 2e-2) for _ in range(n)]
        q = rng.randint(0, 5)
        for t, bb, kv, d in zip(ts, batches, kvs, dts):
            a.add(t, bb, bb, 0, kv, d, q, "decode")
        b.add_steps(ts, batches, kvs, dts, q, "decode")
        a.add(ts[-1] + 1, 3, 300, 297, 0.5, 0.01, 0, "mixed")  # single steps in between
        b.add(ts[-1] + 1, 3, 300, 297, 0.5, 0.01, 0, "mixed")
    for f in ("steps", "busy_s", "kv_time", "batch_time", "kv_max", "batch_max", "stride", "_k", "rows"):
        assert getattr(a, f) == getattr(b, f), f
    assert a.stride > 1
