"""Discrete-event serving simulator (SimPy): request streams served by scheduled, KV-paged replicas.

``simulate(scenario, system, model, ...) -> ServingResult``; see docs/serving.md.
"""

from sim.serving.simulate import ServingResult, simulate

__all__ = ["ServingResult", "simulate"]
