"""Whole-file checks of a kernel CSV's text, shared by its two readers (``load.load_measurements``
behind ``validate``/``calibrate``/``report``, and ``sim.ops.read_ops_csv`` behind ``ops``).

Each error names the file, a line and what was expected, as the YAML and trace readers do
(``file:line:col: ...``): an empty file at line 1; a header problem (a column given twice, a
required column missing, no data rows after it) at the header's line, the column at its field
number; a CSV syntax error at the record where it stands. Lines count from 1 as an editor shows
them (a quoted cell that holds line breaks spans several).
"""

from __future__ import annotations

import csv
import io

from hwmodels.errors import Problem, SpecError

__all__ = ["EMPTY", "check_first_row", "header", "no_rows", "syntax_error"]

#: the message of a file with no header (nothing, or blank lines only)
EMPTY = "empty file: expected a CSV with a header row"


def _records(text: str, skipinitialspace: bool):
    """(first line, fields) of each CSV record of ``text``, blank ones included, up to the first the csv
    module refuses (a cell over its size limit). A byte order mark at the start is not text (pandas drops it too)."""
    text = text[1:] if text.startswith("\ufeff") else text
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=skipinitialspace)
    start = 1
    try:
        for fields in reader:
            yield start, fields
            start = reader.line_num + 1
    except csv.Error:
        return


def header(text: str, file: str, skipinitialspace: bool = False) -> tuple[int, list[str]]:
    """The header's line and its column names (surrounding spaces removed): the first record with a
    non-blank cell. SpecError at line 1 when there is none (:data:`EMPTY`), and at the header for each
    name given twice (names that differ only in surrounding spaces are the same name; pandas would
    rename the second one 'name.1' and its cells would be read by no one)."""
    for line, fields in _records(text, skipinitialspace):
        if not any(f.strip() for f in fields):
            continue
        names = [f.strip() for f in fields]
        first: dict[str, int] = {}
        problems = []
        for i, n in enumerate(names, 1):
            if n and n in first:
                problems.append(Problem(f"duplicate column name (also column {first[n]}); expected each column "
                                        "once", file=file, line=line, col=i, path=n))
            first.setdefault(n, i)
        if problems:
            raise SpecError(problems)
        return line, names
    raise SpecError(Problem(EMPTY, file=file, line=1, col=1))


def no_rows(file: str, line: int) -> SpecError:
    """The error of a file whose header (at ``line``) no data row follows."""
    return SpecError(Problem("no rows: the file has a header but no data rows; expected one row per kernel",
                             file=file, line=line, col=1))


def _wide(text: str, header_line: int, columns: int, skipinitialspace: bool, first_only: bool):
    """(line, cells) of the first record after the header with more cells than ``columns`` (``first_only``:
    looking at the first data record only; blank lines are skipped, as pandas skips them); else None, and
    the last record's (line, cells), the header's included, as the second value."""
    last = None
    for line, fields in _records(text, skipinitialspace):
        last = (line, len(fields))
        if line <= header_line or not fields or (len(fields) == 1 and not fields[0].strip()):
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
    wide, _ = _wide(text, header_line, columns, skipinitialspace, first_only=True)
    if wide is not None:
        raise _too_many(file, wide, columns, wording)


def syntax_error(text: str, file: str, header_line: int, columns: int, wording, detail: str,
                 skipinitialspace: bool = False) -> SpecError:
    """A CSV the parser refused, at the record where it stands: the first after the header with more
    cells than the header has ``columns`` (at the first extra cell), else the last record when a quoted
    cell runs to the end of the file (its opening line). ``wording(what)``: the reader's message around
    the description; ``detail``: the parser's own message, kept where the record cannot be found."""
    wide, last = _wide(text, header_line, columns, skipinitialspace, first_only=False)
    if wide is not None:
        return _too_many(file, wide, columns, wording)
    if "EOF inside string" in detail and last is not None:
        return SpecError(Problem(wording("a quoted cell opened here is not closed before the end of the file"),
                                 file=file, line=last[0], col=max(last[1], 1)))
    return SpecError(Problem(wording(detail), file=file))
