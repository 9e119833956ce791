"""Speed and memory of the serving simulator itself (not part of `make test`).

Cases (each in a fresh process, so peak RSS is the case's own):

- ``conv10k``: the first 10,000 requests of the Azure LLM inference trace 2023 (conversation),
  replayed at their recorded times on one replica of Llama-3.1-8B on one H100 SXM (vLLM
  scheduler). Target: under 20 s of wall time on a 2-core machine.
- ``sarathi10k``: the same with Sarathi-Serve chunked prefill (512-token budget).
- ``offline100k`` / ``offline1m``: 100,000 and 1,000,000 synthetic requests (prompt 64..512,
  output 8..64 tokens, uniform), all at t = 0 (offline maximum throughput), one replica, rows
  streamed to CSV. Memory must not grow with the request count beyond the 20-byte float32
  latency columns kept for exact percentiles.
- ``conv30k`` / ``conv100k`` / ``conv1m``: the Azure conversation trace replayed in a loop at its
  recorded rate (30,000 / 100,000 / 1,000,000 requests), one replica, no per-request output kept
  (``keep_requests=False``, as ``llmsim serve`` without ``--out``): peak RSS must stay flat in the
  number of requests (target: 1,000,000 requests in a few minutes of CPU at under 300 MB).

Usage: ``python benchmarks/bench_serving.py [case ...]`` (default: conv10k sarathi10k offline100k);
prints one JSON line per case with wall time, steps, steps/s, memo hit rate and peak RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

CASES = ("conv10k", "sarathi10k", "offline100k", "offline1m", "conv30k", "conv100k", "conv1m")


def run_case(name: str) -> dict:
    from sim.serving import simulate
    from workloads.scenario import AllAtOnce, Scenario, Uniform
    from workloads.trace import load_trace

    kw = {}
    if name in ("conv10k", "sarathi10k"):
        stream = load_trace("azure-conv-2023", limit=10_000)
        if name == "sarathi10k":
            kw = {"scheduler": "sarathi", "chunk_size": 512}
    elif name.startswith("conv"):
        n = {"conv30k": 30_000, "conv100k": 100_000, "conv1m": 1_000_000}[name]
        stream = load_trace("azure-conv-2023").scenario(loop=True, num_requests=n)
        kw = {"keep_requests": False}
    else:
        n = 100_000 if name == "offline100k" else 1_000_000
        stream = Scenario(AllAtOnce(), Uniform(64, 512), Uniform(8, 64), num_requests=n)
        kw = {"out_dir": tempfile.mkdtemp(prefix="llmsim-bench-"), "trace": False}
    rss_trail = []
    if name.startswith("offline") or name in ("conv30k", "conv100k", "conv1m"):
        from sim.serving.metrics import RequestLog

        flush = RequestLog.flush

        def flush_and_sample(self):  # current RSS each time a 65,536-row chunk is written
            flush(self)
            rss_trail.append((self.completed, round(_rss_mb(), 1)))

        RequestLog.flush = flush_and_sample
    t0 = time.perf_counter()
    c0 = time.process_time()
    res = simulate(stream, "h100-sxm", "llama-3.1-8b", **kw)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    s = res.summary
    return {
        "case": name,
        "requests": s["requests_completed"],
        "rejected": s["requests_rejected"],
        "simulated_s": round(s["duration_s"], 1),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "steps": s["steps"],
        "steps_per_s": round(s["steps"] / wall),
        "requests_per_wall_s": round(s["requests_completed"] / wall),
        "memo_hit_rate": round(s["memo_hit_rate"], 4),
        "peak_rss_mb": round(s["peak_rss_mb"], 1),
        "ttft_p50_s": s["ttft_p50_s"],
        "tpot_p50_s": s["tpot_p50_s"],
        "output_throughput_tok_s": round(s["output_throughput_tok_s"]),
        "batch_size_mean": s["batch_size_mean"],
        "graph_builds": s["graph_builds"],
        "rss_mb_by_completed": rss_trail[1::2],
    }


def _rss_mb() -> float:
    """Resident set size now (Linux /proc), in MB."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--one":
        print(json.dumps(run_case(argv[1])))
        return 0
    names = argv or ["conv10k", "sarathi10k", "offline100k"]
    for n in names:
        if n not in CASES:
            print(f"unknown case {n}; known: {', '.join(CASES)}", file=sys.stderr)
            return 2
    for n in names:
        out = subprocess.run([sys.executable, __file__, "--one", n], capture_output=True, text=True)
        sys.stdout.write(out.stdout or out.stderr)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
