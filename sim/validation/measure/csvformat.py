"""The per-kernel CSV format (docs/measurement.md): columns, shape keys, a flushed row writer."""

from __future__ import annotations

import csv
import math
import os
import sys

import numpy as np
import pandas as pd

COLLECTIVE_OPS = ("allreduce", "allgather", "reducescatter", "alltoall", "sendrecv")

#: required shape columns of each op
OP_COLUMNS: dict[str, tuple[str, ...]] = {
    "gemm": ("m", "n", "k"),
    "attention": ("phase", "batch", "heads", "kv_heads", "head_dim", "seqlen_q", "seqlen_kv", "causal"),
    "memcpy": ("bytes",),
    **{op: ("bytes", "num_devices") for op in COLLECTIVE_OPS},
    "elementwise": ("numel",),
    "norm": ("m", "n"),
    "embedding": ("m", "n"),
    "rope": ("m", "numel"),
}
KNOWN_OPS = tuple(OP_COLUMNS)

#: optional shape columns and their defaults
OPTIONAL_COLUMNS: dict[str, dict[str, object]] = {
    "gemm": {"batch": 1},
    "attention": {"kernel": None},
    "elementwise": {"inputs": 1, "outputs": 1, "flops_per_element": 1},
    "rope": {"flops_per_element": 3},
}

#: the columns ``llmsim measure`` writes, in order (empty where an op does not use one)
CSV_COLUMNS = [
    "hardware", "op", "dtype",
    "m", "n", "k", "batch",
    "phase", "heads", "kv_heads", "head_dim", "seqlen_q", "seqlen_kv", "causal", "kernel",
    "bytes", "num_devices",
    "numel", "inputs", "outputs", "flops_per_element",
    "measured_time_s", "spread", "reps", "calls_per_rep",
    "gflop_per_s", "gbyte_per_s",
    "source", "name", "variant", "shape_id",
]

#: the largest shape a row may give: kernels index tensors with 32-bit integers
MAX_DIM = 2**31
#: the largest byte or element count (a buffer, not an index: nccl-tests and copy benchmarks run
#: buffers of several GiB); 2**50 (1 PiB) stays exact in the 64-bit integer columns
MAX_COUNT = 2**50
_COUNT_COLUMNS = ("bytes", "numel", "fresh_bytes", "fresh_span_bytes", "numel_q")


def max_of(col: str) -> int:
    """The largest value integer column ``col`` may hold (measured CSVs and ``llmsim ops`` queries)."""
    return MAX_COUNT if col in _COUNT_COLUMNS else MAX_DIM


_INT_COLUMNS = ("m", "n", "k", "batch", "heads", "kv_heads", "head_dim", "seqlen_q", "seqlen_kv",
                "bytes", "num_devices", "numel", "inputs", "outputs")


def _fmt_int(v) -> str:
    return str(int(v))


def shape_id(row: dict) -> str:
    """A key that names one shape of one op, independent of hardware, dtype and source.

    Calibration splits fitting and held-out rows BY this key, so that the same GEMM shape seen in
    several models or TP degrees never lands on both sides.
    """
    op = str(row.get("op", "")).strip().lower()

    def g(name, default=None):
        v = row.get(name, default)
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            return default
        return v

    try:
        if op == "gemm":
            s = f"gemm:m={_fmt_int(g('m'))},n={_fmt_int(g('n'))},k={_fmt_int(g('k'))}"
            b = g("batch", 1)
            return s + (f",batch={_fmt_int(b)}" if int(b) != 1 else "")
        if op == "attention":
            causal = _parse_bool(g("causal"))
            return (f"attention:{g('phase')},batch={_fmt_int(g('batch'))},heads={_fmt_int(g('heads'))},"
                    f"kv_heads={_fmt_int(g('kv_heads'))},head_dim={_fmt_int(g('head_dim'))},"
                    f"seqlen_q={_fmt_int(g('seqlen_q'))},seqlen_kv={_fmt_int(g('seqlen_kv'))},"
                    f"causal={int(bool(causal))}")
        if op == "memcpy":
            return f"memcpy:bytes={_fmt_int(g('bytes'))}"
        if op in COLLECTIVE_OPS:
            return f"{op}:bytes={_fmt_int(g('bytes'))},num_devices={_fmt_int(g('num_devices'))}"
        if op == "elementwise":
            fpe = float(g("flops_per_element", 1))
            fpe_s = str(int(fpe)) if fpe.is_integer() else f"{fpe:g}"
            return (f"elementwise:numel={_fmt_int(g('numel'))},inputs={_fmt_int(g('inputs', 1))},"
                    f"outputs={_fmt_int(g('outputs', 1))},flops_per_element={fpe_s}")
        if op in ("norm", "embedding"):
            return f"{op}:m={_fmt_int(g('m'))},n={_fmt_int(g('n'))}"
        if op == "rope":
            return f"rope:m={_fmt_int(g('m'))},numel={_fmt_int(g('numel'))}"
    except (TypeError, ValueError):
        return ""
    return ""


def add_shape_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Set the ``shape_id`` column of every row (in place; returns ``df``)."""
    df["shape_id"] = [shape_id(r) for r in df.to_dict("records")]
    return df


def _parse_bool(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if v is None:
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        if isinstance(v, float) and math.isnan(v):
            return None
        if v in (0, 1):
            return bool(v)
        return None
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "t", "y"):
        return True
    if s in ("false", "0", "no", "f", "n"):
        return False
    return None


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        return f"{float(v):.6g}"
    return str(v)


class CsvSink:
    """Writes rows as they come, flushing after each one (an interrupted run keeps its rows)."""

    def __init__(self, path: str, columns: list[str] = CSV_COLUMNS):
        self.path = path
        self.columns = columns
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self._f = open(path, "w", newline="", encoding="utf-8")
        self._w = csv.writer(self._f)
        self._w.writerow(columns)
        self._f.flush()
        self.rows = 0

    def write(self, row: dict) -> None:
        self._w.writerow([_fmt(row.get(c)) for c in self.columns])
        self._f.flush()
        self.rows += 1

    def close(self) -> None:
        self._f.close()


def _log(msg: str, stream=None) -> None:
    """A progress line of a measurement run, on stderr (stdout is left to the CSV path)."""
    print(f"[measure] {msg}", file=stream or sys.stderr, flush=True)
