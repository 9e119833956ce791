"""The GPU probes (sim/validation/measure/probes.py) where no GPU is needed, and the H100 SXM set they wrote."""

import gzip
import json
import os

import numpy as np
import pytest

from sim.validation import measure as M
from sim.validation.measure import probes as P


def _walk(a, start=0):
    seen, p = set(), start
    while p not in seen:
        seen.add(p)
        p = int(a[p])
    return seen, p


@pytest.mark.parametrize("footprint,line", [(128 * 64, 128), (4096, 64), (128, 128)])
def test_chase_array_is_one_cycle_over_every_line(footprint, line):
    np.random.seed(3)
    a, nodes = P._chase_array(np, footprint, line=line)  # numpy stands in for CuPy: the same calls
    assert nodes == footprint // line and a.size == footprint // 4
    seen, back = _walk(a)
    assert back == 0  # the chase starts at index 0 and returns to it
    assert seen == {i * (line // 4) for i in range(nodes)}  # every line start, each once, nothing else


def test_shape_lists():
    shapes = P.gemm_trace_shapes()
    assert len(shapes) == len(P.GEMM_TRACE_M) * len(P.GEMM_TRACE_NK) + len(P.GEMM_TRACE_SQUARE)
    att = P.attention_shapes(4096)
    assert {s["head_dim"] for s in att} == {64, 128, 256}
    for s in att:  # the same model width at every head_dim, a quarter of the heads KV heads
        assert s["heads"] * s["head_dim"] == 4096 and s["kv_heads"] * 4 == s["heads"]
        assert (s["phase"] == "decode") == (s["seqlen_q"] == 1) and s["causal"] == (s["phase"] == "prefill")
    names = [w[0] for w in P.load_workloads(None)]
    assert len(names) == len(set(names))


def test_results_file_is_rewritten_and_merged(tmp_path):
    path = str(tmp_path / "probes.json")
    r = P.Results(path)
    r.put("environment", {"device": "x"})
    r.put("chase", {"rows": [1]})
    r2 = P.Results(path)  # a second run into the same folder keeps the first run's probes
    r2.put("load", {"runs": []})
    data = json.load(open(path))
    assert set(data["probes"]) == {"environment", "chase", "load"}
    assert not os.path.exists(path + ".tmp")


def test_bad_probe_name_and_no_torch_exit_2(capsys, tmp_path):
    assert P.main(["--out", str(tmp_path), "--only", "clock,warp"]) == 2
    assert "unknown probe warp" in capsys.readouterr().err
    for flag, v in (("--seconds", "nan"), ("--seconds", "-1"), ("--attention-budget", "0")):
        assert P.main(["--out", str(tmp_path), "--only", "clock", flag, v]) == 2
        assert f"{flag}: give seconds above 0" in capsys.readouterr().err
    try:
        import torch  # noqa: F401
    except Exception:  # noqa: BLE001
        assert P.main(["--out", str(tmp_path), "--only", "chase"]) == 2
        assert "need torch" in capsys.readouterr().err


def test_shipped_h100_set_loads_cleanly():
    df = M.load_measurements("h100-sxm-own")
    assert df.attrs["counts"]["bad"] == 0 and len(df) == 428
    assert (df.hardware == "h100-sxm").all()
    assert {"gemm", "attention", "memcpy", "elementwise", "norm"} <= set(df.op)
    att = M.load_measurements("h100-sxm-own-attention")
    assert att.attrs["counts"]["bad"] == 0 and set(att.variant) == {"flash", "cudnn", "efficient:kv-repeated"}


def test_shipped_probe_figures_are_what_the_readme_says():
    d = json.load(open(os.path.join(M.DATA_DIR, "h100-sxm", "probes.json")))["probes"]
    assert d["environment"]["device"] == "NVIDIA H100 80GB HBM3"
    bf16 = next(r for r in d["clock"]["runs"] if r["dtype"] == "bf16")
    assert 790 < bf16["tflops_first_replay"] < 800 and 675 < bf16["tflops_median_late"] < 685
    assert bf16["sm_mhz_median_late"] == 1365 and bf16["throttle_reasons_late"] == ["0x4"]
    mix = next(r for r in d["load"]["runs"] if r["name"].startswith("bf16 mix"))
    assert mix["sm_mhz_median_late"] == 1905
    assert 3100 < d["stream"]["read_sum"]["gbyte_per_s"] < 3130
    with gzip.open(os.path.join(M.DATA_DIR, "h100-sxm", "gemm_trace.json.gz"), "rt") as f:
        trace = json.load(f)
    assert any(e.get("cat") == "kernel" for e in trace["traceEvents"])


def test_validation_report_section_4f_scores_the_own_set():
    from reports.validation_own import M_BANDS, own_gpu_section
    from reports.validation_report import _Doc

    doc, facts = _Doc(), {}
    own_gpu_section(doc, facts)
    text = doc.text()
    assert "4f. llmsim's own H100 SXM measurements (development set)" in text
    f = facts["own_h100"]
    assert f["kernels"][-1]["case"] == "all" and f["kernels"][-1]["n"] == 428
    assert f["attention"][-1]["n"] == 72
    gemm = {r["case"]: r for r in f["kernels"]}
    assert {"gemm bf16", "gemm fp16", "gemm tf32", "gemm fp32", "gemm fp8_e4m3"} <= set(gemm)
    assert sum(gemm[c]["n"] for c in gemm if c.startswith("gemm")) == 360
    assert [b for b in f["gemm_bands"][0] if b != "dtype"] == [name for _, _, name in M_BANDS]
    assert "TB/s" in text and "GHz" in text  # the probe paragraph read probes.json, through the formatters


def test_sm_probe_work_per_iteration_by_hand():
    from sim.validation.measure import probe_sm as S

    # one mma.sync.m16n8k16 is 2 x 16 x 8 x 16 = 4096 FLOPs per warp, 128 per thread; the kernel issues 4 a loop
    assert S.KERNELS["mma_sync_bf16"] == (512, "FLOP") and S.KERNELS["mma_sync_fp16"] == (512, "FLOP")
    assert S.KERNELS["ffma"] == (16, "FLOP")  # 8 FMAs
    assert S.KERNELS["lds128"] == (64, "B")  # 4 loads of 16 bytes
    assert {"sm", "norm_trace", "gemm_burst"} <= set(P.PROBES)
    for name in S.KERNELS:  # every kernel the table names is in the source, with C linkage
        assert f"void {name}(" in S._SRC or f"MMA_KERNEL({name}," in S._SRC
