"""Serving-stack profiles: the software facts that change a prediction (``kind: stack`` YAML files).

A stack file (catalog: ``hwmodels/catalog/stacks/*.yaml``; format in docs/stacks.md) names the
kernel families a serving engine runs (attention, MoE, GEMM), its per-step runtime cost outside the
kernels (scheduling, input preparation, sampling, detokenization; whether that CPU work overlaps
the GPU step), whether decode steps replay CUDA graphs, and its default scheduler (token budget,
sequence limit, chunked prefill). Every value carries its source. The same rules as hardware files:
units in values, ``file:line:col`` errors with did-you-mean, ``llmsim check``, JSON Schema.

``ideal`` is the kernel-only model (no runtime cost outside kernels): predictions under it are the
cost model's numbers unchanged. ``DEFAULT_STACK`` (``vllm``) stands for a current mainstream stack.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwmodels.errors import Problem, SpecError
from hwmodels.limits import read_text
from hwmodels.dtype import RATE_KEYS
from hwmodels.isa import CLASSES as ISA_CLASSES
from hwmodels.schema import ARCHITECTURES, FORMAT_VERSION, Bool, F, ListOf, MapOf, Number, Quantity, Sources, Str, Struct, validate
from hwmodels.yamlio import load_marked

STACKS = Path(__file__).parent / "catalog" / "stacks"
DEFAULT_STACK = "vllm"

SOFTMAX_MODES = ("ideal", "serial", "overlapped")
# collective libraries the cost model prices (sim/collective.py): alpha-beta per tier (the kernel-only
# model), NCCL's algorithm x protocol tuner model, the same with NVLink SHARP (NVLS) enabled, vLLM's
# custom all-reduce for small single-node all-reduces with NCCL for the rest
COLLECTIVE_LIBRARIES = ("alpha-beta", "nccl", "nccl-nvls", "custom-allreduce")
GQA_MODES = ("grouped", "per_query_head")
# how a decode kernel picks its split-KV count (sim.attention.decode_splits): fill the slots (the kernel-only
# model), FlashAttention's occupancy heuristic (num_splits_heuristic), FlashAttention-3's varlen dynamic split
SPLIT_RULES = ("fill", "occupancy", "dynamic")

# one field shared by the decode and prefill kernel facts
_KV_TILES_IN_FLIGHT = F(Number(gt=0, le=64),
                        doc="K or V tiles of kv_tile_tokens a resident CTA keeps in flight (with pipeline_fill, "
                            "Little's law over them bounds the KV stream): 2 (default) one K and one V tile, as a "
                            "producer warp that loads the next stage's K and V; 1 for a loop that waits for each "
                            "load before it issues the next (FlashAttention-2's split kernel: wait K, issue V, "
                            "QK^T, wait V, issue the next K)")

def _with_architectures(facts: dict, name: str, entry_source: str, doc: str) -> Struct:
    """A stack section of ``facts`` with its ``by_architecture`` map (entries: any of the facts, optional,
    and their ``source``) and its own ``source``: the one shape of decode_attention, block_fp8 and
    prefill_attention."""
    entry = Struct({**{k: F(f.type, False, f.doc) for k, f in facts.items()},
                    "source": F(Sources(), True, entry_source)}, name=f"{name}.by_architecture entry")
    return Struct({**facts, "by_architecture": F(MapOf(ARCHITECTURES, entry, key_name="architecture"), doc=doc),
                   "source": F(Sources(), True)}, name=name)


_DECODE_FACTS = {
    "gqa": F(Str(GQA_MODES), True, "how the decode kernel treats grouped-query heads: grouped (one CTA per request "
                                   "and KV head holds the group's query heads: K and V read once, from DRAM into "
                                   "shared memory) or per_query_head (one CTA per query head: the group's CTAs run "
                                   "together, so DRAM is read once per KV head but L2 once per query head)"),
    "page_size": F(Number(integer=True, ge=0), True, "tokens per KV-cache page (0: contiguous): each CTA first reads "
                                                     "its request's block table, a dependent round trip before "
                                                     "the KV gathers"),
    "split_ctas_per_core": F(Number(integer=True, gt=0), True,
                             "split-KV fills cores x this many CTA slots (the kernel's occupancy)"),
    "kv_tile_tokens": F(Number(integer=True, gt=0), True,
                        "KV tokens a CTA loads per pipeline stage (FlashAttention's block_n): split-KV cuts the KV "
                        "length in chunks of at least this many tokens, and a CTA keeps one K and one V tile of "
                        "them in flight"),
    "kv_tile_tokens_by_head_dim": F(ListOf(ListOf(Number(integer=True, gt=0, le=65536), exact_len=2), min_len=1),
                                    doc="[head_dim up to, KV tokens] rows where the kernel's block_n depends on the "
                                        "head_dim (the first row whose bound holds, the last above them all): they "
                                        "replace kv_tile_tokens at that head_dim; default none"),
    "split_threshold": F(Number(gt=0, le=1), True, "no split once (request, head) units fill this share of the slots"),
    "split_gqa_only": F(Bool(), True, "split only where the group's query heads share a CTA (grouped-query "
                                      "models); multi-head decode runs one unsplit CTA per (request, head)"),
    "split_partials": F(Bool(), True, "a split writes fp32 partial outputs and log-sum-exps that a combine kernel "
                                      "reads back (a second launch)"),
    "pipeline_fill": F(Bool(), True, "a real kernel: its KV stream reaches at most the bytes its resident CTAs keep "
                                     "in flight per memory latency (Little's law), and a CTA waits one round trip "
                                     "per dependent read (block table, then its first tile) before it streams; "
                                     "false: the kernel-only model (the active cores' share of the bandwidth)"),
    "q_tile_rows": F(Number(integer=True, ge=0, le=4096),
                     doc="query rows of a CTA's tile (the kernel's kBlockM; a decode step's query heads padded to it): "
                         "with pipeline_fill, each CTA computes one tile of q_tile_rows x kv_tile_tokens (query, key) "
                         "pairs that its KV stream cannot hide (its first tile arrives before the compute starts, its "
                         "last tile's compute follows the last load), matrix and softmax work in turn at one core's "
                         "rates, shared by the CTAs resident on a core; default 0 (none)"),
    "kv_tiles_in_flight": _KV_TILES_IN_FLIGHT,
    "softmax_hidden": F(Number(ge=0, le=1),
                        doc="share of the matrix work under which the kernel's softmax runs in the steady state, on "
                            "chips whose special-function unit overlaps the matrix unit (0: they take turns, the "
                            "default); the steady-state work is that of whole q_tile_rows x kv_tile_tokens tiles"),
    "kv_stream_efficiency": F(Number(gt=0, le=1),
                              doc="share of the memory level's achievable bandwidth the kernel's KV gather reaches "
                                  "(a paged load path whose threads compute each row's address, e.g. FlashAttention-3's "
                                  "cp.async non-TMA path); default 1 (as fast as a streaming kernel)"),
    "split_rule": F(Str(SPLIT_RULES),
                    doc="how the split count is chosen below the threshold: fill (min(ceil(slots / units), KV tiles), "
                        "the kernel-only model), occupancy (FlashAttention's num_splits_heuristic: the smallest split "
                        "count whose wave efficiency reaches 0.85 of the best, at most 128), dynamic "
                        "(FlashAttention-3's varlen split: ceil(KV tiles / ceil(1.1 x units x KV tiles / slots)), at "
                        "most the occupancy count of one request); default fill"),
    "prepare_kernel": F(Bool(),
                        doc="every call first launches a scheduler-metadata kernel that reads each request's KV "
                            "length and writes its split count, which the attention kernel waits for (upstream "
                            "FlashAttention-3's prepare_varlen_num_blocks when cache_seqlens are given): one more "
                            "kernel's fixed time and one main-memory round trip per call; default false (none, or "
                            "computed once per step and shared by the layers, as vLLM passes scheduler_metadata)"),
    "combine_splits_per_trip": F(Number(integer=True, ge=0, le=128),
                                 doc="with split_partials: the splits' partial outputs the combine kernel loads per "
                                     "round trip after the one that reads their log-sum-exps (FlashAttention-2's "
                                     "combine_attn_seqk_parallel: 1, a loop that loads one split's partial output and "
                                     "then adds it in); default 0: all of them with the log-sum-exps, one round trip"),
    "split_min_kv_tiles": F(Number(integer=True, ge=1, le=65536),
                            doc="split-KV only where the longest context spans at least this many KV tiles "
                                "(FlashAttention-3: 5, 'never split for hdim 128 and seqlen_k 512'); default 1"),
}

DECODE = _with_architectures(
    _DECODE_FACTS, "decode_attention", "where this architecture's facts come from (the kernel that runs there)",
    "facts that differ on chips of one architecture (the chip file's `architecture`), e.g. {hopper: "
    "{split_ctas_per_core: 1, source: ...}} where the engine runs another kernel there (vLLM: "
    "FlashAttention-3 on Hopper, FlashAttention-2 elsewhere); the facts above apply everywhere else "
    "and to every fact an entry leaves out")

_BLOCK_FP8_FACTS = {
    "kernel": F(Str(), True, "the block-scaled FP8 GEMM kernel the engine runs for block-FP8 linears (recorded), "
                             "e.g. CUTLASS sm90 blockwise scaled_mm, Triton w8a8_block_fp8_matmul"),
    "gemm_efficiency": F(Number(gt=0, le=1), True,
                         "its matrix-unit rate on the dense linears of a block-FP8 checkpoint as a fraction of the "
                         "chip's dense FP8 GEMM rate (the matrix efficiency the chip file gives); the per-token-group "
                         "activation quantization before each GEMM is an op of its own in the graph, priced as a "
                         "streaming kernel, and MoE experts keep moe_efficiency"),
}

BLOCK_FP8 = _with_architectures(
    _BLOCK_FP8_FACTS, "block_fp8", "where this architecture's kernel and rate come from",
    "the kernel and rate on chips of one architecture (the chip file's `architecture`), e.g. {hopper: "
    "{kernel: ..., gemm_efficiency: ..., source: ...}}; the facts above apply everywhere else")

MMA_PATHS = ("native", "sync")  # PrefillKernel.mma: the chip's own MMA path, or sm80's warp-synchronous mma.sync

_PREFILL_FACTS = {
    "tiles": F(ListOf(ListOf(Number(integer=True, gt=0, le=65536), exact_len=3), min_len=1), True,
               "[head_dim up to, query rows per CTA, KV tokens per main-loop iteration] of the prefill kernel, "
               "by head_dim (the first row whose head_dim bound holds; the last above them all): a CTA works on "
               "one block of query rows of one head and walks the keys in tiles (both padded to whole tiles)"),
    "causal_tiles": F(ListOf(ListOf(Number(integer=True, gt=0, le=65536), exact_len=3), min_len=1),
                      doc="the same rows for the causal kernel where it tiles differently (default: tiles)"),
    "fill_blocks": F(Number(ge=0, le=64), True,
                     "main-loop iterations of each CTA's work that run outside the pipelined loop, at the serial "
                     "(matrix then softmax) rate: the software pipeline's prologue and epilogue"),
    "kv_tiles_in_flight": _KV_TILES_IN_FLIGHT,
    "softmax_hidden": F(Number(ge=0, le=1), True,
                        "share of the matrix work under which the softmax can run (0: the two take turns); "
                        "only where the chip's special unit overlaps_matrix"),
    "persistent": F(Bool(), True, "persistent CTAs whose producer loads the next tile's Q while the last one "
                                  "finishes; false: every CTA waits for its Q tile and for its O tile's store "
                                  "(one main-memory round trip each, the bytes at the SM's share of the bandwidth)"),
    "mma": F(Str(MMA_PATHS), doc="the matrix instructions the kernel issues: native (the chip's own path: wgmma "
                                 "on Hopper, mma.sync on Ampere and Ada; the default) or sync (the warp-synchronous "
                                 "mma.sync of sm80 code, as FlashAttention-2 compiles on every architecture): its "
                                 "matrix work at the chip matrix unit's mma_sync_share of the matrix rate"),
    "ctas_per_core": F(Number(integer=True, ge=1, le=32),
                       doc="CTAs of the kernel one core (SM) holds at once (its occupancy: shared memory and registers "
                           "per CTA): a non-persistent CTA's Q and O waits run under the other resident CTAs' work, "
                           "compute = max(work, (work + waits) / this); default 1"),
}

PREFILL = _with_architectures(
    _PREFILL_FACTS, "prefill_attention", "where this architecture's facts come from (the kernel that runs there)",
    "facts that differ on chips of one architecture (the chip file's `architecture`), e.g. {ampere: "
    "{tiles: [[128, 64, 128]], persistent: false, source: ...}} where the engine runs another kernel there "
    "(vLLM: FlashAttention-3 on Hopper, FlashAttention-2 on Ampere and Ada); every fact an entry leaves out "
    "keeps the section's value, except that an entry giving `tiles` without `causal_tiles` uses its tiles "
    "for the causal kernel too")

ROW_KERNEL = Struct({
    "threads": F(Number(integer=True, gt=0, le=4096), True,
                 "threads per block at most (the block is min(row items / items_per_thread, this))"),
    "items_per_thread": F(Number(integer=True, gt=0, le=64), True,
                          "output elements a thread handles per memory round trip (1: one scalar load per loop "
                          "trip; 8: 128-bit vector loads of 2-byte elements; 2: a rotary pair)"),
    "dram_trips": F(Number(integer=True, ge=0, le=16), True,
                    "round trips to main memory per loop trip over the row, one after another (RMSNorm: 1, its "
                    "first pass reads x; SiluAndMul: 2, x then y)"),
    "cache_trips": F(Number(integer=True, ge=0, le=16), True,
                     "round trips to the chip-level cache (L2) per loop trip (RMSNorm: 1, its second pass re-reads "
                     "x there while the weight comes from L1)"),
    "instructions": F(Number(integer=True, ge=0, le=100_000),
                      doc="machine instructions a thread issues per loop trip (the loop body's SASS; two passes: "
                          "their sum); the core's warps issue them between round trips. Default 0 (not priced)"),
    "instruction_mix": F(MapOf(ARCHITECTURES, MapOf(ISA_CLASSES, Number(ge=0, le=100_000), key_name="class"),
                               key_name="architecture"),
                         doc="the loop body's instructions per thread by class (hwmodels/isa.py: fp32, fp16, special, "
                             "integer, conversion, memory, branch), per chip architecture (the SASS differs by "
                             "generation), e.g. {ampere: {integer: 19, fp32: 12, ...}}: on a chip whose architecture "
                             "is listed here and in hwmodels/isa.py each class is priced at its unit's rate (the "
                             "units of a core taking turns); elsewhere `instructions` at issue_per_clock"),
    "block_barrier": F(Bool(), doc="true where the loop trip ends at a block-wide barrier (RMSNorm's block reduction "
                                   "between its passes): a block's loads, round trips and instructions then follow "
                                   "one another; false (default): the warps drift apart and the core's issue, the "
                                   "round trips and the bytes overlap (docs/cost-model.md)"),
}, name="row_kernel")

ROW_FACTS = ("threads", "items_per_thread", "dram_trips", "cache_trips")
ROW_OPTIONAL = (("instructions", 0), ("instruction_mix", ()), ("block_barrier", False))

ROWS = Struct({
    "norm": F(ROW_KERNEL, doc="the RMSNorm / LayerNorm kernel (op kind norm)"),
    "elementwise": F(ROW_KERNEL, doc="the activation kernels (SiluAndMul, GELU: op kind elementwise with rows; a "
                                     "residual add has no rows and streams)"),
    "rope": F(ROW_KERNEL, doc="the rotary embedding kernel (op kind rope)"),
    "resident_threads": F(Number(integer=True, gt=0, le=65536), True,
                          "threads one core (SM) holds at once for these kernels (their occupancy): blocks per "
                          "core = this // threads per block"),
    "issue_per_clock": F(Number(gt=0, le=64),
                         doc="warp instructions one core issues per clock (NVIDIA SMs since sm_50: 4 warp "
                             "schedulers, one instruction per clock each); default 4"),
    "source": F(Sources(), True),
}, name="row_kernels")

KERNELS = Struct({
    "attention_prefill": F(Str(), True, "prefill attention kernel family, e.g. flashattention-2, fa3, flashinfer"),
    "attention_decode": F(Str(), True, "decode attention kernel family, e.g. flashattention-2 (paged), flashinfer"),
    "moe": F(Str(), doc="MoE kernel, e.g. fused-moe-triton, cutlass-grouped-gemm"),
    "gemm": F(Str(), doc="dense GEMM library, e.g. cublas, cutlass"),
    "softmax": F(Str(SOFTMAX_MODES), doc="how attention kernels run the softmax exponentials: ideal (vector FLOPs "
                                         "under the matrix work, the kernel-only model), serial (on the special-function "
                                         "unit, taking turns with the tensor cores: FlashAttention-2), overlapped (on "
                                         "the special unit, under the matrix work where the chip allows it: "
                                         "FlashAttention-3 ping-pong); default ideal"),
    "collectives": F(Str(COLLECTIVE_LIBRARIES), doc="the collective library whose algorithm choice is priced: "
                                                   "alpha-beta (one latency and bandwidth per tier, the kernel-only "
                                                   "model), nccl (NCCL's ring/tree x LL/LL128/Simple tuner model), "
                                                   "nccl-nvls (also NVLink SHARP in-switch reduction), "
                                                   "custom-allreduce (vLLM's and SGLang's one-shot/two-shot "
                                                   "all-reduce over NVLink P2P below 8 MiB in one node, NCCL "
                                                   "otherwise); default alpha-beta"),
    "moe_efficiency": F(Number(gt=0, le=1), doc="the MoE kernel's matrix-unit rate on the routed expert GEMMs as "
                                                "a fraction of the chip's dense GEMM rate (the matrix efficiency "
                                                "the chip file gives); default 1 (as fast as a dense GEMM)"),
    "moe_weight_stream": F(ListOf(Struct({
        "vendor": F(Str(), True, "the chip files' `vendor` these fractions apply to (e.g. AMD)"),
        "by_dtype": F(MapOf(RATE_KEYS, Number(gt=0, le=1), key_name="dtype"), True,
                      "weight dtype -> share of the chip's achievable memory bandwidth the kernel reaches"),
        "source": F(Sources(), True, "the kernel timings the fractions come from"),
    }, name="moe_weight_stream entry"), min_len=1),
        doc="where the MoE kernel streams expert weights slower than a streaming kernel: per chip vendor and "
            "weight dtype, the share of the achievable memory bandwidth the routed expert GEMMs reach (their "
            "memory time is divided by it); chips of other vendors, and other dtypes, keep 1"),
    "prefill_attention": F(PREFILL, doc="the prefill (flash) attention kernel's tiles, pipeline fill, softmax "
                                        "overlap and CTA scheduling (docs/stacks.md); default: the kernel-only "
                                        "model (FLOPs over rates, 128-row blocks in waves)"),
    "decode_attention": F(DECODE, doc="the decode attention kernel's work split (docs/stacks.md); default: the "
                                      "kernel-only model (grouped, contiguous, split to fill the cores, no partials)"),
    "block_fp8": F(BLOCK_FP8, doc="the GEMM kernel of block-scaled FP8 linears (weight_block_size checkpoints: "
                                  "DeepSeek-V3/R1, Qwen3-*-FP8) and its rate (docs/stacks.md); default: the dense "
                                  "FP8 GEMM rate"),
    "row_kernels": F(ROWS, doc="the row-per-block streaming kernels (one thread block per token row: norm, "
                               "activation, rotary): threads, elements per memory round trip, passes, occupancy "
                               "(docs/stacks.md); default: the kernel-only model (pure bandwidth)"),
    "source": F(Sources(), True, "where the kernel choices come from"),
}, name="kernels")

FRONTEND = Struct({
    "per_request": F(Quantity("time", nonneg=True), True,
                     "CPU time the API server spends on one request (HTTP, request validation, chat template, "
                     "tokenization, its share of output streaming) in a process of its own: it takes requests "
                     "one after another, so they reach the engine one per this time at most"),
    "source": F(Sources(), True),
}, name="frontend")

RUNTIME = Struct({
    "step_overhead": F(Quantity("time", nonneg=True), True,
                       "CPU time per engine step outside the kernels (scheduler, input preparation, sampler sync)"),
    "per_request_overhead": F(Quantity("time", nonneg=True), True,
                              "CPU time per running request per step (output processing, detokenization)"),
    "overlap": F(Bool(), True, "true: the CPU work of step n+1 runs while the GPU executes step n "
                               "(a step takes the larger of the two); false: it adds to the step"),
    "cuda_graphs": F(Bool(), True, "decode steps replay captured CUDA graphs (no per-kernel CPU launch)"),
    "cuda_graph_max_batch": F(Number(integer=True, gt=0), doc="largest decode batch captured (larger: eager)"),
    "eager_launch": F(Quantity("time", nonneg=True), True,
                      "CPU time to launch one kernel eagerly (a step launched eagerly is at least kernels x this)"),
    "frontend": F(FRONTEND, doc="the server entry point's API-server process (`--usage server` only; "
                                "docs/stacks.md, Frontend); default: none (requests reach the engine when sent)"),
    "source": F(Sources(), True),
}, name="runtime")

LIMITS = Struct({
    "max_num_batched_tokens": F(Number(integer=True, gt=0), True, "tokens per step (the chunk budget)"),
    "max_num_seqs": F(Number(integer=True, gt=0), True, "running requests per step"),
}, name="limits")

SMALL_DEVICE = Struct({
    "below_memory": F(Quantity("bytes"), True, "chips with less device memory than this take these limits"),
    "names": F(ListOf(Str()), doc="chip names that take these limits whatever their memory (a name containing one "
                                  "of these, lower case: vLLM's device-name check, e.g. a100)"),
    "server": F(LIMITS, True, "the server's limits on such a chip"),
    "offline": F(LIMITS, doc="the offline (LLM class) limits on such a chip (default: server)"),
}, name="small_device")

SCHEDULER = Struct({
    "chunked_prefill": F(Bool(), True, "long prompts are split over steps that also carry decodes"),
    "max_num_batched_tokens": F(Number(integer=True, gt=0), True, "tokens per step (the chunk budget) of the "
                                                                  "server (e.g. `vllm serve`)"),
    "max_num_seqs": F(Number(integer=True, gt=0), True, "running requests per step of the server"),
    "offline": F(LIMITS, doc="the limits of the offline entry point (vLLM's LLM class: LLM.generate, "
                             "benchmark_throughput), where they differ from the server's (default: the server's)"),
    "small_device": F(SMALL_DEVICE, doc="other limits on chips with less device memory (or named ones)"),
    "source": F(Sources(), True),
}, name="scheduler")

USAGES = ("server", "offline")

MEMORY = Struct({
    "non_torch": F(Quantity("bytes", nonneg=True), True,
                   "device memory the engine allocates outside its tensor allocator, per chip, that it counts "
                   "against the KV budget when the replica runs on one chip (vLLM: the profile's "
                   "non_torch_increase: attention-backend workspaces, cuBLAS, the CUDA context where the "
                   "engine's start snapshot comes before it)"),
    "non_torch_multi_chip": F(Quantity("bytes", nonneg=True),
                              doc="the same when the replica spans several chips (tensor or pipeline parallel: "
                                  "NCCL and custom all-reduce buffers; default: non_torch)"),
    "source": F(Sources(), True),
}, name="memory")

STACK = Struct({
    "version": F(Number(integer=True, ge=1, le=FORMAT_VERSION), True, "format version"),
    "kind": F(Str(("stack",)), True),
    "name": F(Str(), True, "kebab-case, equal to the file stem"),
    "description": F(Str()),
    "software": F(Str(), doc="the software release the profile describes, e.g. 'vLLM 0.10 (V1 engine)'"),
    "source": F(Sources(), True, "where the profile comes from"),
    "kernels": F(KERNELS, True),
    "runtime": F(RUNTIME, True),
    "scheduler": F(SCHEDULER, True),
    "memory": F(MEMORY, doc="the engine's memory accounting besides weights, activations and KV cache "
                            "(default: none, every byte of memory_utilization x capacity not taken by them)"),
}, name="stack")


@dataclass(frozen=True)
class DecodeKernel:
    """How a decode attention kernel splits its work (KERNELS.decode_attention; sim.cost prices it).
    The defaults are the kernel-only model: grouped heads, contiguous KV, split to fill one CTA per
    core in chunks of at least 256 tokens, no partial outputs."""

    gqa: str = "grouped"
    page_size: int = 0
    split_ctas_per_core: int = 1
    kv_tile_tokens: int = 256
    split_threshold: float = 1.0
    split_gqa_only: bool = False
    split_partials: bool = False
    pipeline_fill: bool = False
    q_tile_rows: int = 0
    softmax_hidden: float = 0.0
    kv_tiles_in_flight: float = 2.0
    kv_stream_efficiency: float = 1.0
    split_min_kv_tiles: int = 1
    split_rule: str = "fill"
    prepare_kernel: bool = False
    combine_splits_per_trip: int = 0
    kv_tile_tokens_by_head_dim: tuple = ()  # ((head_dim bound, KV tokens), ...): see sim.attention.decode_kernel_at
    # ((architecture, ((fact, value), ...)), ...): facts that replace the ones above on chips of that
    # architecture (KERNELS.decode_attention.by_architecture); see on()
    by_architecture: tuple = ()

    def on(self, architecture: str | None) -> DecodeKernel:
        """The kernel facts on a chip of ``architecture`` (Chip.architecture; None: unknown): this kernel
        with that architecture's entry applied, or unchanged where it has none."""
        if not self.by_architecture or architecture is None:
            return self
        return _on_architecture(self, architecture)

    @classmethod
    def from_doc(cls, d: dict) -> DecodeKernel:
        """From a validated ``kernels.decode_attention`` mapping."""
        def fact(f, v):  # tile rows as tuples (the facts are hashed)
            return tuple(tuple(int(x) for x in t) for t in v) if f == "kv_tile_tokens_by_head_dim" else v

        facts = {f: fact(f, d[f]) for f in cls.__dataclass_fields__ if f in d and f != "by_architecture"}
        arch = tuple((a, tuple((f, fact(f, e[f])) for f in cls.__dataclass_fields__ if f in e and f != "by_architecture"))
                     for a, e in (d.get("by_architecture") or {}).items())
        return cls(**facts, by_architecture=arch)

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "by_architecture"}
        out["kv_tile_tokens_by_head_dim"] = [list(t) for t in self.kv_tile_tokens_by_head_dim]
        out["by_architecture"] = {a: dict(facts) for a, facts in self.by_architecture}
        return out


@functools.lru_cache(maxsize=256)
def _on_architecture(dk, architecture: str):
    from dataclasses import replace

    for a, facts in dk.by_architecture:
        if a == architecture:
            return replace(dk, **dict(facts), by_architecture=())
    return dk


@dataclass(frozen=True)
class BlockFp8:
    """The GEMM kernel of block-scaled FP8 linears (KERNELS.block_fp8; sim.gemmcost prices it). The default
    is the kernel-only model: the dense FP8 GEMM rate."""

    kernel: str = "dense-fp8-rate"
    gemm_efficiency: float = 1.0
    by_architecture: tuple = ()  # ((architecture, ((fact, value), ...)), ...), as DecodeKernel's

    def on(self, architecture: str | None) -> BlockFp8:
        """The facts on a chip of ``architecture``: that architecture's entry applied, or unchanged."""
        if not self.by_architecture or architecture is None:
            return self
        return _on_architecture(self, architecture)

    @classmethod
    def from_doc(cls, d: dict) -> BlockFp8:
        facts = {f: d[f] for f in ("kernel", "gemm_efficiency") if f in d}
        arch = tuple((a, tuple((f, e[f]) for f in ("kernel", "gemm_efficiency") if f in e))
                     for a, e in (d.get("by_architecture") or {}).items())
        return cls(**facts, by_architecture=arch)

    def to_dict(self) -> dict:
        return {"kernel": self.kernel, "gemm_efficiency": self.gemm_efficiency,
                "by_architecture": {a: dict(facts) for a, facts in self.by_architecture}}


@dataclass(frozen=True)
class PrefillKernel:
    """How a prefill (flash) attention kernel runs (KERNELS.prefill_attention; sim.cost prices it):
    ``tiles`` ((head_dim bound, query rows, KV tokens), ...), ``fill_blocks`` main-loop iterations
    per CTA outside the pipelined loop, ``softmax_hidden`` share of the matrix work the softmax runs
    under, ``persistent`` CTAs (Q load and O store hidden behind the neighbouring tiles), ``mma`` the
    matrix instructions it issues (MMA_PATHS); ``by_architecture`` the facts that replace these on chips of one architecture (see on())."""

    tiles: tuple = ((256, 128, 128),)
    fill_blocks: float = 0.0
    softmax_hidden: float = 0.0
    persistent: bool = True
    causal_tiles: tuple | None = None  # the causal kernel's rows where they differ (None: tiles)
    ctas_per_core: int = 1  # CTAs one core holds at once: their Q/O waits overlap each other's work
    mma: str = "native"  # MMA_PATHS: the chip's own path, or sm80's mma.sync (at the matrix unit's mma_sync_share)
    # ((architecture, ((fact, value), ...)), ...): facts that replace the ones above on chips of that
    # architecture (KERNELS.prefill_attention.by_architecture)
    by_architecture: tuple = ()

    def tile(self, head_dim: int, causal: bool = False) -> tuple:
        """(query rows, KV tokens) of the CTA tile this kernel uses at ``head_dim`` (causal: its causal tiles)."""
        rows = self.causal_tiles if causal and self.causal_tiles else self.tiles
        for bound, bq, bkv in rows:
            if head_dim <= bound:
                return int(bq), int(bkv)
        return int(rows[-1][1]), int(rows[-1][2])

    def on(self, architecture: str | None) -> PrefillKernel:
        """The kernel facts on a chip of ``architecture`` (Chip.architecture; None: unknown): this kernel with
        that architecture's entry applied (an entry that gives ``tiles`` without ``causal_tiles`` uses its
        tiles for the causal kernel too), or unchanged where it has none."""
        if not self.by_architecture or architecture is None:
            return self
        return _prefill_on(self, architecture)

    @classmethod
    def from_doc(cls, d: dict) -> PrefillKernel:
        """From a validated ``kernels.prefill_attention`` mapping (or one of its by_architecture entries)."""
        facts = _prefill_facts(d)
        arch = tuple((a, tuple(_prefill_facts(e).items())) for a, e in (d.get("by_architecture") or {}).items())
        return cls(**facts, by_architecture=arch)

    def to_dict(self) -> dict:
        def rows(v):
            return None if v is None else [list(t) for t in v]

        out = {k: v for k, v in self.__dict__.items() if k != "by_architecture"}
        out["tiles"], out["causal_tiles"] = rows(self.tiles), rows(self.causal_tiles)
        out["by_architecture"] = {a: {f: rows(v) if f in ("tiles", "causal_tiles") else v for f, v in facts}
                                  for a, facts in self.by_architecture}
        return out


def _prefill_facts(d: dict) -> dict:
    """The prefill facts a mapping gives, as PrefillKernel fields (tile rows as tuples)."""
    def rows(v):
        return tuple(tuple(int(x) for x in t) for t in v)

    out = {}
    if "tiles" in d:
        out["tiles"] = rows(d["tiles"])
    if d.get("causal_tiles"):
        out["causal_tiles"] = rows(d["causal_tiles"])
    elif "tiles" in d:
        out["causal_tiles"] = None  # an entry's own tiles serve its causal kernel too
    for f, conv in (("fill_blocks", float), ("softmax_hidden", float), ("persistent", bool), ("ctas_per_core", int),
                    ("mma", str)):
        if f in d:
            out[f] = conv(d[f])
    return out


@functools.lru_cache(maxsize=256)
def _prefill_on(pk: PrefillKernel, architecture: str) -> PrefillKernel:
    from dataclasses import replace

    for a, facts in pk.by_architecture:
        if a == architecture:
            return replace(pk, **dict(facts), by_architecture=())
    return pk


@dataclass(frozen=True)
class RowKernels:
    """The row-per-block streaming kernels a stack runs (KERNELS.row_kernels; sim.cost prices them):
    ``kinds`` ((op kind, threads, items per thread per loop trip, main-memory round trips per loop trip,
    cache round trips per loop trip[, instructions per loop trip]), ...), the threads a core holds at once
    (``resident_threads``) and the warp instructions it issues per clock (``issue_per_clock``)."""

    kinds: tuple = ()
    resident_threads: int = 2048
    issue_per_clock: float = 4.0

    def of(self, kind: str):
        """(threads, items_per_thread, dram_trips, cache_trips, instructions, instruction_mix, block_barrier) of
        ``kind``'s kernel (instructions 0, no mix, no barrier where not given), or None (a plain stream).
        ``instruction_mix``: ((architecture, ((class, count), ...)), ...)."""
        for k, *facts in self.kinds:
            if k == kind:
                return tuple(facts) + tuple(v for _, v in ROW_OPTIONAL[len(facts) - len(ROW_FACTS):])
        return None

    def mix(self, kind: str, architecture) -> dict | None:
        """{class: instructions per loop trip} of ``kind``'s kernel on chips of ``architecture``, or None."""
        facts = self.of(kind)
        return None if facts is None else next((dict(m) for a, m in facts[5] if a == architecture), None)

    @classmethod
    def from_doc(cls, d: dict) -> RowKernels:
        def mix(m):
            return tuple((a, tuple((c, float(n)) for c, n in by.items())) for a, by in (m or {}).items())

        kinds = tuple((k, *(int(d[k][f]) for f in ROW_FACTS), int(d[k].get("instructions", 0)),
                       mix(d[k].get("instruction_mix")), bool(d[k].get("block_barrier", False)))
                      for k in ("norm", "elementwise", "rope") if d.get(k))
        return cls(kinds=kinds, resident_threads=int(d["resident_threads"]),
                   issue_per_clock=float(d.get("issue_per_clock", 4.0)))


def _row_dict(facts) -> dict:
    """A row kernel's facts (RowKernels.of) as the stack file spells them."""
    d = dict(zip(ROW_FACTS + tuple(n for n, _ in ROW_OPTIONAL), facts))
    d["instruction_mix"] = {a: dict(m) for a, m in d["instruction_mix"]}
    return d


@dataclass(frozen=True)
class Stack:
    """A serving-stack profile (times in seconds)."""

    name: str
    source: tuple
    attention_prefill: str
    attention_decode: str
    step_overhead_s: float
    per_request_overhead_s: float
    overlap: bool
    cuda_graphs: bool
    eager_launch_s: float
    chunked_prefill: bool
    max_num_batched_tokens: int
    max_num_seqs: int
    cuda_graph_max_batch: int | None = None
    softmax: str = "ideal"  # ideal | serial | overlapped (KERNELS['softmax'])
    collectives: str = "alpha-beta"  # COLLECTIVE_LIBRARIES (KERNELS['collectives'])
    moe_efficiency: float = 1.0  # routed-expert GEMM rate over the dense GEMM rate (KERNELS['moe_efficiency'])
    # ((vendor, ((dtype, fraction), ...)), ...): the routed expert GEMMs' weight-stream share of the achievable
    # bandwidth on chips of that vendor (KERNELS['moe_weight_stream']); () = 1 everywhere
    moe_weight_stream: tuple = ()
    decode_kernel: DecodeKernel = DecodeKernel()  # KERNELS['decode_attention']
    prefill_kernel: PrefillKernel | None = None  # KERNELS['prefill_attention'] (None: the kernel-only model)
    row_kernels: RowKernels | None = None  # KERNELS['row_kernels'] (None: the kernel-only model)
    block_fp8: BlockFp8 = BlockFp8()  # KERNELS['block_fp8'] (default: the dense FP8 rate)
    # SCHEDULER['offline'] as (max_num_batched_tokens, max_num_seqs); None: the server's
    offline_limits: tuple | None = None
    # SCHEDULER['small_device'] as (below_memory bytes, names, server limits, offline limits)
    small_device: tuple | None = None
    # MEMORY['non_torch'] and ['non_torch_multi_chip'] in bytes per chip (0: none counted)
    non_torch_bytes: float = 0.0
    non_torch_multi_chip_bytes: float = 0.0
    # RUNTIME['frontend']['per_request']: the API server's CPU time per request, server entry point only (0: none)
    frontend_per_request_s: float = 0.0
    moe_kernel: str | None = None
    gemm_kernel: str | None = None
    description: str | None = None
    software: str | None = None
    path: str | None = None
    sources: dict = field(default_factory=dict, compare=False)  # section -> sources

    @property
    def is_ideal(self) -> bool:
        """No runtime cost outside the kernels: step times are the cost model's unchanged."""
        return self.step_overhead_s == 0 and self.per_request_overhead_s == 0 and self.eager_launch_s == 0

    def graphs(self, requests: int, decode: bool) -> bool:
        """Whether a step of ``requests`` requests replays a CUDA graph (decode steps only)."""
        if not (decode and self.cuda_graphs):
            return False
        return self.cuda_graph_max_batch is None or requests <= self.cuda_graph_max_batch

    def step_time(self, kernel_s: float, kernels: float, requests: int, decode: bool) -> float:
        """Wall time of one engine step whose kernels take ``kernel_s`` (the cost model's step time).

        GPU side: the kernels, or, when launched eagerly from the CPU, at least ``kernels x
        eager_launch`` (launches are asynchronous: the longer of the two). CPU side outside the
        kernels: ``step_overhead + requests x per_request_overhead``; with ``overlap`` it runs
        while the GPU works (the step takes the larger), otherwise it adds to the step."""
        if self.is_ideal:
            return kernel_s
        big = np.maximum if isinstance(kernel_s, np.ndarray) else max  # arrays: the sweep's vector path
        graphs = self.graphs(requests, decode)  # an array where ``requests`` is one (steps of a decode run)
        if isinstance(graphs, np.ndarray):
            gpu = np.where(graphs, kernel_s, big(kernel_s, kernels * self.eager_launch_s))
        else:
            gpu = kernel_s if graphs else big(kernel_s, kernels * self.eager_launch_s)
        cpu = self.step_overhead_s + requests * self.per_request_overhead_s
        return big(gpu, cpu) if self.overlap else gpu + cpu

    def scheduler_limits(self, usage: str = "server", chip=None) -> tuple[int, int]:
        """(max_num_batched_tokens, max_num_seqs) the engine defaults to for an entry point (``usage``:
        server, e.g. ``vllm serve``, or offline, vLLM's LLM class) on ``chip`` (an hwmodels Chip, or None:
        a large device): vLLM's ``EngineArgs.get_batch_defaults`` as the profile's scheduler section
        states it (docs/stacks.md, Scheduler defaults)."""
        large = (self.max_num_batched_tokens, self.max_num_seqs)
        limits = {"server": large, "offline": self.offline_limits or large}
        if self.small_device is not None and chip is not None:
            below, names, server, offline = self.small_device
            name = str(getattr(chip, "name", "")).lower()
            if chip.main_memory.capacity_bytes < below or any(n.lower() in name for n in names):
                limits = {"server": server, "offline": offline or server}
        return limits[usage]

    def non_torch(self, chips: int = 1) -> float:
        """Bytes per chip the engine holds outside its tensor allocator and subtracts from the KV budget, for
        a replica of ``chips`` chips (MEMORY: ``non_torch``, or ``non_torch_multi_chip`` when chips > 1)."""
        return self.non_torch_multi_chip_bytes if chips > 1 else self.non_torch_bytes

    def cost_options(self, options):
        """``options`` (sim.cost.CostOptions) with the stack's kernel facts where they are left at None
        (the softmax of its attention kernels, its collective library, its MoE kernel's efficiency, its decode
        attention kernel); remembered per options (the stack is immutable)."""
        memo = self.__dict__.get("_options_memo")
        if memo is None:  # a frozen dataclass: the memo goes in the instance dict directly
            memo = self.__dict__["_options_memo"] = {}
        try:
            got = memo.get(options)
        except TypeError:  # an unhashable options object (none known): no memo
            return self._cost_options(options)
        if got is None:
            got = self._cost_options(options)
            if len(memo) >= 256:
                memo.clear()
            memo[options] = got
        return got

    def _cost_options(self, options):
        from dataclasses import replace

        if getattr(options, "softmax", "x") is None:
            options = replace(options, softmax=self.softmax)
        if getattr(options, "collectives", "x") is None:
            options = replace(options, collectives=self.collectives)
        if getattr(options, "moe_efficiency", "x") is None:
            options = replace(options, moe_efficiency=self.moe_efficiency)
        if getattr(options, "moe_weight_stream", "x") is None:
            options = replace(options, moe_weight_stream=self.moe_weight_stream)
        if hasattr(options, "decode_kernel") and options.decode_kernel is None:
            options = replace(options, decode_kernel=self.decode_kernel)
        if getattr(options, "prefill_kernel", "x") is None and self.prefill_kernel is not None:
            options = replace(options, prefill_kernel=self.prefill_kernel)
        if getattr(options, "row_kernels", "x") is None and self.row_kernels is not None:
            options = replace(options, row_kernels=self.row_kernels)
        if getattr(options, "block_fp8", "x") is None:
            options = replace(options, block_fp8=self.block_fp8)
        return options

    def describe(self) -> str:
        return f"{self.name}" + (f" ({self.software})" if self.software else "")

    def to_dict(self) -> dict:
        return {"name": self.name, "software": self.software, "attention_prefill": self.attention_prefill,
                "attention_decode": self.attention_decode, "moe": self.moe_kernel, "gemm": self.gemm_kernel,
                "softmax": self.softmax, "collectives": self.collectives, "moe_efficiency": self.moe_efficiency,
                "moe_weight_stream": {v: dict(d) for v, d in self.moe_weight_stream},
                "decode_attention": self.decode_kernel.to_dict(), "block_fp8": self.block_fp8.to_dict(),
                "prefill_attention": None if self.prefill_kernel is None else self.prefill_kernel.to_dict(),
                "row_kernels": None if self.row_kernels is None else {
                    **{k: _row_dict(self.row_kernels.of(k)) for k, *_ in self.row_kernels.kinds},
                    "resident_threads": self.row_kernels.resident_threads,
                    "issue_per_clock": self.row_kernels.issue_per_clock},
                "step_overhead_s": self.step_overhead_s, "per_request_overhead_s": self.per_request_overhead_s,
                "overlap": self.overlap, "cuda_graphs": self.cuda_graphs,
                "cuda_graph_max_batch": self.cuda_graph_max_batch, "eager_launch_s": self.eager_launch_s,
                "frontend_per_request_s": self.frontend_per_request_s,
                "chunked_prefill": self.chunked_prefill, "max_num_batched_tokens": self.max_num_batched_tokens,
                "max_num_seqs": self.max_num_seqs, "non_torch_bytes": self.non_torch_bytes,
                "non_torch_multi_chip_bytes": self.non_torch_multi_chip_bytes,
                "offline_limits": None if self.offline_limits is None else list(self.offline_limits),
                "small_device": None if self.small_device is None else {
                    "below_memory_bytes": self.small_device[0], "names": list(self.small_device[1]),
                    "server": list(self.small_device[2]),
                    "offline": None if self.small_device[3] is None else list(self.small_device[3])}}


def list_stacks() -> list[str]:
    return sorted(p.stem for p in STACKS.glob("*.yaml"))


def _resolve(name_or_path) -> Path:
    s = str(name_or_path)
    p = Path(s)
    if p.suffix in (".yaml", ".yml") or "/" in s:
        if not p.exists():
            raise SpecError([Problem(f"no such stack file: {s}", path="--stack")])
        if p.is_dir():
            raise SpecError([Problem(f"{s} is a folder; expected a YAML stack file", path="--stack")])
        return p
    p = STACKS / f"{s}.yaml"
    names = list_stacks()
    if s in names:
        return p
    hint = difflib.get_close_matches(s, names, n=2)
    dym = f"did you mean {', '.join(hint)}? " if hint else ""
    raise SpecError([Problem(f"unknown stack '{s}'; {dym}known: {', '.join(names)} (or give a path to a YAML "
                             "stack file)", path="--stack")])


def validate_stack_doc(doc) -> tuple[dict | None, list]:
    return validate(doc, STACK)


def _limits(d: dict | None) -> tuple | None:
    return None if d is None else (int(d["max_num_batched_tokens"]), int(d["max_num_seqs"]))


def _build(v: dict, path: Path) -> Stack:
    k, r, s = v["kernels"], v["runtime"], v["scheduler"]
    return Stack(
        name=v["name"], source=v["source"], attention_prefill=k["attention_prefill"],
        attention_decode=k["attention_decode"], moe_kernel=k.get("moe"), gemm_kernel=k.get("gemm"),
        softmax=k.get("softmax", "ideal"), collectives=k.get("collectives", "alpha-beta"),
        moe_efficiency=float(k.get("moe_efficiency", 1.0)),
        moe_weight_stream=tuple((e["vendor"], tuple((dt, float(f)) for dt, f in e["by_dtype"].items()))
                                for e in k.get("moe_weight_stream") or ()),
        decode_kernel=DecodeKernel.from_doc(d) if (d := k.get("decode_attention")) else DecodeKernel(),
        prefill_kernel=PrefillKernel.from_doc(p) if (p := k.get("prefill_attention")) else None,
        row_kernels=RowKernels.from_doc(rk) if (rk := k.get("row_kernels")) else None,
        block_fp8=BlockFp8.from_doc(bf) if (bf := k.get("block_fp8")) else BlockFp8(),
        step_overhead_s=r["step_overhead"], per_request_overhead_s=r["per_request_overhead"], overlap=r["overlap"],
        cuda_graphs=r["cuda_graphs"], cuda_graph_max_batch=r.get("cuda_graph_max_batch"),
        eager_launch_s=r["eager_launch"], frontend_per_request_s=(r.get("frontend") or {}).get("per_request", 0.0),
        chunked_prefill=s["chunked_prefill"],
        max_num_batched_tokens=s["max_num_batched_tokens"], max_num_seqs=s["max_num_seqs"],
        offline_limits=_limits(s.get("offline")),
        small_device=(sd["below_memory"], tuple(sd.get("names", ())), _limits(sd["server"]), _limits(sd.get("offline")))
        if (sd := s.get("small_device")) else None,
        non_torch_bytes=(m := v.get("memory") or {}).get("non_torch", 0.0),
        non_torch_multi_chip_bytes=m.get("non_torch_multi_chip", m.get("non_torch", 0.0)),
        description=v.get("description"), software=v.get("software"), path=str(path),
        sources={"kernels": k["source"], "runtime": r["source"], "scheduler": s["source"],
                 **({"memory": m["source"]} if m else {}),
                 **({"frontend": r["frontend"]["source"]} if r.get("frontend") else {})})


@functools.lru_cache(maxsize=64)
def _load_path(path: str, mtime: float) -> Stack:
    p = Path(path)
    try:
        text = read_text(p, "yaml_bytes", "a YAML stack description")
    except OSError as e:
        raise SpecError([Problem(f"cannot read: {e.strerror}", path)]) from None
    docs = load_marked(text, path)
    if len(docs) > 1:
        raise SpecError([Problem("one stack description per file, please (found several YAML documents)",
                                 path, *docs[1].where(()))])
    doc = docs[0]
    if not isinstance(doc.data, dict):
        raise SpecError([doc.problem((), f"expected a mapping with 'version', 'kind: stack' and 'name'; got "
                                         f"{type(doc.data).__name__}")])
    v, problems = validate_stack_doc(doc)
    if problems or v is None:
        raise SpecError(problems)
    return _build(v, p)


def load_stack(stack=None) -> Stack:
    """A Stack from a catalog name or a YAML path (None: the default stack); a Stack passes through."""
    if isinstance(stack, Stack):
        return stack
    s = DEFAULT_STACK if stack is None else stack
    if type(s) is str and s and "/" not in s and not s.endswith((".yaml", ".yml")):
        # a catalog name: one stat (read again when the file changes); the listing of _resolve only for the
        # message of a name the catalog does not hold
        p = STACKS / f"{s}.yaml"
        try:
            return _load_path(str(p), p.stat().st_mtime)
        except (OSError, ValueError):  # not there (or not a file name): _resolve says why
            pass
    p = _resolve(s)
    return _load_path(str(p), p.stat().st_mtime)


def is_stack_file(data) -> bool:
    return isinstance(data, dict) and data.get("kind") == "stack"


__all__ = ["DEFAULT_STACK", "STACK", "USAGES", "DecodeKernel", "PrefillKernel", "RowKernels", "Stack", "list_stacks", "load_stack", "is_stack_file"]
