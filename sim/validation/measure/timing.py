"""Timing kernels: adaptive repetition on the host clock or CUDA events around a CUDA-graph replay."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np


class MeasureError(RuntimeError):
    """The measurement cannot run at all here (no torch, no CUDA device)."""


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


def _ncopies(set_bytes: int, s: Settings, cap: int = 16) -> int:
    if set_bytes <= 0 or s.cold_bytes <= set_bytes:
        return 1
    n = math.ceil(s.cold_bytes / set_bytes)
    n = min(n, cap, max(1, s.copy_budget // max(1, set_bytes)))
    return max(1, n)


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
