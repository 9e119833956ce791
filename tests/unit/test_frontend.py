"""The server entry point's API-server process (stack ``runtime.frontend``, docs/stacks.md, Frontend):
a first-come-first-served CPU stage in front of the engine, `--usage server` only. Hand-checkable numbers."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from hwmodels.errors import SpecError
from hwmodels.stack import load_stack
from sim.config import ServingConfig
from sim.serving.run import Entered, through_frontend
from sim.serving.simulate import simulate
from workloads.scenario import Request, Scenario, arrival_process

TOY = str(Path(__file__).parents[1] / "data" / "toy-chip.yaml")

STACK_YAML = """version: 1
kind: stack
name: fe-stack
source: round numbers for tests
kernels: {attention_prefill: flash, attention_decode: paged, source: test}
runtime:
  step_overhead: 0 s
  per_request_overhead: 0 s
  overlap: false
  cuda_graphs: true
  eager_launch: 0 s
  FRONTEND
  source: test
scheduler: {chunked_prefill: true, max_num_batched_tokens: 2048, max_num_seqs: 64, source: test}
"""


def _stack(tmp_path, frontend="frontend: {per_request: 100 ms, source: test}") -> str:
    p = tmp_path / "fe-stack.yaml"
    p.write_text(STACK_YAML.replace("FRONTEND", frontend))
    return str(p)


def test_one_api_server_takes_requests_one_after_another():
    reqs = [Request(i, 0.0, 10, 2) for i in range(3)] + [Request(3, 1.0, 10, 2)]
    out = list(through_frontend(iter(reqs), 0.1))
    assert all(isinstance(e, Entered) for e in out)
    # three sent at once reach the engine 0.1 s apart; the fourth, sent after the server came free, 0.1 s after
    assert [round(e.arrival_s, 9) for e in out] == [0.1, 0.2, 0.3, 1.1]
    assert [e.sent_s for e in out] == [0.0, 0.0, 0.0, 1.0]
    assert [(e.id, e.input_tokens, e.output_tokens) for e in out] == [(r.id, 10, 2) for r in reqs]
    # two API servers (two entry replicas): two requests at a time
    two = list(through_frontend(iter(reqs[:3]), 0.1, servers=2))
    assert [round(e.arrival_s, 9) for e in two] == [0.1, 0.1, 0.2]


def test_server_runs_wait_for_the_api_server_offline_runs_do_not(tmp_path):
    st = _stack(tmp_path)
    (tmp_path / "bare").mkdir()
    none = _stack(tmp_path / "bare", frontend="")  # the same stack without a frontend
    sc = Scenario(arrival_process(math.inf), 16, 2, num_requests=20)

    def run(stack, usage):
        return simulate(sc, TOY, "qwen2.5-0.5b", ServingConfig(stack=stack, usage=usage, seed=0)).summary

    srv, off, bare = run(st, "server"), run(st, "offline"), run(none, "server")
    # 20 requests at 100 ms each: the last reaches the engine at 2.0 s, so the run lasts at least that long
    assert srv["duration_s"] >= 2.0 > bare["duration_s"]
    assert srv["request_throughput_rps"] <= 20 / 2.0
    # the clock starts when the clients send (t = 0): the first request's TTFT includes its 100 ms
    assert srv["ttft_p50_s"] >= 1.0
    # offline (the LLM class) has no API server: the same as the stack without one
    assert off["duration_s"] == pytest.approx(run(none, "offline")["duration_s"])


def test_frontend_needs_its_source(tmp_path):
    with pytest.raises(SpecError) as e:
        load_stack(_stack(tmp_path, frontend="frontend: {per_request: 100 ms}"))
    assert "fe-stack.yaml:12:3: runtime.frontend: missing required key 'source'" in str(e.value)
    with pytest.raises(SpecError, match="runtime.frontend.per_request"):
        load_stack(_stack(tmp_path, frontend="frontend: {per_request: 100, source: test}"))


# vLLM blog 2024-09-05 ('vLLM v0.6.0'), profile of v0.5.3's server (Llama 3 8B, 1 x H100, 500 ShareGPT prompts
# at QPS inf): HTTP API server 33 %, GPU execution 38 % of the time
API_SHARE, GPU_SHARE = 0.33, 0.38


def test_vllm_frontend_is_the_blog_share_of_gpu_time():
    """frontend.per_request = (33/38) x GPU time of the blog's run / its 500 requests, the GPU time priced
    with `vllm-0.5`'s kernels and no CPU time (as tests/unit/test_stack_versions.py derives the scheduling
    share); the catalog value is that figure rounded to 1 ms. Re-derive when the kernel model moves it
    by more than 10 % (docs/stacks.md, Frontend)."""
    st = load_stack("vllm-0.5")
    sc = Scenario(arrival_process(math.inf), 202, 179, num_requests=500)
    tl = simulate(sc, "h100-sxm", "llama-3.1-8b", ServingConfig(
        stack=dataclasses.replace(st, per_request_overhead_s=0.0), seed=0), timeline_points=10**6).timeline
    derived = API_SHARE / GPU_SHARE * tl["step_s"].sum() / 500
    got = load_stack("vllm").frontend_per_request_s
    assert got == pytest.approx(derived, rel=0.10), (
        f"the kernel model moved the blog run's GPU time: re-derive runtime.frontend.per_request in "
        f"hwmodels/catalog/stacks/vllm.yaml as {derived * 1e3:.1f} ms (docs/stacks.md, Frontend)")
    assert "frontend" in load_stack("vllm").sources
    # no public per-request figure for the other engines' API servers: none is priced
    assert load_stack("sglang").frontend_per_request_s == 0 and load_stack("ideal").frontend_per_request_s == 0


def test_requests_all_at_once_are_an_offline_run_whatever_their_container():
    """The entry point follows the run's own rule (every request at 0: offline, the LLM class, no API
    server) for a list or a generator of Requests, as for a Scenario at rate inf; one later arrival makes
    it a server run, which passes the API server."""
    reqs = [Request(i, 0.0, 64, 8) for i in range(6)]
    for given in (reqs, iter(reqs), (r for r in reqs)):
        s = simulate(given, TOY, "gpt-2").summary
        assert (s["usage"], s["requests_completed"]) == ("offline", 6)
        assert s.get("frontend_per_request_s", 0.0) == 0.0
    late = reqs[:5] + [Request(5, 0.5, 64, 8)]
    s = simulate(late, TOY, "gpt-2").summary
    assert s["usage"] == "server" and s["frontend_per_request_s"] > 0
