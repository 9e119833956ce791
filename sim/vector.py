"""Whole graphs priced at many hardware design points at once (sweeps).

A design-space sweep prices the same graph on many variants of one hardware description (more
HBM bandwidth, a bigger L2, fewer cores...). This module holds no formula of its own: it hands the
points to ``sim.cost.CostModel`` (the one cost model, written over numbers or numpy arrays alike)
and sums the op costs with ``sim.estimate.totals`` / ``stage_time``, as the per-op path does::

    hw = HwPoints(system, {"chip.memory.hbm.bandwidth": bw_array, "chip.cores": cores_array})
    ga = evaluate_graph(graph, hw, resident_bytes=...)   # ga.time_s: (P,) step times
    ga.op_time_s                                          # (P, ops) per-op times (keep_ops=True)

Which parameters may vary per point, and which are structure: sim/hwparams.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.cost import BOUNDS, GEMM_TILES, PARTIAL_SUM_BYTES, CostModel, CostOptions, OpArrays
from sim.estimate import resident_bytes as _resident
from sim.estimate import stage_time, totals
from sim.hwparams import HwPoints, canonical_key, param_table

_DEFAULT = CostOptions()

#: the vectorized model is the cost model itself, given an HwPoints
VectorCostModel = CostModel

__all__ = ["BOUNDS", "GEMM_TILES", "PARTIAL_SUM_BYTES", "GraphArrays", "HwPoints", "OpArrays", "VectorCostModel",
           "canonical_key", "combine_arrays", "evaluate_graph", "evaluate_ops", "param_table"]


@dataclass
class GraphArrays:
    """A whole step at every point (as :class:`sim.estimate.GraphCost`, with arrays)."""

    time_s: np.ndarray  # (P,) the step, all pipeline stages
    stage_s: np.ndarray
    compute_s: np.ndarray
    comm_s: np.ndarray
    flops: float  # per chip, per step (one stage): the same at every point
    bytes_main: np.ndarray  # (P,)
    energy_j: np.ndarray  # (P,)
    level_bytes: np.ndarray  # (P, levels): count-weighted bytes per memory level, per chip per stage
    pp: int = 1
    op_time_s: np.ndarray | None = None  # (P, ops) when keep_ops
    op_names: tuple = ()


def _full(x, n):
    a = np.asarray(x, dtype=float)
    return np.broadcast_to(a, (n,)) if a.ndim == 0 else a


def evaluate_ops(ops, hw: HwPoints, options: CostOptions = _DEFAULT, resident_bytes: float = 0.0,
                 tp: int = 1, chunk: int = 32768) -> list:
    """Price ``ops`` at every point, chunk by chunk: one OpArrays per op with (P,) arrays
    (``level_bytes`` a (P, levels) array). Ops shared by several graphs are priced once."""
    n = hw.n
    nlev = len(hw.system.chip.memory)
    out = [OpArrays(op.kind, op.count, None, None, None, None, np.empty(n), op.flops_matrix + op.flops_vector,
                    np.empty(n), np.empty(n), np.empty((n, nlev))) for op in ops]
    for s in range(0, n, chunk):
        part = hw.slice(s, s + chunk)
        m = part.n
        cm = CostModel(part, options, resident_bytes, tp)
        for op, o in zip(ops, out):
            c = cm.op_arrays(op)
            o.time_s[s:s + m] = _full(c.time_s, m)
            o.energy_j[s:s + m] = _full(c.energy_j, m)
            o.bytes_main[s:s + m] = _full(c.bytes_main, m)
            for i, b in enumerate(c.level_bytes):
                o.level_bytes[s:s + m, i] = _full(b, m)
    return out


def combine_arrays(priced: list, pp: int, options: CostOptions, keep_ops: bool = False, names=()) -> GraphArrays:
    """sim.estimate.combine over arrays: the same totals, plus bytes per memory level."""
    compute, comm, flops, bytes_main, energy = totals(priced)
    n = priced[0].time_s.shape[0] if priced else 0
    levels = sum((o.level_bytes * o.count for o in priced if o.kind != "collective"),
                 np.zeros((n, priced[0].level_bytes.shape[1])) if priced else np.zeros((0, 0)))
    stage = stage_time(compute, comm, options)
    full = [np.broadcast_to(np.asarray(x, dtype=float), (n,)) for x in (stage, compute, comm, bytes_main, energy)]
    stage, compute, comm, bytes_main, energy = full
    op_t = np.stack([o.time_s for o in priced], axis=1) if keep_ops and priced else None
    return GraphArrays(stage * pp, stage, compute, comm, float(flops), bytes_main, energy, levels, pp, op_t,
                       tuple(names))


def evaluate_graph(graph, hw: HwPoints, options: CostOptions = _DEFAULT, resident_bytes: float | None = None,
                   keep_ops: bool = False, chunk: int = 32768) -> GraphArrays:
    """Price every op of ``graph`` at every point of ``hw``: the vector form of sim.estimate.estimate.

    ``resident_bytes`` (weights + KV cache per chip) decides placement as in CostModel; default:
    what the graph's footprint says (sim.estimate.resident_bytes).
    """
    par = getattr(graph, "parallel", None)
    tp = getattr(par, "tp", 1) or 1
    pp = getattr(par, "pp", 1) or 1
    res = _resident(graph) if resident_bytes is None else resident_bytes
    priced = evaluate_ops(graph.ops, hw, options, res, tp, chunk)
    return combine_arrays(priced, pp, options, keep_ops, [op.name for op in graph.ops])
