"""`llmsim compare`: several chips or systems side by side on the same workload.

Each ``--hw`` is predicted with :func:`sim.predict.predict` on the same model, batch, lengths,
parallelism and quantization. The terminal shows one column per hardware (80 columns wide,
split into blocks when there are many); ``--json`` prints every prediction; ``--out DIR`` writes
an HTML report with bar charts of the headline metrics, the breakdown by op category across
the hardware, and the table as CSV.

A hardware entry may carry its own overrides after commas, so variants of one chip can be
compared: ``--hw h100-sxm --hw "h100-sxm,memory.hbm.bandwidth=6 TB/s"``. ``--set`` applies to every
entry. Hardware on which the workload does not fit (or cannot run) is kept, with its reason;
the exit code is 3 only when none of them can run.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from hwmodels.errors import InfeasibleError, SpecError
from llmsim.commands._common import print_json, say_warnings
from sim.hwcompare import parse_hw, results_frame  # noqa: F401  (parse_hw: kept importable from here)

#: rows of the terminal table: (column of the result, title)
METRICS = [
    ("system", "system"),
    ("chips", "chips"),
    ("ttft_s", "TTFT"),
    ("tpot_s", "TPOT"),
    ("e2e_s", "end-to-end"),
    ("output_throughput_tok_s", "throughput"),
    ("per_chip_output_throughput_tok_s", "throughput/chip"),
    ("memory_used_bytes", "memory/chip"),
    ("memory_capacity_bytes", "capacity/chip"),
    ("usd_per_hour", "price"),
    ("usd_per_mtok_output", "USD/M out tok"),
    ("joules_per_output_token", "energy/out tok"),
    ("mfu", "MFU"),
    ("mbu", "MBU"),
    ("bound", "main bound"),
]
#: bar charts in the HTML report
CHART_METRICS = ("ttft_s", "tpot_s", "output_throughput_tok_s", "per_chip_output_throughput_tok_s",
                 "usd_per_mtok_output", "joules_per_output_token")


def register(sub) -> None:
    from llmsim.commands._config import add_config_arguments
    from llmsim.commands.predict import add_technique_options, add_workload_options
    from sim.config import PredictConfig

    p = sub.add_parser("compare", help="several chips or systems side by side on one workload",
                       description="Predict the same workload on several chips or systems and show them side by "
                                   "side. A --hw value may carry overrides after commas: "
                                   "--hw \"h100-sxm,memory.hbm.bandwidth=6 TB/s\".")
    p.add_argument("--hw", action="append", required=True, metavar="HW[,PATH=VALUE...]",
                   help="chip or system (catalog name or YAML path); repeat for each; optional per-entry overrides")
    add_workload_options(p, hw=False)
    p.add_argument("--batch", type=int, required=True, help="requests in the batch")
    p.add_argument("--input-len", type=int, required=True, help="prompt tokens per request")
    p.add_argument("--output-len", type=int, required=True, help="output tokens per request")
    add_technique_options(p)
    add_config_arguments(p, PredictConfig, "intervals")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--out", metavar="DIR", help="also write an HTML report and CSV into DIR")
    p.add_argument("--title", help="title of the HTML report")
    p.set_defaults(func=cmd_compare)


def run_compare(args) -> list[dict]:
    """One record per --hw (sim.hwcompare.compare_records with the flags' settings; each --hw entry
    names its hardware)."""
    from llmsim.commands.predict import predict_config
    from sim.hwcompare import compare_records

    cfg = predict_config(args, hw=None)
    records = compare_records(None, args.hw, None, None, None, args.overrides, config=cfg)
    for r in records:  # a design with overrides is outside the validation record: its ranges are widened
        if r.get("_prediction") is not None and r["overrides"]:
            add_intervals(r, r["_prediction"], r["hardware"], r["overrides"], cfg.options, cfg.interval_level)
    return records


#: the metrics whose ranges compare checks for overlap
OVERLAP_METRICS = (("e2e_s", "end-to-end"), ("output_throughput_tok_s", "throughput"),
                   ("usd_per_mtok_output", "USD/M out tok"))


def add_intervals(rec: dict, pred, name: str, overrides, options, level: float) -> None:
    """interval_level and intervals on a record; a design with overrides counts as outside the validation
    record (its ranges are widened like a new chip's)."""
    from hwmodels.loader import load_hardware
    from sim.uncertainty import check_level, prediction_intervals

    level = check_level(level)
    hw = load_hardware(name, overrides or None)
    rec["interval_level"] = level
    rec["intervals"] = prediction_intervals(pred, hw, level, options=options, unseen=bool(overrides))


def overlaps(records) -> list[dict]:
    """For each pair of designs that run (each against the first when there are more than six): whether
    their ranges of e2e, throughput and USD/Mtok overlap."""
    from sim.uncertainty import overlap

    ok = [r for r in records if r.get("fits", False) and r.get("intervals")]
    pairs = [(a, b) for i, a in enumerate(ok) for b in ok[i + 1:]] if len(ok) <= 6 else [(ok[0], b) for b in ok[1:]]
    out = []
    for a, b in pairs:
        d = {"a": a["label"], "b": b["label"]}
        for m, _ in OVERLAP_METRICS:
            if m in a["intervals"] and m in b["intervals"]:
                d[m] = overlap(a["intervals"][m], b["intervals"][m])
        out.append(d)
    return out


def workload_dict(args) -> dict:
    """Every input but the hardware list and the output flags (the same for every --hw)."""
    skip = ("func", "command", "hw", "json", "out", "title")
    d = {k: v for k, v in sorted(vars(args).items()) if k not in skip and not callable(v)}
    d["overrides"] = list(args.overrides or [])
    return d


def cmd_compare(args) -> int:
    from hwmodels.stack import load_stack
    from reports.tables import render_metrics

    records = run_compare(args)
    ok = [r for r in records if r.get("fits", False)]
    # each record's prediction carries its warnings (an unknown activation name, a request longer than the
    # model's context): on stderr once each, in the order they first come
    seen: list[str] = []
    for r in records:
        seen += [w for w in (r.get("warnings") or []) if w not in seen]
    say_warnings(seen)
    if args.json:
        print_json({"workload": workload_dict(args),
                    "results": [{k: v for k, v in r.items() if not k.startswith("_")} for r in records],
                    "interval_overlap": overlaps(records)})
    else:
        print(f"{args.model}: batch {args.batch} x ({args.input_len} in, {args.output_len} out), {args.quant}, "
              f"tp={args.tp} pp={args.pp} ep={args.ep}, {load_stack(args.stack).name} stack")
        df = results_frame(records)
        if "system" not in df.columns:
            df["system"] = None
        df.loc[~df["fits"].astype(bool), "system"] = "cannot run"
        # the efficiency data each row rests on (class-default, none: not a measurement of the chip; hw-format docs)
        print(render_metrics(df, label="label", metrics=[m for m in METRICS if m[0] in df.columns or m[0] == "system"]
                             + [m for m in (("calibration", "efficiency data"),) if m[0] in df.columns]))
        def say(text):
            print(textwrap.fill(text, width=80, subsequent_indent="  ", break_on_hyphens=False))

        for r in records:
            if r["label"] != r["hardware"]:
                say(f"{r['label']}: {r['hardware']}" + (f" with {', '.join(r['_own_overrides'])}"
                                                        if r["_own_overrides"] else ""))
        for d in overlaps(records):
            same = [t for m, t in OVERLAP_METRICS if d.get(m)]
            lvl = f"{getattr(args, 'interval_level', 0.8):.0%}"
            if same:
                say(f"{d['a']} vs {d['b']}: {lvl} ranges overlap on {', '.join(same)}: the model's validation "
                    f"record does not separate them there")
            else:
                say(f"{d['a']} vs {d['b']}: {lvl} ranges do not overlap (separated beyond the model's error)")
        for r in records:
            if not r.get("fits", False):
                say(f"{r['label']}: {r['reason']}")
            for n in (r.get("notes") or []):
                say(f"note ({r['label']}): {n}")
    if args.out:
        path = write_report(args, records)
        if not args.json:
            print(f"\nwrote {path}")
        else:
            print(f"wrote {path}", file=sys.stderr)
    return 0 if ok else 3


def write_report(args, records):
    from hwmodels.stack import load_stack
    from reports.breakdown import breakdown_table, plot_breakdown_phases
    from reports.html import Report, command_line, hardware_files, model_files, stack_files
    from reports.plots import plot_metric_bars
    from reports.style import new_figure, style
    from sim.predict import resolve_system

    out = Path(args.out)
    df = results_frame(records)
    ok = [r for r in records if r.get("fits", False)]
    rep = Report(args.title or f"llmsim compare: {args.model} on {len(records)} hardware configurations",
                 f"batch {args.batch} x ({args.input_len} in, {args.output_len} out), {args.quant}, "
                 f"tp={args.tp} pp={args.pp} ep={args.ep}, {load_stack(args.stack).name} stack")
    rep.section("Side by side")
    cols = ["label", "hardware", "overrides", "fits"] + [m for m, _ in METRICS if m in df.columns and m not in ("label",)] + \
        [c for c in ("reason", "calibration", "stack") if c in df.columns]
    rep.table(df[list(dict.fromkeys(cols))], "comparison", "One row per hardware (all columns in comparison.csv).")
    for r in records:
        if not r.get("fits", False):
            rep.note(f"{r['label']}: {r['reason']}")
    if ok:
        with style("light"):
            rep.section("Headline metrics")
            n = len(CHART_METRICS)
            fig, axes = new_figure(n // 2, 2, figsize=(11, 1.2 + 0.45 * len(records) * n / 2 + 1.2 * n / 2))
            for ax, m in zip(axes.flat, CHART_METRICS):
                plot_metric_bars(df, m, label="label", ax=ax, ylabel="hardware",
                                 intervals=[(r.get("intervals") or {}).get(m) for r in records])
            lvl = f"{ok[0].get('interval_level', 0.8):.0%}"
            rep.figure(fig, "metrics", "Headline metrics per hardware (the best one highlighted; n/a: cannot run "
                                       f"or no price); the lines are {lvl} prediction intervals from the validation "
                                       "record (docs/uncertainty.md).")
            rep.section("Where the time goes")
            table = breakdown_table({r["label"]: r["_prediction"] for r in ok})
            fig, axes = new_figure(1, 2, figsize=(11, 4.5))
            plot_breakdown_phases(table, axes=axes, xlabel="hardware")
            rep.figure(fig, "breakdown", "Step time per chip by op category: prefill (left) and one decode step at "
                                         "the mean context (right).")
            rep.table(table, "breakdown", "Seconds per step and category.")
    files = []
    for r in records:
        try:
            system, _ = resolve_system(r["hardware"], r.get("chips") or 1, r["overrides"] or None)
            files += hardware_files(system)
        except (SpecError, InfeasibleError):
            from hwmodels.loader import load_hardware

            try:
                files += hardware_files(load_hardware(r["hardware"]))
            except SpecError:
                pass
    files += model_files(args.model) + stack_files(args.stack)
    inputs = {"report": "compare", "hw": "; ".join(args.hw), **workload_dict(args)}
    inputs["overrides"] = "; ".join(inputs["overrides"]) or "(none)"
    rep.provenance(inputs, files, command_line())
    return rep.write(out)
