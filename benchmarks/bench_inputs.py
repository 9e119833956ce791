"""Speed of reading inputs (moved here from timed tests, which fail on a loaded shared machine).

- the whole Azure conversation trace (19,366 rows) parsed, garbage collector off (target < 0.5 s);
- 1,000,000 requests of a Gamma/Uniform/Zipf scenario generated (target < 2 s).
"""

from __future__ import annotations

import gc
import time

from workloads.scenario import Gamma, Scenario, Uniform, Zipf
from workloads.trace import load_trace


def main() -> None:
    load_trace("azure-conv-2023")  # warm imports
    gc.collect()
    gc.disable()
    try:
        t = time.perf_counter()
        load_trace("azure-conv-2023")
        trace_s = time.perf_counter() - t
    finally:
        gc.enable()
    s = Scenario(Gamma(50.0, 2.0), Uniform(16, 8192), Zipf(1.2, 1, 4096), num_requests=1_000_000)
    s.to_frame(0)
    t = time.perf_counter()
    s.to_frame(1)
    gen_s = time.perf_counter() - t
    print(f"azure-conv-2023 trace parse      : {trace_s * 1e3:8.1f} ms (target < 500 ms)")
    print(f"1,000,000 scenario requests      : {gen_s:8.2f} s  (target < 2 s)")


if __name__ == "__main__":
    main()
