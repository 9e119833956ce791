"""Prediction intervals (sim/uncertainty.py, sim/validation/errormodel.py): hand-checkable coverage on
synthetic residuals, the interval rule's properties, and the interfaces' keys."""

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from hwmodels.errors import SpecError
from hwmodels.loader import load_hardware
from llmsim.cli import main
from sim.uncertainty import (ErrorModel, calibration_state, central_interval, check_level, chip_family,
                             factor_interval, prediction_intervals)
from sim.validation.errormodel import coverage_table, cross_validate, fit_cells, model_from, score_rows

TOY = os.path.join(os.path.dirname(__file__), "..", "data", "toy-chip.yaml")


def _rows(values, kind="gemm", state="measured", group="g"):
    n = len(values)
    return pd.DataFrame({"source": "s", "chip": "c", "family": "fam", "state": state, "kind": kind,
                         "bound": "compute", "group": [f"{group}{i % 5}" for i in range(n)],
                         "log_f": np.log(np.asarray(values, dtype=float))})


def test_coverage_on_synthetic_residuals_by_hand():
    # 100 rows whose measured/predicted factors are 0.51, 0.52, ..., 1.50: the 80% interval of a model
    # fitted on them runs from the 10th to the 90th percentile (about 0.61 and 1.40), so it covers
    # 80 of the 100 rows (0.61 .. 1.40 inclusive), and the width is 1.40 - 0.61 = 0.79 of the point
    f = 0.5 + np.arange(1, 101) / 100
    rows = _rows(f)
    m = model_from(fit_cells(rows, min_rows=20))
    lo, hi = factor_interval(m.cell("measured", "fam", "gemm", "compute"), 0.8)
    assert lo == pytest.approx(0.6090, abs=2e-3) and hi == pytest.approx(1.4010, abs=2e-3)
    s = score_rows(m, rows, levels=(0.8,))
    assert s["covered"].sum() == 80
    t = coverage_table(s.assign(level=0.8))
    assert t.iloc[0]["coverage"] == pytest.approx(0.8)
    assert t.iloc[0]["median_width"] == pytest.approx(0.792, abs=3e-3)


def test_fallback_when_a_cell_has_few_rows():
    rows = pd.concat([_rows(np.full(30, 2.0), kind="gemm"), _rows(np.full(5, 10.0), kind="norm")])
    m = model_from(fit_cells(rows, min_rows=20))
    c = m.cell("measured", "fam", "norm", "compute")
    assert c.level == "state/family"  # 5 norm rows are too few: all of the state's rows answer
    assert m.cell("measured", "fam", "gemm", "compute").level == "state/family/kind/bound"
    assert m.cell("measured", "other-family", "gemm", "memory").level == "state/*/kind"


def test_the_state_fallback_runs_both_ways_and_ends():
    """Leaving one chip out of the record (a100-sxm class-default, h100-sxm published) leaves one state without
    rows: each of the two reads the other's cells; a state reached again ends the fallback with the error."""
    m = model_from(fit_cells(_rows(np.full(30, 2.0), state="published"), min_rows=20))
    assert m.cell("class-default", "fam", "gemm", "compute").key == m.cell("published", "fam", "gemm", "compute").key
    m = model_from(fit_cells(_rows(np.full(30, 2.0), state="class-default"), min_rows=20))
    assert m.cell("published", "fam", "gemm", "compute").q[0] == pytest.approx(math.log(2.0), abs=1e-5)  # 5 decimals kept
    m = model_from(fit_cells(_rows(np.full(30, 2.0)), min_rows=20))  # measured rows only
    with pytest.raises(SpecError, match="no cell for state 'class-default'"):
        m.cell("published", "fam", "gemm", "compute")


def test_cross_validation_is_split_by_configuration():
    f = 0.5 + np.arange(1, 201) / 200
    rows = _rows(f)
    cv = cross_validate(rows, folds=5, min_rows=10)
    # every row scored exactly once per level, in the fold of its configuration
    assert len(cv[cv["level"] == 0.8]) == len(rows)
    cov = cv[cv["level"] == 0.8]["covered"].mean()
    assert 0.7 <= cov <= 0.9


def test_central_interval_contains_point_and_is_nested():
    s = np.arange(1, 101, dtype=float)
    assert central_interval(s, 50.0, 0.8) == pytest.approx((10.9, 90.1))
    lo, hi = central_interval(s, 5.0, 0.8)  # below the central interval: [point, Q(F(point) + 0.8)]
    assert lo == 5.0 and hi == pytest.approx(np.quantile(s, 0.85))
    lo, hi = central_interval(s, 200.0, 0.8)
    assert hi == 200.0 and lo == pytest.approx(np.quantile(s, 0.2))
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = rng.lognormal(rng.normal(), 0.5, 300)
        p = float(rng.lognormal(0, 1))
        prev = None
        for lv in (0.1, 0.3, 0.5, 0.8, 0.9, 0.99):
            lo, hi = central_interval(x, p, lv)
            assert lo <= p <= hi
            if prev:
                assert lo <= prev[0] + 1e-12 and hi >= prev[1] - 1e-12
            prev = (lo, hi)


def test_factor_interval_of_a_biased_cell_lies_on_its_side_of_the_point():
    f = np.linspace(2.0, 4.0, 50)  # always slower than predicted
    m = model_from(fit_cells(_rows(f), min_rows=20))
    lo, hi = factor_interval(m.cell("measured", "fam", "gemm", "compute"), 0.8)
    assert lo == pytest.approx(np.quantile(f, 0.1), rel=0.01) and hi == pytest.approx(np.quantile(f, 0.9), rel=0.01)
    assert 1.0 < lo  # the point is outside: the record says the model is fast on this cell


def test_unseen_chip_widening_about_the_median():
    rows = _rows(0.5 + np.arange(1, 101) / 100)
    m = model_from(fit_cells(rows, min_rows=20), chips={"c"}, widening=2.0)
    a = m.cell("measured", "fam", "gemm", "compute", chip_name="c")
    b = m.cell("measured", "fam", "gemm", "compute", chip_name="new-chip")
    med = np.interp(0.5, m.probs, a.q)
    assert np.allclose(b.q - med, 2.0 * (a.q - med))


def test_check_level():
    assert check_level(0.8) == 0.8
    for bad in (0, 1, -0.1, 1.5, "x", float("nan")):
        with pytest.raises(SpecError):
            check_level(bad)


def test_calibration_state_and_family():
    toy = load_hardware(TOY)
    assert calibration_state(toy) == "none"  # no efficiency fields, no class
    assert calibration_state(load_hardware("a100-sxm")) == load_hardware("a100-sxm").calibration
    assert calibration_state(load_hardware("hwmodels/catalog/calibrated/a100-sxm-calibrated.yaml")) == "measured"
    assert calibration_state(load_hardware("a100-sxm"), use_efficiency=False) == "none"
    assert chip_family(load_hardware("h100-sxm")) == "nvidia-accelerator"
    assert chip_family(load_hardware("host-cpu-xeon-2vcpu")) == "cpu"


def test_shipped_error_model_has_every_state():
    m = ErrorModel.load()
    for s in ("measured", "class-default", "none"):
        assert f"{s}|*|*|*" in m.cells
    for s in ("measured", "published", "class-default", "none"):
        for kind in ("gemm", "attention", "collective", "sampling", "norm"):
            c = m.cell(s, "nvidia-accelerator", kind, "memory", "a100-sxm")
            assert np.all(np.diff(c.q) >= 0)
    assert m.data["provenance"]["commit"]
    assert m.widening >= 1.0


def test_prediction_intervals_bracket_the_point_and_grow_with_level():
    from sim.predict import predict

    p = predict("llama-3.1-8b", "h100-sxm", 8, 512, 64)
    prev = None
    for lv in (0.5, 0.8, 0.95):
        iv = prediction_intervals(p, "h100-sxm", lv)
        for k in ("ttft_s", "tpot_s", "e2e_s", "output_throughput_tok_s", "per_chip_output_throughput_tok_s",
                  "usd_per_mtok_output"):
            lo, hi = iv[k]
            assert lo <= getattr(p, k) <= hi, k
            if prev:
                assert lo <= prev[k][0] + 1e-12 and hi >= prev[k][1] - 1e-12
        prev = iv
    # a datasheet-only view of the same chip is less certain than its catalog file
    wide = prediction_intervals(p, "h100-sxm", 0.8, options=__import__("sim.cost").cost.CostOptions(use_efficiency=False))
    nar = prev and prediction_intervals(p, "h100-sxm", 0.8)
    w = lambda iv: math.log(iv["e2e_s"][1] / iv["e2e_s"][0])  # noqa: E731
    assert w(wide) > w(nar) * 0.5


def test_predict_json_keys(capsys):
    assert main(["predict", "--hw", "h100-sxm", "--model", "llama-3.1-8b", "--batch", "4", "--input-len", "256",
                 "--output-len", "32", "--json", "--interval-level", "0.9"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["interval_level"] == 0.9
    for k in ("ttft_s", "tpot_s", "e2e_s", "output_throughput_tok_s", "per_chip_output_throughput_tok_s",
              "usd_per_mtok_output"):
        lo, hi = d["intervals"][k]
        assert lo <= d[k] <= hi


def test_predict_bad_level_exit_2(capsys):
    rc = main(["predict", "--hw", "h100-sxm", "--model", "llama-3.1-8b", "--batch", "1", "--input-len", "8",
               "--output-len", "2", "--interval-level", "1.5"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--interval-level" in err and "Traceback" not in err


def test_predict_text_shows_ranges(capsys):
    assert main(["predict", "--hw", TOY, "--model", "qwen2.5-0.5b", "--batch", "1", "--input-len", "64",
                 "--output-len", "8"]) == 0
    out = capsys.readouterr().out
    assert "end-to-end" in out and " - " in out and "prediction intervals" in out


def test_ops_out_has_interval_columns(tmp_path):
    q = tmp_path / "q.csv"
    q.write_text("hardware,op,dtype,m,n,k\nh100-sxm,gemm,bf16,4096,4096,4096\nh100-sxm,gemm,bf16,1,4096,4096\n"
                 f"{TOY},gemm,bf16,1024,1024,1024\n")
    out = tmp_path / "p.csv"
    assert main(["ops", str(q), "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert (df["time_s_lo"] < df["time_s_hi"]).all() and (df["time_s_lo"] > 0).all()
    # the hypothetical toy chip is class-default and outside the record: its band is the widest
    rel = (df["time_s_hi"] - df["time_s_lo"]) / df["time_s"]
    assert rel.iloc[2] > rel.iloc[0]


def test_serving_combine_by_hand():
    from sim.serving.intervals import combine

    point = {"ttft_p50_s": 1.0, "output_throughput_tok_s": 100.0, "ttft_mean_s": 1.0, "usd_per_mtok_output": 2.0}
    fast = {"ttft_p50_s": 0.9, "output_throughput_tok_s": 120.0, "ttft_mean_s": 1.1, "usd_per_mtok_output": 1.8}
    slow = {"ttft_p50_s": 1.5, "output_throughput_tok_s": 80.0, "ttft_mean_s": 1.4, "usd_per_mtok_output": 2.6}
    iv = combine(point, fast, slow)
    assert iv["ttft_p50_s"] == [0.9, 1.5]
    assert iv["output_throughput_tok_s"] == [80.0, 120.0]
    assert iv["ttft_mean_s"] == [1.0, 1.4] and iv["ttft_s"] == [1.0, 1.4]  # widened to contain the point
    assert iv["usd_per_mtok_output"] == [1.8, 2.6]


def test_serve_json_intervals(capsys):
    toy = os.path.join(os.path.dirname(__file__), "..", "data", "toy-chip.yaml")
    assert main(["serve", "--hw", toy, "--model", "qwen2.5-0.5b", "--rate", "20", "--num-requests", "30",
                 "--input-len", "128", "--output-len", "16", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["interval_level"] == 0.8
    iv = d["intervals"]
    for k in ("ttft_s", "tpot_s", "e2e_s", "output_throughput_tok_s", "per_chip_output_throughput_tok_s",
              "usd_per_mtok_output", "ttft_p50_s", "ttft_p99_s", "tpot_p90_s", "e2e_p99_s"):
        lo, hi = iv[k]
        point = d[{"ttft_s": "ttft_mean_s", "tpot_s": "tpot_mean_s", "e2e_s": "e2e_mean_s",
                   "per_chip_output_throughput_tok_s": "output_throughput_per_chip_tok_s"}.get(k, k)]
        assert lo <= point <= hi, k
    assert iv["tpot_p50_s"][1] > d["tpot_p50_s"]  # the slow end is slower


def test_predict_api_interval_level_field():
    from sim.predict import predict

    p = predict("qwen2.5-0.5b", TOY, 2, 64, 8)
    assert p.intervals is None and p.interval_level is None  # the API computes intervals only when asked
    q = predict("qwen2.5-0.5b", TOY, 2, 64, 8, interval_level=0.8)
    assert q.interval_level == 0.8 and q.intervals["e2e_s"][0] <= q.e2e_s <= q.intervals["e2e_s"][1]
    assert q.to_dict()["intervals"] == q.intervals
    with pytest.raises(SpecError):
        predict("qwen2.5-0.5b", TOY, 2, 64, 8, interval_level=1.0)


def test_size_buckets_by_hand():
    from sim.uncertainty import size_label, size_labels

    edges = (-5.0, -4.0)
    assert size_labels(edges) == ["<-5", "-5..-4", ">=-4"]
    assert [size_label(x, edges) for x in (-6.0, -5.0, -4.5, -4.0, -1.0)] == ["<-5", "-5..-4", "-5..-4", ">=-4", ">=-4"]
    assert size_label(-4.5, ()) == "*"


def test_cells_by_size_and_the_nearest_size_fallback():
    """Small ops measured 2x their prediction, big ones 1.1x: each bucket gets its own cell; a bucket without
    rows reads the nearest bucket's cell (not all sizes pooled); an op without a time reads the pooled cells."""
    import sim.validation.errormodel as E

    small = _rows(np.linspace(1.9, 2.1, 40)).assign(size="<-5")
    big = _rows(np.linspace(1.05, 1.15, 40)).assign(size="-5..-4")
    m = E.model_from(fit_cells(pd.concat([small, big], ignore_index=True), min_rows=20))
    m.size_edges = (-5.0, -4.0)
    assert m.size_of(1e-6) == "<-5" and m.size_of(3e-5) == "-5..-4" and m.size_of(1e-3) == ">=-4"
    lo, hi = factor_interval(m.cell("measured", "fam", "gemm", "compute", size="<-5"), 0.8)
    assert 1.9 < lo < hi < 2.1
    c = m.cell("measured", "fam", "gemm", "compute", size="-5..-4")
    assert c.level == "state/family/kind/bound/size" and 1.05 < factor_interval(c, 0.8)[1] < 1.15
    near = m.cell("measured", "fam", "gemm", "compute", size=">=-4")  # no rows that big: the nearest bucket
    assert near.level == "state/family/kind/bound/size (nearest size)" and near.key.endswith("|-5..-4")
    pooled = m.cell("measured", "fam", "gemm", "compute")
    assert pooled.level == "state/family/kind/bound" and factor_interval(pooled, 0.8)[1] > 1.9
    # held-out scoring reads each row's own bucket
    s = score_rows(m, pd.concat([small, big], ignore_index=True), levels=(0.8,))
    assert set(s["size"]) == {"<-5", "-5..-4"} and s["covered"].mean() == pytest.approx(0.8, abs=0.05)


def test_op_intervals_use_the_ops_size():
    from sim.uncertainty import calibration_state, op_intervals

    m = ErrorModel.load()
    hw = load_hardware("h100-sxm")
    state = calibration_state(hw)  # the chip file's own state ('published' since its memory was measured)
    lo, hi = op_intervals(["norm", "norm"], ["memory", "memory"], [2e-6, 5e-4], [hw, hw], model=m)
    c_small = m.cell(state, "nvidia-accelerator", "norm", "memory", "h100-sxm", size=m.size_of(2e-6))
    c_big = m.cell(state, "nvidia-accelerator", "norm", "memory", "h100-sxm", size=m.size_of(5e-4))
    assert lo[0] / 2e-6 == pytest.approx(factor_interval(c_small, 0.8)[0])
    assert hi[1] / 5e-4 == pytest.approx(factor_interval(c_big, 0.8)[1])


def test_cell_kinds_by_hand():
    from sim.uncertainty import cell_kind

    # a residual add in bf16: 1 FLOP per element over 3 x 2 bytes; a gated activation: 5 FLOPs over the same
    assert cell_kind("elementwise", 1.0, 6.0) == "elementwise:stream"
    assert cell_kind("elementwise", 5.0, 6.0) == "elementwise:math"
    assert cell_kind("elementwise") == "elementwise" and cell_kind("norm", 5.0, 6.0) == "norm"
    assert cell_kind("collective", name="tp.allreduce_attn") == "collective:allreduce"
    assert cell_kind("collective", name="pp.sendrecv") == "collective:sendrecv"
    assert cell_kind("collective", name="mystery") == "collective"


def test_a_cell_kind_without_cells_reads_its_kind():
    stream = _rows(np.linspace(0.5, 0.7, 30), kind="elementwise:stream")
    m = model_from(fit_cells(stream, min_rows=20))
    assert m.cell("measured", "fam", "elementwise:stream", "compute").level == "state/family/kind/bound"
    assert m.cell("measured", "fam", "elementwise:math", "compute").level == "state/family"
    # a file fitted without the split (plain kinds): the classes read the kind's cells
    m2 = model_from(fit_cells(_rows(np.linspace(0.5, 0.7, 30), kind="elementwise"), min_rows=20))
    c = m2.cell("measured", "fam", "elementwise:math", "compute")
    assert c.level == "state/family/kind/bound" and c.key.split("|")[2] == "elementwise"
    # graph kinds without rows of their own (sampling) read elementwise's cells
    assert m2.cell("measured", "fam", "sampling", "compute").key == c.key


def test_unseen_widening_per_kind_and_for_a_missing_size():
    rows = pd.concat([_rows(0.5 + np.arange(1, 101) / 100).assign(size="<-5"),
                      _rows(0.5 + np.arange(1, 101) / 100, kind="norm").assign(size="<-5")], ignore_index=True)
    m = model_from(fit_cells(rows, min_rows=20), chips={"c"}, widening=2.0, by_kind={"gemm": 1.5})
    m.size_edges = (-5.0,)
    for kind, w in (("gemm", 1.5), ("norm", 2.0), ("attention", 1.5 * 1.5)):  # attention: GEMM's cells, twice
        a = m.cell("measured", "fam", "gemm" if kind == "attention" else kind, "compute", chip_name="c", size="<-5")
        b = m.cell("measured", "fam", kind, "compute", chip_name="new-chip", size="<-5")
        med = np.interp(0.5, m.probs, a.q)
        assert np.allclose(b.q - med, w * (a.q - med)), kind
    # a size the record lacks reads the nearest bucket, widened by the kind's factor even on a known chip
    a = m.cell("measured", "fam", "gemm", "compute", chip_name="c", size="<-5")
    n = m.cell("measured", "fam", "gemm", "compute", chip_name="c", size=">=-5")
    assert n.level.endswith("(nearest size)") and n.widen == 1.5
    assert np.allclose(n.q - np.interp(0.5, m.probs, a.q), 1.5 * (a.q - np.interp(0.5, m.probs, a.q)))


def test_engine_refit_draws_on_a_published_chip_use_the_state_fallback():
    """The end-to-end (engine) refit prices each row with a unit engine term; it must keep the file's state
    fallback, or a row on a chip whose calibration is 'published' (a state with no cells of its own, read
    through 'class-default') stops `make validate` with 'no cell for state published'."""
    from sim.predict import predict
    from sim.validation.errormodel import _draws

    shipped = ErrorModel.load()  # a record without 'published' cells (the shipped one has them since h100-sxm's
    data = dict(shipped.data)      # state became 'published'): the state must be read through the fallback
    data["cells"] = {k: v for k, v in shipped.data["cells"].items() if not k.startswith("published|")}
    m = ErrorModel(data)
    assert not any(k.startswith("published|") for k in m.cells)  # the premise: published reads a fallback
    chip = load_hardware("mi300x")
    assert calibration_state(chip) == "published"
    it = {"chip": chip, "pred": predict("llama-3.1-8b", "mi300x", 2, 128, 16), "state": "published",
          "metric": "e2e_s", "overlap": False}
    d = _draws(it, m)
    assert d.shape == (400,) and np.all(np.isfinite(d)) and np.all(d > 0)


def test_normal_quantile_matches_the_standard_library():
    from statistics import NormalDist

    from sim.uncertainty import normal_quantile

    p = np.concatenate([[1e-12, 1e-6, 0.02, 0.02425, 0.0243], np.linspace(0.001, 0.999, 999), [0.9757, 1 - 1e-6]])
    ref = np.array([NormalDist().inv_cdf(x) for x in p])
    assert np.allclose(normal_quantile(p), ref, rtol=2e-9, atol=1e-8)
    assert normal_quantile(0.5) == 0.0


def test_uniforms_are_a_latin_hypercube_fixed_by_the_seed():
    from sim.uncertainty import _uniforms

    n, k = 400, 5
    u = _uniforms(0, n, k)
    assert u.shape == (n, k) and np.all((u >= 0) & (u < 1))
    for j in range(k):  # every stratum [i/n, (i+1)/n) holds exactly one draw of each column
        assert sorted(np.floor(u[:, j] * n).astype(int)) == list(range(n))
    assert np.array_equal(u, _uniforms(0, n, k))  # deterministic
    assert not np.array_equal(u, _uniforms(1, n, k))  # the seed matters
    c = np.corrcoef(u, rowvar=False)
    assert np.all(np.abs(c[np.triu_indices(k, 1)]) < 0.15)  # columns independent-looking
    assert abs(np.mean(u) - 0.5) < 0.01


def test_error_model_cells_parse_on_first_use_and_bad_text_names_the_file_and_cell(tmp_path):
    import json

    from sim.uncertainty import DATA, ErrorModel

    data = json.loads(open(DATA, encoding="utf-8").read())
    assert data["format"] == 2 and isinstance(next(iter(data["cells"].values()))["q"], str)
    key = next(iter(data["cells"]))
    m = ErrorModel(data, "em.json")
    q = m.cells[key]
    assert q.shape == (len(data["probs"]),) and q is m.cells[key]  # parsed once
    listed = ErrorModel(dict(data, cells={key: {"n": 3, "q": [float(x) for x in q]}}))  # format 1 / in memory
    assert np.array_equal(listed.cells[key], q)
    bad = ErrorModel(dict(data, cells={key: {"n": 3, "q": "0.1 zero"}}), "em.json")
    with pytest.raises(SpecError, match=r"em\.json: cells\..*\.q: expected numbers"):
        bad.cells[key]


def test_serving_engine_term_is_read_by_serve_and_falls_back_to_the_static_term():
    """``engine_term(state, "serving")`` reads the file's serving term (its state, the state fallback, '*') and
    the static batches' term where the file has none; the serving intervals draw it: a serving term that says
    engines run twice as slow moves `serve`'s throughput range below the point."""
    from sim.serving.intervals import end_scales
    from sim.predict import predict

    base = dict(ErrorModel.load().data)
    base["engine"] = {"*": {"mu": 0.0, "sd_pred": 0.0}}
    none = ErrorModel(dict(base, serving_engine={}))
    assert none.engine_term("published", "serving") == (0.0, 0.0)  # no serving term: the static one
    slow = ErrorModel(dict(base, serving_engine={"*": {"mu": math.log(2.0), "sd_pred": 0.0},
                                                 "class-default": {"mu": math.log(3.0), "sd_pred": 0.1}}))
    assert slow.engine_term("published", "serving") == (pytest.approx(math.log(3.0)), 0.1)  # via the state fallback
    assert slow.engine_term("measured", "serving") == (pytest.approx(math.log(2.0)), 0.0)
    assert slow.engine_term("measured") == (0.0, 0.0)  # a static batch keeps its own term
    p = predict("llama-3.1-8b", "h100-sxm", 8, 256, 32)
    f0, s0 = end_scales(p, "h100-sxm", 0.8, model=none)
    # a serving term of no spread scales every draw by the same x3 (h100-sxm is 'published', read through
    # class-default): the same draws sit at the ends, and every kind's factor is the unscaled one x3
    exact = ErrorModel(dict(base, serving_engine={"class-default": {"mu": math.log(3.0), "sd_pred": 0.0}}))
    f3, s3 = end_scales(p, "h100-sxm", 0.8, model=exact)
    for (k0, a), (k1, b) in zip(s0 + f0, s3 + f3):
        assert k0 == k1 and b / a == pytest.approx(3.0)
    f1, s1 = end_scales(p, "h100-sxm", 0.8, model=slow)  # with its spread (sd 0.1): still well below the point
    assert min(b for _, b in f1) > 1.5  # even the fast end is slower than the point


def test_serving_engine_fit_by_hand():
    """The serving term is fitted as the static one: on rows whose measured time is exactly twice the kernel
    median, mu = ln 2, and the kernel spread is subtracted from the sd."""
    from sim.predict import predict
    from sim.validation.serving_term import fit_serving_engine
    from sim.validation.errormodel import _draws

    data = dict(ErrorModel.load().data)
    chip = load_hardware("h100-sxm")
    items = []
    for b in (2, 4, 8):
        p = predict("llama-3.1-8b", "h100-sxm", b, 256, 32)
        it = {"chip": chip, "pred": p, "state": "published", "metric": "e2e_s", "overlap": False}
        med = float(np.median(_draws(it, ErrorModel(dict(data, serving_engine={})), engine=False)))
        it["measured"] = 2.0 * med
        items.append(it)
    t = fit_serving_engine(items, data)
    assert t["published"]["n"] == 3 and t["published"]["mu"] == pytest.approx(math.log(2.0), abs=1e-5)
    assert t["published"]["sd"] == 0.0  # identical residuals: no spread beyond the kernel draws'


def test_attention_cells_come_from_the_published_attention_rows():
    """The published attention kernel rows (less the fitted ones) become residual rows of kind attention in the
    catalog files' state, grouped by source and phase; fitted into cells, an attention op on the H100 reads its
    own cell instead of the GEMM proxy."""
    from sim.validation.errormodel import attention_residuals

    a = attention_residuals()
    k = pd.read_csv(os.path.join(os.path.dirname(__file__), "..", "..", "sim", "validation", "data", "published",
                                 "kernels.csv"), keep_default_na=False)
    k = k[k["op"] == "attention"]
    assert len(a) == int((k["fit"].str.strip() == "").sum()) > 20  # every held-out row, no fitted one
    assert set(a["kind"]) == {"attention"} and set(a["state"]) == {"published"} and set(a["pricing"]) == {"catalog"}
    assert np.all(np.isfinite(a["log_f"])) and set(a["bound"]) <= {"compute", "memory", "latency", "overhead"}
    assert a["group"].str.endswith(("|prefill", "|decode")).all()
    base = ErrorModel.load()
    m = model_from({**base.data["cells"], **fit_cells(a)}, base.chips, base.widening)
    c = m.cell("published", "nvidia-accelerator", "attention", "compute", "h100-sxm")
    assert "proxy" not in c.level and c.n >= 20
    # a state without attention rows (the calibrated files: measured) still reads the GEMM proxy
    assert "proxy" in m.cell("measured", "nvidia-accelerator", "attention", "compute", "h100-sxm").level


@pytest.mark.parametrize("table, field", [({"*": {"mu": "x", "sd_pred": 0.1}}, "serving_engine.*.mu"),
                                          ({"published": {"mu": 0.1, "sd_pred": -1}}, "serving_engine.published.sd_pred"),
                                          ({"*": {"mu": float("nan")}}, "serving_engine.*.mu"),
                                          ([1, 2], "serving_engine"), ({"*": 3}, "serving_engine.*")])
def test_engine_terms_are_checked_and_named(tmp_path, table, field):
    """A hostile or broken engine term in an error model file is a SpecError naming the file and the field, not a
    ValueError in the middle of an interval."""
    from sim.uncertainty import _load

    data = dict(ErrorModel.load().data, serving_engine=table)
    p = tmp_path / "em.json"
    p.write_text(json.dumps(data, allow_nan=True), encoding="utf-8")
    with pytest.raises(SpecError) as e:
        _load(str(p))
    assert str(p) in str(e.value) and field in str(e.value)


def test_unseen_source_shifts_by_hand():
    """Three sources of attention rows on one family (20 rows each, every row of a source at one factor: 1.0, 1.5,
    2.0; 60 GEMM rows at 1.0 keep the pooled levels). Left out, a source's rows read the attention cell of the
    other two (its median: between their factors), so its shift is its factor over that median: a (1.0) reads
    b and c pooled (median ln 1.5 .. ln 2.0, interpolated), and so on; one source alone gives no shift, and a
    second family's rows do not mix in."""
    from sim.validation.errormodel import PROBS, unseen_source_shifts

    def att(f, group, family="fam"):
        return pd.DataFrame({"source": "s", "chip": "c", "family": family, "state": "published", "kind": "attention",
                             "bound": "compute", "group": group, "log_f": np.full(20, np.log(f))})

    gemm = _rows(np.ones(60), state="published")
    rows = pd.concat([gemm, att(1.0, "a"), att(1.5, "b"), att(2.0, "c"), att(3.0, "z", "other")], ignore_index=True)
    shifts, det = unseen_source_shifts(rows, min_rows=20)
    assert set(shifts["attention"]) == {"fam"}  # 'other' has one source: nothing measured there
    assert det["by_kind"]["attention"]["fam"] == {"configurations": 3, "rows": 60}

    def med_of(*fs):  # the 0.5 quantile of the pooled rows, as fit_cells stores it on PROBS and the cell reads it
        q = np.quantile(np.log(np.repeat(fs, 20)), PROBS)
        return float(np.interp(0.5, PROBS, q))

    want = sorted(round(np.log(f) - med_of(*o), 5) for f, o in ((1.0, (1.5, 2.0)), (1.5, (1.0, 2.0)), (2.0, (1.0, 1.5))))
    assert shifts["attention"]["fam"] == pytest.approx(want, abs=5e-5)  # quantiles kept to 5 decimals
    # the leave-one-out fits equal a refit from scratch
    from sim.validation.errormodel import _fit_without, _kind_rows

    cells = fit_cells(rows, min_rows=20)
    own = rows[_kind_rows(rows, "attention")]
    assert _fit_without(rows, own, "a", cells, 20) == fit_cells(rows[rows["group"] != "a"], min_rows=20)


def test_unseen_source_shifts_spread_the_kind_on_its_family():
    rows = pd.concat([_rows(0.5 + np.arange(1, 101) / 100, kind="attention"),
                      _rows(0.5 + np.arange(1, 101) / 100)], ignore_index=True)
    plain = model_from(fit_cells(rows, min_rows=20), chips={"c"})
    m = model_from(fit_cells(rows, min_rows=20), chips={"c"}, shifts={"attention": {"fam": [-0.5, 0.0, 0.5]}})
    a = plain.cell("measured", "fam", "attention", "compute", chip_name="c")
    b = m.cell("measured", "fam", "attention", "compute", chip_name="c")
    # by hand: the quantiles of {x + s}: x the cell's 199 quantiles, s each of the three shifts
    want = np.quantile(np.add.outer(a.q, [-0.5, 0.0, 0.5]).ravel(), m.probs)
    assert np.allclose(b.q, want) and np.all(np.diff(b.q) >= 0)
    lo, hi = factor_interval(b, 0.8)
    alo, ahi = factor_interval(a, 0.8)
    assert lo < alo and hi > ahi  # wider both ways: the shifts are symmetric here
    # other kinds, and the kind on another family, are untouched
    for kind, fam in (("gemm", "fam"), ("attention", "other")):
        r2 = pd.concat([rows, rows.assign(family="other")], ignore_index=True)
        p2 = model_from(fit_cells(r2, min_rows=20))
        m2 = model_from(fit_cells(r2, min_rows=20), shifts={"attention": {"fam": [-0.5, 0.0, 0.5]}})
        assert np.allclose(m2.cell("measured", fam, kind, "compute").q, p2.cell("measured", fam, kind, "compute").q)


@pytest.mark.parametrize("bad", [{"attention": [0.1]}, {"attention": {"fam": []}}, {"attention": {"fam": [float("nan")]}},
                                 {"attention": {"fam": ["0.1"]}}, {"attention": {"fam": [True]}}, [0.1]])
def test_unseen_source_shifts_checked_on_load(bad, tmp_path):
    data = dict(ErrorModel.load().data)
    data["unseen_source_shifts"] = {"by_kind": bad}
    p = tmp_path / "em.json"
    p.write_text(json.dumps(data))
    with pytest.raises(SpecError, match=r"unseen_source_shifts\.by_kind"):
        ErrorModel.load(str(p))
