"""``llmsim measure``: time real kernels on this machine and write a per-kernel CSV.

    llmsim measure --device cpu --suite quick --out host.csv
    llmsim measure --device cuda --suite full --out h100.csv
    llmsim measure --kineto trace.json --out kernels.csv      # import a PyTorch profiler trace

Writes FILE.csv (one flushed row per measurement) and FILE.env.json (the environment) beside it.
See docs/measurement.md for the columns and the timing method.
"""

from __future__ import annotations

import argparse
import os
import sys

from hwmodels.errors import SpecError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "measure",
        help="time real kernels (GEMM, attention, memcpy, elementwise, norm, collectives) into a per-kernel CSV",
        description=("Microbenchmark the kernels LLM inference is made of and write the per-kernel CSV "
                     "that `llmsim ops` reads, with measured_time_s (median), spread and reps, plus an "
                     "environment side file FILE.env.json. With --kineto, convert a PyTorch profiler "
                     "trace instead of measuring."),
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run (default: cpu)")
    # 'tiny' is a hidden suite for tests: minute shapes, 3 reps
    p.add_argument("--suite", choices=["quick", "full", "tiny"], default="quick", metavar="{quick,full}",
                   help="quick (CPU: ~30-60 s on 2 cores) or full (CUDA: ~3-4 min on an H100)")
    p.add_argument("--out", metavar="FILE.csv", default=None,
                   help="output CSV (default: measure-<hardware>.csv); FILE.env.json is written beside it")
    p.add_argument("--hardware", metavar="NAME", default=None,
                   help="value of the hardware column (default: host-cpu-xeon-2vcpu on cpu; on cuda, the "
                        "catalog name of the GPU, e.g. h100-sxm)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop starting new measurements after this many seconds (rows so far are kept)")
    p.add_argument("--no-torch", action="store_true", help="on cpu, measure with numpy only even if torch is installed")
    p.add_argument("--no-collectives", action="store_true", help="on cuda, skip the multi-GPU collectives")
    p.add_argument("--dry-run", action="store_true", help="list the cases of the suite and exit")
    p.add_argument("--kineto", metavar="TRACE.json", default=None,
                   help="import a PyTorch profiler (Kineto) Chrome trace instead of measuring")
    p.add_argument("--aggregate", action="store_true",
                   help="with --kineto: one row per (shape, kernel) with the median over its occurrences")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    if args.kineto:
        return _import_kineto(args)
    from sim.validation import measure as M

    if args.device == "cpu":
        hardware = args.hardware or M.DEFAULT_CPU_HARDWARE
        ctx = None
        use_torch = False if args.no_torch else None
        cases = M.build_cases("cpu", args.suite, use_torch=use_torch)
    else:
        try:
            ctx = M.cuda_context()
        except M.MeasureError as e:
            raise SpecError(f"--device cuda: {e}") from None
        hardware = args.hardware or M.catalog_name_for_gpu(ctx["device_name"])
        cases = M.build_cases("cuda", args.suite, torch_caps=ctx)

    if args.dry_run:
        groups: dict[str, int] = {}
        for c in cases:
            groups[c.group] = groups.get(c.group, 0) + 1
        for g, n in groups.items():
            print(f"{g}: {n} cases")
        print(f"total: {len(cases)} cases, hardware={hardware}")
        return 0

    out = args.out or f"measure-{hardware}.csv"
    from sim.validation.environment import (
        _loadavg,
        collect_environment,
        cpu_busy_seconds,
        env_path_for,
        other_cpu_seconds,
        write_environment,
    )

    env_extra = {"timing": _timing_note(args.device)}
    if ctx is not None:
        env_extra["cuda_device_name"] = ctx["device_name"]
        env_extra["cuda_device_count"] = ctx["device_count"]
        env_extra["cuda_capability"] = "{}.{}".format(*ctx["capability"])
    env = collect_environment(args.device, args.suite, hardware, argv=["llmsim"] + sys.argv[1:], extra=env_extra)
    env_path = env_path_for(out)
    sink = M.CsvSink(out)
    write_environment(env_path, env)  # first now, so that an interrupted run has one
    M._log(f"{len(cases)} cases on {args.device} ({hardware}), suite {args.suite} -> {out}")
    load = env.get("loadavg_start")
    ncpu = (env.get("cpu") or {}).get("affinity_cpus") or (env.get("cpu") or {}).get("logical_cpus") or 1
    if args.device == "cpu" and load and load[0] > 0.5 * ncpu:
        M._log(f"warning: load average {load[0]} on {ncpu} CPUs: other work will slow these measurements")
    summary = {}
    busy0 = cpu_busy_seconds()
    try:
        try:
            summary = M.run_measurements(cases, sink, device=args.device, hardware=hardware, suite=args.suite,
                                         time_budget_s=args.time_budget)
        except M.MeasureError as e:
            raise SpecError(f"--device {args.device}: {e}") from None
        if ctx is not None and not args.no_collectives:
            summary["collective_rows"] = M.run_collectives(ctx, sink, hardware=hardware, suite=args.suite)
    finally:
        sink.close()
        env["summary"] = {"rows": sink.rows, **{k: v for k, v in summary.items() if k != "rows"},
                          "loadavg_end": _loadavg(), "other_processes_cpu_s": other_cpu_seconds(busy0)}
        write_environment(env_path, env)
    other = env["summary"].get("other_processes_cpu_s")
    if args.device == "cpu" and other and summary.get("seconds") and other > 0.1 * summary["seconds"]:
        M._log(f"warning: other processes used {other:.1f} CPU-s during the {summary['seconds']:.0f} s run: "
               "the CPU times are likely disturbed; rerun on a quiet machine")
    M._log(f"wrote {sink.rows} rows to {out} and {env_path}"
           + (f"; {summary.get('failed')} failed" if summary.get("failed") else ""))
    print(out)
    return 0


def _timing_note(device: str) -> str:
    if device == "cuda":
        return ("CUDA events around a CUDA-graph replay of N back-to-back calls (N sized so a sample lasts "
                ">= 1 ms; eager launches if capture fails); 2 warm-up samples; samples until >= 10 and "
                ">= 0.1 s; buffer copies rotated so >= 256 MiB is touched between reuses")
    return ("time.perf_counter around each call (host-synchronous numpy/torch); 1 warm-up call; samples "
            "until >= 5 and >= 0.2 s (max 200); buffer copies rotated to exceed 2x the L3 cache (max 1 GiB)")


def _import_kineto(args: argparse.Namespace) -> int:
    from sim.validation import kineto as K

    imp = K.import_kineto(args.kineto, hardware=args.hardware)
    df = imp.kernels
    if args.aggregate:
        df = K.aggregate(df)
    out = args.out or os.path.splitext(os.path.basename(args.kineto))[0] + ".kernels.csv"
    K.write_csv(df, out)
    steps_path = (out.removesuffix(".csv")) + ".steps.csv"
    imp.steps.to_csv(steps_path, index=False)
    n_mapped = int((imp.kernels["op"] != "").sum()) if len(imp.kernels) else 0
    print(f"[measure] {args.kineto}: {len(imp.kernels)} kernel rows ({n_mapped} mapped to llmsim ops), "
          f"{len(imp.steps)} steps -> {out}, {steps_path}", file=sys.stderr)
    print(out)
    return 0
