"""Attention accounting of a step's requests, written once for numbers and numpy arrays.

A step's requests are a tuple of ``(new, cached)`` pairs (a :class:`~workloads.graph.Batch`) or
``(new, kv length)`` pairs (an :class:`~workloads.opdata.AttentionShape`), or a :class:`SeqArrays`
holding many steps of the same requests at once. :func:`_request_stats` counts one request's
visible causal pairs, rectangle and cached tokens; everything else sums it. The graph builder and
the cost model read a step's requests only through the ``seq_*`` helpers here, so the same code
prices one step (Python numbers) or K steps at once (numpy arrays).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from hwmodels.arith import vmin, vwhere

_SUM = np.add.reduce  # ndarray.sum without its Python wrapper


def _request_stats(n, c, window: int | None):
    """(visible causal pairs, n x (c+n) rectangle, cached tokens read) of one request of ``n`` new
    tokens after ``c`` cached ones: numbers, or numpy integer arrays (elementwise, one request per
    element). The one place this counting is written; tuples and :class:`SeqArrays` sum it."""
    a, b = c + 1, c + n  # keys visible to the first and the last new query
    rect = n * (c + n)
    if window is None:
        return (a + b) * n // 2, rect, c
    pairs = vwhere(b <= window, (a + b) * n // 2,
                   vwhere(a >= window, window * n, (a + window) * (window - a + 1) // 2 + window * (b - window)))
    return pairs, rect, vmin(c, window)


@functools.lru_cache(maxsize=1024)
def _step_tuple(seqs: tuple, window: int | None) -> tuple:
    """:func:`step_sums` of a tuple of (new, cached) pairs, in one pass (remembered), and its decodes
    (requests of one new token after a cached context: :func:`phase_of`)."""
    pairs = rect = cached = tokens = dec = 0
    kv = []
    for n, c in seqs:
        p, r, k = _request_stats(n, c, window)
        pairs += p
        rect += r
        cached += k
        tokens += n
        if n == 1 and c > 0:
            dec += 1
        kv.append((n, c + n))
    stats = (float(pairs), float(rect), float(cached))
    kv = KVPairs(kv)
    kv.memo[("stats", window)] = stats  # handed on: the cost model's visible fraction reads them
    return *stats, tokens, kv, dec


class KVPairs(tuple):
    """The (new, kv length) pairs :func:`step_sums` makes of a step's (new, cached) pairs: a tuple (equal
    to the plain one and hashing as it does, so an op holding it is the same memo key) that carries the
    step's sums to the cost model: the builder's statistics, and what the cost model derives once
    (:meth:`sums`: query blocks, padded tile pairs)."""

    def __new__(cls, pairs):
        self = super().__new__(cls, pairs)
        self.memo = {}
        return self

    def sums(self, key, fn):
        """``fn(self)``, computed once per ``key`` for these pairs."""
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = fn(self)
        return got


def phase_of(decodes, requests: int) -> str:
    """A step's phase from its decodes (requests adding one token to a cached context): 'decode' when
    every request is one, 'prefill' when none is, else 'mixed'."""
    if decodes == requests:
        return "decode"
    return "prefill" if decodes == 0 else "mixed"


def _attn_stats_tuple(seqs: tuple, window: int | None) -> tuple[float, float, float]:
    return _step_tuple(seqs, window)[:3]


def step_sums(seqs, window: int | None) -> tuple:
    """(visible causal pairs, rectangle, cached tokens, new tokens, the (new, kv length) pairs) of a
    step's (new, cached) requests: what the graph builder's attention op reads of them, each computed
    once (one pass over a tuple, remembered; per step for a :class:`SeqArrays`, whose (new, kv length)
    form keeps these sums for the cost model: :meth:`SeqArrays.kv`)."""
    if isinstance(seqs, SeqArrays):
        pairs, rect, cached = seqs.stats(window)
        return pairs, rect, cached, seq_tokens(seqs), seqs.kv()
    if type(seqs) is not tuple:
        seqs = tuple(seqs)
    return _step_tuple(seqs, window)[:5]


def _attn_stats(seqs, window: int | None) -> tuple:
    """(visible causal pairs, full n x (c+n) rectangle, cached tokens read) for these requests:
    ``seqs`` a tuple of (new, cached) pairs (floats), or a :class:`SeqArrays` (arrays, one entry
    per step of its leading axes)."""
    if isinstance(seqs, SeqArrays):
        return seqs.stats(window)
    return _attn_stats_tuple(seqs, window)


_attn_stats.cache_clear = _step_tuple.cache_clear  # benchmarks time it cold


class SeqArrays:
    """Many steps of the same requests at once: ``first[k, i]`` and ``second[k, i]`` are request
    ``i``'s pair in step ``k`` (``(new, cached)`` as in a Batch, or ``(new, kv length)`` as in an
    AttentionShape). The graph builder's attention accounting and the cost model's attention
    formula read a step's requests through the helpers below (``seq_*``), so the same code prices
    one step (a tuple of pairs, Python numbers) or K steps at once (these arrays, numpy): an op
    axis, evaluated the way design points are (docs/performance.md).

    ``count`` (optional): requests per step when steps have fewer than the request axis holds (a
    serving decode run whose requests leave as they finish): a request absent from a step is the
    pair (0, 0), which adds nothing to any sum (no tokens, pairs, rectangle or cached tokens) and is
    never the longest; ``seq_count`` then gives the per-step count.

    The per-step sums read from it (tokens, the attention statistics, the longest second field, query
    blocks, padded tile pairs) are computed once per object and remembered (:meth:`sums`): the graph
    builder and the cost model read the same step's sums several times, and the arrays never change
    after construction (an object is not to be mutated). :meth:`kv` hands its statistics on to the
    (new, kv length) form, whose :meth:`cached` gives this object back."""

    __slots__ = ("first", "second", "count", "_memo")
    __hash__ = None  # arrays: never a memo key

    def __init__(self, first, second, count=None):
        self.first = np.asarray(first, dtype=np.int64)
        self.second = np.asarray(second, dtype=np.int64)
        self.count = count
        self._memo = {}

    def __len__(self) -> int:  # requests per step (the request axis)
        return self.first.shape[-1]

    def sums(self, key, fn):
        """``fn(self)``, computed once per ``key`` for this object (a per-step sum over its requests)."""
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = fn(self)
        return got

    def stats(self, window):
        return self.sums(("stats", window), lambda s: _stats_arrays(s.first, s.second, window))

    def kv(self) -> SeqArrays:
        """(new, cached) -> (new, kv length incl. the new tokens); its :meth:`cached` is this object."""
        out = SeqArrays(self.first, self.second + self.first, self.count)
        out._memo["cached"] = self
        tokens = self._memo.get("tokens")
        if tokens is not None:  # the same new tokens
            out._memo["tokens"] = tokens
        return out

    def cached(self) -> SeqArrays:
        """(new, kv length) -> (new, cached) (the object :meth:`kv` was called on, when it made this one)."""
        got = self._memo.get("cached")
        return got if got is not None else SeqArrays(self.first, self.second - self.first, self.count)

    def split(self) -> tuple:
        """(prefill-like, decode) requests, as Batch.split; requests must keep their side in every
        step (a context only grows, so a decode stays a decode). A request absent from some steps (the
        pair (0, 0)) is on the side of the steps it takes part in; each side's per-step ``count`` is its
        requests present (where this object has a ``count``). All decodes: ``((), self)``."""
        lead = tuple(range(self.first.ndim - 1))
        dec = (self.first == 1) & (self.second > 0)
        absent = (self.first == 0) & (self.second == 0) if self.count is not None else np.zeros_like(dec)
        col = ~(~dec & ~absent).any(axis=lead)  # decode (or absent) in every step
        if not (col | ~dec.any(axis=lead)).all():
            raise ValueError("a request changes between prefill and decode across the steps")
        if col.all():
            return (), self

        def side(cols):
            if not cols.any():
                return ()
            n = None if self.count is None else _SUM(~absent[..., cols], -1)
            return SeqArrays(self.first[..., cols], self.second[..., cols], n)

        return side(~col), side(col)


def _stats_arrays(first, second, window) -> tuple:
    pairs, rect, cached = _request_stats(first, second, window)
    # np.add.reduce is what ndarray.sum calls, without its Python wrapper (these run once per priced step)
    return (_SUM(pairs, -1).astype(float), _SUM(rect, -1).astype(float), _SUM(np.asarray(cached), -1).astype(float))


def _tokens(s: SeqArrays):
    return _SUM(s.first, -1)


def _max_second(s: SeqArrays):
    return s.second.max(-1)


def seq_count(seqs) -> int:
    """Requests of a step (per step for a SeqArrays whose steps hold different requests)."""
    if isinstance(seqs, SeqArrays) and seqs.count is not None:
        return seqs.count
    return len(seqs)


def seq_tokens(seqs):
    """New tokens of a step (per step for SeqArrays)."""
    if isinstance(seqs, SeqArrays):
        return seqs.sums("tokens", _tokens)
    return sum(n for n, _ in seqs)


def seq_context(seqs):
    """Cached tokens before a step (the second field of (new, cached) pairs; per step for SeqArrays)."""
    if isinstance(seqs, SeqArrays):
        return seqs.second.sum(-1)
    return sum(c for _, c in seqs)


def seq_max_second(seqs, default: int = 1):
    """The largest second field (an AttentionShape's longest kv length)."""
    if isinstance(seqs, SeqArrays):
        return seqs.sums("max", _max_second) if len(seqs) else default
    return max((kv for _, kv in seqs), default=default)


def seq_blocks(seqs, rows: int):
    """Blocks of ``rows`` new tokens over the requests: sum of ceil(new / rows)."""
    if isinstance(seqs, SeqArrays):
        return seqs.sums(("blocks", rows), lambda s: _SUM(-(-s.first // rows), -1))
    if type(seqs) is KVPairs:  # a step's cost reads its blocks more than once
        return seqs.sums(("blocks", rows), lambda s: _blocks_tuple.__wrapped__(s, rows))
    if type(seqs) is tuple:
        return _blocks_tuple(seqs, rows)
    return _blocks_tuple.__wrapped__(seqs, rows)


@functools.lru_cache(maxsize=256)  # a step reads it two or three times in a row: a few steps back suffice
def _blocks_tuple(seqs: tuple, rows: int) -> int:
    return sum(math.ceil(q / rows) for q, _ in seqs)
