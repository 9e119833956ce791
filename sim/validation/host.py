"""The machine ``llmsim measure`` runs on: detect it, find its catalog entry, or write a starting chip file.

``llmsim measure`` labels its rows with a hardware name, and ``llmsim validate`` scores them
against that catalog entry. Labelling rows of an unknown host with some other entry scores one
machine's kernels against another's spec, so the host is detected first:

- CPU (:func:`detect_cpu`): model, vendor, family/model numbers, logical CPUs, physical cores,
  threads per core, clock, ISA flags and the widest vector unit, caches (size, level, sharing)
  from ``/proc/cpuinfo`` and ``/sys/devices/system/cpu``, and memory from ``/proc/meminfo``.
- GPU (:func:`detect_gpu`): torch's device properties (name, memory, SMs, compute capability,
  L2 size).

:func:`match_cpu` names the catalog entry that describes the detected CPU (rules in
:data:`KNOWN_CPUS`), or None. When none matches, :func:`starting_cpu_chip` /
:func:`starting_gpu_chip` write a hardware file from what was detected and measured (DRAM/HBM
bandwidth by a timed copy, GPU matrix peak by a timed GEMM), each field named in the file's
``source`` list as *detected*, *measured*, *derived* (a formula of detected values) or
*assumed*; ``llmsim calibrate`` then refines the efficiencies against the measured kernels.
Every reader takes a ``root`` folder so tests can give a fake ``/proc`` and ``/sys``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["KNOWN_CPUS", "HostCPU", "HostGPU", "detect_cpu", "detect_gpu", "match_cpu", "measure_copy_bandwidth",
           "slug", "starting_cpu_chip", "starting_gpu_chip", "write_chip"]


@dataclass
class HostCPU:
    """What /proc and /sys say about this machine's CPU (None: not reported)."""

    model: str = "unknown CPU"
    vendor: str = ""
    family: int | None = None
    model_number: int | None = None
    logical_cpus: int = 1
    cores: int = 1  # physical cores
    threads_per_core: int = 1
    mhz: float | None = None
    mhz_source: str = ""
    flags: frozenset = frozenset()
    caches: list = field(default_factory=list)  # dicts: level, type, bytes, shared_cpus
    memory_bytes: float | None = None
    machine: str = ""

    @property
    def vector_bits(self) -> int:
        """Width of the widest vector unit the flags announce (AVX-512: 512, AVX/AVX2: 256, SSE/NEON: 128)."""
        f = self.flags
        if "avx512f" in f:
            return 512
        if "avx2" in f or "avx" in f:
            return 256
        return 128

    @property
    def isa(self) -> list[str]:
        keep = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512_fp16", "avx512_vnni",
                "amx_tile", "amx_bf16", "amx_int8", "asimd", "neon", "sve", "sve2", "bf16", "fphp")
        return [x for x in keep if x in self.flags]

    def describe(self) -> str:
        ghz = f", {self.mhz / 1000:.2f} GHz" if self.mhz else ""
        vec = {512: "AVX-512", 256: "AVX2" if "avx2" in self.flags else "AVX"}.get(self.vector_bits, "128-bit SIMD")
        return (f"{self.model} ({self.vendor or 'unknown vendor'}), {self.logical_cpus} logical CPUs, "
                f"{self.cores} cores{ghz}, {vec}")


def _read(root, path: str) -> str | None:
    try:
        with open(os.path.join(str(root), path.lstrip("/")), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _size_bytes(text: str) -> int | None:
    m = re.match(r"\s*(\d+)\s*([KMG]?)", text or "")
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]


def _cpu_list_len(text: str) -> int:
    n = 0
    for part in (text or "").strip().split(","):
        if "-" in part:
            a, b = part.split("-")
            n += int(b) - int(a) + 1
        elif part.strip():
            n += 1
    return n


def detect_cpu(root: str | Path = "/") -> HostCPU:
    """The CPU of this machine (or of a fake ``root`` holding proc/ and sys/)."""
    h = HostCPU()
    text = _read(root, "/proc/cpuinfo") or ""
    blocks = [b for b in text.split("\n\n") if b.strip()]

    def field_of(block, name):
        m = re.search(rf"^{re.escape(name)}\s*:\s*(.*)$", block, re.MULTILINE)
        return m.group(1).strip() if m else None

    first = blocks[0] if blocks else ""
    h.model = field_of(first, "model name") or field_of(first, "Processor") or field_of(first, "cpu model") \
        or h.model
    h.vendor = field_of(first, "vendor_id") or field_of(first, "CPU implementer") or ""
    for name, attr in (("cpu family", "family"), ("model", "model_number")):
        v = field_of(first, name)
        if v is not None and v.isdigit():
            setattr(h, attr, int(v))
    flags = field_of(first, "flags") or field_of(first, "Features") or ""
    h.flags = frozenset(flags.split())
    procs = [b for b in blocks if field_of(b, "processor") is not None]
    h.logical_cpus = len(procs) or os.cpu_count() or 1
    cores = {(field_of(b, "physical id"), field_of(b, "core id")) for b in procs}
    h.cores = len(cores) if procs and None not in {c[1] for c in cores} else h.logical_cpus
    h.threads_per_core = max(1, h.logical_cpus // max(h.cores, 1))
    khz = _read(root, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") \
        or _read(root, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq")
    if khz and khz.strip().isdigit():
        h.mhz, h.mhz_source = int(khz.strip()) / 1000, "cpufreq cpuinfo_max_freq"
    else:
        mhz = field_of(first, "cpu MHz")
        if mhz:
            h.mhz, h.mhz_source = float(mhz), "/proc/cpuinfo cpu MHz"
    base = "/sys/devices/system/cpu/cpu0/cache"
    idx_dir = os.path.join(str(root), base.lstrip("/"))
    if os.path.isdir(idx_dir):
        for idx in sorted(os.listdir(idx_dir)):
            level = _read(root, f"{base}/{idx}/level")
            typ = (_read(root, f"{base}/{idx}/type") or "").strip()
            size = _size_bytes(_read(root, f"{base}/{idx}/size") or "")
            if not level or not size or typ == "Instruction":
                continue
            shared = _cpu_list_len(_read(root, f"{base}/{idx}/shared_cpu_list") or "0")
            h.caches.append({"level": int(level), "type": typ, "bytes": size, "shared_cpus": max(shared, 1)})
    mem = _read(root, "/proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", mem, re.MULTILINE)
    if m:
        h.memory_bytes = int(m.group(1)) * 1024
    h.machine = os.uname().machine if hasattr(os, "uname") else ""
    return h


#: catalog entries that describe a known host: (catalog name, rule on the detected CPU)
KNOWN_CPUS = [
    # the CI/dev VM: a 2-vCPU KVM slice of a Xeon that reports family 6, model 143/167 and AMX + AVX512-FP16
    ("host-cpu-xeon-2vcpu", lambda h: h.vendor == "GenuineIntel" and h.logical_cpus == 2 and h.family == 6
     and {"avx512f", "avx512_fp16", "amx_tile"} <= h.flags),
    ("epyc-9654", lambda h: "EPYC 9654" in h.model),
]


def match_cpu(host: HostCPU) -> str | None:
    """The catalog entry that describes ``host``, or None when no rule of :data:`KNOWN_CPUS` matches."""
    for name, rule in KNOWN_CPUS:
        if rule(host):
            return name
    return None


def slug(text: str) -> str:
    s = re.sub(r"\((r|tm)\)", "", text.lower())
    s = re.sub(r"\b(cpu|processor|with|radeon graphics)\b", " ", s)
    s = re.sub(r"@.*$", "", s)
    return re.sub(r"[^a-z0-9]+", "-", s).strip("-")[:40] or "unknown"


def measure_copy_bandwidth(nbytes: int = 256 * 2**20, threads: int | None = None, repeats: int = 5) -> dict:
    """Main-memory bandwidth of this machine: ``threads`` numpy copies of ``nbytes`` in all (beyond the
    caches), best of ``repeats``, read plus write counted. Returns {bytes_per_s, threads, nbytes, repeats}."""
    import threading

    import numpy as np

    threads = threads or len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per = max(nbytes // threads // 8, 1)
    src = [np.ones(per) for _ in range(threads)]
    dst = [np.empty(per) for _ in range(threads)]
    best = float("inf")
    for _ in range(repeats):
        ts = [threading.Thread(target=np.copyto, args=(d, s)) for d, s in zip(dst, src)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        best = min(best, time.perf_counter() - t0)
    moved = 2 * 8 * per * threads
    return {"bytes_per_s": moved / best, "threads": threads, "nbytes": 8 * per * threads, "repeats": repeats}


def _q(value: float, unit: str, digits: int = 4) -> str:
    from hwmodels.format import format_quantity

    return format_quantity(value, unit, digits)


def _bin_bytes(n: int) -> str:
    """Cache sizes exactly, in the binary units /sys reports them in (32 KiB, 2 MiB)."""
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= f and n % f == 0:
            return f"{n // f} {unit}"
    return f"{n} B"


def starting_cpu_chip(host: HostCPU, copy: dict, name: str | None = None) -> dict:
    """A hardware file (plain data) for a CPU no catalog entry describes, from what was detected and
    measured; the ``source`` list says for each field whether it was detected, measured, derived or
    assumed. GEMMs run on the vector unit (no matrix unit is listed)."""
    name = name or f"host-cpu-{slug(host.model)}-{host.logical_cpus}cpu"
    ghz = (host.mhz or 2000.0) / 1000
    lanes32 = host.vector_bits // 32
    fma_units = 2
    fp32 = host.cores * ghz * 1e9 * 2 * lanes32 * fma_units
    bf16 = fp32 * (2 if {"avx512_bf16", "bf16"} & host.flags else 1)
    fp16 = fp32 * (2 if {"avx512_fp16", "fphp"} & host.flags else 1)
    vbytes = host.vector_bits // 8
    sources = [
        f"detected: {host.describe()} (/proc/cpuinfo, /sys/devices/system/cpu); ISA flags {', '.join(host.isa)}",
        f"detected: clock {ghz:.3g} GHz ({host.mhz_source or 'not reported: 2 GHz assumed'})",
        f"derived: vector peaks = {host.cores} cores x {ghz:.3g} GHz x 2 (FMA) x {lanes32} fp32 lanes "
        f"({host.vector_bits}-bit) x {fma_units} FMA units (assumed); bf16/fp16 at 2x fp32 where the ISA has "
        "native bf16/fp16 arithmetic, else at the fp32 rate; fp64 at half",
        f"measured: main memory bandwidth {_q(copy['bytes_per_s'], 'bandwidth')} (numpy copy of "
        f"{_q(copy['nbytes'], 'bytes')} on {copy['threads']} threads, best of {copy['repeats']}, read + write counted)",
        f"derived: cache bandwidths = bytes per clock x clock x cores ({2 * vbytes} B/clk L1 (two vector loads), "
        f"{vbytes} B/clk L2, 16 B/clk last level: assumed, replace by measurement)",
        "written by llmsim measure as a starting point: refine with llmsim calibrate MEASURED.csv --hw THIS_FILE",
    ]
    memory = []
    per_level = {1: 2 * vbytes, 2: vbytes}
    for c in sorted(host.caches, key=lambda c: c["level"]):
        per_core = c["shared_cpus"] <= host.threads_per_core
        bw = per_level.get(c["level"], 16) * ghz * 1e9 * host.cores
        lv = {"name": f"l{c['level']}", "kind": "cache", "capacity": _bin_bytes(c["bytes"])}
        if per_core:
            lv["per"] = "core"
        lv["bandwidth"] = _q(bw, "bandwidth")
        memory.append(lv)
    if host.memory_bytes:
        sources.append(f"detected: memory {_q(host.memory_bytes, 'bytes')} (/proc/meminfo MemTotal)")
    memory.append({"name": "dram", "kind": "dram", "capacity": _q(host.memory_bytes or 16e9, "bytes"),
                   "bandwidth": _q(copy["bytes_per_s"], "bandwidth")})
    return {
        "version": 1, "kind": "chip", "name": name, "class": "cpu", "calibration": "class-default",
        "hypothetical": False,
        "description": f"Starting file for this host, written by llmsim measure: {host.describe()}. Peaks are "
                       "derived from the ISA and the clock, the DRAM bandwidth is measured; cache bandwidths are "
                       "assumptions. Calibrate before trusting predictions.",
        "source": sources,
        "clock": _q(ghz * 1e9, "frequency"),
        "cores": host.cores,
        "compute": [{"kind": "vector", "peak": {"fp64": _q(fp32 / 2, "rate"), "fp32": _q(fp32, "rate"),
                                                "bf16": _q(bf16, "rate"), "fp16": _q(fp16, "rate")}}],
        "memory": memory,
    }


@dataclass
class HostGPU:
    name: str
    memory_bytes: float
    sms: int
    capability: tuple
    l2_bytes: float | None = None


def detect_gpu(torch, index: int = 0) -> HostGPU:
    """Device properties of CUDA device ``index`` through ``torch`` (the module, or a fake with
    ``cuda.get_device_properties``)."""
    p = torch.cuda.get_device_properties(index)
    l2 = getattr(p, "L2_cache_size", None)
    return HostGPU(name=p.name, memory_bytes=float(p.total_memory), sms=int(p.multi_processor_count),
                   capability=(int(p.major), int(p.minor)), l2_bytes=float(l2) if l2 else None)


def starting_gpu_chip(gpu: HostGPU, copy_bytes_per_s: float, gemm: dict, name: str | None = None) -> dict:
    """A hardware file for a GPU no catalog entry describes: memory, SMs and L2 detected, HBM
    bandwidth measured (a device copy), matrix peaks measured (the best GEMM rate per dtype: a lower
    bound of the datasheet peak, so the matrix efficiency starts at 1 and calibrate refines it).

    ``gemm``: {dtype: (flop_per_s, 'how it was measured')}."""
    name = name or f"gpu-{slug(gpu.name)}"
    peaks = {dt: _q(v, "rate") for dt, (v, _) in gemm.items()}
    sources = [
        f"detected: {gpu.name}, compute capability {gpu.capability[0]}.{gpu.capability[1]}, {gpu.sms} SMs, "
        f"{_q(gpu.memory_bytes, 'bytes')} (torch.cuda.get_device_properties)",
        f"measured: HBM bandwidth {_q(copy_bytes_per_s, 'bandwidth')} (device-to-device copy, read + write counted)",
        *[f"measured: {dt} matrix rate {_q(v, 'rate')} ({how}); a lower bound of the peak" for dt, (v, how) in
          gemm.items()],
        "written by llmsim measure as a starting point: refine with llmsim calibrate MEASURED.csv --hw THIS_FILE",
    ]
    memory = []
    if gpu.l2_bytes:
        sources.append(f"detected: L2 {_q(gpu.l2_bytes, 'bytes')}; its bandwidth assumed 3x the HBM's")
        memory.append({"name": "l2", "kind": "cache", "capacity": _bin_bytes(int(gpu.l2_bytes)),
                       "bandwidth": _q(3 * copy_bytes_per_s, "bandwidth")})
    memory.append({"name": "hbm", "kind": "dram", "capacity": _q(gpu.memory_bytes, "bytes"),
                   "bandwidth": _q(copy_bytes_per_s, "bandwidth")})
    # the engine needs an fp32 rate (softmax, norms): the measured fp32 GEMM rate where there is one, else
    # assumed at 1/16 of the fastest 16-bit matrix rate (A100: 19.5 of 312 TFLOP/s; H100 SXM: 67 of 989)
    if "fp32" in gemm:
        fp32 = gemm["fp32"][0]
        sources.append("measured: fp32 vector rate taken as the fp32 GEMM rate")
    else:
        fp32 = max((v for dt, (v, _) in gemm.items() if dt in ("bf16", "fp16")), default=1e12) / 16
        sources.append(f"assumed: fp32 vector rate {_q(fp32, 'rate')} = 1/16 of the 16-bit matrix rate "
                       "(the A100 and H100 SXM datasheet ratio)")
    return {
        "version": 1, "kind": "chip", "name": name, "class": "gpu-hbm", "calibration": "class-default",
        "hypothetical": False,
        "description": f"Starting file for {gpu.name}, written by llmsim measure from torch's device properties "
                       "and short measurements. Calibrate before trusting predictions.",
        "source": sources,
        "cores": gpu.sms,
        "compute": [{"kind": "matrix", "peak": peaks}, {"kind": "vector", "peak": {"fp32": _q(fp32, "rate")}}],
        "memory": memory,
    }


def write_chip(data: dict, path: str | Path) -> Path:
    """Write a chip file and check it loads (a SpecError names what is wrong)."""
    import yaml

    from hwmodels.loader import load_hardware

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("# " + data["description"] + "\n" + yaml.safe_dump(data, sort_keys=False, width=110))
    load_hardware(str(p))
    return p


# ---------------------------------------------------------------------------------------------
# what `llmsim measure` labels its rows with


def _in_catalog(name: str) -> bool:
    from hwmodels.errors import SpecError
    from hwmodels.loader import resolve

    try:
        resolve(name)
        return True
    except SpecError:
        return False


def starting_file_path(out_csv: str | None, name: str) -> Path:
    """Where the starting chip file goes: beside the measured CSV, named after the chip (a hardware
    file's name must equal its file stem: ``out/host.csv`` -> ``out/<name>.yaml``)."""
    if out_csv:
        return Path(out_csv).parent / f"{name}.yaml"
    return Path(f"{name}.yaml")


def hardware_for_cpu(out_csv: str | None, write: bool = True, log=print, root: str | Path = "/",
                     copy: dict | None = None) -> str:
    """The hardware name for rows measured on this CPU: its catalog entry, or (no entry matches)
    the path of a starting chip file written from what was detected and measured."""
    host = detect_cpu(root)
    name = match_cpu(host)
    if name is not None:
        log(f"host: {host.describe()}: catalog entry {name}")
        return name
    log(f"host: {host.describe()}: no catalog entry describes this CPU")
    chip_name = f"host-cpu-{slug(host.model)}-{host.logical_cpus}cpu"
    path = starting_file_path(out_csv, chip_name)
    if not write:
        log(f"a measuring run writes a starting chip file {path} and labels the rows with it")
        return str(path)
    copy = copy or measure_copy_bandwidth()
    write_chip(starting_cpu_chip(host, copy, name=chip_name), path)
    log(f"wrote {path}: a starting chip file (detected cores, ISA, caches; measured DRAM bandwidth "
        f"{_q(copy['bytes_per_s'], 'bandwidth')}); the rows are labelled with it. Refine it with "
        f"`llmsim calibrate {out_csv or 'MEASURED.csv'} --hw {path} --out calibrated.yaml`")
    return str(path)


def measure_gpu(torch, dtypes=("bf16", "fp16"), n: int = 8192, copy_bytes: int = 2**30) -> tuple[float, dict]:
    """(HBM bytes/s by a device copy, {dtype: (FLOP/s, how)} by n x n x n GEMMs), best of 5, CUDA events."""
    dev = "cuda"

    def timed(fn, reps=5):
        best = float("inf")
        fn()
        torch.cuda.synchronize()
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            best = min(best, a.elapsed_time(b) / 1e3)
        return best

    src = torch.empty(copy_bytes // 2, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    bw = src.numel() * 2 / timed(lambda: dst.copy_(src))
    out = {}
    tdt = {"bf16": torch.bfloat16, "fp16": torch.float16}
    for dt in dtypes:
        x = torch.randn(n, n, device=dev, dtype=tdt[dt])
        y = torch.randn(n, n, device=dev, dtype=tdt[dt])
        t = timed(lambda: torch.matmul(x, y))
        out[dt] = (2.0 * n**3 / t, f"torch.matmul {n}x{n}x{n}, best of 5, CUDA events")
    return bw, out


def hardware_for_gpu(ctx: dict, out_csv: str | None, write: bool = True, log=print, measure=measure_gpu) -> str:
    """The hardware name for rows measured on CUDA device 0: its catalog entry, or (unknown GPU)
    the path of a starting chip file from torch's device properties and short measurements."""
    from sim.validation.measure.suites import catalog_name_for_gpu

    name = catalog_name_for_gpu(ctx["device_name"])
    if _in_catalog(name):
        return name
    gpu = detect_gpu(ctx["torch"])
    log(f"GPU: {gpu.name} ({gpu.sms} SMs, {_q(gpu.memory_bytes, 'bytes')}): no catalog entry describes it")
    chip_name = f"gpu-{slug(gpu.name)}"
    path = starting_file_path(out_csv, chip_name)
    if not write:
        log(f"a measuring run writes a starting chip file {path} and labels the rows with it")
        return str(path)
    bw, gemm = measure(ctx["torch"])
    write_chip(starting_gpu_chip(gpu, bw, gemm, name=chip_name), path)
    log(f"wrote {path}: a starting chip file (detected memory, SMs, L2; measured HBM bandwidth and GEMM rates); "
        f"refine it with `llmsim calibrate {out_csv or 'MEASURED.csv'} --hw {path} --out calibrated.yaml`")
    return str(path)
