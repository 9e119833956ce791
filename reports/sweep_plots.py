"""Figures of a sweep table: Pareto fronts, sensitivity bars, heat maps of a metric over two axes.

- ``pareto_figure(table, {"x": "max", "y": "min"})``: every feasible point (grey) and the front
  (coloured, joined in order), log scales where a range spans more than two decades;
- ``sensitivity_figure(sens, metric)``: the share of the metric's variance each axis explains
  (sim.sweep.sensitivity), with its elasticity printed beside the bar;
- ``heatmap_figure(table, x_axis, y_axis, metric)``: the metric's mean over the other axes for
  each (x, y) pair;
- ``write_plots(table, fronts, metric, out_dir)``: all of them as PNG and SVG.

Matplotlib through reports.style (bare Figures, Agg canvas, no pyplot state); ``sim/`` never
imports this module.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from hwmodels.format import axis_label, format_value, label
from reports.style import color_for, new_figure, save

__all__ = ["heatmap_figure", "pareto_figure", "sensitivity_figure", "write_plots"]


def _feasible(table: pd.DataFrame) -> pd.DataFrame:
    t = table
    if "status" in t.columns:
        t = t[t["status"] == "ok"]
    if "fits" in t.columns:
        t = t[t["fits"].fillna(True).astype(bool)]
    return t


def _logscale(v) -> bool:
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return v.size > 1 and v.max() / v.min() > 100


def pareto_figure(table: pd.DataFrame, objectives: dict, figsize=(6.4, 4.4)):
    from sim.sweep.pareto import pareto_front

    x, y = list(objectives)[:2]
    t = _feasible(table)
    front = pareto_front(table, {x: objectives[x], y: objectives[y]})
    fig, ax = new_figure(figsize=figsize)
    tx, ty = pd.to_numeric(t[x]), pd.to_numeric(t[y])
    xl, xs = axis_label(x, tx.tolist())
    yl, ys = axis_label(y, ty.tolist())
    ax.scatter(tx / xs, ty / ys, s=8, color="#9A9A9A", alpha=0.5, lw=0, label=f"{len(t):,} feasible points")
    f = front.sort_values(x)
    ax.plot(pd.to_numeric(f[x]) / xs, pd.to_numeric(f[y]) / ys, "-o", color=color_for(0), ms=4, lw=1.5,
            label=f"Pareto front ({len(f)})")
    for v, setter in ((t[x], ax.set_xscale), (t[y], ax.set_yscale)):
        if _logscale(v):
            setter("log")
    sense = {"max": "higher is better", "min": "lower is better"}
    ax.set_xlabel(f"{xl}, {sense.get(objectives[x], objectives[x])}")
    ax.set_ylabel(f"{yl}, {sense.get(objectives[y], objectives[y])}")
    ax.legend(loc="best", fontsize=8)
    ax.grid(True, alpha=0.3)
    return fig


def sensitivity_figure(sens: pd.DataFrame, metric: str, figsize=(6.4, 3.6)):
    fig, ax = new_figure(figsize=figsize)
    s = sens.iloc[::-1]
    ax.barh([label(a) for a in s["axis"]], s["share"] * 100, color=[color_for(i) for i in range(len(s))][::-1])
    for i, (share, el) in enumerate(zip(s["share"], s["elasticity"])):
        txt = format_value("share", share) + (f"  (elasticity {el:+.2f})" if not np.isnan(el) else "")
        ax.text(share * 100, i, " " + txt, va="center", fontsize=8)
    ax.set_xlim(0, max(100.0, float(s["share"].max()) * 140 if len(s) else 100.0))
    # two short lines: one long line ran past the figure's right edge
    ax.set_xlabel(f"share of the variance of {label(metric)}\nexplained by the axis alone (%)")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def heatmap_figure(table: pd.DataFrame, x_axis: str, y_axis: str, metric: str, figsize=(6.4, 4.8)):
    t = _feasible(table)
    pv = t.pivot_table(index=y_axis, columns=x_axis, values=metric, aggfunc="mean")
    fig, ax = new_figure(figsize=figsize)
    im = ax.imshow(pv.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(pv.columns)), [format_value(x_axis, v) for v in pv.columns], rotation=45, ha="right",
                  fontsize=8)
    ax.set_yticks(range(len(pv.index)), [format_value(y_axis, v) for v in pv.index], fontsize=8)
    ax.set_xlabel(label(x_axis))
    ax.set_ylabel(label(y_axis))
    fig.colorbar(im, ax=ax, label=f"{label(metric, unit=True)}\n(mean over the other axes)")
    return fig


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")


def write_plots(table: pd.DataFrame, fronts: list, metric: str | None, out_dir, sensitivity_table=None,
                sense: str = "min") -> list[Path]:
    """Every front, the sensitivity of ``metric`` and a heat map over its two strongest axes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list = []
    for f in fronts:
        x, y = list(f)[:2]
        paths += save(pareto_figure(table, f), out / f"pareto-{_slug(x)}-vs-{_slug(y)}")
    if metric and sensitivity_table is not None and len(sensitivity_table):
        paths += save(sensitivity_figure(sensitivity_table, metric), out / f"sensitivity-{_slug(metric)}")
        top = [a for a in sensitivity_table["axis"] if table[a].nunique() <= 40][:2]
        if len(top) == 2:
            paths += save(heatmap_figure(table, top[0], top[1], metric), out / f"heatmap-{_slug(metric)}")
    return paths
