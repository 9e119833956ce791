"""Decode runs: successive pure-decode steps priced at once (StepCoster.decode_steps) and advanced as
one SimPy event (Replica._decode_run) give exactly what one step per event gives."""

import math

import numpy as np
import pandas as pd
import pytest

from hwmodels import load_system
from sim.serving import simulate
from sim.serving.replica import Replica
from sim.step import StepCoster
from workloads import Parallelism
from workloads.scenario import Request
from workloads.trace import load_trace


@pytest.mark.parametrize("model,hw,par,stack", [
    ("llama-3.1-8b", "h100-sxm", Parallelism(), "vllm"),  # dense GQA
    ("gemma-2-27b", "h100-sxm", Parallelism(), "ideal"),  # sliding window + global layers
    ("deepseek-v2-lite", "h100-sxm", Parallelism(), "sglang"),  # MLA + MoE
    ("mixtral-8x7b", "hgx-h100-8", Parallelism(tp=4, pp=2), "tensorrt-llm"),
])
def test_decode_steps_equal_each_step(model, hw, par, stack):
    sc = StepCoster(model, load_system(hw), parallel=par, stack=stack)
    rng = np.random.default_rng(3)
    ctx = rng.integers(1, 5000, 13).tolist()
    K = 9
    t, e, f, b = sc.decode_steps(ctx, K)
    for k in range(K):
        seqs = tuple((1, c + k) for c in ctx)
        one, exact = sc.step(seqs), sc.exact(seqs)
        assert (t[k], e[k], f[k], b[k]) == (one.time_s, one.energy_j, one.flops, one.bytes_main)
        assert t[k] == pytest.approx(exact.time_s, rel=1e-9)
        assert e[k] == pytest.approx(exact.energy_j, rel=1e-9)
        assert f[k] == pytest.approx(exact.flops, rel=1e-9)
        assert b[k] == pytest.approx(exact.bytes_main, rel=1e-9)


@pytest.mark.parametrize("model,hw,par,stack,quant", [
    ("llama-3.1-8b", "h100-sxm", Parallelism(), "vllm", "bf16"),  # dense GQA, CUDA graphs up to a batch size
    ("gemma-2-27b", "h100-sxm", Parallelism(), "ideal", "bf16"),  # sliding window + global layers
    ("deepseek-v2-lite", "h100-sxm", Parallelism(), "sglang", "bf16"),  # MLA: the split priced apart
    ("deepseek-v2-lite", "hgx-h100-8", Parallelism(tp=2), "vllm", "fp8-block"),  # MLA block-scaled: cut ops too
    ("deepseek-v2-lite", "hgx-h100-8", Parallelism(tp=2, ep=2), "vllm", "fp8-block"),
    ("deepseek-v3", "hgx-h200-8", Parallelism(tp=8), "vllm", "fp8"),  # its block-FP8 checkpoint
    ("mixtral-8x7b", "hgx-h100-8", Parallelism(tp=4, pp=2), "tensorrt-llm", "bf16"),
])
def test_decode_steps_with_leaving_requests_equal_each_step(model, hw, par, stack, quant):
    """A run whose requests leave as they finish (``stays``): step k is the step of the requests still
    there, bit for bit, and the whole graph's price to 1e-9 (one evaluation: absent requests are (0, 0)
    pairs, on the decode side of an MLA step: SeqArrays.split)."""
    sc = StepCoster(model, load_system(hw), quant=quant, parallel=par, stack=stack)
    rng = np.random.default_rng(5)
    ctx = rng.integers(1, 5000, 11).tolist()
    K = 12
    stays = [1, 3, 3, 5, 12, 12, 8, 2, 12, 9, 4]  # request i leaves after step stays[i] - 1
    for k in range(K):  # every request count's (T, R) part known first: the steps below are not whole graphs
        sc.step(tuple((1, c + k + 100) for c, n in zip(ctx, stays) if n > k))
    t, e, f, b = sc.decode_steps(ctx, K, stays)
    for k in range(K):
        seqs = tuple((1, c + k) for c, n in zip(ctx, stays) if n > k)
        one, exact = sc.step(seqs), sc.exact(seqs)
        assert (t[k], e[k], f[k], b[k]) == (one.time_s, one.energy_j, one.flops, one.bytes_main)
        assert t[k] == pytest.approx(exact.time_s, rel=1e-9)
        assert e[k] == pytest.approx(exact.energy_j, rel=1e-9)
        assert f[k] == pytest.approx(exact.flops, rel=1e-9)
        assert b[k] == pytest.approx(exact.bytes_main, rel=1e-9)


def _offline(n):
    """The trace's first n requests all sent at once: an offline run (replicas pull from a shared queue)."""
    return [Request(r.id, 0.0, r.input_tokens, r.output_tokens) for r in load_trace("azure-conv-2023", limit=n).requests()]


def _both(n, monkeypatch, offline=False, **kw):
    used = []
    real = StepCoster.count_steps
    monkeypatch.setattr(StepCoster, "count_steps", lambda self, k: (used.append(k), real(self, k)))
    out = []
    for flag in (False, True):
        Replica.decode_runs = flag
        try:
            scenario = _offline(n) if offline else load_trace("azure-conv-2023", limit=n)
            out.append(simulate(scenario, "h100-sxm", "llama-3.1-8b", **kw))
        finally:
            Replica.decode_runs = True
    assert sum(used) > 0.3 * out[1].summary["steps"]  # most steps ran in decode runs
    return out


STATS = {"memo_hit_rate", "shape_memo_hit_rate", "graph_builds", "sim_wall_s", "steps_per_s", "peak_rss_mb"}


@pytest.mark.parametrize("kw", [
    {},
    {"scheduler": "sarathi", "kv_capacity_tokens": 6000, "trace_speedup": 4.0},  # queueing, preemptions
    {"kv_capacity_tokens": 6000, "preemption": "swap", "trace_speedup": 4.0},
    {"replicas": 2, "router": "least-kv", "trace_speedup": 3.0, "prefix_caching": True},
    {"until_s": 200.0, "stack": "ideal"},
    {"offline": True, "usage": "offline"},  # all at once, the LLM class: replicas refill their queues from a shared source
    {"offline": True, "usage": "offline", "kv_capacity_tokens": 6000, "max_num_seqs": 16, "replicas": 2},  # requests wait
])
def test_decode_runs_change_nothing(kw, monkeypatch):
    """Every request's TTFT, TPOT, e2e, ITLs and every step of the timeline are those of one step per
    event (to float rounding; in practice bit for bit)."""
    slow, fast = _both(120, monkeypatch, **kw)
    a, b = slow.requests, fast.requests
    assert len(a) == len(b) > 0
    for c in a.columns:
        assert np.allclose(a[c].to_numpy(float), b[c].to_numpy(float), rtol=1e-12, atol=0, equal_nan=True), c
    ta, tb = slow.timeline, fast.timeline
    assert len(ta) == len(tb)
    for c in ta.columns:
        if ta[c].dtype.kind in "fi":
            assert np.allclose(ta[c].to_numpy(float), tb[c].to_numpy(float), rtol=1e-12, atol=0), c
    for k, v in slow.summary.items():
        if k in STATS:
            continue
        w = fast.summary[k]
        if isinstance(v, float) and not (isinstance(w, float) and math.isnan(w) and math.isnan(v)):
            assert w == pytest.approx(v, rel=1e-9), k
        elif not isinstance(v, float):
            assert w == v, k
    assert fast.summary["steps"] == slow.summary["steps"]


@pytest.mark.parametrize("model,hw,par,stack", [
    ("llama-3.1-8b", "h100-sxm", Parallelism(), "vllm"),  # dense GQA
    ("gemma-2-27b", "h100-sxm", Parallelism(), "ideal"),  # sliding window + global layers
    ("deepseek-v2-lite", "hgx-h100-8", Parallelism(tp=2), "vllm"),  # MLA + MoE
    ("mixtral-8x7b", "hgx-h100-8", Parallelism(tp=4, pp=2), "tensorrt-llm"),
])
def test_runs_priced_ahead_equal_their_own_evaluation(model, hw, par, stack):
    """Runs priced ahead (``decode_steps(..., ahead=...)``: rows of the same evaluation, wider or
    narrower than this run) answer a later call for the same requests, in any order, with the
    figures of that call's own evaluation, bit for bit; other calls are priced as usual."""
    rng = np.random.default_rng(8)
    ctx = rng.integers(1, 5000, 9).tolist()
    stays = [30, 4, 30, 17, 9, 30, 2, 30, 25]
    wider = (rng.integers(1, 5000, 12).tolist(), rng.integers(1, 40, 12).tolist(), 33)
    narrower = ([c + 20 for c in ctx[:3]], [5, 40, 11], 21)
    fresh = StepCoster(model, load_system(hw), parallel=par, stack=stack)
    sc = StepCoster(model, load_system(hw), parallel=par, stack=stack)
    for c in (fresh, sc):  # every request count's (T, R) part known first (runs ahead need them)
        for r in range(1, 13):
            c.step(tuple((1, 100 + i) for i in range(r)))
    main = sc.decode_steps(ctx, 30, stays, ahead=(wider, narrower))
    assert sc.ahead_hits == 0
    for got, want in ((main, fresh.decode_steps(ctx, 30, stays)),):
        assert all((g == w).all() for g, w in zip(got, want))
    for c, s, k in (wider, narrower):
        perm = rng.permutation(len(c))
        hits = sc.ahead_hits
        got = sc.decode_steps([c[i] for i in perm], k - 3, [s[i] for i in perm])
        assert sc.ahead_hits == hits + 1
        want = fresh.decode_steps(c, k - 3, s)
        assert all(len(g) == k - 3 and (g == w).all() for g, w in zip(got, want)), (model, len(c))
    # a different run (one context differs) is priced, and that evaluation drops the runs ahead
    c, s, k = wider
    other = sc.decode_steps([c[0] + 1] + c[1:], k, s)
    assert sc.ahead_hits == 2 and all((g == w).all() for g, w in zip(other, fresh.decode_steps([c[0] + 1] + c[1:], k, s)))
    assert sc.decode_steps(narrower[0], narrower[2], narrower[1]) is not None and sc.ahead_hits == 2


def test_pricing_ahead_changes_nothing():
    """A simulation with the decode runs priced ahead gives exactly the figures of one without."""
    out = []
    for flag in (False, True):
        Replica.price_ahead = flag
        try:
            out.append(simulate(load_trace("azure-conv-2023", limit=150), "h100-sxm", "llama-3.1-8b"))
        finally:
            Replica.price_ahead = True
    a, b = out
    for x, y in ((a.requests, b.requests), (a.timeline, b.timeline)):
        assert len(x) == len(y) > 0
        for c in x.columns:
            if x[c].dtype.kind in "fi":
                assert (x[c].to_numpy(float) == y[c].to_numpy(float)).all(), c
    for k, v in a.summary.items():
        if k not in STATS and not (isinstance(v, float) and math.isnan(v)):
            assert b.summary[k] == v, k


def test_run_known_says_whether_a_run_prices_steps_of_its_own():
    """``run_known`` is True exactly when every stretch's (T, R) part is known, i.e. when decode_steps prices
    no step of its own (its ``calls`` do not move)."""
    sc = StepCoster("llama-3.1-8b", load_system("h100-sxm"))
    ctx, stays = [100, 200, 300], [5, 2, 5]  # the second request leaves after step 1: stretches of 3 and 2
    assert not sc.run_known(3, stays, 5)
    sc.step(((1, 100), (1, 200), (1, 300)))  # the (3, 3) part
    assert sc.run_known(3, None, 5) and sc.run_known(3, [5, 5, 5], 5)  # nobody leaves: one stretch
    assert not sc.run_known(3, stays, 5)  # the (2, 2) part is still unknown
    calls = sc.calls
    sc.decode_steps(ctx, 5, stays)  # prices the (2, 2) part from a whole step
    assert sc.calls == calls + 1
    assert sc.run_known(3, stays, 5)
    calls = sc.calls
    sc.decode_steps([c + 7 for c in ctx], 5, stays)
    assert sc.calls == calls  # nothing of its own priced
    mla = StepCoster("deepseek-v2-lite", load_system("h100-sxm"))  # MLA: the key of a decode holds the split
    assert not mla.run_known(2, None, 3)
    mla.step(((1, 100), (1, 200)))
    assert mla.run_known(2, None, 3) and not mla.run_known(2, [1, 3], 3)


def test_short_runs_left_to_single_steps_change_nothing(monkeypatch):
    """A run the arrival bounds at two steps is not priced (one step instead): the requests, the timeline and
    the summary, its memo figures included, are exactly those with such runs priced."""
    skipped = []
    real = StepCoster.run_known

    def known(self, requests, stays, steps):
        got = real(self, requests, stays, steps)
        skipped.append(got)
        return got

    monkeypatch.setattr(StepCoster, "run_known", known)
    fast = simulate(load_trace("azure-conv-2023", limit=300), "h100-sxm", "llama-3.1-8b")
    assert sum(skipped) > 0
    monkeypatch.setattr(StepCoster, "run_known", lambda self, requests, stays, steps: False)
    slow = simulate(load_trace("azure-conv-2023", limit=300), "h100-sxm", "llama-3.1-8b")
    pd.testing.assert_frame_equal(fast.requests, slow.requests, check_exact=True)
    pd.testing.assert_frame_equal(fast.timeline, slow.timeline, check_exact=True)
    for k, v in slow.summary.items():
        if k not in {"sim_wall_s", "steps_per_s", "peak_rss_mb"} and not (isinstance(v, float) and math.isnan(v)):
            assert fast.summary[k] == v, k
