"""Quantization: which number format weights, activations and the KV cache are held and multiplied in.

The three are chosen independently:

- ``weight``: the dtype of the linear-layer weights of the transformer blocks (attention
  projections, MLPs, experts). Block-scaled formats count their scales: a weight element takes
  ``get_dtype(weight).bytes_per_element(group_size)`` bytes (int4 with group 128: 4.125 bits).
  Embeddings, the LM head, routers and norm weights stay in ``storage`` (as GPTQ/AWQ and FP8
  checkpoints keep them).
- ``activation``: the dtype a GEMM's activation input is multiplied in. The GEMM's math runs at
  the wider of ``weight`` and ``activation`` (W8A8 fp8 runs at the fp8 rate; W4A16 at bf16).
  When the weight is narrower than that math dtype (weight-only quantization), the graph adds a
  ``dequant`` op per quantized GEMM carrying the vector FLOPs of unpacking and scaling.
- ``kv_cache``: the dtype of the KV cache (bytes per cached element).
- ``storage``: the dtype activations are held in between ops in memory (bf16 or fp16); activation
  traffic and collective messages are counted in it, also for W8A8 schemes, whose GEMMs quantize
  their input on the fly.

Named schemes (``Quantization.named(name)`` or a plain string wherever a Quantization is taken):
``bf16``, ``fp16``, ``fp8`` (W8A8 fp8), ``w8a8`` (int8 W8A8), ``w8a16`` (int8 weight-only),
``w4a16`` (int4 weights, group 128, bf16 activations), ``fp4`` (W4A4 fp4, group 16, as NVFP4),
``fp8-kv`` (bf16 with an fp8 KV cache).

:class:`Sparsity` describes 2:4 structured sparsity of the linear weights of chosen layers (a
weight *format*, independent of the dtype): two of every four weights are kept, and when the
weights are stored compressed (NVIDIA's 2:4 format) each kept element carries 2 bits of
metadata (its index within the group of four), so a weight element costs
``0.5 x (bytes + 2/8)`` bytes: 0.5625 of bf16, 0.625 of fp8, 0.75 of int4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwmodels.dtype import DTypeError, get_dtype
from hwmodels.errors import Problem, SpecError

__all__ = ["SCHEMES", "SPARSE_LAYERS", "Quantization", "Sparsity"]

#: name -> (weight, activation, kv_cache, storage, group_size)
SCHEMES: dict[str, tuple[str, str, str, str, int | None]] = {
    "bf16": ("bf16", "bf16", "bf16", "bf16", None),
    "fp16": ("fp16", "fp16", "fp16", "fp16", None),
    "fp8": ("fp8", "fp8", "bf16", "bf16", None),
    "w8a8": ("int8", "int8", "bf16", "bf16", None),
    "w8a16": ("int8", "bf16", "bf16", "bf16", None),
    "w4a16": ("int4", "bf16", "bf16", "bf16", 128),
    "fp4": ("fp4", "fp4", "bf16", "bf16", 16),
    "fp8-kv": ("bf16", "bf16", "fp8", "bf16", None),
}


@dataclass(frozen=True)
class Quantization:
    """Number formats of weights, GEMM activations, the KV cache and stored activations.

    ``group_size``: elements sharing one scale in block-scaled weight formats (None: per-channel
    scales, not counted). ``scheme``: the name shown in messages (set by :meth:`named`).
    """

    weight: str = "bf16"
    activation: str = "bf16"
    kv_cache: str = "bf16"
    storage: str = "bf16"
    group_size: int | None = None
    scheme: str | None = field(default=None, compare=False)

    def __post_init__(self):
        problems = []
        for f in ("weight", "activation", "kv_cache", "storage"):
            v = getattr(self, f)
            try:
                object.__setattr__(self, f, get_dtype(v).name)
            except DTypeError as e:
                problems.append(Problem(str(e), path=f"quant.{f}"))
        if self.group_size is not None and (isinstance(self.group_size, bool) or not isinstance(self.group_size, int)
                                            or self.group_size < 1):
            problems.append(Problem(f"must be a positive integer, got {self.group_size!r}", path="quant.group_size"))
        if problems:
            raise SpecError(problems)

    @classmethod
    def named(cls, name: str) -> Quantization:
        """One of :data:`SCHEMES` (SpecError listing the known names otherwise)."""
        key = str(name).strip().lower()
        if key not in SCHEMES:
            raise SpecError([Problem(f"unknown quantization {name!r}; known: {', '.join(SCHEMES)}", path="quant")])
        w, a, kv, st, g = SCHEMES[key]
        return cls(w, a, kv, st, g, scheme=key)

    @classmethod
    def parse(cls, q: Quantization | str | None) -> Quantization:
        """A Quantization, a scheme name, or None (bf16)."""
        if q is None:
            return cls.named("bf16")
        if isinstance(q, Quantization):
            return q
        return cls.named(q)

    @property
    def name(self) -> str:
        """The scheme name, or a description such as ``int4w/bf16a/fp8kv``."""
        if self.scheme:
            return self.scheme
        for n, t in SCHEMES.items():
            if t == (self.weight, self.activation, self.kv_cache, self.storage, self.group_size):
                return n
        return f"{self.weight}w/{self.activation}a/{self.kv_cache}kv"

    @property
    def weight_bytes(self) -> float:
        """Bytes per quantized weight element, group scales included."""
        return get_dtype(self.weight).bytes_per_element(self.group_size)

    @property
    def storage_bytes(self) -> float:
        return get_dtype(self.storage).bytes

    @property
    def kv_bytes(self) -> float:
        return get_dtype(self.kv_cache).bytes

    @property
    def math_dtype(self) -> str:
        """The dtype a quantized GEMM multiplies in: the wider of weight and activation."""
        w, a = get_dtype(self.weight), get_dtype(self.activation)
        return self.weight if w.bits > a.bits else self.activation

    @property
    def weight_only(self) -> bool:
        """Weights narrower than the math dtype: the GEMM dequantizes them (a ``dequant`` op)."""
        return get_dtype(self.weight).bits < get_dtype(self.math_dtype).bits

    def __str__(self) -> str:
        return self.name


#: layer selections of :class:`Sparsity` -> the GEMM-name prefixes they select
SPARSE_LAYERS: dict[str, tuple[str, ...]] = {
    "attn": ("attn.",),
    "mlp": ("mlp.",),
    "moe": ("moe.experts.", "moe.shared."),
    "lm_head": ("lm_head",),
}


@dataclass(frozen=True)
class Sparsity:
    """2:4 structured sparsity of the weights of chosen linear layers.

    ``layers``: any of ``attn`` (attention projections), ``mlp`` (dense MLP), ``moe`` (routed and
    shared experts; routers stay dense) and ``lm_head``. ``compressed``: the pruned weights are
    stored compressed (kept values plus ``metadata_bits`` per kept value: NVIDIA's 2:4 format
    uses a 2-bit index), so a GEMM reads ``kept x (bytes + metadata_bits / 8)`` bytes per weight
    element instead of ``bytes``; uncompressed (zeros stored) reads the dense bytes. The graph
    marks the selected GEMMs ``Op.sparse``; the cost model runs them at the chip's sparse peak
    (``sparse_peak``) where it lists one.
    """

    layers: tuple[str, ...] = ("attn", "mlp", "moe")
    compressed: bool = True
    kept: float = 0.5  # 2 of 4
    metadata_bits: float = 2.0  # per kept element

    def __post_init__(self):
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        layers = tuple(x.strip() for part in layers for x in str(part).split(",") if x.strip())
        bad = [x for x in layers if x not in SPARSE_LAYERS]
        problems = []
        if bad or not layers:
            problems.append(Problem(f"unknown sparse layer selection {bad or layers!r}; known: "
                                    f"{', '.join(SPARSE_LAYERS)}", path="sparsity.layers"))
        if not (0.0 < self.kept <= 1.0):
            problems.append(Problem(f"kept fraction must be in (0, 1], got {self.kept!r}", path="sparsity.kept"))
        if self.metadata_bits < 0:
            problems.append(Problem(f"must be >= 0, got {self.metadata_bits!r}", path="sparsity.metadata_bits"))
        if problems:
            raise SpecError(problems)
        object.__setattr__(self, "layers", tuple(dict.fromkeys(layers)))

    def selects(self, gemm_name: str) -> bool:
        """Whether the GEMM called ``gemm_name`` (e.g. ``mlp.down_proj``) is pruned."""
        return any(gemm_name.startswith(pre) for lay in self.layers for pre in SPARSE_LAYERS[lay])

    def element_bytes(self, dense_bytes: float) -> float:
        """Bytes stored (and read) per weight element of a pruned GEMM whose dense element takes
        ``dense_bytes``."""
        if not self.compressed:
            return dense_bytes
        return self.kept * (dense_bytes + self.metadata_bits / 8.0)

    @property
    def name(self) -> str:
        return f"2:4[{'+'.join(self.layers)}{'' if self.compressed else ', uncompressed'}]"

    def __str__(self) -> str:
        return self.name
