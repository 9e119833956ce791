"""Figures and files of ``llmsim optimize``: the waterfall of the ladder, its CSV.

``waterfall(result)`` draws the ladder on the optimized chip as a multiplicative waterfall
(log-scale output throughput; each bar spans the step's before and after, labelled with its
speedup; lossy steps hatched) and, beside it, the baseline and optimized throughput of every
alternative chip. ``write_outputs(result, out_dir)`` writes ``optimize_waterfall.png``/``.svg``
and ``optimize.csv`` (one row per step and per skipped technique, for every chip). Matplotlib
with the Agg canvas only (no pyplot, nothing global); ``sim/`` never imports this module.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from matplotlib.figure import Figure  # a bare Figure renders with Agg; pyplot is never touched

from sim.optimize import Ladder

__all__ = ["CSV_COLUMNS", "rows", "waterfall", "write_outputs"]

CSV_COLUMNS = ["hw", "step", "technique", "applied", "lossy", "ttft_s", "tpot_s", "output_throughput_tok_s",
               "running_batch", "max_batch", "waves", "usd_per_mtok_input", "usd_per_mtok_output", "tokens_per_usd",
               "speedup", "cumulative_speedup", "reason", "stack", "calibration"]

_UP, _DOWN, _BASE, _LOSSY = "#3A8FD9", "#D9534F", "#7F7F7F", "#E8833A"


def rows(result: dict) -> list[dict]:
    """CSV rows: every step (applied) and every skipped technique (with its reason), per chip."""
    out = []
    for lad in [result["ladder"], *[a for a in result["alternatives"] if isinstance(a, Ladder)]]:
        named = {"stack": lad.stack, "calibration": lad.calibration}  # the same on every row of the ladder
        for i, s in enumerate(lad.steps):
            p = s.point
            out.append({"hw": lad.hardware, "step": i, "technique": s.technique, "applied": True, "lossy": s.lossy,
                        "ttft_s": p.ttft_s, "tpot_s": p.tpot_s, "output_throughput_tok_s": p.output_throughput_tok_s,
                        "running_batch": p.running_batch, "max_batch": p.max_batch, "waves": p.waves,
                        "usd_per_mtok_input": p.usd_per_mtok_input, "usd_per_mtok_output": p.usd_per_mtok_output,
                        "tokens_per_usd": p.tokens_per_usd, "speedup": s.speedup,
                        "cumulative_speedup": s.cumulative_speedup, "reason": "", **named})
        for name, why in lad.skipped:
            out.append({"hw": lad.hardware, "step": "", "technique": name, "applied": False, "reason": why, **named})
    return out


def waterfall(result: dict, figsize=(11, 4.8)) -> Figure:
    """The ladder's waterfall and the alternatives' comparison, on one Figure (Agg)."""
    lad: Ladder = result["ladder"]
    alts = [a for a in result["alternatives"] if isinstance(a, Ladder)]
    fig = Figure(figsize=figsize, layout="constrained")
    if alts:
        ax, ax2 = fig.subplots(1, 2, width_ratios=[max(3, len(lad.steps) + 1), max(2, len(alts) + 1)])
    else:
        ax, ax2 = fig.subplots(1, 1), None
    thr = [s.point.output_throughput_tok_s for s in lad.steps]
    floor = 10 ** math.floor(math.log10(min(thr) / 2))
    labels = []
    for i, s in enumerate(lad.steps):
        lo = floor if i == 0 else thr[i - 1]
        hi = thr[i]
        color = _BASE if i == 0 else (_UP if hi >= lo else _DOWN)
        ax.bar(i, hi - lo, bottom=lo, color=color, edgecolor="black", linewidth=0.5,
               hatch="//" if s.lossy else None)
        if i:
            ax.text(i, max(hi, lo) * 1.04, f"x{s.speedup:.2f}", ha="center", va="bottom", fontsize=8)
            ax.plot([i - 1.4, i + 0.4], [lo, lo], color="black", linewidth=0.5, linestyle=":")
        labels.append(s.technique + ("*" if s.lossy else ""))
    n = len(lad.steps)
    ax.bar(n, thr[-1] - floor, bottom=floor, color=_UP, alpha=0.45, edgecolor="black", linewidth=0.5)
    ax.text(n, thr[-1] * 1.04, f"x{lad.total_speedup:.1f}", ha="center", va="bottom", fontsize=8, fontweight="bold")
    labels.append("total")
    ax.set_yscale("log")
    ax.set_ylim(floor, max(thr) * 2.2)
    ax.set_xticks(range(n + 1), labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("output throughput (tok/s, log)")
    wl = lad.workload
    ax.set_title(f"{lad.model} on {lad.system}: {wl.batch} x ({wl.input_len} in, {wl.output_len} out)", fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    if any(s.lossy for s in lad.steps):
        ax.text(0.01, 0.98, "hatched/*: lossy (changes outputs)", transform=ax.transAxes, fontsize=7, va="top")
    if ax2 is not None:
        chips = [lad, *alts]
        xs = range(len(chips))
        base = [c.steps[0].point.output_throughput_tok_s for c in chips]
        best = [c.final.point.output_throughput_tok_s for c in chips]
        ax2.bar([x - 0.2 for x in xs], base, width=0.4, color=_BASE, label="baseline")
        ax2.bar([x + 0.2 for x in xs], best, width=0.4, color=_UP, label="optimized")
        for x, c, b in zip(xs, chips, best):
            usd = c.final.point.usd_per_mtok_output
            ax2.text(x + 0.2, b * 1.05, f"{usd:.2f} $/M" if usd is not None else "no price", ha="center",
                     va="bottom", fontsize=7, rotation=90)
        ax2.set_yscale("log")
        ax2.set_ylim(min(min(base), min(best)) / 2, max(best) * 6)
        ax2.set_xticks(list(xs), [c.hardware for c in chips], rotation=35, ha="right", fontsize=8)
        ax2.set_title("baseline vs optimized per chip", fontsize=10)
        ax2.legend(fontsize=7, loc="lower right")
        ax2.grid(axis="y", which="both", alpha=0.3)
    return fig


def write_outputs(result: dict, out_dir) -> list[Path]:
    """Write ``optimize_waterfall.png``/``.svg`` and ``optimize.csv`` under ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = waterfall(result)
    png, svg = out / "optimize_waterfall.png", out / "optimize_waterfall.svg"
    fig.savefig(png, format="png", dpi=120)
    fig.savefig(svg, format="svg")
    path = out / "optimize.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows(result):
            w.writerow({k: ("" if v is None else (f"{v:.9g}" if isinstance(v, float) else v)) for k, v in r.items()})
    return [png, svg, path]
