"""Capacity planning: the cheapest hardware, parallelism, scheduler and replica count for a traffic
and its latency SLOs, found with the serving simulator and verified on the whole fleet.

For each candidate configuration (hardware x tp x pp x ep x scheduler settings):

1. a static bound: the request rate one replica would sustain running full batches
   (``sim.predict`` at the largest batch that fits, up to ``max_num_seqs``), and the static TTFT
   and TPOT of a lone request; if those already miss an SLO the candidate fails without a
   simulation ("misses the TPOT SLO even alone");
2. a search on the rate one replica sustains within the SLOs, by steady-state probes
   (sim/plan_probe.py: warm-up removed with MSER-5, p99s with batch-means intervals, a growing
   queue fails the probe, requests doubled until decided or the budget is spent). The search
   starts at the static bound and never goes above it, halves until a probe passes, then
   bisects until the bracket [highest passing, lowest failing] is within ``tolerance``; the
   sustained rate is the highest passing rate and the bracket is reported as its interval;
3. replicas = ceil(target rate / sustained rate); cost per hour = replicas x the cost of one
   replica's chips (sim.tco: cloud price, or purchase + power); USD per million output tokens at
   the target traffic; utilization = target / (replicas x sustained), headroom = 1 - utilization;
4. verification: the chosen fleet (all replicas, the router, the full target rate, the whole
   trace) is simulated as ``llmsim serve`` would; if a p99 misses its SLO, the fleet grows one
   replica at a time until it meets them (said so: ``replicas_grown``). The answer is the
   verified fleet.

Candidates are visited cheapest lower bound first, and a candidate whose lower-bound cost cannot
beat the ``top``-th configuration already found is skipped (said so in the result). Each
result names why a candidate was not chosen; when nothing meets the SLOs (or the budget), the
result says what came closest.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from hwmodels.errors import InfeasibleError, Problem, SpecError
from hwmodels.stack import load_stack
from sim.metrics import usd_per_mtok
from sim.plan_jobs import Jobs
from sim.plan_probe import Probe, Verification, Workload, probe, serve_command, verify
from workloads.model import load_model, model_warnings

__all__ = ["DEFAULT_HARDWARE", "DEFAULT_TPS", "Candidate", "PlanRequest", "PlanResult", "Probe", "Verification",
           "plan"]

DEFAULT_HARDWARE = ("a100-sxm", "h100-sxm", "h200")
DEFAULT_TPS = (1, 2, 4)


@dataclass(frozen=True)
class PlanRequest:
    """What to plan for (times in seconds, rates in requests per second, prices in USD)."""

    model: str
    rate_rps: float
    slo_ttft_p99_s: float
    slo_tpot_p99_s: float
    input_len: int | None = None
    output_len: int | None = None
    trace: str | None = None
    hardware: tuple = DEFAULT_HARDWARE
    tps: tuple | None = None  # default: DEFAULT_TPS that divide the model and fit the system
    # (scheduler, max_num_seqs[, prefill, decode replicas]); ("stack",): the serving stack's own scheduler for
    # each hardware candidate, as `llmsim serve` runs it (_stack_scheduler)
    schedulers: tuple = (("stack",),)
    quant: str = "bf16"
    quants: tuple | None = None  # quantization schemes to compare (default: just ``quant``)
    budget_usd_per_hour: float | None = None
    num_requests: int = 1000  # requests of a probe's first round (doubled until decided)
    cv: float = 1.0
    seed: int = 0
    tolerance: float = 0.05  # relative width of the sustained-rate bracket
    max_probes: int = 12
    request_budget: int = 16000  # most requests one probe simulates (its last round)
    p99_tolerance: float = 0.10  # a p99 has converged when its 95 % half-width is within this share
    growth_tolerance: float = 0.05  # arrivals may outpace completions by this share of arrivals
    verify: bool = True  # simulate the chosen fleet, grow it until it meets the SLOs
    max_growth: int = 8  # verification runs after the first
    limit: int | None = None  # use the trace's first N requests
    pps: tuple = (1,)  # pipeline-parallel degrees to try
    eps: tuple = (1,)  # expert-parallel degrees to try (MoE)
    overrides: tuple = ()  # hardware overrides ('PATH=VALUE', as --set and --price give them) for every candidate
    serving: dict | None = None  # further sim.serving.simulate keywords (router, budgets, dtypes, options...)
    # size for the slow end of the prediction interval at this level (docs/uncertainty.md): every op kind
    # priced at the Monte Carlo draw at the high end of the e2e interval; None: the point prediction
    pessimistic: float | None = None

    _PREDICT_KEYS = ("weight_dtype", "act_dtype", "kv_dtype", "options", "attention_kernel", "stack")

    def override_list(self) -> list | None:
        return list(self.overrides) or None if self.overrides else None

    def predict_kwargs(self, kind_scale: tuple = ()) -> dict:
        """The serving keywords the static predictor shares (dtypes, cost options, attention kernel), the
        options' op times scaled by ``kind_scale`` (a candidate's slow end)."""
        kw = {k: v for k, v in (self.serving or {}).items() if k in self._PREDICT_KEYS and v is not None}
        if kind_scale:
            kw["options"] = scaled_options(kw.get("options"), kind_scale)
        return kw
    top: int = 3
    api_price_in: float | None = None  # USD per million input tokens
    api_price_out: float | None = None
    cost: object = None  # sim.tco.TcoAssumptions (default: cloud price where listed)
    workers: int | None = None  # processes searching candidates (sim/plan_jobs.py; None: the usable CPUs; 1: this one)

    def check(self) -> None:
        P = []
        if not (isinstance(self.rate_rps, (int, float)) and math.isfinite(self.rate_rps) and self.rate_rps > 0):
            P.append(Problem(f"must be a finite number of requests/s > 0; got {self.rate_rps!r}", path="--rate"))
        for name, v in (("--slo-ttft-p99", self.slo_ttft_p99_s), ("--slo-tpot-p99", self.slo_tpot_p99_s)):
            if not (isinstance(v, (int, float)) and v > 0):
                P.append(Problem(f"must be a time > 0; got {v!r}", path=name))
        if self.trace is None:
            for name, v in (("--input-len", self.input_len), ("--output-len", self.output_len)):
                if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                    P.append(Problem(f"give a positive integer (or --trace FILE); got {v!r}", path=name))
        elif self.input_len is not None or self.output_len is not None:
            P.append(Problem("give either --input-len/--output-len or --trace, not both", path="--trace"))
        if self.budget_usd_per_hour is not None and not self.budget_usd_per_hour > 0:
            P.append(Problem(f"must be > 0; got {self.budget_usd_per_hour!r}", path="--budget"))
        if not self.hardware:
            P.append(Problem("give at least one hardware candidate", path="--hw"))
        for flag, v in (("--requests", self.num_requests), ("--request-budget", self.request_budget)):
            if not (isinstance(v, int) and v >= 10):
                P.append(Problem(f"must be an integer >= 10; got {v!r}", path=flag))
        for name, v in (("--p99-tolerance", self.p99_tolerance), ("--growth-tolerance", self.growth_tolerance),
                        ("--tolerance", self.tolerance)):
            if not (isinstance(v, (int, float)) and 0 < v < 1):
                P.append(Problem(f"must be a fraction in (0, 1); got {v!r}", path=name))
        if self.limit is not None and not (isinstance(self.limit, int) and self.limit >= 10):
            P.append(Problem(f"must be an integer >= 10; got {self.limit!r}", path="--limit"))
        if self.limit is not None and self.trace is None:
            P.append(Problem("--limit applies to --trace", path="--limit"))
        for flag, vals in (("--tp", self.tps or ()), ("--pp", self.pps), ("--ep", self.eps)):
            for t in vals:
                if not (isinstance(t, int) and not isinstance(t, bool) and t >= 1):
                    P.append(Problem(f"parallel degrees must be positive integers; got {t!r}", path=flag))
        for name, v in (("--api-price-in", self.api_price_in), ("--api-price-out", self.api_price_out)):
            if v is not None and not v >= 0:
                P.append(Problem(f"must be a price >= 0 (USD per million tokens); got {v!r}", path=name))
        if (self.api_price_in is None) != (self.api_price_out is None):
            P.append(Problem("give both --api-price-in and --api-price-out", path="--api-price-in"))
        if (self.serving or {}).get("prefix_caching") and any(s and s[0] == "static" for s in self.schedulers):
            from sim.config import STATIC_NO_PREFIX

            P.append(Problem(STATIC_NO_PREFIX, path="--prefix-caching"))
        if self.pessimistic is not None and not (isinstance(self.pessimistic, (int, float)) and not isinstance(
                self.pessimistic, bool) and 0 < self.pessimistic < 1):
            P.append(Problem(f"must be an interval level between 0 and 1 (exclusive), e.g. 0.8; got {self.pessimistic!r}",
                             path="--pessimistic"))
        for flag, v, what in (("--top", self.top, "configurations"),
                              ("--workers", 1 if self.workers is None else self.workers, "processes")):
            if not (type(v) is int and v >= 1):
                P.append(Problem(f"must be a number of {what} >= 1; got {v!r}", path=flag))
        if P:
            raise SpecError(P)


@dataclass
class Candidate:
    hardware: str
    tp: int
    scheduler: str
    max_num_seqs: int
    pp: int = 1
    ep: int = 1
    quant: str = "bf16"
    prefill_replicas: int = 1  # disagg: a replica is a unit of prefill + decode replicas
    decode_replicas: int = 1
    system: str = ""
    calibration: str = ""  # what the hardware's efficiency figures rest on (Chip.calibration; hardware-format docs)
    chips_per_replica: int = 0
    replica_usd_per_hour: float | None = None
    cost_source: str = ""
    price_source: str | None = None  # which hardware price, from where and of when (System.price_note)
    static_bound_rps: float = math.nan
    status: str = "pending"  # ok | fails_slo | infeasible | over_budget | no_price | skipped | error
    reason: str = ""
    sustained_rps: float = math.nan
    replicas: int = 0
    usd_per_hour: float = math.nan
    usd_per_mtok_output: float = math.nan
    utilization: float = math.nan
    headroom: float = math.nan
    ttft_p99_s: float = math.nan  # at the sustained rate
    tpot_p99_s: float = math.nan
    closeness: float = math.inf  # max(SLO ratio) at the gentlest probe (for "what came closest")
    sustained_rps_lo: float = math.nan  # the search's bracket: the highest passing probe ...
    sustained_rps_hi: float = math.nan  # ... and the lowest failing one (or the static bound)
    capped_by_bound: bool = False  # passed at the static bound (the search never goes above it)
    replicas_planned: int = 0  # before verification
    replicas_grown: int = 0
    verified: bool | None = None  # None: not verified
    verification: Verification | None = None
    serve_command: str = ""
    # with PlanRequest.pessimistic: the slow end's op-time scaling ((kind, factor), ...), its e2e over the
    # point prediction's, and the point plan of the same candidate (its own search; not verified)
    kind_scale: tuple = ()
    slow_end_e2e_ratio: float = 1.0
    static_bound_rps_point: float = math.nan
    sustained_rps_point: float = math.nan
    replicas_point: int = 0
    probes: list = field(default_factory=list)
    point_probes: list = field(default_factory=list)  # the point plan's search (with PlanRequest.pessimistic)

    @property
    def name(self) -> str:
        """The hardware as shown: a catalog name, or a file's stem."""
        h = str(self.hardware)
        return h.rsplit("/", 1)[-1].rsplit(".", 1)[0] if h.endswith((".yaml", ".yml")) else h

    @property
    def label(self) -> str:
        par = f"tp={self.tp}" + (f" pp={self.pp}" if self.pp > 1 else "") + (f" ep={self.ep}" if self.ep > 1 else "")
        sched = f"{self.scheduler}(max_num_seqs={self.max_num_seqs})"
        if self.scheduler == "disagg":
            sched = f"disagg({self.prefill_replicas}P+{self.decode_replicas}D, max_num_seqs={self.max_num_seqs})"
        return f"{self.name} {par}{'' if self.quant == 'bf16' else ' ' + self.quant} {sched}"

    @property
    def short(self) -> str:
        """The label in a few characters (for tables)."""
        par = f"tp{self.tp}" + (f" pp{self.pp}" if self.pp > 1 else "") + (f" ep{self.ep}" if self.ep > 1 else "")
        sched = f"{self.scheduler}:{self.max_num_seqs}" + (
            f":{self.prefill_replicas}P{self.decode_replicas}D" if self.scheduler == "disagg" else "")
        return f"{self.name} {par}{'' if self.quant == 'bf16' else ' ' + self.quant} {sched}"

    @property
    def chips_per_unit(self) -> int:
        """Chips of one replica (tp x pp), or of one prefill + decode unit (disagg)."""
        per = self.tp * self.pp
        return per * (self.prefill_replicas + self.decode_replicas) if self.scheduler == "disagg" else per

    def serve_flags(self) -> list:
        return [f for f, on in ((f"--pp {self.pp}", self.pp > 1), (f"--ep {self.ep}", self.ep > 1)) if on]

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("probes", "verification",
                                                                                 "point_probes")}
        d["probes"] = [p.__dict__ for p in self.probes]
        d["point_probes"] = [p.__dict__ for p in self.point_probes]
        d["kind_scale"] = [list(x) for x in self.kind_scale]
        d["verification"] = None if self.verification is None else {
            k: v for k, v in self.verification.__dict__.items() if k != "history"} | {
            "history": [h.__dict__ for h in self.verification.history]}
        d["label"] = self.label
        d["name"] = self.name
        return d


@dataclass
class PlanResult:
    request: PlanRequest
    candidates: list  # every candidate, best first (ok ones by cost), then the others
    best: list  # the top ok candidates
    input_len_mean: float
    output_len_mean: float
    api_usd_per_hour: float | None
    probes: int
    wall_s: float
    notes: list
    closest: Candidate | None = None
    warnings: tuple = ()  # the model config's, then requests longer than the model (a what-if): stderr and JSON

    @property
    def stack(self) -> str:
        """The name of the serving-stack profile every probe ran (``serving['stack']``; None: the default)."""
        return load_stack((self.request.serving or {}).get("stack")).name

    def to_dict(self) -> dict:
        r = self.request
        return {"model": r.model, "stack": self.stack, "pessimistic": self.pessimistic(),
                "rate_rps": r.rate_rps, "slo_ttft_p99_s": r.slo_ttft_p99_s,
                "slo_tpot_p99_s": r.slo_tpot_p99_s, "input_len_mean": self.input_len_mean,
                "output_len_mean": self.output_len_mean, "budget_usd_per_hour": r.budget_usd_per_hour,
                "num_requests_per_probe": r.num_requests, "request_budget": r.request_budget,
                "verification": self.verification(), "best": [c.to_dict() for c in self.best],
                "candidates": [c.to_dict() for c in self.candidates], "api_usd_per_hour": self.api_usd_per_hour,
                "closest": None if self.closest is None else self.closest.to_dict(), "probes": self.probes,
                "wall_s": self.wall_s, "notes": self.notes, "warnings": list(self.warnings)}

    def pessimistic(self) -> dict | None:
        """Which interval level the fleet was sized for, and the point and slow-end fleet sizes of the best."""
        r = self.request
        if r.pessimistic is None:
            return None
        b = self.best[0] if self.best else None
        return {"interval_level": r.pessimistic, "quantile": (1 + r.pessimistic) / 2, "metric": "e2e_s",
                "replicas": None if b is None else b.replicas, "replicas_point": None if b is None else b.replicas_point,
                "sustained_rps": None if b is None else b.sustained_rps,
                "sustained_rps_point": None if b is None else b.sustained_rps_point,
                "slow_end_e2e_ratio": None if b is None else b.slow_end_e2e_ratio,
                "how": "every op kind's time scaled by the Monte Carlo draw at the high end of the e2e interval "
                       "(sim.uncertainty.slow_end_scales, the error model's serving engine term) for a full batch; probes, static bound and verification "
                       "priced with it; the point plan (replicas_point) is searched first with unscaled prices and "
                       "the slow-end search never goes above its sustained rate"}

    def verification(self) -> dict | None:
        """The chosen (first) configuration's fleet simulation: attainment, p99s, replicas grown."""
        if not self.best or self.best[0].verification is None:
            return None
        c = self.best[0]
        v = c.verification
        return {"verified": c.verified, "replicas": c.replicas, "replicas_planned": c.replicas_planned,
                "replicas_grown": c.replicas_grown, "requests": v.requests, "slo_attainment": v.slo_attainment,
                "ttft_p99_s": v.ttft_p99_s, "tpot_p99_s": v.tpot_p99_s, "throughput_rps": v.throughput_rps,
                "rejected": v.rejected, "why": v.why, "serve_command": c.serve_command,
                "replicas_point": c.replicas_point if self.request.pessimistic is not None else None,
                "missed": [{"replicas": h.replicas, "ttft_p99_s": h.ttft_p99_s, "tpot_p99_s": h.tpot_p99_s,
                            "slo_attainment": h.slo_attainment, "why": h.why} for h in v.history]}


# ---------------------------------------------------------------------------------------------

def _workload(req: PlanRequest) -> tuple[float, float, Workload]:
    """(mean input, mean output, the workload)."""
    if req.trace is None:
        return float(req.input_len), float(req.output_len), Workload(input_len=req.input_len,
                                                                     output_len=req.output_len, cv=req.cv)
    from workloads.trace import load_trace

    tr = load_trace(req.trace, limit=req.limit)
    return float(tr.input_tokens.mean()), float(tr.output_tokens.mean()), Workload(trace=tr, trace_name=req.trace)


def _default_tps(model, tps) -> list:
    spec = load_model(model)
    out = []
    for t in tps:
        if spec.heads % t == 0 and (spec.kv_heads % t == 0 or t % spec.kv_heads == 0):
            out.append(t)
    return out


def _system(req: PlanRequest, hw: str, chips: int):
    from sim.predict import resolve_system

    system, _ = resolve_system(hw, chips, req.override_list())
    return system


def _cost(system, chips, assumptions):
    from sim.tco import tco_per_hour

    t = tco_per_hour(system, chips, assumptions)
    usd = float(t["usd_per_hour"])
    return (None if math.isnan(usd) else usd), str(t["source"])


def scaled_options(options, kind_scale: tuple):
    """``options`` (a CostOptions, default when None) with every op kind's time also scaled by ``kind_scale``."""
    from dataclasses import replace

    from sim.cost import CostOptions

    opts = options if options is not None else CostOptions()
    merged = dict(opts.kind_scale)
    for k, f in kind_scale:
        merged[k] = merged.get(k, 1.0) * f
    return replace(opts, kind_scale=tuple(sorted(merged.items())))


def _static(req: PlanRequest, cand: Candidate, lin: float, lout: float, kind_scale: tuple = (), full: list | None = None):
    """(lone-request TTFT, TPOT, bound on the rate one replica (or disagg unit) sustains) from
    sim.predict: full batches of the largest size that fits, ``batch / e2e``; for a disagg unit the
    smaller of its prefill pool's rate (``P x batch / TTFT``) and its decode pool's
    (``D x batch / (output tokens x TPOT)``). Op times scaled by ``kind_scale``; ``full`` receives the
    full-batch prediction."""
    from sim.predict import predict

    kw = dict(tp=cand.tp, pp=cand.pp, ep=cand.ep, quant=cand.quant, overrides=req.override_list(),
              **req.predict_kwargs(kind_scale))
    L, O = max(1, round(lin)), max(1, round(lout))
    alone = predict(req.model, cand.hardware, 1, L, O, check_memory=True, **kw)
    b = cand.max_num_seqs
    if cand.scheduler != "disagg":  # no more requests than the serving KV budget holds (the formula simulate uses)
        kv = _kv_budget(req, cand)
        b = max(1, min(b, kv.num_blocks // -(-(L + O) // kv.block_size)))
    while b > 1:
        p = predict(req.model, cand.hardware, b, L, O, check_memory=False, samples=9, **kw)
        if p.fits:
            break
        b //= 2
    else:
        p = alone
    if cand.scheduler == "disagg":
        pre = cand.prefill_replicas * p.batch / p.ttft_s if p.ttft_s > 0 else math.inf
        dec = cand.decode_replicas * p.batch / (O * p.tpot_s) if p.tpot_s > 0 else math.inf
        bound = min(pre, dec)
    else:
        bound = p.batch / p.e2e_s if p.e2e_s > 0 else math.inf
    if full is not None:
        full.append(p)
    return alone.ttft_s, alone.tpot_s, bound


def _kv_budget(req: PlanRequest, cand: Candidate):
    """The serving KV budget of one replica of ``cand`` (sim.serving.simulate.kv_budget, with the settings the
    probes simulate with)."""
    from sim.serving.simulate import kv_budget

    kw = dict(req.serving or {}, tp=cand.tp, pp=cand.pp, ep=cand.ep, quant=cand.quant, scheduler=cand.scheduler,
              max_num_seqs=cand.max_num_seqs)
    if req.overrides:
        kw["overrides"] = req.override_list()
    return kv_budget(_system(req, cand.hardware, cand.tp * cand.pp), req.model, **kw)


def _check_names(req: PlanRequest) -> None:
    """A misspelled model or hardware is bad input (exit 2), not a candidate that failed."""
    from hwmodels import load_hardware

    from sim.predict import make_quantization

    load_model(req.model)
    for q in req.quants or (req.quant,):
        make_quantization(q)
    problems = []
    for hw in req.hardware:
        try:
            load_hardware(hw, req.overrides)
        except SpecError as e:
            problems += e.problems
    if problems:
        raise SpecError(problems)


def _candidates(req: PlanRequest, tps: list) -> list:
    out = []
    import itertools

    for hw, tp, pp, ep, q, s in itertools.product(req.hardware, tps, req.pps, req.eps, req.quants or (req.quant,),
                                                  req.schedulers):
        if s[0] == "stack":
            s = _stack_scheduler(req, hw)
        pre, dec = (s[2], s[3]) if len(s) >= 4 else (1, 1)
        out.append(Candidate(hw, tp, s[0], s[1], pp=pp, ep=ep, quant=q, prefill_replicas=pre, decode_replicas=dec))
    return out


def _stack_scheduler(req: PlanRequest, hw) -> tuple:
    """(scheduler, max_num_seqs) the serving stack runs on ``hw`` as a server (`llmsim serve`'s defaults:
    sim.config.ServingConfig.with_stack): chunked prefill (sarathi) where the stack chunks prefills, its
    sequence limit for the chip (vLLM: 1,024, or 256 on an A100 or a device under 70 GiB); the token budget
    follows in each simulation the same way."""
    from hwmodels.loader import load_hardware

    st = load_stack((req.serving or {}).get("stack"))
    h = load_hardware(hw, req.overrides)
    _, seqs = st.scheduler_limits("server", getattr(h, "chip", h))
    return ("sarathi" if st.chunked_prefill else "vllm", seqs)


def _prepare(req: PlanRequest, c: Candidate, lin: float, lout: float, assumptions) -> None:
    """System, price and static screening of one candidate (sets its status when it fails)."""
    try:
        system = _system(req, c.hardware, c.tp * c.pp)
        c.system, c.calibration = system.name, system.calibration
        c.chips_per_replica = c.chips_per_unit
        c.replica_usd_per_hour, c.cost_source = _cost(system, c.chips_per_unit, assumptions)
        c.price_source = system.price_note(c.chips_per_unit) if c.cost_source == "cloud" else None
        if req.pessimistic is not None:
            from sim.uncertainty import slow_end_scales

            full: list = []
            c.static_bound_rps_point = _static(req, c, lin, lout, full=full)[2]
            c.kind_scale, c.slow_end_e2e_ratio = slow_end_scales(  # serving runs verify it: the serving term
                full[0], system, req.pessimistic, options=req.predict_kwargs().get("options"), term="serving")
        ttft1, tpot1, bound = _static(req, c, lin, lout, c.kind_scale)
        c.static_bound_rps = bound
        if ttft1 > req.slo_ttft_p99_s or tpot1 > req.slo_tpot_p99_s:
            c.status = "fails_slo"
            worst = "TTFT" if ttft1 / req.slo_ttft_p99_s >= tpot1 / req.slo_tpot_p99_s else "TPOT"
            c.reason = (f"misses the {worst} SLO even for a lone request (static: TTFT {_t(ttft1)}, "
                        f"TPOT {_t(tpot1)})")
            c.closeness = max(ttft1 / req.slo_ttft_p99_s, tpot1 / req.slo_tpot_p99_s)
        elif c.replica_usd_per_hour is None:
            c.status = "no_price"
            c.reason = f"{c.system} lists no " + {
                "purchase": "purchase price (--cost purchase): give --purchase-price USD, or --cost cloud",
                "cloud": "cloud price (--cost cloud): give --price USD/h, or --cost purchase",
            }.get(getattr(assumptions, "source", "auto"),
                  "cloud or purchase price: give --price USD/h or --purchase-price USD, or another --hw")
    except InfeasibleError as e:
        c.status = "infeasible"
        c.reason = str(e)
    except SpecError as e:
        c.status = "error"
        c.reason = "; ".join(p.message for p in e.problems)


def plan(req: PlanRequest, simulate=None, progress=None) -> PlanResult:
    """Search (see the module docstring). ``simulate``: sim.serving.simulate or a stand-in (tests).

    ``progress``: a callable(str) told about each probe and verification (the CLI prints to stderr)."""
    from sim.tco import TcoAssumptions

    req.check()
    t0 = time.perf_counter()
    assumptions = req.cost or TcoAssumptions()
    if simulate is None:
        from sim.sweep.serving import get_simulate

        simulate = get_simulate()
    _check_names(req)
    lin, lout, wl = _workload(req)
    tps = list(req.tps) if req.tps else _default_tps(req.model, DEFAULT_TPS)
    if not tps:
        raise InfeasibleError(f"none of tp {list(req.tps or DEFAULT_TPS)} divides {req.model}'s attention heads")
    budget = int(min(req.request_budget, wl.max_requests))
    arrivals = ("replaying the trace (its first n requests rescaled to the probed mean rate, as "
                "`serve --trace --limit n --rate` does)" if wl.trace is not None else
                f"{'Poisson' if req.cv == 1 else 'fixed-rate' if req.cv == 0 else f'gamma cv={req.cv:g}'} arrivals, {int(lin)} in / {int(lout)} out tokens")
    notes = [f"probes: {req.num_requests} requests first, doubled until decided (at most {budget}); {arrivals}, "
             f"seed {req.seed}; warm-up dropped (MSER-5 on TTFT); p99s with 95 % batch-means intervals, converged "
             f"within {req.p99_tolerance:.0%}; a growing queue fails a probe",
             "sustained rate per replica: the highest rate whose probe passed, never above the static bound; "
             "its interval is the search's bracket [highest passing, lowest failing]",
             ("verification: the chosen fleet is simulated at the full rate (all replicas, the router, "
              + ("the whole trace" if wl.trace is not None else "the synthetic stream")
              + "), grown until its p99s meet the SLOs") if req.verify else
             "not verified (replicas assumed to scale linearly)",
             "cost: " + "; ".join(assumptions.describe())]
    if req.pessimistic is not None:
        notes.append(f"pessimistic: sized for the slow end of the {req.pessimistic:.0%} prediction interval "
                     f"(docs/uncertainty.md): each candidate's op times scaled per kind by the Monte Carlo draw at the "
                     f"high end of a full batch's e2e interval (quantile {(1 + req.pessimistic) / 2:.3g}); the point "
                     f"plan is searched first and reported beside it")
    cands = _candidates(req, tps)
    for c in cands:
        _prepare(req, c, lin, lout, assumptions)

    # cheapest lower bound first, each fate decided in this order wherever its search ran (sim/plan_jobs.py)
    visit = [c for c in sorted(cands, key=lambda c: _lower_bound(req, c)) if c.status == "pending"]
    probes = 0
    found: list = []
    with Jobs(req, wl, simulate, budget, lout, progress, work=len(visit), task=run_task) as jobs:
        for i, c in enumerate(visit):
            if _settled_unsearched(req, c, found):
                jobs.discard(c)
                continue
            jobs.ahead([d for d in visit[i:] if _needs_search(req, d, found)])
            probes += jobs.search(c)
            _admit(req, c, lout, found)
        if req.verify:
            jobs.settle()
            jobs.verify_best(cands)
    ok = sorted([c for c in cands if c.status == "ok"], key=lambda c: (c.usd_per_hour, -c.headroom))
    order = {"ok": 0, "over_budget": 1, "fails_slo": 2, "skipped": 3, "no_price": 4, "infeasible": 5, "error": 6}
    rest = sorted([c for c in cands if c not in ok], key=lambda c: (order.get(c.status, 9), c.usd_per_hour
                                                                      if not math.isnan(c.usd_per_hour) else math.inf))
    best = ok[: req.top]
    if req.verify:
        best = [c for c in best if c.verified]
        rest = [c for c in ok if c not in best] + rest
    closest = None
    if not best:
        over = [c for c in cands if c.status == "over_budget" and c.replicas]
        if over:
            closest = min(over, key=lambda c: c.usd_per_hour)
        else:
            tried = [c for c in cands if c.closeness < math.inf]
            closest = min(tried, key=lambda c: c.closeness) if tried else None
    api = None
    if req.api_price_in is not None:
        api = req.rate_rps * 3600.0 * (lin * req.api_price_in + lout * req.api_price_out) / 1e6
    warn = model_warnings(req.model) + wl.context_warnings(load_model(req.model), (req.serving or {}).get("max_model_len"))
    return PlanResult(req, best + rest, best, lin, lout, api, probes, time.perf_counter() - t0, notes, closest, tuple(warn))


def _lower_bound(req: PlanRequest, c: Candidate) -> float:
    """USD/h of the replicas a candidate needs at its static bound (a pending candidate's least cost)."""
    if c.status != "pending":
        return math.inf
    return math.ceil(req.rate_rps / c.static_bound_rps - 1e-9) * c.replica_usd_per_hour


def _needs_search(req: PlanRequest, c: Candidate, found: list) -> bool:
    """Whether candidate ``c`` is still to be searched: pending, its lower bound within the budget and below
    the ``top``-th cheapest configuration ``found`` so far (``found`` only grows: once False, False for good)."""
    lb = _lower_bound(req, c)
    over = req.budget_usd_per_hour is not None and lb > req.budget_usd_per_hour
    beaten = len(found) >= req.top and lb > sorted(x.usd_per_hour for x in found)[req.top - 1]
    return c.status == "pending" and not over and not beaten


def _settled_unsearched(req: PlanRequest, c: Candidate, found: list) -> bool:
    """Settle ``c`` unsearched (status, reason) when over the budget or beaten by those found; else False."""
    if _needs_search(req, c, found):
        return False
    lb = _lower_bound(req, c)
    if req.budget_usd_per_hour is not None and lb > req.budget_usd_per_hour:
        c.status = "over_budget"
        c.reason = (f"needs at least {math.ceil(req.rate_rps / c.static_bound_rps - 1e-9)} replica(s) "
                    f"(static bound {c.static_bound_rps:.3g} req/s each) = {lb:.2f} USD/h > budget "
                    f"{req.budget_usd_per_hour:g} USD/h")
        c.usd_per_hour = lb
    else:
        c.status = "skipped"
        c.reason = (f"cannot beat the {req.top} cheaper configurations found: even at its static bound "
                    f"({c.static_bound_rps:.3g} req/s per replica) it costs at least {lb:.2f} USD/h")
    return True


def search_candidate(req: PlanRequest, c: Candidate, wl: Workload, simulate, budget: int, progress) -> int:
    """One candidate's search (the point plan's first with ``pessimistic``): the probes counted; one that
    cannot be simulated (InfeasibleError, SpecError) is settled with its reason."""
    n = 0
    try:
        if req.pessimistic is not None:
            n += _point_search(req, c, wl, simulate, budget, progress)
        if c.status == "pending":
            n += _search(req, c, wl, _sim_call(req, c, simulate), budget, progress)
    except (InfeasibleError, SpecError) as e:
        c.status = "infeasible" if isinstance(e, InfeasibleError) else "error"
        c.reason = str(e) if isinstance(e, InfeasibleError) else "; ".join(p.message for p in e.problems)
    return n


def _admit(req: PlanRequest, c: Candidate, lout: float, found: list) -> None:
    """After its search: size a candidate that sustains a rate; found unless over budget."""
    if c.status != "ok":
        return
    _size(req, c, c.replicas_planned or max(1, math.ceil(req.rate_rps / c.sustained_rps - 1e-9)), lout)
    c.replicas_planned = c.replicas
    if not _over_budget(req, c):
        found.append(c)


def _point_search(req: PlanRequest, c: Candidate, wl: Workload, simulate, budget: int, progress) -> int:
    """The point plan of a candidate planned for the slow end: the same search with unscaled prices (its
    sustained rate and replicas are reported beside the slow end's); the slow-end search is then capped at
    the point's sustained rate (op times at least as slow never sustain more), so it never needs fewer
    replicas. A candidate that misses the SLOs at the point prediction misses them at the slow end."""
    from dataclasses import replace

    twin = replace(c, kind_scale=(), static_bound_rps=c.static_bound_rps_point, probes=[], status="pending")
    tell = (lambda m: progress("[point] " + m)) if progress else None
    n = _search(req, twin, wl, _sim_call(req, twin, simulate), budget, tell)
    c.point_probes = twin.probes
    c.closeness = min(c.closeness, twin.closeness)
    if twin.status != "ok":
        c.status, c.reason = twin.status, twin.reason + " (at the point prediction, before the slow end)"
        return n
    c.sustained_rps_point = twin.sustained_rps
    c.replicas_point = max(1, math.ceil(req.rate_rps / twin.sustained_rps - 1e-9))
    c.static_bound_rps = min(c.static_bound_rps, twin.sustained_rps)
    return n


def _size(req: PlanRequest, c: Candidate, replicas: int, lout: float) -> None:
    c.replicas = replicas
    c.usd_per_hour = c.replicas * c.replica_usd_per_hour
    c.usd_per_mtok_output = usd_per_mtok(c.usd_per_hour / 3600.0, 1.0, req.rate_rps * lout)
    c.utilization = req.rate_rps / (c.replicas * c.sustained_rps)
    c.headroom = 1.0 - c.utilization


def _over_budget(req: PlanRequest, c: Candidate) -> bool:
    if req.budget_usd_per_hour is None or c.usd_per_hour <= req.budget_usd_per_hour:
        return False
    c.status = "over_budget"
    grown = f" (grown from {c.replicas_planned} by the verification)" if c.replicas_grown else ""
    c.reason = (f"meets the SLOs with {c.replicas} replica(s){grown} at {c.usd_per_hour:.2f} USD/h > budget "
                f"{req.budget_usd_per_hour:g} USD/h")
    return True


def _sim_call(req: PlanRequest, c: Candidate, simulate):
    """scenario, replicas -> a simulation of ``replicas`` replicas (disagg: units) of candidate ``c``."""
    system = _system(req, c.hardware, c.tp * c.pp)
    extra = dict(req.serving or {})
    if c.kind_scale:
        extra["options"] = scaled_options(extra.get("options"), c.kind_scale)

    def call(scenario, replicas: int):
        kw = dict(extra, tp=c.tp, quant=c.quant, scheduler=c.scheduler, max_num_seqs=c.max_num_seqs,
                  seed=req.seed, slo_ttft_s=req.slo_ttft_p99_s, slo_tpot_s=req.slo_tpot_p99_s)
        if c.pp > 1:
            kw["pp"] = c.pp
        if c.ep > 1:
            kw["ep"] = c.ep
        if req.overrides:
            kw["overrides"] = req.override_list()
        if c.scheduler == "disagg":
            kw.update(prefill_replicas=c.prefill_replicas * replicas, decode_replicas=c.decode_replicas * replicas)
        elif replicas > 1:
            kw["replicas"] = replicas
        return simulate(scenario, system, req.model, **kw)

    return call


def _t(s: float) -> str:
    if s is None or s != s:  # noqa: PLR0124
        return "-"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _search(req: PlanRequest, c: Candidate, wl: Workload, call, budget: int, progress) -> int:
    """Find the largest rate one replica sustains within the SLOs, at most the static bound; sets
    c.status, c.sustained_rps and its bracket. Returns the number of probes."""
    def run(rate):
        p = probe(req, wl, call, rate, budget)
        c.probes.append(p)
        if progress:
            ci = "" if not math.isfinite(p.ttft_p99_ci_s) else f" (+-{_t(p.ttft_p99_ci_s)})"
            progress(f"{c.label}: {rate:.4g} req/s, {p.requests} requests -> p99 TTFT {_t(p.ttft_p99_s)}{ci}, "
                     f"p99 TPOT {_t(p.tpot_p99_s)}: {'ok' if p.ok else 'misses'} ({p.decided_by}"
                     + (f": {p.why}" if p.why else "") + ")")
        ratio = max(p.ttft_p99_s / req.slo_ttft_p99_s, p.tpot_p99_s / req.slo_tpot_p99_s)
        if not math.isnan(ratio):
            c.closeness = min(c.closeness, ratio)
        return p

    bound = c.static_bound_rps
    hi = bound
    r = bound
    floor = bound / 2 ** 10
    while True:  # step down from the bound until a probe passes
        p = run(r)
        if p.ok:
            lo, best = r, p
            break
        hi = r
        # halve, or jump to just below what the replica served while overloaded (at most 8x down)
        r = max(r / 8, min(r / 2, 0.95 * p.served_rps)) if p.served_rps > 0 else r / 2
        if r < floor or len(c.probes) >= req.max_probes:
            g = min(c.probes, key=lambda q: q.rate_rps)
            c.status = "fails_slo"
            c.reason = (f"misses the SLOs even at {g.rate_rps:.3g} req/s per replica (p99 TTFT {_t(g.ttft_p99_s)}, "
                        f"p99 TPOT {_t(g.tpot_p99_s)}" + (f"; {g.why}" if g.why else "") + ")")
            return len(c.probes)
    c.capped_by_bound = lo >= bound
    while hi > lo and (hi - lo) > req.tolerance * lo and len(c.probes) < req.max_probes:
        # bisect; while the bracket is wide, first try just above what the failing probe at hi served
        served = [1.05 * q.served_rps for q in c.probes if not q.ok and q.rate_rps == hi and q.served_rps > 0]
        mid = (lo + hi) / 2
        if hi > 1.5 * lo and served and lo * (1 + req.tolerance) < served[0] < mid:
            mid = served[0]
        p = run(mid)
        if p.ok:
            lo, best = mid, p
        else:
            hi = mid
    c.status = "ok"
    c.sustained_rps = lo
    c.sustained_rps_lo, c.sustained_rps_hi = lo, hi
    c.ttft_p99_s, c.tpot_p99_s = best.ttft_p99_s, best.tpot_p99_s
    return len(c.probes)


def run_task(verify: bool, req, c: Candidate, wl: Workload, simulate, budget: int, lout: float, progress) -> int:
    """One candidate's search (returns its probes) or verification (returns 0), here or in a worker."""
    if verify:
        verify_candidate(req, c, wl, simulate, lout, progress)
        return 0
    return search_candidate(req, c, wl, simulate, budget, progress)


def verify_candidate(req: PlanRequest, c: Candidate, wl: Workload, simulate, lout: float, progress) -> None:
    """Verify one candidate's fleet (:func:`_verify_one`); a fleet that cannot be simulated is an error."""
    try:
        _verify_one(req, c, wl, simulate, lout, progress)
    except (InfeasibleError, SpecError) as e:
        c.verified, c.status = False, "error"
        c.reason = "the fleet simulation failed: " + (str(e) if isinstance(e, InfeasibleError) else
                                                      "; ".join(p.message for p in e.problems))


def _verify_one(req: PlanRequest, c: Candidate, wl: Workload, simulate, lout: float, progress) -> None:
    call = _sim_call(req, c, simulate)
    deciding = max((p.requests for p in c.probes if p.ok), default=req.num_requests)
    history = []
    n_replicas = c.replicas
    for _ in range(req.max_growth + 1):
        n = int(wl.max_requests) if wl.trace is not None else int(min(max(deciding * n_replicas, 2000), 200_000))
        v = verify(req, wl, call, req.rate_rps, n_replicas, n)
        if progress:
            progress(f"verify {c.label} x{n_replicas} at {req.rate_rps:g} req/s, {n} requests -> p99 TTFT "
                     f"{_t(v.ttft_p99_s)}, p99 TPOT {_t(v.tpot_p99_s)}, SLO attainment {v.slo_attainment:.1%}: "
                     + ("ok" if v.ok else f"misses ({v.why})"))
        if v.ok:
            break
        history.append(v)
        n_replicas += 1
    v.history = history
    c.verification = v
    c.verified = v.ok
    c.replicas_grown = v.replicas - c.replicas_planned
    _size(req, c, v.replicas, lout)
    c.serve_command = serve_command(req, c, v.replicas, v.requests)
    if not v.ok:
        c.status = "fails_slo"
        c.reason = (f"the fleet misses the SLOs in verification even at {v.replicas} replicas "
                    f"(planned {c.replicas_planned}): {v.why}")
        return
    _over_budget(req, c)
