"""The stack file format (``kind: stack``): the schema every stack YAML is checked against, and the
names of its choices. Split out of hwmodels/stack.py (which loads the files and re-exports these)."""

from __future__ import annotations

from hwmodels.dtype import RATE_KEYS
from hwmodels.isa import CLASSES as ISA_CLASSES
from hwmodels.schema import (ARCHITECTURES, FORMAT_VERSION, Bool, F, ListOf, MapOf, Name, Number, Quantity, Sources, Str,
                             Struct)

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
    "name": F(Name(), True, "kebab-case, equal to the file stem"),
    "description": F(Str()),
    "software": F(Str(), doc="the software release the profile describes, e.g. 'vLLM 0.10 (V1 engine)'"),
    "source": F(Sources(), True, "where the profile comes from"),
    "kernels": F(KERNELS, True),
    "runtime": F(RUNTIME, True),
    "scheduler": F(SCHEDULER, True),
    "memory": F(MEMORY, doc="the engine's memory accounting besides weights, activations and KV cache "
                            "(default: none, every byte of memory_utilization x capacity not taken by them)"),
}, name="stack")
