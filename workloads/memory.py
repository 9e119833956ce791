"""Memory footprint per chip: weights, KV cache and activation workspace of one model replica.

All figures are bytes on one chip of the busiest pipeline stage (``ceil(layers/pp)`` layers),
after tensor, pipeline and expert parallel division:

- ``weights_bytes``: the stage's layers (quantized linear weights at
  ``Quantization.weight_bytes``, norms, routers and biases in the storage dtype; weights that
  are replicated across TP ranks, such as MLA's q_a/kv_a projections and MoE routers, counted
  whole) plus the vocab-parallel embedding and LM head. With ``pp == 1`` the chip holds both
  (tied embeddings once); with ``pp > 1`` the first stage holds the embedding and the last the
  LM head and final norm, and the larger of the two is counted.
- ``kv_cache_bytes``: every request's tokens (context plus this step's new tokens; or
  ``max_context`` each) in every layer of the stage, capped at the window for sliding-window
  layers. MLA's latent is replicated on each TP rank; GQA KV heads are split by TP (one per
  chip when tp > kv_heads).
- ``activation_bytes``: the workspace, the largest set of activation tensors one op of the step
  reads and writes (for example the score matrix of naive attention, or the MLP's up-projected
  activations in a long prefill). Transients are freed between ops, so the peak is one op's set.

With a :class:`~workloads.quant.Sparsity` stored compressed, the linear weights of the layers it
selects take ``Sparsity.element_bytes`` per element (kept values plus 2:4 metadata).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hwmodels.errors import InfeasibleError, Problem, SpecError
from hwmodels.format import fmt_bytes
from workloads.graph import Batch, build_graph
from workloads.model import ModelSpec, load_model
from workloads.parallel import Parallelism, check_parallelism, stage_layers
from workloads.quant import Quantization, Sparsity

__all__ = ["Footprint", "check_fits", "footprint", "weight_bytes_per_chip"]


@dataclass(frozen=True)
class Footprint:
    """Bytes one chip holds for a model replica (see the module docstring)."""

    model: str
    quant: str
    parallel: Parallelism
    weights_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    total_bytes: float
    kv_bytes_per_token: float  # per chip, all layers of the stage, no window cap
    kv_tokens: int  # tokens held per layer (all requests)
    layers_on_stage: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["parallel"] = str(self.parallel)
        return d


def _sparse_factor(sparsity: Sparsity | None, prefix: str, dense_bytes: float) -> float:
    """Stored bytes of a pruned weight element over its dense bytes (1 when not pruned)."""
    if sparsity is None or not sparsity.selects(prefix):
        return 1.0
    return sparsity.element_bytes(dense_bytes) / dense_bytes


def _layer_weight_bytes(s: ModelSpec, kind, q: Quantization, p: Parallelism,
                        sparsity: Sparsity | None = None) -> float:
    """Bytes of one layer of ``kind`` on one chip."""
    tp, wb, sb = p.tp, q.weight_bytes, q.storage_bytes
    wa = wb * _sparse_factor(sparsity, "attn.", wb)
    wm = wb * _sparse_factor(sparsity, "mlp.", wb)
    we = wb * _sparse_factor(sparsity, "moe.experts.", wb)
    ws = wb * _sparse_factor(sparsity, "moe.shared.", wb)
    h = s.hidden
    norm = h * (2 if s.norm == "layernorm" else 1) * sb * s.norms_per_layer
    if s.attention == "mla":
        Hc = s.heads // tp
        dn, dr, dv, r, ql = s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim, s.kv_lora_rank, s.q_lora_rank
        q_el = (h * ql + ql * Hc * (dn + dr)) if ql else h * Hc * (dn + dr)
        lin = q_el + h * (r + dr) + r * Hc * (dn + dv) + Hc * dv * h
        attn = lin * wa + (ql + r) * sb
    else:
        Hc = s.heads // tp
        KVc = max(1, s.kv_heads // tp)
        d, dv = s.head_dim, s.head_dim_v
        qkv = Hc * d + KVc * (d + dv)
        attn = (h * qkv + Hc * dv * h) * wa
        attn += ((qkv if s.qkv_bias else 0) + (h if s.o_bias else 0) + (2 * d if s.qk_norm else 0)) * sb
    if not kind.moe:
        i_c = s.intermediate // tp
        mlp = (3 if s.mlp_gated else 2) * h * i_c * wm
        if s.mlp_bias:
            mlp += ((2 * i_c if s.mlp_gated else i_c) + h) * sb
        return norm + attn + mlp
    split = 1 if p.ep > 1 else tp
    experts = (s.num_experts // p.ep) * 3 * h * (s.moe_intermediate // split) * we
    router = (h * s.num_experts + (s.num_experts if s.router_bias else 0)) * sb
    shared = 3 * h * (s.shared_intermediate // split) * ws + (h * sb if s.shared_expert_gate else 0)
    return norm + attn + experts + router + shared


def weight_bytes_per_chip(model, quant=None, parallel: Parallelism | None = None,
                          sparsity: Sparsity | None = None) -> float:
    """Weight bytes one chip of the busiest stage holds (see the module docstring)."""
    s = load_model(model)
    q = Quantization.parse(quant).for_checkpoint(s.checkpoint_quant)
    p = parallel or Parallelism()
    check_parallelism(s, p)
    kinds = {k.tag: k for k in s.layer_kinds}
    layers = sum(c * _layer_weight_bytes(s, kinds[t], q, p, sparsity) for t, c in stage_layers(s, p.pp))
    sb = q.storage_bytes
    v_chip = -(-s.vocab // p.tp)
    norm = s.hidden * (2 if s.norm == "layernorm" else 1) * sb
    first = (v_chip * s.hidden + s.learned_positions * s.hidden) * sb
    head = v_chip * s.hidden * sb
    if sparsity is not None and sparsity.selects("lm_head"):
        # a pruned LM head is a copy of its own even when the embedding is tied (the embedding stays dense)
        pruned = head * _sparse_factor(sparsity, "lm_head", sb)
        last = norm + pruned + (v_chip * sb if s.lm_head_bias else 0)
        return layers + (max(first, last) if p.pp > 1 else first + last)
    last = norm + (0 if s.tied_embeddings else head) + (v_chip * sb if s.lm_head_bias else 0)
    if p.pp > 1:
        last += v_chip * s.hidden * sb if s.tied_embeddings else 0  # the last stage keeps its own copy
        return layers + max(first, last)
    return layers + first + last


def footprint(model, batch, quant=None, parallel: Parallelism | None = None,
              attention_kernel: str = "auto", sparsity: Sparsity | None = None) -> Footprint:
    """Bytes per chip for ``model`` serving ``batch``.

    ``batch``: a :class:`~workloads.graph.Batch` (each request holds context + new tokens, and
    the step's op workspace is measured), or ``(requests, max_context)``: that many requests
    holding ``max_context`` tokens each, workspace of their decode step. ``sparsity``: pruned
    (2:4) weights stored compressed take fewer bytes (default None: dense).
    """
    s = load_model(model)
    q = Quantization.parse(quant).for_checkpoint(s.checkpoint_quant)
    p = parallel or Parallelism()
    if isinstance(batch, Batch):
        lengths = [n + c for n, c in batch.seqs]
        step = batch
    else:
        try:
            reqs, max_ctx = batch
        except (TypeError, ValueError):
            raise SpecError([Problem("expected a Batch or (requests, max_context)", path="batch")]) from None
        step = Batch.decode(reqs, max_ctx - 1) if isinstance(max_ctx, int) and max_ctx > 1 \
            else Batch.prefill(reqs, max_ctx)
        lengths = [max_ctx] * reqs
    g = build_graph(s, step, q, p, attention_kernel=attention_kernel)
    weights = weight_bytes_per_chip(s, q, p, sparsity)
    kinds = {k.tag: k for k in s.layer_kinds}
    if s.attention == "mla":
        elems = s.kv_lora_rank + s.qk_rope_head_dim
    else:
        elems = max(1, s.kv_heads // p.tp) * (s.head_dim + s.head_dim_v)
    kvb = q.kv_bytes
    kv = 0.0
    per_token = 0.0
    for tag, count in g.stage:
        w = kinds[tag].window
        held = sum(lengths) if w is None else sum(min(x, w) for x in lengths)
        kv += count * held * elems * kvb
        per_token += count * elems * kvb
    work = max((o.bytes_of("activation") for o in g.ops), default=0.0)
    total = weights + kv + work
    return Footprint(model=s.name, quant=q.name, parallel=p, weights_bytes=weights, kv_cache_bytes=kv,
                     activation_bytes=work, total_bytes=total, kv_bytes_per_token=per_token,
                     kv_tokens=sum(lengths), layers_on_stage=g.layers_on_stage)


def _where(p: Parallelism) -> str:
    parts = [f"tp={p.tp}"]
    if p.pp > 1:
        parts.append(f"pp={p.pp}")
    if p.ep > 1:
        parts.append(f"ep={p.ep}")
    return ", ".join(parts)


def check_fits(fp: Footprint, capacity_bytes: float, level_name: str = "hbm") -> None:
    """Raise InfeasibleError when ``fp`` does not fit in ``capacity_bytes`` (of memory level
    ``level_name``), saying which part does not fit, with the numbers in ``.numbers``."""
    numbers = {"weights_bytes": fp.weights_bytes, "kv_cache_bytes": fp.kv_cache_bytes,
               "activation_bytes": fp.activation_bytes, "total_bytes": fp.total_bytes,
               "capacity_bytes": float(capacity_bytes), "level": level_name,
               "tp": fp.parallel.tp, "pp": fp.parallel.pp, "ep": fp.parallel.ep}
    if fp.total_bytes <= capacity_bytes:
        return
    where = _where(fp.parallel)
    if fp.weights_bytes > capacity_bytes:
        raise InfeasibleError(f"{fp.model} {fp.quant} weights need {fmt_bytes(fp.weights_bytes)} per chip at "
                              f"{where}; {level_name} holds {fmt_bytes(capacity_bytes)}", numbers)
    raise InfeasibleError(
        f"{fp.model} {fp.quant} needs {fmt_bytes(fp.total_bytes)} per chip at {where} (weights "
        f"{fmt_bytes(fp.weights_bytes)} + KV cache {fmt_bytes(fp.kv_cache_bytes)} for {fp.kv_tokens} tokens + "
        f"workspace {fmt_bytes(fp.activation_bytes)}); {level_name} holds {fmt_bytes(capacity_bytes)}", numbers)
