"""The contract between workloads/ and sim/: an op's counted work and the tensors it moves.

:class:`Op` (with its :class:`TensorIO` s and an optional :class:`GemmShape`,
:class:`AttentionShape` or :class:`CollectiveShape`) is what the graph builder
(``workloads.graph``) emits and the cost model (``sim/cost.py``) prices. No hardware, no time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["AttentionShape", "CollectiveShape", "GemmShape", "Op", "TensorIO", "stacked"]


@dataclass(frozen=True, slots=True)
class TensorIO:
    """A tensor an op moves: ``bytes`` per execution, per chip; ``write`` False = read."""

    name: str
    role: str  # 'weight' | 'activation' | 'kv'
    dtype: str
    bytes: float
    write: bool


@dataclass(frozen=True, slots=True)
class GemmShape:
    """C[m, n] = A[m, k] @ B[k, n], ``batch`` times (batch > 1: grouped GEMM, e.g. MoE experts)."""

    m: int
    n: int
    k: int
    batch: int = 1
    # MoE experts: (tokens routed, per-expert pick probabilities of this chip's experts); the cost
    # model pads each expert's expected rows to its tile (workloads.routing.expected_blocks)
    routing: tuple | None = None


@dataclass(frozen=True, slots=True)
class AttentionShape:
    phase: str  # 'prefill' | 'decode' | 'mixed'
    kernel: str  # 'flash' | 'paged' | 'naive'
    heads: int  # query heads on this chip
    kv_heads: int  # KV heads on this chip (MLA absorbed: 1 latent head)
    head_dim: int
    head_dim_v: int
    seqs: tuple[tuple[int, int], ...]  # per request: (new query tokens, kv length incl. the new ones)
    causal: bool
    kv_dtype: str
    window: int | None = None


@dataclass(frozen=True, slots=True)
class CollectiveShape:
    op: str  # 'allreduce' | 'allgather' | 'reducescatter' | 'alltoall' | 'sendrecv'
    bytes: float  # each rank's buffer (allreduce: the full tensor; allgather: the full output)
    group_size: int
    group: str  # 'tp' | 'pp' | 'ep' | 'dp'


@dataclass(frozen=True, slots=True)
class Op:
    name: str
    kind: str
    count: int
    flops_matrix: float
    flops_vector: float
    compute_dtype: str
    tensors: tuple[TensorIO, ...]
    gemm: GemmShape | None = None
    attention: AttentionShape | None = None
    collective: CollectiveShape | None = None
    layer: str = "layer"
    fusable: bool = False
    sparse: bool = False  # 2:4-pruned weights (build_graph(sparsity=...)): the cost model uses the sparse peak
    # special-function operations (exp) inside flops_vector: a chip's special unit (SFU) runs them
    # at its own rate when the serving stack prices kernels realistically (docs/stacks.md)
    flops_special: float = 0.0
    # bytes of this op's activation input that the kernel run right before it on the chip just wrote
    # (workloads.graph marks them on streaming ops; sim/cost.py reads them from the chip-level cache when
    # they are still there: inter-kernel L2 residency)
    fresh_bytes: float = 0.0
    # the activation bytes that kernel wrote in all, the stretch the fresh bytes lie in (0: the fresh bytes
    # alone): rope reads q and k of a QKV output that holds v between them, so each of their lines sees the
    # v lines written after it too
    fresh_span: float = 0.0
    # rows of a row-per-CTA streaming kernel (vLLM's RMSNorm, SiluAndMul and rotary kernels launch one
    # thread block per token row): the token rows; 0 = a flat elementwise kernel (a residual add).
    # sim/cost.py prices the rows' waves of dependent memory round trips (the stack's row_kernels)
    rows: float = 0.0
    # a row kernel that walks its row in two loops one after the other (vLLM's rotary kernel: q's heads, then
    # k's): the output elements per row of the first loop, on which the kernel sizes its block; the second loop
    # walks the rest with the same block. 0 = one loop over the whole row (every other row kernel)
    first_loop: float = 0.0
    # a block-scaled GEMM (Quantization.block_scaled): K elements per scale of its operands (the weight block's
    # k and the activations' token group); the kernel applies both scales per K block (in flops_vector) and
    # sim/gemmcost.py prices it with the stack's block-FP8 kernel (kernels.block_fp8). 0 = not block-scaled
    scale_block: int = 0

    @property
    def flops(self) -> float:
        """FLOPs of one execution (matrix + vector)."""
        return self.flops_matrix + self.flops_vector

    @property
    def bytes_read(self) -> float:
        return sum(t.bytes for t in self.tensors if not t.write)

    @property
    def bytes_written(self) -> float:
        return sum(t.bytes for t in self.tensors if t.write)

    @property
    def bytes(self) -> float:
        return sum(t.bytes for t in self.tensors)

    def bytes_of(self, role: str) -> float:
        """Bytes of one execution moved for tensors of ``role`` ('weight', 'activation', 'kv')."""
        return sum(t.bytes for t in self.tensors if t.role == role)


def stacked(values: list):
    """One value standing for all of ``values`` (ops of the same structure, e.g. one GEMM of a graph
    built at several token counts): the numbers that differ become numpy arrays over ``values`` (an
    op's FLOPs, its tensors' bytes, its GemmShape's M, batch and routed tokens), the rest stays as
    it is. ``sim.cost.CostModel.over_steps()._price`` prices such an op elementwise. ValueError when
    the values differ in anything but numbers (names, kinds, dtypes, tensor lists)."""
    v0 = values[0]
    if all(v == v0 for v in values[1:]):
        return v0
    if isinstance(v0, (int, float)) and not isinstance(v0, bool) and \
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.array(values)
    if isinstance(v0, tuple) and all(isinstance(v, tuple) and len(v) == len(v0) for v in values):
        return tuple(stacked([v[i] for v in values]) for i in range(len(v0)))
    if dataclasses.is_dataclass(v0) and all(type(v) is type(v0) for v in values):
        return dataclasses.replace(v0, **{f.name: stacked([getattr(v, f.name) for v in values])
                                          for f in dataclasses.fields(v0)})
    raise ValueError(f"cannot stack values that differ in more than numbers: {values[0]!r} vs others")
