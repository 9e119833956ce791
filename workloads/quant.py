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
``fp8-kv`` (bf16 with an fp8 KV cache), ``fp8-block`` (block-scaled W8A8 fp8 as DeepSeek-V3/R1 and
Qwen3-*-FP8 checkpoints store it: one fp32 scale per 128 x 128 weight block, activations quantized per
token in groups of 128 by a kernel of their own before each GEMM).

Block scaling (``weight_block``, ``act_group``): a checkpoint whose Hugging Face ``quantization_config``
says ``quant_method: fp8`` with ``weight_block_size: [bn, bk]`` keeps one fp32 scale (``weight_scale_inv``)
per ``bn x bk`` block of every quantized weight, and its dynamic activations are quantized per token in
groups of ``bk`` (vLLM's and SGLang's ``per_token_group_quant_fp8``; the GEMM reads the fp8 activations
and their fp32 scales, and applies both scales per ``bk``-deep K block). :func:`from_hf_config` reads
such a config; :meth:`Quantization.for_checkpoint` turns the ``fp8`` scheme into the checkpoint's block
layout, as vLLM's ``--quantization fp8`` does on a block-FP8 checkpoint.

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

__all__ = ["BLOCK_SCHEMES", "SCALE_BYTES", "SCHEMES", "SPARSE_LAYERS", "Quantization", "Sparsity", "from_hf_config",
           "read_checkpoint_quant"]

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
    "fp8-block": ("fp8", "fp8", "bf16", "bf16", None),
}

#: block-scaled schemes -> (weight block [n, k], activation group along k)
BLOCK_SCHEMES: dict[str, tuple[tuple[int, int], int]] = {
    "fp8-block": ((128, 128), 128),
}

#: bytes of one block scale (fp32: ``weight_scale_inv`` and the per-token-group activation scales)
SCALE_BYTES = 4.0


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
    # block scaling: one fp32 scale per weight block (rows of n, columns of k) and per ``act_group``
    # activation elements of a token along k (None: per-tensor or per-channel scales, not counted)
    weight_block: tuple[int, int] | None = None
    act_group: int | None = None

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
        if self.weight_block is not None:
            wb = self.weight_block
            if (not isinstance(wb, (tuple, list)) or len(wb) != 2
                    or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in wb)):
                problems.append(Problem(f"must be two positive integers [n, k], got {wb!r}", path="quant.weight_block"))
            else:
                object.__setattr__(self, "weight_block", (int(wb[0]), int(wb[1])))
        if self.act_group is not None and (isinstance(self.act_group, bool) or not isinstance(self.act_group, int)
                                           or self.act_group < 1):
            problems.append(Problem(f"must be a positive integer, got {self.act_group!r}", path="quant.act_group"))
        if problems:
            raise SpecError(problems)

    @classmethod
    def named(cls, name: str) -> Quantization:
        """One of :data:`SCHEMES` (SpecError listing the known names otherwise)."""
        key = str(name).strip().lower()
        if key not in SCHEMES:
            raise SpecError([Problem(f"unknown quantization {name!r}; known: {', '.join(SCHEMES)}", path="quant")])
        w, a, kv, st, g = SCHEMES[key]
        wb, ag = BLOCK_SCHEMES.get(key, (None, None))
        return cls(w, a, kv, st, g, scheme=key, weight_block=wb, act_group=ag)

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
        blocks = (self.weight_block, self.act_group)
        for n, t in SCHEMES.items():
            if (t == (self.weight, self.activation, self.kv_cache, self.storage, self.group_size)
                    and BLOCK_SCHEMES.get(n, (None, None)) == blocks):
                return n
        name = f"{self.weight}w/{self.activation}a/{self.kv_cache}kv"
        if self.weight_block:
            name += f"/block{self.weight_block[0]}x{self.weight_block[1]}"
        return name

    @property
    def weight_bytes(self) -> float:
        """Bytes per quantized weight element, group (or block) scales included."""
        if self.weight_block:
            return get_dtype(self.weight).bytes + SCALE_BYTES / (self.weight_block[0] * self.weight_block[1])
        return get_dtype(self.weight).bytes_per_element(self.group_size)

    @property
    def block_scaled(self) -> bool:
        """Block-scaled W8A8: the activations are quantized per token group before each GEMM."""
        return bool(self.weight_block and self.act_group)

    def summary(self) -> dict:
        """A JSON-ready description: the scheme name and the weight block (None without blocks)."""
        return {"scheme": self.name, "weight_block": list(self.weight_block) if self.weight_block else None}

    def for_checkpoint(self, checkpoint: Quantization | None) -> Quantization:
        """This scheme run on a checkpoint stored as ``checkpoint`` (``ModelSpec.checkpoint_quant``, read
        from its ``quantization_config``): the ``fp8`` scheme (fp8 weights and activations, no block scales
        of its own) takes the checkpoint's block layout, as vLLM's ``--quantization fp8`` does on a
        block-FP8 checkpoint (``Fp8Config.weight_block_size``); the KV cache and storage stay as given.
        Every other scheme, and a checkpoint without blocks, is returned unchanged."""
        if (checkpoint is None or not checkpoint.weight_block or self.weight_block
                or self.weight != "fp8" or self.activation != "fp8" or self.weight_only):
            return self
        import dataclasses

        q = dataclasses.replace(self, weight_block=checkpoint.weight_block, act_group=checkpoint.act_group,
                                scheme=None)
        return dataclasses.replace(q, scheme="fp8-block") if q.name == "fp8-block" else q

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


def from_hf_config(qc, where: str = "quantization_config") -> tuple[Quantization | None, list[Problem]]:
    """A Hugging Face ``quantization_config`` -> (the checkpoint's Quantization or None, problems).

    Read: ``quant_method: fp8`` (weights and activations in fp8): with ``weight_block_size: [n, k]`` the
    block-scaled layout (``act_group`` k, the per-token-group quantization of dynamic activations: vLLM's
    ``Fp8Config`` refuses static activation scales with blocks, so does this); without it per-tensor fp8.
    Any other ``quant_method`` (gptq, awq, compressed-tensors, fbgemm_fp8, ...) is not read: None, and the
    scheme is what the caller chooses. Problems name the field and what was expected."""
    if qc is None:
        return None, []
    if not isinstance(qc, dict):
        return None, [Problem(f"expected an object, got {type(qc).__name__}", path=where)]
    if str(qc.get("quant_method", "")).lower() != "fp8":
        return None, []
    problems = []
    act = str(qc.get("activation_scheme", "dynamic")).lower()
    if act not in ("dynamic", "static"):
        problems.append(Problem(f"expected 'dynamic' or 'static', got {qc.get('activation_scheme')!r}",
                                path=f"{where}.activation_scheme"))
    wb = qc.get("weight_block_size")
    if wb is None:
        return (None if problems else Quantization.named("fp8")), problems
    if (not isinstance(wb, list) or len(wb) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65536 for v in wb)):
        problems.append(Problem(f"expected two positive integers [n, k], got {wb!r}", path=f"{where}.weight_block_size"))
    elif act == "static":
        problems.append(Problem("block-wise fp8 needs dynamic activation scales (vLLM's Fp8Config refuses "
                                "'static' with weight_block_size)", path=f"{where}.activation_scheme"))
    if problems:
        return None, problems
    q = Quantization("fp8", "fp8", "bf16", "bf16", None, weight_block=(wb[0], wb[1]), act_group=wb[1])
    return (Quantization.named("fp8-block") if q.name == "fp8-block" else q), problems


def read_checkpoint_quant(reader) -> Quantization | None:
    """:func:`from_hf_config` on a model config's reader (``workloads.model._Reader``): its problems join the
    reader's, each with the file and the line of its field."""
    q, problems = from_hf_config(reader.cfg.get("quantization_config"))
    reader.problems += [Problem(p.message, reader.file, *reader.where(p.path.rsplit(".", 1)[-1]), p.path)
                        for p in problems]
    return q


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
