"""Run every benchmark of the simulator's own speed (`make bench`); not part of `make test`."""

import runpy
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
for script in sorted(HERE.glob("bench_*.py")):
    print(f"\n## {script.name}", flush=True)
    t = time.perf_counter()
    sys.argv = [str(script)]
    runpy.run_path(str(script), run_name="__main__")
    print(f"({script.name}: {time.perf_counter() - t:.1f} s)", flush=True)
