"""Ranking a sweep's points by the slow end of their prediction intervals (``llmsim sweep --pessimistic``).

A static sweep prices thousands of points on the vectorized path without intervals. To rank by the
pessimistic end of a metric (the high end of a time or a cost, the low end of a rate; docs/uncertainty.md)
the points are visited best point value first; each is predicted again with ``sim.predict`` on its own
hardware (the group's structure with the point's numeric axes) and its interval's slow end taken, as a
ratio to the prediction's point, times the table's value. The slow end is never better than the point
(the intervals contain the point), so once the next point's value cannot beat the ``top``-th slow end
found, no later point can: the top is exact without pricing every point's interval.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["INTERVAL_OF", "rank_pessimistic"]

#: sweep metric -> the prediction interval it scales with
INTERVAL_OF = {"ttft_s": "ttft_s", "tpot_s": "tpot_s", "e2e_s": "e2e_s", "output_tok_s": "output_throughput_tok_s",
               "output_tok_s_per_chip": "output_throughput_tok_s", "usd_per_mtok_output": "e2e_s",
               "joules_per_output_token": "joules_per_output_token", "output_tok_per_joule": "joules_per_output_token"}
_INVERSE = ("output_tok_per_joule",)  # the reciprocal of its interval's metric


def _prediction(spec, row):
    """The point's static request, predicted on its own hardware."""
    from sim.predict import predict
    from sim.sweep.hardware import derived, hw_points, parallel_of, structural_key, structure

    par = parallel_of(spec, row)
    system = structure(spec, structural_key(spec, row), par["chips_per_replica"])
    frame = pd.DataFrame([row])
    hw = hw_points(spec, system, frame)
    d = derived(spec, system, hw, par["chips"])
    if d["tdp_override"] is not None:
        hw = hw_points(spec, system, frame, extra={"chip.power.tdp": d["tdp_override"]})
    b = -(-int(spec.value_of("batch", row)) // par["dp"])
    point_system = hw.system_at(0) if hw.values else system
    return predict(spec.value_of("model", row), point_system, b, int(spec.value_of("input_len", row)),
                   int(spec.value_of("output_len", row)), tp=par["tp"], pp=par["pp"], ep=par["ep"],
                   quant=spec.value_of("quant", row), options=spec.options, stack=getattr(spec, "stack", None),
                   samples=spec.static["decode_samples"], check_memory=False), point_system


def slow_end_ratio(spec, row, metric: str, level: float) -> float:
    """The slow end of ``metric``'s ``level`` interval at one point over its point value (>= 1 for a time or
    cost, <= 1 for a rate). A point whose hardware axes modify the chip is a design outside the record."""
    from sim.uncertainty import pessimistic, prediction_intervals

    pred, system = _prediction(spec, row)
    unseen = any(a.kind == "hw" for a in spec.axes)
    iv = prediction_intervals(pred, system, level, options=spec.options, unseen=unseen)
    m = INTERVAL_OF[metric]
    p = float(getattr(pred, m))
    if not (p > 0 and math.isfinite(p)):
        return 1.0
    r = pessimistic(iv, m, p) / p
    return 1.0 / r if metric in _INVERSE else r


def rank_pessimistic(spec, table: pd.DataFrame, metric: str, sense: str, level: float, top: int) -> pd.DataFrame:
    """The ``top`` points by the slow end of ``metric`` (``sense``: 'min' or 'max'), with columns
    ``<metric>_slow`` and ``slow_end_ratio``; static request-mode sweeps only."""
    from hwmodels.errors import SpecError

    if metric not in INTERVAL_OF:
        raise SpecError(f"--pessimistic ranks by one of {', '.join(INTERVAL_OF)}; got --metric {metric}")
    if spec.evaluator != "static" or spec.static.get("mode", "request") != "request":
        raise SpecError("--pessimistic needs a static sweep in request mode (the intervals of `llmsim predict`)")
    ok = table[np.isfinite(pd.to_numeric(table[metric], errors="coerce"))]
    ok = ok.sort_values(metric, ascending=sense == "min", kind="stable")
    found: list = []
    for _, row in ok.iterrows():
        v = float(row[metric])
        if len(found) >= top:
            worst = found[top - 1][0]
            if (sense == "min" and v >= worst) or (sense == "max" and v <= worst):
                break
        r = slow_end_ratio(spec, row, metric, level)
        found.append((v * r, r, row))
        found.sort(key=lambda x: x[0], reverse=sense == "max")
    out = pd.DataFrame([x[2] for x in found[:top]])
    if len(out):
        out[f"{metric}_slow"] = [x[0] for x in found[:top]]
        out["slow_end_ratio"] = [x[1] for x in found[:top]]
    return out
