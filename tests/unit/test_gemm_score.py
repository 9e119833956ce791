"""sim.validation.gemm_score: the quick scorer of the GEMM rows and the gemm_fixed_time derivation."""

import numpy as np
import pandas as pd
import pytest

from sim.validation.gemm_score import derive_gemm_fixed_time, gemm_rows, score, summary, xla_summary


@pytest.fixture(scope="module")
def rows():
    return gemm_rows("h100", limit=3000)


def test_gemm_rows_scored_and_summarised(rows):
    assert len(rows) and set(rows["op"]) == {"gemm"}
    assert rows["held_out"].any() and (~rows["held_out"]).any()
    s = summary(score(rows), "held-out")
    assert s["key"].iloc[0] == "all" and s["rows"].iloc[0] == int(rows["held_out"].sum())
    assert s["rows"].iloc[1:].sum() == s["rows"].iloc[0]  # every held-out row in one m band
    assert (s["median_ape"] >= 0).all() and s["bias"].abs().le(s["median_ape"] + 1e-12).all()
    with pytest.raises(ValueError):
        summary(score(rows), "test")


def test_gemm_fixed_time_derived_on_training_rows_only(rows):
    # 1 us more on every training row moves the derived time by 1 us; the held-out rows do not count
    base = derive_gemm_fixed_time("h100", rows, share=0.05)
    moved = rows.copy()
    moved.loc[~moved["held_out"], "measured_time_s"] += 1e-6
    moved.loc[moved["held_out"], "measured_time_s"] *= 100
    d = derive_gemm_fixed_time("h100", moved, share=0.05)
    assert d["rows"] == base["rows"] > 0 and d["max_gflop"] == base["max_gflop"]
    assert d["gemm_fixed_time_s"] == pytest.approx(base["gemm_fixed_time_s"] + 1e-6)


def test_xla_summary_bands_by_gflop():
    # two GEMMs below 1.1 GFLOP (-20%, -40%) and one above 69 GFLOP (+10%)
    df = pd.DataFrame({"hardware": "b200", "dtype": "bf16", "batch": 1, "m": [256, 256, 4096], "n": [256, 256, 4096],
                       "k": [256, 512, 4096], "measured_time_s": [10e-6, 10e-6, 100e-6],
                       "predicted_time_s": [8e-6, 6e-6, 110e-6]})
    df["rel_error"] = df["predicted_time_s"] / df["measured_time_s"] - 1
    r = xla_summary(df).iloc[0]
    assert r["rows"] == 3 and r["bias"] == pytest.approx(-0.2)
    assert r["bias 0-1.1 GFLOP"] == pytest.approx(-0.3) and r["bias 69-1e+12 GFLOP"] == pytest.approx(0.1)
    assert "bias 1.1-8.6 GFLOP" not in r or np.isnan(r["bias 1.1-8.6 GFLOP"])


def test_torch_sweeps_rows_and_times():
    # every row: a source, a square GEMM, and the time the reported rate gives (2 n^3 / rate)
    from sim.validation.gemm_score import torch_rows

    t = torch_rows()
    assert len(t) == 52 and set(t["op"]) == {"gemm"} and t["source"].str.len().gt(40).all()
    assert (t["m"] == t["n"]).all() and (t["n"] == t["k"]).all()
    tf = t[t["reported"].str.endswith("TFLOP/s")]
    rate = tf["reported"].str.split().str[0].astype(float) * 1e12
    assert np.allclose(2.0 * tf["m"].astype(float) ** 3 / rate, tf["measured_time_s"], rtol=1e-4)
    assert set(t.loc[t["dtype"] == "tf32", "out_dtype"]) == {"fp32"}  # an fp32 matmul writes fp32


def test_torch_sweeps_tf32_priced_like_bf16():
    # the H100 SXM sweep reaches the same share of its TF32 peak as of its BF16 peak (402 of 495 vs 798 of 989),
    # and the model prices its TF32 squares of 2048^3 and more within 12% (docs/cost-model.md, GEMMs in TF32)
    from sim.cost import CostOptions
    from sim.validation.compare import compare
    from sim.validation.gemm_score import torch_rows, torch_summary

    t = torch_rows()
    h = t[t["hardware"] == "h100-sxm"]
    best = {dt: (2.0 * g["m"].astype(float) ** 3 / g["measured_time_s"]).max() for dt, g in h.groupby("dtype")}
    assert best["tf32"] / 494.7e12 == pytest.approx(best["bf16"] / 989.4e12, abs=0.02)
    s = compare(h[h["dtype"] == "tf32"], options=CostOptions(cuda_graphs=True)).scored
    big = s[s["m"] >= 2048]
    assert len(big) == 4 and big["rel_error"].abs().max() < 0.12
    r = torch_summary(s).iloc[0]
    assert r["rows"] == 4 and r["median_ape"] < 0.08
