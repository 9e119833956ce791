"""The serving evaluator of a sweep: each point a full discrete-event simulation (sim.serving).

A point's System is the base with the point's hardware values (sim.vector.HwPoints.system_at,
no YAML reloaded); its request stream is ``serving.num_requests`` requests of ``input_len`` prompt
and ``output_len`` output tokens arriving at ``serving.rate`` requests/s (Poisson for cv = 1,
gamma otherwise), all points drawing the same stream (``serving.seed``): common random numbers,
so differences between points are the hardware's and the settings', not the dice's.

Metrics come from ``ServingResult.summary`` (latency percentiles, goodput, SLO attainment,
throughput, energy); cost per hour is the sweep's cost model (sim/tco.py) so that static and
serving sweeps price the same hardware the same way; ``meets_slo`` is p99 TTFT and p99 TPOT
within the spec's SLOs.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from hwmodels.errors import InfeasibleError, SpecError
from sim.sweep.fields import serving_kwargs
from sim.metrics import usd_per_mtok
from sim.sweep.hardware import capacity_bytes, derived, hw_points, parallel_of, structural_key, structure
from sim.sweep.static import COMMON_COLUMNS, _base_row, stack_name

__all__ = ["SERVING_METRICS", "evaluate_serving", "get_simulate", "scenario_for"]

SERVING_METRICS = ["ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p99_s", "goodput_rps",
                   "slo_attainment", "meets_slo", "request_throughput_rps", "output_tok_s", "output_tok_s_per_chip",
                   "usd_per_mtok_output", "joules_per_output_token", "output_tok_per_joule", "requests_completed",
                   "requests_rejected", "kv_utilization_mean", "batch_size_mean", "sim_wall_s"]


def get_simulate():
    """sim.serving.simulate, or a SpecError saying the serving simulator is not available."""
    try:
        from sim.serving import simulate
    except ImportError as e:
        raise SpecError(f"the serving evaluator needs sim.serving.simulate, which is not available ({e})") from None
    return simulate


def scenario_for(rate: float, cv: float, input_len: int, output_len: int, num_requests: int):
    from workloads.scenario import Scenario, arrival_process

    return Scenario(arrival_process(rate, cv), input_tokens=int(input_len), output_tokens=int(output_len),
                    num_requests=int(num_requests))


def evaluate_serving(spec, frame: pd.DataFrame, simulate=None) -> pd.DataFrame:
    """One simulation per point of ``frame``; a point that raises is recorded and the others go on."""
    rows = [_point(spec, frame.iloc[[i]], simulate) for i in range(len(frame))]
    return pd.concat(rows)


def _point(spec, one: pd.DataFrame, simulate) -> pd.DataFrame:
    out = one.copy()
    row = one.iloc[0]
    base = _base_row(spec, one)
    for k, v in base.items():
        if k not in out.columns:
            out[k] = v
    for c in COMMON_COLUMNS + SERVING_METRICS:
        if c not in out.columns:
            out[c] = None if c in ("system", "cost_source", "fits", "reason", "error", "status", "meets_slo") else np.nan
    out["stack"], out["calibration"] = stack_name(spec), None  # the run's own below, once it ran
    try:
        par = parallel_of(spec, row)
        out["chips"] = par["chips"]
        system = structure(spec, structural_key(spec, row), par["chips_per_replica"])
        hw = hw_points(spec, system, one)
        d = derived(spec, system, hw, par["chips"])
        if d["tdp_override"] is not None:
            hw = hw_points(spec, system, one, extra={"chip.power.tdp": d["tdp_override"]})
        for k in ("chips", "area_mm2", "die_cost_usd", "chip_price_usd", "tdp_w", "power_w", "usd_per_hour",
                  "cost_source"):
            out[k] = d[k]
        out["memory_capacity_bytes"] = float(np.asarray(capacity_bytes(hw)).reshape(-1)[0])
        sysobj = hw.system_at(0)
        out["system"] = sysobj.name
        def v(k):
            return spec.value_of(k, row) if f"serving.{k}" not in row else row[f"serving.{k}"]

        rate, cv = float(v("rate")), float(v("cv"))
        scen = scenario_for(rate, cv, base["input_len"], base["output_len"], v("num_requests"))
        sim = simulate or get_simulate()
        kw = {"tp": par["tp"], "pp": par["pp"], "ep": par["ep"], "quant": base["quant"], "replicas": par["replicas"],
              "options": spec.options, **serving_kwargs(v)}
        if getattr(spec, "stack", None) is not None and kw.get("stack") is None:
            kw["stack"] = spec.stack  # the spec's top-level stack, unless the serving block (or an axis) names one
        t0 = time.perf_counter()
        res = sim(scen, sysobj, base["model"], **kw)
        wall = time.perf_counter() - t0
        s = res.summary if hasattr(res, "summary") else dict(res)
        _fill(out, s, spec, row, d, par, wall)
        out["stack"], out["calibration"] = s.get("stack", out["stack"].iloc[0]), sysobj.calibration
        out["status"] = "ok"
        out["fits"] = True
        out["reason"] = None
        out["error"] = None
    except InfeasibleError as e:
        out["status"] = "infeasible"
        out["reason"] = str(e)
        out["fits"] = False if "fit" in str(e) or "KV" in str(e) or "memory" in str(e) else None
    except SpecError as e:
        out["status"] = "error"
        out["error"] = "; ".join(str(p) for p in e.problems)
    except Exception as e:  # noqa: BLE001  (a point that raises is recorded; the sweep goes on)
        out["status"] = "error"
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def _g(s: dict, k: str, default=math.nan):
    x = s.get(k, default)
    return default if x is None else x


def _fill(out, s: dict, spec, row, d, par, wall) -> None:
    out["ttft_p50_s"] = _g(s, "ttft_p50_s")
    out["ttft_p99_s"] = _g(s, "ttft_p99_s")
    out["tpot_p50_s"] = _g(s, "tpot_p50_s")
    out["tpot_p99_s"] = _g(s, "tpot_p99_s")
    out["e2e_p99_s"] = _g(s, "e2e_p99_s")
    out["goodput_rps"] = _g(s, "goodput_rps")
    out["slo_attainment"] = _g(s, "slo_attainment")
    out["request_throughput_rps"] = _g(s, "request_throughput_rps")
    thr = _g(s, "output_throughput_tok_s")
    out["output_tok_s"] = thr
    out["output_tok_s_per_chip"] = thr / par["chips"] if not math.isnan(thr) else math.nan
    usd_h = float(np.asarray(d["usd_per_hour"]).reshape(-1)[0])
    out["usd_per_mtok_output"] = usd_per_mtok(usd_h / 3600.0, 1.0, thr) if thr and not math.isnan(thr) else math.nan
    jpt = _g(s, "energy_j_per_output_token")
    out["joules_per_output_token"] = jpt
    out["output_tok_per_joule"] = 1.0 / jpt if jpt and not math.isnan(jpt) else math.nan
    out["requests_completed"] = _g(s, "requests_completed")
    out["requests_rejected"] = _g(s, "requests_rejected")
    out["kv_utilization_mean"] = _g(s, "kv_utilization_mean")
    out["batch_size_mean"] = _g(s, "batch_size_mean")
    out["sim_wall_s"] = wall
    slo_t = spec.value_of("slo_ttft_p99", row)
    slo_p = spec.value_of("slo_tpot_p99", row)
    meets = True
    if slo_t is not None:
        meets = meets and out["ttft_p99_s"].iloc[0] <= slo_t
    if slo_p is not None:
        meets = meets and out["tpot_p99_s"].iloc[0] <= slo_p
    out["meets_slo"] = bool(meets) if (slo_t is not None or slo_p is not None) else None
