"""The kernel facts of timed attention kernels that no stack runs (sim/validation/data/published/attention_kernels.yaml),
and the one place a row's ``kernel_profile`` becomes cost options (:func:`profile_options`, read by
``sim.ops.predict_ops``). Its own module so that sim.ops reads it without importing the scorers (no import cycle)."""

from __future__ import annotations

import functools
import os
from dataclasses import replace

from hwmodels.errors import SpecError

ATTENTION_KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "published", "attention_kernels.yaml")

#: the kernels attention_kernels.yaml describes (a row's ``kernel_profile`` names one): prefill facts, decode facts
PREFILL_PROFILES = ("triton_tutorial_flash_v2", "tk", "fa2", "torch_fa2", "cudnn_sdpa")
DECODE_PROFILES = ("fa3_upstream", "fa2", "torch_fa2", "cudnn_sdpa", "flashinfer")


def _attention_kernels(path: str) -> dict:
    """``attention_kernels.yaml`` validated (SpecError naming file, line and field if it is malformed)."""
    from hwmodels.schema import F, Number, Struct, validate
    from hwmodels.stack import DECODE, PREFILL
    from hwmodels.yamlio import load_marked

    schema = Struct({"version": F(Number(integer=True, ge=1, le=1), True),
                     "kernels": F(Struct({k: F(PREFILL) for k in PREFILL_PROFILES}, name="kernels"), True),
                     "decode_kernels": F(Struct({k: F(DECODE) for k in DECODE_PROFILES}, name="decode_kernels"))},
                    name="attention_kernels")
    with open(path, encoding="utf-8") as f:
        doc = load_marked(f.read(), path)[0]
    v, problems = validate(doc, schema)
    if problems or v is None:
        raise SpecError(problems)
    return v


def attention_kernel_profiles(path: str = ATTENTION_KERNELS) -> dict:
    """The prefill-kernel facts of published kernels no stack runs (``attention_kernels.yaml``): name ->
    hwmodels.stack.PrefillKernel; SpecError naming file, line and field if the file is malformed."""
    return _profiles(path)[0]


def decode_kernel_profiles(path: str = ATTENTION_KERNELS) -> dict:
    """The decode-kernel facts of published paged decode kernels that run differently from the default
    stack's (``attention_kernels.yaml`` decode_kernels): name -> hwmodels.stack.DecodeKernel."""
    return _profiles(path)[1]


def _profiles(path: str) -> tuple:
    """(prefill facts, decode facts) of ``path``, read once per file version (path, modification time)."""
    return _profiles_at(os.path.abspath(path), os.path.getmtime(path) if os.path.exists(path) else 0.0)


@functools.lru_cache(maxsize=8)
def _profiles_at(path: str, mtime: float) -> tuple:
    from hwmodels.stack import DecodeKernel, PrefillKernel

    doc = _attention_kernels(path)
    return ({k: PrefillKernel.from_doc(d) for k, d in doc["kernels"].items()},
            {k: DecodeKernel.from_doc(d) for k, d in (doc.get("decode_kernels") or {}).items()})


def profile_options(options, name: str, path: str = ATTENTION_KERNELS):
    """``options`` for a row timed on the kernel ``name`` of attention_kernels.yaml (a row's ``kernel_profile``):
    its prefill facts as ``prefill_kernel`` and its decode facts as ``decode_kernel`` where the file gives them
    (the others unchanged). The one place a row's kernel profile becomes cost options (``sim.ops.predict_ops``
    reads the column). ValueError naming the column and the known names for a name the file lacks."""
    prefill, decode = _profiles(path)
    if name not in prefill and name not in decode:
        known = ", ".join(sorted(set(prefill) | set(decode)))
        raise ValueError(f"column kernel_profile: unknown kernel {name!r} (expected one of {known}; "
                         f"sim/validation/data/published/attention_kernels.yaml)")
    return replace(options, prefill_kernel=prefill.get(name, options.prefill_kernel),
                   decode_kernel=decode.get(name, options.decode_kernel))


