"""Latency breakdown: where a step's time goes, by op category, as stacked bars.

Op kinds of the workload graph map to five categories (``CATEGORY_ORDER``):

- ``gemm``: matrix multiplications (projections, MLP, experts, LM head);
- ``attention``: the attention kernels (flash, paged, naive);
- ``communication``: collectives (all-reduce, all-gather, all-to-all, pipeline send/recv);
- ``elementwise``: everything else (norms, activations, residual adds, RoPE, embedding lookups,
  routers, dequantization, sampling);
- ``overhead``: each op's fixed costs (kernel launch, memory latency), taken out of the op's own
  category so that the other bars show work that scales with the workload, plus the serving
  stack's runtime outside kernels (a Prediction's ``runtime`` row: scheduling, sampling, ...).

Times are seconds of one step as one chip sees it: the sum of ``count x time_s`` over the busiest
pipeline stage's ops, times ``pp`` when the result is a Prediction or GraphCost (a batch passes
every stage in turn, so the bars add up to the step time, the TTFT for prefill; with overlapped
collectives the step is shorter than the sum). A per-op frame is taken as it is. The long table
(:func:`breakdown_table`) has the columns ``label``, ``phase``, ``category``, ``time_s``,
``share`` (of the label's phase total).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from reports.style import CATEGORY_COLORS, CATEGORY_LABELS, CATEGORY_ORDER, new_axes, time_unit

__all__ = ["breakdown_frame", "breakdown_table", "category_of", "plot_breakdown", "plot_breakdown_phases"]

_KIND_CATEGORY = {"gemm": "gemm", "attention": "attention", "collective": "communication"}


def category_of(kind: str) -> str:
    """The breakdown category of an op kind ('gemm', 'attention', 'communication' or 'elementwise')."""
    return _KIND_CATEGORY.get(str(kind), "elementwise")


def _frame(result) -> pd.DataFrame:
    if isinstance(result, pd.DataFrame):
        return result
    if hasattr(result, "to_frame"):
        return result.to_frame()
    raise TypeError(f"expected a Prediction, a GraphCost or a per-op DataFrame; got {type(result).__name__}")


def breakdown_frame(result, label: str = "") -> pd.DataFrame:
    """Seconds per (phase, category) of one result: a Prediction, a GraphCost or a per-op frame
    with ``kind``, ``total_time_s``, ``overhead_s``, ``count`` (and ``phase``; 'step' if absent)."""
    df = _frame(result)
    pp = int(getattr(result, "pp", 1) or 1) if not isinstance(result, pd.DataFrame) else 1
    cols = ["label", "phase", "category", "time_s", "share"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df.copy()
    if "phase" not in df.columns:
        df["phase"] = "step"
    count = df["count"] if "count" in df.columns else 1
    over = (df["overhead_s"] * count) if "overhead_s" in df.columns else 0.0
    df["_over"] = over
    df["_work"] = df["total_time_s"] - df["_over"]
    df["category"] = [category_of(k) for k in df["kind"]]
    rows = []
    for phase, g in df.groupby("phase", sort=False):
        tot = float(g["total_time_s"].sum()) or 1e-30
        for cat in CATEGORY_ORDER:
            t = float(g["_over"].sum()) if cat == "overhead" else float(g.loc[g["category"] == cat, "_work"].sum())
            rows.append({"label": label, "phase": str(phase), "category": cat, "time_s": t * pp, "share": t / tot})
    return pd.DataFrame(rows, columns=cols)


def breakdown_table(results) -> pd.DataFrame:
    """Long table of several results: ``results`` maps a label (a batch size, a chip) to a result,
    or is a list of (label, result) pairs. Column order as in :func:`breakdown_frame`."""
    items = results.items() if isinstance(results, Mapping) else results
    frames = [breakdown_frame(r, str(lb)) for lb, r in items if r is not None]
    if not frames:
        return pd.DataFrame(columns=["label", "phase", "category", "time_s", "share"])
    return pd.concat(frames, ignore_index=True)


def plot_breakdown(table: pd.DataFrame, phase: str = "prefill", ax=None, normalize: bool = False,
                   totals: bool = True, legend: bool = True, title: str | None = None, xlabel: str | None = None):
    """Stacked bars of one phase: one bar per label, one segment per category.

    ``table``: :func:`breakdown_table` output (or :func:`breakdown_frame`); ``normalize``: shares
    (%) instead of time. Draws one bar container per category present (zero categories are
    skipped) and, with ``totals``, the total above each bar. ``xlabel``: what the labels are
    (default: 'batch size' when they all read 'batch N', else 'configuration'). Returns the Axes.
    """
    ax = new_axes(ax)
    t = table[table["phase"] == phase]
    if t.empty:
        raise ValueError(f"no rows for phase {phase!r}; phases: {', '.join(map(str, table['phase'].unique()))}")
    labels = list(dict.fromkeys(t["label"].astype(str)))
    piv = t.pivot_table(index="label", columns="category", values="time_s", aggfunc="sum", sort=False) \
        .reindex(index=labels).fillna(0.0)
    total = piv.sum(axis=1)
    if normalize:
        data, scale, unit = piv.div(total.where(total > 0, 1.0), axis=0) * 100.0, 1.0, "%"
    else:
        scale, unit = time_unit(total.tolist())
        data = piv / scale
    x = range(len(labels))
    bottom = pd.Series(0.0, index=labels)
    for cat in CATEGORY_ORDER:
        if cat not in data.columns or not (data[cat] > 0).any():
            continue
        ax.bar(x, data[cat].values, bottom=bottom.values, width=0.7, color=CATEGORY_COLORS[cat],
               label=CATEGORY_LABELS[cat], edgecolor="none")
        bottom += data[cat]
    if totals and not normalize:
        from reports.tables import fmt_time

        for i, lb in enumerate(labels):
            ax.annotate(fmt_time(total[lb]), (i, bottom[lb]), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8 if len(labels) <= 6 else 6.5)
        ax.set_ylim(0, float(bottom.max()) * 1.12 or 1.0)
    ax.set_xticks(list(x), labels, rotation=30 if max(len(s) for s in labels) > 8 else 0,
                  ha="right" if max(len(s) for s in labels) > 8 else "center")
    if xlabel is None:
        xlabel = "batch size" if all(lb.startswith("batch ") for lb in labels) else "configuration"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of step time (%)" if normalize else f"{phase} step time ({unit})")
    ax.set_title(title or f"{phase}: time by op category")
    ax.grid(axis="x", visible=False)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    return ax


def plot_breakdown_phases(table: pd.DataFrame, axes=None, normalize: bool = False, suptitle: str | None = None,
                          xlabel: str | None = None):
    """Prefill and decode side by side (two Axes, one legend); returns the two Axes.

    ``axes``: a pair of Axes, or None for a new figure.
    """
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    phases = [p for p in ("prefill", "decode") if p in set(table["phase"])] or list(table["phase"].unique())[:2]
    for i, (ax, phase) in enumerate(zip(axes, phases)):
        plot_breakdown(table, phase, ax=ax, normalize=normalize, legend=(i == len(phases) - 1), xlabel=xlabel)
    if suptitle:
        axes[0].figure.suptitle(suptitle)
    return axes
