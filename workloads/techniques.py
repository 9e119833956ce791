"""The workload side of inference techniques: speculative decoding and KV-cache eviction.

These describe *what runs* (which extra model proposes tokens, how many tokens a step verifies,
which tokens the KV cache keeps); ``sim/techniques.py`` prices them with the shared cost model.

Speculative decoding (Leviathan et al., "Fast Inference from Transformers via Speculative
Decoding", ICML 2023): a cheap proposer (a small draft model, or an n-gram/prompt-lookup or other
self-speculation with a stated fixed cost) proposes ``k`` tokens; the target model scores all of
them in one step (each request's step has ``k + 1`` new query tokens after its context:
``Batch(((k + 1, ctx), ...))``) and keeps the longest accepted prefix plus one token of its own.
With acceptance rate ``alpha`` (the chance that a proposed token is accepted given the earlier
ones were), the expected tokens per target step are::

    E = 1 + alpha + alpha^2 + ... + alpha^k = (1 - alpha^(k+1)) / (1 - alpha)    (k + 1 at alpha = 1)

and with per-position rates ``alpha_1..alpha_k``: ``E = 1 + sum_i prod_{j<=i} alpha_j``. The
output distribution is unchanged (rejection sampling), so the technique is lossless.

KV-cache eviction keeps a sliding window of the last ``W`` tokens of every request's cache
(StreamingLLM-style, without attention sinks): :func:`with_kv_window` returns a ModelSpec whose
layers attend to at most ``W`` keys, so attention reads and the cache both cap at ``W`` tokens.
It changes the model's outputs (lossy).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

from hwmodels.errors import Problem, SpecError
from workloads.model import ModelSpec, load_model, parse_config
from workloads.quant import Quantization

__all__ = ["DRAFT_CONFIGS", "DRAFT_PARTNERS", "NGRAM_STEP_COST_S", "SpecConfig", "default_draft",
           "expected_tokens_per_step", "load_draft", "with_kv_window"]

#: Default cost of one n-gram (prompt-lookup) proposal round for the whole batch, in seconds. An
#: ASSUMPTION, not a measurement: a CPU-side lookup of the last tokens in each request's prompt and
#: output, plus the host-device synchronisation it forces (tens to hundreds of microseconds).
NGRAM_STEP_COST_S = 100e-6

#: Draft models that are not in the model catalog, as Hugging Face config dicts.
DRAFT_CONFIGS: dict[str, dict] = {
    # meta-llama/Llama-3.2-1B config.json (Llama 3 tokenizer, 128256 vocab): 1.236B parameters
    "llama-3.2-1b": {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "head_dim": 64,
        "hidden_act": "silu", "hidden_size": 2048, "intermediate_size": 8192,
        "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
        "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
        "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "vocab_size": 128256,
    },
}

#: target -> a smaller model of the same family that shares its tokenizer (a usable draft)
DRAFT_PARTNERS: dict[str, str] = {
    "llama-3.1-8b": "llama-3.2-1b",
    "llama-3.1-70b": "llama-3.1-8b",
    "llama-3.3-70b": "llama-3.1-8b",
    "llama-3.1-405b": "llama-3.1-8b",
    "llama-2-13b": "llama-2-7b",
    "llama-2-70b": "llama-2-7b",
    "qwen2.5-7b": "qwen2.5-0.5b",
    "qwen2.5-72b": "qwen2.5-0.5b",
    "mixtral-8x7b": "mistral-7b",
    "mixtral-8x22b": "mistral-7b",
}


@functools.lru_cache(maxsize=16)
def _draft_config(name: str) -> ModelSpec:
    return parse_config(dict(DRAFT_CONFIGS[name]), name, file=f"<{name} config>")


def load_draft(name_or_spec) -> ModelSpec:
    """A draft model: a catalog name, a config path, a ModelSpec, or a name in :data:`DRAFT_CONFIGS`."""
    if isinstance(name_or_spec, str) and name_or_spec in DRAFT_CONFIGS:
        return _draft_config(name_or_spec)
    return load_model(name_or_spec)


def default_draft(target) -> str | None:
    """The draft partner of ``target`` (name or ModelSpec), or None when none is known."""
    name = target if isinstance(target, str) else getattr(target, "name", "")
    return DRAFT_PARTNERS.get(name)


def expected_tokens_per_step(acceptance, k: int) -> float:
    """Expected tokens one target step produces with ``k`` proposed tokens.

    ``acceptance``: one rate for every position (``(1 - a^(k+1)) / (1 - a)``, ``k + 1`` at 1) or
    ``k`` per-position conditional rates (``1 + sum_i prod_{j<=i} a_j``)."""
    if isinstance(acceptance, (int, float)):
        a = float(acceptance)
        if a >= 1.0:
            return float(k + 1)
        return (1.0 - a ** (k + 1)) / (1.0 - a)
    rates = tuple(float(a) for a in acceptance)
    e, p = 1.0, 1.0
    for a in rates[:k]:
        p *= a
        e += p
    return e


@dataclass(frozen=True)
class SpecConfig:
    """Speculative decoding: ``k`` proposed tokens per target step at ``acceptance``.

    ``draft``: the draft model (catalog name, config path, ModelSpec or a :data:`DRAFT_CONFIGS`
    name); None means a proposer without a model (n-gram / prompt lookup, or self-speculation)
    whose whole cost is ``step_cost_s`` per round. ``draft_quant``: the draft's quantization
    (default: the target's). ``step_cost_s``: a fixed cost added to every speculation round (the
    n-gram lookup, or any proposer overhead you want to state), default 0 with a draft and
    :data:`NGRAM_STEP_COST_S` without one.
    """

    k: int = 4
    acceptance: float | tuple = 0.7
    draft: object = None
    draft_quant: object = None
    step_cost_s: float | None = None

    def __post_init__(self):
        problems = []
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            problems.append(Problem(f"must be a positive integer, got {self.k!r}", path="speculative.k"))
        acc = self.acceptance
        if isinstance(acc, (list, tuple)):
            acc = tuple(float(a) for a in acc)
            object.__setattr__(self, "acceptance", acc)
            rates = acc
            if isinstance(self.k, int) and len(acc) != self.k:
                problems.append(Problem(f"{len(acc)} per-position acceptance rates for k={self.k}; give k rates "
                                        "or one", path="speculative.acceptance"))
        else:
            try:
                rates = (float(acc),)
            except (TypeError, ValueError):
                rates = ()
                problems.append(Problem(f"must be a number in [0, 1], got {acc!r}", path="speculative.acceptance"))
        if any(not (0.0 <= a <= 1.0) or math.isnan(a) for a in rates):
            problems.append(Problem(f"acceptance rates must lie in [0, 1], got {acc!r}", path="speculative.acceptance"))
        if self.step_cost_s is not None and (not isinstance(self.step_cost_s, (int, float)) or self.step_cost_s < 0):
            problems.append(Problem(f"must be >= 0 seconds, got {self.step_cost_s!r}", path="speculative.step_cost_s"))
        if self.draft_quant is not None:
            try:
                Quantization.parse(self.draft_quant)
            except SpecError as e:
                problems.extend(e.problems)
        if problems:
            raise SpecError(problems)

    @property
    def method(self) -> str:
        return "draft" if self.draft is not None else "ngram"

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens per target step (``expected_tokens_per_step``)."""
        return expected_tokens_per_step(self.acceptance, self.k)

    @property
    def round_cost_s(self) -> float:
        """The stated fixed cost per speculation round."""
        if self.step_cost_s is not None:
            return float(self.step_cost_s)
        return 0.0 if self.draft is not None else NGRAM_STEP_COST_S

    def draft_spec(self) -> ModelSpec | None:
        return None if self.draft is None else load_draft(self.draft)

    def describe(self) -> str:
        acc = self.acceptance if isinstance(self.acceptance, float) else "/".join(f"{a:g}" for a in self.acceptance)
        who = f"draft {self.draft_spec().name}" if self.draft is not None else "n-gram proposer"
        return (f"speculative decoding: {who}, k={self.k}, acceptance {acc}, "
                f"{self.tokens_per_step:.2f} tokens per target step")


def with_kv_window(model, window: int) -> ModelSpec:
    """``model`` with every layer's attention (and KV cache) limited to the last ``window`` tokens
    (layers with a smaller window of their own keep it). Lossy: it is a different model."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise SpecError([Problem(f"must be a positive integer, got {window!r}", path="kv_window")])
    s = load_model(model)
    kinds = tuple(dataclasses.replace(k, window=min(k.window, window) if k.window else window) for k in s.layer_kinds)
    return dataclasses.replace(s, name=f"{s.name}+kv{window}", layer_kinds=kinds,
                               sliding_window=min(s.sliding_window or window, window))
