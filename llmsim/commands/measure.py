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
                   help="value of the hardware column (default: the catalog entry that describes this host "
                        "or GPU, e.g. h100-sxm; when none does, a starting chip file written beside --out from "
                        "what was detected and measured, for llmsim calibrate to refine)")
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

    try:
        cases, hardware, ctx = M.plan_cases(args.device, args.suite, hardware=args.hardware,
                                            use_torch=False if args.no_torch else None)
    except M.MeasureError as e:
        raise SpecError(f"--device {args.device}: {e}") from None
    if args.hardware is None:  # detect the host: its catalog entry, or a starting chip file (sim/validation/host.py)
        from sim.validation import host as H

        def log(m):
            print(m, file=sys.stderr)

        hardware = H.hardware_for_cpu(args.out, write=not args.dry_run, log=log) if args.device == "cpu" \
            else H.hardware_for_gpu(ctx, args.out, write=not args.dry_run, log=log)
    if args.dry_run:
        groups: dict[str, int] = {}
        for c in cases:
            groups[c.group] = groups.get(c.group, 0) + 1
        for g, n in groups.items():
            print(f"{g}: {n} cases")
        print(f"total: {len(cases)} cases, hardware={hardware}")
        return 0
    out = args.out or f"measure-{os.path.basename(hardware).removesuffix('.yaml')}.csv"
    try:
        M.measure_to_csv(cases, out, device=args.device, suite=args.suite, hardware=hardware, ctx=ctx,
                         time_budget_s=args.time_budget, collectives=not args.no_collectives,
                         argv=["llmsim"] + sys.argv[1:])
    except M.MeasureError as e:
        raise SpecError(f"--device {args.device}: {e}") from None
    print(out)
    return 0


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


def main(argv: list[str] | None = None) -> int:
    """``python -m llmsim.commands.measure [options]``: the same as ``llmsim measure [options]``,
    without loading the other CLI commands (handy on a bare GPU machine with torch, numpy, pandas)."""
    parser = argparse.ArgumentParser(prog="python -m llmsim.commands.measure")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["measure", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except SpecError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
