"""The run phase of a serving simulation: the replicas, their schedulers and the request stream.

One SimPy environment per call holds everything of the run (no global state): an arrival
process (or, offline, a shared queue the replicas pull from), a router, the replicas (each a
SimPy process with its scheduler and KV block manager) and the online metrics.
"""

from __future__ import annotations

import gc
import heapq
import math
from dataclasses import dataclass
from functools import partial

import simpy

from hwmodels.errors import Problem, SpecError
from sim.serving.blocks import BlockManager
from sim.serving.metrics import LogHistogram, RequestLog, Timeline
from sim.serving.replica import Replica
from sim.serving.router import Router
from sim.serving.scheduler import SchedulerConfig, make_scheduler
from sim.serving.sequence import WAITING, Sequence
from sim.serving.trace_export import TraceRecorder
from workloads.scenario import Request, Scenario
from workloads.trace import Trace

__all__ = ["Entered", "Run", "RunState", "all_at_once", "request_list", "run_replicas", "stream_of",
           "through_frontend"]

GIB = 1024**3


class Run:
    """What the replicas of one simulate call share: clock, pricer, log, router, counters."""

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
        # admitted requests longer than the model's max_position_embeddings (no --max-model-len given: a what-if)
        self.model_len = math.inf
        self.over_len = 0
        self.longest_over = 0
        self.transfers = 0
        self.transfer_s = 0.0
        self.refill_depth = 1
        self.events = None  # list of (time_s, event, request id) when recording (tests, debugging)
        self.progress = None  # callable(now_s, completed, arrived) every progress_every finishes (CLI progress)
        self.progress_every = 256
        # decode runs (Replica._decode_run): the next arrival (nothing may happen to a replica's state
        # between two of its events except arrivals) and the end of the clock
        self.next_arrival_s = 0.0
        self.until_s = math.inf
        self.next_request = None  # the request arriving at next_arrival_s (a decode run prices ahead for it)
        self.after_next_s = math.inf  # the arrival after that one

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
        # a request that passed the API server (Entered) reaches the engine at arrival_s; its clock (TTFT,
        # queue time, the run's start) starts when the client sent it
        sent = r.sent_s if isinstance(r, Entered) else r.arrival_s
        s = Sequence(r.id, sent, r.input_tokens, r.output_tokens, r.prefix_id, r.prefix_tokens)
        self.arrived += 1
        if s.arrival_s < self.first_arrival_s:
            self.first_arrival_s = s.arrival_s
        if self.events is not None:
            self.event("arrive", s)
        reason = self.check(s)
        if reason is not None:
            self.reject(s, reason)
            return None
        if (total := s.input_tokens + s.output_tokens) > self.model_len:
            self.over_len += 1
            self.longest_over = max(self.longest_over, total)
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
        if self.progress is not None and self.log.completed % self.progress_every == 0:
            self.progress(self.env.now, self.log.completed, self.arrived)

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
        it = iter(it)
        r = next(it, None)
        while r is not None:
            after = next(it, None)  # one request ahead (the same order: nothing else reads the stream)
            self.next_arrival_s = r.arrival_s
            self.next_request = r
            self.after_next_s = math.inf if after is None else after.arrival_s
            dt = r.arrival_s - env.now
            if dt > 0:
                yield env.timeout(dt)
            s = self.arrive(r)
            if s is not None:
                router.pick(s).submit(s)
            r = after
        self.next_arrival_s = math.inf
        self.next_request = None


@dataclass(frozen=True, slots=True)
class Entered(Request):
    """A request as the engine receives it from the API server: ``arrival_s`` is when it reaches the
    engine, ``sent_s`` when the client sent it."""

    sent_s: float = 0.0


def through_frontend(requests, per_request_s: float, servers: int = 1):
    """The server entry point's API-server processes (stack ``runtime.frontend``, docs/stacks.md): each
    handles one request at a time for ``per_request_s`` of CPU time, first come first served; a request
    takes the first of the ``servers`` processes (one per entry replica: each `vllm serve` has its own)
    to come free. Yields the requests (time-ordered) as Entered, in the order they reach the engine."""
    free = [0.0] * max(1, servers)
    for r in requests:
        t = max(r.arrival_s, heapq.heappop(free)) + per_request_s
        heapq.heappush(free, t)
        yield Entered(r.id, t, r.input_tokens, r.output_tokens, r.prefix_id, r.prefix_tokens, r.arrival_s)


def request_list(scenario):
    """``scenario`` as it is read: a Scenario or Trace as given, any other iterable of Requests as a list
    sorted by arrival (read once, so that the entry point and the stream see the same requests)."""
    if isinstance(scenario, (Scenario, Trace, list)):
        return scenario
    try:
        return list(scenario)
    except TypeError:
        raise SpecError(
            Problem(
                f"expected a Scenario, a Trace or Requests, got {type(scenario).__name__}", path="scenario"
            )
        ) from None


def all_at_once(scenario) -> bool:
    """Whether every request arrives at once (an offline run: the LLM-class entry point, a shared queue
    the replicas pull from): an instantaneous Scenario, or Requests that all arrive at 0."""
    if isinstance(scenario, Trace):
        return False
    if isinstance(scenario, Scenario):
        return bool(scenario.arrivals.instantaneous)
    return bool(scenario) and all(r.arrival_s == 0 for r in scenario)


def stream_of(scenario, seed, trace_speedup):
    """-> (iterator of Requests, offline?, description)."""
    if isinstance(scenario, Trace):
        scenario = scenario.scenario(trace_speedup)
    if isinstance(scenario, Scenario):
        return scenario.requests(seed), all_at_once(scenario), scenario.to_dict()
    reqs = sorted(request_list(scenario), key=lambda r: (r.arrival_s, r.id))
    return iter(reqs), all_at_once(reqs), {"name": "requests", "num_requests": len(reqs)}


@dataclass
class RunState:
    """What the run phase leaves for the summary."""

    run: Run
    replicas: list
    log: RequestLog
    recorder: TraceRecorder | None
    offline: bool
    scenario: dict  # the stream's description
    scheduler: SchedulerConfig
    roles: list
    frontend_s: float = 0.0  # the API server's CPU time per request the run applied (stack runtime.frontend)


def _frontend_s(cfg) -> float:
    """The API server's CPU time per request (stack ``runtime.frontend``) where the run is the server entry
    point (``usage`` server: `vllm serve` and the like); 0 offline (the LLM class has no API server)."""
    if cfg.usage != "server":
        return 0.0
    from hwmodels.stack import load_stack

    return load_stack(cfg.stack).frontend_per_request_s


def _admission_check(cfg, max_model_len: int | None, sched_cfg: SchedulerConfig, bm0):
    """The rule that turns a request away at arrival: -> (Sequence -> reason or None). ``max_model_len``: the
    length limit the user set (``--max-model-len``), None for none (a request longer than the model is a what-if)."""
    limit_blocks = bm0.total - bm0.watermark_blocks
    block_size = cfg.block_size
    step_budget = sched_cfg.max_num_batched_tokens
    budgeted = cfg.scheduler in ("vllm", "disagg")

    def check(s) -> str | None:
        total = s.input_tokens + s.output_tokens
        if max_model_len is not None and total > max_model_len:
            return (f"longer than the model: {s.input_tokens} prompt + {s.output_tokens} output tokens > "
                    f"max model length {max_model_len}")
        need = bm0.blocks_for(total)
        if need > limit_blocks:
            return (f"larger than the KV cache: {s.input_tokens} + {s.output_tokens} tokens need {need} blocks; "
                    f"a replica has {limit_blocks} (of {bm0.total}, {block_size} tokens each, watermark kept free)")
        if budgeted and s.input_tokens > step_budget:
            return (f"prompt over the step budget: {s.input_tokens} tokens > max_num_batched_tokens "
                    f"{step_budget} (raise it or use --scheduler sarathi)")
        return None

    return check


def _promote_young() -> None:
    """Move the objects the run left in the young generations (~85,000 at 2,000 requests: the memo
    tables' keys and values, the timeline's and the log's rows, nearly all alive) to the oldest one
    without a sweep: restoring the threshold would otherwise make the next allocation scan them all
    (~11-29 ms). ``gc.freeze()`` then ``gc.unfreeze()`` is that move (CPython: two list splices and
    the young count reset); the next full collection sees them as it would have. Skipped when the
    caller froze objects of its own (``unfreeze`` would release them)."""
    if gc.isenabled() and gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


def run_replicas(scenario, cfg, ctl, budget, coster, links, max_model_len: int) -> RunState:
    """Build the replicas of ``cfg`` (ServingConfig) with ``budget`` (KvBudget) KV blocks each, feed
    them ``scenario`` and run the clock (to ``ctl.until_s``, RunControls, or until all are done)."""
    env = simpy.Environment()
    out_path = ctl.out_dir
    log = RequestLog(out_path / "requests.csv" if out_path is not None else None,
                     slo_ttft_s=cfg.slo_ttft_s, slo_tpot_s=cfg.slo_tpot_s, keep=ctl.keep_requests)
    roles = cfg.roles
    trace = ctl.out_dir is not None if ctl.trace is None else ctl.trace
    recorder = (TraceRecorder(ctl.trace_replica, ctl.trace_max_events, cfg.pp)
                if trace and 0 <= ctl.trace_replica < len(roles) else None)
    run = Run(env, coster, cfg.pp, log, recorder, ctl.timeline_points, budget.kv_bytes_per_token,
              links.transfer_time, links.swap_time)
    run.progress, run.progress_every = ctl.progress, ctl.progress_every
    if ctl.record_events:
        run.events = []
    sched_cfg = SchedulerConfig(max_num_seqs=cfg.max_num_seqs, max_num_batched_tokens=cfg.step_budget,
                                chunk_size=cfg.chunk_size, block_size=cfg.block_size, watermark=cfg.watermark,
                                preemption=cfg.preemption, prefix_caching=cfg.prefix_caching)
    block_bytes = budget.block_bytes
    swap_blocks = (int(cfg.swap_space_gib * GIB // block_bytes) if cfg.preemption == "swap" and block_bytes > 0
                   else 0)
    stream, offline, scen_desc = stream_of(scenario, cfg.seed, ctl.trace_speedup)
    frontend = _frontend_s(cfg)
    if frontend > 0:  # requests reach the engines through the API servers, one per entry replica
        stream = through_frontend(stream, frontend, sum(1 for r in roles if r != "decode"))
    if offline and frontend == 0:
        run.pull = stream
        run.refill_depth = cfg.max_num_seqs + 1
    reps = []
    for i, role in enumerate(roles):
        cfg_i = sched_cfg if role != "decode" else SchedulerConfig(**{**sched_cfg.__dict__, "prefix_caching": False})
        bm = BlockManager(budget.num_blocks, cfg.block_size, cfg.watermark)
        sched = make_scheduler(cfg.scheduler, cfg_i, bm, block_bytes, swap_blocks)
        if ctl.record_events:
            sched.on_preempt = partial(run.event, "preempt")
        reps.append(Replica(run, i, role, sched))
    run.router = Router(cfg.router, [r for r in reps if r.role != "decode"])
    run.decode_router = (Router(cfg.router, [r for r in reps if r.role == "decode"]) if cfg.scheduler == "disagg"
                         else None)
    # vLLM refuses a request longer than its max_model_len; llmsim only where the user set one: the model's own
    # max_position_embeddings is a what-if limit (counted, said in the summary's warnings)
    run.check = _admission_check(cfg, max_model_len if cfg.max_model_len is not None else None, sched_cfg, reps[0].bm)
    run.model_len = max_model_len
    if ctl.until_s is not None:
        run.until_s = ctl.until_s
    if run.pull is None:
        env.process(run.arrivals(stream))
    else:
        run.next_arrival_s = math.inf
    # The run allocates many short-lived objects per step and few cycles; the collector's default
    # gen-0 threshold makes it rescan the memo tables thousands of times (~15% of the run time).
    # Raise it for the run and restore it after.
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], 100_000), *thresholds[1:])
    try:
        env.run(until=ctl.until_s)
    finally:
        _promote_young()
        gc.set_threshold(*thresholds)
    log.flush()
    return RunState(run, reps, log, recorder, offline, scen_desc, sched_cfg, roles, frontend)
