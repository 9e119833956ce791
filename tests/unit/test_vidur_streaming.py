"""sim.validation.vidur_streaming: the quick scorer of Vidur's streaming rows and the per-trip reading."""

import numpy as np
import pandas as pd
import pytest

from sim.validation.vidur_streaming import (STREAMING, derive_gather_efficiency, derive_kernel_fixed_time, main, score,
                                            streaming_rows, summary, trip_times)


def test_streaming_rows_scored_and_summarised():
    rows = streaming_rows("a100", limit=6000)
    assert len(rows) and set(rows["op"]) <= set(STREAMING)
    assert rows["held_out"].any() and (~rows["held_out"]).any()
    scored = score(rows)
    held = summary(scored, "held-out")
    by_op = held[held["group"] == "op"]
    assert by_op["rows"].sum() == int(rows["held_out"].sum())  # every held-out row in one op kind
    assert (held["median_ape"] >= 0).all() and held["bias"].abs().le(held["median_ape"] + 1e-12).all()
    with pytest.raises(ValueError):
        summary(scored, "test")


def test_trip_times_reads_the_slope_of_time_against_trips():
    # SiluAndMul rows on a toy 10-core chip: d = 2048 -> 1024 threads, 2 trips a row, 2 blocks a core (20 a wave)
    # at 1.5 us a trip plus 3 us: 1-20 tokens one wave (2 trips), 21-40 two waves (4 trips)
    tok = np.arange(1, 41)
    trips = np.where(tok <= 20, 2, 4)
    df = pd.DataFrame({"name": "mlp_act", "variant": "silu_and_mul", "num_tokens": tok, "numel": tok * 2048,
                       "n": np.nan, "measured_time_s": 3e-6 + 1.5e-6 * trips})
    r = trip_times(df, "silu_and_mul", "elementwise", cores=10, tokens=(0, 40))
    assert r["rows"] == 40
    assert r["per_trip_s"] == pytest.approx(1.5e-6) and r["intercept_s"] == pytest.approx(3e-6)
    one = trip_times(df, "silu_and_mul", "elementwise", cores=10, tokens=(0, 20))  # one trip count: no line
    assert one["rows"] == 20 and np.isnan(one["per_trip_s"])


def test_kernel_fixed_time_derived_on_training_rows_only():
    # the residual adds; 1 us more on every training row moves the derived time by 1 us, and the held-out rows
    # do not count
    rows = streaming_rows("h100")
    rows = rows[rows["name"] == "add"].reset_index(drop=True)
    base = derive_kernel_fixed_time("h100", rows)
    moved = rows.copy()
    moved.loc[~moved["held_out"], "measured_time_s"] += 1e-6
    moved.loc[moved["held_out"], "measured_time_s"] *= 100
    d = derive_kernel_fixed_time("h100", moved)
    assert d["rows"] == base["rows"] > 0
    assert d["kernel_fixed_time_s"] == pytest.approx(base["kernel_fixed_time_s"] + 1e-6)
    assert 0 < base["kernel_fixed_time_s"] < 5e-6


def test_gather_fraction_fitted_on_training_rows_only():
    rows = streaming_rows("h100")
    emb = rows[rows["op"] == "embedding"].head(600).reset_index(drop=True)
    base = derive_gather_efficiency("h100", emb, step=0.025, bounds=(0.15, 0.3))
    assert 0.15 <= base["gather"] <= 0.3 and base["rows"] == int((~emb["held_out"]).sum())
    moved = emb.copy()
    moved.loc[moved["held_out"], "measured_time_s"] *= 100  # the held-out rows do not count
    assert derive_gather_efficiency("h100", moved, step=0.025, bounds=(0.15, 0.3)) == base
    slower = emb.copy()
    slower.loc[~slower["held_out"], "measured_time_s"] *= 1.5  # slower gathers: a smaller fraction
    assert derive_gather_efficiency("h100", slower, step=0.025, bounds=(0.15, 0.3))["gather"] < base["gather"]


def test_hw_option_prices_one_chip_on_a_given_file(capsys, tmp_path):
    assert main(["--chip", "h100", "--split", "all", "--hw", "h100-sxm"]) == 0  # the catalog file, named
    assert "h100-sxm" in capsys.readouterr().out
    assert main(["--chip", "h100", "--hw", str(tmp_path / "missing.yaml")]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--chip", "a100", "--chip", "h100", "--hw", "h100-sxm"])  # one chip only
