"""Whole-file errors of the other CSV readers a user can point at a file: the published tables (e2e, serving,
XLA GEMMs, MoE kernels, attention kernels, torch.matmul sweep) and Vidur's profiles, through
hwmodels/csvtext.py as the kernel CSVs are (tests/unit/test_kernel_csv_errors.py), and the trace reader's
column given twice and quote never closed. Each expected position below can be counted by hand in the text
written: a header of n columns puts a column given again at field n + 1, and so on."""

import pytest

from hwmodels.errors import SpecError
from sim.validation import published as P
from sim.validation import vidur as V
from sim.validation.gemm_score import torch_rows
from sim.validation.published_xla import COLUMNS as XLA_COLUMNS
from sim.validation.published_xla import load_xla_gemms
from workloads.trace import load_trace

E2E_ROW = "llama-2-7b,a100-sxm,1,1,128,128,fp16,e2e_s,1.0,somewhere"
SERVING_ROW = "qwen2.5-0.5b,h100-sxm,1,4,128,16,bf16,request_throughput_rps,1.0,somewhere"
XLA_ROW = "h100-sxm,gemm,bf16,256,512,1024,2,5.36870912e-06,sm_90,bf16xbf16->bf16,100000000000000,test"
VIDUR_MLP = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "use_gated_mlp", "num_tokens",
             "num_tensor_parallel_workers")
VIDUR_NET = ("num_workers", "size", "collective", "devices_per_node")

#: reader -> (call, header columns, a row for them, the required column dropped in the 'missing column' case
#: or None where the reader requires none)
READERS = {
    "e2e": (P.load_e2e, P.E2E_COLUMNS, E2E_ROW, "model"),
    "serving": (P.load_serving, P.SERVING_COLUMNS, SERVING_ROW, "model"),
    "xla": (load_xla_gemms, XLA_COLUMNS, XLA_ROW, "hardware"),
    "moe kernels": (P.score_moe_kernels, P.MOE_COLUMNS, "x,h100-sxm,1,1,bf16,1e-5", "tokens"),
    "attention kernels": (P.score_attention_kernels, ("op", "m"), "attention,1", "op"),
    "torch rows": (torch_rows, ("hardware", "op"), "h100-sxm,gemm", None),
    "vidur mlp": (lambda p: V.convert_compute_file(p, gpu="a100", model="x", source="x"), VIDUR_MLP,
                  "32,32,4096,11008,true,1,1", "n_head"),
    "vidur network": (lambda p: V.convert_network_file(p, system="a100_dgx", source="x"), VIDUR_NET,
                      "2,1024,all_reduce,8", "num_workers"),
}


def _cases(cols, row, required):
    """case -> (file text, the position and message after the file name); n = the header's columns."""
    h, n = ",".join(cols), len(cols)
    quoted = row.rsplit(",", 1)[0] + ',"a\nb"'  # the last cell spans two lines
    cases = {
        "empty": ("", ":1:1: empty file: expected a CSV with a header row"),
        "blank lines only": ("\n  \n", ":1:1: empty file"),
        "header only, after a blank line": (f"\n{h}\n", ":2:1: no rows: the file has a header but no data rows"),
        "a column twice": (f"{h},{cols[0]}\n{row},x\n",
                           f":1:{n + 1}: {cols[0]}: duplicate column name (also column 1); expected each column once"),
        # pandas read the extra cell as the rows' index and shifted every column onto the wrong name
        "first row wider": (f"{h}\n0,{row}\n", f":2:{n + 1}: not a valid CSV: {n + 1} fields, but the header has {n}"),
        # line 2's quoted cell spans lines 2-3, so the wider record is line 4
        "a later row wider": (f"{h}\n{quoted}\n{row},x\n",
                              f":4:{n + 1}: not a valid CSV: {n + 1} fields, but the header has {n}"),
        "quote never closed": (f'{h}\n{row}\n"{row}\n', ":3:1: not a valid CSV: a quoted cell opened here is not closed"),
        "not UTF-8": (f"{h}\n\xff{row}\n", f":2:1: not a text file (not UTF-8 at byte {len(h) + 1})"),
    }
    if required is not None:
        keep = [j for j, c in enumerate(cols) if c != required]
        cases["missing column"] = (",".join(cols[j] for j in keep) + "\n" + ",".join(row.split(",")[j] for j in keep)
                                   + "\n", f":1:1: missing column(s) {required}; expected")
    return cases


PARAMS = [(r, c) for r, (_, cols, row, req) in READERS.items() for c in _cases(cols, row, req)]


@pytest.mark.parametrize("reader,case", PARAMS, ids=[f"{r}: {c}" for r, c in PARAMS])
def test_whole_file_errors_at_their_position(tmp_path, reader, case):
    call, cols, row, req = READERS[reader]
    text, want = _cases(cols, row, req)[case]
    p = tmp_path / "t.csv"
    p.write_bytes(text.encode("utf-8", "surrogateescape").replace("\xff".encode(), b"\xff"))
    with pytest.raises(SpecError) as e:
        call(str(p))
    assert str(e.value).startswith(f"{p}{want}"), str(e.value)


@pytest.mark.parametrize("reader", ["e2e", "serving", "xla", "torch rows"])
def test_good_file_still_reads(tmp_path, reader):
    call, cols, row, _ = READERS[reader]
    p = tmp_path / "t.csv"
    p.write_text(",".join(cols) + "\n\n" + row + "\n")  # a blank line among the rows is skipped, as before
    assert len(call(str(p))) == 1


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match=r"nope\.csv: no such file; expected a published table"):
        P.load_e2e(str(tmp_path / "nope.csv"))


def test_row_problems_at_the_row_line_after_blank_lines_and_multi_line_cells(tmp_path):
    # line 1 header, 2 blank, 3-4 a good row whose source spans two lines, 5 blank, 6 a row with batch 0:
    # the row is line 6 (it was called 'row 3', its place among the rows plus 2); batch is column 4
    h = ",".join(P.E2E_COLUMNS)
    p = tmp_path / "e2e.csv"
    p.write_text(f'{h}\n\n{E2E_ROW.replace("somewhere", chr(34) + "some" + chr(10) + "where" + chr(34))}\n\n'
                 f"{E2E_ROW.replace(',1,1,128', ',1,0,128')}\n")
    with pytest.raises(SpecError) as e:
        P.load_e2e(str(p))
    assert str(e.value) == f"{p}:6:4: row 6, field batch: expected a whole number >= 1, got '0'"


def test_serving_usage_problem_at_its_line_and_column(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text(",".join(P.SERVING_COLUMNS) + ",usage\n" + SERVING_ROW + ",online\n")  # usage: column 11
    with pytest.raises(SpecError) as e:
        P.load_serving(str(p))
    assert str(e.value) == f"{p}:2:11: row 2, field usage: expected server, offline or empty, got 'online'"


def test_a_cell_over_the_csv_limit_is_placed(tmp_path):
    # the csv module refuses a cell over 131072 characters; csvtext says where (pandas had read it)
    p = tmp_path / "e2e.csv"
    p.write_text(",".join(P.E2E_COLUMNS) + "\n" + E2E_ROW + "x" * 200_000 + "\n")
    with pytest.raises(SpecError, match=r"e2e\.csv:2:1: not a readable CSV: field larger than field limit"):
        P.load_e2e(str(p))


# ---- the trace reader parses its own records; a column given twice and a quote never closed are csvtext's

TRACE_HEADER = "arrival_s,input_tokens,output_tokens"


@pytest.mark.parametrize("text,want", [
    # case and surrounding spaces aside, ' Arrival_S ' is arrival_s again: only the first was read
    (f"{TRACE_HEADER}, Arrival_S \n0,1,1,5\n", ":1:4: Arrival_S: duplicate column name (also column 1); expected "
                                                "each column once"),
    (f"{TRACE_HEADER},note,note\n0,1,1,a,b\n", ":1:5: note: duplicate column name (also column 4)"),
    # the quote opens on line 3 in field 2 and runs to the end (was: 'not a number' for the rest of the file at
    # the last line)
    (f'{TRACE_HEADER}\n0,1,1\n1,"2,3\n2,3,4\n', ":3:2: a quoted cell opened here is not closed before the end of the "
                                                "file; expected a closing quote"),
    (f'"{TRACE_HEADER}\n0,1,1\n', ":1:1: a quoted cell opened here is not closed"),
])
def test_trace_whole_file_errors(tmp_path, text, want):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(SpecError) as e:
        load_trace(p)
    assert str(e.value).startswith(f"{p}{want}"), str(e.value)


def test_trace_quotes_closed_still_read(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(f'{TRACE_HEADER}\n"0",1,1\n1,2,"3"')  # quoted cells, the last line without a line break
    tr = load_trace(p)
    assert tr.input_tokens.tolist() == [1, 2] and tr.output_tokens.tolist() == [1, 3]
