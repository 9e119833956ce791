"""Cost, power and area: what a design point costs to build and to run, per hour.

Three models, each a few formulas over a chip's catalog fields (scalars or sweep arrays alike):

Area (hypothetical chips; data per process node in hwmodels/catalog/tech/, every number sourced)::

    area_mm2 = logic_mm2_per_tflop x matrix TFLOP/s (bf16 dense)
             + sram_mm2_per_mb x on-chip SRAM/cache MB (per-core levels x cores)
             + hbm_phy_mm2_per_stack x HBM stacks      (stacks = ceil(max(capacity / stack GiB,
                                                         bandwidth / stack GB/s)))
             + link_mm2_per_gb_s x link GB/s per direction (system tiers, else chip links)
             + fixed_mm2

Die cost: a design larger than the reticle is split into ``ceil(area / reticle)`` equal dies;
dies per 300 mm wafer ``pi (d/2)^2 / A - pi d / sqrt(2 A)``; yield by the negative-binomial
(Stapper) model ``(1 + A D0 / alpha)^-alpha`` or Murphy's ``((1 - e^{-A D0}) / (A D0))^2``; cost
of a good die = wafer price / (dies per wafer x yield). Chip cost = dies + HBM (GB x USD/GB) +
packaging; purchase price = chip cost / (1 - gross margin).

Power (TDP estimate, all units at peak at once)::

    tdp_w = static_w_per_mm2 x area + matrix peak x pJ/FLOP
          + per-core SRAM bandwidth x pJ/B + chip-level SRAM/cache bandwidth x pJ/B
          + HBM bandwidth x pJ/B + link bandwidth (both directions) x pJ/B

Total cost of ownership per hour (all assumptions printed with the result by ``describe``)::

    cloud:     the hardware's cloud price (USD/h)
    purchase:  price / (lifetime_years x 8766 h)                       capital
             + chips x (idle + (TDP - idle) x utilization) x PUE x USD/kWh   power
             + the system's power overhead (host, switches) x PUE x USD/kWh, pro rata

In ``relative`` mode (default when the base chip lists the figure) a sweep point's area and TDP
are the base chip's published figure times the model's ratio point/base, which keeps the base
exact and lets the model speak only about the change.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml

from hwmodels.chip import Chip, System
from hwmodels.errors import Problem, SpecError
from sim.vector import HwPoints

__all__ = [
    "HOURS_PER_YEAR",
    "MemoryTech",
    "Node",
    "TcoAssumptions",
    "area_mm2",
    "chip_cost",
    "die_cost",
    "list_nodes",
    "load_memory_tech",
    "load_node",
    "tco_per_hour",
    "tdp_w",
]

TECH = Path(__file__).resolve().parents[1] / "hwmodels" / "catalog" / "tech"
HOURS_PER_YEAR = 8766.0  # 365.25 days


@dataclass(frozen=True)
class Node:
    """A process node's area, cost and energy coefficients (units in the field names)."""

    name: str
    description: str
    source: tuple
    sram_mm2_per_mb: float
    hbm_phy_mm2_per_stack: float
    link_mm2_per_gb_s: float
    fixed_mm2: float
    logic_mm2_per_tflop: float
    reticle_mm2: float
    wafer_usd: float
    wafer_diameter_mm: float
    defect_density_per_cm2: float
    cluster_alpha: float
    matrix_pj_per_flop: float
    core_sram_pj_per_byte: float
    chip_sram_pj_per_byte: float
    link_pj_per_byte: float
    static_w_per_mm2: float


@dataclass(frozen=True)
class MemoryTech:
    name: str
    stack_capacity_gb: float
    stack_bandwidth_gb_s: float
    pj_per_byte: float
    usd_per_gb: float
    packaging_usd: float
    source: tuple = ()


def list_nodes() -> list[str]:
    return sorted(p.stem for p in TECH.glob("*.yaml") if p.stem != "memory")


def _read(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def load_node(name: str) -> Node:
    """A process node by name (``tsmc-n5``), SpecError with did-you-mean otherwise."""
    path = TECH / f"{name}.yaml"
    if name == "memory" or not path.exists():
        hint = difflib.get_close_matches(str(name), list_nodes(), n=1)
        dym = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise SpecError([Problem(f"unknown process node '{name}'{dym}; known: {', '.join(list_nodes())}")])
    d = _read(path)
    kw = {f.name: d[f.name] for f in fields(Node) if f.name not in ("name", "description", "source")}
    return Node(name=d["name"], description=d.get("description", ""), source=tuple(d.get("source", ())),
                **{k: float(v) for k, v in kw.items()})


def load_memory_tech(name: str = "hbm3") -> MemoryTech:
    d = _read(TECH / "memory.yaml")
    types = d["types"]
    if name not in types:
        hint = difflib.get_close_matches(str(name), list(types), n=1)
        dym = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise SpecError([Problem(f"unknown memory technology '{name}'{dym}; known: {', '.join(types)}")])
    t = types[name]
    return MemoryTech(name, float(t["stack_capacity_gb"]), float(t["stack_bandwidth_gb_s"]), float(t["pj_per_byte"]),
                      float(t["usd_per_gb"]), float(d["packaging_usd"]), tuple(d.get("source", ())))


# ---------------------------------------------------------------------------------------------
# chip features (arrays over sweep points or scalars)

def _points(hw):
    if isinstance(hw, HwPoints):
        return hw
    return HwPoints(hw)


def _matrix_flops(hw) -> object:
    """Dense bf16-class matrix peak (FLOP/s): bf16, else fp16, else half of fp8/int8, else fp32 x 2."""
    chip = hw.system.chip
    unit = chip.matrix_unit()
    for key, f in (("bf16", 1.0), ("fp16", 1.0), ("fp8", 0.5), ("int8", 0.5), ("tf32", 2.0), ("fp32", 2.0)):
        if key in unit.peak:
            return hw.get(f"chip.compute.{unit.kind}.peak.{key}") * f
    return 0.0


def features(hw) -> dict:
    """What the area and power models read from a chip: FLOP/s, bytes, bandwidths (arrays or floats)."""
    hw = _points(hw)
    sysobj, chip = hw.system, hw.system.chip
    g = hw.get
    cores = g("chip.cores")
    core_sram = chip_sram = 0.0
    core_bw = chip_bw = 0.0
    dram_cap = dram_bw = 0.0
    main = chip.main_memory
    for m in chip.memory:
        cap, bw = g(f"chip.memory.{m.name}.capacity"), g(f"chip.memory.{m.name}.bandwidth")
        if m.kind in ("sram", "cache"):
            if m.per == "core":
                core_sram = core_sram + cap * cores
                core_bw = core_bw + bw
            else:
                chip_sram = chip_sram + cap
                chip_bw = chip_bw + bw
        elif m.kind == "dram" and m is main:
            dram_cap, dram_bw = cap, bw
    if sysobj.tiers:
        link = 0.0
        for t in sysobj.tiers:
            link = link + g(f"system.tiers.{t.name}.bandwidth")
    else:
        link = chip.interconnect.bandwidth_bytes_per_s if chip.interconnect else 0.0
    link = link + (chip.host_link.bandwidth_bytes_per_s if chip.host_link else 0.0)
    return {"matrix_flops": _matrix_flops(hw), "core_sram_bytes": core_sram, "chip_sram_bytes": chip_sram,
            "core_sram_bw": core_bw, "chip_sram_bw": chip_bw, "dram_bytes": dram_cap, "dram_bw": dram_bw,
            "link_bw": link}


# ---------------------------------------------------------------------------------------------
# area and die cost

def hbm_stacks(dram_bytes, dram_bw, mem: MemoryTech):
    """Stacks needed for the capacity and the bandwidth (0 for a chip without DRAM)."""
    # a stack's capacity is binary (a '16 GB' HBM3 stack holds 16 GiB) and a chip's the total its device reports
    need = np.maximum(np.asarray(dram_bytes) / (mem.stack_capacity_gb * 2**30),
                      np.asarray(dram_bw) / (mem.stack_bandwidth_gb_s * 1e9))
    return np.maximum(0.0, np.ceil(need - 1e-9))


def area_mm2(hw, node: Node, mem: MemoryTech) -> dict:
    """Area breakdown (mm2, arrays or floats): logic, sram, phy, links, fixed, total, and hbm_stacks."""
    f = features(hw)
    logic = node.logic_mm2_per_tflop * np.asarray(f["matrix_flops"]) / 1e12
    sram = node.sram_mm2_per_mb * (np.asarray(f["core_sram_bytes"]) + np.asarray(f["chip_sram_bytes"])) / 1e6
    stacks = hbm_stacks(f["dram_bytes"], f["dram_bw"], mem)
    phy = node.hbm_phy_mm2_per_stack * stacks
    links = node.link_mm2_per_gb_s * np.asarray(f["link_bw"]) / 1e9
    total = logic + sram + phy + links + node.fixed_mm2
    return {"logic": logic, "sram": sram, "phy": phy, "links": links, "fixed": node.fixed_mm2, "total": total,
            "hbm_stacks": stacks}


def dies_per_wafer(die_mm2, diameter_mm: float = 300.0):
    """Gross dies per wafer: pi (d/2)^2 / A - pi d / sqrt(2 A) (edge loss)."""
    a = np.asarray(die_mm2, dtype=float)
    return np.floor(np.pi * (diameter_mm / 2) ** 2 / a - np.pi * diameter_mm / np.sqrt(2 * a))


def die_yield(die_mm2, d0_per_cm2: float, model: str = "negative_binomial", alpha: float = 3.0):
    """Fraction of good dies: negative-binomial (Stapper) or Murphy, defect density in defects/cm2."""
    ad = np.asarray(die_mm2, dtype=float) / 100.0 * d0_per_cm2
    if model == "murphy":
        with np.errstate(divide="ignore", invalid="ignore"):
            y = ((1 - np.exp(-ad)) / ad) ** 2
        return np.where(ad > 0, y, 1.0)
    if model in ("negative_binomial", "stapper"):
        return (1 + ad / alpha) ** (-alpha)
    if model == "poisson":
        return np.exp(-ad)
    raise SpecError([Problem(f"unknown yield model '{model}'; known: negative_binomial, murphy, poisson")])


def die_cost(area, node: Node, yield_model: str = "negative_binomial") -> dict:
    """Cost of the silicon of one chip (USD): dies, dies per wafer, yield, per-die cost."""
    area = np.asarray(area, dtype=float)
    n = np.maximum(1, np.ceil(area / node.reticle_mm2))
    die = area / n
    dpw = dies_per_wafer(die, node.wafer_diameter_mm)
    y = die_yield(die, node.defect_density_per_cm2, yield_model, node.cluster_alpha)
    with np.errstate(divide="ignore"):
        per_die = node.wafer_usd / (dpw * y)
    return {"dies": n, "die_mm2": die, "dies_per_wafer": dpw, "yield": y, "usd_per_good_die": per_die,
            "silicon_usd": per_die * n}


def chip_cost(hw, node: Node, mem: MemoryTech, yield_model: str = "negative_binomial",
              gross_margin: float = 0.6) -> dict:
    """Bill of materials and purchase price of one chip (USD): silicon + HBM + packaging, / (1 - margin)."""
    a = area_mm2(hw, node, mem)
    d = die_cost(a["total"], node, yield_model)
    f = features(hw)
    hbm = np.asarray(f["dram_bytes"]) / 1e9 * mem.usd_per_gb * (a["hbm_stacks"] > 0)
    pkg = np.where(a["hbm_stacks"] > 0, mem.packaging_usd, 0.0)
    bom = d["silicon_usd"] + hbm + pkg
    return {**d, "area_mm2": a["total"], "hbm_usd": hbm, "packaging_usd": pkg, "bom_usd": bom,
            "price_usd": bom / (1 - gross_margin)}


# ---------------------------------------------------------------------------------------------
# power

def tdp_w(hw, node: Node, mem: MemoryTech) -> dict:
    """TDP estimate (W) with every unit at peak: static + compute + each memory level + links."""
    f = features(hw)
    a = area_mm2(hw, node, mem)
    pj = 1e-12
    parts = {
        "static": node.static_w_per_mm2 * a["total"],
        "compute": np.asarray(f["matrix_flops"]) * node.matrix_pj_per_flop * pj,
        "core_sram": np.asarray(f["core_sram_bw"]) * node.core_sram_pj_per_byte * pj,
        "chip_sram": np.asarray(f["chip_sram_bw"]) * node.chip_sram_pj_per_byte * pj,
        "dram": np.asarray(f["dram_bw"]) * mem.pj_per_byte * pj,
        "links": 2 * np.asarray(f["link_bw"]) * node.link_pj_per_byte * pj,
    }
    parts["total"] = sum(parts.values())
    return parts


# ---------------------------------------------------------------------------------------------
# total cost of ownership

@dataclass(frozen=True)
class TcoAssumptions:
    """What the per-hour cost rests on; printed with every result (``describe``)."""

    source: str = "auto"  # auto (cloud price if the hardware has one, else purchase) | cloud | purchase
    lifetime_years: float = 4.0
    utilization: float = 0.6  # average draw = idle + (TDP - idle) x utilization
    pue: float = 1.2
    usd_per_kwh: float = 0.08
    purchase_usd_per_chip: float | None = None  # overrides the hardware's list price / the area model
    gross_margin: float = 0.6  # for prices derived from the die-cost model
    sources: tuple = field(default=(
        "lifetime 4 y: ASSUMPTION (operators depreciate accelerators over 4-6 years)",
        "PUE 1.2: ASSUMPTION (Uptime Institute 2023 survey average 1.58; hyperscale fleets report ~1.1)",
        "0.08 USD/kWh: ASSUMPTION near the 2023 US industrial average (EIA Electric Power Monthly)",
        "utilization 0.6 of the idle-to-TDP range: ASSUMPTION",
        "gross margin 0.6 on model-derived chip prices: ASSUMPTION (vendor margins vary, 50-75%)"),
        compare=False)

    def __post_init__(self):
        problems = []
        if self.source not in ("auto", "cloud", "purchase"):
            problems.append(Problem(f"cost.source must be auto, cloud or purchase; got {self.source!r}", path="cost.source"))
        for name, lo, hi in (("lifetime_years", 0, math.inf), ("utilization", 0, 1), ("pue", 1, 10),
                             ("usd_per_kwh", 0, math.inf), ("gross_margin", 0, 0.99)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi) \
                    or (name == "lifetime_years" and v <= 0):
                problems.append(Problem(f"must be a number in [{lo}, {hi}]; got {v!r}", path=f"cost.{name}"))
        if problems:
            raise SpecError(problems)

    def describe(self) -> list[str]:
        return [f"cost source: {self.source}", f"lifetime {self.lifetime_years:g} years",
                (f"power at idle + {self.utilization:.0%} of (TDP - idle), PUE {self.pue:g}, "
                 f"{self.usd_per_kwh:g} USD/kWh")] + \
            ([f"purchase price {self.purchase_usd_per_chip:,.0f} USD per chip (given)"]
             if self.purchase_usd_per_chip is not None else [])


def tco_per_hour(hw, chips, assumptions: TcoAssumptions = TcoAssumptions(), purchase_usd=None, tdp=None) -> dict:
    """USD per hour for ``chips`` chips of ``hw`` (a System, Chip or HwPoints; arrays broadcast).

    Returns capital, power and total USD/h and which source was used. ``purchase_usd`` (per chip)
    and ``tdp`` (W per chip) override the hardware's list price and TDP (e.g. from the area and
    power models). Cloud prices are shared pro rata when ``chips`` is less than the system.
    """
    hw = _points(hw)
    sysobj = hw.system
    g = hw.get
    chips = np.asarray(chips, dtype=float)
    sys_cloud = np.asarray(g("system.price.cloud"), dtype=float)
    chip_cloud = np.asarray(g("chip.price.cloud"), dtype=float)
    cloud_sys_h = np.where(np.isnan(sys_cloud), chip_cloud * sysobj.count, sys_cloud) * 3600.0
    cloud_h = cloud_sys_h * chips / max(sysobj.count, 1)
    price = assumptions.purchase_usd_per_chip
    if price is None:
        price = purchase_usd if purchase_usd is not None else g("chip.price.list")
        if np.all(np.isnan(np.asarray(price, dtype=float))):
            sys_list = np.asarray(g("system.price.list"), dtype=float)
            price = sys_list / max(sysobj.count, 1)
    price = np.asarray(price, dtype=float)
    tdp = np.asarray(g("chip.power.tdp") if tdp is None else tdp, dtype=float)
    idle = np.asarray(g("chip.power.idle"), dtype=float)
    avg_w = idle + (tdp - idle) * assumptions.utilization
    overhead_w = np.asarray(g("system.power.overhead"), dtype=float) * chips / max(sysobj.count, 1)
    power_h = (chips * avg_w + overhead_w) * assumptions.pue / 1000.0 * assumptions.usd_per_kwh
    capex_h = chips * price / (assumptions.lifetime_years * HOURS_PER_YEAR)
    purchase_h = capex_h + power_h
    if assumptions.source == "cloud":
        use_cloud = np.ones_like(cloud_h, dtype=bool)
    elif assumptions.source == "purchase":
        use_cloud = np.zeros_like(cloud_h, dtype=bool)
    else:
        use_cloud = ~np.isnan(cloud_h)
    total = np.where(use_cloud, cloud_h, purchase_h)
    return {"usd_per_hour": total, "capex_usd_per_hour": np.where(use_cloud, np.nan, capex_h),
            "power_usd_per_hour": np.where(use_cloud, np.nan, power_h), "cloud_usd_per_hour": cloud_h,
            "purchase_usd_per_chip": price, "avg_power_w": avg_w, "source": np.where(use_cloud, "cloud", "purchase")}


def chip_of(hw) -> Chip:
    if isinstance(hw, System):
        return hw.chip
    if isinstance(hw, Chip):
        return hw
    return hw.system.chip
