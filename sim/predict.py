"""Static predictions for a whole request batch: TTFT, TPOT, end-to-end, throughput, cost, energy.

For B requests of L prompt tokens and O output tokens (formulas in docs/cost-model.md):

- TTFT = time of the prefill step (B x L tokens) through all pipeline stages;
- TPOT = mean decode step over the O-1 decode steps; the step that emits output token i+1 has
  L+i-1 tokens cached before it and adds one (contexts L .. L+O-2 before the step). Decode steps are priced at up to ``samples`` contexts spread evenly
  over that range and linearly interpolated in between (step time is piecewise linear in the
  context: attention reads grow linearly, everything else is constant), so a prediction with
  thousands of output tokens prices a few dozen graphs, not thousands;
- e2e = TTFT + (O-1) x TPOT; output throughput = B x O / e2e, per chip = that / chips;
- USD per million output tokens = system USD/s x e2e / (B x O) x 1e6;
- energy per output token = (prefill + decode energy of all chips) / (B x O);
- MFU = model FLOPs / (e2e x chips x matrix peak of the compute dtype);
  MBU = decode bytes at the weights/KV level / (decode time x chips x its bandwidth).

Techniques, all off by default (formulas in docs/optimize.md): speculative decoding
(``speculative=SpecConfig``: a decode round is the draft's k proposal steps, a fixed proposer
cost and one target step verifying k+1 tokens per request, and yields E tokens, so decode time =
sum of round times over the output tokens / E), 2:4 sparsity (``sparsity=Sparsity``), offload
to a far memory tier (``offload=Offload``: bytes that do not fit stream over the link every step)
and KV-cache eviction (``kv_window=W``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from hwmodels.errors import InfeasibleError, SpecError
from hwmodels.format import fmt_bandwidth, fmt_bytes
from hwmodels.stack import load_stack
from sim import costmemo
from sim.config import PredictConfig, make_config
from sim.cost import CostModel
from sim.estimate import GraphCost, estimate, stage_time, step_kernels, totals
from sim.metrics import RequestTotals, request_metrics
from sim.resolve import make_quantization, resolve_system, system_usd_per_s
from sim.techniques import draft_parallel, plan_offload
from workloads import Batch, Parallelism, Quantization, build_graph, footprint, load_model
from workloads.graph import SeqArrays
from workloads.model import context_warning
from workloads.stepops import attention_ops
from workloads.techniques import with_kv_window

if TYPE_CHECKING:  # pandas is imported where a frame is built: the CLI starts without it
    import pandas as pd

__all__ = ["Prediction", "make_quantization", "predict", "predict_config", "resolve_system", "step_kernels",
           "system_usd_per_s"]


@dataclass(frozen=True)
class Prediction:
    model: str
    hardware: str
    system: str
    chips: int
    batch: int
    input_len: int
    output_len: int
    tp: int
    pp: int
    ep: int
    quant: str
    ttft_s: float
    tpot_s: float
    e2e_s: float
    output_throughput_tok_s: float
    per_chip_output_throughput_tok_s: float
    fits: bool
    weights_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    memory_capacity_bytes: float
    usd_per_hour: float | None
    usd_per_mtok_output: float | None
    usd_per_mtok_input: float | None
    joules_per_output_token: float
    mfu: float
    mbu: float
    bound_breakdown: dict
    notes: tuple = ()
    reason: str | None = None
    # techniques (defaults: none applied)
    tokens_per_step: float = 1.0  # expected output tokens per target decode step (speculative decoding)
    speculative: str | None = None
    sparsity: str | None = None
    kv_window: int | None = None
    offload_bytes: float = 0.0  # bytes per chip on the far tier (offload)
    draft_bytes: float = 0.0  # draft model weights + KV cache per chip
    stack: str = "ideal"  # the serving-stack profile the prediction used (hwmodels/catalog/stacks)
    warnings: tuple = ()  # what-if conditions the user should know about (also printed to stderr)
    runtime_prefill_s: float = 0.0  # the stack's time outside kernels in the prefill step
    runtime_decode_s: float = 0.0  # the same for the decode step at the mean context
    #: where the tensors live per chip: {'weights' | 'kv_cache' | 'activations' [| 'draft model']:
    #: {memory level (or 'host (offload)'): bytes}} (CostModel.placement, the rule the traffic is priced by)
    placement: dict = field(default_factory=dict)
    # prediction intervals (docs/uncertainty.md): {metric: [lo, hi]} at interval_level, when asked for
    interval_level: float | None = None
    intervals: dict | None = None
    prefill: GraphCost | None = field(default=None, repr=False)
    decode: GraphCost | None = field(default=None, repr=False)  # the step at the mean context
    price_source: str | None = None  # which price usd_per_hour used, from where (System.price_note)
    price_date: str | None = None  # when that price was read or published
    calibration: str | None = None  # the chip's efficiency data: measured | published | class-default | none

    def to_dict(self) -> dict:
        keys = [k for k in self.__dataclass_fields__ if k not in ("prefill", "decode")]
        d = {k: getattr(self, k) for k in keys}
        d["notes"] = list(self.notes)
        d["warnings"] = list(self.warnings)
        return d

    def to_frame(self) -> pd.DataFrame:
        """Per-op breakdown of the prefill step and the mean decode step."""
        import pandas as pd

        frames = []
        for phase, gc in (("prefill", self.prefill), ("decode", self.decode)):
            if gc is not None:
                f = gc.to_frame()
                rt = self.runtime_prefill_s if phase == "prefill" else self.runtime_decode_s
                if rt > 0:  # the serving stack's runtime outside kernels, as one row (per stage, like ops)
                    r = rt / max(gc.pp, 1)
                    f = pd.concat([f, pd.DataFrame([{"name": "serving runtime", "kind": "runtime", "layer": "step",
                                                     "count": 1, "time_s": r, "total_time_s": r, "compute_s": 0.0,
                                                     "memory_s": 0.0, "comm_s": 0.0, "overhead_s": r,
                                                     "bound": "overhead", "detail": f"stack {self.stack}"}])],
                                  ignore_index=True).fillna({"flops": 0.0, "total_flops": 0.0, "bytes_main": 0.0,
                                                             "total_bytes_main": 0.0, "energy_j": 0.0})
                f.insert(0, "phase", phase)
                frames.append(f)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def by_kind(self) -> pd.DataFrame:
        """Seconds per op kind for prefill and one decode step (stacked-bar data)."""

        df = self.to_frame()
        if df.empty:
            return df
        return df.pivot_table(index="kind", columns="phase", values="total_time_s", aggfunc="sum").fillna(0.0)


def _sample_contexts(lo: int, hi: int, samples: int) -> np.ndarray:
    if hi - lo + 1 <= samples:
        return np.arange(lo, hi + 1)
    c = np.round(np.linspace(lo, hi, samples)).astype(int)  # non-decreasing: drop repeats (np.unique
    return c[np.concatenate(([True], c[1:] != c[:-1]))]  # would import numpy.ma, 10+ ms of CLI start-up)


def decode_contexts(input_len: int, steps: int, samples: int) -> tuple:
    """(contexts priced, every step's context): the decode step that emits output token i+1 has
    L + i - 1 tokens cached before it, i = 1 .. O-1; up to ``samples`` of them are priced and the
    rest interpolated."""
    return _sample_contexts(input_len, input_len + steps - 1, samples), np.arange(input_len, input_len + steps)


def predict(model=None, hw=None, batch: int | None = None, input_len: int | None = None,
            output_len: int | None = None, *, config: PredictConfig | None = None, **settings) -> Prediction:
    """Predict a static batch: B requests of ``input_len`` prompt and ``output_len`` output tokens.

    ``model``: a catalog name, a config.json path or a ModelSpec; ``hw``: a chip or system name,
    path or object. ``config``: a :class:`sim.config.PredictConfig`; ``settings``: any of its
    fields by keyword (tp, pp, ep, quant, weight_dtype, act_dtype, kv_dtype, overrides, options,
    attention_kernel, samples, check_memory and the techniques), replacing the config's; an
    unknown name raises UnknownSettingError (a SpecError and a TypeError) with a did-you-mean.
    Raises SpecError for bad input and InfeasibleError when it cannot run (unless
    ``check_memory=False``, then fits=False and the reason are returned).

    Techniques (default off): ``speculative`` (``workloads.techniques.SpecConfig``), ``sparsity``
    (``workloads.quant.Sparsity``), ``offload`` (``sim.techniques.Offload``: with it, what does not
    fit goes to the far tier instead of raising), ``kv_window`` (keep the last W tokens of KV).

    ``stack``: a serving-stack profile (catalog name, YAML path or ``hwmodels.stack.Stack``; default
    ``hwmodels.stack.DEFAULT_STACK``): every step's wall time is ``Stack.step_time`` of its kernel
    time (runtime cost outside the kernels; ``ideal`` leaves it unchanged). A request longer than the
    model's ``max_position_embeddings`` is predicted with a warning (``warnings``), not refused.
    """
    given = {k: v for k, v in (("model", model), ("hw", hw), ("batch", batch), ("input_len", input_len),
                               ("output_len", output_len)) if v is not None}
    return predict_config(make_config(PredictConfig, config, {**given, **settings}, "predict()"))


@dataclass
class _Setup:
    """The model, quantization, parallelism and system a prediction runs (resolved from its config)."""

    spec: object
    quant: object
    parallel: object
    batch: int  # requests per data-parallel attention replica
    system: object
    notes: list
    stack: object = None  # the serving-stack profile (hwmodels.stack.Stack)
    warnings: list = field(default_factory=list)

    @property
    def chip(self):
        return self.system.chip


@dataclass(frozen=True)
class _Memory:
    """Bytes per chip, whether they fit, and where the overflow went (offload)."""

    fp: object  # the target's Footprint
    capacity: float
    fits: bool
    reason: str | None
    plan: object  # OffloadPlan or None
    resident: float  # bytes resident on the chip during the run
    draft_bytes: float = 0.0
    draft: object = None  # the draft ModelSpec, its Quantization and Parallelism
    draft_quant: object = None
    draft_parallel: object = None

    @property
    def link(self) -> bool:
        """Bytes stream over the far-tier link every step."""
        return self.plan is not None and self.plan.active


def predict_config(cfg: PredictConfig) -> Prediction:
    """The prediction ``cfg`` describes (see :func:`predict`): resolve, check memory, price the
    prefill step and the decode steps, then the totals."""
    problems = cfg.problems()
    if problems:
        raise SpecError(problems)
    su = _setup(cfg)
    cfg = replace(cfg, options=su.stack.cost_options(cfg.options))  # the stack's kernels (softmax)
    mem = _memory(cfg, su)
    cm = CostModel(su.system, cfg.options, resident_bytes=mem.resident, tp=cfg.tp)
    dcm = None
    if mem.draft is not None:
        dcm = CostModel(su.system, cfg.options, resident_bytes=mem.resident, tp=mem.draft_parallel.tp)
    pre = _prefill(cfg, su, mem, cm, dcm)
    dec = _decode(cfg, su, mem, cm, dcm)
    pred = _assemble(cfg, su, mem, cm, pre, dec)
    if cfg.interval_level is None:
        return pred
    import dataclasses

    from sim.uncertainty import prediction_intervals

    return dataclasses.replace(pred, interval_level=float(cfg.interval_level),
                   intervals=prediction_intervals(pred, su.system, cfg.interval_level, options=cfg.options))


def _setup(cfg: PredictConfig) -> _Setup:
    spec = load_model(cfg.model) if not hasattr(cfg.model, "layers") else cfg.model
    warnings = list(spec.warnings)  # what reading its config.json priced by a rule (workloads.model)
    if (w := context_warning(spec, cfg.input_len + cfg.output_len)) is not None:
        warnings.append(w)
    if cfg.kv_window is not None:
        spec = with_kv_window(spec, cfg.kv_window)
    q0 = make_quantization(cfg.quant, weight_dtype=cfg.weight_dtype, act_dtype=cfg.act_dtype, kv_dtype=cfg.kv_dtype)
    q = q0.for_checkpoint(spec.checkpoint_quant)  # fp8 on a block-FP8 checkpoint runs its blocks
    # EP ranks are the tp x dp chips: ep wider than tp means ep/tp data-parallel attention replicas,
    # each serving an equal share of the batch (the one rule serve and sweeps use too; said in a note)
    par = Parallelism.from_degrees(cfg.tp, cfg.pp, cfg.ep)
    system, notes = resolve_system(cfg.hw, par.chips, cfg.overrides)
    if q is not q0:
        notes = [*notes, f"{q0.name} on {spec.name}: {q.name} (weight blocks {q.weight_block[0]}x{q.weight_block[1]}, "
                         f"activations quantized per {q.act_group}-element token group), as its quantization_config "
                         "stores it"]
    if par.describe_dp():
        notes.append(par.describe_dp())
    return _Setup(spec, q, par, -(-cfg.batch // par.dp), system, notes, load_stack(cfg.stack), warnings)


def fit_hints(spec, seqs, q, par, capacity: float, fixed_bytes: float = 0.0, sparsity=None,
              offload_given: bool = False) -> str:
    """What would fit when ``spec`` does not fit ``capacity`` bytes per chip: the smallest larger tensor
    parallelism, a smaller weight format, offload (each checked with the same footprint). '' if none."""
    from dataclasses import replace

    from hwmodels.dtype import get_dtype
    from workloads import Quantization, footprint

    def needed(q2, par2):
        try:
            return footprint(spec, seqs, q2, par2, sparsity=sparsity).total_bytes + fixed_bytes / (par2.tp / par.tp)
        except (SpecError, InfeasibleError):  # e.g. heads not divisible by this tp
            return float("inf")

    hints = []
    for tp2 in (2, 4, 8, 16, 32, 64):
        if tp2 > par.tp and (n := needed(q, replace(par, tp=tp2))) <= capacity:
            hints.append(f"--tp {tp2} ({fmt_bytes(n)} per chip, {tp2 * par.pp * par.dp} chips)")
            break
    for scheme in ("fp8", "w4a16"):
        q2 = Quantization.parse(scheme)
        if get_dtype(q2.weight).bits < get_dtype(q.weight).bits and (n := needed(q2, par)) <= capacity:
            native = scheme == "fp8" and spec.checkpoint_quant is not None  # fp8 runs the checkpoint's own format
            hints.append(f"--quant {scheme} ({fmt_bytes(n)} per chip; "
                         + ("the checkpoint's own format)" if native else "lossy)"))
            break
    if not offload_given:
        hints.append("--offload kv|weights|both (what does not fit streams over the host link every step)")
    return ("; it would fit with " + ", or ".join(hints[:-1]) + (", or " if len(hints) > 1 else "") + hints[-1]) \
        if hints else ""


def _memory(cfg: PredictConfig, su: _Setup) -> _Memory:
    """Footprint per chip (target, draft), the capacity, and the offload plan for what does not fit."""
    chip = su.chip
    sp = cfg.speculative
    k = sp.k if sp is not None else 0
    tokens = cfg.input_len + cfg.output_len + k
    fp = footprint(su.spec, (su.batch, tokens), su.quant, su.parallel, sparsity=cfg.sparsity)
    draft = dq = dpar = None
    draft_bytes = 0.0
    if sp is not None and sp.draft is not None:
        draft = sp.draft_spec()
        dq = Quantization.parse(sp.draft_quant or su.quant)
        dpar = draft_parallel(draft, su.parallel)
        dfp = footprint(draft, (su.batch, tokens), dq, dpar)
        draft_bytes = dfp.weights_bytes + dfp.kv_cache_bytes
    needed = fp.total_bytes + draft_bytes
    capacity = chip.capacity_for_weights()
    fits = needed <= capacity
    reason = None
    plan = None
    if not fits and cfg.offload is not None:
        off = cfg.offload
        plan = plan_offload(fp.weights_bytes, fp.kv_cache_bytes, fp.activation_bytes, capacity, off, chip,
                            fixed=draft_bytes)
        fits = True
        su.notes.append(f"{off.name}: {fmt_bytes(plan.weights_bytes)} of weights and {fmt_bytes(plan.kv_bytes)} "
                        f"of KV cache per chip stream over {fmt_bandwidth(plan.bandwidth)} every step")
    if not fits:
        reason = (f"{su.spec.name} needs {fmt_bytes(needed)} per chip (weights {fmt_bytes(fp.weights_bytes)}, "
                  f"KV cache {fmt_bytes(fp.kv_cache_bytes)}, activations {fmt_bytes(fp.activation_bytes)}"
                  + (f", draft model {fmt_bytes(draft_bytes)}" if draft_bytes else "") + ") at "
                  f"tp={cfg.tp} pp={cfg.pp} ep={cfg.ep}; {chip.name} {chip.main_memory.name} holds "
                  f"{fmt_bytes(capacity)}")
        reason += fit_hints(su.spec, (su.batch, tokens), su.quant, su.parallel, capacity, draft_bytes, cfg.sparsity,
                            offload_given=cfg.offload is not None)
        if cfg.check_memory:
            raise InfeasibleError(reason, {"needed_bytes": needed, "capacity_bytes": capacity,
                                           "weights_bytes": fp.weights_bytes, "kv_cache_bytes": fp.kv_cache_bytes})
    resident = fp.weights_bytes + fp.kv_cache_bytes
    if draft_bytes:
        resident += draft_bytes
    if plan is not None:
        resident -= plan.weights_bytes + plan.kv_bytes
    return _Memory(fp, capacity, fits, reason, plan, resident, draft_bytes, draft, dq, dpar)


def _prefill(cfg: PredictConfig, su: _Setup, mem: _Memory, cm, dcm) -> dict:
    """The prefill step (B x L tokens, plus the draft's prefill): TTFT, busy time, energy, FLOPs."""
    opts = cfg.options
    pre_graph = build_graph(su.spec, Batch.prefill(su.batch, cfg.input_len), quant=su.quant, parallel=su.parallel,
                            attention_kernel=cfg.attention_kernel, fused=opts.fused, sparsity=cfg.sparsity)
    prefill = estimate(pre_graph, su.system, opts, model=cm)
    ttft = su.stack.step_time(prefill.time_s, step_kernels(prefill), su.batch, decode=False)
    runtime = ttft - prefill.time_s if not su.stack.is_ideal else 0.0
    busy, energy, flops = prefill.time_s, prefill.energy_j, prefill.flops
    if mem.draft is not None:
        dpre = estimate(build_graph(mem.draft, Batch.prefill(su.batch, cfg.input_len), quant=mem.draft_quant,
                                    parallel=mem.draft_parallel, attention_kernel=cfg.attention_kernel,
                                    fused=opts.fused), su.system, opts, model=dcm)
        ttft += dpre.time_s
        busy += dpre.time_s
        energy += dpre.energy_j
        flops += dpre.flops
    if mem.link:
        ttft = mem.plan.apply(ttft, pre_graph.kv_bytes(), cfg.pp)
    return {"cost": prefill, "ttft": ttft, "busy": busy, "energy": energy, "flops": flops, "runtime": runtime}


def _decode_round(cfg: PredictConfig, su: _Setup, mem: _Memory, cm, dcm, c: int):
    """One decode step (or speculative round) at context ``c``: (time, energy, bytes, FLOPs, its
    GraphCost, its graph)."""
    opts, sp = cfg.options, cfg.speculative
    if sp is None:
        g = build_graph(su.spec, Batch.decode(su.batch, c), quant=su.quant, parallel=su.parallel,
                        attention_kernel=cfg.attention_kernel, fused=opts.fused, sparsity=cfg.sparsity)
        gc = estimate(g, su.system, opts, model=cm)
        return gc.time_s, gc.energy_j, gc.bytes_main, gc.flops, gc, g
    # one round: the draft's k proposal steps, the proposer's fixed cost, one target step
    # verifying k + 1 tokens per request (a multi-query decode kernel under 'auto')
    k = sp.k
    verify_kernel = "paged" if cfg.attention_kernel == "auto" else cfg.attention_kernel
    g = build_graph(su.spec, Batch(((k + 1, c),) * su.batch), quant=su.quant, parallel=su.parallel,
                    attention_kernel=verify_kernel, fused=opts.fused, sparsity=cfg.sparsity)
    gc = estimate(g, su.system, opts, model=cm)
    t, e, b, f = gc.time_s + sp.round_cost_s, gc.energy_j, gc.bytes_main, gc.flops
    if mem.draft is not None:
        dg = build_graph(mem.draft, Batch.decode(su.batch, c + (k - 1) // 2), quant=mem.draft_quant,
                         parallel=mem.draft_parallel, attention_kernel=cfg.attention_kernel, fused=opts.fused)
        dgc = estimate(dg, su.system, opts, model=dcm)
        t, e, b, f = t + k * dgc.time_s, e + k * dgc.energy_j, b + k * dgc.bytes_main, f + k * dgc.flops
    return t, e, b, f, gc, g


def _decode_contexts_at_once(cfg: PredictConfig, su: _Setup, cm, ctxs, gc, g) -> tuple:
    """Decode steps (no speculation) at every context of ``ctxs`` at once: (time, energy, bytes, FLOPs,
    KV bytes) arrays over the contexts and the step's kernel launches; ``g`` is the graph of one of
    these steps and ``gc`` its GraphCost. In a static decode batch every op but the attention core sees the same tokens and
    requests at every context, so those ops are priced once (``gc``), and the attention ops of all
    contexts in one vectorized evaluation of the same builder code and cost formulas
    (``attention_ops`` over a ``SeqArrays``, ``CostModel.over_steps``): equal to pricing each
    context's graph (tests/unit/test_predict_fast.py)."""
    opts = cfg.options
    compute, comm, flops, bytes_main, energy = totals(gc.ops, skip_kind="attention")
    kv = sum(o.count * o.bytes_of("kv") for o in g.ops if o.kind != "attention")
    c2, m2, f2, b2, e2, kv2 = _attention_at_contexts(cfg, su, cm, ctxs)
    kv = kv + kv2
    t = stage_time(compute + c2, comm + m2, opts) * su.parallel.pp
    one = np.ones(len(ctxs))
    return t * one, (energy + e2) * one, (bytes_main + b2) * one, (flops + f2) * one, kv * one, step_kernels(gc)


def _attention_at_contexts(cfg: PredictConfig, su: _Setup, cm, ctxs) -> tuple:
    """(compute, comm, FLOPs, main bytes, energy, KV bytes) of the attention-core ops of one decode
    step at every context of ``ctxs`` (arrays over the contexts). Remembered in the cost model's
    shared memo table (sim/costmemo.py: the same hardware content, options and placement) under the
    ops' own inputs (model, quantization, parallelism, kernel, fusion, batch, contexts), so a
    repeated prediction does not rebuild and re-price them; ``cm`` without a shared table prices."""
    key = ("decode-attention", su.spec, su.quant, su.parallel, cfg.attention_kernel, cfg.options.fused,
           su.batch, tuple(int(c) for c in ctxs))
    table = cm._amemo if cm._shared else None
    try:
        hit = table.get(key) if table is not None else None
    except TypeError:  # an input that does not hash: price without the memo
        table = hit = None
    if hit is not None:
        return hit
    seqs = SeqArrays(np.ones((len(ctxs), su.batch), dtype=np.int64), np.repeat(np.asarray(ctxs)[:, None], su.batch, 1))
    ops = attention_ops(su.spec, seqs, su.quant, su.parallel, cfg.attention_kernel, cfg.options.fused)
    acm = cm.over_steps()
    out = totals([acm._price(o) for o in ops]) + (sum(o.count * o.bytes_of("kv") for o in ops),)
    if table is not None:
        table[key] = out
        costmemo.added()
    return out


def _decode(cfg: PredictConfig, su: _Setup, mem: _Memory, cm, dcm) -> dict:
    """The O-1 decode steps: priced at up to ``samples`` contexts, interpolated in between, summed."""
    L, steps = cfg.input_len, cfg.output_len - 1
    sp = cfg.speculative
    out = {"time": 0.0, "energy": 0.0, "bytes": 0.0, "flops": 0.0, "link": 0.0, "busy": 0.0, "runtime": 0.0,
           "mid": None, "tokens_per_step": sp.tokens_per_step if sp is not None else 1.0}
    if steps <= 0:
        return out
    ctxs, allc = decode_contexts(L, steps, cfg.samples)
    mid = next((i for i, c in enumerate(ctxs) if c >= L + (steps + 1) // 2), len(ctxs) - 1)
    if sp is None:
        *_, decode_mid, g = _decode_round(cfg, su, mem, cm, dcm, int(ctxs[mid]))
        busy, energies, bytes_, flops, kvb, kernels = _decode_contexts_at_once(cfg, su, cm, ctxs, decode_mid, g)
        times = su.stack.step_time(busy, kernels, su.batch, decode=True)  # the stack's runtime per step
        runtime = times - busy
        links = []
        if mem.link:
            linked = np.array([mem.plan.apply(float(t), float(b), cfg.pp) for t, b in zip(times, kvb)])
            links, times = linked - times, linked
    else:
        times, energies, bytes_, flops, links, busy, runtime = [], [], [], [], [], [], []
        decode_mid = None
        for i, c in enumerate(ctxs):
            t, e, b, f, gc, g = _decode_round(cfg, su, mem, cm, dcm, int(c))
            busy.append(t)
            t2 = su.stack.step_time(t, step_kernels(gc), su.batch, decode=True)  # the stack's runtime per step
            runtime.append(t2 - t)
            t = t2
            if mem.link:
                t2 = mem.plan.apply(t, g.kv_bytes(), cfg.pp)
                links.append(t2 - t)
                t = t2
            times.append(t)
            energies.append(e)
            bytes_.append(b)
            flops.append(f)
            if i == mid:
                decode_mid = gc
    tot = {"time": times, "energy": energies, "bytes": bytes_, "flops": flops, "busy": busy, "runtime": runtime}
    if mem.link:
        tot["link"] = links
    for key, vals in tot.items():
        out[key] = float(np.interp(allc, ctxs, vals).sum())
    if sp is not None:  # each round yields tokens_per_step tokens
        for key in ("time", "energy", "bytes", "flops", "link", "busy", "runtime"):
            out[key] /= out["tokens_per_step"]
    out["mid"] = decode_mid
    return out


def _assemble(cfg: PredictConfig, su: _Setup, mem: _Memory, cm, pre: dict, dec: dict) -> Prediction:
    """Totals: TTFT, TPOT, e2e, throughput, cost, energy, MFU/MBU and the bound breakdown."""
    chip, chips = su.chip, su.parallel.chips
    pp = cfg.pp
    decode_time = dec["time"]
    ttft = pre["ttft"]
    full_batch = cfg.batch
    usd_s = system_usd_per_s(su.system, chips)
    busy = pre["busy"] + dec["busy"]  # kernel time: the stack's runtime and link waits are idle time
    totals = RequestTotals(ttft=ttft, decode_time=decode_time, busy=busy, energy=pre["energy"] + dec["energy"],
                           flops=pre["flops"] + dec["flops"], decode_bytes=dec["bytes"])
    met = request_metrics(totals, batch=full_batch, input_len=cfg.input_len, output_len=cfg.output_len, chips=chips,
                          pp=pp, idle_w=chip.idle_w or 0.0, peak_flops=chip.peak_flops(su.quant.math_dtype),
                          home_bandwidth=cm.home.bandwidth_bytes_per_s, usd_per_s=usd_s)
    e2e = met["e2e_s"]
    # bound breakdown over the whole request, by time
    bb: dict = {}
    prefill, decode_mid, st = pre["cost"], dec["mid"], su.stack
    if not st.is_ideal:  # the stack's runtime outside kernels counts as overhead
        bb["overhead"] = (pre["runtime"] + dec["runtime"]) / e2e
    for gc, w in ((prefill, prefill.time_s), (decode_mid, decode_time - dec["runtime"])):
        if gc is None or w <= 0:
            continue
        for k, v in gc.bound_breakdown().items():
            bb[k] = bb.get(k, 0.0) + v * w / e2e
    fp, plan, sp = mem.fp, mem.plan, cfg.speculative
    if not math.isfinite(met["joules_per_output_token"]) and not any("energy unknown" in n for n in su.notes):
        su.notes.append(f"energy unknown: {chip.name} lists no power data (power.tdp or power.energy_per_flop), "
                        "so the energy figures are null, not 0 J")
    return Prediction(
        model=su.spec.name, hardware=str(getattr(cfg.hw, "name", cfg.hw)), system=su.system.name, chips=chips,
        batch=full_batch, input_len=cfg.input_len, output_len=cfg.output_len, tp=cfg.tp, pp=pp, ep=cfg.ep,
        quant=su.quant.name, ttft_s=ttft, tpot_s=met["tpot_s"], e2e_s=e2e,
        output_throughput_tok_s=met["output_throughput_tok_s"],
        per_chip_output_throughput_tok_s=met["per_chip_output_throughput_tok_s"], fits=mem.fits,
        weights_bytes=fp.weights_bytes, kv_cache_bytes=fp.kv_cache_bytes, activation_bytes=fp.activation_bytes,
        memory_capacity_bytes=mem.capacity, usd_per_hour=None if usd_s is None else usd_s * 3600,
        usd_per_mtok_output=met["usd_per_mtok_output"], usd_per_mtok_input=met["usd_per_mtok_input"],
        joules_per_output_token=met["joules_per_output_token"], mfu=met["mfu"], mbu=met["mbu"],
        bound_breakdown=bb, notes=tuple(su.notes), reason=mem.reason, tokens_per_step=dec["tokens_per_step"],
        speculative=None if sp is None else sp.describe(),
        sparsity=None if cfg.sparsity is None else cfg.sparsity.name, kv_window=cfg.kv_window,
        offload_bytes=0.0 if plan is None else plan.weights_bytes + plan.kv_bytes, draft_bytes=mem.draft_bytes,
        stack=st.name, warnings=tuple(su.warnings),
        runtime_prefill_s=pre["runtime"], runtime_decode_s=0.0 if decode_mid is None or st.is_ideal else
        st.step_time(decode_mid.time_s, step_kernels(decode_mid), su.batch, decode=True) - decode_mid.time_s,
        placement=_placement(cm, mem), prefill=prefill, decode=decode_mid, price_source=su.system.price_note(chips),
        price_date=(su.system.price_date if su.system.cloud_usd_per_s is not None or su.system.count == 1
                    else su.system.chip.price_date),
        calibration=su.system.chip.calibration)


def _placement(cm: CostModel, mem: _Memory) -> dict:
    """Bytes per chip of each tensor class per memory level; offloaded bytes on the host link."""
    fp, plan = mem.fp, mem.plan
    off_w, off_kv = (plan.weights_bytes, plan.kv_bytes) if plan is not None else (0.0, 0.0)
    place = cm.placement(fp.weights_bytes - off_w, fp.kv_cache_bytes - off_kv, fp.activation_bytes)
    for key, off in (("weights", off_w), ("kv_cache", off_kv)):
        if off > 0:
            place[key]["host (offload)"] = off
    if mem.draft_bytes:
        place["draft model"] = cm.placement(mem.draft_bytes, 0.0, 0.0)["weights"]
    return place
