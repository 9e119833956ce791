"""Steady-state statistics of a serving run: warm-up removal, batch-means confidence intervals of
a percentile, and queue growth. Used by the capacity planner's probes (sim/plan.py); pure numpy.

- **Warm-up** (:func:`mser5`): MSER-5 (White 1997; White, Cobb & Spratt 2000). The series (one
  value per request, in arrival order) is averaged in batches of 5; the truncation point ``d``
  (in batches, at most half of them) minimizes ``sum_{i>d} (b_i - mean_{>d})^2 / (m - d)^2``,
  the squared standard error of the mean of what is kept. The first ``5 d`` values are dropped.
- **Percentile confidence interval** (:func:`quantile_ci`): the kept series is cut into ``k``
  contiguous batches (default 10); the interval is the overall percentile +- ``t(0.975, k-1)``
  x the standard deviation of the batch percentiles / sqrt(k) (batch means applied to a
  quantile; Law & Kelton, Simulation Modeling and Analysis, ch. 9).
- **Queue growth** (:func:`queue_growth`): the number of outstanding requests (arrived, not
  finished) at each arrival of the second half of the kept arrivals, fitted by least squares;
  growth = slope x that half's duration, reported as a share of the half's arrivals. A replica
  that cannot hold the rate accumulates requests: arrivals outpace completions and the share
  stays near 1 - capacity / rate however good the early requests look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Growth", "mser5", "quantile_ci", "queue_growth", "t975"]

# two-sided 95 % Student t quantiles t(0.975, dof), dof 1..30 (standard tables)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t975(dof: int) -> float:
    """Two-sided 95 % Student t quantile (1.96 beyond 30 degrees of freedom)."""
    return _T975[dof - 1] if 1 <= dof <= len(_T975) else 1.96


def mser5(x) -> int:
    """Number of leading values to discard as warm-up (a multiple of 5; 0 for short series)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    m = len(x) // 5
    if m < 4:
        return 0
    b = x[: m * 5].reshape(m, 5).mean(axis=1)
    s1 = np.cumsum(b[::-1])[::-1]  # sum of b[d:]
    s2 = np.cumsum((b * b)[::-1])[::-1]
    n = m - np.arange(m)
    ss = s2 - s1 * s1 / n
    # a sum of squares within the rounding error of its own computation is zero: a flat series whose values
    # differ only in their last bits (0.368 + 1e-17) has no warm-up, not an arbitrary one
    ss = np.where(ss <= 16 * np.finfo(np.float64).eps * s2, 0.0, ss)
    stat = ss / (n * n)
    half = m // 2 + 1
    return 5 * int(np.argmin(stat[:half]))


def quantile_ci(x, q: float = 0.99, batches: int = 10) -> tuple[float, float]:
    """(percentile ``q`` of ``x``, half-width of its 95 % batch-means interval). NaNs are dropped;
    the half-width is inf while a batch holds fewer than 1 / (1 - q) values (100 for a p99: a
    batch's p99 needs at least that many to be more than its maximum)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.inf
    est = float(np.quantile(x, q))
    if x.size < math.ceil(1.0 / (1.0 - q) - 1e-9) * batches:
        return est, math.inf
    bq = np.array([np.quantile(c, q) for c in np.array_split(x, batches)])
    return est, float(t975(batches - 1) * bq.std(ddof=1) / math.sqrt(batches))


@dataclass(frozen=True)
class Growth:
    """Outstanding requests over the second half of the kept arrivals."""

    share: float  # growth / arrivals in the window (0 when steady; ~1 - capacity/rate when overloaded)
    growth: float  # fitted growth of the outstanding count over the window (requests)
    arrivals: int  # arrivals in the window
    window_s: float
    outstanding_end: float  # fitted outstanding count at the end of the window


def queue_growth(arrival_s, finish_s, start: int = 0) -> Growth:
    """Growth of (arrived - finished) over the second half of the arrivals after the first ``start``.

    ``arrival_s``/``finish_s``: per request (any order; requests that never finished have
    ``finish_s`` = inf).
    """
    arr = np.sort(np.asarray(arrival_s, dtype=np.float64))
    fin = np.sort(np.asarray(finish_s, dtype=np.float64))
    kept = arr[start:]
    if kept.size < 4:
        return Growth(0.0, 0.0, int(kept.size), 0.0, 0.0)
    t = kept[kept.size // 2:]
    window = float(t[-1] - t[0])
    if window <= 0:
        return Growth(0.0, 0.0, int(t.size), 0.0, 0.0)
    out = np.searchsorted(arr, t, side="right") - np.searchsorted(fin, t, side="right")
    slope, icept = np.polyfit(t - t[0], out.astype(np.float64), 1)
    growth = float(slope * window)
    return Growth(growth / t.size, growth, int(t.size), window, float(icept + slope * window))


def delay_slope(arrival_s, delay_s, start: int = 0) -> float:
    """Least-squares slope (seconds per second) of the queueing delay against the arrival time over
    the second half of the requests after the first ``start`` (in arrival order)."""
    a = np.asarray(arrival_s, dtype=np.float64)
    d = np.asarray(delay_s, dtype=np.float64)
    o = np.argsort(a, kind="stable")
    a, d = a[o][start:], d[o][start:]
    a, d = a[a.size // 2:], d[d.size // 2:]
    if a.size < 4 or a[-1] <= a[0]:
        return 0.0
    return float(np.polyfit(a - a[0], d, 1)[0])
