"""Plots and tables of validation results (predicted versus measured kernel times).

Takes the frames that ``sim.validation.compare`` and ``sim.validation.calibrate`` produce and
draws them with matplotlib's Agg backend (no display needed); never changes them. Every plot is
written as PNG (small: dpi 80) and optionally SVG, points rasterized inside the SVG so that a
plot of fifty thousand kernels stays a small file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

OP_COLORS = {"gemm": "#1f77b4", "attention": "#9467bd", "memcpy": "#8c564b", "elementwise": "#2ca02c",
             "norm": "#ff7f0e", "allreduce": "#d62728", "sendrecv": "#e377c2", "allgather": "#7f7f7f",
             "reducescatter": "#bcbd22", "alltoall": "#17becf"}
DPI = 80


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, stem, formats) -> list[Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        p = stem.with_suffix(f".{fmt}")
        kw = {"dpi": DPI} if fmt == "png" else {}
        fig.savefig(p, format=fmt, bbox_inches="tight", metadata=_metadata(fmt), **kw)
        out.append(p)
    _plt().close(fig)
    return out


def _metadata(fmt):
    # no timestamps or versions in the files, so that regenerating the same data gives the same bytes
    if fmt == "png":
        return {"Software": None}
    if fmt == "svg":
        return {"Date": None, "Creator": None}
    return {}


def _thin(df: pd.DataFrame, max_points: int, seed: int = 0) -> pd.DataFrame:
    if len(df) <= max_points:
        return df
    return df.sample(max_points, random_state=seed)


def scatter_panel(ax, df: pd.DataFrame, title: str = "", max_points: int = 20000) -> None:
    """Predicted versus measured seconds on log-log axes, identity line and +-20 % bands, by op."""
    d = _thin(df, max_points)
    lo = float(np.nanmin([d["measured_time_s"].min(), d["predicted_time_s"].min()])) if len(d) else 1e-6
    hi = float(np.nanmax([d["measured_time_s"].max(), d["predicted_time_s"].max()])) if len(d) else 1e-3
    lo, hi = lo / 1.5, hi * 1.5
    x = np.array([lo, hi])
    ax.fill_between(x, x * 0.8, x * 1.2, color="0.85", lw=0, label="±20 %", zorder=0)
    ax.plot(x, x, color="0.3", lw=0.8, zorder=1)
    for op, g in d.groupby("op", sort=True):
        ax.scatter(g["measured_time_s"], g["predicted_time_s"], s=3, alpha=0.35, lw=0,
                   color=OP_COLORS.get(op, "0.5"), label=op, rasterized=True, zorder=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("predicted time (s)")
    if title:
        ax.set_title(title, fontsize=9)
    leg = ax.legend(fontsize=7, markerscale=3, loc="upper left", frameon=False)
    for h in leg.legend_handles:
        if hasattr(h, "set_alpha"):
            h.set_alpha(1)


def scatter_plot(df: pd.DataFrame, stem, title: str = "", formats=("png",)) -> list[Path]:
    """One predicted-versus-measured plot of a scored frame (columns measured_time_s, predicted_time_s, op)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    scatter_panel(ax, df, title)
    return _save(fig, stem, formats)


def error_size_panel(ax, df: pd.DataFrame, unit: str, title: str = "", max_points: int = 20000) -> None:
    """Signed error (%) versus work size (FLOPs or bytes), by op; points beyond the axis sit on its edge."""
    d = _thin(df[df["size_unit"] == unit], max_points)
    ylo, yhi = -100, 200
    for op, g in d.groupby("op", sort=True):
        y = np.clip(100 * g["rel_error"].to_numpy(dtype=float), ylo, yhi)
        ax.scatter(g["size"], y, s=3, alpha=0.35, lw=0, color=OP_COLORS.get(op, "0.5"), label=op, rasterized=True)
    ax.axhspan(-20, 20, color="0.9", zorder=0)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xscale("log")
    ax.set_ylim(ylo - 5, yhi + 5)
    ax.set_xlabel("FLOPs" if unit == "FLOP" else "bytes moved")
    ax.set_ylabel("(predicted − measured) / measured (%)")
    if title:
        ax.set_title(title, fontsize=9)
    if len(d):
        leg = ax.legend(fontsize=7, markerscale=3, loc="upper right", frameon=False)
        for h in leg.legend_handles:
            if hasattr(h, "set_alpha"):
                h.set_alpha(1)


def error_size_plot(df: pd.DataFrame, stem, title: str = "", formats=("png",)) -> list[Path]:
    """Error versus size: one panel for FLOP-sized ops (gemm, attention), one for byte-sized ops."""
    plt = _plt()
    units = [u for u in ("FLOP", "B") if (df.get("size_unit", pd.Series(dtype=str)) == u).any()]
    if not units:
        units = ["B"]
    fig, axes = plt.subplots(1, len(units), figsize=(4.4 * len(units), 3.6), squeeze=False)
    for ax, u in zip(axes[0], units):
        error_size_panel(ax, df, u, title if len(units) == 1 else f"{title} ({'FLOP' if u == 'FLOP' else 'byte'}-sized ops)")
    fig.tight_layout()
    return _save(fig, stem, formats)


def calibration_plot(test: pd.DataFrame, stem, title: str = "", models=("peak", "catalog", "calibrated"),
                     formats=("png",)) -> list[Path]:
    """Held-out rows priced by each model (columns <model>_s), side by side, predicted versus measured."""
    plt = _plt()
    models = [m for m in models if f"{m}_s" in test.columns]
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.5), squeeze=False)
    names = {"peak": "datasheet peaks only", "catalog": "catalog file", "calibrated": "calibrated (held-out)"}
    for ax, m in zip(axes[0], models):
        d = test.assign(predicted_time_s=test[f"{m}_s"])
        p, t = d["predicted_time_s"].to_numpy(float), d["measured_time_s"].to_numpy(float)
        med = float(np.median(np.abs(p - t) / t)) if len(d) else math.nan
        scatter_panel(ax, d, f"{names.get(m, m)}: median |err| {med:.1%}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, stem, formats)


# ---------------------------------------------------------------------------------------------
# markdown tables


def pct(x, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def md_table(rows: list[dict] | pd.DataFrame, columns: list[tuple[str, str]], fmt: dict | None = None) -> str:
    """A GitHub markdown table: ``columns`` = [(key, header)], ``fmt`` = {key: callable}."""
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict("records")
    fmt = fmt or {}
    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    lines = [head, sep]
    for r in rows:
        cells = []
        for k, _ in columns:
            v = r.get(k)
            f = fmt.get(k)
            if f is not None:
                cells.append(f(v))
            elif isinstance(v, float):
                cells.append("–" if not math.isfinite(v) else f"{v:.3g}")
            else:
                cells.append("–" if v is None else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_predicted_vs_measured(scored: pd.DataFrame, ax=None, title: str = ""):
    """Predicted versus measured on ``ax`` (a new figure when None); the axes, for other reports."""
    if ax is None:
        _, ax = _plt().subplots(figsize=(4.6, 4.2))
    scatter_panel(ax, scored, title)
    return ax
