"""Hardware parameters by canonical key, as numbers (one chip) or arrays (design points).

The cost model (sim/cost.py) reads every numeric hardware parameter through an ``HwPoints``: for
one chip each parameter is its file's value (a float); for a sweep the parameters that vary are
arrays of length ``P`` and the same formulas run over all points at once.

What may vary per point (the *numeric* parameters, keys listed by :func:`param_table`):
core count, matrix/vector peaks per dtype (and sparse peaks) with their efficiencies, every memory
level's capacity, bandwidth, latency, scalar efficiency, per-op-kind efficiencies and energy per
byte, launch overhead, TDP and idle power, prices, and every interconnect tier's bandwidth,
latency and efficiency. What is fixed by the base description (the *structure*): which levels and
units exist and their kinds, native tile shapes, efficiency *tables*, which dtype keys a unit
lists (rate fallbacks), tier fan-outs and topologies, the chip count. A sweep that varies
structure groups its points by structure (sim/sweep/static.py).
"""

from __future__ import annotations

import difflib
from dataclasses import replace

import numpy as np

from hwmodels.chip import Chip, System

__all__ = ["HwPoints", "canonical_key", "param_table", "scalar_points"]


# ---------------------------------------------------------------------------------------------
# parameters: canonical keys <-> hardware fields

def param_table(hw: System | Chip) -> dict:
    """Every numeric parameter the vector path can vary, with its base value (SI floats).

    Keys are canonical override paths: ``chip.<path>`` for chip fields, ``system.<path>`` for
    system fields, list entries by name (memory levels, tiers) or kind (compute units), e.g.
    ``chip.memory.hbm.bandwidth``, ``chip.compute.matrix.peak.bf16``, ``system.tiers.nvlink.latency``.
    Absent optional values are NaN for prices and 0 for power/overhead, as the scalar model reads them.
    """
    system = hw if isinstance(hw, System) else System.single(hw)
    chip = system.chip
    p: dict = {"chip.cores": float(chip.cores), "chip.launch_overhead": chip.launch_overhead_s,
               "chip.kernel_fixed_time": chip.kernel_fixed_time_s,
               "chip.power.tdp": chip.tdp_w or 0.0, "chip.power.idle": chip.idle_w or 0.0,
               "chip.price.cloud": np.nan if chip.cloud_usd_per_s is None else chip.cloud_usd_per_s,
               "chip.price.list": np.nan if chip.list_price_usd is None else chip.list_price_usd}
    for key, v in (chip.energy_per_flop_j or {}).items():
        p[f"chip.power.energy_per_flop.{key}"] = v
    for u in chip.compute:
        for key, v in u.peak.items():
            p[f"chip.compute.{u.kind}.peak.{key}"] = v
        for key, v in (u.sparse_peak or {}).items():
            p[f"chip.compute.{u.kind}.sparse_peak.{key}"] = v
        # a fraction is a parameter; a table by op size is structure (read per op in _rate)
        if not isinstance(u.efficiency, (tuple, list)):
            p[f"chip.compute.{u.kind}.efficiency"] = 1.0 if u.efficiency is None else float(u.efficiency)
        for key, v in (u.efficiency_by_dtype or {}).items():
            p[f"chip.compute.{u.kind}.efficiency_by_dtype.{key}"] = float(v)
    for m in chip.memory:
        pre = f"chip.memory.{m.name}"
        p[f"{pre}.capacity"] = m.capacity_bytes
        p[f"{pre}.bandwidth"] = m.bandwidth_bytes_per_s
        p[f"{pre}.latency"] = m.latency_s
        if not isinstance(m.efficiency, (tuple, list)):
            p[f"{pre}.efficiency"] = 1.0 if m.efficiency is None else float(m.efficiency)
        if m.energy_per_byte_j is not None:
            p[f"{pre}.energy_per_byte"] = m.energy_per_byte_j
        for kind, v in (m.efficiency_by_kind or {}).items():
            p[f"{pre}.efficiency_by_kind.{kind}"] = float(v)
        for pat, v in (m.efficiency_by_pattern or {}).items():
            p[f"{pre}.efficiency_by_pattern.{pat}"] = float(v)
    for t in system.tiers:
        pre = f"system.tiers.{t.name}"
        p[f"{pre}.bandwidth"] = t.bandwidth_bytes_per_s
        p[f"{pre}.latency"] = t.latency_s
        p[f"{pre}.efficiency"] = t.efficiency or 1.0
    p["system.price.cloud"] = np.nan if system.cloud_usd_per_s is None else system.cloud_usd_per_s
    p["system.price.list"] = np.nan if system.list_price_usd is None else system.list_price_usd
    p["system.power.overhead"] = system.power_overhead_w or 0.0
    return p


_SYSTEM_FIELDS = ("version", "kind", "name", "description", "hypothetical", "source", "chip", "count", "tiers",
                  "price", "power")


def canonical_key(hw: System | Chip, path: str) -> str:
    """An override path as the loader reads it (on ``hw``) -> the canonical key of that field.

    List entries given by index become names (``memory.2.bandwidth`` -> ``chip.memory.hbm.bandwidth``).
    The result may name a structural field that :func:`param_table` does not list.
    """
    segs = [s for s in str(path).replace("[", ".").replace("]", "").split(".") if s]
    is_system = isinstance(hw, System)
    if segs and segs[0] == "chip" and (len(segs) > 1 or not is_system):
        scope, segs = "chip", segs[1:]
    elif is_system and segs and segs[0] in _SYSTEM_FIELDS:
        scope = "system"
    else:
        scope = "chip"
    chip = hw.chip if is_system else hw
    if len(segs) >= 2:
        lists = {("chip", "memory"): [m.name for m in chip.memory],
                 ("chip", "compute"): [u.kind for u in chip.compute],
                 ("system", "tiers"): [t.name for t in hw.tiers] if is_system else []}
        names = lists.get((scope, segs[0]))
        if names is not None and segs[1].isdigit() and int(segs[1]) < len(names):
            segs = [segs[0], names[int(segs[1])]] + segs[2:]
    return ".".join([scope] + segs)


class HwPoints:
    """``P`` design points: a base system (the structure) and arrays for the parameters that vary.

    ``values`` maps canonical keys (:func:`param_table`) to arrays of length ``P`` (or scalars);
    parameters not given keep the base value. Values are SI floats (``chip.cores`` integers).
    """

    def __init__(self, hw: System | Chip, values: dict | None = None, n: int | None = None):
        self.system = hw if isinstance(hw, System) else System.single(hw)
        self.base = param_table(self.system)
        vals: dict = {}
        sizes = set()
        for k, v in (values or {}).items():
            if k not in self.base:
                hint = difflib.get_close_matches(k, list(self.base), n=1)
                dym = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise KeyError(f"'{k}' is not a numeric parameter of {self.system.name} that the vector path "
                               f"can vary{dym}")
            a = np.asarray(v, dtype=np.int64 if k == "chip.cores" else np.float64)
            if a.ndim == 0:
                a = a.reshape(1)
            if a.ndim != 1:
                raise ValueError(f"{k}: expected a 1-d array, got shape {a.shape}")
            sizes.add(a.size)
            vals[k] = a
        if len(sizes - {1}) > 1:
            raise ValueError(f"parameter arrays differ in length: {sorted(sizes)}")
        self.n = n if n is not None else (max(sizes) if sizes else 1)
        for k, a in vals.items():
            if a.size == 1 and self.n != 1:
                vals[k] = np.broadcast_to(a, (self.n,))
            elif a.size != self.n:
                raise ValueError(f"{k}: {a.size} values for {self.n} points")
        self.values = vals

    def __len__(self) -> int:
        return self.n

    def get(self, key: str):
        """The array for ``key`` if it varies, else its base value (a float; cores an int)."""
        v = self.values.get(key)
        if v is not None:
            return v
        b = self.base[key]
        return int(b) if key == "chip.cores" else b

    def array(self, key: str) -> np.ndarray:
        """``key`` as a length-P array (base values broadcast)."""
        v = self.get(key)
        return v if isinstance(v, np.ndarray) else np.full(self.n, v, dtype=np.int64 if key == "chip.cores" else float)

    def system_at(self, i: int) -> System:
        """The scalar System of point ``i`` (the base with this point's values; for the scalar path)."""
        v = {k: a[i] for k, a in self.values.items()}
        if not v:
            return self.system
        sysobj, chip = self.system, self.system.chip

        def num(key, cur, none_if=None):
            if key not in v:
                return cur
            x = v[key]
            if none_if == "nan" and np.isnan(x):
                return None
            return float(x)

        units = []
        for u in chip.compute:
            pre = f"chip.compute.{u.kind}"
            peak = {k: num(f"{pre}.peak.{k}", x) for k, x in u.peak.items()}
            sparse = {k: num(f"{pre}.sparse_peak.{k}", x) for k, x in (u.sparse_peak or {}).items()}
            eff = num(f"{pre}.efficiency", u.efficiency)
            by_dtype = {k: num(f"{pre}.efficiency_by_dtype.{k}", x) for k, x in (u.efficiency_by_dtype or {}).items()}
            units.append(replace(u, peak=peak, sparse_peak=sparse, efficiency=eff, efficiency_by_dtype=by_dtype))
        levels = []
        for m in chip.memory:
            pre = f"chip.memory.{m.name}"
            levels.append(replace(m, capacity_bytes=num(f"{pre}.capacity", m.capacity_bytes),
                                  bandwidth_bytes_per_s=num(f"{pre}.bandwidth", m.bandwidth_bytes_per_s),
                                  latency_s=num(f"{pre}.latency", m.latency_s),
                                  efficiency=num(f"{pre}.efficiency", m.efficiency),
                                  energy_per_byte_j=num(f"{pre}.energy_per_byte", m.energy_per_byte_j),
                                  efficiency_by_kind={k: num(f"{pre}.efficiency_by_kind.{k}", x)
                                                      for k, x in (m.efficiency_by_kind or {}).items()},
                                  efficiency_by_pattern={k: num(f"{pre}.efficiency_by_pattern.{k}", x)
                                                         for k, x in (m.efficiency_by_pattern or {}).items()}))
        epf = {k: num(f"chip.power.energy_per_flop.{k}", x) for k, x in (chip.energy_per_flop_j or {}).items()}
        new_chip = replace(chip, cores=int(v.get("chip.cores", chip.cores)), compute=tuple(units), memory=tuple(levels),
                           launch_overhead_s=num("chip.launch_overhead", chip.launch_overhead_s),
                           kernel_fixed_time_s=num("chip.kernel_fixed_time", chip.kernel_fixed_time_s),
                           tdp_w=num("chip.power.tdp", chip.tdp_w), idle_w=num("chip.power.idle", chip.idle_w),
                           energy_per_flop_j=epf, cloud_usd_per_s=num("chip.price.cloud", chip.cloud_usd_per_s, "nan"),
                           list_price_usd=num("chip.price.list", chip.list_price_usd, "nan"))
        tiers = tuple(replace(t, bandwidth_bytes_per_s=num(f"system.tiers.{t.name}.bandwidth", t.bandwidth_bytes_per_s),
                              latency_s=num(f"system.tiers.{t.name}.latency", t.latency_s),
                              efficiency=num(f"system.tiers.{t.name}.efficiency", t.efficiency))
                      for t in sysobj.tiers)
        return replace(sysobj, chip=new_chip, tiers=tiers,
                       cloud_usd_per_s=num("system.price.cloud", sysobj.cloud_usd_per_s, "nan"),
                       list_price_usd=num("system.price.list", sysobj.list_price_usd, "nan"),
                       power_overhead_w=num("system.power.overhead", sysobj.power_overhead_w))

    def slice(self, start: int, stop: int) -> HwPoints:
        out = HwPoints.__new__(HwPoints)
        out.system, out.base = self.system, self.base
        out.values = {k: v[start:stop] for k, v in self.values.items()}
        out.n = max(0, min(stop, self.n) - start)
        return out

    def take(self, idx) -> HwPoints:
        out = HwPoints.__new__(HwPoints)
        out.system, out.base = self.system, self.base
        idx = np.asarray(idx)
        out.values = {k: np.asarray(v)[idx] for k, v in self.values.items()}
        out.n = int(idx.size) if idx.dtype != bool else int(idx.sum())
        return out




_SCALAR: dict = {}  # id(system) -> (system, HwPoints): the parameters of systems priced one at a time


def scalar_points(hw: System | Chip) -> HwPoints:
    """The one-point HwPoints of ``hw`` (every parameter a float), cached per object."""
    hit = _SCALAR.get(id(hw))
    if hit is not None and hit[0] is hw:
        return hit[1]
    pts = HwPoints(hw)
    if len(_SCALAR) >= 256:
        _SCALAR.clear()
    _SCALAR[id(hw)] = (hw, pts)
    return pts
