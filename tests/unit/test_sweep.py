"""Sweeps: points (grid, random, LHS) and their ids, constraints, the static evaluator against
``predict``, resumable Parquet results, backends giving identical tables, failures kept, bad specs."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwmodels.errors import SpecError
from sim.sweep import generate, load_results, load_spec, run_sweep, spec_from_dict
from sim.sweep.points import count

DATA = Path(__file__).parent.parent / "data"
TOY = DATA / "sweep" / "toy-grid.yaml"
BAD = sorted((DATA / "bad" / "sweep").glob("*.yaml"))


def toy(**changes):
    import yaml

    d = yaml.safe_load(TOY.read_text())
    d.update(changes)
    return spec_from_dict(d, base_dir=TOY.parent, file=str(TOY))


# ---------------------------------------------------------------------------------------------
# points

def test_grid_count_order_and_ids():
    spec = load_spec(TOY)
    f = generate(spec)
    assert count(spec) == len(f) == 3 * 2 * 2
    assert f["point_id"].is_unique and f["point_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    # the last axis varies fastest
    assert f["batch"].tolist()[:4] == [1, 8, 1, 8]
    # ids depend on axis names and values only: same points, reversed axis order -> same ids
    rev = toy(axes=dict(reversed(list(__import__("yaml").safe_load(TOY.read_text())["axes"].items()))))
    assert set(generate(rev)["point_id"]) == set(f["point_id"])
    # adding a value to an axis keeps the old points' ids
    more = toy(axes={"hw.memory.hbm.bandwidth": ["1 TB/s", "2 TB/s", "4 TB/s", "8 TB/s"], "hw.cores": [50, 100],
                     "batch": [1, 8]})
    assert set(f["point_id"]) < set(generate(more)["point_id"])


@pytest.mark.parametrize("method", ["random", "lhs"])
def test_sampling_count_and_determinism(method):
    axes = {"hw.memory.hbm.bandwidth": {"range": ["1 TB/s", "8 TB/s"], "scale": "log"},
            "hw.cores": {"range": [10, 200]}, "batch": [1, 2, 4]}
    a = generate(toy(axes=axes, sampling={"method": method, "samples": 200, "seed": 7}))
    b = generate(toy(axes=axes, sampling={"method": method, "samples": 200, "seed": 7}))
    c = generate(toy(axes=axes, sampling={"method": method, "samples": 200, "seed": 8}))
    assert len(a) == 200
    pd.testing.assert_frame_equal(a, b)
    assert not a["point_id"].equals(c["point_id"])
    bw = a["hw.memory.hbm.bandwidth"]
    assert bw.between(1e12, 8e12).all() and a["hw.cores"].between(10, 200).all()
    assert a["hw.cores"].dtype == np.int64
    if method == "lhs":  # one draw per stratum on every axis
        u = np.log(bw / 1e12) / np.log(8)
        assert sorted(np.floor(u * 200).astype(int)) == list(range(200))


def test_constraints_filter_before_running():
    axes = {"hw.memory.sram.capacity": ["256 KiB", "1 MiB", "4 MiB"], "hw.compute.matrix.peak.bf16":
            ["100 TFLOP/s", "400 TFLOP/s"]}
    spec = toy(axes=axes, area={"node": "tsmc-n5", "memory": "hbm3"}, constraints={"area_mm2": {"max": 300}})
    from sim.sweep.runner import prefilter
    from sim.tco import area_mm2, load_memory_tech, load_node
    from sim.vector import HwPoints

    frame = generate(spec)
    kept, excluded = prefilter(spec, frame)
    hw = HwPoints(spec.base, {"chip.memory.sram.capacity": frame["hw.memory.sram.capacity"].to_numpy(),
                              "chip.compute.matrix.peak.bf16": frame["hw.compute.matrix.peak.bf16"].to_numpy()})
    area = area_mm2(hw, load_node("tsmc-n5"), load_memory_tech("hbm3"))["total"]
    assert excluded == int((area > 300).sum()) > 0 and len(kept) == int((area <= 300).sum()) > 0
    res = run_sweep(spec, None, workers=1, progress=False)
    assert res.excluded == excluded and len(res.table) == len(kept)
    assert (res.table["area_mm2"] <= 300).all()


# ---------------------------------------------------------------------------------------------
# the static evaluator is sim.predict

def test_static_rows_equal_predict():
    from sim.predict import predict

    spec = toy(hardware="../toy-system.yaml", axes={"hw.memory.hbm.bandwidth": ["1 TB/s", "3 TB/s"],
                                                      "hw.tiers.link.bandwidth": ["50 GB/s", "400 GB/s"], "tp": [1, 2]},
               workload={"batch": 3, "input_len": 300, "output_len": 40})
    t = run_sweep(spec, None, workers=1, progress=False).table
    assert (t["status"] == "ok").all()
    for _, r in t.iterrows():
        p = predict("qwen2.5-0.5b", str(DATA / "toy-system.yaml"), 3, 300, 40, tp=int(r["tp"]),
                    overrides={"memory.hbm.bandwidth": f"{r['hw.memory.hbm.bandwidth']} B/s",
                               "tiers.link.bandwidth": f"{r['hw.tiers.link.bandwidth']} B/s"})
        for col, val in (("ttft_s", p.ttft_s), ("tpot_s", p.tpot_s), ("e2e_s", p.e2e_s),
                         ("output_tok_s", p.output_throughput_tok_s), ("usd_per_mtok_output", p.usd_per_mtok_output),
                         ("joules_per_output_token", p.joules_per_output_token), ("mfu", p.mfu), ("mbu", p.mbu)):
            assert r[col] == pytest.approx(val, rel=1e-9), col


def test_does_not_fit_is_kept_with_reason():
    spec = toy(model="llama-3.1-8b", axes={"hw.memory.hbm.capacity": ["10 GiB", "40 GiB"]})
    t = run_sweep(spec, None, workers=1, progress=False).table
    assert t["fits"].tolist() == [False, True]
    assert "needs" in t["reason"].iloc[0] and "GB per chip" in t["reason"].iloc[0] and pd.isna(t["reason"].iloc[1])
    assert (t["status"] == "ok").all()


def test_infeasible_parallelism_is_recorded():
    spec = toy(axes={"tp": [1, 3]})  # qwen2.5-0.5b has 14 heads: tp=3 does not divide them
    t = run_sweep(spec, None, workers=1, progress=False).table
    assert t["status"].tolist() == ["ok", "infeasible"] and "tp" in t["reason"].iloc[1]


# ---------------------------------------------------------------------------------------------
# results on disk

def test_parquet_resume_skips_done_points(tmp_path):
    spec = load_spec(TOY)
    out = tmp_path / "r.parquet"
    first = run_sweep(spec, out, workers=1, limit=5, progress=False)
    assert first.ran == 5 and len(load_results(out)) == 5
    second = run_sweep(spec, out, workers=1, progress=False)
    assert second.skipped == 5 and second.ran == 7
    full = run_sweep(spec, None, workers=1, progress=False).table
    pd.testing.assert_frame_equal(second.table.reset_index(drop=True), full.reset_index(drop=True))
    assert run_sweep(spec, out, workers=1, progress=False).ran == 0
    assert len(pd.read_parquet(out)) == 12  # a plain Parquet dataset


def test_interrupted_run_keeps_what_finished(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSIM_TEST_INTERRUPT_FILE", str(tmp_path / "flag"))
    spec = toy(evaluator="sweep_helpers:interrupted")
    out = tmp_path / "r.parquet"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, workers=1, chunk=4, progress=False)
    assert len(load_results(out)) == 4  # the first task finished and was written
    monkeypatch.delenv("LLMSIM_TEST_INTERRUPT_FILE")
    again = run_sweep(spec, out, workers=1, chunk=4, progress=False)
    assert again.skipped == 4 and again.ran == 8 and len(again.table) == 12


def test_other_spec_cannot_reuse_a_results_folder(tmp_path):
    out = tmp_path / "r.parquet"
    run_sweep(load_spec(TOY), out, workers=1, progress=False)
    with pytest.raises(SpecError, match="different sweep"):
        run_sweep(toy(workload={"batch": 4, "input_len": 999, "output_len": 32}), out, workers=1, progress=False)


# ---------------------------------------------------------------------------------------------
# backends and failures

def test_backends_give_identical_tables(tmp_path):
    spec = load_spec(TOY)
    inline = run_sweep(spec, tmp_path / "a", workers=1, chunk=3, progress=False).table
    pool = run_sweep(spec, tmp_path / "b", workers=2, chunk=3, progress=False)
    assert pool.backend.startswith("local pool")
    dask = run_sweep(spec, tmp_path / "c", workers=2, dask="local", dask_processes=False, chunk=3, progress=False)
    assert dask.backend.startswith("dask")
    pd.testing.assert_frame_equal(inline, pool.table)
    pd.testing.assert_frame_equal(inline, dask.table)


def test_failed_points_are_recorded_and_retried(tmp_path):
    spec = toy(evaluator="sweep_helpers:flaky")
    out = tmp_path / "r.parquet"
    r = run_sweep(spec, out, workers=1, progress=False)
    assert r.errors == 6 and r.ok == 6
    assert (r.table.loc[r.table["batch"] == 8, "error"] == "ValueError: batch 8 is cursed").all()
    assert run_sweep(spec, out, workers=1, progress=False).ran == 0  # failures count as done...
    again = run_sweep(spec, out, workers=1, retry_failed=True, progress=False)  # ...unless retried
    assert again.ran == 6


def test_a_dying_worker_loses_only_its_point(tmp_path):
    spec = toy(evaluator="sweep_helpers:dying")
    r = run_sweep(spec, tmp_path / "r", workers=2, chunk=4, progress=False)
    t = r.table
    dead = t[t["status"] == "error"]
    assert len(dead) == 1 and "worker died" in dead["error"].iloc[0]
    assert dead["batch"].iloc[0] == 8 and dead["hw.cores"].iloc[0] == 100
    assert (t["status"] == "ok").sum() == 11


def test_serving_evaluator_with_a_stand_in_simulator():
    spec = toy(evaluator="sweep_helpers:fake_serving", serving={"rate": 2.0, "slo_ttft_p99": "1 s"},
               axes={"hw.memory.hbm.bandwidth": ["1 TB/s", "4 TB/s"], "serving.rate": [1.0, 4.0]})
    t = run_sweep(spec, None, workers=1, progress=False).table
    assert (t["status"] == "ok").all()
    # the stand-in's p99 TTFT = rate / (TB/s): only (1 TB/s, rate 4) misses the 1 s SLO
    assert t["meets_slo"].tolist() == [True, False, True, True]
    assert t["usd_per_mtok_output"].iloc[0] == pytest.approx(3.6 / 3600 / 32 * 1e6)


# ---------------------------------------------------------------------------------------------
# bad input

@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_specs_give_located_errors(path):
    expect = re.match(r"# expect: (.*)", path.read_text().splitlines()[0]).group(1)
    with pytest.raises(SpecError) as e:
        spec = load_spec(path)
        run_sweep(spec, None, workers=1, progress=False)
    text = str(e.value)
    assert f"{path}:{expect}" in text, text


def test_cli_runs_a_spec(tmp_path, capsys):
    from llmsim.cli import main

    out = tmp_path / "r.parquet"
    assert main(["sweep", str(TOY), "--out", str(out), "--workers", "1", "--no-progress",
                 "--plots", str(tmp_path / "plots")]) == 0
    text = capsys.readouterr().out
    assert "12 generated" in text and "Pareto front" in text and "sensitivity of USD per million output tokens" in text
    assert list((tmp_path / "plots").glob("*.png"))
    assert main(["sweep", str(TOY), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "12 already done" in capsys.readouterr().out
    assert main(["sweep", str(BAD[0])]) == 2


# ---------------------------------------------------------------------------------------------
# shipped examples

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("sweep-*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_specs_load(path):
    spec = load_spec(path)
    assert count(spec) > 0 and spec.axes


def test_small_example_runs():
    run = run_sweep(load_spec(Path(__file__).parents[2] / "examples" / "sweep-small.yaml"), None, progress=False)
    assert run.ok == 36 and run.table["usd_per_mtok_output"].notna().all()
