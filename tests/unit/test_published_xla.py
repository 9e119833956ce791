"""OpenXLA's GEMM table (sim/validation/published_xla.py): parser, loader checks, held-out scoring by hand."""

from pathlib import Path

import pandas as pd
import pytest

from hwmodels import load_chip
from hwmodels.errors import SpecError
from sim.validation.published_xla import (COLUMNS, CSV, EXCLUDED, TABLE, extract, load_xla_gemms, parse_table,
                                          score_xla_gemms, summary_rows, table_rows)

TOY = Path(__file__).parent.parent / "data" / "toy-chip.yaml"

TEXT = """# Copyright 2026 The OpenXLA Authors.
# proto-message: xla.GemmPerfTable

entries {
  key: "sm_90"
  value {
    entries {
      b: 2
      m: 256
      n: 512
      k: 1024
      flops { key: "bf16xbf16->bf16" value: 100000000000000 }
      flops { key: "f32xf32->f32" value: 50000000000000 }
      flops { key: "f8e4m3fnxf8e4m3fn->bf16" value: 300000000000000 }
    }
  }
}
entries {
  key: "sm_107"
  value { entries { b: 1 m: 256 n: 256 k: 256 flops { key: "bf16xbf16->bf16" value: 1 } } }
}
"""


def _row(**kw):
    r = {"hardware": "h100-sxm", "op": "gemm", "dtype": "bf16", "m": 256, "n": 512, "k": 1024, "batch": 2,
         "measured_time_s": 5.36870912e-06, "xla_gpu": "sm_90", "xla_dtype": "bf16xbf16->bf16",
         "xla_flops": 100000000000000, "source": "test"}
    r.update(kw)
    return r


def _csv(tmp_path, rows):
    p = tmp_path / "x.csv"
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(p, index=False)
    return str(p)


def test_parse_and_rows_by_hand():
    t = parse_table(TEXT)
    assert set(t) == {"sm_90", "sm_107"}
    e = t["sm_90"][0]
    assert (e["b"], e["m"], e["n"], e["k"]) == (2, 256, 512, 1024)
    rows = table_rows(t)
    # sm_107 has no catalog chip; the sm_90 fp8 column is excluded (rates above the H100's FP8 peak)
    assert ("sm_90", "f8e4m3fnxf8e4m3fn->bf16") in EXCLUDED
    assert [(r["hardware"], r["dtype"]) for r in rows] == [("h100-sxm", "bf16"), ("h100-sxm", "tf32")]
    # 2 x 2 x 256 x 512 x 1024 = 536,870,912 FLOP at 100 TFLOP/s = 5.36870912 us; at 50 TFLOP/s twice that
    assert float(rows[0]["measured_time_s"]) == pytest.approx(5.36870912e-6, rel=1e-9)
    assert float(rows[1]["measured_time_s"]) == pytest.approx(10.73741824e-6, rel=1e-9)
    assert rows[0]["batch"] == 2


def test_parse_error_names_the_line():
    with pytest.raises(SpecError, match=r"line 4: .*'b'"):
        parse_table('entries {\n  key: "sm_90"\n  value {\n    entries { m: 1 n: 1 k: 1 }\n  }\n}\n', "t.txtpb")
    with pytest.raises(SpecError, match="ends inside a message"):
        parse_table('entries {\n  key: "sm_90"\n', "t.txtpb")


def test_extract_cuts_the_blocks_byte_for_byte():
    blob = "\x00junk# Copyright x\n" + TEXT.split("\n", 1)[1] + "\x00more"
    out = extract(blob, keys=("sm_90",))
    assert out.startswith("# Copyright x\n# proto-message: xla.GemmPerfTable\n\nentries {\n  key: \"sm_90\"")
    assert "sm_107" not in out and out.endswith("}\n")
    assert parse_table(out)["sm_90"][0]["flops"]["f32xf32->f32"] == 50000000000000
    with pytest.raises(SpecError, match="sm_100_B200"):
        extract(blob, keys=("sm_100_B200",))


def test_loader_names_file_row_and_field(tmp_path):
    path = _csv(tmp_path, [_row(), _row(m="abc"), _row(measured_time_s=1e-3), _row(hardware="a100-sxm"),
                           _row(dtype="fp16"), _row(source=" ")])
    with pytest.raises(SpecError) as e:
        load_xla_gemms(path)
    msg = str(e.value)
    # at its line and the field's column (COLUMNS: hardware 1, dtype 3, m 4, measured_time_s 8, source 12)
    assert f"{path}:3:4: row 3, field m: expected a whole number >= 1, got 'abc'" in msg
    assert f"{path}:4:8: row 4, field measured_time_s: expected 2 b m n k / xla_flops = 5.36871e-06 s" in msg
    assert f"{path}:5:1: row 5, field hardware" in msg
    assert f"{path}:6:3: row 6, field dtype: expected 'bf16'" in msg
    assert f"{path}:7:12: row 7, field source" in msg
    assert "row 2," not in msg  # the good row


def test_scoring_by_hand_on_the_toy_chip(tmp_path):
    # the toy chip (100 TFLOP/s bf16, 100 cores, 1 TB/s, no launch overhead) standing in for the H100:
    # b=2 of 4096^3: 64x64 tiles, 2 x 4096 tiles over 100 cores = 82 waves of 2*64*64*4096 FLOP at 1 TFLOP/s
    # per core = 2.751463424 ms; measured 2.2011707392 ms (2 x 2 x 4096^3 / 124.9 ... TFLOP/s) -> +25 %
    t_pred = 82 * 2 * 64 * 64 * 4096 / 1e12
    flops = 2 * 2 * 4096 ** 3
    meas = t_pred / 1.25
    path = _csv(tmp_path, [_row(m=4096, n=4096, k=4096, measured_time_s=meas, xla_flops=round(flops / meas))])
    c = score_xla_gemms(path, hardware={"h100-sxm": load_chip(TOY)})
    r = c.scored.iloc[0]
    assert r["predicted_time_s"] == pytest.approx(t_pred, rel=1e-9)
    assert r["rel_error"] == pytest.approx(0.25, rel=1e-6) and r["bound"] == "compute"
    s = summary_rows(c.scored)[0]
    assert (s["hardware"], s["dtype"], s["n"]) == ("h100-sxm", "bf16", 1)
    assert s["ape"] == pytest.approx(0.25, rel=1e-6) and s["bias"] == pytest.approx(0.25, rel=1e-6)


def test_shipped_csv_is_the_saved_table():
    # the committed CSV is what the parser makes of the committed table: nothing edited by hand
    with open(TABLE, encoding="utf-8") as f:
        rows = table_rows(parse_table(f.read(), TABLE))
    df = load_xla_gemms(CSV)
    assert len(df) == len(rows) == 1875
    assert df["xla_flops"].tolist() == [r["xla_flops"] for r in rows]
    assert df.groupby(["hardware", "dtype"]).size().to_dict() == {
        ("b200", "bf16"): 375, ("b200", "fp8_e4m3"): 375, ("b200", "tf32"): 375,
        ("h100-sxm", "bf16"): 375, ("h100-sxm", "tf32"): 375}


def test_rows_carry_the_dtype_the_dot_writes():
    # an fp8 x fp8 dot writes bf16, an f32 dot fp32: the loaded rows say so, and llmsim ops prices C at it
    df = load_xla_gemms(CSV)
    got = df.groupby("xla_dtype")["out_dtype"].unique().map(list).to_dict()
    assert got == {"bf16xbf16->bf16": ["bf16"], "f32xf32->f32": ["fp32"], "f8e4m3fnxf8e4m3fn->bf16": ["bf16"]}


def test_ops_prices_c_at_its_out_dtype():
    from sim.ops import predict_ops, row_to_op

    row = {"hardware": "h100-sxm", "op": "gemm", "dtype": "fp8_e4m3", "m": 64, "n": 128, "k": 256}
    c8 = [t for t in row_to_op(row).tensors if t.write][0]
    c16 = [t for t in row_to_op({**row, "out_dtype": "bf16"}).tensors if t.write][0]
    assert (c8.dtype, c8.bytes, c16.dtype, c16.bytes) == ("fp8_e4m3", 64 * 128, "bf16", 64 * 128 * 2)
    assert [t.bytes for t in row_to_op({**row, "out_dtype": float("nan")}).tensors] == \
        [t.bytes for t in row_to_op(row).tensors]  # a blank cell: the operands' dtype
    out = predict_ops(pd.DataFrame([{**row, "out_dtype": "bf16"}, {**row, "out_dtype": "fp7x"}]))
    assert out["error"].iloc[0] == "" and out["time_s"].iloc[0] > 0
    assert "out_dtype" in out["error"].iloc[1] and "fp7x" in out["error"].iloc[1]
