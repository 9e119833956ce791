"""The torch kernels (CPU or CUDA). torch is imported lazily, by ``import_torch``, never at module level."""

from __future__ import annotations

from sim.validation.measure.timing import Kernel, MeasureError, Settings, _ncopies

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
