"""Measure real kernels, and load measured per-kernel CSV files.

Two halves, both about the per-kernel CSV format that ``llmsim ops`` reads (docs/measurement.md):

- the harness behind ``llmsim measure``: microbenchmarks of the kernels LLM inference is made of
  (GEMMs, attention, memcpy, elementwise, norms, collectives), timed with warm-up, device
  synchronisation and adaptive repetition, written one flushed CSV row at a time;
- ``load_measurements``: read a measured CSV (or a built-in data set such as ``'vidur-a100'``),
  check every row, and flag bad rows with their reason in an ``error`` column.

One module per job: ``csvformat`` (columns, shape keys, the row writer), ``timing`` (host clock
and CUDA-event timing), ``numpy_kernels`` and ``torch_kernels`` (the kernels), ``suites`` (the
case list of each device and suite), ``run`` (running a suite into a CSV with its environment
file), ``collectives`` (multi-GPU NCCL collectives) and ``load`` (reading and checking measured
files). The names below are re-exported here, where callers import them from.

The CPU path needs only numpy. torch is imported lazily, inside the torch/CUDA code paths only.
"""

from sim.validation.measure.collectives import run_collectives, spawn_collectives
from sim.validation.measure.csvformat import (
    COLLECTIVE_OPS,
    CSV_COLUMNS,
    KNOWN_OPS,
    OP_COLUMNS,
    OPTIONAL_COLUMNS,
    CsvSink,
    add_shape_ids,
    shape_id,
)
from sim.validation.measure.load import (
    BUILTIN,
    BUILTIN_GROUPS,
    DATA_DIR,
    builtin_measurements,
    load_measurements,
    validate_measurements,
)
from sim.validation.measure.run import cuda_context, measure_to_csv, plan_cases, run_measurements
from sim.validation.measure.suites import (
    DEFAULT_CPU_HARDWARE,
    SUITES,
    Case,
    build_cases,
    catalog_name_for_gpu,
)
from sim.validation.measure.timing import (
    Kernel,
    MeasureError,
    Settings,
    Timing,
    collect_samples,
    summarize_samples,
    time_callable,
)

__all__ = [
    "BUILTIN",
    "BUILTIN_GROUPS",
    "COLLECTIVE_OPS",
    "CSV_COLUMNS",
    "DATA_DIR",
    "DEFAULT_CPU_HARDWARE",
    "KNOWN_OPS",
    "OPTIONAL_COLUMNS",
    "OP_COLUMNS",
    "SUITES",
    "Case",
    "CsvSink",
    "Kernel",
    "MeasureError",
    "Settings",
    "Timing",
    "add_shape_ids",
    "build_cases",
    "builtin_measurements",
    "catalog_name_for_gpu",
    "collect_samples",
    "cuda_context",
    "load_measurements",
    "measure_to_csv",
    "plan_cases",
    "run_collectives",
    "run_measurements",
    "shape_id",
    "spawn_collectives",
    "summarize_samples",
    "time_callable",
    "validate_measurements",
]
