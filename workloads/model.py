"""Model architectures: a Hugging Face ``config.json`` read offline into a frozen :class:`ModelSpec`.

A ModelSpec is the *what* of a prediction: the shapes of one decoder-only transformer (layers,
widths, heads, attention kind, MoE and MLA fields) and its exact parameter counts. It holds no
hardware rate and no parallelism; :func:`workloads.graph.build_graph` turns it into operators.

The config file is read directly (no hub, no ``transformers``). ``architectures`` (else
``model_type``) picks a family; each family knows which field names it uses (``n_embd`` for
GPT-2, ``num_local_experts`` for Mixtral, ...). Every problem in a file (unknown architecture,
missing or non-positive field, heads that do not divide) is reported at once in one SpecError
naming the file, the line where the field sits and the field.

Parameter counts (``params_total``, ``params_active``) count every weight tensor the checkpoint of
the main model holds: embeddings (once when tied to the LM head), learned positions, attention
and MLP weights and biases, norm weights and biases, routers, and routed plus shared experts.
They exclude DeepSeek's multi-token-prediction module (``num_nextn_predict_layers``), which is a
speculative-decoding head, not part of the 671B main model. ``params_active`` is the parameters
one token touches: the total minus the routed experts it is not sent to (``E - top_k`` per MoE
layer); embeddings and the LM head are included (the Mixtral 12.9B convention).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwmodels.dtype import get_dtype
from hwmodels.errors import Problem, SpecError
from hwmodels.limits import read_text
from workloads.activations import ACTIVATIONS, unknown_activation
from workloads.jsonstrict import lone_surrogate, parse_json
from workloads.quant import read_checkpoint_quant

__all__ = ["CATALOG_DIR", "LayerKind", "ModelSpec", "list_models", "load_model", "parse_config"]

CATALOG_DIR = Path(__file__).parent / "catalog" / "models"

#: Hugging Face ``architectures`` entry -> family
ARCHITECTURES = {
    "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
    "MixtralForCausalLM": "mixtral", "Qwen2ForCausalLM": "qwen2",
    "Qwen2MoeForCausalLM": "qwen2_moe", "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3_moe", "DeepseekV2ForCausalLM": "deepseek_v2",
    "DeepseekV3ForCausalLM": "deepseek_v3", "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma2", "Phi3ForCausalLM": "phi3",
    "GPT2LMHeadModel": "gpt2", "GPTJForCausalLM": "gptj",
    "OPTForCausalLM": "opt", "FalconForCausalLM": "falcon",
    "RWForCausalLM": "falcon",
}
#: ``model_type`` -> family (used when ``architectures`` is absent)
MODEL_TYPES = {
    "llama": "llama", "mistral": "mistral", "mixtral": "mixtral", "qwen2": "qwen2",
    "qwen2_moe": "qwen2_moe", "qwen3": "qwen3", "qwen3_moe": "qwen3_moe",
    "deepseek_v2": "deepseek_v2", "deepseek_v3": "deepseek_v3", "gemma": "gemma", "gemma2": "gemma2",
    "phi3": "phi3", "gpt2": "gpt2", "gptj": "gptj", "opt": "opt", "falcon": "falcon",
    "RefinedWeb": "falcon", "RefinedWebModel": "falcon",
}
FAMILIES = tuple(sorted(set(ARCHITECTURES.values())))


@dataclass(frozen=True)
class LayerKind:
    """One kind of transformer layer and how many of the model's layers are of it.

    ``tag`` is the ``Op.layer`` value of its ops: ``'layer'`` when a model has one kind, else
    ``'layer.dense'``/``'layer.moe'`` (DeepSeek) or ``'layer.sliding'``/``'layer.global'`` (Gemma 2).
    """

    tag: str
    count: int
    moe: bool = False
    window: int | None = None  # sliding attention window in tokens, None = full causal


@dataclass(frozen=True)
class ModelSpec:
    """The shapes of one decoder-only transformer, with its exact parameter counts.

    Widths are in elements; ``params_*`` in parameters (not bytes). Frozen and hashable, so graph
    builds keyed by it can be cached.
    """

    name: str
    family: str
    architecture: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int  # MLA: equal to heads (every head has its own K/V after up-projection)
    head_dim: int  # q/k head dim (MLA: qk_nope_head_dim + qk_rope_head_dim)
    head_dim_v: int  # v head dim (= head_dim except for MLA)
    intermediate: int  # dense MLP width (DeepSeek: of the first_k_dense_replace dense layers)
    vocab: int
    max_position: int
    attention: str  # 'mha' | 'gqa' | 'mqa' | 'mla'
    layer_kinds: tuple[LayerKind, ...]
    # block structure
    mlp_gated: bool = True  # SwiGLU/GeGLU (gate and up) vs a plain up -> act -> down MLP
    activation: str = "silu"
    norm: str = "rmsnorm"  # 'rmsnorm' | 'layernorm' (layernorm has a bias)
    norms_per_layer: int = 2
    parallel_block: bool = False  # attention and MLP read the same input (GPT-J, Falcon)
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    tied_embeddings: bool = False
    position: str = "rope"  # 'rope' | 'learned' | 'alibi'
    rotary_dim: int = 0  # rotated dims per head (GPT-J: 64 of 256); 0 without rope
    learned_positions: int = 0  # rows of the learned position table (GPT-2, OPT)
    qk_norm: bool = False  # per-head RMSNorm of q and k (Qwen3)
    sliding_window: int | None = None
    attn_softcap: float | None = None
    final_softcap: float | None = None
    # mixture of experts (num_experts == 0: dense)
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate: int = 0
    shared_experts: int = 0
    shared_intermediate: int = 0  # width of the shared-expert MLP (all shared experts together)
    shared_expert_gate: bool = False  # Qwen2-MoE gates its shared expert with a sigmoid (h -> 1)
    router_bias: bool = False  # DeepSeek-V3 e_score_correction_bias (one per expert)
    hot_expert_load: float = 1.0  # hottest expert's load over the mean (1 = uniform; workloads/routing.py)
    # multi-head latent attention (DeepSeek)
    q_lora_rank: int = 0  # 0: q projected directly from the hidden state
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    mtp_layers: int = 0  # DeepSeek multi-token-prediction modules (not counted, not built)
    torch_dtype: str = "bf16"
    checkpoint_quant: Any = None  # its quantization_config's fp8 format (workloads.quant.from_hf_config) or None
    params_total: int = 0
    params_active: int = 0
    source: str = field(default="", compare=False)
    config: Any = field(default=None, compare=False, hash=False, repr=False)
    # what reading the config priced by a rule the user must know (an unknown activation name: as GELU)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    # ---- derived quantities -------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def moe_layers(self) -> int:
        return sum(k.count for k in self.layer_kinds if k.moe)

    @property
    def dense_layers(self) -> int:
        return self.layers - self.moe_layers

    @property
    def q_dim(self) -> int:
        """Width of all query heads together."""
        return self.heads * self.head_dim

    def kv_elements_per_token_per_layer(self) -> int:
        """KV-cache elements one token adds to one layer (both K and V; MLA: the latent)."""
        if self.attention == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return self.kv_heads * (self.head_dim + self.head_dim_v)

    def kv_bytes_per_token(self, dtype: str = "bf16") -> float:
        """KV-cache bytes one token adds to the whole model (all layers), in ``dtype``.

        Sliding-window layers are counted like the others: this is the per-token rate while a
        context is shorter than the window (:func:`workloads.memory.footprint` caps them).
        """
        return self.layers * self.kv_elements_per_token_per_layer() * get_dtype(dtype).bytes

    def param_counts(self) -> dict[str, int]:
        """Parameters by component (whole model, all layers); they sum to ``params_total``."""
        return _param_counts(self)

    @functools.cached_property
    def layer_tags(self) -> tuple[str, ...]:
        """The tag of every layer, in order (index 0 = first layer)."""
        return _layer_tags(self)

    def summary(self) -> dict:
        """A JSON-ready description (what ``llmsim model show --json`` prints)."""
        d = {
            "name": self.name, "family": self.family, "architecture": self.architecture,
            "params_total": self.params_total, "params_active": self.params_active,
            "layers": self.layers, "hidden": self.hidden, "heads": self.heads,
            "kv_heads": self.kv_heads, "head_dim": self.head_dim, "head_dim_v": self.head_dim_v,
            "intermediate": self.intermediate, "vocab": self.vocab,
            "max_position": self.max_position, "attention": self.attention,
            "layer_kinds": [{"tag": k.tag, "count": k.count, "moe": k.moe, "window": k.window}
                            for k in self.layer_kinds],
            "tied_embeddings": self.tied_embeddings, "position": self.position,
            "mlp": ("gated " if self.mlp_gated else "") + self.activation, "norm": self.norm,
            "parallel_block": self.parallel_block, "sliding_window": self.sliding_window,
            "kv_bytes_per_token": {dt: self.kv_bytes_per_token(dt) for dt in KV_DTYPES},
            "param_counts": self.param_counts(),
            "checkpoint_quant": self.checkpoint_quant and self.checkpoint_quant.summary(),
            "source": self.source,
        }
        if self.is_moe:
            d["moe"] = {"experts": self.num_experts, "experts_per_token": self.experts_per_token,
                        "expert_intermediate": self.moe_intermediate, "shared_experts": self.shared_experts,
                        "shared_intermediate": self.shared_intermediate, "moe_layers": self.moe_layers,
                        "dense_layers": self.dense_layers}
        if self.attention == "mla":
            d["mla"] = {"q_lora_rank": self.q_lora_rank, "kv_lora_rank": self.kv_lora_rank,
                        "qk_nope_head_dim": self.qk_nope_head_dim, "qk_rope_head_dim": self.qk_rope_head_dim,
                        "v_head_dim": self.v_head_dim}
        return d


#: the KV-cache dtypes ``model show`` reports
KV_DTYPES = ("bf16", "fp8", "int8")


# ---------------------------------------------------------------------------------------------
# parameter counting (closed forms; the graph builder's weight bytes are checked against these)

def attention_params(s: ModelSpec) -> int:
    """Parameters of one layer's attention block (projections, biases, q/k norms; not the
    pre-attention norm)."""
    h = s.hidden
    if s.attention == "mla":
        qk = s.qk_nope_head_dim + s.qk_rope_head_dim
        if s.q_lora_rank:
            q = h * s.q_lora_rank + s.q_lora_rank + s.q_lora_rank * s.heads * qk
        else:
            q = h * s.heads * qk
        kv = h * (s.kv_lora_rank + s.qk_rope_head_dim) + s.kv_lora_rank
        kv += s.kv_lora_rank * s.heads * (s.qk_nope_head_dim + s.v_head_dim)
        o = s.heads * s.v_head_dim * h
        return q + kv + o
    qkv_out = s.heads * s.head_dim + s.kv_heads * (s.head_dim + s.head_dim_v)
    n = h * qkv_out + s.heads * s.head_dim_v * h
    if s.qkv_bias:
        n += qkv_out
    if s.o_bias:
        n += h
    if s.qk_norm:
        n += 2 * s.head_dim
    return n


def mlp_params(hidden: int, inter: int, gated: bool, bias: bool) -> int:
    """Parameters of one MLP (gate/up and down projections, with biases if any)."""
    n = (3 if gated else 2) * hidden * inter
    if bias:
        n += (2 * inter if gated else inter) + hidden
    return n


def norm_params(s: ModelSpec) -> int:
    return s.hidden * (2 if s.norm == "layernorm" else 1)


def expert_params(s: ModelSpec) -> int:
    """Parameters of one routed expert."""
    return mlp_params(s.hidden, s.moe_intermediate, True, False)


def _param_counts(s: ModelSpec) -> dict[str, int]:
    h = s.hidden
    moe_l, dense_l = s.moe_layers, s.dense_layers
    out = {"embedding": s.vocab * h, "positions": s.learned_positions * h}
    out["attention"] = s.layers * attention_params(s)
    out["mlp"] = dense_l * mlp_params(h, s.intermediate, s.mlp_gated, s.mlp_bias)
    out["experts"] = moe_l * s.num_experts * expert_params(s) if s.is_moe else 0
    shared = 0
    if s.is_moe and s.shared_intermediate:
        shared = mlp_params(h, s.shared_intermediate, True, False) + (h if s.shared_expert_gate else 0)
    out["shared_experts"] = moe_l * shared
    out["router"] = moe_l * (h * s.num_experts + (s.num_experts if s.router_bias else 0))
    out["norms"] = s.layers * s.norms_per_layer * norm_params(s) + norm_params(s)  # + final norm
    lm = 0 if s.tied_embeddings else s.vocab * h
    out["lm_head"] = lm + (s.vocab if s.lm_head_bias else 0)
    return out


def _layer_tags(s: ModelSpec) -> tuple[str, ...]:
    if len(s.layer_kinds) == 1:
        return (s.layer_kinds[0].tag,) * s.layers
    if s.family == "gemma2":  # even layers slide, odd layers are global (Gemma2DecoderLayer)
        return tuple("layer.sliding" if i % 2 == 0 else "layer.global" for i in range(s.layers))
    out = []
    for k in s.layer_kinds:  # contiguous kinds (DeepSeek: dense layers first)
        out.extend([k.tag] * k.count)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# reading config.json

#: Upper bounds of integer config fields, with the reason (checked before any work is sized by them)
INT_BOUNDS = {
    "num_hidden_layers": (10_000, "the deepest published LLM has under 200 layers; the graph is built layer by layer"),
    "n_layer": (10_000, "the deepest published LLM has under 200 layers; the graph is built layer by layer"),
    "vocab_size": (1 << 24, "published vocabularies are under 300,000 tokens"),
    "max_position_embeddings": (1 << 31, "context lengths index int32 positions in serving engines"),
    "n_positions": (1 << 31, "context lengths index int32 positions in serving engines"),
    "*": (1 << 20, "the widest published dimension (hidden, MLP, heads, experts) is under 100,000; "
                   "products of two dimensions and a token count must stay within 64-bit integers"),
}


class _Reader:
    """Typed access to a config dict that collects problems instead of raising on the first."""

    def __init__(self, cfg: dict, file: str | None, text: str | None):
        self.cfg, self.file, self.text = cfg, file, text
        self.problems: list[Problem] = []

    def where(self, key: str) -> tuple[int | None, int | None]:
        if not self.text:
            return None, None
        m = re.search(rf'"{re.escape(key)}"\s*:', self.text) if key else None
        if not m:  # a missing key: point at the object that should hold it
            m = re.search(r"\{", self.text)
        if not m:
            return 1, 1
        line = self.text.count("\n", 0, m.start()) + 1
        col = m.start() - (self.text.rfind("\n", 0, m.start()) + 1) + 1
        return line, col

    def problem(self, key: str, message: str) -> None:
        line, col = self.where(key)
        self.problems.append(Problem(message, file=self.file, line=line, col=col, path=key))

    def has(self, key: str) -> bool:
        return self.cfg.get(key) is not None

    def get(self, *keys: str, default=None):
        for k in keys:
            if self.cfg.get(k) is not None:
                return self.cfg[k]
        return default

    def int_(self, *keys: str, default: int | None = None, required: bool = True,
             minimum: int = 1) -> int:
        """A positive (>= minimum) integer under the first key present, at most its bound in
        INT_BOUNDS. Missing and required: a problem naming the first key (and its aliases)."""
        for k in keys:
            v = self.cfg.get(k)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v):
                self.problem(k, f"must be an integer, got {v!r}")
                return default or 0
            if v < minimum:
                what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
                self.problem(k, f"must be {what}, got {v!r}")
                return 0
            bound, why = INT_BOUNDS.get(k, INT_BOUNDS["*"])
            if v > bound:
                self.problem(k, f"must be at most {bound:,} ({why}), got {v!r}")
                return 0
            return int(v)
        if default is not None or not required:
            return default if default is not None else 0
        alias = f" (or {', '.join(keys[1:])})" if len(keys) > 1 else ""
        line, col = self.where("")
        self.problems.append(Problem(f"required field missing{alias}", file=self.file, line=line, col=col,
                                     path=keys[0]))
        return 0

    def text_(self, *keys: str, default: str) -> str:
        """The non-empty text under the first key present (a name such as an activation function)."""
        for k in keys:
            v = self.cfg.get(k)
            if v is not None:
                if not (isinstance(v, str) and v.strip()):
                    self.problem(k, f"must be a name (text), got {v!r}")
                    return default
                return v
        return default

    def positive_(self, key: str) -> float | None:
        """A positive finite number, or None where the key is missing or null."""
        v = self.cfg.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            self.problem(key, f"must be a positive number or null, got {v!r}")
            return None
        return float(v)

    def bool_(self, key: str, default: bool) -> bool:
        v = self.cfg.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            self.problem(key, f"must be true or false, got {v!r}")
            return default
        return v


def _family(r: _Reader) -> tuple[str, str]:
    archs = r.cfg.get("architectures")
    mt = r.cfg.get("model_type")
    if archs is not None and not (isinstance(archs, list) and archs and all(isinstance(a, str) for a in archs)):
        r.problem("architectures", f"must be a non-empty list of class names, got {archs!r}")
        archs = None
    if archs:
        for a in archs:
            if a in ARCHITECTURES:
                return ARCHITECTURES[a], a
    if isinstance(mt, str) and mt in MODEL_TYPES:
        return MODEL_TYPES[mt], (archs[0] if archs else mt)
    if archs or mt is not None:
        key, val = ("architectures", archs[0]) if archs else ("model_type", mt)
        known = list(ARCHITECTURES) if archs else list(MODEL_TYPES)
        hint = difflib.get_close_matches(str(val), known, n=2)
        dym = f"; did you mean {', '.join(hint)}?" if hint else ""
        r.problem(key, f"unknown architecture {val!r}{dym} (supported: {', '.join(sorted(ARCHITECTURES))})")
    else:
        line, col = r.where("")
        r.problems.append(Problem("required field missing (or model_type): cannot tell the architecture",
                                  file=r.file, line=line, col=col, path="architectures"))
    return "", ""


def _window(r: _Reader, key: str = "sliding_window", enabled: bool = True) -> int | None:
    if not enabled:
        return None
    v = r.cfg.get(key)
    if v is None:
        return None
    return r.int_(key) or None


def _widths(r: _Reader, family: str) -> tuple:
    """(hidden, heads, layers, max_position, intermediate, vocab), under each family's field names."""
    if family in ("gpt2", "gptj"):
        hidden = r.int_("n_embd", "hidden_size")
        heads = r.int_("n_head", "num_attention_heads")
        layers = r.int_("n_layer", "num_hidden_layers")
        max_pos = r.int_("n_positions", "max_position_embeddings")
        inter = r.int_("n_inner", required=False) or 4 * hidden
    elif family == "falcon":
        hidden = r.int_("hidden_size", "n_embd")
        heads = r.int_("num_attention_heads", "n_head")
        layers = r.int_("num_hidden_layers", "n_layer")
        max_pos = r.int_("max_position_embeddings", default=2048)
        inter = r.int_("ffn_hidden_size", required=False) or 4 * hidden
    elif family == "opt":
        hidden = r.int_("hidden_size")
        heads = r.int_("num_attention_heads")
        layers = r.int_("num_hidden_layers")
        max_pos = r.int_("max_position_embeddings")
        inter = r.int_("ffn_dim")
    else:
        hidden = r.int_("hidden_size")
        heads = r.int_("num_attention_heads")
        layers = r.int_("num_hidden_layers")
        max_pos = r.int_("max_position_embeddings")
        inter = r.int_("intermediate_size")
    vocab = r.int_("vocab_size")
    return hidden, heads, layers, max_pos, inter, vocab


def _kv_heads_and_head_dim(r: _Reader, family: str, hidden: int, heads: int) -> tuple:
    """(key/value heads, head dim) of the attention (MLA's head dims come with its structure)."""
    if family == "falcon":
        if r.bool_("new_decoder_architecture", False):
            kv = r.int_("num_kv_heads", "num_key_value_heads")
        elif r.bool_("multi_query", True):
            kv = 1
        else:
            kv = heads
    elif family in ("gpt2", "gptj", "opt"):
        kv = heads
    else:
        kv = r.int_("num_key_value_heads", default=heads)
    head_dim = r.int_("head_dim", required=False)
    if family not in ("deepseek_v2", "deepseek_v3") and not head_dim and heads and hidden:
        if hidden % heads:
            r.problem("num_attention_heads", f"hidden_size {hidden} is not a multiple of "
                      f"num_attention_heads {heads}; give head_dim")
        head_dim = hidden // heads
    if heads and kv and family not in ("deepseek_v2", "deepseek_v3") and (kv > heads or heads % kv):
        key = "num_kv_heads" if family == "falcon" else "num_key_value_heads"
        r.problem(key, f"{kv} key/value heads do not divide {heads} attention heads")
    return kv, head_dim


def _activation_warnings(r: _Reader, name: str | None) -> tuple[str, ...]:
    """A warning naming the file, line and field of an activation name transformers does not know
    (workloads.activations: priced as GELU); () for a known name."""
    if name is None or name in ACTIVATIONS:
        return ()
    key = next((k for k in ("hidden_activation", "hidden_act", "activation_function") if r.cfg.get(k) == name),
               "hidden_act")
    line, col = r.where(key)
    return (str(Problem(unknown_activation(name), file=r.file, line=line, col=col, path=key)),)


def _structure(r: _Reader, family: str, kw: dict, hidden: int, heads: int, kv: int, head_dim: int,
               max_pos: int) -> tuple:
    """Fill ``kw`` with the family's structure; returns (kv heads, head dim, value head dim)."""
    head_dim_v = head_dim
    if family in ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3"):
        kw["activation"] = r.text_("hidden_act", default="silu")
        kw["tied_embeddings"] = r.bool_("tie_word_embeddings", False)
        if family in ("qwen2", "qwen2_moe"):
            kw["qkv_bias"] = True
        elif family in ("llama", "qwen3", "qwen3_moe"):
            kw["qkv_bias"] = kw["o_bias"] = r.bool_("attention_bias", False)
        if family == "llama":
            kw["mlp_bias"] = r.bool_("mlp_bias", False)
        kw["qk_norm"] = family in ("qwen3", "qwen3_moe")
        use_sw = family in ("mistral", "mixtral", "phi3") or r.bool_("use_sliding_window", False)
        kw["sliding_window"] = _window(r, enabled=use_sw)
        kw["rotary_dim"] = head_dim
    elif family in ("gemma", "gemma2"):
        kw["activation"] = r.text_("hidden_activation", "hidden_act", default="gelu_pytorch_tanh")
        kw["tied_embeddings"] = r.bool_("tie_word_embeddings", True)
        kw["qkv_bias"] = kw["o_bias"] = r.bool_("attention_bias", False)
        kw["rotary_dim"] = head_dim
        if family == "gemma2":
            kw["norms_per_layer"] = 4
            kw["sliding_window"] = _window(r)
            kw["attn_softcap"] = r.positive_("attn_logit_softcapping")
            kw["final_softcap"] = r.positive_("final_logit_softcapping")
    elif family in ("deepseek_v2", "deepseek_v3"):
        kw["activation"] = r.text_("hidden_act", default="silu")
        kw["tied_embeddings"] = r.bool_("tie_word_embeddings", False)
        kw["q_lora_rank"] = r.int_("q_lora_rank", required=False)
        kw["kv_lora_rank"] = r.int_("kv_lora_rank")
        kw["qk_nope_head_dim"] = r.int_("qk_nope_head_dim")
        kw["qk_rope_head_dim"] = r.int_("qk_rope_head_dim")
        kw["v_head_dim"] = r.int_("v_head_dim")
        kw["rotary_dim"] = kw["qk_rope_head_dim"]
        head_dim = kw["qk_nope_head_dim"] + kw["qk_rope_head_dim"]
        head_dim_v = kw["v_head_dim"]
        kv = heads
        kw["mtp_layers"] = r.int_("num_nextn_predict_layers", required=False, minimum=0)
        kw["router_bias"] = family == "deepseek_v3" and r.get("topk_method", default="noaux_tc") == "noaux_tc"
    elif family == "gpt2":
        kw.update(activation=r.text_("activation_function", default="gelu_new"), mlp_gated=False,
                  norm="layernorm", qkv_bias=True, o_bias=True, mlp_bias=True, position="learned",
                  learned_positions=max_pos, rotary_dim=0,
                  tied_embeddings=r.bool_("tie_word_embeddings", True))
    elif family == "gptj":
        kw.update(activation=r.text_("activation_function", default="gelu_new"), mlp_gated=False,
                  norm="layernorm", norms_per_layer=1, parallel_block=True, mlp_bias=True,
                  lm_head_bias=True, rotary_dim=r.int_("rotary_dim", default=head_dim),
                  tied_embeddings=r.bool_("tie_word_embeddings", False))
    elif family == "opt":
        proj = r.int_("word_embed_proj_dim", default=hidden)
        if proj and hidden and proj != hidden:
            r.problem("word_embed_proj_dim", f"word_embed_proj_dim {proj} != hidden_size {hidden} "
                      "(project_in/out layers) is not supported")
        kw.update(activation=r.text_("activation_function", default="relu"), mlp_gated=False,
                  norm="layernorm", qkv_bias=r.bool_("enable_bias", True), position="learned",
                  learned_positions=max_pos + 2,  # OPTLearnedPositionalEmbedding keeps an offset of 2
                  rotary_dim=0, tied_embeddings=r.bool_("tie_word_embeddings", True))
        kw["o_bias"] = kw["mlp_bias"] = kw["qkv_bias"]
    elif family == "falcon":
        bias = r.bool_("bias", False)
        parallel = r.bool_("parallel_attn", True)
        new_arch = r.bool_("new_decoder_architecture", False)
        alibi = r.bool_("alibi", False)
        kw.update(activation="gelu", mlp_gated=False, norm="layernorm", qkv_bias=bias, o_bias=bias,
                  mlp_bias=bias, parallel_block=parallel or new_arch,
                  norms_per_layer=2 if (new_arch or not parallel) else 1,
                  position="alibi" if alibi else "rope", rotary_dim=0 if alibi else head_dim,
                  tied_embeddings=r.bool_("tie_word_embeddings", True))
    return kv, head_dim, head_dim_v


def _layer_indices(r: _Reader, key: str, layers: int) -> list[int]:
    """A list of layer indices (0 to layers - 1) under ``key``; missing or null: none."""
    v = r.cfg.get(key)
    if v is None:
        return []
    if not isinstance(v, list) or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < max(layers, 1)
                                      for i in v):
        r.problem(key, f"must be a list of layer indices from 0 to num_hidden_layers - 1 ({layers - 1}), got {v!r}")
        return []
    return v


def _moe_and_layer_kinds(r: _Reader, family: str, kw: dict, inter: int, layers: int) -> tuple:
    """Fill ``kw`` with the mixture-of-experts fields; returns the layer kinds with their counts."""
    kinds: tuple[LayerKind, ...] = ()
    if family in ("mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3"):
        e_key = {"mixtral": "num_local_experts", "qwen2_moe": "num_experts", "qwen3_moe": "num_experts"}.get(
            family, "n_routed_experts")
        E = r.int_(e_key)
        k = r.int_("num_experts_per_tok")
        if E and k and k > E:
            r.problem("num_experts_per_tok", f"{k} experts per token exceed the {E} experts")
        hot = r.get("llmsim_hot_expert_load", default=1.0)  # routing skew (workloads/routing.py)
        if isinstance(hot, bool) or not isinstance(hot, (int, float)) or not 1 <= hot <= (E / k if E and k else hot):
            hot = r.problem("llmsim_hot_expert_load", "must be a number from 1 (uniform routing) to experts / "
                            f"num_experts_per_tok, got {hot!r}") or 1.0
        kw.update(num_experts=E, experts_per_token=k, hot_expert_load=hot)
        if family == "mixtral":
            kw["moe_intermediate"] = inter
        else:
            kw["moe_intermediate"] = r.int_("moe_intermediate_size")
        if family == "qwen2_moe":
            kw["shared_intermediate"] = r.int_("shared_expert_intermediate_size", required=False)
            kw["shared_experts"] = 1 if kw["shared_intermediate"] else 0
            kw["shared_expert_gate"] = bool(kw["shared_intermediate"])
        elif family.startswith("deepseek"):
            ns = r.int_("n_shared_experts", required=False, minimum=0)
            kw["shared_experts"] = ns
            kw["shared_intermediate"] = ns * kw["moe_intermediate"]
        # which layers are MoE
        if family.startswith("deepseek"):
            first_dense = r.int_("first_k_dense_replace", required=False, minimum=0)
            if layers and first_dense > layers:
                r.problem("first_k_dense_replace", f"{first_dense} dense layers exceed the {layers} layers "
                                                   "(num_hidden_layers)")
            freq = r.int_("moe_layer_freq", default=1)
            moe_idx = [i for i in range(layers) if i >= first_dense and freq and i % freq == 0]
        elif family in ("qwen2_moe", "qwen3_moe"):
            step = r.int_("decoder_sparse_step", default=1)
            only = set(_layer_indices(r, "mlp_only_layers", layers))
            moe_idx = [i for i in range(layers) if i not in only and step and (i + 1) % step == 0]
        else:
            moe_idx = list(range(layers))
        n_moe = len(moe_idx)
        if n_moe == layers:
            kinds = (LayerKind("layer", layers, moe=True, window=kw.get("sliding_window")),)
        elif moe_idx and moe_idx == list(range(layers - n_moe, layers)):
            kinds = (LayerKind("layer.dense", layers - n_moe, window=kw.get("sliding_window")),
                     LayerKind("layer.moe", n_moe, moe=True, window=kw.get("sliding_window")))
        elif n_moe:
            r.problem("mlp_only_layers" if family != "deepseek_v3" else "moe_layer_freq",
                      "interleaved dense and MoE layers (other than dense-first) are not supported")
    if not kinds:
        if family == "gemma2" and kw.get("sliding_window"):
            n_sliding = (layers + 1) // 2
            kinds = (LayerKind("layer.sliding", n_sliding, window=kw["sliding_window"]),
                     LayerKind("layer.global", layers - n_sliding))
        else:
            kinds = (LayerKind("layer", layers, window=kw.get("sliding_window")),)
    return kinds


def parse_config(cfg: dict, name: str, file: str | None = None, text: str | None = None) -> ModelSpec:
    """A config dict (as in a Hugging Face ``config.json``) -> ModelSpec. SpecError lists every
    problem (unknown architecture, missing or invalid fields) at once."""
    if not isinstance(cfg, dict):
        raise SpecError([Problem(f"expected a JSON object, got {type(cfg).__name__}", file=file,
                                 line=1 if file else None, col=1 if file else None)])
    r = _Reader(cfg, file, text)
    family, arch = _family(r)
    if not family:
        raise SpecError(r.problems)
    kw: dict[str, Any] = {}
    hidden, heads, layers, max_pos, inter, vocab = _widths(r, family)
    kv, head_dim = _kv_heads_and_head_dim(r, family, hidden, heads)
    kv, head_dim, head_dim_v = _structure(r, family, kw, hidden, heads, kv, head_dim, max_pos)
    kinds = _moe_and_layer_kinds(r, family, kw, inter, layers)
    kw["checkpoint_quant"] = read_checkpoint_quant(r)  # quantization_config: the checkpoint's fp8 format
    kw["warnings"] = _activation_warnings(r, kw.get("activation"))
    if r.problems:
        raise SpecError(r.problems)
    mla = family in ("deepseek_v2", "deepseek_v3")
    attention = "mla" if mla else "mha" if kv == heads else "mqa" if kv == 1 else "gqa"
    try:
        dtype = get_dtype(str(r.get("torch_dtype", "dtype", default="bfloat16"))).name
    except ValueError:
        dtype = "bf16"
    spec = ModelSpec(
        name=name, family=family, architecture=arch, layers=layers, hidden=hidden, heads=heads,
        kv_heads=kv, head_dim=head_dim, head_dim_v=head_dim_v, intermediate=inter, vocab=vocab,
        max_position=max_pos, attention=attention, layer_kinds=kinds, torch_dtype=dtype,
        source=file or "", config=cfg, **kw)
    total = sum(_param_counts(spec).values())
    routed_off = spec.num_experts - spec.experts_per_token  # experts a token is not sent to
    inactive = spec.moe_layers * routed_off * expert_params(spec) if spec.is_moe else 0
    object.__setattr__(spec, "params_total", total)
    object.__setattr__(spec, "params_active", total - inactive)
    return spec


# ---------------------------------------------------------------------------------------------
# files and the catalog

def _read(path: Path) -> tuple[dict, str]:
    f = str(path)
    text = read_text(path, "json_bytes", "a Hugging Face config.json")
    cfg = parse_json(text, f)
    bad = lone_surrogate(cfg)
    if bad is not None:
        raise SpecError([Problem(f"text holds a lone surrogate ({bad!a}), which is not valid Unicode",
                                 file=f, line=1, col=1)])
    if isinstance(cfg, dict) and "__duplicate_keys__" in cfg:
        r = _Reader(cfg, f, text)
        for k in cfg.pop("__duplicate_keys__"):
            r.problem(k, "duplicate key (JSON keeps only the last value)")
        raise SpecError(r.problems)
    return cfg, text


@functools.lru_cache(maxsize=1)
def _catalog() -> dict[str, Path]:
    return {p.stem: p for p in sorted(CATALOG_DIR.glob("*.json"))}


@functools.cache
def hf_repo_names() -> dict[str, str]:
    """Hugging Face repository id (lower case) -> catalog name, from the catalog's README table."""
    readme = CATALOG_DIR.parent / "README.md"
    out = {}
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return out
    for m in re.finditer(r"^\|\s*([a-z0-9.\-]+)\s*\|\s*([\w.\-]+/[\w.\-]+)\s*\|", text, re.MULTILINE):
        if m.group(1) in _catalog():
            out[m.group(2).lower()] = m.group(1)
    return out


def list_models() -> list[str]:
    """Names of the shipped model configs (kebab-case, e.g. ``llama-3.1-70b``), sorted."""
    return list(_catalog())


@functools.lru_cache(maxsize=256)
def _load_catalog(name: str) -> ModelSpec:
    cfg, text = _read(_catalog()[name])
    return parse_config(cfg, name, file=str(_catalog()[name]), text=text)


@functools.lru_cache(maxsize=64)
def _load_file(resolved: str, shown: str, mtime_ns: int, size: int) -> ModelSpec:
    """A config file, cached until it changes (keyed by its modification time and size)."""
    p = Path(shown)
    cfg, text = _read(p)
    name = Path(resolved).parent.name if p.name == "config.json" else p.stem
    return parse_config(cfg, name or p.stem, file=shown, text=text)


def context_warning(spec: ModelSpec, tokens: int, count: int = 1) -> str | None:
    """The warning for ``count`` requests of up to ``tokens`` tokens (prompt + output) where that is longer than the
    model's ``max_position_embeddings``: predicted as a what-if, never refused (predict, serve, plan, sweep); None
    when they fit."""
    if tokens <= spec.max_position or count < 1:
        return None
    what = f"a request of {tokens} tokens is" if count == 1 else f"{count:,} requests of up to {tokens} tokens are"
    return (f"{spec.name}: {what} longer than its max_position_embeddings {spec.max_position}; predicted as a what-if "
            "(the model was not trained for that length)")


def model_warnings(*models) -> list[str]:
    """What reading each model's config priced by a rule the user must know (``ModelSpec.warnings``: an unknown
    activation name), each once, in order; ``models``: names, paths or ModelSpecs; one that does not load adds
    nothing (whoever priced it has said why already)."""
    out: list[str] = []
    for m in models:
        try:
            ws = m.warnings if isinstance(m, ModelSpec) else load_model(m).warnings
        except (SpecError, OSError, ValueError):
            continue
        out += [w for w in ws if w not in out]
    return out


def load_model(name_or_path: str | Path | ModelSpec) -> ModelSpec:
    """A catalog name (``llama-3.1-8b``), a ``config.json`` path, or a folder holding one ->
    ModelSpec. Unknown names raise SpecError with close matches."""
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    s = str(name_or_path)
    cat = _catalog()
    if s in cat:
        return _load_catalog(s)
    p = Path(s)
    if p.is_dir() and (p / "config.json").exists():
        p = p / "config.json"
    if p.is_file():
        st = p.stat()
        return _load_file(str(p.resolve()), str(p), st.st_mtime_ns, st.st_size)
    if p.suffix == ".json" or "/" in s:
        repo = hf_repo_names().get(s.lower())
        if repo is None and "/" in s and p.suffix != ".json":  # a repo id we do not list: its name, lowered
            close = difflib.get_close_matches(s.rsplit("/", 1)[-1].lower(), list(cat), n=1, cutoff=0.8)
            repo = close[0] if close else None
        if repo is not None:
            raise SpecError([Problem(f"no such model config file: {s}; '{s}' looks like the Hugging Face repository "
                                     f"of the catalog model '{repo}': use --model {repo}")])
        raise SpecError([Problem(f"no such model config file: {s}")])
    hint = difflib.get_close_matches(s, list(cat), n=3)
    dym = f"; did you mean {', '.join(hint)}?" if hint else ""
    raise SpecError([Problem(f"unknown model '{s}'{dym} (`llmsim model list` shows the catalog; "
                             "or give a path to a config.json)")])
