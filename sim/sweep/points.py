"""Design points of a sweep: a grid, random samples or a Latin hypercube over the spec's axes.

``generate(spec)`` returns a DataFrame with one column per axis (named as the axis; hardware
values in SI units) and ``point_id``: a 16-hex-digit hash of the axis names and values, the
same whatever the order of generation, the backend or the run, so that a rerun can skip the
points already done (and adding values to an axis keeps the old points' ids).

- grid: every combination, in axis order (the last axis varies fastest);
- random: each axis drawn independently and uniformly (its values, or its range, log-uniform
  for ``scale: log``), ``samples`` points from ``numpy.random.default_rng(seed)``;
- lhs: a Latin hypercube: each axis's [0, 1) split into ``samples`` strata, one draw per stratum,
  strata permuted independently per axis (McKay, Beckman & Conover 1979).

Random and LHS draws of discrete axes can repeat a point; duplicates are dropped (same id).
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pandas as pd

__all__ = ["count", "generate", "point_ids"]

_M = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer (vectorized, wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _str_code(s: str) -> int:
    return struct.unpack("<Q", hashlib.blake2b(s.encode(), digest_size=8).digest())[0]


def _codes(values) -> np.ndarray:
    """uint64 code per value: numbers by their float64 bits (8 == 8.0), strings by blake2b."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iuf" and arr.dtype != bool:
        f = arr.astype(np.float64)
        f = np.where(f == 0.0, 0.0, f)  # -0.0 == 0.0
        return f.view(np.uint64).copy()
    out = np.empty(len(arr), dtype=np.uint64)
    cache: dict = {}
    for i, v in enumerate(arr.tolist()):
        c = cache.get(v)
        if c is None:
            if isinstance(v, (bool, int, float)):
                c = _codes(np.array([float(v)]))[0]
            else:
                c = np.uint64(_str_code(str(v)))
            cache[v] = c
        out[i] = c
    return out


def point_ids(frame: pd.DataFrame, axes: list[str]) -> np.ndarray:
    """16-hex-digit ids from the axis columns (names sorted, so column order does not matter)."""
    n = len(frame)
    h = np.full(n, np.uint64(0x6C6C6D73696D2031), dtype=np.uint64)  # "llmsim 1"
    for name in sorted(axes):
        h = _mix(h ^ np.uint64(_str_code(name)))
        h = _mix(h ^ _codes(frame[name].to_numpy()))
    return _hex(h)


_HEX = np.array([f"{i:02x}" for i in range(256)])


def _hex(h: np.ndarray) -> np.ndarray:
    """uint64 -> 16 hex digits, vectorized (a million ids in a fraction of a second)."""
    b = h.astype(">u8").view(np.uint8).reshape(-1, 8)
    out = _HEX[b[:, 0]]
    for j in range(1, 8):
        out = np.char.add(out, _HEX[b[:, j]])
    return out.astype(object)


def count(spec) -> int:
    """Points before constraints and de-duplication."""
    if spec.sampling["method"] == "grid":
        n = 1
        for a in spec.axes:
            n *= len(a.grid_values())
        return n
    return int(spec.sampling["samples"])


def generate(spec) -> pd.DataFrame:
    """The spec's design points (before constraints), with ``point_id``; see the module docstring."""
    axes = spec.axes
    method = spec.sampling["method"]
    cols: dict = {}
    if not axes:
        frame = pd.DataFrame(index=range(1))
    elif method == "grid":
        vals = [a.grid_values() for a in axes]
        shape = [len(v) for v in vals]
        idx = np.indices(shape).reshape(len(shape), -1)
        for a, v, ix in zip(axes, vals, idx):
            arr = np.asarray(v, dtype=object if not _numeric(v) else None)
            cols[a.name] = arr[ix]
        frame = pd.DataFrame(cols)
    else:
        n = int(spec.sampling["samples"])
        rng = np.random.default_rng(spec.sampling["seed"])
        for a in axes:
            if method == "lhs":
                u = (rng.permutation(n) + rng.random(n)) / n
            else:
                u = rng.random(n)
            cols[a.name] = a.from_unit(u)
        frame = pd.DataFrame(cols)
    for a in axes:  # ints stay ints (ids hash them as floats anyway)
        if a.values is not None and _numeric(a.values) and all(isinstance(x, (int, np.integer)) for x in a.values) or a.values is None and a.integer:
            frame[a.name] = frame[a.name].astype(np.int64)
    frame["point_id"] = point_ids(frame, [a.name for a in axes])
    frame = frame.drop_duplicates("point_id", keep="first").reset_index(drop=True)
    return frame


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)
