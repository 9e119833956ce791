"""All llmsim plots in one namespace, plus generic design-space and validation plots.

``from reports import plots`` gives every plot function: the roofline (:mod:`reports.roofline`),
latency breakdowns (:mod:`reports.breakdown`), serving plots (:mod:`reports.serving_plots`),
styling and saving (:mod:`reports.style`), and the generic plots defined here:

- :func:`pareto_front` / :func:`plot_pareto`: the non-dominated points of a table over two
  objectives (each minimised or maximised), e.g. cost against latency, on an Axes (the dominance
  test is the sweep engine's; ``reports/sweep_plots.py`` draws whole sweep figures);
- :func:`sensitivity` / :func:`plot_sensitivity`: how much one metric moves when one hardware
  field is set to a low and a high value (a tornado chart);
- :func:`plot_heatmap`: a metric over two swept axes;
- :func:`plot_predicted_vs_measured`: the validation scatter of ``reports/validation.py`` on an Axes.

These work on any DataFrame and draw on a given Axes, so notebooks can compose them.
``reports/sweep_plots.py`` (whole figures of a sweep table, used by ``llmsim sweep`` and
``llmsim report sweep``) and ``reports/validation.py`` belong to their own modules; the Pareto
dominance test and the validation scatter are theirs, reused here.

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
from hwmodels.format import axis_label, unit_of
from reports.tables import format_value, title_of
from reports.validation import scatter_panel
from sim.predict import predict

__all__ = [
    "breakdown_frame", "breakdown_table", "ceilings", "latency_percentiles", "memory_slopes", "new_axes",
    "new_figure", "op_points", "pareto_front", "plot_batch_size", "plot_breakdown", "plot_breakdown_phases",
    "plot_error_sizes", "plot_heatmap", "plot_kv_utilization", "plot_latency_cdf", "plot_metric_bars", "plot_pareto", "plot_predicted_vs_measured",
    "plot_roofline", "plot_sensitivity", "plot_step_timeline", "plot_throughput_latency", "plot_utilization",
    "ridge_points", "save", "sensitivity", "static_sweep", "style", "use_theme",
]


def _axis_label(col: str) -> str:
    """A column name as an axis label with its unit: 'ttft_s' -> 'TTFT (s)'."""
    return title_of(str(col), unit=True)


def _is_time(col: str) -> bool:
    c = str(col)
    return c.endswith("_s") and not c.endswith(("tok_s", "_per_s", "flop_s", "_b_s", "req_s"))


def _scaled(df: pd.DataFrame, col: str) -> tuple[pd.Series, str]:
    """A column ready to plot and its axis label: times in ms/us/s by their range, others as is."""
    v = pd.to_numeric(df[col], errors="coerce")
    if _is_time(col):
        scale, unit = time_unit(v.dropna().tolist())
        return v / scale, f"{title_of(col)} ({unit})"
    if unit_of(str(col)) in ("B", "B/s", "FLOP/s", "OP/s", "W", "J", "Hz"):  # SI prefix by the range
        text, scale = axis_label(str(col), v.dropna().tolist())
        return v / scale, text
    return v, _axis_label(col)


# ---------------------------------------------------------------------------------------------
# Pareto frontiers


def pareto_front(df: pd.DataFrame, x: str, y: str, minimize_x: bool = True, minimize_y: bool = True,
                 rtol: float = 0.0) -> pd.DataFrame:
    """Rows of ``df`` not dominated in (``x``, ``y``), sorted by ``x``.

    A row is dominated when another is at least as good in both and better in one; the dominance
    test is the sweep engine's (:func:`sim.sweep.pareto.pareto_front`: rows with ``status`` other
    than 'ok', ``fits`` False or a non-finite objective never make the front). ``rtol`` then drops
    front points whose ``y`` improves on the previous front point's by less than that fraction
    (so that a much costlier design that is 0.1 % faster does not count).
    """
    from sim.sweep.pareto import pareto_front as sweep_front

    front = sweep_front(df, {x: "min" if minimize_x else "max", y: "min" if minimize_y else "max"})
    front = front.sort_values(x, ascending=minimize_x, kind="stable")
    if rtol > 0 and len(front) > 1:
        sy = 1.0 if minimize_y else -1.0
        keep, best = [], None
        for i, v in enumerate(sy * pd.to_numeric(front[y]).to_numpy(dtype=float)):
            if best is None or v < best - rtol * abs(best):
                keep.append(i)
                best = v
        front = front.iloc[keep]
    return front.sort_values(x, kind="stable")


def plot_pareto(df: pd.DataFrame, x: str, y: str, minimize_x: bool = True, minimize_y: bool = True,
                annotate: str | None = None, ax=None, label: str | None = None, color: str | None = None,
                title: str | None = None, logx: bool = False, logy: bool = False, rtol: float = 0.0,
                xlabel: str | None = None, ylabel: str | None = None):
    """All points (faint) and the Pareto front (a step line through the non-dominated points).

    Artists: one scatter for all points, one for the front, one Line2D for the front's staircase.
    ``annotate``: a column whose value labels each front point (labels alternate above and below
    so that neighbours overlap less). Time columns are shown in ms/us/s. Returns the Axes.
    """
    ax = new_axes(ax)
    color = color or PALETTE[0]
    d = df.dropna(subset=[x, y])
    front = pareto_front(d, x, y, minimize_x, minimize_y, rtol)
    xs, xl = _scaled(d, x)
    ys, yl = _scaled(d, y)
    fx, fy = xs.loc[front.index], ys.loc[front.index]
    ax.scatter(xs, ys, s=16, color=color, alpha=0.3, edgecolors="none",
               label=f"{label + ': ' if label else ''}all points ({len(d)})")
    ax.scatter(fx, fy, s=34, color=color, edgecolors="white", linewidths=0.6, zorder=3,
               label=f"{label + ': ' if label else ''}Pareto front ({len(front)})")
    ax.plot(fx, fy, color=color, lw=1.4, drawstyle="steps-post" if minimize_x else "steps-pre", zorder=2)
    if annotate and annotate in front.columns:
        for k, (xv, yv, a) in enumerate(zip(fx, fy, front[annotate])):
            ax.annotate(str(a), (xv, yv), xytext=(4, 5 if k % 2 == 0 else -11), textcoords="offset points",
                        fontsize=7.5)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel((xlabel or xl) + (" (lower is better)" if minimize_x else " (higher is better)"))
    ax.set_ylabel((ylabel or yl) + (" (lower is better)" if minimize_y else " (higher is better)"))
    ax.set_title(title or f"Pareto front: {title_of(y)} vs {title_of(x)}")
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
    high setting side by side, in % change of the metric; parameters sorted by their largest swing.
    Two bar containers (low, high). Returns the Axes."""
    ax = new_axes(ax)
    d = df.assign(_swing=np.maximum(df["change_low"].abs(), df["change_high"].abs())).sort_values("_swing")
    ys = np.arange(len(d))
    ax.barh(ys + 0.18, d["change_low"] * 100, height=0.36, color=PALETTE[0], label="low setting")
    ax.barh(ys - 0.18, d["change_high"] * 100, height=0.36, color=PALETTE[1], label="high setting")
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
                 log: bool = False, title: str | None = None, colorbar: bool = True, xlabel: str | None = None,
                 ylabel: str | None = None):
    """``value`` over a grid of ``x`` by ``y`` (pivoted; duplicates averaged), cells annotated with
    ``fmt(value)`` (default: the unit formatter for the value's column name) in black or white by
    the cell's brightness. Time values are coloured in ms/us/s. One image. Returns the Axes."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm, Normalize

    ax = new_axes(ax)
    piv = df.pivot_table(index=y, columns=x, values=value, aggfunc="mean").sort_index().sort_index(axis=1)
    raw = piv.to_numpy(dtype=float)
    finite = raw[np.isfinite(raw)]
    scale, unit = time_unit(finite.tolist()) if _is_time(value) else (1.0, "")
    data = raw / scale
    norm = LogNorm() if log and finite.size and finite.min() > 0 else Normalize()
    cm = colormaps[cmap]
    im = ax.imshow(data, origin="lower", aspect="auto", cmap=cm, norm=norm)
    ax.set_xticks(range(piv.shape[1]), [format_value(str(x), v) for v in piv.columns])
    ax.set_yticks(range(piv.shape[0]), [format_value(str(y), v) for v in piv.index])
    fmt = fmt or (lambda v: format_value(value, v))
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if np.isfinite(data[i, j]):
                r, g, b, _ = cm(im.norm(data[i, j]))
                ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax.text(j, i, fmt(raw[i, j]), ha="center", va="center", fontsize=7.5, color=ink)
    ax.set_xlabel(xlabel or title_of(x))  # the tick labels carry the unit
    ax.set_ylabel(ylabel or title_of(y))
    ax.grid(False)
    vlabel = f"{title_of(value)} ({unit})" if unit else _axis_label(value)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=vlabel)
    ax.set_title(title or f"{title_of(value)} over {xlabel or title_of(x)} x {ylabel or title_of(y)}")
    return ax


# ---------------------------------------------------------------------------------------------
# side-by-side bars


def plot_metric_bars(df: pd.DataFrame, metric: str, label: str = "label", ax=None, title: str | None = None,
                     lower_is_better: bool | None = None, ylabel: str | None = None, intervals=None):
    """One horizontal bar per row of ``df`` (named by ``label``), the value printed with its unit.

    Rows with a missing value (e.g. a chip where the model does not fit) get no bar and the text
    'n/a'. ``lower_is_better`` (default: guessed from the name: times, prices and energy are) marks
    the best bar. ``intervals``: one [lo, hi] (or None) per row, drawn as a range line over the bar
    (prediction intervals, docs/uncertainty.md). One bar container. Returns the Axes.
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
    top = np.nanmax(vals[finite]) / scale if finite.any() else 1.0
    for y, iv, ok in zip(ys, intervals or [], finite):
        if ok and iv is not None:
            lo, hi = iv[0] / scale, iv[1] / scale
            ax.plot([lo, hi], [y, y], color="0.15", lw=1.2, solid_capstyle="butt")
            ax.plot([lo, lo, np.nan, hi, hi], [y - 0.15, y + 0.15, np.nan, y - 0.15, y + 0.15], color="0.15", lw=1.0)
            top = max(top, hi)
    ax.set_yticks(ys, labels)
    ax.set_xlim(0, top * 1.3 if finite.any() else 1.0)
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


def plot_error_sizes(scored: pd.DataFrame, unit: str = "FLOP", ax=None, title: str | None = None):
    """Signed relative error (%) against work size of a scored validation frame: ``unit`` 'FLOP'
    (ops sized by FLOPs) or 'B' (sized by bytes); the validation report's panel. Returns the Axes."""
    from reports.validation import error_size_panel

    ax = new_axes(ax)
    error_size_panel(ax, scored, unit, title if title is not None else
                     ("FLOP-sized ops" if unit == "FLOP" else "byte-sized ops"))
    return ax


def plot_predicted_vs_measured(scored: pd.DataFrame, ax=None, title: str = "predicted vs measured kernel time"):
    """Predicted against measured times of a scored validation frame (columns ``measured_time_s``,
    ``predicted_time_s``, ``op``): the validation module's panel (log-log, identity line, +-20 %
    band, one colour per op), so that notebooks and reports draw it one way. Returns the Axes."""
    ax = new_axes(ax)
    scatter_panel(ax, scored, title)
    return ax
