"""The optimization ladder: from a plain baseline, apply software techniques one at a time, greedily.

``ladder(model, hw, workload)`` starts from a plain baseline (fp16 weights, activations and KV
cache; unfused attention that writes its score matrix to memory; no kernel fusion; a kernel
launch per op; static batching; a contiguous KV cache that reserves ``max_context`` tokens per
request) and, in each round, prices every technique not yet applied on top of the current
configuration and keeps the one that raises the objective most. It stops when no technique
helps; the techniques left are reported as skipped, each with its reason (not applicable, does
not fit, or the factor by which it would lower the objective).

**Objective**: output tokens per USD at the given workload = output throughput / the chips' USD
per second (``sim.predict.system_usd_per_s``). Hardware and chip count are fixed within one
ladder, so this ranks configurations exactly as throughput does; a chip without a price is
ranked by throughput. A step's ``speedup`` is its throughput over the previous step's, so the
steps' speedups multiply to the total.

**Pessimistic** (``pessimistic=P``, ``llmsim optimize --pessimistic P``): the objective is taken at the
slow end of the P prediction interval (docs/uncertainty.md): each wave's e2e time at the high end of its
interval, throughput = ``B x O / (sum of those)``; so a technique wins only if it helps where the
model's validation evidence says the run could land. The point figures are still shown.

**Workload**: ``B`` requests of ``L`` prompt and ``O`` output tokens. A configuration runs them in
static batches of ``b = min(B, max batch that fits)`` (``sim.techniques.max_batch_that_fits``):
``ceil(B / b)`` waves, each priced by ``sim.predict.predict``; throughput = ``B x O / (sum of the
waves' end-to-end times)``; TTFT and TPOT are those of one full wave (a request in a later wave
also waits for the earlier ones). With a trace, ``L`` and ``O`` are the trace's mean lengths
(the static ladder; the serving simulator is not used), and static batching pays for padding:
a batch of ``b`` consecutive requests prefills to its longest prompt and decodes until its
longest output is done (the means over the trace of the per-batch maxima); continuous batching
(iteration-level scheduling) removes that padding.

**Break-even** against an API priced ``p_in`` and ``p_out`` USD per million input and output
tokens, for the workload's ratio ``r = L / O`` of input to output tokens::

    API cost per output token (with its r input tokens)   P = (r x p_in + p_out) / 1e6
    break-even load                                       N* = H / P output tokens per hour
    break-even utilization                                u* = N* / (3600 x throughput)

where ``H`` is the hardware's USD per hour and ``throughput`` the optimized output tokens per
second. Above ``N*`` output tokens per hour (``r x N*`` input tokens with them) self-hosting is
cheaper; ``u* > 1`` means one replica cannot reach break-even even fully loaded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from hwmodels.dtype import get_dtype
from hwmodels.errors import InfeasibleError, Problem, SpecError
from hwmodels.stack import DEFAULT_STACK, load_stack
from sim.cost import CostOptions
from sim.metrics import usd_per_mtok
from sim.predict import predict, resolve_system, system_usd_per_s
from sim.techniques import Offload, max_batch_that_fits
from workloads import load_model
from workloads.quant import Quantization, Sparsity
from workloads.techniques import SpecConfig, default_draft

__all__ = ["DEFAULT_ALTERNATIVES", "OBJECTIVE", "TECHNIQUES", "Config", "Ladder", "Point", "Step", "Technique",
           "Workload", "break_even", "evaluate", "ladder", "optimize"]

OBJECTIVE = ("output tokens per USD at the workload (output throughput / the hardware's USD per second); "
             "throughput where the hardware has no price")

#: alternative chips compared by default (the first three that are not the chip being optimized)
DEFAULT_ALTERNATIVES = ("h100-sxm", "h200", "a100-sxm", "mi300x", "l40s")

#: relative gain below which a technique is not worth a step
MIN_GAIN = 1e-3


# ---------------------------------------------------------------------------------------------
# configuration, workload

@dataclass(frozen=True)
class Config:
    """One software configuration (the baseline is ``Config()``)."""

    quant: str = "fp16"  # weight/activation scheme (workloads.quant.SCHEMES)
    kv_fp8: bool = False
    attention_kernel: str = "naive"
    fused: bool = False
    cuda_graphs: bool = False
    kv_layout: str = "contiguous"
    batching: str = "static"
    speculative: object = None  # workloads.techniques.SpecConfig
    sparse: bool = False
    kv_offload: bool = False
    weight_offload: bool = False
    kv_window: int | None = None

    def quantization(self):
        q = Quantization.named(self.quant)
        if self.kv_fp8:
            q = replace(q, kv_cache="fp8", scheme=None)
        return q

    def options(self):
        return CostOptions(fused=self.fused, cuda_graphs=self.cuda_graphs, dequant_per_tile=True)

    def sparsity(self):
        return Sparsity() if self.sparse else None

    def offload(self):
        if not (self.kv_offload or self.weight_offload):
            return None
        return Offload(kv=self.kv_offload, weights=self.weight_offload)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["speculative"] = None if self.speculative is None else self.speculative.describe()
        d["quantization"] = self.quantization().name
        return d


@dataclass(frozen=True)
class Workload:
    """``batch`` requests of ``input_len`` prompt and ``output_len`` output tokens; with a trace, the
    per-request lengths (``inputs``/``outputs``) for static-batching padding."""

    batch: int
    input_len: int
    output_len: int
    max_context: int | None = None  # tokens a contiguous KV cache reserves per request (None: the model's maximum)
    inputs: tuple = field(default=(), repr=False)
    outputs: tuple = field(default=(), repr=False)
    source: str = ""
    offered_output_tok_per_h: float | None = None  # the trace's load

    def __post_init__(self):
        for name in ("batch", "input_len", "output_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError([Problem(f"must be a positive integer, got {v!r}", path=name)])
        if self.max_context is not None and (not isinstance(self.max_context, int) or self.max_context < 1):
            raise SpecError([Problem(f"must be a positive integer, got {self.max_context!r}", path="max_context")])

    @classmethod
    def from_trace(cls, trace, batch: int = 64, max_context: int | None = None) -> Workload:
        """Mean lengths of a ``workloads.trace.Trace`` (rounded), keeping the lengths for padding."""
        inp = tuple(int(x) for x in trace.input_tokens)
        out = tuple(int(x) for x in trace.output_tokens)
        dur = float(trace.arrival_s[-1] - trace.arrival_s[0]) if len(inp) > 1 else 0.0
        load = sum(out) / dur * 3600.0 if dur > 0 else None
        return cls(batch, max(1, round(sum(inp) / len(inp))), max(1, round(sum(out) / len(out))), max_context,
                   inp, out, trace.name or trace.source, load)

    @property
    def has_lengths(self) -> bool:
        return len(self.inputs) > 1

    def padded(self, b: int) -> tuple[int, int]:
        """Mean over batches of ``b`` consecutive trace requests of (longest prompt, longest output)."""
        if not self.has_lengths or b <= 1:
            return self.input_len, self.output_len
        n = len(self.inputs)
        li = lo = 0.0
        groups = 0
        for s in range(0, n - n % b if n >= b else n, b):
            li += max(self.inputs[s:s + b])
            lo += max(self.outputs[s:s + b])
            groups += 1
        return max(1, round(li / groups)), max(1, round(lo / groups))

    def describe(self) -> str:
        src = f" (mean lengths of {self.source})" if self.source else ""
        return f"{self.batch} requests x ({self.input_len} in, {self.output_len} out){src}"


# ---------------------------------------------------------------------------------------------
# techniques

@dataclass
class _Ctx:
    spec: object
    system: object
    tp: int
    workload: Workload
    speculative: object
    kv_window: int | None
    samples: int
    memo: dict = field(default_factory=dict)
    stack: object = None  # the serving-stack profile every prediction runs (hwmodels.stack.Stack)
    pessimistic: float | None = None  # rank by the slow end of this prediction-interval level

    @property
    def chip(self):
        return self.system.chip


@dataclass(frozen=True)
class Technique:
    """A step of the ladder: ``apply(config, ctx)`` returns the new Config, or a reason string
    when it does not apply. Techniques of one ``group`` exclude each other (one weight format)."""

    name: str
    description: str
    lossy: bool
    apply: object
    group: str | None = None


def _flash(c: Config, ctx) -> Config | str:
    if c.attention_kernel != "naive":
        return "attention is already fused"
    return replace(c, attention_kernel="auto")


def _fusion(c: Config, ctx) -> Config | str:
    return "already fused" if c.fused else replace(c, fused=True)


def _graphs(c: Config, ctx) -> Config | str:
    if c.cuda_graphs:
        return "already on"
    if not ctx.chip.launch_overhead_s:
        return f"{ctx.chip.name} declares no kernel launch overhead"
    return replace(c, cuda_graphs=True)


def _paged(c: Config, ctx) -> Config | str:
    return "already paged" if c.kv_layout == "paged" else replace(c, kv_layout="paged")


def _continuous(c: Config, ctx) -> Config | str:
    if c.batching == "continuous":
        return "already on"
    if not ctx.workload.has_lengths:
        return ("no effect on equal-length requests: static batches finish together "
                "(its gain comes from length variance; give --trace)")
    return replace(c, batching="continuous")


def _weights(scheme: str):
    def apply(c: Config, ctx) -> Config | str:
        if c.quant != "fp16":
            return f"weights are already {c.quant}"
        math_dt = Quantization.named(scheme).math_dtype
        key = get_dtype(math_dt).rate_key
        r = ctx.chip.matrix_unit().rate_for(math_dt)
        if r is None or r[1] != key:
            return f"{ctx.chip.name} has no {math_dt} matrix math (the {scheme} scheme multiplies in {math_dt})"
        return replace(c, quant=scheme)
    return apply


def _kv8(c: Config, ctx) -> Config | str:
    return "KV cache already fp8" if c.kv_fp8 else replace(c, kv_fp8=True)


def _sparse(c: Config, ctx) -> Config | str:
    if c.sparse:
        return "already sparse"
    if not ctx.chip.matrix_unit().sparse_peak:
        return f"{ctx.chip.name} lists no 2:4 sparse peak"
    return replace(c, sparse=True)


def _spec(c: Config, ctx) -> Config | str:
    if c.speculative is not None:
        return "already on"
    return replace(c, speculative=ctx.speculative)


def _offload_reason(c: Config, ctx) -> str | None:
    if ctx.chip.host_link is None:
        return f"{ctx.chip.name} declares no host link"
    p = evaluate(c, ctx)
    if p.feasible and p.max_batch >= ctx.workload.batch:
        return f"all {ctx.workload.batch} requests already fit in memory (max batch {p.max_batch}); nothing to offload"
    return None


def _kv_offload(c: Config, ctx) -> Config | str:
    if c.kv_offload:
        return "already on"
    return _offload_reason(c, ctx) or replace(c, kv_offload=True)


def _w_offload(c: Config, ctx) -> Config | str:
    if c.weight_offload:
        return "already on"
    return _offload_reason(c, ctx) or replace(c, weight_offload=True)


def _evict(c: Config, ctx) -> Config | str:
    if ctx.kv_window is None:
        return "off unless --kv-window W is given (lossy: the model attends to the last W tokens only)"
    if c.kv_window is not None:
        return "already on"
    return replace(c, kv_window=ctx.kv_window)


TECHNIQUES: tuple[Technique, ...] = (
    Technique("flash-attention", "fused attention kernels: FlashAttention prefill, paged decode", False, _flash),
    Technique("kernel-fusion", "fuse norm, activation, rope, residual and dequant ops into neighbours", False, _fusion),
    Technique("cuda-graphs", "replay kernels from a graph: no per-kernel launch overhead", False, _graphs),
    Technique("paged-kv", "paged KV cache (16-token blocks) instead of max-context reservations", False, _paged),
    Technique("continuous-batching", "iteration-level scheduling: no padding to the batch's longest", False,
              _continuous),
    Technique("fp8", "FP8 weights and activations (W8A8)", True, _weights("fp8"), group="weights"),
    Technique("int8", "INT8 weights and activations (W8A8)", True, _weights("w8a8"), group="weights"),
    Technique("w4a16", "INT4 weights (group 128), bf16 math, dequantized in the GEMM", True, _weights("w4a16"),
              group="weights"),
    Technique("fp4", "FP4 weights and activations (group 16, NVFP4-like)", True, _weights("fp4"), group="weights"),
    Technique("fp8-kv", "FP8 KV cache", True, _kv8),
    Technique("sparsity-2:4", "2:4-pruned linear layers, compressed, at the sparse peak", True, _sparse),
    Technique("speculative", "speculative decoding", False, _spec),
    Technique("kv-offload", "KV cache that does not fit spills to host memory over the host link", False, _kv_offload),
    Technique("weight-offload", "weights that do not fit spill to host memory over the host link", False, _w_offload),
    Technique("kv-eviction", "keep the KV cache of the last W tokens only", True, _evict),
)
_BY_NAME = {t.name: t for t in TECHNIQUES}


# ---------------------------------------------------------------------------------------------
# evaluation

@dataclass(frozen=True)
class Point:
    """The workload under one configuration."""

    feasible: bool
    reason: str | None = None
    ttft_s: float = math.nan
    tpot_s: float = math.nan
    e2e_s: float = math.nan  # all waves
    output_throughput_tok_s: float = 0.0
    running_batch: int = 0
    max_batch: int = 0
    waves: int = 0
    usd_per_hour: float | None = None
    usd_per_mtok_input: float | None = None
    usd_per_mtok_output: float | None = None
    tokens_per_usd: float | None = None
    joules_per_output_token: float = math.nan
    tokens_per_step: float = 1.0
    objective: float = 0.0
    notes: tuple = ()
    # with a pessimistic level: the waves' e2e times at their intervals' slow (high) end, and the throughput
    # and USD per million output tokens there (the objective is then taken at the slow end)
    e2e_s_slow: float = math.nan
    output_throughput_tok_s_slow: float = math.nan
    usd_per_mtok_output_slow: float | None = None


def evaluate(c: Config, ctx: _Ctx) -> Point:
    """Price the workload under configuration ``c`` (memoized per ladder)."""
    hit = ctx.memo.get(c)
    if hit is None:
        try:
            hit = _evaluate(c, ctx)
        except InfeasibleError as e:
            hit = Point(False, str(e))
        ctx.memo[c] = hit
    return hit


def _evaluate(c: Config, ctx: _Ctx) -> Point:
    wl = ctx.workload
    q = c.quantization()
    sp = c.sparsity()
    off = c.offload()
    maxb = max_batch_that_fits(ctx.spec, ctx.system, wl.input_len, wl.output_len, quant=q, tp=ctx.tp,
                               kv_layout=c.kv_layout, max_context=wl.max_context, speculative=c.speculative,
                               sparsity=sp, offload=off, kv_window=c.kv_window, attention_kernel=c.attention_kernel)
    if maxb == 0:
        return Point(False, "not even one request fits in memory", max_batch=0)
    B = wl.batch
    b = min(B, maxb)
    full, rem = divmod(B, b)

    def run(n: int):
        L, O = (wl.input_len, wl.output_len) if c.batching == "continuous" else wl.padded(n)
        return predict(ctx.spec, ctx.system, n, L, O, tp=ctx.tp, quant=q, options=c.options(),
                       attention_kernel=c.attention_kernel, samples=ctx.samples, check_memory=False,
                       speculative=c.speculative, sparsity=sp, offload=off, kv_window=c.kv_window, stack=ctx.stack)

    p = run(b)
    total, prefill = full * p.e2e_s, full * p.ttft_s
    slow = full * _slow_e2e(p, c, ctx)
    if rem:
        pr = run(rem)
        total += pr.e2e_s
        prefill += pr.ttft_s
        slow += _slow_e2e(pr, c, ctx)
    out_tokens = B * wl.output_len
    thr = out_tokens / total
    usd_s = system_usd_per_s(ctx.system, p.chips)
    notes = tuple(n for n in p.notes if "standard system" not in n)
    ranked = thr if ctx.pessimistic is None else out_tokens / slow
    return Point(
        True, None, ttft_s=p.ttft_s, tpot_s=p.tpot_s, e2e_s=total, output_throughput_tok_s=thr, running_batch=b,
        max_batch=maxb, waves=full + (1 if rem else 0), usd_per_hour=None if usd_s is None else usd_s * 3600,
        usd_per_mtok_input=usd_per_mtok(usd_s, prefill, B * wl.input_len),
        usd_per_mtok_output=usd_per_mtok(usd_s, total, out_tokens),
        tokens_per_usd=None if usd_s is None else thr / usd_s, joules_per_output_token=p.joules_per_output_token,
        tokens_per_step=p.tokens_per_step, objective=ranked if usd_s is None else ranked / usd_s, notes=notes,
        e2e_s_slow=slow, output_throughput_tok_s_slow=out_tokens / slow if ctx.pessimistic is not None else math.nan,
        usd_per_mtok_output_slow=usd_per_mtok(usd_s, slow, out_tokens) if ctx.pessimistic is not None else None)


def _slow_e2e(p, c: Config, ctx: _Ctx) -> float:
    """The high end of a wave's e2e interval at the ladder's pessimistic level (NaN without one)."""
    if ctx.pessimistic is None:
        return math.nan
    from sim.uncertainty import pessimistic, prediction_intervals

    iv = prediction_intervals(p, ctx.system, ctx.pessimistic, options=c.options())
    return pessimistic(iv, "e2e_s", p.e2e_s)


# ---------------------------------------------------------------------------------------------
# the ladder

@dataclass(frozen=True)
class Step:
    technique: str
    description: str
    lossy: bool
    config: Config
    point: Point
    speedup: float  # throughput over the previous step's
    cumulative_speedup: float

    def to_dict(self) -> dict:
        p = self.point
        d = {"technique": self.technique, "description": self.description, "lossy": self.lossy,
             "ttft_s": p.ttft_s, "tpot_s": p.tpot_s, "e2e_s": p.e2e_s,
             "output_throughput_tok_s": p.output_throughput_tok_s, "running_batch": p.running_batch,
             "max_batch": p.max_batch, "waves": p.waves, "usd_per_hour": p.usd_per_hour,
             "usd_per_mtok_input": p.usd_per_mtok_input, "usd_per_mtok_output": p.usd_per_mtok_output,
             "tokens_per_usd": p.tokens_per_usd, "joules_per_output_token": p.joules_per_output_token,
             "tokens_per_step": p.tokens_per_step, "speedup": self.speedup,
             "cumulative_speedup": self.cumulative_speedup, "config": self.config.to_dict(),
             "e2e_s_slow": None if math.isnan(p.e2e_s_slow) else p.e2e_s_slow,
             "output_throughput_tok_s_slow": None if math.isnan(p.output_throughput_tok_s_slow)
             else p.output_throughput_tok_s_slow, "usd_per_mtok_output_slow": p.usd_per_mtok_output_slow,
             "notes": list(p.notes)}
        return d


@dataclass(frozen=True)
class Ladder:
    model: str
    hardware: str
    system: str
    chips: int
    workload: Workload
    steps: tuple  # of Step; steps[0] is the baseline
    skipped: tuple  # of (technique, reason)
    notes: tuple = ()
    stack: str = DEFAULT_STACK  # the serving-stack profile's name
    calibration: str | None = None  # what the chip's efficiency figures rest on (Chip.calibration)

    @property
    def final(self) -> Step:
        return self.steps[-1]

    @property
    def total_speedup(self) -> float:
        return self.final.cumulative_speedup

    @property
    def order(self) -> list[str]:
        return [s.technique for s in self.steps[1:]]

    def to_dict(self) -> dict:
        return {"model": self.model, "hw": self.hardware, "system": self.system, "chips": self.chips,
                "stack": self.stack, "calibration": self.calibration, "steps": [s.to_dict() for s in self.steps],
                "skipped": [{"technique": t, "reason": r} for t, r in self.skipped],
                "total_speedup": self.total_speedup, "order": self.order, "notes": list(self.notes)}


def _default_spec(spec, override=None):
    if override is not None:
        return override
    d = default_draft(spec)
    if d is not None:
        return SpecConfig(k=4, acceptance=0.7, draft=d)
    return SpecConfig(k=4, acceptance=0.5)


def _ms(s: float) -> str:
    return f"{s:.3g} s" if s >= 1 else f"{s * 1e3:.3g} ms"


def _compare(cur: Point, new: Point) -> str:
    r = new.output_throughput_tok_s / cur.output_throughput_tok_s
    parts = [f"x{r:.3f} throughput ({cur.output_throughput_tok_s:,.0f} -> {new.output_throughput_tok_s:,.0f} tok/s)"]
    for name, a, b in (("TTFT", cur.ttft_s, new.ttft_s), ("TPOT", cur.tpot_s, new.tpot_s)):
        if a > 0 and b > 0 and abs(b / a - 1) > 0.005:
            parts.append(f"{name} {_ms(a)} -> {_ms(b)}")
    if new.max_batch != cur.max_batch:
        parts.append(f"max batch {cur.max_batch} -> {new.max_batch}")
    return ", ".join(parts)


def _worse(cur: Point, new: Point) -> str:
    r = new.output_throughput_tok_s / cur.output_throughput_tok_s
    return ("makes it worse: " if r < 1 else "no gain: ") + _compare(cur, new)


def ladder(model, hw, workload: Workload, *, tp: int = 1, overrides=None, techniques=None, exclude=(),
           lossy: bool = True, speculative=None, kv_window: int | None = None, samples: int = 9,
           stack=None, pessimistic: float | None = None) -> Ladder:
    """The greedy ladder of ``techniques`` (names; default all of :data:`TECHNIQUES`) on ``hw``.

    ``speculative``: the SpecConfig the 'speculative' step uses (default: the model's draft partner
    at k=4, acceptance 0.7, else an n-gram proposer at acceptance 0.5); ``kv_window``: enables the
    lossy 'kv-eviction' step; ``lossy=False`` leaves out quantization, sparsity and eviction;
    ``samples``: decode contexts priced per prediction (interpolated in between); ``stack``: the
    serving-stack profile every step is priced under (name, YAML path or Stack; None: the default);
    ``pessimistic``: an interval level whose slow end (the high end of each wave's e2e interval,
    docs/uncertainty.md) the objective is taken at, so techniques are ranked by the throughput per USD
    the evidence guarantees.
    """
    spec = load_model(model)
    system, notes = resolve_system(hw, tp, overrides)
    names = list(techniques) if techniques else [t.name for t in TECHNIQUES]
    unknown = [n for n in list(names) + list(exclude) if n not in _BY_NAME]
    if unknown:
        raise SpecError([Problem(f"unknown technique(s) {', '.join(unknown)}; known: {', '.join(_BY_NAME)}",
                                 path="techniques")])
    if pessimistic is not None:
        from sim.uncertainty import check_level

        try:
            pessimistic = check_level(pessimistic)
        except SpecError as e:
            raise SpecError([Problem(e.problems[0].message, path="--pessimistic")]) from None
    st = load_stack(stack)
    ctx = _Ctx(spec, system, tp, workload, _default_spec(spec, speculative), kv_window, samples, stack=st,
               pessimistic=pessimistic)
    skipped: dict[str, str] = {}
    pool = []
    for n in names:
        t = _BY_NAME[n]
        if n in exclude:
            skipped[n] = "excluded"
        elif t.lossy and not lossy:
            skipped[n] = "lossy (changes the model's outputs); left out by --no-lossy"
        else:
            pool.append(t)
    notes = list(notes)
    if system.price_note(tp):
        notes.append(f"price used: {system.price_note(tp)}")
    base = Config()
    p0 = evaluate(base, ctx)
    if not p0.feasible and system.chip.host_link is not None:
        alt = replace(base, weight_offload=True)
        pa = evaluate(alt, ctx)
        if pa.feasible:
            notes.append("the fp16 weights do not fit: the baseline offloads what does not fit to host memory "
                         "(as device_map='auto' does)")
            base, p0 = alt, pa
            pool = [t for t in pool if t.name != "weight-offload"]
    if not p0.feasible:
        raise InfeasibleError(f"the baseline cannot run {spec.name} on {system.name}: {p0.reason}",
                              {"model": spec.name, "hw": system.name})
    if workload.has_lengths:
        notes.append(f"static ladder on the trace's mean lengths ({workload.input_len} in, {workload.output_len} out); "
                     "static batching pads each batch to its longest request")
    steps = [Step("baseline", "fp16, unfused attention, no fusion, kernel launches, static batching, "
                  "contiguous KV cache", False, base, p0, 1.0, 1.0)]
    cur, curp, total = base, p0, 1.0
    while pool:
        best = None
        tried: dict = {}
        for t in pool:
            nc = t.apply(cur, ctx)
            if isinstance(nc, str):
                skipped[t.name] = f"not applicable: {nc}"
                continue
            np_ = evaluate(nc, ctx)
            if not np_.feasible:
                skipped[t.name] = f"does not fit: {np_.reason}"
                continue
            tried[t.name] = np_
            gain = np_.objective / curp.objective
            if gain <= 1.0 + MIN_GAIN:
                skipped[t.name] = _worse(curp, np_)
                continue
            if best is None or gain > best[0]:
                best = (gain, t, nc, np_)
        if best is None:
            break
        _, t, nc, np_ = best
        sp = np_.output_throughput_tok_s / curp.output_throughput_tok_s
        total *= sp
        desc = t.description
        if t.name == "speculative":
            desc = nc.speculative.describe()
        elif t.name == "kv-eviction":
            desc = f"keep the KV cache of the last {nc.kv_window} tokens only"
        steps.append(Step(t.name, desc, t.lossy, nc, np_, sp, total))
        skipped.pop(t.name, None)
        pool.remove(t)
        if t.group:
            for o in [o for o in pool if o.group == t.group]:
                pool.remove(o)
                alt = tried.get(o.name)
                was = f"; in its place it gave {_compare(curp, alt)}" if alt is not None else \
                    f"; {skipped[o.name]}" if o.name in skipped else ""
                skipped[o.name] = f"superseded by {t.name} (one weight format){was}"
        cur, curp = nc, np_
    order = [t.name for t in TECHNIQUES]
    sk = tuple(sorted(((n, r) for n, r in skipped.items() if n not in {s.technique for s in steps}),
                      key=lambda x: order.index(x[0])))
    return Ladder(spec.name, str(getattr(hw, "name", hw)), system.name, tp, workload, tuple(steps), sk, tuple(notes),
                  stack=st.name, calibration=system.calibration)


# ---------------------------------------------------------------------------------------------
# break-even and the whole report

def break_even(step: Step, workload: Workload, price_in: float, price_out: float) -> dict | None:
    """Self-hosting vs an API priced ``price_in``/``price_out`` USD per million input/output tokens
    (formulas in the module docstring). None when the hardware has no price."""
    p = step.point
    if p.usd_per_hour is None:
        return None
    r = workload.input_len / workload.output_len
    api_per_out = (r * price_in + price_out) / 1e6
    n_out = p.usd_per_hour / api_per_out
    cap = p.output_throughput_tok_s * 3600.0
    d = {"api_usd_per_mtok_input": price_in, "api_usd_per_mtok_output": price_out,
         "input_per_output_tokens": r, "api_usd_per_output_token_blended": api_per_out,
         "hardware_usd_per_hour": p.usd_per_hour, "capacity_output_tok_per_h": cap,
         "break_even_output_tok_per_h": n_out, "break_even_input_tok_per_h": n_out * r,
         "break_even_utilization": n_out / cap,
         "self_hosted_usd_per_mtok_output_full_load": p.usd_per_hour / cap * 1e6,
         "api_usd_per_mtok_output_blended": api_per_out * 1e6,
         "formula": "N* = H / ((L/O) x p_in + p_out) x 1e6 output tokens per hour; u* = N* / (3600 x throughput)"}
    load = workload.offered_output_tok_per_h
    if load:
        replicas = math.ceil(load / cap)
        d.update({"offered_output_tok_per_h": load, "replicas_needed": replicas,
                  "self_hosted_usd_per_hour_at_load": replicas * p.usd_per_hour,
                  "api_usd_per_hour_at_load": load * api_per_out})
    return d


def default_alternatives(hw) -> list[str]:
    name = str(getattr(hw, "name", hw))
    return [h for h in DEFAULT_ALTERNATIVES if h != name][:3]


def optimize(model, hw, workload: Workload, *, alternatives=None, api_price_in: float | None = None,
             api_price_out: float | None = None, **kw) -> dict:
    """The ladder on ``hw`` and on each of ``alternatives`` (default :func:`default_alternatives`),
    plus the break-even against the API prices when both are given. Returns a dict of Ladders and
    figures (``to_json`` turns it into the JSON the CLI prints)."""
    main = ladder(model, hw, workload, **kw)
    alts = []
    for h in (default_alternatives(hw) if alternatives is None else alternatives):
        try:
            alts.append(ladder(model, h, workload, **kw))
        except InfeasibleError as e:
            alts.append(str(h) + ": " + str(e))
        except SpecError as e:
            alts.append(str(h) + ": " + "; ".join(str(p) for p in e.problems))
    be = None
    if api_price_in is not None and api_price_out is not None:
        be = break_even(main.final, workload, api_price_in, api_price_out)
    prices = None if api_price_in is None or api_price_out is None else (api_price_in, api_price_out)
    return {"ladder": main, "alternatives": alts, "break_even": be, "api_prices": prices,
            "pessimistic": kw.get("pessimistic")}


def to_json(result: dict) -> dict:
    main: Ladder = result["ladder"]
    wl = main.workload
    lv = result.get("pessimistic")
    d = {"objective": OBJECTIVE if lv is None else OBJECTIVE + f"; taken at the slow end of the {lv:g} "
         "prediction interval (each wave's e2e at its interval's high end)", "pessimistic_level": lv,
         "workload": {"batch": wl.batch, "input_len": wl.input_len, "output_len": wl.output_len,
                      "max_context": wl.max_context, "source": wl.source or None,
                      "offered_output_tok_per_h": wl.offered_output_tok_per_h},
         **main.to_dict(), "break_even": result.get("break_even"), "alternatives": []}
    for a in result["alternatives"]:
        if isinstance(a, Ladder):
            d["alternatives"].append(a.to_dict())
        else:
            hw, _, why = a.partition(": ")
            d["alternatives"].append({"hw": hw, "error": why})
    return d
