"""The environment a measurement ran in, written beside its CSV as ``FILE.env.json``.

Everything here is best effort: a field that cannot be read is left out or set to ``None``,
never an error. torch is only looked at when it is already imported (the CUDA/torch paths import
it); the CPU path never imports it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys

from sim.version import llmsim_version

__all__ = [
    "blas_info",
    "cpu_busy_seconds",
    "other_cpu_seconds",
    "collect_environment",
    "cpu_info",
    "env_path_for",
    "nvidia_smi_info",
    "write_environment",
]

#: environment variables that set thread counts of BLAS/OpenMP libraries
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def env_path_for(csv_path: str) -> str:
    """``out.csv`` -> ``out.env.json`` (the side file beside a measured CSV)."""
    base = csv_path.removesuffix(".csv")
    return base + ".env.json"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def cpu_info() -> dict:
    """CPU model, logical core count, affinity, cache sizes and ISA flags of interest."""
    info: dict = {"machine": platform.machine(), "logical_cpus": os.cpu_count()}
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    text = _read("/proc/cpuinfo") or ""
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    if m:
        info["model"] = m.group(1).strip()
    m = re.search(r"^cpu MHz\s*:\s*([\d.]+)$", text, re.MULTILINE)
    if m:
        info["mhz_reported"] = float(m.group(1))
    m = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    if m:
        flags = set(m.group(1).split())
        interesting = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512_fp16",
                       "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8", "sve", "neon", "asimd"]
        info["isa_flags"] = [f for f in interesting if f in flags]
    caches = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    if os.path.isdir(base):
        for idx in sorted(os.listdir(base)):
            d = os.path.join(base, idx)
            level, typ, size = (_read(os.path.join(d, n)) for n in ("level", "type", "size"))
            if level and size:
                name = f"L{level.strip()}" + ({"Data": "d", "Instruction": "i"}.get((typ or "").strip(), ""))
                caches[name] = size.strip()
    if caches:
        info["caches_cpu0"] = caches
    freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq")
    if freq:
        info["max_khz"] = int(freq.strip())
    return info


def cache_bytes(level: int = 3) -> int | None:
    """Size in bytes of the CPU cache of that level as cpu0 reports it (None if unknown)."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    if not os.path.isdir(base):
        return None
    best = None
    for idx in os.listdir(base):
        d = os.path.join(base, idx)
        lv = _read(os.path.join(d, "level"))
        sz = _read(os.path.join(d, "size"))
        if lv and sz and lv.strip() == str(level):
            m = re.match(r"(\d+)\s*([KMG]?)", sz.strip())
            if m:
                val = int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]
                best = max(best or 0, val)
    return best


def blas_info() -> dict:
    """Which BLAS numpy is linked against, and the thread-count variables that were set."""
    out: dict = {"thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ}}
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")  # numpy >= 1.25
        deps = cfg.get("Build Dependencies", {})
        for key in ("blas", "lapack"):
            d = deps.get(key) or {}
            out[key] = {k: d.get(k) for k in ("name", "version", "openblas configuration") if d.get(k)}
        simd = cfg.get("SIMD Extensions", {})
        if simd:
            out["numpy_simd_found"] = simd.get("found")
    except Exception as e:  # noqa: BLE001 - best effort
        out["error"] = f"{type(e).__name__}: {e}"
    out.update(_openblas_runtime())
    return out


def _openblas_runtime() -> dict:
    """Thread count and kernel family of the OpenBLAS that numpy loaded (numpy wheels bundle
    scipy-openblas in numpy.libs/); {} when it cannot be found."""
    import ctypes
    import glob

    try:
        import numpy as np

        libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
        libs = glob.glob(os.path.join(libdir, "libscipy_openblas*.so*")) + glob.glob(
            os.path.join(libdir, "libopenblas*.so*"))
        if not libs:
            return {}
        lib = ctypes.CDLL(libs[0])
        out = {}
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "_64_", ""):
                f = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if f is not None and "openblas_threads" not in out:
                    f.restype = ctypes.c_int
                    out["openblas_threads"] = int(f())
                g = getattr(lib, f"{prefix}_get_corename{suffix}", None)
                if g is not None and "openblas_core" not in out:
                    g.restype = ctypes.c_char_p
                    out["openblas_core"] = g().decode(errors="replace")
        return out
    except Exception:  # noqa: BLE001 - best effort
        return {}


def nvidia_smi_info() -> list[dict] | None:
    """One dict per GPU from ``nvidia-smi --query-gpu`` (None if nvidia-smi is absent)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    fields = ["name", "driver_version", "memory.total", "clocks.sm", "clocks.mem", "clocks.max.sm",
              "clocks.max.mem", "power.limit", "pstate", "temperature.gpu", "pci.bus_id"]
    try:
        r = subprocess.run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return [{"error": r.stderr.strip()[:200]}]
    gpus = []
    for line in r.stdout.strip().splitlines():
        vals = [v.strip() for v in line.split(",")]
        gpus.append(dict(zip(fields, vals)))
    return gpus


def torch_info() -> dict | None:
    """torch, CUDA, cuDNN and NCCL versions and device properties, if torch is already imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    info: dict = {"torch": getattr(torch, "__version__", None)}
    try:
        info["cuda_runtime"] = torch.version.cuda
        info["cuda_available"] = bool(torch.cuda.is_available())
        info["torch_num_threads"] = torch.get_num_threads()
        if torch.backends.cudnn.is_available():
            info["cudnn"] = torch.backends.cudnn.version()
        if info["cuda_available"]:
            devs = []
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                devs.append({
                    "name": p.name,
                    "capability": f"{p.major}.{p.minor}",
                    "multiprocessors": p.multi_processor_count,
                    "memory_bytes": p.total_memory,
                    "l2_cache_bytes": getattr(p, "L2_cache_size", None),
                })
            info["devices"] = devs
            try:
                info["nccl"] = ".".join(str(x) for x in torch.cuda.nccl.version())
            except Exception:  # noqa: BLE001
                pass
    except Exception as e:  # noqa: BLE001
        info["error"] = f"{type(e).__name__}: {e}"
    return info


def cpu_busy_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process) so far.

    The difference over a run is the CPU time other processes took while we measured: a CPU
    measurement with a large share of it was disturbed.
    """
    text = _read("/proc/stat")
    if not text or not text.startswith("cpu "):
        return None
    vals = [int(x) for x in text.splitlines()[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    busy = (sum(vals[:8]) - idle) / hz  # user nice system idle iowait irq softirq steal
    t = os.times()
    return busy, t.user + t.system


def other_cpu_seconds(start: tuple[float, float] | None) -> float | None:
    """CPU seconds that other processes used since ``start`` (a ``cpu_busy_seconds()``)."""
    end = cpu_busy_seconds()
    if start is None or end is None:
        return None
    return round(max(0.0, (end[0] - start[0]) - (end[1] - start[1])), 2)


def loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews CPU measurements."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def collect_environment(device: str, suite: str, hardware: str, argv: list[str] | None = None,
                        extra: dict | None = None) -> dict:
    """Everything needed to tell two measurement runs apart. The host name is not recorded."""
    import numpy as np

    env = {
        "format": "llmsim-measure-env/1",
        "date_utc": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "llmsim_version": llmsim_version(),
        "device": device,
        "suite": suite,
        "hardware": hardware,
        "command_line": " ".join(argv if argv is not None else sys.argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "cpu": cpu_info(),
        "loadavg_start": loadavg(),
        "blas": blas_info(),
    }
    try:
        import pandas as pd

        env["pandas"] = pd.__version__
    except Exception:  # noqa: BLE001
        pass
    t = torch_info()
    if t is not None:
        env["torch"] = t
    smi = nvidia_smi_info()
    if smi is not None:
        env["nvidia_smi"] = smi
    if extra:
        env.update(extra)
    return env


def write_environment(path: str, env: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(env, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
