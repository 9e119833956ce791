"""keep_requests=False (``llmsim serve`` without --out): the same summary, no per-request rows kept."""

import pytest

from sim.serving import simulate
from sim.serving.metrics import RequestLog
from workloads.trace import load_trace


def test_no_rows_kept_same_summary():
    kept = simulate(load_trace("azure-conv-2023", limit=60), "h100-sxm", "llama-3.1-8b")
    lean = simulate(load_trace("azure-conv-2023", limit=60), "h100-sxm", "llama-3.1-8b", keep_requests=False)
    for k, v in kept.summary.items():
        if k in ("sim_wall_s", "steps_per_s", "peak_rss_mb"):
            continue
        assert lean.summary[k] == pytest.approx(v, nan_ok=True) if isinstance(v, float) else lean.summary[k] == v, k
    assert len(kept.requests) == 60
    with pytest.raises(ValueError, match="keep_requests"):
        lean.requests  # noqa: B018


def test_log_keeps_only_latency_columns():
    class S:
        req_id, arrival_s, first_sched_s, first_token_s, output_tokens, itl_max = 1, 0.0, 0.1, 0.2, 3, 0.05
        input_tokens, preemptions, prefix_hit_tokens, replica = 10, 0, 0, 0

    log = RequestLog(chunk=4, keep=False)
    for _ in range(10):
        log.add(S(), 1.0)
    log.flush()
    assert log._tables == [] and len(log.metric("ttft_s")) == 10
