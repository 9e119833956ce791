"""What the cost model takes and gives: :class:`CostOptions` (how the software runs the work), and
:class:`OpCost` / :class:`OpArrays` (one op priced on one chip, or at many design points).

Re-exported by ``sim.cost``, where callers import them from; the formulas live there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


__all__ = ["BOUNDS", "CostOptions", "OpArrays", "OpCost"]

BOUNDS = ("compute", "memory", "comm", "overhead")


@dataclass(frozen=True)
class CostOptions:
    """How the software runs the work (not what the hardware is)."""

    fused: bool = False  # fuse elementwise/norm chains: intermediates stay on chip, no extra launches
    cuda_graphs: bool = False  # launch overhead removed (kernels replayed from a graph)
    overlap_comm: bool = False  # collectives overlap compute (step time = max instead of sum)
    use_efficiency: bool = True  # apply the hardware file's achievable-efficiency fields
    tiling: bool = True  # GEMM tiling, padding and waves; False = plain roofline
    sparse: bool = False  # 2:4 structured sparsity on every weight GEMM where the chip lists a sparse peak
    # weight-only quantized GEMMs (w4a16, w8a16) dequantize their weight panel once per M tile inside
    # the kernel (Marlin-style): DEQUANT_FLOPS x weight elements x (M tiles - 1) vector FLOPs on top
    # of the graph's one dequant pass, serialized with the tensor-core work. Off: the graph's dequant op only.
    dequant_per_tile: bool = False
    # how attention kernels run the softmax exponentials (the serving stack's kernels.softmax,
    # docs/stacks.md): None or "ideal" = every softmax FLOP on the vector unit, under the matrix work
    # (the kernel-only model); "serial" = the exponentials on the chip's special-function unit, taking
    # turns with the matrix work (FlashAttention-2); "overlapped" = on the special unit, under the
    # matrix work where the unit can (special unit's overlaps_matrix: FlashAttention-3 ping-pong)
    softmax: str | None = None
    # the collective library priced (the serving stack's kernels.collectives, docs/stacks.md): None or
    # "alpha-beta" = one latency and bandwidth per tier; "nccl" = NCCL's algorithm x protocol choice;
    # "nccl-nvls" = the same with NVLink SHARP where the tier has in-network reduction (sim/collective.py)
    collectives: str | None = None
    # the MoE kernel's matrix rate on routed expert GEMMs (GemmShape.routing set) as a fraction of the
    # dense GEMM rate (the serving stack's kernels.moe_efficiency, docs/stacks.md); None or 1: the same
    moe_efficiency: float | None = None
    # the routed expert GEMMs' weight-stream share of the achievable memory bandwidth, by chip vendor and
    # weight dtype (the serving stack's kernels.moe_weight_stream, docs/stacks.md): ((vendor, ((dtype,
    # fraction), ...)), ...); None or (): 1 (as fast as a streaming kernel)
    moe_weight_stream: tuple | None = None
    # the decode attention kernel's work split (the serving stack's kernels.decode_attention:
    # hwmodels.stack.DecodeKernel): grouped-query heads, KV pages, split-KV policy and its partial
    # outputs; None = DecodeKernel() (the kernel-only model)
    decode_kernel: object = None
    # the prefill (flash) attention kernel (the serving stack's kernels.prefill_attention:
    # hwmodels.stack.PrefillKernel): CTA tiles, pipeline fill, softmax overlap, persistent CTAs;
    # None = the kernel-only model (FLOPs over rates in 128-row blocks and waves)
    prefill_kernel: object = None
    # the row-per-block streaming kernels (the serving stack's kernels.row_kernels: hwmodels.stack.RowKernels):
    # norm, activation and rotary kernels that run one thread block per token row and move a few elements
    # per thread per memory round trip; None = the kernel-only model (pure bandwidth)
    row_kernels: object = None
    # the GEMM kernel of block-scaled FP8 linears (the serving stack's kernels.block_fp8: hwmodels.stack.BlockFp8):
    # the dense (non-routed) GEMMs whose ops carry scale_block run at its gemm_efficiency x the dense FP8 rate on
    # the chip's architecture; None = BlockFp8() (the dense rate)
    block_fp8: object = None
    # ((op kind, factor), ...): every op of that kind takes factor x its priced time (compute, memory,
    # comm and overhead alike); a key 'kind/bound' scales only the ops of that kind whose unscaled bound it
    # is (and wins over the kind's key); used to price the ends of a prediction interval. Empty: no scaling.
    kind_scale: tuple = ()


@dataclass(frozen=True)
class OpCost:
    """The cost of one execution of one op on one chip (times in seconds, energy in joules)."""

    name: str
    kind: str
    count: int
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float
    time_s: float
    bound: str  # compute | memory | comm | overhead
    flops: float
    bytes_main: float  # bytes moved at the main-memory (weights/KV) level
    bytes_by_level: tuple  # ((level name, bytes), ...)
    energy_j: float
    layer: str = "layer"
    detail: str = ""

    @property
    def total_s(self) -> float:
        return self.time_s * self.count


@dataclass
class OpArrays:
    """One op priced at every point: numbers, or arrays of length P where the hardware varies."""

    kind: str
    count: int
    compute_s: object
    memory_s: object
    comm_s: object
    overhead_s: object
    time_s: object
    flops: float
    bytes_main: object
    energy_j: object
    level_bytes: list  # per memory level (chip.memory order): bytes moved
    detail: str = ""

    def bound(self):
        """0 compute, 1 memory, 2 comm, 3 overhead (the first largest, as ``max``)."""
        terms = np.broadcast_arrays(self.compute_s, self.memory_s, self.comm_s, self.overhead_s)
        return np.argmax(np.stack(terms), axis=0)
