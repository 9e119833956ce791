"""Paged KV-cache block manager of one replica: counts fixed-size blocks, as vLLM's allocator does.

The KV cache of a replica is cut into blocks of ``block_size`` tokens (vLLM's default is 16). A
sequence holding ``n`` tokens of KV owns ``ceil(n / block_size)`` blocks, so the only waste is the
unfilled tail of its last block (paged attention's point). Step times do not depend on which
physical block a token lands in, so the manager counts blocks instead of keeping block tables;
what it guards is the invariant that matters for scheduling: blocks in use never exceed capacity.

- ``watermark``: a fraction of the blocks kept free when *admitting* a new prompt (vLLM's
  ``watermark=0.01``), so that running sequences can still grow by a block without preempting
  at once. Appending a decode slot may use the watermark blocks.
- Prefix caching (optional): the full blocks of a shared prompt prefix (``prefix_id``) are held
  once and referenced by every sequence that shares them. When the last reference goes, the
  blocks stay cached but *idle*: they count as free for allocation and are evicted, least
  recently used first, only when an allocation needs them (vLLM's free-block queue with
  cached blocks). ``used`` counts referenced blocks only, so it returns to zero when every
  sequence has finished.
"""

from __future__ import annotations

from collections import OrderedDict

from sim.techniques import blocks_for  # the one ceil(tokens / block_size), shared with the memory planner

__all__ = ["BlockManager", "blocks_for"]


class BlockManager:
    """Counts the KV blocks of one replica (``total`` blocks of ``block_size`` tokens)."""

    __slots__ = (
        "total",
        "block_size",
        "watermark_blocks",
        "used",
        "peak",
        "idle",
        "_prefix",
        "_idle_lru",
        "prefix_hits",
        "prefix_hit_blocks",
        "evictions",
    )

    def __init__(self, total_blocks: int, block_size: int = 16, watermark: float = 0.01):
        if total_blocks < 1:
            raise ValueError(f"a KV cache needs at least one block, got {total_blocks}")
        self.total = int(total_blocks)
        self.block_size = int(block_size)
        self.watermark_blocks = int(watermark * self.total)
        self.used = 0  # blocks referenced by sequences (own blocks + referenced shared prefixes)
        self.peak = 0
        self.idle = 0  # cached prefix blocks nobody references (reclaimable)
        self._prefix: dict = {}  # prefix_id -> [blocks, refs]
        self._idle_lru: OrderedDict = OrderedDict()  # prefix_id -> blocks, least recently used first
        self.prefix_hits = 0
        self.prefix_hit_blocks = 0
        self.evictions = 0

    # ---- sizes ----------------------------------------------------------------------------
    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold ``tokens`` tokens of KV."""
        return blocks_for(tokens, self.block_size)

    @property
    def available(self) -> int:
        """Blocks an allocation may take now (free plus idle cached blocks)."""
        return self.total - self.used

    @property
    def utilization(self) -> float:
        return self.used / self.total

    def can_admit(self, blocks: int) -> bool:
        """Whether a new prompt needing ``blocks`` blocks may start (keeps the watermark free)."""
        return self.total - self.used - blocks >= self.watermark_blocks

    def fits_ever(self, blocks: int) -> bool:
        """Whether ``blocks`` could ever be admitted (on an otherwise empty cache)."""
        return blocks <= self.total - self.watermark_blocks

    # ---- allocation -----------------------------------------------------------------------
    def allocate(self, blocks: int) -> None:
        if blocks <= 0:
            return
        free = self.total - self.used - self.idle
        if free < blocks:
            self._evict(blocks - free)
        self.used += blocks
        if self.used > self.total:  # an invariant of the simulator, not a user error
            raise RuntimeError(f"KV blocks over capacity: {self.used} > {self.total}")
        if self.used > self.peak:
            self.peak = self.used

    def release(self, blocks: int) -> None:
        self.used -= blocks
        if self.used < 0:
            raise RuntimeError(f"KV blocks released twice: used = {self.used}")

    def _evict(self, need: int) -> None:
        lru = self._idle_lru
        while need > 0 and lru:
            pid, b = lru.popitem(last=False)
            del self._prefix[pid]
            self.idle -= b
            need -= b
            self.evictions += 1
        if need > 0:
            raise RuntimeError("KV allocation beyond capacity (the scheduler checked too little)")

    # ---- prefix cache ---------------------------------------------------------------------
    def prefix_cached(self, pid) -> tuple[int, bool]:
        """(blocks cached for prefix ``pid`` (0 if none), whether they are idle)."""
        e = self._prefix.get(pid)
        if e is None:
            return 0, False
        return e[0], e[1] == 0

    def prefix_acquire(self, pid) -> int:
        """Reference the cached prefix ``pid``; returns its blocks (a cache hit)."""
        e = self._prefix[pid]
        if e[1] == 0:
            del self._idle_lru[pid]
            self.idle -= e[0]
            self.used += e[0]
            if self.used > self.peak:
                self.peak = self.used
        e[1] += 1
        self.prefix_hits += 1
        self.prefix_hit_blocks += e[0]
        return e[0]

    def prefix_register(self, pid, blocks: int) -> bool:
        """Turn ``blocks`` blocks a sequence already holds into the shared prefix ``pid``.

        Returns False when ``pid`` is already cached (the caller then drops its duplicate
        blocks and acquires the cached ones).
        """
        if pid in self._prefix:
            return False
        self._prefix[pid] = [blocks, 1]
        return True

    def prefix_release(self, pid) -> None:
        e = self._prefix[pid]
        e[1] -= 1
        if e[1] == 0:
            self.used -= e[0]
            self.idle += e[0]
            self._idle_lru[pid] = e[0]
