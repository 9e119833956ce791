"""Sweep specifications: a base hardware description, models, fixed settings and the axes to vary.

A spec is a YAML file (docs/sweeps.md has the full format)::

    version: 1
    kind: sweep
    name: hbm-vs-sram
    hardware: hypo-hbm-infer              # catalog name or path (relative to this file)
    model: llama-3.1-8b                   # or `models: [...]` (an axis named `model`)
    evaluator: static                     # static | serving | module:function
    workload: {batch: 32, input_len: 1024, output_len: 256, quant: bf16, tp: 1}
    sampling: {method: grid}              # grid | random | lhs, samples: N, seed: S
    axes:
      hw.memory.hbm.bandwidth: ["2 TB/s", "4 TB/s", "8 TB/s"]      # any hardware field (override path)
      hw.memory.l2.capacity: {range: ["16 MB", "256 MB"], steps: 5, scale: log}
      tp: [1, 2]                                                   # workload / serving settings
    constraints:
      area_mm2: {max: 900}
    cost: {source: auto, lifetime_years: 4, pue: 1.2, usd_per_kwh: 0.08}
    area: {node: tsmc-n5, memory: hbm3}   # area/die-cost model (sim/tco.py)
    power: {model: true}                  # TDP from the power model

Every problem is reported at once as ``file:line:col: dotted.path: message`` (did-you-mean for
unknown keys and unknown hardware fields; hardware values are checked by loading the base with
each value, so a bad unit or a negative bandwidth is caught before anything runs).
"""

from __future__ import annotations


import difflib
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path


from hwmodels.chip import Chip, System
from hwmodels.errors import InfeasibleError, Problem, SpecError
from hwmodels.limits import check_bound
from hwmodels.stack import load_stack
from hwmodels.yamlio import Marked, read_yaml
from sim.cost import CostOptions
from sim.sweep.fields import SERVING_FIELDS, WORKLOAD_FIELDS, check_value
from sim.sweep.axis import Axis, _fmt, _numeric, dimension_of  # noqa: F401 (re-exported)

__all__ = [
    "DERIVED",
    "SERVING_FIELDS",
    "WORKLOAD_FIELDS",
    "Axis",
    "Constraint",
    "SweepSpec",
    "load_spec",
    "spec_from_dict",
]

STATIC_FIELDS = {"mode": (str, "request"), "decode_samples": (int, 33)}
STATIC_MODES = ("request", "decode_step", "prefill_step")
# the on/off software options of the cost model, read from CostOptions itself (one list)
OPTION_FIELDS = tuple(f.name for f in fields(CostOptions) if f.type in (bool, "bool"))
COST_FIELDS = ("source", "lifetime_years", "utilization", "pue", "usd_per_kwh", "purchase_usd_per_chip", "gross_margin")
AREA_FIELDS = ("node", "memory", "yield_model", "mode")
POWER_FIELDS = ("model", "mode", "node", "memory")
TOP_FIELDS = ("version", "kind", "name", "description", "hardware", "model", "models", "evaluator", "workload",
              "serving", "static", "options", "sampling", "axes", "constraints", "cost", "area", "power", "stack")
SAMPLING_METHODS = ("grid", "random", "lhs")
# the fixed settings every fingerprint includes; serving fields added since (the rest of
# ServingConfig) count only when set away from their default, so older results folders still resume
_FINGERPRINTED = frozenset(WORKLOAD_FIELDS) | {
    "rate", "cv", "num_requests", "scheduler", "max_num_seqs", "max_num_batched_tokens", "chunk_size",
    "slo_ttft_p99", "slo_tpot_p99", "seed", "router", "memory_utilization"}
# quantities a constraint may bound before anything runs (besides the axes themselves)
DERIVED = {
    "chips": "chips in all (tp x pp x dp x replicas)",
    "area_mm2": "die area per chip (area model; else the hardware's die_area)",
    "die_cost_usd": "silicon cost per chip (area model)",
    "chip_price_usd": "purchase price per chip (list price, or the area model's cost / (1 - margin))",
    "tdp_w": "TDP per chip (power model if enabled, else the hardware's)",
    "power_w": "power of all chips at TDP plus the system overhead, pro rata",
    "usd_per_hour": "cost per hour of all chips (cloud or purchase + power, see cost)",
    "memory_capacity_bytes": "main-memory capacity per chip",
}


@dataclass
class Constraint:
    name: str
    min: float | None
    max: float | None
    where: tuple = (None, None)


@dataclass
class SweepSpec:
    """A parsed, validated sweep specification (see the module docstring)."""

    name: str
    hardware: str  # catalog name or resolved path
    base: Chip | System
    evaluator: str
    fixed: dict  # workload + serving settings not varied (field -> value)
    axes: list
    sampling: dict
    constraints: list
    options: CostOptions
    static: dict
    cost: object  # TcoAssumptions
    area: dict | None
    power: dict | None
    description: str = ""
    path: str | None = None
    marked: Marked | None = field(default=None, repr=False)
    stack: str | None = None  # serving-stack profile (name or path; None: hwmodels.stack.DEFAULT_STACK)

    # -- identity ---------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Hash of what a point's result depends on besides its axis values (not the axes themselves).

        A rerun resumes from a results folder only when this matches; adding values to an axis
        keeps it (the points already done are skipped), changing a fixed setting does not.
        """
        from dataclasses import asdict

        payload = {"hardware": self.hardware, "evaluator": self.evaluator,
                   "fixed": {k: v for k, v in sorted(self.fixed.items())
                             if k not in self.axis_names and (k in _FINGERPRINTED or v != SERVING_FIELDS[k][1])},
                   "options": asdict(self.options), "static": self.static if self.evaluator == "static" else None,
                   "cost": {k: getattr(self.cost, k) for k in COST_FIELDS}, "area": self.area, "power": self.power,
                   "hardware_file": _file_digest(self.hardware), "stack": self.stack}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def axis_names(self) -> list:
        return [a.name for a in self.axes]

    def axis(self, name: str) -> Axis | None:
        return next((a for a in self.axes if a.name == name), None)

    def problem(self, path: tuple, message: str) -> Problem:
        if self.marked is not None:
            return self.marked.problem(path, message)
        return Problem(message, file=self.path, path=".".join(map(str, path)))

    def value_of(self, name: str, row=None):
        """A workload/serving setting for one point: the axis value, else the fixed one."""
        if row is not None and name in row:
            return row[name]
        return self.fixed.get(name)

    def describe(self) -> list[str]:
        lines = [f"sweep {self.name}: {self.evaluator} evaluator on {Path(self.hardware).stem}"]
        for a in self.axes:
            if a.values is not None:
                shown = ", ".join(_fmt(v, a.key) for v in a.values[:6]) + (" ..." if len(a.values) > 6 else "")
                lines.append(f"  axis {a.name}: {len(a.values)} values ({shown})")
            else:
                lines.append(f"  axis {a.name}: {a.scale} range {_fmt(a.lo, a.key)} .. {_fmt(a.hi, a.key)}"
                             + (f", {a.steps} steps" if a.steps else ""))
        return lines


def _file_digest(hw: str) -> str:
    p = Path(hw)
    if p.exists() and p.is_file():
        return hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    try:
        from hwmodels.loader import resolve

        return hashlib.sha256(resolve(hw).read_bytes()).hexdigest()[:16]
    except SpecError:
        return ""


# ---------------------------------------------------------------------------------------------
# loading

def load_spec(path) -> SweepSpec:
    """Read and validate a sweep spec file; SpecError lists every problem with file:line:col."""
    p = Path(path)
    if not p.exists():
        raise SpecError([Problem(f"no such sweep spec: {path}")])
    if p.is_dir():
        raise SpecError([Problem(f"{path} is a folder; expected a YAML sweep spec")])
    docs = read_yaml(p, "a YAML sweep spec")
    if len(docs) > 1:
        raise SpecError([Problem("one sweep spec per file, please (found several YAML documents)", str(p),
                                 *docs[1].where(()))])
    return _parse(docs[0], base_dir=p.parent)


def spec_from_dict(data: dict, base_dir: str | Path = ".", file: str = "<spec>") -> SweepSpec:
    """A spec from a Python dict (same checks; locations name ``file`` and the dotted path)."""
    return _parse(Marked(data, {}, file), base_dir=Path(base_dir))


def _parse(doc: Marked, base_dir: Path) -> SweepSpec:
    d = doc.data
    P: list = []

    def prob(path, msg):
        P.append(doc.problem(tuple(path), msg))

    if not isinstance(d, dict):
        raise SpecError([doc.problem((), "expected a mapping with 'kind: sweep', 'hardware', 'model' and 'axes'")])
    _unknown(d, TOP_FIELDS, (), "sweep spec", prob)
    if d.get("kind", "sweep") != "sweep":
        prob(("kind",), f"expected 'kind: sweep'; got {d.get('kind')!r}")
    if "version" in d and d["version"] != 1:
        prob(("version",), f"unsupported version {d['version']!r}; this llmsim reads version 1")
    name = _parse_name(d, doc, prob)
    base, hw_ref = _parse_hardware(d, doc, base_dir, prob)
    evaluator = d.get("evaluator", "static")
    if not isinstance(evaluator, str) or (evaluator not in ("static", "serving") and ":" not in evaluator):
        prob(("evaluator",), f"expected static, serving or module:function; got {evaluator!r}")
        evaluator = "static"
    elif ":" in evaluator:
        try:
            custom_evaluator(evaluator)
        except SpecError as e:
            prob(("evaluator",), e.problems[0].message)
    fixed, models = _parse_fixed(d, prob)
    axes = _parse_axes(d, doc, base, fixed, models, prob)
    names = [a.name for a in axes]
    sampling = _parse_sampling(d, axes, prob)
    static = _parse_static(d, prob)
    if evaluator == "serving" and fixed.get("rate") is None and "serving.rate" not in names:
        prob(("serving",), "the serving evaluator needs 'serving: {rate: R}' (requests per second) or a "
                           "'serving.rate' axis")
    options = _parse_options(d, prob)
    cost = _parse_cost(d, prob)
    stack = None if d.get("stack") is None else str(d.get("stack"))
    try:
        load_stack(stack)
    except SpecError as e:
        prob(("stack",), e.problems[0].message)
    area = _parse_model_block(d, "area", AREA_FIELDS, base, prob)
    power = _parse_model_block(d, "power", POWER_FIELDS, base, prob)
    constraints = _parse_constraints(d, doc, axes, area, base, prob)
    if P:
        raise SpecError(sorted(P, key=lambda p: (p.line or 0, p.col or 0)))
    return SweepSpec(name=name, hardware=hw_ref, base=base, evaluator=evaluator, fixed=fixed, axes=axes,
                     sampling=sampling, constraints=constraints, options=options, static=static, cost=cost,
                     area=area, power=power, description=str(d.get("description") or ""), path=doc.file,
                     marked=doc, stack=stack)


def custom_evaluator(name: str):
    """The function ``module:function`` names (SpecError when it cannot be imported)."""
    import importlib

    mod, _, fn = name.partition(":")
    try:
        f = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError, ValueError) as e:
        raise SpecError(f"evaluator '{name}': cannot import it ({e})") from None
    if not callable(f):
        raise SpecError(f"evaluator '{name}': not a function")
    return f


def _parse_name(d, doc: Marked, prob) -> str:
    """The spec's name: it names the default results folder ``<name>.parquet`` in the working
    directory, so it must be a plain file name (no separators, not '..', not absolute)."""
    if "name" not in d or d["name"] is None:
        return Path(doc.file).stem
    name = d["name"]
    if not isinstance(name, str) or not name.strip():
        prob(("name",), f"expected a non-empty name; got {name!r}")
        return "sweep"
    if any(c in name for c in "/\\") or name in (".", "..") or any(ord(c) < 32 for c in name):
        prob(("name",), f"a sweep name names its results folder (<name>.parquet) in the working directory; it may "
                        f"not hold path separators or be '..'; got {name!r} (give --out to write elsewhere)")
        return "sweep"
    return name


def _parse_hardware(d, doc: Marked, base_dir: Path, prob) -> tuple:
    """(the base Chip or System, the reference it was loaded by), or Nones with the problem noted."""
    hw = d.get("hardware")
    base = None
    hw_ref = None
    if hw is None:
        prob((), "missing 'hardware': a catalog chip/system name or a path to a hardware YAML file")
    elif not isinstance(hw, str):
        prob(("hardware",), f"expected a hardware name or path; got {type(hw).__name__}")
    else:
        cand = base_dir / hw
        hw_ref = str(cand) if (hw.endswith((".yaml", ".yml")) or "/" in hw) and cand.exists() else hw
        try:
            from hwmodels.loader import load_hardware

            base = load_hardware(hw_ref)
        except SpecError as e:
            for pr in e.problems:
                msg = str(pr) if pr.file and pr.file != doc.file else pr.message
                prob(("hardware",), msg)
    return base, hw_ref


def _parse_fixed(d, prob) -> tuple[dict, list | None]:
    """The workload and serving settings not varied (defaults filled in), and the 'models' list."""
    fixed: dict = {}
    for f, (_, default) in WORKLOAD_FIELDS.items():
        fixed[f] = default
    for f, (_, default) in SERVING_FIELDS.items():
        fixed[f] = default
    wl = d.get("workload") or {}
    if not isinstance(wl, dict):
        prob(("workload",), "expected a mapping of workload settings (batch, input_len, output_len, quant, tp...)")
        wl = {}
    _unknown(wl, tuple(f for f in WORKLOAD_FIELDS if f != "model"), ("workload",), "workload", prob)
    for k, v in wl.items():
        if k in WORKLOAD_FIELDS and k != "model":
            fixed[k] = check_value(k, v, WORKLOAD_FIELDS[k][0], ("workload", k), prob)
    sv = d.get("serving") or {}
    if not isinstance(sv, dict):
        prob(("serving",), "expected a mapping of serving settings (rate, num_requests, scheduler, slo_*...)")
        sv = {}
    _unknown(sv, tuple(SERVING_FIELDS), ("serving",), "serving", prob)
    for k, v in sv.items():
        if k in SERVING_FIELDS:
            fixed[k] = check_value(k, v, SERVING_FIELDS[k][0], ("serving", k), prob)
    models = None
    if "model" in d and "models" in d:
        prob(("models",), "give either 'model' or 'models', not both")
    if "model" in d:
        fixed["model"] = check_value("model", d["model"], str, ("model",), prob)
    elif "models" in d:
        models = d["models"]
        if not isinstance(models, list) or not models:
            prob(("models",), "expected a non-empty list of model names")
            models = None
    return fixed, models


def _parse_axes(d, doc: Marked, base, fixed: dict, models, prob) -> list:
    axes: list = []
    raw_axes = d.get("axes")
    if raw_axes is None:
        raw_axes = {}
    if not isinstance(raw_axes, dict):
        prob(("axes",), "expected a mapping of axis name -> values (a list, one value, or {range: [lo, hi], ...})")
        raw_axes = {}
    if models is not None:
        if "model" in raw_axes:
            prob(("axes", "model"), "'model' is an axis already through 'models'")
        axes.append(Axis("model", "workload", values=[str(m) for m in models], where=doc.where(("models",))))
    for key, spec in raw_axes.items():
        ax = _parse_axis(key, spec, doc, base, prob)
        if ax is not None:
            axes.append(ax)
    names = [a.name for a in axes]
    for a in axes:
        if names.count(a.name) > 1:
            prob(("axes", a.name), f"axis '{a.name}' is given twice")
    if fixed.get("model") is None and "model" not in names:
        prob((), "missing 'model' (or 'models: [...]', or a 'model' axis)")
    # models exist?
    for m in ([fixed["model"]] if fixed.get("model") else []) + (axes[0].values if models is not None else []):
        try:
            from workloads import load_model

            load_model(m)
        except SpecError as e:
            prob(("models" if models is not None else "model",), e.problems[0].message if e.problems else str(e))
    return axes


def _parse_sampling(d, axes: list, prob) -> dict:
    smp = d.get("sampling") or {"method": "grid"}
    sampling = {"method": "grid", "samples": None, "seed": 0}
    if not isinstance(smp, dict):
        prob(("sampling",), "expected {method: grid | random | lhs, samples: N, seed: S}")
    else:
        _unknown(smp, ("method", "samples", "seed"), ("sampling",), "sampling", prob)
        m = smp.get("method", "grid")
        if m not in SAMPLING_METHODS:
            hint = difflib.get_close_matches(str(m), SAMPLING_METHODS, n=1)
            prob(("sampling", "method"), f"unknown method {m!r}" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                 + f"; known: {', '.join(SAMPLING_METHODS)}")
            m = "grid"
        sampling["method"] = m
        s = smp.get("samples")
        if m != "grid":
            if not _posint(s):
                prob(("sampling", "samples") if "samples" in smp else ("sampling",),
                     f"{m} sampling needs 'samples: N' (a positive integer); got {s!r}")
            sampling["samples"] = s if _posint(s) else 1
        elif s is not None:
            prob(("sampling", "samples"), "a grid takes every combination; 'samples' is for random and lhs")
        seed = smp.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            prob(("sampling", "seed"), f"expected a non-negative integer; got {seed!r}")
        sampling["seed"] = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
        if m == "grid":
            for a in axes:
                if a.values is None and not a.steps:
                    prob(("axes", a.name), "a range on a grid needs 'steps: N' (or use random/lhs sampling)")
    n = sampling["samples"] or 1
    if sampling["method"] == "grid":
        for a in axes:  # python integers: the product is computed exactly before anything is allocated
            n *= len(a.values) if a.values is not None else (a.steps or 2)
    msg = check_bound("points", n, "the number of points")
    if msg:
        prob(("sampling",) if "sampling" in d else ("axes",), msg)
        sampling["samples"] = 1 if sampling["method"] != "grid" else None
    return sampling


def _parse_static(d, prob) -> dict:
    st = d.get("static") or {}
    static = {k: v for k, (_, v) in STATIC_FIELDS.items()}
    if not isinstance(st, dict):
        prob(("static",), "expected {mode: request | decode_step | prefill_step, decode_samples: N}")
    else:
        _unknown(st, tuple(STATIC_FIELDS), ("static",), "static", prob)
        if "mode" in st:
            if st["mode"] not in STATIC_MODES:
                prob(("static", "mode"), f"expected one of {', '.join(STATIC_MODES)}; got {st['mode']!r}")
            else:
                static["mode"] = st["mode"]
        if "decode_samples" in st:
            if not _posint(st["decode_samples"]):
                prob(("static", "decode_samples"), f"expected a positive integer; got {st['decode_samples']!r}")
            else:
                static["decode_samples"] = st["decode_samples"]
    return static


def _parse_options(d, prob) -> CostOptions:
    opts = d.get("options") or {}
    options = CostOptions()
    if not isinstance(opts, dict):
        prob(("options",), f"expected a mapping of {', '.join(OPTION_FIELDS)} (true/false)")
    else:
        _unknown(opts, OPTION_FIELDS, ("options",), "options", prob)
        kw = {}
        for k, v in opts.items():
            if k in OPTION_FIELDS:
                if not isinstance(v, bool):
                    prob(("options", k), f"expected true or false; got {v!r}")
                else:
                    kw[k] = v
        options = CostOptions(**kw)
    return options


def _parse_cost(d, prob):
    from sim.tco import TcoAssumptions

    cost = TcoAssumptions()
    c = d.get("cost") or {}
    if not isinstance(c, dict):
        prob(("cost",), f"expected a mapping with any of: {', '.join(COST_FIELDS)}")
    else:
        _unknown(c, COST_FIELDS, ("cost",), "cost", prob)
        kw = {k: v for k, v in c.items() if k in COST_FIELDS}
        try:
            cost = TcoAssumptions(**kw)
        except SpecError as e:
            for pr in e.problems:
                prob(tuple(pr.path.split(".")) if pr.path else ("cost",), pr.message)
        except TypeError as e:
            prob(("cost",), str(e))
    return cost


def _parse_constraints(d, doc: Marked, axes: list, area, base, prob) -> list:
    names = [a.name for a in axes]
    constraints = []
    cs = d.get("constraints") or {}
    if not isinstance(cs, dict):
        prob(("constraints",), "expected a mapping of quantity -> {min: X, max: Y}")
        cs = {}
    allowed = list(DERIVED) + names
    for k, v in cs.items():
        if k not in allowed:
            hint = difflib.get_close_matches(k, allowed, n=1)
            prob(("constraints", k), f"unknown quantity '{k}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                 + f"; constraints can bound: {', '.join(allowed)}")
            continue
        if not isinstance(v, dict) or not v or set(v) - {"min", "max"}:
            prob(("constraints", k), "expected {min: X} and/or {max: Y}")
            continue
        lim = {}
        for side in ("min", "max"):
            if side in v:
                lim[side] = _limit(k, v[side], ("constraints", k, side), prob, axes)
        if k in ("area_mm2", "die_cost_usd") and area is None and (base is None or _chip(base).die_area_mm2 is None):
            prob(("constraints", k), f"bounding {k} needs the area model: add 'area: {{node: tsmc-n5}}'")
        constraints.append(Constraint(k, lim.get("min"), lim.get("max"), doc.where(("constraints", k))))
    return constraints


def _chip(hw) -> Chip:
    return hw.chip if isinstance(hw, System) else hw


def _posint(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _unknown(d: dict, allowed, path: tuple, what: str, prob) -> None:
    for k in d:
        if k not in allowed:
            hint = difflib.get_close_matches(str(k), list(allowed), n=1)
            dym = f"did you mean '{hint[0]}'? " if hint else ""
            prob(path + (k,), f"unknown key '{k}' in {what}; {dym}allowed: {', '.join(allowed)}")


def _limit(name, v, path, prob, axes):
    """A constraint bound: a number, or a quantity with a unit for hardware-axis names."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        from hwmodels.units import DIMENSIONS, UnitError, parse_quantity

        dims = {"tdp_w": "power", "power_w": "power", "area_mm2": "area", "die_cost_usd": "money",
                "chip_price_usd": "money", "usd_per_hour": "money_rate", "memory_capacity_bytes": "bytes"}
        dim = dims.get(name)
        if dim is not None:
            try:
                val = parse_quantity(v, dim)
                return val * 3600.0 if dim == "money_rate" else val
            except UnitError as e:
                prob(path, str(e))
                return None
        for dname in DIMENSIONS:
            try:
                return parse_quantity(v, dname)
            except UnitError:
                continue
    prob(path, f"expected a number (or a quantity with its unit); got {v!r}")
    return None


def _parse_model_block(d, key, allowed, base, prob):
    blk = d.get(key)
    if blk is None:
        return None
    if not isinstance(blk, dict):
        prob((key,), f"expected a mapping with any of: {', '.join(allowed)}")
        return None
    _unknown(blk, allowed, (key,), key, prob)
    from sim.tco import list_nodes, load_memory_tech, load_node

    out = {"node": blk.get("node", "tsmc-n5"), "memory": blk.get("memory", "hbm3"),
           "yield_model": blk.get("yield_model", "negative_binomial"), "mode": blk.get("mode", "auto")}
    if key == "power":
        if "model" in blk and not isinstance(blk["model"], bool):
            prob((key, "model"), f"expected true or false; got {blk['model']!r}")
        if not blk.get("model", True):
            return None
    try:
        load_node(out["node"])
    except SpecError as e:
        prob((key, "node"), e.problems[0].message + f" (nodes: {', '.join(list_nodes())})")
    try:
        load_memory_tech(out["memory"])
    except SpecError as e:
        prob((key, "memory"), e.problems[0].message)
    if out["yield_model"] not in ("negative_binomial", "murphy", "poisson"):
        prob((key, "yield_model"), f"expected negative_binomial, murphy or poisson; got {out['yield_model']!r}")
    if out["mode"] not in ("auto", "relative", "absolute"):
        prob((key, "mode"), f"expected auto, relative or absolute; got {out['mode']!r}")
    return out


def _parse_axis(key, spec, doc: Marked, base, prob) -> Axis | None:
    path = ("axes", key)
    where = doc.where(path)
    key = str(key)
    if key.startswith("hw."):
        kind = "hw"
    elif key.startswith("serving."):
        kind = "serving"
        if key.split(".", 1)[1] not in SERVING_FIELDS:
            f = key.split(".", 1)[1]
            hint = difflib.get_close_matches(f, list(SERVING_FIELDS), n=1)
            prob(path, f"unknown serving setting '{f}'" + (f" (did you mean 'serving.{hint[0]}'?)" if hint else "")
                 + f"; known: {', '.join(SERVING_FIELDS)}")
            return None
    elif key in WORKLOAD_FIELDS:
        kind = "workload"
    else:
        allowed = list(WORKLOAD_FIELDS) + [f"serving.{f}" for f in SERVING_FIELDS]
        hint = difflib.get_close_matches(key, allowed, n=1) or (["hw." + key] if "." in key else [])
        prob(path, f"unknown axis '{key}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
             + "; an axis is a hardware field 'hw.<override path>' (e.g. hw.memory.hbm.bandwidth), a workload "
               f"setting ({', '.join(WORKLOAD_FIELDS)}) or 'serving.<setting>'")
        return None
    ax = Axis(key, kind, where=where)
    if isinstance(spec, dict):
        allowed = ("range", "steps", "scale", "integer", "values")
        _unknown(spec, allowed, path, f"axis {key}", prob)
        if "values" in spec and "range" in spec:
            prob(path, "give either 'values' or 'range', not both")
            return None
        if "values" in spec:
            spec = spec["values"]
            path = path + ("values",)
        elif "range" not in spec:
            prob(path, "expected a list of values, one value, or {range: [lo, hi], steps: N, scale: linear|log}")
            return None
        else:
            r = spec["range"]
            if not isinstance(r, list) or len(r) != 2:
                prob(path + ("range",), f"expected [lo, hi]; got {r!r}")
                return None
            ax.scale = spec.get("scale", "linear")
            if ax.scale not in ("linear", "log"):
                prob(path + ("scale",), f"expected linear or log; got {ax.scale!r}")
                return None
            if "steps" in spec:
                if not _posint(spec["steps"]):
                    prob(path + ("steps",), f"expected a positive integer; got {spec['steps']!r}")
                    return None
                ax.steps = spec["steps"]
            ax.integer = bool(spec.get("integer", False))
            lo_hi = _normalize(ax, list(r), path + ("range",), base, prob, ranged=True)
            if lo_hi is None:
                return None
            lo, hi = lo_hi
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lo, hi)):
                prob(path + ("range",), f"a range needs two numbers (or quantities); got {r!r}")
                return None
            if not lo < hi:
                prob(path + ("range",), f"expected lo < hi; got {r!r}")
                return None
            if ax.scale == "log" and lo <= 0:
                prob(path + ("range",), "a log range needs lo > 0")
                return None
            if kind in ("workload", "serving") and _field_type(ax) is int or (kind == "hw" and ax.key == "chip.cores"):
                ax.integer = True
            if kind in ("workload", "serving") and _field_type(ax) in (str, bool, None):
                prob(path, f"'{key}' takes {'true/false' if _field_type(ax) is bool else 'names'}, not a range")
                return None
            ax.lo, ax.hi = float(lo), float(hi)
            return ax
    vals = spec if isinstance(spec, list) else [spec]
    if not vals:
        prob(path, f"axis '{key}' is empty: give at least one value")
        return None
    norm = _normalize(ax, vals, path, base, prob, ranged=False)
    if norm is None:
        return None
    ax.values = norm
    return ax


def _field_type(ax: Axis):
    if ax.kind == "workload":
        return WORKLOAD_FIELDS[ax.name][0]
    if ax.kind == "serving":
        return SERVING_FIELDS[ax.field][0]
    return None


def _normalize(ax: Axis, vals: list, path: tuple, base, prob, ranged: bool):
    """Check and normalize an axis's values; hardware values by loading the base with each one."""
    if ax.kind in ("workload", "serving"):
        typ = _field_type(ax)
        out = []
        for i, v in enumerate(vals):
            sub = path + (i,)
            if ranged and typ in (int, float):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                    prob(sub, f"expected a positive number; got {v!r}")
                    return None
                out.append(v)
                continue
            got = check_value(ax.field, v, typ, sub, prob)
            if got is None:
                return None
            out.append(got)
        if ax.name == "model":
            from workloads import load_model

            for i, m in enumerate(out):
                try:
                    load_model(m)
                except SpecError as e:
                    prob(path + (i,), e.problems[0].message if e.problems else str(e))
                    return None
        if ax.name == "quant":
            from workloads import Quantization

            for i, q in enumerate(out):
                try:
                    Quantization.parse(q)
                except SpecError as e:
                    prob(path + (i,), e.problems[0].message if e.problems else str(e))
                    return None
        return out
    # hardware: validate through the loader, read the SI value back
    if base is None:
        return None
    from hwmodels.loader import load_hardware, resolve
    from sim.vector import canonical_key, param_table

    hpath = ax.field
    ax.path = hpath
    key = canonical_key(base, hpath)
    table = param_table(base)
    ref = base.path or resolve(base.name)
    out = []
    for i, v in enumerate(vals):
        sub = path + (i,) if len(vals) > 1 or not ranged else path
        if isinstance(v, (list, dict)) and key in table:
            prob(sub, f"expected one value for {hpath}; got {v!r}")
            return None
        try:
            obj = load_hardware(ref, {hpath: v})
        except SpecError as e:
            for pr in e.problems:
                msg = pr.message.replace("--set ", "")
                if pr.path and pr.path not in msg:
                    msg = f"{pr.path}: {msg}"
                prob(sub, f"{msg}" if "did you mean" in msg or "does not exist" in msg or "no entry" in msg
                     else f"{hpath} = {v!r}: {msg}")
            return None
        except InfeasibleError as e:
            prob(sub, f"{hpath} = {v!r}: {e}")
            return None
        if key in table:
            out.append(float(param_table(obj)[key]) if key != "chip.cores" else int(param_table(obj)[key]))
        else:
            if ranged and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
                prob(sub, f"{hpath} is not a number the vector path can vary; give a list of values")
                return None
            out.append(v)
    if key in table:
        ax.key = key
    return out
