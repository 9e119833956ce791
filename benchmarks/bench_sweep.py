"""Speed of sweeps end to end (not a test). Prints the figures quoted in docs/sweeps.md.

- static evaluator, one decode step (examples/sweep-million.yaml, Latin hypercube over four H100
  parameters): N points in this process and on a local pool of 2 workers; the evaluation alone
  and the whole run (generation, ids, Parquet writing and compaction included);
- static evaluator, whole requests (examples/sweep-hbm-vs-sram.yaml: prefill + 33 decode contexts
  per point, area/power models and constraints): points per second;
- serving evaluator (examples/sweep-serving.yaml: 12 simulations of 300 requests): inline vs pool.

Run: .venv/bin/python benchmarks/bench_sweep.py [points]   (default 1,000,000)
Timings are wall-clock; CPU time of this process is printed beside them (the workers' is not).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(spec, workers, label, **kw):
    from sim.sweep import run_sweep

    out = Path(tempfile.mkdtemp(prefix="bench-sweep-")) / "r.parquet"
    c0 = time.process_time()
    t0 = time.perf_counter()
    r = run_sweep(spec, out, workers=workers, progress=False, **kw)
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    shutil.rmtree(out.parent, ignore_errors=True)
    print(f"{label:<52} {r.ran:>9,} points  evaluation {r.wall_s:7.2f} s ({r.ran / r.wall_s:>9,.0f}/s)  "
          f"whole run {total:6.2f} s ({r.ran / total:>9,.0f}/s)  cpu here {cpu:6.2f} s  [{r.backend}]")
    assert r.errors == 0, r.table[r.table["status"] == "error"]["error"].iloc[0]
    return r


def main(points: int = 1_000_000) -> None:
    import yaml

    from sim.sweep import spec_from_dict

    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    d = yaml.safe_load((ROOT / "examples" / "sweep-million.yaml").read_text())
    d["sampling"]["samples"] = points
    spec = spec_from_dict(d, base_dir=ROOT / "examples", file="sweep-million.yaml")
    run(spec, 1, "static decode step, 1 process")
    run(spec, 2, "static decode step, local pool of 2")
    from sim.sweep import load_spec

    run(load_spec(ROOT / "examples" / "sweep-hbm-vs-sram.yaml"), 1, "static whole requests + area/power, 1 process")
    serving = load_spec(ROOT / "examples" / "sweep-serving.yaml")
    run(serving, 1, "serving simulations (300 requests each), 1 process")
    run(serving, 2, "serving simulations (300 requests each), pool of 2")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
