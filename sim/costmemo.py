"""The process-wide memo of per-op costs, shared by the cost models that price the same thing.

Each ``predict`` (and each serving run, plan candidate, notebook cell) builds its own
``CostModel``; without a shared memo every call re-prices the same prefill and decode ops from
cold (the GEMM tile search dominates). A ``CostModel`` built on one system (not on design-point
arrays) takes its memo tables from here, by a *context key* that holds everything pricing reads
besides the op itself:

- the hardware's content: ``repr`` of the ``System`` (frozen dataclasses all the way down, floats
  written exactly), so an override (``--set``) or an edited hardware file (the loader re-reads a
  changed file and returns a new object) gives another key, and two loads of the same numbers
  share one;
- the ``CostOptions`` (a frozen dataclass), the tensor-parallel degree;
- the placement: home level, partial SRAM level and share, activations' level.

A hit returns the object pricing returned for an equal op (ops are frozen dataclasses) in an
equal context, so it is exactly what pricing gives. Bounded: at most ``LIMIT`` entries in all
tables together; when full every table is cleared (in place, so models holding one see it empty).
"""

from __future__ import annotations

#: False: every new model keeps a memo of its own (the reference the shared memo is tested against)
ENABLED = True
#: entries (op costs and op arrays) over all contexts before every table is cleared
LIMIT = 100_000
#: contexts (hardware x options x placement) kept before the registry is dropped
MAX_CONTEXTS = 256

_tables: dict = {}  # context key -> (op -> OpCost, op -> OpArrays)
_added = 0  # entries added since the last count


def hardware_key(hw) -> str:
    """The content key of an ``HwPoints`` holding one point: ``repr`` of its system, computed once per
    ``HwPoints`` object (``scalar_points`` keeps one per system object)."""
    k = getattr(hw, "_content_key", None)
    if k is None:
        k = hw._content_key = repr(hw.system)
    return k


def tables(key) -> tuple[dict, dict]:
    """The (OpCost, OpArrays) memo tables of context ``key``; new empty ones for a new context."""
    t = _tables.get(key)
    if t is None:
        if len(_tables) >= MAX_CONTEXTS:
            clear()
        t = _tables[key] = ({}, {})
    return t


def added() -> None:
    """Count one entry added to a shared table; clear all when the tables together hold ``LIMIT``."""
    global _added
    _added += 1
    if _added >= LIMIT:
        _added = sum(len(a) + len(b) for a, b in _tables.values())  # callers may have cleared some
        if _added >= LIMIT:
            clear()


def clear() -> None:
    """Empty every table (in place) and forget the contexts."""
    global _added
    for a, b in _tables.values():
        a.clear()
        b.clear()
    _tables.clear()
    _added = 0


def size() -> int:
    """Entries held over all contexts."""
    return sum(len(a) + len(b) for a, b in _tables.values())
