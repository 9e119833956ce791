"""The server entry point's API-server process (stack ``runtime.frontend``, docs/stacks.md, Frontend):
a first-come-first-served CPU stage in front of the engine, `--usage server` only. Hand-checkable numbers."""

from __future__ import annotations

import json
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


# vllm-project/vllm PR #12287 (2025-01-21), 'Before' run: VLLM_USE_V1=1 vllm serve Llama-3.2-1B-Instruct on an
# A100 (--max-num-batched-tokens 8192), ShareGPT, 6000 prompts, --ignore-eos, --max-concurrency 400, rate inf
PR_REQUESTS, PR_DURATION_S = 6000, 94.31
PR_INPUT_TOKENS, PR_OUTPUT_TOKENS = 1_350_511, 1_211_959


def test_vllm_frontend_is_the_v1_api_server_bound_run(tmp_path):
    """frontend.per_request = the median of three V1 runs' duration / requests (13.6 ms), valid only while they
    are bound by the API server; the one with its tokens and GPU known (PR #12287: 94.31 s / 6000) is checked: the engine alone, priced by llmsim
    as the LLM class would run the same work (6000 x 225/202 tokens at once, 400 at a time, a100-sxm), must
    finish well before the measured 94.31 s (57.7 s today). Re-derive when the kernel model moves it past
    75 % of the measured time (docs/stacks.md, Frontend)."""
    from workloads.techniques import DRAFT_CONFIGS  # meta-llama/Llama-3.2-1B config.json

    model = tmp_path / "llama-3.2-1b.json"
    model.write_text(json.dumps(DRAFT_CONFIGS["llama-3.2-1b"]))
    per_request = (round(PR_INPUT_TOKENS / PR_REQUESTS), round(PR_OUTPUT_TOKENS / PR_REQUESTS))
    assert per_request == (225, 202)
    sc = Scenario(arrival_process(math.inf), *per_request, num_requests=PR_REQUESTS)
    engine = simulate(sc, "a100-sxm", str(model), ServingConfig(
        usage="offline", max_num_seqs=400, max_num_batched_tokens=8192, seed=0)).summary
    assert engine["frontend_per_request_s"] == 0.0  # the LLM class: no API server
    assert engine["duration_s"] < 0.75 * PR_DURATION_S, (
        f"the engine alone now takes {engine['duration_s']:.1f} s of the run's {PR_DURATION_S} s: PR #12287's run "
        f"no longer shows the API server's cost; re-derive runtime.frontend in hwmodels/catalog/stacks/vllm.yaml")
    got = load_stack("vllm").frontend_per_request_s
    # the median of the three V1 readings of the harness: PR #12287 94.31 s / 6000, PR #15137 81.47 s / 6000,
    # PR #17546 (DP=2 before) 130.74 s / 10,000: 15.7, 13.6 and 13.1 ms
    readings = sorted([PR_DURATION_S / PR_REQUESTS, 81.47 / 6000, 130.74 / 10_000])
    assert got == pytest.approx(readings[1], abs=0.05e-3)  # 13.58 ms -> 13.6 ms
    assert "frontend" in load_stack("vllm").sources
    # no public per-request figure for the other engines' API servers: none is priced; the V0 stack models
    # the LLM class (benchmark_throughput.py) and has none either
    for name in ("sglang", "ideal", "tensorrt-llm", "vllm-0.5"):
        assert load_stack(name).frontend_per_request_s == 0, name


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
