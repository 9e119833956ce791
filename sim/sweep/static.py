"""The static evaluator of a sweep: sim.predict's formulas on the vectorized cost path.

Points are grouped by what changes the operator graphs or the hardware's structure (model,
quantization, parallelism, batch, lengths, structural hardware fields); within a group the
numeric hardware axes are arrays and every op is priced once for all points (sim/vector.py).

Modes (``static: {mode: ...}`` in the spec):

- ``request`` (default): exactly ``llmsim predict`` for each point: TTFT = prefill step, TPOT =
  mean decode step over the O-1 decode steps (``decode_samples`` contexts, linearly interpolated,
  as sim.predict does; ops shared by the decode graphs are priced once), e2e, throughput, USD per
  million output tokens, joules per output token, MFU, MBU; tests/unit/test_sweep_static.py holds
  a sweep row equal to ``predict(..., overrides=...)``;
- ``decode_step``: one decode step of ``batch`` requests at context ``input_len`` (the fastest:
  a million design points take seconds): step time, tokens/s, J and USD per token;
- ``prefill_step``: one prefill of ``batch`` x ``input_len`` tokens.

Replicas multiply throughput and cost; per-token figures do not change. A point that does not fit
in memory is kept with ``fits = False`` and the reason (its numbers are what it would take if it fit).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from hwmodels.errors import InfeasibleError, SpecError
from hwmodels.format import fmt_bytes
from hwmodels.stack import load_stack
from sim.sweep.hardware import capacity_bytes, derived, hw_points, parallel_of, structural_key, structure
from sim.cost import CostModel
from sim.metrics import RequestTotals, request_metrics, usd_per_mtok
from sim.vector import combine_arrays, evaluate_ops

__all__ = ["COMMON_COLUMNS", "STATIC_METRICS", "evaluate_static"]

COMMON_COLUMNS = ["status", "reason", "error", "hardware", "system", "model", "quant", "tp", "pp", "ep", "replicas",
                  "batch", "input_len", "output_len", "chips", "fits", "memory_needed_bytes", "memory_capacity_bytes",
                  "area_mm2", "die_cost_usd", "chip_price_usd", "tdp_w", "power_w", "usd_per_hour", "cost_source"]
STATIC_METRICS = ["ttft_s", "tpot_s", "e2e_s", "step_s", "output_tok_s", "output_tok_s_per_chip", "usd_per_mtok_output",
                  "joules_per_output_token", "output_tok_per_joule", "mfu", "mbu"]
_WORKLOAD = ("model", "quant", "tp", "pp", "ep", "replicas", "batch", "input_len", "output_len")


def group_columns(spec) -> list:
    """Axis columns that split points into groups (everything not on the vector path)."""
    return [a.name for a in spec.axes if not a.vector]


def evaluate_static(spec, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per point of ``frame`` (axis columns + point_id), in the same order."""
    keys = group_columns(spec)
    parts = []
    groups = [(None, frame)] if not keys else frame.groupby(keys, sort=False, dropna=False)
    for _, sub in groups:
        try:
            parts.append(_group(spec, sub))
        except InfeasibleError as e:
            parts.append(_fail(spec, sub, "infeasible", str(e)))
        except SpecError as e:
            parts.append(_fail(spec, sub, "error", "; ".join(str(p) for p in e.problems)))
        except Exception as e:  # noqa: BLE001  (a bug or an unforeseen combination: record it, keep going)
            parts.append(_fail(spec, sub, "error", f"{type(e).__name__}: {e}"))
    out = pd.concat(parts)
    return out.loc[frame.index] if len(out) == len(frame) else out


def _base_row(spec, sub) -> dict:
    row0 = sub.iloc[0]
    out = {k: spec.value_of(k, row0) for k in _WORKLOAD}
    out["hardware"] = _hw_name(spec)
    return out


def _hw_name(spec) -> str:
    from pathlib import Path

    return Path(spec.hardware).stem


def _fail(spec, sub, status, msg) -> pd.DataFrame:
    df = sub.copy()
    base = _base_row(spec, sub)
    for k, v in base.items():
        if k not in df.columns:
            df[k] = v
    df["status"] = status
    df["reason"] = msg if status == "infeasible" else None
    df["error"] = msg if status == "error" else None
    for c in COMMON_COLUMNS + STATIC_METRICS:
        if c not in df.columns:
            df[c] = None if c in ("system", "cost_source", "fits") else np.nan
    try:
        df["chips"] = parallel_of(spec, sub.iloc[0])["chips"]
    except (SpecError, InfeasibleError, ValueError, TypeError):
        df["chips"] = None
    df["stack"], df["calibration"] = stack_name(spec), None
    return df


def stack_name(spec) -> str | None:
    """The name of the sweep's serving stack (the spec's ``stack``, None: the default); None when it does not load
    (the sweep said so before it ran)."""
    try:
        return load_stack(getattr(spec, "stack", None)).name
    except SpecError:
        return None


@functools.lru_cache(maxsize=64)
def _graphs(model, quant, tp, pp, ep, dp, b, input_len, output_len, mode, samples, fused):
    """Footprint and graphs of a group (cached per process: sweeps revisit the same workloads)."""
    from sim.predict import decode_contexts, make_quantization
    from workloads import Batch, Parallelism, build_graph, footprint, load_model

    spec_m = load_model(model)
    q = make_quantization(quant)
    par = Parallelism(tp=tp, pp=pp, ep=ep, dp=dp)
    kw = {"quant": q, "parallel": par, "attention_kernel": "auto", "fused": fused}
    if mode == "request":
        fp = footprint(spec_m, (b, input_len + output_len), q, par)
        graphs = [build_graph(spec_m, Batch.prefill(b, input_len), **kw)]
        steps = output_len - 1
        weights = np.zeros(0)
        if steps > 0:
            ctxs, allc = decode_contexts(input_len, steps, samples)
            graphs += [build_graph(spec_m, Batch.decode(b, int(c)), **kw) for c in ctxs]
            eye = np.eye(len(ctxs))
            # sum over every step of np.interp(step, ctxs, times) = weights . times (linear in times)
            weights = np.array([np.interp(allc, ctxs, eye[i]).sum() for i in range(len(ctxs))])
    elif mode == "decode_step":
        fp = footprint(spec_m, (b, input_len + 1), q, par)
        graphs = [build_graph(spec_m, Batch.decode(b, input_len), **kw)]
        weights = np.zeros(0)
    else:
        fp = footprint(spec_m, Batch.prefill(b, input_len), q, par)
        graphs = [build_graph(spec_m, Batch.prefill(b, input_len), **kw)]
        weights = np.zeros(0)
    ops: dict = {}
    for g in graphs:
        for op in g.ops:
            ops.setdefault(op, len(ops))
    return spec_m, q, par, fp, graphs, list(ops), ops, weights


def _peak_key(chip, dtype):
    """Which peak chip.peak_flops(dtype) reads (matrix unit, else vector): (unit kind, rate key)."""
    u = chip.matrix_unit()
    r = u.rate_for(dtype)
    if r is None:
        u = chip.vector_unit()
        r = u.rate_for(dtype)
    if r is None:
        return None
    return u.kind, r[1]


def _group(spec, sub: pd.DataFrame) -> pd.DataFrame:
    base = _base_row(spec, sub)
    row0 = sub.iloc[0]
    par = parallel_of(spec, row0)
    tp, pp, ep, dp = par["tp"], par["pp"], par["ep"], par["dp"]
    batch, L, O = int(base["batch"]), int(base["input_len"]), int(base["output_len"])
    mode = spec.static["mode"]
    b = -(-batch // dp)
    spec_m, q, _, fp, graphs, ops, op_index, weights = _graphs(
        base["model"], base["quant"], tp, pp, ep, dp, b, L, O, mode, spec.static["decode_samples"], spec.options.fused)
    system = structure(spec, structural_key(spec, row0), par["chips_per_replica"])
    chips = par["chips_per_replica"]
    replicas = par["replicas"]
    hw = hw_points(spec, system, sub)
    d = derived(spec, system, hw, par["chips"])
    if d["tdp_override"] is not None:
        hw = hw_points(spec, system, sub, extra={"chip.power.tdp": d["tdp_override"]})
    n = len(sub)
    cap = np.broadcast_to(np.asarray(capacity_bytes(hw), dtype=float), (n,))
    fits = fp.total_bytes <= cap
    resident = fp.weights_bytes + fp.kv_cache_bytes
    # the serving stack: its kernels' softmax (CostOptions.softmax) and each step's wall time
    # (hwmodels.stack.Stack.step_time), as sim.predict does
    st = load_stack(getattr(spec, "stack", None))
    opts = st.cost_options(spec.options)
    priced = evaluate_ops(ops, hw, opts, resident, tp)
    gas = [combine_arrays([priced[op_index[op]] for op in g.ops], pp, opts) for g in graphs]
    walls = [st.step_time(ga.time_s, float(sum(op.count for op in g.ops)) * pp, b,
                          decode=not (mode == "prefill_step" or (mode == "request" and i == 0)))
             for i, (ga, g) in enumerate(zip(gas, graphs))]
    chip = system.chip
    idle = np.asarray(hw.get("chip.power.idle"), dtype=float)
    out = sub.copy()
    res: dict = {}
    if mode == "request":
        pre = gas[0]
        dec = gas[1:]
        ttft = walls[0]
        if O - 1 > 0:
            decode_time = sum(w * t for w, t in zip(weights, walls[1:]))
            decode_busy = sum(w * g.time_s for w, g in zip(weights, dec))
            decode_energy = sum(w * g.energy_j for w, g in zip(weights, dec))
            decode_bytes = sum(w * g.bytes_main for w, g in zip(weights, dec))
            decode_flops = float(sum(w * g.flops for w, g in zip(weights, dec)))
        else:
            decode_time = decode_energy = decode_bytes = decode_busy = np.zeros(n)
            decode_flops = 0.0
        pk = _peak_key(chip, q.math_dtype)
        peak = hw.get(f"chip.compute.{pk[0]}.peak.{pk[1]}") if pk else np.nan
        cm = CostModel(hw, opts, resident, tp)
        home = cm.home_index
        bw = cm.bw[home] if not isinstance(home, np.ndarray) else \
            np.choose(home, [np.broadcast_to(np.asarray(x, dtype=float), (n,)) for x in cm.bw])
        totals = RequestTotals(ttft=ttft, decode_time=decode_time, busy=pre.time_s + decode_busy,
                               energy=pre.energy_j + decode_energy, flops=pre.flops + decode_flops,
                               decode_bytes=decode_bytes)
        met = request_metrics(totals, batch=batch, input_len=L, output_len=O, chips=chips, pp=pp, idle_w=idle,
                              peak_flops=np.asarray(peak, dtype=float), home_bandwidth=bw,
                              usd_per_s=np.asarray(d["usd_per_hour"], dtype=float) / replicas / 3600.0)
        res.update(ttft_s=ttft, tpot_s=met["tpot_s"], e2e_s=met["e2e_s"], step_s=np.full(n, np.nan),
                   output_tok_s=met["output_throughput_tok_s"] * replicas,
                   joules_per_output_token=met["joules_per_output_token"], mfu=met["mfu"], mbu=met["mbu"])
        usd_mtok = met["usd_per_mtok_output"]
    else:
        g = gas[0]
        step = walls[0]
        tokens = batch if mode == "decode_step" else batch * L
        energy = chips * g.energy_j
        res.update(ttft_s=step if mode == "prefill_step" else np.full(n, np.nan),
                   tpot_s=step if mode == "decode_step" else np.full(n, np.nan), e2e_s=np.full(n, np.nan),
                   step_s=step, output_tok_s=tokens / step * replicas, joules_per_output_token=energy / tokens,
                   mfu=np.full(n, np.nan), mbu=np.full(n, np.nan))
        usd_mtok = usd_per_mtok(np.asarray(d["usd_per_hour"], dtype=float) / replicas / 3600.0, step, tokens)
    res["output_tok_s_per_chip"] = res["output_tok_s"] / par["chips"]
    res["usd_per_mtok_output"] = usd_mtok
    with np.errstate(divide="ignore"):
        res["output_tok_per_joule"] = 1.0 / res["joules_per_output_token"]
    for k, v in base.items():
        out[k] = v if k not in out.columns else out[k]
    out["system"] = system.name
    out["status"] = "ok"
    reason = None
    if not fits.all():
        main = chip.main_memory
        reason = (f"{spec_m.name} needs {fmt_bytes(fp.total_bytes)} per chip (weights {fmt_bytes(fp.weights_bytes)}, "
                  f"KV cache {fmt_bytes(fp.kv_cache_bytes)}, activations {fmt_bytes(fp.activation_bytes)}) at "
                  f"tp={tp} pp={pp} ep={ep}; {chip.name} {main.name} holds ")
        out["reason"] = np.where(fits, None, np.array([reason + f"{fmt_bytes(c)}" for c in cap], dtype=object))
    else:
        out["reason"] = None
    out["error"] = None
    out["fits"] = fits
    out["memory_needed_bytes"] = fp.total_bytes
    out["memory_capacity_bytes"] = cap
    for k in ("chips", "area_mm2", "die_cost_usd", "chip_price_usd", "tdp_w", "power_w", "usd_per_hour", "cost_source"):
        out[k] = d[k]
    for k in STATIC_METRICS:
        out[k] = np.broadcast_to(np.asarray(res[k], dtype=float), (n,))
    out["stack"], out["calibration"] = st.name, system.calibration  # what priced the point (columns added last)
    return out
