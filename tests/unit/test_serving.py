"""Serving simulator: hand-worked event logs, the tie to the static predictor, conservation,
determinism, saturation and bad input.

Most cases use a fake step pricer with round numbers (a step of T new tokens takes
0.01 + 0.001 T seconds) so the expected times can be worked out by hand; the cases that tie the
simulator to the cost model use the real StepCoster on the toy chip (100 TFLOP/s, 1 TB/s, 10 GiB).
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwmodels.errors import InfeasibleError, SpecError
from sim.predict import predict
from sim.serving import simulate
from sim.step import StepCost, StepCoster
from workloads.scenario import AllAtOnce, Poisson, Request, Scenario, Uniform

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")
TOY_SYS = str(DATA / "toy-system.yaml")
MODEL = "qwen2.5-0.5b"


class FakeCoster:
    """A step of T new tokens takes 0.01 + 0.001 T seconds (1 J per step)."""

    def __init__(self, base=0.01, per_token=0.001):
        self.base, self.per_token = base, per_token
        self.calls = 0

    def step(self, seqs):
        self.calls += 1
        t = sum(n for n, _ in seqs)
        return StepCost(self.base + self.per_token * t, 1.0, 0.0, 0.0)


def fake(reqs, **kw):
    kw.setdefault("kv_capacity_tokens", 100_000)
    kw.setdefault("record_events", True)
    kw.setdefault("stack", "ideal")  # the scheduler defaults these hand-built event logs assume
    return simulate(reqs, TOY, MODEL, coster=FakeCoster(), **kw)


def check_events(got, want):
    assert [(e, i) for _, e, i in got] == [(e, i) for _, e, i in want]
    assert [t for t, _, _ in got] == pytest.approx([t for t, _, _ in want], abs=1e-12)


# ---- exact event logs ------------------------------------------------------------------------


def test_event_log_vllm_prefill_first_then_decode():
    r = fake([Request(0, 0.0, 100, 3), Request(1, 0.05, 50, 2)])
    check_events(
        r.events,
        [
            (0.0, "arrive", 0),
            (0.0, "prefill", (0,)),
            (0.05, "arrive", 1),
            (0.11, "token", 0),
            (0.11, "prefill", (1,)),  # r1 waits for r0's prefill; decodes wait for r1's
            (0.17, "token", 1),
            (0.17, "decode", (0, 1)),
            (0.182, "token", 0),
            (0.182, "token", 1),
            (0.182, "finish", 1),
            (0.182, "decode", (0,)),
            (0.193, "token", 0),
            (0.193, "finish", 0),
        ],
    )
    df = r.requests
    assert df.ttft_s.tolist() == pytest.approx([0.11, 0.12])
    assert df.queue_s.tolist() == pytest.approx([0.0, 0.06])
    assert df.e2e_s.tolist() == pytest.approx([0.193, 0.132])
    assert df.tpot_s.tolist() == pytest.approx([(0.193 - 0.11) / 2, 0.012])
    assert df.max_itl_s.tolist() == pytest.approx([0.072, 0.012])


def test_event_log_preemption_by_recompute():
    # 4 blocks of 16 tokens, no watermark: r0 (30 + 10) and r1 (20 + 10) both fit at admission,
    # but r0's 33rd token needs a third block: r1, the last admitted, is preempted and recomputed
    r = fake([Request(0, 0.0, 30, 10), Request(1, 0.0, 20, 10)], kv_capacity_tokens=64, watermark=0.0)
    want = [
        (0.0, "arrive", 0),
        (0.0, "arrive", 1),
        (0.0, "prefill", (0, 1)),
        (0.06, "token", 0),
        (0.06, "token", 1),
        (0.06, "decode", (0, 1)),
        (0.072, "token", 0),
        (0.072, "token", 1),
        (0.072, "decode", (0, 1)),
        (0.084, "token", 0),
        (0.084, "token", 1),
        (0.084, "preempt", 1),
        (0.084, "decode", (0,)),
    ]
    t = 0.084
    for k in range(7):  # r0's tokens 4..10 alone (r1 cannot come back: 3 + 2 blocks > 4)
        t += 0.011
        want += [(t, "token", 0)] + ([(t, "decode", (0,))] if k < 6 else [])
    want += [(t, "finish", 0), (t, "prefill", (1,))]  # r1 prefills its 20 prompt + 3 output tokens again
    t += 0.01 + 0.023
    want += [(t, "token", 1)]
    for _ in range(6):
        want += [(t, "decode", (1,))]
        t += 0.011
        want += [(t, "token", 1)]
    want += [(t, "finish", 1)]
    check_events(r.events, want)
    df = r.requests
    assert df.preemptions.tolist() == [0, 1]
    assert df.max_itl_s[1] == pytest.approx(0.161 + 0.033 - 0.084)  # the gap across the preemption
    assert r.summary["preemptions"] == 1 and r.summary["kv_blocks_used_end"] == 0
    assert r.summary["kv_blocks_peak"] == 4


def test_event_log_sarathi_chunks_and_piggybacks():
    r = fake([Request(0, 0.0, 150, 2), Request(1, 0.1, 10, 3)], scheduler="sarathi", chunk_size=64)
    check_events(
        r.events,
        [
            (0.0, "arrive", 0),
            (0.0, "prefill", (0,)),  # chunk 64
            (0.074, "prefill", (0,)),  # chunk 64
            (0.1, "arrive", 1),
            (0.148, "prefill", (0, 1)),  # last chunk 22 + r1's whole prompt (10) in one step
            (0.19, "token", 0),
            (0.19, "token", 1),
            (0.19, "decode", (0, 1)),
            (0.202, "token", 0),
            (0.202, "finish", 0),
            (0.202, "token", 1),
            (0.202, "decode", (1,)),
            (0.213, "token", 1),
            (0.213, "finish", 1),
        ],
    )


def test_sarathi_decodes_do_not_stall_behind_a_long_prompt():
    r = fake([Request(0, 0.0, 10, 6), Request(1, 0.02, 1000, 2)], scheduler="sarathi", chunk_size=100)
    steps = [(t, k, ids) for t, k, ids in r.events if k in ("prefill", "decode", "mixed")]
    # while r1's prompt is chunked, every step still carries r0's decode
    mixed = [s for s in steps if s[1] == "mixed"]
    assert len(mixed) >= 4 and all(0 in ids and 1 in ids for _, _, ids in mixed)
    assert r.requests.max_itl_s[0] == pytest.approx(0.01 + 0.001 * 100)


def test_static_batch_holds_until_its_longest_request():
    r = fake(
        [Request(0, 0.0, 10, 2), Request(1, 0.0, 10, 4), Request(2, 0.0, 10, 2)],
        scheduler="static",
        max_num_seqs=2,
    )
    steps = [(t, k, ids) for t, k, ids in r.events if k in ("prefill", "decode")]
    # r0 finishes after one decode but stays as padding (priced) until r1 is done; r2 waits
    assert steps[0] == (0.0, "prefill", (0, 1))
    assert [ids for _, _, ids in steps[1:4]] == [(0, 1), (1,), (1,)]
    t_done = next(t for t, e, i in r.events if e == "finish" and i == 1)
    assert steps[4][1:] == ("prefill", (2,)) and steps[4][0] == pytest.approx(t_done)
    # the padded step costs as much as the full one (2 tokens priced, 1 generated)
    assert steps[2][0] - steps[1][0] == pytest.approx(0.012) and steps[3][0] - steps[2][0] == pytest.approx(
        0.012
    )


def test_disagg_hands_kv_over_the_interconnect():
    r = simulate(
        [Request(0, 0.0, 100, 3)],
        TOY_SYS,
        MODEL,
        scheduler="disagg",
        coster=FakeCoster(),
        kv_capacity_tokens=10_000,
        record_events=True,
        stack="ideal",  # no API server in front (docs/stacks.md, Frontend): the hand-timed events start at t=0
    )
    ev = r.events
    names = [e for _, e, _ in ev]
    assert names == [
        "arrive",
        "prefill",
        "token",
        "handoff",
        "transferred",
        "decode",
        "token",
        "decode",
        "token",
        "finish",
    ]
    t_hand = ev[3][0]
    t_moved = ev[4][0]
    # qwen2.5-0.5b: 24 layers x 2 KV heads x 64 x 2 (K, V) x 2 bytes = 12,288 B per token;
    # 100 tokens over the toy switch (100 GB/s, 1 us)
    assert t_hand == pytest.approx(0.11)
    assert t_moved - t_hand == pytest.approx(100 * 12288 / 100e9 + 1e-6)
    assert r.requests.replica[0] == 1 and r.summary["kv_transfers"] == 1
    assert r.requests.ttft_s[0] == pytest.approx(0.11)


def test_prefix_caching_reuses_blocks():
    reqs = [
        Request(0, 0.0, 200, 2, prefix_id=7, prefix_tokens=160),
        Request(1, 1.0, 200, 2, prefix_id=7, prefix_tokens=160),
        Request(2, 2.0, 200, 2, prefix_id=8, prefix_tokens=160),
    ]
    off = fake(reqs)
    on = fake(reqs, prefix_caching=True)
    assert on.requests.prefix_hit_tokens.tolist() == [0, 160, 0]
    assert on.requests.ttft_s[1] == pytest.approx(0.01 + 0.001 * 40)
    assert off.requests.ttft_s[1] == pytest.approx(0.01 + 0.001 * 200)
    assert on.summary["kv_blocks_used_end"] == 0


def test_pipeline_keeps_micro_batches_in_flight():
    # pp=2: a step of the cost model is 2 stages; a lone request waits for both, two requests
    # arriving apart are in flight together (the second enters stage 0 while the first is in stage 1)
    one = simulate(
        [Request(0, 0.0, 100, 3)], TOY_SYS, MODEL, pp=2, coster=FakeCoster(), kv_capacity_tokens=10_000,
        stack="ideal",  # no API server in front: the hand-timed steps start at t=0
    )
    assert one.requests.ttft_s[0] == pytest.approx(0.11)
    assert one.requests.e2e_s[0] == pytest.approx(0.11 + 2 * 0.011)
    two = simulate(
        [Request(0, 0.0, 100, 40), Request(1, 0.001, 100, 40)],
        TOY_SYS,
        MODEL,
        pp=2,
        coster=FakeCoster(),
        kv_capacity_tokens=10_000,
        record_events=True,
        stack="ideal",
    )
    assert two.requests.ttft_s[1] == pytest.approx(0.055 + 0.11 - 0.001)  # enters when stage 0 frees
    steps = [ids for _, k, ids in two.events if k == "decode"]
    assert (0,) in steps and (1,) in steps  # separate micro-batches alternate
    assert two.summary["e2e_p50_s"] < 2 * one.summary["e2e_p50_s"] * 40 / 3


# ---- the tie to the static predictor ---------------------------------------------------------

L_IN, L_OUT = 128, 16
TIES = [(TOY, 1, 1), (TOY_SYS, 2, 1), (TOY_SYS, 1, 2)]


@pytest.mark.parametrize("hw,tp,pp", TIES)
def test_one_request_matches_the_static_predictor(hw, tp, pp):
    # the engine alone (offline: no API server in front, docs/stacks.md, Frontend) is the static predictor
    r = simulate([Request(0, 0.0, L_IN, L_OUT)], hw, MODEL, tp=tp, pp=pp, usage="offline")
    p = predict(MODEL, hw, 1, L_IN, L_OUT, tp=tp, pp=pp, samples=L_OUT)
    row = r.requests.iloc[0]
    assert row.ttft_s == pytest.approx(p.ttft_s, rel=1e-12)
    # end-to-end = TTFT + the decode steps making tokens 2..O, with L .. L+O-2 tokens cached before
    from hwmodels.loader import load_hardware
    from workloads import Parallelism

    c = StepCoster(MODEL, load_hardware(hw), parallel=Parallelism(tp=tp, pp=pp))
    steps = [c.exact(((1, L_IN + g - 1),)).time_s for g in range(1, L_OUT)]
    assert row.e2e_s == pytest.approx(p.ttft_s + sum(steps), rel=1e-12)
    assert row.tpot_s == pytest.approx(sum(steps) / (L_OUT - 1), rel=1e-12)
    assert p.e2e_s == pytest.approx(p.ttft_s + sum(steps), rel=1e-12)


def test_one_request_e2e_equals_predict_e2e():
    r = simulate([Request(0, 0.0, L_IN, L_OUT)], TOY, MODEL, usage="offline")
    p = predict(MODEL, TOY, 1, L_IN, L_OUT, samples=L_OUT)
    assert r.requests.e2e_s[0] == pytest.approx(p.e2e_s, rel=1e-12)
    # through `vllm serve` the request first passes the API server (the default stack's frontend)
    from hwmodels.stack import load_stack

    srv = simulate([Request(0, 0.0, L_IN, L_OUT)], TOY, MODEL, usage="server")
    fe = load_stack().frontend_per_request_s
    assert fe > 0 and srv.requests.e2e_s[0] == pytest.approx(p.e2e_s + fe, rel=1e-9)


# ---- conservation and determinism -------------------------------------------------------------


def _stream(n=300, rate=40.0, seed=0):
    return Scenario(Poisson(rate), Uniform(10, 400), Uniform(1, 60), num_requests=n)


@pytest.mark.parametrize(
    "kw",
    [
        dict(scheduler="vllm"),
        dict(scheduler="vllm", preemption="swap", hw="h100-sxm"),  # the toy chip has no host link
        dict(scheduler="sarathi", chunk_size=128),
        dict(scheduler="static", max_num_seqs=16),
        dict(scheduler="disagg", prefill_replicas=1, decode_replicas=2, router="least-outstanding"),
        dict(scheduler="vllm", replicas=3, router="least-kv"),
    ],
    ids=["vllm", "swap", "sarathi", "static", "disagg", "3-replicas"],
)
def test_conservation(kw):
    scn = _stream()
    kw = dict(kw)
    r = simulate(
        scn,
        kw.pop("hw", TOY_SYS),
        MODEL,
        coster=FakeCoster(0.002, 0.00002),
        kv_capacity_tokens=2048,
        watermark=0.0,
        seed=3,
        stack="ideal",  # the engine alone: an API server in front would pace the arrivals
        **kw,
    )
    req = scn.to_frame(seed=3)
    df = r.requests
    s = r.summary
    assert s["requests_completed"] == len(req) and s["requests_rejected"] == 0
    assert df.request_id.tolist() == list(range(len(req)))  # each finished exactly once
    assert (df.output_tokens.to_numpy() == req.output_tokens.to_numpy()).all()
    assert s["tokens_generated"] == req.output_tokens.sum() == s["output_tokens"]
    assert s["kv_blocks_used_end"] == 0
    assert s["kv_blocks_peak"] <= s["kv_blocks_per_replica"] and s["kv_utilization_max"] <= 1.0
    assert (df.ttft_s > 0).all() and (df.e2e_s >= df.ttft_s).all() and (df.queue_s >= 0).all()
    if kw.get("scheduler") in ("vllm", "sarathi") and kw.get("replicas", 1) == 1:
        assert s["preemptions"] > 0  # the small cache did force preemptions


def test_same_seed_same_result_different_seed_different_arrivals():
    scn = _stream(200)
    kw = dict(coster=FakeCoster(0.002, 0.00002), kv_capacity_tokens=4096)
    a = simulate(scn, TOY, MODEL, seed=1, **kw)
    b = simulate(scn, TOY, MODEL, seed=1, **kw)
    c = simulate(scn, TOY, MODEL, seed=2, **kw)
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    pd.testing.assert_frame_equal(a.timeline, b.timeline, check_exact=True)
    volatile = ("sim_wall_s", "steps_per_s", "peak_rss_mb")
    assert {k: v for k, v in a.summary.items() if k not in volatile} == {
        k: v for k, v in b.summary.items() if k not in volatile
    }
    assert not np.array_equal(a.requests.arrival_s.to_numpy(), c.requests.arrival_s.to_numpy())


def test_real_coster_run_is_deterministic_and_uses_the_memo():
    scn = Scenario(Poisson(50.0), Uniform(16, 256), Uniform(2, 32), num_requests=60)
    a = simulate(scn, TOY, MODEL, seed=5)
    b = simulate(scn, TOY, MODEL, seed=5)
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    assert a.summary["requests_completed"] == 60 and a.summary["memo_hit_rate"] > 0
    assert 0 < a.summary["mfu"] < 1 and 0 < a.summary["mbu"] <= 1
    # 3.6 USD/h = 0.001 USD/s for the toy chip
    assert a.summary["usd_per_mtok_output"] == pytest.approx(
        0.001 * a.summary["duration_s"] / a.summary["output_tokens"] * 1e6
    )


# ---- saturation ------------------------------------------------------------------------------


def test_saturation():
    kw = dict(coster=FakeCoster(0.005, 0.0001), kv_capacity_tokens=200_000, max_num_seqs=32)
    lens = dict(input_tokens=100, output_tokens=20)
    offline = simulate(Scenario(AllAtOnce(), num_requests=400, **lens), TOY, MODEL, **kw)
    cap = offline.summary["request_throughput_rps"]
    below = simulate(Scenario(Poisson(0.5 * cap), num_requests=600, **lens), TOY, MODEL, **kw)
    above = simulate(Scenario(Poisson(2.0 * cap), num_requests=600, **lens), TOY, MODEL, **kw)
    assert below.summary["request_throughput_rps"] == pytest.approx(0.5 * cap, rel=0.1)
    q = below.requests.queue_s
    assert q.iloc[-150:].mean() < 5 * max(q.iloc[:150].mean(), 0.01)
    assert above.summary["request_throughput_rps"] == pytest.approx(cap, rel=0.15)
    q = above.requests.queue_s
    assert q.iloc[-100:].mean() > 5 * q.iloc[:100].mean()  # the queue grows over the run


# ---- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,flag",
    [
        (dict(slo_ttft_s=0), "--slo-ttft"),
        (dict(slo_tpot_s=-1.0), "--slo-tpot"),
        (dict(replicas=0), "--replicas"),
        (dict(scheduler="fifo"), "--scheduler"),
        (dict(router="random"), "--router"),
        (dict(max_num_seqs=0), "--max-num-seqs"),
        (dict(prefill_replicas=2), "--prefill-replicas"),
    ],
)
def test_bad_input_names_the_flag(kw, flag):
    with pytest.raises(SpecError) as e:
        simulate([Request(0, 0.0, 10, 2)], TOY, MODEL, **kw)
    assert flag in str(e.value)


def test_rate_must_be_positive():
    with pytest.raises(SpecError, match="rate"):
        Scenario(Poisson(0.0), 10, 2, num_requests=3)


def test_model_that_does_not_fit_is_infeasible():
    with pytest.raises(InfeasibleError, match="weights need"):
        simulate([Request(0, 0.0, 10, 2)], TOY, "llama-2-70b")


def test_model_that_does_not_fit_says_what_would_fit():
    # the same hints as predict (sim.predict.fit_hints), no offload (serve has none); a checkpoint stored in fp8
    # (DeepSeek-V3's quantization_config) runs in its own format with --quant fp8: not called lossy
    with pytest.raises(InfeasibleError) as e:
        simulate([Request(0, 0.0, 10, 2)], "hgx-h200-8", "deepseek-v3", tp=8)
    msg = str(e.value)
    assert "it would fit with" in msg and "--quant fp8" in msg and "the checkpoint's own format" in msg
    assert "lossy" not in msg and "--offload" not in msg
    with pytest.raises(InfeasibleError) as e:
        simulate([Request(0, 0.0, 10, 2)], "h100-sxm", "llama-3.1-70b")
    assert "--tp 2" in str(e.value) and "lossy" in str(e.value)


def test_request_larger_than_the_kv_cache_is_rejected_not_hung():
    reqs = [Request(0, 0.0, 100, 10), Request(1, 0.0, 5000, 10), Request(2, 0.01, 50, 5)]
    r = fake(reqs, kv_capacity_tokens=1024)
    s = r.summary
    assert s["requests_completed"] == 2 and s["requests_rejected"] == 1
    assert list(s["rejection_reasons"]) == ["larger than the KV cache"]
    assert r.rejected[0][0] == 1 and "blocks" in r.rejected[0][1]
    assert s["slo_attainment"] == pytest.approx(2 / 3)


# ---- outputs -----------------------------------------------------------------------------------


def test_out_dir_writes_streamed_csv_timeline_summary_and_trace(tmp_path):
    scn = Scenario(Poisson(30.0), Uniform(10, 200), Uniform(2, 20), num_requests=120)
    r = simulate(
        scn,
        TOY_SYS,
        MODEL,
        pp=2,
        coster=FakeCoster(0.002, 0.00002),
        kv_capacity_tokens=4096,
        out_dir=tmp_path,
        slo_ttft_s=0.05,
        slo_tpot_s=0.01,
    )
    for f in ("requests.csv", "timeline.csv", "summary.json", "trace.json"):
        assert (tmp_path / f).stat().st_size > 0
    df = pd.read_csv(tmp_path / "requests.csv")
    assert len(df) == 120 and {
        "arrival_s",
        "queue_s",
        "ttft_s",
        "tpot_s",
        "e2e_s",
        "input_tokens",
        "output_tokens",
        "preemptions",
        "replica",
    } <= set(df.columns)
    assert len(r.requests) == 120
    summ = json.loads((tmp_path / "summary.json").read_text())
    assert summ["requests_completed"] == 120
    trace = json.loads((tmp_path / "trace.json").read_text())
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert xs and {e["tid"] for e in xs} == {0, 1}  # one thread per pipeline stage
    begins = sum(e["ph"] == "b" for e in trace["traceEvents"])
    assert begins == sum(e["ph"] == "e" for e in trace["traceEvents"]) > 0
    tl = pd.read_csv(tmp_path / "timeline.csv")
    assert {"time_s", "replica", "batch_size", "tokens", "kv_utilization", "step_s"} <= set(tl.columns)
    assert r.to_frame().shape[0] == 1


def test_timeline_is_decimated_to_its_budget():
    scn = Scenario(Poisson(30.0), Uniform(10, 200), Uniform(50, 100), num_requests=100)
    r = simulate(
        scn, TOY, MODEL, coster=FakeCoster(0.002, 0.00002), kv_capacity_tokens=8192, timeline_points=64
    )
    assert len(r.timeline) < 64 <= r.summary["steps"]
    assert r.timeline.time_s.is_monotonic_increasing


def test_itl_distribution_matches_the_per_request_maxima():
    scn = Scenario(Poisson(30.0), Uniform(10, 200), Uniform(2, 40), num_requests=200)
    r = simulate(scn, TOY, MODEL, coster=FakeCoster(0.002, 0.00002), kv_capacity_tokens=8192)
    s = r.summary
    assert s["itl_max_s"] == pytest.approx(r.requests.max_itl_s.max())
    assert s["itl_p50_s"] <= s["itl_p99_s"] <= s["itl_max_s"]
    # TPOT is the mean ITL of each request: their token-weighted mean is the ITL mean
    df = r.requests[r.requests.output_tokens > 1]
    w = df.output_tokens - 1
    assert s["itl_mean_s"] == pytest.approx((df.tpot_s * w).sum() / w.sum(), rel=1e-9)
    assert not math.isnan(s["ttft_p99_s"])
