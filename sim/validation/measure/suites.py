"""What a suite measures: the case list of each device and suite, with their shapes and settings."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from hwmodels.dtype import get_dtype
from hwmodels.errors import SpecError
from sim.validation.environment import cache_bytes
from sim.validation.measure.csvformat import COLLECTIVE_OPS
from sim.validation.measure.numpy_kernels import (
    _np_attention,
    _np_elementwise,
    _np_gemm,
    _np_memcpy,
    _np_rmsnorm,
)
from sim.validation.measure.timing import Kernel, Settings
from sim.validation.measure.torch_kernels import (
    _import_torch,
    _torch_attention,
    _torch_elementwise,
    _torch_gemm,
    _torch_memcpy,
    _torch_norm,
)

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


@dataclass
class Case:
    """One row to measure: its CSV columns, and how to build the kernel."""

    group: str
    row: dict
    build: Callable[[], Kernel]


SUITES = ("tiny", "quick", "full")


def _settings_for(device: str, suite: str) -> Settings:
    if suite == "tiny":
        return Settings(target_s=0.0, min_reps=3, max_reps=3, warmup=1, cold_bytes=0, copy_budget=1 << 20)
    if device == "cuda":
        return Settings(target_s=0.1, min_reps=10, max_reps=200, warmup=2, min_sample_s=1e-3,
                        cold_bytes=256 << 20, copy_budget=4 << 30)

    l3 = cache_bytes(3) or (32 << 20)
    return Settings(target_s=0.2, min_reps=5, max_reps=200, warmup=1,
                    cold_bytes=int(min(2 * l3, 1 << 30)), copy_budget=1 << 30)


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


def _flops_bytes(row: dict) -> tuple[float | None, float | None]:
    """Nominal work of a row (for the gflop_per_s / gbyte_per_s convenience columns)."""
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
