"""The memory budget of a serving replica: how many KV blocks each chip holds.

vLLM's profile-then-allocate, term by term (vllm-project/vllm, the V1 worker since PR #19312, June 2025;
read at commit 35d5cda, late 2025):

- ``requested = total x gpu_memory_utilization``: ``Worker.init_device`` (vllm/v1/worker/gpu_worker.py)
  sets ``self.requested_memory = self.init_snapshot.total_memory * cache_config.gpu_memory_utilization``,
  ``total_memory`` being ``torch.cuda.mem_get_info()[1]``, the total the device reports. Here: the main
  memory's capacity (``Chip.capacity_for_weights``; the catalog gives each GPU the total its driver reports,
  docs/hardware-format.md) x ``ServingConfig.memory_utilization``.
- ``KV = requested - non_kv_cache_memory``: ``Worker.determine_available_memory`` (same file) runs
  ``model_runner.profile_run()`` inside ``memory_profiling(init_snapshot, weights_memory=...)``
  (vllm/utils/__init__.py, later vllm/utils/mem_utils.py), which sets ``non_kv_cache_memory =
  non_torch_increase + torch_peak_increase + weights_memory``:

  - ``weights_memory``: what loading the model took (``GPUModelRunner.model_memory_usage``). Here:
    ``Footprint.weights_bytes`` (workloads.memory).
  - ``torch_peak_increase``: the allocator's peak during the profile run, a dummy forward of
    ``max_num_batched_tokens`` tokens (``GPUModelRunner.profile_run`` -> ``_dummy_run(self.max_num_tokens,
    is_profile=True)``, ``max_num_tokens = scheduler_config.max_num_batched_tokens``). Here:
    ``Footprint.activation_bytes`` of a step of that many tokens (the chunk with chunked prefill), the
    largest set of tensors one op reads and writes.
  - ``non_torch_increase``: memory that grew outside torch's allocator since the start snapshot (NCCL and
    custom all-reduce buffers, backend workspaces; not the CUDA context, which exists before the snapshot).
    A fact of the engine: ``Stack.non_torch`` (the stack file's ``memory`` section, with its source; 0 where
    the stack gives none).

- CUDA-graph memory: captured after the KV cache is allocated (``Worker.compile_or_warm_up_model``), so
  not subtracted through vLLM 0.20; it lives in the ``1 - utilization`` slack. vLLM 0.21+ subtracts an
  estimate by default (PR #30515, ``VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS``); no stack models that yet.
- blocks: ``available // (block_size x KV bytes per token)`` (vllm/v1/core/kv_cache_utils.py
  ``get_num_blocks``). Sliding-window layers are budgeted like full ones (conservative).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.errors import InfeasibleError
from hwmodels.format import fmt_bytes
from hwmodels.stack import load_stack
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
        non_torch = load_stack(cfg.stack).non_torch(par.tp * par.pp)
        budget = usable - fp.weights_bytes - fp.activation_bytes - non_torch
        numbers = {"capacity_bytes": capacity, "usable_bytes": usable, "weights_bytes": fp.weights_bytes,
                   "activation_bytes": fp.activation_bytes, "non_torch_bytes": non_torch,
                   "kv_bytes_per_token": kv_per_token}
        if fp.weights_bytes > usable:
            from sim.predict import fit_hints

            hint = fit_hints(spec, _workspace_batch(step_tokens, spec.max_position), q, par, usable - non_torch,
                             offload_given=True)  # serve has no offload
            raise InfeasibleError(
                f"{spec.name} {q.name} weights need {fmt_bytes(fp.weights_bytes)} per chip at "
                f"tp={cfg.tp} pp={cfg.pp}; {chip.name} {chip.main_memory.name} holds {fmt_bytes(capacity)} "
                f"({cfg.memory_utilization:.0%} usable){hint}", numbers)
        kv_tokens = int(budget // kv_per_token) if budget > 0 else 0
        if kv_tokens < block_size:
            raise InfeasibleError(
                f"{spec.name} {q.name} leaves no room for a KV cache on {chip.name}: weights "
                f"{fmt_bytes(fp.weights_bytes)} + workspace {fmt_bytes(fp.activation_bytes)} (a {step_tokens}-token "
                f"step) + engine {fmt_bytes(non_torch)} of {fmt_bytes(usable)} usable per chip", numbers)
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
