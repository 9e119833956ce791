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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hwmodels.chip import Chip, System
from hwmodels.errors import InfeasibleError, SpecError
from hwmodels.loader import load_hardware, standard_system_for
from sim.cost import CostModel, CostOptions
from sim.estimate import GraphCost, estimate


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
    prefill: GraphCost | None = field(default=None, repr=False)
    decode: GraphCost | None = field(default=None, repr=False)  # the step at the mean context

    def to_dict(self) -> dict:
        keys = [k for k in self.__dataclass_fields__ if k not in ("prefill", "decode")]
        d = {k: getattr(self, k) for k in keys}
        d["notes"] = list(self.notes)
        return d

    def to_frame(self) -> pd.DataFrame:
        """Per-op breakdown of the prefill step and the mean decode step."""
        frames = []
        for phase, gc in (("prefill", self.prefill), ("decode", self.decode)):
            if gc is not None:
                f = gc.to_frame()
                f.insert(0, "phase", phase)
                frames.append(f)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def by_kind(self) -> pd.DataFrame:
        """Seconds per op kind for prefill and one decode step (stacked-bar data)."""
        df = self.to_frame()
        if df.empty:
            return df
        return df.pivot_table(index="kind", columns="phase", values="total_time_s", aggfunc="sum").fillna(0.0)


def resolve_system(hw, chips_needed: int, overrides=None) -> tuple[System, list[str]]:
    """A System for ``hw`` (name, path, Chip or System) with room for ``chips_needed`` chips."""
    notes = []
    obj = load_hardware(hw, overrides) if isinstance(hw, str) or hasattr(hw, "__fspath__") else hw
    if isinstance(obj, Chip):
        if chips_needed <= 1:
            return System.single(obj), notes
        std = standard_system_for(obj.name, chips_needed)
        if std is None:
            raise InfeasibleError(f"{obj.name} is one chip and the catalog has no system of at least "
                                  f"{chips_needed} {obj.name} chips; give --hw a system", {"chips_needed": chips_needed})
        chip_ovr = [o if isinstance(o, str) else f"{o[0]}={o[1]}" for o in (overrides or [])] if not isinstance(overrides, dict) \
            else {f"chip.{k}": v for k, v in overrides.items()}
        if isinstance(chip_ovr, list):
            chip_ovr = [f"chip.{o}" for o in chip_ovr]
        sysobj = load_hardware(std, chip_ovr or None)
        notes.append(f"{obj.name} is one chip; using its standard system {std} ({sysobj.count} chips)")
        return sysobj, notes
    if chips_needed > obj.count:
        raise InfeasibleError(f"the parallelism needs {chips_needed} chips; {obj.name} has {obj.count}",
                              {"chips_needed": chips_needed, "chips": obj.count})
    return obj, notes


def system_usd_per_s(system: System, chips: int) -> float | None:
    """USD per second for ``chips`` chips of ``system`` (its price shared pro rata)."""
    per_h = system.usd_per_hour
    if per_h is None:
        return None
    return per_h / 3600.0 * chips / max(system.count, 1)


def _sample_contexts(lo: int, hi: int, samples: int) -> np.ndarray:
    if hi - lo + 1 <= samples:
        return np.arange(lo, hi + 1)
    return np.unique(np.round(np.linspace(lo, hi, samples)).astype(int))


def make_quantization(quant="bf16", weight_dtype=None, act_dtype=None, kv_dtype=None):
    """A named scheme (or Quantization) with any of its three dtypes overridden."""
    import dataclasses

    from workloads import Quantization

    q = Quantization.parse(quant)
    changes = {k: v for k, v in (("weight", weight_dtype), ("activation", act_dtype), ("kv_cache", kv_dtype)) if v}
    if changes:
        q = dataclasses.replace(q, scheme=None, **changes)
    return q


def predict(model, hw, batch: int, input_len: int, output_len: int, *, tp: int = 1, pp: int = 1, ep: int = 1,
            quant="bf16", weight_dtype: str | None = None, act_dtype: str | None = None, kv_dtype: str | None = None,
            overrides=None, options: CostOptions = CostOptions(), attention_kernel: str = "auto",
            samples: int = 33, check_memory: bool = True, speculative=None, sparsity=None, offload=None,
            kv_window: int | None = None) -> Prediction:
    """Predict a static batch: B requests of ``input_len`` prompt and ``output_len`` output tokens.

    ``model``: a catalog name, a config.json path or a ModelSpec; ``hw``: a chip or system name,
    path or object. Raises SpecError for bad input and InfeasibleError when it cannot run
    (unless ``check_memory=False``, then fits=False and the reason are returned).

    Techniques (default off): ``speculative`` (``workloads.techniques.SpecConfig``), ``sparsity``
    (``workloads.quant.Sparsity``), ``offload`` (``sim.techniques.Offload``: with it, what does not
    fit goes to the far tier instead of raising), ``kv_window`` (keep the last W tokens of KV).
    """
    from workloads import Batch, Parallelism, build_graph, footprint, load_model

    for name, v in (("batch", batch), ("input_len", input_len), ("output_len", output_len), ("tp", tp), ("pp", pp),
                    ("ep", ep), ("samples", samples)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise SpecError(f"{name} must be a positive integer; got {v!r}")
    spec = load_model(model) if not hasattr(model, "layers") else model
    if kv_window is not None:
        from workloads.techniques import with_kv_window

        spec = with_kv_window(spec, kv_window)
    q = make_quantization(quant, weight_dtype=weight_dtype, act_dtype=act_dtype, kv_dtype=kv_dtype)
    # EP ranks are the tp x dp chips: ep wider than tp means ep/tp data-parallel attention replicas,
    # each serving an equal share of the batch
    dp = ep // tp if ep > tp and ep % tp == 0 else 1
    par = Parallelism(tp=tp, pp=pp, ep=ep, dp=dp)
    chips = par.chips
    full_batch = batch
    batch = -(-batch // dp)
    system, notes = resolve_system(hw, chips, overrides)
    chip = system.chip
    k = speculative.k if speculative is not None else 0
    fp = footprint(spec, (batch, input_len + output_len + k), q, par, sparsity=sparsity)
    draft = dq = dpar = None
    draft_bytes = 0.0
    if speculative is not None and speculative.draft is not None:
        from sim.techniques import draft_parallel
        from workloads import Quantization

        draft = speculative.draft_spec()
        dq = Quantization.parse(speculative.draft_quant or q)
        dpar = draft_parallel(draft, par)
        dfp = footprint(draft, (batch, input_len + output_len + k), dq, dpar)
        draft_bytes = dfp.weights_bytes + dfp.kv_cache_bytes
    needed = fp.total_bytes + draft_bytes
    main = chip.main_memory
    capacity = sum(m.total_capacity_bytes(chip.cores) for m in chip.memory if m.kind in ("sram", "dram") and m.per == "chip") \
        if main.kind == "sram" else main.total_capacity_bytes(chip.cores)
    fits = needed <= capacity
    reason = None
    plan = None
    if not fits and offload is not None:
        from sim.techniques import plan_offload

        plan = plan_offload(fp.weights_bytes, fp.kv_cache_bytes, fp.activation_bytes, capacity, offload, chip,
                            fixed=draft_bytes)
        fits = True
        notes.append(f"{offload.name}: {plan.weights_bytes / 1e9:.2f} GB of weights and {plan.kv_bytes / 1e9:.2f} GB "
                     f"of KV cache per chip stream over {plan.bandwidth / 1e9:.0f} GB/s every step")
    if not fits:
        reason = (f"{spec.name} needs {needed / 1e9:.1f} GB per chip (weights {fp.weights_bytes / 1e9:.1f} GB, "
                  f"KV cache {fp.kv_cache_bytes / 1e9:.1f} GB, activations {fp.activation_bytes / 1e9:.2f} GB"
                  + (f", draft model {draft_bytes / 1e9:.1f} GB" if draft_bytes else "") + ") at "
                  f"tp={tp} pp={pp} ep={ep}; {chip.name} {main.name} holds {capacity / 1e9:.1f} GB")
        if check_memory:
            raise InfeasibleError(reason, {"needed_bytes": needed, "capacity_bytes": capacity,
                                           "weights_bytes": fp.weights_bytes, "kv_cache_bytes": fp.kv_cache_bytes})
    resident = fp.weights_bytes + fp.kv_cache_bytes
    if draft_bytes:
        resident += draft_bytes
    if plan is not None:
        resident -= plan.weights_bytes + plan.kv_bytes
    cm = CostModel(system, options, resident_bytes=resident, tp=tp)
    link = plan is not None and plan.active

    pre_graph = build_graph(spec, Batch.prefill(batch, input_len), quant=q, parallel=par,
                            attention_kernel=attention_kernel, fused=options.fused, sparsity=sparsity)
    prefill = estimate(pre_graph, system, options, model=cm)
    ttft = prefill.time_s
    prefill_busy, prefill_energy, prefill_flops = prefill.time_s, prefill.energy_j, prefill.flops
    dcm = None
    if draft is not None:
        dcm = CostModel(system, options, resident_bytes=resident, tp=dpar.tp)
        dpre = estimate(build_graph(draft, Batch.prefill(batch, input_len), quant=dq, parallel=dpar,
                                    attention_kernel=attention_kernel, fused=options.fused), system, options, model=dcm)
        ttft += dpre.time_s
        prefill_busy += dpre.time_s
        prefill_energy += dpre.energy_j
        prefill_flops += dpre.flops
    if link:
        ttft = plan.apply(ttft, pre_graph.kv_bytes(), pp)

    steps = output_len - 1
    decode_mid = None
    decode_time = decode_energy = decode_bytes = decode_flops = 0.0
    decode_link = 0.0
    tokens_per_step = speculative.tokens_per_step if speculative is not None else 1.0
    verify_kernel = "paged" if attention_kernel == "auto" else attention_kernel
    if steps > 0:
        # the decode step that emits output token i+1 has L + i - 1 tokens cached before it
        ctxs = _sample_contexts(input_len, input_len + steps - 1, samples)
        times, energies, bytes_, flops, links = [], [], [], [], []
        for c in ctxs:
            if speculative is None:
                g = build_graph(spec, Batch.decode(batch, int(c)), quant=q, parallel=par,
                                attention_kernel=attention_kernel, fused=options.fused, sparsity=sparsity)
                gc = estimate(g, system, options, model=cm)
                t, e, b, f = gc.time_s, gc.energy_j, gc.bytes_main, gc.flops
            else:
                # one round: the draft's k proposal steps, the proposer's fixed cost, one target step
                # verifying k + 1 tokens per request (a multi-query decode kernel under 'auto')
                g = build_graph(spec, Batch(((k + 1, int(c)),) * batch), quant=q, parallel=par,
                                attention_kernel=verify_kernel, fused=options.fused, sparsity=sparsity)
                gc = estimate(g, system, options, model=cm)
                t, e, b, f = gc.time_s + speculative.round_cost_s, gc.energy_j, gc.bytes_main, gc.flops
                if draft is not None:
                    dg = build_graph(draft, Batch.decode(batch, int(c) + (k - 1) // 2), quant=dq, parallel=dpar,
                                     attention_kernel=attention_kernel, fused=options.fused)
                    dgc = estimate(dg, system, options, model=dcm)
                    t, e, b, f = t + k * dgc.time_s, e + k * dgc.energy_j, b + k * dgc.bytes_main, f + k * dgc.flops
            if link:
                t2 = plan.apply(t, g.kv_bytes(), pp)
                links.append(t2 - t)
                t = t2
            times.append(t)
            energies.append(e)
            bytes_.append(b)
            flops.append(f)
            if decode_mid is None and c >= input_len + (steps + 1) // 2:
                decode_mid = gc
        allc = np.arange(input_len, input_len + steps)
        decode_time = float(np.interp(allc, ctxs, times).sum())
        decode_energy = float(np.interp(allc, ctxs, energies).sum())
        decode_bytes = float(np.interp(allc, ctxs, bytes_).sum())
        decode_flops = float(np.interp(allc, ctxs, flops).sum())
        if link:
            decode_link = float(np.interp(allc, ctxs, links).sum())
        if speculative is not None:  # each round yields tokens_per_step tokens
            decode_time /= tokens_per_step
            decode_energy /= tokens_per_step
            decode_bytes /= tokens_per_step
            decode_flops /= tokens_per_step
            decode_link /= tokens_per_step
        decode_mid = decode_mid or gc
    tpot = decode_time / steps if steps > 0 else 0.0
    e2e = ttft + decode_time
    out_tokens = full_batch * output_len
    thr = out_tokens / e2e if e2e > 0 else math.inf
    usd_s = system_usd_per_s(system, chips)
    usd_mtok = None if usd_s is None else usd_s * e2e / out_tokens * 1e6
    usd_mtok_in = None if usd_s is None else usd_s * ttft / (full_batch * input_len) * 1e6
    # energy: per-chip per-stage energies x stages x chips per stage
    # each chip runs its stage once per step and idles while the other stages run
    busy = (prefill_busy + (decode_time - decode_link if link else decode_time)) / pp
    energy = chips * (prefill_energy + decode_energy + (chip.idle_w or 0.0) * (e2e - busy))
    total_flops = (prefill_flops + decode_flops) * chips
    peak = chip.peak_flops(q.math_dtype)
    mfu = total_flops / (e2e * chips * peak) if e2e > 0 else 0.0
    bw = cm.home.bandwidth_bytes_per_s
    mbu = (decode_bytes * chips) / (decode_time * chips * bw) if decode_time > 0 else 0.0
    # bound breakdown over the whole request, by time
    bb: dict = {}
    for gc, w in ((prefill, prefill.time_s), (decode_mid, decode_time)):
        if gc is None or w <= 0:
            continue
        for k, v in gc.bound_breakdown().items():
            bb[k] = bb.get(k, 0.0) + v * w / e2e
    return Prediction(
        model=spec.name, hardware=str(getattr(hw, "name", hw)), system=system.name, chips=chips, batch=full_batch,
        input_len=input_len, output_len=output_len, tp=tp, pp=pp, ep=ep, quant=q.name,
        ttft_s=ttft, tpot_s=tpot, e2e_s=e2e, output_throughput_tok_s=thr,
        per_chip_output_throughput_tok_s=thr / chips, fits=fits, weights_bytes=fp.weights_bytes,
        kv_cache_bytes=fp.kv_cache_bytes, activation_bytes=fp.activation_bytes, memory_capacity_bytes=capacity,
        usd_per_hour=None if usd_s is None else usd_s * 3600, usd_per_mtok_output=usd_mtok, usd_per_mtok_input=usd_mtok_in,
        joules_per_output_token=energy / out_tokens, mfu=mfu, mbu=mbu, bound_breakdown=bb, notes=tuple(notes),
        reason=reason, tokens_per_step=tokens_per_step,
        speculative=None if speculative is None else speculative.describe(),
        sparsity=None if sparsity is None else sparsity.name, kv_window=kv_window,
        offload_bytes=0.0 if plan is None else plan.weights_bytes + plan.kv_bytes, draft_bytes=draft_bytes,
        prefill=prefill, decode=decode_mid)
