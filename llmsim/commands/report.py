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

from llmsim.commands._common import print_json


def register(sub) -> None:
    from llmsim.commands.predict import add_technique_options, add_workload_options

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
    from llmsim.commands._common import add_set_option
    from llmsim.commands.predict import add_cost_options

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
    ps.add_argument("--timeline-steps", type=int, default=150, help="steps shown in the step timeline (default 150)")
    ps.set_defaults(func=cmd_report_serve)


def _register_sweep(kinds) -> None:
    try:
        import sim.sweep  # noqa: F401
    except ImportError:  # the sweep engine is not installed
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
# predict


def _sweep_batches(spec: str, batch: int) -> list[int]:
    from hwmodels.errors import SpecError

    if spec in ("none", "off", ""):
        return []
    if spec == "auto":
        vals, b = set(), 1
        while b <= max(4 * batch, 8) and len(vals) < 10:
            vals.add(b)
            b *= 2
        vals.add(batch)
        return sorted(vals)
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


def model_files(model) -> list[tuple[str, str, str]]:
    from workloads import load_model

    spec = load_model(model)
    return [("model", spec.name, spec.source)] if spec.source else []


def prediction_summary(p) -> list[tuple[str, object]]:
    """(column, value) pairs of a prediction's headline numbers (units in the names)."""
    keys = ["model", "system", "chips", "tp", "pp", "ep", "quant", "batch", "input_len", "output_len", "ttft_s",
            "tpot_s", "e2e_s", "output_throughput_tok_s", "per_chip_output_throughput_tok_s", "weights_bytes",
            "kv_cache_bytes", "activation_bytes", "memory_capacity_bytes", "usd_per_hour", "usd_per_mtok_output",
            "usd_per_mtok_input", "joules_per_output_token", "mfu", "mbu"]
    d = p.to_dict()
    out = [(k, d.get(k)) for k in keys]
    # technique fields (docs/optimize.md) when a technique is on
    for k in ("tokens_per_step", "speculative", "sparsity", "kv_window", "offload_bytes", "draft_bytes"):
        v = d.get(k)
        if v not in (None, 0, 0.0, 1, 1.0, False, "", {}, []):
            out.append((k, v))
    return out


def cmd_report_predict(args) -> int:
    import pandas as pd

    from hwmodels.errors import InfeasibleError
    from llmsim.commands.predict import cost_options, technique_kwargs
    from reports.breakdown import breakdown_frame, breakdown_table, plot_breakdown_phases
    from reports.html import Report, command_line, hardware_files
    from reports.roofline import plot_roofline, ridge_points
    from reports.serving_plots import plot_throughput_latency
    from reports.style import new_figure, style
    from sim.predict import predict, resolve_system

    kw = dict(tp=args.tp, pp=args.pp, ep=args.ep, quant=args.quant, weight_dtype=args.weight_dtype,
              act_dtype=args.act_dtype, kv_dtype=args.kv_dtype, overrides=args.overrides or None,
              options=cost_options(args), attention_kernel=args.attention_kernel, **technique_kwargs(args))
    pred = predict(args.model, args.hw, args.batch, args.input_len, args.output_len, **kw)
    system, _ = resolve_system(args.hw, pred.chips, args.overrides or None)
    chip = system.chip
    out = Path(args.out)
    rep = Report(args.title or f"llmsim prediction: {pred.model} on {pred.system}",
                 f"batch {pred.batch} x ({pred.input_len} in, {pred.output_len} out), {pred.quant}, "
                 f"tp={pred.tp} pp={pred.pp} ep={pred.ep}, {pred.chips} chip{'s' if pred.chips > 1 else ''}")
    for n in pred.notes:
        rep.note(n)
    rep.section("Summary", "Static prediction: TTFT is the prefill step, TPOT the mean decode step over the output; "
                           "throughput, cost and energy follow from them (docs/cost-model.md).")
    rep.key_values(prediction_summary(pred), "summary", "Headline numbers (raw values in summary.csv).")
    bb = pd.DataFrame([{"bound": k, "share": v} for k, v in sorted(pred.bound_breakdown.items(), key=lambda kv: -kv[1])])
    rep.table(bb, "bound-breakdown", "Share of the request's time by the bound that won each op.")

    batches = _sweep_batches(args.sweep, args.batch)
    sweep = None
    with style("light"):
        rep.section("Where the time goes")
        cat = breakdown_frame(pred, label=f"batch {pred.batch}")
        rep.table(cat, "breakdown", "Time per step by op category on one chip (overhead: launch and memory latency).")
        if batches:
            preds, rows = {}, []
            for b in batches:
                try:
                    pb = pred if b == args.batch else predict(args.model, args.hw, b, args.input_len,
                                                              args.output_len, samples=9, **kw)
                except InfeasibleError as e:
                    rows.append({"batch": b, "fits": False, "reason": str(e)})
                    continue
                preds[f"batch {b}"] = pb
                rows.append({"batch": b, **{k: v for k, v in pb.to_dict().items() if not isinstance(v, (dict, list))}})
            sweep = pd.DataFrame(rows)
            table = breakdown_table(preds)
        else:
            table = cat
        fig, axes = new_figure(1, 2, figsize=(11, 4.3))
        plot_breakdown_phases(table, axes=axes)
        rep.figure(fig, "breakdown", "Step time by op category for prefill (left) and one decode step at the mean "
                                     "context (right)" + (", across batch sizes." if batches else "."))
        fig, ax = new_figure(figsize=(9, 6))
        plot_roofline(chip, pred, ax=ax)
        rep.figure(fig, "roofline", f"Roofline of {chip.name}: ceilings per dtype, one slope per memory level, "
                                    "ridge points marked; prefill (circles) and decode (triangles) ops placed by "
                                    "intensity at the main memory and achieved FLOP/s, area = share of time.")
        rep.table(ridge_points(chip), "ridge-points", "Ridge points: intensity (FLOP/B) where each memory level "
                                                      "meets each compute ceiling.")
        if sweep is not None:
            rep.section("Batch-size sweep", "The same workload at other batch sizes (decode sampled at 9 contexts). "
                                            "Points that do not fit in memory are listed with the reason.")
            fig, axes = new_figure(1, 2, figsize=(11, 4.3))
            plot_throughput_latency(sweep, latency="tpot_s", annotate="batch", by=None, ax=axes[0],
                                    title="throughput vs TPOT (points: batch size)")
            plot_throughput_latency(sweep, latency="ttft_s", annotate="batch", by=None, ax=axes[1],
                                    title="throughput vs TTFT (points: batch size)")
            rep.figure(fig, "throughput-latency", "Output throughput against TPOT and TTFT across batch sizes.")
            cols = [c for c in ("batch", "fits", "ttft_s", "tpot_s", "e2e_s", "output_throughput_tok_s",
                                "per_chip_output_throughput_tok_s", "usd_per_mtok_output", "joules_per_output_token",
                                "mfu", "mbu", "reason") if c in sweep.columns]
            rep.table(sweep[cols], "batch-sweep", "Predictions across batch sizes.")
    rep.section("Per-op detail")
    ops = pred.to_frame()
    rep.table(ops, "ops", "Every op of the prefill step and of the decode step at the mean context: per-execution "
                          "time_s, total_time_s = count x time_s, the terms of the cost model, bound, FLOPs and "
                          "bytes at the main memory level.")
    files = hardware_files(system) + model_files(args.model)
    rep.provenance(prediction_inputs(args), files, command_line())
    return _finish(args, rep, out)


# ---------------------------------------------------------------------------------------------
# validate


def cmd_report_validate(args) -> int:
    import numpy as np

    from llmsim.commands.predict import cost_options
    from reports.html import Report, command_line
    from reports.style import new_figure, style
    from sim.validation.compare import compare, error_stats

    df = None
    src = args.measured
    if args.limit:
        from sim.validation.measure import load_measurements

        df = load_measurements(src)
        if len(df) > args.limit:
            df = df.sample(args.limit, random_state=0).sort_index()
    cmp = compare(df if df is not None else src, hw=args.hw, options=cost_options(args),
                  overrides=args.overrides or None)
    out = Path(args.out)
    rep = Report(args.title or f"llmsim validation: {Path(str(src)).name}",
                 f"{cmp.counts['scored']} of {cmp.counts['rows']} measured rows scored against the cost model")
    st = error_stats(cmp.scored["predicted_time_s"], cmp.scored["measured_time_s"]) if len(cmp.scored) else {}
    rep.section("Summary", "rel_error = (predicted - measured) / measured; APE = |rel_error|.")
    rep.key_values({"rows": cmp.counts["rows"], "scored": cmp.counts["scored"], "rejected": cmp.counts["rejected"],
                    **{k: v for k, v in st.items() if k != "n"}}, "overall", "Error statistics over all scored rows.")
    rep.table(cmp.overall(("op",)), "by-op", "Error statistics per op.")
    rep.table(cmp.summary, "by-group", "Error statistics per hardware, op and dtype.")
    if len(cmp.scored):
        with style("light"):
            fig, ax = new_figure(figsize=(7.5, 6))
            _plot_validation(cmp.scored, ax)
            rep.figure(fig, "predicted-vs-measured", "Predicted against measured kernel time, one colour per op; "
                                                     "the shaded band is +-20 %.")
            from reports.validation import error_size_panel

            units = [u for u in ("FLOP", "B") if (cmp.scored.get("size_unit") == u).any()]
            if units:
                fig, axes = new_figure(1, len(units), figsize=(5.5 * len(units), 4.2))
                for ax, u in zip(np.atleast_1d(axes), units):
                    error_size_panel(ax, cmp.scored, u, "FLOP-sized ops" if u == "FLOP" else "byte-sized ops")
                rep.figure(fig, "error-vs-size", "Signed relative error against the work of each kernel (FLOPs for "
                                                 "GEMM and attention, bytes for the rest); the band is +-20 %.")
    rep.section("Worst rows")
    rep.table(cmp.worst(20), "worst", "The 20 rows with the largest absolute relative error.")
    if len(cmp.rejected):
        import pandas as pd

        reasons = pd.DataFrame([{"reason": k, "rows": v} for k, v in cmp.counts["by_reason"].items()])
        rep.table(reasons, "rejected-reasons", "Rows that could not be scored, by reason.")
    inputs = {"report": "validate", "measured": str(src), "hw": args.hw or "(each row's hardware column)",
              "limit": args.limit or "(all rows)", "overrides (--set)": "; ".join(args.overrides or []) or "(none)",
              "fused": args.fused, "cuda_graphs": args.cuda_graphs, "no_efficiency": args.no_efficiency,
              "no_tiling": args.no_tiling}
    files = []
    from sim.validation.measure import BUILTIN_GROUPS, builtin_measurements

    builtin = builtin_measurements()
    for name in BUILTIN_GROUPS.get(str(src), [str(src)]):
        path = name if Path(name).is_file() else builtin.get(name)
        if path:
            files.append(("measurements", name, str(path)))
    files += _hardware_of(cmp.scored, args)
    rep.provenance(inputs, files, command_line())
    return _finish(args, rep, out)


def _plot_validation(scored, ax):
    from reports.plots import plot_predicted_vs_measured

    return plot_predicted_vs_measured(scored, ax=ax)


def _hardware_of(scored, args) -> list:
    from hwmodels.errors import SpecError
    from hwmodels.loader import load_hardware
    from reports.html import hardware_files

    names = [args.hw] if args.hw else sorted({str(h) for h in scored.get("hardware", [])})
    out = []
    for n in names:
        try:
            out += hardware_files(load_hardware(n))
        except SpecError:
            continue
    return out


# ---------------------------------------------------------------------------------------------
# serve


SERVE_HEADLINE = ("requests_completed", "requests_rejected", "duration_s", "request_throughput_rps",
                  "output_throughput_tok_s", "output_throughput_per_chip_tok_s", "ttft_p50_s", "ttft_p99_s",
                  "tpot_p50_s", "tpot_p99_s", "e2e_p50_s", "e2e_p99_s", "slo_ttft_s", "slo_tpot_s", "slo_attainment",
                  "goodput_rps", "kv_utilization_mean", "batch_size_mean", "preemptions", "usd_per_hour",
                  "usd_per_mtok_output", "energy_j_per_output_token", "mfu", "mbu")


def serve_kwargs(args) -> dict:
    """Keyword arguments of ``sim.serving.simulate`` from ``llmsim serve`` flags (serve's own mapping)."""
    from llmsim.commands.serve import simulate_kwargs

    return simulate_kwargs(args)


def _trace_file(name) -> str | None:
    p = Path(str(name))
    if p.is_file():
        return str(p)
    try:
        import workloads.data.traces as traces_pkg

        cand = Path(traces_pkg.__file__).parent / f"{name}.csv.gz"
        return str(cand) if cand.is_file() else None
    except ImportError:
        return None


def _parse_rates(spec: str) -> list[float]:
    from hwmodels.errors import SpecError
    from workloads.scenario import parse_rate

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

    import pandas as pd

    from hwmodels.errors import SpecError
    from llmsim.commands import serve as serve_cmd
    from reports.html import Report, command_line, hardware_files
    from reports.serving_plots import (
        latency_percentiles,
        plot_latency_cdf,
        plot_step_timeline,
        plot_throughput_latency,
        plot_utilization,
    )
    from reports.style import new_figure, style
    from sim.predict import resolve_system
    from sim.serving import simulate

    if not args.out:
        raise SpecError("report serve needs --out DIR (the folder for report.html)")
    rates = _parse_rates(args.sweep_rates) if args.sweep_rates else []
    kw = serve_kwargs(args)
    res = simulate(serve_cmd._scenario(args), args.hw, args.model, **kw)
    s = res.summary
    out = Path(args.out)
    res.write(out)
    req, tl = res.requests, res.timeline
    pool = (f"{s['prefill_replicas']} prefill + {s['decode_replicas']} decode replicas" if s["scheduler"] == "disagg"
            else f"{s['replicas']} replica{'s' if s['replicas'] > 1 else ''}")
    rep = Report(args.title or f"llmsim serving: {s['model']} on {s['system']}",
                 f"{pool}, tp={s['tp']} pp={s['pp']} ep={s['ep']}, {s['quant']}, scheduler {s['scheduler']}; "
                 f"{s['requests_completed']:,} requests completed in {s['duration_s']:.4g} s simulated")
    for n in s.get("notes") or []:
        rep.note(n)
    rep.section("Summary", "Discrete-event simulation of the request stream; every step priced by the shared cost "
                           "model (docs/serving.md).")
    head = [(k, s.get(k)) for k in SERVE_HEADLINE if k in s]
    rep.key_values(head, "headline", "Headline figures of the run.")
    scalars = [(k, v) for k, v in s.items() if not isinstance(v, (dict, list, tuple))]
    rep.key_values(scalars, "summary", "Every figure of the run (raw values in summary.csv and summary.json)",
                   collapsed=True)
    pct = latency_percentiles(req, metrics=("ttft_s", "tpot_s", "e2e_s", "queue_s", "max_itl_s"))
    rep.table(pct, "latency-percentiles", "Latency percentiles over the finished requests (TPOT of one-token "
                                          "requests is undefined and left out).")
    if s.get("rejection_reasons"):
        rep.table(pd.DataFrame([{"reason": k, "requests": v} for k, v in s["rejection_reasons"].items()]),
                  "rejections", "Requests the simulator could not serve, by reason.")
    with style("light"):
        if len(req):
            rep.section("Latency")
            fig, axes = new_figure(1, 2, figsize=(11, 4.2))
            plot_latency_cdf(req, "ttft_s", ax=axes[0], slo=args.slo_ttft)
            plot_latency_cdf(req, "tpot_s", ax=axes[1], slo=args.slo_tpot)
            rep.figure(fig, "latency-cdf", "Distribution of time to first token (left) and time per output token "
                                           "(right) over requests, with p50/p90/p99 marked and the SLO if given.")
        if len(tl):
            rep.section("Over time")
            fig, ax = new_figure(figsize=(11, 4))
            plot_utilization(tl, ax=ax)
            rep.figure(fig, "utilization", "Requests per step (left axis: each sampled step, faint, and a rolling "
                                           "mean) and KV-cache utilization (right axis) of the first replica over "
                                           "simulated time.")
            first = tl[tl["replica"] == tl["replica"].min()] if "replica" in tl.columns else tl
            start = float(first["time_s"].quantile(0.5))
            fig, ax = new_figure(figsize=(11, 3.4))
            plot_step_timeline(tl, ax=ax, start_s=start, max_steps=args.timeline_steps)
            rep.figure(fig, "step-timeline", f"{args.timeline_steps} consecutive (sampled) steps of the first replica "
                                             "from the middle of the run: bars are steps by kind, gaps are idle time, "
                                             "the line is the batch size.")
        if rates:
            rows = []
            for r in rates:
                a2 = copy.copy(args)
                a2.rate = "inf" if math.isinf(r) else repr(r)
                if args.trace:
                    a2.trace_speedup = 1.0
                rr = simulate(serve_cmd._scenario(a2), args.hw, args.model, **kw)
                rows.append({"rate_rps": r, **{k: v for k, v in rr.summary.items()
                                               if not isinstance(v, (dict, list, tuple))}})
            sweep = pd.DataFrame(rows)
            rep.section("Load sweep", "The same configuration at other arrival rates.")
            fig, axes = new_figure(1, 2, figsize=(11, 4.2))
            for ax, lat in zip(axes, ("tpot", "ttft")):
                long = pd.concat([sweep.assign(label=f"p{q}", latency_s=sweep[f"{lat}_p{q}_s"]) for q in (50, 99)])
                plot_throughput_latency(long, latency="latency_s", by="label", annotate="rate_rps", ax=ax,
                                        slo=args.slo_tpot if lat == "tpot" else args.slo_ttft,
                                        title=f"throughput vs {lat.upper()} (points: req/s)")
                ax.set_xlabel(ax.get_xlabel().replace("latency", lat.upper()))
            rep.figure(fig, "load-sweep", "Output throughput against TPOT and TTFT percentiles as the arrival rate "
                                          "grows (each point one simulation).")
            cols = [c for c in ("rate_rps", "request_throughput_rps", "output_throughput_tok_s", "ttft_p50_s",
                                "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "slo_attainment", "goodput_rps",
                                "kv_utilization_mean", "batch_size_mean", "usd_per_mtok_output") if c in sweep.columns]
            rep.table(sweep[cols], "load-sweep", "One simulation per arrival rate.")
    rep.section("Requests and steps")
    rep.table(req, "requests", "Finished requests (all rows in requests.csv).", max_rows=30)
    rep.table(tl, "timeline", "Sampled steps of every replica (all rows in timeline.csv; trace.json opens in "
                              "ui.perfetto.dev).", max_rows=30)
    system, _ = resolve_system(args.hw, (s.get("chips") or 1) // max(s.get("replicas") or 1, 1),
                               args.overrides or None)
    files = hardware_files(system) + model_files(args.model)
    if args.trace:
        tf = _trace_file(args.trace)
        if tf:
            files.append(("trace", Path(tf).name, tf))
    rep.provenance(prediction_inputs(args, "serve"), files, command_line())
    return _finish(args, rep, out)


# ---------------------------------------------------------------------------------------------
# sweep


def metric_sense(metric: str) -> str:
    """'max' for metrics where more is better (throughputs, per-joule, goodput, utilizations), else 'min'."""
    more = ("tok_s" in metric or "per_joule" in metric or metric in ("goodput_rps", "slo_attainment", "mfu", "mbu")
            or metric.endswith("_rps"))
    return "max" if more else "min"


def cmd_report_sweep(args) -> int:
    import json

    import pandas as pd

    from hwmodels.errors import SpecError
    from reports.html import Report, command_line
    from reports.style import style
    from reports.sweep_plots import heatmap_figure, pareto_figure, sensitivity_figure
    from sim.sweep import load_results, pareto_front, parse_objectives, sensitivity
    from sim.sweep.pareto import DEFAULT_FRONTS

    src = Path(args.results)
    table = load_results(src)
    meta = {}
    meta_path = src / "_sweep.json" if src.is_dir() else None
    if meta_path is not None and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
    metric = args.metric or ("usd_per_mtok_output" if "usd_per_mtok_output" in table.columns else None)
    if metric is not None and metric not in table.columns:
        import difflib

        hint = difflib.get_close_matches(metric, list(table.columns), n=1)
        raise SpecError(f"--metric {metric}: not a column of the table" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
    sense = metric_sense(metric) if metric else "min"
    axes = list(meta.get("axes") or {}) or [c for c in table.columns if c.startswith(("hw.", "serving."))]
    axes = [a for a in axes if a in table.columns]
    fronts = [parse_objectives(t, table.columns) for t in args.pareto] or \
        [f for f in DEFAULT_FRONTS if all(c in table.columns and table[c].notna().any() for c in f)]
    ok = table
    if "status" in ok.columns:
        ok = ok[ok["status"] == "ok"]
    if "fits" in ok.columns:
        ok = ok[ok["fits"].fillna(True).astype(bool)]

    out = Path(args.out)
    name = meta.get("name") or src.stem
    rep = Report(args.title or f"llmsim sweep: {name}",
                 f"{len(table):,} points, {len(ok):,} feasible; evaluator {meta.get('evaluator', '?')}; "
                 f"hardware {meta.get('hardware', ', '.join(map(str, table.get('hardware', pd.Series()).unique()[:4])))}")
    rep.section("Summary")
    counts = table["status"].value_counts().to_dict() if "status" in table.columns else {"rows": len(table)}
    rep.key_values({"points": len(table), **{f"status {k}": v for k, v in counts.items()}, "feasible": len(ok),
                    "metric": metric or "-", "metric sense": sense}, "counts", formatted=False)
    if axes:
        rows = []
        for a in axes:
            v = table[a]
            num = pd.api.types.is_numeric_dtype(v)
            rows.append({"axis": a, "levels": int(v.nunique()), "min": v.min() if num else "",
                         "max": v.max() if num else "", "values": ", ".join(map(str, sorted(v.dropna().unique())[:8]))
                         + (" ..." if v.nunique() > 8 else "")})
        rep.table(pd.DataFrame(rows), "axes", "The swept axes (hardware axes in SI units).", formatted=False)
    if "status" in table.columns and (table["status"] != "ok").any():
        bad = table[table["status"] != "ok"]
        why = bad["reason"].fillna(bad.get("error", pd.Series(index=bad.index, dtype=object))).fillna("?")
        rep.table(pd.DataFrame({"status": bad["status"], "reason": why}).value_counts().reset_index(name="points"),
                  "not-ok", "Points that could not run, by reason.", formatted=False)
    show = [c for c in axes + ["model", "quant", "tp", "batch", "ttft_s", "tpot_s", "output_tok_s_per_chip",
                               "usd_per_hour", "usd_per_mtok_output", "joules_per_output_token", "chips"]
            if c in table.columns]
    if metric and len(ok):
        best = ok.sort_values(metric, ascending=sense == "min").head(args.top)
        rep.table(best[list(dict.fromkeys(show + [metric]))], "best", f"The {len(best)} best points by {metric} ({sense}).")
    with style("light"):
        if fronts and len(ok):
            rep.section("Pareto fronts", "Points no other point beats on both objectives (feasible points only).")
            for i, f in enumerate(fronts):
                x, y = list(f)[:2]
                fig = pareto_figure(table, f)
                rep.figure(fig, f"pareto-{i + 1}", f"{x} ({f[x]}) against {y} ({f[y]}).")
                ft = pareto_front(table, f)
                rep.table(ft[list(dict.fromkeys(show + [x, y]))], f"pareto-{i + 1}", f"The front of {x} ({f[x]}) and "
                                                                                     f"{y} ({f[y]}).")
        if metric and len(ok) > 1 and axes:
            sens = sensitivity(table, metric, axes=axes, sense=sense)
            if len(sens):
                rep.section("Sensitivity", f"Which axis moves {metric} most: the share of its variance each axis "
                                           "explains alone, and its elasticity (% change per % change of the axis).")
                rep.figure(sensitivity_figure(sens, metric), "sensitivity", f"Sensitivity of {metric} to each axis.")
                rep.table(sens, "sensitivity", "One row per axis, most influential first.", formatted=False)
                top = [a for a in sens["axis"] if table[a].nunique() <= 40][:2]
                if len(top) == 2:
                    rep.figure(heatmap_figure(table, top[0], top[1], metric), "heatmap",
                               f"{metric} over the two strongest axes ({top[0]} x {top[1]}), mean over the others.")
    rep.section("All points")
    rep.table(table, "results", "Every point of the sweep (all rows and columns in results.csv).", max_rows=50,
              collapsed=len(table) > 50)
    if meta.get("derived"):
        rep.table(pd.DataFrame([{"column": k, "meaning": v} for k, v in meta["derived"].items()]), "derived-columns",
                  "What the derived columns mean (from the sweep).", formatted=False)
    files = []
    for role, key in (("sweep spec", "spec"), ("hardware", "hardware")):
        p = meta.get(key)
        if not p:
            continue
        # paths are as the sweep was given them (relative to where it ran); a file not found here
        # is listed with sha256 'missing'
        cand = [Path(p), src.parent / p]
        found = next((c for c in cand if c.is_file()), None)
        if found is None and role == "hardware":
            try:
                from hwmodels.loader import resolve

                found = resolve(p)
            except SpecError:
                found = None
        files.append((role, Path(p).name, str(found or p)))
    if "model" in table.columns:
        for m in sorted(table["model"].dropna().unique()):
            try:
                files += model_files(m)
            except SpecError:
                pass
    parts = sorted(src.glob("*.parquet")) if src.is_dir() else [src]
    files += [("results", p.name, str(p)) for p in parts]
    if meta_path is not None and meta_path.is_file():
        files.append(("results", meta_path.name, str(meta_path)))
    inputs = {"report": "sweep", "results": str(src), "metric": metric or "-", "sense": sense,
              "pareto": "; ".join(args.pareto) or "(standard fronts)", "top": args.top}
    for k in ("name", "evaluator", "fingerprint", "units"):
        if k in meta:
            inputs[f"sweep {k}"] = meta[k]
    for i, a in enumerate(meta.get("cost_assumptions") or []):
        inputs[f"assumption {i + 1}"] = a
    rep.provenance(inputs, files, command_line())
    return _finish(args, rep, out)


if __name__ == "__main__":  # pragma: no cover
    from llmsim.cli import main

    sys.exit(main(["report", *sys.argv[1:]]))
