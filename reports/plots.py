"""All llmsim plots in one namespace, plus generic design-space and validation plots.

``from reports import plots`` gives every plot function: the roofline (:mod:`reports.roofline`),
latency breakdowns (:mod:`reports.breakdown`), serving plots (:mod:`reports.serving_plots`),
styling and saving (:mod:`reports.style`), and the generic plots defined here:

- :func:`pareto_front` / :func:`plot_pareto`: the non-dominated points of a table over two
  objectives (each minimised or maximised), e.g. cost against latency;
- :func:`sensitivity` / :func:`plot_sensitivity`: how much one metric moves when one hardware
  field is set to a low and a high value (a tornado chart);
- :func:`plot_heatmap`: a metric over two swept axes;
- :func:`plot_predicted_vs_measured`: validation scatter with error bands.

These work on any DataFrame. ``reports/sweep_plots.py`` (sweep tables) and
``reports/validation.py`` (validation reports) are written by their own modules; where those
exist they are the specialised versions and these stay the generic ones.

Every plot function takes an optional ``ax`` (a new pyplot figure when None) and returns the
Axes it drew on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.breakdown import (  # noqa: F401
    breakdown_frame,
    breakdown_table,
    category_of,
    plot_breakdown,
    plot_breakdown_phases,
)
from reports.roofline import ceilings, memory_slopes, op_points, plot_roofline, ridge_points
from reports.serving_plots import (  # noqa: F401
    latency_percentiles,
    plot_batch_size,
    plot_kv_utilization,
    plot_latency_cdf,
    plot_step_timeline,
    plot_throughput_latency,
    plot_utilization,
    static_sweep,
    step_kind,
)
from reports.style import PALETTE, new_axes, new_figure, save, style, time_unit, use_theme
from reports.tables import format_value, title_of

__all__ = [
    "breakdown_frame", "breakdown_table", "ceilings", "latency_percentiles", "memory_slopes", "new_axes",
    "new_figure", "op_points", "pareto_front", "plot_batch_size", "plot_breakdown", "plot_breakdown_phases",
    "plot_heatmap", "plot_kv_utilization", "plot_latency_cdf", "plot_metric_bars", "plot_pareto", "plot_predicted_vs_measured",
    "plot_roofline", "plot_sensitivity", "plot_step_timeline", "plot_throughput_latency", "plot_utilization",
    "ridge_points", "save", "sensitivity", "static_sweep", "style", "use_theme",
]


def _axis_label(col: str) -> str:
    """A column name as an axis label with its unit: 'ttft_s' -> 'TTFT (s)'."""
    return title_of(str(col), unit=True)


# ---------------------------------------------------------------------------------------------
# Pareto frontiers


def pareto_front(df: pd.DataFrame, x: str, y: str, minimize_x: bool = True, minimize_y: bool = True) -> pd.DataFrame:
    """Rows of ``df`` not dominated in (``x``, ``y``), sorted by ``x``.

    A row is dominated when another is at least as good in both and better in one. NaN rows are
    never on the front.
    """
    d = df.dropna(subset=[x, y])
    if d.empty:
        return d
    sx = 1.0 if minimize_x else -1.0
    sy = 1.0 if minimize_y else -1.0
    order = np.lexsort((sy * d[y].to_numpy(dtype=float), sx * d[x].to_numpy(dtype=float)))
    keep, best = [], np.inf
    ys = sy * d[y].to_numpy(dtype=float)
    for i in order:
        if ys[i] < best:
            keep.append(i)
            best = ys[i]
    return d.iloc[keep].sort_values(x)


def plot_pareto(df: pd.DataFrame, x: str, y: str, minimize_x: bool = True, minimize_y: bool = True,
                annotate: str | None = None, ax=None, label: str | None = None, color: str | None = None,
                title: str | None = None, logx: bool = False, logy: bool = False):
    """All points (faint) and the Pareto front (a step line through the non-dominated points).

    Artists: one scatter for all points, one for the front, one Line2D for the front's staircase.
    ``annotate``: a column whose value labels each front point. Returns the Axes.
    """
    ax = new_axes(ax)
    color = color or PALETTE[0]
    d = df.dropna(subset=[x, y])
    front = pareto_front(d, x, y, minimize_x, minimize_y)
    ax.scatter(d[x], d[y], s=16, color=color, alpha=0.3, edgecolors="none",
               label=f"{label + ': ' if label else ''}all points ({len(d)})")
    ax.scatter(front[x], front[y], s=34, color=color, edgecolors="white", linewidths=0.6, zorder=3,
               label=f"{label + ': ' if label else ''}Pareto front ({len(front)})")
    ax.plot(front[x], front[y], color=color, lw=1.4, drawstyle="steps-post" if minimize_x else "steps-pre",
            zorder=2)
    if annotate and annotate in front.columns:
        for xv, yv, a in zip(front[x], front[y], front[annotate]):
            ax.annotate(str(a), (xv, yv), xytext=(4, 4), textcoords="offset points", fontsize=7.5)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(_axis_label(x) + (" (lower is better)" if minimize_x else " (higher is better)"))
    ax.set_ylabel(_axis_label(y) + (" (lower is better)" if minimize_y else " (higher is better)"))
    ax.set_title(title or f"Pareto front: {_axis_label(y)} vs {_axis_label(x)}")
    ax.legend()
    return ax


# ---------------------------------------------------------------------------------------------
# sensitivity


def sensitivity(model, hw, params: dict, metric: str = "tpot_s", *, batch: int = 1, input_len: int = 512,
                output_len: int = 128, base_overrides=None, **predict_kw) -> pd.DataFrame:
    """How ``metric`` of a static prediction moves when each hardware field is set to a low and a
    high value, one field at a time.

    ``params``: ``{override path: (low value, high value)}``, values as a hardware file writes
    them (``{"memory.hbm.bandwidth": ("2 TB/s", "6 TB/s")}``). Returns one row per path:
    ``parameter``, ``low``, ``high``, ``baseline``, ``metric_low``, ``metric_high`` and
    ``change_low``/``change_high`` (relative to the baseline: +0.1 = 10 % larger).
    """
    from sim.predict import predict

    base_ovr = list(base_overrides or [])

    def run(extra):
        p = predict(model, hw, batch, input_len, output_len, overrides=base_ovr + extra or None, **predict_kw)
        return float(getattr(p, metric))

    base = run([])
    rows = []
    for path, (lo, hi) in params.items():
        m_lo, m_hi = run([f"{path}={lo}"]), run([f"{path}={hi}"])
        rows.append({"parameter": path, "low": str(lo), "high": str(hi), "baseline": base, "metric": metric,
                     "metric_low": m_lo, "metric_high": m_hi, "change_low": m_lo / base - 1.0,
                     "change_high": m_hi / base - 1.0})
    return pd.DataFrame(rows)


def plot_sensitivity(df: pd.DataFrame, ax=None, title: str | None = None):
    """Tornado chart of :func:`sensitivity` output: per parameter, a bar for the low and one for the
    high setting, in % change of the metric; parameters sorted by their largest swing. Two bar
    containers (low, high). Returns the Axes."""
    ax = new_axes(ax)
    d = df.assign(_swing=np.maximum(df["change_low"].abs(), df["change_high"].abs())).sort_values("_swing")
    ys = np.arange(len(d))
    ax.barh(ys, d["change_low"] * 100, height=0.6, color=PALETTE[0], label="low setting")
    ax.barh(ys, d["change_high"] * 100, height=0.6, color=PALETTE[1], label="high setting", alpha=0.85)
    ax.set_yticks(ys, [f"{p}\n{lo} .. {hi}" for p, lo, hi in zip(d["parameter"], d["low"], d["high"])], fontsize=8)
    ax.axvline(0, color="#8a8a8a", lw=1)
    metric = str(d["metric"].iloc[0]) if "metric" in d.columns and len(d) else "metric"
    ax.set_xlabel(f"change in {title_of(metric)} vs baseline (%)")
    ax.set_ylabel("hardware field (low .. high)")
    ax.set_title(title or f"sensitivity of {title_of(metric)}")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower right")
    return ax


# ---------------------------------------------------------------------------------------------
# heat maps


def plot_heatmap(df: pd.DataFrame, x: str, y: str, value: str, ax=None, fmt=None, cmap: str = "viridis",
                 log: bool = False, title: str | None = None, colorbar: bool = True):
    """``value`` over a grid of ``x`` by ``y`` (pivoted; duplicates averaged), cells annotated with
    ``fmt(value)`` (default: the unit formatter for the value's column name). Returns the Axes."""
    from matplotlib.colors import LogNorm

    ax = new_axes(ax)
    piv = df.pivot_table(index=y, columns=x, values=value, aggfunc="mean").sort_index().sort_index(axis=1)
    data = piv.to_numpy(dtype=float)
    norm = LogNorm() if log and np.nanmin(data) > 0 else None
    im = ax.imshow(data, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(range(piv.shape[1]), [f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v)
                                         for v in piv.columns])
    ax.set_yticks(range(piv.shape[0]), [f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v)
                                         for v in piv.index])
    fmt = fmt or (lambda v: format_value(value, v))
    finite = data[np.isfinite(data)]
    mid = np.nanmedian(finite) if finite.size else 0.0
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            if np.isfinite(v):
                ax.text(j, i, fmt(v), ha="center", va="center", fontsize=7.5,
                        color="black" if v >= mid else "white")
    ax.set_xlabel(_axis_label(x))
    ax.set_ylabel(_axis_label(y))
    ax.grid(False)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=_axis_label(value))
    ax.set_title(title or f"{_axis_label(value)} over {x} x {y}")
    return ax


# ---------------------------------------------------------------------------------------------
# side-by-side bars


def plot_metric_bars(df: pd.DataFrame, metric: str, label: str = "label", ax=None, title: str | None = None,
                     lower_is_better: bool | None = None, ylabel: str | None = None):
    """One horizontal bar per row of ``df`` (named by ``label``), the value printed with its unit.

    Rows with a missing value (e.g. a chip where the model does not fit) get no bar and the text
    'n/a'. ``lower_is_better`` (default: guessed from the name: times, prices and energy are) marks
    the best bar. One bar container. Returns the Axes.
    """
    ax = new_axes(ax)
    labels = [str(x) for x in df[label]]
    vals = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=float)
    if lower_is_better is None:
        lower_is_better = metric.endswith("_s") and not metric.endswith("tok_s") or "usd" in metric \
            or "joules" in metric
    finite = np.isfinite(vals)
    best = (np.nanargmin(vals) if lower_is_better else np.nanargmax(vals)) if finite.any() else -1
    scale, unit = (1.0, "")
    if metric.endswith("_s") and not metric.endswith("tok_s"):
        scale, unit = time_unit(vals[finite].tolist() or [1e-3])
    ys = np.arange(len(labels))[::-1]
    colors = [PALETTE[1] if i == best else PALETTE[0] for i in range(len(labels))]
    ax.barh(ys, np.where(finite, vals / scale, 0.0), height=0.6, color=colors)
    for y, v, ok in zip(ys, vals, finite):
        ax.annotate(format_value(metric, v) if ok else "n/a", (v / scale if ok else 0, y), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(ys, labels)
    ax.set_xlim(0, (np.nanmax(vals[finite]) / scale * 1.3) if finite.any() else 1.0)
    xl = _axis_label(metric)
    if unit:
        xl = xl.replace("(s)", f"({unit})")
    ax.set_xlabel(xl)
    ax.set_ylabel(ylabel if ylabel is not None else ("configuration" if label == "label" else title_of(label)))
    ax.set_title(title or f"{title_of(metric)} ({'lower' if lower_is_better else 'higher'} is better)")
    ax.grid(axis="y", visible=False)
    return ax


# ---------------------------------------------------------------------------------------------
# validation


def plot_predicted_vs_measured(scored: pd.DataFrame, ax=None, by: str | None = "op", bands=(0.1, 0.25),
                               predicted: str = "predicted_time_s", measured: str = "measured_time_s",
                               title: str | None = None):
    """Predicted against measured times (log-log) with the y = x line and shaded +-``bands``
    relative error bands; one scatter per group (``by``). ``scored``: the scored frame of
    :func:`sim.validation.compare.compare` (or any frame with the two time columns).
    Artists: one Line2D for y = x, one PolyCollection per band, one scatter per group."""
    ax = new_axes(ax)
    d = scored.dropna(subset=[predicted, measured])
    d = d[(d[predicted] > 0) & (d[measured] > 0)]
    lo = float(min(d[predicted].min(), d[measured].min())) / 1.5 if len(d) else 1e-6
    hi = float(max(d[predicted].max(), d[measured].max())) * 1.5 if len(d) else 1.0
    scale, unit = time_unit([hi])
    xs = np.geomspace(lo, hi, 50) / scale
    ax.plot(xs, xs, color="#8a8a8a", lw=1, label="predicted = measured")
    for b, alpha in zip(sorted(bands, reverse=True), (0.12, 0.22, 0.3)):
        ax.fill_between(xs, xs * (1 - b), xs * (1 + b), color=PALETTE[2], alpha=alpha, lw=0, label=f"within {b:.0%}")
    groups = [(None, d)] if by is None or by not in d.columns else list(d.groupby(by, sort=True))
    for i, (name, g) in enumerate(groups):
        ax.scatter(g[measured] / scale, g[predicted] / scale, s=10, alpha=0.6, color=PALETTE[i % len(PALETTE)],
                   edgecolors="none", label=None if name is None else str(name))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo / scale, hi / scale)
    ax.set_ylim(lo / scale, hi / scale)
    ax.set_xlabel(f"measured time ({unit})")
    ax.set_ylabel(f"predicted time ({unit})")
    ax.set_title(title or "predicted vs measured")
    ax.legend(loc="upper left", fontsize=8)
    return ax
