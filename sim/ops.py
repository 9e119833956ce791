"""Bulk per-kernel predictions (`llmsim ops`): one row per kernel in, one prediction per row out.

Input columns: ``hardware`` (catalog name or YAML path; a system for collectives), ``op`` (gemm,
attention, memcpy, allreduce, allgather, reducescatter, alltoall, sendrecv; also elementwise and
norm), ``dtype``, and the shape columns the op needs:

- gemm: ``m, n, k`` (optional ``batch``; optional ``out_dtype``: the dtype C is written in, default
  ``dtype``, e.g. bf16 for an fp8 x fp8 GEMM): A (m x k) x B (k x n) -> C (m x n), B read as weights;
- attention: ``phase`` (prefill|decode), ``batch, heads, kv_heads, head_dim, seqlen_q, seqlen_kv,
  causal`` (optional ``kernel``: flash|naive);
- memcpy: ``bytes`` (bytes moved: read plus write);
- elementwise: ``numel`` (optional ``inputs``=1, ``outputs``=1, ``flops_per_element``=1; optional ``m``:
  the token rows of a kernel that runs one thread block per row, as vLLM's activation kernels; without
  it a flat elementwise kernel such as a residual add);
- norm: ``m, n`` (rows x hidden; reads x and the weight, writes y; 4 FLOPs per element; one block per row);
- embedding: ``m, n`` (a row gather: m rows of n elements looked up by index in a table, as PyTorch's
  embedding / index_select; reads the m table rows, writes m x n; priced at the main memory's
  ``gather`` access-pattern fraction);
- rope: ``m, numel`` (rotary embedding: numel elements of q and k rotated in place over m token rows,
  one thread block per row as vLLM's kernel; optional ``flops_per_element``=3; optional ``numel_q``: q's
  elements among them, which the kernel walks in a first loop sized on them before k's in a second, default
  0: one loop over all; the cos/sin cache reads are not counted);
- collectives: ``bytes`` (each rank's buffer), ``num_devices``.

Streaming rows (memcpy, elementwise, norm, embedding, rope) take an optional ``fresh_bytes``: the bytes of
their input that the kernel run just before them wrote; they are read from the chip-level cache (L2)
when still there (inter-kernel residency, docs/cost-model.md); and ``fresh_span_bytes``: all the bytes that
kernel wrote, the fresh ones among them (rope's q and k of a QKV output; default: ``fresh_bytes``).

Optional ``kernel_profile``: the name of a timed kernel in sim/validation/data/published/attention_kernels.yaml
(``torch_fa2``, ``cudnn_sdpa``, ``fa3_upstream``, ...): an attention row naming one is priced with that kernel's
prefill facts (``kernels``) and decode facts (``decode_kernels``) in place of the stack's (the kernel that was
timed); an empty cell keeps the stack's; an unknown name is the row's error.

Output: the input columns plus ``time_s``, ``achieved_tflops``, ``achieved_bytes_per_s``,
``bound``, ``cache_bytes`` (bytes the op moves through the chip-level cache: a GEMM's tile loads, a
fresh input read from L2) and ``error`` (a bad row gets its reason there; the others still run). Extra input
columns pass through unchanged. Each row becomes the same Op the graph builder makes and is priced
by the shared cost model; identical rows are priced once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace

import numpy as np
import pandas as pd

from hwmodels.chip import System
from hwmodels.dtype import DTypeError, get_dtype
from hwmodels.errors import SpecError
from hwmodels.loader import load_hardware
from hwmodels.stack import load_stack
from sim.cost import CostModel, CostOptions
from sim.validation.measure.csvformat import COLLECTIVE_OPS, OP_COLUMNS, max_of  # noqa: F401 (COLLECTIVE_OPS re-exported)
from workloads.graph import (
    SOFTMAX_EXPS,
    STREAMING,
    SOFTMAX_FLOPS,
    AttentionShape,
    CollectiveShape,
    GemmShape,
    Op,
    TensorIO,
    _attn_stats,
)

# the op names and required shape columns are the kernel CSV format's own (docs/measurement.md)
REQUIRED = OP_COLUMNS
OPS = tuple(OP_COLUMNS)
OUTPUT_COLUMNS = ("time_s", "achieved_tflops", "achieved_bytes_per_s", "bound", "cache_bytes", "error")
NORM_FLOPS_PER_ELEMENT = 4


class RowError(ValueError):
    pass


def _num(row, col, integer=True, positive=True, default=None):
    v = row.get(col, None)
    if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
        if default is not None:
            return default
        raise RowError(f"missing value in column '{col}'")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise RowError(f"column '{col}': {v!r} is not a number") from None
    if not math.isfinite(f):
        raise RowError(f"column '{col}': {v!r} is not finite")
    if abs(f) > max_of(col):
        raise RowError(f"column '{col}': {v!r} is over the largest allowed, {max_of(col):,}")
    if integer:
        if not f.is_integer():
            raise RowError(f"column '{col}': expected an integer, got {v!r}")
        f = int(f)
    if positive and f <= 0:
        raise RowError(f"column '{col}': must be greater than zero, got {v!r}")
    return f


def _bool(row, col, default=None):
    v = row.get(col, default)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
        if default is not None:
            return default
        raise RowError(f"missing value in column '{col}'")
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "1.0"):
        return True
    if s in ("0", "false", "no", "0.0"):
        return False
    raise RowError(f"column '{col}': expected true/false, got {v!r}")


def _out_dtype(row, d):
    """The dtype a GEMM row writes C in: its optional ``out_dtype`` column (an fp8 x fp8 GEMM that writes
    bf16), else the operands' ``dtype``."""
    v = row.get("out_dtype", None)
    if v is None or (isinstance(v, float) and math.isnan(v)) or not str(v).strip():
        return d
    try:
        return get_dtype(str(v).strip())
    except DTypeError as e:
        raise RowError(f"column 'out_dtype': {e}") from None


def row_to_op(row: dict):
    """The Op a measured kernel row describes (the same classes the graph builder uses), with the optional
    ``fresh_bytes`` of a streaming row (its input bytes the kernel just before it wrote, at most all it reads)
    and ``fresh_span_bytes`` (all the bytes that kernel wrote, at least ``fresh_bytes``; default: those)."""
    o = _row_op(row)
    v = row.get("fresh_bytes", None)
    if o.kind in STREAMING and v is not None and not (isinstance(v, float) and math.isnan(v)) \
            and not (isinstance(v, str) and not v.strip()):
        f = _num(row, "fresh_bytes", integer=False, positive=False)
        if f < 0:
            raise RowError(f"column 'fresh_bytes': must be zero or more, got {v!r}")
        read = sum(t.bytes for t in o.tensors if t.role == "activation" and not t.write)
        o = replace(o, fresh_bytes=min(f, read))
        s = row.get("fresh_span_bytes", None)
        if s is not None and not (isinstance(s, float) and math.isnan(s)) and not (isinstance(s, str) and not s.strip()):
            span = _num(row, "fresh_span_bytes", integer=False, positive=False)
            if span < f:
                raise RowError(f"column 'fresh_span_bytes': the bytes the previous kernel wrote in all, at least "
                               f"fresh_bytes ({f:g}); got {s!r}")
            o = replace(o, fresh_span=span)
    return o


def _row_op(row: dict):
    op = str(row.get("op", "")).strip().lower()
    if op not in OPS:
        raise RowError(f"unknown op {row.get('op')!r}; known: {', '.join(OPS)}")
    missing = [c for c in REQUIRED[op] if c not in row]
    if missing:
        raise RowError(f"op {op} needs column(s) {', '.join(missing)}")
    dt = str(row.get("dtype", "bf16")).strip()
    if dt in ("", "nan") and op != "memcpy":  # a memcpy is its bytes: a blank dtype is allowed there
        raise RowError("missing value in column 'dtype'")
    dt = dt or "bf16"
    try:
        d = get_dtype(dt)
    except DTypeError as e:
        raise RowError(str(e)) from None
    b = d.bytes
    if op == "gemm":
        m, n, k = _num(row, "m"), _num(row, "n"), _num(row, "k")
        batch = _num(row, "batch", default=1)
        o = _out_dtype(row, d)
        tensors = (TensorIO("a", "activation", d.name, m * k * b * batch, False),
                   TensorIO("b", "weight", d.name, k * n * b * batch, False),
                   TensorIO("c", "activation", o.name, m * n * o.bytes * batch, True))
        return Op(f"gemm {m}x{n}x{k}", "gemm", 1, 2.0 * m * n * k * batch, 0.0, d.name, tensors,
                  gemm=GemmShape(m, n, k, batch))
    if op == "attention":
        phase = str(row["phase"]).strip().lower()
        if phase not in ("prefill", "decode"):
            raise RowError(f"column 'phase': expected prefill or decode, got {row['phase']!r}")
        bsz, h, kvh, hd = (_num(row, c) for c in ("batch", "heads", "kv_heads", "head_dim"))
        sq, skv = _num(row, "seqlen_q"), _num(row, "seqlen_kv")
        causal = _bool(row, "causal")
        if h % kvh:
            raise RowError(f"heads ({h}) must be a multiple of kv_heads ({kvh})")
        if sq > skv:
            raise RowError(f"seqlen_q ({sq}) cannot exceed seqlen_kv ({skv})")
        kernel = str(row.get("kernel", "") or "").strip().lower()
        if kernel in ("", "nan"):
            kernel = "flash" if phase == "prefill" else "paged"
        if kernel not in ("flash", "naive", "paged"):
            raise RowError(f"column 'kernel': expected flash or naive, got {row.get('kernel')!r}")
        pairs, rect, _ = _attn_stats(((sq, skv - sq),), None)  # the graph builder's own counting
        scores = (pairs if causal and kernel != "naive" else rect) * bsz * h
        tensors = [TensorIO("q", "activation", d.name, bsz * sq * h * hd * b, False),
                   TensorIO("kv", "kv", d.name, 2 * bsz * skv * kvh * hd * b, False),
                   TensorIO("o", "activation", d.name, bsz * sq * h * hd * b, True)]
        if kernel == "naive":  # scores and probabilities written and read back
            sb = scores * b
            tensors += [TensorIO("scores", "activation", d.name, 2 * sb, True),
                        TensorIO("scores", "activation", d.name, 2 * sb, False)]
        shape = AttentionShape(phase=phase, kernel=kernel, heads=h, kv_heads=kvh, head_dim=hd, head_dim_v=hd,
                               seqs=tuple((sq, skv) for _ in range(bsz)), causal=causal, kv_dtype=d.name)
        return Op(f"attention {phase}", "attention", 1, 4.0 * scores * hd, SOFTMAX_FLOPS * scores, d.name,
                  tuple(tensors), attention=shape, flops_special=SOFTMAX_EXPS * scores)
    if op == "memcpy":
        nbytes = _num(row, "bytes", integer=False)
        return Op("memcpy", "elementwise", 1, 0.0, 0.0, d.name,
                  (TensorIO("src", "activation", d.name, nbytes / 2, False),
                   TensorIO("dst", "activation", d.name, nbytes / 2, True)))
    if op == "elementwise":
        numel = _num(row, "numel")
        ins, outs = _num(row, "inputs", default=1), _num(row, "outputs", default=1)
        fpe = _num(row, "flops_per_element", integer=False, positive=False, default=1)
        rows = _num(row, "m", default=-1)  # optional: a row-per-block kernel's token rows
        if rows != -1 and numel % rows:
            raise RowError(f"column 'm' ({rows}): rows must divide numel ({numel})")
        return Op("elementwise", "elementwise", 1, 0.0, fpe * numel, d.name,
                  (TensorIO("x", "activation", d.name, ins * numel * b, False),
                   TensorIO("y", "activation", d.name, outs * numel * b, True)), rows=max(rows, 0))
    if op == "norm":
        m, n = _num(row, "m"), _num(row, "n")
        return Op("norm", "norm", 1, 0.0, NORM_FLOPS_PER_ELEMENT * m * n, d.name,
                  (TensorIO("x", "activation", d.name, m * n * b, False),
                   TensorIO("w", "weight", d.name, n * b, False),
                   TensorIO("y", "activation", d.name, m * n * b, True)), rows=m)
    if op == "rope":  # the graph builder's attn.rope: q and k rotated in place, one thread block per token row
        m, numel = _num(row, "m"), _num(row, "numel")
        if numel % m:
            raise RowError(f"column 'm' ({m}): rows must divide numel ({numel})")
        fpe = _num(row, "flops_per_element", integer=False, positive=False, default=3)
        numel_q = _num(row, "numel_q", positive=False, default=0)  # optional: q's elements, the kernel's first loop
        if numel_q < 0 or numel_q % m or numel_q > numel:
            raise RowError(f"column 'numel_q' ({numel_q}): q's elements must be a multiple of the rows 'm' ({m}) "
                           f"and at most 'numel' ({numel})")
        return Op("rope", "rope", 1, 0.0, fpe * numel, d.name,
                  (TensorIO("x", "activation", d.name, numel * b, False),
                   TensorIO("y", "activation", d.name, numel * b, True)), rows=m, first_loop=numel_q / m)
    if op == "embedding":  # the graph builder's embed.tokens: table rows read (a weight), the rows written
        m, n = _num(row, "m"), _num(row, "n")
        return Op("embedding", "embedding", 1, 0.0, 0.0, d.name,
                  (TensorIO("w_embed", "weight", d.name, m * n * b, False),
                   TensorIO("x", "activation", d.name, m * n * b, True)))
    nbytes = _num(row, "bytes", integer=False)
    p = _num(row, "num_devices")
    return Op(op, "collective", 1, 0.0, 0.0, d.name, (),
              collective=CollectiveShape(op, nbytes, p, "tp"))


def predict_ops(df: pd.DataFrame, overrides=None, options: CostOptions = CostOptions(),
                hardware: dict | None = None, stack=None) -> pd.DataFrame:
    """Predict every row of ``df``; returns a copy with the output columns added.

    ``stack``: the serving-stack profile whose kernels are priced (its attention softmax;
    hwmodels.stack, default DEFAULT_STACK; ``ideal`` = the kernel-only model) where ``options``
    leaves them at None.

    ``hardware`` maps names in the ``hardware`` column to already-loaded Chip/System objects
    (calibration uses this to price rows on a modified chip without writing files).
    """
    options = load_stack(stack).cost_options(options)
    if options.collectives == "custom-allreduce":
        # a collective row is one library call as torch.distributed issues it and the measurement files
        # time it (NCCL's kernels); a stack's custom all-reduce is priced in whole-model steps
        options = dataclasses.replace(options, collectives="nccl")
    out = df.copy()
    n = len(out)
    time_s = np.full(n, np.nan)
    tflops = np.full(n, np.nan)
    bps = np.full(n, np.nan)
    bound = np.array([""] * n, dtype=object)
    cache_b = np.full(n, np.nan)
    error = np.array([""] * n, dtype=object)
    hw_cache: dict = {}
    models: dict = {}
    priced: dict = {}
    profiled: dict = {"": options}  # kernel_profile -> the options its rows are priced with
    records = out.to_dict("records")
    for i, row in enumerate(records):
        try:
            name = row.get("hardware")
            if name is None or (isinstance(name, float) and math.isnan(name)) or not str(name).strip():
                raise RowError("missing value in column 'hardware'")
            name = str(name).strip()
            if name not in hw_cache:
                try:
                    hw_cache[name] = (hardware or {}).get(name) or load_hardware(name, overrides)
                except SpecError as e:
                    hw_cache[name] = RowError(str(e.problems[0]) if e.problems else str(e))
            hw = hw_cache[name]
            if isinstance(hw, RowError):
                raise hw
            op = row_to_op(row)
            prof = _profile_name(row)
            if prof not in profiled:
                profiled[prof] = _profile_options(options, prof)
            if isinstance(profiled[prof], RowError):
                raise profiled[prof]
            key = (name, op, prof)
            if key in priced:
                c = priced[key]
            else:
                system = hw if isinstance(hw, System) else System.single(hw)
                if op.kind == "collective" and op.collective.group_size > system.count:
                    raise RowError(f"{op.collective.op} over {op.collective.group_size} devices needs a system; "
                                   f"{name} has {system.count} chip(s)")
                resident = sum(t.bytes for t in op.tensors if t.role in ("weight", "kv"))
                mkey = (name, CostModel.home_for(system, resident).name, prof)
                if mkey not in models:
                    models[mkey] = CostModel(system, profiled[prof], resident_bytes=resident)
                c = models[mkey].op_cost(op)
                priced[key] = c
            time_s[i] = c.time_s
            tflops[i] = c.flops / c.time_s / 1e12 if c.time_s > 0 else 0.0
            moved = sum(t.bytes for t in op.tensors) if op.kind != "collective" else op.collective.bytes
            bps[i] = moved / c.time_s if c.time_s > 0 else 0.0
            bound[i] = c.bound
            cache_b[i] = _cache_bytes(hw, c)
        except RowError as e:
            error[i] = str(e)
        except ValueError as e:
            error[i] = str(e)
    out["time_s"] = time_s
    out["achieved_tflops"] = tflops
    out["achieved_bytes_per_s"] = bps
    out["bound"] = bound
    out["cache_bytes"] = cache_b
    out["error"] = error
    return out


def _profile_name(row: dict) -> str:
    """The row's ``kernel_profile`` ('' when the column is absent or the cell empty)."""
    v = row.get("kernel_profile")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def _profile_options(options: CostOptions, name: str):
    """``options`` with the kernel facts of ``name`` (sim.validation.kernel_profiles.profile_options, read from
    attention_kernels.yaml), or the RowError that rejects the rows naming it."""
    from sim.validation.kernel_profiles import profile_options

    try:
        return profile_options(options, name)
    except ValueError as e:
        return RowError(str(e))
    except SpecError as e:
        return RowError(str(e.problems[0]) if e.problems else str(e))


def _cache_bytes(hw, c) -> float:
    """Bytes an op cost moved through its chip's chip-level cache (0 on a chip without one)."""
    chip = hw.chip if isinstance(hw, System) else hw
    cache = next((m.name for m in chip.memory if m.per == "chip" and m.kind in ("sram", "cache")), None)
    return float(dict(c.bytes_by_level).get(cache, 0.0)) if cache else 0.0


#: the columns of a query CSV that hold words, read as text: an empty cell is '' (a missing value), not NaN
TEXT_COLUMNS = ("hardware", "op", "dtype", "out_dtype", "phase", "kernel", "causal", "name", "kernel_profile")


def read_ops_csv(path) -> pd.DataFrame:
    """Read a kernel CSV (gzipped where its name ends in .gz; a regular file within the ``csv_bytes`` limit,
    hwmodels.limits); a file that is not a CSV with an ``op`` and ``hardware`` column is a SpecError."""
    from pathlib import Path

    from hwmodels.limits import read_text
    from hwmodels import csvtext

    p = Path(path)
    if not p.exists():
        raise SpecError(f"no such file: {path}")
    text = read_text(p, "csv_bytes", "a kernel query CSV", gz=True)
    df, line = csvtext.frame(text, str(path), lambda what, kind: f"not a readable CSV file ({kind + ': ' if kind else ''}"
                             f"{what})", comment=None, dtype={c: str for c in TEXT_COLUMNS})  # at their line and column
    gone = csvtext.missing(str(path), line, df.columns, ("hardware", "op"), "at least hardware, op, dtype and the "
                           "shape columns of each op (see `llmsim ops --help`)")
    if gone is not None:
        raise gone
    if df.empty:
        raise csvtext.no_rows(str(path), line)
    for c in TEXT_COLUMNS:
        if c in df.columns:
            df[c] = df[c].fillna("")
    return df
