"""The speed targets of the simulator, each as a ratio against a baseline measured in the same run
(the machines are shared, so absolute seconds drift; ratios hold). Not part of `make test`.

| what | measured as | target |
|---|---|---|
| serving | CPU per simulated step / CPU of one bare SimPy timeout event (Azure conversation trace, Llama-3.1-8B, one H100) | <= 15 |
| GEMM pricing (tile search) | CPU of pricing one GEMM from cold (70B tp 8: the prefill and decode GEMMs of one request, no memo); and per (GEMM, token count) when the GEMMs of 64 token counts are priced as arrays (8B on one H100, `CostModel.over_steps`) | (tracked, no target) |
| whole-request predict | CPU of predict(70B, tp 8, prefill + 128 decode tokens) in-process, repeated, given a System / given a name (also shown: cold, the cost memo emptied before each call) / CPU of llm-analysis on the same question (``--llm-analysis DIR``, measured in the same run) | <= 2 (without llm-analysis: <= 0.5 ms, the issue's mark, about 700 bare SimPy events) |
| `llmsim predict` | CPU of the command / CPU of `python -c "import numpy, yaml"` | <= 2 |
| sweep path | (point x op) evaluations per CPU-second | >= 1,000,000 |

Usage: ``python benchmarks/bench_targets.py [--requests N] [--root DIR] [--llm-analysis DIR] [--serving-only]``; prints a
table and one JSON line (``--serving-only``: the serving figure alone, one JSON line). ``--root`` measures another checkout of the project (e.g. a ``git worktree`` of an
older commit) with this same harness, for before/after ratios taken in the same session.
CPU time (``time.process_time`` / rusage of children) rather than wall time: other jobs on a shared
machine slow wall time, not CPU time. The command is timed with its bytecode compiled, as an
installed package runs (PYTHONDONTWRITEBYTECODE is unset for it and a first run writes the
caches); without bytecode every project module is compiled at each start.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def simpy_event_cpu(n: int = 200_000) -> float:
    """CPU seconds of one bare SimPy timeout event (a process yielding n timeouts)."""
    import simpy

    env = simpy.Environment()

    def proc():
        for _ in range(n):
            yield env.timeout(1.0)

    env.process(proc())
    t = time.process_time()
    env.run()
    return (time.process_time() - t) / n


def serving_cpu_per_step(requests: int) -> tuple[float, int]:
    from sim.serving import simulate
    from workloads.trace import load_trace

    stream = load_trace("azure-conv-2023", limit=requests)
    t = time.process_time()
    res = simulate(stream, "h100-sxm", "llama-3.1-8b")
    cpu = time.process_time() - t
    steps = res.summary["steps"]
    return cpu / max(steps, 1), steps


def predict_cpu() -> tuple[float, float, float]:
    """CPU seconds of one predict, repeated in one process: given a System, given a name, and cold
    (the process-wide cost memo, sim/costmemo.py, emptied before each call: every op priced)."""
    import gc

    from hwmodels import load_system
    from sim.predict import predict

    try:
        from sim.costmemo import clear
    except ImportError:  # an older checkout (--root): no shared memo, every call is cold
        def clear():
            return None

    gc.collect()  # the serving run's garbage would otherwise be collected inside the timed loop
    hgx = load_system("hgx-h100-8")
    predict("llama-3.1-70b", hgx, 8, 1024, 129, tp=8)  # warm imports and the hardware cache
    out = []
    for hw in (hgx, "hgx-h100-8"):
        n = 20
        t = time.process_time()
        for _ in range(n):
            predict("llama-3.1-70b", hw, 8, 1024, 129, tp=8)
        out.append((time.process_time() - t) / n)
    t = time.process_time()
    for _ in range(n):
        clear()
        predict("llama-3.1-70b", hgx, 8, 1024, 129, tp=8)
    out.append((time.process_time() - t) / n)
    return out[0], out[1], out[2]


#: the same question asked of llm-analysis (a plain roofline: github.com/cli99/llm-analysis), run in a child
#: process from the folder it was installed in (``pip install --target DIR llm-analysis``, kept out of
#: llmsim's environment): Llama-2-70B (llm-analysis ships no Llama-3.1 config; the same layers, heads and
#: widths, a 32,000-token vocabulary instead of 128,256) on its H100 SXM 80GB, tp 8, batch 8, 1,024 prompt
#: tokens, 128 generated; CPU seconds per call, repeated after one warm-up call
LLM_ANALYSIS = """
import time
from llm_analysis.analysis import infer
kw = dict(model_name="upstage_Llama-2-70b-instruct-v2", gpu_name="h100-sxm-80gb", dtype_name="w16a16e16",
          log_level="ERROR", batch_size_per_gpu=8, tp_size=8, seq_len=1024, num_tokens_to_generate=128)
infer(**kw)
n = 200
t = time.process_time()
for _ in range(n):
    infer(**kw)
print((time.process_time() - t) / n)
"""


def llm_analysis_cpu(folder: str | None) -> float:
    """CPU seconds of one llm-analysis answer to predict_cpu's question (LLM_ANALYSIS), NaN without a folder."""
    if not folder:
        return float("nan")
    env = {**os.environ, "PYTHONPATH": os.path.abspath(folder)}
    out = subprocess.run([sys.executable, "-c", LLM_ANALYSIS], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.split()[-1])


def gemm_cpu(n: int = 200) -> float:
    """CPU seconds to price one GEMM from cold (the tile search included): the 10 prefill and decode
    GEMMs of llama-3.1-70b at tp 8 on hgx-h100-8, priced n times each by the cost model (its memo
    bypassed), averaged."""
    from hwmodels import load_system
    from sim.cost import CostModel
    from workloads import Batch, Parallelism, build_graph

    hgx = load_system("hgx-h100-8")
    ops = [o for b in (Batch.prefill(8, 1024), Batch.decode(8, 1100))
           for o in build_graph("llama-3.1-70b", b, "bf16", parallel=Parallelism(tp=8)).ops if o.kind == "gemm"]
    cm = CostModel(hgx)
    for o in ops:
        cm._price(o)
    t = time.process_time()
    for _ in range(n):
        for o in ops:
            cm._price(o)
    return (time.process_time() - t) / (n * len(ops))


def gemm_block_cpu(n: int = 20) -> float:
    """CPU seconds per (GEMM, token count) when llama-3.1-8b's prefill GEMMs at 64 token counts
    (1..8192) are priced as one array-shaped op each (``CostModel.over_steps()._price`` of
    ``workloads.opdata.stacked`` ops; NaN for a checkout without them)."""
    import numpy as np

    from hwmodels import load_system
    from sim.cost import CostModel
    from workloads import Batch, build_graph

    try:
        from workloads.opdata import stacked
    except ImportError:
        return float("nan")
    counts = np.unique(np.geomspace(1, 8192, 64).round().astype(int)).tolist()
    graphs = [build_graph("llama-3.1-8b", Batch.prefill(1, t), "bf16").ops for t in counts]
    names = [o.name for o in graphs[0] if o.kind == "gemm"]
    ops = [stacked([next(o for o in g if o.name == name) for g in graphs]) for name in names]
    cm = CostModel(load_system("h100-sxm")).over_steps()
    t = time.process_time()
    for _ in range(n):
        for o in ops:
            cm._price(o)
    return (time.process_time() - t) / (n * len(ops) * len(counts))


def child_cpu(argv: list) -> float:
    """CPU seconds (user + system) of a child process, best of 5, after one run that writes the
    bytecode caches."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    best = float("inf")
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return best


def sweep_rate(points: int = 200_000) -> float:
    import numpy as np

    from hwmodels import load_system
    from sim.vector import HwPoints, evaluate_graph
    from workloads import Batch, build_graph

    system = load_system("h100-sxm")
    graph = build_graph("llama-3.1-8b", Batch.decode(16, 1024), "bf16")
    rng = np.random.default_rng(0)
    hw = HwPoints(system, {"chip.memory.hbm.bandwidth": rng.uniform(1e12, 8e12, points),
                           "chip.compute.matrix.peak.bf16": rng.uniform(2e14, 2e15, points)})
    t = time.process_time()
    evaluate_graph(graph, hw)
    return points * len(graph.ops) / (time.process_time() - t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000, help="conversation requests for the serving figure (0: skip it)")
    ap.add_argument("--root", help="measure the checkout at DIR instead of this one (same harness)")
    ap.add_argument("--llm-analysis", metavar="DIR",
                    help="folder llm-analysis is installed in (pip install --target DIR llm-analysis): the predict "
                         "target becomes 2x its time on the same question, measured in this run")
    ap.add_argument("--serving-only", action="store_true",
                    help="only the serving figure, its event baseline timed before and after it (quick before/after)")
    a = ap.parse_args(argv)
    if a.root:
        root = os.path.abspath(a.root)
        sys.path.insert(0, root)
        os.environ["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    else:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ev = simpy_event_cpu()
    step, steps = serving_cpu_per_step(a.requests) if a.requests else (float("nan"), 0)
    if a.serving_only:
        ev = (ev + simpy_event_cpu()) / 2
        print(json.dumps({"root": a.root or ".", "simpy_event_cpu_s": ev, "serving_step_cpu_s": step,
                          "serving_step_events": step / ev, "steps": steps}))
        return
    p_sys, p_name, p_cold = predict_cpu()
    lla = llm_analysis_cpu(a.llm_analysis)
    gemm = gemm_cpu()
    gemm_block = gemm_block_cpu()
    py = os.path.dirname(sys.executable)
    base = child_cpu([sys.executable, "-c", "import numpy, yaml"])
    cli = child_cpu([os.path.join(py, "llmsim"), "predict", "--hw", "h100-sxm", "--model", "llama-3.1-8b", "--batch",
                     "8", "--input-len", "512", "--output-len", "128"])
    rate = sweep_rate()
    rows = [
        ("bare SimPy timeout event", f"{ev * 1e6:.2f} us CPU", "baseline", ""),
        ("serving step (Azure conv)", f"{step * 1e6:.1f} us CPU ({steps} steps)", f"{step / ev:.0f} events", "<= 15"),
        ("one GEMM priced from cold", f"{gemm * 1e6:.1f} us CPU", f"{gemm / ev:.0f} events", ""),
        ("GEMMs of 64 token counts at once", f"{gemm_block * 1e6:.1f} us CPU per GEMM and count", "", ""),
        *((("llm-analysis, the same question", f"{lla * 1e3:.3f} ms CPU", "baseline", ""),
           ("predict 70B tp8, System given", f"{p_sys * 1e3:.2f} ms CPU", f"{p_sys / lla:.2f}x llm-analysis", "<= 2"),
           ("predict 70B tp8, name given", f"{p_name * 1e3:.2f} ms CPU", f"{p_name / lla:.2f}x llm-analysis", "<= 2"))
          if lla == lla else
          (("predict 70B tp8, System given", f"{p_sys * 1e3:.2f} ms CPU", f"{p_sys / 0.5e-3:.1f}x the 0.5 ms mark", "<= 1"),
           ("predict 70B tp8, name given", f"{p_name * 1e3:.2f} ms CPU", f"{p_name / 0.5e-3:.1f}x the 0.5 ms mark",
            "<= 1"))),
        ("predict 70B tp8, cost memo cold", f"{p_cold * 1e3:.2f} ms CPU", f"{p_cold / 0.5e-3:.1f}x the 0.5 ms mark", ""),
        ("python -c 'import numpy, yaml'", f"{base:.3f} s CPU", "baseline", ""),
        ("llmsim predict (command)", f"{cli:.3f} s CPU", f"{cli / base:.2f}x", "<= 2"),
        ("sweep path", f"{rate / 1e6:.2f} M evaluations per CPU-second", "", ">= 1"),
    ]
    for r in rows:
        print(f"{r[0]:34s} {r[1]:38s} {r[2]:24s} target {r[3]}")
    print(json.dumps({"simpy_event_cpu_s": ev, "serving_step_cpu_s": step, "serving_step_events": step / ev,
                      "predict_system_cpu_s": p_sys, "predict_name_cpu_s": p_name,
                      "predict_cold_cpu_s": p_cold, "llm_analysis_cpu_s": lla, "gemm_cpu_s": gemm,
                      "gemm_block_cpu_s": gemm_block, "cli_cpu_s": cli,
                      "numpy_yaml_cpu_s": base, "cli_ratio": cli / base, "sweep_evals_per_cpu_s": rate}))


if __name__ == "__main__":
    main()
