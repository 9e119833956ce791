"""Whole-file errors of the kernel CSV readers (validate/calibrate/report through load_measurements, ops
through read_ops_csv): each names the file, the line and column where the problem stands and what was
expected (hwmodels/csvtext.py). Every expected position below can be counted by hand in
the text written."""

import gzip

import pytest

from hwmodels.errors import SpecError
from llmsim.cli import main
from sim.ops import read_ops_csv
from sim.validation.measure import load_measurements

HEADER = "hardware,op,dtype,m,n,k,measured_time_s\n"
ROW = "h100-sxm,gemm,bf16,64,64,64,1e-5\n"

#: case -> (file text, the position and message after the file name: load_measurements, read_ops_csv)
CASES = {
    "empty": ("", ":1:1: empty file: expected a CSV with a header row", ":1:1: empty file: expected a CSV"),
    "blank lines only": ("\n  \n\n", ":1:1: empty file", ":1:1: empty file"),
    "header only": (HEADER, ":1:1: no rows: the file has a header but no data rows", ":1:1: no rows"),
    "header after blank lines, no rows": ("\n\n" + HEADER + "\n", ":3:1: no rows", ":3:1: no rows"),
    "no op column": ("\nhardware,dtype,m\nh100-sxm,bf16,1\n", ":2:1: no 'op' column (columns: hardware, dtype, m)",
                     ":2:1: missing column(s) op; expected at least hardware, op"),
    "a column twice": ("hardware,op,dtype,m,n,k,k,measured_time_s\nh100-sxm,gemm,bf16,64,64,64,32,1e-5\n",
                       ":1:7: k: duplicate column name (also column 6); expected each column once",
                       ":1:7: k: duplicate column name (also column 6)"),
    # ' op ' and 'op' are one name once stripped: load_measurements raised AttributeError on it
    "a column twice, spaced": ("hardware, op ,dtype,m,n,k,measured_time_s,op\nh100-sxm,gemm,bf16,64,64,64,1e-5,gemm\n",
                               ":1:8: op: duplicate column name (also column 2)",
                               ":1:8: op: duplicate column name (also column 2)"),
    # a quoted cell spans lines 2-3, so the 3-cell record is line 4 (pandas says 'line 3')
    "too many cells": ('hardware,op\n"h\n100",gemm\nh100-sxm,gemm,extra\n',
                       ":4:3: not a valid CSV: 3 fields, but the header has 2",
                       ":4:3: not a readable CSV file (ParserError: 3 fields, but the header has 2)"),
    # pandas read the first row's extra cell as the index and shifted every column onto the wrong name
    "first row wider": (HEADER + "0," + ROW, ":2:8: not a valid CSV: 8 fields, but the header has 7",
                        ":2:8: not a readable CSV file (8 fields, but the header has 7)"),
    "quote in the header never closed": ('"hardware,op\nh100-sxm,gemm\n',
                                         ":1:1: not a valid CSV: a quoted cell opened here is not closed",
                                         ":1:1: not a readable CSV file (ParserError: a quoted cell opened here"),
    "quote never closed": (HEADER + ROW + 'h100-sxm,gemm,"bf16,64\n',
                           ":3:3: not a valid CSV: a quoted cell opened here is not closed",
                           ":3:3: not a readable CSV file (ParserError: a quoted cell opened here is not closed"),
}


def _write(tmp_path, text: str | bytes, name="k.csv"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_measurements_whole_file_errors(tmp_path, case):
    text, want, _ = CASES[case]
    p = _write(tmp_path, text)
    with pytest.raises(SpecError) as e:
        load_measurements(str(p))
    assert str(e.value).startswith(f"{p}{want}"), str(e.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_read_ops_csv_whole_file_errors(tmp_path, case):
    text, _, want = CASES[case]
    p = _write(tmp_path, text)
    with pytest.raises(SpecError) as e:
        read_ops_csv(p)
    assert str(e.value).startswith(f"{p}{want}"), str(e.value)


def test_bad_encoding_at_its_line_and_byte(tmp_path):
    # line 2 is 'h100-sxm,gemm,bf16,64,64,' (25 characters) and then the byte 0xff
    p = _write(tmp_path, HEADER.encode() + b"h100-sxm,gemm,bf16,64,64,\xff64,1e-5\n")
    with pytest.raises(SpecError, match=r"k\.csv:2:26: not a text file \(not UTF-8 at byte 65\)"):
        load_measurements(str(p))
    with pytest.raises(SpecError, match=r"k\.csv:2:26: not a text file"):
        read_ops_csv(p)


def test_gzipped_file_checked_the_same(tmp_path):
    p = _write(tmp_path, gzip.compress(HEADER.encode()), "k.csv.gz")
    with pytest.raises(SpecError, match=r"k\.csv\.gz:1:1: no rows"):
        load_measurements(str(p))
    p = _write(tmp_path, b"not gzip", "bad.csv.gz")
    with pytest.raises(SpecError, match=r"bad\.csv\.gz:1:1: corrupt gzip data"):
        read_ops_csv(p)


def test_good_file_still_reads(tmp_path):
    p = _write(tmp_path, "\n" + HEADER + ROW)  # a blank line before the header is skipped, as pandas does
    assert len(load_measurements(str(p))) == 1 and len(read_ops_csv(p)) == 1


@pytest.mark.parametrize("argv", [["validate"], ["calibrate", "--hw", "h100-sxm"], ["ops"]])
def test_cli_exit_2_with_the_position(tmp_path, capsys, argv):
    p = _write(tmp_path, HEADER)
    assert main([*argv, str(p)]) == 2
    err = capsys.readouterr().err
    assert f"error: {p}:1:1: no rows" in err and "Traceback" not in err
