"""llmsim measure: timing helpers, the CPU path on tiny shapes, the CLI contract, the loader.

No test asserts a timing of this machine: times are only checked to be positive.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from hwmodels.errors import SpecError
from llmsim.cli import main
from llmsim.commands.measure import main as measure_main
from sim.validation import measure as M
from sim.validation.measure import numpy_kernels, timing

# -- timing -------------------------------------------------------------------------------------


class FakeClock:
    """A clock that moves only when the timed function runs: each call takes the next duration."""

    def __init__(self, durations):
        self.now = 0.0
        self.durations = list(durations)
        self.calls = 0

    def __call__(self):
        return self.now

    def fn(self):
        self.now += self.durations[min(self.calls, len(self.durations) - 1)]
        self.calls += 1


def test_time_callable_median_and_spread_on_fake_clock():
    clk = FakeClock([10.0, 1.0, 2.0, 3.0, 4.0, 5.0])  # first call is the warm-up
    t = M.time_callable(clk.fn, clock=clk, warmup=1, target_s=0.0, min_reps=5, max_reps=5)
    assert t.median_s == 3.0
    assert t.reps == 5 and t.calls_per_rep == 1
    assert t.p10_s == pytest.approx(1.4) and t.p90_s == pytest.approx(4.6)
    assert t.spread == pytest.approx((4.6 - 1.4) / 3.0)
    assert t.min_s == 1.0
    assert clk.calls == 6


def test_time_callable_stops_at_target_time_or_max_reps():
    clk = FakeClock([0.25])
    t = M.time_callable(clk.fn, clock=clk, warmup=1, target_s=1.0, min_reps=3, max_reps=1000)
    assert t.reps == 4 and t.spread == 0.0  # 4 x 0.25 s reaches the 1 s target
    clk = FakeClock([0.1])
    t = M.time_callable(clk.fn, clock=clk, warmup=1, target_s=100.0, min_reps=3, max_reps=7)
    assert t.reps == 7


def test_time_callable_batches_short_calls_into_samples():
    clk = FakeClock([1e-6])
    t = M.time_callable(clk.fn, clock=clk, warmup=1, target_s=0.0, min_reps=4, max_reps=4, min_sample_s=1e-4)
    assert t.calls_per_rep == 100
    assert t.median_s == pytest.approx(1e-6)
    assert clk.calls == 1 + 4 * 100


def test_summarize_samples():
    t = M.summarize_samples([2.0, 2.0, 2.0], calls_per_rep=3)
    assert (t.median_s, t.spread, t.reps, t.calls_per_rep) == (2.0, 0.0, 3, 3)
    with pytest.raises(ValueError):
        M.summarize_samples([])


# -- a fake torch to exercise the CUDA timing path without a GPU --------------------------------


def _fake_torch(capture_fails=False):
    clock = {"t": 0.0}

    class Event:
        def __init__(self, enable_timing=False):
            self.t = None

        def record(self):
            self.t = clock["t"]

        def synchronize(self):
            pass

        def elapsed_time(self, other):
            return (other.t - self.t) * 1e3  # ms

    class Ctx:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    class Graph:
        def __init__(self):
            self.calls = 0

        def replay(self):
            clock["t"] += self.calls * 2e-6

    state = {"graph": None, "capturing": False}

    class GraphCtx(Ctx):
        def __init__(self, g):
            state["graph"] = g

        def __enter__(self):
            if capture_fails:
                raise RuntimeError("capture not supported")
            state["capturing"] = True
            return self

        def __exit__(self, *a):
            state["capturing"] = False
            return False

    class Stream:
        def wait_stream(self, other):
            pass

    cuda = types.SimpleNamespace(
        Event=Event, Stream=Stream, stream=lambda s: Ctx(), current_stream=lambda: Stream(),
        synchronize=lambda: None, CUDAGraph=Graph, graph=GraphCtx, empty_cache=lambda: None,
        is_available=lambda: False,
    )
    matmul = types.SimpleNamespace(fp32_precision="ieee")
    torch = types.SimpleNamespace(cuda=cuda, backends=types.SimpleNamespace(cuda=types.SimpleNamespace(matmul=matmul)),
                                  __version__="0.0-fake", version=types.SimpleNamespace(cuda=None))

    def kernel_call(i):
        if state["capturing"]:
            state["graph"].calls += 1
        else:
            clock["t"] += 2e-6

    return torch, kernel_call, matmul


@pytest.mark.parametrize("capture_fails", [False, True])
def test_cuda_timing_path_with_fake_torch(capture_fails):
    torch, call, matmul = _fake_torch(capture_fails)
    kern = M.Kernel(call, ncopies=4)
    kern.tf32 = True
    s = M.Settings(target_s=0.0, min_reps=5, max_reps=5, warmup=1, min_sample_s=1e-3)
    t = timing._cuda_time(torch, kern, s)
    assert t.median_s == pytest.approx(2e-6)
    assert t.calls_per_rep == 500  # 1 ms / 2 us
    assert t.reps == 5
    assert matmul.fp32_precision == "ieee"  # tf32 switched back off


# -- the CPU path ---------------------------------------------------------------------------------


def test_tiny_cpu_suite_writes_documented_columns(tmp_path):
    cases = M.build_cases("cpu", "tiny", use_torch=False)
    assert {c.row["op"] for c in cases} == {"gemm", "attention", "memcpy", "elementwise", "norm"}
    out = tmp_path / "tiny.csv"
    sink = M.CsvSink(str(out))
    summary = M.run_measurements(cases, sink, device="cpu", hardware="test-cpu", suite="tiny", log=lambda m: None)
    sink.close()
    assert summary["failed"] == 0 and summary["rows"] == len(cases)
    raw = pd.read_csv(out)
    assert list(raw.columns) == M.CSV_COLUMNS
    df = M.load_measurements(str(out))
    assert df.attrs["counts"]["bad"] == 0, df.loc[df.error != "", "error"].tolist()
    assert (df["measured_time_s"] > 0).all()
    assert (df["reps"] >= 1).all()
    assert (df["hardware"] == "test-cpu").all()
    g = df[df.op == "gemm"]
    assert set(zip(g.m, g.n, g.k)) == {(1, 32, 48), (16, 32, 48)}
    a = df[df.op == "attention"]
    assert set(a.phase) == {"prefill", "decode"} and set(a.kernel) == {"naive"}
    assert bool(a[a.phase == "prefill"].causal.iloc[0]) is True
    mc = df[df.op == "memcpy"]
    assert (mc["bytes"] == 2 * (1 << 16)).all()  # bytes moved = read + write
    assert all(df.shape_id.str.len() > 0)


def test_numpy_attention_matches_a_reference():
    """The naive CPU attention (GQA, causal) computes softmax(QK^T/sqrt(d))V per head."""
    sh = {"phase": "prefill", "batch": 1, "heads": 4, "kv_heads": 2, "head_dim": 8, "seqlen_q": 5, "seqlen_kv": 5, "causal": True}
    k = numpy_kernels._np_attention(sh, M.Settings(cold_bytes=0))
    q, kk, v = k.keep[0][0]
    out = k.call(0).reshape(1, 2, 2, 5, 8)
    qh = q.reshape(1, 2, 2, 5, 8)
    for kvh in range(2):
        for g in range(2):
            s = qh[0, kvh, g] @ kk[0, kvh].T / np.sqrt(8)
            s[np.triu_indices(5, 1)] = -np.inf
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            np.testing.assert_allclose(out[0, kvh, g], p @ v[0, kvh], rtol=1e-4, atol=1e-5)


def test_inputs_are_random_not_zero():
    x = numpy_kernels._np_randn((3 * (1 << 20) + 5,))
    assert x.std() > 0.5 and np.count_nonzero(x) > 0.99 * x.size


def test_cli_measure_cpu_tiny_writes_csv_and_env(tmp_path, capsys):
    out = tmp_path / "m.csv"
    rc = main(["measure", "--device", "cpu", "--suite", "tiny", "--out", str(out), "--no-torch",
               "--hardware", "my-cpu"])
    assert rc == 0
    df = M.load_measurements(str(out))
    assert df.attrs["counts"]["bad"] == 0 and len(df) > 0
    env = json.loads((tmp_path / "m.env.json").read_text())
    for key in ("date_utc", "llmsim_version", "device", "suite", "hardware", "command_line", "numpy", "cpu",
                "blas", "summary", "timing"):
        assert key in env, key
    assert env["hardware"] == "my-cpu" and env["suite"] == "tiny"
    assert env["summary"]["rows"] == len(df)
    assert "logical_cpus" in env["cpu"]
    assert "hostname" not in json.dumps(env).lower()
    err = capsys.readouterr().err
    assert "[measure]" in err


def test_cli_measure_dry_run_lists_cases(capsys):
    assert main(["measure", "--device", "cpu", "--suite", "quick", "--dry-run", "--no-torch"]) == 0
    out = capsys.readouterr().out
    assert "gemm fp32 (numpy)" in out and "total:" in out


def test_cuda_suite_plan_without_torch():
    """The CUDA full suite is planned without importing torch; its size keeps it to minutes."""
    cases = M.build_cases("cuda", "full", torch_caps={"gemm_dtypes": ["bf16", "fp16", "tf32", "fp32", "fp8_e4m3"]})
    ops = {c.row["op"] for c in cases}
    assert ops == {"gemm", "attention", "memcpy", "elementwise", "norm"}
    gemm = [c for c in cases if c.row["op"] == "gemm"]
    assert {c.row["m"] for c in gemm} >= {1, 16, 128, 8192}
    assert {c.row["dtype"] for c in gemm} == {"bf16", "fp16", "tf32", "fp32", "fp8_e4m3"}
    assert len(cases) < 500
    assert "torch" not in sys.modules or hasattr(sys.modules["torch"], "cuda")


def _cuda_really_available():
    try:
        import torch
    except Exception:  # noqa: BLE001
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(_cuda_really_available(), reason="a CUDA device is present")
def test_cli_measure_cuda_without_cuda_exits_2(tmp_path, capsys):
    out = tmp_path / "gpu.csv"
    rc = main(["measure", "--device", "cuda", "--suite", "full", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "error:" in err and "--device cuda" in err
    assert ("torch is not importable" in err) or ("no CUDA device" in err)
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_measure_cuda_with_cpu_only_torch_exits_2(monkeypatch, capsys):
    torch, _, _ = _fake_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    rc = main(["measure", "--device", "cuda"])
    assert rc == 2
    assert "sees no CUDA device" in capsys.readouterr().err


def test_gpu_names_map_to_catalog():
    cases = {
        "NVIDIA H100 80GB HBM3": "h100-sxm",
        "NVIDIA H100 PCIe": "h100-pcie",
        "NVIDIA A100-SXM4-80GB": "a100-sxm",
        "NVIDIA H200": "h200",
        "NVIDIA L4": "l4",
        "NVIDIA L40S": "l40s",
        "NVIDIA GeForce RTX 4090": "geforce-rtx-4090",
    }
    for name, want in cases.items():
        assert M.catalog_name_for_gpu(name) == want, name


def test_shape_ids():
    assert M.shape_id({"op": "gemm", "m": 4, "n": 8, "k": 16}) == "gemm:m=4,n=8,k=16"
    assert M.shape_id({"op": "gemm", "m": 4, "n": 8, "k": 16, "batch": 2}) == "gemm:m=4,n=8,k=16,batch=2"
    assert M.shape_id({"op": "allreduce", "bytes": 1024, "num_devices": 8}) == "allreduce:bytes=1024,num_devices=8"
    assert M.shape_id({"op": "norm", "m": 3, "n": 4096}) == "norm:m=3,n=4096"
    assert M.shape_id({"op": "elementwise", "numel": 10, "inputs": 2}).startswith("elementwise:numel=10,inputs=2,")
    assert M.shape_id({"op": "attention", "phase": "decode", "batch": 1, "heads": 32, "kv_heads": 8, "head_dim": 128,
                           "seqlen_q": 1, "seqlen_kv": 100, "causal": "False"}).endswith("causal=0")


# -- the loader -----------------------------------------------------------------------------------

_GOOD = {"hardware": "h100-sxm", "dtype": "bf16", "measured_time_s": 1e-5, "spread": 0.01, "reps": 10}


def _write(tmp_path, rows, name="x.csv"):
    p = tmp_path / name
    pd.DataFrame(rows).to_csv(p, index=False)
    return str(p)


def test_bad_rows_are_flagged_with_reasons(tmp_path):
    rows = [
        dict(op="gemm", m=1, n=2, k=3, **_GOOD),  # ok
        dict(op="conv2d", m=1, n=2, k=3, **_GOOD),  # unknown op
        dict(op="gemm", n=2, k=3, **_GOOD),  # missing m
        {**dict(op="gemm", m=1, n=2, k=3, **_GOOD), "measured_time_s": 0},
        {**dict(op="gemm", m=1, n=2, k=3, **_GOOD), "measured_time_s": -1e-3},
        {**dict(op="gemm", m=1, n=2, k=3, **_GOOD), "measured_time_s": float("nan")},
        dict(op="attention", phase="middle", batch=1, heads=4, kv_heads=3, head_dim=8, seqlen_q=1, seqlen_kv=9,
             causal="maybe", **_GOOD),
        dict(op="memcpy", bytes=2.5, **_GOOD),
        dict(op="allreduce", bytes=1024, num_devices=1, **_GOOD),
        {**dict(op="norm", m=8, n=64, **_GOOD), "dtype": "fp7"},
        {**dict(op="elementwise", numel=10, **_GOOD), "hardware": ""},
    ]
    df = M.load_measurements(_write(tmp_path, rows))
    err = df["error"].tolist()
    assert err[0] == ""
    assert "unknown op 'conv2d'" in err[1]
    assert "missing m" in err[2]
    assert "non-positive measured_time_s" in err[3] and "non-positive measured_time_s" in err[4]
    assert "missing measured_time_s" in err[5]
    assert "bad phase" in err[6] and "bad causal" in err[6] and "heads not a multiple of kv_heads" in err[6]
    assert "bad bytes" in err[7]
    assert "num_devices < 2" in err[8]
    assert "unknown dtype 'fp7'" in err[9]
    assert "missing hardware" in err[10]
    c = df.attrs["counts"]
    assert c["rows"] == 11 and c["ok"] == 1 and c["bad"] == 10
    assert c["by_reason"]["non-positive measured_time_s"] == 2


def test_missing_shape_column_flags_rows_of_that_op_only(tmp_path):
    rows = [dict(op="gemm", m=1, n=2, **_GOOD), dict(op="memcpy", bytes=64, **_GOOD)]
    df = M.load_measurements(_write(tmp_path, rows))
    assert df["error"].tolist() == ["missing k", ""]


def test_optional_columns_get_defaults(tmp_path):
    rows = [dict(op="gemm", m=1, n=2, k=3, **_GOOD), dict(op="elementwise", numel=10, **_GOOD)]
    df = M.load_measurements(_write(tmp_path, rows))
    assert df.loc[0, "batch"] == 1 and df.loc[1, "inputs"] == 1 and df.loc[1, "outputs"] == 1
    assert df.loc[1, "flops_per_element"] == 1.0
    assert pd.isna(df.loc[1, "batch"])  # defaults only for the ops that use the column


def test_malformed_files_raise_spec_error_naming_the_file(tmp_path):
    binary = tmp_path / "blob.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 10)
    no_op = tmp_path / "noop.csv"
    no_op.write_text("hardware,m,n,k\nh100-sxm,1,2,3\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for p in (binary, no_op, empty, tmp_path / "absent.csv"):
        with pytest.raises(SpecError) as ei:
            M.load_measurements(str(p))
        assert str(p) in str(ei.value)


def test_unknown_builtin_name_lists_the_builtins():
    with pytest.raises(SpecError) as ei:
        M.load_measurements("vidur-b200")
    assert "vidur-a100" in str(ei.value)


def test_shipped_cpu_measurements_load_cleanly():
    sets = M.builtin_measurements()
    if "host-cpu-xeon-2vcpu" not in sets:
        pytest.skip("CPU measurement not shipped")
    df = M.load_measurements("host-cpu-xeon-2vcpu")
    assert df.attrs["counts"]["bad"] == 0
    assert (df.measured_time_s > 0).all()
    assert {"gemm", "attention", "memcpy", "elementwise", "norm"} <= set(df.op)
    assert (df.hardware == "host-cpu-xeon-2vcpu").all()


def test_module_entry_point(tmp_path):
    out = tmp_path / "e.csv"
    assert measure_main(["--suite", "tiny", "--out", str(out), "--no-torch"]) == 0
    assert out.exists() and (tmp_path / "e.env.json").exists()


def test_environment_helpers():
    from sim.validation import environment as E

    assert E.env_path_for("a/b.csv") == "a/b.env.json"
    info = E.blas_info()
    assert "thread_env" in info
    start = E.cpu_busy_seconds()
    if start is not None:  # Linux
        assert E.other_cpu_seconds(start) >= 0.0


def test_buffer_sizes_of_several_gib_load_and_absurd_ones_are_flagged(tmp_path):
    """A byte count is a buffer size, not a 32-bit index: nccl-tests' 8 GiB all-reduce loads (it used
    to be flagged 'bad bytes' above 2**31); a count beyond 2**50 bytes is flagged, in the measured-CSV
    loader and in `llmsim ops` alike."""
    from sim.ops import predict_ops
    from sim.validation.measure.csvformat import MAX_COUNT

    p = tmp_path / "m.csv"
    p.write_text("hardware,op,dtype,bytes,num_devices,measured_time_s\n"
                 f"hgx-h100-8,allreduce,fp32,{8 * 2**30},8,0.031\n"
                 f"hgx-h100-8,allreduce,fp32,{MAX_COUNT * 2},8,0.031\n")
    df = M.load_measurements(str(p))
    errors = df["error"].fillna("").tolist()
    assert errors[0] == "" and int(df["bytes"].iloc[0]) == 8 * 2**30
    assert "bad bytes" in errors[1]
    q = pd.DataFrame({"hardware": ["hgx-h100-8"] * 2, "op": ["allreduce"] * 2, "dtype": ["fp32"] * 2,
                      "bytes": [8.0 * 2**30, 1e30], "num_devices": [8, 8]})
    out = predict_ops(q)
    assert out["error"].iloc[0] in ("", None) or pd.isna(out["error"].iloc[0])
    assert out["time_s"].iloc[0] > 0
    assert "over the largest allowed" in out["error"].iloc[1]
