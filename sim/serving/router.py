"""Routers: which data-parallel replica gets an arriving request.

- ``round-robin``: replicas in turn (what a plain load balancer does);
- ``least-outstanding``: the replica with the fewest requests admitted and not finished
  (queued, running or swapped), ties to the lowest index;
- ``least-kv``: the replica whose KV cache would be least full counting the blocks its queued
  requests will need (used + queued demand) / capacity, ties to the lowest index.

Routing happens once, at arrival (no migration). In the offline mode (every request at t=0)
replicas instead pull from one shared queue when they have room, which is what a router with
perfect knowledge would achieve; the policy then does not matter.
"""

from __future__ import annotations

from sim.config import ROUTERS

__all__ = ["ROUTERS", "Router"]


class Router:
    def __init__(self, policy: str, replicas: list):
        if policy not in ROUTERS:
            raise ValueError(f"unknown router {policy!r}; known: {', '.join(ROUTERS)}")
        self.policy = policy
        self.replicas = replicas
        self._next = 0

    def pick(self, seq):
        reps = self.replicas
        if len(reps) == 1:
            return reps[0]
        if self.policy == "round-robin":
            r = reps[self._next]
            self._next = (self._next + 1) % len(reps)
            return r
        if self.policy == "least-outstanding":
            return min(reps, key=lambda r: r.outstanding)
        return min(reps, key=lambda r: (r.bm.used + r.queued_blocks) / r.bm.total)
