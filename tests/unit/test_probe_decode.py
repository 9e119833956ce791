"""The decode-floor GPU probe (sim/validation/measure/probe_decode.py) where no GPU is needed: its shapes, its
single-call timing with a stand-in for torch's CUDA events, and its rows as the per-kernel CSV readers and
`llmsim ops` take them."""

import pandas as pd
import pytest

from sim.ops import predict_ops
from sim.validation.measure import probe_decode as D
from sim.validation.measure import probes as P
from sim.validation.measure.csvformat import CSV_COLUMNS, CsvSink, shape_id
from sim.validation.measure.load import load_measurements


def test_shapes_cover_every_group_and_context_once():
    shapes = D.decode_floor_shapes()
    assert len(shapes) == len(D.DECODE_FLOOR_GROUPS) * len(D.DECODE_FLOOR_KV)
    assert len({(s["batch"], s["heads"], s["kv_heads"], s["seqlen_kv"]) for s in shapes}) == len(shapes)
    for s in shapes:
        assert s["phase"] == "decode" and s["seqlen_q"] == 1 and not s["causal"]
        assert s["heads"] % s["kv_heads"] == 0 and s["head_dim"] == 128
    assert min(s["seqlen_kv"] for s in shapes) == 32  # the short end, where the published floor shows


class _Event:
    """A CUDA event whose elapsed time (ms) comes from a script, as torch.cuda.Event.elapsed_time returns it."""

    script: list = []

    def __init__(self, enable_timing=False):
        pass

    def record(self):
        pass

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return _Event.script.pop(0)


class _Cuda:
    Event = _Event
    syncs = 0

    @classmethod
    def synchronize(cls):
        cls.syncs += 1


class _Torch:
    cuda = _Cuda


def test_single_times_bracket_one_call_each_and_flush_before_it():
    calls, flushes = [], []
    _Event.script = [0.020, 0.021, 0.019]  # ms
    ts = D._single_times(_Torch, lambda: calls.append(len(flushes)), 3, flush=lambda: flushes.append(1))
    assert ts == pytest.approx([20e-6, 21e-6, 19e-6], rel=1e-12)  # ms -> s
    assert calls == [1, 2, 3]  # each call after its own flush
    med, spread, n, per = D._summary(ts)
    assert med == pytest.approx(20e-6, rel=1e-12) and (n, per) == (3, 1)
    assert abs(spread - (21e-6 - 19e-6) / 20e-6) < 1e-12


def test_rows_read_back_and_price(tmp_path):
    """A row as the probe writes it is a good per-kernel CSV row, and `llmsim ops` prices it with the timed
    kernel's facts (kernel_profile)."""
    path = tmp_path / "decode_floor.csv"
    sink = CsvSink(str(path), CSV_COLUMNS + ["kernel_profile"])
    for sh, (variant, prof) in zip(D.decode_floor_shapes()[:2], (("sdpa-fa2:cold", "torch_fa2"),
                                                                  ("fa2-paged:graph", "fa2"))):
        row = dict(op="attention", dtype="bf16", kernel="flash", name="decode-floor", variant=variant, **sh,
                   kernel_profile=prof, hardware="h100-sxm", measured_time_s=20e-6, spread=0.05, reps=50,
                   calls_per_rep=1, source="llmsim-probes:decode_floor")
        row["shape_id"] = shape_id(row)
        sink.write(row)
    sink.close()
    df = load_measurements(str(path))
    assert (df["error"] == "").all() and len(df) == 2
    out = predict_ops(pd.read_csv(path))
    assert (out["error"].fillna("") == "").all()
    assert (out["time_s"] > 0).all()


def test_probe_is_registered():
    assert "decode_floor" in P.PROBES
