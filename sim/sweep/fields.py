"""The settings a sweep spec names: workload fields, serving fields (derived from
``sim.config.ServingConfig``: its fields whose metadata names a sweep serving field, with their
defaults) and how a value is checked.

A serving field's type says what a spec may write: ``int`` (>= 1; ``seed`` >= 0), ``float`` (> 0),
``fraction0`` ([0, 1)), ``fraction1`` ((0, 1]), ``nonneg`` (>= 0), ``time`` (a duration with its
unit, e.g. '500 ms'), ``bool`` (true/false) or ``str`` (a name; one of the field's CLI choices
where it has them).
"""

from __future__ import annotations

import difflib
import math

from hwmodels.errors import SpecError
from hwmodels.limits import check_bound
from workloads.scenario import CV_MAX, CV_MIN
from sim.config import ServingConfig, default_of, sweep_fields

__all__ = ["SERVING_FIELDS", "WORKLOAD_FIELDS", "check_value", "serving_kwargs"]

# workload fields: name -> (type, default)
WORKLOAD_FIELDS = {
    "model": (str, None), "quant": (str, "bf16"), "tp": (int, 1), "pp": (int, 1), "ep": (int, 1),
    "replicas": (int, 1), "batch": (int, 1), "input_len": (int, 1024), "output_len": (int, 128),
}
# the request stream of a serving point (sim.sweep.serving.scenario_for)
SCENARIO_FIELDS = {"rate": (float, None), "cv": (float, 1.0), "num_requests": (int, 500)}
# serving-simulation fields (evaluator: serving): the stream, then what sim.serving.simulate takes
SERVING_FIELDS = {**SCENARIO_FIELDS,
                  **{name: (typ, default_of(f)) for f, name, typ in sweep_fields(ServingConfig, "serving")}}

# the names a serving field accepts (its CLI choices): scheduler, router, preemption, attention_kernel
SERVING_CHOICES = {name: tuple(f.metadata["argparse"]["choices"]) for f, name, _ in sweep_fields(ServingConfig, "serving")
                   if "choices" in f.metadata["argparse"]}


def serving_kwargs(value_of) -> dict:
    """``simulate`` keywords of a point's serving fields; ``value_of(sweep name)`` gives its value."""
    out = {}
    for f, name, typ in sweep_fields(ServingConfig, "serving"):
        v = value_of(name)
        if v is not None:
            v = int(v) if typ is int else bool(v) if typ is bool else str(v) if typ is str else float(v)
        out[f.name] = v
    return out


def _number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


#: the kind of number (hwmodels.limits.BOUNDS) of each numeric field: the same bounds as the CLI flags
FIELD_KINDS = {
    "batch": "batch", "input_len": "tokens", "output_len": "tokens", "tp": "parallel", "pp": "parallel",
    "ep": "parallel", "replicas": "replicas", "rate": "rate", "cv": "cv", "num_requests": "requests",
    "max_num_seqs": "requests", "max_num_batched_tokens": "tokens", "chunk_size": "tokens",
    "block_size": "tokens", "max_model_len": "tokens", "prefill_replicas": "replicas",
    "decode_replicas": "replicas", "seed": "seed", "swap_space_gib": "gib",
}


def check_value(name, v, typ, path, prob):
    """``v`` checked and normalized for a field of type ``typ``; None (and a problem noted) if bad."""
    out = _check_value(name, v, typ, path, prob)
    kind = FIELD_KINDS.get(name)
    if out is not None and kind is not None and not (name == "rate" and out == math.inf):
        msg = check_bound(kind, out, "the value")
        if msg is None and name == "cv" and out != 0 and not CV_MIN <= out <= CV_MAX:
            msg = f"the value must be 0 (fixed rate) or between {CV_MIN:g} and {CV_MAX:g}; got {out!r}"
        if msg:
            prob(path, msg)
            return None
    return out


def _check_value(name, v, typ, path, prob):
    if typ is int:
        least = 0 if name == "seed" else 1
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            prob(path, f"expected {'a non-negative' if least == 0 else 'a positive'} integer; got {v!r}")
            return None
        return int(v)
    if typ is float:
        if not _number(v) or v <= 0:
            if name == "rate" and isinstance(v, str):
                try:
                    from workloads.scenario import parse_rate

                    return float(parse_rate(v))
                except (SpecError, ValueError) as e:
                    prob(path, str(e))
                    return None
            prob(path, f"expected a positive number; got {v!r}")
            return None
        return float(v)
    bounds = {"fraction0": (lambda x: 0 <= x < 1, "a fraction in [0, 1)"),
              "fraction1": (lambda x: 0 < x <= 1, "a fraction in (0, 1]"),
              "nonneg": (lambda x: x >= 0, "a number >= 0")}
    if typ in bounds:
        ok, what = bounds[typ]
        if not _number(v) or not ok(v):
            prob(path, f"expected {what}; got {v!r}")
            return None
        return float(v)
    if typ is bool:
        if not isinstance(v, bool):
            prob(path, f"expected true or false; got {v!r}")
            return None
        return v
    if typ == "time":
        from hwmodels.units import UnitError, parse_quantity

        try:
            t = parse_quantity(v, "time")
        except UnitError as e:
            prob(path, f"{e} (write e.g. '500 ms' or '2 s')")
            return None
        if t <= 0:
            prob(path, f"must be greater than zero; got {v!r}")
            return None
        return t
    if not isinstance(v, str) or not v:
        prob(path, f"expected a name; got {v!r}")
        return None
    known = SERVING_CHOICES.get(name)
    if known and v not in known:
        hint = difflib.get_close_matches(v, known, n=1)
        prob(path, f"unknown {name} {v!r}" + (f" (did you mean '{hint[0]}'?)" if hint else "")
             + f"; known: {', '.join(known)}")
        return None
    return v
