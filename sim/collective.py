"""Collective communication on a system's interconnect tiers: alpha-beta models.

Each tier has a per-chip, per-direction bandwidth ``B`` (times its achievable ``efficiency``), a
latency ``a`` and a topology. For a buffer of ``S`` bytes over ``p`` members of one tier:

=================  ==============================================================  ===========
collective         time                                                            source
=================  ==============================================================  ===========
ring allreduce     2 (p-1)/p * S/B + 2 (p-1) a                                     Patarasuk & Yuan 2009
tree allreduce     2 S/B + 2 ceil(log2 p) a  (double binary tree, pipelined)       Sanders et al. 2009 / NCCL
switch + INR       S/B + 2 a  (in-network reduction: each byte sent and received once)  NVLink SHARP
allgather / RS     (p-1)/p * S/B + (p-1) a   (S = the full, gathered buffer)       ring
alltoall (switch)  (p-1)/p * S/B + (p-1) a                                         pairwise exchange
alltoall (ring)    p/4 * S/B + (p-1) a       (bisection-bound, bidirectional ring)  bisection argument
sendrecv           S/B + a
=================  ==============================================================  ===========

NCCL picks the faster of ring and tree; so do we. On a ``fully_connected`` tier the bandwidth is
per link and each chip drives its p-1 links at once, so the (p-1)/p*S volume moves at (p-1)*B.
A torus or mesh is treated as a ring over the tier's fan-out (all dimensions' links together
giving the tier bandwidth), a documented simplification.

A group that spans several tiers runs hierarchically (as NCCL and ASTRA-sim do): reduce-scatter
inside the inner tier, the collective on 1/p_inner of the data across the outer tier, all-gather
inside the inner tier.
"""

from __future__ import annotations

import math

from hwmodels.arith import vmin
from hwmodels.chip import System, Tier

COLLECTIVES = ("allreduce", "allgather", "reducescatter", "alltoall", "sendrecv")


def tier_numbers(t: Tier) -> tuple:
    """(latency a, achievable bandwidth B) of a tier as its file gives them."""
    return t.latency_s, t.bandwidth_bytes_per_s * (t.efficiency or 1.0)


def tier_time(op: str, nbytes: float, p: int, t: Tier, numbers=tier_numbers):
    """Seconds for one collective of ``nbytes`` among ``p`` members of tier ``t``.

    ``numbers(t)`` gives the tier's (latency, achievable bandwidth): its file's values by default;
    the vectorized cost path passes arrays (one value per design point).
    """
    if p <= 1 or nbytes <= 0:
        return 0.0
    a, B = numbers(t)
    links = (p - 1) if t.topology == "fully_connected" else 1
    if op == "sendrecv":
        return nbytes / B + a
    if op == "allreduce":
        if t.in_network_reduction and t.topology == "switch":
            return nbytes / B + 2 * a
        ring = 2 * (p - 1) / p * nbytes / (B * links) + 2 * (p - 1) * a
        if t.topology == "fully_connected":
            return ring
        tree = 2 * nbytes / B + 2 * math.ceil(math.log2(p)) * a
        return vmin(ring, tree)
    if op in ("allgather", "reducescatter"):
        return (p - 1) / p * nbytes / (B * links) + (p - 1) * a
    if op == "alltoall":
        if t.topology in ("ring", "torus", "mesh"):
            return max(p / 4, (p - 1) / p) * nbytes / B + (p - 1) * a
        return (p - 1) / p * nbytes / (B * links) + (p - 1) * a
    raise ValueError(f"unknown collective '{op}'; known: {', '.join(COLLECTIVES)}")


def collective_time(system: System, op: str, nbytes: float, group_size: int, numbers=tier_numbers) -> tuple:
    """Seconds for a collective among ``group_size`` consecutive chips, and the tiers it used.

    A group of one costs nothing. Raises ValueError if the group is larger than the system.
    ``numbers`` as in :func:`tier_time`.
    """
    if group_size <= 1 or nbytes <= 0:
        return 0.0, ""
    if group_size > max(system.count, 1) or not system.tiers:
        raise ValueError(f"a {op} among {group_size} chips needs a system of at least {group_size} chips; "
                         f"{system.name} has {system.count}")
    spans = system.tiers_for_group(group_size)
    names = "+".join(t.name for t, _ in spans)
    if len(spans) == 1 or op == "sendrecv":
        t, p = spans[-1] if op == "sendrecv" else spans[0]
        return (tier_time(op, nbytes, p if op != "sendrecv" else 2, t, numbers),
                t.name if op == "sendrecv" else names)
    # hierarchical: inner tier first, data shrinks by the inner fan-out on the way out
    inner, p0 = spans[0]
    rest = System(system.name, system.source, system.chip, math.ceil(group_size / p0),
                  tuple(t for t in system.tiers[1:]))
    if op == "allreduce":
        outer, _ = collective_time(rest, "allreduce", nbytes / p0, math.ceil(group_size / p0), numbers)
        return (tier_time("reducescatter", nbytes, p0, inner, numbers) + outer
                + tier_time("allgather", nbytes, p0, inner, numbers)), names
    if op in ("allgather", "reducescatter"):
        outer, _ = collective_time(rest, op, nbytes / p0, math.ceil(group_size / p0), numbers)
        return tier_time(op, nbytes, p0, inner, numbers) + outer, names
    if op == "alltoall":
        # the share of data that leaves the inner group crosses the outer tier
        q = math.ceil(group_size / p0)
        inner_part = tier_time("alltoall", nbytes / q, p0, inner, numbers)
        outer, _ = collective_time(rest, "alltoall", nbytes, q, numbers)
        return inner_part + outer, names
    raise ValueError(f"unknown collective '{op}'")
