"""Custom sweep evaluators for the runner tests (imported by name: ``sweep_helpers:function``)."""

import os

import numpy as np
import pandas as pd


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["status"] = "ok"
    out["value"] = np.arange(len(frame), dtype=float) * 0 + out["batch"].astype(float) if "batch" in out else 1.0
    return out


def flaky(spec, frame):
    """Raises for batch == 8 (recorded per point), fine otherwise."""
    if (frame["batch"] == 8).any():
        good = frame[frame["batch"] != 8]
        bad = frame[frame["batch"] == 8].copy()
        bad["status"] = "error"
        bad["error"] = "ValueError: batch 8 is cursed"
        return pd.concat([_ok(good), bad])
    return _ok(frame)


def dying(spec, frame):
    """The worker process exits on the point with batch == 8 and 4 TB/s (simulates a crash)."""
    hit = (frame["batch"] == 8) & (frame["hw.memory.hbm.bandwidth"] == 4e12) & (frame["hw.cores"] == 100)
    if hit.any():
        os._exit(3)
    return _ok(frame)


def interrupted(spec, frame):
    """Ctrl-C in the middle of the run: after the first task."""
    flag = os.environ.get("LLMSIM_TEST_INTERRUPT_FILE")
    if flag and os.path.exists(flag):
        raise KeyboardInterrupt
    if flag:
        open(flag, "w").close()
    return _ok(frame)


def fake_serving(spec, frame):
    """The serving evaluator with a stand-in simulator (p99 latencies from the rate)."""
    from sim.sweep.serving import evaluate_serving

    class R:
        def __init__(self, summary):
            self.summary = summary

    def sim(scenario, system, model, **kw):
        rate = scenario.arrivals.rate_rps
        bw = system.chip.main_memory.bandwidth_bytes_per_s
        return R({"ttft_p99_s": rate / (bw / 1e12), "tpot_p99_s": 0.01, "ttft_p50_s": 0.1, "tpot_p50_s": 0.005,
                  "e2e_p99_s": 1.0, "goodput_rps": rate, "slo_attainment": 1.0, "request_throughput_rps": rate,
                  "output_throughput_tok_s": rate * 32, "energy_j_per_output_token": 0.5, "requests_completed": 100,
                  "requests_rejected": 0, "kv_utilization_mean": 0.3, "batch_size_mean": 4.0})

    return evaluate_serving(spec, frame, simulate=sim)
