"""Fuzzing the published-table readers (e2e, serving, XLA GEMMs, the torch.matmul sweep) with any CSV text:
their columns in any order, one given twice or left out, ragged rows, stray quotes, blank lines, cells of
any text. The promise: a frame, or a SpecError every problem of which names the file, a line and a column
(hwmodels/csvtext.py for the whole file, each row's line and field for its cells); never another exception.
A table read as text has one line per row, in order, after the header (``published.read_table``). The kernel CSV and
trace readers are fuzzed through the command line in test_fuzz_cli.py."""

from __future__ import annotations

import os

import pytest

from hwmodels.errors import SpecError
from sim.validation import published as P
from sim.validation.gemm_score import torch_rows
from sim.validation.published_xla import COLUMNS as XLA_COLUMNS
from sim.validation.published_xla import load_xla_gemms

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("LLMSIM_FUZZ_EXAMPLES", "8"))  # as test_fuzz_cli.py: more for a long hunt
FUZZ = settings(max_examples=EXAMPLES * 4, deadline=None, derandomize=EXAMPLES <= 50, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

READERS = {"e2e": (P.load_e2e, P.E2E_COLUMNS), "serving": (P.load_serving, P.SERVING_COLUMNS),
           "xla": (load_xla_gemms, XLA_COLUMNS), "torch": (torch_rows, ("hardware", "op", "m"))}
TABLE_CELL = st.one_of(st.sampled_from(["1", "4", "128", "0", "-1", "1.5", "nan", "inf", "1e400", "", " ", "bf16",
                                        "h100-sxm", "e2e_s", "gemm", "somewhere", "a\nb", '"quoted, with a comma"', '"',
                                        '""', "\r", "\x00", "x" * 5000]),
                       st.integers(-(2**70), 2**70).map(str), st.text(max_size=8))


@FUZZ
@given(reader=st.sampled_from(sorted(READERS)), data=st.data())
def test_fuzz_published_tables(tmp_path_factory, reader, data):
    call, required = READERS[reader]
    cols = data.draw(st.permutations(list(required)))
    change = data.draw(st.sampled_from(["none", "twice", "drop"]))
    if change == "twice":
        cols.append(data.draw(st.sampled_from(cols)))
    elif change == "drop":
        cols.pop(data.draw(st.integers(0, len(cols) - 1)))
    n = len(cols)
    rows = data.draw(st.lists(st.lists(TABLE_CELL, min_size=max(n - 1, 0), max_size=n + 1), max_size=4))
    lines = [",".join(cols)] + [",".join(r) for r in rows]
    for _ in range(data.draw(st.integers(0, 2))):  # blank lines anywhere
        lines.insert(data.draw(st.integers(0, len(lines))), data.draw(st.sampled_from(["", "  "])))
    p = tmp_path_factory.mktemp("t") / "table.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    for read in (lambda f: P.read_table(f, ()), call):  # the text as read, then the reader's own checks
        try:
            out = read(str(p))
        except SpecError as e:
            for prob in e.problems:
                assert prob.file == str(p) and prob.line is not None and prob.col is not None, str(prob)
            continue
        if isinstance(out, tuple):
            frame, at = out
            assert len(at) == len(frame) >= 1 and at == sorted(set(at)) and at[0] >= 2
