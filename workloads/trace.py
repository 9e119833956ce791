"""Request traces: load (Azure LLM inference layout or plain CSV), validate, summarize, replay.

Two CSV layouts are read (the header decides; names are matched ignoring case and surrounding
spaces; other columns are ignored; the file may be gzipped):

- Azure: ``TIMESTAMP,ContextTokens,GeneratedTokens`` with timestamps like
  ``2023-11-16 18:17:03.9799600`` (ISO 8601). ``arrival_s`` = seconds after the earliest request.
- plain: ``arrival_s,input_tokens,output_tokens`` with arrival times in seconds (>= 0, kept as
  given: a trace whose first request is at 5 s replays it at 5 s).

Token counts must be whole numbers >= 1. Every bad cell is reported at once in one
:class:`~hwmodels.errors.SpecError` (file, line, column; the first 20, then a count). Rows out of
time order are not an error: they are sorted (stably) and a line is added to ``Trace.warnings``.

Built-in traces (shipped in ``workloads/data/traces``): ``azure-code-2023`` and
``azure-conv-2023`` (Azure LLM inference traces 2023, CC-BY 4.0; see ``Trace.attribution``).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from hwmodels import csvtext
from hwmodels.errors import Problem, SpecError
from hwmodels.limits import MAX_CSV_FIELD, gunzip_bounded, read_bounded
from workloads.scenario import (
    CHUNK,
    Empirical,
    Replay,
    Request,
    Scenario,
    TraceArrivals,
    _iter_requests,
)

__all__ = [
    "AZURE_2023_ATTRIBUTION",
    "AZURE_COLUMNS",
    "BUILTIN_TRACES",
    "PLAIN_COLUMNS",
    "Trace",
    "load_trace",
]

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
PLAIN_COLUMNS = ("arrival_s", "input_tokens", "output_tokens")

AZURE_2023_ATTRIBUTION = (
    "Azure LLM inference trace 2023, Microsoft Azure Public Dataset "
    "(github.com/Azure/AzurePublicDataset, commit b469a113cedca53ddc3bdea71a143dc4b7d8700c), "
    "licensed CC-BY 4.0. Cite: Patel et al., \"Splitwise: Efficient generative LLM inference "
    "using phase splitting\", ISCA 2024."
)

#: built-in name -> file in workloads/data/traces
BUILTIN_TRACES = {
    "azure-code-2023": "azure-code-2023.csv.gz",
    "azure-conv-2023": "azure-conv-2023.csv.gz",
}

#: Bounds of trace values, checked at the boundary: a token count above MAX_TOKENS cannot be a
#: request (the longest context of any published model is 10 million tokens), and it would wrap
#: int64 byte counts; an arrival time above MAX_ARRIVAL_S (about 31.7 years) cannot be replayed on
#: the simulator's clock (int64 nanoseconds wrap at 292 years; sums of gaps need headroom)
MAX_TOKENS = 100_000_000
MAX_TOKENS_WHY = "the longest context of any published model is 10 million tokens"
MAX_ARRIVAL_S = 1e9
MAX_ARRIVAL_WHY = "about 31.7 years; the simulator's nanosecond clock needs headroom"
MAX_LISTED = 20  # problems listed in one SpecError before "... and N more"

_LAYOUT_HELP = (f"expected a header with either {','.join(PLAIN_COLUMNS)} (plain layout, seconds) "
                f"or {','.join(AZURE_COLUMNS)} (Azure layout)")


@dataclass(frozen=True, eq=False)
class Trace:
    """A request trace: arrays sorted by arrival time (read-only), plus where it came from.

    ``warnings`` lists everything the loader changed (e.g. sorting). Equality is identity.
    """

    arrival_s: np.ndarray = field(repr=False)  # float64, non-decreasing, >= 0
    input_tokens: np.ndarray = field(repr=False)  # int64, >= 1
    output_tokens: np.ndarray = field(repr=False)  # int64, >= 1
    name: str = ""
    source: str = ""  # the file it was read from
    layout: str = "plain"  # "azure" | "plain" | "arrays"
    attribution: str = ""  # the citation owed when using it ("" for user data)
    warnings: tuple[str, ...] = ()

    def __post_init__(self):
        for nm, dt in (("arrival_s", np.float64), ("input_tokens", np.int64), ("output_tokens", np.int64)):
            a = np.asarray(getattr(self, nm), dtype=dt)
            if a.flags.writeable:
                a = a.copy()
                a.setflags(write=False)
            object.__setattr__(self, nm, a)
        if not (self.arrival_s.size == self.input_tokens.size == self.output_tokens.size):
            raise SpecError("Trace arrays must have equal lengths")

    @classmethod
    def from_arrays(cls, arrival_s, input_tokens, output_tokens, name: str = "") -> Trace:
        """A validated trace from three equal-length sequences (sorted by time if needed)."""
        cols = {}
        problems: list[Problem] = []
        for nm, v in (("arrival_s", arrival_s), ("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            try:
                cols[nm] = np.array(v, dtype=np.float64).ravel()
            except (TypeError, ValueError):
                problems.append(Problem("must be a sequence of numbers", path=nm))
        if problems:
            raise SpecError(problems)
        sizes = {nm: a.size for nm, a in cols.items()}
        if len(set(sizes.values())) != 1:
            raise SpecError(f"arrays must have equal lengths, got {sizes}")
        if sizes["arrival_s"] == 0:
            raise SpecError("no requests (the arrays are empty)")
        n = sizes["arrival_s"]
        for nm, a in cols.items():
            for idx, msg in _check_numbers(a, nm, [None] * n):
                problems.append(Problem(msg, path=f"{nm}[{idx}]"))
        _raise(problems, None)
        t, inp, out, warns = _sorted(cols["arrival_s"], cols["input_tokens"].astype(np.int64),
                                     cols["output_tokens"].astype(np.int64))
        return cls(t, inp, out, name=name, layout="arrays", warnings=tuple(warns))

    # ---- sizes and rates

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def num_requests(self) -> int:
        return len(self)

    @property
    def duration_s(self) -> float:
        """Time from the first arrival to the last."""
        return float(self.arrival_s[-1] - self.arrival_s[0])

    @property
    def rate_rps(self) -> float:
        """Mean arrival rate: (n - 1) gaps over the span; inf when all arrive at once."""
        d = self.duration_s
        return math.inf if d == 0 else (len(self) - 1) / d

    def summary(self) -> dict:
        """Counts, rate, burstiness (CV of inter-arrival gaps) and length percentiles."""

        def stats(a):
            p50, p90, p99 = np.percentile(a, [50, 90, 99])
            return {"mean": float(a.mean()), "min": int(a.min()), "p50": float(p50), "p90": float(p90),
                    "p99": float(p99), "max": int(a.max()), "total": int(a.sum())}

        gaps = np.diff(self.arrival_s)
        cv = float(gaps.std() / gaps.mean()) if gaps.size and gaps.mean() > 0 else math.nan
        return {
            "name": self.name,
            "num_requests": len(self),
            "duration_s": self.duration_s,
            "rate_rps": self.rate_rps,
            "interarrival_cv": cv,
            "input_tokens": stats(self.input_tokens),
            "output_tokens": stats(self.output_tokens),
        }

    # ---- views

    def to_frame(self):
        """DataFrame with columns request_id, arrival_s, input_tokens, output_tokens."""
        import pandas as pd

        return pd.DataFrame({
            "request_id": np.arange(len(self), dtype=np.int64),
            "arrival_s": self.arrival_s.copy(),
            "input_tokens": self.input_tokens.copy(),
            "output_tokens": self.output_tokens.copy(),
        })

    def requests(self) -> Iterator[Request]:
        """The rows as :class:`Request` s, in arrival order, ids 0..n-1."""
        for i in range(0, len(self), CHUNK):
            sl = slice(i, i + CHUNK)
            yield from _iter_requests({
                "request_id": np.arange(i, i + self.arrival_s[sl].size, dtype=np.int64),
                "arrival_s": self.arrival_s[sl],
                "input_tokens": self.input_tokens[sl],
                "output_tokens": self.output_tokens[sl],
            })

    def input_dist(self) -> Empirical:
        """The input lengths as an Empirical distribution (to resample under other arrivals)."""
        return Empirical(self.input_tokens)

    def output_dist(self) -> Empirical:
        return Empirical(self.output_tokens)

    def scenario(self, speedup: float = 1.0, *, rate_rps: float | None = None,
                 num_requests: int | None = None, duration_s: float | None = None,
                 loop: bool = False, name: str | None = None) -> Scenario:
        """A Scenario that replays this trace row by row (arrival times / speedup, same lengths).

        ``rate_rps`` sets the speedup to reach that mean rate instead. ``loop=True`` repeats the
        trace so that ``num_requests``/``duration_s`` may exceed it. The seed is irrelevant.
        """
        if rate_rps is not None:
            if speedup != 1.0:
                raise SpecError(Problem("give speedup or rate_rps, not both", path="scenario.rate_rps"))
            if not isinstance(rate_rps, (int, float)) or isinstance(rate_rps, bool) or not rate_rps > 0 \
                    or math.isinf(rate_rps):
                raise SpecError(Problem(f"must be a finite number > 0, got {rate_rps!r}", path="scenario.rate_rps"))
            if math.isinf(self.rate_rps):
                raise SpecError(Problem("the trace has no time span (all arrivals at one instant), so it "
                                        "cannot be rescaled to a rate", path="scenario.rate_rps"))
            speedup = rate_rps / self.rate_rps
        return Scenario(
            TraceArrivals(self.arrival_s, speedup=speedup, loop=loop),
            Replay(self.input_tokens),
            Replay(self.output_tokens),
            num_requests=num_requests,
            duration_s=duration_s,
            name=self.name if name is None else name,
        )

    def __repr__(self) -> str:
        return (f"Trace(name={self.name!r}, num_requests={len(self)}, duration_s={self.duration_s:.1f}, "
                f"rate_rps={self.rate_rps:.3g}, layout={self.layout!r})")


# --------------------------------------------------------------------------------------------
# loading


def _resolve(path_or_name) -> tuple[Path | None, object, str, str]:
    """-> (path or None, opener, display name, attribution)."""
    if isinstance(path_or_name, str) and path_or_name in BUILTIN_TRACES:
        res = resources.files("workloads.data.traces").joinpath(BUILTIN_TRACES[path_or_name])
        return None, res, path_or_name, AZURE_2023_ATTRIBUTION
    try:
        p = Path(path_or_name)
    except TypeError:
        raise SpecError(f"expected a trace file path or one of {', '.join(BUILTIN_TRACES)}, "
                        f"got {path_or_name!r}") from None
    return p, p, p.stem, ""


def load_trace(path_or_name, limit: int | None = None) -> Trace:
    """Load a trace file (Azure or plain layout, optionally gzipped) or a built-in by name.

    ``limit``: read only the first ``limit`` data rows of the file (file order; the rest is not
    read or checked).
    """
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise SpecError(Problem(f"must be an integer >= 1, got {limit!r}", path="limit"))
    path, opener, name, attribution = _resolve(path_or_name)
    fname = str(path_or_name if path is None else path)
    if path is not None and not path.exists():
        raise SpecError(f"no such trace file (built-in traces: {', '.join(BUILTIN_TRACES)})", file=fname)
    if path is not None:
        raw = read_bounded(path, "trace_bytes")
    else:
        try:
            raw = opener.read_bytes()
        except OSError as e:
            raise SpecError(f"cannot read: {e.strerror or e}", file=fname) from None
    if raw[:2] == b"\x1f\x8b":
        raw = gunzip_bounded(raw, fname, "trace_bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise SpecError(Problem(f"not UTF-8 text (byte {e.start})", file=fname, line=line, col=1)) from None
    trace = _parse(text, fname, limit)
    return Trace(trace["arrival_s"], trace["input_tokens"], trace["output_tokens"], name=name, source=fname,
                 layout=trace["layout"], attribution=attribution, warnings=tuple(trace["warnings"]))


def _raise(problems: list[Problem], fname: str | None) -> None:
    if not problems:
        return
    problems = sorted(problems, key=lambda p: (p.line or 0, p.col or 0))
    if len(problems) > MAX_LISTED:
        rest = len(problems) - MAX_LISTED
        nxt = problems[MAX_LISTED]
        problems = problems[:MAX_LISTED] + [Problem(f"... and {rest} more problem(s), the next here", file=fname,
                                                    line=nxt.line, col=nxt.col)]
    raise SpecError(problems, file=fname)


def _read_rows(text: str, fname: str, limit: int | None):
    """-> header, rows (lists of str, blank lines dropped), their 1-based line numbers.

    A cell longer than MAX_CSV_FIELD characters is an error (a trace cell is a number or a
    timestamp), reported at its line."""
    old = csv.field_size_limit(MAX_CSV_FIELD)
    try:
        return _read_rows_bounded(text, fname, limit)
    finally:
        csv.field_size_limit(old)


def _field_error(e: csv.Error, text: str, fname: str, line: int | None) -> SpecError:
    msg = str(e)
    if "field larger than field limit" in msg:
        if line is None:  # fast path: the line of the first long cell
            m = re.search(f"[^,\n]{{{MAX_CSV_FIELD + 1}}}", text)
            line = text.count("\n", 0, m.start()) + 1 if m else None
        msg = f"a cell longer than {MAX_CSV_FIELD} characters (a trace cell is a number or a timestamp)"
    else:
        msg = f"malformed CSV: {msg}"
    return SpecError(Problem(msg, file=fname, line=line or 1, col=1))


def _read_rows_bounded(text: str, fname: str, limit: int | None):
    if not text.strip():
        raise SpecError(Problem(f"empty file: no header and no rows; {_LAYOUT_HELP}", file=fname, line=1, col=1))
    if '"' not in text and "\r" not in text:
        # fast path: without quotes every physical line is one record, so index + 1 is the line number
        try:
            all_rows = list(csv.reader(io.StringIO(text)))
        except csv.Error as e:
            raise _field_error(e, text, fname, None) from None
        first = next((i for i, r in enumerate(all_rows) if r and any(f.strip() for f in r)), None)
        if first is None:
            raise SpecError(Problem(f"empty file: no header and no rows; {_LAYOUT_HELP}", file=fname, line=1, col=1))
        header = all_rows[first]
        rows, lines = [], []
        for i in range(first + 1, len(all_rows)):
            r = all_rows[i]
            if r and (len(r) > 1 or r[0].strip()):
                rows.append(r)
                lines.append(i + 1)
                if limit is not None and len(rows) >= limit:
                    break
        return header, first + 1, rows, lines
    reader = csv.reader(io.StringIO(text, newline=""))
    header, header_line = None, 0
    rows, lines = [], []
    try:
        for r in reader:
            if not r or (len(r) == 1 and not r[0].strip()):
                continue
            if header is None:
                header, header_line = r, reader.line_num
                continue
            rows.append(r)
            lines.append(reader.line_num)
            if limit is not None and len(rows) >= limit:
                return header, header_line, rows, lines
    except csv.Error as e:
        raise _field_error(e, text, fname, reader.line_num) from None
    # a quoted cell never closed runs to the end of the file, into the last record's last cell (the csv module
    # does not complain): say where it opens. Such a cell is the file's tail ('""' read as '"' aside), a test that
    # spares a well-formed file the second pass
    cell = (rows[-1] if rows else header or [""])[-1]
    if '"' in text and (text.endswith(cell) or '"' in cell):
        at = csvtext.unclosed_quote(text, fname)
        if at is not None:
            raise SpecError(Problem(f"{csvtext.UNCLOSED}; expected a closing quote (\")", file=fname, line=at[0],
                                    col=at[1]))
    return header, header_line, rows, lines


def _parse(text: str, fname: str, limit: int | None) -> dict:
    header, header_line, rows, lines = _read_rows(text, fname, limit)
    # a column given twice (case and surrounding spaces aside): only the first would be read
    _raise(csvtext.duplicates(header, fname, header_line, key=lambda h: h.strip().lower()), fname)
    norm = [h.strip().lower() for h in header]
    pos = {}
    for j, h in enumerate(norm):
        pos.setdefault(h, j)
    found = {}
    for layout, want in (("plain", PLAIN_COLUMNS), ("azure", AZURE_COLUMNS)):
        found[layout] = [c for c in want if c.lower() in pos]
    if len(found["plain"]) == 3:
        layout, want = "plain", PLAIN_COLUMNS
    elif len(found["azure"]) == 3:
        layout, want = "azure", AZURE_COLUMNS
    else:
        closer = "azure" if len(found["azure"]) > len(found["plain"]) else "plain"
        wanted = AZURE_COLUMNS if closer == "azure" else PLAIN_COLUMNS
        missing = [c for c in wanted if c.lower() not in pos]
        shown = ",".join(h.strip() for h in header)
        raise SpecError(Problem(
            f"missing column(s) {', '.join(missing)}: {_LAYOUT_HELP}; found header {shown!r}",
            file=fname, line=header_line, col=1))
    if not rows:
        raise SpecError(Problem(f"no rows: the file has a header ({','.join(want)}) but no data",
                                file=fname, line=header_line, col=1))

    ncols = len(header)
    problems: list[Problem] = []
    n = len(rows)
    cols = []
    for c in want:
        j = pos[c.lower()]
        cols.append((c, j, [r[j] if j < len(r) else "" for r in rows]))
    for r, ln in zip(rows, lines):
        if len(r) > ncols and any(f.strip() for f in r[ncols:]):
            problems.append(Problem(f"{len(r)} fields, but the header has {ncols}", file=fname, line=ln,
                                    col=ncols + 1))

    # time column
    (tname, tj, tvals), (iname, ij, ivals), (oname, oj, ovals) = cols
    if layout == "azure":
        import pandas as pd

        ts = pd.to_datetime(pd.Series(tvals, dtype=object), format="ISO8601", utc=True, errors="coerce")
        bad = ts.isna().to_numpy()
        for k in np.flatnonzero(bad):
            s = tvals[k].strip()
            msg = "missing value" if not s else f"not a timestamp: {s!r} (expected e.g. 2023-11-16 18:17:03.9799600)"
            problems.append(Problem(msg, file=fname, line=lines[k], col=tj + 1, path=tname))
        ns = ts.to_numpy(dtype="datetime64[ns]").view(np.int64)
        t_raw = None if bad.any() else ns
        if t_raw is not None and len(ns):
            lo, hi = int(ns.min()), int(ns.max())
            if (hi - lo) / 1e9 > MAX_ARRIVAL_S:
                k = int(np.argmax(ns))
                problems.append(Problem(f"the timestamps span {(hi - lo) / 1e9 / 86400 / 365.25:.4g} years, over "
                                        f"{MAX_ARRIVAL_S:g} s ({MAX_ARRIVAL_WHY})", file=fname, line=lines[k],
                                        col=tj + 1, path=tname))
                t_raw = None
    else:
        t = _to_float(tvals)
        for k, msg in _check_numbers(t, tname, tvals, min_value=0.0, integral=False):
            problems.append(Problem(msg, file=fname, line=lines[k], col=tj + 1, path=tname))
        t_raw = t

    toks = []
    for c, j, vals in ((iname, ij, ivals), (oname, oj, ovals)):
        a = _to_float(vals)
        for k, msg in _check_numbers(a, c, vals, min_value=1, integral=True):
            problems.append(Problem(msg, file=fname, line=lines[k], col=j + 1, path=c))
        toks.append(a)
    _raise(problems, fname)

    inp = toks[0].astype(np.int64)
    out = toks[1].astype(np.int64)
    t, inp, out, warns = _sorted(t_raw, inp, out)
    if layout == "azure":
        t = (t - t[0]) / 1e9  # int64 ns -> seconds after the earliest request
    warns = [f"{fname}: {w}" for w in warns]
    return {"arrival_s": np.asarray(t, dtype=np.float64), "input_tokens": inp, "output_tokens": out,
            "layout": layout, "warnings": warns, "n": n}


def _to_float(vals: list[str]) -> np.ndarray:
    try:
        return np.array(vals, dtype=np.float64)  # fast path: all plain numbers
    except ValueError:
        import pandas as pd

        return pd.to_numeric(pd.Series(vals, dtype=object).str.strip(), errors="coerce").to_numpy(np.float64)


def _check_numbers(a: np.ndarray, col: str, raw, *, min_value=None, integral=None):
    """Yield (index, message) for each bad value of column ``col`` (values ``a``, text ``raw``)."""
    is_time = col in ("arrival_s",)
    if min_value is None:
        min_value = 0.0 if is_time else 1
    if integral is None:
        integral = not is_time
    nan = np.isnan(a)
    for k in np.flatnonzero(nan):
        s = "" if raw[k] is None else str(raw[k]).strip()
        if raw[k] is None or s.lower() == "nan":
            yield k, "NaN is not allowed"
        elif not s:
            yield k, "missing value"
        else:
            yield k, f"not a number: {s!r}"
    inf = np.isinf(a)
    for k in np.flatnonzero(inf):
        yield k, f"must be finite, got {a[k]:g}"
    ok = ~(nan | inf)
    what = "arrival time" if is_time else "token count"
    top, why = (MAX_ARRIVAL_S, MAX_ARRIVAL_WHY) if is_time else (MAX_TOKENS, MAX_TOKENS_WHY)
    for k in np.flatnonzero(ok & (a > top)):
        yield k, f"{what} must be at most {top:g} ({why}), got {a[k]:g}"
    ok &= a <= top
    for k in np.flatnonzero(ok & (a < min_value)):
        v = a[k]
        if is_time:
            yield k, f"negative arrival time: {v:g}"
        else:
            yield k, f"{what} must be >= {min_value}, got {v:g}"
    if integral:
        for k in np.flatnonzero(ok & (a >= min_value) & (a != np.floor(a))):
            yield k, f"{what} must be a whole number, got {a[k]:g}"


def _sorted(t, inp, out):
    warns = []
    if t.size > 1 and (np.diff(t) < 0).any():
        order = np.argsort(t, kind="stable")
        moved = int((order != np.arange(t.size)).sum())
        t, inp, out = t[order], inp[order], out[order]
        warns.append(f"rows were not sorted by arrival time; sorted them ({moved} of {t.size} rows moved)")
    return t, inp, out, warns
