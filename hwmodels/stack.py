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
from hwmodels.schema import validate
from hwmodels.yamlio import load_marked
from hwmodels.stack_schema import (  # noqa: F401 (the format's names, re-exported from here)
    BLOCK_FP8, COLLECTIVE_LIBRARIES, DECODE, GQA_MODES, KERNELS, MMA_PATHS, PREFILL, ROW_FACTS, ROW_OPTIONAL,
    SOFTMAX_MODES, SPLIT_RULES, STACK, USAGES,
)

STACKS = Path(__file__).parent / "catalog" / "stacks"
DEFAULT_STACK = "vllm"


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
