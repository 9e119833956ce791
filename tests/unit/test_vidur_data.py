"""The Vidur converter (on tiny fixtures built here) and the shipped Vidur CSVs."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from hwmodels.errors import SpecError
from sim.validation import measure as M
from sim.validation import vidur as V

OPS = ["emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj", "post_attention_layernorm",
       "mlp_up_proj", "mlp_act", "mlp_down_proj", "add"]


def _mlp_csv(path, cfg: dict, rows: list[tuple[int, int]], ops=OPS):
    """A Vidur mlp.csv: time of op number i on row r is (i + 1 + r) * 0.01 ms (median), min/max +-10%."""
    recs = []
    for r, (tokens, tp) in enumerate(rows):
        rec = {}
        for i, op in enumerate(ops):
            med = (i + 1 + r) * 0.01
            rec.update({f"time_stats.{op}.min": med * 0.9, f"time_stats.{op}.max": med * 1.1,
                        f"time_stats.{op}.mean": med, f"time_stats.{op}.median": med,
                        f"time_stats.{op}.std": med * 0.05})
        rec.update(cfg)
        rec.update(num_tokens=tokens, num_tensor_parallel_workers=tp)
        recs.append(rec)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(recs).to_csv(path, index=False)
    return str(path)


LLAMA2_7B = {"n_head": 32, "n_kv_head": 32, "n_embd": 4096, "n_expanded_embd": 11008, "vocab_size": 32768, "use_gated_mlp": True}
LLAMA3_70B = {"n_head": 64, "n_kv_head": 8, "n_embd": 8192, "n_expanded_embd": 28672, "vocab_size": 128256, "use_gated_mlp": True}
PHI2 = {"n_head": 32, "n_kv_head": 32, "n_embd": 2560, "n_expanded_embd": 10240, "vocab_size": 51200, "use_gated_mlp": False}


def _gemms(df):
    g = df[df.op == "gemm"]
    return {(r.name, r.tp, r.num_tokens): (r.m, r.n, r.k) for r in g.itertuples()}


def test_llama2_7b_gemm_shapes(tmp_path):
    p = _mlp_csv(tmp_path / "mlp.csv", LLAMA2_7B, [(4, 1), (512, 2)])
    df = V.convert_compute_file(p, gpu="a100", model="meta-llama/Llama-2-7b-hf", source="vidur:x")
    g = _gemms(df)
    assert g[("attn_pre_proj", 1, 4)] == (4, 12288, 4096)  # fused QKV: (32 + 2*32) * 128
    assert g[("attn_post_proj", 1, 4)] == (4, 4096, 4096)
    assert g[("mlp_up_proj", 1, 4)] == (4, 22016, 4096)  # gate + up
    assert g[("mlp_down_proj", 1, 4)] == (4, 4096, 11008)
    assert g[("attn_pre_proj", 2, 512)] == (512, 6144, 4096)
    assert g[("attn_post_proj", 2, 512)] == (512, 4096, 2048)
    assert g[("mlp_up_proj", 2, 512)] == (512, 11008, 4096)
    assert g[("mlp_down_proj", 2, 512)] == (512, 4096, 5504)
    assert set(df.hardware) == {"a100-sxm"} and set(df.dtype) == {"fp16"}
    assert len(df) == 2 * 10


def test_times_spread_and_other_ops(tmp_path):
    p = _mlp_csv(tmp_path / "mlp.csv", LLAMA2_7B, [(4, 1)])
    df = V.convert_compute_file(p, gpu="h100", model="meta-llama/Llama-2-7b-hf", source="vidur:x").set_index("name")
    # op #3, ms -> s, + 0.5 us: Kineto truncated each kernel's duration to whole microseconds
    assert df.loc["attn_pre_proj", "measured_time_s"] == pytest.approx(0.03e-3 + 0.5e-6)
    assert df.loc["attn_pre_proj", "kineto_truncation_s"] == pytest.approx(0.5e-6)
    assert df.loc["attn_pre_proj", "spread"] == pytest.approx(0.2 * 30 / 30.5)  # (1.1 - 0.9) x 30 us / 30.5 us
    assert df.loc["attn_pre_proj", "reps"] == 20
    assert (df.loc["input_layernorm", ["op", "m", "n", "variant"]].tolist() == ["norm", 4, 4096, "rmsnorm"])
    act = df.loc["mlp_act"]
    assert (act.op, act.numel, act.inputs, act.outputs, act.m) == ("elementwise", 4 * 11008, 2, 1, 4)
    add = df.loc["add"]
    assert (add.numel, add.inputs, add.outputs, add.flops_per_element) == (4 * 4096, 2, 1, 1)
    rope = df.loc["attn_rope"]
    assert rope.numel == 4 * (32 + 32) * 128 and rope.mapping == "approx"
    # q and k fresh from the QKV projection, which wrote v between them too
    assert (rope.fresh_bytes, rope.fresh_span_bytes) == (4 * 64 * 128 * 2, 4 * 96 * 128 * 2)
    assert pd.isna(act.fresh_span_bytes)
    # a norm's input was written by a flat streaming kernel whose reads went through the cache along its writes:
    # the embedding gather (reads the 4 table rows, writes them) and the residual add (reads two, writes one)
    assert df.loc["input_layernorm", "fresh_span_bytes"] == 2 * 4 * 4096 * 2
    assert df.loc["post_attention_layernorm", "fresh_span_bytes"] == 3 * 4 * 4096 * 2
    # sarathi's kernels run one thread block per token row: the rows carry the token count
    assert (rope.op, rope.m, rope.shape_id) == ("rope", 4, "rope:m=4,numel=32768")
    assert pd.isna(add.m)  # the residual add is a flat elementwise kernel
    emb = df.loc["emb"]
    # F.embedding alone is timed (sarathi's VocabParallelEmbedding masks outside the timer): a gather of
    # T rows of E elements, exact
    assert (emb.op, emb.m, emb.n, emb.mapping) == ("embedding", 4, 4096, "exact")
    assert df.loc["attn_pre_proj", "shape_id"] == "gemm:m=4,n=12288,k=4096"
    assert set(df.hardware) == {"h100-sxm"}


def test_gqa_model_and_shape_ids_shared_across_models(tmp_path):
    p = _mlp_csv(tmp_path / "mlp.csv", LLAMA3_70B, [(16, 8)])
    df = V.convert_compute_file(p, gpu="a100", model="meta-llama/Meta-Llama-3-70B", source="vidur:x")
    g = _gemms(df)
    assert g[("attn_pre_proj", 8, 16)] == (16, (64 + 2 * 8) * 128 // 8, 8192)  # 1280
    assert g[("mlp_up_proj", 8, 16)] == (16, 2 * 28672 // 8, 8192)
    assert g[("mlp_down_proj", 8, 16)] == (16, 8192, 28672 // 8)
    # the o_proj of Llama-3-70B at TP 8 is 16 x 8192 x 1024, whatever the model that produced it
    assert "gemm:m=16,n=8192,k=1024" in set(df.shape_id)


def test_phi2_layernorm_gelu_and_three_way_add(tmp_path):
    ops = [o for o in OPS if o != "post_attention_layernorm"]
    p = _mlp_csv(tmp_path / "mlp.csv", PHI2, [(8, 1)], ops=ops)
    df = V.convert_compute_file(p, gpu="a40", model="microsoft/phi-2", source="vidur:x").set_index("name")
    assert "post_attention_layernorm" not in df.index
    assert df.loc["input_layernorm", "variant"] == "layernorm"
    assert df.loc["mlp_up_proj", ["m", "n", "k"]].tolist() == [8, 10240, 2560]
    assert df.loc["mlp_act", ["numel", "inputs"]].tolist() == [8 * 10240, 1]
    # torch.nn.GELU is PyTorch's flat elementwise kernel: no token rows, so it is not priced as a row kernel
    assert pd.isna(df.loc["mlp_act", "m"])
    assert df.loc["add", ["inputs", "outputs"]].tolist() == [4, 2]
    # two add kernels under one timer: Vidur summed two truncated durations, so + 2 x 0.5 us (op #9 of 9)
    assert df.loc["add", "measured_time_s"] == pytest.approx(0.09e-3 + 1e-6)
    assert df.loc["add", "kineto_truncation_s"] == pytest.approx(1e-6)
    assert df.loc["mlp_act", "kineto_truncation_s"] == pytest.approx(0.5e-6)
    assert df.loc["attn_pre_proj", "bias"] in (True, "True")
    assert set(df.hardware) == {"a40"}


def test_network_conversion(tmp_path):
    p = tmp_path / "all_reduce.csv"
    p.write_text(
        ",time_stats.all_reduce.min,time_stats.all_reduce.max,time_stats.all_reduce.mean,"
        "time_stats.all_reduce.median,time_stats.all_reduce.std,rank,num_workers,size,collective,"
        "devices_per_node,max_devices_per_node\n"
        "0,0.04,0.06,0.05,0.05,0.01,0,8,1048576,all_reduce,8,8\n"
        "1,1.0,3.0,2.0,2.0,0.5,0,16,1048576,all_reduce,8,8\n")
    df = V.convert_network_file(str(p), system="a100_dgx", source="vidur:network/a100_dgx/all_reduce.csv")
    r0, r1 = df.iloc[0], df.iloc[1]
    assert (r0.op, r0.bytes, r0.num_devices, r0.hardware, r0.num_nodes) == ("allreduce", 1048576, 8, "hgx-a100-8", 1)
    # one NCCL kernel's Kineto time, truncated to whole microseconds: + 0.5 us
    assert r0.measured_time_s == pytest.approx(5.05e-5) and r0.spread == pytest.approx(0.02 / 0.0505)
    assert r0.kineto_truncation_s == pytest.approx(0.5e-6)
    assert (r1.hardware, r1.num_nodes) == ("hgx-a100-8-2nodes", 2)
    assert r0.shape_id == "allreduce:bytes=1048576,num_devices=8"


def test_convert_tree_and_write(tmp_path):
    src = tmp_path / "src"
    _mlp_csv(src / "compute" / "h100" / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv", LLAMA2_7B, [(1, 1)])
    net = src / "network" / "h100_dgx"
    net.mkdir(parents=True)
    (net / "send_recv.csv").write_text(
        ",time_stats.send_recv.min,time_stats.send_recv.max,time_stats.send_recv.mean,time_stats.send_recv.median,"
        "time_stats.send_recv.std,rank,num_workers,size,collective,devices_per_node,max_devices_per_node\n"
        "0,0.01,0.02,0.015,0.015,0.001,0,2,2048,send_recv,2,8\n")
    out = tmp_path / "out"
    assert V.main([str(src), str(out)]) == 0
    h = pd.read_csv(out / "h100.csv.gz")
    assert set(h.source) == {"vidur:compute/h100/meta-llama/Llama-2-7b-hf/mlp.csv"}
    assert set(h.model) == {"meta-llama/Llama-2-7b-hf"}
    n = pd.read_csv(out / "network.csv.gz")
    assert (n.op.tolist(), n.hardware.tolist()) == (["sendrecv"], ["hgx-h100-8"])
    first = (out / "h100.csv.gz").read_bytes()
    V.main([str(src), str(out)])
    assert (out / "h100.csv.gz").read_bytes() == first  # deterministic gzip
    for f in (out / "h100.csv.gz", out / "network.csv.gz"):
        df = M.load_measurements(str(f))
        assert df.attrs["counts"]["bad"] == 0


def test_converter_rejects_non_vidur_files(tmp_path):
    p = tmp_path / "mlp.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(SpecError) as ei:
        V.convert_compute_file(str(p), gpu="a100", model="x", source="x")
    assert str(p) in str(ei.value) and "num_tokens" in str(ei.value)
    assert V.main([str(tmp_path / "nothing"), str(tmp_path / "o")]) == 2


# -- the shipped data -----------------------------------------------------------------------------

SHIPPED_ROWS = {"vidur-a100": 91029, "vidur-h100": 54549, "vidur-a40": 54549, "vidur-network": 26364}


@pytest.fixture(scope="module")
def shipped():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = M.load_measurements(name)
        return cache[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED_ROWS))
def test_shipped_vidur_sets_load_with_zero_bad_rows(name, shipped):
    df = shipped(name)
    c = df.attrs["counts"]
    assert c["bad"] == 0, c
    assert c["rows"] == SHIPPED_ROWS[name]
    assert (df.measured_time_s > 0).all()
    assert df.shape_id.str.len().gt(0).all()
    assert df.source.str.startswith("vidur:").all()
    assert (df.dtype == "fp16").all()


def test_shipped_vidur_known_rows(shipped):
    a100 = shipped("vidur-a100")
    # Llama-2-7b, 4096 tokens, TP 1: the fused QKV GEMM (first row of that file: 1.911 ms median)
    r = a100[(a100.model == "meta-llama/Llama-2-7b-hf") & (a100.tp == 1) & (a100.num_tokens == 4096)
             & (a100.name == "attn_pre_proj")]
    assert set(zip(r.m, r.n, r.k)) == {(4096, 12288, 4096)}
    assert 1.9115e-3 in set(r.measured_time_s.round(8))  # + 0.5 us, Kineto's mean truncation
    assert set(a100.hardware) == {"a100-sxm"}
    assert set(a100.op) == {"gemm", "norm", "elementwise", "embedding", "rope"}
    net = shipped("vidur-network")
    assert set(net.op) == {"allreduce", "sendrecv"}
    assert {"hgx-a100-8", "hgx-h100-8", "a100-pairwise-nvlink"} <= set(net.hardware)


@pytest.mark.parametrize("name", sorted(SHIPPED_ROWS))
def test_shipped_vidur_times_are_truncated_microseconds_plus_half(name, shipped):
    """Vidur wrote whole microseconds (a median of two: a half); the files hold that + 0.5 us per kernel, and
    say so in ``kineto_truncation_s``: taking it off gives back Vidur's grid of half microseconds."""
    df = shipped(name)
    assert set(df.kineto_truncation_s.round(9)) <= {0.5e-6, 1e-6}
    raw_half_us = (df.measured_time_s - df.kineto_truncation_s) * 2e6
    assert (raw_half_us - raw_half_us.round()).abs().max() < 1e-3
    assert (raw_half_us >= 2).all()  # at least 1 us before the correction


def test_shipped_files_are_gzip_and_small():
    total = 0
    for path in M.builtin_measurements().values():
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                f.read(10)
        total += __import__("os").path.getsize(path)
    assert total < 5_000_000


def test_converter_names_a_bad_cell(tmp_path, capsys):
    """A cell that is not a number (or not a whole one, or below 1 where a count is) is a SpecError at its file,
    line and column, never a ValueError from a type conversion; `python -m sim.validation.vidur` exits 2 with it."""
    src = tmp_path / "src"
    p = _mlp_csv(src / "compute" / "a100" / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv", LLAMA2_7B, [(1, 1), (2, 1)])
    df = pd.read_csv(p)
    col = list(df.columns).index("n_head") + 1
    df["n_head"] = df["n_head"].astype(object)
    df.loc[1, "n_head"] = "abc"  # the second data row: line 3
    df.to_csv(p, index=False)
    with pytest.raises(SpecError) as ei:
        V.convert_compute_file(p, gpu="a100", model="meta-llama/Llama-2-7b-hf", source="x")
    assert f"{p}:3:{col}: n_head: expected a whole number >= 1, got 'abc'" in str(ei.value)
    assert V.main([str(src), str(tmp_path / "out")]) == 2
    assert "n_head: expected a whole number >= 1" in capsys.readouterr().err
    # a negative time, a fractional tensor-parallel count
    df.loc[1, "n_head"] = 32
    df.loc[0, "time_stats.emb.median"] = -1.0
    df["num_tensor_parallel_workers"] = df["num_tensor_parallel_workers"].astype(float)
    df.loc[1, "num_tensor_parallel_workers"] = 1.5
    df.to_csv(p, index=False)
    msg = str(pytest.raises(SpecError, V.convert_compute_file, p, gpu="a100", model="x", source="x").value)
    assert "num_tensor_parallel_workers: expected a whole number >= 1, got 1.5" in msg
    assert "time_stats.emb.median: expected a number >= 0, got -1.0" in msg
    # the collective file's counts
    net = tmp_path / "send_recv.csv"
    net.write_text(",time_stats.send_recv.min,time_stats.send_recv.max,time_stats.send_recv.mean,"
                   "time_stats.send_recv.median,time_stats.send_recv.std,rank,num_workers,size,collective,"
                   "devices_per_node,max_devices_per_node\n0,0.01,0.02,0.015,0.015,0.001,0,two,2048,send_recv,2,8\n")
    msg = str(pytest.raises(SpecError, V.convert_network_file, str(net), system="a100_dgx", source="x").value)
    assert f"{net}:2:8: num_workers: expected a whole number >= 1, got 'two'" in msg
