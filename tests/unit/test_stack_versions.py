"""Engine-version stacks (docs/stacks.md, vllm-0.5): their derived values and the rows that use them."""

from __future__ import annotations

import dataclasses
import math

import pytest

from hwmodels.stack import load_stack
from sim.config import ServingConfig
from sim.serving.simulate import simulate
from workloads.scenario import Scenario, arrival_process

# vLLM blog 2024-09-05 ('vLLM v0.6.0: 2.7x Throughput Improvement'), profile of v0.5.3, Llama 3 8B, 1 x H100:
# scheduling (incl. gathering outputs and preparing inputs) 29 %, GPU execution 38 % of the engine's time
SCHED_SHARE, GPU_SHARE = 0.29, 0.38


def _blog_run(stack):
    """The blog's run as llmsim prices it: 500 ShareGPT prompts (averages 202 in / 179 out) at once."""
    sc = Scenario(arrival_process(math.inf), 202, 179, num_requests=500)
    return simulate(sc, "h100-sxm", "llama-3.1-8b", ServingConfig(stack=stack, seed=0),
                    timeline_points=10**6).timeline


def test_vllm05_per_request_overhead_is_the_blog_share_of_gpu_time():
    """per_request_overhead = (29/38) x GPU time / sum of running requests over the blog's run, priced
    with the profile's kernels and no CPU time; the catalog value is that figure rounded to 1 us. When the
    kernel model moves the GPU time by more than 10 %, re-derive (docs/stacks.md, vllm-0.5)."""
    st = load_stack("vllm-0.5")
    assert st.step_overhead_s == 0 and not st.overlap and st.cuda_graph_max_batch == 256
    tl = _blog_run(dataclasses.replace(st, per_request_overhead_s=0.0))
    derived = SCHED_SHARE / GPU_SHARE * tl["step_s"].sum() / tl["batch_size"].sum()
    assert st.per_request_overhead_s == pytest.approx(derived, rel=0.10), (
        f"the kernel model moved the blog run's GPU time: re-derive runtime.per_request_overhead in "
        f"hwmodels/catalog/stacks/vllm-0.5.yaml as {derived * 1e6:.0f} us (docs/stacks.md, vllm-0.5)")
    # and with it the CPU share of the run is the blog's (the run's steps do not change)
    tl2 = _blog_run(st)
    cpu = (tl2["batch_size"] * st.per_request_overhead_s).sum()
    assert cpu / tl2["step_s"].sum() == pytest.approx(SCHED_SHARE / (SCHED_SHARE + GPU_SHARE), rel=0.10)


def test_vllm05_scheduler_is_v0_whole_prompt():
    st = load_stack("vllm-0.5")
    assert (st.chunked_prefill, st.max_num_batched_tokens, st.max_num_seqs) == (False, 8192, 256)
    # FA2's standard (non-paged) forward: 128 x 64 tiles at head_dim 128 on sm80/sm90, 128 x 32 (non-causal) and
    # 64 x 64 (causal) on sm89; non-persistent, the softmax taking turns with the MMAs (not FA3's tiles)
    pk = st.prefill_kernel
    assert pk.tile(128) == (128, 64) and not pk.persistent and pk.fill_blocks == 0 and pk.softmax_hidden == 0
    assert pk.on("ada").tile(128) == (128, 32) and pk.on("ada").tile(128, causal=True) == (64, 64)
    assert pk.on("hopper").tile(256) == (64, 64) and pk.tile(256) == (128, 64)
    # a V0 decode step: kernels + 256 x per-request CPU time, not overlapped
    assert st.step_time(0.01, 500, 256, decode=True) == pytest.approx(0.01 + 256 * st.per_request_overhead_s)


def test_own_column_prices_the_v05_row_with_its_engine():
    from sim.validation.published import load_serving, score_serving

    df = load_serving()
    row = df[(df["model"] == "llama-3.1-8b") & df["source"].str.contains("PR #7117")]
    assert list(row["stack"]) == ["vllm-0.5"]
    s = score_serving(row)
    assert list(s["stack_used"]) == ["vllm-0.5"]
    # the V0 CPU time makes the run slower than under the current engine's profile
    assert float(s["predicted"].iloc[0]) < float(score_serving(row, stack="vllm")["predicted"].iloc[0])


def test_rows_that_ran_v0_carry_v0_scheduler_limits():
    """PR #17530's MI300X runs (fp8 KV cache on ROCm, before PR #17870) fell back to V0: whole-prompt steps,
    256 sequences, max(max_model_len 32768, 2048) tokens; the H100 row is V0 (0.5.3) by version, the Oracle
    rows by date."""
    from sim.validation.published import load_serving

    df = load_serving()
    v0 = df[df["model"].eq("qwen3-30b-a3b") | df["source"].str.contains("PR #7117")]
    assert len(v0) == 4 and set(v0["scheduler"]) == {"vllm"} and set(v0["max_num_seqs"]) == {256}
    # Oracle's 2024-10 MI300X runs predate the V1 engine (vLLM 0.7.0, 2025-01): V0's 256 sequences
    assert set(df[df["source"].str.contains("blogs.oracle.com")]["max_num_seqs"]) == {256}
    # the V1 rows leave the scheduler to the stack (chunked prefill); the offline ones carry their run's limits, the
    # server ones (vllm serve with no flags) take the stack's defaults for the server on their chip
    v1 = df[df["engine"].str.contains("V1")]
    assert len(v1) >= 21 and set(v1["scheduler"]) == {""}
    assert v1[v1["usage"] == "offline"]["max_num_seqs"].notna().all()
    assert v1[v1["usage"] == "server"]["max_num_seqs"].isna().all()
    q = df[df["model"] == "qwen3-30b-a3b"]
    assert set(q["max_num_batched_tokens"]) == {32768} and all("PR #17870" in n for n in q["note"])


def test_vllm_scheduler_defaults_follow_the_entry_point_and_the_device():
    """vLLM's EngineArgs.get_batch_defaults (0.9-0.10): >= 70 GiB and not an A100: server 8192 tokens / 1024
    sequences, LLM class 16384 / 1024; otherwise server 2048 / 256, LLM class 8192 / 256."""
    from hwmodels.loader import load_hardware

    st = load_stack("vllm")
    chip = {n: getattr(load_hardware(n), "chip", load_hardware(n)) for n in ("h100-sxm", "a100-sxm", "l40s", "mi300x")}
    for n in ("h100-sxm", "mi300x"):
        assert st.scheduler_limits("server", chip[n]) == (8192, 1024)
        assert st.scheduler_limits("offline", chip[n]) == (16384, 1024)
    for n in ("a100-sxm", "l40s"):  # the A100 by name (80 GB), the L40S by memory (48 GB)
        assert st.scheduler_limits("server", chip[n]) == (2048, 256)
        assert st.scheduler_limits("offline", chip[n]) == (8192, 256)
    # a stack without the sections: the server's limits everywhere
    v05 = load_stack("vllm-0.5")
    assert v05.scheduler_limits("offline", chip["a100-sxm"]) == (8192, 256) == v05.scheduler_limits("server")


def test_serving_takes_the_offline_limits_when_every_request_arrives_at_once():
    """`llmsim serve --rate inf` is vLLM's offline entry point (benchmark_throughput: the LLM class); a finite
    rate is the server's; --usage overrides either; a flag given wins over both."""
    def sched(rate, **kw):
        sc = Scenario(arrival_process(rate), 64, 2, num_requests=4)
        res = simulate(sc, "a100-sxm", "llama-3.1-8b", ServingConfig(seed=0, **kw))
        s = res.summary  # the JSON names the entry point and the limits that ran
        assert (s["max_num_seqs"], s["max_num_batched_tokens"]) == (res.config["scheduler"]["max_num_seqs"],
                                                                    res.config["scheduler"]["max_num_batched_tokens"])
        assert s["usage"] == kw.get("usage", "offline" if math.isinf(rate) else "server")
        return res.config["scheduler"]

    off, srv = sched(math.inf), sched(10.0)
    assert (off["max_num_seqs"], off["max_num_batched_tokens"]) == (256, 8192)
    assert (srv["max_num_seqs"], srv["max_num_batched_tokens"]) == (256, 2048)
    assert sched(math.inf, usage="server")["max_num_batched_tokens"] == 2048
    assert sched(10.0, usage="offline", max_num_seqs=7)["max_num_seqs"] == 7


def test_serving_rows_name_their_entry_point(tmp_path):
    """serving.csv's usage column: offline (benchmark_throughput, the LLM class) or server (vllm bench serve against
    vllm serve); a bad value names the file, the row and the field."""
    from hwmodels.errors import SpecError
    from sim.validation.published import SERVING, load_serving

    df = load_serving()
    assert set(df["usage"]) == {"offline", "server"}
    assert set(df[df["source"].str.contains("gpustack")]["usage"]) == {"server"}
    text = open(SERVING).read().splitlines()
    bad = tmp_path / "serving.csv"
    bad.write_text("\n".join([text[0], text[1].rsplit(",", 1)[0] + ",online"]) + "\n")
    with pytest.raises(SpecError, match=r"row 2, field usage: expected server, offline or empty"):
        load_serving(str(bad))
