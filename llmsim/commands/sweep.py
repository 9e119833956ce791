"""`llmsim sweep SPEC.yaml`: run a design-space sweep into a resumable Parquet folder, then summarize it.

Prints the points (generated, excluded by constraints, already done, run), the speed, the cost
assumptions, the best points by a metric, Pareto fronts and the sensitivity of a metric to each
axis. ``--plots DIR`` draws the fronts and sensitivities (reports/sweep_plots.py).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from hwmodels.errors import InfeasibleError, SpecError
from llmsim.commands._common import calibration_text, print_json, say_warnings
from workloads.model import context_warning, load_model, model_warnings


def _context_warnings(table) -> list:
    """Each model's longest request (prompt + output) among the points, where it is longer than the model's
    max_position_embeddings: priced as a what-if, said as predict and serve say it (a point that set
    serving.max_model_len rejects them instead, and is left out)."""
    cols = set(table.columns)
    if not {"model", "input_len", "output_len"} <= cols or table.empty:
        return []
    rows = table[table["max_model_len"].isna()] if "max_model_len" in cols else table
    out = []
    for m, tokens in (rows["input_len"] + rows["output_len"]).groupby(rows["model"]).max().items():
        try:
            w = None if tokens != tokens else context_warning(load_model(m), int(tokens))
        except (SpecError, OSError, ValueError):  # a model that does not load: its points said why
            w = None
        out += [w] if w else []
    return out


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a design-space sweep (grid / random / Latin hypercube) into Parquet")
    p.add_argument("spec", metavar="SPEC.yaml", help="sweep specification (docs/sweeps.md)")
    p.add_argument("--out", metavar="DIR", help="results folder of Parquet parts (default: ./<name>.parquet); "
                                               "a rerun skips the points already there")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: one per CPU; 1 = no pool)")
    g.add_argument("--dask", metavar="ADDRESS", help="run on Dask: a scheduler address (tcp://host:8786) or 'local' "
                                                     "(a LocalCluster on this machine)")
    p.add_argument("--dask-workers", type=int, metavar="N", help="workers of --dask local (default: one per CPU)")
    p.add_argument("--retry-failed", action="store_true", help="run again the points recorded as failed")
    p.add_argument("--limit", type=int, metavar="N", help="run at most N of the points left")
    p.add_argument("--dry-run", action="store_true", help="count the points (and those the constraints exclude); run nothing")
    p.add_argument("--metric", metavar="NAME", help="metric for the best-points table and the sensitivity "
                                                    "(default: usd_per_mtok_output)")
    p.add_argument("--top", type=int, default=5, metavar="N", help="best points to print (default 5)")
    p.add_argument("--pessimistic", type=float, metavar="LEVEL",
                   help="rank the best points by the slow end of the metric's LEVEL prediction interval (e.g. 0.8; "
                        "static request sweeps; docs/uncertainty.md)")
    p.add_argument("--pareto", action="append", default=[], metavar="A:max,B:min",
                   help="a Pareto front to report (repeatable); default: the standard fronts the table has")
    p.add_argument("--plots", metavar="DIR", help="write Pareto and sensitivity plots (PNG + SVG) into DIR")
    p.add_argument("--json", action="store_true", help="print the run summary, fronts and sensitivity as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stack", metavar="NAME|FILE", help="serving-stack profile (overrides the spec's 'stack'; "
                                                        "default: the spec's, else vllm; docs/stacks.md)")
    p.set_defaults(func=cmd_sweep)


def _table(df, cols, width=110) -> str:
    """Rows with readable units and labels (hwmodels.format through reports.tables); raw SI stays in Parquet."""
    from hwmodels.format import label
    from reports.tables import render_table

    cols = [c for c in cols if c in df.columns]
    text = render_table(df[cols], headers={c: label(c) for c in cols}, width=width)
    return "\n".join("  " + line for line in text.splitlines())


def _sens_table(sens, metric: str, width=110) -> str:
    """The sensitivity table: axis names as labels, levels in the axis's unit, means in the metric's."""
    import pandas as pd

    from hwmodels.format import fmt_number, fmt_pct, format_value, label
    from reports.tables import render_table

    rows = [{"axis": label(r["axis"]), "levels": fmt_number(r["levels"]), "share of variance": fmt_pct(r["share"]),
             "elasticity": f"{float(r['elasticity']):+.2f}" if pd.notna(r["elasticity"]) else "-",
             "best level": format_value(str(r["axis"]), r["best_level"]),
             "mean there": format_value(metric, r["best_mean"])} for r in sens.to_dict("records")]
    text = render_table(pd.DataFrame(rows), width=width, formatted=True)
    return "\n".join("  " + line for line in text.splitlines())


def _calibrations(table, say=str) -> str | None:
    """The calibration states of the hardware the points ran on (the table's ``calibration`` column), each once."""
    if "calibration" not in table.columns:
        return None
    return ", ".join(say(c) for c in sorted(map(str, table["calibration"].dropna().unique()))) or None


def _stack_line(spec) -> str:
    """The serving-stack profile the sweep's points run (the spec's, else the default; a serving
    block or axis that names one per point says so)."""
    from hwmodels.stack import load_stack

    name = load_stack(getattr(spec, "stack", None)).name
    per_point = "stack" in getattr(spec, "axis_names", ()) or getattr(spec, "fixed", {}).get("stack") is not None
    return name + (" (the serving block's 'stack' where it names one)" if per_point else "")


def cmd_sweep(args) -> int:
    from sim.sweep import load_spec, pareto_front, parse_objectives, run_sweep, sensitivity
    from sim.sweep.pareto import DEFAULT_FRONTS
    from sim.sweep.points import count, generate
    from sim.sweep.runner import prefilter

    spec = load_spec(args.spec)
    if args.pessimistic is not None:  # a bad level is bad input before anything runs
        from sim.uncertainty import check_level

        try:
            check_level(args.pessimistic)
        except SpecError as e:
            raise SpecError(f"--pessimistic: {e.problems[0].message}") from None
    if getattr(args, "stack", None):
        import dataclasses

        from hwmodels.stack import load_stack

        load_stack(args.stack)  # a bad name or file: exit 2 before anything runs
        spec = dataclasses.replace(spec, stack=args.stack)
    if args.dry_run:
        frame = generate(spec)
        kept, excluded = prefilter(spec, frame)
        print("\n".join(spec.describe()))
        print(f"serving stack {_stack_line(spec)}")
        print(f"points: {count(spec):,} ({len(frame):,} distinct), {excluded:,} excluded by constraints, "
              f"{len(kept):,} to run")
        return 0
    out = args.out or f"{spec.name}.parquet"
    workers = args.workers
    if workers is not None and workers < 1:
        raise SpecError(f"--workers must be at least 1; got {workers}")
    run = run_sweep(spec, out, workers=workers if not args.dask else args.dask_workers, dask=args.dask,
                    retry_failed=args.retry_failed, progress=False if args.no_progress else None, limit=args.limit)
    # the models' config warnings (an unknown activation name, priced by a rule), once each
    models = [spec.fixed["model"]] if "model" in spec.fixed else \
        [v for a in spec.axes if a.name == "model" for v in (a.values or ())]
    table = run.table
    warnings = model_warnings(*models) + _context_warnings(table)
    say_warnings(warnings)
    metric = args.metric or ("usd_per_mtok_output" if "usd_per_mtok_output" in table.columns else None)
    fronts = [parse_objectives(t, table.columns) for t in args.pareto] or \
        None
    ok = table[table["status"] == "ok"] if "status" in table.columns else table
    if "fits" in ok.columns:
        ok = ok[ok["fits"].fillna(True).astype(bool)]
    if fronts is None:  # the standard fronts whose objectives this table has and that vary
        fronts = [f for f in DEFAULT_FRONTS if all(c in ok.columns and ok[c].nunique(dropna=True) > 1 for c in f)]
    sens = None
    if metric is not None and metric not in table.columns:
        import difflib

        hint = difflib.get_close_matches(metric, list(table.columns), n=1)
        raise SpecError(f"--metric {metric}: not a column of the table" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
    sense = "max" if metric and ("tok_s" in metric or "per_joule" in metric or metric in ("goodput_rps", "slo_attainment",
                                                                                          "mfu", "mbu")) else "min"
    if metric and len(ok) > 1 and len(spec.axes):
        sens = sensitivity(table, metric, sense=sense)
    front_tables = [(f, pareto_front(table, f)) for f in fronts]
    if args.plots:
        from reports.sweep_plots import write_plots

        write_plots(table, [f for f, _ in front_tables], metric, args.plots, sensitivity_table=sens, sense=sense)
    slow = None
    if args.pessimistic is not None and metric and len(ok):
        from sim.sweep.pessimistic import rank_pessimistic

        slow = rank_pessimistic(spec, ok, metric, sense, float(args.pessimistic), args.top)
    if args.json:
        print_json({"run": run.summary(),
                    "pessimistic": None if slow is None else {"interval_level": args.pessimistic, "metric": metric,
                                                              "best": slow.to_dict("records")},
                    "stack": _stack_line(spec), "calibration": _calibrations(table), "assumptions": spec.cost.describe() + list(spec.cost.sources),
                    "fronts": [{"objectives": f, "rows": t.to_dict("records")} for f, t in front_tables],
                    "sensitivity": None if sens is None else sens.to_dict("records"), "warnings": warnings})
        return _exit(run, table)
    print("\n".join(spec.describe()))
    print(f"serving stack {_stack_line(spec)}")
    rate = f"{run.points_per_s:,.0f} points/s" if run.ran and math.isfinite(run.points_per_s) else "nothing to run"
    print(f"points: {run.points:,} generated, {run.excluded:,} excluded by constraints, {run.skipped:,} already done, "
          f"{run.ran:,} run in {run.wall_s:.2f} s ({rate}, {run.backend})")
    print(f"  ok {int((table['status'] == 'ok').sum()):,}, infeasible {int((table['status'] == 'infeasible').sum()):,}, "
          f"errors {int((table['status'] == 'error').sum()):,} (whole table: {len(table):,} rows)")
    if _calibrations(table):
        print(f"efficiency data: {_calibrations(table, calibration_text)}")
    print(f"results: {out}/ (Parquet parts; pandas.read_parquet('{out}') reads them)")
    print("cost: " + "; ".join(spec.cost.describe()))
    if spec.area:
        print(f"area model: {spec.area['node']}, {spec.area['memory']}, {spec.area['yield_model']} yield, "
              f"mode {spec.area['mode']}")
    if spec.power:
        print(f"power model: {spec.power['node']}, {spec.power['memory']}, mode {spec.power['mode']}")
    from hwmodels.format import label

    axes = [a.name for a in spec.axes]
    if metric and len(ok):
        best = ok.sort_values(metric, ascending=sense == "min").head(args.top)
        print(f"\nbest {min(args.top, len(ok))} by {label(metric)} ({'lowest' if sense == 'min' else 'highest'}):")
        print(_table(best, axes + [metric, "output_tok_s_per_chip", "usd_per_hour", "chips"]))
    if slow is not None:
        print(f"\nbest {len(slow)} by the slow end of the {args.pessimistic:g} prediction interval of {label(metric)} "
              f"(each point predicted again for its interval; slow end ratio = slow end / point):")
        print(_table(slow, axes + [metric, f"{metric}_slow", "slow_end_ratio"]))
    for f, t in front_tables:
        names = list(f)
        print(f"\nPareto front {' vs '.join(f'{label(k)} ({v})' for k, v in f.items())}: {len(t)} of {len(ok)} points")
        print(_table(t.head(15), axes + names) + ("\n  ..." if len(t) > 15 else ""))
    if sens is not None and len(sens):
        print(f"\nsensitivity of {label(metric)} (share of its variance each axis explains alone; elasticity = % "
              "change per % change of the axis):")
        print(_sens_table(sens, metric))
    errs = table[table["status"] == "error"]
    if len(errs):
        print(f"\n{len(errs)} point(s) failed (kept in the table with their error; --retry-failed runs them again); first: "
              f"{errs['error'].iloc[0]}", file=sys.stderr)
    if args.plots:
        print(f"\nplots: {Path(args.plots)}/")
    return _exit(run, table)


def _exit(run, table) -> int:
    st = table["status"] if "status" in table.columns else None
    if st is None or not len(table) or (st == "ok").any():
        return 0
    if (st == "infeasible").any():
        reasons = table.loc[st == "infeasible", "reason"].value_counts()
        raise InfeasibleError(f"no point of the sweep can run; most common reason ({reasons.iloc[0]} points): "
                              f"{reasons.index[0]}")
    return 1
