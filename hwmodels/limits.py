"""Limits on everything llmsim reads, checked before the work (docs/hardware-format.md, "Input limits").

Every input file is read through ``read_bounded``: it must be a regular file (not /dev/zero, a pipe
or a folder), no larger than its kind's limit, and only that many bytes are ever read. Gzipped
traces are decompressed through ``gunzip_bounded``, which stops at the limit instead of inflating
a bomb. Each limit can be raised with an environment variable (named in the message), so a user
with a genuinely large trace is told exactly what to do.

The YAML limits (nesting depth, values after alias expansion, digits of a number) live here too,
so that one table states every bound and its reason.
"""

from __future__ import annotations

import math
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

from hwmodels.errors import Problem, SpecError

__all__ = ["Limit", "LIMITS", "limit", "read_bounded", "gunzip_bounded", "Bound", "BOUNDS", "check_bound",
           "MAX_YAML_DEPTH",
           "MAX_YAML_VALUES", "MAX_NUMBER_CHARS", "MAX_CSV_FIELD"]

MiB = 1 << 20


@dataclass(frozen=True)
class Limit:
    """One bound: its default, the environment variable that raises it, and why it is what it is."""

    default: int
    env: str
    unit: str
    reason: str

    def value(self) -> int:
        raw = os.environ.get(self.env, "").strip()
        if raw:
            try:
                v = int(raw)
            except ValueError:
                raise SpecError([Problem(f"environment variable {self.env}={raw!r}: expected a whole number "
                                         f"of {self.unit}")]) from None
            if v < 1:
                raise SpecError([Problem(f"environment variable {self.env}={raw!r}: must be at least 1")])
            return v
        return self.default


LIMITS: dict[str, Limit] = {
    # the largest catalog file is about 20 KB; a calibrated file with efficiency tables about 100 KB
    "yaml_bytes": Limit(4 * MiB, "LLMSIM_MAX_YAML_BYTES", "bytes",
                        "hardware files and sweep specs are hand-written; the largest shipped one is ~100 KB"),
    # an HF config.json is a few KB (the largest, with quantization tables, under 1 MB)
    "json_bytes": Limit(8 * MiB, "LLMSIM_MAX_JSON_BYTES", "bytes",
                        "a model config.json is a few KB; the largest seen is under 1 MB"),
    # a trace row is ~40 bytes; parsing holds ~250 bytes per row in lists of strings
    "trace_bytes": Limit(64 * MiB, "LLMSIM_MAX_TRACE_BYTES", "bytes",
                         "a trace row is about 40 bytes, so this is about 1.6 million requests "
                         "(after decompression); parsing holds about 6 bytes per byte of text"),
    # measured kernel CSVs and op query CSVs: tens of thousands of rows of ~200 bytes
    "csv_bytes": Limit(256 * MiB, "LLMSIM_MAX_CSV_BYTES", "bytes",
                       "a measured-kernel CSV of a million rows is about 200 MB"),
}

#: YAML: mappings/lists nested deeper than this are refused (hardware files nest 5 deep, sweep
#: specs 4); without a bound a few hundred brackets overflow Python's recursion
MAX_YAML_DEPTH = 64
#: YAML: values after alias expansion (a "billion laughs" file of 1 KB expands to 10^9 values);
#: the largest catalog file holds about 600 values
MAX_YAML_VALUES = 200_000
#: digits of one number (YAML or JSON): 40 digits hold every physical figure and every integer the
#: engine can index (2^63 has 19); Python refuses beyond 4300 digits with a traceback
MAX_NUMBER_CHARS = 40
#: characters in one CSV cell; a trace cell is a timestamp or a number (under 40 characters)
MAX_CSV_FIELD = 4096


def limit(name: str) -> int:
    return LIMITS[name].value()


def _problem(message: str, file: str) -> Problem:
    """A problem with the whole file (reported at its line 1, column 1)."""
    return Problem(message, file, 1, 1)


def _too_big(file: str, what: str, size: int | None, name: str) -> SpecError:
    lim = LIMITS[name]
    cap = limit(name)
    head = f"{what} is {size:,} {lim.unit}, over" if size is not None else f"{what} exceeds"
    return SpecError([_problem(
        f"{head} the limit of {cap:,} {lim.unit} ({lim.reason}); set the environment variable "
        f"{lim.env} to a larger number of {lim.unit} to read it anyway", file)])


def read_bounded(path: str | Path, kind: str, *, what: str = "the file") -> bytes:
    """The bytes of a regular file no larger than ``LIMITS[kind]``; SpecError otherwise.

    Checks the file type with ``stat`` before opening it (opening a FIFO would block; /dev/zero
    never ends), then reads at most limit + 1 bytes, so a file that grows meanwhile is still bounded.
    """
    file = str(path)
    cap = limit(kind)
    try:
        st = os.stat(file)
    except OSError as e:
        raise SpecError([_problem(f"cannot read: {e.strerror or e}", file)]) from None
    if stat.S_ISDIR(st.st_mode):
        raise SpecError([_problem("is a folder; expected a file", file)])
    if not stat.S_ISREG(st.st_mode):
        raise SpecError([_problem("is not a regular file (a device, pipe or socket); expected a file", file)])
    if st.st_size > cap:
        raise _too_big(file, what, st.st_size, kind)
    try:
        with open(file, "rb") as f:
            data = f.read(cap + 1)
    except OSError as e:
        raise SpecError([_problem(f"cannot read: {e.strerror or e}", file)]) from None
    if len(data) > cap:
        raise _too_big(file, what, None, kind)
    return data



def read_text(path: str | Path, kind: str, what: str, *, gz: bool = False) -> str:
    """A bounded read (:func:`read_bounded`) decoded as UTF-8; bytes that are not UTF-8 are a
    SpecError at the line (and byte on it) where they stand, saying what the file should have been (``what``).
    ``gz``: a file whose name ends in ``.gz`` is decompressed (:func:`gunzip_bounded`, the same limit)."""
    raw = read_bounded(path, kind)
    if gz and str(path).endswith(".gz"):
        raw = gunzip_bounded(raw, str(path), kind)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        col = e.start - raw.rfind(b"\n", 0, e.start)  # the byte's place on its line, from 1
        raise SpecError([Problem(f"not a text file (not UTF-8 at byte {e.start}); expected {what}", str(path),
                                 line, col)]) from None

def gunzip_bounded(raw: bytes, file: str, kind: str = "trace_bytes") -> bytes:
    """Decompress gzip data (several members allowed), stopping with SpecError past the limit."""
    cap = limit(kind)
    out = []
    total = 0
    data = raw
    while data:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            while True:
                chunk = d.decompress(data, cap + 1 - total)
                total += len(chunk)
                out.append(chunk)
                if total > cap:
                    raise _too_big(file, "the decompressed data", None, kind)
                data = d.unconsumed_tail
                if d.eof or not data:
                    break
        except zlib.error as e:
            raise SpecError([_problem(f"corrupt gzip data: {e}", file)]) from None
        if not d.eof:
            raise SpecError([_problem("corrupt gzip data: the compressed stream ends early", file)])
        data = d.unused_data
        if data and data[:2] != b"\x1f\x8b":
            break  # trailing garbage after the last member: gzip(1) ignores it too
    return b"".join(out)


# ---------------------------------------------------------------------------------------------
# bounds of numbers given on the command line, in sweep specs and to the Python API

@dataclass(frozen=True)
class Bound:
    """The accepted range of one kind of number, why, and (for work sizes) the variable that raises it."""

    lo: float
    hi: float
    integer: bool
    why: str
    env: str | None = None
    lo_open: bool = False  # lo itself excluded

    def high(self) -> float:
        raw = os.environ.get(self.env, "").strip() if self.env else ""
        if raw:
            try:
                return float(int(raw)) if self.integer else float(raw)
            except ValueError:
                raise SpecError([Problem(f"environment variable {self.env}={raw!r}: expected a number")]) from None
        return self.hi


BOUNDS: dict[str, Bound] = {
    # work sizes: each costs time and memory in proportion, so each can be raised deliberately
    "batch": Bound(1, 100_000, True, "a batch is built request by request; served batches are at most a few "
                                      "thousand", "LLMSIM_MAX_BATCH"),
    "tokens": Bound(1, 100_000_000, True, "the longest context of any published model is 10 million tokens",
                    "LLMSIM_MAX_TOKENS"),
    "requests": Bound(1, 10_000_000, True, "the serving simulation runs request by request",
                      "LLMSIM_MAX_REQUESTS"),
    "replicas": Bound(1, 100_000, True, "each replica is simulated; the largest deployments run thousands",
                      "LLMSIM_MAX_REPLICAS"),
    "points": Bound(1, 10_000_000, True, "a sweep holds every point in memory (about 1 KB each)",
                    "LLMSIM_MAX_POINTS"),
    "parallel": Bound(1, 1_000_000, True, "tensor/pipeline/expert-parallel degrees beyond a million chips"),
    "count": Bound(0, 10_000_000, True, "a count of rows, samples, steps or folds"),
    "seed": Bound(0, 2**63 - 1, True, "random seeds are 64-bit"),
    # quantities
    "seconds": Bound(0, 1e9, False, "a duration up to ~31 years (the simulator's nanosecond clock needs headroom)",
                     lo_open=True),
    "seconds0": Bound(0, 1e9, False, "a duration up to ~31 years"),
    "rate": Bound(1e-6, 1e9, False, "one request per 11 days up to a billion per second"),
    "cv": Bound(0, 1e3, False, "0 is a fixed rate; above 1000 nearly every request falls in one burst"),
    "fraction": Bound(0, 1, False, "a share"),
    "gib": Bound(0, 1e6, False, "up to a pebibyte of host memory"),
    "usd": Bound(0, 1e12, False, "up to a trillion USD"),
    "factor": Bound(0, 1e6, False, "a ratio up to a million", lo_open=True),
    "real": Bound(-1e15, 1e15, False, "any finite figure of plausible size"),
    "int": Bound(-(2**31), 2**31 - 1, True, "a 32-bit integer"),
}


def check_bound(kind: str, v, name: str = "the value") -> str | None:
    """None when ``v`` is a finite number in BOUNDS[kind], else a message naming ``name``, the range,
    the reason, and (for a work size) the environment variable that raises the bound."""
    b = BOUNDS[kind]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"{name} must be {'an integer' if b.integer else 'a number'}; got {v!r}"
    if isinstance(v, float) and not math.isfinite(v):
        return f"{name} must be a finite number; got {v!r}"
    if b.integer and v != int(v):
        return f"{name} must be a whole number; got {v!r}"
    hi = b.high()
    low_bad = v <= b.lo if b.lo_open else v < b.lo
    if low_bad:
        return f"{name} must be {'greater than' if b.lo_open else 'at least'} {b.lo:g}; got {v!r}"
    if v > hi:
        bound = f"{int(hi):,}" if b.integer else f"{hi:g}"
        raise_it = f"; set the environment variable {b.env} to raise the bound" if b.env else ""
        return f"{name} must be at most {bound} ({b.why}); got {v!r}{raise_it}"
    return None
