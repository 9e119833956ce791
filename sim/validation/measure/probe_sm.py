"""GPU probes, the per-SM half: instruction throughputs per clock of one streaming multiprocessor, read with
``clock64`` inside the kernel (so the SM clock cancels out).

- ``ffma``: fp32 fused multiply-adds (the method's control: a GPU's datasheet gives FP32 lanes per SM);
- ``ex2``: ``ex2.approx.ftz.f32`` on the special-function units (the chip file's ``special`` compute unit);
- ``mma_sync_bf16`` / ``mma_sync_fp16``: the Ampere-style warp-level ``mma.sync.m16n8k16`` tensor-core
  instruction with fp32 accumulation (FlashAttention-2's and other pre-Hopper kernels' matrix path);
- ``lds128``: 128-bit shared-memory loads (the shared memory's bandwidth per clock).

Each kernel runs ``blocks_per_sm`` blocks of 256 threads on every SM, every thread ``ILP`` independent chains of
the instruction in a loop; thread 0 of each block records ``clock64`` before and after. Per-SM throughput = the
work of the blocks resident on an SM / the median block's cycles. Used by ``python -m
sim.validation.measure.probes`` (probe ``sm``; docs/measurement.md, "GPU probes").
"""

from __future__ import annotations

import gzip
import os
import shutil
import statistics

_SRC = r"""
extern "C" __global__ void ffma(float* out, long long* cyc, int iters) {
  float a0 = threadIdx.x, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7;
  const float m = 0.999f, c = 0.001f;
  __syncthreads();
  long long t0 = clock64();
  for (int i = 0; i < iters; ++i) {
    a0 = fmaf(a0, m, c); a1 = fmaf(a1, m, c); a2 = fmaf(a2, m, c); a3 = fmaf(a3, m, c);
    a4 = fmaf(a4, m, c); a5 = fmaf(a5, m, c); a6 = fmaf(a6, m, c); a7 = fmaf(a7, m, c);
  }
  __syncthreads();
  long long t1 = clock64();
  if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;
  out[blockIdx.x * blockDim.x + threadIdx.x] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

extern "C" __global__ void ex2(float* out, long long* cyc, int iters) {
  float a0 = threadIdx.x * 1e-3f, a1 = a0 + 0.1f, a2 = a0 + 0.2f, a3 = a0 + 0.3f;
  float a4 = a0 + 0.4f, a5 = a0 + 0.5f, a6 = a0 + 0.6f, a7 = a0 + 0.7f;
  __syncthreads();
  long long t0 = clock64();
  for (int i = 0; i < iters; ++i) {
    asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(a0)); asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(a1));
    asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(a2)); asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(a3));
    asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(a4)); asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(a5));
    asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(a6)); asm volatile("ex2.approx.ftz.f32 %0, %0;" : "+f"(a7));
  }
  __syncthreads();
  long long t1 = clock64();
  if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;
  out[blockIdx.x * blockDim.x + threadIdx.x] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

#define MMA(KIND, C) asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." KIND "." KIND ".f32 "            \
    "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"                                                    \
    : "+f"(C[0]), "+f"(C[1]), "+f"(C[2]), "+f"(C[3]) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))

#define MMA_KERNEL(NAME, KIND)                                                                                  \
extern "C" __global__ void NAME(float* out, long long* cyc, int iters) {                                        \
  unsigned a0 = threadIdx.x, a1 = a0 ^ 1, a2 = a0 ^ 2, a3 = a0 ^ 3, b0 = a0 ^ 4, b1 = a0 ^ 5;                    \
  float c0[4] = {0, 0, 0, 0}, c1[4] = {0, 0, 0, 0}, c2[4] = {0, 0, 0, 0}, c3[4] = {0, 0, 0, 0};                 \
  __syncthreads();                                                                                              \
  long long t0 = clock64();                                                                                     \
  for (int i = 0; i < iters; ++i) { MMA(KIND, c0); MMA(KIND, c1); MMA(KIND, c2); MMA(KIND, c3); }               \
  __syncthreads();                                                                                              \
  long long t1 = clock64();                                                                                     \
  if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;                                                              \
  out[blockIdx.x * blockDim.x + threadIdx.x] = c0[0] + c1[1] + c2[2] + c3[3];                                   \
}
MMA_KERNEL(mma_sync_bf16, "bf16")
MMA_KERNEL(mma_sync_fp16, "f16")

extern "C" __global__ void lds128(float* out, long long* cyc, int iters) {
  __shared__ float4 buf[2048];  // 32 KiB
  for (int i = threadIdx.x; i < 2048; i += blockDim.x) buf[i] = make_float4(i, i + 1, i + 2, i + 3);
  float4 acc = make_float4(0, 0, 0, 0);
  int idx = threadIdx.x;
  __syncthreads();
  long long t0 = clock64();
  for (int i = 0; i < iters; ++i) {
    float4 v0 = buf[idx & 2047], v1 = buf[(idx + 256) & 2047], v2 = buf[(idx + 512) & 2047], v3 = buf[(idx + 768) & 2047];
    acc.x += v0.x + v1.x + v2.x + v3.x; acc.y += v0.y + v1.y + v2.y + v3.y;
    acc.z += v0.z + v1.z + v2.z + v3.z; acc.w += v0.w + v1.w + v2.w + v3.w;
    idx += 1024;
  }
  __syncthreads();
  long long t1 = clock64();
  if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;
  out[blockIdx.x * blockDim.x + threadIdx.x] = acc.x + acc.y + acc.z + acc.w;
}
"""

def _export(prof, path: str) -> None:
    tmp = path.removesuffix(".gz")
    prof.export_chrome_trace(tmp)
    if path.endswith(".gz"):
        with open(tmp, "rb") as f, gzip.open(path, "wb", compresslevel=6) as g:
            shutil.copyfileobj(f, g)
        os.remove(tmp)


#: kernel -> (work per thread per loop iteration, unit of the work)
KERNELS = {
    "ffma": (8 * 2, "FLOP"),  # 8 FMAs = 16 FLOPs per thread
    "ex2": (8, "op"),
    "mma_sync_bf16": (4 * 2 * 16 * 8 * 16 / 32, "FLOP"),  # 4 m16n8k16 MMAs per warp = 4096 FLOPs each, per thread
    "mma_sync_fp16": (4 * 2 * 16 * 8 * 16 / 32, "FLOP"),
    "lds128": (4 * 16, "B"),  # 4 loads of 16 bytes
}


def probe_sm(iters: int = 65536, threads: int = 256, blocks_per_sm: tuple[int, ...] = (1, 2, 4)) -> dict:
    """Per-SM throughput per clock of each kernel, at 1, 2 and 4 resident blocks of 256 threads per SM."""
    import cupy as cp

    mod = cp.RawModule(code=_SRC)
    sms = cp.cuda.Device().attributes["MultiProcessorCount"]
    out: dict = {"sms": sms, "threads_per_block": threads, "iters": iters, "rows": []}
    for name, (work, unit) in KERNELS.items():
        k = mod.get_function(name)
        for bps in blocks_per_sm:
            grid = sms * bps
            res = cp.zeros(grid * threads, dtype=cp.float32)
            cyc = cp.zeros(grid, dtype=cp.int64)
            k((grid,), (threads,), (res, cyc, cp.int32(iters // 8)))  # warm-up
            cp.cuda.Device().synchronize()
            e0, e1 = cp.cuda.Event(), cp.cuda.Event()
            e0.record()
            k((grid,), (threads,), (res, cyc, cp.int32(iters)))
            e1.record()
            e1.synchronize()
            ms = cp.cuda.get_elapsed_time(e0, e1)
            cycles = [int(c) for c in cyc.get()]
            med = statistics.median(cycles)
            per_sm_per_clk = work * iters * threads * bps / med
            row = {"kernel": name, "unit": unit, "blocks_per_sm": bps, "median_block_cycles": med,
                   "max_block_cycles": max(cycles), "elapsed_ms": ms, "per_sm_per_clock": per_sm_per_clk,
                   "chip_rate_per_s": work * iters * threads * grid / (ms * 1e-3),
                   "sm_mhz_implied": med / (ms * 1e3)}
            out["rows"].append(row)
    return out


def trace_norms(torch, trace_path: str) -> dict:
    """A profiler trace of F.rms_norm and F.layer_norm (bf16) at a few shapes: how many kernels each runs."""
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    shapes = [(1, 4096), (16, 8192), (4096, 4096), (16384, 8192)]
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for m, n in shapes:
            x = torch.randn(m, n, device="cuda", dtype=torch.bfloat16)
            w = torch.randn(n, device="cuda", dtype=torch.bfloat16)
            b = torch.randn(n, device="cuda", dtype=torch.bfloat16)
            for _ in range(3):
                F.rms_norm(x, (n,), w, 1e-6)
                F.layer_norm(x, (n,), w, b, 1e-5)
            torch.cuda.synchronize()
    _export(prof, trace_path)
    return {"shapes": shapes, "trace": trace_path.rsplit("/", 1)[-1]}


def gemm_burst(torch, csv_path: str, hardware: str, idle_s: float = 0.3) -> dict:
    """The `llmsim measure` GEMM grid (bf16, fp8) timed in bursts: each shape after ``idle_s`` of idle GPU, a few
    ms of calls (3 samples of >= 1 ms), so every row runs before the power limiter acts (the sweep itself times each
    shape 0.1-0.3 s back to back, reaching the capped clock at large m). Rows in the per-kernel format,
    ``variant`` = burst."""
    import time

    from sim.validation.measure.csvformat import CsvSink, shape_id
    from sim.validation.measure.suites import _flops_bytes, _gemm_shapes
    from sim.validation.measure.timing import Settings, _cuda_time
    from sim.validation.measure.torch_kernels import _torch_gemm

    s = Settings(target_s=0.0, min_reps=3, max_reps=3, warmup=1, min_sample_s=1e-3, cold_bytes=256 << 20,
                 copy_budget=4 << 30)
    sink = CsvSink(csv_path)
    n = 0
    try:
        for dt in ("bf16", "fp8_e4m3"):
            for m, nn, k in _gemm_shapes("cuda", "full"):
                try:
                    kern = _torch_gemm(torch, "cuda", dt, m, nn, k, s)
                    torch.cuda.synchronize()
                    time.sleep(idle_s)
                    t = _cuda_time(torch, kern, s)
                except Exception:  # noqa: BLE001 - a shape this dtype refuses: skipped, as the sweep does
                    kern = None
                    torch.cuda.synchronize()
                    continue
                row = {"op": "gemm", "dtype": dt, "m": m, "n": nn, "k": k, "batch": 1, "hardware": hardware,
                       "name": "torch._scaled_mm" if dt == "fp8_e4m3" else "torch.matmul", "variant": "burst",
                       "measured_time_s": t.median_s, "spread": t.spread, "reps": t.reps,
                       "calls_per_rep": t.calls_per_rep, "source": "llmsim-probes:gemm_burst"}
                fl, by = _flops_bytes(row)
                row["gflop_per_s"] = fl / t.median_s / 1e9
                row["gbyte_per_s"] = by / t.median_s / 1e9 if by else None
                row["shape_id"] = shape_id(row)
                sink.write(row)
                n += 1
                kern = None
                torch.cuda.empty_cache()
    finally:
        sink.close()
    return {"rows": n, "idle_s": idle_s}
