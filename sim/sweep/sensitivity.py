"""Which axis buys the most: the sensitivity of a metric to each axis of a sweep table.

For each axis, from the table alone (any sampling):

- ``share``: the first-order (main-effect) index, Var(E[metric | axis]) / Var(metric): the
  fraction of the metric's variance explained by that axis alone (Saltelli et al., Global
  Sensitivity Analysis, 2008). Continuous axes are cut into ``bins`` quantile bins first.
  Grids and Latin hypercubes estimate it well; the shares of independent axes sum to <= 1.
- ``swing``: the spread of the per-level means (best level mean - worst level mean), in the
  metric's units, and ``best_level``: the axis value with the best mean for the metric's sense.
- ``elasticity`` (numeric axes): the slope of log(metric) on log(axis) by least squares: the
  percent change of the metric per percent change of the axis ("+10 % HBM bandwidth buys
  +x % throughput"), averaged over the rest of the design space.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["sensitivity"]


def sensitivity(df: pd.DataFrame, metric: str, axes=None, sense: str = "min", bins: int = 8) -> pd.DataFrame:
    """One row per axis, most influential first (see the module docstring)."""
    d = df
    if "status" in d.columns:
        d = d[d["status"] == "ok"]
    if "fits" in d.columns:
        d = d[d["fits"].fillna(True).astype(bool)]
    y = pd.to_numeric(d[metric], errors="coerce")
    d = d[np.isfinite(y.to_numpy(dtype=float))]
    y = pd.to_numeric(d[metric]).to_numpy(dtype=float)
    if axes is None:
        axes = [c for c in df.columns if c.startswith(("hw.", "serving.")) or c in
                ("model", "quant", "tp", "pp", "ep", "replicas", "batch", "input_len", "output_len")]
        axes = [a for a in axes if a in d.columns and d[a].nunique() > 1]
    var = float(np.var(y)) if len(y) else 0.0
    rows = []
    for a in axes:
        x = d[a]
        numeric = pd.api.types.is_numeric_dtype(x)
        levels = x
        if numeric and x.nunique() > bins:
            levels = pd.qcut(x.rank(method="first"), bins, labels=False)
        means = pd.Series(y, index=d.index).groupby(levels.to_numpy()).mean()
        counts = pd.Series(y, index=d.index).groupby(levels.to_numpy()).size()
        share = float(np.sum(counts * (means - y.mean()) ** 2) / len(y) / var) if var > 0 else 0.0
        best = means.idxmin() if sense == "min" else means.idxmax()
        if numeric and x.nunique() > bins:
            best_x = pd.Series(x.to_numpy())[levels.to_numpy() == best]
            best_level = f"{best_x.min():.4g} .. {best_x.max():.4g}"
        else:
            best_level = best
        el = np.nan
        if numeric:
            xv = x.to_numpy(dtype=float)
            ok = (xv > 0) & (y > 0)
            if ok.sum() > 2 and np.ptp(np.log(xv[ok])) > 0:
                el = float(np.polyfit(np.log(xv[ok]), np.log(y[ok]), 1)[0])
        rows.append({"axis": a, "levels": int(x.nunique()), "share": share, "swing": float(means.max() - means.min()),
                     "best_level": best_level, "best_mean": float(means.loc[best]), "elasticity": el})
    out = pd.DataFrame(rows, columns=["axis", "levels", "share", "swing", "best_level", "best_mean", "elasticity"])
    return out.sort_values("share", ascending=False, kind="stable").reset_index(drop=True)
