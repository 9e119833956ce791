"""A sweep point's hardware: its structure (a System), its numbers (vector arrays) and what they cost.

Hardware axes come in two sorts (sim/vector.py): *numeric* fields the vector path varies per
point (bandwidths, capacities, peaks, core count, latencies, prices...) and *structural* ones
(chip count, tier fan-outs, tiles, a field the base does not list) that change the shape of the
description. Points are grouped by their structural values; each group loads the base once
with those overrides (cached per process) and carries the numeric axes as arrays.

A chip base promoted to several chips (tp x pp x dp > 1) becomes the catalog's standard system
of that chip (as ``llmsim predict`` does), with the structural overrides applied to its chip.

Derived quantities per point (for constraints and for the table): chips, area and die cost (area
model), chip price, TDP (power model or the hardware's), power, cost per hour (sim/tco.py),
main-memory capacity.
"""

from __future__ import annotations

import functools

import numpy as np

from hwmodels.chip import Chip, System
from hwmodels.errors import InfeasibleError
from sim.vector import HwPoints

__all__ = ["capacity_bytes", "derived", "hw_points", "parallel_of", "structural_key", "structure"]


def parallel_of(spec, row) -> dict:
    """tp, pp, ep, dp, chips per replica, replicas and total chips of a point."""
    tp, pp, ep = int(spec.value_of("tp", row)), int(spec.value_of("pp", row)), int(spec.value_of("ep", row))
    from workloads import Parallelism

    dp = Parallelism.from_degrees(tp, pp, ep).dp  # the one rule (predict's and serve's)
    replicas = int(spec.value_of("replicas", row))
    per = tp * pp * dp
    return {"tp": tp, "pp": pp, "ep": ep, "dp": dp, "chips_per_replica": per, "replicas": replicas,
            "chips": per * replicas}


def structural_key(spec, row) -> tuple:
    """(override path, value) of the structural hardware axes at this point."""
    out = []
    for a in spec.axes:
        if a.kind == "hw" and a.key is None:
            v = row[a.name]
            out.append((a.path, v.item() if hasattr(v, "item") else v))
    return tuple(out)


def structure(spec, overrides: tuple, chips: int) -> System:
    """The System of a structural group (cached per process); InfeasibleError if it cannot hold ``chips``."""
    return _structure(spec.hardware, overrides, chips)


@functools.lru_cache(maxsize=256)
def _structure(hardware: str, overrides: tuple, chips: int) -> System:
    from hwmodels.loader import load_hardware, standard_system_for

    obj = load_hardware(hardware, dict(overrides) if overrides else None)
    if isinstance(obj, Chip):
        if chips <= 1:
            return System.single(obj)
        std = standard_system_for(obj.name, chips)
        if std is None:
            raise InfeasibleError(f"{obj.name} is one chip and the catalog has no system of at least {chips} "
                                  f"{obj.name} chips; give the sweep a system as its hardware", {"chips_needed": chips})
        return load_hardware(std, {f"chip.{p}": v for p, v in overrides} or None)
    if chips > obj.count:
        raise InfeasibleError(f"the parallelism needs {chips} chips; {obj.name} has {obj.count}",
                              {"chips_needed": chips, "chips": obj.count})
    return obj


def hw_points(spec, system: System, frame, extra: dict | None = None) -> HwPoints:
    """The group's points: its numeric hardware axes as arrays (plus ``extra`` key -> array)."""
    vals = {}
    for a in spec.axes:
        if a.vector:
            vals[a.key] = frame[a.name].to_numpy()
    vals.update(extra or {})
    return HwPoints(system, vals, n=len(frame))


def capacity_bytes(hw: HwPoints):
    """Bytes a chip holds for weights + KV per point (``Chip.capacity_for_weights`` over the points'
    capacities and core counts)."""
    return hw.system.chip.capacity_for_weights(lambda m: hw.get(f"chip.memory.{m.name}.capacity"),
                                               hw.get("chip.cores"))


def _models(spec):
    from sim.tco import load_memory_tech, load_node

    a = spec.area
    p = spec.power
    area = None if a is None else (load_node(a["node"]), load_memory_tech(a["memory"]), a)
    power = None if p is None else (load_node(p["node"]), load_memory_tech(p["memory"]), p)
    return area, power


def derived(spec, system: System, hw: HwPoints, chips_total) -> dict:
    """Per-point derived quantities (arrays of len(hw)): see DERIVED in sim/sweep/spec.py.

    Also returns ``tdp_override`` (array or None): the power model's TDP, to be priced into energy.
    """
    from sim.tco import area_mm2, chip_cost, die_cost, tco_per_hour, tdp_w

    n = len(hw)
    chip = system.chip
    out: dict = {}
    area_m, power_m = _models(spec)
    base = HwPoints(system)  # the group's structure with base numbers (relative mode's reference)
    if area_m is not None:
        node, mem, cfg = area_m
        ym, margin = cfg["yield_model"], spec.cost.gross_margin
        model_pt = np.broadcast_to(area_mm2(hw, node, mem)["total"], (n,))
        rel = cfg["mode"] == "relative" or (cfg["mode"] == "auto" and chip.die_area_mm2 is not None)
        rel = rel and chip.die_area_mm2 is not None
        area = chip.die_area_mm2 * model_pt / float(area_mm2(base, node, mem)["total"]) if rel else model_pt

        def model_price(a, h):
            cc = chip_cost(h, node, mem, ym, margin)
            return (die_cost(a, node, ym)["silicon_usd"] + cc["hbm_usd"] + cc["packaging_usd"]) / (1 - margin)

        price = model_price(area, hw)
        if rel and chip.list_price_usd is not None:  # scale the real list price by the model's ratio
            price = np.asarray(hw.get("chip.price.list"), dtype=float) * price / float(model_price(chip.die_area_mm2, base))
        out["area_mm2"] = np.asarray(area, dtype=float)
        out["die_cost_usd"] = np.broadcast_to(die_cost(area, node, ym)["silicon_usd"], (n,)).astype(float)
        out["chip_price_usd"] = np.broadcast_to(np.asarray(price, dtype=float), (n,))
    else:
        out["area_mm2"] = np.full(n, np.nan if chip.die_area_mm2 is None else chip.die_area_mm2)
        out["die_cost_usd"] = np.full(n, np.nan)
        out["chip_price_usd"] = np.broadcast_to(np.asarray(hw.get("chip.price.list"), dtype=float), (n,))
    tdp_override = None
    if power_m is not None:
        node, mem, cfg = power_m
        model_pt = np.broadcast_to(tdp_w(hw, node, mem)["total"], (n,))
        rel = cfg["mode"] == "relative" or (cfg["mode"] == "auto" and chip.tdp_w)
        if rel and chip.tdp_w:
            tdp = chip.tdp_w * model_pt / float(tdp_w(base, node, mem)["total"])
        else:
            tdp = model_pt
        tdp_override = np.asarray(tdp, dtype=float)
        out["tdp_w"] = tdp_override
    else:
        out["tdp_w"] = np.broadcast_to(np.asarray(hw.get("chip.power.tdp"), dtype=float), (n,))
    chips_total = np.broadcast_to(np.asarray(chips_total, dtype=float), (n,))
    overhead = np.asarray(hw.get("system.power.overhead"), dtype=float) * chips_total / max(system.count, 1)
    out["power_w"] = chips_total * out["tdp_w"] + overhead
    purchase = None if area_m is None else out["chip_price_usd"]
    t = tco_per_hour(hw, chips_total, spec.cost, purchase_usd=purchase,
                     tdp=tdp_override if tdp_override is not None else None)
    out["usd_per_hour"] = np.broadcast_to(t["usd_per_hour"], (n,)).astype(float)
    out["cost_source"] = np.broadcast_to(t["source"], (n,)).astype(object)
    out["memory_capacity_bytes"] = np.broadcast_to(np.asarray(capacity_bytes(hw), dtype=float), (n,))
    out["chips"] = chips_total.astype(np.int64)
    out["tdp_override"] = tdp_override
    return out


def check_constraints(spec, values: dict, frame) -> np.ndarray:
    """Mask of points that satisfy every constraint (values: derived arrays; frame: axis columns)."""
    n = len(frame)
    ok = np.ones(n, dtype=bool)
    for c in spec.constraints:
        v = values[c.name] if c.name in values else frame[c.name].to_numpy()
        v = np.asarray(v, dtype=float)
        if c.min is not None:
            ok &= v >= c.min
        if c.max is not None:
            ok &= v <= c.max
    return ok


def describe_range(spec, c, v) -> str:
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    lim = " and ".join(x for x in (f">= {c.min:g}" if c.min is not None else "",
                                   f"<= {c.max:g}" if c.max is not None else "") if x)
    if not v.size:
        return f"{c.name} is unknown at every point (needs {lim})"
    return f"{c.name} ranges {v.min():.4g} .. {v.max():.4g}; the constraint needs {lim}"

