"""Speed of the engine itself (not a test). Prints the figures quoted in docs/cost-model.md.

- one decode-step estimate of an 80-layer model (llama-3.1-70b, tp=4, batch 64) after start-up,
  with a fresh cost model (no memo hits) and with a warm one;
- a full `predict` with 2,000 output tokens;
- `ops` on 10,000 kernel rows;
- baseline in the same run: the plain roofline (tiling off) for the same decode step.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from hwmodels import load_system
from sim.cost import CostModel, CostOptions
from sim.estimate import estimate
from sim.ops import predict_ops
from sim.predict import predict
from workloads import Batch, Parallelism, build_graph


def timeit(fn, n):
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main():
    sys8 = load_system("hgx-h100-8")
    par = Parallelism(tp=4)
    ctx = iter(range(1000, 10_000_000))

    def fresh_step(opts=CostOptions()):
        g = build_graph("llama-3.1-70b", Batch.decode(64, next(ctx)), "bf16", par)
        return estimate(g, sys8, opts, model=CostModel(sys8, opts, resident_bytes=4e10, tp=4))

    cm = CostModel(sys8, CostOptions(), resident_bytes=4e10, tp=4)
    g = build_graph("llama-3.1-70b", Batch.decode(64, 2048), "bf16", par)
    warm = timeit(lambda: estimate(g, sys8, model=cm), 200)
    cold = timeit(fresh_step, 50)
    roof = timeit(lambda: fresh_step(CostOptions(tiling=False)), 50)
    print(f"decode step, 80 layers, new graph + fresh cost model : {cold * 1e3:8.3f} ms")
    print(f"decode step, plain roofline baseline (same run)       : {roof * 1e3:8.3f} ms  (tiling costs {cold / roof:.2f}x)")
    print(f"decode step, memoized (same shape again)              : {warm * 1e3:8.3f} ms")
    t = time.perf_counter()
    predict("llama-3.1-70b", "hgx-h100-8", 64, 1024, 2000, tp=4)
    first = time.perf_counter() - t
    full = timeit(lambda: predict("llama-3.1-70b", "hgx-h100-8", 64, 1024, 2000, tp=4), 5)
    print(f"llmsim predict, 2000 output tokens (first / repeat)  : {first * 1e3:8.1f} ms / {full * 1e3:.1f} ms")
    rng = np.random.default_rng(0)
    n = 10_000
    df = pd.DataFrame({"hardware": rng.choice(["h100-sxm", "a100-sxm", "mi300x"], n), "op": "gemm", "dtype": "bf16",
                       "m": rng.integers(1, 8192, n), "n": rng.choice([4096, 8192, 14336, 28672], n),
                       "k": rng.choice([4096, 8192], n)})
    t = time.perf_counter()
    predict_ops(df)
    print(f"llmsim ops on 10,000 rows                             : {time.perf_counter() - t:8.2f} s")


if __name__ == "__main__":
    main()
