"""Serving plots: throughput-latency curves, latency CDFs and percentiles, utilization over time,
and the step timeline of one replica.

Everything here reads plain DataFrames with documented columns, so it works on the serving
simulator's results (``ServingResult.requests`` / ``.timeline``), on measured logs in the same
shape, and on a sweep of static predictions (:func:`static_sweep`):

- requests: one row per request with latency columns in seconds: ``ttft_s``, ``tpot_s``,
  ``e2e_s`` (also ``queue_s``, ``max_itl_s``); optional grouping column (``replica``, a label);
- timeline: one row per (sampled) step of a replica: ``time_s`` (step start, s), ``step_s``
  (duration, s), ``batch_size`` (requests in the step), ``kv_utilization`` (0..1 of the KV
  blocks), optional ``replica``, ``tokens``, ``prefill_tokens`` (a step is *prefill* when all its
  tokens are prompt tokens, *decode* when none are, else *mixed*), ``queued``;
- throughput-latency: one row per operating point with a throughput column
  (``output_throughput_tok_s`` by default), a latency column (``tpot_s``, ``ttft_s``, a
  percentile...) and the swept variable (``batch``, ``rate_rps``) to label points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hwmodels.errors import InfeasibleError
from reports.style import PALETTE, new_axes, time_unit
from reports.tables import title_of
from sim.predict import predict

__all__ = [
    "latency_percentiles",
    "plot_batch_size",
    "plot_kv_utilization",
    "plot_latency_cdf",
    "plot_step_timeline",
    "plot_throughput_latency",
    "plot_utilization",
    "static_sweep",
    "step_kind",
]

METRIC_LABELS = {"ttft_s": "time to first token", "tpot_s": "time per output token", "e2e_s": "end-to-end latency",
                 "queue_s": "queueing delay", "max_itl_s": "max inter-token latency"}
STEP_COLORS = {"prefill": PALETTE[1], "decode": PALETTE[0], "mixed": PALETTE[4]}


def _groups(df: pd.DataFrame, by: str | None):
    if by is None or by not in df.columns:
        return [(None, df)]
    return list(df.groupby(by, sort=True))


# ---------------------------------------------------------------------------------------------
# throughput-latency


def static_sweep(model, hw, values, input_len: int, output_len: int, *, vary: str = "batch", batch: int = 1,
                 label: str | None = None, **predict_kw) -> pd.DataFrame:
    """Static predictions over a swept argument (``vary``: 'batch', 'input_len', 'output_len', 'tp').

    One row per value: the swept column, ``label`` (default: the hardware name), every scalar of
    :meth:`Prediction.to_dict` (``ttft_s``, ``tpot_s``, ``output_throughput_tok_s``...) and
    ``fits``/``reason``. A point that does not fit in memory or cannot run is kept with
    ``fits=False`` and its reason (NaN metrics), so a curve shows where it stops.
    """
    rows = []
    for v in values:
        kw = {"batch": batch, "input_len": input_len, "output_len": output_len}
        if vary in kw:
            kw[vary] = int(v)
        else:
            predict_kw = {**predict_kw, vary: v}
        try:
            p = predict(model, hw, kw["batch"], kw["input_len"], kw["output_len"], **predict_kw)
            d = {k: x for k, x in p.to_dict().items() if not isinstance(x, (dict, list))}
        except InfeasibleError as e:
            d = {"fits": False, "reason": str(e)}
        rows.append({vary: v, "label": label or str(getattr(hw, "name", hw)), **d})
    return pd.DataFrame(rows)


def plot_throughput_latency(df: pd.DataFrame, latency: str = "tpot_s", throughput: str = "output_throughput_tok_s",
                            by: str | None = "label", annotate: str | None = None, ax=None, slo: float | None = None,
                            title: str | None = None, connect: bool = True):
    """Throughput against latency, one line per group (``by``), points labelled by ``annotate``.

    Latency (x) in ms/us/s by its range; throughput (y) in tok/s (or the column's unit). ``slo``: a
    latency bound in seconds, drawn as a vertical line. Rows with NaN latency or throughput
    (infeasible points) are skipped. ``connect=False`` draws markers only (noisy measurements,
    search probes). One Line2D per group (plus one for the SLO). Returns the Axes.
    """
    ax = new_axes(ax)
    d = df.dropna(subset=[latency, throughput])
    scale, unit = time_unit(d[latency].tolist() + ([slo] if slo else []))
    for i, (name, g) in enumerate(_groups(d, by)):
        g = g.sort_values(latency)
        ax.plot(g[latency] / scale, g[throughput], marker="o", ms=4 if connect else 6, color=PALETTE[i % len(PALETTE)],
                ls="-" if connect else "none", label=None if name is None else str(name))
        if annotate and annotate in g.columns:
            for x, y, a in zip(g[latency] / scale, g[throughput], g[annotate]):
                ax.annotate(f"{a:g}" if isinstance(a, (int, float, np.number)) else str(a), (x, y), xytext=(3, 3),
                            textcoords="offset points", fontsize=7.5)
    if slo:
        ax.axvline(slo / scale, color="#D9534F", ls="--", lw=1.2, label=f"SLO {slo / scale:g} {unit}")
    ax.set_xlabel(f"{METRIC_LABELS.get(latency) or title_of(latency)} ({unit})")
    ax.set_ylabel("output throughput (tok/s)" if throughput.endswith("tok_s") else title_of(throughput, unit=True))
    ax.set_title(title or "throughput vs latency" + (f" (points: {annotate})" if annotate else ""))
    ax.set_ylim(bottom=0)
    if by is not None or slo:
        ax.legend()
    return ax


# ---------------------------------------------------------------------------------------------
# latency distributions


def latency_percentiles(requests: pd.DataFrame, metrics=("ttft_s", "tpot_s", "e2e_s"), q=(50, 90, 95, 99),
                        by: str | None = None) -> pd.DataFrame:
    """Percentiles of latency columns: one row per (group, metric) with ``metric``, ``count``,
    ``mean_s`` and ``p50_s``, ``p90_s``... (seconds; NaN values, e.g. TPOT of one-token requests,
    are left out)."""
    rows = []
    for name, g in _groups(requests, by):
        for m in metrics:
            if m not in g.columns:
                continue
            v = g[m].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            row = {} if name is None else {by: name}
            row.update({"metric": m, "count": int(v.size), "mean_s": float(v.mean()) if v.size else np.nan})
            for p in q:
                row[f"p{p:g}_s"] = float(np.percentile(v, p)) if v.size else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def plot_latency_cdf(requests: pd.DataFrame, metric: str = "ttft_s", by: str | None = None, percentiles=(50, 90, 99),
                     slo: float | None = None, ax=None, log: bool = False, title: str | None = None):
    """Empirical CDF of a latency column, one step line per group, percentile markers on each
    (their values in the legend).

    ``slo``: bound in seconds, drawn as a vertical line with the share of requests within it in
    the legend. One Line2D per group (+1 for the SLO) and one marker collection per group.
    Returns the Axes.
    """
    ax = new_axes(ax)
    vals = requests[metric].to_numpy(dtype=float)
    vals = vals[np.isfinite(vals)]
    scale, unit = time_unit(list(vals) + ([slo] if slo else []) or [1e-3])
    for i, (name, g) in enumerate(_groups(requests, by)):
        v = np.sort(g[metric].to_numpy(dtype=float))
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        color = PALETTE[i % len(PALETTE)]
        y = np.arange(1, v.size + 1) / v.size
        label = "" if name is None else f"{by} {name}"
        if percentiles:
            pv = np.percentile(v, percentiles)
            label += (": " if label else "") + ", ".join(f"p{p:g} {x / scale:.3g}" for p, x in zip(percentiles, pv)) \
                + f" {unit}"
        ax.step(v / scale, y, where="post", color=color, label=label or None)
        if percentiles:
            ax.scatter(pv / scale, np.array(percentiles) / 100.0, color=color, s=18, zorder=3)
    if slo:
        within = float(np.mean(vals <= slo)) if vals.size else float("nan")
        ax.axvline(slo / scale, color="#D9534F", ls="--", lw=1.2,
                   label=f"SLO {slo / scale:g} {unit}: {within * 100:.1f}% within")
    if log:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"{METRIC_LABELS.get(metric) or title_of(metric)} ({unit})")
    ax.set_ylabel("fraction of requests")
    ax.set_title(title or f"CDF of {METRIC_LABELS.get(metric) or title_of(metric)}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    return ax


# ---------------------------------------------------------------------------------------------
# over time


def _replica(timeline: pd.DataFrame, replica) -> pd.DataFrame:
    if replica is not None and "replica" in timeline.columns:
        return timeline[timeline["replica"] == replica]
    return timeline


def plot_kv_utilization(timeline: pd.DataFrame, ax=None, replica=None, color: str = PALETTE[2]):
    """KV-cache utilization (%) against time, one line per replica (or just ``replica``)."""
    ax = new_axes(ax)
    t = _replica(timeline, replica)
    groups = _groups(t, "replica") if replica is None else [(replica, t)]
    for i, (name, g) in enumerate(groups):
        ax.plot(g["time_s"], g["kv_utilization"] * 100.0, color=color if len(groups) == 1 else PALETTE[i % 10],
                lw=1.6, label="KV-cache utilization" if len(groups) == 1 else f"replica {name}")
    ax.set_ylim(0, 105)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("KV-cache utilization (%)")
    return ax


def _smooth(y: pd.Series, points: int = 200) -> pd.Series:
    """A centred rolling mean over about 1/``points`` of the series (noisy per-step values)."""
    w = max(1, len(y) // points)
    return y.rolling(w, center=True, min_periods=1).mean() if w > 1 else y


def plot_batch_size(timeline: pd.DataFrame, ax=None, replica=None, color: str = PALETTE[0], smooth: bool = True):
    """Requests per step against time: a faint step line per replica (or just ``replica``) and, with
    ``smooth``, a rolling mean on top (two Line2D per replica)."""
    ax = new_axes(ax)
    t = _replica(timeline, replica)
    groups = _groups(t, "replica") if replica is None else [(replica, t)]
    for i, (name, g) in enumerate(groups):
        c = color if len(groups) == 1 else PALETTE[i % 10]
        lab = "batch size" if len(groups) == 1 else f"replica {name}"
        ax.plot(g["time_s"], g["batch_size"], color=c, lw=0.7, alpha=0.35 if smooth else 1.0,
                drawstyle="steps-post", label=None if smooth else lab)
        if smooth:
            ax.plot(g["time_s"], _smooth(g["batch_size"].astype(float)), color=c, lw=1.6, label=f"{lab} (rolling mean)")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("batch size (requests per step)")
    return ax


def plot_utilization(timeline: pd.DataFrame, ax=None, replica=None, title: str | None = None):
    """Batch size (left axis: raw and rolling mean) and KV-cache utilization (right axis, %, a twin
    Axes drawn on top) of one replica against time. Returns the left Axes; the twin is ``ax.kv_axes``."""
    ax = new_axes(ax)
    if replica is None and "replica" in timeline.columns and timeline["replica"].nunique() > 1:
        replica = min(timeline["replica"].unique())
    plot_batch_size(timeline, ax=ax, replica=replica)
    twin = ax.twinx()
    plot_kv_utilization(timeline, ax=twin, replica=replica)
    twin.grid(False)
    twin.spines["right"].set_visible(True)
    ax.kv_axes = twin
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    # above the axes, so that it never hides the curves (a transparent theme has no legend background)
    twin.legend(h1 + h2, l1 + l2, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, borderaxespad=0.2)
    ax.set_title(title or ("batch size and KV cache" + (f", replica {replica}" if replica is not None else "")),
                 loc="left")
    return ax


def step_kind(timeline: pd.DataFrame) -> pd.Series:
    """'prefill' | 'decode' | 'mixed' per step, from ``prefill_tokens`` and ``tokens`` (or a
    ``kind``/``phase`` column when the timeline has one)."""
    for c in ("kind", "phase"):
        if c in timeline.columns:
            return timeline[c].astype(str)
    if "prefill_tokens" not in timeline.columns:
        return pd.Series("step", index=timeline.index)
    pre = timeline["prefill_tokens"].to_numpy()
    tok = timeline["tokens"].to_numpy() if "tokens" in timeline.columns else pre
    kind = np.where(pre <= 0, "decode", np.where(pre >= tok, "prefill", "mixed"))
    return pd.Series(kind, index=timeline.index)


def plot_step_timeline(timeline: pd.DataFrame, ax=None, replica=None, start_s: float | None = None,
                       end_s: float | None = None, max_steps: int = 300, title: str | None = None):
    """The steps of one replica as bars on a time axis, coloured by step kind: a bar spans its
    step's duration and its height is the step's batch size (so gaps are idle time and short bars
    small batches). The x axis is simulated time since the start of the run.

    Shows the first ``max_steps`` steps from ``start_s`` (or until ``end_s``). One bar container
    per step kind present. Returns the Axes.
    """
    from matplotlib.ticker import MaxNLocator

    ax = new_axes(ax)
    t = timeline
    if "replica" in t.columns:
        if replica is None:
            replica = min(t["replica"].unique()) if len(t) else 0
        t = t[t["replica"] == replica]
    if start_s is not None:
        t = t[t["time_s"] + t["step_s"] >= start_s]
    if end_s is not None:
        t = t[t["time_s"] <= end_s]
    t = t.sort_values("time_s").head(max_steps)
    if t.empty:
        raise ValueError("no steps in the chosen replica and window")
    kinds = step_kind(t)
    scale, unit = time_unit([float(t["time_s"].max() + t["step_s"].iloc[-1])])
    for kind in ("prefill", "mixed", "decode", "step"):
        g = t[kinds == kind]
        if g.empty:
            continue
        ax.bar(g["time_s"] / scale, g["batch_size"], width=g["step_s"] / scale, align="edge",
               color=STEP_COLORS.get(kind, PALETTE[8]), edgecolor="none", label=kind)
    ax.set_ylim(0, max(float(t["batch_size"].max()), 1.0) * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("batch size (requests)")
    ax.set_xlabel(f"time ({unit})")
    ax.set_title(title or "step timeline" + (f", replica {replica}" if replica is not None else "")
                 + f" ({len(t)} steps)")
    ax.legend(loc="upper right", ncols=3, fontsize=8)
    return ax
