"""Ranking a sweep by the slow end of its points' prediction intervals (sim/sweep/pessimistic.py)."""

import numpy as np
import pytest

from hwmodels.errors import SpecError
from sim.sweep import load_spec, run_sweep
from sim.sweep.pessimistic import _prediction, rank_pessimistic, slow_end_ratio

SPEC = """version: 1
kind: sweep
name: pes
hardware: h100-sxm
model: qwen2.5-0.5b
evaluator: static
workload: {input_len: 256, output_len: 32, quant: bf16}
axes:
  hw.memory.hbm.bandwidth: ["2 TB/s", "3.35 TB/s", "8 TB/s"]
  batch: [1, 8, 32]
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    d = tmp_path_factory.mktemp("pes")
    (d / "pes.yaml").write_text(SPEC)
    spec = load_spec(str(d / "pes.yaml"))
    t = run_sweep(spec, str(d / "pes.parquet"), workers=1, progress=False).table
    return spec, t[t["status"] == "ok"]


def test_a_point_is_predicted_again_as_the_sweep_priced_it(swept):
    spec, t = swept
    for _, row in t.iloc[[0, 4, 8]].iterrows():
        assert _prediction(spec, row)[0].e2e_s == pytest.approx(float(row["e2e_s"]), rel=1e-9)


@pytest.mark.parametrize("metric,sense", [("usd_per_mtok_output", "min"), ("output_tok_s", "max")])
def test_top_by_the_slow_end_equals_pricing_every_point(swept, metric, sense):
    spec, t = swept
    best = rank_pessimistic(spec, t, metric, sense, 0.8, 3)
    every = t.assign(slow=t[metric] * np.array([slow_end_ratio(spec, r, metric, 0.8) for _, r in t.iterrows()]))
    want = every.sort_values("slow", ascending=sense == "min").head(3)
    assert list(best.index) == list(want.index)
    assert np.allclose(best[f"{metric}_slow"], want["slow"])
    # the slow end is never better than the point (the intervals contain it)
    r = best["slow_end_ratio"]
    assert (r >= 1).all() if sense == "min" else (r <= 1).all()


def test_pessimistic_needs_a_metric_with_an_interval(swept):
    spec, t = swept
    with pytest.raises(SpecError):
        rank_pessimistic(spec, t, "mfu", "max", 0.8, 3)
