"""Operator graphs: one inference step of a model on one chip, as counted work (FLOPs and bytes).

:func:`build_graph` turns a :class:`~workloads.model.ModelSpec`, a :class:`Batch` (what every
request does this step), a :class:`~workloads.quant.Quantization` and a
:class:`~workloads.parallel.Parallelism` into an :class:`OpGraph`: a tuple of :class:`Op` s, each
with its FLOPs on matrix and vector units, the bytes of every tensor it reads or writes, its
shape (GEMM, attention or collective) and how many times it runs per step on one chip.
Workloads count; they hold no hardware rate and no time (``sim/`` divides work by rates).

Conventions (docs/workloads.md has the full list):

- Per chip, after TP/PP/EP division; the graph is the busiest pipeline stage (``ceil(layers/pp)``
  layers) plus the embedding (``layer='pre'``) and the final norm, LM head and sampling
  (``layer='post'``), each once. With ``pp > 1`` the embedding and the LM head live on the first
  and last stages; counting both on the busiest stage is a small, conservative overstatement.
- A layer's ops are emitted once with ``count`` = layers of that kind on the stage, so a build
  costs O(ops per layer), not O(layers).
- FLOPs: a multiply-add is 2 FLOPs. Attention counts exactly the visible (query, key) pairs of the
  causal mask (sliding windows respected): a request of ``n`` new tokens after ``c`` cached ones
  sees ``sum_{i=1..n} min(c + i, window)`` pairs; QK^T and PV each cost ``2 x heads x pairs x
  head_dim``. The naive kernel computes the whole ``n x (c + n)`` rectangle and moves the score
  matrix through memory.
- Bytes: weights once per execution; activations in the storage dtype; the KV cache in its dtype.
- The LM head and sampling run on one row per request (the last token of a prefill chunk).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np

from hwmodels.dtype import get_dtype
from hwmodels.arith import vany
from hwmodels.errors import Problem, SpecError
from workloads.activations import activation_flops  # the MLP activation's FLOPs per element
from workloads.batch import Batch  # noqa: F401  (re-exported: the batch was defined here)
from workloads.model import ModelSpec, load_model
from workloads.opdata import AttentionShape, CollectiveShape, GemmShape, Op, TensorIO
from workloads.parallel import Parallelism, check_parallelism, stage_layers
from workloads.quant import SCALE_BYTES, Quantization, Sparsity
from workloads.routing import expected_max_load, expected_touched, expert_probs, rank_probs
from workloads.seqs import (  # noqa: F401  (re-exported: sim/ reads them from here)
    SeqArrays,
    _attn_stats,
    _attn_stats_tuple,
    _request_stats,
    seq_blocks,
    seq_context,
    seq_count,
    seq_max_second,
    _step_tuple,
    phase_of,
    seq_tokens,
    step_sums,
)

__all__ = [
    "KERNELS",
    "KINDS",
    "AttentionShape",
    "Batch",
    "CollectiveShape",
    "GemmShape",
    "Op",
    "OpGraph",
    "TensorIO",
    "build_graph",
    "expected_experts_touched",
]

KINDS = ("gemm", "attention", "elementwise", "norm", "embedding", "rope", "router", "dequant",
         "sampling", "collective")
KERNELS = ("auto", "flash", "paged", "naive")

# Vector FLOPs per element of the non-GEMM ops. Rough operation counts, not measured; they only
# matter where the vector units are the bottleneck, and sim/ may calibrate them.
RMSNORM_FLOPS = 4  # square, accumulate, scale by rsqrt, multiply by the weight
LAYERNORM_FLOPS = 7  # mean, subtract, square, accumulate, scale, weight, bias
ROPE_FLOPS = 3  # x*cos + rotate(x)*sin per rotated element
SOFTMAX_FLOPS = 5  # per score: scale, max, subtract, exp, accumulate (the divide is per row)
SOFTMAX_EXPS = 1  # of which special-function operations per score (the exp; counted in SOFTMAX_FLOPS too)
SOFTCAP_FLOPS = 3  # cap * tanh(x / cap)
DEQUANT_FLOPS = 2  # per weight element: unpack/convert and scale
ACT_QUANT_FLOPS = 4  # per activation element of a per-token-group quantization: |x|, group max, scale, convert
BLOCK_SCALE_FLOPS = 3  # per output element and K block of a block-scaled GEMM: a_s x b_s, scale the partial, add
ROUTER_FLOPS = 6  # per (token, expert) logit: softmax or sigmoid, then top-k selection
SAMPLING_FLOPS = 5  # per logit: softmax and the top-k/top-p or argmax scan


def expected_experts_touched(experts: int, top_k: int, tokens: float) -> float:
    """Expected distinct experts (of ``experts``) receiving at least one of ``tokens`` tokens when
    each token picks ``top_k`` experts uniformly: ``E * (1 - (1 - k/E)^T)``."""
    if tokens <= 0:
        return 0.0
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


# ---------------------------------------------------------------------------------------------
# the graph

@dataclass(frozen=True)
class OpGraph:
    """One step of one model replica on one chip: ops with counts, FLOPs and bytes."""

    model: str
    ops: tuple[Op, ...]
    batch: Batch
    quant: Quantization
    parallel: Parallelism
    stage: tuple[tuple[str, int], ...] = ()  # layers of each kind on this (busiest) stage
    attention_kernel: str = "auto"
    fused: bool = False
    spec: ModelSpec | None = field(default=None, compare=False, repr=False)
    sparsity: Sparsity | None = None

    @property
    def layers_on_stage(self) -> int:
        return sum(c for _, c in self.stage)

    def total_flops(self) -> float:
        """FLOPs of the step on this chip: sum of count x (matrix + vector)."""
        return sum(o.count * (o.flops_matrix + o.flops_vector) for o in self.ops)

    def total_flops_matrix(self) -> float:
        return sum(o.count * o.flops_matrix for o in self.ops)

    def total_flops_vector(self) -> float:
        return sum(o.count * o.flops_vector for o in self.ops)

    def total_bytes(self, role: str | None = None) -> float:
        """Bytes moved to and from memory by the step (optionally one role's), all ops."""
        if role is None:
            return sum(o.count * o.bytes for o in self.ops)
        return sum(o.count * o.bytes_of(role) for o in self.ops)

    def weight_bytes(self) -> float:
        return self.total_bytes("weight")

    def kv_bytes(self) -> float:
        return self.total_bytes("kv")

    def activation_bytes(self) -> float:
        return self.total_bytes("activation")

    def collective_bytes(self, group: str | None = None) -> float:
        return sum(o.count * o.collective.bytes for o in self.ops
                   if o.collective and (group is None or o.collective.group == group))

    def find(self, name: str) -> Op:
        """The op called ``name`` (KeyError if none; names are unique within a layer tag)."""
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)

    def select(self, kind: str | None = None, layer: str | None = None, prefix: str | None = None) -> list[Op]:
        return [o for o in self.ops if (kind is None or o.kind == kind)
                and (layer is None or o.layer == layer) and (prefix is None or o.name.startswith(prefix))]

    def summary(self) -> dict:
        return {"model": self.model, "batch": str(self.batch), "quant": self.quant.name,
                "parallel": str(self.parallel), "layers_on_stage": self.layers_on_stage,
                "ops": len(self.ops), "flops": self.total_flops(),
                "flops_matrix": self.total_flops_matrix(), "flops_vector": self.total_flops_vector(),
                "bytes": self.total_bytes(), "weight_bytes": self.weight_bytes(),
                "kv_bytes": self.kv_bytes(), "activation_bytes": self.activation_bytes(),
                "collective_bytes": self.collective_bytes()}

    def to_frame(self):
        """One row per op (pandas DataFrame). Per-execution columns plus ``total_*`` = value x
        count."""
        import pandas as pd

        rows = []
        for o in self.ops:
            g, a, c = o.gemm, o.attention, o.collective
            br, bw = o.bytes_read, o.bytes_written
            wb, kb, ab = o.bytes_of("weight"), o.bytes_of("kv"), o.bytes_of("activation")
            cb = c.bytes if c else 0.0
            rows.append({
                "name": o.name, "kind": o.kind, "layer": o.layer, "count": o.count,
                "flops_matrix": o.flops_matrix, "flops_vector": o.flops_vector,
                "flops": o.flops_matrix + o.flops_vector,
                "bytes_read": br, "bytes_written": bw, "bytes": br + bw,
                "weight_bytes": wb, "kv_bytes": kb, "activation_bytes": ab,
                "dtype": o.compute_dtype, "fusable": o.fusable, "sparse": o.sparse,
                "m": g.m if g else None, "n": g.n if g else None, "k": g.k if g else None,
                "gemm_batch": g.batch if g else None,
                "attn_phase": a.phase if a else None, "attn_kernel": a.kernel if a else None,
                "attn_heads": a.heads if a else None, "attn_kv_heads": a.kv_heads if a else None,
                "attn_head_dim": a.head_dim if a else None, "attn_window": a.window if a else None,
                "collective_op": c.op if c else None, "collective_bytes": cb,
                "collective_group": c.group if c else None,
                "collective_group_size": c.group_size if c else None,
                "total_flops_matrix": o.count * o.flops_matrix,
                "total_flops_vector": o.count * o.flops_vector,
                "total_flops": o.count * (o.flops_matrix + o.flops_vector),
                "total_bytes_read": o.count * br, "total_bytes_written": o.count * bw,
                "total_bytes": o.count * (br + bw), "total_weight_bytes": o.count * wb,
                "total_kv_bytes": o.count * kb, "total_activation_bytes": o.count * ab,
                "total_collective_bytes": o.count * cb,
            })
        df = pd.DataFrame(rows)
        for col in ("m", "n", "k", "gemm_batch", "attn_heads", "attn_kv_heads", "attn_head_dim",
                    "attn_window", "collective_group_size"):
            df[col] = df[col].astype("Int64")
        return df


# ---------------------------------------------------------------------------------------------
# building

def build_graph(model: ModelSpec | str, batch: Batch, quant: Quantization | str | None = None,
                parallel: Parallelism | None = None, attention_kernel: str = "auto",
                fused: bool = False, sparsity: Sparsity | None = None, cache: bool = True) -> OpGraph:
    """The operator graph of one step of ``batch`` on one chip of ``model`` split by ``parallel``.

    ``quant``: a Quantization or a scheme name (default bf16). ``attention_kernel``: 'auto'
    (flash for prefill and mixed steps, paged for decode), 'flash', 'paged' or 'naive'.
    ``fused``: ops marked fusable (norms, activations, rope, residual adds, dequant) keep their
    FLOPs but move no activation bytes, as in a fused-kernel implementation.
    ``sparsity``: a :class:`~workloads.quant.Sparsity` (default None: dense). The linear layers it
    selects are marked ``Op.sparse`` (run at the sparse peak by the cost model); when it stores
    them compressed their weight bytes (and the dequant work of weight-only schemes) shrink to
    the kept elements plus metadata.

    Results are cached (all inputs are frozen and hashable); the same inputs return the same
    OpGraph object. ``cache=False`` builds without remembering the graph (callers that keep their
    own bounded memo of what they priced, e.g. the serving step coster, which sees a new shape in
    almost every prefill). Raises SpecError on bad inputs, InfeasibleError when the split cannot run.
    """
    spec = load_model(model)
    if not isinstance(batch, Batch):
        batch = Batch(tuple(batch))
    q = Quantization.parse(quant).for_checkpoint(spec.checkpoint_quant)
    p = parallel if parallel is not None else Parallelism()
    if not isinstance(p, Parallelism):
        raise SpecError([Problem(f"expected a Parallelism, got {type(p).__name__}", path="parallel")])
    if attention_kernel not in KERNELS:
        raise SpecError([Problem(f"unknown attention kernel {attention_kernel!r}; known: {', '.join(KERNELS)}",
                                 path="attention_kernel")])
    if sparsity is not None and not isinstance(sparsity, Sparsity):
        raise SpecError([Problem(f"expected a Sparsity, got {type(sparsity).__name__}", path="sparsity")])
    build = _build_cached if cache else _build_cached.__wrapped__
    return build(spec, batch, q, p, attention_kernel, bool(fused), sparsity)


@functools.lru_cache(maxsize=2048)
def _build_cached(spec: ModelSpec, batch: Batch, q: Quantization, p: Parallelism, kernel: str,
                  fused: bool, sparsity: Sparsity | None = None) -> OpGraph:
    check_parallelism(spec, p)
    # a request longer than max_position_embeddings is built anyway (a what-if: the cost does not
    # depend on whether the model was trained for that length); sim.predict warns about it
    b = _Builder(spec, batch, q, p, kernel, sparsity=sparsity)
    stage = stage_layers(spec, p.pp)
    b.embedding()
    kinds = {k.tag: k for k in spec.layer_kinds}
    for tag, count in stage:
        b.layer(kinds[tag], count)
    b.head()
    ops = _fuse(_mark_fresh(b.ops), fused)
    return OpGraph(model=spec.name, ops=tuple(ops), batch=batch, quant=q, parallel=p, stage=stage,
                   attention_kernel=kernel, fused=fused, spec=spec, sparsity=sparsity)


#: op kinds priced as streaming kernels (sim/cost.py ``_streaming``): the ones whose fresh input is marked
STREAMING = frozenset(KINDS) - {"gemm", "attention", "collective"}


def _mark_fresh(ops: list) -> list:
    """Each streaming op's ``fresh_bytes``: the bytes of its activation input that the kernel run just
    before it wrote (the activation output of the previous op that moves tensors; a collective, which
    writes its result in place, and an op that moves none are passed over), and ``fresh_span``: the bytes
    that kernel moved through the cache along its writes: all the activation bytes it wrote (rope reads q and
    k of the QKV output, v lies between them) and, where it is itself a streaming kernel, which reads its
    inputs along its writes (a residual add before a norm), all its bytes. A layer's ops follow the
    previous layer's (the same ops, or the embedding's) in the same order, so emission order is run order."""
    out, wrote, span = [], 0.0, 0.0
    for o in ops:
        if o.kind == "collective" or not o.tensors:
            out.append(o)
            continue
        if o.kind in STREAMING and vany(wrote > 0):
            read = sum(t.bytes for t in o.tensors if t.role == "activation" and not t.write)
            if vany(read > 0):  # arrays over token counts (other_ops) take the elementwise minimum
                both = isinstance(wrote, np.ndarray) or isinstance(read, np.ndarray)
                o = replace(o, fresh_bytes=np.minimum(wrote, read) if both else min(wrote, read), fresh_span=span)
        out.append(o)
        wrote = sum(t.bytes for t in o.tensors if t.role == "activation" and t.write)
        span = o.bytes if o.kind in STREAMING else wrote
    return out


def _fuse(ops: list, fused: bool) -> list:
    """Under ``fused``, fusable ops move no activation bytes (build_graph's ``fused``)."""
    if not fused:
        return ops
    return [replace(o, tensors=tuple(t for t in o.tensors if t.role != "activation")) if o.fusable else o
            for o in ops]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class _Builder:
    """Emits the ops of one step; one instance per build."""

    def __init__(self, s: ModelSpec, batch: Batch, q: Quantization, p: Parallelism, kernel: str,
                 sparsity: Sparsity | None = None):
        self.s, self.batch, self.q, self.p = s, batch, q, p
        self.sparsity = sparsity
        self.ops: list[Op] = []
        self.T = batch.tokens
        self.R = batch.requests
        self.sb = q.storage_bytes
        self.st = q.storage
        self.tp = p.tp
        self.Hc = s.heads // p.tp
        if s.attention == "mla":
            self.KVc = self.Hc
        else:
            self.KVc = max(1, s.kv_heads // p.tp)
        phase = batch.phase
        self.phase = phase
        if kernel == "auto":
            kernel = "paged" if phase == "decode" else "flash"
        self.kernel = kernel

    # ---- primitives ----------------------------------------------------------------------
    def act(self, name: str, elems: float, write: bool = False) -> TensorIO:
        return TensorIO(name, "activation", self.st, elems * self.sb, write)

    def gemm(self, name: str, layer: str, count: int, m: int, n: int, k: int, *, batch: int = 1,
             rows: float | None = None, w_elems: float | None = None, quantized: bool = True,
             bias: bool = False, weight: str | None = None,
             extra: tuple[TensorIO, ...] = (), routing: tuple | None = None,
             quant_rows: float | None = None) -> None:
        """A GEMM (and its dequant op under weight-only quantization, or its activation quantization under
        a block-scaled scheme). ``rows``: total rows over the batch of GEMMs (default m x batch; MoE passes
        the exact expected rows). ``quant_rows``: the token rows a block-scaled scheme quantizes before it
        (default ``rows``; MoE's first expert GEMM quantizes the tokens once, before they are routed)."""
        rows = m * batch if rows is None else rows
        w_elems = n * k * batch if w_elems is None else w_elems
        q = self.q
        if quantized:
            wdt, wbytes, cdt = q.weight, q.weight_bytes, q.math_dtype
        else:
            wdt, wbytes, cdt = self.st, self.sb, self.st
        sp = self.sparsity
        sparse = sp is not None and (quantized or name == "lm_head") and sp.selects(name)
        deq_elems = w_elems
        if sparse:
            wbytes = sp.element_bytes(wbytes)
            deq_elems = w_elems * (sp.kept if sp.compressed else 1.0)
        if quantized and q.weight_only:
            self.ops.append(Op(f"{name}.dequant", "dequant", count, 0.0, DEQUANT_FLOPS * deq_elems, cdt, (),
                               layer=layer, fusable=True))
        blk = q.act_group if quantized and q.block_scaled else 0
        if blk:
            x_in = self._act_quant(name, layer, count, rows if quant_rows is None else quant_rows, rows, k, blk)
        else:
            x_in = (self.act("x", rows * k),)
        tensors = [*x_in, TensorIO(weight or f"w_{name.rsplit('.', 1)[-1]}", "weight", wdt, w_elems * wbytes, False)]
        fv = rows * n * -(-k // blk) * BLOCK_SCALE_FLOPS if blk else 0.0
        if bias:
            tensors.append(TensorIO("bias", "weight", self.st, n * batch * self.sb, False))  # one per output column
            fv = rows * n
        tensors.extend(extra)
        tensors.append(self.act("y", rows * n, True))
        self.ops.append(Op(name, "gemm", count, 2.0 * rows * n * k, fv, cdt, tuple(tensors),
                           gemm=GemmShape(m if isinstance(m, np.ndarray) else int(m), int(n), int(k),
                                          batch if isinstance(batch, np.ndarray) else int(batch), routing),
                           layer=layer, sparse=sparse, scale_block=blk))

    def _act_quant(self, name: str, layer: str, count: int, qrows, rows, k: int, group: int) -> tuple:
        """The per-token-group quantization of a block-scaled GEMM's input (vLLM's and SGLang's
        ``per_token_group_quant_fp8``, a kernel of its own before the GEMM): reads ``qrows x k`` activations
        in the storage dtype, writes them in the activation dtype with one fp32 scale per ``group`` elements
        of a row. Returns the GEMM's activation inputs: the ``rows`` quantized rows it reads (a routed GEMM
        gathers each token's row once per expert it goes to) and their scales."""
        ab, per_row = get_dtype(self.q.activation).bytes, -(-k // group) * SCALE_BYTES
        act = self.q.activation
        self.ops.append(Op(f"{name}.act_quant", "elementwise", count, 0.0, ACT_QUANT_FLOPS * qrows * k, self.st,
                           (self.act("x", qrows * k), TensorIO("x_q", "activation", act, qrows * k * ab, True),
                            TensorIO("x_scale", "activation", "fp32", qrows * per_row, True)),
                           layer=layer, fusable=True))
        return (TensorIO("x_q", "activation", act, rows * k * ab, False),
                TensorIO("x_scale", "activation", "fp32", rows * per_row, False))

    def eltwise(self, name: str, kind: str, layer: str, count: int, elems: float, flops_per: float,
                inputs: int = 1, outputs: int = 1, weight_elems: float = 0.0, out_elems: float | None = None,
                fusable: bool = True, rows: float = 0.0, first_loop: float = 0.0) -> None:
        out_elems = elems if out_elems is None else out_elems
        t = [self.act("x", elems * inputs)]
        if weight_elems:
            t.append(TensorIO(f"w_{name.rsplit('.', 1)[-1]}", "weight", self.st, weight_elems * self.sb, False))
        if outputs:
            t.append(self.act("y", out_elems * outputs, True))
        self.ops.append(Op(name, kind, count, 0.0, elems * flops_per, self.st, tuple(t), layer=layer,
                           fusable=fusable, rows=rows, first_loop=first_loop))

    def norm(self, name: str, layer: str, count: int, rows: float, width: int) -> None:
        ln = self.s.norm == "layernorm"
        self.eltwise(name, "norm", layer, count, rows * width, LAYERNORM_FLOPS if ln else RMSNORM_FLOPS,
                     weight_elems=width * (2 if ln else 1), rows=rows)

    def collective(self, name: str, layer: str, count: int, op: str, nbytes: float, group: str,
                   size: int) -> None:
        self.ops.append(Op(name, "collective", count, 0.0, 0.0, self.st, (),
                           collective=CollectiveShape(op, nbytes, size, group), layer=layer))

    def attention(self, name: str, layer: str, count: int, seqs: tuple, heads: int, kv_heads: int,
                  d: int, dv: int, window: int | None, *, kernel: str, phase: str,
                  cache_read_elems: int, cache_write_elems: int, kv_act_elems: float) -> None:
        """The attention core (QK^T, softmax, PV) of ``seqs``.

        ``cache_read_elems``/``cache_write_elems``: KV-cache elements per cached/new token (read
        once per KV head: GQA/MQA heads share them). ``kv_act_elems``: K/V elements read from
        activations (the new tokens' keys and values, or MLA's up-projected ones)."""
        s, q = self.s, self.q
        pairs, rect, cached, T, kv = step_sums(seqs, window)  # each sum once (the cost model reads kv's)
        used = rect if kernel == "naive" else pairs
        fm = 2.0 * heads * used * (d + dv)
        fv = heads * used * (SOFTMAX_FLOPS + (SOFTCAP_FLOPS if s.attn_softcap else 0))
        kvb = q.kv_bytes
        t = [self.act("q", T * heads * d), self.act("kv_new", kv_act_elems)]
        if cache_read_elems and (np.logical_or.reduce(cached, axis=None) if isinstance(cached, np.ndarray) else cached):
            t.append(TensorIO("kv_cache", "kv", q.kv_cache, cached * cache_read_elems * kvb, False))
        t.append(TensorIO("kv_cache", "kv", q.kv_cache, T * cache_write_elems * kvb, True))
        if kernel == "naive":
            sc = rect * heads
            t += [self.act("scores", sc, True), self.act("scores", sc), self.act("probs", sc, True),
                  self.act("probs", sc)]
        t.append(self.act("o", T * heads * dv, True))
        shape = AttentionShape(phase, kernel, heads, kv_heads, d, dv, kv, True, q.kv_cache, window)
        self.ops.append(Op(name, "attention", count, fm, fv, self.st, tuple(t), attention=shape, layer=layer,
                           flops_special=heads * used * SOFTMAX_EXPS))

    # ---- model parts ---------------------------------------------------------------------
    def embedding(self) -> None:
        s, T, tp = self.s, self.T, self.tp
        t = (TensorIO("w_embed", "weight", self.st, T * s.hidden * self.sb / tp, False),
             self.act("x", T * s.hidden, True))
        self.ops.append(Op("embed.tokens", "embedding", 1, 0.0, 0.0, self.st, t, layer="pre"))
        if s.position == "learned":
            t = (TensorIO("w_positions", "weight", self.st, T * s.hidden * self.sb, False),
                 self.act("x", T * s.hidden), self.act("y", T * s.hidden, True))
            self.ops.append(Op("embed.positions", "embedding", 1, 0.0, T * s.hidden, self.st, t, layer="pre",
                               fusable=True))
        if s.family in ("gemma", "gemma2"):  # hidden states scaled by sqrt(hidden)
            self.eltwise("embed.scale", "elementwise", "pre", 1, T * s.hidden, 1)
        if tp > 1:
            self.collective("tp.allreduce_embed", "pre", 1, "allreduce", T * s.hidden * self.sb, "tp", tp)

    def head(self) -> None:
        s, T, R, tp = self.s, self.T, self.R, self.tp
        self.norm("final.norm", "post", 1, T, s.hidden)
        v_chip = _cdiv(s.vocab, tp)
        self.gemm("lm_head", "post", 1, R, v_chip, s.hidden, quantized=False, bias=s.lm_head_bias,
                  weight="w_embed" if s.tied_embeddings else "w_lm_head")
        if s.final_softcap:
            self.eltwise("lm_head.softcap", "elementwise", "post", 1, R * v_chip, SOFTCAP_FLOPS)
        if tp > 1:
            self.collective("tp.allgather_logits", "post", 1, "allgather", R * v_chip * tp * self.sb, "tp", tp)
        V = v_chip * tp if tp > 1 else s.vocab
        self.ops.append(Op("sampling", "sampling", 1, 0.0, R * V * SAMPLING_FLOPS, self.st,
                           (self.act("logits", R * V),), layer="post"))
        if self.p.pp > 1:
            self.collective("pp.sendrecv", "post", 1, "sendrecv", T * s.hidden * self.sb, "pp", 2)

    def layer(self, kind, count: int) -> None:
        s, tag, T = self.s, kind.tag, self.T
        h = s.hidden
        if s.parallel_block:
            # one input, attention and MLP side by side, one all-reduce of their sum
            self.norm("attn.norm", tag, count, T, h)
            if s.norms_per_layer > 1:
                self.norm("mlp.norm", tag, count, T, h)
            self.attention_block(kind, count)
            self.dense_mlp(tag, count, s.intermediate)
            if self.tp > 1:
                self.collective("tp.allreduce_attn_mlp", tag, count, "allreduce", T * h * self.sb, "tp", self.tp)
            self.eltwise("block.residual", "elementwise", tag, count, T * h, 2, inputs=3)
            return
        self.norm("attn.norm", tag, count, T, h)
        self.attention_block(kind, count)
        if self.tp > 1:
            self.collective("tp.allreduce_attn", tag, count, "allreduce", T * h * self.sb, "tp", self.tp)
        if s.norms_per_layer == 4:
            self.norm("attn.post_norm", tag, count, T, h)
        self.eltwise("attn.residual", "elementwise", tag, count, T * h, 1, inputs=2)
        self.norm("mlp.norm", tag, count, T, h)
        if kind.moe:
            self.moe(tag, count)
        else:
            self.dense_mlp(tag, count, s.intermediate)
            if self.tp > 1:
                self.collective("tp.allreduce_mlp", tag, count, "allreduce", T * h * self.sb, "tp", self.tp)
        if s.norms_per_layer == 4:
            self.norm("mlp.post_norm", tag, count, T, h)
        self.eltwise("mlp.residual", "elementwise", tag, count, T * h, 1, inputs=2)

    def attention_block(self, kind, count: int) -> None:
        if self.s.attention == "mla":
            return self.mla_block(kind, count)
        s, tag, T = self.s, kind.tag, self.T
        h, d, dv, Hc, KVc = s.hidden, s.head_dim, s.head_dim_v, self.Hc, self.KVc
        n_qkv = Hc * d + KVc * (d + dv)
        self.gemm("attn.qkv_proj", tag, count, T, n_qkv, h, bias=s.qkv_bias)
        if s.qk_norm:
            self.eltwise("attn.qk_norm", "norm", tag, count, T * (Hc + KVc) * d, RMSNORM_FLOPS,
                         weight_elems=2 * d, rows=T * (Hc + KVc))
        if s.position == "rope" and s.rotary_dim:
            # vLLM's rotary kernel walks q's heads, then k's, in two loops (Op.first_loop)
            self.eltwise("attn.rope", "rope", tag, count, T * (Hc + KVc) * s.rotary_dim, ROPE_FLOPS, rows=T,
                         first_loop=Hc * s.rotary_dim)
        seqs = self.batch.seqs
        self.attention("attn.core", tag, count, seqs, Hc, KVc, d, dv, kind.window, kernel=self.kernel,
                       phase=self.phase, cache_read_elems=KVc * (d + dv), cache_write_elems=KVc * (d + dv),
                       kv_act_elems=T * KVc * (d + dv))
        self.gemm("attn.o_proj", tag, count, T, h, Hc * dv, bias=s.o_bias)

    def mla_block(self, kind, count: int) -> None:
        """DeepSeek multi-head latent attention. q_a/kv_a projections are replicated on every TP
        rank (as in vLLM); q_b, kv_b by heads; o by rows. The KV cache holds the latent
        (kv_lora_rank + qk_rope_head_dim per token), replicated on every TP rank. Prefill runs the
        up-projected form (kv_b_proj expands cached and new latents to per-head K/V, then MHA with
        head dims 192/128); decode runs the absorbed form (W_UK folded into q, MQA over the
        latent with head dims 576/512, W_UV applied after)."""
        s, tag, T, Hc = self.s, kind.tag, self.T, self.Hc
        h, dn, dr, dv, r = s.hidden, s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim, s.kv_lora_rank
        if s.q_lora_rank:
            self.gemm("attn.q_a_proj", tag, count, T, s.q_lora_rank, h)
            self.norm("attn.q_a_norm", tag, count, T, s.q_lora_rank)
            self.gemm("attn.q_b_proj", tag, count, T, Hc * (dn + dr), s.q_lora_rank)
        else:
            self.gemm("attn.q_proj", tag, count, T, Hc * (dn + dr), h)
        self.gemm("attn.kv_a_proj", tag, count, T, r + dr, h)
        self.norm("attn.kv_a_norm", tag, count, T, r)
        self.eltwise("attn.rope", "rope", tag, count, T * (Hc + 1) * dr, ROPE_FLOPS, rows=T, first_loop=Hc * dr)
        self.mla_core(kind, count)
        self.gemm("attn.o_proj", tag, count, T, h, Hc * dv)

    def mla_core(self, kind, count: int) -> None:
        """The part of an MLA layer that depends on the step's prefill/decode split: the prefill side's
        kv_b_proj and attention core, the decode side's absorbed GEMMs around its attention core."""
        s, tag, Hc = self.s, kind.tag, self.Hc
        dn, dr, dv, r = s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim, s.kv_lora_rank
        pre, dec = self.batch.split()
        both = bool(pre) and bool(dec)
        latent = r + dr
        if pre:
            cached = seq_context(pre)
            kv_rows = seq_tokens(pre) + cached
            self.mla_kv_b(tag, count, kv_rows, cached)
            kernel = "naive" if self.kernel == "naive" else "flash"
            self.attention("attn.core.prefill" if both else "attn.core", tag, count, pre, Hc, Hc, dn + dr, dv,
                           kind.window, kernel=kernel, phase="prefill" if both else self.phase,
                           cache_read_elems=0, cache_write_elems=latent,
                           kv_act_elems=kv_rows * Hc * (dn + dr + dv))
        if dec:
            Td = seq_count(dec)
            self.mla_absorb("attn.q_absorb", tag, count, Td)
            kernel = "naive" if self.kernel == "naive" else "paged"
            self.attention("attn.core.decode" if both else "attn.core", tag, count, dec, Hc, 1, latent, r,
                           kind.window, kernel=kernel,
                           phase="decode", cache_read_elems=latent, cache_write_elems=latent,
                           kv_act_elems=Td * latent)
            self.mla_absorb("attn.v_absorb", tag, count, Td)

    def mla_kv_b(self, tag: str, count: int, kv_rows, cached) -> None:
        """MLA's prefill-side up-projection: the prefill requests' new and cached latents (``kv_rows`` rows,
        ``cached`` of them read from the KV cache) to per-head K/V."""
        s, q = self.s, self.q
        latent = s.kv_lora_rank + s.qk_rope_head_dim
        has_cached = cached.any() if isinstance(cached, np.ndarray) else cached
        extra = (TensorIO("kv_cache", "kv", q.kv_cache, cached * latent * q.kv_bytes, False),) if has_cached else ()
        self.gemm("attn.kv_b_proj", tag, count, kv_rows, self.Hc * (s.qk_nope_head_dim + s.v_head_dim),
                  s.kv_lora_rank, extra=extra)

    def mla_absorb(self, name: str, tag: str, count: int, Td) -> None:
        """One of MLA's absorbed decode GEMMs over ``Td`` decode rows, batched over the heads: attn.q_absorb
        (W_UK folded into q) or attn.v_absorb (W_UV applied to the latent output)."""
        s = self.s
        r = s.kv_lora_rank
        m, n, k = (Td, r, s.qk_nope_head_dim) if name == "attn.q_absorb" else (Td, s.v_head_dim, r)
        # a block-FP8 checkpoint's absorbed matrices run in the storage dtype: vLLM's MLA backend
        # dequantizes kv_b_proj into bf16 W_UK / W_UV at load (process_weights_after_loading,
        # get_and_maybe_dequant_weights) and multiplies them with torch.bmm
        self.gemm(name, tag, count, m, n, k, batch=self.Hc, quantized=not self.q.block_scaled)

    def dense_mlp(self, tag: str, count: int, inter: int, prefix: str = "mlp", rows: float | None = None,
                  split: int | None = None) -> None:
        s = self.s
        split = self.tp if split is None else split
        rows = self.T if rows is None else rows
        m = rows if isinstance(rows, np.ndarray) else math.ceil(rows)  # an array: token counts (integers)
        i_c = inter // split
        h = s.hidden
        gated = s.mlp_gated or prefix != "mlp"
        bias = s.mlp_bias and prefix == "mlp"
        if gated:
            self.gemm(f"{prefix}.gate_up_proj", tag, count, m, 2 * i_c, h, rows=rows, bias=bias)
            self.eltwise(f"{prefix}.act", "elementwise", tag, count, rows * i_c,
                         activation_flops(s.activation, gated=True), inputs=2, rows=rows)
        else:
            self.gemm(f"{prefix}.up_proj", tag, count, m, i_c, h, rows=rows, bias=bias)
            self.eltwise(f"{prefix}.act", "elementwise", tag, count, rows * i_c,
                         activation_flops(s.activation, gated=False), rows=rows)
        self.gemm(f"{prefix}.down_proj", tag, count, m, h, i_c, rows=rows, bias=bias)

    def moe(self, tag: str, count: int) -> None:
        """Router, routed experts (grouped GEMM over the experts that receive tokens) and shared
        experts. Routing: each token picks top_k experts with the model's routing distribution
        (workloads.routing; uniform unless the model's hot_expert_load says otherwise); with EP the
        step waits for the busiest rank (expected max load over the ranks)."""
        s, p, T, tp = self.s, self.p, self.T, self.tp
        h, E, k, mi = s.hidden, s.num_experts, s.experts_per_token, s.moe_intermediate
        ep = p.ep
        probs = expert_probs(E, k, s.hot_expert_load)
        if ep > 1:
            T_r = _cdiv(T, tp)  # tokens this chip routes (its share of the TP-replicated tokens)
            tokens = T_r * ep  # routed over the EP group; rank 0 holds the hottest expert
            ranks = rank_probs(probs, ep)
            local = ranks[0]
            routed = expected_max_load(tokens, ranks)  # rows of the busiest rank
            split = 1
        else:
            T_r = tokens = T
            local = probs
            routed = T * k
            split = tp
        touched = expected_touched(tokens, local)
        self.gemm("moe.router", tag, count, T_r, E, h, quantized=False)
        w = (TensorIO("w_router_bias", "weight", self.st, E * self.sb, False),) if s.router_bias else ()
        self.ops.append(Op("moe.topk", "router", count, 0.0, T_r * E * ROUTER_FLOPS, self.st,
                           (self.act("logits", T_r * E),) + w + (self.act("topk", 2 * T_r * k, True),),
                           layer=tag))
        # token rows sorted by expert (vLLM moe_align_block_size, SGLang and TRT-LLM permute indices):
        # reads the top-k ids, writes the expert-sorted row indices (int32); the rows themselves
        # are gathered by the expert GEMM's A loads and scattered back by moe.combine
        self.ops.append(Op("moe.align", "router", count, 0.0, T_r * k, self.st,
                           (TensorIO("topk_ids", "activation", "int32", 4.0 * T_r * k, False),
                            TensorIO("sorted_ids", "activation", "int32", 4.0 * (routed + touched), True)),
                           layer=tag))
        if ep > 1:
            self.collective("ep.alltoall_dispatch", tag, count, "alltoall", T_r * k * h * self.sb, "ep", ep)
        rows = routed * p.imbalance  # rows this chip's experts process (busiest chip)
        i_c = mi // split
        # the routing the cost model pads per expert: tokens scaled so that the chip's experts expect
        # exactly ``rows`` rows (the busiest rank's load, times the imbalance factor)
        if isinstance(T, np.ndarray):  # token counts as an array (other_ops): the same values elementwise
            n_grp = np.maximum(1, np.round(touched))
            m = np.maximum(1, np.ceil(rows / np.maximum(touched, 1e-9)))
            route = (np.maximum(1, np.round(rows / sum(local))), local)
        else:
            n_grp = max(1, round(touched))
            m = max(1, math.ceil(rows / max(touched, 1e-9)))
            route = (max(1, round(rows / sum(local))), local)
        self.gemm("moe.experts.gate_up", tag, count, m, 2 * i_c, h, batch=n_grp, rows=rows,
                  w_elems=touched * 2 * i_c * h, routing=route, quant_rows=T_r)
        self.eltwise("moe.experts.act", "elementwise", tag, count, rows * i_c,
                     activation_flops(s.activation, gated=True), inputs=2,
                     rows=rows)
        self.gemm("moe.experts.down", tag, count, m, h, i_c, batch=n_grp, rows=rows, w_elems=touched * h * i_c,
                  routing=route)
        if ep > 1:
            self.collective("ep.alltoall_combine", tag, count, "alltoall", T_r * k * h * self.sb, "ep", ep)
        self.eltwise("moe.combine", "elementwise", tag, count, T_r * k * h, 2, out_elems=T_r * h)
        if s.shared_intermediate:
            self.dense_mlp(tag, count, s.shared_intermediate, prefix="moe.shared", rows=T_r, split=split)
            if s.shared_expert_gate:
                self.gemm("moe.shared.gate", tag, count, T_r, 1, h, quantized=False)
        if ep > 1 and tp > 1:
            self.collective("tp.allgather_moe", tag, count, "allgather", T * h * self.sb, "tp", tp)
        elif tp > 1:
            self.collective("tp.allreduce_mlp", tag, count, "allreduce", T * h * self.sb, "tp", tp)
