"""Flash (fused) prefill attention as a stack's kernel runs it: the formula behind
``CostModel._attention`` when ``CostOptions.prefill_kernel`` is set (docs/cost-model.md, Attention).
It lives here only to keep sim/cost.py under the module size limit; it is written once and reads the
cost model's rates, memory helpers and shared tail (``_softmax``, ``_memory_time``, ``_finish``)."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from hwmodels.arith import NUMBERS, isarr
from hwmodels.dtype import get_dtype
from workloads.seqs import KVPairs, SeqArrays, _attn_stats, seq_blocks, seq_count


def kv_read_bytes(op) -> float:
    """Bytes of keys and values an attention op reads: its KV cache plus the new tokens' K and V."""
    return sum(t.bytes for t in op.tensors if not t.write and (t.role == "kv" or t.name == "kv_new"))


def visible_fraction(a) -> float:
    """Share of the (query, key) rectangle a causal (or windowed) attention actually visits (per
    step when the shape holds many steps)."""
    if not a.causal:
        return 1.0
    seqs = a.seqs
    if isinstance(seqs, SeqArrays):  # once per step arrays (the kernel's two terms read it)
        return seqs.sums(("visible", a.window), lambda s: _visible(s.cached(), a.window))
    if type(seqs) is KVPairs:  # the builder's statistics, handed on
        got = seqs.memo.get(("stats", a.window))
        if got is not None:
            return _ratio(got[0], got[1])
    if type(seqs) is tuple:
        return _visible_tuple(seqs, a.window)
    return _visible_tuple.__wrapped__(seqs, a.window)


@functools.lru_cache(maxsize=256)  # a step reads it two or three times in a row: a few steps back suffice
def _visible_tuple(seqs: tuple, window) -> float:
    """:func:`visible_fraction` of (new, kv length) pairs (remembered: a step's cost reads it twice)."""
    return _visible(tuple((q, kv - q) for q, kv in seqs), window)


def _visible(cached, window):
    """Visible pairs / rectangle of (new, cached) requests (1 where the rectangle is empty)."""
    pairs, rect, _ = _attn_stats(cached, window)
    return _ratio(pairs, rect)


def _ratio(pairs, rect):
    """Visible pairs / rectangle (1 where the rectangle is empty)."""
    if isinstance(rect, np.ndarray):
        return np.where(rect > 0, pairs / np.where(rect > 0, rect, 1.0), 1.0)
    return pairs / rect if rect else 1.0


def waves(x, ctas, cores) -> tuple:
    """(waves, wave quantization factor >= 1) of ``ctas`` CTAs over ``cores`` cores, one CTA per core at
    a time: the last wave's idle cores cost as if busy."""
    n = x.ceil(ctas / cores)
    return n, n * cores / x.max(ctas, 1)


def kv_rereads(cm, op, cols: list, rows: int) -> list:
    """``cols`` plus the flash kernel's K and V re-reads (cached and new) from the chip-level cache: once
    per block of ``rows`` query rows and per query head of a KV group; a causal block reads only the keys
    it can see. Unchanged without a cache level."""
    if cm.cache is None:
        return cols
    a = op.attention
    qblocks = seq_blocks(a.seqs, rows) / max(seq_count(a.seqs), 1)
    cols = list(cols)
    cols[cm.cache] = cols[cm.cache] + kv_read_bytes(op) * cm.x.max(1.0, qblocks) \
        * max(1, a.heads // max(a.kv_heads, 1)) * visible_fraction(a)
    return cols


def _padded_pairs(seqs, bq: int, bkv: int, group: int = 1):
    """(query, key) pairs of the requests' full rectangles with both sides padded to whole tiles of
    ``bq`` query rows and ``bkv`` keys: sum of ceil(group x new / bq) bq x ceil(kv / bkv) bkv over the
    requests ((new, kv length) pairs; per step for a SeqArrays). ``group``: query rows per new token
    (a grouped decode kernel packs its KV head's query heads into one tile; 1 otherwise)."""
    if isinstance(seqs, SeqArrays):  # once per step arrays and tiles
        return seqs.sums(("padded", bq, bkv, group), lambda s: (
            (-(-(s.first * group) // bq)) * bq * (-(-s.second // bkv)) * bkv).sum(-1).astype(float))
    if type(seqs) is KVPairs:
        return seqs.sums(("padded", bq, bkv, group), lambda s: _padded_tuple.__wrapped__(s, bq, bkv, group))
    if type(seqs) is tuple:
        return _padded_tuple(seqs, bq, bkv, group)
    return _padded_tuple.__wrapped__(seqs, bq, bkv, group)


@functools.lru_cache(maxsize=256)  # a step reads it two or three times in a row: a few steps back suffice
def _padded_tuple(seqs: tuple, bq: int, bkv: int, group: int) -> float:
    return float(sum(math.ceil(q * group / bq) * bq * math.ceil(kv / bkv) * bkv for q, kv in seqs))


def mma_rate(cm, rate, mma: str):
    """The matrix rate of a kernel that issues ``mma`` instructions (PrefillKernel.mma): ``rate`` (the chip's
    matrix rate, its native path's) for ``native``; for ``sync`` (sm80's warp-synchronous mma.sync, as
    FlashAttention-2 compiles on every architecture) that rate times the matrix unit's ``mma_sync_share``
    (1 where mma.sync is the native path; Hopper's wgmma-based rate is faster: docs/cost-model.md)."""
    if mma != "sync":
        return rate
    return rate * cm.chip.matrix_unit().mma_sync_share


def tile_work(cm, op, rate, vec_rate, softmax_hidden: float, soft=None) -> tuple:
    """(steady, serial) seconds of an attention op's matrix and softmax work, the whole op at the chip's
    rates, as a flash kernel's tiles run it: the softmax (exponentials on the special unit, the rest on
    the vector unit) and the matrix work take turns (serial), except, in the steady state, for the share
    ``softmax_hidden`` of the matrix time the softmax runs under where the special unit overlaps the
    matrix unit; with the kernel-only softmax (CostOptions.softmax ideal) its vector FLOPs run under the
    matrix work (both max(matrix, vector)). ``soft``: ``cm._softmax(op, vec_rate)`` when the caller has it."""
    x = cm.x
    vec, sfu, _ = cm._softmax(op, vec_rate) if soft is None else soft
    mat = op.flops_matrix / rate
    if sfu is None:
        return x.max(mat, vec), x.max(mat, vec)
    soft = sfu + vec
    hidden = softmax_hidden if cm.chip.unit("special").overlaps_matrix else 0.0
    return mat + x.max(0.0, soft - hidden * mat), mat + soft


def flash_prefill(cm, op, pk, cols, rate, vec_rate, flops):
    """Flash prefill as the stack's kernel runs it (CostOptions.prefill_kernel, docs/cost-model.md):
    one CTA per (request, head, block of bq query rows) walks the keys in tiles of bkv (both padded
    to whole tiles; a causal block also computes the masked half of its diagonal tile). Per tile
    the matrix work and the softmax (exponentials on the special unit, the rest on the vector unit)
    take turns, except for the share ``softmax_hidden`` of the matrix time the softmax runs under;
    each CTA adds ``fill_blocks`` tiles at the serial rate (its software pipeline's prologue and
    epilogue) and, unless its CTAs are persistent, waits for its Q tile and its O store (one
    main-memory round trip each, the bytes at its share of the bandwidth), under the work of the other
    CTAs its core holds at once (``ctas_per_core``): max(work, (work + waits) / ctas_per_core). CTAs run
    in waves over the cores. ``pk``: the kernel's facts on this chip's architecture, resolved by the caller
    (CostModel._prefill_kernel, once per model; PrefillKernel.on: vLLM runs FlashAttention-3 on Hopper,
    FlashAttention-2 on Ampere and Ada). The matrix work runs at the kernel's MMA path's rate (:func:`mma_rate`)."""
    x = cm.x
    a = op.attention
    rate = mma_rate(cm, rate, pk.mma)
    bq, bkv = pk.tile(a.head_dim, bool(a.causal))
    ctas = seq_blocks(a.seqs, bq) * a.heads
    nwaves, wq = waves(x, ctas, cm.cores)
    pairs = op.flops_matrix / (2.0 * (a.head_dim + a.head_dim_v))  # visible (query, key) pairs, all heads
    padded = _padded_pairs(a.seqs, bq, bkv) * a.heads * visible_fraction(a)
    if a.causal:  # the diagonal tile of each query block is computed whole and half of it masked
        padded = padded + ctas * bq * bkv / 2.0
    pad = x.max(1.0, padded / x.max(pairs, 1.0))
    steady, serial = tile_work(cm, op, rate, vec_rate, pk.softmax_hidden)
    fill = ctas * pk.fill_blocks * bq * bkv * serial / x.max(pairs, 1.0)
    io = 0.0
    if not pk.persistent:  # Q tile in, O tile out, each behind one main-memory round trip
        qo = ctas * bq * (a.head_dim + a.head_dim_v) * get_dtype(op.compute_dtype).bytes
        io_cols = [0.0] * cm.L
        cm._add(io_cols, cm.act, qo)
        lat = cm.lat[cm.act] if not isarr(cm.act) else cm.lat[cm.main]
        io = cm._memory_time(io_cols) + ctas * 2 * lat / cm.cores
    work = steady * pad + fill
    # resident CTAs (ctas_per_core) run their work while another waits for its Q tile or O store
    compute = x.max(work, (work + io) / pk.ctas_per_core) * wq
    cols = kv_rereads(cm, op, cols, bq)
    detail = "" if cm.arrays else f"flash {bq}x{bkv}, {ctas} CTAs, {nwaves} waves"
    return cm._finish(op, compute, cm._memory_time(cols), 0.0, cols, flops, detail=detail)


def decode_tile_serial(cm, op, dk, ctas, slots, rate, vec_rate, soft=None):
    """Seconds of a decode kernel's compute that its KV stream cannot hide (DecodeKernel.q_tile_rows,
    docs/cost-model.md, Paged decode): a CTA's first K/V tile arrives before its compute starts and its
    last tile's compute follows its last load, so each CTA runs one tile of ``q_tile_rows`` x
    ``kv_tile_tokens`` (query, key) pairs alone: the matrix work, then the softmax (the exponentials on
    the special unit where the stack prices them there), at one core's share of the op's rates. The
    CTAs resident on a core (at most ``split_ctas_per_core``) share it; each wave of CTAs over the
    ``slots`` pays again. 0 without a tile, and on chips that do not list the special unit (a GPU
    kernel's facts key on it, as the prefill kernel's do: a wafer's cores are not SMs). ``soft``:
    ``cm._softmax(op, vec_rate)`` when the caller has it."""
    x = cm.x
    if dk.q_tile_rows <= 0 or cm.chip.unit("special") is None:
        return 0.0
    a = op.attention
    pairs = op.flops_matrix / (2.0 * (a.head_dim + a.head_dim_v))  # (query, key) pairs of all heads
    vec, sfu, _ = cm._softmax(op, vec_rate) if soft is None else soft
    chip_s = op.flops_matrix / rate + vec + (0.0 if sfu is None else sfu)  # the op's work, one after the other
    tile_s = dk.q_tile_rows * dk.kv_tile_tokens * chip_s / x.max(pairs, 1.0) * cm.cores  # one tile on one core
    resident = x.min(dk.split_ctas_per_core, x.ceil(ctas / cm.cores))
    return x.ceil(ctas / slots) * resident * tile_s


def decode_tile_pad(cm, op, dk, per_q: bool):
    """Factor (>= 1) by which a decode kernel's tiles outgrow the op's (query, key) pairs
    (DecodeKernel.q_tile_rows, docs/cost-model.md, Paged decode): each CTA runs the matrix work and
    the softmax of whole ``q_tile_rows`` x ``kv_tile_tokens`` tiles (the MMA is issued on the full tile
    and the softmax runs on every row of it; padded rows are only dropped at the output store), so a
    (request, KV head) unit of a grouped kernel computes ceil(group x new / q_tile_rows) tiles of rows
    and a per-query-head CTA ceil(new / q_tile_rows), each over ceil(kv / kv_tile_tokens) tiles of
    keys. 1 without a tile (the kernel-only model) and on chips that do not list the special unit (as
    :func:`decode_tile_serial`: a GPU kernel's tiles; a wafer's cores are not SMs)."""
    if dk.q_tile_rows <= 0 or cm.chip.unit("special") is None:
        return 1.0
    a = op.attention
    pairs = op.flops_matrix / (2.0 * (a.head_dim + a.head_dim_v))  # (query, key) pairs of all heads
    group = 1 if per_q else max(1, a.heads // max(a.kv_heads, 1))
    padded = _padded_pairs(a.seqs, dk.q_tile_rows, dk.kv_tile_tokens, group) * (a.heads if per_q else a.kv_heads)
    return cm.x.max(1.0, padded / cm.x.max(pairs, 1.0))


def decode_prepare_time(cm, op, dk):
    """Seconds of the scheduler-metadata kernel a decode call launches before its attention kernel
    (DecodeKernel.prepare_kernel, docs/cost-model.md, Paged decode): upstream FlashAttention-3's
    ``prepare_varlen_num_blocks`` (hopper/flash_fwd_launch_template.h, run whenever cache_seqlens make the
    call varlen) reads each request's KV length and writes its split count, which the attention kernel waits
    for: one more kernel's fixed time (``cm._overhead``) and one main-memory round trip. 0 without (no such
    kernel, or one per step shared by every layer, as vLLM passes ``scheduler_metadata``)."""
    if not dk.prepare_kernel:
        return 0.0
    return cm._overhead(op) + cm.lat[cm.main]


def decode_kernel_at(dk, head_dim):
    """The decode kernel's facts at ``head_dim``: ``kv_tile_tokens`` from its ``kv_tile_tokens_by_head_dim``
    row (the first whose head_dim bound holds, the last above them all; FlashAttention-2's split kernel
    runs block_n 256 / 128 / 64 keys at head_dim <= 64 / <= 128 / above), else unchanged."""
    if not dk.kv_tile_tokens_by_head_dim:
        return dk
    return _kernel_at(dk, int(head_dim))


@functools.lru_cache(maxsize=64)  # one object per (kernel, head_dim): the split cache keys on its identity
def _kernel_at(dk, head_dim: int):
    rows = dk.kv_tile_tokens_by_head_dim
    tokens = next((n for bound, n in rows if head_dim <= bound), rows[-1][1])
    return dataclasses.replace(dk, kv_tile_tokens=int(tokens), kv_tile_tokens_by_head_dim=())


def decode_combine_trips(x, dk, split):
    """Round trips of a split-KV decode's combine kernel (DecodeKernel.combine_splits_per_trip,
    docs/cost-model.md, Paged decode): one that reads the splits' log-sum-exps, then one per
    ``combine_splits_per_trip`` splits of partial outputs, each loaded before it is added in
    (FlashAttention-2's combine_attn_seqk_parallel loads one split per iteration of its loop over
    num_splits); 1 where the kernel reads them all at once (``combine_splits_per_trip`` 0)."""
    per = dk.combine_splits_per_trip
    if per <= 0:
        return 1
    return 1 + x.ceil(split / per)


# -- split-KV: how many splits of the KV length a decode kernel runs (DecodeKernel.split_rule) ----------
MAX_SPLITS = 128  # FlashAttention's num_splits upper bound (flash_api.cpp: "num_splits > 128 not supported")


@functools.lru_cache(maxsize=4096)
def _occupancy_one(units: int, slots: int, tiles: int) -> int:
    """:func:`_occupancy_grid` for one case (remembered: a decode run asks the same few cases)."""
    return int(_occupancy_grid(float(units), float(slots), float(tiles)))


def _occupancy_grid(units, slots, tiles):
    """FlashAttention's ``num_splits_heuristic`` (flash_api.cpp), for numbers or arrays: 1 when the units
    almost fill the slots (>= 0.8 of them); else, over the eligible split counts up to min(128, slots, tiles)
    (a count is eligible when it changes the tiles per split), the smallest whose wave efficiency (waves /
    ceil(waves), waves = units x splits / slots) reaches 0.85 of the best. Evaluated as one grid of every
    split count (MAX_SPLITS per case)."""
    args = (units, slots, tiles)
    shape = np.broadcast_shapes(*(np.shape(v) for v in args))
    u, sl, t = (np.broadcast_to(np.asarray(v, dtype=float), shape) for v in args)
    s = np.arange(1, MAX_SPLITS + 1, dtype=float)
    t = np.maximum(t, 1.0)[..., None]
    eligible = (s == 1) | (np.ceil(t / s) != np.ceil(t / np.maximum(s - 1, 1)))
    eligible &= s <= np.minimum(np.minimum(MAX_SPLITS, sl), t[..., 0])[..., None]
    w = u[..., None] * s / sl[..., None]
    eff = np.where(eligible, w / np.ceil(w), 0.0)
    ok = eligible & (eff >= 0.85 * eff.max(-1, keepdims=True))
    return np.where((u < 0.8 * sl) & ok.any(-1), ok.argmax(-1) + 1, 1).astype(float)


def _occupancy(units, slots, tiles):
    """:func:`_occupancy_one` for numbers or arrays (every argument may be an array: steps, design points).
    One batch and slot count over a short range of tiles (a decode run's steps) goes through the cached count
    per tile count; anything else through :func:`_occupancy_grid` at once."""
    args = (units, slots, tiles)
    if not any(isinstance(v, np.ndarray) for v in args):
        return _occupancy_one(int(units), int(slots), int(max(tiles, 1)))
    one = [v if not isinstance(v, np.ndarray) else (v.flat[0] if v.min() == v.max() else None) for v in args[:2]]
    if None not in one and isinstance(tiles, np.ndarray):  # a decode run: one batch and slot count
        lo, hi = max(int(tiles.min()), 1), max(int(tiles.max()), 1)
        if hi - lo < 64:
            table = np.array([_occupancy_one(int(one[0]), int(one[1]), c) for c in range(lo, hi + 1)], dtype=float)
            return table[np.maximum(tiles, 1).astype(int) - lo]
    return _occupancy_grid(units, slots, tiles)


_MIN, _MAX = np.minimum.reduce, np.maximum.reduce  # ndarray.min/max without their Python wrappers


def _run_constant(v):
    """The one value of ``v`` (a number, or an array holding one value throughout), else None."""
    if not isinstance(v, np.ndarray):
        return v
    lo = v.min()
    return lo if lo == v.max() else None


def decode_splits(x, dk, units, slots, tiles, group_units):
    """KV splits of a decode kernel (docs/cost-model.md, Paged decode): 1 once the ``units`` (request, KV
    head) CTAs fill ``split_threshold`` of the ``slots`` or the longest context spans fewer than
    ``split_min_kv_tiles`` of its ``tiles``; else by ``dk.split_rule``: ``fill`` min(ceil(slots / units),
    tiles) (the kernel-only model); ``occupancy`` FlashAttention's num_splits_heuristic
    (:func:`_occupancy`); ``dynamic`` FlashAttention-3's varlen split (hopper/flash_prepare_scheduler.cu:
    blocks per SM = ceil(1.1 x units x tiles / slots), splits = ceil(tiles / that), at most the
    occupancy heuristic's count for one request's ``group_units``). Arrays of decode steps with one slot
    count, a few batch sizes and a short range of tiles are priced once per (batch, tile count)."""
    sl = _run_constant(slots)
    if dk.split_rule != "fill" and sl is not None and (isinstance(tiles, np.ndarray) or isinstance(units, np.ndarray)):
        if isinstance(tiles, np.ndarray) and (not isinstance(units, np.ndarray) or tiles.shape == units.shape):
            t, ub = tiles, units  # the steps of decode runs: one shape, or one batch (numpy's broadcasting helpers cost more)
        else:
            shape = np.broadcast_shapes(np.shape(units), np.shape(tiles))
            t, ub = np.broadcast_to(tiles, shape), np.broadcast_to(units, shape)
        ti = t.astype(int)
        lo, hi = int(_MIN(ti, axis=None)), int(_MAX(ti, axis=None))
        uu = sorted(set(ub.ravel().tolist())) if isinstance(ub, np.ndarray) else [ub]  # the batches
        if len(uu) == 1 and hi - lo < 64:  # a decode run's steps: one batch and slot count
            row, first = _splits_span(dk, float(uu[0]), float(sl), lo, hi, group_units)
            return row[ti - first]
        if len(uu) * (hi - lo + 1) <= 1024:  # several runs' steps: a few batches, a short range of tiles
            spans = [_splits_span(dk, float(v), float(sl), lo, hi, group_units) for v in uu]
            table = np.array([row[lo - first:hi + 1 - first] for row, first in spans])
            return table[np.array(uu).searchsorted(ub), ti - lo]
    return _splits(x, dk, units, slots, tiles, group_units)


def _splits_span(dk, units: float, slots: float, lo: int, hi: int, group_units) -> tuple:
    """(row, first): :func:`_splits_row` of one batch as an int64 array over the tile counts first ..
    first + len(row) - 1, a span that covers lo .. hi, remembered per batch and widened (from the remembered
    cases) when a later call reaches past it: successive decode runs ask the same few batches at tile
    ranges that move by a tile now and then, so most calls only slice the array they got before. Cleared
    with the cases (``_SPLITS``)."""
    key = (id(dk), units, slots, group_units)
    got = _SPANS.get(key)
    if got is not None and _SPLITS_DK.get(key[0]) is dk:
        row, first = got
        if first <= lo and hi < first + len(row):
            return got
        lo, hi = min(lo, first), max(hi, first + len(row) - 1)
    got = _SPANS[key] = (np.array(_splits_row(dk, units, slots, lo, hi, group_units), dtype=np.int64), lo)
    return got


def _splits_row(dk, units: float, slots: float, lo: int, hi: int, group_units) -> list:
    """:func:`_splits` of one batch at the tile counts lo .. hi, each case remembered (successive decode runs
    ask the same few batches at tile ranges that move as contexts grow). Keyed by the kernel object's
    identity, not its value: hashing the 15-field ``DecodeKernel`` costs more than the lookup (each kernel
    is kept while its entries are, so an identity names one kernel); at most ``_SPLITS_MAX`` cases."""
    k = id(dk)
    if _SPLITS_DK.get(k) is not dk:
        _SPLITS_DK[k] = dk
    out = []
    for c in range(lo, hi + 1):
        key = (k, units, slots, c, group_units)
        v = _SPLITS.get(key)
        if v is None:
            if len(_SPLITS) >= _SPLITS_MAX:
                _SPLITS.clear()
                _SPLITS_DK.clear()
                _SPANS.clear()
                _SPLITS_DK[k] = dk
            v = _SPLITS[key] = _splits(NUMBERS, dk, units, slots, c, group_units)
        out.append(v)
    return out


_SPLITS: dict = {}  # (id of the kernel, units, slots, tiles, group units) -> splits
_SPLITS_DK: dict = {}  # id -> the kernel (alive while its entries are: an id is never reused meanwhile)
_SPANS: dict = {}  # (id of the kernel, units, slots, group units) -> (splits over a span of tile counts, its first)
_SPLITS_MAX = 65_536


def _splits(x, dk, units, slots, tiles, group_units):
    one = (units >= dk.split_threshold * slots) | (tiles < dk.split_min_kv_tiles)
    if one.all() if isarr(one) else one:  # no split anywhere (most serving steps): nothing to choose
        return x.where(one, 1, 1)
    if dk.split_rule == "occupancy":
        n = _occupancy(units, slots, tiles)
    elif dk.split_rule == "dynamic":
        per_sm = x.max(1, x.ceil(1.1 * units * tiles / slots))
        n = x.min(x.ceil(tiles / per_sm), _occupancy(group_units, slots, tiles))
    else:
        n = x.min(x.ceil(slots / units), tiles)
    return x.where(one, 1, x.max(1, n))
