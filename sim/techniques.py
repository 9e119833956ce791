"""Software techniques priced by the shared cost model: memory tiers (offload), KV-cache layout and
the batch it allows, and a hook that applies speculative decoding and offload to a step coster.

The workload side (speculative-decoding configs, draft models, KV eviction) is in
``workloads/techniques.py``; 2:4 sparsity is ``workloads.quant.Sparsity``; kernel options
(fusion, CUDA graphs, attention kernels, per-tile dequantization) are ``sim.cost.CostOptions``.
``sim.predict.predict`` takes all of them (``speculative=``, ``sparsity=``, ``offload=``,
``kv_window=``); ``sim.optimize`` ranks them. Formulas (docs/optimize.md):

- **Offload** (``Offload``): the bytes of a step's footprint that do not fit in the chip's main
  memory live on a far tier (host DRAM over the chip's ``host_link``, or CXL memory with a stated
  bandwidth): the KV cache first (when allowed), then weights (when allowed). Every step streams
  the far share of what it touches over the link: all far weight bytes (every step reads every
  weight), and the far fraction of the KV bytes the step reads and writes. A step takes
  ``step_s + stages x far_bytes / link_bandwidth`` (no overlap with compute: conservative;
  ``overlap=True`` takes the max instead).
- **KV layout** (``kv_tokens_per_request``): a *paged* cache (vLLM) holds each request's tokens
  rounded up to whole blocks (at most one partly used block per request); a *contiguous* cache
  reserves ``max_context`` tokens per request up front (the model's ``max_position_embeddings``
  unless stated), because the output length is not known when the request is admitted; *exact*
  is the static predictor's accounting (the tokens the request ends with).
- **Max batch that fits** (``max_batch_that_fits``): the largest number of requests whose
  weights, KV cache (per the layout), draft model (weights and KV cache) and the larger of the
  prefill and decode workspaces fit in main memory (plus the far tier with offload).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.chip import Chip
from hwmodels.errors import InfeasibleError, Problem, SpecError
from hwmodels.format import fmt_bytes
from sim.config import PredictConfig, make_config
from sim.resolve import make_quantization, resolve_system
from sim.step import StepCost, StepCoster
from workloads import Batch, Parallelism, footprint, load_model
from workloads.parallel import check_parallelism
from workloads.quant import Quantization
from workloads.techniques import with_kv_window

__all__ = ["HOST_CAPACITY_PER_CHIP", "KV_LAYOUTS", "MemoryNeed", "Offload", "OffloadPlan", "TechniqueStepCoster",
           "apply_to_step_coster", "chip_capacity_bytes", "draft_parallel", "kv_tokens_per_request",
           "max_batch_that_fits", "memory_need", "plan_offload"]

KV_LAYOUTS = ("exact", "paged", "contiguous")

#: Default far-tier capacity per chip: an ASSUMPTION (a DGX/HGX H100 node has 2 TB of host DRAM for 8 GPUs).
HOST_CAPACITY_PER_CHIP = 256e9


def chip_capacity_bytes(chip: Chip) -> float:
    """Bytes for weights, KV cache and workspace on one chip (as ``sim.predict`` counts them): the
    main memory, or every chip-level SRAM/DRAM level on SRAM-only chips."""
    return chip.capacity_for_weights()


# ---------------------------------------------------------------------------------------------
# memory tiers

@dataclass(frozen=True)
class Offload:
    """Let the KV cache and/or weights that do not fit in main memory live on a far tier.

    ``bandwidth``: the link's bytes/s per direction (default: the chip's ``host_link``);
    ``capacity``: far-tier bytes per chip (default :data:`HOST_CAPACITY_PER_CHIP`); ``tier``: a
    label ('host', 'cxl'); ``overlap``: transfers overlap the step (max) instead of adding.
    """

    kv: bool = True
    weights: bool = False
    bandwidth: float | None = None
    capacity: float | None = None
    tier: str = "host"
    overlap: bool = False

    def __post_init__(self):
        problems = []
        if not (self.kv or self.weights):
            problems.append(Problem("offload needs kv or weights (or both)", path="offload"))
        for f in ("bandwidth", "capacity"):
            v = getattr(self, f)
            if v is not None and (not isinstance(v, (int, float)) or v <= 0):
                problems.append(Problem(f"must be a positive number, got {v!r}", path=f"offload.{f}"))
        if problems:
            raise SpecError(problems)

    def link_bandwidth(self, chip: Chip) -> float:
        if self.bandwidth is not None:
            return float(self.bandwidth)
        if chip.host_link is None or not chip.host_link.bandwidth_bytes_per_s:
            raise InfeasibleError(f"{chip.name} declares no host_link; give the offload tier's bandwidth",
                                  {"chip": chip.name})
        return chip.host_link.bandwidth_bytes_per_s

    @property
    def far_capacity(self) -> float:
        return HOST_CAPACITY_PER_CHIP if self.capacity is None else float(self.capacity)

    @property
    def name(self) -> str:
        what = "+".join(w for w, on in (("KV", self.kv), ("weights", self.weights)) if on)
        return f"{what} offload to {self.tier}"


@dataclass(frozen=True)
class OffloadPlan:
    """Where the bytes that do not fit went (per chip) and the link they stream over."""

    tier: str
    bandwidth: float
    weights_bytes: float = 0.0  # weight bytes on the far tier
    kv_bytes: float = 0.0  # KV-cache bytes on the far tier (at the largest context)
    kv_fraction: float = 0.0  # share of every request's KV cache on the far tier
    overlap: bool = False

    @property
    def active(self) -> bool:
        return self.weights_bytes > 0 or self.kv_bytes > 0

    def step_bytes(self, kv_step_bytes: float) -> float:
        """Bytes one chip streams over the link in a step that moves ``kv_step_bytes`` of KV cache."""
        return self.weights_bytes + self.kv_fraction * kv_step_bytes

    def seconds(self, kv_step_bytes: float, stages: int = 1) -> float:
        """Link time of one step: ``stages x (far weights + far KV share) / bandwidth``."""
        return stages * self.step_bytes(kv_step_bytes) / self.bandwidth

    def apply(self, step_s: float, kv_step_bytes: float, stages: int = 1) -> float:
        extra = self.seconds(kv_step_bytes, stages)
        return max(step_s, extra) if self.overlap else step_s + extra


def plan_offload(weights: float, kv: float, workspace: float, capacity: float, offload: Offload | None,
                 chip: Chip, fixed: float = 0.0) -> OffloadPlan | None:
    """Place ``weights + kv + workspace + fixed`` bytes (``fixed``: e.g. a draft model, kept in main
    memory) on one chip of ``capacity``: the overflow goes to the far tier, KV cache first (when
    ``offload.kv``), then weights (when ``offload.weights``). None when no offload is given and it
    fits; InfeasibleError when it cannot fit either way."""
    over = weights + kv + workspace + fixed - capacity
    if offload is None:
        if over > 0:
            raise InfeasibleError(f"needs {fmt_bytes(capacity + over)} per chip; {chip.name} holds "
                                  f"{fmt_bytes(capacity)}", {"needed_bytes": capacity + over, "capacity_bytes": capacity})
        return None
    bw = offload.link_bandwidth(chip)
    if over <= 0:
        return OffloadPlan(offload.tier, bw, overlap=offload.overlap)
    x_kv = min(over, kv) if offload.kv else 0.0
    x_w = min(over - x_kv, weights) if offload.weights else 0.0
    left = over - x_kv - x_w
    if left > 1e-6 * max(capacity, 1.0):
        raise InfeasibleError(f"{fmt_bytes(left)} more than {chip.name}'s {fmt_bytes(capacity)} even with "
                              f"{offload.name} (workspace and non-offloadable bytes must stay on chip)",
                              {"overflow_bytes": over, "capacity_bytes": capacity})
    if x_kv + x_w > offload.far_capacity:
        raise InfeasibleError(f"{offload.name} needs {fmt_bytes(x_kv + x_w)} per chip on the far tier; it holds "
                              f"{fmt_bytes(offload.far_capacity)}", {"far_bytes": x_kv + x_w,
                                                                       "far_capacity_bytes": offload.far_capacity})
    return OffloadPlan(offload.tier, bw, weights_bytes=x_w, kv_bytes=x_kv, kv_fraction=x_kv / kv if kv > 0 else 0.0,
                       overlap=offload.overlap)


# ---------------------------------------------------------------------------------------------
# KV layout, memory need, the batch that fits

def blocks_for(tokens: int, block_size: int) -> int:
    """Blocks of ``block_size`` tokens that hold ``tokens`` tokens of KV: ceil(tokens / block_size)."""
    return -(-tokens // block_size)


def kv_tokens_per_request(input_len: int, output_len: int, kv_layout: str = "paged", block_size: int = 16,
                          max_context: int | None = None, spec_k: int = 0) -> int:
    """KV-cache tokens one request holds at its largest: exact ``L + O (+ k speculative slots)``;
    paged: that rounded up to whole blocks; contiguous: ``max_context`` reserved up front."""
    need = input_len + output_len + spec_k
    if kv_layout == "exact":
        return need
    if kv_layout == "paged":
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise SpecError([Problem(f"must be a positive integer, got {block_size!r}", path="block_size")])
        return blocks_for(need, block_size) * block_size
    if kv_layout == "contiguous":
        if max_context is None:
            raise SpecError([Problem("a contiguous KV cache needs max_context", path="max_context")])
        if max_context < need:
            raise InfeasibleError(f"a request of {need} tokens exceeds the reserved context of {max_context}",
                                  {"tokens": need, "max_context": max_context})
        return int(max_context)
    raise SpecError([Problem(f"unknown KV layout {kv_layout!r}; known: {', '.join(KV_LAYOUTS)}", path="kv_layout")])


@dataclass(frozen=True)
class MemoryNeed:
    """Bytes per chip of one replica serving a batch (see :func:`memory_need`)."""

    weights: float
    kv: float
    workspace: float
    draft_weights: float = 0.0
    draft_kv: float = 0.0

    @property
    def draft(self) -> float:
        return self.draft_weights + self.draft_kv

    @property
    def total(self) -> float:
        return self.weights + self.kv + self.workspace + self.draft


def draft_parallel(draft, parallel):
    """The draft's split: the target's TP degree when the draft's heads allow it, else one chip."""
    cand = Parallelism(tp=parallel.tp)
    try:
        check_parallelism(draft, cand)
        return cand
    except (InfeasibleError, SpecError):
        return Parallelism()


def memory_need(spec, quant, parallel, batch: int, tokens_per_request: int, *, input_len: int | None = None,
                attention_kernel: str = "auto", sparsity=None, speculative=None) -> MemoryNeed:
    """Per-chip bytes of ``batch`` requests holding ``tokens_per_request`` KV tokens each: weights
    (``sparsity`` compressed), KV cache, workspace (the decode step's, and the prefill's of
    ``batch x input_len`` when ``input_len`` is given), and a draft model's weights and KV cache."""
    fp = footprint(spec, (batch, tokens_per_request), quant, parallel, attention_kernel=attention_kernel,
                   sparsity=sparsity)
    work = fp.activation_bytes
    if input_len is not None:
        work = max(work, footprint(spec, Batch.prefill(batch, input_len), quant, parallel,
                                   attention_kernel=attention_kernel).activation_bytes)
    dw = dkv = 0.0
    if speculative is not None and speculative.draft is not None:
        d = speculative.draft_spec()
        dq = Quantization.parse(speculative.draft_quant or quant)
        dfp = footprint(d, (batch, tokens_per_request), dq, draft_parallel(d, parallel))
        dw, dkv = dfp.weights_bytes, dfp.kv_cache_bytes
        work = max(work, dfp.activation_bytes)
    return MemoryNeed(fp.weights_bytes, fp.kv_cache_bytes, work, dw, dkv)


def max_batch_that_fits(model=None, hw=None, input_len: int | None = None, output_len: int | None = None, *,
                        kv_layout: str = "paged", block_size: int = 16, max_context: int | None = None,
                        limit: int = 1 << 16, config=None, **settings) -> int:
    """The most requests of ``input_len`` prompt and ``output_len`` output tokens one replica holds at
    once (0 if not even one): weights + KV cache (per ``kv_layout``: 'paged' wastes at most one
    ``block_size`` block per request, 'contiguous' reserves ``max_context`` tokens per request, default
    the model's ``max_position_embeddings``) + draft model + the larger of the prefill and decode
    workspaces must fit in main memory, or spill to the far tier with ``offload``.

    ``config`` (a ``sim.config.PredictConfig``) and ``settings`` (its fields by keyword: quant, tp,
    pp, speculative, sparsity, offload, kv_window, attention_kernel, overrides...) say what runs;
    its batch is what this function finds."""
    given = {k: v for k, v in (("model", model), ("hw", hw), ("input_len", input_len), ("output_len", output_len))
             if v is not None}
    cfg = make_config(PredictConfig, config, {**given, **settings}, "max_batch_that_fits()")
    input_len, output_len = cfg.input_len, cfg.output_len
    speculative, sparsity, offload, attention_kernel = cfg.speculative, cfg.sparsity, cfg.offload, cfg.attention_kernel
    spec = load_model(cfg.model)
    if cfg.kv_window:
        spec = with_kv_window(spec, cfg.kv_window)
    q = make_quantization(cfg.quant, weight_dtype=cfg.weight_dtype, act_dtype=cfg.act_dtype, kv_dtype=cfg.kv_dtype)
    par = Parallelism(tp=cfg.tp, pp=cfg.pp, ep=cfg.ep)
    system, _ = resolve_system(cfg.hw, par.chips, cfg.overrides)
    chip = system.chip
    cap = chip_capacity_bytes(chip)
    k = speculative.k if speculative is not None else 0
    mc = spec.max_position if max_context is None else max_context
    tokens = kv_tokens_per_request(input_len, output_len, kv_layout, block_size, mc, k)
    tokens = min(tokens, spec.max_position) if kv_layout == "paged" else tokens

    def fits(b: int) -> bool:
        try:
            need = memory_need(spec, q, par, b, tokens, input_len=input_len, attention_kernel=attention_kernel,
                               sparsity=sparsity, speculative=speculative)
            plan_offload(need.weights, need.kv, need.workspace, cap, offload, chip, fixed=need.draft)
            return True
        except InfeasibleError:
            return False

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    if hi > limit:
        return limit if fits(limit) else _bisect(fits, lo, limit)
    return _bisect(fits, lo, hi)


def _bisect(fits, lo: int, hi: int) -> int:
    """Largest b in [lo, hi) with fits(b), given fits(lo) and not fits(hi)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------------------------
# the hook for the serving simulator and sweeps

class TechniqueStepCoster:
    """A step coster (``sim.step.StepCoster``) with speculative decoding and/or offload applied.

    ``step(seqs)`` takes the serving simulator's batch as it is (decoding requests as
    ``(1, ctx)``) and returns the same ``StepCost``, where each decoding request is verified as
    ``(k + 1, ctx)`` and the draft model's ``k`` proposal steps (and its prefill of new prompts)
    plus the proposer's fixed round cost are added; with offload, the far tier's bytes streamed
    in the step are added. A decoding request advances by ``tokens_per_step`` tokens in
    expectation, or by ``sample_tokens(rng)`` for a stochastic draw.
    """

    def __init__(self, coster, *, speculative=None, offload_plan: OffloadPlan | None = None,
                 kv_bytes_per_token: float = 0.0):
        self.base = coster
        self.speculative = speculative
        self.offload_plan = offload_plan
        self.kv_bytes_per_token = kv_bytes_per_token  # per chip, all layers of its stage
        self.draft = None
        self.verify = None
        self.tokens_per_step = 1.0
        self.pp = getattr(coster.parallel, "pp", 1)
        if speculative is not None:
            self.tokens_per_step = speculative.tokens_per_step
            kernel = "paged" if coster.attention_kernel == "auto" else coster.attention_kernel
            self.verify = StepCoster(coster.spec, coster.system, coster.quant, coster.parallel, coster.options,
                                     attention_kernel=kernel)
            self.verify.cm.same_placement_as(coster.cm)  # same placement as the target's coster
            if speculative.draft is not None:
                d = speculative.draft_spec()
                dq = Quantization.parse(speculative.draft_quant or coster.quant)
                self.draft = StepCoster(d, coster.system, dq, draft_parallel(d, coster.parallel), coster.options,
                                        attention_kernel=coster.attention_kernel)
                self.draft.cm.same_placement_as(coster.cm)

    def step(self, seqs):
        seqs = tuple(seqs)
        sp = self.speculative
        dec = [c for n, c in seqs if n == 1 and c > 0]
        if sp is None or not dec:
            sc = self.base.step(seqs)
            new = seqs
        else:
            k = sp.k
            new = tuple((k + 1, c) if (n == 1 and c > 0) else (n, c) for n, c in seqs)
            coster = self.verify if len(dec) == len(seqs) else self.base
            sc = coster.step(new)
            t, e, f, b = sc.time_s + sp.round_cost_s, sc.energy_j, sc.flops, sc.bytes_main
            if self.draft is not None:
                first = self.draft.step(seqs)  # the draft prefills new prompts and proposes token 1
                t, e, f, b = t + first.time_s, e + first.energy_j, f + first.flops, b + first.bytes_main
                for j in range(1, k):
                    d = self.draft.step(tuple((1, c + j) for c in dec))
                    t, e, f, b = t + d.time_s, e + d.energy_j, f + d.flops, b + d.bytes_main
            sc = StepCost(t, e, f, b)
        plan = self.offload_plan
        if plan is not None and plan.active:
            kv = self.kv_bytes_per_token * sum(n + c for n, c in new)
            t = plan.apply(sc.time_s, kv, self.pp)
            sc = StepCost(t, sc.energy_j, sc.flops, sc.bytes_main)
        return sc

    def sample_tokens(self, rng) -> int:
        """Tokens one decoding request gains in one step, drawn with the acceptance rates (numpy
        Generator or random.Random): accepted proposals until the first rejection, plus one."""
        sp = self.speculative
        if sp is None:
            return 1
        rates = sp.acceptance if isinstance(sp.acceptance, tuple) else (sp.acceptance,) * sp.k
        n = 1
        for a in rates:
            if rng.random() >= a:
                break
            n += 1
        return n


def apply_to_step_coster(coster, *, speculative=None, offload: Offload | None = None,
                         max_batch_tokens: int | None = None) -> TechniqueStepCoster:
    """Wrap a ``sim.step.StepCoster`` with speculative decoding (``workloads.techniques.SpecConfig``)
    and/or offload. With ``offload``, ``max_batch_tokens`` (KV tokens the replica holds at its peak)
    sizes the far tier's share of the KV cache: the bytes beyond main memory after the weights."""
    plan = None
    per_token = 0.0
    if offload is not None:
        chip = coster.system.chip
        fp = footprint(coster.spec, (1, 2), coster.quant, coster.parallel)
        per_token = fp.kv_bytes_per_token
        kv = per_token * (max_batch_tokens or 0)
        plan = plan_offload(fp.weights_bytes, kv, fp.activation_bytes, chip_capacity_bytes(chip), offload, chip)
    return TechniqueStepCoster(coster, speculative=speculative, offload_plan=plan, kv_bytes_per_token=per_token)
