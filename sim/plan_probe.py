"""The capacity planner's simulations: steady-state probes of one replica, and the verification of
a whole fleet (sim/plan.py drives them; the statistics are in sim/steady.py).

A **probe** asks: does one replica hold rate ``r`` within the SLOs in steady state? It simulates
the first ``n`` requests of the workload at ``r`` (a trace's first ``n`` requests rescaled to
mean rate ``r``, as ``llmsim serve --trace T --limit n --rate r`` does), starting at the plan's
initial request count and doubling until the answer is decided or the request budget is spent.
After each round, on the requests in arrival order:

1. warm-up: MSER-5 on the TTFT series drops the first requests (:func:`sim.steady.mser5`);
   when it wants to drop the largest share it may (half), the series is still trending: no
   steady state yet;
2. queue growth fails the probe at once: the queueing delay rises by more than 1 % of the
   elapsed time over the second half of the steady part (slope > 0.01 s/s). Arrivals that
   outpace completions by more than ``growth_tolerance`` of the arrivals over that half (when
   the half lasts at least 4 x the p90 end-to-end latency, so that the batch filling up is not
   mistaken for growth) while the delay does not rise yet count as no steady state: the probe
   runs longer, and fails when the budget is spent;
3. p99 TTFT and p99 TPOT of the steady part with 95 % batch-means intervals
   (:func:`sim.steady.quantile_ci`): a p99 whose interval lies above its SLO fails the probe; all
   intervals below their SLOs pass it; intervals narrower than ``p99_tolerance`` of their p99s
   decide by the p99s ("converged"); otherwise the next round doubles ``n``, and at the budget
   the p99s decide ("budget": said so).

The **verification** simulates the fleet the plan chose (all replicas behind the router, the
full target rate, the whole trace or the synthetic stream) exactly as ``llmsim serve`` would
with the flags :func:`serve_command` prints, and passes when the p99s over all requests are
within the SLOs, nothing was rejected and the queue does not grow.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from sim.steady import delay_slope, mser5, quantile_ci, queue_growth

__all__ = ["Probe", "Verification", "Workload", "probe", "serve_command", "verify"]

DELAY_SLOPE_MAX = 0.01  # s of extra queueing per s elapsed that counts as a growing queue


@dataclass(frozen=True)
class Workload:
    """The request stream planned for: a trace (rescaled to a rate) or synthetic lengths."""

    trace: object = None  # workloads.trace.Trace (already limited)
    trace_name: str | None = None
    input_len: int | None = None
    output_len: int | None = None
    cv: float = 1.0

    @property
    def max_requests(self) -> float:
        return math.inf if self.trace is None else len(self.trace)

    def context_warnings(self, spec, max_model_len: int | None = None) -> list:
        """The what-if warning for requests longer than ``spec``'s max_position_embeddings (workloads.model); none
        where the user set ``max_model_len`` (the probes reject longer requests then, as vLLM does)."""
        from workloads.model import context_warning

        if max_model_len:
            return []
        if self.trace is None:
            w = context_warning(spec, self.input_len + self.output_len)
        else:
            total = self.trace.input_tokens + self.trace.output_tokens
            w = context_warning(spec, int(total.max()), int((total > spec.max_position).sum()))
        return [w] if w else []

    def scenario(self, rate: float, n: int):
        if self.trace is not None:
            from workloads.trace import Trace

            t = self.trace
            if n < len(t):
                t = Trace.from_arrays(t.arrival_s[:n], t.input_tokens[:n], t.output_tokens[:n], name=t.name)
            return t.scenario(rate_rps=rate)
        from workloads.scenario import Scenario, arrival_process

        return Scenario(arrival_process(rate, self.cv), input_tokens=self.input_len, output_tokens=self.output_len,
                        num_requests=int(n))


@dataclass
class Probe:
    rate_rps: float
    ok: bool
    ttft_p99_s: float
    tpot_p99_s: float
    completed: int
    wall_s: float
    requests: int = 0  # simulated in the deciding round
    rounds: int = 0
    warmup: int = 0  # requests dropped as warm-up (MSER-5)
    ttft_p99_ci_s: float = math.inf  # 95 % half-widths
    tpot_p99_ci_s: float = math.inf
    delay_slope: float = 0.0
    growth_share: float = 0.0
    served_rps: float = math.nan  # completions per second while requests arrived (steady part)
    decided_by: str = ""  # ci | converged | budget | queue growth | rejected | no steady state
    why: str = ""


@dataclass
class Verification:
    replicas: int
    ok: bool
    requests: int
    ttft_p99_s: float
    tpot_p99_s: float
    slo_attainment: float
    throughput_rps: float
    rejected: int
    delay_slope: float
    wall_s: float
    why: str = ""
    history: list = field(default_factory=list)  # earlier (smaller) fleets that missed


def _frame(res):
    df = getattr(res, "requests", None)
    if df is None or len(df) == 0:
        return None
    return df.sort_values("arrival_s", kind="stable")


def _t(s) -> str:
    from hwmodels.format import fmt_time

    return fmt_time(s)


def judge(req, res, n: int, final: bool, t0: float, rate: float, rounds: int) -> Probe | None:
    """The verdict of one round of a probe, or None when another round is needed."""
    s = res.summary
    p = Probe(rate, False, math.nan, math.nan, int(s.get("requests_completed") or 0), time.perf_counter() - t0,
              requests=n, rounds=rounds)
    if s.get("requests_rejected"):
        p.decided_by, p.why = "rejected", f"{s['requests_rejected']} of {n} requests rejected " \
            f"({', '.join(s.get('rejection_reasons') or {}) or 'no room'})"
        return p
    df = _frame(res)
    if df is None or p.completed < n:
        p.decided_by, p.why = "rejected", f"only {p.completed} of {n} requests completed"
        return p
    ttft = df["ttft_s"].to_numpy(np.float64)
    cut = mser5(ttft)
    p.warmup = cut
    m = len(ttft) // 5
    trending = m >= 4 and cut >= 5 * (m // 2)
    arr = df["arrival_s"].to_numpy(np.float64)
    p.delay_slope = delay_slope(arr, df["queue_s"].to_numpy(np.float64), cut)
    g = queue_growth(arr, df["finish_s"].to_numpy(np.float64), cut)
    p.growth_share = g.share
    e2e90 = float(np.quantile(df["e2e_s"].to_numpy(np.float64), 0.9))
    a0, a1 = float(np.sort(arr)[cut]), float(arr.max())
    if a1 > a0:
        fin = df["finish_s"].to_numpy(np.float64)
        p.served_rps = float(np.count_nonzero((fin > a0) & (fin <= a1)) / (a1 - a0))
    kept = df.iloc[cut:]
    p.ttft_p99_s, p.ttft_p99_ci_s = quantile_ci(kept["ttft_s"].to_numpy(np.float64), 0.99)
    p.tpot_p99_s, p.tpot_p99_ci_s = quantile_ci(kept["tpot_s"].to_numpy(np.float64), 0.99)
    if math.isnan(p.tpot_p99_s):  # single-token outputs: no TPOT
        p.tpot_p99_s, p.tpot_p99_ci_s = 0.0, 0.0
    if p.delay_slope > DELAY_SLOPE_MAX:
        p.decided_by = "queue growth"
        p.why = (f"the queue grows: queueing delay +{p.delay_slope:.3f} s per s, outstanding requests "
                 f"+{g.growth:.0f} over the last {g.arrivals} arrivals")
        return p
    # arrivals outpacing completions without the queueing delay rising yet: not steady, look longer
    trending = trending or (g.share > req.growth_tolerance and g.window_s >= 4 * e2e90)
    slos = ((p.ttft_p99_s, p.ttft_p99_ci_s, req.slo_ttft_p99_s, "TTFT"),
            (p.tpot_p99_s, p.tpot_p99_ci_s, req.slo_tpot_p99_s, "TPOT"))
    above = [name for est, h, slo, name in slos if est - h > slo]
    if above:
        p.decided_by = "ci"
        p.why = f"p99 {' and '.join(above)} above the SLO (95 % interval)"
        return p
    if trending and not final:
        return None
    meets = all(est <= slo for est, h, slo, _ in slos)
    if trending:
        p.decided_by, p.ok = "no steady state", False
        p.why = (f"no steady state within the request budget (the warm-up does not end, or arrivals outpace "
                 f"completions: outstanding +{g.growth:.0f} over the last {g.arrivals} arrivals)")
        return p
    if all(est + h <= slo for est, h, slo, _ in slos):
        p.decided_by, p.ok = "ci", True
        return p
    if all(h <= req.p99_tolerance * est for est, h, slo, _ in slos):
        p.decided_by, p.ok = "converged", meets
    elif final:
        p.decided_by, p.ok = "budget", meets
    else:
        return None
    if not meets:
        p.why = "p99 " + " and ".join(name for est, h, slo, name in slos if est > slo) + " above the SLO"
    return p


def probe(req, wl: Workload, sim_call, rate: float, budget: int) -> Probe:
    """Steady-state probe of one replica at ``rate`` (see the module docstring)."""
    t0 = time.perf_counter()
    n = int(min(req.num_requests, budget))
    rounds = 0
    simulated = 0
    while True:
        rounds += 1
        res = sim_call(wl.scenario(rate, n), 1)
        simulated += n
        final = n >= budget
        p = judge(req, res, n, final, t0, rate, rounds)
        if p is not None:
            p.wall_s = time.perf_counter() - t0
            p.completed = int(res.summary.get("requests_completed") or 0)
            return p
        n = int(min(2 * n, budget))


def verify(req, wl: Workload, sim_call, rate: float, replicas: int, n: int) -> Verification:
    """Simulate the fleet: ``replicas`` replicas behind the router at the full ``rate``."""
    t0 = time.perf_counter()
    res = sim_call(wl.scenario(rate, n), replicas)
    s = res.summary
    ttft = float(s.get("ttft_p99_s") if s.get("ttft_p99_s") is not None else math.nan)
    tpot = s.get("tpot_p99_s")
    tpot = 0.0 if tpot is None or tpot != tpot else float(tpot)  # noqa: PLR0124
    done = int(s.get("requests_completed") or 0)
    rejected = int(s.get("requests_rejected") or 0)
    df = _frame(res)
    slope = 0.0 if df is None else delay_slope(df["arrival_s"].to_numpy(np.float64),
                                               df["queue_s"].to_numpy(np.float64))
    att = s.get("slo_attainment")
    v = Verification(replicas, False, n, ttft, tpot, math.nan if att is None else float(att),
                     float(s.get("request_throughput_rps") or math.nan), rejected, slope, time.perf_counter() - t0)
    misses = []
    if ttft > req.slo_ttft_p99_s:
        misses.append(f"p99 TTFT {_t(ttft)} > {_t(req.slo_ttft_p99_s)}")
    if tpot > req.slo_tpot_p99_s:
        misses.append(f"p99 TPOT {_t(tpot)} > {_t(req.slo_tpot_p99_s)}")
    if rejected or done < n:
        misses.append(f"{done} of {n} requests completed ({rejected} rejected)")
    if slope > DELAY_SLOPE_MAX:
        misses.append(f"the queue grows (+{slope:.3f} s of queueing per s)")
    v.ok = not misses
    v.why = "; ".join(misses)
    return v


def serve_command(req, c, replicas: int, n: int) -> str:
    """The ``llmsim serve`` command that re-runs a verification."""
    parts = ["llmsim serve", f"--hw {c.name if not str(c.hardware).endswith(('.yaml', '.yml')) else c.hardware}",
             f"--model {req.model}", f"--tp {c.tp}"]
    parts += c.serve_flags()
    parts += [f"--scheduler {c.scheduler}", f"--max-num-seqs {c.max_num_seqs}"]
    if c.scheduler == "disagg":
        parts += [f"--prefill-replicas {c.prefill_replicas * replicas}",
                  f"--decode-replicas {c.decode_replicas * replicas}"]
    else:
        parts.append(f"--replicas {replicas}")
    if c.quant != "bf16":
        parts.append(f"--quant {c.quant}")
    if req.trace is not None:
        parts.append(f"--trace {req.trace}")
        if req.limit is not None:
            parts.append(f"--limit {req.limit}")
        parts.append(f"--rate {req.rate_rps:g}")
    else:
        arrival = "poisson" if req.cv == 1 else ("fixed" if req.cv == 0 else f"gamma --cv {req.cv:g}")
        parts += [f"--rate {req.rate_rps:g}", f"--num-requests {n}", f"--input-len {req.input_len}",
                  f"--output-len {req.output_len}", f"--arrival {arrival}"]
    parts += [f"--seed {req.seed}", f"--slo-ttft {req.slo_ttft_p99_s:g}", f"--slo-tpot {req.slo_tpot_p99_s:g}"]
    parts += _setting_flags(req)
    return " ".join(parts)


def _setting_flags(req) -> list:
    """The serving settings, cost options and overrides of the plan as `llmsim serve` flags."""
    import shlex
    from dataclasses import fields

    from sim.config import ServingConfig
    from sim.cost import CostOptions

    out = []
    flags = {f.name: f.metadata.get("flag") for f in fields(ServingConfig)}
    for k, v in (req.serving or {}).items():
        if k == "options":
            d = CostOptions()
            for name, flag, on in (("fused", "--fused", True), ("cuda_graphs", "--cuda-graphs", True),
                                   ("overlap_comm", "--overlap-comm", True), ("use_efficiency", "--no-efficiency", False),
                                   ("tiling", "--no-tiling", False), ("dequant_per_tile", "--dequant-per-tile", True)):
                if getattr(v, name, None) != getattr(d, name) and getattr(v, name, None) == on:
                    out.append(flag)
        elif k == "attention_kernel":
            if v != "auto":
                out.append(f"--attention-kernel {v}")
        elif k == "stack":
            if v is not None:
                name = v if isinstance(v, str) else (getattr(v, "path", None) or v.name)  # a Stack: its file
                out.append(f"--stack {shlex.quote(str(name))}")
        elif flags.get(k) and v is not None:
            out.append(flags[k] if v is True else f"{flags[k]} {shlex.quote(str(v))}")
    for o in req.overrides or ():
        out.append(f"--set {shlex.quote(str(o))}")
    return out
