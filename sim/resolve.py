"""Resolving what a prediction or a serving run names: the hardware (a System with room for the
parallelism), the quantization scheme and the price of the chips used.

Shared by ``sim.predict``, ``sim.serving``, ``sim.techniques`` and the planners, below all of
them (it imports none of them).
"""

from __future__ import annotations

from hwmodels.chip import Chip, System
from hwmodels.errors import InfeasibleError
from hwmodels.loader import load_hardware, standard_system_for
from workloads import Quantization

__all__ = ["make_quantization", "resolve_system", "system_usd_per_s"]


def resolve_system(hw, chips_needed: int, overrides=None) -> tuple[System, list[str]]:
    """A System for ``hw`` (name, path, Chip or System) with room for ``chips_needed`` chips."""
    notes = []
    obj = load_hardware(hw, overrides) if isinstance(hw, str) or hasattr(hw, "__fspath__") else hw
    if isinstance(obj, Chip):
        if chips_needed <= 1:
            return System.single(obj), notes
        std = standard_system_for(obj.name, chips_needed)
        if std is None:
            raise InfeasibleError(f"{obj.name} is one chip and the catalog has no system of at least "
                                  f"{chips_needed} {obj.name} chips; give --hw a system", {"chips_needed": chips_needed})
        chip_ovr = [o if isinstance(o, str) else f"{o[0]}={o[1]}" for o in (overrides or [])] if not isinstance(overrides, dict) \
            else {(k if k.startswith("chip.") else f"chip.{k}"): v for k, v in overrides.items()}
        if isinstance(chip_ovr, list):
            chip_ovr = [o if o.startswith("chip.") else f"chip.{o}" for o in chip_ovr]
        sysobj = load_hardware(std, chip_ovr or None)
        notes.append(f"{obj.name} is one chip; using its standard system {std} ({sysobj.count} chips)"
                     + _price_change(obj, sysobj))
        return sysobj, notes
    if chips_needed > obj.count:
        raise InfeasibleError(f"the parallelism needs {chips_needed} chips; {obj.name} has {obj.count}",
                              {"chips_needed": chips_needed, "chips": obj.count})
    return obj, notes


def _price_change(chip: Chip, system: System) -> str:
    """What switching from a chip to its system does to the price per chip-hour (the pricing rule)."""
    before, after = chip.price_usd_per_hour, system.usd_per_hour
    if before is None and after is None:
        return "; neither has a price"
    if after is None:
        return f"; price: {system.name} has none ({chip.name} has {before:.4g} USD/h per chip)"
    after /= max(system.count, 1)
    was = "no price" if before is None else f"{before:.4g}"
    return (f"; price per chip-hour {was} -> {after:.4g} USD/h ({system.name}: system premium "
            f"{system.price_premium:+.0%}; docs/hardware-format.md, Prices)")


def system_usd_per_s(system: System, chips: int) -> float | None:
    """USD per second for ``chips`` chips of ``system`` (its price shared pro rata)."""
    per_h = system.usd_per_hour
    if per_h is None:
        return None
    return per_h / 3600.0 * chips / max(system.count, 1)


def make_quantization(quant="bf16", weight_dtype=None, act_dtype=None, kv_dtype=None):
    """A named scheme (or Quantization) with any of its three dtypes overridden."""
    import dataclasses

    q = Quantization.parse(quant)
    changes = {k: v for k, v in (("weight", weight_dtype), ("activation", act_dtype), ("kv_cache", kv_dtype)) if v is not None}
    if changes:
        q = dataclasses.replace(q, scheme=None, **changes)
    return q
