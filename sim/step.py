"""Step pricing for the serving simulator: a batch composition -> seconds, joules, FLOPs, bytes.

The serving simulator asks one question many times: how long does one iteration take for this
batch (each request's new tokens and the context it already has)? ``StepCoster`` answers it with
the same graph builder and the same cost model as ``llmsim predict``, memoized by the batch's
shape, so that a request alone in the system sees exactly the static predictor's TTFT and TPOT.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.chip import System
from sim.cost import CostModel, CostOptions
from sim.estimate import estimate


@dataclass(frozen=True)
class StepCost:
    time_s: float
    energy_j: float  # all chips of the replica
    flops: float  # all chips of the replica
    bytes_main: float  # all chips of the replica


class StepCoster:
    """Prices iterations of one replica: ``step(seqs)`` with seqs = ((new_tokens, context_before), ...)."""

    def __init__(self, model, system: System, quant="bf16", parallel=None, options: CostOptions = CostOptions(),
                 attention_kernel: str = "auto", resident_bytes: float | None = None, max_memo: int = 200_000):
        from workloads import Parallelism, Quantization, load_model

        self.spec = load_model(model) if not hasattr(model, "layers") else model
        self.quant = Quantization.parse(quant)
        self.parallel = parallel or Parallelism()
        self.system = system
        self.options = options
        self.attention_kernel = attention_kernel
        self.chips = self.parallel.tp * self.parallel.pp
        self.cm = CostModel(system, options, resident_bytes=resident_bytes or 0.0, tp=self.parallel.tp)
        self._memo: dict = {}
        self._max_memo = max_memo
        self.calls = 0
        self.misses = 0

    def step(self, seqs) -> StepCost:
        """Cost of one iteration; ``seqs`` is a tuple of (new_tokens, context_before) per request."""
        from workloads import Batch, build_graph

        self.calls += 1
        key = tuple(seqs)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        self.misses += 1
        g = build_graph(self.spec, Batch(key), quant=self.quant, parallel=self.parallel,
                        attention_kernel=self.attention_kernel, fused=self.options.fused)
        gc = estimate(g, self.system, self.options, model=self.cm)
        per_stage_chips = self.chips / gc.pp
        sc = StepCost(gc.time_s, gc.energy_j * gc.pp * per_stage_chips, gc.flops * self.chips, gc.bytes_main * self.chips)
        if len(self._memo) < self._max_memo:
            self._memo[key] = sc
        return sc
