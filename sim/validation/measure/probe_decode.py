"""The decode-floor probe: what a short-context decode-attention kernel costs beyond its KV stream, and how
much of it the timing harness adds.

Published paged-decode timings at 32-128 tokens of context in one or two waves of CTAs sit 10-19 us above
their KV stream (docs/validation.md section 4d; sim/validation/data/published/README.md), under nvbench's cold
GPU time, CUDA-graph replays and unstated harnesses alike, and llmsim prices them 30-80% too fast. This probe
separates the candidates on one GPU, for the same kernels and shapes:

- ``graph``: back-to-back calls replayed from one CUDA graph, events around the replay (llmsim's sweep timing,
  ``timing._cuda_time``): no launch gap, caches as the previous call left them;
- ``single``: one eager call between two CUDA events after a device synchronize, the median of ``REPS``: a
  launch's GPU-side start included, caches warm;
- ``cold``: as ``single``, with the chip-level cache flushed before each call (a write of ``FLUSH_FACTOR`` x the
  L2 size): nvbench's default cold measurement.

Each method also times a one-element add (``baseline`` rows: a kernel with one memory round trip), so a shape's
floor over the baseline of the same method is the kernel's own start-of-kernel cost. Kernels: PyTorch SDPA's
FlashAttention-2 decode (dense KV, ``kernel_profile`` torch_fa2) and, where the ``flash_attn`` package is
installed, ``flash_attn_with_kvcache`` with a block table (the paged split-KV kernel vLLM's FA2 path runs;
page size ``PAGE``). Rows are written in the per-kernel CSV format (``variant`` = ``KERNEL:METHOD``), so
``llmsim ops`` prices them and ``llmsim validate`` scores them. Needs torch with CUDA.
"""

from __future__ import annotations

import statistics
import time

#: (batch, query heads, KV heads) of the probe's shapes: one sequence (one wave of a few CTAs), the published
#: rows' 16 and 64 sequences, multi-head and grouped, and 128 grouped sequences (several waves)
DECODE_FLOOR_GROUPS = ((1, 32, 32), (16, 32, 32), (64, 32, 32), (64, 64, 8), (128, 64, 8))
#: tokens of context: the short end where the floor shows, up to where the KV stream dominates
DECODE_FLOOR_KV = (32, 64, 128, 256, 512, 2048)
HEAD_DIM = 128
#: single-call timings per shape and method (their median is the row's time)
REPS = 50
#: the cache flush writes this many times the chip-level cache's size before each cold call
FLUSH_FACTOR = 4
#: tokens per KV page of the paged kernel (vLLM's default block size on CUDA)
PAGE = 16


def decode_floor_shapes() -> list[dict]:
    """The probe's decode shapes, in the per-kernel CSV's attention columns."""
    return [{"phase": "decode", "batch": b, "heads": h, "kv_heads": kvh, "head_dim": HEAD_DIM, "seqlen_q": 1,
             "seqlen_kv": kv, "causal": False}
            for b, h, kvh in DECODE_FLOOR_GROUPS for kv in DECODE_FLOOR_KV]


def _single_times(torch, call, reps: int, flush=None) -> list[float]:
    """Seconds of ``reps`` single calls, each bracketed by two CUDA events after a synchronize (the cache
    flushed first when ``flush`` is given)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    out = []
    for _ in range(reps):
        if flush is not None:
            flush()
        torch.cuda.synchronize()
        start.record()
        call()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / 1e3)
    return out


def _summary(ts: list[float]) -> tuple[float, float, int, int]:
    """(median, (p90 - p10) / median, samples, calls per sample) of single-call times."""
    ts = sorted(ts)
    med = statistics.median(ts)
    lo, hi = ts[len(ts) // 10], ts[min(len(ts) - 1, (9 * len(ts)) // 10)]
    return med, (hi - lo) / med if med > 0 else 0.0, len(ts), 1


def _methods(torch, call, flush, settings, kernel_cls, cuda_time) -> dict[str, tuple[float, float, int, int]]:
    """{method: (median seconds per call, spread, samples, calls per sample)} of one callable under the three
    timings."""
    t = cuda_time(torch, kernel_cls(lambda i: call(), 1), settings)
    return {"graph": (t.median_s, t.spread, t.reps, t.calls_per_rep),
            "single": _summary(_single_times(torch, call, REPS)),
            "cold": _summary(_single_times(torch, call, REPS, flush))}


def _sdpa_call(torch, sh):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b, h, kvh, d, kv = sh["batch"], sh["heads"], sh["kv_heads"], sh["head_dim"], sh["seqlen_kv"]
    q = torch.randn(b, h, 1, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(b, kvh, kv, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)

    def call():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=kvh != h)

    return call


def _paged_call(sh):
    """flash_attn_with_kvcache over a block table of PAGE-token pages, the pages of each sequence scattered
    (a random permutation), or None where the flash_attn package is absent."""
    try:
        import torch
        from flash_attn import flash_attn_with_kvcache
    except Exception:  # noqa: BLE001 - the package is optional
        return None
    b, h, kvh, d, kv = sh["batch"], sh["heads"], sh["kv_heads"], sh["head_dim"], sh["seqlen_kv"]
    per_seq = -(-kv // PAGE)
    pages = b * per_seq
    k_cache = torch.randn(pages, PAGE, kvh, d, device="cuda", dtype=torch.bfloat16)
    v_cache = torch.randn_like(k_cache)
    table = torch.randperm(pages, device="cuda", dtype=torch.int32).reshape(b, per_seq)
    lens = torch.full((b,), kv, device="cuda", dtype=torch.int32)
    q = torch.randn(b, 1, h, d, device="cuda", dtype=torch.bfloat16)

    def call():
        return flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=lens, block_table=table)

    return call


def probe_decode_floor(torch, csv_path: str, hardware: str, budget_s: float) -> dict:
    """Time every shape with each kernel under the three methods; rows to ``csv_path``; a summary back."""
    from sim.validation.measure.csvformat import CSV_COLUMNS, CsvSink, shape_id
    from sim.validation.measure.suites import _flops_bytes, _settings_for
    from sim.validation.measure.timing import Kernel, _cuda_time

    s = _settings_for("cuda", "full")
    l2 = int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or (50 << 20))
    scratch = torch.empty(FLUSH_FACTOR * l2 // 4, device="cuda", dtype=torch.float32)

    def flush():
        scratch.zero_()

    one = torch.zeros(1, device="cuda", dtype=torch.bfloat16)
    out: dict = {"rows": 0, "failed": {}, "l2_bytes": l2, "flush_bytes": scratch.numel() * 4,
                 "baseline_s": {m: v[0] for m, v in _methods(torch, lambda: one.add_(1), flush, s, Kernel,
                                                             _cuda_time).items()}}
    sink = CsvSink(csv_path, CSV_COLUMNS + ["kernel_profile"])
    t0 = time.perf_counter()
    try:
        for sh in decode_floor_shapes():
            for label, profile, make in (("sdpa-fa2", "torch_fa2", lambda sh=sh: _sdpa_call(torch, sh)),
                                         ("fa2-paged", "fa2", lambda sh=sh: _paged_call(sh))):
                if time.perf_counter() - t0 > budget_s:
                    out["stopped_at_budget"] = True
                    return out
                try:
                    call = make()
                    if call is None:
                        out["failed"][f"{label}: flash_attn not installed"] = 1
                        continue
                    call()
                    times = _methods(torch, call, flush, s, Kernel, _cuda_time)
                except Exception as e:  # noqa: BLE001 - a kernel that refuses a shape
                    key = f"{label}: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                    out["failed"][key] = out["failed"].get(key, 0) + 1
                    torch.cuda.synchronize()
                    continue
                for method, (med, spread, reps, per) in times.items():
                    row = dict(op="attention", dtype="bf16", kernel="flash", name="decode-floor",
                               variant=f"{label}:{method}", **sh, kernel_profile=profile, hardware=hardware,
                               measured_time_s=med, spread=spread, reps=reps, calls_per_rep=per,
                               source="llmsim-probes:decode_floor")
                    fl, by = _flops_bytes(row)
                    row["gflop_per_s"] = fl / med / 1e9 if fl else None
                    row["gbyte_per_s"] = by / med / 1e9 if by else None
                    row["shape_id"] = shape_id(row)
                    sink.write(row)
                    out["rows"] += 1
                del call
                torch.cuda.empty_cache()
    finally:
        sink.close()
    return out
