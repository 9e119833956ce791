"""Scoring predictions against measurements: errors with a known answer, rejected rows with reasons."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.validation.compare import compare, count_reasons, error_stats, reason_kind, summarize

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")


def fake_predictor(df, overrides=None, options=None, hardware=None):
    """Every kernel takes 1 us per unit of m (a predictor whose answer the test knows)."""
    out = df.copy()
    out["time_s"] = pd.to_numeric(out["m"], errors="coerce").astype(float) * 1e-6
    out["bound"] = "compute"
    out["error"] = ""
    out["achieved_tflops"] = np.nan
    out["achieved_bytes_per_s"] = np.nan
    return out


def gemm(m, t, hw=TOY, **kw):
    return {"hardware": hw, "op": "gemm", "dtype": "bf16", "m": m, "n": 64, "k": 64, "measured_time_s": t, **kw}


def test_sign_and_size_of_the_error():
    # measured = 2 x predicted -> -50 %; measured = predicted / 2 -> +100 %; equal -> 0
    df = pd.DataFrame([gemm(10, 20e-6), gemm(20, 10e-6), gemm(30, 30e-6)])
    c = compare(df, predictor=fake_predictor)
    assert c.counts == {"rows": 3, "scored": 3, "rejected": 0, "by_reason": {}}
    assert c.scored["rel_error"].tolist() == pytest.approx([-0.5, 1.0, 0.0])
    assert c.scored["abs_rel_error"].tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert c.scored["log_ratio"].tolist() == pytest.approx([math.log(0.5), math.log(2), 0.0])
    s = c.summary.iloc[0]
    assert s["n"] == 3
    assert s["median_ape"] == pytest.approx(0.5)
    assert s["mean_ape"] == pytest.approx(0.5)
    assert s["bias"] == pytest.approx(0.0)
    assert s["within_20"] == pytest.approx(1 / 3)
    # FLOP-sized op: size is 2 m n k
    assert c.scored["size"].tolist() == pytest.approx([2 * m * 64 * 64 for m in (10, 20, 30)])
    assert set(c.scored["size_unit"]) == {"FLOP"}
    assert c.worst(1).iloc[0]["m"] == 20


def test_error_stats_by_hand():
    s = error_stats([1.0, 3.0, 1.05, 0.5], [1.0, 2.0, 1.0, 1.0])
    # errors: 0, +0.5, +0.05, -0.5
    assert s["n"] == 4
    assert s["median_ape"] == pytest.approx(0.275)
    assert s["mean_ape"] == pytest.approx(0.2625)
    assert s["bias"] == pytest.approx(0.025)
    assert s["within_10"] == pytest.approx(0.5)
    assert s["gmean_ratio"] == pytest.approx((1 * 1.5 * 1.05 * 0.5) ** 0.25)
    assert error_stats([], [])["n"] == 0


def test_bad_rows_are_rejected_with_reasons_and_counted():
    rows = [
        gemm(10, 10e-6),  # good
        gemm(10, 10e-6, op="conv"),  # unknown op
        {"hardware": TOY, "op": "gemm", "dtype": "bf16", "m": 10, "k": 64, "measured_time_s": 1e-6},  # no n
        gemm(10, 0.0),  # zero time
        gemm(10, -1e-6),  # negative time
        gemm(10, float("nan")),  # NaN time
        gemm(10, 1e-6, hw="no-such-gpu"),  # hardware the catalog does not know
        {"hardware": TOY, "op": "allreduce", "dtype": "bf16", "bytes": 1e6, "num_devices": 8,
         "measured_time_s": 1e-4},  # a collective on a single chip: the predictor rejects it
    ]
    c = compare(pd.DataFrame(rows))
    assert c.counts["rows"] == 8
    assert c.counts["scored"] == 1
    assert c.counts["rejected"] == 7
    reasons = c.rejected["reason"].tolist()
    assert any("unknown op" in r for r in reasons)
    assert any("missing n" in r for r in reasons)
    assert any("non-positive measured_time_s" in r for r in reasons)
    assert any("measured_time_s" in r and "missing" in r for r in reasons)  # NaN reads as missing
    assert any("unknown hardware 'no-such-gpu'" in r for r in reasons)
    assert any(r.startswith("cannot predict") for r in reasons)
    by = c.counts["by_reason"]
    assert by["non-positive measured_time_s"] == 2
    assert by["unknown hardware"] == 1
    assert sum(by.values()) >= 7
    assert all(c.rejected["reason"] != "")


def test_real_model_on_the_toy_chip():
    # 4096^3 bf16 GEMM on the toy chip: compute-bound; measured 25 % slower than predicted -> -20 %
    from sim.ops import predict_ops

    row = gemm(4096, 1.0, n=4096, k=4096)
    pred = predict_ops(pd.DataFrame([row]))["time_s"].iloc[0]
    row["measured_time_s"] = pred * 1.25
    c = compare(pd.DataFrame([row]))
    assert c.scored["rel_error"].iloc[0] == pytest.approx(-0.2)
    assert c.scored["bound"].iloc[0] == "compute"


def test_hw_override_prices_every_row_on_the_given_hardware():
    df = pd.DataFrame([gemm(512, 1e-4, hw="h100-sxm"), gemm(512, 1e-4, hw="a100-sxm")])
    c = compare(df, hw=TOY)
    assert set(c.scored["hardware"]) == {TOY}
    assert c.scored["predicted_time_s"].nunique() == 1


def test_reason_kinds_strip_row_values():
    assert reason_kind("unknown op 'conv'") == "unknown op"
    assert reason_kind("bad m '1.5' (a positive integer)") == "bad m"
    assert count_reasons(["missing n; unknown op 'x'", "missing n", "cannot predict: a; b"]) == {
        "missing n": 2, "cannot predict": 1, "unknown op": 1}


def test_summary_groups_by_hardware_op_dtype():
    df = pd.DataFrame([gemm(10, 10e-6), gemm(20, 10e-6), gemm(10, 20e-6, dtype="fp16")])
    c = compare(df, predictor=fake_predictor)
    s = summarize(c.scored)
    assert len(s) == 2
    assert s.set_index("dtype").loc["bf16", "median_ape"] == pytest.approx(0.5)


def test_cli_validate_json_and_out(tmp_path, capsys):
    from llmsim.cli import main

    df = pd.DataFrame([gemm(256, 1e-5), gemm(512, 3e-5), gemm(0, 1e-5),
                       {"hardware": TOY, "op": "memcpy", "dtype": "bf16", "bytes": 1e8, "measured_time_s": 1.2e-4}])
    p = tmp_path / "m.csv"
    df.to_csv(p, index=False)
    assert main(["validate", str(p), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["counts"]["rows"] == 4 and d["counts"]["scored"] == 3 and d["counts"]["rejected"] == 1
    assert {r["op"] for r in d["summary"]} == {"gemm", "memcpy"}
    out = tmp_path / "out"
    assert main(["validate", str(p), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "median |err|" in text and "rejected" in text
    for f in ("scored.csv", "rejected.csv", "summary.csv", "summary.json", "scatter.png", "error_vs_size.png",
              "scatter.svg", "error_vs_size.svg"):
        assert (out / f).exists(), f
    assert (out / "scatter.png").stat().st_size < 150_000


def test_cli_validate_bad_file_is_exit_2(tmp_path, capsys):
    from llmsim.cli import main

    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    assert main(["validate", str(p)]) == 2
    assert main(["validate", str(tmp_path / "missing.csv")]) == 2
    # a readable file whose every row is rejected validates nothing: exit 2 with the reasons, not a silent 0
    q = tmp_path / "rejected.csv"
    pd.DataFrame([gemm(0, 1e-5), gemm(-3, 1e-5)]).to_csv(q, index=False)
    capsys.readouterr()
    assert main(["validate", str(q)]) == 2
    err = capsys.readouterr()
    assert "rejected, bad m: 2" in err.out and "no row could be scored" in err.err
    assert main(["validate", str(q), "--json"]) == 2
    err = capsys.readouterr()
    assert json.loads(err.out)["counts"]["scored"] == 0 and "no row could be scored" in err.err
    # `report validate` says so too (its report, with the rejections, is still written)
    assert main(["report", "validate", str(q), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr()
    assert "no row could be scored" in err.err and "reasons in the report" in err.err
    assert any((tmp_path / "rep").iterdir())


@pytest.mark.slow
def test_validate_report_quick_smoke(tmp_path):
    """The report builder runs end to end on a tiny synthetic CPU file (GPU calibrations skipped)."""
    from llmsim.cli import main
    from sim.ops import predict_ops

    rng = np.random.default_rng(0)
    rows = [{"op": "gemm", "dtype": "fp32", "m": int(m), "n": 256, "k": 256} for m in (64, 128, 256, 512, 1024) * 4]
    rows += [{"op": "memcpy", "dtype": "fp32", "bytes": int(b)} for b in np.geomspace(1e6, 1e9, 12)]
    df = pd.DataFrame(rows)
    df["hardware"] = "host-cpu-xeon-2vcpu"
    df["m"] = df["m"] + np.arange(len(df)) * (df["op"] == "gemm")  # distinct shapes
    df["measured_time_s"] = predict_ops(df)["time_s"] * 2 * np.exp(rng.normal(0, 0.03, len(df)))
    cpu = tmp_path / "cpu.csv"
    df.to_csv(cpu, index=False)
    out = tmp_path / "v" / "validation"
    assert main(["validate-report", "--quick", "--cpu-file", str(cpu), "--out", str(out)]) == 0
    md = (tmp_path / "v" / "validation.md").read_text()
    for heading in ("## Summary", "## Where the model is weak", "## 1. This machine's CPU", "## 4. Published kernel",
                    "## 4e. Published GEMM table of OpenXLA", "## 5. End-to-end"):
        assert heading in md
    assert "held-out" in md
    pngs = list(out.glob("*.png"))
    assert pngs and all(p.stat().st_size < 150_000 for p in pngs)
