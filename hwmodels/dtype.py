"""Numeric data types: how many bits an element takes and which peak rate it runs at.

Bytes per element always come from here, never from a literal 2. Block-scaled formats (int4 or
fp4 with a group-wise scale) count the scale bytes in ``bytes_per_element(group_size)``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DType", "DTYPES", "get_dtype", "DTypeError"]


class DTypeError(ValueError):
    """An unknown data type name."""


@dataclass(frozen=True)
class DType:
    name: str
    bits: float
    is_float: bool
    #: the peak-rate key a compute unit lists for math in this type (fp8_e4m3 -> fp8)
    rate_key: str
    #: bits of one group scale for block-quantized formats (0 for plain types)
    scale_bits: float = 0.0

    @property
    def bytes(self) -> float:
        """Bytes per element, without group scales."""
        return self.bits / 8.0

    def bytes_per_element(self, group_size: int | None = None) -> float:
        """Bytes per element including one ``scale_bits`` scale per ``group_size`` elements."""
        if group_size and self.scale_bits:
            return (self.bits + self.scale_bits / group_size) / 8.0
        return self.bits / 8.0


DTYPES: dict[str, DType] = {
    d.name: d
    for d in [
        DType("fp64", 64, True, "fp64"),
        DType("fp32", 32, True, "fp32"),
        DType("tf32", 32, True, "tf32"),  # stored as 32 bits, multiplied at tf32 rate
        DType("bf16", 16, True, "bf16"),
        DType("fp16", 16, True, "fp16"),
        DType("fp8", 8, True, "fp8"),
        DType("fp8_e4m3", 8, True, "fp8"),
        DType("fp8_e5m2", 8, True, "fp8"),
        DType("int8", 8, False, "int8"),
        DType("fp6", 6, True, "fp6", scale_bits=8),
        DType("int4", 4, False, "int4", scale_bits=16),
        DType("fp4", 4, True, "fp4", scale_bits=8),
    ]
}

#: names accepted as peak-rate keys in hardware files
RATE_KEYS = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "fp6", "fp4", "int8", "int4")

ALIASES = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16", "e4m3": "fp8_e4m3",
           "e5m2": "fp8_e5m2", "float8": "fp8", "mxfp4": "fp4", "nvfp4": "fp4", "float": "fp32"}


def get_dtype(name: str) -> DType:
    """Look up a dtype by name (case-insensitive, common aliases such as 'bfloat16' accepted)."""
    d = DTYPES.get(name) if type(name) is str else None  # a canonical name (the cost model's hot path)
    if d is not None:
        return d
    if isinstance(name, DType):
        return name
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in DTYPES:
        raise DTypeError(f"unknown dtype {name!r}; known: {', '.join(DTYPES)}")
    return DTYPES[key]
