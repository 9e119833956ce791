"""Whole-graph cost: every op of a step priced by the cost model and summed.

``estimate(graph, system)`` returns a ``GraphCost``: the step time (ops x their counts, with
collectives added or overlapped), FLOPs, bytes, energy, and a per-op table (``to_frame``).
With pipeline parallelism the graph describes the busiest stage; one batch passes every stage in
turn, so a step takes ``pp`` stage times (no micro-batch overlap within one batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwmodels.arith import vmax
from hwmodels.chip import Chip, System
from sim.cost import CostModel, CostOptions

if TYPE_CHECKING:  # pandas is imported where a frame is built: the CLI starts without it
    import pandas as pd


@dataclass(frozen=True)
class GraphCost:
    """The cost of one step (one forward pass of a batch) on one chip of the system."""

    ops: tuple  # of OpCost
    time_s: float  # the step, all pipeline stages
    stage_s: float  # one pipeline stage
    compute_s: float  # sum of count x time of non-collective ops
    comm_s: float  # sum of count x collective time
    flops: float  # per chip, per step (one stage)
    bytes_main: float  # per chip, per step, at the weights/KV level
    energy_j: float  # per chip, per step (one stage)
    pp: int = 1

    def to_frame(self) -> pd.DataFrame:
        """One row per op: times in seconds (per execution and total), FLOPs, bytes, bound."""
        import pandas as pd

        rows = []
        for c in self.ops:
            rows.append({
                "name": c.name, "kind": c.kind, "layer": c.layer, "count": c.count,
                "time_s": c.time_s, "total_time_s": c.time_s * c.count,
                "compute_s": c.compute_s, "memory_s": c.memory_s, "comm_s": c.comm_s, "overhead_s": c.overhead_s,
                "bound": c.bound, "flops": c.flops, "total_flops": c.flops * c.count,
                "bytes_main": c.bytes_main, "total_bytes_main": c.bytes_main * c.count,
                "energy_j": c.energy_j * c.count, "detail": c.detail,
            })
        df = pd.DataFrame(rows)
        if len(df):
            df["share"] = df["total_time_s"] / max(df["total_time_s"].sum(), 1e-30)
        return df

    def by_kind(self) -> pd.DataFrame:
        """Time per op kind (gemm, attention, collective, elementwise...), seconds and share."""

        df = self.to_frame()
        return df.groupby("kind", as_index=False)[["total_time_s", "total_flops", "total_bytes_main"]].sum() \
            .sort_values("total_time_s", ascending=False)

    def bound_breakdown(self) -> dict:
        """Share of step time by the bound that won each op."""
        tot = sum(c.time_s * c.count for c in self.ops) or 1.0
        out: dict = {}
        for c in self.ops:
            out[c.bound] = out.get(c.bound, 0.0) + c.time_s * c.count / tot
        return out


def resident_bytes(graph) -> float:
    """Weights plus KV cache one chip holds, as far as the graph tells (for placement)."""
    fp = getattr(graph, "footprint", None)
    if fp is not None:
        return fp.weights_bytes + fp.kv_cache_bytes
    seen = 0.0
    for op in graph.ops:
        for t in op.tensors:
            if t.role in ("weight", "kv") and not t.write:
                seen += t.bytes * op.count
    return seen


def cost_model_for(graph, system: System | Chip, options: CostOptions = CostOptions(),
                   resident: float | None = None) -> CostModel:
    tp = getattr(getattr(graph, "parallel", None), "tp", 1) or 1
    return CostModel(system, options, resident_bytes=resident_bytes(graph) if resident is None else resident, tp=tp)


def estimate(graph, system: System | Chip, options: CostOptions = CostOptions(), model: CostModel | None = None) -> GraphCost:
    """Price every op of ``graph`` on ``system`` (a chip is a system of one)."""
    cm = model or cost_model_for(graph, system, options)
    costs = tuple(cm.op_cost(op) for op in graph.ops)
    return combine(costs, getattr(getattr(graph, "parallel", None), "pp", 1) or 1, cm.options)


def totals(costs, skip_kind: str | None = None, start: tuple = (0.0, 0.0, 0.0, 0.0, 0.0)) -> tuple:
    """(compute_s, comm_s, flops, bytes_main, energy_j) of op costs x their counts, one stage;
    ops of ``skip_kind`` left out (the serving step coster adds attention separately). ``start``: the
    sums of the ops before these (the serving step coster continues a prefix priced apart)."""
    compute, comm, flops, bytes_main, energy = start
    for c in costs:
        if c.kind == skip_kind:
            continue
        if c.kind == "collective":
            comm += c.time_s * c.count
        else:
            compute += c.time_s * c.count
        flops += c.flops * c.count
        bytes_main += c.bytes_main * c.count
        energy += c.energy_j * c.count
    return compute, comm, flops, bytes_main, energy


def stage_time(compute: float, comm: float, options: CostOptions) -> float:
    """One pipeline stage: collectives added to compute, or overlapped with it."""
    return vmax(compute, comm) if options.overlap_comm else compute + comm


def combine(costs, pp: int, options: CostOptions) -> GraphCost:
    compute, comm, flops, bytes_main, energy = totals(costs)
    stage = stage_time(compute, comm, options)
    return GraphCost(costs, stage * pp, stage, compute, comm, flops, bytes_main, energy, pp)


def step_kernels(gc: GraphCost) -> float:
    """Kernel launches of one step: every op execution of the graph, all pipeline stages (the
    serving stack's eager-launch term, hwmodels.stack.Stack.step_time)."""
    return float(sum(c.count for c in gc.ops)) * gc.pp
