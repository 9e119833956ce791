"""Class defaults for achievable efficiency (hwmodels/catalog/classes.yaml) and calibration states.

A chip file names its class (``class: gpu-hbm``); where the file gives no efficiency for its GEMM unit or
its main memory, the loader fills it from the class, with an ``efficiency_source`` that starts with
``CLASS_SOURCE_PREFIX``, so a chip never runs at 100% of datasheet peak without saying so. The class is
referenced, not copied into each chip file, so each default figure exists once, with its source, and a
better figure for a class changes every chip of that class at once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CLASSES_FILE = Path(__file__).parent / "catalog" / "classes.yaml"

#: calibration states, strongest first: efficiencies fitted to kernel measurements (the calibrated files),
#: taken from published measurements, filled from a documented class default, or absent (datasheet peak)
CALIBRATION_STATES = ("measured", "published", "class-default", "none")
#: what a chip file may declare (``none`` is only ever derived: a file with no efficiency data and no class)
DECLARED_CALIBRATIONS = CALIBRATION_STATES[:3]
CLASS_SOURCE_PREFIX = "class default"


@dataclass(frozen=True)
class ChipClass:
    name: str
    description: str
    matrix_efficiency: float
    matrix_source: str
    memory_efficiency: float
    memory_source: str
    epilogue_overlap: bool = False  # the class's GEMM kernels store a tile's output under the next tile's math
    epilogue_source: str = ""
    # access pattern -> fraction of the streaming bandwidth (the main memory's efficiency_by_pattern)
    pattern_efficiency: dict = field(default_factory=dict)
    pattern_source: str = ""
    # special-function (exp) results per clock per core for a file that lists no special unit (None: the
    # class has none; its exponentials stay in the vector FLOPs), and whether it runs under the matrix work
    special_per_core_clock: float | None = None
    special_overlaps_matrix: bool = False
    special_source: str = ""
    # GPU-side per-kernel fixed time (seconds) for a file that gives none (None: the class has no figure)
    kernel_fixed_time_s: float | None = None
    kernel_fixed_time_source: str = ""

    def source_for(self, field: str) -> str:
        src = {"matrix": self.matrix_source, "memory": self.memory_source, "epilogue": self.epilogue_source,
               "pattern": self.pattern_source, "special": self.special_source,
               "fixed": self.kernel_fixed_time_source}[field]
        return f"{CLASS_SOURCE_PREFIX} {self.name} ({CLASSES_FILE.name}): {src}"


@functools.lru_cache(maxsize=1)
def chip_classes() -> dict:
    """name -> ChipClass, read once from catalog/classes.yaml (package data, checked by the tests)."""
    # libyaml's loader where PyYAML has it (the same safe types, ~6x faster: read at every start-up)
    data = yaml.load(CLASSES_FILE.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out = {}
    for name, c in data["classes"].items():
        for key in ("matrix_efficiency", "memory_efficiency"):
            v = c[key]
            if not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise ValueError(f"{CLASSES_FILE}: classes.{name}.{key} must be a fraction in (0, 1]; got {v!r}")
        if not isinstance(c.get("gemm_epilogue_overlap"), bool) or not c.get("gemm_epilogue_source"):
            raise ValueError(f"{CLASSES_FILE}: classes.{name} needs gemm_epilogue_overlap (true or false) and "
                             "gemm_epilogue_source")
        for key in ("gather_efficiency",):
            v = c[key]
            if not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise ValueError(f"{CLASSES_FILE}: classes.{name}.{key} must be a fraction in (0, 1]; got {v!r}")
        sp = c.get("special_per_core_clock", "missing")
        if not (sp is None or (isinstance(sp, (int, float)) and not isinstance(sp, bool) and sp > 0)) \
                or not c.get("special_source"):
            raise ValueError(f"{CLASSES_FILE}: classes.{name} needs special_per_core_clock (results per clock per "
                             "core, or null for none) and special_source")
        ft = c.get("kernel_fixed_time_us", "missing")
        if not (ft is None or (isinstance(ft, (int, float)) and not isinstance(ft, bool) and ft >= 0)) \
                or not c.get("kernel_fixed_time_source"):
            raise ValueError(f"{CLASSES_FILE}: classes.{name} needs kernel_fixed_time_us (microseconds >= 0, or null "
                             "for none) and kernel_fixed_time_source")
        out[name] = ChipClass(name=name, description=c["description"], matrix_efficiency=float(c["matrix_efficiency"]),
                              matrix_source=" ".join(c["matrix_source"].split()),
                              memory_efficiency=float(c["memory_efficiency"]),
                              memory_source=" ".join(c["memory_source"].split()),
                              epilogue_overlap=c["gemm_epilogue_overlap"],
                              epilogue_source=" ".join(c["gemm_epilogue_source"].split()),
                              pattern_efficiency={"gather": float(c["gather_efficiency"])},
                              pattern_source="gather: " + " ".join(c["gather_source"].split()),
                              special_per_core_clock=None if sp is None else float(sp),
                              special_overlaps_matrix=bool(c.get("special_overlaps_matrix", False)),
                              special_source=" ".join(c["special_source"].split()),
                              kernel_fixed_time_s=None if ft is None else float(ft) * 1e-6,
                              kernel_fixed_time_source=" ".join(c["kernel_fixed_time_source"].split()))
    return out


def class_names() -> tuple:
    return tuple(chip_classes())


def provenance(efficiency, efficiency_source: str | None, declared: str | None) -> str:
    """Calibration state of one efficiency field: none, class-default, or the file's declared state."""
    if efficiency is None:
        return "none"
    if (efficiency_source or "").startswith(CLASS_SOURCE_PREFIX):
        return "class-default"
    return declared if declared in ("measured", "published") else "published"


def weakest(states) -> str:
    """The weakest of several calibration states (a chip is as calibrated as its least-sourced field)."""
    return max(states, key=CALIBRATION_STATES.index, default="none")
