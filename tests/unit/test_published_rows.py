"""The published end-to-end tables: the loaders' checks (file, row, field), the offline-serving scoring
path (the one ``llmsim serve --rate inf`` takes) and the groups the validation report breaks errors down
by. The fixture tests/data/published/serving-tiny.csv has three made-up rows a reader can check."""

import math
from pathlib import Path

import pytest

from hwmodels.errors import SpecError

HERE = Path(__file__).resolve().parents[1]
TINY = str(HERE / "data" / "published" / "serving-tiny.csv")


def test_shipped_tables_load_with_a_source_on_every_row():
    from sim.validation.published import SERVING_METRICS, load_e2e, load_serving

    e2e, srv = load_e2e(), load_serving()
    assert len(e2e) >= 60 and len(srv) >= 6
    for df in (e2e, srv):
        assert (df["source"].str.strip() != "").all() and (df["measured"] > 0).all()
    assert set(srv["metric"]) <= set(SERVING_METRICS)


def test_bad_rows_are_located_by_file_row_and_field(tmp_path):
    from sim.validation.published import load_e2e, load_serving

    src = Path(TINY).read_text().splitlines()
    bad = src[1].replace("qwen2.5-0.5b,h100-sxm,1,4,", "qwen2.5-0.5b,h100-sxm,0,4,").replace(",100,made", ",-1,made")
    p = tmp_path / "bad.csv"
    p.write_text("\n".join([src[0], src[2], bad.replace("request_throughput_rps", "req_s"),
                            src[2].replace("tests/data/published/serving-tiny.csv (a made-up row to check the "
                                           "scoring path)", "")]) + "\n")
    with pytest.raises(SpecError) as e:
        load_serving(str(p))
    msg = str(e.value)
    # each at its line and the field's column (the header: tp is column 3, metric 12, measured 13, source 17)
    assert f"{p}:3:3: row 3, field tp: expected a whole number >= 1, got '0'" in msg
    assert f"{p}:3:13: row 3, field measured: expected a positive number, got '-1'" in msg
    assert f"{p}:3:12: row 3, field metric: expected one of" in msg and "got 'req_s'" in msg
    assert f"{p}:4:17: row 4, field source" in msg
    assert "row 2," not in msg  # the good row is not blamed
    e2e = tmp_path / "e2e.csv"
    e2e.write_text("model,hardware,tp,batch,input_len,output_len,quant,metric,measured,source\n"
                   "llama-2-7b,a100-sxm,1,0,128,128,fp16,e2e_s,1.0,somewhere\n")
    with pytest.raises(SpecError, match=r"row 2, field batch: expected a whole number >= 1, got '0'"):
        load_e2e(str(e2e))
    (tmp_path / "short.csv").write_text("model,hardware\nx,y\n")
    with pytest.raises(SpecError, match="missing column"):
        load_serving(str(tmp_path / "short.csv"))


def test_serving_rows_are_simulated_as_llmsim_serve_rate_inf():
    from sim.predict import predict
    from sim.validation.published import load_serving, score_serving

    d = score_serving(load_serving(TINY))
    # row 1: max_num_seqs 1, so the requests run one after another: throughput = 1 / (one request's e2e),
    # and one request alone is the static predictor's batch of one
    one = predict("qwen2.5-0.5b", "h100-sxm", 1, 16, 8, stack="vllm").e2e_s
    assert d["predicted"].iloc[0] == pytest.approx(1.0 / one, rel=1e-9)
    m, p = d["measured"].iloc[0], d["predicted"].iloc[0]
    assert d["rel_error"].iloc[0] == pytest.approx(p / m - 1.0)
    assert d["time_rel_error"].iloc[0] == pytest.approx(m / p - 1.0)
    # row 2: the stack's limits batch the four requests together: more output tokens/s than one at a time
    assert d["predicted"].iloc[1] > 8 * d["predicted"].iloc[0]
    # row 3: a model the catalog lacks is kept, not predicted, with the reason
    assert math.isnan(d["predicted"].iloc[2]) and "no-such-model" in d["reason"].iloc[2]
    assert list(d["stack_used"]) == ["vllm"] * 3
    assert list(score_serving(load_serving(TINY).head(1), stack="ideal")["stack_used"]) == ["ideal"]


def test_model_family_and_breakdown_groups():
    import pandas as pd

    from reports.validation_stacks import _add_groups, breakdown, unpredictable
    from sim.validation.published import model_family

    assert [model_family(m) for m in ("llama-2-7b", "llama-3.1-8b", "mixtral-8x7b", "no-such-model")] == \
        ["MHA", "GQA", "MoE", "?"]
    t = pd.DataFrame({"model": ["llama-2-7b", "llama-2-7b", "mixtral-8x7b"], "hardware": ["hgx-a100-8", "a100-sxm", "h200"],
                      "tp": [1, 1, 2], "metric": ["e2e_s"] * 3, "x": [-0.1, -0.3, 0.2], "reason": ["", "", "why"]})
    _add_groups(t)
    assert list(t["gpu"]) == ["a100-sxm", "a100-sxm", "h200"]
    rows = {(r["by"], r["group"]): r for r in breakdown(t, ["x"])}
    assert rows[("gpu", "a100-sxm")]["n"] == 2 and rows[("gpu", "a100-sxm")]["bias"] == pytest.approx(-0.2)
    assert rows[("family", "MoE")]["ape"] == pytest.approx(0.2)
    assert unpredictable(t) == [{"case": "mixtral-8x7b on h200 tp2", "reason": "why"}]


def test_amd_row_selection_keeps_amd_hardware_only():
    """sim.validation.amd_rows scores the AMD rows alone: single chips and systems named after them
    (mi300x, mi300x-8), nothing else; the shipped tables hold the 13 MI300X serving rows and the 9
    static-batch rows."""
    import pandas as pd

    from sim.validation.amd_rows import _amd
    from sim.validation.published import load_e2e, load_serving

    df = pd.DataFrame({"hardware": ["mi300x", "mi300x-8", "h100-sxm", "mi355x", "hgx-h100-8", "mi325x-8"]})
    assert list(_amd(df)["hardware"]) == ["mi300x", "mi300x-8", "mi355x", "mi325x-8"]
    assert len(_amd(load_serving())) == 13 and len(_amd(load_e2e())) == 9
