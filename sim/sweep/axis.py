"""A sweep axis (one thing a sweep varies) and how its values are shown (split from sim/sweep/spec.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Axis:
    """One thing the sweep varies: discrete values, or a range to grid or sample."""

    name: str  # as written: hw.memory.hbm.bandwidth, batch, serving.max_num_seqs, model
    kind: str  # hw | workload | serving
    values: list | None = None  # discrete (normalized: SI floats for numeric hardware fields)
    lo: float | None = None
    hi: float | None = None
    steps: int | None = None
    scale: str = "linear"
    integer: bool = False
    key: str | None = None  # hardware: canonical key (sim.vector) when the vector path can vary it
    path: str | None = None  # hardware: the override path
    where: tuple = (None, None)

    @property
    def field(self) -> str:
        """The setting's name without its prefix (hw path, workload or serving field)."""
        return self.name.split(".", 1)[1] if self.kind in ("hw", "serving") else self.name

    @property
    def vector(self) -> bool:
        return self.kind == "hw" and self.key is not None

    def grid_values(self) -> list:
        if self.values is not None:
            return list(self.values)
        n = self.steps or 2
        if n == 1:
            pts = np.array([self.lo])
        elif self.scale == "log":
            pts = np.exp(np.linspace(math.log(self.lo), math.log(self.hi), n))
        else:
            pts = np.linspace(self.lo, self.hi, n)
        if self.integer:
            return sorted({round(v) for v in pts})
        return [float(v) for v in pts]

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Values for uniform draws ``u`` in [0, 1): an index into the values, or a point of the range."""
        if self.values is not None:
            idx = np.minimum((u * len(self.values)).astype(np.int64), len(self.values) - 1)
            return np.asarray(self.values, dtype=object)[idx] if not _numeric(self.values) \
                else np.asarray(self.values)[idx]
        if self.scale == "log":
            v = np.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))
        else:
            v = self.lo + u * (self.hi - self.lo)
        if self.integer:
            v = np.clip(np.round(v), math.ceil(self.lo), math.floor(self.hi)).astype(np.int64)
        return v


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)


def _fmt(v, key: str | None = None) -> str:
    dim = dimension_of(key) if key else None
    if dim is not None and isinstance(v, (int, float)):
        from hwmodels.units import format_quantity

        return format_quantity(float(v), dim, digits=4)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def dimension_of(key: str | None) -> str | None:
    """The unit dimension of a canonical hardware key (for display), or None for plain numbers."""
    if not key:
        return None
    last = key.rsplit(".", 1)[-1]
    parts = key.split(".")
    if last in ("capacity",):
        return "bytes"
    if last == "bandwidth":
        return "bandwidth"
    if last in ("latency", "launch_overhead"):
        return "time"
    if "peak" in parts:
        return "rate"
    if last in ("tdp", "idle", "overhead"):
        return "power"
    if "energy_per_flop" in parts:
        return "energy_per_flop"
    if last == "energy_per_byte":
        return "energy_per_byte"
    if parts[-2:] == ["price", "cloud"]:
        return "money_rate"
    if parts[-2:] == ["price", "list"]:
        return "money"
    return None
