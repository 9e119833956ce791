"""GPU probes: the chip-file fields a kernel sweep cannot give, measured on the GPU at hand.

    python3 -m sim.validation.measure.probes --out DIR [--only clock,chase,...] [--seconds 15]

Each probe writes its part of ``DIR/probes.json`` as soon as it ends (the file is rewritten after
every probe, so an interrupted run keeps what was measured). What each one measures:

- ``clock``: the SM clock, power and throttle reasons a long, full-chip GEMM holds (an 8192^3 bf16
  product, and fp8 through ``torch._scaled_mm`` where the GPU has it), sampled through NVML (or
  ``nvidia-smi`` when pynvml is absent) every 50 ms while CUDA-graph replays of the GEMM run back to
  back: the ``sustained_clock`` and ``sustained_clock_power`` of a matrix unit (docs/cost-model.md).
- ``chase``: dependent-load latency: one thread follows a random cycle of 128-byte lines over a
  footprint (64 KiB .. 4 GiB), through L1 (plain loads) and past it (``__ldcg``): nanoseconds and
  SM clock cycles (``clock64``) per load. The memory levels' ``latency`` fields.
- ``launch``: an empty kernel: launched eagerly from Python (the host's launch cost, Python
  included) and replayed in a CUDA graph (the GPU-side time per kernel); and a one-element torch
  add in a graph (an empty kernel plus one memory round trip: ``kernel_fixed_time``).
- ``stream``: achieved DRAM bandwidth by access pattern on 2 GiB: read (a sum), write (a fill),
  copy, and a row gather (``index_select`` of random 8 KiB rows).
- ``attention``: ``scaled_dot_product_attention`` with each backend forced (flash = FA2, cuDNN,
  memory-efficient) over head_dim 64/128/256 at a fixed model width, prefill (causal) and decode;
  rows in the per-kernel CSV format (``DIR/attention.csv``; ``variant`` = the backend), so ``llmsim
  ops`` and ``llmsim validate`` read them.
- ``gemm_trace``: a PyTorch profiler trace (``DIR/gemm_trace.json.gz``) of torch.matmul / _scaled_mm
  over a grid of shapes: which cuBLAS kernel (tile, cluster, split-K) each shape gets, with its grid,
  block, shared memory and duration. ``llmsim measure --kineto`` reads it.

- ``decode_floor``: short-context decode attention (SDPA's FlashAttention-2, and ``flash_attn``'s paged kernel
  where installed) timed three ways: CUDA-graph replays, single eager calls between events, and single calls
  after an L2 flush; with a one-element add under each as the harness baseline (``DIR/decode_floor.csv``,
  sim/validation/measure/probe_decode.py).

Needs torch with CUDA; ``chase`` and ``launch`` need CuPy (or fall back to Triton for the chase).
Without CUDA it prints one line and exits 2. docs/measurement.md, "GPU probes".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from sim.validation.measure.probe_decode import probe_decode_floor
from sim.validation.measure.probe_sm import _export, gemm_burst, probe_sm, trace_norms
from sim.validation.measure.probe_clock import _log, load_workloads, probe_clock, probe_load  # noqa: F401 (re-exported)

PROBES = ("clock", "load", "chase", "launch", "stream", "attention", "gemm_trace", "sm", "norm_trace", "gemm_burst",
          "decode_floor")


class Results:
    """probes.json, rewritten after each probe."""

    def __init__(self, path: str):
        self.path = path
        self.data: dict = {"version": 1, "probes": {}}
        try:  # a second run into the same folder adds its probes to the first run's
            with open(path) as f:
                old = json.load(f)
            if isinstance(old, dict) and isinstance(old.get("probes"), dict):
                self.data["probes"].update(old["probes"])
        except (OSError, ValueError):
            pass

    def put(self, name: str, value) -> None:
        self.data["probes"][name] = value
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1, default=str)
        os.replace(tmp, self.path)


# -- pointer chase -------------------------------------------------------------------------

_CHASE_SRC = r"""
extern "C" __global__ void chase_ca(const unsigned int* a, long long hops, unsigned int* out, long long* cyc) {
  unsigned int p = 0;
  long long t0 = clock64();
  for (long long i = 0; i < hops; ++i) p = a[p];
  long long t1 = clock64();
  out[0] = p; cyc[0] = t1 - t0;
}
extern "C" __global__ void chase_cg(const unsigned int* a, long long hops, unsigned int* out, long long* cyc) {
  unsigned int p = 0;
  long long t0 = clock64();
  for (long long i = 0; i < hops; ++i) p = __ldcg(a + p);
  long long t1 = clock64();
  out[0] = p; cyc[0] = t1 - t0;
}
extern "C" __global__ void noop() {}
"""

CHASE_FOOTPRINTS = [64 << 10, 1 << 20, 8 << 20, 24 << 20, 40 << 20, 128 << 20, 512 << 20, 2 << 30, 4 << 30]


def _chase_array(cp, footprint: int, line: int = 128):
    """A uint32 array whose entries at line starts form one random cycle over all lines."""
    step = line // 4
    nodes = footprint // line
    a = cp.zeros(footprint // 4, dtype=cp.uint32)
    perm = cp.random.permutation(nodes).astype(cp.int64)
    # node perm[i] points to perm[i+1]; start (index 0) must be on the cycle: rotate so perm[0] = 0
    zero_at = int(cp.argmin(perm))
    perm = cp.roll(perm, -zero_at)
    nxt = cp.roll(perm, -1)
    a[perm * step] = (nxt * step).astype(cp.uint32)
    del perm, nxt
    return a, nodes


def probe_chase(footprints=None) -> dict:
    import cupy as cp

    mod = cp.RawModule(code=_CHASE_SRC)
    out: dict = {"line_bytes": 128, "rows": []}
    res = cp.zeros(1, dtype=cp.uint32)
    cyc = cp.zeros(1, dtype=cp.int64)
    for fp in footprints or CHASE_FOOTPRINTS:
        try:
            a, nodes = _chase_array(cp, fp)
        except Exception as e:  # noqa: BLE001 - out of memory on a smaller card
            out["rows"].append({"footprint_bytes": fp, "error": f"{type(e).__name__}: {e}"})
            continue
        for kname in ("chase_ca", "chase_cg"):
            k = mod.get_function(kname)
            hops = int(min(200_000, max(20_000, 4 * nodes)))
            warm = int(min(nodes * 2, 400_000)) if fp <= (64 << 20) else 20_000
            k((1,), (1,), (a, cp.int64(warm), res, cyc))
            cp.cuda.Device().synchronize()
            e0, e1 = cp.cuda.Event(), cp.cuda.Event()
            e0.record()
            k((1,), (1,), (a, cp.int64(hops), res, cyc))
            e1.record()
            e1.synchronize()
            ms = cp.cuda.get_elapsed_time(e0, e1)
            cycles = int(cyc.get()[0])
            row = {"footprint_bytes": fp, "kernel": kname, "hops": hops, "ns_per_load": ms * 1e6 / hops,
                   "cycles_per_load": cycles / hops, "sm_mhz_implied": cycles / (ms * 1e3) if ms > 0 else None}
            out["rows"].append(row)
            _log(f"chase {kname} {fp >> 10} KiB: {row['ns_per_load']:.1f} ns, {row['cycles_per_load']:.0f} cycles")
        del a
        cp.get_default_memory_pool().free_all_blocks()
    return out


# -- launch floor --------------------------------------------------------------------------


def probe_launch(torch) -> dict:
    out: dict = {}
    try:
        import cupy as cp

        noop = cp.RawModule(code=_CHASE_SRC).get_function("noop")
        noop((1,), (1,), ())
        cp.cuda.Device().synchronize()
        n = 5000
        t0 = time.perf_counter()
        for _ in range(n):
            noop((1,), (1,), ())
        cp.cuda.Device().synchronize()
        out["cupy_eager_s_per_launch"] = (time.perf_counter() - t0) / n
        st = cp.cuda.Stream(non_blocking=True)
        with st:
            st.begin_capture()
            for _ in range(1000):
                noop((1,), (1,), ())
            graph = st.end_capture()
        graph.upload(st)
        graph.launch(st)
        st.synchronize()
        e0, e1 = cp.cuda.Event(), cp.cuda.Event()
        times = []
        for _ in range(10):
            e0.record(st)
            graph.launch(st)
            e1.record(st)
            e1.synchronize()
            times.append(cp.cuda.get_elapsed_time(e0, e1) * 1e-3 / 1000)
        out["cupy_graph_s_per_empty_kernel"] = statistics.median(times)
    except Exception as e:  # noqa: BLE001
        out["cupy_error"] = f"{type(e).__name__}: {e}"
    for numel in (1, 4096, 1 << 16):
        x = torch.zeros(numel, device="cuda", dtype=torch.bfloat16)
        x.add_(1)
        torch.cuda.synchronize()
        n = 3000
        t0 = time.perf_counter()
        for _ in range(n):
            x.add_(1)
        torch.cuda.synchronize()
        out[f"torch_eager_s_per_add_{numel}"] = (time.perf_counter() - t0) / n
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            x.add_(1)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(1000):
                x.add_(1)
        g.replay()
        torch.cuda.synchronize()
        times = []
        for _ in range(10):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            g.replay()
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1) * 1e-3 / 1000)
        out[f"torch_graph_s_per_add_{numel}"] = statistics.median(times)
    _log("launch: " + ", ".join(f"{k}={v * 1e6:.2f}us" for k, v in out.items() if isinstance(v, float)))
    return out


# -- bandwidth by access pattern -----------------------------------------------------------


def probe_stream(torch) -> dict:
    from sim.validation.measure.suites import _settings_for
    from sim.validation.measure.timing import Kernel, _cuda_time

    s = _settings_for("cuda", "full")
    nbytes = 2 << 30
    n = nbytes // 2
    x = torch.empty(n, device="cuda", dtype=torch.bfloat16).normal_()
    y = torch.empty_like(x)
    rows_n = 4096
    table = x.view(-1, rows_n)
    m = 65536
    idx = torch.randint(0, table.shape[0], (m,), device="cuda")
    gout = torch.empty(m, rows_n, device="cuda", dtype=torch.bfloat16)
    cases = {
        "read_sum": (lambda i: torch.sum(x, dtype=torch.float32), nbytes),
        "write_fill": (lambda i: y.fill_(1.0), nbytes),
        "copy": (lambda i: y.copy_(x), 2 * nbytes),
        "gather_rows_8KiB": (lambda i: torch.index_select(table, 0, idx, out=gout), 2 * m * rows_n * 2),
    }
    out = {}
    for name, (fn, moved) in cases.items():
        try:
            t = _cuda_time(torch, Kernel(fn, 1), s)
            out[name] = {"bytes_moved": moved, "seconds": t.median_s, "gbyte_per_s": moved / t.median_s / 1e9,
                         "spread": t.spread, "reps": t.reps}
            _log(f"stream {name}: {moved / t.median_s / 1e9:.0f} GB/s")
        except Exception as e:  # noqa: BLE001
            out[name] = {"error": f"{type(e).__name__}: {e}"}
    return out


# -- attention backends --------------------------------------------------------------------


def attention_shapes(width: int = 4096) -> list[dict]:
    """Prefill (causal) and decode shapes at a fixed model width for head_dim 64, 128 and 256."""
    shapes = []
    for d in (64, 128, 256):
        h = width // d
        kvh = max(1, h // 4)
        for b, sq in ((1, 1024), (1, 4096), (1, 16384), (8, 2048)):
            shapes.append({"phase": "prefill", "batch": b, "heads": h, "kv_heads": kvh, "head_dim": d,
                           "seqlen_q": sq, "seqlen_kv": sq, "causal": True})
        for b, skv in ((1, 4096), (32, 1024), (32, 8192), (128, 2048)):
            shapes.append({"phase": "decode", "batch": b, "heads": h, "kv_heads": kvh, "head_dim": d,
                           "seqlen_q": 1, "seqlen_kv": skv, "causal": False})
    return shapes


#: the kernel facts (attention_kernels.yaml, the rows' ``kernel_profile``) of the SDPA backends as they ran on the
#: H100 the facts were read from (its trace): PyTorch's FlashAttention-2 and cuDNN's fused attention; none for the
#: memory-efficient kernel
SDPA_PROFILES = {"flash": "torch_fa2", "cudnn": "cudnn_sdpa"}


def probe_attention(torch, csv_path: str, hardware: str, budget_s: float) -> dict:
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from sim.validation.measure.csvformat import CSV_COLUMNS, CsvSink, shape_id
    from sim.validation.measure.suites import _flops_bytes, _settings_for
    from sim.validation.measure.timing import Kernel, _cuda_time, _ncopies

    s = _settings_for("cuda", "full")
    sink = CsvSink(csv_path, CSV_COLUMNS + ["kernel_profile"])
    out = {"rows": 0, "failed": {}}
    t_start = time.perf_counter()
    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                ("efficient", SDPBackend.EFFICIENT_ATTENTION)]
    try:
        for sh in attention_shapes():
            for label, backend in backends:
                if time.perf_counter() - t_start > budget_s:
                    out["stopped_at_budget"] = True
                    return out
                b, h, kvh, d = sh["batch"], sh["heads"], sh["kv_heads"], sh["head_dim"]
                sq, skv = sh["seqlen_q"], sh["seqlen_kv"]
                el = 2
                nc = _ncopies((2 * b * h * sq * d + 2 * b * kvh * skv * d) * el, s, cap=8)
                sets = None
                t = None
                shape = dict(sh)
                for kv_used in ((kvh, h) if kvh != h else (kvh,)):
                    # a backend that refuses grouped KV heads runs with them repeated (MHA), said in the row
                    try:
                        sets = [(torch.randn(b, h, sq, d, device="cuda", dtype=torch.bfloat16),
                                 torch.randn(b, kv_used, skv, d, device="cuda", dtype=torch.bfloat16),
                                 torch.randn(b, kv_used, skv, d, device="cuda", dtype=torch.bfloat16))
                                for _ in range(nc)]

                        def call(i, sets=sets, backend=backend, causal=sh["causal"], gqa=(kv_used != h)):
                            q, k, v = sets[i % len(sets)]
                            with sdpa_kernel(backend):
                                return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

                        call(0)
                        t = _cuda_time(torch, Kernel(call, nc, keep=[sets]), s)
                        shape["kv_heads"] = kv_used
                        break
                    except Exception as e:  # noqa: BLE001 - backend refuses this shape/dtype
                        key = (f"{label} kv_heads={'grouped' if kv_used != h else 'repeated'}: {type(e).__name__}: "
                               f"{str(e).splitlines()[0][:120] if str(e) else ''}")
                        out["failed"][key] = out["failed"].get(key, 0) + 1
                        sets = None
                        torch.cuda.synchronize()
                        torch.cuda.empty_cache()
                if t is None:
                    continue
                variant = label if shape["kv_heads"] == kvh else f"{label}:kv-repeated"
                row = dict(op="attention", dtype="bf16", kernel="flash", name="sdpa", variant=variant, **shape,
                           kernel_profile=SDPA_PROFILES.get(label, ""))
                row.update(hardware=hardware, measured_time_s=t.median_s, spread=t.spread, reps=t.reps,
                           calls_per_rep=t.calls_per_rep, source="llmsim-probes:attention")
                fl, by = _flops_bytes(row)
                row["gflop_per_s"] = fl / t.median_s / 1e9 if fl else None
                row["gbyte_per_s"] = by / t.median_s / 1e9 if by else None
                row["shape_id"] = shape_id(row)
                sink.write(row)
                out["rows"] += 1
                sets = None
                torch.cuda.empty_cache()
    finally:
        sink.close()
    _log(f"attention: {out['rows']} rows, failed {out['failed']}")
    return out


def trace_attention_kernels(torch, trace_path: str) -> dict:
    """One profiled call per backend and head_dim: which kernel each backend runs."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for d in (64, 128, 256):
            h = 4096 // d
            for sq, skv, b in ((4096, 4096, 1), (1, 4096, 32)):
                q = torch.randn(b, h, sq, d, device="cuda", dtype=torch.bfloat16)
                k = torch.randn(b, h // 4, skv, d, device="cuda", dtype=torch.bfloat16)
                v = torch.randn_like(k)
                for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
                    try:
                        with sdpa_kernel(backend):
                            for _ in range(2):
                                F.scaled_dot_product_attention(q, k, v, is_causal=sq > 1, enable_gqa=True)
                    except Exception:  # noqa: BLE001
                        pass
                torch.cuda.synchronize()
    _export(prof, trace_path)
    return {"trace": os.path.basename(trace_path)}


# -- GEMM kernel choice --------------------------------------------------------------------

GEMM_TRACE_M = [1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
GEMM_TRACE_NK = [(4096, 4096), (6144, 4096), (14336, 4096), (4096, 14336), (1024, 4096), (8192, 8192),
                 (28672, 8192), (8192, 28672)]
GEMM_TRACE_SQUARE = [256, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192]


def gemm_trace_shapes() -> list[tuple[int, int, int]]:
    shapes = [(m, n, k) for n, k in GEMM_TRACE_NK for m in GEMM_TRACE_M]
    shapes += [(s, s, s) for s in GEMM_TRACE_SQUARE]
    return shapes


def probe_gemm_trace(torch, trace_path: str, calls: int = 4) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from sim.validation.measure.timing import _set_tf32

    shapes = gemm_trace_shapes()
    dtypes = ["bf16", "fp8_e4m3", "tf32"]
    done = 0
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for dt in dtypes:
            _set_tf32(torch, dt == "tf32")
            for m, n, k in shapes:
                try:
                    if dt == "fp8_e4m3":
                        a = torch.randn(m, k, device="cuda").to(torch.float8_e4m3fn)
                        b = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn).t()
                        one = torch.ones((), device="cuda")
                        for _ in range(calls):
                            torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
                    else:
                        td = torch.bfloat16 if dt == "bf16" else torch.float32
                        a = torch.randn(m, k, device="cuda", dtype=td)
                        b = torch.randn(k, n, device="cuda", dtype=td)
                        for _ in range(calls):
                            torch.matmul(a, b)
                    torch.cuda.synchronize()
                    done += 1
                except Exception:  # noqa: BLE001 - a shape fp8 refuses (m not a multiple of 16)
                    torch.cuda.synchronize()
            _set_tf32(torch, False)
    _export(prof, trace_path)
    _log(f"gemm_trace: {done} shapes x {calls} calls -> {trace_path}")
    return {"shapes": done, "calls_per_shape": calls, "dtypes": dtypes, "trace": os.path.basename(trace_path)}


# -- driver --------------------------------------------------------------------------------


def environment(torch) -> dict:
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": torch.cuda.get_device_name(0),
           "capability": list(torch.cuda.get_device_capability(0)), "python": sys.version.split()[0]}
    p = torch.cuda.get_device_properties(0)
    env["sms"] = p.multi_processor_count
    env["total_memory"] = p.total_memory
    env["l2_bytes"] = getattr(p, "L2_cache_size", None)
    try:
        env["cudnn"] = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001
        pass
    try:
        import cupy

        env["cupy"] = cupy.__version__
    except Exception:  # noqa: BLE001
        env["cupy"] = None
    if shutil.which("nvidia-smi"):
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,vbios_version,"
                                            "power.limit,power.default_limit,clocks.max.sm,clocks.max.mem",
                                            "--format=csv"], capture_output=True, text=True, timeout=20).stdout
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.validation.measure.probes", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, metavar="DIR", help="folder for probes.json, attention.csv and traces")
    p.add_argument("--only", default=",".join(PROBES), help=f"comma-separated probes (default: all: {', '.join(PROBES)})")
    p.add_argument("--seconds", type=float, default=15.0, help="clock probe: seconds of GEMMs per dtype (default 15)")
    p.add_argument("--attention-budget", type=float, default=60.0, metavar="SECONDS",
                   help="attention and decode_floor probes: stop starting shapes after this long (default 60)")
    p.add_argument("--load-only", default=None, metavar="TEXT", help="load probe: only the workloads whose name has TEXT")
    p.add_argument("--hardware", default=None, help="hardware column of attention.csv (default: detected)")
    a = p.parse_args(argv)
    only = [x.strip() for x in a.only.split(",") if x.strip()]
    bad = [x for x in only if x not in PROBES]
    if bad:
        print(f"error: --only: unknown probe {', '.join(bad)}; choose from {', '.join(PROBES)}", file=sys.stderr)
        return 2
    for flag, v, top in (("--seconds", a.seconds, 3600.0), ("--attention-budget", a.attention_budget, 86400.0)):
        if not (0 < v <= top):  # NaN fails too
            print(f"error: {flag}: give seconds above 0 and at most {top:g}; got {v!r}", file=sys.stderr)
            return 2
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        print(f"error: the GPU probes need torch with CUDA ({type(e).__name__}: {e})", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(f"error: torch {torch.__version__} sees no CUDA device; the GPU probes need one", file=sys.stderr)
        return 2
    from sim.validation.measure.suites import catalog_name_for_gpu

    os.makedirs(a.out, exist_ok=True)
    res = Results(os.path.join(a.out, "probes.json"))
    res.put("environment", environment(torch))
    hardware = a.hardware or catalog_name_for_gpu(torch.cuda.get_device_name(0))
    steps = {
        "clock": lambda: probe_clock(torch, a.seconds),
        "load": lambda: probe_load(torch, a.seconds, a.load_only, save=lambda v: res.put("load", v)),
        "chase": probe_chase,
        "launch": lambda: probe_launch(torch),
        "stream": lambda: probe_stream(torch),
        "attention": lambda: {**probe_attention(torch, os.path.join(a.out, "attention.csv"), hardware,
                                                a.attention_budget),
                              **trace_attention_kernels(torch, os.path.join(a.out, "attention_trace.json.gz"))},
        "gemm_trace": lambda: probe_gemm_trace(torch, os.path.join(a.out, "gemm_trace.json.gz")),
        "sm": lambda: probe_sm(),
        "norm_trace": lambda: trace_norms(torch, os.path.join(a.out, "norm_trace.json.gz")),
        "gemm_burst": lambda: gemm_burst(torch, os.path.join(a.out, "gemm_burst.csv"), hardware),
        "decode_floor": lambda: probe_decode_floor(torch, os.path.join(a.out, "decode_floor.csv"), hardware,
                                                   a.attention_budget),
    }
    failed = 0
    for name in only:
        t0 = time.perf_counter()
        _log(f"{name} ...")
        try:
            val = steps[name]()
        except Exception as e:  # noqa: BLE001 - one probe must not stop the others
            import traceback

            failed += 1
            partial = res.data["probes"].get(name)  # what the probe saved before it failed
            val = {**(partial if isinstance(partial, dict) else {}), "error": f"{type(e).__name__}: {e}",
                   "traceback": traceback.format_exc()[-3000:]}
            _log(f"{name} failed: {type(e).__name__}: {e}")
            try:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001
                pass
        if isinstance(val, dict):
            val["probe_seconds"] = time.perf_counter() - t0
        try:
            torch.cuda.empty_cache()  # the probe's buffers are gone with its frame
        except Exception:  # noqa: BLE001
            pass
        res.put(name, val)
    _log(f"done: {len(only) - failed} of {len(only)} probes -> {res.path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
