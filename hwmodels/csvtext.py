"""Whole-file checks of a CSV's text, shared by every reader of a CSV a user can name: the kernel
CSV's two (``sim.validation.measure.load_measurements`` behind ``validate``/``calibrate``/``report``,
``sim.ops.read_ops_csv`` behind ``ops``), the published tables (``sim.validation.published``,
``published_xla``, ``gemm_score``), Vidur's profiles (``sim.validation.vidur``) and, for a column given
twice or a quote never closed, the trace reader (``workloads.trace``, which parses its records itself).
:func:`read_csv` is the whole path for a reader that needs no more: a bounded read, these checks, the
frame and the line of each row.

Each error names the file, a line and what was expected, as the YAML and trace readers do
(``file:line:col: ...``): an empty file at line 1; a header problem (a column given twice, a
required column missing, no data rows after it) at the header's line, the column at its field
number; a CSV syntax error at the record where it stands. Lines count from 1 as an editor shows
them (a quoted cell that holds line breaks spans several).
"""

from __future__ import annotations

import csv
import io
import os

from hwmodels.errors import Problem, SpecError
from hwmodels.limits import read_text

__all__ = ["EMPTY", "UNCLOSED", "check_first_row", "duplicates", "frame", "header", "missing", "no_rows", "read_csv",
           "record_lines", "syntax_error", "unclosed_quote"]

#: the message of a file with no header (nothing, or blank lines only)
EMPTY = "empty file: expected a CSV with a header row"
#: what a quoted cell that runs to the end of the file is, said at the line and field where it opens
UNCLOSED = "a quoted cell opened here is not closed before the end of the file"


def _records(text: str, skipinitialspace: bool, file: str | None = None):
    """(first line, fields, blank, offset) of each CSV record of ``text``: ``blank`` when the record is one line
    of spaces only (pandas skips those; a line ``""`` is a row of empty cells to it), ``offset`` where the
    record starts in ``text``. A byte order mark at the start is not text (pandas drops it too). A cell over
    the csv module's size limit is a SpecError at its record (pandas has no limit; no CSV here needs one)."""
    bom = 1 if text.startswith("\ufeff") else 0
    src = io.StringIO(text[bom:], newline="")
    read = [bom, ""]  # characters consumed, the last line read

    def lines():
        for ln in src:
            read[0] += len(ln)
            read[1] = ln
            yield ln

    reader = csv.reader(lines(), skipinitialspace=skipinitialspace)
    start, offset = 1, bom
    try:
        for fields in reader:
            yield start, fields, reader.line_num == start and not read[1].strip(), offset
            start, offset = reader.line_num + 1, read[0]
    except csv.Error as e:
        raise SpecError(Problem(f"not a readable CSV: {e}; expected cells of at most {csv.field_size_limit()} "
                                "characters (a number or a name)", file=file, line=start, col=1)) from None


def duplicates(names, file: str, line: int, key=str.strip) -> list[Problem]:
    """A Problem at the header's ``line`` for each column name given twice, at its field number: names
    the same once ``key`` is applied (surrounding spaces removed; the trace reader also folds case) are one
    name (pandas would rename the second one 'name.1' and its cells would be read by no one)."""
    first: dict[str, int] = {}
    problems = []
    for i, n in enumerate(names, 1):
        k = key(n)
        if k and k in first:
            problems.append(Problem(f"duplicate column name (also column {first[k]}); expected each column "
                                    "once", file=file, line=line, col=i, path=n.strip()))
        first.setdefault(k, i)
    return problems


def header(text: str, file: str, skipinitialspace: bool = False) -> tuple[int, list[str]]:
    """The header's line and its column names (surrounding spaces removed): the first record with a
    non-blank cell. SpecError at line 1 when there is none (:data:`EMPTY`), and at the header for each
    name given twice (:func:`duplicates`)."""
    for line, fields, _, _ in _records(text, skipinitialspace, file):
        if not any(f.strip() for f in fields):
            continue
        problems = duplicates(fields, file, line)
        if problems:
            raise SpecError(problems)
        return line, [f.strip() for f in fields]
    raise SpecError(Problem(EMPTY, file=file, line=1, col=1))


def missing(file: str, line: int, columns, required, expected: str) -> SpecError | None:
    """The error of a header (at ``line``) that lacks some of the ``required`` columns, naming them and
    what was expected; None when none is missing."""
    gone = [c for c in required if c not in columns]
    if not gone:
        return None
    return SpecError(Problem(f"missing column(s) {', '.join(gone)}; expected {expected}", file=file, line=line,
                             col=1))


def no_rows(file: str, line: int, expected: str = "one row per kernel") -> SpecError:
    """The error of a file whose header (at ``line``) no data row follows."""
    return SpecError(Problem(f"no rows: the file has a header but no data rows; expected {expected}",
                             file=file, line=line, col=1))


def _wide(text: str, file: str, header_line: int, columns: int, skipinitialspace: bool, first_only: bool):
    """(line, cells) of the first record after the header with more cells than ``columns`` (``first_only``:
    looking at the first data record only; blank lines are skipped, as pandas skips them); else None, and
    the last record's (line, cells), the header's included, as the second value."""
    last = None
    for line, fields, blank, _ in _records(text, skipinitialspace, file):
        last = (line, len(fields))
        if line <= header_line or blank:
            continue
        if len(fields) > columns:
            return (line, len(fields)), None
        if first_only:
            return None, None
    return None, last


def _too_many(file: str, at: tuple, columns: int, wording) -> SpecError:
    return SpecError(Problem(wording(f"{at[1]} fields, but the header has {columns}"), file=file, line=at[0],
                             col=columns + 1))


def check_first_row(text: str, file: str, header_line: int, columns: int, wording,
                    skipinitialspace: bool = False) -> None:
    """SpecError when the first data record has more cells than the header: pandas would read the extra
    cells as the rows' index and shift every column onto the wrong name, silently (any later wider
    record it refuses; :func:`syntax_error` places that one)."""
    wide, _ = _wide(text, file, header_line, columns, skipinitialspace, first_only=True)
    if wide is not None:
        raise _too_many(file, wide, columns, wording)


def syntax_error(text: str, file: str, header_line: int, columns: int, wording, detail: str,
                 skipinitialspace: bool = False) -> SpecError:
    """A CSV the parser refused, at the record where it stands: the first after the header with more
    cells than the header has ``columns`` (at the first extra cell), else the last record when a quoted
    cell runs to the end of the file (its opening line). ``wording(what)``: the reader's message around
    the description; ``detail``: the parser's own message, kept where the record cannot be found."""
    wide, last = _wide(text, file, header_line, columns, skipinitialspace, first_only=False)
    if wide is not None:
        return _too_many(file, wide, columns, wording)
    if "EOF inside string" in detail and last is not None:
        return SpecError(Problem(wording(UNCLOSED),
                                 file=file, line=last[0], col=max(last[1], 1)))
    return SpecError(Problem(wording(detail), file=file))


def unclosed_quote(text: str, file: str, skipinitialspace: bool = False) -> tuple[int, int] | None:
    """(line, field number) where a quoted cell opens that is never closed, for a reader that parses its
    records itself with the csv module (which, not strict, reads such a cell to the end of the file into
    the last record): the last record read again, strictly; None when it ends cleanly."""
    last = None
    for last in _records(text, skipinitialspace, file):
        pass
    if last is None or '"' not in text[last[3]:]:
        return None
    try:
        for _ in csv.reader(io.StringIO(text[last[3]:], newline=""), skipinitialspace=skipinitialspace, strict=True):
            pass
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            return last[0], max(len(last[1]), 1)
    return None


def frame(text: str, file: str, wording, *, skipinitialspace: bool = False, **options):
    """The frame pandas reads from ``text`` (``options``: its read_csv options) and the header's line, after the
    whole-file checks (:func:`header`, :func:`check_first_row`); a file pandas refuses is a SpecError at the
    record where the problem stands (:func:`syntax_error`). ``wording(what, kind)``: the reader's message
    around the description, ``kind`` the parser's exception type ('' for a check of our own). pandas is
    imported here, not with the module (the trace reader uses the rest without it)."""
    import pandas as pd

    line, names = header(text, file, skipinitialspace)  # an empty file, a column given twice: at their line
    check_first_row(text, file, line, len(names), lambda what: wording(what, ""), skipinitialspace)
    try:
        df = pd.read_csv(io.StringIO(text), skipinitialspace=skipinitialspace, **options)
    except (pd.errors.ParserError, ValueError) as e:
        kind, detail = type(e).__name__, str(e).strip().splitlines()
        raise syntax_error(text, file, line, len(names), lambda what: wording(what, kind),
                           detail[0] if detail else "", skipinitialspace) from None
    return df, line


def record_lines(text: str, file: str, header_line: int, skipinitialspace: bool = False) -> list[int]:
    """The first line of each data record after the header, as pandas reads them (blank lines skipped): the
    line of row i of :func:`frame`'s frame, for messages about a row's cells."""
    return [line for line, _, blank, _ in _records(text, skipinitialspace, file) if line > header_line and not blank]


def read_csv(path, what: str, columns=(), *, rows: str = "one row per kernel", **options):
    """A CSV file a user names, read whole: SpecError when it does not exist, is over the ``csv_bytes``
    limit (hwmodels.limits; gzipped where its name ends in .gz), is not UTF-8, or fails a check of this
    module (each at its line and column), when its header lacks one of ``columns`` or no data row follows
    it (``rows``: what each row is). ``what``: what the file should be ('a Vidur mlp.csv'). Returns the
    frame (``options``: pandas' read_csv options) and the first line of each row (:func:`record_lines`)."""
    file = str(path)
    if not os.path.exists(file):
        raise SpecError(Problem(f"no such file; expected {what}", file=file))
    text = read_text(file, "csv_bytes", what, gz=True)
    df, line = frame(text, file, lambda d, kind: f"not a valid CSV: {d}", **options)
    gone = missing(file, line, df.columns, columns, f"{what} (columns {', '.join(columns)})")
    if gone is not None:
        raise gone
    if df.empty:
        raise no_rows(file, line, rows)
    return df, record_lines(text, file, line, options.get("skipinitialspace", False))
