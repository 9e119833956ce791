"""A step's ops in parts, for the serving step coster (sim/step.py) and the whole-request decode pricing
(sim/predict.py): the attention core alone (:func:`attention_ops`, also over many steps at once), every
other op as a function of the step's token and request counts (:func:`other_ops`, also over an array of
token counts), for MLA models the ops that depend on the prefill/decode split (:func:`mla_split_ops`) and,
under a block-scaled scheme, the activation quantizations that read what the attention core or a split op
wrote (:func:`cut_ops`). Each is built by the graph builder's own code (workloads.graph._Builder), with the
builder's primitives that a part leaves out made no-ops, so the parts' ops are those
:func:`workloads.graph.build_graph` emits (tests/unit/test_serving_step.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from workloads.batch import Batch
from workloads.graph import _Builder, _fuse, _mark_fresh
from workloads.model import ModelSpec
from workloads.parallel import Parallelism, stage_layers
from workloads.quant import Quantization
from workloads.seqs import SeqArrays, _step_tuple, phase_of, seq_tokens


class _Steps:
    """K steps of the same requests (a SeqArrays of (new, cached)) where the builder reads a Batch:
    new tokens per step, requests, and the phase (the same in every step)."""

    def __init__(self, seqs: SeqArrays):
        self.seqs = seqs
        self.requests = len(seqs)
        self.tokens = seq_tokens(seqs)
        n, c = seqs.first, seqs.second
        if n.ndim > 1:  # the first step's requests
            n, c = n[..., :1, :], c[..., :1, :]
        self.phase = phase_of(int(np.add.reduce((n == 1) & (c > 0), axis=None)), self.requests)

    def split(self) -> tuple:
        return self.seqs.split()


class _Step:
    """One step's (new, cached) pairs (a tuple, already valid) where the builder reads a Batch: its tokens
    and phase from the one pass that also counts its attention sums (workloads.seqs.step_sums)."""

    def __init__(self, seqs: tuple):
        self.seqs = seqs
        self.requests = len(seqs)
        got = _step_tuple(seqs, None)
        self.tokens = got[3]
        self.phase = phase_of(got[5], self.requests)

    def split(self) -> tuple:
        return Batch.split(self)


class _Tokens:
    """A step's token count (a number or an array of them) and request count where the builder reads a
    Batch for the ops other than the attention core."""

    def __init__(self, tokens, requests: int):
        self.tokens = tokens
        self.requests = requests
        self.phase = "prefill"  # read only for the attention kernel, which these ops do not have
        self.seqs = None


class _AttentionOnly:
    """Mixin: a builder that emits only the attention-core ops of a layer."""

    def gemm(self, *a, **k):
        pass

    def eltwise(self, *a, **k):
        pass

    def norm(self, *a, **k):
        pass

    def collective(self, *a, **k):
        pass


def attention_ops(spec: ModelSpec, seqs, q: Quantization, p: Parallelism, kernel: str = "auto",
                  fused: bool = False) -> list:
    """The attention-core ops of one step of the busiest stage, exactly as :func:`build_graph` emits
    them (same builder code): ``seqs`` a validated Batch's pairs, or a :class:`SeqArrays` of K steps
    (then every op's FLOPs and bytes are arrays over the steps; its AttentionShape holds the
    SeqArrays). Every other op of a step depends on the batch only through its tokens and requests
    (MLA's split ops also on the prefill/decode split: :func:`mla_split_ops`)."""
    if isinstance(seqs, SeqArrays):
        batch = _Steps(seqs)
    else:  # the caller's shapes are valid ints: no re-validation (hot path)
        batch = _Step(seqs if type(seqs) is tuple else tuple(seqs))
    b = _AttentionOnlyBuilder(spec, batch, q, p, kernel)
    for kind, count in _stage_kinds(spec, p.pp):
        b.attention_block(kind, count)
    return _fuse(b.ops, fused)


_STAGE_KINDS: dict = {}  # (id(spec), pp) -> (spec, its busiest stage's (layer kind, count) pairs)


def _stage_kinds(spec: ModelSpec, pp: int) -> tuple:
    """``stage_layers(spec, pp)`` with each tag's layer kind, remembered by the spec object (hashing a
    ModelSpec costs more than the attention op it serves: attention_ops runs once per priced step)."""
    got = _STAGE_KINDS.get((id(spec), pp))
    if got is None or got[0] is not spec:
        if len(_STAGE_KINDS) >= 256:
            _STAGE_KINDS.clear()
        kinds = {k.tag: k for k in spec.layer_kinds}
        got = _STAGE_KINDS[(id(spec), pp)] = (spec, tuple((kinds[t], c) for t, c in stage_layers(spec, pp)))
    return got[1]


def other_ops(spec: ModelSpec, tokens, requests: int, q: Quantization, p: Parallelism,
              fused: bool = False) -> list:
    """Every op of a step of the busiest stage except the attention core, exactly as
    :func:`build_graph` emits them (same builder code), for a step of ``tokens`` new tokens over
    ``requests`` requests: those ops depend on the batch only through these two numbers.
    ``tokens`` may be an integer array of token counts: every op's FLOPs, bytes and GEMM rows are
    then arrays over them (priced by ``CostModel.over_steps()``). MLA models leave out the ops that
    depend on the prefill/decode split too (:func:`mla_split_ops`), and block-scaled schemes the
    activation quantizations that read what the attention core or a split op wrote (:func:`cut_ops`).
    MoE layers under expert parallelism take the busiest rank's expected load per token count
    (workloads.routing.expected_max_load, elementwise over an array)."""
    b = _NoAttentionBuilder(spec, _Tokens(tokens, requests), q, p, "auto")
    b.embedding()
    kinds = {k.tag: k for k in spec.layer_kinds}
    for tag, count in stage_layers(spec, p.pp):
        b.layer(kinds[tag], count)
    b.head()
    return _fuse(_mark_fresh(b.ops), fused)


#: the activation quantizations (block-scaled schemes) whose input the attention core or an MLA split op wrote:
#: o_proj's (after the attention core, or MLA's v_absorb) and MLA's kv_b_proj's (a split op itself, after rope)
CUT_OPS = frozenset({"attn.o_proj.act_quant", "attn.kv_b_proj.act_quant"})


def parts_exact(q: Quantization, kernel: str) -> bool:
    """Whether a step's parts (other_ops, mla_split_ops, cut_ops, attention_ops) depend on the step only
    through its (T, R) and MLA split: not under a block-scaled scheme with the naive attention kernel, whose
    written scores and probabilities (every request's context) are part of what o_proj's activation
    quantization finds in the cache (``fresh_span``, workloads.graph._mark_fresh)."""
    return not (q.block_scaled and kernel == "naive")


def cut_ops(spec: ModelSpec, seqs, q: Quantization, p: Parallelism, kernel: str = "auto",
            fused: bool = False) -> list:
    """The ops of :data:`CUT_OPS` of a step (``seqs``: its valid (new, cached) pairs, or a :class:`SeqArrays` of
    many steps, whose figures are then arrays over them), for each layer kind of the busiest stage, exactly as
    :func:`build_graph` emits them: a kind's attention block built by the
    builder's own code over the step (the neighbours those ops read from: rope, the attention core, MLA's split
    ops), their fresh bytes marked by the same ``_mark_fresh``. The block reads a kind's tag and window only, so
    the kinds of one window (DeepSeek's dense and MoE layers) take the first one's ops under their own layer and
    count (tests/unit/test_serving_step.py). Empty but under a block-scaled scheme (no activation
    quantization). The other parts leave these ops out; they depend on the step through its token count
    (o_proj's rows, rope's and the attention core's output), MLA's decode count (v_absorb's output) and prefill
    rows (kv_b_proj's input): the (T, R, split) key (but under the naive kernel: :func:`parts_exact`). Without
    MLA, on T alone: the attention core's output (T x heads x dv) is what o_proj's reads."""
    if not q.block_scaled:
        return []
    if isinstance(seqs, SeqArrays):
        batch = _Steps(seqs)
    else:
        batch = _Step(seqs if type(seqs) is tuple else tuple(seqs))
    out, built = [], {}
    for kind, count in _stage_kinds(spec, p.pp):
        ops = built.get(kind.window)
        if ops is None:
            b = _Builder(spec, batch, q, p, kernel)
            b.attention_block(kind, count)
            ops = built[kind.window] = [o for o in _fuse(_mark_fresh(b.ops), fused) if o.name in CUT_OPS]
            out += ops
        else:
            out += [replace(o, layer=kind.tag, count=count) for o in ops]
    return out


def mla_split_ops(spec: ModelSpec, kv_rows: int, cached: int, decodes: int, q: Quantization, p: Parallelism,
                  fused: bool = False) -> list:
    """The ops of an MLA model's step that depend on its prefill/decode split but are not the attention
    core, exactly as :func:`build_graph` emits them (same builder code), for each layer kind of the
    busiest stage: kv_b_proj over the prefill side's ``kv_rows`` rows (its new and cached tokens, ``cached``
    of them read from the KV cache) when there are any, then the absorbed q and v GEMMs over ``decodes``
    decode requests when there are any (with their dequant ops under a weight-only scheme; kv_b_proj's activation
    quantization under a block-scaled one is a cut op: :func:`cut_ops`)."""
    b = _SplitBuilder(spec, _Tokens(0, 0), q, p, "auto")
    for kind, count in _stage_kinds(spec, p.pp):
        if kv_rows:
            b.mla_kv_b(kind.tag, count, kv_rows, cached)
        if decodes:
            b.mla_absorb("attn.q_absorb", kind.tag, count, decodes)
            b.mla_absorb("attn.v_absorb", kind.tag, count, decodes)
    return _fuse(b.ops, fused)


class _AttentionOnlyBuilder(_AttentionOnly, _Builder):
    pass


class _CutFree:
    """Mixin: a builder that leaves out the activation quantizations of :data:`CUT_OPS` (their GEMMs still read
    the quantized activations)."""

    def _act_quant(self, name: str, *a):
        got = super()._act_quant(name, *a)
        if f"{name}.act_quant" in CUT_OPS:
            self.ops.pop()
        return got


class _SplitBuilder(_CutFree, _Builder):
    pass


class _NoAttentionBuilder(_CutFree, _Builder):
    """A builder that emits every op but the attention core, the cut ops and, for MLA, the ops that depend on the
    prefill/decode split (other_ops)."""

    def attention(self, *a, **k):
        pass

    def mla_core(self, *a, **k):
        pass
