"""The summary of a serving run: latency percentiles, throughput, goodput, KV and batch use,
MFU/MBU, cost and energy (keys listed in docs/serving.md), computed from the run's request log,
timelines and replica counters."""

from __future__ import annotations

import math
import resource
import time

import numpy as np
import pandas as pd

from hwmodels.stack import load_stack
from sim.metrics import usd_per_mtok, utilization
from sim.serving.metrics import TIMELINE_COLUMNS
from workloads.model import context_warning

__all__ = ["summarize", "timeline_frame"]


def _percentiles(log, name) -> dict:
    a = log.metric(name)
    a = a[~np.isnan(a)]
    if a.size == 0:
        return {p: math.nan for p in (50, 90, 99)} | {"mean": math.nan}
    v = np.percentile(a.astype(np.float64), [50, 90, 99])
    return {50: float(v[0]), 90: float(v[1]), 99: float(v[2]), "mean": float(a.astype(np.float64).mean())}


def _duration(state, until_s) -> tuple[float, int]:
    """(simulated seconds from the first arrival to the last finish, or to ``until_s`` when requests
    are left unfinished; requests unfinished)."""
    run, log = state.run, state.log
    unfinished = run.arrived - run.rejected - log.completed
    t0 = run.first_arrival_s if math.isfinite(run.first_arrival_s) else 0.0
    duration = max(log.last_finish_s - t0, 0.0) if log.completed else 0.0
    if until_s is not None and unfinished:
        duration = until_s - t0
    return duration, unfinished


def _warnings(run, log) -> list:
    """What the user must know about the run (a run that rejected every request, above all)."""
    why = "; ".join(f"{k} x {r}" for r, k in run.reasons.items())
    return [f"every request was rejected ({run.rejected}): {why}"] if run.rejected and not log.completed else []


def summarize(setup, cfg, state, budget, coster, until_s, wall0: float) -> dict:
    """The run's summary dict. ``setup``: the resolved model/hardware (sim.serving.simulate.Setup);
    ``cfg``: ServingConfig; ``state``: RunState; ``budget``: KvBudget; ``wall0``: perf_counter at the start."""
    run, log, reps, roles = state.run, state.log, state.replicas, state.roles
    chip, chips, q = setup.chip, setup.chips, setup.quant
    duration, unfinished = _duration(state, until_s)
    n_rep = len(reps)
    total_chips = n_rep * chips
    out_tok = log.output_tokens
    in_tok = log.input_tokens
    usd_s = setup.usd_per_s
    usd_total = None if usd_s is None else usd_s * n_rep * duration
    busy = sum(r.stage_busy_s for r in reps)
    idle_w = chip.idle_w or 0.0
    energy = sum(r.energy_j for r in reps) + idle_w * chips * sum(max(0.0, duration - r.stage_busy_s) for r in reps)
    flops = sum(r.flops for r in reps)
    bytes_main = sum(r.bytes_main for r in reps)
    try:
        peak = chip.peak_flops(q.math_dtype)
    except KeyError:
        peak = math.nan
    cm = getattr(coster, "cm", None)
    bw = cm.home.bandwidth_bytes_per_s if cm is not None else chip.main_memory.bandwidth_bytes_per_s
    lat = {n: _percentiles(log, n) for n in ("ttft_s", "tpot_s", "e2e_s", "queue_s")}
    tl_steps = sum(t.steps for t in run.timelines)
    submitted = log.completed + run.rejected + unfinished
    disagg = cfg.scheduler == "disagg"

    def per_s(x):
        return x / duration if duration > 0 else math.nan

    summary = {
        "model": setup.spec.name, "hardware": setup.hardware, "system": setup.system.name,
        "scheduler": cfg.scheduler, "usage": cfg.usage, "max_num_seqs": cfg.max_num_seqs,
        "max_num_batched_tokens": cfg.max_num_batched_tokens, "router": cfg.router, "replicas": n_rep,
        "prefill_replicas": roles.count("prefill") if disagg else None,
        "decode_replicas": roles.count("decode") if disagg else None,
        "tp": cfg.tp, "pp": cfg.pp, "ep": cfg.ep, "quant": q.name, "chips": total_chips, "seed": cfg.seed,
        "offline": state.offline, "requests_total": submitted, "requests_completed": log.completed,
        "requests_rejected": run.rejected, "requests_unfinished": unfinished, "rejection_reasons": dict(run.reasons),
        "duration_s": duration, "request_throughput_rps": per_s(log.completed),
        "input_throughput_tok_s": per_s(in_tok), "output_throughput_tok_s": per_s(out_tok),
        "total_token_throughput_tok_s": per_s(in_tok + out_tok),
        "output_throughput_per_chip_tok_s": out_tok / duration / total_chips if duration > 0 else math.nan,
        "input_tokens": in_tok, "output_tokens": out_tok,
    }
    for n, short in (("ttft_s", "ttft"), ("tpot_s", "tpot"), ("e2e_s", "e2e"), ("queue_s", "queue")):
        d = lat[n]
        summary[f"{short}_mean_s"] = d["mean"]
        summary[f"{short}_p50_s"] = d[50]
        summary[f"{short}_p90_s"] = d[90]
        summary[f"{short}_p99_s"] = d[99]
    itl = run.itl
    summary.update({
        "itl_mean_s": itl.mean, "itl_p50_s": itl.quantile(0.5), "itl_p90_s": itl.quantile(0.9),
        "itl_p99_s": itl.quantile(0.99), "itl_max_s": itl.max if itl.n else math.nan,
        "slo_ttft_s": cfg.slo_ttft_s, "slo_tpot_s": cfg.slo_tpot_s, "goodput_rps": per_s(log.slo_met),
        "slo_attainment": log.slo_met / submitted if submitted else math.nan,
        "preemptions": log.preemptions,
        "kv_capacity_tokens_per_replica": budget.num_blocks * budget.block_size,
        "kv_blocks_per_replica": budget.num_blocks,
        "kv_blocks_peak": max(r.bm.peak for r in reps),
        "kv_blocks_used_end": sum(r.bm.used for r in reps),
        "tokens_generated": sum(r.emitted for r in reps),
        "kv_utilization_mean": sum(t.kv_time for t in run.timelines) / busy if busy > 0 else 0.0,
        "kv_utilization_max": max((t.kv_max for t in run.timelines), default=0.0),
        "batch_size_mean": sum(t.batch_time for t in run.timelines) / busy if busy > 0 else 0.0,
        "batch_size_max": max((t.batch_max for t in run.timelines), default=0),
        "busy_fraction": busy / (duration * n_rep) if duration > 0 else 0.0,
        "mfu": utilization(flops, duration, total_chips, peak),
        "mbu": utilization(bytes_main, duration, total_chips, bw),
        "mfu_busy": utilization(flops, busy, chips, peak),
        "mbu_busy": utilization(bytes_main, busy, chips, bw),
        "usd_per_hour": None if usd_s is None else usd_s * n_rep * 3600,
        "price_source": setup.system.price_note(chips),  # per replica; which price, from where and of when
        "calibration": chip.calibration,
        "usd_total": usd_total,
        "usd_per_mtok_output": None if usd_s is None or not out_tok else usd_per_mtok(usd_s * n_rep, duration, out_tok),
        "usd_per_mtok_total": None if usd_s is None or not (in_tok + out_tok)
        else usd_per_mtok(usd_s * n_rep, duration, in_tok + out_tok),
        "energy_j": energy,
        "energy_j_per_output_token": energy / out_tok if out_tok else math.nan,
        "energy_j_per_token": energy / (in_tok + out_tok) if in_tok + out_tok else math.nan,
        "kv_transfers": run.transfers, "kv_transfer_s_total": run.transfer_s,
        "prefix_hit_blocks": sum(r.bm.prefix_hit_blocks for r in reps),
        "steps": tl_steps,
        "memo_hit_rate": getattr(coster, "memo_hit_rate", None),
        "shape_memo_hit_rate": getattr(coster, "shape_hit_rate", None),
        "graph_builds": getattr(coster, "graph_builds", None),
        "notes": list(setup.notes) + ([] if math.isfinite(energy) or not out_tok else [
            f"energy unknown: {setup.system.chip.name} lists no power data (power.tdp or power.energy_per_flop), "
            "so the energy figures are null, not 0 J"]) + ([] if not state.frontend_s else [
            f"API server {state.frontend_s * 1e3:.3g} ms/request before the engine (docs/stacks.md, Frontend)"]),
        "stack": load_stack(cfg.stack).name,
        "frontend_per_request_s": state.frontend_s,
        # what reading the model's config priced by a rule (an unknown activation name), then the run's own
        "warnings": [*getattr(setup.spec, "warnings", ()),
                     *filter(None, [context_warning(setup.spec, state.run.longest_over, state.run.over_len)]),
                     *_warnings(state.run, state.log)],
    })
    wall = time.perf_counter() - wall0
    summary["sim_wall_s"] = wall
    summary["steps_per_s"] = tl_steps / wall if wall > 0 else math.nan
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return summary


def timeline_frame(run) -> pd.DataFrame:
    """The sampled steps of every replica, by time."""
    rows = [row for t in run.timelines for row in t.rows]
    if not rows:
        return pd.DataFrame(columns=list(TIMELINE_COLUMNS))
    # Built by columns (~2x faster than pandas' row path): the numbers as numpy infers them, the
    # step kind as a list so pandas infers its dtype as from rows (str under pandas 3, object
    # before); any other dtype (a None, a bool) goes the row path, which is the reference.
    cols = list(zip(*rows))
    arrays = [np.array(c) for c in cols[:-1]]
    if any(a.dtype not in (np.float64, np.int64) for a in arrays):
        return (pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))
                .sort_values(["time_s", "replica"], kind="stable").reset_index(drop=True))
    t, rep = arrays[0], arrays[1]
    kinds = list(cols[-1])
    # stable by (time, replica), as the row path's sort; one replica's rows are already in order
    if not bool(np.all((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (rep[1:] >= rep[:-1])))):
        order = np.lexsort((rep, t))
        arrays = [a[order] for a in arrays]
        kinds = [kinds[i] for i in order.tolist()]
    return pd.DataFrame(dict(zip(TIMELINE_COLUMNS, [*arrays, kinds])))
