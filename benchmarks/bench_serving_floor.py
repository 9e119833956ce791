"""The floor of the serving simulator's CPU per step: the same run as bench_targets.py's serving figure (Azure
conversation trace, Llama-3.1-8B, one H100) with step pricing replaced by a dict lookup per (tokens, requests)
class (the first step of a class priced by the real coster), so that what remains is the simulation itself:
SimPy, the scheduler, the replica's accounting and the metrics. Printed in bare-SimPy-timeout events per step,
beside the real run's, measured in the same process. The stand-in changes step times, so the runs' step counts
differ a little; the figure is the per-step CPU. Not part of `make test`.

Usage: ``python benchmarks/bench_serving_floor.py [--requests N]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    a = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import numpy as np

    import sim.step as S
    from benchmarks.bench_targets import simpy_event_cpu
    from sim.serving import simulate
    from workloads.trace import load_trace

    ev = simpy_event_cpu()

    def run():
        t = time.process_time()
        res = simulate(load_trace("azure-conv-2023", limit=a.requests), "h100-sxm", "llama-3.1-8b")
        return (time.process_time() - t) / res.summary["steps"], res.summary["steps"]

    real, steps = run()
    classes: dict = {}
    priced, priced_runs = S.StepCoster.step, S.StepCoster.decode_steps

    def step(self, seqs):  # one real price per (tokens, requests) class, capped so the classes stay few
        key = (min(sum(n for n, _ in seqs), 64), min(len(seqs), 8))
        got = classes.get(key)
        if got is None:
            got = classes[key] = priced(self, seqs)
        return got

    def decode_steps(self, contexts, steps, stays=None, ahead=()):
        c = step(self, tuple((1, x) for x in contexts))
        return tuple(np.full(steps, v) for v in (c.time_s, c.energy_j, c.flops, c.bytes_main))

    S.StepCoster.step, S.StepCoster.decode_steps = step, decode_steps
    try:
        floor, floor_steps = run()
    finally:
        S.StepCoster.step, S.StepCoster.decode_steps = priced, priced_runs
    print(f"real run      {real * 1e6:6.1f} us CPU per step = {real / ev:5.1f} events ({steps} steps)")
    print(f"pricing a lookup {floor * 1e6:6.1f} us CPU per step = {floor / ev:5.1f} events ({floor_steps} steps)")
    print(json.dumps({"simpy_event_cpu_s": ev, "real_step_events": real / ev, "floor_step_events": floor / ev,
                      "steps": steps, "floor_steps": floor_steps}))


if __name__ == "__main__":
    main()
