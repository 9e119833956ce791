"""A replica: one model instance on its chips, as a SimPy process running iteration after iteration.

Each iteration the replica asks its scheduler for a step, prices it with the shared
:class:`~sim.step.StepCoster`, holds for the step time and then applies the step: every
sequence that computed all its known tokens emits one output token at the step's end (the
first one is the TTFT; the gaps between later ones are the inter-token times).

Pipeline parallelism (``pp > 1``): the step time of the cost model is ``pp`` stage times (one
batch passing every stage). The replica keeps up to ``pp`` micro-batches in flight, as vLLM's
virtual engines do: a new batch enters stage 0 as soon as stage 0 is free, each batch enters
stage ``k`` when it has left stage ``k - 1`` and stage ``k`` is free, and its tokens come out
when it leaves the last stage. Sequences in flight are not scheduled again until then, so a
lone request still sees the full ``pp``-stage latency and the pipeline fills only with
several requests (the bubbles of a lightly loaded pipeline are kept).

Swapping (preemption by swap) copies blocks over the chip's host link; the copy time is added
to the step that does it (vLLM swaps synchronously before the step's forward pass).
Disaggregated prefill replicas hand each request, after its first token, to a decode replica:
the KV cache moves over the interconnect (one transfer at a time per prefill replica; the
prefill replica keeps the blocks until the copy is done).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from functools import partial
from itertools import accumulate

from sim.serving.blocks import blocks_for
from sim.serving.sequence import RUNNING, TRANSFER

__all__ = ["Replica"]


class _Items:
    """The part of a step plan _complete reads: the (sequence, new tokens) pairs."""

    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items


class Replica:
    """One model replica (``role``: 'mixed', or 'prefill'/'decode' in a disaggregated pool)."""

    def __init__(self, run, idx: int, role: str, scheduler):
        self.run = run
        self.env = run.env
        self.idx = idx
        self.role = role
        self.sched = scheduler
        self.bm = scheduler.bm
        self.pp = run.pp
        self.stage_free = [0.0] * self.pp
        self.inflight = 0
        self.outstanding = 0
        self.link_free = 0.0
        self.energy_j = 0.0
        self.flops = 0.0
        self.bytes_main = 0.0
        self.stage_busy_s = 0.0  # time stage 0 was busy (= step time when pp == 1)
        self.tokens = 0
        self.prefill_tokens = 0
        self.emitted = 0  # output tokens produced here
        self.timeline = run.new_timeline(idx)
        self.trace = run.trace if run.trace is not None and run.trace.replica == idx else None
        self._wake = None
        # decode runs: successive pure-decode steps of an unchanged request set, priced at once and
        # advanced as one SimPy event (see _decode_run); only where nothing else reads or changes
        # this replica's state between its steps except arrivals. Offline (run.pull: the replicas
        # top their waiting queues up from a shared source at each step) qualifies too: the queue is
        # full or the source empty after the refill that precedes a run, and nothing leaves the
        # queue during one (a run ends at its first finish while requests wait), so the refills a
        # per-step loop would make inside the run take nothing
        self.runs = (Replica.decode_runs and self.pp == 1 and role == "mixed"
                     and self.trace is None and run.events is None and hasattr(run.coster, "decode_steps")
                     and scheduler.name in ("vllm", "sarathi"))
        self.last_decode_s = 0.0  # duration of the last decode step (sizes the next run)
        self.proc = self.env.process(self._loop())

    #: class switch for tests (the per-step path is the reference)
    decode_runs = True
    #: longest decode run priced at once (bounds the arrays of one evaluation)
    MAX_RUN = 512

    # ---- requests in ----------------------------------------------------------------------
    @property
    def queued_blocks(self) -> float:
        return self.sched.waiting_tokens / self.bm.block_size

    def submit(self, s) -> None:
        s.replica = self.idx
        self.sched.add(s)
        self.outstanding += 1
        if self.trace is not None:
            self.trace.request_queued(s, self.env.now)
        self._poke()

    def _poke(self) -> None:
        w = self._wake
        if w is not None and not w.triggered:
            w.succeed()

    # ---- the loop -------------------------------------------------------------------------
    def _loop(self):
        env = self.env
        sched = self.sched
        run = self.run
        coster = run.coster
        pp = self.pp
        pull = run.pull is not None and self.role != "decode"
        while True:
            if pull:
                run.refill(self)
            plan = sched.schedule() if sched.has_work() else None
            if plan is None and self.inflight == 0 and sched.has_work():
                plan = self._unstick()
            if plan is None:
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            now = env.now
            if run.events is not None:
                run.events.append((now, plan.kind, tuple(s.req_id for s, _ in plan.items)))
            for s, _ in plan.items:
                if s.first_sched_s < 0:
                    s.first_sched_s = now
                    if self.trace is not None:
                        self.trace.request_started(s, now)
            if self.runs and plan.kind == "decode" and not plan.swap_bytes:
                r = self._decode_run(plan, now)
                if r is not None:
                    yield env.timeout(r[0] - now)
                    self._finish_run(plan, r)
                    continue
            cost = coster.step(plan.shape)
            extra = run.swap_time(plan.swap_bytes) if plan.swap_bytes else 0.0
            self.energy_j += cost.energy_j
            self.flops += cost.flops
            self.bytes_main += cost.bytes_main
            self.tokens += plan.tokens
            if pp == 1:
                dt = cost.time_s + extra
                if plan.kind == "decode":
                    self.last_decode_s = dt
                self._account(plan, now, dt)
                yield env.timeout(dt)
                self._complete(plan, env.now)
                continue
            stage = cost.time_s / pp
            t = now
            sf = self.stage_free
            spans = []
            for k in range(pp):
                start = t if t > sf[k] else sf[k]
                t = start + stage + (extra if k == 0 else 0.0)  # a swap copy delays the first stage
                sf[k] = t
                spans.append(start)
            self._account(plan, now, stage + extra, spans)
            for s, _ in plan.items:
                s.inflight = True
            self.inflight += 1
            ev = env.timeout(t - now)
            ev.callbacks.append(partial(self._complete_cb, plan))
            yield env.timeout(sf[0] - now)

    def _decode_run(self, plan, now: float):
        """Price and account a run of K >= 2 pure-decode steps starting with ``plan``, or None.

        Between two events that change the scheduler's decision, the steps of a running decode batch
        differ only by every context growing one token per step and by requests finishing: the
        scheduler plans the remaining requests again (nothing waiting can be admitted: the running set
        only shrinks and free blocks do not run out). A finish changes the decision only for a waiting
        request (a slot and blocks free up), so the run goes on past finishes while nothing waits (and
        no request holds shared prefix blocks, which a finish may turn idle); it ends with the step under
        way at the next arrival (a lone replica) or before it (several), before the end of the clock,
        and where the KV blocks run out (without evicting cached prefixes). Its steps start at the same simulated times as one step per event would
        (t_k+1 = t_k + step k); each stretch of an unchanged request set is priced by one
        ``decode_steps`` call. Returns (end time, step start times, K, each request's remaining
        tokens, contexts and blocks held (:func:`_grown` gives the blocks it has added by a step), the
        blocks all have added by each step, the requests in each step)."""
        sched = self.sched
        items = plan.items
        R = len(items)
        if sched._dirty or sched.swapped or R != len(sched.running):
            return None  # someone was preempted, swapped or left out by the budget: one step at a time
        run = self.run
        arrival = run.next_arrival_s
        until = run.until_s
        limit = arrival if arrival < until else until
        # the step under way when a request arrives was planned before it: with one replica (whose state
        # nobody reads at an arrival) the run may end with that step; with several, the router reads
        # the replicas' state at the arrival, so the run ends before it
        straddle = len(run.router.replicas) == 1
        rems = [s.output_tokens - s.generated for s, _ in items]
        through = not sched.waiting and not any(s.shared_blocks for s, _ in items)
        k_max = min(max(rems) if through else min(rems), self.MAX_RUN)
        k_arr = 0
        if self.last_decode_s > 0 and limit < math.inf:
            k_arr = int((limit - now) / self.last_decode_s) + 1 + straddle  # steps only grow
            k_max = min(k_max, k_arr)
        if k_max < 2:
            return None
        coster = run.coster
        if k_max == 2 and k_arr == 2 and straddle and coster.run_known(R, rems, 2):
            # the arrival comes before one step at the last step's pace ends: the run would end after its first
            # step (one step, K < 2: 46 of 46 such runs of 2,000 conversation requests) and its runs ahead
            # would be priced for nothing; one step instead, as that answer gives (nothing priced is skipped
            # that the step would not price itself: its (T, R) parts are known)
            return None
        bm = self.bm
        ctx = [s.num_computed for s, _ in items]
        held = [s.own_blocks + s.shared_blocks for s, _ in items]
        alloc = _allocations(ctx, held, rems, k_max, bm.block_size)  # blocks the run has added by each step
        k_max = min(k_max, bisect_right(alloc, bm.total - bm.used - bm.idle))  # (releases not counted: a bound)
        if k_max < 2:
            return None
        ahead = partial(self._ahead, ctx, rems, k_max) if straddle and k_max == k_arr and arrival < until else ()
        priced = coster.decode_steps(ctx, k_max, rems, ahead)
        if priced is None:
            return None
        times = priced[0].tolist()
        ends = list(accumulate(times, initial=now))  # t_k+1 = t_k + step k, summed in step order
        j = bisect_left(ends, limit, 1)  # the first step to end at or after the limit (steps take time)
        starts = ends[:j]
        # a step that starts before the arrival and ends after it is the run's last (not at until_s: the
        # clock stops inside that step, which then never completes)
        if j < len(ends) and straddle and ends[j - 1] < arrival and ends[j] < until:
            starts.append(ends[j])
        K = len(starts) - 1
        if K < 2:
            return None
        dt = times[:K]
        coster.count_steps(K)
        # account the K steps as _account would, one by one: requests in step k (a request of r remaining
        # tokens takes part in steps k < r) and the KV use at its start (less the blocks released by the
        # requests that finished before it)
        total, used0 = bm.total, bm.used
        if not through or min(rems) >= K:  # nobody leaves inside the run
            alive = [R] * K
            kvs = [(used0 + a) / total for a in alloc[:K]]
        else:
            leave = [0] * K
            freed = [0] * K
            bs = bm.block_size
            for c, h, r in zip(ctx, held, rems):
                if r < K:
                    leave[r] += 1
                    freed[r] += h + _grown(c, h, r, r - 1, bs)
            alive = []
            kvs = []
            n, g = R, 0
            for j, a in enumerate(alloc[:K]):
                n -= leave[j]
                g += freed[j]
                alive.append(n)
                kvs.append((used0 + a - g) / total)
        self.timeline.add_steps(starts, alive, kvs, dt, sched.queued(), "decode")
        busy, energy, flops, bytes_main = self.stage_busy_s, self.energy_j, self.flops, self.bytes_main
        for d, e, f, b in zip(dt, priced[1].tolist(), priced[2].tolist(), priced[3].tolist()):
            busy += d
            energy += e
            flops += f
            bytes_main += b
        self.stage_busy_s, self.energy_j, self.flops, self.bytes_main = busy, energy, flops, bytes_main
        self.tokens += sum(alive)
        self.last_decode_s = dt[K - 1]
        return starts[K], starts, K, rems, ctx, held, alloc, alive

    def _ahead(self, ctx, rems, k_max: int) -> tuple:
        """The decode run expected after this one, to price in the same evaluation
        (StepCoster.decode_steps ``ahead``): this run cut by the arrival at its usual step (the step under
        way at the arrival is its last: K = k_max - 1), then one step that prefills the arriving request
        beside the others' decodes, then the decodes of the remaining requests and the new one. A guess:
        when it is wrong the next run is priced as usual (the coster answers only the same requests)."""
        x = self.run.next_request
        if x is None or x.arrival_s != self.run.next_arrival_s or not Replica.price_ahead:
            return ()
        gap = self.run.after_next_s - x.arrival_s
        # the steps to the arrival after next (decode steps only grow: at most this many, with room to spare)
        cap = min(self.MAX_RUN, int(gap / (0.8 * self.last_decode_s)) + 3 if gap < math.inf else 3 * k_max + 8)
        out = []
        for K in self.AHEAD_K:
            K += k_max
            if K < 2:
                continue
            nxt = [(c + K + 1, r - K - 1) for c, r in zip(ctx, rems) if r > K + 1]
            if x.output_tokens > 1:
                nxt.append((x.input_tokens, x.output_tokens - 1))
            if nxt:
                cs, ss = zip(*nxt)
                h = min(max(ss), cap)
                if h >= 2:
                    out.append((list(cs), list(ss), h))
        return tuple(out)

    #: the lengths of this run the runs ahead assume, from k_max (most often the step under way at the
    #: arrival is the one before the bound's: 3 of 4 runs of the conversation trace; two before it 1 in
    #: 10; a third length, the bound itself, answered 29 more of 1,666 runs and cost more than it saved)
    AHEAD_K = (-1, -2)

    #: class switch for tests and benchmarks: price the expected next decode run with this one
    price_ahead = True

    def _finish_run(self, plan, r) -> None:
        """Apply the steps of a decode run: each request's steps in bulk (one token each per step) up to
        its last step inside the run, which goes through _complete at its exact time (finishing, block
        release, after_step), in step order; the blocks the steps add are taken in the same order."""
        end, starts, K, rems, ctx, held, alloc, alive = r
        items = plan.items
        hist = self.run.itl
        bm = self.bm
        bs = bm.block_size
        last = [min(rm, K) - 1 for rm in rems]  # each request's last step in the run
        step_itl = [0.0] * K  # inter-token time of step k >= 1 (every request in it shares it)
        peak = [0.0] * K  # the largest of steps 1 .. k
        m = 0.0
        for k in range(1, K):
            itl = starts[k + 1] - starts[k]
            step_itl[k] = itl
            if itl > m:
                m = itl
            peak[k] = m
        # requests emitting a token in bulk at step k (1 <= k < their last step min(r, K) - 1): those of more
        # than k + 1 remaining tokens, the requests in step k + 1
        hist.add_many(step_itl[1:K - 1], alive[2:K])
        t1 = starts[1]
        emitted = 0
        firsts = []  # the inter-token time of each request's first token in the run
        finishing: dict = {}  # last step -> the requests that finish there
        rest = []
        end_k = K - 1
        for i, ((s, _), e) in enumerate(zip(items, last)):
            if e < end_k:
                finishing.setdefault(e, []).append(i)
            else:
                rest.append(i)
            if e < 1:
                continue
            itl = t1 - s.last_token_s
            firsts.append(itl)
            m = peak[e - 1]
            if itl > m:
                m = itl
            if m > s.itl_max:
                s.itl_max = m
            s.num_computed += e
            s.num_tokens += e
            s.generated += e
            s.last_token_s = starts[e]
            emitted += e
        hist.add_many(firsts, [1] * len(firsts))
        self.emitted += emitted
        done = 0
        for e in sorted(finishing):
            a = alloc[e]
            bm.allocate(a - done)
            done = a
            who = finishing[e]
            for i in who:
                items[i][0].own_blocks += _grown(ctx[i], held[i], rems[i], e, bs)
            self._complete(_Items([items[i] for i in who]), starts[e + 1])
        bm.allocate(alloc[end_k] - done)
        for i in rest:
            grown = _grown(ctx[i], held[i], rems[i], end_k, bs)
            if grown:
                items[i][0].own_blocks += grown
        self._complete(_Items([items[i] for i in rest]) if len(rest) < len(items) else plan, self.env.now)

    def _unstick(self):
        """Nothing runs and nothing can be scheduled: reject what can never fit, then retry."""
        sched = self.sched
        plan = sched.schedule()  # a preemption in the last try may have freed room
        while plan is None and sched.has_work() and not any(s.state == RUNNING for s in sched.running):
            s = sched.drop_head()
            if s is None:
                break
            self.outstanding -= 1
            if self.trace is not None:
                self.trace.request_done(s, self.env.now)
            self.run.reject(
                s,
                "could not be scheduled on an otherwise idle replica "
                f"({s.input_tokens} prompt tokens, {s.output_tokens} output tokens)",
            )
            plan = sched.schedule() if sched.has_work() else None
        return plan

    def _account(self, plan, t0: float, dt: float, spans=None) -> None:
        bm = self.bm
        kv = bm.used / bm.total
        pre = plan.prefill_tokens
        self.prefill_tokens += pre
        self.stage_busy_s += dt
        self.timeline.add(t0, len(plan.items), plan.tokens, pre, kv, dt, self.sched.queued(), plan.kind)
        if self.trace is not None:
            self.trace.step(plan, t0, dt, kv, self.sched.queued(), spans)

    def _complete_cb(self, plan, _event) -> None:
        self.inflight -= 1
        self._complete(plan, self.env.now)
        self._poke()

    def _complete(self, plan, t: float) -> None:
        """Apply a finished step at time ``t``: emit tokens, finish or hand off sequences."""
        sched = self.sched
        run = self.run
        hist = run.itl
        prefill_role = self.role == "prefill"
        prefix = sched.prefix_caching
        events = run.events
        same_itl = None  # most tokens of a step share one inter-token time: count them together
        same_n = 0
        for s, n in plan.items:
            s.inflight = False
            c = s.num_computed + n
            s.num_computed = c
            if c < s.num_tokens:
                continue
            g = s.generated
            if g:
                itl = t - s.last_token_s
                if itl > s.itl_max:
                    s.itl_max = itl
                if itl == same_itl:
                    same_n += 1
                else:
                    if same_n:
                        hist.add(same_itl, same_n)
                    same_itl, same_n = itl, 1
            else:
                s.first_token_s = t
            s.last_token_s = t
            g += 1
            s.generated = g
            self.emitted += 1
            if events is not None:
                events.append((t, "token", s.req_id))
            if prefix and s.prefix_id is not None:
                sched.register_prefix(s)
            if g >= s.output_tokens:
                sched.leave(s)
                self.outstanding -= 1
                run.finish(s, t)
                if self.trace is not None:
                    self.trace.request_done(s, t)
            else:
                s.num_tokens += 1
                if prefill_role:
                    self._handoff(s, t)
        if same_n:
            hist.add(same_itl, same_n)
        sched.after_step()

    # ---- disaggregation -------------------------------------------------------------------
    def _handoff(self, s, t: float) -> None:
        if self.run.events is not None:
            self.run.event("handoff", s)
        self.sched.leave(s, TRANSFER, release=False)
        dt = self.run.transfer_time(s.num_computed)
        start = t if t > self.link_free else self.link_free
        end = start + dt
        self.link_free = end
        self.run.transfers += 1
        self.run.transfer_s += dt
        ev = self.env.timeout(end - t)
        ev.callbacks.append(partial(self._transferred, s))

    def _transferred(self, s, _event) -> None:
        self.sched.release(s)
        self.outstanding -= 1
        if self.trace is not None:
            self.trace.request_done(s, self.env.now)
        self._poke()
        self.run.to_decode(s)


def _grown(c: int, h: int, r: int, k: int, bs: int) -> int:
    """Blocks a request of context ``c``, holding ``h`` blocks after step 0's allocation, with ``r`` tokens
    to go, has added by step ``k`` of a decode run: it needs ``blocks_for(c + k + 1)`` blocks by step k,
    and adds nothing after its last step (r - 1)."""
    g = blocks_for(c + (k if k < r else r - 1) + 1, bs) - h
    return g if g > 0 else 0


def _allocations(ctx, held, rems, steps: int, bs: int) -> list:
    """The blocks a decode run's requests have added by each of its first ``steps`` steps (releases not
    counted): the sum over the requests of :func:`_grown` at each step, as a running sum of the steps where
    each request crosses into a new block (one every ``bs`` steps: a few per request), in Python integers."""
    add = [0] * steps
    for c, h, r in zip(ctx, held, rems):
        u = blocks_for(c + (0 if r > 0 else r - 1) + 1, bs)  # blocks needed at step 0
        if u > h:
            add[0] += u - h
        last = r - 1 if r <= steps else steps - 1
        m = -c % bs or bs  # the next step where it crosses into a new block: (m + c) % bs == 0
        while m <= last:
            u += 1
            if u > h:
                add[m] += 1
            m += bs
    return list(accumulate(add))
