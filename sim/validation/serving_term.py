"""The error model's serving engine term and the held-out coverage of ``serve``'s intervals.

``llmsim serve`` gives its ranges by re-running the simulation at the ends of a static batch's Monte Carlo
(sim/serving/intervals.py). The kernel part of those draws comes from the kernel residuals; what real engines
add on top of a serving run (the API server, scheduling, sampling, the runtime between steps, whatever the
simulator leaves out) is a lognormal engine factor. The static batches' term (``engine``) is fitted on the
published end-to-end rows; a serving run's (``serving_engine``) is fitted here the same way on the published
offline-serving rows (``sim/validation/data/published/serving.csv``, section 5c of the validation report):
per row, e = ln(measured time / median of the kernel Monte Carlo) in time terms (a throughput's time is its
inverse), the representative static batch's kernel draws standing for the run's (their e2e ratios scale the
run's point); mean and predictive sd per calibration state, the kernel spread subtracted
(:func:`sim.validation.errormodel.fit_engine`, the one fit of both terms). The point predictions are not touched.

Coverage is measured as the e2e term's is: leave one (model, hardware, tp) configuration out, refit the term on
the others, and check whether the left-out rows' measured values fall inside the intervals ``serve`` would give
(the real re-runs), beside the intervals with the static batches' term (before this term existed).
"""

from __future__ import annotations

import math

import pandas as pd

LEVEL = 0.8


def serving_items(log=print) -> list[dict]:
    """Every offline-serving row run as ``serve --rate inf`` runs it under the row's own stack, as an item of
    the engine fit: the representative static prediction (``pred``), the chip and its catalog calibration
    state, ``metric`` "e2e_s" with ``measured`` the static batch's e2e scaled by point / measured throughput
    (the row's time-equivalent error carried onto the batch whose draws are used), and what the coverage
    re-runs need (``serve``)."""
    from hwmodels.errors import InfeasibleError, SpecError
    from hwmodels.loader import load_hardware
    from sim.serving.intervals import representative_prediction
    from sim.serving.simulate import simulate
    from sim.uncertainty import calibration_state
    from sim.validation.published import load_serving, serving_case

    out = []
    for r in load_serving().to_dict("records"):
        hw, model, metric, measured = str(r["hardware"]), str(r["model"]), str(r["metric"]), float(r["measured"])
        try:
            sc, cfg = serving_case(r)
            summary = simulate(sc, hw, model, cfg).summary
            point = float(summary.get(metric) or 0.0)
            if not (point > 0 and measured > 0):
                continue
            pred = representative_prediction(summary, hw, model, cfg)
        except (SpecError, InfeasibleError, ValueError) as e:
            log(f"serving term: {model} on {hw}: left out ({type(e).__name__}: {e})")
            continue
        obj = load_hardware(hw)
        chip = getattr(obj, "chip", obj)
        out.append({"state": calibration_state(chip, True), "pred": pred, "chip": chip, "metric": "e2e_s",
                    "measured": float(pred.e2e_s) * point / measured, "overlap": False,
                    "config": f"{model} on {hw} tp{int(r['tp'])}",
                    "case": f"{int(r['num_prompts'])} x {int(r['input_len'])}/{int(r['output_len'])} "
                            f"{r.get('engine') or ''}".strip(),
                    "serve": (sc, cfg, hw, model, summary, metric, measured)})
    return out


def fit_serving_engine(items: list[dict], data: dict) -> dict:
    """The serving engine term per state (``data``: the error model with its cells and step shrink)."""
    from sim.uncertainty import ErrorModel
    from sim.validation.errormodel import fit_engine

    return fit_engine(items, ErrorModel(dict(data, serving_engine={})))


def _interval(it: dict, model, level: float) -> tuple[float, float]:
    from sim.serving.intervals import serving_intervals

    sc, cfg, hw, name, summary, metric, _ = it["serve"]
    lo, hi = serving_intervals(summary, sc, hw, name, level, cfg, error_model=model).get(metric, (math.nan, math.nan))
    return float(lo), float(hi)


def serving_coverage(items: list[dict], data: dict, level: float = LEVEL) -> pd.DataFrame:
    """Per row: ``serve``'s ``level`` interval with the static batches' engine term (``before``) and with the
    serving term refitted without the row's configuration (``after``): covered, and the width over the point
    and over the measured value."""
    from sim.uncertainty import ErrorModel

    before = ErrorModel(dict(data, serving_engine={}))
    rows = []
    for cfg in sorted({it["config"] for it in items}):
        train = [it for it in items if it["config"] != cfg]
        if not train:
            continue
        after = ErrorModel(dict(data, serving_engine=fit_serving_engine(train, data)))
        for it in items:
            if it["config"] != cfg:
                continue
            _, _, _, _, summary, metric, measured = it["serve"]
            point = float(summary[metric])
            for label, m in (("before", before), ("after", after)):
                lo, hi = _interval(it, m, level)
                rows.append({"term": label, "state": it["state"], "config": cfg, "case": it["case"], "metric": metric,
                             "level": level, "covered": bool(lo <= measured <= hi), "width": (hi - lo) / point,
                             "width_of_measured": (hi - lo) / measured, "lo": lo, "hi": hi, "point": point,
                             "measured": measured})
    return pd.DataFrame(rows)


def add_serving_term(data: dict, ev: dict, log=print) -> None:
    """Fit the serving engine term into ``data`` (the error model of
    :func:`sim.validation.errormodel.build_error_model`, its step shrink and static term fitted) and put its
    held-out coverage in ``ev["serving_cv"]``."""
    items = serving_items(log)
    ev["serving_cv"] = serving_coverage(items, data)
    data["serving_engine"] = fit_serving_engine(items, data)
    data.setdefault("provenance", {}).update({
        "serving_rows": len(items),
        "serving_source": "sim/validation/data/published/serving.csv (sim/validation/serving_term.py)"})
    log(f"error model: serving engine term on {len(items)} offline-serving rows: mean "
        + ", ".join(f"{k} {v['mu']:+.3f}" for k, v in data["serving_engine"].items()))


__all__ = ["LEVEL", "add_serving_term", "fit_serving_engine", "serving_coverage", "serving_items"]
