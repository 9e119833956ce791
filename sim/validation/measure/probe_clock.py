"""GPU probes, the clock half: the SM clock, power and achieved rate of GEMM loads held for seconds.

Used by ``python -m sim.validation.measure.probes`` (probes ``clock`` and ``load``; docs/measurement.md,
"GPU probes"). torch is passed in by the caller; NVML (pynvml) or ``nvidia-smi`` reads the clocks.
"""

from __future__ import annotations

import math
import shutil
import statistics
import subprocess
import sys
import threading
import time


def _log(msg: str) -> None:
    """A progress line of the probes, on stderr."""
    print(f"[probes {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- clock under load ----------------------------------------------------------------------


class _Sampler(threading.Thread):
    """SM clock, memory clock, power, temperature and throttle reasons every ``period`` seconds."""

    def __init__(self, period: float = 0.05):
        super().__init__(daemon=True)
        self.period = period
        self.samples: list[dict] = []
        self.stop_flag = threading.Event()
        self.how = None
        self._nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = (pynvml, pynvml.nvmlDeviceGetHandleByIndex(0))
            self.how = "nvml"
        except Exception:  # noqa: BLE001 - no NVML binding: nvidia-smi below
            self._nvml = None
            self.how = "nvidia-smi" if shutil.which("nvidia-smi") else None

    def read(self) -> dict | None:
        t = time.perf_counter()
        if self._nvml is not None:
            nv, h = self._nvml
            s = {"t": t, "sm_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
                 "mem_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
                 "power_w": nv.nvmlDeviceGetPowerUsage(h) / 1000.0,
                 "temp_c": nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)}
            try:
                s["throttle"] = int(nv.nvmlDeviceGetCurrentClocksEventReasons(h))
            except Exception:  # noqa: BLE001 - older binding name
                try:
                    s["throttle"] = int(nv.nvmlDeviceGetCurrentClocksThrottleReasons(h))
                except Exception:  # noqa: BLE001
                    pass
            return s
        if self.how == "nvidia-smi":
            q = "clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active"
            out = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True, timeout=5).stdout.strip().split(",")
            try:
                return {"t": t, "sm_mhz": float(out[0]), "mem_mhz": float(out[1]), "power_w": float(out[2]),
                        "temp_c": float(out[3]), "throttle": int(out[4].strip(), 16)}
            except (ValueError, IndexError):
                return None
        return None

    def limits(self) -> dict:
        if self._nvml is None:
            return {}
        nv, h = self._nvml
        out = {}
        for key, fn in (("power_limit_w", "nvmlDeviceGetEnforcedPowerLimit"),
                        ("power_default_limit_w", "nvmlDeviceGetPowerManagementDefaultLimit")):
            try:
                out[key] = getattr(nv, fn)(h) / 1000.0
            except Exception:  # noqa: BLE001
                pass
        for key, clk in (("max_sm_mhz", "NVML_CLOCK_SM"), ("max_mem_mhz", "NVML_CLOCK_MEM")):
            try:
                out[key] = nv.nvmlDeviceGetMaxClockInfo(h, getattr(nv, clk))
            except Exception:  # noqa: BLE001
                pass
        try:
            out["app_sm_mhz"] = nv.nvmlDeviceGetApplicationsClock(h, nv.NVML_CLOCK_SM)
        except Exception:  # noqa: BLE001
            pass
        return out

    def run(self) -> None:
        while not self.stop_flag.is_set():
            s = self.read()
            if s is not None:
                self.samples.append(s)
            self.stop_flag.wait(self.period)


def _median(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(xs) if xs else None


def probe_clock(torch, seconds: float) -> dict:
    """Run a full-chip GEMM for ``seconds`` per dtype and read the clock it holds."""
    sampler = _Sampler()
    out: dict = {"sampler": sampler.how, "limits": sampler.limits(), "runs": []}
    out["idle"] = []
    for _ in range(5):
        s0 = sampler.read()
        if s0:
            out["idle"].append(s0)
        time.sleep(0.05)
    n = 8192
    runs = [("bf16", None)]
    if hasattr(torch, "_scaled_mm") and torch.cuda.get_device_capability(0) >= (8, 9):
        runs.append(("fp8_e4m3", None))
    for dtype, _ in runs:
        if dtype == "bf16":
            a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
            b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
            c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)

            def call(a=a, b=b, c=c):
                torch.matmul(a, b, out=c)
        else:
            a = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn)
            b = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn).t()
            one = torch.ones((), device="cuda")

            def call(a=a, b=b, one=one):
                torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        reps = 10
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                call()
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(reps):
                call()
        torch.cuda.synchronize()
        sampler = _Sampler()
        sampler.start()
        t0 = time.perf_counter()
        replays = []
        while time.perf_counter() - t0 < seconds:
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            g.replay()
            e1.record()
            e1.synchronize()
            replays.append((time.perf_counter() - t0, e0.elapsed_time(e1) / 1e3 / reps))
        sampler.stop_flag.set()
        sampler.join(timeout=2)
        flops = 2.0 * n ** 3
        late = [s for s in sampler.samples if s["t"] - sampler.samples[0]["t"] > seconds / 3] if sampler.samples else []
        late_t = [dt for tt, dt in replays if tt > seconds / 3]
        summary = {
            "dtype": dtype, "m": n, "n": n, "k": n, "seconds": seconds, "gemms": len(replays) * reps,
            "gemm_s_median_late": _median(late_t),
            "tflops_median_late": flops / _median(late_t) / 1e12 if late_t else None,
            "tflops_first_replay": flops / replays[0][1] / 1e12 if replays else None,
            "sm_mhz_median_late": _median([s["sm_mhz"] for s in late]),
            "sm_mhz_min_late": min((s["sm_mhz"] for s in late), default=None),
            "sm_mhz_max_late": max((s["sm_mhz"] for s in late), default=None),
            "power_w_median_late": _median([s["power_w"] for s in late]),
            "temp_c_end": late[-1]["temp_c"] if late else None,
            "throttle_reasons_late": sorted({hex(s.get("throttle", 0)) for s in late}),
            "samples": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}
                        for s in sampler.samples],
            "replays": [(round(tt, 4), dt) for tt, dt in replays],
        }
        out["runs"].append(summary)
        _log(f"clock {dtype}: {summary['tflops_median_late']:.0f} TFLOP/s at {summary['sm_mhz_median_late']} MHz, "
             f"{summary['power_w_median_late']} W, throttle {summary['throttle_reasons_late']}")
        del g, a, b
        torch.cuda.empty_cache()
    return out


# -- clock under LLM-shaped load ----------------------------------------------------------

#: Llama-3.1-8B's projections (n, k): qkv, o, gate_up, down
LLAMA8B_NK = [(6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336)]


def _graph_of(torch, calls):
    """A CUDA graph of ``calls`` (a list of zero-argument callables) run once each, after a warm-up."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for c in calls:
            c()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for c in calls:
            c()
    torch.cuda.synchronize()
    return g


def _gemm_calls(torch, dtype, shapes, copies=1):
    """Calls of torch.matmul (bf16) or _scaled_mm (fp8) over ``shapes`` [(m, n, k)], with their FLOPs and the
    bytes of their operands; ``copies`` sets of weights rotated (so weights come from HBM, as in a model)."""
    calls, flops, nbytes, keep = [], 0.0, 0.0, []
    one = torch.ones((), device="cuda")
    for _ in range(copies):
        for m, n, k in shapes:
            if dtype == "fp8_e4m3":
                a = torch.randn(m, k, device="cuda").to(torch.float8_e4m3fn)
                b = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn).t()
                calls.append(lambda a=a, b=b: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
                nbytes += m * k + n * k + 2 * m * n
            else:
                a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
                b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
                c = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
                calls.append(lambda a=a, b=b, c=c: torch.matmul(a, b, out=c))
                nbytes += 2 * (m * k + n * k + m * n)
                keep.append(c)  # the graph writes it: it must outlive the graph
            keep.append((a, b))
            flops += 2.0 * m * n * k
    return calls, flops, nbytes, keep


def load_workloads(torch) -> list[tuple[str, list[tuple[str, int, int]]]]:
    """(name, [(phase, graph replays per phase, ...)]) of the load probe; built lazily by ``probe_load``."""
    layer = lambda t: [(t, n, k) for n, k in LLAMA8B_NK]  # noqa: E731
    return [
        ("bf16 4096^3", [("gemm", [(4096, 4096, 4096)], "bf16", 1, 20)]),
        ("bf16 2048x4096x4096", [("gemm", [(2048, 4096, 4096)], "bf16", 1, 50)]),
        ("bf16 llama8b layer, 2048 tokens", [("prefill", layer(2048), "bf16", 1, 8)]),
        ("bf16 llama8b layer, 512 tokens", [("prefill", layer(512), "bf16", 1, 30)]),
        ("fp8 llama8b layer, 2048 tokens", [("prefill", layer(2048), "fp8_e4m3", 1, 16)]),
        ("bf16 llama8b decode, 32 tokens, 8 layers of weights", [("decode", layer(32), "bf16", 8, 4)]),
        ("bf16 mix: 32 prefill layers of 2048 tokens, then 20 decode steps of 32 layers at 32 tokens",
         [("prefill", layer(2048), "bf16", 1, 32), ("decode", layer(32), "bf16", 8, 80)]),
        ("bf16 8192^3 again", [("gemm", [(8192, 8192, 8192)], "bf16", 1, 10)]),
    ]


def probe_load(torch, seconds: float, only: str | None = None, save=None) -> dict:
    """Clock, power and achieved rate of LLM-shaped GEMM loads held for ``seconds`` each: the burst rate (the
    first replays, at boost) against the rate held once the power limit acts."""
    out: dict = {"runs": []}
    for name, phases in load_workloads(torch):
        if only and only not in name:
            continue
        built = []
        for pname, shapes, dtype, copies, replays in phases:
            calls, flops, nbytes, keep = _gemm_calls(torch, dtype, shapes, copies)
            built.append((pname, _graph_of(torch, calls), flops, nbytes, replays, keep))
        time.sleep(1.0)  # back near idle power before the burst
        sampler = _Sampler()
        sampler.start()
        t0 = time.perf_counter()
        per: dict = {b[0]: [] for b in built}
        while time.perf_counter() - t0 < seconds:
            evs = []
            for pname, g, _f, _b, replays, _k in built:
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                for _ in range(replays):
                    g.replay()
                e1.record()
                evs.append((pname, e0, e1, replays))
            evs[-1][2].synchronize()
            now = time.perf_counter() - t0
            for pname, e0, e1, replays in evs:
                per[pname].append((now, e0.elapsed_time(e1) / 1e3 / replays))
        sampler.stop_flag.set()
        sampler.join(timeout=2)
        ss = sampler.samples
        late = [x for x in ss if ss and x["t"] - ss[0]["t"] > seconds / 3]
        run = {"name": name, "seconds": seconds, "phases": [],
               "sm_mhz_median_late": _median([x["sm_mhz"] for x in late]),
               "power_w_median_late": _median([x["power_w"] for x in late]),
               "throttle_reasons_late": sorted({hex(x.get("throttle", 0)) for x in late}),
               "samples": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in x.items()} for x in ss]}
        for pname, _g, flops, nbytes, replays, _k in built:
            ts = per[pname]
            first = ts[0][1] if ts else None
            late_t = _median([dt for tt, dt in ts if tt > seconds / 3])
            run["phases"].append({"phase": pname, "flops_per_replay": flops, "bytes_per_replay": nbytes,
                                  "replays_per_phase": replays, "first_s": first, "late_median_s": late_t,
                                  "tflops_first": flops / first / 1e12 if first else None,
                                  "tflops_late": flops / late_t / 1e12 if late_t else None,
                                  "gbyte_per_s_late": nbytes / late_t / 1e9 if late_t else None,
                                  "n": len(ts)})
        out["runs"].append(run)
        if save is not None:
            save(out)  # kept if a later workload fails
        _log(f"load {name}: {run['sm_mhz_median_late']} MHz {run['power_w_median_late']} W; "
             + "; ".join(f"{p['phase']} {p['tflops_first'] or 0:.0f} -> {p['tflops_late'] or 0:.0f} TFLOP/s"
                         for p in run["phases"]))
        built = None
        torch.cuda.empty_cache()
    return out
