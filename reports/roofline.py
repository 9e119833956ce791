"""Roofline charts: a chip's compute ceilings and memory slopes, with a workload's ops placed on it.

For a chip, each compute ceiling is a peak rate (FLOP/s) of one dtype on one unit, and each
memory level gives a slope: attainable FLOP/s = bandwidth (B/s) x operational intensity
(FLOP/B). The *ridge point* of a (level, ceiling) pair is where they meet, at intensity
peak / bandwidth: ops left of it are bound by that level's bandwidth, ops right of it by compute.

An op is placed at x = its FLOPs / the bytes it moves at the main (weights/KV) memory level (the
``bytes_main`` column of a cost frame) and y = FLOPs / its time (what it achieved), so its distance
below the roof is what tiling, padding, launch overhead and latency cost it. Ops without FLOPs or
without main-memory bytes (embedding lookups, collectives, fully fused ops) have no place on the
chart and are left out. Marker area is proportional to the op's share of its phase's time.

Input frames need the columns of :meth:`sim.estimate.GraphCost.to_frame` (``name``, ``kind``,
``flops``, ``bytes_main``, ``time_s``, ``total_time_s``) and optionally ``phase``; a
:class:`~sim.predict.Prediction` or a :class:`~sim.estimate.GraphCost` is turned into one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.breakdown import category_of
from hwmodels.format import fmt_bandwidth, fmt_compute, fmt_number
from reports.style import CATEGORY_COLORS, CATEGORY_LABELS, CATEGORY_ORDER, new_axes

__all__ = ["ceilings", "memory_slopes", "op_points", "plot_roofline", "ridge_points"]

#: dtypes drawn by default, most to least narrow; dtypes with equal peaks share one line
DEFAULT_DTYPES = ("fp4", "fp6", "fp8", "int8", "bf16", "fp16")
PHASE_MARKERS = {"prefill": "o", "decode": "^", "mixed": "s"}


def ceilings(chip, dtypes=None, vector: bool = True) -> pd.DataFrame:
    """Compute ceilings of ``chip``: columns ``label``, ``unit`` (matrix/vector), ``dtypes``, ``peak_flop_s``.

    ``dtypes``: rate keys of the matrix unit to show (default: the narrow ones it lists, fp4..fp16);
    dtypes with the same peak are merged into one ceiling ('bf16/fp16'). ``vector``: add the vector
    unit's fp32 rate (softmax, norms and other non-GEMM math run there).
    """
    rows = []
    mu = chip.matrix_unit()
    wanted = tuple(dtypes) if dtypes else tuple(k for k in DEFAULT_DTYPES if k in mu.peak) or tuple(mu.peak)
    merged: dict = {}
    for k in wanted:
        if k in mu.peak:
            merged.setdefault(mu.peak[k], []).append(k)
    for peak, keys in sorted(merged.items(), key=lambda kv: -kv[0]):
        rows.append({"label": f"{mu.kind} {'/'.join(keys)}", "unit": mu.kind, "dtypes": "/".join(keys),
                     "peak_flop_s": float(peak)})
    vu = chip.unit("vector")
    if vector and vu is not None and vu is not mu and "fp32" in vu.peak:
        rows.append({"label": "vector fp32", "unit": "vector", "dtypes": "fp32", "peak_flop_s": float(vu.peak["fp32"])})
    return pd.DataFrame(rows, columns=["label", "unit", "dtypes", "peak_flop_s"])


def memory_slopes(chip, include_host: bool = False) -> pd.DataFrame:
    """Memory levels with their bandwidth: ``level``, ``kind``, ``bandwidth_bytes_per_s``, ``main`` (bool)."""
    main = chip.main_memory.name
    rows = [{"level": m.name, "kind": m.kind, "bandwidth_bytes_per_s": float(m.bandwidth_bytes_per_s),
             "main": m.name == main}
            for m in chip.memory if (include_host or m.kind != "host") and m.bandwidth_bytes_per_s > 0]
    return pd.DataFrame(rows, columns=["level", "kind", "bandwidth_bytes_per_s", "main"])


def ridge_points(chip, dtypes=None, vector: bool = True) -> pd.DataFrame:
    """Every (memory level, ceiling) ridge: ``level``, ``ceiling``, ``intensity_flop_per_byte``, ``peak_flop_s``."""
    rows = []
    for lv in memory_slopes(chip).itertuples():
        for c in ceilings(chip, dtypes, vector).itertuples():
            rows.append({"level": lv.level, "ceiling": c.label, "main": lv.main,
                         "intensity_flop_per_byte": c.peak_flop_s / lv.bandwidth_bytes_per_s,
                         "peak_flop_s": c.peak_flop_s})
    return pd.DataFrame(rows, columns=["level", "ceiling", "main", "intensity_flop_per_byte", "peak_flop_s"])


def _op_frame(ops) -> pd.DataFrame:
    if ops is None:
        return pd.DataFrame()
    if isinstance(ops, pd.DataFrame):
        return ops
    if hasattr(ops, "prefill") and hasattr(ops, "to_frame"):  # Prediction
        return ops.to_frame()
    if hasattr(ops, "ops") and hasattr(ops, "to_frame"):  # GraphCost
        return ops.to_frame()
    raise TypeError(f"expected a Prediction, a GraphCost or a per-op DataFrame; got {type(ops).__name__}")


def op_points(ops) -> pd.DataFrame:
    """Where each op sits on a roofline: ``phase``, ``name``, ``kind``, ``category``,
    ``intensity_flop_per_byte``, ``achieved_flop_s``, ``time_share`` (of its phase's time).

    ``ops``: a Prediction, a GraphCost or a per-op frame (see the module docstring).
    """
    df = _op_frame(ops)
    cols = ["phase", "name", "kind", "category", "intensity_flop_per_byte", "achieved_flop_s", "time_share"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df.copy()
    if "phase" not in df.columns:
        df["phase"] = "step"
    total = df["total_time_s"] if "total_time_s" in df.columns else df["time_s"] * df.get("count", 1)
    df["time_share"] = total / total.groupby(df["phase"]).transform("sum").clip(lower=1e-30)
    keep = (df["flops"] > 0) & (df["bytes_main"] > 0) & (df["time_s"] > 0) & (df["kind"] != "collective")
    df = df[keep]
    out = pd.DataFrame({
        "phase": df["phase"].astype(str), "name": df["name"].astype(str), "kind": df["kind"].astype(str),
        "category": [category_of(k) for k in df["kind"]],
        "intensity_flop_per_byte": (df["flops"] / df["bytes_main"]).astype(float),
        "achieved_flop_s": (df["flops"] / df["time_s"]).astype(float),
        "time_share": df["time_share"].astype(float),
    })
    return out.reset_index(drop=True)[cols]


def plot_roofline(chip, ops=None, ax=None, dtypes=None, vector: bool = True, annotate_ridges: bool = True,
                  title: str | None = None, max_marker: float = 500.0):
    """Draw the roofline of ``chip`` and, if given, the ops of a prediction or cost frame.

    Lines: one diagonal per memory level (the main level solid and thick, inner levels dashed) and
    one horizontal ceiling per compute peak; one scatter of ridge points (every level x ceiling,
    the main level's labelled with their intensity); one scatter of ops per phase, coloured by op
    category, area proportional to time share. Axes: log-log, x in FLOP/byte, y in TFLOP/s.
    Returns the Axes.
    """
    ax = new_axes(ax)
    ceil = ceilings(chip, dtypes, vector)
    mem = memory_slopes(chip)
    pts = op_points(ops)
    ridges = ridge_points(chip, dtypes, vector)
    scale = 1e12  # y axis in TFLOP/s

    x_lo = min([ridges["intensity_flop_per_byte"].min() / 30 if len(ridges) else 0.1]
               + ([pts["intensity_flop_per_byte"].min() / 2] if len(pts) else []))
    x_hi = max([ridges["intensity_flop_per_byte"].max() * 30 if len(ridges) else 1e4]
               + ([pts["intensity_flop_per_byte"].max() * 2] if len(pts) else []))
    top = ceil["peak_flop_s"].max() if len(ceil) else 1.0
    fastest_bw = mem["bandwidth_bytes_per_s"].max() if len(mem) else 1.0

    # memory slopes: from the left edge up to the highest ceiling
    for i, lv in enumerate(mem.itertuples()):
        x_top = top / lv.bandwidth_bytes_per_s
        xs = np.array([x_lo, x_top])
        line_style = ({"color": "#D9534F", "lw": 2.4, "ls": "-"} if lv.main
                      else {"color": "#8a8a8a", "lw": 1.2, "ls": (0, (4, 2 + i))})
        ax.plot(xs, xs * lv.bandwidth_bytes_per_s / scale, zorder=2,
                label=f"{lv.level} {fmt_bandwidth(lv.bandwidth_bytes_per_s)}", **line_style)
    # compute ceilings: from the fastest slope to the right edge
    for j, c in enumerate(ceil.itertuples()):
        x0 = c.peak_flop_s / fastest_bw
        ax.plot([x0, x_hi], [c.peak_flop_s / scale] * 2, color="#3A8FD9" if c.unit != "vector" else "#3DAA6D",
                lw=1.6 if j == 0 else 1.1, ls="-" if c.unit != "vector" else "--", zorder=2,
                label=f"{c.label} {fmt_compute(c.peak_flop_s, c.dtypes)}")
        ax.annotate(c.label, (x_hi, c.peak_flop_s / scale), xytext=(-4, 3), textcoords="offset points",
                    ha="right", va="bottom", fontsize=8, color=ax.xaxis.label.get_color())
    # ridge points
    if len(ridges):
        ax.scatter(ridges["intensity_flop_per_byte"], ridges["peak_flop_s"] / scale, marker="D", s=22,
                   facecolor="none", edgecolor="#D9534F", linewidths=1.2, zorder=4, label="ridge points")
        if annotate_ridges:
            for r in ridges[ridges["main"]].itertuples():
                ax.annotate(fmt_number(float(f"{r.intensity_flop_per_byte:.3g}")), (r.intensity_flop_per_byte, r.peak_flop_s / scale),
                            xytext=(4, -11), textcoords="offset points", fontsize=7.5, color="#D9534F")
    # ops, one scatter per phase
    from matplotlib.lines import Line2D

    phase_handles = []
    if len(pts):
        for phase, g in pts.groupby("phase", sort=False):
            marker = PHASE_MARKERS.get(phase, "o")
            ax.scatter(g["intensity_flop_per_byte"], g["achieved_flop_s"] / scale,
                       s=12 + max_marker * g["time_share"], marker=marker,
                       c=[CATEGORY_COLORS.get(cat, "#8c8c8c") for cat in g["category"]],
                       alpha=0.75, edgecolors="white", linewidths=0.5, zorder=5)
            phase_handles.append(Line2D([], [], ls="", marker=marker, color="#8a8a8a", label=phase))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    y_lo = min([fastest_bw * x_lo / scale] + ([pts["achieved_flop_s"].min() / scale / 2] if len(pts) else []))
    ax.set_ylim(max(y_lo, top / scale * 1e-6), top / scale * 2.5)
    main = chip.main_memory.name
    ax.set_xlabel(f"operational intensity (FLOP per byte of {main} traffic)")
    ax.set_ylabel("performance (TFLOP/s)")
    ax.set_title(title or f"{chip.name}: roofline")
    handles, _ = ax.get_legend_handles_labels()
    if len(pts):
        cats = [c for c in CATEGORY_ORDER if c in set(pts["category"])]
        handles += [Line2D([], [], ls="", marker="o", color=CATEGORY_COLORS[c], label=CATEGORY_LABELS[c]) for c in cats]
        handles += phase_handles
    ax.legend(handles=handles, loc="lower right", ncols=2 if len(handles) > 7 else 1)
    return ax
