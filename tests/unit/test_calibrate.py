"""Calibration recovers efficiencies from measurements the model itself generated; the split is by shape."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hwmodels import load_chip
from sim.ops import predict_ops
from sim.validation.calibrate import (
    calibrate,
    fold_of,
    knot_sizes_for,
    shape_keys,
    split_by_shape,
)
from sim.validation.calibrated_file import write_calibrated

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")
TRUE = {"compute.matrix.efficiency": 0.73, "compute.matrix.efficiency_source": "test truth",
        "memory.hbm.efficiency": [["1 MB", 0.5], ["100 MB", 0.8], ["10 GB", 0.9]],
        "memory.hbm.efficiency_source": "test truth", "launch_overhead": "3 us"}
MATRIX_ONLY = {"compute.matrix.efficiency": 0.73, "compute.matrix.efficiency_source": "test truth"}


def synthetic(overrides, shapes, noise=0.03, seed=0):
    """Rows priced by the model on the toy chip with ``overrides``, times x lognormal noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(shapes)
    df["hardware"] = TOY
    truth = load_chip(TOY, overrides)
    t = predict_ops(df, hardware={TOY: truth})["time_s"].to_numpy()
    df["measured_time_s"] = t * np.exp(rng.normal(0, noise, len(df)))
    return df


def gemm_shapes(n=70, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m, nn, k = (int(2 ** rng.uniform(7, 12.5)) for _ in range(3))
        out.append({"op": "gemm", "dtype": "bf16", "m": m, "n": nn, "k": k})
    return out


def test_recovers_matrix_efficiency_073():
    df = synthetic(MATRIX_ONLY, gemm_shapes())
    cal = calibrate(df, TOY, fit=("matrix",))
    assert cal.knobs.matrix == pytest.approx(0.73, rel=0.03)
    assert cal.initial.matrix == 1.0  # the toy file has no efficiency: starts from the peak
    tab = cal.table().set_index("op")
    assert tab.loc["gemm", "calibrated_median_ape"] < 0.05  # noise is 3 %
    assert tab.loc["gemm", "catalog_median_ape"] > 0.2  # the peak-only file is 1/0.73 too fast on big GEMMs


@pytest.mark.slow
def test_recovers_memory_table_and_launch_overhead():
    shapes = gemm_shapes(40)
    rng = np.random.default_rng(2)
    for b in np.exp(rng.uniform(np.log(1e4), np.log(5e9), 90)):
        shapes.append({"op": "memcpy", "dtype": "bf16", "bytes": int(b)})
    for x in np.exp(rng.uniform(np.log(1e3), np.log(1e9), 60)):
        shapes.append({"op": "elementwise", "dtype": "bf16", "numel": int(x)})
    df = synthetic(TRUE, shapes)
    cal = calibrate(df, TOY, sweeps=3)
    assert cal.knobs.matrix == pytest.approx(0.73, rel=0.05)
    assert cal.knobs.launch == pytest.approx(3e-6, rel=0.2)
    truth = load_chip(TOY, TRUE).main_memory
    fitted = cal.calibrated.main_memory
    for size in (3e7, 1e8, 1e9):  # where the truth's table and the fitted knots agree in shape
        assert fitted.effective_bandwidth(size) == pytest.approx(truth.effective_bandwidth(size), rel=0.12)
    tab = cal.table().set_index("op")
    assert tab.loc["all", "calibrated_median_ape"] < 0.05
    assert tab.loc["all", "calibrated_median_ape"] < tab.loc["all", "catalog_median_ape"]


def test_split_is_by_shape_and_deterministic():
    df = pd.DataFrame(gemm_shapes(200) * 3)  # every shape three times (as in several models)
    df["hardware"] = TOY
    df["measured_time_s"] = 1e-3
    train, test = split_by_shape(df, folds=5, holdout=0)
    keys = shape_keys(df)
    assert not set(keys[train]) & set(keys[test])
    assert 0.1 < test.mean() < 0.3
    again = split_by_shape(df.sample(frac=1, random_state=3), folds=5, holdout=0)[1]
    assert set(shape_keys(df.sample(frac=1, random_state=3))[again]) == set(keys[test])
    assert fold_of("gemm:m=1,n=2,k=3") == fold_of("gemm:m=1,n=2,k=3")
    # a given shape_id column wins over the shape columns
    df["shape_id"] = "same"
    _, t2 = split_by_shape(df)
    assert t2.all() or not t2.any()


@pytest.mark.slow
def test_calibration_never_fits_held_out_shapes():
    df = synthetic(MATRIX_ONLY, gemm_shapes(80))
    cal = calibrate(df, TOY, fit=("matrix",))
    train_keys = set(shape_keys(cal.train))
    test_keys = set(shape_keys(cal.test))
    assert train_keys and test_keys and not train_keys & test_keys


def test_knots_span_the_measured_sizes():
    assert knot_sizes_for([2e3, 5e8], max_knots=4) == (1e3, 1e5, 1e7, 1e9)
    assert knot_sizes_for([5e6, 6e6]) == (1e6, 1e7)
    assert knot_sizes_for([]) == ()


@pytest.mark.slow
def test_written_file_passes_check_and_round_trips(tmp_path, capsys):
    from llmsim.cli import main

    df = synthetic(TRUE, gemm_shapes(50) + [{"op": "memcpy", "dtype": "bf16", "bytes": int(b)}
                                            for b in np.geomspace(1e5, 1e9, 30)])
    cal = calibrate(df, TOY, label="synthetic.csv", sweeps=1)
    out = write_calibrated(cal, tmp_path / "toy-chip-calibrated.yaml")
    assert main(["check", str(out)]) == 0
    data = yaml.safe_load(out.read_text())
    assert data["name"] == "toy-chip-calibrated"
    assert any("synthetic.csv" in s for s in data["source"])
    mu = next(u for u in data["compute"] if u["kind"] == "matrix")
    assert "synthetic.csv" in mu["efficiency_source"] and "held-out" in mu["efficiency_source"]
    chip = load_chip(out)
    assert chip.matrix_unit().efficiency == pytest.approx(cal.knobs.matrix, abs=1e-4)
    assert chip.launch_overhead_s == pytest.approx(cal.knobs.launch, rel=0.01)
    hbm = chip.main_memory.efficiency
    assert [s for s, _ in hbm] == pytest.approx([s for s, _ in cal.knobs.memory])
    # the file prices like the in-memory calibration
    t_file = predict_ops(df.assign(hardware=str(out)))["time_s"].to_numpy()
    t_mem = predict_ops(df, hardware={TOY: cal.calibrated})["time_s"].to_numpy()
    assert t_file == pytest.approx(t_mem, rel=2e-3)  # the file rounds to 4 digits


@pytest.mark.slow
def test_cli_calibrate(tmp_path, capsys):
    from llmsim.cli import main

    p = tmp_path / "m.csv"
    synthetic(MATRIX_ONLY, gemm_shapes(40)).to_csv(p, index=False)
    out = tmp_path / "cal.yaml"
    assert main(["calibrate", str(p), "--hw", TOY, "--fit", "matrix", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "HELD-OUT" in text and "matrix_efficiency" in text
    assert main(["check", str(out)]) == 0
    capsys.readouterr()
    assert main(["calibrate", str(p), "--hw", TOY, "--fit", "matrix", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["fitted"]["matrix_efficiency"] == pytest.approx(0.73, rel=0.05)
    # bad input: exit 2
    assert main(["calibrate", str(p), "--hw", "h100-sxm"]) == 2  # no rows for that hardware
    assert main(["calibrate", str(p), "--hw", TOY, "--fit", "bogus"]) == 2
    assert main(["calibrate", str(p), "--hw", TOY, "--folds", "1"]) == 2


@pytest.mark.slow
def test_system_tiers_fitted_with_a_given_chip(tmp_path):
    """A system calibrates its tiers only; its chip is named with --chip and referenced by the file."""
    from llmsim.cli import main

    toy_sys = str(DATA / "toy-system.yaml")
    truth = {"tiers.link.efficiency": 0.7, "tiers.link.efficiency_source": "test truth", "tiers.link.latency": "5 us"}
    from hwmodels import load_system

    sys_true = load_system(toy_sys, truth)
    rows = [{"op": op, "dtype": "bf16", "bytes": int(b), "num_devices": p}
            for op in ("allreduce", "allgather", "sendrecv") for p in (2, 4, 8) for b in np.geomspace(1e3, 1e9, 12)
            if not (op == "sendrecv" and p != 2)]
    df = pd.DataFrame(rows)
    df["hardware"] = toy_sys
    df["measured_time_s"] = predict_ops(df, hardware={toy_sys: sys_true})["time_s"]
    p = tmp_path / "net.csv"
    df.to_csv(p, index=False)
    cal = calibrate(df, toy_sys)
    assert cal.knobs.matrix is None and cal.knobs.launch is None
    assert cal.knobs.tier == pytest.approx(0.7, rel=0.05)
    assert cal.knobs.tier_latency == pytest.approx(5e-6, rel=0.1)
    chip = tmp_path / "toy-chip-calibrated.yaml"
    chip.write_text((DATA / "toy-chip.yaml").read_text().replace("name: toy-chip", "name: toy-chip-calibrated"))
    out = tmp_path / "sys.yaml"
    assert main(["calibrate", str(p), "--hw", toy_sys, "--chip", "toy-chip-calibrated.yaml", "--out", str(out),
                 "--quiet"]) == 0
    assert yaml.safe_load(out.read_text())["chip"] == "toy-chip-calibrated.yaml"
    assert load_system(out).chip.name == "toy-chip-calibrated"
    assert main(["calibrate", str(p), "--hw", toy_sys, "--fit", "matrix"]) == 2  # chip fields: not on a system


def test_recovers_efficiency_by_kind_on_streaming_rows():
    """Norm and elementwise rows generated with per-kind fractions 0.5 and 0.8: each kind's own rows recover them,
    while the matrix efficiency is fitted to the GEMM rows only."""
    truth = {**MATRIX_ONLY, "memory.hbm.efficiency_by_kind": {"norm": 0.5, "elementwise": 0.8},
             "memory.hbm.efficiency_source": "test truth"}
    shapes = gemm_shapes(40)
    rng = np.random.default_rng(5)
    for _ in range(60):
        shapes.append({"op": "norm", "dtype": "bf16", "m": int(2 ** rng.uniform(6, 13)), "n": 4096})
        shapes.append({"op": "elementwise", "dtype": "bf16", "numel": int(np.exp(rng.uniform(np.log(1e6), np.log(1e9))))})
    df = synthetic(truth, shapes, noise=0.02)
    cal = calibrate(df, TOY, fit=("matrix", "by_kind"), fit_ops=("gemm",), matrix_table=False)
    byk = dict(cal.knobs.by_kind)
    assert byk["norm"] == pytest.approx(0.5, rel=0.05)
    assert byk["elementwise"] == pytest.approx(0.8, rel=0.05)
    assert cal.knobs.matrix == pytest.approx(0.73, rel=0.05)
    assert cal.calibrated.main_memory.efficiency_by_kind == byk
    tab = cal.table().set_index("op")
    assert tab.loc["norm", "calibrated_median_ape"] < 0.05 < tab.loc["norm", "catalog_median_ape"]
