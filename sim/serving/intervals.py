"""Prediction intervals for a serving simulation: the run repeated with op times at the interval's ends.

The simulator is too slow to run per Monte Carlo draw (docs/uncertainty.md). A static batch shaped
like the point run (its mean batch, prompt and output lengths) is predicted, its Monte Carlo draws
(``sim.uncertainty``, with the error model's serving engine term: how far real engines' offline throughput
sits from the simulator's, fitted on the published offline-serving rows) are ranked by end-to-end time, and the
draws at the interval's low and high quantiles give per-op-kind time factors (times the draw's engine factor). The simulation is
run again with each set of factors (``CostOptions.kind_scale``); throughputs take the fast run as
their upper end and latencies the slow run as theirs, every range widened to contain the point run's
value.
"""

from __future__ import annotations

import math

#: summary keys that grow when ops get slower
LATENCY_KEYS = tuple(f"{m}_{q}_s" for m in ("ttft", "tpot", "e2e", "queue", "itl") for q in ("mean", "p50", "p90", "p99"))
#: summary keys that shrink when ops get slower
RATE_KEYS = ("request_throughput_rps", "input_throughput_tok_s", "output_throughput_tok_s",
             "total_token_throughput_tok_s", "output_throughput_per_chip_tok_s", "goodput_rps", "slo_attainment")
#: summary keys that grow with the run's duration
COST_KEYS = ("usd_per_mtok_output", "usd_per_mtok_total", "energy_j_per_output_token")
#: the names predict --json uses, as aliases of serving summary keys
ALIASES = {"ttft_s": "ttft_mean_s", "tpot_s": "tpot_mean_s", "e2e_s": "e2e_mean_s",
           "per_chip_output_throughput_tok_s": "output_throughput_per_chip_tok_s"}


def representative_prediction(summary: dict, system, model, config):
    """A static batch shaped like the serving run (mean batch, mean prompt and output lengths), with the
    run's parallelism, quantization, software options and hardware overrides."""
    from sim.predict import predict

    done = max(int(summary.get("requests_completed") or 0), 1)
    b = max(1, int(round(summary.get("batch_size_mean") or 1)))
    li = max(1, int(round((summary.get("input_tokens") or done) / done)))
    lo = max(2, int(round((summary.get("output_tokens") or 2 * done) / done)))
    c = config
    return predict(model, system, b, li, lo, tp=c.tp, pp=c.pp, ep=c.ep, quant=c.quant, weight_dtype=c.weight_dtype,
                   act_dtype=c.act_dtype, kv_dtype=c.kv_dtype, overrides=c.overrides, options=c.options,
                   attention_kernel=c.attention_kernel, check_memory=False)


def end_scales(pred, system, level: float, options=None, model=None) -> tuple[tuple, tuple]:
    """((kind, factor), ...) for the low end (fast) and the high end (slow) of a ``level`` interval; the
    draw's engine factor (the serving term, ErrorModel.engine_term) is folded into every kind's factor.
    ``model``: an ErrorModel (the shipped file when None)."""
    from sim.uncertainty import quantile_draw

    out = []
    for q in ((1.0 - level) / 2.0, (1.0 + level) / 2.0):
        ks, eng = quantile_draw(pred, system, q, options=options, model=model, term="serving")
        out.append(tuple((k, f * eng) for k, f in ks))
    return out[0], out[1]


def combine(point: dict, fast: dict, slow: dict) -> dict:
    """{key: [lo, hi]} from the point, fast-end and slow-end summaries (each range contains the point)."""
    out: dict = {}

    def put(key, a, b):
        p = point.get(key)
        if p is None or a is None or b is None or not all(math.isfinite(x) for x in (p, a, b)):
            return
        out[key] = [min(a, b, p), max(a, b, p)]

    for k in LATENCY_KEYS + COST_KEYS:
        put(k, fast.get(k), slow.get(k))
    for k in RATE_KEYS:
        put(k, slow.get(k), fast.get(k))
    for alias, k in ALIASES.items():
        if k in out:
            out[alias] = list(out[k])
    return out


def serving_intervals(summary: dict, scenario, system, model, level: float, config=None, error_model=None) -> dict:
    """The ``intervals`` object of ``serve --json``: two more simulations (``config``: the point run's
    ServingConfig) with every priced op's time scaled per kind (``CostOptions.kind_scale``) at the
    interval's ends. ``error_model``: an ErrorModel (the shipped file when None)."""
    from dataclasses import replace

    from sim.config import ServingConfig
    from sim.serving.simulate import simulate
    from sim.uncertainty import check_level

    level = check_level(level)
    cfg = config or ServingConfig()
    pred = representative_prediction(summary, system, model, cfg)
    fast_s, slow_s = end_scales(pred, system, level, cfg.options, error_model)
    fast = simulate(scenario, system, model, replace(cfg, options=replace(cfg.options, kind_scale=fast_s))).summary
    slow = simulate(scenario, system, model, replace(cfg, options=replace(cfg.options, kind_scale=slow_s))).summary
    return combine(summary, fast, slow)


__all__ = ["ALIASES", "LATENCY_KEYS", "RATE_KEYS", "combine", "end_scales", "representative_prediction",
           "serving_intervals"]
