"""Speed of the vectorized cost path (sim/vector.py) against the scalar one, in the same run.

An evaluation is one (design point x op) pair: one op of the graph priced at one hardware point.
Both paths price the decode step of llama-3.1-8b (batch 32, context 2048) on h100-sxm with four
parameters varied per point (HBM bandwidth, bf16 peak, L2 capacity, cores):

- scalar: one CostModel per point (its System built by HwPoints.system_at), every op priced;
- vector: evaluate_graph over all points at once (chunks of 32768 points).

Run: .venv/bin/python benchmarks/bench_vector.py [points]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from hwmodels import load_system
from sim.cost import CostModel
from sim.estimate import estimate, resident_bytes
from sim.vector import HwPoints, evaluate_graph
from workloads import Batch, build_graph


def main(points: int = 1_000_000) -> None:
    import os

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other processes slow the wall-clock rates)")
    system = load_system("h100-sxm")
    graph = build_graph("llama-3.1-8b", Batch.decode(32, 2048), "bf16")
    res = resident_bytes(graph)
    rng = np.random.default_rng(0)
    hw = HwPoints(system, {
        "chip.memory.hbm.bandwidth": rng.uniform(1e12, 8e12, points),
        "chip.compute.matrix.peak.bf16": rng.uniform(2e14, 2e15, points),
        "chip.memory.l2.capacity": rng.uniform(2e7, 2e8, points),
        "chip.cores": rng.integers(64, 257, points),
    })
    ops = len(graph.ops)
    n_scalar = 2000
    t, c = time.perf_counter(), time.process_time()
    for i in range(n_scalar):
        s = hw.system_at(i)
        estimate(graph, s, model=CostModel(s, resident_bytes=res))
    dt_s, cpu_s = time.perf_counter() - t, time.process_time() - c
    evaluate_graph(graph, hw.slice(0, 1000), resident_bytes=res)  # warm-up
    t, c = time.perf_counter(), time.process_time()
    ga = evaluate_graph(graph, hw, resident_bytes=res)
    dt_v, cpu_v = time.perf_counter() - t, time.process_time() - c
    assert ga.time_s.shape == (points,)
    s_rate = n_scalar * ops / dt_s
    v_rate = points * ops / dt_v
    print(f"graph: llama-3.1-8b decode step, {ops} ops; {points:,} design points, 4 parameters varied")
    print(f"scalar path (CostModel per point)   : {s_rate:12,.0f} evaluations/s  ({n_scalar:,} points in {dt_s:.2f} s; "
          f"{n_scalar * ops / cpu_s:,.0f} per CPU-second)")
    print(f"vector path (sim.vector, 1 process) : {v_rate:12,.0f} evaluations/s  ({points:,} points in {dt_v:.2f} s; "
          f"{points * ops / cpu_v:,.0f} per CPU-second)")
    print(f"speed-up: {v_rate / s_rate:.0f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
