"""The bulk bookkeeping of a decode run (sim/serving/metrics.py ``add_many`` / ``add_steps``; the KV blocks of
sim/serving/replica.py) leaves the histogram, the timeline and the block counts exactly as one call per value
or step would."""

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


def test_run_block_counts_equal_the_per_step_ceiling():
    """A decode run's blocks (replica._allocations, _grown): request i of context c, holding h blocks, with r
    tokens to go needs ceil((c + k + 1) / bs) blocks by step k (its last step r - 1 at most); the run's total
    by each step is the sum over the requests of what each adds beyond h, counted one step at a time here."""
    import math

    from sim.serving.replica import _allocations, _grown

    rng = random.Random(7)
    for _ in range(400):
        bs = rng.choice([1, 2, 16, 32])
        steps = rng.randint(1, 80)
        reqs = [(rng.randint(0, 300), rng.randint(0, 25), rng.randint(-1, 120)) for _ in range(rng.randint(1, 12))]
        ctx, held, rems = (list(v) for v in zip(*reqs))
        want = [sum(max(0, math.ceil((c + min(k, r - 1) + 1) / bs) - h) for c, h, r in reqs) for k in range(steps)]
        assert _allocations(ctx, held, rems, steps, bs) == want
        k = rng.randrange(steps)
        assert [_grown(c, h, r, k, bs) for c, h, r in reqs] == \
            [max(0, math.ceil((c + min(k, r - 1) + 1) / bs) - h) for c, h, r in reqs]


def test_run_leaves_the_collector_as_it_found_it(monkeypatch):
    """run_replicas raises the young threshold for the run and promotes what the run left young without a
    sweep (gc.freeze/unfreeze): the log's flush after the run finds the young generation below the restored
    threshold (no sweep due), the threshold comes back, nothing stays frozen, and a caller's own frozen
    objects stay frozen (the promotion is skipped then)."""
    import gc

    from sim.serving import simulate
    from sim.serving.metrics import RequestLog
    from workloads.trace import load_trace

    young = []
    flush = RequestLog.flush

    def counting_flush(self):
        young.append(gc.get_count()[0])
        return flush(self)

    monkeypatch.setattr(RequestLog, "flush", counting_flush)
    before = gc.get_threshold()
    simulate(load_trace("azure-conv-2023", limit=20), "h100-sxm", "llama-3.1-8b")
    assert young and young[0] < before[0]
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        simulate(load_trace("azure-conv-2023", limit=20), "h100-sxm", "llama-3.1-8b")
        # still frozen (a few frozen objects may die meanwhile; an unfreeze would leave none)
        assert gc.get_freeze_count() > 0.9 * frozen and gc.get_threshold() == before
    finally:
        gc.unfreeze()
