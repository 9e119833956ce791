"""Many serving runs in one process (not part of `make test`): what a planner or a sweep pays.

``llmsim plan`` and sweeps simulate many fleets of the same chip and model one after another in one
process. Each run builds its own ``StepCoster``; the one-time parts of step pricing (token-count
blocks, request-count head ops, sim/step.py) are kept per context in the process and taken by the
runs after the first (``sim.step._PARTS``). This benchmark runs the same trace (the first
``--requests`` of the Azure conversation trace) on 1, 2, 3 and 4 replicas of Llama-3.1-8B on H100 SXM,
one pass = the four runs, in one process, alternating passes that empty the shared parts before every
run (``cold``: what every run paid before they were shared) with passes that keep them (``warm``), and
prints the CPU of each pass. Both kinds of pass give the same steps (and the same numbers:
tests/unit/test_serving_step.py).

Usage: ``python benchmarks/bench_fleets.py [--requests N] [--rounds K]``; one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

REPLICAS = (1, 2, 3, 4)


def one_pass(stream, cold: bool) -> tuple[float, int]:
    from sim import step
    from sim.serving import simulate

    cpu, steps = 0.0, 0
    for n in REPLICAS:
        if cold:
            step.shared_parts_clear()
        t = time.process_time()
        res = simulate(stream, "h100-sxm", "llama-3.1-8b", replicas=n)
        cpu += time.process_time() - t
        steps += int(res.summary["steps"])
    return cpu, steps


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    from workloads.trace import load_trace

    stream = list(load_trace("azure-conv-2023", limit=a.requests).requests())
    one_pass(stream, True)  # imports, the shared op memo and the stacks' caches: paid once by both kinds
    out = {"cold": [], "warm": []}
    steps = set()
    for _ in range(a.rounds):
        for kind in ("cold", "warm"):
            cpu, s = one_pass(stream, kind == "cold")
            out[kind].append(round(cpu, 3))
            steps.add(s)
    print(json.dumps({"requests": a.requests, "replicas": list(REPLICAS), "steps_per_pass": sorted(steps),
                      "cold_pass_cpu_s": out["cold"], "warm_pass_cpu_s": out["warm"],
                      "cold_over_warm": round(statistics.median(out["cold"]) / statistics.median(out["warm"]), 3)}))


if __name__ == "__main__":
    main()
