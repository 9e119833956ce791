"""Import a PyTorch profiler (Kineto) Chrome trace as per-kernel CSV rows.

    from sim.validation.kineto import import_kineto
    imp = import_kineto("trace.json")      # record_shapes=True traces give shapes
    imp.kernels                            # one row per launching op (llmsim per-kernel format)
    imp.steps                              # one row per ProfilerStep#N

What a trace holds (``torch.profiler.profile(..., record_shapes=True).export_chrome_trace``):
``traceEvents`` with ``ph='X'`` complete events: ``cat='cpu_op'`` (aten ops, with ``args['Input
Dims']``, ``args['Input type']``, ``args['Concrete Inputs']`` and ``args['External id']``),
``cat='cuda_runtime'`` (cudaLaunchKernel with ``args['correlation']``), ``cat='kernel'`` (GPU
kernels with ``args['correlation']`` and usually ``args['External id']``), ``cat='gpu_memcpy'``,
``cat='user_annotation'`` (``ProfilerStep#N``), and ``ph='s'/'f'`` flow events of ``cat='ac2g'``
linking a launch to its kernel by ``id`` = correlation.

A kernel is tied to the cpu_op that launched it by, in order: its External id; its correlation ->
the runtime launch -> that launch's External id, or the innermost cpu_op around the launch on the
same thread; an ac2g flow (when the kernel has no correlation arg). Then the innermost op around
it that llmsim knows decides the llmsim op:

- aten::mm/addmm/bmm/baddbmm/matmul/linear/_scaled_mm -> gemm (m, n, k[, batch] from Input Dims)
- aten::scaled_dot_product_attention and its _flash/_efficient/_cudnn variants, flash_attn ops ->
  attention (batch, heads, kv_heads, head_dim, seqlens; causal from Concrete Inputs; phase decode
  when seqlen_q == 1; kernel=flash for fused kernels)
- aten::add/sub/mul/div/silu/gelu/relu/sigmoid/tanh/exp/neg (and in-place forms) -> elementwise
- aten::rms_norm/layer_norm/native_layer_norm/_fused_rms_norm -> norm
- aten::copy_ with a kernel, device-to-device Memcpy -> memcpy (bytes = read + write)
- NCCL kernels under record_param_comms -> allreduce/allgather/reducescatter/alltoall/sendrecv

All kernels that one op instance launched become ONE row (durations summed; ``kernels`` counts
them; ``name`` joins their names), because llmsim predicts the op. Kernels with no known op are
kept with ``op=''`` and an ``unmapped`` reason (they are written to the CSV only on request).
A trace without GPU kernels (a CPU run) is read in 'cpu' mode: the innermost known cpu_ops are
the rows and their CPU durations the times.
"""

from __future__ import annotations

import bisect
import gzip
import json
import math
import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hwmodels.errors import SpecError
from sim.validation.measure import CSV_COLUMNS, catalog_name_for_gpu, shape_id

__all__ = ["TORCH_DTYPES", "KinetoImport", "aggregate", "import_kineto", "write_csv"]

TORCH_DTYPES = {
    "float": "fp32", "c10::float": "fp32", "float32": "fp32", "c10::bfloat16": "bf16", "bfloat16": "bf16",
    "c10::half": "fp16", "half": "fp16", "float16": "fp16", "double": "fp64",
    "c10::float8_e4m3fn": "fp8_e4m3", "c10::float8_e5m2": "fp8_e5m2", "c10::float8_e4m3fnuz": "fp8_e4m3",
    "signed char": "int8", "c10::qint8": "int8",
}
_DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp64": 8, "fp8_e4m3": 1, "fp8_e5m2": 1, "int8": 1}

GEMM_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
            "aten::_scaled_mm", "aten::_addmm_activation"}
ATTN_OPS = {"aten::scaled_dot_product_attention", "aten::_scaled_dot_product_flash_attention",
            "aten::_scaled_dot_product_efficient_attention", "aten::_scaled_dot_product_cudnn_attention",
            "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_flash_attention_forward",
            "aten::_efficient_attention_forward", "flash_attn::_flash_attn_forward",
            "flash_attn::flash_attn_func", "FlashAttnFunc"}
#: elementwise ops and the flops counted per output element
ELEMENTWISE_OPS = {"add": 1, "sub": 1, "mul": 1, "div": 1, "neg": 1, "relu": 1, "silu": 4, "gelu": 8,
                   "sigmoid": 3, "tanh": 1, "exp": 1, "rsqrt": 1, "pow": 1, "where": 1, "clamp": 1}
NORM_OPS = {"aten::rms_norm", "aten::_fused_rms_norm", "aten::layer_norm", "aten::native_layer_norm",
            "aten::group_norm"}
COPY_OPS = {"aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous"}
COMM_OPS = {"record_param_comms", "c10d::allreduce_", "c10d::allgather_", "c10d::_allgather_base_",
            "c10d::reduce_scatter_", "c10d::_reduce_scatter_base_", "c10d::alltoall_base_", "c10d::send",
            "c10d::recv_"}
_NCCL_OPS = [("allreduce", "allreduce"), ("all_reduce", "allreduce"), ("allgather", "allgather"),
             ("all_gather", "allgather"), ("reducescatter", "reducescatter"), ("reduce_scatter", "reducescatter"),
             ("alltoall", "alltoall"), ("all_to_all", "alltoall"), ("sendrecv", "sendrecv"), ("send", "sendrecv"),
             ("recv", "sendrecv")]
_KERNEL_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}
_RUNTIME_CATS = {"cuda_runtime", "cuda_driver", "runtime", "hip_runtime"}
_CPU_CATS = {"cpu_op", "operator", "user_annotation"}


def _elementwise_name(name: str) -> str | None:
    m = re.fullmatch(r"aten::(\w+?)_?", name)
    if not m:
        return None
    base = m.group(1)
    return base if base in ELEMENTWISE_OPS else None


@dataclass
class KinetoImport:
    kernels: pd.DataFrame  # per-kernel rows (mapped and unmapped)
    steps: pd.DataFrame  # per-step summary
    mode: str  # 'gpu' or 'cpu'
    hardware: str


# --------------------------------------------------------------------------------------------


def _load(path: str) -> dict:
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise SpecError("no such trace file", file=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError) as e:
        raise SpecError(f"not a JSON Chrome trace: {type(e).__name__}: {e}", file=path) from None
    if isinstance(data, list):
        data = {"traceEvents": data}
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        raise SpecError("not a Kineto/Chrome trace: no 'traceEvents' list", file=path)
    return data


class _Thread:
    """cpu_ops of one (pid, tid), sorted, with their nesting."""

    def __init__(self, ops: list[dict]):
        # sort by start, longer first, so parents precede children
        self.ops = sorted(ops, key=lambda e: (float(e["ts"]), -float(e.get("dur", 0))))
        self.starts = [float(e["ts"]) for e in self.ops]
        self.parent: list[int | None] = []
        stack: list[int] = []
        for i, e in enumerate(self.ops):
            ts = float(e["ts"])
            while stack and _end(self.ops[stack[-1]]) < ts:
                stack.pop()
            self.parent.append(stack[-1] if stack else None)
            stack.append(i)

    def innermost_at(self, ts: float) -> int | None:
        i = bisect.bisect_right(self.starts, ts) - 1
        # walk back to the latest op still open at ts (ancestors contain it)
        while i is not None and i >= 0:
            if _end(self.ops[i]) >= ts:
                return i
            i = self.parent[i]
        return None

    def chain(self, i: int | None):
        while i is not None:
            yield i
            i = self.parent[i]


def _end(e: dict) -> float:
    return float(e["ts"]) + float(e.get("dur", 0) or 0)


def _dims(e: dict) -> list:
    d = (e.get("args") or {}).get("Input Dims") or []
    return [x if isinstance(x, list) else [] for x in d]


def _types(e: dict) -> list[str]:
    return [str(t) for t in ((e.get("args") or {}).get("Input type") or [])]


def _concrete(e: dict) -> list:
    return list((e.get("args") or {}).get("Concrete Inputs") or [])


def _dtype_of(types: list[str], i: int = 0) -> str:
    for t in types[i:] + types[:i]:
        dt = TORCH_DTYPES.get(t.strip().lower())
        if dt:
            return dt
    return ""


def _prod(xs) -> int:
    return int(np.prod(xs)) if xs else 1


def _gemm_shape(name: str, dims: list) -> dict | None:
    """m, n, k (and batch) from the Input Dims of a GEMM op; None if they don't fit."""
    try:
        if name in ("aten::mm", "aten::_scaled_mm"):
            a, b = dims[0], dims[1]
            return {"m": a[0], "k": a[1], "n": b[1]}
        if name in ("aten::addmm", "aten::_addmm_activation"):
            a, b = dims[1], dims[2]
            return {"m": a[0], "k": a[1], "n": b[1]}
        if name == "aten::bmm":
            a, b = dims[0], dims[1]
            return {"batch": a[0], "m": a[1], "k": a[2], "n": b[2]}
        if name == "aten::baddbmm":
            a, b = dims[1], dims[2]
            return {"batch": a[0], "m": a[1], "k": a[2], "n": b[2]}
        if name == "aten::linear":
            x, w = dims[0], dims[1]
            return {"m": _prod(x[:-1]), "k": x[-1], "n": w[0]}
        if name == "aten::matmul":
            a, b = dims[0], dims[1]
            if len(b) == 2:
                return {"m": _prod(a[:-1]), "k": a[-1], "n": b[1]}
            if len(a) >= 3 and len(b) >= 3:
                return {"batch": _prod(a[:-2]), "m": a[-2], "k": a[-1], "n": b[-1]}
    except (IndexError, TypeError):
        return None
    return None


def _attention_shape(name: str, e: dict) -> dict | None:
    dims = _dims(e)
    conc = _concrete(e)
    try:
        q, k = dims[0], dims[1]
        if name.startswith("flash_attn") or name == "FlashAttnFunc" or name in (
                "aten::_flash_attention_forward", "aten::_efficient_attention_forward"):
            # (batch, seqlen, heads, head_dim) layout
            b, sq, h, d = q
            skv, kvh = k[1], k[2]
        else:  # SDPA: (batch, heads, seqlen, head_dim)
            b, h, sq, d = q[0], q[-3], q[-2], q[-1]
            b = _prod(q[:-3])
            kvh, skv = k[-3], k[-2]
    except (IndexError, TypeError, ValueError):
        return None
    causal = None
    # positional is_causal: sdpa(q,k,v,attn_mask,dropout_p,is_causal,...), flash variants (q,k,v,dropout_p,is_causal,...)
    pos = {"aten::scaled_dot_product_attention": 5, "aten::_scaled_dot_product_flash_attention": 4,
           "aten::_scaled_dot_product_flash_attention_for_cpu": 4,
           "aten::_scaled_dot_product_efficient_attention": 5,
           "aten::_scaled_dot_product_cudnn_attention": 6, "aten::_flash_attention_forward": 8,
           "flash_attn::_flash_attn_forward": 5}.get(name)
    if pos is not None and len(conc) > pos and str(conc[pos]).strip() != "":
        causal = str(conc[pos]).strip().lower() in ("true", "1")
    assumed = causal is None
    if causal is None:
        causal = sq > 1 and sq == skv
    return {"phase": "decode" if sq == 1 else "prefill", "batch": b, "heads": h, "kv_heads": kvh, "head_dim": d,
                "seqlen_q": sq, "seqlen_kv": skv, "causal": bool(causal), "_assumed_causal": assumed}


def _elementwise_shape(base: str, e: dict) -> dict:
    dims = _dims(e)
    tensors = [d for d in dims if d]  # scalars have []
    shapes = [tuple(d) for d in tensors]
    try:
        out = np.broadcast_shapes(*shapes) if shapes else ()
    except ValueError:
        out = max(shapes, key=_prod) if shapes else ()
    numel = _prod(out)
    inputs = sum(1 for s in shapes if _prod(s) > 1) or 1
    return {"numel": numel, "inputs": inputs, "outputs": 1, "flops_per_element": ELEMENTWISE_OPS[base]}


def _classify_op(e: dict) -> tuple[str, dict] | None:
    """(llmsim op, shape columns) of a cpu_op, or None if it is not one llmsim knows."""
    name = e.get("name", "")
    if name in GEMM_OPS:
        sh = _gemm_shape(name, _dims(e))
        if sh:
            return "gemm", sh
        return None
    if name in ATTN_OPS:
        sh = _attention_shape(name, e)
        return ("attention", sh) if sh else None
    base = _elementwise_name(name)
    if base:
        return "elementwise", _elementwise_shape(base, e)
    if name in NORM_OPS:
        d = _dims(e)
        if d and d[0]:
            return "norm", {"m": _prod(d[0][:-1]), "n": d[0][-1], "_norm": ("rmsnorm" if "rms" in name else "layernorm")}
        return None
    if name in COPY_OPS:
        d = _dims(e)
        types = _types(e)
        if d and d[0]:
            numel = _prod(d[0])
            b_dst = _DTYPE_BYTES.get(_dtype_of(types, 0), 0)
            b_src = _DTYPE_BYTES.get(_dtype_of(types, 1), b_dst)
            if b_dst:
                return "memcpy", {"bytes": numel * (b_dst + b_src)}
        return None
    if name in COMM_OPS:
        return "collective", {}
    return None


def _nccl_op(kernel_name: str) -> str | None:
    s = kernel_name.lower()
    if "nccl" not in s:
        return None
    for key, op in _NCCL_OPS:
        if key in s.replace("kernel_", "_"):
            return op
    return None


def _comm_shape(e: dict, op: str) -> dict | None:
    a = e.get("args") or {}
    group = a.get("Group size")
    in_n, out_n = a.get("In msg nelems"), a.get("Out msg nelems")
    dt = TORCH_DTYPES.get(str(a.get("dtype", "")).strip().lower()) or {"Float": "fp32", "BFloat16": "bf16",
                                                                       "Half": "fp16"}.get(str(a.get("dtype")), "")
    if not group or in_n is None or not dt:
        return None
    el = _DTYPE_BYTES[dt]
    n = {"allgather": out_n, "reducescatter": in_n}.get(op, in_n)
    return {"bytes": int(n) * el, "num_devices": int(group), "_dtype": dt}


# --------------------------------------------------------------------------------------------


class _Trace:
    """The CPU side of a trace, indexed to find which op launched each kernel and in which step."""

    def __init__(self, events: list[dict], cpu_ops: list[dict], runtime: list[dict], steps: list[dict]):
        by_thread: dict[tuple, list] = {}
        for e in cpu_ops:
            by_thread.setdefault((e.get("pid"), e.get("tid")), []).append(e)
        self.threads: dict[tuple, _Thread] = {key: _Thread(ops) for key, ops in by_thread.items()}
        self.ext_index: dict = {}
        for key, th in self.threads.items():
            for i, e in enumerate(th.ops):
                ext = (e.get("args") or {}).get("External id")
                if ext is not None:
                    self.ext_index.setdefault(ext, (key, i))
        self.rt_by_corr = {}
        for r in runtime:
            c = (r.get("args") or {}).get("correlation")
            if c is not None:
                self.rt_by_corr[c] = r
        # ac2g flows: finish event at the kernel (pid, tid, ts) -> id -> start event (the launch)
        self.flow_s, self.flow_f = {}, {}
        for e in events:
            if e.get("cat") == "ac2g" or e.get("name") == "ac2g":
                if e.get("ph") == "s":
                    self.flow_s[e.get("id")] = e
                elif e.get("ph") == "f":
                    self.flow_f[(e.get("pid"), e.get("tid"), float(e.get("ts", -1)))] = e.get("id")
        self.step_bounds = [(int(re.sub(r"\D", "", e["name"]) or -1), float(e["ts"]), _end(e)) for e in steps]

    def launch_site(self, k: dict):
        """(thread key, op index or None, launch cpu ts) of the op that launched kernel k."""
        a = k.get("args") or {}
        corr = a.get("correlation")
        if corr is None:
            corr = self.flow_f.get((k.get("pid"), k.get("tid"), float(k["ts"])))
        r = self.rt_by_corr.get(corr) if corr is not None else None
        ext = a.get("External id")
        if ext is None and r is not None:
            ext = (r.get("args") or {}).get("External id")
        if ext is not None and ext in self.ext_index:
            key, i = self.ext_index[ext]
            return key, i, float(r["ts"]) if r is not None else float(self.threads[key].ops[i]["ts"])
        if r is None and corr is not None and corr in self.flow_s:
            s = self.flow_s[corr]
            r = {"pid": s.get("pid"), "tid": s.get("tid"), "ts": s.get("ts")}
        if r is not None:
            key = (r.get("pid"), r.get("tid"))
            th = self.threads.get(key)
            if th is not None:
                return key, th.innermost_at(float(r["ts"])), float(r["ts"])
            return None, None, float(r["ts"])
        return None, None, None

    def step_of(self, ts):
        if ts is None:
            return None
        for num, a, b in self.step_bounds:
            if a <= ts <= b:
                return num
        return None

    def known_ancestor(self, key, i):
        """The known op that owns a kernel launched inside op i: the outermost attention or norm
        around it if any (sdpa -> _scaled_dot_product_flash_attention -> _flash_attention_forward
        is one attention), else the innermost known op (mm under matmul under linear); a
        collective climbs to the op that carries the message size."""
        th = self.threads[key]
        # composite ops first: the outermost attention or norm around the kernel owns it (an SDPA
        # run as bmm + softmax kernels is one naive attention; a decomposed rms_norm one norm)
        composite = None
        for j in th.chain(i):
            c = _classify_op(th.ops[j])
            if c is not None and c[0] in ("attention", "norm"):
                composite = (j, c)
        if composite is not None:
            return composite
        for j in th.chain(i):
            c = _classify_op(th.ops[j])
            if c is None:
                continue
            if c[0] == "collective":
                for up in th.chain(th.parent[j]):
                    cu = _classify_op(th.ops[up])
                    if cu is None or cu[0] != c[0]:
                        break
                    if c[0] == "collective" and "Group size" in (th.ops[j].get("args") or {}):
                        break
                    j, c = up, cu
            return j, c
        return None, None


def _memcpy_row(tr: _Trace, k: dict, base: dict, key, i) -> dict:
    """The row of a device memcpy (a dtod copy is a memcpy op; host<->device copies are not mapped)."""
    a = k.get("args") or {}
    nb = a.get("bytes")
    if "dtod" in base["name"].lower().replace(" ", "") and nb:
        dt = ""
        if key is not None and i is not None:
            dt = _dtype_of(_types(tr.threads[key].ops[i]))
        return {**base, "op": "memcpy", "dtype": dt, "bytes": 2 * int(nb), "unmapped": ""}
    return {**base, "op": "", "unmapped": "host<->device copy" if nb else "memcpy without bytes"}


def _gpu_rows(tr: _Trace, kernels: list[dict], rel: str) -> list[dict]:
    """One row per kernel, or per op instance where several kernels run one known op."""
    rows: list[dict] = []
    groups: dict[tuple, dict] = {}
    for k in sorted(kernels, key=lambda e: float(e["ts"])):
        kname = str(k.get("name", ""))
        dur = float(k.get("dur", 0) or 0) * 1e-6
        key, i, launch_ts = tr.launch_site(k)
        step = tr.step_of(launch_ts) if launch_ts is not None else tr.step_of(float(k["ts"]))
        base = {"name": kname, "measured_time_s": dur, "reps": 1, "kernels": 1, "step": step, "ts_us": float(k["ts"]),
                "cpu_op": "", "source": f"kineto:{rel}"}
        cat = k.get("cat")
        if cat in ("gpu_memcpy", "gpu_memset") and key is not None and i is not None:
            base["cpu_op"] = tr.threads[key].ops[i]["name"]
        if cat == "gpu_memcpy":
            rows.append(_memcpy_row(tr, k, base, key, i))
            continue
        if cat == "gpu_memset":
            rows.append({**base, "op": "", "unmapped": "memset"})
            continue
        if key is None or i is None:
            rows.append({**base, "op": "", "unmapped": "no launching cpu_op found"})
            continue
        j, c = tr.known_ancestor(key, i)
        th = tr.threads[key]
        base["cpu_op"] = th.ops[i]["name"]
        if c is None:
            rows.append({**base, "op": "", "unmapped": f"op {th.ops[i]['name']} not mapped"})
            continue
        op, sh = c
        ev = th.ops[j]
        base["cpu_op"] = ev["name"]
        if op == "collective":
            nop = _nccl_op(kname)
            shc = None
            if nop:
                for jj in list(th.chain(i)):
                    shc = _comm_shape(th.ops[jj], nop)
                    if shc:
                        break
            if not shc:
                rows.append({**base, "op": "", "unmapped": "collective without message size"})
                continue
            op, sh = nop, shc
        elif _nccl_op(kname):
            rows.append({**base, "op": "", "unmapped": "NCCL kernel outside a known collective op"})
            continue
        gkey = (key, j)
        if gkey in groups:  # another kernel of the same op instance
            g = groups[gkey]
            g["measured_time_s"] += dur
            g["kernels"] += 1
            if kname not in g["name"].split(" + "):
                g["name"] += " + " + kname
            continue
        row = {**base, "op": op, "unmapped": ""}
        row.update(_finish_shape(op, sh, ev, kname))
        groups[gkey] = row
        rows.append(row)
    return rows


def _cpu_rows(tr: _Trace, rel: str) -> list[dict]:
    """CPU mode: one row per innermost known cpu_op."""
    rows: list[dict] = []
    for th in tr.threads.values():
        known = {}
        for i, e in enumerate(th.ops):
            c = _classify_op(e)
            if c is not None and c[0] != "collective":
                known[i] = c
        has_known_child = set()
        for i in known:
            for j in th.chain(th.parent[i]):
                if j in known:
                    has_known_child.add(j)
        for i, (op, sh) in known.items():
            if i in has_known_child:
                continue
            e = th.ops[i]
            row = {"name": e["name"], "measured_time_s": float(e.get("dur", 0) or 0) * 1e-6, "reps": 1, "kernels": 1,
                   "step": tr.step_of(float(e["ts"])), "ts_us": float(e["ts"]), "cpu_op": e["name"],
                   "source": f"kineto:{rel}", "op": op, "unmapped": ""}
            row.update(_finish_shape(op, sh, e, e["name"]))
            rows.append(row)
    return rows


def import_kineto(path: str, *, hardware: str | None = None, mode: str = "auto") -> KinetoImport:
    """Read a Kineto trace; see the module docstring for the mapping."""
    data = _load(path)
    events = [e for e in data["traceEvents"] if isinstance(e, dict)]
    X = [e for e in events if e.get("ph") == "X" and "ts" in e]
    kernels = [e for e in X if e.get("cat") in _KERNEL_CATS]
    cpu_ops = [e for e in X if e.get("cat") in ("cpu_op", "operator")]
    runtime = [e for e in X if e.get("cat") in _RUNTIME_CATS]
    steps = sorted([e for e in X if e.get("cat") in ("user_annotation", "cpu_op")
                    and str(e.get("name", "")).startswith("ProfilerStep#")], key=lambda e: float(e["ts"]))
    if mode == "auto":
        mode = "gpu" if kernels else "cpu"
    if hardware is None:
        props = data.get("deviceProperties") or []
        if mode == "gpu" and props and isinstance(props[0], dict) and props[0].get("name"):
            hardware = catalog_name_for_gpu(str(props[0]["name"]))
        else:
            hardware = "unknown-gpu" if mode == "gpu" else "unknown-cpu"
    rel = os.path.basename(path)
    tr = _Trace(events, cpu_ops, runtime, steps)
    rows = _gpu_rows(tr, kernels, rel) if mode == "gpu" else _cpu_rows(tr, rel)

    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=["hardware", "op", "name", "measured_time_s", "unmapped"])
    df["hardware"] = hardware
    for c in ("spread",):
        if c not in df.columns:
            df[c] = np.nan
    df["shape_id"] = [shape_id(r) if r.get("op") else "" for r in df.to_dict("records")]
    df = df.sort_values("ts_us", kind="stable").reset_index(drop=True) if "ts_us" in df.columns else df
    return KinetoImport(df, _steps_summary(df, steps, kernels if mode == "gpu" else cpu_ops), mode, hardware)


def _finish_shape(op: str, sh: dict, ev: dict, kname: str) -> dict:
    out = {k: v for k, v in sh.items() if not k.startswith("_")}
    dt = sh.get("_dtype") or _dtype_of(_types(ev))
    if op == "gemm" and ev.get("name") == "aten::_scaled_mm":
        dt = "fp8_e4m3" if "e5m2" not in " ".join(_types(ev)).lower() else "fp8_e5m2"
    out["dtype"] = dt
    if op == "gemm":
        out.setdefault("batch", 1)
    if op == "attention":
        low = (kname + " " + ev.get("name", "")).lower()
        fused = any(s in low for s in ("flash", "fmha", "efficient", "cudnn", "attention_kernel", "sdpa"))
        out["kernel"] = "flash" if fused else "naive"
        if sh.get("_assumed_causal"):
            out["variant"] = "causal assumed (no Concrete Inputs)"
    if op == "norm":
        out["variant"] = sh.get("_norm")
    return out


def _steps_summary(df: pd.DataFrame, steps: list[dict], timed: list[dict]) -> pd.DataFrame:
    cols = ["step", "wall_s", "kernel_time_s", "busy_s", "rows", "kernels", "unmapped_rows", "unmapped_time_s"]
    ops = ["gemm", "attention", "elementwise", "norm", "memcpy", "allreduce", "allgather", "reducescatter",
           "alltoall", "sendrecv"]
    if df.empty or "step" not in df.columns:
        return pd.DataFrame(columns=cols)
    out = []
    step_wall = {int(re.sub(r"\D", "", e["name"]) or -1): float(e.get("dur", 0)) * 1e-6 for e in steps}
    keys = sorted(df["step"].dropna().unique().tolist())
    if df["step"].isna().any():
        keys.append(None)
    for st in keys:
        sub = df[df["step"].isna()] if st is None else df[df["step"] == st]
        iv = sorted((r.ts_us, r.ts_us + r.measured_time_s * 1e6) for r in sub.itertuples())
        busy = 0.0
        cur_a = cur_b = None
        for a, b in iv:
            if cur_b is None or a > cur_b:
                if cur_b is not None:
                    busy += cur_b - cur_a
                cur_a, cur_b = a, b
            else:
                cur_b = max(cur_b, b)
        if cur_b is not None:
            busy += cur_b - cur_a
        mapped = sub["op"] != ""
        row = {"step": "unassigned" if st is None else int(st), "wall_s": step_wall.get(st, math.nan),
               "kernel_time_s": float(sub["measured_time_s"].sum()), "busy_s": busy * 1e-6,
               "rows": len(sub), "kernels": int(sub["kernels"].sum()),
               "unmapped_rows": int((~mapped).sum()), "unmapped_time_s": float(sub.loc[~mapped, "measured_time_s"].sum())}
        for op in ops:
            row[f"{op}_s"] = float(sub.loc[sub["op"] == op, "measured_time_s"].sum())
        out.append(row)
    return pd.DataFrame(out)


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (hardware, op, dtype, shape, kernel name): median time, spread over occurrences."""
    mapped = df[df["op"] != ""].copy()
    if mapped.empty:
        return mapped
    keys = ["hardware", "op", "dtype", "shape_id", "name"]
    rows = []
    for _, g in mapped.groupby(keys, sort=False, dropna=False):
        t = g["measured_time_s"].to_numpy(dtype=float)
        med = float(np.median(t))
        p10, p90 = np.percentile(t, [10, 90])
        r = g.iloc[0].to_dict()
        r.update(measured_time_s=med, spread=float((p90 - p10) / med) if med > 0 else math.nan, reps=len(t))
        rows.append(r)
    return pd.DataFrame(rows)


def write_csv(df: pd.DataFrame, path: str, include_unmapped: bool = False) -> None:
    """Write mapped rows in the per-kernel column order (extra columns after)."""
    if not include_unmapped and "op" in df.columns:
        df = df[df["op"] != ""]
    first = [c for c in CSV_COLUMNS if c in df.columns]
    rest = [c for c in ["kernels", "cpu_op", "step", "ts_us", "unmapped"] if c in df.columns and c not in first]
    rest += [c for c in df.columns if c not in first and c not in rest]
    out = df[first + rest].copy()
    for c in ("m", "n", "k", "batch", "heads", "kv_heads", "head_dim", "seqlen_q", "seqlen_kv", "bytes",
              "num_devices", "numel", "inputs", "outputs", "reps", "kernels"):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("Int64")
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    out.to_csv(path, index=False, float_format="%.6g")
