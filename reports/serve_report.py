"""The HTML report of a serving simulation (``llmsim report serve``).

Latency percentiles and CDFs against the SLOs, KV-cache utilization and batch size over time, a
window of one replica's steps, optionally a load sweep (throughput against TTFT/TPOT percentiles
over arrival rates), the requests and steps, and the inputs with the hashes of the hardware,
model and trace files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from hwmodels.format import fmt_time
from reports.html import Report, command_line, hardware_files, model_files, stack_files
from reports.serving_plots import (
    latency_percentiles,
    plot_latency_cdf,
    plot_step_timeline,
    plot_throughput_latency,
    plot_utilization,
)
from reports.style import new_figure, style

__all__ = ["SERVE_HEADLINE", "serve_report", "trace_file"]

SERVE_HEADLINE = ("requests_completed", "requests_rejected", "duration_s", "request_throughput_rps",
                  "output_throughput_tok_s", "output_throughput_per_chip_tok_s", "ttft_p50_s", "ttft_p99_s",
                  "tpot_p50_s", "tpot_p99_s", "e2e_p50_s", "e2e_p99_s", "slo_ttft_s", "slo_tpot_s", "slo_attainment",
                  "goodput_rps", "kv_utilization_mean", "batch_size_mean", "preemptions", "usd_per_hour",
                  "usd_per_mtok_output", "energy_j_per_output_token", "mfu", "mbu")


def trace_file(name) -> str | None:
    """The file behind a trace name or path (a built-in trace's packaged file), or None."""
    p = Path(str(name))
    if p.is_file():
        return str(p)
    try:
        import workloads.data.traces as traces_pkg
    except ImportError:
        return None
    cand = Path(traces_pkg.__file__).parent / f"{name}.csv.gz"
    return str(cand) if cand.is_file() else None


def _summary_section(rep: Report, s: dict, req: pd.DataFrame) -> None:
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


def _time_sections(rep: Report, req: pd.DataFrame, tl: pd.DataFrame, slo_ttft, slo_tpot, timeline_steps: int) -> None:
    if len(req):
        rep.section("Latency")
        fig, axes = new_figure(1, 2, figsize=(11, 4.2))
        plot_latency_cdf(req, "ttft_s", ax=axes[0], slo=slo_ttft)
        plot_latency_cdf(req, "tpot_s", ax=axes[1], slo=slo_tpot)
        rep.figure(fig, "latency-cdf", "Distribution of time to first token (left) and time per output token "
                                       "(right) over requests, with p50/p90/p99 marked and the SLO if given.")
    if len(tl):
        rep.section("Over time")
        fig, ax = new_figure(figsize=(11, 4))
        plot_utilization(tl, ax=ax)
        rep.figure(fig, "utilization", "Requests per step (left axis: each sampled step, faint, and a rolling "
                                       "mean) and KV-cache utilization (right axis) of the first replica over "
                                       "simulated time.")
        if timeline_steps < 1:  # --timeline-steps 0: no step timeline
            return
        first = tl[tl["replica"] == tl["replica"].min()] if "replica" in tl.columns else tl
        start = float(first["time_s"].quantile(0.5))
        fig, ax = new_figure(figsize=(11, 3.4))
        plot_step_timeline(tl, ax=ax, start_s=start, max_steps=timeline_steps)
        rep.figure(fig, "step-timeline", f"{timeline_steps} consecutive (sampled) steps of the first replica "
                                         "from the middle of the run: a bar spans one step, coloured by kind, its "
                                         "height is the step's batch size; gaps are idle time.")


def _load_sweep_section(rep: Report, rates: list[float], simulate_at: Callable[[float], object],
                        slo_ttft, slo_tpot) -> None:
    rows = []
    for r in rates:
        rr = simulate_at(r)
        rows.append({"rate_rps": r, **{k: v for k, v in rr.summary.items() if not isinstance(v, (dict, list, tuple))}})
    sweep = pd.DataFrame(rows)
    rep.section("Load sweep", "The same configuration at other arrival rates.")
    fig, axes = new_figure(1, 2, figsize=(11, 4.2))
    for ax, lat in zip(axes, ("tpot", "ttft")):
        long = pd.concat([sweep.assign(label=f"p{q}", latency_s=sweep[f"{lat}_p{q}_s"]) for q in (50, 99)])
        plot_throughput_latency(long, latency="latency_s", by="label", annotate="rate_rps", ax=ax,
                                slo=slo_tpot if lat == "tpot" else slo_ttft,
                                title=f"throughput vs {lat.upper()} (points: req/s)")
        ax.set_xlabel(ax.get_xlabel().replace("latency", lat.upper()))
    rep.figure(fig, "load-sweep", "Output throughput against TPOT and TTFT percentiles as the arrival rate "
                                  "grows (each point one simulation).")
    cols = [c for c in ("rate_rps", "request_throughput_rps", "output_throughput_tok_s", "ttft_p50_s",
                        "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "slo_attainment", "goodput_rps",
                        "kv_utilization_mean", "batch_size_mean", "usd_per_mtok_output") if c in sweep.columns]
    rep.table(sweep[cols], "load-sweep", "One simulation per arrival rate.")


def serve_report(res, system, *, model, slo_ttft: float | None = None, slo_tpot: float | None = None,
                 timeline_steps: int = 150, rates: list[float] = (),
                 simulate_at: Callable[[float], object] | None = None, trace: str | None = None,
                 inputs: dict | None = None, title: str | None = None, stack=None) -> Report:
    """The report of serving result ``res`` (``sim.serving.simulate``) on ``system`` (one
    replica's System, for the hardware files).

    ``rates`` with ``simulate_at(rate)`` (the same configuration at another arrival rate) add a
    load sweep; ``model``, ``trace``: the model and trace as given (their files are hashed)."""
    s = res.summary
    req, tl = res.requests, res.timeline
    pool = (f"{s['prefill_replicas']} prefill + {s['decode_replicas']} decode replicas" if s["scheduler"] == "disagg"
            else f"{s['replicas']} replica{'s' if s['replicas'] > 1 else ''}")
    rep = Report(title or f"llmsim serving: {s['model']} on {s['system']}",
                 f"{pool}, tp={s['tp']} pp={s['pp']} ep={s['ep']}, {s['quant']}, scheduler {s['scheduler']}; "
                 f"{s['requests_completed']:,} requests completed in {fmt_time(s['duration_s'])} simulated")
    for n in s.get("notes") or []:
        rep.note(n)
    if s.get("stack"):  # as the predict report says them (every summary of simulate() names its stack)
        rep.note(f"serving stack: {s['stack']}"
                 + (f"; hardware calibration: {s['calibration']}" if s.get("calibration") else ""))
    for w in s.get("warnings") or []:
        rep.note(f"warning: {w}")
    _summary_section(rep, s, req)
    with style("light"):
        _time_sections(rep, req, tl, slo_ttft, slo_tpot, timeline_steps)
        if rates and simulate_at is not None:
            _load_sweep_section(rep, list(rates), simulate_at, slo_ttft, slo_tpot)
    rep.section("Requests and steps")
    rep.table(req, "requests", "Finished requests (all rows in requests.csv).", max_rows=30)
    rep.table(tl, "timeline", "Sampled steps of every replica (all rows in timeline.csv; trace.json opens in "
                              "ui.perfetto.dev).", max_rows=30)
    files = hardware_files(system) + model_files(model) + stack_files(stack)
    tf = trace_file(trace) if trace else None
    if tf:
        files.append(("trace", Path(tf).name, tf))
    rep.provenance(inputs, files, command_line())
    return rep
