"""Capacity planning: the cheapest hardware, parallelism, scheduler and replica count for a traffic
and its latency SLOs, found with the serving simulator.

For each candidate configuration (hardware x tp x scheduler settings):

1. a static bound: the request rate one replica would sustain running full batches
   (``sim.predict`` at the largest batch that fits, up to ``max_num_seqs``), and the static TTFT
   and TPOT of a lone request; if those already miss an SLO the candidate fails without a
   simulation ("misses the TPOT SLO even alone");
2. a search on the rate one replica sustains within the SLOs: each *probe* simulates
   ``num_requests`` requests at a rate (sim.serving.simulate, Poisson arrivals or the trace
   replayed at that mean rate, the same seed at every probe) and passes when p99 TTFT and p99
   TPOT are within the SLOs and every request completed. The search steps down from the bound
   (x1/3) until a probe passes, then bisects until the bracket is within ``tolerance``;
3. replicas = ceil(target rate / sustained rate); cost per hour = replicas x the cost of one
   replica's chips (sim.tco: cloud price, or purchase + power); USD per million output tokens at
   the target traffic; utilization = target / (replicas x sustained), headroom = 1 - utilization.

Candidates are visited cheapest lower bound first, and a candidate whose lower-bound cost cannot
beat the ``top``-th configuration already found is skipped (said so in the result). Each
result names why a candidate was not chosen; when nothing meets the SLOs (or the budget), the
result says what came closest.

Assumptions stated in the output: replicas scale linearly behind a round-robin router (each
receives target/replicas of the traffic, which the search showed one replica sustains), the
probe length (``num_requests``) bounds what p99 means, and the arrival process.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from hwmodels.errors import InfeasibleError, Problem, SpecError
from sim.metrics import usd_per_mtok

__all__ = ["DEFAULT_HARDWARE", "DEFAULT_TPS", "Candidate", "PlanRequest", "PlanResult", "plan"]

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
    schedulers: tuple = (("vllm", 256),)  # (scheduler, max_num_seqs)
    quant: str = "bf16"
    budget_usd_per_hour: float | None = None
    num_requests: int = 300
    cv: float = 1.0
    seed: int = 0
    tolerance: float = 0.05
    max_probes: int = 12
    top: int = 3
    api_price_in: float | None = None  # USD per million input tokens
    api_price_out: float | None = None
    cost: object = None  # sim.tco.TcoAssumptions (default: cloud price where listed)
    overrides: tuple = ()  # hardware overrides ('PATH=VALUE', as --set and --price give them) for every candidate

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
        if not (isinstance(self.num_requests, int) and self.num_requests >= 10):
            P.append(Problem(f"must be an integer >= 10; got {self.num_requests!r}", path="--requests"))
        for t in self.tps or ():
            if not (isinstance(t, int) and t >= 1):
                P.append(Problem(f"tensor-parallel degrees must be positive integers; got {t!r}", path="--tp"))
        for name, v in (("--api-price-in", self.api_price_in), ("--api-price-out", self.api_price_out)):
            if v is not None and not v >= 0:
                P.append(Problem(f"must be a price >= 0 (USD per million tokens); got {v!r}", path=name))
        if (self.api_price_in is None) != (self.api_price_out is None):
            P.append(Problem("give both --api-price-in and --api-price-out", path="--api-price-in"))
        if P:
            raise SpecError(P)


@dataclass
class Probe:
    rate_rps: float
    ok: bool
    ttft_p99_s: float
    tpot_p99_s: float
    completed: int
    wall_s: float


@dataclass
class Candidate:
    hardware: str
    tp: int
    scheduler: str
    max_num_seqs: int
    system: str = ""
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
    probes: list = field(default_factory=list)

    @property
    def name(self) -> str:
        """The hardware as shown: a catalog name, or a file's stem."""
        h = str(self.hardware)
        return h.rsplit("/", 1)[-1].rsplit(".", 1)[0] if h.endswith((".yaml", ".yml")) else h

    @property
    def label(self) -> str:
        return f"{self.name} tp={self.tp} {self.scheduler}(max_num_seqs={self.max_num_seqs})"

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "probes"}
        d["probes"] = [p.__dict__ for p in self.probes]
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

    def to_dict(self) -> dict:
        r = self.request
        return {"model": r.model, "rate_rps": r.rate_rps, "slo_ttft_p99_s": r.slo_ttft_p99_s,
                "slo_tpot_p99_s": r.slo_tpot_p99_s, "input_len_mean": self.input_len_mean,
                "output_len_mean": self.output_len_mean, "budget_usd_per_hour": r.budget_usd_per_hour,
                "num_requests_per_probe": r.num_requests, "best": [c.to_dict() for c in self.best],
                "candidates": [c.to_dict() for c in self.candidates], "api_usd_per_hour": self.api_usd_per_hour,
                "closest": None if self.closest is None else self.closest.to_dict(), "probes": self.probes,
                "wall_s": self.wall_s, "notes": self.notes}


# ---------------------------------------------------------------------------------------------

def _lengths(req: PlanRequest):
    """(mean input, mean output, trace or None)."""
    if req.trace is None:
        return float(req.input_len), float(req.output_len), None
    from workloads.trace import load_trace

    tr = load_trace(req.trace)
    return float(tr.input_tokens.mean()), float(tr.output_tokens.mean()), tr


def _scenario(req: PlanRequest, trace, rate: float):
    if trace is not None:
        sc = trace.scenario(rate_rps=rate)
        from dataclasses import replace

        return replace(sc, num_requests=min(req.num_requests, trace.num_requests))
    from workloads.scenario import Scenario, arrival_process

    return Scenario(arrival_process(rate, req.cv), input_tokens=req.input_len, output_tokens=req.output_len,
                    num_requests=req.num_requests)


def _default_tps(model, tps) -> list:
    from workloads import load_model

    spec = load_model(model)
    out = []
    for t in tps:
        if spec.heads % t == 0 and (spec.kv_heads % t == 0 or t % spec.kv_heads == 0):
            out.append(t)
    return out


def _system(hw: str, chips: int, overrides=None):
    from sim.predict import resolve_system

    system, _ = resolve_system(hw, chips, list(overrides) or None if overrides else None)
    return system


def _cost(system, chips, assumptions):
    from sim.tco import tco_per_hour

    t = tco_per_hour(system, chips, assumptions)
    usd = float(t["usd_per_hour"])
    return (None if math.isnan(usd) else usd), str(t["source"])


def _static(req: PlanRequest, cand: Candidate, lin: float, lout: float):
    """(lone-request TTFT, TPOT, bound on the rate one replica sustains) from sim.predict."""
    from sim.predict import predict

    L, O = max(1, round(lin)), max(1, round(lout))
    ovr = list(req.overrides) or None
    alone = predict(req.model, cand.hardware, 1, L, O, tp=cand.tp, quant=req.quant, check_memory=True, overrides=ovr)
    b = cand.max_num_seqs
    while b > 1:
        p = predict(req.model, cand.hardware, b, L, O, tp=cand.tp, quant=req.quant, check_memory=False, samples=9,
                    overrides=ovr)
        if p.fits:
            break
        b //= 2
    else:
        p = alone
    bound = p.batch / p.e2e_s if p.e2e_s > 0 else math.inf
    return alone.ttft_s, alone.tpot_s, bound


def plan(req: PlanRequest, simulate=None, progress=None) -> PlanResult:
    """Search (see the module docstring). ``simulate``: sim.serving.simulate or a stand-in (tests).

    ``progress``: a callable(str) told about each probe (the CLI prints to stderr).
    """
    from sim.tco import TcoAssumptions

    req.check()
    t0 = time.perf_counter()
    assumptions = req.cost or TcoAssumptions()
    if simulate is None:
        from sim.sweep.serving import get_simulate

        simulate = get_simulate()
    lin, lout, trace = _lengths(req)
    tps = list(req.tps) if req.tps else _default_tps(req.model, DEFAULT_TPS)
    if not tps:
        raise InfeasibleError(f"none of tp {list(req.tps or DEFAULT_TPS)} divides {req.model}'s attention heads")
    notes = [f"each probe simulates {req.num_requests} requests "
             + ("replaying the trace at the probed mean rate" if trace is not None else
                f"({'Poisson' if req.cv == 1 else f'gamma cv={req.cv}'} arrivals, {int(lin)} in / {int(lout)} out tokens)")
             + f", seed {req.seed}; p99 over so few requests is noisy",
             "replicas scale linearly: each replica receives target/replicas of the traffic (round-robin)",
             "cost: " + "; ".join(assumptions.describe())]
    cands = []
    for hw in req.hardware:
        for tp in tps:
            for sched, mns in req.schedulers:
                cands.append(Candidate(hw, tp, sched, mns))
    # prepare: systems, prices, static bounds
    for c in cands:
        try:
            system = _system(c.hardware, c.tp, req.overrides)
            c.system = system.name
            c.chips_per_replica = c.tp
            c.replica_usd_per_hour, c.cost_source = _cost(system, c.tp, assumptions)
            c.price_source = system.price_note(c.tp) if c.cost_source == "cloud" else None
            ttft1, tpot1, bound = _static(req, c, lin, lout)
            c.static_bound_rps = bound
            if ttft1 > req.slo_ttft_p99_s or tpot1 > req.slo_tpot_p99_s:
                c.status = "fails_slo"
                worst = "TTFT" if ttft1 / req.slo_ttft_p99_s >= tpot1 / req.slo_tpot_p99_s else "TPOT"
                c.reason = (f"misses the {worst} SLO even for a lone request (static: TTFT {_t(ttft1)}, "
                            f"TPOT {_t(tpot1)})")
                c.closeness = max(ttft1 / req.slo_ttft_p99_s, tpot1 / req.slo_tpot_p99_s)
            elif c.replica_usd_per_hour is None:
                c.status = "no_price"
                c.reason = f"{c.system} lists no cloud or purchase price (give cost assumptions or another --hw)"
        except InfeasibleError as e:
            c.status = "infeasible"
            c.reason = str(e)
        except SpecError as e:
            c.status = "error"
            c.reason = "; ".join(p.message for p in e.problems)
    # visit cheapest lower bound first; skip those that cannot beat the top-k already found
    def lower_bound(c):
        if c.status != "pending":
            return math.inf
        return math.ceil(req.rate_rps / c.static_bound_rps - 1e-9) * c.replica_usd_per_hour

    probes = 0
    found: list = []
    for c in sorted(cands, key=lower_bound):
        if c.status != "pending":
            continue
        lb = lower_bound(c)
        if req.budget_usd_per_hour is not None and lb > req.budget_usd_per_hour:
            c.status = "over_budget"
            c.reason = (f"needs at least {math.ceil(req.rate_rps / c.static_bound_rps - 1e-9)} replica(s) "
                        f"(static bound {c.static_bound_rps:.3g} req/s each) = {lb:.2f} USD/h > budget "
                        f"{req.budget_usd_per_hour:g} USD/h")
            c.usd_per_hour = lb
            continue
        if len(found) >= req.top and lb > sorted(x.usd_per_hour for x in found)[req.top - 1]:
            c.status = "skipped"
            c.reason = (f"cannot beat the {req.top} cheaper configurations found: even at its static bound "
                        f"({c.static_bound_rps:.3g} req/s per replica) it costs at least {lb:.2f} USD/h")
            continue
        try:
            probes += _search(req, c, trace, simulate, progress)
        except InfeasibleError as e:
            c.status = "infeasible"
            c.reason = str(e)
            continue
        except SpecError as e:
            c.status = "error"
            c.reason = "; ".join(p.message for p in e.problems)
            continue
        if c.status != "ok":
            continue
        c.replicas = max(1, math.ceil(req.rate_rps / c.sustained_rps - 1e-9))
        c.usd_per_hour = c.replicas * c.replica_usd_per_hour
        c.usd_per_mtok_output = usd_per_mtok(c.usd_per_hour / 3600.0, 1.0, req.rate_rps * lout)
        c.utilization = req.rate_rps / (c.replicas * c.sustained_rps)
        c.headroom = 1.0 - c.utilization
        if req.budget_usd_per_hour is not None and c.usd_per_hour > req.budget_usd_per_hour:
            c.status = "over_budget"
            c.reason = (f"meets the SLOs with {c.replicas} replica(s) at {c.usd_per_hour:.2f} USD/h > budget "
                        f"{req.budget_usd_per_hour:g} USD/h")
            continue
        found.append(c)
    ok = sorted([c for c in cands if c.status == "ok" and not (req.budget_usd_per_hour is not None
                                                                and c.usd_per_hour > req.budget_usd_per_hour)],
                key=lambda c: (c.usd_per_hour, -c.headroom))
    order = {"ok": 0, "over_budget": 1, "fails_slo": 2, "skipped": 3, "no_price": 4, "infeasible": 5, "error": 6}
    rest = sorted([c for c in cands if c not in ok], key=lambda c: (order.get(c.status, 9), c.usd_per_hour
                                                                      if not math.isnan(c.usd_per_hour) else math.inf))
    closest = None
    if not ok:
        over = [c for c in cands if c.status == "over_budget" and c.replicas]
        if over:
            closest = min(over, key=lambda c: c.usd_per_hour)
        else:
            tried = [c for c in cands if c.closeness < math.inf]
            closest = min(tried, key=lambda c: c.closeness) if tried else None
    api = None
    if req.api_price_in is not None:
        api = req.rate_rps * 3600.0 * (lin * req.api_price_in + lout * req.api_price_out) / 1e6
    return PlanResult(req, ok + rest, ok[: req.top], lin, lout, api, probes, time.perf_counter() - t0, notes, closest)


def _t(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _probe(req, c, trace, simulate, rate) -> Probe:
    t = time.perf_counter()
    res = simulate(_scenario(req, trace, rate), _system(c.hardware, c.tp, req.overrides), req.model, tp=c.tp, quant=req.quant,
                   scheduler=c.scheduler, max_num_seqs=c.max_num_seqs, seed=req.seed, slo_ttft_s=req.slo_ttft_p99_s,
                   slo_tpot_s=req.slo_tpot_p99_s)
    s = res.summary if hasattr(res, "summary") else res
    ttft = float(s.get("ttft_p99_s", math.nan) if s.get("ttft_p99_s") is not None else math.nan)
    tpot = float(s.get("tpot_p99_s", math.nan) if s.get("tpot_p99_s") is not None else math.nan)
    n = int(s.get("requests_completed", req.num_requests) or 0)
    want = req.num_requests if trace is None else min(req.num_requests, trace.num_requests)
    ok = (ttft <= req.slo_ttft_p99_s) and (tpot <= req.slo_tpot_p99_s) and n >= want \
        and not s.get("requests_rejected", 0)
    return Probe(rate, bool(ok), ttft, tpot, n, time.perf_counter() - t)


def _search(req: PlanRequest, c: Candidate, trace, simulate, progress) -> int:
    """Find the largest rate one replica sustains within the SLOs; sets c.status/sustained. Returns probes."""
    def run(rate):
        p = _probe(req, c, trace, simulate, rate)
        c.probes.append(p)
        if progress:
            progress(f"{c.label}: {rate:.4g} req/s -> p99 TTFT {_t(p.ttft_p99_s)}, p99 TPOT {_t(p.tpot_p99_s)} "
                     f"{'ok' if p.ok else 'misses'}")
        ratio = max(p.ttft_p99_s / req.slo_ttft_p99_s, p.tpot_p99_s / req.slo_tpot_p99_s)
        if not math.isnan(ratio):
            c.closeness = min(c.closeness, ratio)
        return p

    hi = c.static_bound_rps * 1.2
    floor = hi / 3 ** 7
    lo = None
    best = None
    r = hi
    # step down until a probe passes
    while True:
        p = run(r)
        if p.ok:
            lo, best = r, p
            break
        hi = r
        r = r / 3
        if r < floor or len(c.probes) >= req.max_probes:
            g = min(c.probes, key=lambda q: q.rate_rps)
            c.status = "fails_slo"
            c.reason = (f"misses the SLOs even at {g.rate_rps:.3g} req/s per replica (p99 TTFT {_t(g.ttft_p99_s)}, "
                        f"p99 TPOT {_t(g.tpot_p99_s)}, {g.completed} of {req.num_requests} completed)")
            return len(c.probes)
    if lo >= hi:  # passed at the (optimistic) bound: try above it, twice at most
        for _ in range(2):
            p = run(lo * 2)
            if not p.ok:
                hi = lo * 2
                break
            lo, best = lo * 2, p
        else:
            hi = lo
    while hi > lo and (hi - lo) > req.tolerance * lo and len(c.probes) < req.max_probes:
        mid = math.sqrt(lo * hi) if hi / lo > 2 else (lo + hi) / 2
        p = run(mid)
        if p.ok:
            lo, best = mid, p
        else:
            hi = mid
    c.status = "ok"
    c.sustained_rps = lo
    c.ttft_p99_s, c.tpot_p99_s = best.ttft_p99_s, best.tpot_p99_s
    return len(c.probes)
