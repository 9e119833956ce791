"""``simulate``: a request stream served by data-parallel replicas, as a discrete-event simulation.

One SimPy environment per call holds everything of the run (no global state): an arrival
process (or, offline, a shared queue the replicas pull from), a router, the replicas (each a
SimPy process with its scheduler and KV block manager), and the online metrics. Every step's
time comes from the shared cost model through :class:`sim.step.StepCoster`, so one request
alone sees exactly the static predictor's prefill time (its TTFT) and the same decode steps.

Memory budget of a replica, per chip (vLLM's profile-then-allocate): ``memory_utilization`` x
the capacity of the level that holds weights, minus the weights and the activation workspace
of the largest step the scheduler may form (``workloads.footprint``), divided by the KV bytes
one token adds on that chip. Sliding-window layers are budgeted like full ones (conservative).
"""

from __future__ import annotations

import gc
import json
import math
import resource
import time
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import pandas as pd
import simpy

from hwmodels.errors import InfeasibleError, Problem, SpecError
from sim.cost import CostOptions
from sim.serving.blocks import BlockManager
from sim.serving.metrics import TIMELINE_COLUMNS, LogHistogram, RequestLog, Timeline
from sim.serving.replica import Replica
from sim.serving.router import ROUTERS, Router
from sim.serving.scheduler import SCHEDULERS, SchedulerConfig, make_scheduler
from sim.serving.sequence import WAITING, Sequence
from sim.serving.trace_export import TraceRecorder

__all__ = ["PREEMPTION_MODES", "ServingResult", "simulate"]

PREEMPTION_MODES = ("recompute", "swap")
GIB = 1024**3


# --------------------------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class ServingResult:
    """What a serving run measured.

    ``summary``: JSON-ready dict (latency percentiles, throughput, goodput, cost, energy...);
    ``requests``: one row per finished request (seconds and tokens; see ``REQUEST_COLUMNS``);
    ``timeline``: sampled steps of every replica (time_s, replica, batch_size, tokens,
    kv_utilization, step_s, ...); ``trace``: the Chrome/Perfetto trace of one replica.
    """

    summary: dict
    timeline: pd.DataFrame = field(repr=False)
    config: dict = field(repr=False)
    rejected: tuple = field(default=(), repr=False)  # (request_id, reason) for the first rejections
    trace: TraceRecorder | None = field(default=None, repr=False)
    events: tuple = field(default=(), repr=False)  # (time_s, event, request id) with record_events=True
    _log: RequestLog | None = field(default=None, repr=False, compare=False)

    @cached_property
    def requests(self) -> pd.DataFrame:
        return self._log.frame() if self._log is not None else pd.DataFrame()

    def to_frame(self) -> pd.DataFrame:
        """The summary as a one-row DataFrame (scalar entries), for concatenating runs."""
        return pd.DataFrame(
            [{k: v for k, v in self.summary.items() if not isinstance(v, (dict, list, tuple))}]
        )

    def trace_json(self) -> dict:
        return (
            self.trace.to_dict({"summary": self.summary}) if self.trace is not None else {"traceEvents": []}
        )

    def write(self, out_dir: str | Path) -> Path:
        """Write requests.csv, timeline.csv, summary.json and trace.json into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        req = out / "requests.csv"
        if self._log is not None and (self._log.path is None or self._log.path.resolve() != req.resolve()):
            self.requests.to_csv(req, index=False)
        self.timeline.to_csv(out / "timeline.csv", index=False)
        (out / "summary.json").write_text(json.dumps(_json_clean(self.summary), indent=2) + "\n")
        (out / "trace.json").write_text(json.dumps(self.trace_json()))
        return out


def _json_clean(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _json_clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_clean(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    return o


# --------------------------------------------------------------------------------------------
# the run: what replicas share (one per simulate call)


class _Run:
    def __init__(
        self,
        env,
        coster,
        pp: int,
        log: RequestLog,
        trace: TraceRecorder | None,
        timeline_points: int,
        kv_bytes_per_token_chip: float,
        transfer,
        swap,
    ):
        self.env = env
        self.coster = coster
        self.pp = pp
        self.log = log
        self.trace = trace
        self.itl = LogHistogram()
        self.timelines: list = []
        self.timeline_points = timeline_points
        self.kv_bytes_per_token_chip = kv_bytes_per_token_chip
        self._transfer = transfer
        self._swap = swap
        self.pull = None
        self.router = None
        self.decode_router = None
        self.check = None  # Sequence -> reason or None
        self.arrived = 0
        self.first_arrival_s = math.inf
        self.rejected = 0
        self.reasons: dict = {}
        self.rejected_examples: list = []
        self.transfers = 0
        self.transfer_s = 0.0
        self.refill_depth = 1
        self.events = None  # list of (time_s, event, request id) when recording (tests, debugging)

    def event(self, name: str, s) -> None:
        self.events.append((self.env.now, name, s.req_id))

    def new_timeline(self, idx: int) -> Timeline:
        tl = Timeline(idx, self.timeline_points)
        self.timelines.append(tl)
        return tl

    def transfer_time(self, tokens: int) -> float:
        return self._transfer(tokens * self.kv_bytes_per_token_chip)

    def swap_time(self, nbytes: float) -> float:
        return self._swap(nbytes)

    # ---- requests ------------------------------------------------------------------------
    def arrive(self, r) -> Sequence | None:
        s = Sequence(r.id, r.arrival_s, r.input_tokens, r.output_tokens, r.prefix_id, r.prefix_tokens)
        self.arrived += 1
        if s.arrival_s < self.first_arrival_s:
            self.first_arrival_s = s.arrival_s
        if self.events is not None:
            self.event("arrive", s)
        reason = self.check(s)
        if reason is not None:
            self.reject(s, reason)
            return None
        return s

    def reject(self, s, reason: str) -> None:
        if self.events is not None:
            self.event("reject", s)
        self.rejected += 1
        key = reason.split(":")[0]
        self.reasons[key] = self.reasons.get(key, 0) + 1
        if len(self.rejected_examples) < 100:
            self.rejected_examples.append((s.req_id, reason))

    def finish(self, s, t: float) -> None:
        if self.events is not None:
            self.event("finish", s)
        self.log.add(s, t)

    def to_decode(self, s) -> None:
        if self.events is not None:
            self.event("transferred", s)
        s.state = WAITING
        self.decode_router.pick(s).submit(s)

    def refill(self, replica) -> None:
        """Offline mode: top the replica's queue up from the shared source."""
        sched = replica.sched
        want = self.refill_depth
        src = self.pull
        while len(sched.waiting) < want:
            r = next(src, None)
            if r is None:
                self.pull = iter(())
                return
            s = self.arrive(r)
            if s is not None:
                replica.submit(s)

    def arrivals(self, it):
        env = self.env
        router = self.router
        for r in it:
            dt = r.arrival_s - env.now
            if dt > 0:
                yield env.timeout(dt)
            s = self.arrive(r)
            if s is not None:
                router.pick(s).submit(s)


# --------------------------------------------------------------------------------------------
# validation


def _positive_int(problems, name, flag, v, lo=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        problems.append(Problem(f"must be an integer >= {lo}, got {v!r}", path=f"{name} ({flag})"))


def _positive_num(problems, name, flag, v):
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v <= 0:
        problems.append(Problem(f"must be a number > 0, got {v!r}", path=f"{name} ({flag})"))


def _stream_of(scenario, seed, trace_speedup):
    """-> (iterator of Requests, offline?, description)."""
    from workloads.scenario import Scenario
    from workloads.trace import Trace

    if isinstance(scenario, Trace):
        scenario = scenario.scenario(trace_speedup)
    if isinstance(scenario, Scenario):
        return scenario.requests(seed), bool(scenario.arrivals.instantaneous), scenario.to_dict()
    try:
        reqs = list(scenario)
    except TypeError:
        raise SpecError(
            Problem(
                f"expected a Scenario, a Trace or Requests, got {type(scenario).__name__}", path="scenario"
            )
        ) from None
    reqs.sort(key=lambda r: (r.arrival_s, r.id))
    offline = bool(reqs) and all(r.arrival_s == 0 for r in reqs)
    return iter(reqs), offline, {"name": "requests", "num_requests": len(reqs)}


def _capacity_bytes(chip) -> float:
    """Bytes of the level(s) weights and KV live in (as the static predictor counts them)."""
    main = chip.main_memory
    if main.kind == "sram":
        return sum(
            m.total_capacity_bytes(chip.cores)
            for m in chip.memory
            if m.kind in ("sram", "dram") and m.per == "chip"
        )
    return main.total_capacity_bytes(chip.cores)


def _workspace_batch(tokens: int, max_position: int):
    from workloads import Batch

    k, r = divmod(tokens, max_position)
    seqs = ((max_position, 0),) * k + (((r, 0),) if r else ())
    return Batch(seqs)


# --------------------------------------------------------------------------------------------
# simulate


def simulate(
    scenario,
    system,
    model,
    *,
    tp: int = 1,
    pp: int = 1,
    ep: int = 1,
    quant="bf16",
    weight_dtype: str | None = None,
    act_dtype: str | None = None,
    kv_dtype: str | None = None,
    replicas: int = 1,
    scheduler: str = "vllm",
    max_num_seqs: int = 256,
    max_num_batched_tokens: int | None = None,
    chunk_size: int = 512,
    block_size: int = 16,
    watermark: float = 0.01,
    preemption: str = "recompute",
    swap_space_gib: float = 4.0,
    prefix_caching: bool = False,
    prefill_replicas: int | None = None,
    decode_replicas: int | None = None,
    router: str = "round-robin",
    memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    seed: int = 0,
    slo_ttft_s: float | None = None,
    slo_tpot_s: float | None = None,
    options: CostOptions = CostOptions(),
    attention_kernel: str = "auto",
    overrides=None,
    trace_speedup: float = 1.0,
    out_dir: str | Path | None = None,
    timeline_points: int = 20_000,
    trace: bool | None = None,
    trace_replica: int = 0,
    trace_max_events: int = 200_000,
    until_s: float | None = None,
    record_events: bool = False,
    coster=None,
    kv_capacity_tokens: int | None = None,
) -> ServingResult:
    """Simulate serving ``scenario`` with ``model`` on replicas of ``system``.

    ``scenario``: a :class:`workloads.Scenario` (seeded by ``seed``), a :class:`workloads.trace.Trace`
    (replayed ``trace_speedup`` times faster) or an iterable of Requests. ``system``: chip or
    system name, path or object (a chip is a system of one; a replica uses ``tp x pp`` of its
    chips). ``scheduler``: vllm | sarathi | static | disagg. Times in seconds, SLOs in seconds.
    ``out_dir``: stream per-request rows to ``out_dir/requests.csv`` (bounded memory) and write
    the timeline, summary and trace there at the end. ``trace``: record the Chrome/Perfetto
    trace of replica ``trace_replica`` (default: when ``out_dir`` is given).
    ``coster``/``kv_capacity_tokens``: inject a step pricer and a KV capacity (tests).
    ``record_events``: keep a log of (time, event, request id) in ``result.events`` (arrive,
    step kinds, token, finish, preempt, handoff...). Raises SpecError on bad input,
    InfeasibleError when the model does not fit a replica.
    """
    wall0 = time.perf_counter()
    from sim.predict import make_quantization, resolve_system, system_usd_per_s
    from workloads import Parallelism, footprint, load_model

    problems: list = []
    for name, flag, v in (
        ("tp", "--tp", tp),
        ("pp", "--pp", pp),
        ("ep", "--ep", ep),
        ("replicas", "--replicas", replicas),
        ("max_num_seqs", "--max-num-seqs", max_num_seqs),
        ("chunk_size", "--chunk-size", chunk_size),
        ("block_size", "--block-size", block_size),
        ("timeline_points", "timeline_points", timeline_points),
    ):
        _positive_int(problems, name, flag, v)
    for name, flag, v in (
        ("max_num_batched_tokens", "--max-num-batched-tokens", max_num_batched_tokens),
        ("prefill_replicas", "--prefill-replicas", prefill_replicas),
        ("decode_replicas", "--decode-replicas", decode_replicas),
        ("max_model_len", "--max-model-len", max_model_len),
        ("kv_capacity_tokens", "kv_capacity_tokens", kv_capacity_tokens),
    ):
        if v is not None:
            _positive_int(problems, name, flag, v)
    _positive_num(problems, "slo_ttft_s", "--slo-ttft", slo_ttft_s)
    _positive_num(problems, "slo_tpot_s", "--slo-tpot", slo_tpot_s)
    _positive_num(problems, "trace_speedup", "--trace-speedup", trace_speedup)
    _positive_num(problems, "memory_utilization", "--memory-utilization", memory_utilization)
    if isinstance(memory_utilization, (int, float)) and memory_utilization > 1:
        problems.append(
            Problem(
                f"must be <= 1, got {memory_utilization!r}", path="memory_utilization (--memory-utilization)"
            )
        )
    if not isinstance(watermark, (int, float)) or not 0 <= watermark < 1:
        problems.append(
            Problem(f"must be a fraction in [0, 1), got {watermark!r}", path="watermark (--watermark)")
        )
    if not isinstance(swap_space_gib, (int, float)) or swap_space_gib < 0:
        problems.append(
            Problem(f"must be >= 0, got {swap_space_gib!r}", path="swap_space_gib (--swap-space)")
        )
    if scheduler not in SCHEDULERS:
        problems.append(
            Problem(
                f"unknown scheduler {scheduler!r}; known: {', '.join(SCHEDULERS)}",
                path="scheduler (--scheduler)",
            )
        )
    if router not in ROUTERS:
        problems.append(
            Problem(f"unknown router {router!r}; known: {', '.join(ROUTERS)}", path="router (--router)")
        )
    if preemption not in PREEMPTION_MODES:
        problems.append(
            Problem(
                f"unknown preemption mode {preemption!r}; known: {', '.join(PREEMPTION_MODES)}",
                path="preemption (--preemption)",
            )
        )
    if scheduler != "disagg" and (prefill_replicas is not None or decode_replicas is not None):
        problems.append(
            Problem(
                "only the disagg scheduler has prefill and decode pools",
                path="prefill_replicas (--prefill-replicas)",
            )
        )
    if not problems and scheduler == "disagg":
        p_rep = prefill_replicas or 1
        d_rep = decode_replicas or 1
        if replicas != 1 and replicas != p_rep + d_rep:
            problems.append(
                Problem(
                    f"with disagg, replicas = prefill + decode replicas ({p_rep} + {d_rep}); got {replicas}",
                    path="replicas (--replicas)",
                )
            )
    if isinstance(tp, int) and isinstance(ep, int) and tp >= 1 and ep > tp:
        problems.append(
            Problem(
                f"the serving simulator needs ep <= tp (an EP group inside one replica's "
                f"TP chips); got ep={ep}, tp={tp}",
                path="ep (--ep)",
            )
        )
    if problems:
        raise SpecError(problems)

    spec = load_model(model)
    q = make_quantization(quant, weight_dtype=weight_dtype, act_dtype=act_dtype, kv_dtype=kv_dtype)
    par = Parallelism(tp=tp, pp=pp, ep=ep)
    chips = par.tp * par.pp
    sysobj, notes = resolve_system(system, chips, overrides)
    chip = sysobj.chip
    from workloads.parallel import check_parallelism

    check_parallelism(spec, par)
    notes = list(notes)

    # ---- memory budget -----------------------------------------------------------------------
    max_model_len = max_model_len or spec.max_position
    if max_num_batched_tokens is None:
        max_num_batched_tokens = 16384
    step_tokens = chunk_size if scheduler == "sarathi" else max_num_batched_tokens
    capacity = _capacity_bytes(chip)
    if kv_capacity_tokens is None:
        fp = footprint(
            spec, _workspace_batch(step_tokens, spec.max_position), q, par, attention_kernel=attention_kernel
        )
        usable = capacity * memory_utilization
        kv_per_token = fp.kv_bytes_per_token
        budget = usable - fp.weights_bytes - fp.activation_bytes
        numbers = {
            "capacity_bytes": capacity,
            "usable_bytes": usable,
            "weights_bytes": fp.weights_bytes,
            "activation_bytes": fp.activation_bytes,
            "kv_bytes_per_token": kv_per_token,
        }
        if fp.weights_bytes > usable:
            raise InfeasibleError(
                f"{spec.name} {q.name} weights need {fp.weights_bytes / 1e9:.1f} GB per chip at "
                f"tp={tp} pp={pp}; "
                f"{chip.name} {chip.main_memory.name} holds {capacity / 1e9:.1f} GB "
                f"({memory_utilization:.0%} usable)",
                numbers,
            )
        kv_tokens = int(budget // kv_per_token) if budget > 0 else 0
        if kv_tokens < block_size:
            raise InfeasibleError(
                f"{spec.name} {q.name} leaves no room for a KV cache on {chip.name}: weights "
                f"{fp.weights_bytes / 1e9:.1f} GB + workspace {fp.activation_bytes / 1e9:.2f} GB of "
                f"{usable / 1e9:.1f} GB usable per chip (a {step_tokens}-token step)",
                numbers,
            )
        weights_bytes = fp.weights_bytes
    else:
        kv_tokens = int(kv_capacity_tokens)
        kv_per_token = footprint(spec, (1, 2), q, par).kv_bytes_per_token
        weights_bytes = 0.0
    num_blocks = kv_tokens // block_size
    if num_blocks < 1:
        raise InfeasibleError(
            f"the KV cache holds {kv_tokens} tokens, less than one block of {block_size}",
            {"kv_tokens": kv_tokens},
        )
    block_bytes = kv_per_token * block_size  # per chip

    if coster is None:
        from sim.step import StepCoster

        coster = StepCoster(
            spec,
            sysobj,
            q,
            par,
            options,
            attention_kernel,
            resident_bytes=weights_bytes + num_blocks * block_bytes,
        )

    # ---- links ------------------------------------------------------------------------------
    host = chip.host_link
    if preemption == "swap" and host is None:
        raise SpecError(
            Problem(
                f"{chip.name} lists no host link to swap KV blocks over; use recompute",
                path="preemption (--preemption)",
            )
        )

    def swap_time(nbytes: float) -> float:
        return nbytes / host.bandwidth_bytes_per_s + host.latency_s

    def transfer_time(nbytes: float) -> float:
        if nbytes <= 0:
            return 0.0
        if sysobj.count >= 2 and sysobj.tiers:
            from sim.collective import collective_time

            return collective_time(sysobj, "sendrecv", nbytes, min(sysobj.count, 2 * chips))[0]
        link = chip.interconnect or chip.host_link
        return nbytes / link.bandwidth_bytes_per_s + link.latency_s

    if (
        scheduler == "disagg"
        and not (sysobj.count >= 2 and sysobj.tiers)
        and chip.interconnect is None
        and chip.host_link is None
    ):
        raise SpecError(
            Problem(
                f"{chip.name} lists no interconnect to move KV caches between the prefill and decode pools",
                path="scheduler (--scheduler)",
            )
        )

    # ---- the run ----------------------------------------------------------------------------
    env = simpy.Environment()
    out_path = Path(out_dir) if out_dir is not None else None
    log = RequestLog(
        out_path / "requests.csv" if out_path is not None else None,
        slo_ttft_s=slo_ttft_s,
        slo_tpot_s=slo_tpot_s,
    )
    if scheduler == "disagg":
        n_pre, n_dec = prefill_replicas or 1, decode_replicas or 1
        roles = ["prefill"] * n_pre + ["decode"] * n_dec
    else:
        roles = ["mixed"] * replicas
    if trace is None:
        trace = out_dir is not None
    recorder = (
        TraceRecorder(trace_replica, trace_max_events, pp)
        if trace and 0 <= trace_replica < len(roles)
        else None
    )
    run = _Run(env, coster, pp, log, recorder, timeline_points, kv_per_token, transfer_time, swap_time)
    if record_events:
        run.events = []
    cfg = SchedulerConfig(
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        chunk_size=chunk_size,
        block_size=block_size,
        watermark=watermark,
        preemption=preemption,
        prefix_caching=prefix_caching,
    )
    swap_blocks = int(swap_space_gib * GIB // block_bytes) if preemption == "swap" and block_bytes > 0 else 0
    stream, offline, scen_desc = _stream_of(scenario, seed, trace_speedup)
    if offline:
        run.pull = stream
        run.refill_depth = max_num_seqs + 1
    reps = []
    for i, role in enumerate(roles):
        cfg_i = cfg if role != "decode" else SchedulerConfig(**{**cfg.__dict__, "prefix_caching": False})
        bm = BlockManager(num_blocks, block_size, watermark)
        sched = make_scheduler(scheduler, cfg_i, bm, block_bytes, swap_blocks)
        if record_events:
            sched.on_preempt = partial(run.event, "preempt")
        reps.append(Replica(run, i, role, sched))
    front = [r for r in reps if r.role != "decode"]
    run.router = Router(router, front)
    run.decode_router = (
        Router(router, [r for r in reps if r.role == "decode"]) if scheduler == "disagg" else None
    )
    bm0 = reps[0].bm
    limit_blocks = bm0.total - bm0.watermark_blocks

    def check(s) -> str | None:
        total = s.input_tokens + s.output_tokens
        if total > max_model_len:
            return (
                f"longer than the model: {s.input_tokens} prompt + {s.output_tokens} output tokens > "
                f"max model length {max_model_len}"
            )
        need = -(-total // block_size)
        if need > limit_blocks:
            return (
                f"larger than the KV cache: {s.input_tokens} + {s.output_tokens} tokens need {need} blocks; "
                f"a replica has {limit_blocks} (of {bm0.total}, {block_size} tokens each, "
                "watermark kept free)"
            )
        if scheduler in ("vllm", "disagg") and s.input_tokens > max_num_batched_tokens:
            return (
                f"prompt over the step budget: {s.input_tokens} tokens > max_num_batched_tokens "
                f"{max_num_batched_tokens} (raise it or use --scheduler sarathi)"
            )
        return None

    run.check = check
    if not offline:
        env.process(run.arrivals(stream))
    # The run allocates many short-lived objects per step and few cycles; the collector's default
    # gen-0 threshold makes it rescan the memo tables thousands of times (~15% of the run time).
    # Raise it for the run and restore it after.
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], 100_000), *thresholds[1:])
    try:
        env.run(until=until_s)
    finally:
        gc.set_threshold(*thresholds)

    # ---- summary ----------------------------------------------------------------------------
    log.flush()
    unfinished = run.arrived - run.rejected - log.completed
    t0 = run.first_arrival_s if math.isfinite(run.first_arrival_s) else 0.0
    duration = max(log.last_finish_s - t0, 0.0) if log.completed else 0.0
    if until_s is not None and unfinished:
        duration = until_s - t0
    n_rep = len(reps)
    total_chips = n_rep * chips
    out_tok = log.output_tokens
    in_tok = log.input_tokens
    usd_s = system_usd_per_s(sysobj, chips)
    usd_total = None if usd_s is None else usd_s * n_rep * duration
    busy = sum(r.stage_busy_s for r in reps)
    idle_w = chip.idle_w or 0.0
    energy = sum(r.energy_j for r in reps) + idle_w * chips * sum(
        max(0.0, duration - r.stage_busy_s) for r in reps
    )
    flops = sum(r.flops for r in reps)
    bytes_main = sum(r.bytes_main for r in reps)
    try:
        peak = chip.peak_flops(q.math_dtype)
    except KeyError:
        peak = math.nan
    cm = getattr(coster, "cm", None)
    bw = cm.home.bandwidth_bytes_per_s if cm is not None else chip.main_memory.bandwidth_bytes_per_s

    def pct(name):
        a = log.metric(name)
        a = a[~np.isnan(a)]
        if a.size == 0:
            return {p: math.nan for p in (50, 90, 99)} | {"mean": math.nan}
        v = np.percentile(a.astype(np.float64), [50, 90, 99])
        return {50: float(v[0]), 90: float(v[1]), 99: float(v[2]), "mean": float(a.astype(np.float64).mean())}

    lat = {n: pct(n) for n in ("ttft_s", "tpot_s", "e2e_s", "queue_s")}
    tl_steps = sum(t.steps for t in run.timelines)
    submitted = log.completed + run.rejected + unfinished
    summary = {
        "model": spec.name,
        "hardware": str(getattr(system, "name", system)),
        "system": sysobj.name,
        "scheduler": scheduler,
        "router": router,
        "replicas": n_rep,
        "prefill_replicas": roles.count("prefill") if scheduler == "disagg" else None,
        "decode_replicas": roles.count("decode") if scheduler == "disagg" else None,
        "tp": tp,
        "pp": pp,
        "ep": ep,
        "quant": q.name,
        "chips": total_chips,
        "seed": seed,
        "offline": offline,
        "requests_total": submitted,
        "requests_completed": log.completed,
        "requests_rejected": run.rejected,
        "requests_unfinished": unfinished,
        "rejection_reasons": dict(run.reasons),
        "duration_s": duration,
        "request_throughput_rps": log.completed / duration if duration > 0 else math.nan,
        "input_throughput_tok_s": in_tok / duration if duration > 0 else math.nan,
        "output_throughput_tok_s": out_tok / duration if duration > 0 else math.nan,
        "total_token_throughput_tok_s": (in_tok + out_tok) / duration if duration > 0 else math.nan,
        "output_throughput_per_chip_tok_s": out_tok / duration / total_chips if duration > 0 else math.nan,
        "input_tokens": in_tok,
        "output_tokens": out_tok,
    }
    for n, short in (("ttft_s", "ttft"), ("tpot_s", "tpot"), ("e2e_s", "e2e"), ("queue_s", "queue")):
        d = lat[n]
        summary[f"{short}_mean_s"] = d["mean"]
        summary[f"{short}_p50_s"] = d[50]
        summary[f"{short}_p90_s"] = d[90]
        summary[f"{short}_p99_s"] = d[99]
    itl = run.itl
    summary.update(
        {
            "itl_mean_s": itl.mean,
            "itl_p50_s": itl.quantile(0.5),
            "itl_p90_s": itl.quantile(0.9),
            "itl_p99_s": itl.quantile(0.99),
            "itl_max_s": itl.max if itl.n else math.nan,
            "slo_ttft_s": slo_ttft_s,
            "slo_tpot_s": slo_tpot_s,
            "goodput_rps": log.slo_met / duration if duration > 0 else math.nan,
            "slo_attainment": log.slo_met / submitted if submitted else math.nan,
            "preemptions": log.preemptions,
            "kv_capacity_tokens_per_replica": num_blocks * block_size,
            "kv_blocks_per_replica": num_blocks,
            "kv_blocks_peak": max(r.bm.peak for r in reps),
            "kv_blocks_used_end": sum(r.bm.used for r in reps),
            "tokens_generated": sum(r.emitted for r in reps),
            "kv_utilization_mean": sum(t.kv_time for t in run.timelines) / busy if busy > 0 else 0.0,
            "kv_utilization_max": max((t.kv_max for t in run.timelines), default=0.0),
            "batch_size_mean": sum(t.batch_time for t in run.timelines) / busy if busy > 0 else 0.0,
            "batch_size_max": max((t.batch_max for t in run.timelines), default=0),
            "busy_fraction": busy / (duration * n_rep) if duration > 0 else 0.0,
            "mfu": flops / (duration * total_chips * peak) if duration > 0 else 0.0,
            "mbu": bytes_main / (duration * total_chips * bw) if duration > 0 else 0.0,
            "mfu_busy": flops / (busy * chips * peak) if busy > 0 else 0.0,
            "mbu_busy": bytes_main / (busy * chips * bw) if busy > 0 else 0.0,
            "usd_per_hour": None if usd_s is None else usd_s * n_rep * 3600,
            "usd_total": usd_total,
            "usd_per_mtok_output": None if usd_total is None or not out_tok else usd_total / out_tok * 1e6,
            "usd_per_mtok_total": None
            if usd_total is None or not (in_tok + out_tok)
            else usd_total / (in_tok + out_tok) * 1e6,
            "energy_j": energy,
            "energy_j_per_output_token": energy / out_tok if out_tok else math.nan,
            "energy_j_per_token": energy / (in_tok + out_tok) if in_tok + out_tok else math.nan,
            "kv_transfers": run.transfers,
            "kv_transfer_s_total": run.transfer_s,
            "prefix_hit_blocks": sum(r.bm.prefix_hit_blocks for r in reps),
            "steps": tl_steps,
            "memo_hit_rate": getattr(coster, "memo_hit_rate", None),
            "shape_memo_hit_rate": getattr(coster, "shape_hit_rate", None),
            "graph_builds": getattr(coster, "graph_builds", None),
            "notes": notes,
        }
    )
    wall = time.perf_counter() - wall0
    summary["sim_wall_s"] = wall
    summary["steps_per_s"] = tl_steps / wall if wall > 0 else math.nan
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rows = [row for t in run.timelines for row in t.rows]
    timeline = (
        pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))
        .sort_values(["time_s", "replica"], kind="stable")
        .reset_index(drop=True)
        if rows
        else pd.DataFrame(columns=list(TIMELINE_COLUMNS))
    )
    config = {
        "scenario": scen_desc,
        "scheduler": cfg.__dict__,
        "memory_utilization": memory_utilization,
        "max_model_len": max_model_len,
        "options": options.__dict__,
        "attention_kernel": attention_kernel,
    }
    result = ServingResult(
        summary, timeline, config, tuple(run.rejected_examples), recorder, tuple(run.events or ()), log
    )
    if out_path is not None:
        result.write(out_path)
    return result
