"""Convert Vidur's published GPU profiles into llmsim's per-kernel CSV format.

Source: microsoft/vidur, commit 7d47513, folder data/profiling/ (MIT licence). Cite Agrawal et al.,
"Vidur: A Large-Scale Simulation Framework for LLM Inference", MLSys 2024.

    python -m sim.validation.vidur SRC_DIR OUT_DIR

SRC_DIR holds ``compute/<gpu>/<org>/<model>/mlp.csv`` and ``network/<system>/{all_reduce,send_recv}.csv``.
OUT_DIR receives ``<gpu>.csv.gz`` per GPU and ``network.csv.gz`` (gzip with a fixed mtime, so that
the same input gives byte-identical files). The mapping of every Vidur op is in MAPPING below and
in sim/validation/data/vidur/README.md.

How Vidur measured (vidur/profiling/mlp/mlp_impl.py and collectives/ at that commit): one
transformer layer in fp16 through sarathi's kernels on one GPU, the shapes of one tensor-parallel
shard; each op timed 20 times, stats in milliseconds. The default profile method (mlp/main.py
``--profile_method record_function``) builds the layer 20 times into one forward pass under the PyTorch
profiler (utils/record_function_tracer.py): an op's time is the sum of the Kineto ``dur`` of the GPU kernels
whose launches (cuda_runtime events) fall inside the op's record_function annotation, i.e. CUPTI kernel
start to end on the GPU: no CPU launch cost, no gap between kernels. So these rows are priced as GPU time
(:func:`scoring_options`: ``cuda_graphs``, the chip's ``kernel_fixed_time`` without its ``launch_overhead``).
Collectives (collectives/collectives_wrapper.py, ``profile_method="kineto"``): the NCCL kernel's Kineto time,
the median of 11 launches per sample, 3 samples.

Every time in Vidur's files is a whole microsecond (or the half of a median of two), compute and network alike
(all 26,364 network medians, minima and maxima are integers): the Kineto of Vidur's runs wrote each kernel's
GPU duration as integer microseconds, truncated (pytorch/kineto libkineto/src/CuptiActivity.h
``duration()`` = ``nsToUs(activity_.end - activity_.start)``; include/ITraceActivity.h ``nsToUs``: ``return ns /
1000``, "No rounding!"). A truncated duration is on average 0.5 us short of the true one, so the converter
writes the unbiased estimate: Vidur's value + 0.5 us for each kernel the timed op ran
(:func:`kineto_unbiased_s`, the one place this rule lives; ``kineto_truncation_s`` says what was added). Every
scorer of these rows (the validation report, ``llmsim calibrate``, ``gemm_score``, ``vidur_streaming``) reads
``measured_time_s`` as written and adds nothing.
"""

from __future__ import annotations

import argparse
import gzip
import io
import math
import os
import sys

import numpy as np
import pandas as pd

from hwmodels.errors import Problem, SpecError
from hwmodels.stack import RowKernels
from hwmodels import csvtext
from sim.validation.measure import shape_id

__all__ = [
    "GPU_HARDWARE",
    "KINETO_TRUNCATION_S",
    "kineto_unbiased_s",
    "ROW_KERNELS",
    "MAPPING",
    "MODEL_FACTS",
    "NETWORK_SYSTEMS",
    "convert_compute_file",
    "convert_network_file",
    "convert_tree",
    "scoring_options",
]

#: the mean time a truncation to whole microseconds removes from a kernel duration (Kineto; module docstring):
#: half a microsecond, for a duration whose sub-microsecond part is spread evenly
KINETO_TRUNCATION_S = 0.5e-6


def kineto_unbiased_s(truncated_s, kernels=1):
    """The unbiased estimate of a GPU time that Kineto wrote truncated to whole microseconds: ``truncated_s``
    (seconds; a number or an array) + :data:`KINETO_TRUNCATION_S` for each of the ``kernels`` durations summed
    into it. The median of durations truncated alike is the truncated median (truncation keeps the order), so
    Vidur's medians take the same correction."""
    return truncated_s + kernels * KINETO_TRUNCATION_S


#: Vidur GPU folder -> llmsim catalog chip name ('a40' has no catalog entry yet)
GPU_HARDWARE = {"a100": "a100-sxm", "h100": "h100-sxm", "a40": "a40"}

#: Vidur network folder -> llmsim system name (multi-node rows get a '-<n>nodes' suffix)
NETWORK_SYSTEMS = {
    "a100_dgx": "hgx-a100-8",
    "h100_dgx": "hgx-h100-8",
    "a100_pairwise_nvlink": "a100-pairwise-nvlink",
    "h100_pairwise_nvlink": "h100-pairwise-nvlink",
    "a40_pairwise_nvlink": "a40-pairwise-nvlink",
}

#: what the CSV columns do not say, from Vidur's data/model_configs/<model>.yml
MODEL_FACTS = {
    "microsoft/phi-2": {"norm": "layernorm", "use_bias": True, "qkv_bias": True, "post_attn_norm": False, "act": "gelu"},
    "Qwen/Qwen-72B": {"norm": "rmsnorm", "use_bias": False, "qkv_bias": True, "post_attn_norm": True, "act": "silu"},
}
_DEFAULT_FACTS = {"norm": "rmsnorm", "use_bias": False, "qkv_bias": False, "post_attn_norm": True, "act": "silu"}

#: Vidur op -> (llmsim op, how exactly the llmsim op describes what was timed)
MAPPING = {
    "emb": ("embedding", "exact"),  # F.embedding alone (the masking kernels sit outside its timer): T rows of E
    "input_layernorm": ("norm", "exact"),
    "attn_pre_proj": ("gemm", "exact"),  # fused QKV projection
    "attn_rope": ("rope", "approx"),  # in-place rotary on q and k, one block per token; cos/sin cache reads not counted
    "attn_post_proj": ("gemm", "exact"),
    "post_attention_layernorm": ("norm", "exact"),
    "mlp_up_proj": ("gemm", "exact"),  # gate and up fused when gated
    "mlp_act": ("elementwise", "exact"),  # SiluAndMul (fused) or GELU
    "mlp_down_proj": ("gemm", "exact"),
    "add": ("elementwise", "exact"),  # residual add (phi-2: attn + mlp + residual, two kernels)
}

#: The row-per-block kernels Vidur timed (sarathi-serve's csrc at the profiled commit, unchanged since its
#: 2024-05-09 release commit 8d8c986: layernorm_kernels.cu rms_norm_kernel, activation_kernels.cu
#: silu_and_mul_kernel, pos_encoding_kernels.cu rotary_embedding_kernel; the same code as vLLM's custom CUDA ops
#: at commits 0112cf2 / 00ccbd4): one thread block per token row, one scalar element (the rotary kernel: one
#: (x, y) pair) per thread per loop trip, no vector loads. (op kind, threads per block at most, elements per
#: thread per loop trip, main-memory round trips per loop trip, chip-level-cache round trips per loop trip,
#: instructions per loop trip), read from the source and from the machine code nvcc 13.0 -O3 makes of it for
#: sm_80 and sm_90 (ptxas and nvdisasm; kernels instantiated for fp16, not built into this project):
#: rms_norm_kernel (block min(hidden, 1024)): a first loop reads x (1 main-memory trip, 9 instructions), a second
#: re-reads x from L2 while the weight comes from L1 (1 cache trip, 15 instructions; 8 + 14 on sm_90);
#: silu_and_mul_kernel (block min(d, 1024)): loads x and y back to back, one round trip (43 instructions executed:
#: expf and the IEEE division's reciprocal; 46 in the loop's code on sm_80, 45 on sm_90, with the call to the
#: division's slow path that is never taken); rotary_embedding_kernel (block min(heads x rot_dim / 2,
#: 512)): loads cos, x, y, sin back to back, one round trip (49 instructions: the head and offset of a pair by
#: integer division). The kernels use 14-20, 22-24 and 31 registers (ptxas, sm_80 / sm_90), at most 32, so an
#: sm_80/sm_90 SM holds 2048 of their threads (CUDA C++ Programming Guide, compute capabilities: 2048 resident
#: threads and 64 K registers per SM): resident_threads 2048, two 1024-thread blocks per SM. The training folds
#: show it (a reading, not a fit): the norm's and SiluAndMul's times step up at 2 x the SM count rows (A100 216
#: -> 232 rows, H100 264 -> 272), not at 1 x. Each SM issues 4 warp instructions per clock (4 warp schedulers).
#: The loop bodies by instruction class (hwmodels/isa.py; nvdisasm of the same sm_80 / sm_90 builds, the slow path
#: of the IEEE division, never taken, left out): rms_norm 9 + 15 instructions on sm_80 (integer 5 + 8, memory 1 + 3,
#: fp16 1 + 2, fp32 1 + 1, branch 1 + 1), 8 + 14 on sm_90 (one IMAD fewer in each pass); silu_and_mul 43 on both
#: (integer 19, fp32 12, fp16 3, special 2: MUFU.EX2 and MUFU.RCP, memory 3, branch 4); rotary 49 on both
#: (integer 39: the pair's head and offset by an integer division and 64-bit addresses, memory 6: cos, x, y, sin
#: and two stores, fp16 3, branch 1). RMSNorm's block reduction (__syncthreads between its passes) is a block
#: barrier; SiluAndMul and rotary have none.
_NORM = {"ampere": {"integer": 13, "memory": 4, "fp16": 3, "fp32": 2, "branch": 2},
         "hopper": {"integer": 11, "memory": 4, "fp16": 3, "fp32": 2, "branch": 2}}
_SILU = {"integer": 19, "fp32": 12, "fp16": 3, "special": 2, "memory": 3, "branch": 4}
_ROPE = {"integer": 39, "memory": 6, "fp16": 3, "branch": 1}


def _mix(by_arch: dict) -> tuple:
    return tuple((a, tuple((c, float(n)) for c, n in m.items())) for a, m in by_arch.items())


ROW_KERNELS = RowKernels(kinds=(("norm", 1024, 1, 1, 1, 24, _mix(_NORM), True),
                                ("elementwise", 1024, 1, 1, 0, 43, _mix({"ampere": _SILU, "hopper": _SILU}), False),
                                ("rope", 512, 2, 1, 0, 49, _mix({"ampere": _ROPE, "hopper": _ROPE}), False)),
                         resident_threads=2048, issue_per_clock=4)


def scoring_options(rows, options):
    """``options`` for pricing measured ``rows``: where every row comes from Vidur's profiles (``source``
    'vidur:...'), what Vidur timed: GPU kernel durations (``cuda_graphs``: each kernel's GPU-side fixed time,
    no CPU launch; see the module docstring) and, where ``options`` names no row kernels, the kernels Vidur
    ran (:data:`ROW_KERNELS`)."""
    if not hasattr(options, "row_kernels") or "source" not in getattr(rows, "columns", ()) or not len(rows):
        return options
    from dataclasses import replace

    src = rows["source"].astype(str)
    if src.str.startswith(GPU_TIMED_SOURCES).all() and not options.cuda_graphs:
        # llmsim's own CUDA runs time CUDA-graph replays: GPU-side time, no CPU launch (docs/measurement.md)
        return replace(options, cuda_graphs=True)
    if not src.str.startswith("vidur:").all():
        return options
    return replace(options, cuda_graphs=True,
                   row_kernels=ROW_KERNELS if options.row_kernels is None else options.row_kernels)


#: ``source`` prefixes of measured rows timed on the GPU alone (CUDA-graph replays between CUDA events): llmsim's
#: own ``llmsim measure --device cuda`` rows and the GPU probes' attention rows
GPU_TIMED_SOURCES = ("llmsim-measure:cuda:", "llmsim-probes:")


DTYPE = "fp16"
FP16_BYTES = 2
COMPUTE_REPS = 20  # ACTIVE_STEPS of vidur/profiling/mlp/mlp_wrapper.py
NETWORK_REPS = 3  # ACTIVE_STEPS of vidur/profiling/collectives/collectives_wrapper.py

_CONFIG_COLS = ["n_head", "n_kv_head", "n_embd", "n_expanded_embd", "use_gated_mlp", "num_tokens",
                "num_tensor_parallel_workers"]

COMPUTE_COLUMNS = ["hardware", "op", "dtype", "m", "n", "k", "bytes", "numel", "inputs", "outputs",
                   "flops_per_element", "fresh_bytes", "measured_time_s", "spread", "reps", "source", "name", "variant",
                   "mapping", "bias", "model", "tp", "num_tokens", "shape_id", "fresh_span_bytes", "kineto_truncation_s", "numel_q"]
NETWORK_COLUMNS = ["hardware", "op", "dtype", "bytes", "num_devices", "measured_time_s", "spread", "reps",
                   "source", "name", "devices_per_node", "num_nodes", "shape_id", "kineto_truncation_s"]


def _bool(v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    return str(v).strip().lower() in ("true", "1")


def _numbers(df: pd.DataFrame, path: str, lines, counts, times) -> None:
    """Check a Vidur CSV cell by cell: each of ``counts`` a whole number >= 1 and each of ``times`` a finite number
    >= 0, else a SpecError naming the file, each bad cell's line (``lines``: each row's first line) and column and
    what was expected (at most 10 problems); the checked columns are left as numbers in ``df``."""
    problems = []
    for cols, whole, lo in ((counts, True, 1.0), (times, False, 0.0)):
        for c in cols:
            if c not in df.columns:
                continue
            v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(v) | (v < lo) | ((v % 1 != 0) if whole else False)
            for i in np.flatnonzero(bad)[:max(0, 10 - len(problems))]:
                x = df[c].iloc[i]
                got = repr(x) if isinstance(x, str) else ("an empty cell" if pd.isna(x) else str(getattr(x, "item", lambda: x)()))
                problems.append(Problem(f"expected a {'whole ' if whole else ''}number >= {lo:g}, got {got}",
                                        file=path, line=int(lines[i]), col=list(df.columns).index(c) + 1, path=c))
            df[c] = v
    if problems:
        raise SpecError(problems)


def _stats(df: pd.DataFrame, op: str, kernels: int = 1):
    """(median seconds, spread) of a Vidur op that ran ``kernels`` kernels: the median as
    :func:`kineto_unbiased_s` estimates it (Vidur's truncated milliseconds + 0.5 us a kernel); spread = (max -
    min) / that median."""
    med = kineto_unbiased_s(df[f"time_stats.{op}.median"].astype(float) / 1000.0, kernels)
    lo = df[f"time_stats.{op}.min"].astype(float) / 1000.0
    hi = df[f"time_stats.{op}.max"].astype(float) / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = (hi - lo) / med
    return med, spread


def convert_compute_file(path: str, *, gpu: str, model: str, source: str) -> pd.DataFrame:
    """One Vidur ``mlp.csv`` -> per-kernel rows (one per op per input row)."""
    df, lines = csvtext.read_csv(path, "a Vidur mlp.csv", _CONFIG_COLS, rows="one row per profiled shape")
    _numbers(df, path, lines, [c for c in _CONFIG_COLS if c != "use_gated_mlp"],
             [c for c in df.columns if c.startswith("time_stats.")])
    facts = MODEL_FACTS.get(model, _DEFAULT_FACTS)
    hardware = GPU_HARDWARE.get(gpu, gpu)

    H = df["n_head"].astype(int)
    KV = df["n_kv_head"].astype(int)
    E = df["n_embd"].astype(int)
    I = df["n_expanded_embd"].astype(int)
    T = df["num_tokens"].astype(int)
    TP = df["num_tensor_parallel_workers"].astype(int)
    gated = df["use_gated_mlp"].map(_bool)
    problems = []
    if ((E % H) != 0).any():
        problems.append("n_embd not a multiple of n_head")
    for name, s in (("n_head", H), ("n_kv_head", KV), ("n_embd", E), ("n_expanded_embd", I)):
        if ((s % TP) != 0).any():
            problems.append(f"{name} not divisible by num_tensor_parallel_workers")
    if problems:
        raise SpecError(problems, file=path)
    hd = E // H

    base = pd.DataFrame({"model": model, "tp": TP, "num_tokens": T})
    frames = []

    def emit(op_name: str, cols: dict, variant=None, bias=None, kernels: int = 1):
        """``kernels``: the kernels the op's timer wraps (one each but phi-2's two adds), whose truncated
        Kineto durations Vidur summed."""
        if f"time_stats.{op_name}.median" not in df.columns:
            return
        llm_op, mapping = MAPPING[op_name]
        t, spread = _stats(df, op_name, kernels)
        f = base.copy()
        f["hardware"] = hardware
        f["op"] = llm_op
        f["dtype"] = DTYPE
        for c, v in cols.items():
            f[c] = v
        f["measured_time_s"] = t
        f["kineto_truncation_s"] = kernels * KINETO_TRUNCATION_S
        f["spread"] = spread
        f["reps"] = COMPUTE_REPS
        f["source"] = source
        f["name"] = op_name
        f["variant"] = variant
        f["mapping"] = mapping
        f["bias"] = bias
        frames.append(f)

    norm = facts["norm"]
    emit("emb", {"m": T, "n": E}, variant="embedding gather")
    # fresh_bytes: the input bytes the kernel just before wrote (GPTModel.forward / GPTBlock in
    # vidur/profiling/mlp/mlp_impl.py): the embedding's output, the (untimed) first residual add's, the
    # QKV projection's q and k (rotated in place), the up projection's, the down projection's
    # fresh_span_bytes of a norm: a flat streaming kernel wrote its input (the embedding gather, the residual add),
    # and that kernel's reads went through the cache between its writes too: all its bytes (the cost model's count:
    # the gather reads the T table rows it writes; the add reads two tensors and writes one)
    emit("input_layernorm", {"m": T, "n": E, "fresh_bytes": T * E * FP16_BYTES,
                             "fresh_span_bytes": 2 * T * E * FP16_BYTES}, variant=norm)
    emit("attn_pre_proj", {"m": T, "n": (H + 2 * KV) * hd // TP, "k": E}, variant="qkv", bias=facts["qkv_bias"])
    # m = T on the rotary and SiluAndMul rows: sarathi's kernels run one thread block per token row
    # fresh_span_bytes: the QKV projection wrote q, k and v; rope reads q and k, v lies between them
    # numel_q: q's elements, the kernel's first loop (its block sized on q's pairs, then a loop over k's)
    emit("attn_rope", {"m": T, "numel": T * (H + KV) * hd // TP, "numel_q": T * H * hd // TP, "flops_per_element": 3,
                       "fresh_bytes": T * (H + KV) * hd // TP * FP16_BYTES,
                       "fresh_span_bytes": T * (H + 2 * KV) * hd // TP * FP16_BYTES},
         variant="rope q+k in place")
    emit("attn_post_proj", {"m": T, "n": E, "k": H * hd // TP}, variant="o_proj", bias=facts["use_bias"])
    if facts["post_attn_norm"]:
        emit("post_attention_layernorm", {"m": T, "n": E, "fresh_bytes": T * E * FP16_BYTES,
                                          "fresh_span_bytes": 3 * T * E * FP16_BYTES}, variant=norm)
    up_n = np.where(gated, 2 * I // TP, I // TP)
    emit("mlp_up_proj", {"m": T, "n": up_n, "k": E}, variant=np.where(gated, "gate_up", "up"),
         bias=facts["use_bias"])
    if gated.all():
        emit("mlp_act", {"m": T, "numel": T * I // TP, "inputs": 2, "outputs": 1, "flops_per_element": 5,
                         "fresh_bytes": 2 * T * I // TP * FP16_BYTES},
             variant="silu_and_mul")
    elif not gated.any():
        # no m: torch.nn.GELU (mlp_impl.py MLP, not gated) is PyTorch's vectorized elementwise kernel, a stream,
        # not one of sarathi's row-per-block kernels
        emit("mlp_act", {"numel": T * I // TP, "inputs": 1, "outputs": 1, "flops_per_element": 8,
                         "fresh_bytes": T * I // TP * FP16_BYTES},
             variant="gelu")
    else:  # pragma: no cover - Vidur files hold one model each
        raise SpecError("mixed use_gated_mlp values in one file", file=path)
    emit("mlp_down_proj", {"m": T, "n": E, "k": I // TP}, variant="down", bias=facts["use_bias"])
    if facts["post_attn_norm"]:
        emit("add", {"numel": T * E, "inputs": 2, "outputs": 1, "flops_per_element": 1,
                     "fresh_bytes": T * E * FP16_BYTES}, variant="residual add")
    else:  # attn_out + mlp_out + residual: two eager adds
        # each of the two adds reads one tensor the kernel before it wrote (the MLP's output, the first sum)
        emit("add", {"numel": T * E, "inputs": 4, "outputs": 2, "flops_per_element": 2,
                     "fresh_bytes": 2 * T * E * FP16_BYTES},
             variant="attn + mlp + residual (2 kernels)", kernels=2)
    out = pd.concat(frames, ignore_index=True)
    return _finish(out, COMPUTE_COLUMNS)


def convert_network_file(path: str, *, system: str, source: str) -> pd.DataFrame:
    """One Vidur ``all_reduce.csv`` / ``send_recv.csv`` -> per-kernel rows.

    Vidur's ``size`` column is already in BYTES: collectives_wrapper.py records ``size * 2`` for a
    buffer of ``size`` fp16 elements, and Vidur's predictor divides it by 2 * embedding_dim to get
    tokens. Bandwidths check out only that way (DGX-A100 send/recv at 228 GB/s rather than 457 GB/s,
    which would exceed NVLink 3's 300 GB/s per direction).
    """
    df, lines = csvtext.read_csv(path, "a Vidur collective CSV", ("num_workers", "size", "collective", "devices_per_node"),
                                 rows="one row per profiled size")
    _numbers(df, path, lines, ("num_workers", "size", "devices_per_node"),
             [c for c in df.columns if c.startswith("time_stats.")])
    frames = []
    for coll, llm_op in (("all_reduce", "allreduce"), ("send_recv", "sendrecv")):
        sub = df[df["collective"] == coll]
        if sub.empty:
            continue
        t, spread = _stats(sub, coll)
        nw = sub["num_workers"].astype(int)
        dpn = sub["devices_per_node"].astype(int)
        nodes = np.ceil(nw / dpn).astype(int)
        sysname = NETWORK_SYSTEMS.get(system, system.replace("_", "-"))
        f = pd.DataFrame({
            "hardware": np.where(nodes > 1, sysname + "-" + nodes.astype(str) + "nodes", sysname),
            "op": llm_op, "dtype": DTYPE, "bytes": sub["size"].astype(np.int64), "num_devices": nw,
            "measured_time_s": t, "kineto_truncation_s": KINETO_TRUNCATION_S, "spread": spread,
            "reps": NETWORK_REPS, "source": source,
            "name": coll, "devices_per_node": dpn, "num_nodes": nodes,
        })
        frames.append(f)
    if not frames:
        raise SpecError("no all_reduce or send_recv rows", file=path)
    return _finish(pd.concat(frames, ignore_index=True), NETWORK_COLUMNS)


def _finish(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    for c in columns:
        if c not in df.columns:
            df[c] = None
    df = df[columns].copy()
    df["shape_id"] = [shape_id(r) for r in df.to_dict("records")]
    return df


def _walk_compute(src: str):
    root = os.path.join(src, "compute")
    for gpu in sorted(os.listdir(root)):
        for dirpath, _dirs, files in sorted(os.walk(os.path.join(root, gpu))):
            if "mlp.csv" in files:
                model = os.path.relpath(dirpath, os.path.join(root, gpu)).replace(os.sep, "/")
                yield gpu, model, os.path.join(dirpath, "mlp.csv")


def convert_tree(src: str) -> dict[str, pd.DataFrame]:
    """All of SRC_DIR -> {'a100': frame, 'h100': frame, 'a40': frame, 'network': frame}."""
    if not os.path.isdir(os.path.join(src, "compute")) and not os.path.isdir(os.path.join(src, "network")):
        raise SpecError("expected compute/ and network/ folders (Vidur data/profiling/)", file=src)
    out: dict[str, list[pd.DataFrame]] = {}
    if os.path.isdir(os.path.join(src, "compute")):
        for gpu, model, path in _walk_compute(src):
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            out.setdefault(gpu, []).append(convert_compute_file(path, gpu=gpu, model=model, source=f"vidur:{rel}"))
    net = os.path.join(src, "network")
    if os.path.isdir(net):
        for system in sorted(os.listdir(net)):
            for fname in ("all_reduce.csv", "send_recv.csv"):
                path = os.path.join(net, system, fname)
                if os.path.exists(path):
                    rel = os.path.relpath(path, src).replace(os.sep, "/")
                    out.setdefault("network", []).append(
                        convert_network_file(path, system=system, source=f"vidur:{rel}"))
    return {k: pd.concat(v, ignore_index=True) for k, v in out.items()}


def _fmt_frame(df: pd.DataFrame) -> str:
    """CSV text with times to 7 significant digits (Vidur's whole microseconds + 0.5 us stay exact up to 1 s) and
    integers without '.0'."""
    df = df.copy()
    for c in ("measured_time_s", "kineto_truncation_s"):
        df[c] = df[c].map(lambda v: "" if pd.isna(v) else f"{v:.7g}")
    for c in ("spread",):
        df[c] = df[c].map(lambda v: "" if pd.isna(v) or not math.isfinite(v) else f"{v:.4g}")
    for c in ("m", "n", "k", "bytes", "numel", "inputs", "outputs", "fresh_bytes", "fresh_span_bytes", "num_devices",
              "reps", "tp",
              "num_tokens",
              "devices_per_node", "num_nodes"):
        if c in df.columns:
            df[c] = df[c].map(lambda v: "" if v is None or pd.isna(v) else str(int(v)))
    if "flops_per_element" in df.columns:
        df["flops_per_element"] = df["flops_per_element"].map(
            lambda v: "" if v is None or pd.isna(v) else (str(int(v)) if float(v).is_integer() else f"{v:g}"))
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def hw_file(ap: argparse.ArgumentParser, path: str | None, chips: list):
    """The chip file a Vidur scorer's ``--hw`` names, loaded (None without one), or 2 after printing its problems
    (file, field, expected) to stderr, the scorer's exit status; ``--hw`` prices one chip's rows, so ``chips`` must
    name exactly one (else argparse's usage error)."""
    if not path:
        return None
    if len(chips) != 1:
        ap.error("--hw needs exactly one --chip (or --derive)")
    from hwmodels.loader import load_hardware

    try:
        return load_hardware(path)
    except SpecError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return 2


def write_gz(df: pd.DataFrame, path: str) -> None:
    """Deterministic gzip (mtime 0, no file name)."""
    data = _fmt_frame(df).encode("utf-8")
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.validation.vidur", description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="Vidur data/profiling folder (compute/ and network/)")
    ap.add_argument("out", help="output folder for <gpu>.csv.gz and network.csv.gz")
    args = ap.parse_args(argv)
    try:
        frames = convert_tree(args.src)
    except SpecError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    for name, df in sorted(frames.items()):
        path = os.path.join(args.out, f"{name}.csv.gz")
        write_gz(df, path)
        print(f"{path}: {len(df)} rows, {df['shape_id'].nunique()} shapes, {os.path.getsize(path)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
