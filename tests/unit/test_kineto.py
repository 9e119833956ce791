"""Kineto (PyTorch profiler) trace import on a hand-built synthetic H100 trace."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hwmodels.errors import SpecError
from llmsim.cli import main
from sim.validation import kineto as K
from sim.validation import measure as M

TRACE = Path(__file__).resolve().parents[1] / "data" / "kineto" / "synthetic_h100_trace.json"


@pytest.fixture(scope="module")
def imp():
    return K.import_kineto(str(TRACE))


def _mapped(imp):
    return imp.kernels[imp.kernels.op != ""]


def test_hardware_from_device_properties(imp):
    assert imp.mode == "gpu" and imp.hardware == "h100-sxm"
    assert K.import_kineto(str(TRACE), hardware="my-gpu").hardware == "my-gpu"


def test_gemm_shapes_and_durations(imp):
    g = _mapped(imp)
    g = g[g.op == "gemm"]
    got = {(int(r.m), int(r.n), int(r.k)): (round(r.measured_time_s * 1e6, 3), int(r.kernels)) for r in g.itertuples()}
    assert got == {
        (512, 12288, 4096): (85.5, 1),  # aten::linear -> matmul -> mm: linked by External id
        (512, 4096, 4096): (30.25, 1),  # aten::addmm: linked only by the ac2g flow
        (16, 4096, 4096): (11.0, 2),  # split-K GEMM + reduce kernel: one row, durations summed
        (4, 4096, 4096): (12.0, 1),  # decode GEMV in step 2
    }
    assert set(g.dtype) == {"bf16"}
    assert set(g.cpu_op) == {"aten::mm", "aten::addmm"}
    split = g[g.kernels == 2].iloc[0]
    assert "splitKreduce" in split["name"] and " + " in split["name"]


def test_attention_elementwise_norm_memcpy_collective(imp):
    m = _mapped(imp).set_index("cpu_op", drop=False)
    att = m[m.op == "attention"].sort_values("ts_us")
    pre, dec = att.iloc[0], att.iloc[1]
    assert (pre.phase, pre.batch, pre.heads, pre.kv_heads, pre.head_dim, pre.seqlen_q, pre.seqlen_kv) == \
        ("prefill", 4, 32, 8, 128, 128, 128)
    assert bool(pre.causal) is True and pre.kernel == "flash"
    assert pre.measured_time_s == pytest.approx(52e-6)
    assert (dec.phase, dec.seqlen_q, dec.seqlen_kv, bool(dec.causal)) == ("decode", 1, 1024, False)
    ew = m[m.op == "elementwise"].set_index("cpu_op")
    assert (ew.loc["aten::silu", "numel"], ew.loc["aten::silu", "inputs"]) == (512 * 11008, 1)
    assert ew.loc["aten::silu", "flops_per_element"] == 4
    assert (ew.loc["aten::add", "numel"], ew.loc["aten::add", "inputs"]) == (512 * 4096, 2)
    norm = m[m.op == "norm"].iloc[0]  # pow + mean + mul kernels under aten::rms_norm
    assert (norm.m, norm.n, norm.kernels, norm.variant) == (512, 4096, 3, "rmsnorm")
    assert norm.measured_time_s == pytest.approx(15e-6)
    mc = m[m.op == "memcpy"].iloc[0]
    assert mc["bytes"] == 2 * 4194304 and mc["dtype"] == "bf16"
    ar = m[m.op == "allreduce"].iloc[0]
    assert (ar["bytes"], ar.num_devices, ar["dtype"]) == (1048576 * 2, 8, "bf16")


def test_unmapped_kernels_are_kept_with_a_reason(imp):
    u = imp.kernels[imp.kernels.op == ""]
    assert len(u) == 2
    assert any("aten::topk" in r for r in u.unmapped)
    assert "memset" in set(u.unmapped)


def test_step_summary(imp):
    s = imp.steps.set_index("step")
    assert list(s.index) == [1, 2]
    assert s.loc[1, "wall_s"] == pytest.approx(1e-3)
    assert s.loc[1, "kernels"] == 12 and s.loc[2, "kernels"] == 4
    assert s.loc[1, "gemm_s"] == pytest.approx((85.5 + 30.25 + 11.0) * 1e-6)
    assert s.loc[1, "unmapped_time_s"] == pytest.approx(9e-6)
    assert s.loc[2, "allreduce_s"] == pytest.approx(25e-6)
    total = imp.kernels.groupby("step").measured_time_s.sum()
    assert s.loc[1, "kernel_time_s"] == pytest.approx(total.loc[1])


def test_written_csv_loads_cleanly(imp, tmp_path):
    out = tmp_path / "k.csv"
    K.write_csv(imp.kernels, str(out))
    df = M.load_measurements(str(out))
    assert df.attrs["counts"]["bad"] == 0, df.error.tolist()
    assert len(df) == len(_mapped(imp))
    assert set(df.source) == {"kineto:synthetic_h100_trace.json"}


def test_aggregate_takes_median_per_shape(imp):
    doubled = pd.concat([imp.kernels, imp.kernels.assign(measured_time_s=imp.kernels.measured_time_s * 3)])
    agg = K.aggregate(doubled)
    assert len(agg) == len(_mapped(imp))
    assert (agg.reps == 2).all()
    r = agg[agg.shape_id == "gemm:m=4,n=4096,k=4096"].iloc[0]
    assert r.measured_time_s == pytest.approx(24e-6)  # median of 12 and 36 us


def test_cli_kineto_import(tmp_path, capsys):
    out = tmp_path / "trace.csv"
    assert main(["measure", "--kineto", str(TRACE), "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "trace.steps.csv").exists()
    assert "mapped to llmsim ops" in capsys.readouterr().err


def test_cpu_trace_uses_innermost_known_ops(tmp_path):
    ev = [
        {"ph": "X", "cat": "cpu_op", "name": "aten::linear", "pid": 1, "tid": 1, "ts": 0.0, "dur": 100.0,
         "args": {"External id": 1, "Input Dims": [[64, 128], [256, 128], []], "Input type": ["float", "float", ""]}},
        {"ph": "X", "cat": "cpu_op", "name": "aten::matmul", "pid": 1, "tid": 1, "ts": 5.0, "dur": 90.0,
         "args": {"External id": 2, "Input Dims": [[64, 128], [128, 256]], "Input type": ["float", "float"]}},
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 6.0, "dur": 80.0,
         "args": {"External id": 3, "Input Dims": [[64, 128], [128, 256]], "Input type": ["float", "float"]}},
        {"ph": "X", "cat": "cpu_op", "name": "aten::relu", "pid": 1, "tid": 1, "ts": 120.0, "dur": 10.0,
         "args": {"External id": 4, "Input Dims": [[64, 256]], "Input type": ["float"]}},
    ]
    p = tmp_path / "cpu.json"
    p.write_text(json.dumps({"traceEvents": ev}))
    imp = K.import_kineto(str(p), hardware="host-cpu-xeon-2vcpu")
    assert imp.mode == "cpu"
    k = imp.kernels
    assert len(k) == 2
    g = k[k.op == "gemm"].iloc[0]
    assert (g.m, g.n, g.k, g["dtype"], g.cpu_op) == (64, 256, 128, "fp32", "aten::mm")
    assert g.measured_time_s == pytest.approx(80e-6)


@pytest.mark.parametrize("text", ["not json", "{\"foo\": 1}", "[1, 2"])
def test_malformed_traces_raise_spec_error(tmp_path, text):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(SpecError) as ei:
        K.import_kineto(str(p))
    assert str(p) in str(ei.value)
