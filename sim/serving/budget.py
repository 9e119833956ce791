"""The memory budget of a serving replica: how many KV blocks each chip holds.

vLLM's profile-then-allocate: ``memory_utilization`` x the capacity of the level that holds
weights (``Chip.capacity_for_weights``), minus the weights and the activation workspace of the
largest step the scheduler may form (``workloads.footprint``), divided by the KV bytes one token
adds on that chip, in whole blocks. Sliding-window layers are budgeted like full ones
(conservative).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.errors import InfeasibleError
from hwmodels.format import fmt_bytes
from workloads import Batch, footprint

__all__ = ["KvBudget", "memory_budget"]


@dataclass(frozen=True)
class KvBudget:
    """KV blocks per replica and what they cost per chip."""

    num_blocks: int
    block_size: int
    kv_bytes_per_token: float  # per chip
    weights_bytes: float  # per chip (0 when the capacity was injected)

    @property
    def block_bytes(self) -> float:
        return self.kv_bytes_per_token * self.block_size

    @property
    def resident_bytes(self) -> float:
        """Weights plus the whole KV cache: what sits in the chip's memory during the run."""
        return self.weights_bytes + self.num_blocks * self.block_bytes


def _workspace_batch(tokens: int, max_position: int):
    k, r = divmod(tokens, max_position)
    seqs = ((max_position, 0),) * k + (((r, 0),) if r else ())
    return Batch(seqs)


def memory_budget(spec, chip, q, par, cfg, kv_capacity_tokens: int | None = None) -> KvBudget:
    """The KV budget of one replica of ``cfg`` (a ServingConfig) on ``chip``; ``kv_capacity_tokens``
    injects the capacity instead (tests). InfeasibleError when the weights, or one block, do not fit."""
    block_size = cfg.block_size
    if kv_capacity_tokens is None:
        step_tokens = cfg.chunk_size if cfg.scheduler == "sarathi" else cfg.step_budget
        fp = footprint(spec, _workspace_batch(step_tokens, spec.max_position), q, par,
                       attention_kernel=cfg.attention_kernel)
        capacity = chip.capacity_for_weights()
        usable = capacity * cfg.memory_utilization
        kv_per_token = fp.kv_bytes_per_token
        budget = usable - fp.weights_bytes - fp.activation_bytes
        numbers = {"capacity_bytes": capacity, "usable_bytes": usable, "weights_bytes": fp.weights_bytes,
                   "activation_bytes": fp.activation_bytes, "kv_bytes_per_token": kv_per_token}
        if fp.weights_bytes > usable:
            raise InfeasibleError(
                f"{spec.name} {q.name} weights need {fmt_bytes(fp.weights_bytes)} per chip at "
                f"tp={cfg.tp} pp={cfg.pp}; {chip.name} {chip.main_memory.name} holds {fmt_bytes(capacity)} "
                f"({cfg.memory_utilization:.0%} usable)", numbers)
        kv_tokens = int(budget // kv_per_token) if budget > 0 else 0
        if kv_tokens < block_size:
            raise InfeasibleError(
                f"{spec.name} {q.name} leaves no room for a KV cache on {chip.name}: weights "
                f"{fmt_bytes(fp.weights_bytes)} + workspace {fmt_bytes(fp.activation_bytes)} of "
                f"{fmt_bytes(usable)} usable per chip (a {step_tokens}-token step)", numbers)
        weights_bytes = fp.weights_bytes
    else:
        kv_tokens = int(kv_capacity_tokens)
        kv_per_token = footprint(spec, (1, 2), q, par).kv_bytes_per_token
        weights_bytes = 0.0
    num_blocks = kv_tokens // block_size
    if num_blocks < 1:
        raise InfeasibleError(f"the KV cache holds {kv_tokens} tokens, less than one block of {block_size}",
                              {"kv_tokens": kv_tokens})
    return KvBudget(num_blocks, block_size, kv_per_token, weights_bytes)
