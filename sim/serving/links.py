"""The links a serving run moves KV caches over: the host link (swap preemption) and the path
between a prefill and a decode replica (disaggregation): the system's tiers (a send/recv priced
by ``sim.collective``) or else the chip's interconnect or host link; bytes / bandwidth + latency.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.errors import Problem, SpecError
from sim.collective import collective_time

__all__ = ["Links", "links_for"]


@dataclass(frozen=True)
class Links:
    """Seconds to move bytes over a run's links (per chip)."""

    system: object
    chips: int  # per replica

    def swap_time(self, nbytes: float) -> float:
        host = self.system.chip.host_link
        return nbytes / host.bandwidth_bytes_per_s + host.latency_s

    def transfer_time(self, nbytes: float) -> float:
        if nbytes <= 0:
            return 0.0
        sysobj = self.system
        if sysobj.count >= 2 and sysobj.tiers:
            return collective_time(sysobj, "sendrecv", nbytes, min(sysobj.count, 2 * self.chips))[0]
        chip = sysobj.chip
        link = chip.interconnect or chip.host_link
        return nbytes / link.bandwidth_bytes_per_s + link.latency_s


def links_for(sysobj, chips: int, cfg) -> Links:
    """The Links of ``cfg`` (a ServingConfig) on ``sysobj``; SpecError when swap preemption or
    disaggregation needs a link the hardware does not list."""
    chip = sysobj.chip
    if cfg.preemption == "swap" and chip.host_link is None:
        raise SpecError(Problem(f"{chip.name} lists no host link to swap KV blocks over; use recompute",
                                path="preemption (--preemption)"))
    if (cfg.scheduler == "disagg" and not (sysobj.count >= 2 and sysobj.tiers) and chip.interconnect is None
            and chip.host_link is None):
        raise SpecError(Problem(
            f"{chip.name} lists no interconnect to move KV caches between the prefill and decode pools",
            path="scheduler (--scheduler)"))
    return Links(sysobj, chips)
