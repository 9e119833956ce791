"""Arithmetic that works on Python numbers and on numpy arrays alike.

The cost model (sim/cost.py) is written once over these helpers: priced on one chip, every
parameter is a Python float and each helper costs what ``max`` or ``math.ceil`` costs; priced on
``P`` design points at once (a sweep), the parameters that vary are arrays of length ``P`` and the
same code runs elementwise with numpy. ``+ - * / // < >`` need no helper: Python and numpy agree.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["at_level", "isarr", "vany", "vceil", "vmax", "vmin", "vsqrt", "vwhere"]


def isarr(x) -> bool:
    return isinstance(x, np.ndarray)


def vmax(a, b):
    """max(a, b); elementwise when either is an array (the first wins ties, as ``max``)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.maximum(a, b)
    return a if a >= b else b


def vmin(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.minimum(a, b)
    return a if a <= b else b


def vwhere(cond, x, y):
    """``x if cond else y``; elementwise when ``cond`` is an array."""
    if isinstance(cond, np.ndarray):
        return np.where(cond, x, y)
    return x if cond else y


def vceil(x):
    """math.ceil (an int) for a number, np.ceil (floats) for an array."""
    if isinstance(x, np.ndarray):
        return np.ceil(x)
    return math.ceil(x)


def vsqrt(x):
    if isinstance(x, np.ndarray):
        return np.sqrt(x)
    return math.sqrt(x)


def vany(cond) -> bool:
    """Whether ``cond`` holds (anywhere, for an array)."""
    if isinstance(cond, np.ndarray):
        return bool(_ANY(cond, axis=None))  # what ndarray.any calls, without its Python wrapper
    return bool(cond)


_ANY = np.logical_or.reduce


class _Namespace:
    """The helpers above as attributes, so a caller binds one set: ``ARRAYS`` (numbers or arrays,
    dispatching per call) or ``NUMBERS`` (Python numbers only: the builtins, no dispatch)."""

    def __init__(self, **fns):
        self.__dict__.update(fns)


def _where_numbers(cond, x, y):
    return x if cond else y


ARRAYS = _Namespace(max=vmax, min=vmin, where=vwhere, ceil=vceil, sqrt=vsqrt, any=vany, isarr=isarr)
NUMBERS = _Namespace(max=max, min=min, where=_where_numbers, ceil=math.ceil, sqrt=math.sqrt, any=bool,
                     isarr=lambda x: False)


def at_level(values, index):
    """``values[index]``: a per-level figure (bandwidth, latency) at a level index that may vary per
    design point (an index array picks each point's level; each figure a number or a per-point array)."""
    if not isarr(index):
        return values[index]
    return np.choose(index, [np.broadcast_to(np.asarray(v, dtype=float), index.shape) for v in values])
