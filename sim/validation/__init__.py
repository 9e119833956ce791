"""Validation against real kernel runs: the measurement side.

- ``measure``: the ``llmsim measure`` harness (microbenchmarks written as per-kernel CSV rows) and
  ``load_measurements`` (read and check measured CSVs, including the built-in data sets);
- ``environment``: the side file ``FILE.env.json`` describing where a measurement ran;
- ``vidur``: converter of Vidur's published GPU profiles into the per-kernel CSV format;
- ``kineto``: import of PyTorch profiler (Kineto) Chrome traces.

Nothing here imports torch at import time (it is the optional ``[measure]`` extra).
"""

from sim.validation.measure import (
    CSV_COLUMNS,
    KNOWN_OPS,
    OP_COLUMNS,
    builtin_measurements,
    load_measurements,
    shape_id,
    validate_measurements,
)

__all__ = ["CSV_COLUMNS", "KNOWN_OPS", "OP_COLUMNS", "builtin_measurements", "load_measurements", "shape_id",
           "validate_measurements"]
