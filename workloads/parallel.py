"""Parallelism: how one model replica is split over chips (tensor, pipeline, expert, data).

- ``tp`` (tensor parallel, Megatron): attention heads and MLP widths are split over ``tp`` chips:
  QKV and gate/up projections by columns, O and down projections by rows, followed by an
  all-reduce of the layer output. ``tp`` must divide the attention heads. KV heads are split too;
  when ``tp`` exceeds the KV heads (``tp % kv_heads == 0``), each chip holds one KV head
  (replicated ``tp / kv_heads`` times, as vLLM does); any other ratio is infeasible.
  The embedding and LM head are split by vocabulary rows (vocab-parallel, padded up to a
  multiple of ``tp``).
- ``pp`` (pipeline parallel): contiguous groups of layers per stage; the busiest stage holds
  ``ceil(layers / pp)`` layers. Graphs and footprints describe that stage.
- ``ep`` (expert parallel): the routed experts are spread over ``ep`` chips, ``E / ep`` whole
  experts each. The EP group is carved out of the ``tp x dp`` chips of a stage (as in vLLM and
  SGLang), so ``ep`` must divide ``tp * dp``. With ``ep == 1`` the experts are tensor-split like
  a dense MLP.
- ``dp`` (data parallel): independent replicas, each serving its own batch; a graph describes
  one replica's chips. ``dp`` matters to a graph only through EP.
- ``imbalance`` (>= 1): rows of the busiest expert over the mean rows per expert under uniform
  routing. The grouped expert GEMM of a chip is scaled by it (the step waits for the busiest
  expert); 1.0 is perfectly uniform routing.

Infeasible splits raise :class:`hwmodels.errors.InfeasibleError` with the numbers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from hwmodels.errors import InfeasibleError, Problem, SpecError

__all__ = ["Parallelism", "check_parallelism", "stage_layers"]


@dataclass(frozen=True)
class Parallelism:
    """Degrees of tensor, pipeline, expert and data parallelism (chips = tp x pp x dp)."""

    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp: int = 1
    imbalance: float = 1.0

    def __post_init__(self):
        problems = []
        for f in ("tp", "pp", "ep", "dp"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                problems.append(Problem(f"must be a positive integer, got {v!r}", path=f"parallel.{f}"))
        if isinstance(self.imbalance, bool) or not isinstance(self.imbalance, (int, float)) \
                or not math.isfinite(self.imbalance) or self.imbalance < 1.0:
            problems.append(Problem(f"must be a number >= 1.0, got {self.imbalance!r}",
                                    path="parallel.imbalance"))
        if problems:
            raise SpecError(problems)
        object.__setattr__(self, "imbalance", float(self.imbalance))

    @classmethod
    def from_degrees(cls, tp: int = 1, pp: int = 1, ep: int = 1, **kw) -> Parallelism:
        """The one rule from the --tp/--pp/--ep flags to a layout: EP ranks are the ``tp x dp`` chips
        of a stage, so an ``ep`` wider than ``tp`` (a multiple of it) means ``ep / tp`` data-parallel
        attention replicas, each serving its share of the batch (chips = tp x pp x ep / tp); an ``ep``
        up to ``tp`` adds no chips. ``llmsim predict``, sweeps and ``llmsim serve`` all use it."""
        dp = ep // tp if isinstance(ep, int) and isinstance(tp, int) and tp >= 1 and ep > tp and ep % tp == 0 else 1
        return cls(tp=tp, pp=pp, ep=ep, dp=dp, **kw)

    def describe_dp(self) -> str | None:
        """A note when the layout has data-parallel attention replicas (None otherwise)."""
        if self.dp == 1:
            return None
        return (f"ep={self.ep} is wider than tp={self.tp}: {self.dp} data-parallel attention replicas of tp={self.tp}"
                f" share the {self.ep} expert-parallel chips ({self.chips} chips in all), each serving 1/{self.dp} "
                "of the batch")

    @property
    def chips(self) -> int:
        """Chips in all (EP reuses the tp x dp chips)."""
        return self.tp * self.pp * self.dp

    def __str__(self) -> str:
        parts = [f"tp={self.tp}", f"pp={self.pp}"]
        if self.ep > 1:
            parts.append(f"ep={self.ep}")
        if self.dp > 1:
            parts.append(f"dp={self.dp}")
        return ", ".join(parts)


def check_parallelism(spec, p: Parallelism) -> None:
    """Raise InfeasibleError when ``p`` cannot split ``spec`` (numbers in ``.numbers``)."""
    name = spec.name
    if p.pp > spec.layers:
        raise InfeasibleError(f"{name}: pp={p.pp} exceeds its {spec.layers} layers",
                              {"pp": p.pp, "layers": spec.layers})
    if spec.heads % p.tp:
        raise InfeasibleError(f"{name}: tp={p.tp} does not divide its {spec.heads} attention heads",
                              {"tp": p.tp, "heads": spec.heads})
    if spec.attention != "mla":
        kv = spec.kv_heads
        if (p.tp <= kv and kv % p.tp) or (p.tp > kv and p.tp % kv):
            raise InfeasibleError(
                f"{name}: tp={p.tp} and its {kv} KV heads neither divide the other",
                {"tp": p.tp, "kv_heads": kv})
    if spec.dense_layers and spec.intermediate % p.tp:
        raise InfeasibleError(f"{name}: tp={p.tp} does not divide the MLP width {spec.intermediate}",
                              {"tp": p.tp, "intermediate": spec.intermediate})
    if spec.is_moe:
        if p.ep == 1 and spec.moe_intermediate % p.tp:
            raise InfeasibleError(
                f"{name}: tp={p.tp} does not divide the expert width {spec.moe_intermediate} (try ep)",
                {"tp": p.tp, "moe_intermediate": spec.moe_intermediate})
        if spec.shared_intermediate and p.ep == 1 and spec.shared_intermediate % p.tp:
            raise InfeasibleError(
                f"{name}: tp={p.tp} does not divide the shared-expert width {spec.shared_intermediate}",
                {"tp": p.tp, "shared_intermediate": spec.shared_intermediate})
    if p.ep > 1:
        if not spec.is_moe:
            raise InfeasibleError(f"{name}: ep={p.ep} but the model has no experts",
                                  {"ep": p.ep, "experts": 0})
        if spec.num_experts % p.ep:
            raise InfeasibleError(f"{name}: ep={p.ep} does not divide its {spec.num_experts} experts",
                                  {"ep": p.ep, "experts": spec.num_experts})
        if (p.tp * p.dp) % p.ep:
            raise InfeasibleError(
                f"{name}: ep={p.ep} must divide tp x dp = {p.tp * p.dp} (EP ranks are the tp x dp chips)",
                {"ep": p.ep, "tp": p.tp, "dp": p.dp})


@functools.lru_cache(maxsize=1024)
def stage_layers(spec, pp: int) -> tuple[tuple[str, int], ...]:
    """Layers of each kind on the busiest pipeline stage: ``((tag, count), ...)``.

    Stages take contiguous layers; the first ``layers % pp`` stages hold one layer more. Among
    the stages holding ``ceil(layers / pp)`` layers, the busiest is the one with the most MoE
    layers, then the most global-attention layers (so DeepSeek's dense layers, on the first
    stage, do not hide a heavier stage).
    """
    tags = spec.layer_tags
    n = len(tags)
    base, extra = divmod(n, pp)
    best, best_key, start = None, None, 0
    moe_tags = {k.tag for k in spec.layer_kinds if k.moe}
    global_tags = {k.tag for k in spec.layer_kinds if k.window is None}
    for s in range(pp):
        size = base + (1 if s < extra else 0)
        chunk = tags[start:start + size]
        start += size
        key = (size, sum(t in moe_tags for t in chunk), sum(t in global_tags for t in chunk))
        if best_key is None or key > best_key:
            best, best_key = chunk, key
    order = [k.tag for k in spec.layer_kinds]
    return tuple((t, best.count(t)) for t in order if best.count(t))
