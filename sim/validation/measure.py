"""Measure real kernels, and load measured per-kernel CSV files.

Two halves, both about the per-kernel CSV format that ``llmsim ops`` reads (docs/measurement.md):

- the harness behind ``llmsim measure``: microbenchmarks of the kernels LLM inference is made of
  (GEMMs, attention, memcpy, elementwise, norms, collectives), timed with warm-up, device
  synchronisation and adaptive repetition, written one flushed CSV row at a time;
- ``load_measurements``: read a measured CSV (or a built-in data set such as ``'vidur-a100'``),
  check every row, and flag bad rows with their reason in an ``error`` column.

The CPU path needs only numpy. torch is imported lazily, inside the torch/CUDA code paths only.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import io
import itertools
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hwmodels.errors import SpecError

__all__ = [
    "COLLECTIVE_OPS",
    "CSV_COLUMNS",
    "DATA_DIR",
    "KNOWN_OPS",
    "OPTIONAL_COLUMNS",
    "OP_COLUMNS",
    "Case",
    "MeasureError",
    "Timing",
    "add_shape_ids",
    "build_cases",
    "builtin_measurements",
    "catalog_name_for_gpu",
    "collect_samples",
    "load_measurements",
    "run_measurements",
    "shape_id",
    "summarize_samples",
    "time_callable",
    "validate_measurements",
]

# --------------------------------------------------------------------------------------------
# The per-kernel CSV format
# --------------------------------------------------------------------------------------------

COLLECTIVE_OPS = ("allreduce", "allgather", "reducescatter", "alltoall", "sendrecv")

#: required shape columns of each op
OP_COLUMNS: dict[str, tuple[str, ...]] = {
    "gemm": ("m", "n", "k"),
    "attention": ("phase", "batch", "heads", "kv_heads", "head_dim", "seqlen_q", "seqlen_kv", "causal"),
    "memcpy": ("bytes",),
    **{op: ("bytes", "num_devices") for op in COLLECTIVE_OPS},
    "elementwise": ("numel",),
    "norm": ("m", "n"),
}
KNOWN_OPS = tuple(OP_COLUMNS)

#: optional shape columns and their defaults
OPTIONAL_COLUMNS: dict[str, dict[str, object]] = {
    "gemm": {"batch": 1},
    "attention": {"kernel": None},
    "elementwise": {"inputs": 1, "outputs": 1, "flops_per_element": 1},
}

#: the columns ``llmsim measure`` writes, in order (empty where an op does not use one)
CSV_COLUMNS = [
    "hardware", "op", "dtype",
    "m", "n", "k", "batch",
    "phase", "heads", "kv_heads", "head_dim", "seqlen_q", "seqlen_kv", "causal", "kernel",
    "bytes", "num_devices",
    "numel", "inputs", "outputs", "flops_per_element",
    "measured_time_s", "spread", "reps", "calls_per_rep",
    "gflop_per_s", "gbyte_per_s",
    "source", "name", "variant", "shape_id",
]

_INT_COLUMNS = ("m", "n", "k", "batch", "heads", "kv_heads", "head_dim", "seqlen_q", "seqlen_kv",
                "bytes", "num_devices", "numel", "inputs", "outputs")

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _fmt_int(v) -> str:
    return str(int(v))


def shape_id(row: dict) -> str:
    """A key that names one shape of one op, independent of hardware, dtype and source.

    Calibration splits fitting and held-out rows BY this key, so that the same GEMM shape seen in
    several models or TP degrees never lands on both sides.
    """
    op = str(row.get("op", "")).strip().lower()

    def g(name, default=None):
        v = row.get(name, default)
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            return default
        return v

    try:
        if op == "gemm":
            s = f"gemm:m={_fmt_int(g('m'))},n={_fmt_int(g('n'))},k={_fmt_int(g('k'))}"
            b = g("batch", 1)
            return s + (f",batch={_fmt_int(b)}" if int(b) != 1 else "")
        if op == "attention":
            causal = _parse_bool(g("causal"))
            return (f"attention:{g('phase')},batch={_fmt_int(g('batch'))},heads={_fmt_int(g('heads'))},"
                    f"kv_heads={_fmt_int(g('kv_heads'))},head_dim={_fmt_int(g('head_dim'))},"
                    f"seqlen_q={_fmt_int(g('seqlen_q'))},seqlen_kv={_fmt_int(g('seqlen_kv'))},"
                    f"causal={int(bool(causal))}")
        if op == "memcpy":
            return f"memcpy:bytes={_fmt_int(g('bytes'))}"
        if op in COLLECTIVE_OPS:
            return f"{op}:bytes={_fmt_int(g('bytes'))},num_devices={_fmt_int(g('num_devices'))}"
        if op == "elementwise":
            fpe = float(g("flops_per_element", 1))
            fpe_s = str(int(fpe)) if fpe.is_integer() else f"{fpe:g}"
            return (f"elementwise:numel={_fmt_int(g('numel'))},inputs={_fmt_int(g('inputs', 1))},"
                    f"outputs={_fmt_int(g('outputs', 1))},flops_per_element={fpe_s}")
        if op == "norm":
            return f"norm:m={_fmt_int(g('m'))},n={_fmt_int(g('n'))}"
    except (TypeError, ValueError):
        return ""
    return ""


def add_shape_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Set the ``shape_id`` column of every row (in place; returns ``df``)."""
    df["shape_id"] = [shape_id(r) for r in df.to_dict("records")]
    return df


def _parse_bool(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if v is None:
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        if isinstance(v, float) and math.isnan(v):
            return None
        if v in (0, 1):
            return bool(v)
        return None
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "t", "y"):
        return True
    if s in ("false", "0", "no", "f", "n"):
        return False
    return None


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Summary of one measurement: per-call seconds over ``reps`` timed samples."""

    median_s: float
    spread: float  # (p90 - p10) / median over the samples
    reps: int  # number of timed samples
    calls_per_rep: int  # kernel calls inside one sample (the sample's time is divided by it)
    p10_s: float
    p90_s: float
    min_s: float


def summarize_samples(samples: Iterable[float], calls_per_rep: int = 1) -> Timing:
    """Median and relative spread ((p90-p10)/median, linear-interpolated percentiles)."""
    a = np.asarray(list(samples), dtype=float)
    if a.size == 0:
        raise ValueError("no samples")
    med = float(np.median(a))
    p10, p90 = (float(x) for x in np.percentile(a, [10, 90]))
    spread = (p90 - p10) / med if med > 0 else float("nan")
    return Timing(med, spread, int(a.size), int(calls_per_rep), p10, p90, float(a.min()))


def collect_samples(sample: Callable[[], tuple[float, int]], *, warmup: int = 1, target_s: float = 0.2,
                    min_reps: int = 5, max_reps: int = 200) -> Timing:
    """Call ``sample()`` (which returns ``(seconds, calls)``) ``warmup`` times untimed, then until
    ``min_reps`` samples are taken AND their total time reaches ``target_s``, or ``max_reps``."""
    for _ in range(warmup):
        sample()
    samples: list[float] = []
    total = 0.0
    calls = 1
    while len(samples) < max(1, max_reps):
        secs, calls = sample()
        samples.append(secs / calls)
        total += secs
        if len(samples) >= min_reps and total >= target_s:
            break
    return summarize_samples(samples, calls)


def time_callable(fn: Callable[[], object], *, clock: Callable[[], float] = time.perf_counter,
                  sync: Callable[[], object] | None = None, warmup: int = 1, target_s: float = 0.2,
                  min_reps: int = 5, max_reps: int = 200, min_sample_s: float = 0.0,
                  max_calls_per_rep: int = 10000) -> Timing:
    """Time a host-synchronous callable (numpy, torch on CPU) with ``clock``.

    The warm-up calls are timed to estimate one call; a sample then runs enough calls to last at
    least ``min_sample_s`` (1 call when 0), and its time is divided by that count.
    """
    est = None
    for _ in range(max(1, warmup)):
        t0 = clock()
        fn()
        if sync:
            sync()
        est = clock() - t0
    inner = 1
    if min_sample_s > 0 and est is not None and est > 0:
        inner = int(min(max_calls_per_rep, max(1, math.ceil(min_sample_s / est * (1 - 1e-9)))))

    def sample():
        t0 = clock()
        for _ in range(inner):
            fn()
        if sync:
            sync()
        return clock() - t0, inner

    return collect_samples(sample, warmup=0, target_s=target_s, min_reps=min_reps, max_reps=max_reps)


# --------------------------------------------------------------------------------------------
# Hardware names
# --------------------------------------------------------------------------------------------

DEFAULT_CPU_HARDWARE = "host-cpu-xeon-2vcpu"

_GPU_RULES = [
    (r"h100.*(pcie)", "h100-pcie"),
    (r"h100.*(nvl)", "h100-nvl"),
    (r"h100", "h100-sxm"),  # "NVIDIA H100 80GB HBM3", "H100 SXM5"
    (r"h200", "h200"),
    (r"gh200", "gh200"),
    (r"a100.*pcie", "a100-pcie"),
    (r"a100", "a100-sxm"),  # "NVIDIA A100-SXM4-80GB"
    (r"l40s", "l40s"),
    (r"\bl40\b", "l40"),
    (r"\bl4\b", "l4"),
    (r"\ba40\b", "a40"),
    (r"\ba10g?\b", None),
    (r"b200", "b200"),
]


def _slug(s: str) -> str:
    s = re.sub(r"^nvidia\s+", "", s.strip(), flags=re.IGNORECASE).lower()
    return re.sub(r"[^a-z0-9]+", "-", s).strip("-") or "unknown-gpu"


def catalog_name_for_gpu(device_name: str) -> str:
    """Map ``torch.cuda.get_device_name()`` to a catalog chip name (a slug when unknown)."""
    s = device_name.lower()
    if "gh200" in s:
        return "gh200"
    for pat, name in _GPU_RULES:
        if re.search(pat, s):
            if name is None:
                break
            if name == "a100-sxm" and "40gb" in s:
                return "a100-sxm-40gb"
            return name
    return _slug(device_name)


# --------------------------------------------------------------------------------------------
# Cases and suites
# --------------------------------------------------------------------------------------------


class MeasureError(RuntimeError):
    """The measurement cannot run at all here (no torch, no CUDA device)."""


@dataclass
class Case:
    """One row to measure: its CSV columns, and how to build the kernel."""

    group: str
    row: dict
    build: Callable[[], Kernel]


@dataclass
class Kernel:
    """A kernel ready to time: ``call(i)`` runs it once on buffer set ``i % ncopies``."""

    call: Callable[[int], object]
    ncopies: int = 1
    graphable: bool = True
    keep: list = field(default_factory=list)  # buffers kept alive while timing


@dataclass
class Settings:
    target_s: float = 0.2
    min_reps: int = 5
    max_reps: int = 200
    warmup: int = 1
    min_sample_s: float = 0.0  # CPU: 0 (each call timed); CUDA: 1e-3 (calls batched per sample)
    cold_bytes: int = 256 << 20  # rotate buffer copies until this many bytes are touched
    copy_budget: int = 1 << 30  # never allocate more than this for copies of one case


SUITES = ("tiny", "quick", "full")


def _settings_for(device: str, suite: str) -> Settings:
    if suite == "tiny":
        return Settings(target_s=0.0, min_reps=3, max_reps=3, warmup=1, cold_bytes=0, copy_budget=1 << 20)
    if device == "cuda":
        return Settings(target_s=0.1, min_reps=10, max_reps=200, warmup=2, min_sample_s=1e-3,
                        cold_bytes=256 << 20, copy_budget=4 << 30)
    from sim.validation.environment import cache_bytes

    l3 = cache_bytes(3) or (32 << 20)
    return Settings(target_s=0.2, min_reps=5, max_reps=200, warmup=1,
                    cold_bytes=int(min(2 * l3, 1 << 30)), copy_budget=1 << 30)


def _ncopies(set_bytes: int, s: Settings, cap: int = 16) -> int:
    if set_bytes <= 0 or s.cold_bytes <= set_bytes:
        return 1
    n = math.ceil(s.cold_bytes / set_bytes)
    n = min(n, cap, max(1, s.copy_budget // max(1, set_bytes)))
    return max(1, n)


# -- shape grids ------------------------------------------------------------------------------

#: GEMM (n, k) pairs per suite: LLM projection shards (Llama-2-7B, Llama-3-8B, TinyLlama-1.1B)
_GEMM_NK = {
    "tiny": [(32, 48)],
    "cpu-quick-decode": [(4096, 4096), (11008, 4096), (4096, 11008)],
    "cpu-quick-prefill": [(2048, 2048), (5632, 2048), (2048, 5632)],
    "cpu-full": [(4096, 4096), (12288, 4096), (11008, 4096), (4096, 11008), (2048, 5632), (5632, 2048)],
    "cuda": [(4096, 4096), (12288, 4096), (22016, 4096), (4096, 11008), (28672, 4096), (4096, 14336)],
}
_GEMM_M = {
    "tiny": [1, 16],
    "cpu-quick-decode": [1, 4, 16],
    "cpu-quick-prefill": [128, 256, 512, 1024, 2048],
    "cpu-full": [1, 2, 4, 8, 16, 128, 256, 512, 1024, 2048, 4096],
    "cuda": [1, 2, 4, 8, 16, 128, 256, 512, 1024, 2048, 4096, 8192],
}


def _gemm_shapes(device: str, suite: str) -> list[tuple[int, int, int]]:
    if suite == "tiny":
        return [(m, n, k) for m in _GEMM_M["tiny"] for n, k in _GEMM_NK["tiny"]]
    if device == "cuda":
        return [(m, n, k) for n, k in _GEMM_NK["cuda"] for m in _GEMM_M["cuda"]]
    if suite == "quick":
        out = [(m, n, k) for n, k in _GEMM_NK["cpu-quick-decode"] for m in _GEMM_M["cpu-quick-decode"]]
        out += [(m, n, k) for n, k in _GEMM_NK["cpu-quick-prefill"] for m in _GEMM_M["cpu-quick-prefill"]]
        out += [(2048, 4096, 4096)]  # the fp32 peak probe
        return out
    return [(m, n, k) for n, k in _GEMM_NK["cpu-full"] for m in _GEMM_M["cpu-full"]] + [(4096, 4096, 4096)]


def _attention_shapes(device: str, suite: str) -> list[dict]:
    """(phase, batch, heads, kv_heads, head_dim, seqlen_q, seqlen_kv, causal) dicts."""
    def pre(b, h, kvh, d, s):
        return {"phase": "prefill", "batch": b, "heads": h, "kv_heads": kvh, "head_dim": d, "seqlen_q": s,
                    "seqlen_kv": s, "causal": True}

    def dec(b, h, kvh, d, s):
        return {"phase": "decode", "batch": b, "heads": h, "kv_heads": kvh, "head_dim": d, "seqlen_q": 1,
                    "seqlen_kv": s, "causal": False}

    if suite == "tiny":
        return [pre(1, 4, 2, 16, 32), dec(2, 4, 2, 16, 64)]
    if device == "cuda":
        out = [pre(b, 32, 8, 128, s) for b, s in [(1, 512), (1, 2048), (1, 8192), (4, 2048), (16, 512)]]
        out += [pre(1, 32, 32, 128, 2048), pre(1, 64, 8, 128, 4096)]
        out += [dec(b, 32, 8, 128, s) for b in (1, 8, 32, 128) for s in (1024, 8192)]
        out += [dec(8, 32, 32, 128, 4096), dec(64, 64, 8, 128, 2048)]
        return out
    if suite == "quick":
        out = [pre(1, 32, 8, 128, s) for s in (128, 512, 2048)]
        out += [dec(b, 32, 8, 128, s) for b in (1, 8) for s in (1024, 4096)]
        return out
    out = [pre(1, 32, 8, 128, s) for s in (128, 512, 1024, 2048, 4096)] + [pre(4, 32, 32, 128, 1024)]
    out += [dec(b, 32, 8, 128, s) for b in (1, 8, 32) for s in (1024, 4096, 8192)]
    return out


def _memcpy_sizes(device: str, suite: str) -> list[int]:
    """Buffer sizes in bytes (one buffer; a copy moves twice this)."""
    if suite == "tiny":
        return [1 << 16]
    if device == "cuda":
        return [1 << 20, 16 << 20, 256 << 20, 1 << 30, 2 << 30]
    if suite == "quick":
        return [16 << 20, 128 << 20, 1 << 30]
    return [1 << 20, 16 << 20, 128 << 20, 512 << 20, 1 << 30, 2 << 30]


def _elementwise_sizes(device: str, suite: str) -> list[int]:
    if suite == "tiny":
        return [4096]
    if device == "cuda":
        return [1 << 20, 16 << 20, 256 << 20]
    if suite == "quick":
        return [1 << 20, 32 << 20]
    return [1 << 16, 1 << 20, 16 << 20, 64 << 20]


def _norm_shapes(device: str, suite: str) -> list[tuple[int, int]]:
    if suite == "tiny":
        return [(8, 64)]
    if device == "cuda":
        return [(m, n) for m in (1, 16, 512, 4096, 16384) for n in (4096, 8192)]
    if suite == "quick":
        return [(128, 4096), (2048, 4096), (8192, 4096)]
    return [(m, n) for m in (1, 16, 128, 2048, 8192) for n in (2048, 4096, 8192)]


#: flops counted per element (one per add/mul/compare, one per exp/tanh/erf; see docs)
_ELEMENTWISE = {
    "add": {"inputs": 2, "outputs": 1, "flops_per_element": 1},
    "silu": {"inputs": 1, "outputs": 1, "flops_per_element": 4},  # x / (1 + exp(-x))
    "gelu": {"inputs": 1, "outputs": 1, "flops_per_element": 8},  # tanh approximation
}


# -- numpy kernels ----------------------------------------------------------------------------

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


# -- torch kernels ----------------------------------------------------------------------------

_TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _import_torch():
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - ImportError, or a broken install
        raise MeasureError(
            f"torch is not importable ({type(e).__name__}: {e}); install the optional extra "
            "with `pip install .[measure]` (or `pip install torch`)") from None
    import torch

    return torch


def _torch_dtype(torch, name):
    return getattr(torch, _TORCH_DTYPES[name])


def _torch_randn(torch, shape, dtype, device):
    """Random normal values made in place in ``dtype`` (no float32 temporary for big buffers)."""
    return torch.empty(*shape, device=device, dtype=dtype).normal_()


def _torch_gemm(torch, device, dtype, m, n, k, s: Settings) -> Kernel:
    if dtype == "fp8_e4m3":
        return _torch_gemm_fp8(torch, device, m, n, k, s)
    td = _torch_dtype(torch, dtype)
    el = torch.tensor([], dtype=td).element_size()
    nc = _ncopies((m * k + k * n + m * n) * el, s)
    sets = [(_torch_randn(torch, (m, k), td, device), _torch_randn(torch, (k, n), td, device),
             torch.empty((m, n), dtype=td, device=device)) for _ in range(nc)]
    tf32 = dtype == "tf32"

    def call(i):
        a, b, c = sets[i % nc]
        torch.matmul(a, b, out=c)

    k_ = Kernel(call, nc, keep=[sets])
    k_.tf32 = tf32  # type: ignore[attr-defined]
    return k_


def _torch_gemm_fp8(torch, device, m, n, k, s: Settings) -> Kernel:
    if device != "cuda" or not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
        raise RuntimeError("fp8 GEMM needs CUDA and torch._scaled_mm")
    f8 = torch.float8_e4m3fn
    nc = _ncopies(m * k + k * n + 2 * m * n, s)
    sets = []
    for _ in range(nc):
        a = torch.randn(m, k, device=device).to(f8)
        bt = torch.randn(n, k, device=device).to(f8)  # (n, k) row-major = (k, n) column-major
        sets.append((a, bt.t()))
    one = torch.ones((), device=device, dtype=torch.float32)

    def call(i):
        a, b = sets[i % nc]
        torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

    call(0)  # fails here, not inside timing, when the shape or the GPU does not support it
    return Kernel(call, nc, keep=[sets, one])


def _torch_attention(torch, device, dtype, sh: dict, s: Settings) -> tuple[Kernel, str]:
    import torch.nn.functional as F

    td = _torch_dtype(torch, dtype)
    b, h, kvh, d = sh["batch"], sh["heads"], sh["kv_heads"], sh["head_dim"]
    sq, skv, causal = sh["seqlen_q"], sh["seqlen_kv"], sh["causal"]
    el = torch.tensor([], dtype=td).element_size()
    nc = _ncopies((2 * b * h * sq * d + 2 * b * kvh * skv * d) * el, s, cap=8)
    sets = [(_torch_randn(torch, (b, h, sq, d), td, device), _torch_randn(torch, (b, kvh, skv, d), td, device),
             _torch_randn(torch, (b, kvh, skv, d), td, device)) for _ in range(nc)]
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # very old torch
        SDPBackend = sdpa_kernel = None

    def attempt(backend):
        def call(i):
            q, kk, v = sets[i % nc]
            with (sdpa_kernel(backend) if backend is not None else _nullctx()):
                return F.scaled_dot_product_attention(q, kk, v, is_causal=bool(causal), enable_gqa=(kvh != h))

        call(0)
        return call

    tried = []
    if SDPBackend is not None:
        for backend, label in ((SDPBackend.FLASH_ATTENTION, "flash"), (SDPBackend.EFFICIENT_ATTENTION, "flash"),
                               (SDPBackend.MATH, "naive")):
            try:
                call = attempt(backend)
                return Kernel(call, nc, keep=[sets]), f"{label}:{backend.name.lower()}"
            except Exception as e:  # noqa: BLE001 - backend not available for this dtype/shape
                tried.append(f"{backend.name}: {type(e).__name__}")
    call = attempt(None)
    return Kernel(call, nc, keep=[sets]), "naive:default"


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _torch_memcpy(torch, device, nbytes, s: Settings) -> Kernel:
    n = nbytes // 2
    src = _torch_randn(torch, (n,), torch.bfloat16, device)
    dst = torch.empty_like(src)
    return Kernel(lambda i: dst.copy_(src), 1, keep=[src, dst])


def _torch_elementwise(torch, device, dtype, kind, numel, s: Settings) -> Kernel:
    import torch.nn.functional as F

    td = _torch_dtype(torch, dtype)
    x = _torch_randn(torch, (numel,), td, device)
    y = _torch_randn(torch, (numel,), td, device)
    out = torch.empty_like(x)
    if kind == "add":
        call = lambda i: torch.add(x, y, out=out)
    elif kind == "silu":
        call = lambda i: F.silu(x)
    elif kind == "gelu":
        call = lambda i: F.gelu(x, approximate="tanh")
    else:  # pragma: no cover
        raise ValueError(kind)
    return Kernel(call, 1, keep=[x, y, out])


def _torch_norm(torch, device, dtype, kind, m, n, s: Settings) -> Kernel:
    import torch.nn.functional as F

    td = _torch_dtype(torch, dtype)
    el = torch.tensor([], dtype=td).element_size()
    nc = _ncopies(2 * m * n * el, s, cap=8)
    xs = [_torch_randn(torch, (m, n), td, device) for _ in range(nc)]
    w = _torch_randn(torch, (n,), td, device)
    bias = _torch_randn(torch, (n,), td, device)
    if kind == "rmsnorm":
        if hasattr(F, "rms_norm"):
            call = lambda i: F.rms_norm(xs[i % nc], (n,), w, 1e-6)
        else:
            def call(i):
                x = xs[i % nc]
                return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype) * w
    else:
        call = lambda i: F.layer_norm(xs[i % nc], (n,), w, bias, 1e-5)
    return Kernel(call, nc, keep=[xs, w, bias])


def _set_tf32(torch, on: bool) -> None:
    """fp32 GEMMs on tensor cores (tf32) or not; the newer precision API where torch has it."""
    m = torch.backends.cuda.matmul
    if hasattr(m, "fp32_precision"):
        m.fp32_precision = "tf32" if on else "ieee"
    else:
        m.allow_tf32 = on


def _cuda_time(torch, kern: Kernel, s: Settings) -> Timing:
    """Time a CUDA kernel with CUDA events around a CUDA-graph replay of ``inner`` calls.

    The graph removes the CPU launch cost, so small kernels are timed back to back (each sample's
    time / calls includes the ~1 us gap between kernels but not the Python launch overhead). If
    capture fails, calls are launched eagerly between the events instead.
    """
    tf32 = getattr(kern, "tf32", None)
    if tf32 is not None:
        _set_tf32(torch, bool(tf32))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(3):
            kern.call(i)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    # estimate one call (eager, so it includes launch latency: an upper bound)
    start.record()
    for i in range(3):
        kern.call(i)
    end.record()
    end.synchronize()
    est = max(1e-7, start.elapsed_time(end) / 1e3 / 3)
    inner = int(min(1000, max(1, math.ceil(s.min_sample_s / est * (1 - 1e-9)))))
    if kern.ncopies > 1:
        inner = max(inner, kern.ncopies)
    graph = None
    if kern.graphable:
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for i in range(inner):
                    kern.call(i)
            torch.cuda.synchronize()
        except Exception:  # noqa: BLE001 - fall back to eager launches
            graph = None
            torch.cuda.synchronize()

    def sample():
        start.record()
        if graph is not None:
            graph.replay()
        else:
            for i in range(inner):
                kern.call(i)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, inner

    try:
        return collect_samples(sample, warmup=s.warmup, target_s=s.target_s, min_reps=s.min_reps,
                               max_reps=s.max_reps)
    finally:
        if tf32 is not None:
            _set_tf32(torch, False)


def _host_time(kern: Kernel, s: Settings, clock=time.perf_counter) -> Timing:
    counter = [0]

    def fn():
        kern.call(counter[0])
        counter[0] += 1

    return time_callable(fn, clock=clock, warmup=s.warmup, target_s=s.target_s, min_reps=s.min_reps,
                         max_reps=s.max_reps, min_sample_s=s.min_sample_s)


# -- the case list ----------------------------------------------------------------------------


def _flops_bytes(row: dict) -> tuple[float | None, float | None]:
    """Nominal work of a row (for the gflop_per_s / gbyte_per_s convenience columns)."""
    from hwmodels.dtype import get_dtype

    op = row["op"]
    try:
        eb = get_dtype(row["dtype"]).bytes
    except Exception:  # noqa: BLE001
        eb = None
    if op == "gemm":
        m, n, k, b = row["m"], row["n"], row["k"], row.get("batch") or 1
        return 2.0 * m * n * k * b, (b * (m * k + k * n + m * n) * eb if eb else None)
    if op == "attention":
        b, h, kvh, d = row["batch"], row["heads"], row["kv_heads"], row["head_dim"]
        sq, skv = row["seqlen_q"], row["seqlen_kv"]
        fl = 4.0 * b * h * sq * skv * d
        if row.get("causal") and row.get("kernel") == "flash" and sq == skv:
            fl /= 2
        by = (2 * b * h * sq * d + 2 * b * kvh * skv * d) * eb if eb else None
        return fl, by
    if op == "memcpy" or op in COLLECTIVE_OPS:
        return None, float(row["bytes"])
    if op == "elementwise":
        n_ = row["numel"]
        return float(n_ * row.get("flops_per_element", 1)), (
            n_ * (row.get("inputs", 1) + row.get("outputs", 1)) * eb if eb else None)
    if op == "norm":
        return 4.0 * row["m"] * row["n"], (2 * row["m"] * row["n"] * eb if eb else None)
    return None, None


def _cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_torch_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except Exception:  # noqa: BLE001
        return False


def build_cases(device: str = "cpu", suite: str = "quick", *, use_torch: bool | None = None,
                torch_caps: dict | None = None) -> list[Case]:
    """The ordered list of cases of a suite. Builds no buffers (each ``Case.build`` does)."""
    if suite not in SUITES:
        raise SpecError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    if device not in ("cpu", "cuda"):
        raise SpecError(f"unknown device {device!r}; choose cpu or cuda")
    s_holder: dict = {}

    def settings() -> Settings:
        if "s" not in s_holder:
            s_holder["s"] = _settings_for(device, suite)
        return s_holder["s"]

    cases: list[Case] = []
    caps = torch_caps or {}

    def add(group, row, build):
        cases.append(Case(group, row, build))

    if device == "cpu":
        # numpy fp32: always
        for m, n, k in _gemm_shapes("cpu", suite):
            add("gemm fp32 (numpy)", {"op": "gemm", "dtype": "fp32", "m": m, "n": n, "k": k, "batch": 1, "name": "numpy.matmul"},
                lambda m=m, n=n, k=k: _np_gemm(m, n, k, settings()))
        for sh in _attention_shapes("cpu", suite):
            add("attention fp32 (numpy)", dict(op="attention", dtype="fp32", kernel="naive", name="numpy-attention",
                                               **sh),
                lambda sh=sh: _np_attention(sh, settings()))
        for nb in _memcpy_sizes("cpu", suite):
            add("memcpy (numpy)", {"op": "memcpy", "dtype": "fp32", "bytes": 2 * nb, "name": "np.copyto",
                                       "variant": f"buffer={nb},threads=1"},
                lambda nb=nb: _np_memcpy(nb, settings()))
        nthreads = _cpu_threads()
        if nthreads > 1:
            nb = _memcpy_sizes("cpu", suite)[-1]
            add("memcpy (numpy)", {"op": "memcpy", "dtype": "fp32", "bytes": 2 * nb, "name": "np.copyto",
                                       "variant": f"buffer={nb},threads={nthreads}"},
                lambda nb=nb: _np_memcpy(nb, settings(), threads=nthreads))
        for kind, meta in _ELEMENTWISE.items():
            for numel in _elementwise_sizes("cpu", suite):
                add("elementwise fp32 (numpy)", dict(op="elementwise", dtype="fp32", numel=numel, name=kind,
                                                     variant="numpy-unfused" if kind != "add" else "numpy",
                                                     **meta),
                    lambda kind=kind, numel=numel: _np_elementwise(kind, numel, settings()))
        for m, n in _norm_shapes("cpu", suite):
            add("norm fp32 (numpy)", {"op": "norm", "dtype": "fp32", "m": m, "n": n, "name": "rmsnorm", "variant": "numpy-unfused"},
                lambda m=m, n=n: _np_rmsnorm(m, n, settings()))
        if use_torch is None:
            use_torch = _cpu_torch_available() and suite != "tiny"
        if use_torch:
            cases += _torch_cases("cpu", suite, ["bf16", "fp16"] if suite == "full" else ["bf16"], settings)
        return cases

    dtypes = caps.get("gemm_dtypes", ["bf16", "fp16", "tf32", "fp32", "fp8_e4m3"])
    cases += _torch_cases("cuda", suite, dtypes, settings)
    return cases


def _torch_cases(device, suite, gemm_dtypes, settings) -> list[Case]:
    cases: list[Case] = []
    lib = "torch"

    def add(group, row, build):
        cases.append(Case(group, row, build))

    def T():
        return _import_torch()

    for dt in gemm_dtypes:
        shapes = _gemm_shapes(device, suite)
        if device == "cpu":  # torch on CPU: a shorter grid
            shapes = [sh for sh in shapes if sh[0] in (1, 16, 128, 512, 2048)]
        for m, n, k in shapes:
            name = "torch._scaled_mm" if dt == "fp8_e4m3" else "torch.matmul"
            add(f"gemm {dt} ({lib})", {"op": "gemm", "dtype": dt, "m": m, "n": n, "k": k, "batch": 1, "name": name},
                lambda dt=dt, m=m, n=n, k=k: _torch_gemm(T(), device, dt, m, n, k, settings()))
    att_dtypes = ["bf16", "fp16"] if device == "cuda" else ["bf16"]
    for dt in att_dtypes:
        for sh in _attention_shapes(device, suite):
            add(f"attention {dt} ({lib})", dict(op="attention", dtype=dt, name="sdpa", **sh),
                lambda dt=dt, sh=sh: _torch_attention(T(), device, dt, sh, settings()))
    if device == "cuda":
        for nb in _memcpy_sizes(device, suite):
            add("memcpy (torch)", {"op": "memcpy", "dtype": "bf16", "bytes": 2 * nb, "name": "copy_", "variant": f"buffer={nb}"},
                lambda nb=nb: _torch_memcpy(T(), device, nb, settings()))
    ew_dtype = "bf16"
    for kind, meta in _ELEMENTWISE.items():
        for numel in _elementwise_sizes(device, suite):
            add(f"elementwise {ew_dtype} ({lib})", dict(op="elementwise", dtype=ew_dtype, numel=numel, name=kind,
                                                        variant="torch", **meta),
                lambda kind=kind, numel=numel: _torch_elementwise(T(), device, ew_dtype, kind, numel, settings()))
    for kind in ("rmsnorm", "layernorm"):
        for m, n in _norm_shapes(device, suite):
            add(f"norm {ew_dtype} ({lib})", {"op": "norm", "dtype": ew_dtype, "m": m, "n": n, "name": kind, "variant": "torch"},
                lambda kind=kind, m=m, n=n: _torch_norm(T(), device, ew_dtype, kind, m, n, settings()))
    return cases


# -- running ----------------------------------------------------------------------------------


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        return f"{float(v):.6g}"
    return str(v)


class CsvSink:
    """Writes rows as they come, flushing after each one (an interrupted run keeps its rows)."""

    def __init__(self, path: str, columns: list[str] = CSV_COLUMNS):
        self.path = path
        self.columns = columns
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self._f = open(path, "w", newline="", encoding="utf-8")
        self._w = csv.writer(self._f)
        self._w.writerow(columns)
        self._f.flush()
        self.rows = 0

    def write(self, row: dict) -> None:
        self._w.writerow([_fmt(row.get(c)) for c in self.columns])
        self._f.flush()
        self.rows += 1

    def close(self) -> None:
        self._f.close()


def _log(msg: str, stream=None) -> None:
    print(f"[measure] {msg}", file=stream or sys.stderr, flush=True)


def run_measurements(cases: list[Case], sink: CsvSink, *, device: str, hardware: str, suite: str,
                     time_budget_s: float | None = None, log: Callable[[str], None] = _log) -> dict:
    """Measure every case in order, writing one row each. Failures are logged and skipped."""
    s = _settings_for(device, suite)
    torch = None
    if device == "cuda":
        torch = _import_torch()
        _set_tf32(torch, False)
    t_start = time.perf_counter()
    done = failed = skipped = 0
    errors: dict[str, int] = {}
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.group, []).append(c)
    source = f"llmsim-measure:{device}:{suite}"
    for gi, (group, gcases) in enumerate(groups.items()):
        if time_budget_s is not None and time.perf_counter() - t_start > time_budget_s:
            skipped += len(gcases)
            log(f"time budget of {time_budget_s:.0f} s spent: skipping group {group!r} ({len(gcases)} cases)")
            continue
        t_group = time.perf_counter()
        g_ok = g_fail = 0
        for case in gcases:
            if time_budget_s is not None and time.perf_counter() - t_start > time_budget_s:
                skipped += 1
                continue
            kern = built = None
            try:
                built = case.build()
                extra = {}
                if isinstance(built, tuple):  # (kernel, kernel label) from attention
                    built, label = built
                    kname, _, variant = label.partition(":")
                    extra = {"kernel": kname, "variant": variant}
                kern = built
                timing = _cuda_time(torch, kern, s) if device == "cuda" else _host_time(kern, s)
            except MeasureError:
                raise
            except Exception as e:  # noqa: BLE001 - one failing shape must not stop the run
                failed += 1
                g_fail += 1
                key = f"{case.group}: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
                errors[key] = errors.get(key, 0) + 1
                if errors[key] == 1:
                    log(f"  failed {case.row.get('name')} {shape_id(case.row)}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else ''}")
                if device == "cuda" and torch is not None:
                    try:
                        torch.cuda.synchronize()
                        torch.cuda.empty_cache()
                    except Exception:  # noqa: BLE001
                        pass
                continue
            finally:
                kern = built = None  # free this case's buffers before the next one is built
            row = dict(case.row)
            row.update(extra)
            row["hardware"] = hardware
            row["measured_time_s"] = timing.median_s
            row["spread"] = timing.spread
            row["reps"] = timing.reps
            row["calls_per_rep"] = timing.calls_per_rep
            fl, by = _flops_bytes(row)
            row["gflop_per_s"] = fl / timing.median_s / 1e9 if fl else None
            row["gbyte_per_s"] = by / timing.median_s / 1e9 if by else None
            row["source"] = source
            row["shape_id"] = shape_id(row)
            sink.write(row)
            done += 1
            g_ok += 1
            if device == "cuda" and torch is not None:
                torch.cuda.empty_cache()
        log(f"[{gi + 1}/{len(groups)}] {group}: {g_ok} rows" + (f", {g_fail} failed" if g_fail else "")
            + f" in {time.perf_counter() - t_group:.1f} s (total {time.perf_counter() - t_start:.1f} s)")
    return {"rows": done, "failed": failed, "skipped": skipped, "errors": errors,
            "seconds": time.perf_counter() - t_start}


# -- CUDA availability and collectives --------------------------------------------------------


def cuda_context() -> dict:
    """torch + a visible CUDA device, or MeasureError with a plain message."""
    torch = _import_torch()
    if not torch.cuda.is_available():
        raise MeasureError(f"torch {torch.__version__} sees no CUDA device "
                           f"(torch.version.cuda={torch.version.cuda}); run with --device cpu, "
                           "or on a machine with an NVIDIA GPU and a CUDA build of torch")
    n = torch.cuda.device_count()
    name = torch.cuda.get_device_name(0)
    major, minor = torch.cuda.get_device_capability(0)
    dtypes = ["bf16", "fp16", "tf32", "fp32"]
    if major < 8:
        dtypes = ["fp16", "fp32"]
    if (major, minor) >= (8, 9) and hasattr(torch, "_scaled_mm") and hasattr(torch, "float8_e4m3fn"):
        dtypes.append("fp8_e4m3")
    return {"torch": torch, "device_count": n, "device_name": name, "capability": (major, minor),
            "gemm_dtypes": dtypes}


_COLLECTIVE_SIZES = [1 << p for p in range(10, 31, 2)]  # 1 KiB .. 1 GiB per rank


def _collective_fn(torch, dist, op, x, n, world, rank, dt):  # pragma: no cover - multi-GPU
    """One call of collective ``op`` on buffer ``x`` (nccl-tests sizes: x is the full buffer)."""
    if op == "allreduce":
        return lambda: dist.all_reduce(x)
    if op == "allgather":
        part = x[: n // world].clone()
        return lambda: dist.all_gather_into_tensor(x, part)
    if op == "reducescatter":
        part = torch.empty(n // world, device=x.device, dtype=dt)
        return lambda: dist.reduce_scatter_tensor(part, x)
    if op == "alltoall":
        y = torch.empty_like(x)
        return lambda: dist.all_to_all_single(y, x)

    def sendrecv():
        if rank == 0:
            dist.send(x, 1)
        else:
            dist.recv(x, 0)

    return sendrecv


def _collective_worker(rank, world, port, sizes, ops, out_path, settings, backend="nccl"):  # pragma: no cover
    """One rank of the collectives benchmark (spawned). ``backend='gloo'`` runs it on CPU tensors
    (used only to check the control flow where there is no GPU)."""
    import json
    import warnings

    import torch
    import torch.distributed as dist

    warnings.filterwarnings("ignore", category=FutureWarning)  # renamed c10d functions in newer torch
    on_gpu = backend == "nccl"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    if on_gpu:
        torch.cuda.set_device(rank)
    device = "cuda" if on_gpu else "cpu"
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=300))

    def sync():
        if on_gpu:
            torch.cuda.synchronize()

    def timed(fn):
        if on_gpu:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    results = []
    dt = torch.bfloat16 if on_gpu else torch.float32
    el = torch.tensor([], dtype=dt).element_size()
    for op in ops:
        if op == "sendrecv" and world != 2:
            continue
        for nbytes in sizes:
            n = max(world, nbytes // el) // world * world
            err = None
            samples: list[float] = []
            try:
                x = torch.empty(n, device=device, dtype=dt).normal_()
                fn = _collective_fn(torch, dist, op, x, n, world, rank, dt)
                for _ in range(3):
                    fn()
                sync()
            except Exception as e:  # noqa: BLE001 - reported by rank 0; all ranks go on to the barrier
                err = f"{type(e).__name__}: {e}"
            # agree on whether every rank is ready, so that no rank waits forever in a collective
            ok = torch.tensor([0 if err else 1], device=device)
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
            if ok.item():
                total = 0.0
                while len(samples) < settings["max_reps"]:
                    dist.barrier()
                    sync()
                    t = timed(fn)
                    samples.append(t)
                    total += t
                    flag = torch.tensor([1 if (len(samples) >= settings["min_reps"] and total >= settings["target_s"])
                                         else 0], device=device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MIN)  # all ranks stop together
                    if flag.item():
                        break
            if rank == 0:
                if samples:
                    tm = summarize_samples(samples)
                    results.append({"op": op, "bytes": n * el, "num_devices": world, "median": tm.median_s,
                                    "spread": tm.spread, "reps": tm.reps, "dtype": str(dt).replace("torch.", "")})
                else:
                    results.append({"op": op, "bytes": n * el, "num_devices": world,
                                    "error": err or "failed on another rank"})
    if rank == 0:
        with open(out_path, "w") as f:
            json.dump(results, f)
    dist.destroy_process_group()


def spawn_collectives(world: int, sizes: list[int], settings: dict, ops=COLLECTIVE_OPS,
                      backend: str = "nccl") -> list[dict]:
    """Run the collectives benchmark on ``world`` processes; rank 0's results (dicts)."""
    import json
    import socket
    import tempfile

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "coll.json")
        mp.spawn(_collective_worker, args=(world, port, list(sizes), list(ops), out, settings, backend),
                 nprocs=world, join=True)
        with open(out) as f:
            return json.load(f)


def run_collectives(ctx: dict, sink: CsvSink, *, hardware: str, suite: str, log=_log) -> int:
    """All-reduce, all-gather, reduce-scatter, all-to-all (and send/recv for 2 GPUs) over NCCL,
    for 2, 4, 8 .. visible GPUs. Returns the number of rows written; 0 with one GPU."""
    n = ctx["device_count"]
    if n < 2:
        log("collectives: one CUDA device visible, skipped")
        return 0
    s = _settings_for("cuda", suite)
    settings = {"target_s": s.target_s, "min_reps": s.min_reps, "max_reps": s.max_reps}
    sizes = _COLLECTIVE_SIZES if suite == "full" else _COLLECTIVE_SIZES[::2]
    rows = 0
    world = 2
    while world <= n:
        t0 = time.perf_counter()
        try:
            results = spawn_collectives(world, sizes, settings)
        except Exception as e:  # noqa: BLE001
            log(f"collectives on {world} GPUs failed: {type(e).__name__}: {e}")
            results = []
        failed = [r for r in results if "error" in r]
        for r in results:
            if "error" in r:
                continue
            row = {"hardware": hardware, "op": r["op"], "dtype": "bf16", "bytes": r["bytes"],
                   "num_devices": r["num_devices"], "measured_time_s": r["median"], "spread": r["spread"],
                   "reps": r["reps"], "calls_per_rep": 1, "gbyte_per_s": r["bytes"] / r["median"] / 1e9,
                   "source": f"llmsim-measure:cuda:{suite}", "name": f"nccl:{r['op']}"}
            row["shape_id"] = shape_id(row)
            sink.write(row)
            rows += 1
        log(f"collectives on {world} GPUs: {len(results) - len(failed)} rows"
            + (f", {len(failed)} failed (first: {failed[0]['error'][:160]})" if failed else "")
            + f" in {time.perf_counter() - t0:.1f} s")
        world *= 2
    return rows


# --------------------------------------------------------------------------------------------
# Loading measured files
# --------------------------------------------------------------------------------------------

#: built-in data sets: name -> path relative to DATA_DIR
BUILTIN = {
    "vidur-a100": "vidur/a100.csv.gz",
    "vidur-h100": "vidur/h100.csv.gz",
    "vidur-a40": "vidur/a40.csv.gz",
    "vidur-network": "vidur/network.csv.gz",
    "host-cpu-xeon-2vcpu": "cpu/host-cpu-xeon-2vcpu.csv",
}
#: names that stand for several built-in sets
BUILTIN_GROUPS = {
    "vidur": ["vidur-a100", "vidur-h100", "vidur-a40", "vidur-network"],
    "vidur-compute": ["vidur-a100", "vidur-h100", "vidur-a40"],
}


def builtin_measurements() -> dict[str, str]:
    """Built-in data set names and their files (only those present)."""
    return {k: os.path.join(DATA_DIR, v) for k, v in BUILTIN.items() if os.path.exists(os.path.join(DATA_DIR, v))}


def _read_table(path: str) -> pd.DataFrame:
    if not os.path.exists(path):
        raise SpecError(f"no such file or built-in data set; built-in: "
                        f"{', '.join(list(BUILTIN) + list(BUILTIN_GROUPS))}", file=path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                text = f.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise SpecError(f"cannot read as a text CSV: {type(e).__name__}: {e}", file=path) from None
    if not text.strip():
        raise SpecError("empty file: expected a CSV with a header row", file=path)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as e:
        raise SpecError(f"not a valid CSV: {str(e).strip()}", file=path) from None
    df.columns = [str(c).strip() for c in df.columns]
    if "op" not in df.columns:
        raise SpecError(f"no 'op' column (columns: {', '.join(df.columns[:12])}); "
                        "a per-kernel CSV needs hardware, op, dtype and the shape columns of each op", file=path)
    return df


def load_measurements(path_or_name: str, *, require_time: bool = True) -> pd.DataFrame:
    """Read a per-kernel CSV file or built-in data set and check every row.

    Bad rows are kept and flagged: the ``error`` column holds the reasons ('' for good rows).
    Counts are in ``df.attrs['counts']``: rows, ok, bad, and bad rows per reason. A file that is
    not a CSV, or has no ``op`` column, raises SpecError naming the file.
    """
    names = BUILTIN_GROUPS.get(path_or_name, [path_or_name])
    frames = []
    for name in names:
        path = os.path.join(DATA_DIR, BUILTIN[name]) if name in BUILTIN else name
        df = _read_table(path)
        df["file"] = name if name in BUILTIN else os.path.basename(path)
        frames.append(df)
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True).fillna("")
    return validate_measurements(df, require_time=require_time)


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df.columns:
        return pd.Series(np.nan, index=df.index)
    s = df[col]
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        s = s.astype(str).str.strip().replace({"": np.nan, "nan": np.nan, "NaN": np.nan, "None": np.nan})
    return pd.to_numeric(s, errors="coerce")


def _blank(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df.columns:
        return pd.Series(True, index=df.index)
    s = df[col]
    return s.isna() | s.astype(str).str.strip().isin(["", "nan", "NaN", "None"])


def validate_measurements(df: pd.DataFrame, *, require_time: bool = True) -> pd.DataFrame:
    """Check rows of a per-kernel frame; returns a copy with typed columns and an ``error`` column."""
    from hwmodels.dtype import get_dtype

    df = df.copy()
    reasons: list[list[str]] = [[] for _ in range(len(df))]
    idx_pos = {ix: i for i, ix in enumerate(df.index)}

    def flag(mask: pd.Series, reason) -> None:
        for ix in df.index[mask.fillna(False).to_numpy(dtype=bool)]:
            r = reason(ix) if callable(reason) else reason
            reasons[idx_pos[ix]].append(r)

    df["op"] = df["op"].astype(str).str.strip().str.lower()
    known = df["op"].isin(KNOWN_OPS)
    flag(~known, lambda ix: f"unknown op {df.at[ix, 'op']!r}")
    flag(_blank(df, "hardware"), "missing hardware")
    if "dtype" in df.columns:
        dts = df["dtype"].astype(str).str.strip()
        bad_dt = {}
        for v in dts.unique():
            if v in ("", "nan"):
                bad_dt[v] = "missing dtype"
                continue
            try:
                get_dtype(v)
            except Exception:  # noqa: BLE001
                bad_dt[v] = f"unknown dtype {v!r}"
        for v, why in bad_dt.items():
            # a memcpy is fully described by its bytes: a blank dtype is allowed there
            flag((dts == v) & ~((df["op"] == "memcpy") & (why == "missing dtype")), why)
    else:
        flag(pd.Series(True, index=df.index), "missing dtype")

    numeric: dict[str, pd.Series] = {}
    for col in set(_INT_COLUMNS) | {"flops_per_element", "measured_time_s", "spread", "reps"}:
        if col in df.columns:
            numeric[col] = _num(df, col)

    for op, cols in OP_COLUMNS.items():
        sel = df["op"] == op
        if not sel.any():
            continue
        for col in cols:
            if col not in df.columns:
                flag(sel, f"missing {col}")
                continue
            if col == "phase":
                ph = df[col].astype(str).str.strip().str.lower()
                df.loc[sel, col] = ph[sel]
                flag(sel & _blank(df, col), "missing phase")
                flag(sel & ~_blank(df, col) & ~ph.isin(["prefill", "decode"]),
                     lambda ix: f"bad phase {df.at[ix, 'phase']!r} (prefill or decode)")
                continue
            if col == "causal":
                parsed = df[col].map(_parse_bool)
                flag(sel & _blank(df, col), "missing causal")
                flag(sel & ~_blank(df, col) & parsed.isna(), lambda ix: f"bad causal {df.at[ix, 'causal']!r}")
                continue
            v = numeric[col]
            flag(sel & _blank(df, col), f"missing {col}")
            flag(sel & ~_blank(df, col) & v.isna(), lambda ix, c=col: f"bad {c} {df.at[ix, c]!r}")
            flag(sel & v.notna() & ((v <= 0) | (v != np.floor(v))),
                 lambda ix, c=col: f"bad {c} {df.at[ix, c]!r} (a positive integer)")
        for col, default in OPTIONAL_COLUMNS.get(op, {}).items():
            if col not in df.columns or col == "kernel":
                continue
            v = numeric[col]
            present = sel & ~_blank(df, col)
            flag(present & v.isna(), lambda ix, c=col: f"bad {c} {df.at[ix, c]!r}")
            lo_bad = (v < 0) if col == "flops_per_element" else (v <= 0)
            flag(present & v.notna() & lo_bad, lambda ix, c=col: f"bad {c} {df.at[ix, c]!r}")
        if op == "attention" and "kernel" in df.columns:
            kern = df["kernel"].astype(str).str.strip().str.lower()
            flag(sel & ~_blank(df, "kernel") & ~kern.isin(["flash", "naive"]),
                 lambda ix: f"bad kernel {df.at[ix, 'kernel']!r} (flash or naive)")
        if op in COLLECTIVE_OPS and "num_devices" in numeric:
            flag(sel & (numeric["num_devices"] < 2), "num_devices < 2")
        if op == "attention" and "heads" in numeric and "kv_heads" in numeric:
            h, kvh = numeric["heads"], numeric["kv_heads"]
            flag(sel & h.notna() & kvh.notna() & (kvh > 0) & ((h % kvh) != 0),
                 "heads not a multiple of kv_heads")

    if require_time:
        if "measured_time_s" not in df.columns:
            flag(pd.Series(True, index=df.index), "missing measured_time_s")
        else:
            t = numeric["measured_time_s"]
            flag(_blank(df, "measured_time_s"), "missing measured_time_s")
            flag(~_blank(df, "measured_time_s") & t.isna(),
                 lambda ix: f"bad measured_time_s {df.at[ix, 'measured_time_s']!r}")
            flag(t.notna() & ~np.isfinite(t), "non-finite measured_time_s")
            flag(t.notna() & np.isfinite(t) & (t <= 0), "non-positive measured_time_s")

    # typed columns for the caller
    for col, v in numeric.items():
        if col in _INT_COLUMNS:
            df[col] = v.where(v.notna() & (v == np.floor(v))).astype("Int64")
        else:
            df[col] = v
    if "causal" in df.columns:
        df["causal"] = df["causal"].map(_parse_bool).astype("boolean")
    # pass-through columns that hold numbers only become numeric
    for col in df.columns:
        if col in numeric or col in ("causal", "error") or not (df[col].dtype == object
                                                              or pd.api.types.is_string_dtype(df[col])):
            continue
        blank = _blank(df, col)
        if blank.all():
            continue
        v = _num(df, col)
        if v[~blank].notna().all():
            df[col] = v.astype("Int64") if (v[~blank] == np.floor(v[~blank])).all() else v
    for col, default in (("batch", 1), ("inputs", 1), ("outputs", 1), ("flops_per_element", 1.0)):
        ops_using = {"batch": ("gemm",), "inputs": ("elementwise",), "outputs": ("elementwise",),
                     "flops_per_element": ("elementwise",)}[col]
        uses = df["op"].isin(ops_using)
        if col not in df.columns:
            if not uses.any():
                continue
            df[col] = pd.array([pd.NA] * len(df), dtype="Float64" if col == "flops_per_element" else "Int64")
        fill = uses & df[col].isna()
        df.loc[fill, col] = default
    df["error"] = ["; ".join(r) for r in reasons]
    bad = df["error"] != ""
    by_reason: dict[str, int] = {}
    for r in reasons:
        for why in {re.sub(r" '.*", "", x) for x in r}:
            by_reason[why] = by_reason.get(why, 0) + 1
    df.attrs["counts"] = {"rows": len(df), "ok": int((~bad).sum()), "bad": int(bad.sum()),
                          "by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1]))}
    return df


def main(argv: list[str] | None = None) -> int:
    """``python -m sim.validation.measure [options]``: the same as ``llmsim measure [options]``,
    without loading the other CLI commands (handy on a bare GPU machine with torch, numpy, pandas)."""
    import argparse

    from llmsim.commands import measure as cmd

    parser = argparse.ArgumentParser(prog="python -m sim.validation.measure")
    sub = parser.add_subparsers(dest="command")
    cmd.register(sub)
    args = parser.parse_args(["measure", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except SpecError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
