"""Iteration-level schedulers: which requests run in the next step, and how many tokens each.

Every step the replica asks its scheduler for a :class:`StepPlan`: a list of (sequence, new
tokens) pairs. The scheduler owns the waiting queue, the running list and the swapped list, and
allocates KV blocks for what it schedules (a plan is always runnable). Policies:

``vllm`` (vLLM's default scheduler without chunked prefill, V0 semantics)
    If nothing is swapped out, admit waiting requests first-come first-served while they fit the
    token budget (``max_num_batched_tokens``), the sequence limit (``max_num_seqs``) and the KV
    cache (keeping the watermark free); if any were admitted, the step is a *prefill-only* step
    (running decodes wait one step). Otherwise every running request decodes one token. When a
    running request needs a new block and none is free, the lowest-priority running request (the
    last admitted) is preempted, by recompute (its KV is dropped; it goes back to the head of the
    waiting queue and later prefills prompt + outputs so far) or by swap (its blocks are copied
    to host memory over the host link and back later; the copy time is added to the step). A
    request that is its own last victim preempts itself. Swapped requests come back before new
    ones are admitted.

``sarathi`` (Sarathi-Serve chunked prefill; vLLM's ``enable_chunked_prefill``)
    A token budget per step (``chunk_size``): first every running decode (1 token each), then
    the ongoing partial prefills, then newly admitted prompts, each prefill cut to what is left
    of the budget. Decodes never stall behind a long prompt; prompts are spread over steps.

``static`` (request-level batching, as before continuous batching)
    When the replica is idle, take up to ``max_num_seqs`` waiting requests, reserve KV for their
    whole length (prompt + output), prefill them together, then decode the batch until its
    longest request finishes. Finished members stay in the batch as padding (priced as
    decoding at their final context) and nothing joins until the batch is done.

``disagg`` uses ``vllm`` on both pools: prefill replicas only ever prefill (their requests
leave after the first token), decode replicas admit requests whose KV arrived over the
interconnect straight into the running batch (no prefill step).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from sim.config import SCHEDULERS
from sim.serving.blocks import BlockManager, blocks_for
from sim.serving.sequence import DONE, RUNNING, SWAPPED, WAITING, Sequence

__all__ = [
    "SCHEDULERS",
    "SarathiScheduler",
    "Scheduler",
    "SchedulerConfig",
    "StaticScheduler",
    "StepPlan",
    "VllmScheduler",
    "make_scheduler",
]



@dataclass(frozen=True)
class SchedulerConfig:
    """Knobs of the iteration-level scheduler (vLLM's names where vLLM has one)."""

    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192  # vllm: tokens per prefill step; static: prompt tokens per batch
    chunk_size: int = 512  # sarathi: tokens per step (decodes + prefill chunks)
    block_size: int = 16
    watermark: float = 0.01
    preemption: str = "recompute"  # or 'swap'
    prefix_caching: bool = False


class StepPlan:
    """One step: ``items`` = [(sequence, new tokens)], ``shape`` = what the cost model prices."""

    __slots__ = ("items", "kind", "prefill_tokens", "shape", "swap_bytes", "tokens")

    def __init__(
        self, items, shape, tokens: int, kind: str, swap_bytes: float = 0.0, prefill_tokens: int = 0
    ):
        self.items = items
        self.shape = shape
        self.tokens = tokens
        self.kind = kind
        self.swap_bytes = swap_bytes
        self.prefill_tokens = prefill_tokens  # tokens of prefills and chunks (not decodes)


def _plan(items, swap_bytes=0.0, pad=()) -> StepPlan:
    shape = []
    tokens = 0
    dec = 0
    for s, n in items:
        c = s.num_computed
        shape.append((n, c))
        tokens += n
        if n == 1 and c > 0:
            dec += 1
    shape = tuple(shape) + tuple(pad) if pad else tuple(shape)
    kind = "decode" if dec == len(items) else ("prefill" if dec == 0 else "mixed")
    return StepPlan(items, shape, tokens, kind, swap_bytes, tokens - dec)


class Scheduler:
    """Queues and block bookkeeping shared by the policies."""

    name = "base"

    def __init__(
        self, cfg: SchedulerConfig, bm: BlockManager, block_bytes: float = 0.0, swap_blocks: int = 0
    ):
        self.on_preempt = None  # callback(sequence), for event logs
        self.cfg = cfg
        self.bm = bm
        self.waiting: deque = deque()
        self.running: list = []
        self.swapped: deque = deque()
        self.block_bytes = block_bytes
        self.swap_blocks = swap_blocks  # host blocks available for swapping
        self.swap_used = 0
        self.preemptions = 0
        self.swaps = 0
        self.prefix_caching = cfg.prefix_caching
        self.waiting_tokens = 0  # tokens of the waiting queue (the least-kv router reads it)
        self._dirty = False  # running holds sequences that left (finished, preempted, handed off)

    # ---- queue ----------------------------------------------------------------------------
    def add(self, s: Sequence) -> None:
        s.state = WAITING
        self.waiting.append(s)
        self.waiting_tokens += s.num_tokens

    def has_work(self) -> bool:
        return bool(self.waiting or self.running or self.swapped)

    def queued(self) -> int:
        return len(self.waiting) + len(self.swapped)

    def schedule(self) -> StepPlan | None:
        raise NotImplementedError

    def drop_head(self) -> Sequence | None:
        """Remove and return the request at the head of the queue (one that can never run)."""
        if self.waiting:
            s = self.waiting.popleft()
            self.waiting_tokens -= s.num_tokens
        elif self.swapped:
            s = self.swapped.popleft()
            self.swap_used -= s.cpu_blocks
            s.cpu_blocks = 0
        else:
            return None
        s.state = DONE
        return s

    def after_step(self) -> None:
        if self._dirty:
            self.running = [s for s in self.running if s.state == RUNNING]
            self._dirty = False

    def leave(self, s: Sequence, state: int = DONE, release: bool = True) -> None:
        """``s`` leaves the running set (finished or handed off); ``release``: free its blocks now."""
        s.state = state
        self._dirty = True
        if release:
            self.release(s)

    # ---- blocks ---------------------------------------------------------------------------
    def release(self, s: Sequence) -> None:
        bm = self.bm
        if s.own_blocks:
            bm.release(s.own_blocks)
            s.own_blocks = 0
        if s.shared_blocks:
            bm.prefix_release(s.prefix_id)
            s.shared_blocks = 0

    def _admission(self, s: Sequence):
        """(blocks to take from the cache, cached prefix blocks to reference, tokens already
        computed after a prefix hit) for admitting waiting sequence ``s``."""
        bm = self.bm
        if s.num_computed > 0:  # KV transferred from a prefill replica
            return bm.blocks_for(s.num_tokens), 0, s.num_computed
        if self.prefix_caching and s.prefix_id is not None and s.prefix_tokens >= bm.block_size:
            p, idle = bm.prefix_cached(s.prefix_id)
            if p:
                own = bm.blocks_for(s.num_tokens) - p
                hit = min(p * bm.block_size, s.num_tokens - 1)  # the last token is always computed
                return own + (p if idle else 0), p, hit
        return bm.blocks_for(s.num_tokens), 0, 0

    def _admit(self, s: Sequence, take: int, p: int, start: int) -> None:
        bm = self.bm
        if p:
            bm.prefix_acquire(s.prefix_id)
            s.shared_blocks = p
            s.num_computed = start
            s.prefix_hit_tokens += start
            own = bm.blocks_for(s.num_tokens) - p
        else:
            own = take
        self.waiting_tokens -= s.num_tokens
        bm.allocate(own)
        s.own_blocks = own
        s.state = RUNNING
        self.running.append(s)

    def register_prefix(self, s: Sequence) -> None:
        """After ``s`` computed its prompt: its full prefix blocks become the shared cached copy."""
        bm = self.bm
        p = s.prefix_tokens // bm.block_size
        if p == 0 or s.shared_blocks or s.num_computed < p * bm.block_size:
            return
        s.own_blocks -= p
        if not bm.prefix_register(s.prefix_id, p):  # someone cached it meanwhile: drop our copy
            bm.release(p)
            bm.prefix_acquire(s.prefix_id)
        s.shared_blocks = p

    def _preempt(self, s: Sequence):
        """Evict running ``s``; returns the bytes swapped out (0 for recompute)."""
        self.preemptions += 1
        s.preemptions += 1
        self._dirty = True
        if self.on_preempt is not None:
            self.on_preempt(s)
        blocks = s.own_blocks + s.shared_blocks
        if self.cfg.preemption == "swap" and self.swap_used + blocks <= self.swap_blocks:
            self.release(s)
            self.swap_used += blocks
            s.cpu_blocks = blocks
            s.state = SWAPPED
            self.swapped.append(s)
            self.swaps += 1
            return blocks * self.block_bytes
        self.release(s)
        s.num_computed = 0
        s.state = WAITING
        self.waiting.appendleft(s)
        self.waiting_tokens += s.num_tokens
        return 0.0

    def _swap_in(self, items, budget: int | None = None) -> float:
        """Bring swapped sequences back while they fit (FCFS); returns the bytes copied."""
        bm = self.bm
        moved = 0.0
        while self.swapped and len(self.running) < self.cfg.max_num_seqs:
            s = self.swapped[0]
            need = bm.blocks_for(s.num_tokens)
            if not bm.can_admit(need):
                break
            n = s.num_tokens - s.num_computed
            if budget is not None:
                n = min(n, budget)
                if n <= 0:
                    break
                budget -= n
            self.swapped.popleft()
            bm.allocate(need)
            s.own_blocks = need
            self.swap_used -= s.cpu_blocks
            moved += s.cpu_blocks * self.block_bytes
            s.cpu_blocks = 0
            s.state = RUNNING
            self.running.append(s)
            items.append((s, n))
        return moved

    def _decodes(self, cand: deque, items: list, budget: int | None = None, defer: list | None = None):
        """Schedule running sequences in priority order, preempting from the tail when a sequence
        needs a block and none is free. Returns (bytes swapped out, whether anyone was preempted).
        With ``defer``, partial prefills are set aside for the caller (chunked prefill)."""
        bm = self.bm
        bs = bm.block_size
        swapped = 0.0
        preempted = False
        while cand:
            s = cand.popleft()
            n = s.num_tokens - s.num_computed
            if defer is not None and n > 1:
                defer.append(s)
                continue
            if budget is not None:
                if budget <= 0:
                    break
                budget -= 1
            held = s.own_blocks + s.shared_blocks
            if s.num_computed + n > held * bs:
                need = blocks_for(s.num_computed + n, bs) - held
                while bm.total - bm.used < need:
                    preempted = True
                    if cand:
                        swapped += self._preempt(cand.pop())
                    elif defer:
                        swapped += self._preempt(defer.pop())
                    else:
                        swapped += self._preempt(s)
                        s = None
                        break
                if s is None:
                    break
                bm.allocate(need)
                s.own_blocks += need
            items.append((s, n))
        return swapped, preempted


class VllmScheduler(Scheduler):
    name = "vllm"

    def schedule(self) -> StepPlan | None:
        cfg = self.cfg
        items: list = []
        if self.waiting and not self.swapped:
            nrun = len(self.running)
            tokens = 0
            waiting = self.waiting
            while waiting and nrun < cfg.max_num_seqs:
                s = waiting[0]
                take, p, start = self._admission(s)
                n = s.num_tokens - start
                kv_ready = s.num_computed > 0
                # a prompt alone may exceed the budget only when it is a recompute (prompt + outputs);
                # longer prompts are rejected at arrival
                if not kv_ready and tokens and tokens + n > cfg.max_num_batched_tokens:
                    break
                if not self.bm.can_admit(take):
                    break
                waiting.popleft()
                self._admit(s, take, p, start)
                nrun += 1
                if not kv_ready:  # transferred KV joins the decode batch instead
                    items.append((s, n))
                    tokens += n
            if items:
                return _plan(items)
        cand = deque([s for s in self.running if not s.inflight])
        swapped_out, preempted = self._decodes(cand, items)
        swapped_in = 0.0
        if not preempted and self.swapped:
            swapped_in = self._swap_in(items)
        if not items:
            return None
        return _plan(items, swapped_out + swapped_in)


class SarathiScheduler(Scheduler):
    name = "sarathi"

    def schedule(self) -> StepPlan | None:
        cfg = self.cfg
        budget = cfg.chunk_size
        items: list = []
        deferred: list = []
        cand = deque([s for s in self.running if not s.inflight])
        swapped_out, preempted = self._decodes(cand, items, budget=budget, defer=deferred)
        budget -= len(items)
        # cand may still hold decodes that did not fit the budget: they wait for the next step
        for s in deferred:
            if budget <= 0:
                break
            n = min(s.num_tokens - s.num_computed, budget)
            items.append((s, n))
            budget -= n
        swapped_in = 0.0
        if not preempted and self.swapped and budget > 0:
            before = len(items)
            swapped_in = self._swap_in(items, budget)
            budget -= sum(n for _, n in items[before:])
        if not self.swapped and not preempted:  # a request preempted now is not re-admitted this step
            nrun = len(self.running)
            waiting = self.waiting
            while waiting and budget > 0 and nrun < cfg.max_num_seqs:
                s = waiting[0]
                take, p, start = self._admission(s)
                if not self.bm.can_admit(take):
                    break
                waiting.popleft()
                self._admit(s, take, p, start)
                nrun += 1
                n = min(s.num_tokens - s.num_computed, budget)
                items.append((s, n))
                budget -= n
        if not items:
            return None
        return _plan(items, swapped_out + swapped_in)


class StaticScheduler(Scheduler):
    name = "static"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.batch: list = []

    def leave(self, s: Sequence, state: int = DONE, release: bool = True) -> None:
        s.state = state  # finished members keep their reservation until the batch ends
        self._dirty = True

    def after_step(self) -> None:
        pass

    def has_work(self) -> bool:
        return bool(self.waiting or self.batch)

    def schedule(self) -> StepPlan | None:
        bm = self.bm
        live = [s for s in self.batch if s.state == RUNNING]
        if live:
            if live[0].inflight:
                return None
            pad = tuple((1, s.input_tokens + s.output_tokens - 1) for s in self.batch if s.state != RUNNING)
            return _plan([(s, s.num_tokens - s.num_computed) for s in live], pad=pad)
        for s in self.batch:
            bm.release(s.reserved)
            s.reserved = 0
        self.batch = []
        self.running = []
        cfg = self.cfg
        tokens = 0
        items = []
        while self.waiting and len(items) < cfg.max_num_seqs:
            s = self.waiting[0]
            need = bm.blocks_for(s.input_tokens + s.output_tokens)
            if items and tokens + s.input_tokens > cfg.max_num_batched_tokens:
                break
            if not bm.can_admit(need):
                break
            self.waiting.popleft()
            self.waiting_tokens -= s.num_tokens
            bm.allocate(need)
            s.reserved = need
            s.state = RUNNING
            items.append((s, s.num_tokens))
            tokens += s.num_tokens
        if not items:
            return None
        self.batch = [s for s, _ in items]
        self.running = list(self.batch)
        return _plan(items)


def make_scheduler(
    policy: str, cfg: SchedulerConfig, bm: BlockManager, block_bytes: float = 0.0, swap_blocks: int = 0
) -> Scheduler:
    cls = {
        "vllm": VllmScheduler,
        "disagg": VllmScheduler,
        "sarathi": SarathiScheduler,
        "static": StaticScheduler,
    }[policy]
    return cls(cfg, bm, block_bytes, swap_blocks)
