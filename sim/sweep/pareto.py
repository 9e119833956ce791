"""Pareto frontiers of a sweep table: the points no other point beats on every objective.

``pareto_front(table, {"output_tok_s_per_chip": "max", "usd_per_mtok_output": "min"})`` keeps the
rows that are not dominated (a row dominates another when it is at least as good on every
objective and strictly better on one). Only rows with ``status == "ok"`` (and ``fits`` where the
table has it) and finite objective values take part. Two objectives are solved by one sort and a
sweep (a million rows in well under a second); more by pairwise checks against the growing front.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hwmodels.errors import Problem, SpecError

__all__ = ["DEFAULT_FRONTS", "pareto_front", "parse_objectives"]

# Fronts the CLI reports when the table has the columns (x, y): objective directions
DEFAULT_FRONTS = [
    {"output_tok_s_per_chip": "max", "usd_per_mtok_output": "min"},
    {"ttft_p99_s": "min", "usd_per_mtok_output": "min"},
    {"output_tok_per_joule": "max", "area_mm2": "min"},
    {"tpot_s": "min", "usd_per_mtok_output": "min"},
]


def parse_objectives(text: str, columns=None) -> dict:
    """'a:max,b:min' -> {'a': 'max', 'b': 'min'} (SpecError naming unknown columns, did-you-mean)."""
    import difflib

    out = {}
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        name, _, sense = part.partition(":")
        sense = sense.strip() or "min"
        if sense not in ("min", "max"):
            raise SpecError([Problem(f"objective '{part}': expected NAME:min or NAME:max")])
        if columns is not None and name not in columns:
            hint = difflib.get_close_matches(name, list(columns), n=1)
            raise SpecError([Problem(f"objective '{name}' is not a column of the table"
                                     + (f" (did you mean '{hint[0]}'?)" if hint else ""))])
        out[name.strip()] = sense
    if len(out) < 2:
        raise SpecError([Problem(f"a Pareto front needs at least two objectives; got '{text}'")])
    return out


def _eligible(df: pd.DataFrame, cols) -> pd.DataFrame:
    m = np.ones(len(df), dtype=bool)
    if "status" in df.columns:
        m &= (df["status"] == "ok").to_numpy()
    if "fits" in df.columns:
        m &= df["fits"].fillna(True).astype(bool).to_numpy()
    for c in cols:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        m &= np.isfinite(v)
    return df[m]


def pareto_front(df: pd.DataFrame, objectives: dict) -> pd.DataFrame:
    """Non-dominated rows of ``df`` for ``objectives`` ({column: 'min' | 'max'}), sorted by the first."""
    cols = list(objectives)
    for c in cols:
        if c not in df.columns:
            raise SpecError([Problem(f"objective '{c}' is not a column of the table")])
    d = _eligible(df, cols)
    if not len(d):
        return d.copy()
    M = np.column_stack([pd.to_numeric(d[c]).to_numpy(dtype=float) * (-1.0 if objectives[c] == "max" else 1.0)
                         for c in cols])
    keep = _front2(M) if M.shape[1] == 2 else _frontn(M)
    out = d.iloc[np.flatnonzero(keep)]
    first = cols[0]
    return out.sort_values(first, ascending=objectives[first] == "min", kind="stable")


def _front2(M: np.ndarray) -> np.ndarray:
    order = np.lexsort((M[:, 1], M[:, 0]))  # by x, then y (minimization)
    x, y = M[order, 0], M[order, 1]
    keep_sorted = np.zeros(len(x), dtype=bool)
    # for each distinct x: the smallest y of all points with strictly smaller x
    ux, start = np.unique(x, return_index=True)
    group_min = np.minimum.reduceat(y, start)
    prev_best = np.concatenate([[np.inf], np.minimum.accumulate(group_min)[:-1]])
    gid = np.repeat(np.arange(len(ux)), np.diff(np.append(start, len(x))))
    keep_sorted = (y == group_min[gid]) & (y < prev_best[gid])
    keep = np.zeros(len(x), dtype=bool)
    keep[order] = keep_sorted
    return keep


def _frontn(M: np.ndarray) -> np.ndarray:
    order = np.lexsort(M.T[::-1])
    front: list = []
    keep = np.zeros(len(M), dtype=bool)
    for i in order:
        p = M[i]
        if front:
            F = M[front]
            if np.any(np.all(F <= p, axis=1) & np.any(F < p, axis=1)):
                continue
        front.append(i)
        keep[i] = True
    return keep
