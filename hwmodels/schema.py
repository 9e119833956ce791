"""The hardware description schema: one declarative definition used three ways.

1. ``validate`` walks a parsed YAML document, converts every quantity to SI floats, and collects
   *every* problem with its ``file:line:col: dotted.path``, with "did you mean" for unknown keys
   and the list of allowed keys (the anatomy of timeloopfe's ``_check_unrecognized``).
2. ``hwmodels.jsonschema.json_schema`` exports the same definition as JSON Schema (``llmsim schema``) for editors.
3. The docs in docs/hardware-format.md describe the same fields.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

from hwmodels.chip import ACCESS_PATTERNS, STREAMING_KINDS
from hwmodels.classes import DECLARED_CALIBRATIONS, class_names
from hwmodels.dtype import RATE_KEYS
from hwmodels.units import DIMENSIONS, UnitError, parse_quantity
from hwmodels.yamlio import Marked

FORMAT_VERSION = 1
#: No number in a hardware file may exceed this (2^53: every integer up to it is exact as a float,
#: and products with token counts stay within 64-bit integers for the bounded fields below)
MAX_INT = 2**53


class Type:
    doc: str = ""

    def check(self, value, path, ctx) -> object:  # returns normalized value or raises _Bad
        raise NotImplementedError

    def json(self) -> dict:
        raise NotImplementedError


class _Bad(Exception):
    def __init__(self, message, path=None):
        super().__init__(message)
        self.message = message
        self.path = path


def _fail(ctx, path, message):
    ctx["problems"].append(ctx["marked"].problem(path, message))
    return _MISSING


class _Missing:
    def __repr__(self):
        return "<missing>"


_MISSING = _Missing()


#: Plausible range of each dimension in SI units: (smallest non-zero value, largest value, why).
#: A value outside it is a typo or an attack, and it would overflow or underflow downstream (a
#: 1e308 GB/s bandwidth becomes infinity). Zero stays allowed where the field allows it.
RANGES = {
    "bytes": (1.0, 1e18, "one byte up to an exabyte; the largest memory of one chip or host is under 100 TB"),
    "bandwidth": (1.0, 1e18, "up to 1 EB/s; the fastest on-chip SRAM (Cerebras WSE-3) is 2.1e16 B/s"),
    "time": (1e-15, 3600.0, "a femtosecond up to an hour; launch overheads and link latencies are ns to ms"),
    "rate": (1.0, 1e21, "up to 1 ZFLOP/s; the fastest single chip (Cerebras WSE-3) is 1.25e17 FLOP/s"),
    "flops": (1.0, 1e24, "up to 1e24 FLOP; the largest GEMM of a 1-trillion-parameter model is under 1e18"),
    "power": (1e-3, 1e7, "a milliwatt up to 10 MW; the hungriest chip (WSE-3) draws 23 kW, a rack ~150 kW"),
    "frequency": (1e3, 1e12, "1 kHz up to 1 THz; chip clocks are 0.5-6 GHz"),
    "energy": (1e-18, 1e9, "an attojoule up to a gigajoule"),
    "energy_per_flop": (1e-18, 1e-6, "an attojoule up to a microjoule per FLOP; chips spend about 1 pJ"),
    "energy_per_byte": (1e-18, 1e-6, "an attojoule up to a microjoule per byte; DRAM costs about 10 pJ/B"),
    "money": (1e-6, 1e12, "up to a trillion USD"),
    "money_rate": (1e-9, 1e3, "up to 1,000 USD/s (3.6 million USD/h); cloud prices are 0.1-100 USD/h"),
    "area": (1e-3, 1e6, "up to 1 m2; the largest die (wafer-scale WSE-3) is 46,225 mm2"),
    "energy_price": (1e-12, 1e-3, "up to 3,600 USD/kWh; electricity costs 0.02-0.5 USD/kWh"),
    "money_per_area": (1e-9, 1e6, "up to 1 million USD/mm2"),
}


def in_range(v: float, dim: str) -> str | None:
    """None when SI value ``v`` (non-zero) is plausible for ``dim``, else the message saying why not."""
    lo, hi, why = RANGES[dim]
    if lo <= abs(v) <= hi:
        return None
    unit = DIMENSIONS[dim].si_unit
    return f"{v:g} {unit} is outside the plausible range {lo:g} to {hi:g} {unit} ({why})"


@dataclass
class Quantity(Type):
    dim: str
    positive: bool = True  # > 0
    nonneg: bool = False  # >= 0 allowed
    doc: str = ""

    def check(self, value, path, ctx):
        try:
            v = parse_quantity(value, self.dim)
        except UnitError as e:
            return _fail(ctx, path, str(e))
        if self.nonneg:
            if v < 0:
                return _fail(ctx, path, f"must not be negative; got {value!r}")
        elif self.positive and v <= 0:
            return _fail(ctx, path, f"must be greater than zero; got {value!r}")
        if v != 0:
            bad = in_range(v, self.dim)
            if bad:
                return _fail(ctx, path, f"{value!r}: {bad}")
        return v

    def json(self):
        d = DIMENSIONS[self.dim]
        return {"type": "string", "description": f"{self.doc} ({d.name}, e.g. '{d.example}')".strip(),
                "examples": [d.example]}


@dataclass
class Number(Type):
    integer: bool = False
    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    doc: str = ""

    def check(self, value, path, ctx):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "an integer" if self.integer else "a number"
            return _fail(ctx, path, f"expected {kind}; got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            return _fail(ctx, path, f"expected a finite number; got {value!r}")
        if abs(value) > MAX_INT:
            return _fail(ctx, path, f"{value!r} is beyond any plausible value (at most {MAX_INT:,}, "
                                    "what the engine's 64-bit arithmetic can index)")
        if self.integer and (not float(value).is_integer()):
            return _fail(ctx, path, f"expected an integer; got {value!r}")
        if self.gt is not None and not value > self.gt:
            return _fail(ctx, path, f"must be greater than {self.gt:g}; got {value!r}")
        if self.ge is not None and not value >= self.ge:
            return _fail(ctx, path, f"must be at least {self.ge:g}; got {value!r}")
        if self.le is not None and not value <= self.le:
            return _fail(ctx, path, f"must be at most {self.le:g}; got {value!r}")
        return int(value) if self.integer else float(value)

    def json(self):
        d = {"type": "integer" if self.integer else "number", "description": self.doc}
        if self.gt is not None:
            d["exclusiveMinimum"] = self.gt
        if self.ge is not None:
            d["minimum"] = self.ge
        if self.le is not None:
            d["maximum"] = self.le
        return d


@dataclass
class Str(Type):
    choices: tuple | None = None
    doc: str = ""

    def check(self, value, path, ctx):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return _fail(ctx, path, f"expected a string; got {type(value).__name__}")
        value = str(value)
        if self.choices is not None and value not in self.choices:
            hint = difflib.get_close_matches(value, self.choices, n=1)
            dym = f" (did you mean '{hint[0]}'?)" if hint else ""
            return _fail(ctx, path, f"'{value}' is not one of: {', '.join(self.choices)}{dym}")
        return value

    def json(self):
        d = {"type": "string", "description": self.doc}
        if self.choices:
            d["enum"] = list(self.choices)
        return d


@dataclass
class Name(Type):
    """A chip or system name: non-empty, no path separators or control characters, and equal to
    the file's stem (``h100-sxm`` in ``h100-sxm.yaml``), so the name and the file can't disagree."""

    doc: str = ""

    def check(self, value, path, ctx):
        if not isinstance(value, str) or not value.strip():
            return _fail(ctx, path, f"expected a non-empty name; got {value!r}")
        if any(c in value for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in value):
            return _fail(ctx, path, f"a name may not hold path separators or control characters; got {value!r}")
        file = ctx["marked"].file
        stem = Path(file).stem if file and file.endswith((".yaml", ".yml")) else None
        if stem is not None and value != stem:
            return _fail(ctx, path, f"the name {value!r} differs from the file name; name the file "
                                    f"{value}.yaml or write name: {stem}")
        return value

    def json(self):
        return {"type": "string", "minLength": 1, "pattern": "^[^/\\\\]+$", "description": self.doc}


@dataclass
class Bool(Type):
    doc: str = ""

    def check(self, value, path, ctx):
        if not isinstance(value, bool):
            return _fail(ctx, path, f"expected true or false; got {value!r}")
        return value

    def json(self):
        return {"type": "boolean", "description": self.doc}


@dataclass
class Date(Type):
    """A calendar date, YYYY-MM-DD (YAML may hand it over already parsed)."""

    doc: str = ""

    def check(self, value, path, ctx):
        import datetime as _dt

        if isinstance(value, _dt.date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return _dt.date.fromisoformat(value.strip()).isoformat()
            except ValueError:
                pass
        return _fail(ctx, path, f"expected a date YYYY-MM-DD (when the figure was read or published); got {value!r}")

    def json(self):
        return {"type": "string", "format": "date", "description": self.doc}


@dataclass
class Sources(Type):
    """One string or a non-empty list of strings."""

    doc: str = ""

    def check(self, value, path, ctx):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(s, str) and s.strip() for s in value):
            return _fail(ctx, path, "expected a source (text) or a non-empty list of sources")
        return tuple(value)

    def json(self):
        return {"description": self.doc,
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}


@dataclass
class ListOf(Type):
    item: Type
    min_len: int = 0
    exact_len: int | None = None
    doc: str = ""

    def check(self, value, path, ctx):
        if not isinstance(value, list):
            return _fail(ctx, path, f"expected a list; got {type(value).__name__}")
        if self.exact_len is not None and len(value) != self.exact_len:
            return _fail(ctx, path, f"expected a list of {self.exact_len} items; got {len(value)}")
        if len(value) < self.min_len:
            return _fail(ctx, path, f"expected at least {self.min_len} item(s); got {len(value)}")
        out = [self.item.check(v, path + (i,), ctx) for i, v in enumerate(value)]
        return _MISSING if any(o is _MISSING for o in out) else tuple(out)

    def json(self):
        d = {"type": "array", "items": self.item.json(), "description": self.doc}
        if self.min_len:
            d["minItems"] = self.min_len
        if self.exact_len is not None:
            d["minItems"] = d["maxItems"] = self.exact_len
        return d


@dataclass
class MapOf(Type):
    """A mapping with keys from a fixed vocabulary (e.g. dtypes) to values of one type."""

    keys: tuple
    value: Type
    key_name: str = "key"
    doc: str = ""

    def check(self, value, path, ctx):
        if not isinstance(value, dict):
            return _fail(ctx, path, f"expected a mapping of {self.key_name} to value; got {type(value).__name__}")
        if not value:
            return _fail(ctx, path, f"expected at least one {self.key_name}")
        out, bad = {}, False
        for k, v in value.items():
            if k not in self.keys:
                hint = difflib.get_close_matches(k, self.keys, n=1)
                dym = f"did you mean '{hint[0]}'? " if hint else ""
                _fail(ctx, path + (k,), f"unknown {self.key_name} '{k}'; {dym}allowed: {', '.join(self.keys)}")
                bad = True
                continue
            r = self.value.check(v, path + (k,), ctx)
            bad |= r is _MISSING
            out[k] = r
        return _MISSING if bad else out

    def json(self):
        return {"type": "object", "description": self.doc,
                "propertyNames": {"enum": list(self.keys)}, "additionalProperties": self.value.json()}


@dataclass
class Efficiency(Type):
    """A fraction in (0, 1], or a table [[size, fraction], ...] interpolated in log(size)."""

    dim: str = "bytes"
    doc: str = ""

    def check(self, value, path, ctx):
        frac = Number(gt=0, le=1)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return frac.check(value, path, ctx)
        if not isinstance(value, list) or not value:
            return _fail(ctx, path, f"expected a fraction in (0, 1] or a table like "
                                    f"[[{DIMENSIONS[self.dim].example!r}, 0.9], ...]; got {value!r}")
        rows = []
        for i, row in enumerate(value):
            if not isinstance(row, list) or len(row) != 2:
                _fail(ctx, path + (i,), f"expected a pair [size, fraction], e.g. [{DIMENSIONS[self.dim].example!r}, 0.9]")
                continue
            s = Quantity(self.dim).check(row[0], path + (i, 0), ctx)
            f = frac.check(row[1], path + (i, 1), ctx)
            if s is not _MISSING and f is not _MISSING:
                rows.append((s, f))
        if len(rows) != len(value):
            return _MISSING
        sizes = [r[0] for r in rows]
        if len(set(sizes)) != len(sizes):
            return _fail(ctx, path, "table sizes must be distinct")
        return tuple(sorted(rows))

    def json(self):
        return {"description": self.doc, "anyOf": [
            {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2}}]}


@dataclass
class F:
    """A field of a Struct."""

    type: Type
    required: bool = False
    doc: str = ""


@dataclass
class Struct(Type):
    fields: dict
    name: str = "mapping"
    doc: str = ""
    requires_together: tuple = field(default_factory=tuple)  # (a, b): b required when a is given

    def check(self, value, path, ctx):
        if not isinstance(value, dict):
            return _fail(ctx, path, f"expected a mapping ({self.name}) with keys: {', '.join(self.fields)}; "
                                    f"got {type(value).__name__}")
        out, bad = {}, False
        allowed = list(self.fields)
        for k in value:
            if k not in self.fields:
                hint = difflib.get_close_matches(k, allowed, n=1, cutoff=0.6)
                dym = f"did you mean '{hint[0]}'? " if hint else ""
                _fail(ctx, path + (k,), f"unknown key '{k}' in {self.name}; {dym}allowed keys: {', '.join(allowed)}")
                bad = True
        for k, f in self.fields.items():
            if k in value:
                r = f.type.check(value[k], path + (k,), ctx)
                bad |= r is _MISSING
                out[k] = r
            elif f.required:
                _fail(ctx, path, f"missing required key '{k}' in {self.name}" + (f" ({f.doc})" if f.doc else ""))
                bad = True
        for a, b in self.requires_together:
            if a in value and b not in value:
                _fail(ctx, path + (a,), f"'{a}' needs '{b}' beside it (name where the figure comes from)")
                bad = True
        return _MISSING if bad else out

    def json(self):
        return {
            "type": "object", "description": self.doc, "additionalProperties": False,
            "properties": {k: {**f.type.json(), **({"description": f.doc} if f.doc else {})}
                           for k, f in self.fields.items()},
            "required": [k for k, f in self.fields.items() if f.required],
        }


# ---------------------------------------------------------------------------------------------
# The chip and system definitions

_peaks = MapOf(RATE_KEYS, Quantity("rate"), key_name="dtype")

COMPUTE = Struct({
    "kind": F(Str(("matrix", "vector", "special")), True, "matrix (tensor cores, MXU), vector (SIMD) or special (exp)"),
    "peak": F(_peaks, True, "dense peak rate per dtype"),
    "sparse_peak": F(_peaks, doc="peak with 2:4 structured sparsity, per dtype"),
    "tile": F(ListOf(Number(integer=True, gt=0, le=65536), exact_len=3),
              doc="M, N, K of the per-core tile GEMMs are padded to (each at most 65,536)"),
    "units": F(Number(integer=True, gt=0, le=10_000_000), doc="number of such units (informational)"),
    "efficiency": F(Efficiency("flops"), doc="achievable fraction of peak: one fraction, or a table by the "
                                             "op's FLOPs, e.g. [[1 GFLOP, 0.6], [1 TFLOP, 0.9]]"),
    "efficiency_source": F(Str(), doc="where the efficiency comes from"),
    "efficiency_by_dtype": F(MapOf(RATE_KEYS, Number(gt=0, le=1), key_name="dtype"),
                             doc="achievable fraction of the peak per dtype (rate key), replacing 'efficiency' for "
                                 "math at that dtype's peak, e.g. {fp8: 0.35} where the FP8 kernels reach a smaller "
                                 "share of their peak than the BF16 ones"),
    "efficiency_by_dtype_source": F(Str(), doc="where the efficiency_by_dtype fractions come from"),
    "overlaps_matrix": F(Bool(), doc="special unit: its work can run under the matrix unit's (asynchronous matrix "
                                     "instructions, e.g. Hopper WGMMA) when the kernel is warp-specialized"),
    "epilogue_overlap": F(Bool(), doc="matrix unit: the chip's GEMM kernels store a tile's output under the next "
                                      "tile's main loop (persistent warp-specialized kernels, e.g. Hopper); false: the "
                                      "store follows the main loop with the matrix unit idle (default: the chip class's)"),
    "epilogue_source": F(Str(), doc="where epilogue_overlap comes from"),
    "gemm_fixed_time": F(Quantity("time", nonneg=True),
                         doc="matrix unit: GPU-side time a GEMM kernel takes beyond kernel_fixed_time and its priced "
                             "work (the prologue before its first MMA and the epilogue after its last); default 0 s"),
    "gemm_fixed_time_source": F(Str(), doc="where gemm_fixed_time comes from"),
    "mma_sync_share": F(Number(gt=0, le=1),
                        doc="matrix unit: the rate of the warp-synchronous MMA instruction (mma.sync, the path "
                            "sm80 kernels compile to) as a share of the unit's rate, on chips whose native path is "
                            "another (Hopper: the asynchronous warpgroup wgmma); a kernel whose facts say `mma: sync` "
                            "runs its matrix work at that share (docs/cost-model.md, Attention); default 1"),
    "mma_sync_source": F(Str(), doc="where mma_sync_share comes from"),
    "sustained_clock": F(Quantity("frequency"),
                         doc="matrix unit: the core clock a long full-chip GEMM settles at under the chip's power "
                             "limit, the clock its efficiency figures were measured at (the chip's 'clock' is the "
                             "boost clock, at most this high a GEMM runs): a GEMM runs at clock / sustained_clock "
                             "times the efficiency rate unless its matrix FLOP rate would then exceed the efficiency "
                             "rate, the most the power limit allows (docs/cost-model.md, Clocks under the power "
                             "limit); default: none, every GEMM at the efficiency rate"),
    "sustained_clock_source": F(Str(), doc="where sustained_clock comes from"),
    "sustained_clock_power": F(Quantity("power"),
                               doc="matrix unit: the power limit sustained_clock was read at (the chip's TDP then); "
                                   "with it, the power-limited GEMM rate follows the chip's power.tdp: the efficiency "
                                   "rate x (tdp - idle) / (sustained_clock_power - idle), at most the boost clock's "
                                   "(docs/cost-model.md, Clocks under the power limit); without it the rate is fixed"),
    "source": F(Str(), doc="where the unit's figures come from"),
}, name="compute unit", requires_together=(("efficiency", "efficiency_source"), ("epilogue_overlap", "epilogue_source"),
                                           ("gemm_fixed_time", "gemm_fixed_time_source"),
                                           ("mma_sync_share", "mma_sync_source"),
                                           ("sustained_clock", "sustained_clock_source"),
                                           ("efficiency_by_dtype", "efficiency_by_dtype_source")))

MEMORY = Struct({
    "name": F(Str(), True, "unique level name, used in override paths"),
    "kind": F(Str(("sram", "cache", "dram", "host")), doc="sram, cache, dram or host (default dram)"),
    "capacity": F(Quantity("bytes"), True),
    "capacity_source": F(Str(), doc="where the capacity comes from: the device's own report of its total (nvidia-smi, "
                                    "torch.cuda.mem_get_info, rocm-smi, hl-smi) or the unit convention assumed"),
    "per": F(Str(("core", "chip")), doc="core: each core has its own; chip: one shared level (default)"),
    "bandwidth": F(Quantity("bandwidth"), True, "whole chip, all cores together"),
    "latency": F(Quantity("time", nonneg=True)),
    "efficiency": F(Efficiency("bytes"), doc="achievable fraction of bandwidth, by transfer size"),
    "efficiency_source": F(Str()),
    "efficiency_by_kind": F(MapOf(STREAMING_KINDS, Number(gt=0, le=1), key_name="streaming op kind"),
                            doc="fraction per streaming op kind (norm, elementwise, embedding, rope, ...) that "
                                "multiplies the size-based efficiency for ops of that kind, e.g. {norm: 0.55}"),
    "efficiency_by_pattern": F(MapOf(ACCESS_PATTERNS, Number(gt=0, le=1), key_name="access pattern"),
                               doc="fraction of the streaming bandwidth per access pattern (gather: rows gathered "
                                   "by index, e.g. an embedding lookup), e.g. {gather: 0.2}; a class default fills it"),
    "efficiency_by_pattern_source": F(Str(), doc="where the efficiency_by_pattern fractions come from"),
    "energy_per_byte": F(Quantity("energy_per_byte", nonneg=True)),
    "energy_per_byte_source": F(Str()),
}, name="memory level", requires_together=(("efficiency", "efficiency_source"),
                                          ("efficiency_by_kind", "efficiency_source"),
                                          ("efficiency_by_pattern", "efficiency_by_pattern_source")))

# GPU / accelerator architecture (instruction-set generation) names a chip file may give: the facts of
# software whose kernels differ by generation key on them (a stack's kernels.decode_attention.by_architecture)
ARCHITECTURES = ("volta", "turing", "ampere", "ada", "hopper", "blackwell", "cdna2", "cdna3", "cdna4",
                 "rdna3", "rdna4")

CHIP = Struct({
    "version": F(Number(integer=True, ge=1, le=FORMAT_VERSION), True, "format version"),
    "kind": F(Str(("chip", "system")), True),
    "name": F(Name(), True, "kebab-case, equal to the file stem"),
    "vendor": F(Str()),
    "architecture": F(Str(ARCHITECTURES), doc="the chip's architecture (instruction-set generation), e.g. hopper "
                                              "(sm_90) or ampere (sm_80/86): a serving stack's kernel facts that "
                                              "differ by generation key on it"),
    "description": F(Str()),
    "hypothetical": F(Bool(), doc="true for designs that do not exist"),
    "source": F(Sources(), True, "where the numbers come from"),
    "class": F(Str(class_names()), doc="efficiency class (hwmodels/catalog/classes.yaml) whose documented "
                                       "defaults fill the GEMM unit's and main memory's efficiency where "
                                       "this file gives none"),
    "calibration": F(Str(DECLARED_CALIBRATIONS),
                     doc="what the efficiency figures rest on: measured (fitted to kernel measurements), "
                         "published (published measurements) or class-default (the class's defaults)"),
    "process_node": F(Str()),
    "die_area": F(Quantity("area")),
    "clock": F(Quantity("frequency")),
    "year": F(Number(integer=True, ge=1990, le=2100)),
    "cores": F(Number(integer=True, gt=0, le=10_000_000), True,
               "parallel cores (SMs, CUs, TensorCores) tiles spread over; at most 10 million (WSE-3 has 900,000)"),
    "compute": F(ListOf(COMPUTE, min_len=1), True, "compute units by kind"),
    "memory": F(ListOf(MEMORY, min_len=1), True, "memory levels, innermost first"),
    "launch_overhead": F(Quantity("time", nonneg=True), doc="per-kernel launch cost on the CPU (eager launches; "
                                                            "none under CUDA graphs)"),
    "launch_overhead_source": F(Str()),
    "kernel_fixed_time": F(Quantity("time", nonneg=True),
                           doc="GPU-side time every kernel takes besides its work (grid launch, block scheduling, "
                               "drain), paid under CUDA graphs too; default: the class's, else 0 s"),
    "kernel_fixed_time_source": F(Str(), doc="where kernel_fixed_time comes from"),
    "power": F(Struct({
        "tdp": F(Quantity("power"), True),
        "idle": F(Quantity("power", nonneg=True)),
        "energy_per_flop": F(MapOf(RATE_KEYS, Quantity("energy_per_flop"), key_name="dtype")),
        "source": F(Str()),
    }, name="power")),
    "price": F(Struct({
        "list": F(Quantity("money")),
        "cloud": F(Quantity("money_rate"), doc="USD per chip-hour (on-demand unless cloud_source says otherwise)"),
        "list_source": F(Str()),
        "cloud_source": F(Str(), doc="where the cloud price comes from: provider, offer, region, basis"),
        "cloud_date": F(Date(), doc="when the cloud price was read or published (YYYY-MM-DD)"),
    }, name="price")),
    "interconnect": F(Struct({
        "bandwidth": F(Quantity("bandwidth"), True, "per direction"),
        "type": F(Str()),
        "latency": F(Quantity("time", nonneg=True)),
    }, name="interconnect")),
    "host_link": F(Struct({
        "bandwidth": F(Quantity("bandwidth"), True, "per direction"),
        "type": F(Str()),
        "latency": F(Quantity("time", nonneg=True)),
    }, name="host link")),
}, name="chip")

TIER = Struct({
    "name": F(Str(), True),
    "fanout": F(Number(integer=True, gt=0, le=10_000_000), True, "members joined at this tier (at most 10 million)"),
    "topology": F(Str(("switch", "ring", "torus", "mesh", "fully_connected")), True),
    "bandwidth": F(Quantity("bandwidth"), True, "per chip, per direction"),
    "latency": F(Quantity("time", nonneg=True), True),
    "in_network_reduction": F(Bool()),
    "efficiency": F(Number(gt=0, le=1), doc="achievable fraction of link bandwidth"),
    "efficiency_source": F(Str()),
    "dims": F(ListOf(Number(integer=True, gt=0, le=10_000_000), min_len=1), doc="torus/mesh dimension sizes"),
    "type": F(Str()),
}, name="interconnect tier", requires_together=(("efficiency", "efficiency_source"),))

SYSTEM = Struct({
    "version": F(Number(integer=True, ge=1, le=FORMAT_VERSION), True),
    "kind": F(Str(("chip", "system")), True),
    "name": F(Name(), True, "equal to the file stem"),
    "description": F(Str()),
    "hypothetical": F(Bool()),
    "source": F(Sources(), True),
    "instance": F(Str(), doc="the cloud instance this system is, e.g. 'AWS EC2 p5.48xlarge' (a generic system "
                             "is preferred over an instance when a chip is switched to its standard system)"),
    "chip": F(Str(), True, "catalog chip name or path relative to this file"),
    "count": F(Number(integer=True, gt=0, le=10_000_000), True,
               "chips in the system; at most 10 million (the largest clusters have ~100,000)"),
    "tiers": F(ListOf(TIER), doc="interconnect tiers, innermost first"),
    "price": F(Struct({"cloud": F(Quantity("money_rate"), doc="the system's own price per hour (e.g. a cloud "
                                                              "instance's on-demand price); default: the chips' "
                                                              "prices plus the system premium"),
                       "list": F(Quantity("money")),
                       "cloud_source": F(Str()), "list_source": F(Str()),
                       "cloud_date": F(Date(), doc="when the cloud price was read or published (YYYY-MM-DD)"),
                       "premium": F(Number(gt=-1, le=10), doc="system premium over count x chip price, a fraction "
                                                             "(0.1 = +10%) for a system without its own price "
                                                             "(default 0); derived from the own price otherwise"),
                       "premium_source": F(Str())}, name="price",
                      requires_together=(("premium", "premium_source"),))),
    "power": F(Struct({"overhead": F(Quantity("power", nonneg=True), True), "source": F(Str())}, name="power")),
}, name="system")


def validate(marked: Marked, schema: Struct) -> tuple[dict | None, list]:
    ctx = {"problems": [], "marked": marked}
    out = schema.check(marked.data, (), ctx)
    problems = sorted(ctx["problems"], key=lambda p: (p.line or 0, p.col or 0))
    return (None if out is _MISSING else out), problems
