"""Chips and systems as frozen objects in SI units (bytes, seconds, FLOP/s, B/s, W, USD/s).

A ``Chip`` holds rates: compute units with peaks per dtype, an ordered memory hierarchy
(innermost first), launch overhead, power and price. A ``System`` is a number of chips joined
by interconnect tiers (innermost first). Neither knows anything about models or parallelism.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hwmodels.arith import vmax
from hwmodels.classes import provenance, weakest
from hwmodels.dtype import get_dtype

#: Op.kind values of streaming ops (workloads.graph.KINDS less gemm, attention, collective): the keys a
#: memory level's ``efficiency_by_kind`` accepts
STREAMING_KINDS = ("elementwise", "norm", "embedding", "rope", "router", "dequant", "sampling")
#: access patterns other than a plain stream that a memory level may give an achievable fraction for
#: (``efficiency_by_pattern``): ``gather`` = rows gathered by index (an embedding lookup); a stream is the
#: level's own ``efficiency``
ACCESS_PATTERNS = ("gather",)
#: the access pattern of each streaming op kind that is not a plain stream
PATTERN_OF_KIND = {"embedding": "gather"}

# Some dtypes run at the rate of a wider one where a unit lists no rate of their own.
_RATE_FALLBACK = {
    "fp4": ("fp4", "fp6", "fp8", "int4", "int8", "bf16", "fp16"),
    "fp6": ("fp6", "fp8", "bf16", "fp16"),
    "int4": ("int4", "int8", "fp8", "bf16", "fp16"),
    "fp8": ("fp8", "bf16", "fp16"),
    "int8": ("int8", "fp8", "bf16", "fp16"),
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
    "tf32": ("tf32", "fp32"),
    "fp32": ("fp32",),  # fp32 math never silently runs at the tf32 rate (ask for tf32 to get it)
    "fp64": ("fp64", "fp32"),
}


def _log_table(eff) -> tuple:
    """([log size], [fraction]) of an efficiency table, made once per table (arrays read it every call)."""
    try:
        got = _LOG_TABLES.get(eff)
    except TypeError:  # a table given as lists: not remembered
        return [math.log(s) for s, _ in eff], [f for _, f in eff]
    if got is None:
        if len(_LOG_TABLES) >= 1024:
            _LOG_TABLES.clear()
        got = _LOG_TABLES[eff] = ([math.log(s) for s, _ in eff], [f for _, f in eff])
    return got


_LOG_TABLES: dict = {}


def interpolate_efficiency(eff, size):
    """Efficiency at ``size``: a scalar, or a table [(size, fraction)] interpolated in log(size).

    Outside the table the nearest end's fraction holds. ``size`` (and a scalar ``eff``) may be
    numpy arrays (the vectorized cost path): the same linear interpolation in log(size), elementwise.
    """
    if eff is None:
        return 1.0
    if isinstance(eff, np.ndarray):
        return eff
    if isinstance(eff, (int, float)):
        return float(eff)
    if isinstance(size, np.ndarray):
        logs, fracs = _log_table(eff)
        return np.interp(np.log(np.maximum(size, 1e-300)), logs, fracs)
    if size <= eff[0][0]:
        return eff[0][1]
    if size >= eff[-1][0]:
        return eff[-1][1]
    for (s0, f0), (s1, f1) in zip(eff, eff[1:]):
        if s0 <= size <= s1:
            t = (math.log(size) - math.log(s0)) / (math.log(s1) - math.log(s0))
            return f0 + t * (f1 - f0)
    return eff[-1][1]


def bandwidth_at(bandwidth, efficiency, transfer_bytes, kind_factor=None):
    """Achievable bandwidth (B/s): peak x the level's efficiency at this transfer size x the
    streaming op kind's factor (``efficiency_by_kind``), if any. Numbers or numpy arrays."""
    bw = bandwidth * interpolate_efficiency(efficiency, vmax(transfer_bytes, 1.0))
    return bw if kind_factor is None else bw * kind_factor


@dataclass(frozen=True)
class ComputeUnit:
    kind: str  # matrix | vector | special
    peak: dict  # rate key -> FLOP/s (dense)
    sparse_peak: dict = field(default_factory=dict)
    tile: tuple | None = None  # (M, N, K)
    efficiency: object = None  # fraction or table
    efficiency_source: str | None = None
    overlaps_matrix: bool = False  # special unit: can run under asynchronous matrix work (docs/stacks.md)
    # matrix unit: whether the chip's GEMM kernels store a tile's output (the epilogue) under the next tile's
    # main loop (persistent, warp-specialized kernels) or after it, with the tensor cores idle (None: not given)
    epilogue_overlap: bool | None = None
    epilogue_source: str | None = None
    # matrix unit: GPU-side seconds a GEMM kernel takes beyond the chip's kernel_fixed_time and its priced work
    # (prologue before the first MMA, epilogue after the last: docs/cost-model.md, GEMM fixed time); 0: not given
    gemm_fixed_time_s: float = 0.0
    gemm_fixed_time_source: str | None = None
    # matrix unit: the rate of the warp-synchronous mma.sync path as a share of this unit's rate where the chip's
    # native path is another (Hopper's wgmma); kernels whose facts say mma: sync run at it (1: mma.sync is native)
    mma_sync_share: float = 1.0
    mma_sync_source: str | None = None
    # matrix unit: the core clock (Hz) a long full-chip GEMM settles at under the power limit, where its efficiency
    # figures were measured; the chip's clock_hz is the boost clock (docs/cost-model.md, Clocks under the power
    # limit); None: no clock model
    sustained_clock_hz: float | None = None
    sustained_clock_source: str | None = None
    sustained_clock_power_w: float | None = None  # the power limit sustained_clock was read at (None: not given)
    # per rate key (fp8, bf16, ...): the achievable fraction of that dtype's peak, replacing ``efficiency`` for
    # math that runs at that peak entry (a library's FP8 kernels can reach a smaller share of the FP8 peak than
    # its BF16 kernels of theirs); a dtype not listed uses ``efficiency``
    efficiency_by_dtype: dict = field(default_factory=dict)
    efficiency_by_dtype_source: str | None = None

    def efficiency_for(self, rate_key: str):
        """The achievable fraction (or size table) for math at this unit's ``rate_key`` peak entry."""
        e = self.efficiency_by_dtype.get(rate_key) if self.efficiency_by_dtype else None
        return self.efficiency if e is None else e

    def rate_for(self, dtype: str, sparse: bool = False) -> tuple[float, str] | None:
        """(FLOP/s, the rate key used) for math in ``dtype``, or None if this unit cannot run it."""
        key = get_dtype(dtype).rate_key
        table = self.sparse_peak if sparse and self.sparse_peak else self.peak
        for k in _RATE_FALLBACK.get(key, (key,)):
            if k in table:
                return table[k], k
        return None


@dataclass(frozen=True)
class MemoryLevel:
    name: str
    kind: str  # sram | cache | dram | host
    capacity_bytes: float  # per core if per == 'core', else for the chip
    per: str  # core | chip
    bandwidth_bytes_per_s: float  # whole chip
    latency_s: float = 0.0
    efficiency: object = None
    efficiency_source: str | None = None
    energy_per_byte_j: float | None = None
    # per streaming op kind (STREAMING_KINDS): a fraction that multiplies ``efficiency`` for ops of that
    # kind (a fused RMSNorm streams at a different fraction of the bandwidth than a residual add)
    efficiency_by_kind: dict = field(default_factory=dict)
    # per access pattern (ACCESS_PATTERNS): a fraction of the streaming bandwidth that ops with that pattern
    # reach (a row gather by index streams far below a vectorized copy), with its own source
    efficiency_by_pattern: dict = field(default_factory=dict)
    efficiency_by_pattern_source: str | None = None

    def kind_factor(self, kind: str | None):
        """The factor on ``efficiency`` for a streaming op of ``kind``: its ``efficiency_by_kind`` entry (fitted
        to that kind's own kernels), else the fraction of its access pattern (``efficiency_by_pattern``),
        else None (a plain stream)."""
        if kind is None:
            return None
        kf = self.efficiency_by_kind.get(kind) if self.efficiency_by_kind else None
        if kf is None and self.efficiency_by_pattern and kind in PATTERN_OF_KIND:
            kf = self.efficiency_by_pattern.get(PATTERN_OF_KIND[kind])
        return kf

    def total_capacity_bytes(self, cores: int) -> float:
        return self.capacity_bytes * (cores if self.per == "core" else 1)

    def effective_bandwidth(self, transfer_bytes: float, kind: str | None = None) -> float:
        """Achievable bandwidth (B/s) for a transfer of this size (by a streaming op of ``kind``, if given)."""
        return bandwidth_at(self.bandwidth_bytes_per_s, self.efficiency, transfer_bytes, self.kind_factor(kind))


@dataclass(frozen=True)
class Link:
    bandwidth_bytes_per_s: float  # per direction
    type: str | None = None
    latency_s: float = 0.0


@dataclass(frozen=True)
class Chip:
    name: str
    source: tuple
    cores: int
    compute: tuple  # of ComputeUnit
    memory: tuple  # of MemoryLevel, innermost first
    launch_overhead_s: float = 0.0  # CPU time to launch one kernel eagerly (none under CUDA graphs)
    vendor: str | None = None
    description: str | None = None
    hypothetical: bool = False
    architecture: str | None = None  # e.g. hopper (schema ARCHITECTURES): stack kernel facts key on it
    process_node: str | None = None
    die_area_mm2: float | None = None
    clock_hz: float | None = None
    year: int | None = None
    tdp_w: float | None = None
    idle_w: float | None = None
    energy_per_flop_j: dict = field(default_factory=dict)
    list_price_usd: float | None = None
    cloud_usd_per_s: float | None = None
    interconnect: Link | None = None
    host_link: Link | None = None
    path: str | None = None  # file it was loaded from
    chip_class: str | None = None  # class whose defaults fill missing efficiencies (classes.yaml)
    declared_calibration: str | None = None  # the file's `calibration:` (measured | published | class-default)
    price_source: str | None = None  # where the cloud price comes from (offer, region, basis)
    price_date: str | None = None  # when the cloud price was read or published (YYYY-MM-DD)
    # GPU-side time of every kernel besides its work (grid launch, block scheduling, drain): paid with or
    # without CUDA graphs; the file's figure, else its class's (source starting "class default"), else 0
    kernel_fixed_time_s: float = 0.0
    kernel_fixed_time_source: str | None = None

    # -- calibration state -------------------------------------------------------------------
    @property
    def efficiency_provenance(self) -> dict:
        """Calibration state of the two efficiency fields predictions rest on: the GEMM unit's and the
        main memory's (measured | published | class-default | none)."""
        mu, mm = self.matrix_unit(), self.main_memory
        return {"matrix": provenance(mu.efficiency, mu.efficiency_source, self.declared_calibration),
                "memory": provenance(mm.efficiency, mm.efficiency_source, self.declared_calibration)}

    @property
    def calibration(self) -> str:
        """The chip's calibration state: the weakest of its fields' (see ``efficiency_provenance``)."""
        return weakest(self.efficiency_provenance.values())

    # -- lookups -----------------------------------------------------------------------------
    def unit(self, kind: str) -> ComputeUnit | None:
        for u in self.compute:
            if u.kind == kind:
                return u
        return None

    def matrix_unit(self) -> ComputeUnit:
        """The unit GEMMs run on: the matrix unit, or the vector unit on chips without one (CPUs)."""
        return self.unit("matrix") or self.unit("vector") or self.compute[0]

    def vector_unit(self) -> ComputeUnit:
        return self.unit("vector") or self.unit("matrix") or self.compute[0]

    def memory_level(self, name: str) -> MemoryLevel:
        for m in self.memory:
            if m.name == name:
                return m
        raise KeyError(f"{self.name} has no memory level '{name}'; levels: {', '.join(m.name for m in self.memory)}")

    @property
    def main_memory(self) -> MemoryLevel:
        """The level that holds weights and KV cache: the outermost non-host level."""
        for m in reversed(self.memory):
            if m.kind != "host":
                return m
        return self.memory[-1]

    def capacity_for_weights(self, capacity_of=None, cores=None):
        """Bytes one chip holds for weights, KV cache and workspace: its main memory, or on an
        SRAM-only chip (main memory of kind sram) every chip-level SRAM/DRAM level together.

        The one statement of this rule (static predictor, serving simulator, techniques, sweeps).
        ``capacity_of(level)`` and ``cores`` replace the levels' ``capacity_bytes`` and the core
        count: a sweep passes numpy arrays of per-point values and gets an array back.
        """
        cap = capacity_of or (lambda m: m.capacity_bytes)
        n = self.cores if cores is None else cores
        main = self.main_memory
        if main.kind == "sram":
            total = 0.0
            for m in self.memory:
                if m.kind in ("sram", "dram") and m.per == "chip":
                    total = total + cap(m)
            return total
        return cap(main) * n if main.per == "core" else cap(main)

    @property
    def price_usd_per_hour(self) -> float | None:
        return None if self.cloud_usd_per_s is None else self.cloud_usd_per_s * 3600.0

    def peak_flops(self, dtype: str, kind: str = "matrix") -> float:
        u = self.matrix_unit() if kind == "matrix" else self.vector_unit()
        r = u.rate_for(dtype)
        if r is None:
            r = self.vector_unit().rate_for(dtype)
        if r is None:
            raise KeyError(f"{self.name} lists no rate for {dtype} on its {kind} unit")
        return r[0]


@dataclass(frozen=True)
class Tier:
    name: str
    fanout: int
    topology: str
    bandwidth_bytes_per_s: float  # per chip, per direction
    latency_s: float
    in_network_reduction: bool = False
    efficiency: float = 1.0
    efficiency_source: str | None = None
    dims: tuple | None = None
    type: str | None = None


@dataclass(frozen=True)
class System:
    name: str
    source: tuple
    chip: Chip
    count: int
    tiers: tuple  # of Tier, innermost first
    description: str | None = None
    hypothetical: bool = False
    cloud_usd_per_s: float | None = None
    list_price_usd: float | None = None
    power_overhead_w: float = 0.0
    path: str | None = None
    price_source: str | None = None  # where the system's price comes from (its own, or how it is derived)
    price_date: str | None = None  # when that price was read or published (YYYY-MM-DD)
    price_premium: float = 0.0  # system price / (count x chip price) - 1 (docs/hardware-format.md, Prices)
    instance: str | None = None  # the cloud instance this system is (e.g. 'AWS EC2 p5.48xlarge'), if any

    @property
    def calibration(self) -> str:
        """The chip's calibration state (measured | published | class-default | none)."""
        return self.chip.calibration

    @classmethod
    def single(cls, chip: Chip) -> "System":
        """A system of one chip (no interconnect)."""
        return cls(name=chip.name, source=chip.source, chip=chip, count=1, tiers=(),
                   description=f"one {chip.name}", hypothetical=chip.hypothetical,
                   cloud_usd_per_s=chip.cloud_usd_per_s, price_source=chip.price_source, price_date=chip.price_date,
                   list_price_usd=chip.list_price_usd, path=chip.path)

    def tiers_for_group(self, group_size: int) -> tuple:
        """The tiers a group of ``group_size`` consecutive chips spans, innermost first.

        Returns a tuple of (tier, members at that tier) pairs, e.g. a group of 16 on
        nvlink(8) x ib(4) spans nvlink with 8 members and ib with 2.
        """
        out = []
        remaining = group_size
        for t in self.tiers:
            if remaining <= 1:
                break
            members = min(t.fanout, remaining)
            out.append((t, members))
            remaining = math.ceil(remaining / t.fanout)
        if remaining > 1:
            raise ValueError(f"a group of {group_size} chips spans more than {self.name}'s tiers hold")
        return tuple(out)

    @property
    def usd_per_hour(self) -> float | None:
        """System price per hour: its own cloud price, else count x the chip's."""
        if self.cloud_usd_per_s is not None:
            return self.cloud_usd_per_s * 3600.0
        if self.chip.cloud_usd_per_s is not None:
            return self.chip.cloud_usd_per_s * 3600.0 * self.count
        return None

    def price_note(self, chips: int | None = None) -> str | None:
        """Which price is used, from where and of when; ``chips`` of the system are charged pro rata."""
        per_h = self.usd_per_hour
        if per_h is None:
            return None
        chips = self.count if chips is None else chips
        per_chip = per_h / max(self.count, 1)
        first = lambda t: (t or "no source given").split("; ")[0]  # noqa: E731 (offer and basis; full text: hw show)
        src = first(self.price_source) if self.cloud_usd_per_s is not None or self.count == 1 else \
            f"{self.count} x {self.chip.name} ({first(self.chip.price_source)})"
        date = self.price_date if self.cloud_usd_per_s is not None or self.count == 1 else self.chip.price_date
        head = f"{per_h:.4g} USD/h for {self.name}" if self.count > 1 else f"{per_h:.4g} USD/h per {self.name} chip"
        share = f"; {chips} of {self.count} chips: {per_chip * chips:.4g} USD/h" if self.count > 1 and chips != self.count else ""
        prem = f", system premium {self.price_premium:+.0%}" if self.count > 1 else ""
        return f"{head} ({per_chip:.4g} per chip{prem}; {src}; {date or 'undated'}){share}"
