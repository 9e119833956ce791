"""Operator graphs: totals against closed forms, TP/PP/EP division, quantization, MoE routing,
attention counting, and the errors of bad or infeasible inputs."""

import pytest

from hwmodels.errors import InfeasibleError, SpecError
from workloads import Batch, OpGraph, Parallelism, Quantization, build_graph, load_model
from workloads.graph import _attn_stats, expected_experts_touched


def _lm_params(s):
    """Parameters a decode token multiplies: active, minus embedding lookups and norm weights, plus
    a tied head. (Biases, MLA's q_a/kv_a norms and DeepSeek's router bias are added, not multiplied:
    under 1e-4 of the total, hence the tolerance below.)"""
    c = s.param_counts()
    qkv = s.heads * s.head_dim + s.kv_heads * (s.head_dim + s.head_dim_v)
    biases = s.layers * ((qkv if s.qkv_bias else 0) + (s.hidden if s.o_bias else 0)
                         + (s.intermediate + s.hidden if s.mlp_bias else 0)) + (s.vocab if s.lm_head_bias else 0)
    return (s.params_active - c["embedding"] - c["positions"] - c["norms"] - biases
            + (s.vocab * s.hidden if s.tied_embeddings else 0))


def _attn_flops_per_decode_token(s, ctx):
    """Matrix FLOPs of attention for one decode token after ``ctx`` cached tokens, all layers."""
    total = 0
    for k in s.layer_kinds:
        keys = ctx + 1 if k.window is None else min(ctx + 1, k.window)
        if s.attention == "mla":  # absorbed form: MQA over the latent, head dims 576 / 512
            d, dv = s.kv_lora_rank + s.qk_rope_head_dim, s.kv_lora_rank
        else:
            d, dv = s.head_dim, s.head_dim_v
        total += k.count * 2 * s.heads * keys * (d + dv)
    return total


@pytest.mark.parametrize("name", ["llama-3.1-8b", "llama-2-70b", "mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3",
                                  "gemma-2-27b", "gpt-2", "falcon-180b", "qwen2.5-7b"])
def test_decode_flops_per_token_closed_form(name):
    s = load_model(name)
    B, ctx = 8, 200
    g = build_graph(s, Batch.decode(B, ctx))
    expected_matrix = B * (2 * _lm_params(s) + _attn_flops_per_decode_token(s, ctx))
    # uniform routing sends every token to exactly top_k experts
    assert g.total_flops_matrix() == pytest.approx(expected_matrix, rel=1e-4)
    # norms, activations, softmax, sampling: a small addition on top
    assert expected_matrix < g.total_flops() < 1.02 * expected_matrix


def test_prefill_flops_causal_triangle():
    s = load_model("llama-3.1-8b")
    L, B = 1024, 2
    g = build_graph(s, Batch.prefill(B, L))
    attn = g.find("attn.core")
    assert attn.attention.kernel == "flash" and attn.attention.phase == "prefill"
    assert attn.flops_matrix == 2 * s.heads * B * L * (L + 1) / 2 * (2 * s.head_dim)
    # every token's linear layers, plus the LM head for one row per request
    c = s.param_counts()
    lin = s.params_total - c["embedding"] - c["lm_head"] - c["norms"]
    expected = 2 * B * L * lin + 2 * B * s.vocab * s.hidden + s.layers * attn.flops_matrix
    assert g.total_flops_matrix() == pytest.approx(expected, rel=1e-9)


def test_attention_pair_counts_with_window():
    # (n new, c cached): sum_{i=1..n} min(c+i, W)
    assert _attn_stats(((4, 0),), None)[0] == 10
    assert _attn_stats(((4, 0),), 2)[0] == 1 + 2 + 2 + 2
    assert _attn_stats(((1, 9),), None)[0] == 10
    assert _attn_stats(((3, 5),), 7)[0] == 6 + 7 + 7
    assert _attn_stats(((3, 5),), None)[1] == 3 * 8  # the full rectangle
    s = load_model("mistral-7b")  # window 4096 on every layer
    g = build_graph(s, Batch.prefill(1, 8192))
    a = g.find("attn.core")
    W, L = 4096, 8192
    pairs = W * (W + 1) // 2 + W * (L - W)
    assert a.attention.window == 4096
    assert a.flops_matrix == 2 * s.heads * pairs * 2 * s.head_dim


def test_gemma_sliding_and_global_layers():
    s = load_model("gemma-2-27b")
    g = build_graph(s, Batch.decode(1, 6000))
    sl = next(o for o in g.ops if o.name == "attn.core" and o.layer == "layer.sliding")
    gl = next(o for o in g.ops if o.name == "attn.core" and o.layer == "layer.global")
    assert sl.count == gl.count == 23
    assert sl.flops_matrix == 2 * 32 * 4096 * 256 and gl.flops_matrix == 2 * 32 * 6001 * 256
    kv_read = next(t for t in sl.tensors if t.role == "kv" and not t.write)
    assert kv_read.bytes == 4096 * 16 * 256 * 2  # capped at the window


def test_naive_attention_moves_scores():
    s = load_model("llama-3.1-8b")
    flash = build_graph(s, Batch.prefill(1, 512)).find("attn.core")
    naive = build_graph(s, Batch.prefill(1, 512), attention_kernel="naive").find("attn.core")
    assert naive.attention.kernel == "naive"
    scores = sum(t.bytes for t in naive.tensors if t.name in ("scores", "probs"))
    assert scores == 4 * 512 * 512 * 32 * 2  # written and read twice (scores, probs), bf16
    assert naive.flops_matrix == 2 * 32 * 512 * 512 * 256 > flash.flops_matrix
    assert naive.bytes_of("activation") > flash.bytes_of("activation") + scores - 1


def test_paged_decode_reads_kv_once_per_kv_head():
    s = load_model("llama-3.1-70b")
    a = build_graph(s, Batch.decode(4, 1000)).find("attn.core")
    assert a.attention.kernel == "paged" and a.attention.kv_heads == 8 and a.attention.heads == 64
    read = sum(t.bytes for t in a.tensors if t.role == "kv" and not t.write)
    written = sum(t.bytes for t in a.tensors if t.role == "kv" and t.write)
    assert read == 4 * 1000 * 8 * 256 * 2
    assert written == 4 * 8 * 256 * 2
    assert a.attention.seqs == ((1, 1001),) * 4


def test_kv_written_per_token_matches_model_rate():
    for name in ("llama-3.1-8b", "deepseek-v3", "qwen2.5-72b"):
        s = load_model(name)
        g = build_graph(s, Batch.decode(1, 10))
        written = sum(o.count * sum(t.bytes for t in o.tensors if t.role == "kv" and t.write) for o in g.ops)
        assert written == s.kv_bytes_per_token("bf16")


def test_mla_decode_absorbed_and_prefill_expanded():
    s = load_model("deepseek-v3")
    d = build_graph(s, Batch.decode(2, 4000))
    a = d.find("attn.core").attention
    assert (a.kv_heads, a.head_dim, a.head_dim_v) == (1, 576, 512)
    kv_read = sum(t.bytes for t in d.find("attn.core").tensors if t.role == "kv" and not t.write)
    assert kv_read == 2 * 4000 * 576 * 2
    assert d.find("attn.q_absorb").gemm.batch == 128
    p = build_graph(s, Batch.prefill(1, 256))
    a = p.find("attn.core").attention
    assert (a.kv_heads, a.head_dim, a.head_dim_v) == (128, 192, 128)
    assert p.find("attn.kv_b_proj").gemm.n == 128 * 256
    m = build_graph(s, Batch.mixed(prefill=[(128, 64)], decode=[100, 300]))
    assert m.find("attn.core.prefill").attention.phase == "prefill"
    assert m.find("attn.core.decode").attention.phase == "decode"
    assert m.find("attn.kv_b_proj").gemm.m == 192  # the chunk's new and cached latents


def test_tp2_halves_gemm_flops_and_adds_two_allreduces_per_layer():
    s = load_model("llama-3.1-70b")
    b = Batch.decode(16, 512)
    g1 = build_graph(s, b)
    g2 = build_graph(s, b, parallel=Parallelism(tp=2))
    for o1 in g1.select(kind="gemm"):
        o2 = g2.find(o1.name)
        assert o2.flops_matrix == o1.flops_matrix / 2, o1.name
        assert o2.bytes_of("weight") == pytest.approx(o1.bytes_of("weight") / 2, rel=1e-12)
    ar = [o for o in g2.ops if o.collective and o.collective.op == "allreduce" and o.layer == "layer"]
    assert sorted(o.name for o in ar) == ["tp.allreduce_attn", "tp.allreduce_mlp"]
    assert all(o.count == 80 and o.collective.bytes == 16 * 8192 * 2 and o.collective.group_size == 2 for o in ar)
    assert not [o for o in g1.ops if o.kind == "collective"]
    assert g2.find("attn.core").attention.heads == 32 and g2.find("attn.core").attention.kv_heads == 4
    assert g2.find("tp.allgather_logits").collective.bytes == 16 * 128256 * 2


def test_tp_beyond_kv_heads_replicates_kv():
    s = load_model("llama-3.1-8b")  # 32 heads, 8 KV heads
    g = build_graph(s, Batch.decode(1, 100), parallel=Parallelism(tp=16))
    a = g.find("attn.core").attention
    assert (a.heads, a.kv_heads) == (2, 1)
    assert g.find("attn.qkv_proj").gemm.n == (2 + 2) * 128


@pytest.mark.parametrize("name,par,key", [
    ("llama-3.1-8b", Parallelism(tp=3), "heads"),
    ("qwen2.5-7b", Parallelism(tp=8), "heads"),  # 28 heads
    ("llama-3.1-8b", Parallelism(pp=33), "layers"),
    ("mixtral-8x7b", Parallelism(tp=2, ep=3, dp=3), "experts"),
    ("llama-3.1-8b", Parallelism(tp=2, ep=2), "experts"),
    ("mixtral-8x7b", Parallelism(tp=2, ep=4), "dp"),
    ("falcon-180b", Parallelism(tp=16), "heads"),  # 232 heads
])
def test_infeasible_parallelism(name, par, key):
    with pytest.raises(InfeasibleError) as e:
        build_graph(name, Batch.decode(1, 10), parallel=par)
    assert key in e.value.numbers


def test_bad_inputs_are_spec_errors():
    for bad in (lambda: Batch.prefill(0, 10), lambda: Batch.prefill(2, 0), lambda: Batch.decode(2, -1),
                lambda: Batch(((0, 5),)), lambda: Batch(()), lambda: Parallelism(tp=0),
                lambda: Parallelism(imbalance=0.5), lambda: Quantization.named("int3"),
                lambda: Quantization(weight="int3"),
                lambda: build_graph("llama-3.1-8b", Batch.decode(1, 1), attention_kernel="fast")):
        with pytest.raises(SpecError):
            bad()


def test_context_beyond_max_position_is_built_as_a_what_if():
    # gpt-2 was trained for 1024 positions; a 2000-token prompt still has a well-defined cost
    # (sim.predict warns about it instead of refusing)
    g = build_graph("gpt-2", Batch.prefill(1, 2000))
    assert g.ops and build_graph("gpt-2", Batch.prefill(1, 1000)).ops


def test_pipeline_stage_counts_and_sendrecv():
    s = load_model("llama-3.1-70b")
    g = build_graph(s, Batch.decode(8, 100), parallel=Parallelism(pp=3))
    assert g.layers_on_stage == 27 and g.find("attn.qkv_proj").count == 27
    sr = g.find("pp.sendrecv")
    assert sr.count == 1 and sr.collective.op == "sendrecv" and sr.collective.bytes == 8 * 8192 * 2
    d = build_graph("deepseek-v3", Batch.decode(8, 100), parallel=Parallelism(pp=2))
    assert d.stage == (("layer.dense", 3), ("layer.moe", 28))  # 31 of the 61 layers
    g = build_graph("gemma-2-27b", Batch.decode(8, 100), parallel=Parallelism(pp=2))
    assert g.stage == (("layer.sliding", 11), ("layer.global", 12))  # the stage with more global layers
    d = build_graph("deepseek-v3", Batch.decode(8, 100), parallel=Parallelism(pp=61))
    assert d.layers_on_stage == 1 and d.stage == (("layer.moe", 1),)


def test_moe_expected_experts_and_weights():
    s = load_model("mixtral-8x7b")
    g1 = build_graph(s, Batch.decode(1, 100))
    up = g1.find("moe.experts.gate_up")
    assert up.gemm.batch == 2 and up.gemm.m == 1
    assert up.bytes_of("weight") == 2 * 2 * 14336 * 4096 * 2
    gb = build_graph(s, Batch.decode(64, 100))
    up = gb.find("moe.experts.gate_up")
    touched = expected_experts_touched(8, 2, 64)
    assert up.gemm.batch == 8 and touched == pytest.approx(8.0)
    assert up.flops_matrix == 2 * 64 * 2 * (2 * 14336) * 4096
    assert expected_experts_touched(256, 8, 1) == pytest.approx(8.0)
    assert expected_experts_touched(256, 8, 4) == pytest.approx(256 * (1 - (1 - 8 / 256) ** 4))
    # imbalance scales the busiest expert's rows
    gi = build_graph(s, Batch.decode(64, 100), parallel=Parallelism(imbalance=1.5))
    assert gi.find("moe.experts.gate_up").flops_matrix == pytest.approx(1.5 * up.flops_matrix)


def test_expert_parallel_alltoall():
    s = load_model("mixtral-8x7b")
    g = build_graph(s, Batch.decode(64, 100), parallel=Parallelism(tp=8, ep=8))
    disp, comb = g.find("ep.alltoall_dispatch"), g.find("ep.alltoall_combine")
    T_local = 64 // 8
    assert disp.collective.bytes == comb.collective.bytes == T_local * 2 * 4096 * 2
    assert disp.collective.group == "ep" and disp.collective.group_size == 8 and disp.count == 32
    up = g.find("moe.experts.gate_up")
    assert up.gemm.batch == 1 and up.gemm.n == 2 * 14336  # one whole expert per chip
    assert g.find("tp.allgather_moe").collective.bytes == 64 * 4096 * 2
    names = {o.name for o in g.ops}
    assert "tp.allreduce_mlp" not in names and "tp.allreduce_attn" in names


def test_deepseek_shared_experts_and_dense_layers():
    g = build_graph("deepseek-v3", Batch.decode(4, 100))
    tags = {o.layer for o in g.ops}
    assert {"layer.dense", "layer.moe", "pre", "post"} == tags
    sh = next(o for o in g.ops if o.name == "moe.shared.gate_up_proj")
    assert sh.gemm.n == 2 * 2048 and sh.count == 58
    dense = next(o for o in g.ops if o.name == "mlp.gate_up_proj" and o.layer == "layer.dense")
    assert dense.gemm.n == 2 * 18432 and dense.count == 3


def test_weight_only_quant_adds_dequant_and_runs_at_activation_rate():
    s = load_model("llama-3.1-8b")
    g = build_graph(s, Batch.decode(4, 100), quant="w4a16")
    gemms = [o for o in g.select(kind="gemm") if o.layer == "layer"]
    deq = g.select(kind="dequant")
    assert len(deq) == len(gemms) == 4
    qkv = g.find("attn.qkv_proj")
    assert qkv.compute_dtype == "bf16"
    w = next(t for t in qkv.tensors if t.role == "weight")
    assert w.dtype == "int4" and w.bytes == pytest.approx(4096 * 6144 * (4 + 16 / 128) / 8)
    assert g.find("attn.qkv_proj.dequant").flops_vector == 2 * 4096 * 6144
    assert g.find("lm_head").compute_dtype == "bf16" and not any(o.name == "lm_head.dequant" for o in g.ops)
    f = build_graph(s, Batch.decode(4, 100), quant="fp8")
    assert not f.select(kind="dequant") and f.find("attn.qkv_proj").compute_dtype == "fp8"
    assert build_graph(s, Batch.decode(4, 100), quant="w8a8").find("mlp.down_proj").compute_dtype == "int8"
    kv8 = build_graph(s, Batch.decode(4, 100), quant="fp8-kv")
    assert kv8.kv_bytes() == pytest.approx(build_graph(s, Batch.decode(4, 100)).kv_bytes() / 2)
    q = Quantization(weight="int4", activation="fp8", kv_cache="fp8", group_size=64)
    g = build_graph(s, Batch.decode(4, 100), quant=q)
    assert g.find("attn.qkv_proj").compute_dtype == "fp8" and g.select(kind="dequant")


def test_parallel_block_has_one_allreduce():
    g = build_graph("falcon-180b", Batch.decode(4, 100), parallel=Parallelism(tp=8))
    ar = [o for o in g.ops if o.collective and o.layer == "layer"]
    assert [o.name for o in ar] == ["tp.allreduce_attn_mlp"]


def test_to_frame_totals_and_columns():
    g = build_graph("mixtral-8x7b", Batch.decode(32, 1000), parallel=Parallelism(tp=2))
    df = g.to_frame()
    assert len(df) == len(g.ops)
    for col in ("name", "kind", "count", "layer", "flops_matrix", "flops_vector", "bytes_read", "bytes_written",
                "weight_bytes", "kv_bytes", "activation_bytes", "dtype", "m", "n", "k", "collective_op",
                "collective_bytes", "total_flops", "total_bytes"):
        assert col in df.columns
    assert df["total_flops"].sum() == pytest.approx(g.total_flops())
    assert df["total_bytes"].sum() == pytest.approx(g.total_bytes())
    assert df["total_weight_bytes"].sum() == pytest.approx(g.weight_bytes())
    assert df["total_collective_bytes"].sum() == pytest.approx(g.collective_bytes())
    assert set(df["kind"]) <= {"gemm", "attention", "elementwise", "norm", "embedding", "rope", "router",
                               "dequant", "sampling", "collective"}


def test_graph_is_cached_and_frozen():
    b = Batch.decode(8, 100)
    g = build_graph("llama-3.1-8b", b)
    assert build_graph("llama-3.1-8b", Batch.decode(8, 100)) is g
    assert isinstance(g, OpGraph)
    with pytest.raises(AttributeError):
        g.ops = ()


def test_fused_drops_activation_traffic_of_fusable_ops():
    b = Batch.prefill(1, 256)
    g = build_graph("llama-3.1-8b", b)
    f = build_graph("llama-3.1-8b", b, fused=True)
    assert f.total_flops() == g.total_flops()
    assert f.find("mlp.act").bytes == 0 and g.find("mlp.act").bytes > 0
    assert f.find("attn.norm").bytes_of("weight") == g.find("attn.norm").bytes_of("weight") > 0
    assert f.activation_bytes() < g.activation_bytes()


def test_batch_constructors():
    assert Batch.prefill(2, 10).seqs == ((10, 0), (10, 0))
    assert Batch.decode(3, 7).phase == "decode"
    m = Batch.mixed(prefill=[100, (64, 128)], decode=[50])
    assert m.seqs == ((100, 0), (64, 128), (1, 50)) and m.phase == "mixed" and m.tokens == 165
    assert Batch.prefill(1, 1).phase == "prefill"


def test_layer_ops_built_once_per_kind():
    g = build_graph("llama-3.1-405b", Batch.decode(64, 1000))
    assert len(g.ops) < 20 and g.find("mlp.down_proj").count == 126
