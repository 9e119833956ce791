"""The HTML report of a static prediction (``llmsim report predict``).

The prediction, a batch-size sweep around it (throughput-latency curve, breakdown by op category
across batch sizes), the roofline of the chip with the prefill and decode ops on it, the per-op
table, and the inputs with the hashes of the hardware and model files.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from hwmodels.errors import InfeasibleError
from reports.breakdown import breakdown_frame, breakdown_table, plot_breakdown_phases
from reports.html import Report, command_line, hardware_files, model_files, stack_files
from reports.roofline import plot_roofline, ridge_points
from reports.serving_plots import plot_throughput_latency
from reports.style import new_figure, style

__all__ = ["predict_report", "prediction_summary", "sweep_batches"]


def sweep_batches(batch: int) -> list[int]:
    """The default batch sizes of the sweep: powers of two up to 4x ``batch`` (at least 8, at most
    ten of them), and ``batch`` itself."""
    vals, b = set(), 1
    while b <= max(4 * batch, 8) and len(vals) < 10:
        vals.add(b)
        b *= 2
    vals.add(batch)
    return sorted(vals)


def prediction_summary(p) -> list[tuple[str, object]]:
    """(column, value) pairs of a prediction's headline numbers (units in the names)."""
    keys = ["model", "system", "chips", "tp", "pp", "ep", "quant", "batch", "input_len", "output_len", "ttft_s",
            "tpot_s", "e2e_s", "output_throughput_tok_s", "per_chip_output_throughput_tok_s", "weights_bytes",
            "kv_cache_bytes", "activation_bytes", "memory_capacity_bytes", "usd_per_hour", "usd_per_mtok_output",
            "usd_per_mtok_input", "joules_per_output_token", "mfu", "mbu", "stack", "calibration"]
    d = p.to_dict()
    out = [(k, d.get(k)) for k in keys]
    # technique fields (docs/optimize.md) when a technique is on
    for k in ("tokens_per_step", "speculative", "sparsity", "kv_window", "offload_bytes", "draft_bytes"):
        v = d.get(k)
        if v not in (None, 0, 0.0, 1, 1.0, False, "", {}, []):
            out.append((k, v))
    return out


def _batch_sweep(pred, batches: list[int], predict_at: Callable[[int], object]):
    """Predictions at other batch sizes: (label -> prediction of those that fit, one row per batch)."""
    preds, rows = {}, []
    for b in batches:
        try:
            pb = pred if b == pred.batch else predict_at(b)
        except InfeasibleError as e:
            rows.append({"batch": b, "fits": False, "reason": str(e)})
            continue
        preds[f"batch {b}"] = pb
        rows.append({"batch": b, **{k: v for k, v in pb.to_dict().items() if not isinstance(v, (dict, list))}})
    return preds, pd.DataFrame(rows)


def _sweep_section(rep: Report, sweep: pd.DataFrame) -> None:
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


def predict_report(pred, system, *, model, batches: list[int] = (), predict_at: Callable[[int], object] | None = None,
                   inputs: dict | None = None, title: str | None = None, stack=None) -> Report:
    """The report of prediction ``pred`` on ``system`` (the resolved System it ran on).

    ``batches``: batch sizes of the sweep, each predicted by ``predict_at(batch)`` (which may raise
    InfeasibleError: the point is listed with the reason); ``model``: the model name or file as
    given (its file is hashed); ``inputs``: the run's inputs for the provenance section."""
    chip = system.chip
    rep = Report(title or f"llmsim prediction: {pred.model} on {pred.system}",
                 f"batch {pred.batch} x ({pred.input_len} in, {pred.output_len} out), {pred.quant}, "
                 f"tp={pred.tp} pp={pred.pp} ep={pred.ep}, {pred.chips} chip{'s' if pred.chips > 1 else ''}")
    for n in pred.notes:
        rep.note(n)
    rep.note(f"serving stack: {getattr(pred, 'stack', 'ideal')}"
             + (f"; hardware calibration: {pred.calibration}" if getattr(pred, "calibration", None) else ""))
    for w in getattr(pred, "warnings", ()):
        rep.note(f"warning: {w}")
    rep.section("Summary", "Static prediction: TTFT is the prefill step, TPOT the mean decode step over the output; "
                           "throughput, cost and energy follow from them (docs/cost-model.md).")
    rep.key_values(prediction_summary(pred), "summary", "Headline numbers (raw values in summary.csv).")
    place = getattr(pred, "placement", None) or {}
    if place:
        rows = [{"tensors": {"kv_cache": "KV cache"}.get(k, k), "memory level": lvl, "bytes": b}
                for k, levels in place.items() for lvl, b in levels.items()]
        rep.table(pd.DataFrame(rows), "placement", "Where the tensors live per chip between kernels (the placement "
                                                   "the cost model prices: docs/cost-model.md).")
    bb = pd.DataFrame([{"bound": k, "share": v} for k, v in sorted(pred.bound_breakdown.items(), key=lambda kv: -kv[1])])
    rep.table(bb, "bound-breakdown", "Share of the request's time by the bound that won each op.")

    batches = list(batches) if predict_at is not None else []
    sweep = None
    with style("light"):
        rep.section("Where the time goes")
        cat = breakdown_frame(pred, label=f"batch {pred.batch}")
        rep.table(cat, "breakdown", "Time per step by op category on one chip (overhead: launch and memory latency).")
        if batches:
            preds, sweep = _batch_sweep(pred, batches, predict_at)
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
            _sweep_section(rep, sweep)
    rep.section("Per-op detail")
    rep.table(pred.to_frame(), "ops", "Every op of the prefill step and of the decode step at the mean context: "
                                      "per-execution time, total time = count x time, the terms of the cost "
                                      "model, bound, FLOPs and bytes at the main memory level (column names as "
                                      "in ops.csv in the tooltips).")
    rep.provenance(inputs, hardware_files(system) + model_files(model) + stack_files(stack), command_line())
    return rep
