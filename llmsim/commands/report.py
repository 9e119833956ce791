"""`llmsim report KIND ... --out DIR`: a self-contained HTML report plus its tables as CSV.

Kinds:

- ``predict``: the same flags as ``llmsim predict``; the prediction, a batch-size sweep around it
  (throughput-latency curve, breakdown by op category across batch sizes), the roofline of the
  chip with the prefill and decode ops on it, the per-op table;
- ``validate MEASURED.csv``: measured kernel times scored against the cost model (predicted vs
  measured with error bands, error statistics per op, the worst rows, rejected rows);
- ``serve``: the same flags as ``llmsim serve``; latency percentiles and CDFs against the SLOs,
  KV-cache utilization and batch size over time, a window of one replica's steps, optionally a
  load sweep (``--sweep-rates``: throughput against TTFT/TPOT percentiles), and the simulator's own
  files (requests.csv, timeline.csv, summary.json, trace.json for Perfetto);
- ``sweep RESULTS.parquet``: a sweep's result table (``llmsim sweep``): status counts, the axes,
  the best points by a metric, Pareto fronts (default: the sweep command's fronts whose columns
  the table has; or ``--pareto A:max,B:min``), the sensitivity of the metric to each axis and a heat
  map over the two strongest axes (figures from ``reports.sweep_plots``), the sweep's recorded
  assumptions, and the hashes of the spec, hardware, model and Parquet files.

Every report ends with its inputs, the software versions and the SHA-256 of the hardware and model
files, so a result can be reproduced.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hwmodels.errors import SpecError
from llmsim.commands._common import add_set_option, print_json, say_warnings
from llmsim.commands.predict import (
    add_cost_options,
    add_technique_options,
    add_workload_options,
    cost_options,
    predict_config,
)
from llmsim.commands.serve import build_scenario, run_outcome, simulate_kwargs
from workloads.scenario import parse_rate


def register(sub) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report (figures, tables, inputs) and CSVs",
                       description="Write a self-contained HTML report (report.html) with figures, tables, every "
                                   "input and the hashes of the hardware and model files, plus each table as CSV.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")

    pp = kinds.add_parser("predict", help="report of a static prediction (same flags as llmsim predict)")
    add_workload_options(pp)
    pp.add_argument("--batch", type=int, required=True, help="requests in the batch")
    pp.add_argument("--input-len", type=int, required=True, help="prompt tokens per request")
    pp.add_argument("--output-len", type=int, required=True, help="output tokens per request")
    add_technique_options(pp)
    _add_out(pp)
    pp.add_argument("--sweep", default="auto", metavar="B1,B2,...",
                    help="batch sizes for the throughput-latency curve and the breakdown across batch sizes "
                         "(default: powers of two up to 4x --batch; 'none' to skip)")
    pp.set_defaults(func=cmd_report_predict)

    pv = kinds.add_parser("validate", help="report of measured kernel times against the cost model")
    pv.add_argument("measured", metavar="MEASURED.csv", help="per-kernel CSV with measured_time_s (or a built-in data set)")
    pv.add_argument("--hw", help="score every row on this hardware (default: each row's hardware column)")
    pv.add_argument("--limit", type=int, default=None, help="score at most this many rows (a deterministic sample)")

    add_set_option(pv)
    add_cost_options(pv)
    _add_out(pv)
    pv.set_defaults(func=cmd_report_validate)

    _register_serve(kinds)
    _register_sweep(kinds)

    def no_kind(args) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(func=no_kind)


def _add_out(p) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="folder for report.html and the CSV files")
    p.add_argument("--title", help="report title")
    p.add_argument("--json", action="store_true", help="print the written files as JSON")


def _register_serve(kinds) -> None:
    """``report serve``: the parser of ``llmsim serve`` (same flags), with --out naming the report folder."""
    try:
        from llmsim.commands import serve as serve_cmd
    except ImportError:  # the serving simulator is not installed
        return
    serve_cmd.register(kinds)
    ps = kinds.choices["serve"]
    ps.description = ("Simulate serving (same flags as `llmsim serve`) and write an HTML report with latency "
                      "CDFs, utilization over time and a step timeline, plus the simulator's CSV/JSON files.")
    for action in ps._actions:  # the serve parser's --out writes files; here it names the report folder
        if action.dest == "out":
            action.help = "folder for report.html, the CSV tables and the simulator's files (required)"
    ps.add_argument("--title", help="report title")
    ps.add_argument("--sweep-rates", metavar="R1,R2,...",
                    help="also simulate these arrival rates (req/s) and plot throughput against TTFT/TPOT "
                         "percentiles (a load sweep)")
    ps.add_argument("--timeline-steps", type=int, default=150, help="steps shown in the step timeline (default 150; 0: no step timeline)")
    ps.set_defaults(func=cmd_report_serve)


def _register_sweep(kinds) -> None:
    import importlib.util

    if importlib.util.find_spec("sim.sweep") is None:  # the sweep engine is not installed
        return
    pw = kinds.add_parser("sweep", help="report of a sweep's results (llmsim sweep ... --out RESULTS.parquet)")
    pw.add_argument("results", metavar="RESULTS.parquet", help="the results folder (or file) a sweep wrote")
    pw.add_argument("--metric", metavar="NAME", help="metric for the best points, sensitivity and heat map "
                                                     "(default usd_per_mtok_output when present)")
    pw.add_argument("--pareto", action="append", default=[], metavar="A:max,B:min",
                    help="a Pareto front to draw (repeatable; default: the standard fronts the table has)")
    pw.add_argument("--top", type=int, default=10, metavar="N", help="best points to list (default 10)")
    _add_out(pw)
    pw.set_defaults(func=cmd_report_sweep)


def _finish(args, rep, out: Path) -> int:
    path = rep.write(out)
    files = {"report": str(path), "tables": [str(out / f"{n}.csv") for n in rep.tables],
             "figures": [str(out / "figures" / f"{n}.png") for n in rep.figures]}
    if args.json:
        print_json(files)
    else:
        print(f"wrote {path} ({len(rep.figures)} figures, {len(rep.tables)} tables as CSV in {out})")
    return 0


# ---------------------------------------------------------------------------------------------
# the handlers: parse the flags, run, and hand the results to reports/


def _sweep_batches(spec: str, batch: int) -> list[int]:
    from reports.predict_report import sweep_batches

    if spec in ("none", "off", ""):
        return []
    if spec == "auto":
        return sweep_batches(batch)
    try:
        vals = sorted({int(x) for x in spec.split(",") if x.strip()})
    except ValueError:
        raise SpecError(f"--sweep: expected comma-separated batch sizes, e.g. 1,8,32; got {spec!r}") from None
    if any(v < 1 for v in vals):
        raise SpecError(f"--sweep: batch sizes must be >= 1; got {spec!r}")
    return vals


_NOT_INPUTS = ("func", "command", "kind", "json", "title", "out")


def prediction_inputs(args, kind: str = "predict") -> dict:
    """Every input of the run, by flag name (all parsed arguments but the output ones), for the
    report's input listing; ``None`` shows as '(default)'."""
    d = {"report": kind}
    for k, v in sorted(vars(args).items()):
        if k in _NOT_INPUTS or callable(v):
            continue
        if k == "overrides":
            d["overrides (--set)"] = "; ".join(v or []) or "(none)"
        else:
            d[k] = "(default)" if v is None else v
    return d


def cmd_report_predict(args) -> int:
    from reports.predict_report import predict_report
    from sim.predict import predict, resolve_system

    cfg = predict_config(args)
    pred = predict(config=cfg)
    system, _ = resolve_system(args.hw, pred.chips, args.overrides or None)

    def predict_at(batch: int):
        return predict(config=cfg, batch=batch, samples=9)

    say_warnings(pred.warnings)  # a request longer than the model (a what-if), an unknown activation: as predict says them
    rep = predict_report(pred, system, model=args.model, batches=_sweep_batches(args.sweep, args.batch),
                         predict_at=predict_at, inputs=prediction_inputs(args), title=args.title, stack=args.stack)
    return _finish(args, rep, Path(args.out))


def cmd_report_validate(args) -> int:
    from reports.validate_report import validate_report
    from sim.validation.compare import compare
    from sim.validation.measure import load_measurements

    df = None
    src = args.measured
    if args.limit:
        df = load_measurements(src)
        if len(df) > args.limit:
            df = df.sample(args.limit, random_state=0).sort_index()
    cmp = compare(df if df is not None else src, hw=args.hw, options=cost_options(args),
                  overrides=args.overrides or None)
    inputs = {"report": "validate", "measured": str(src), "hw": args.hw or "(each row's hardware column)",
              "limit": args.limit or "(all rows)", "overrides (--set)": "; ".join(args.overrides or []) or "(none)",
              "fused": args.fused, "cuda_graphs": args.cuda_graphs, "no_efficiency": args.no_efficiency,
              "no_tiling": args.no_tiling}
    rep = validate_report(cmp, src, hw=args.hw, inputs=inputs, title=args.title)
    rc = _finish(args, rep, Path(args.out))
    if not len(cmp.scored):  # as `llmsim validate`: a file of which nothing could be scored is an error (exit 2)
        from llmsim.commands.validate import unscorable

        print(unscorable(src, cmp.counts["rows"], "in the report"), file=sys.stderr)
        return 2
    return rc


def _parse_rates(spec: str) -> list[float]:
    try:
        rates = [parse_rate(x.strip()) for x in spec.split(",") if x.strip()]
    except SpecError as e:
        raise SpecError(f"--sweep-rates: {e}") from None
    if not rates or any(not (r > 0) for r in rates):
        raise SpecError(f"--sweep-rates: expected comma-separated rates > 0 in req/s, e.g. 1,2,4; got {spec!r}")
    return rates


def cmd_report_serve(args) -> int:
    import copy
    import math

    from reports.serve_report import serve_report
    from sim.predict import resolve_system
    from sim.serving import simulate

    if not args.out:
        raise SpecError("report serve needs --out DIR (the folder for report.html)")
    rates = _parse_rates(args.sweep_rates) if args.sweep_rates else []
    kw = simulate_kwargs(args)
    out = Path(args.out)
    # out_dir as `serve --out` gives it: the run streams requests.csv and records the Perfetto trace
    res = simulate(build_scenario(args), args.hw, args.model, out_dir=out, **kw)

    def simulate_at(rate: float):
        a2 = copy.copy(args)
        a2.rate = "inf" if math.isinf(rate) else repr(rate)
        if args.trace:
            a2.trace_speedup = 1.0
        return simulate(build_scenario(a2), args.hw, args.model, **kw)

    s = res.summary
    system, _ = resolve_system(args.hw, (s.get("chips") or 1) // max(s.get("replicas") or 1, 1),
                               args.overrides or None)
    rep = serve_report(res, system, model=args.model, slo_ttft=kw["slo_ttft_s"], slo_tpot=kw["slo_tpot_s"],
                       timeline_steps=args.timeline_steps, rates=rates, simulate_at=simulate_at, trace=args.trace,
                       inputs=prediction_inputs(args, "serve"), title=args.title, stack=args.stack)
    rc = _finish(args, rep, out)
    return run_outcome(res) or rc  # the report of a run that served nothing is written, and the exit says so


def cmd_report_sweep(args) -> int:
    from reports.sweep_report import sweep_report

    rep = sweep_report(args.results, metric=args.metric, pareto=args.pareto, top=args.top, title=args.title)
    return _finish(args, rep, Path(args.out))


if __name__ == "__main__":  # pragma: no cover
    from llmsim.cli import main

    sys.exit(main(["report", *sys.argv[1:]]))
