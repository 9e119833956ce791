"""Speed of building operator graphs (not a test): microseconds per build_graph call.

Run: .venv/bin/python benchmarks/bench_graph.py
Uncached builds clear the graph cache before every call; cached ones hit functools.lru_cache.
"""

from __future__ import annotations

import time

from workloads import Batch, Parallelism, build_graph, load_model
from workloads.graph import _attn_stats, _build_cached

CASES = [
    ("llama-3.1-70b decode, batch 64, ctx 2048, tp=4", "llama-3.1-70b", Batch.decode(64, 2048), Parallelism(tp=4)),
    ("llama-3.1-70b prefill, batch 8 x 2048", "llama-3.1-70b", Batch.prefill(8, 2048), Parallelism(tp=4)),
    ("llama-3.1-70b mixed, 4 prefill + 60 decode", "llama-3.1-70b",
     Batch.mixed(prefill=[512] * 4, decode=list(range(1000, 1060))), Parallelism(tp=4)),
    ("deepseek-v3 decode, batch 256, tp=8 ep=8", "deepseek-v3", Batch.decode(256, 4096), Parallelism(tp=8, ep=8)),
]


def _time(fn, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def main() -> None:
    print(f"{'case':<48}{'uncached us':>13}{'cached us':>11}{'ops':>5}")
    for label, name, batch, par in CASES:
        spec = load_model(name)

        def uncached(spec=spec, batch=batch, par=par):
            _build_cached.cache_clear()
            _attn_stats.cache_clear()
            build_graph(spec, batch, "bf16", par)

        def cached(spec=spec, batch=batch, par=par):
            build_graph(spec, batch, "bf16", par)

        u = _time(uncached, 200)
        c = _time(cached, 2000)
        ops = len(build_graph(spec, batch, "bf16", par).ops)
        print(f"{label:<48}{u * 1e6:>13.0f}{c * 1e6:>11.1f}{ops:>5}")


if __name__ == "__main__":
    main()
