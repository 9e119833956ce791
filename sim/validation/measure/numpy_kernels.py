"""The CPU kernels, in numpy: GEMM, attention (GQA, causal), memcpy, elementwise, RMSNorm."""

from __future__ import annotations

import itertools
import math

import numpy as np

from sim.validation.measure.timing import Kernel, Settings, _ncopies

_RNG_BLOCK = 1 << 20


def _np_randn(shape, dtype=np.float32, seed=0) -> np.ndarray:
    """Random normal data, fast for big buffers: a 1M-element random block tiled."""
    size = int(np.prod(shape)) if shape else 1
    rng = np.random.default_rng(seed)
    if size <= _RNG_BLOCK:
        return rng.standard_normal(size, dtype=np.float32).astype(dtype, copy=False).reshape(shape)
    out = np.empty(size, dtype=dtype)
    block = rng.standard_normal(_RNG_BLOCK, dtype=np.float32).astype(dtype, copy=False)
    for i in range(0, size, _RNG_BLOCK):
        j = min(size, i + _RNG_BLOCK)
        out[i:j] = block[: j - i]
    return out.reshape(shape)


def _np_copies(arrs: list[np.ndarray], n: int) -> list[list[np.ndarray]]:
    sets = [arrs]
    for _ in range(n - 1):
        sets.append([a.copy() for a in arrs])
    return sets


def _np_gemm(m, n, k, s: Settings) -> Kernel:
    a = _np_randn((m, k), seed=1)
    b = _np_randn((k, n), seed=2)
    c = np.empty((m, n), np.float32)
    nc = _ncopies((a.nbytes + b.nbytes + c.nbytes), s)
    sets = _np_copies([a, b, c], nc)

    def call(i):
        x, w, o = sets[i % nc]
        np.matmul(x, w, out=o)

    return Kernel(call, nc, keep=[sets])


def _np_attention(sh: dict, s: Settings) -> Kernel:
    b, h, kvh, d = sh["batch"], sh["heads"], sh["kv_heads"], sh["head_dim"]
    sq, skv, causal = sh["seqlen_q"], sh["seqlen_kv"], sh["causal"]
    g = h // kvh
    # queries of the g heads that share one KV head are stacked: (b, kvh, g*sq, d)
    q = _np_randn((b, kvh, g * sq, d), seed=3)
    kk = _np_randn((b, kvh, skv, d), seed=4)
    v = _np_randn((b, kvh, skv, d), seed=5)
    scale = np.float32(1.0 / math.sqrt(d))
    mask = None
    if causal:
        i = np.arange(sq)[:, None] + (skv - sq)
        j = np.arange(skv)[None, :]
        mask = np.where(j > i, np.float32(-np.inf), np.float32(0.0)).astype(np.float32)
    nc = _ncopies(q.nbytes + kk.nbytes + v.nbytes, s, cap=8)
    sets = _np_copies([q, kk, v], nc)

    def call(idx):
        qq, k_, v_ = sets[idx % nc]
        sc = np.matmul(qq, k_.transpose(0, 1, 3, 2))
        sc *= scale
        if mask is not None:
            sc.reshape(b, kvh, g, sq, skv)[...] += mask
        sc -= sc.max(axis=-1, keepdims=True)
        np.exp(sc, out=sc)
        sc /= sc.sum(axis=-1, keepdims=True)
        return np.matmul(sc, v_)

    return Kernel(call, nc, keep=[sets])


def _np_memcpy(nbytes, s: Settings, threads: int = 1) -> Kernel:
    """np.copyto of one buffer into another; with threads > 1, each thread copies one slice
    (numpy releases the GIL while copying)."""
    n = nbytes // 4
    src = _np_randn((n,), seed=6)
    dst = np.empty_like(src)
    if threads <= 1:
        return Kernel(lambda i: np.copyto(dst, src), 1, keep=[src, dst])
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=threads)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    parts = [(dst[a:b], src[a:b]) for a, b in itertools.pairwise(bounds)]

    def call(i):
        list(pool.map(lambda p: np.copyto(p[0], p[1]), parts))

    return Kernel(call, 1, keep=[src, dst, pool])


def _np_elementwise(kind, numel, s: Settings) -> Kernel:
    x = _np_randn((numel,), seed=7)
    y = _np_randn((numel,), seed=8)
    out = np.empty_like(x)
    tmp = np.empty_like(x)
    if kind == "add":
        def call(i):
            np.add(x, y, out=out)
    elif kind == "silu":
        def call(i):
            np.negative(x, out=tmp)
            np.exp(tmp, out=tmp)
            np.add(tmp, 1.0, out=tmp)
            np.divide(x, tmp, out=out)
    elif kind == "gelu":
        c0, c1 = np.float32(math.sqrt(2.0 / math.pi)), np.float32(0.044715)

        def call(i):
            np.multiply(x, x, out=tmp)
            np.multiply(tmp, x, out=tmp)
            np.multiply(tmp, c1, out=tmp)
            np.add(tmp, x, out=tmp)
            np.multiply(tmp, c0, out=tmp)
            np.tanh(tmp, out=tmp)
            np.add(tmp, 1.0, out=tmp)
            np.multiply(x, tmp, out=out)
            np.multiply(out, 0.5, out=out)
    else:  # pragma: no cover - guarded by the suite
        raise ValueError(kind)
    return Kernel(call, 1, keep=[x, y, out, tmp])


def _np_rmsnorm(m, n, s: Settings) -> Kernel:
    x = _np_randn((m, n), seed=9)
    w = _np_randn((n,), seed=10)
    out = np.empty_like(x)
    nc = _ncopies(2 * x.nbytes, s, cap=8)
    sets = _np_copies([x, out], nc)
    eps = np.float32(1e-6)

    def call(i):
        xx, oo = sets[i % nc]
        ms = np.einsum("ij,ij->i", xx, xx) / np.float32(n)
        r = 1.0 / np.sqrt(ms + eps)
        np.multiply(xx, r[:, None], out=oo)
        oo *= w

    return Kernel(call, nc, keep=[sets])
