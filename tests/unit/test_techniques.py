"""Techniques on the toy chip (100 TFLOP/s bf16, 1 TB/s, 10 GiB, 100 cores, no launch overhead), by hand:
speculative decoding, 2:4 sparsity, offload to a far tier, KV layout and eviction, per-tile dequant."""

import json
import math
from pathlib import Path

import pytest

from hwmodels import load_chip
from hwmodels.errors import InfeasibleError, SpecError
from llmsim.cli import main
from sim.cost import CostModel, CostOptions
from sim.estimate import estimate
from sim.predict import predict
from sim.step import StepCoster
from sim.techniques import (
    Offload,
    OffloadPlan,
    apply_to_step_coster,
    kv_tokens_per_request,
    max_batch_that_fits,
    memory_need,
    plan_offload,
)
from workloads import Batch, Parallelism, build_graph, footprint, load_model
from workloads.graph import GemmShape, Op, TensorIO
from workloads.quant import Quantization, Sparsity
from workloads.techniques import SpecConfig, expected_tokens_per_step, load_draft, with_kv_window

DATA = Path(__file__).parent.parent / "data"
TOY = DATA / "toy-chip.yaml"
M = "qwen2.5-0.5b"


@pytest.fixture(scope="module")
def toy():
    return load_chip(TOY)


@pytest.fixture(scope="module")
def toy_sparse():
    return load_chip(TOY, ["compute.matrix.sparse_peak={bf16: 200 TFLOP/s, fp8: 400 TFLOP/s}"])


def gemm(m, n, k, dt="bf16", wdt=None, wbytes=2.0, sparse=False):
    return Op(f"g{m}", "gemm", 1, 2.0 * m * n * k, 0.0, dt,
              (TensorIO("a", "activation", dt, m * k * 2, False), TensorIO("w", "weight", wdt or dt, k * n * wbytes, False),
               TensorIO("c", "activation", dt, m * n * 2, True)), gemm=GemmShape(m, n, k), sparse=sparse)


# ---- speculative decoding ------------------------------------------------------------------

@pytest.mark.parametrize("a,k,e", [(1.0, 4, 5.0), (0.0, 4, 1.0), (0.5, 2, 1.75), (0.8, 1, 1.8),
                                   ((0.9, 0.5, 0.0), 3, 1 + 0.9 + 0.45)])
def test_expected_tokens_per_step_by_hand(a, k, e):
    assert expected_tokens_per_step(a, k) == pytest.approx(e)


def test_per_position_rates_equal_constant_rate():
    assert expected_tokens_per_step((0.7,) * 5, 5) == pytest.approx((1 - 0.7**6) / (1 - 0.7))


@pytest.mark.parametrize("kw", [{"k": 0}, {"acceptance": 1.5}, {"k": 3, "acceptance": (0.5, 0.5)},
                                {"acceptance": "x"}, {"step_cost_s": -1.0}])
def test_spec_config_rejects_bad_values(kw):
    with pytest.raises(SpecError):
        SpecConfig(**kw)


def test_acceptance_one_free_proposer_gives_k_plus_one_tokens_per_target_step(toy):
    k, B, L = 3, 4, 256
    sp = SpecConfig(k=k, acceptance=1.0, step_cost_s=0.0)  # n-gram proposer, stated cost 0: a free draft
    p = predict(M, toy, B, L, 2, speculative=sp, stack="ideal")  # one decode step, L tokens cached before it
    assert p.tokens_per_step == k + 1
    g = build_graph(M, Batch(((k + 1, L),) * B), attention_kernel="paged")
    verify = estimate(g, toy, model=CostModel(toy, resident_bytes=p.weights_bytes + p.kv_cache_bytes)).time_s
    assert p.tpot_s == pytest.approx(verify / (k + 1), rel=1e-12)


@pytest.mark.parametrize("draft", [None, "qwen2.5-0.5b"])
def test_acceptance_zero_is_strictly_slower(toy, draft):
    base = predict(M, toy, 2, 256, 32)
    sp = predict(M, toy, 2, 256, 32, speculative=SpecConfig(k=4, acceptance=0.0, draft=draft, step_cost_s=0.0))
    assert sp.tokens_per_step == 1.0
    assert sp.tpot_s > base.tpot_s
    assert sp.output_throughput_tok_s < base.output_throughput_tok_s


def test_speculation_pays_at_small_batch_and_stops_paying_when_compute_bound(toy):
    sp = SpecConfig(k=4, acceptance=0.7, step_cost_s=0.0)
    kw = {"stack": "ideal"}  # kernels only: the stack's per-step runtime would blur the compute-bound crossover
    small = predict(M, toy, 1, 256, 32, speculative=sp, **kw).tpot_s / predict(M, toy, 1, 256, 32, **kw).tpot_s
    big = predict(M, toy, 256, 256, 32, speculative=sp, **kw).tpot_s / predict(M, toy, 256, 256, 32, **kw).tpot_s
    assert small < 0.6  # memory-bound decode: ~2.8 tokens for little more than one step's time
    assert big > 1.0  # compute-bound verify of 5 tokens per request costs more than 2.8 steps


def test_draft_model_memory_is_counted_and_lowers_the_batch_that_fits(toy):
    sp = SpecConfig(k=4, acceptance=0.7, draft=M)
    p = predict(M, toy, 2, 256, 32, speculative=sp)
    d = footprint(M, (2, 256 + 32 + 4))
    assert p.draft_bytes == pytest.approx(d.weights_bytes + d.kv_cache_bytes)
    assert p.ttft_s > predict(M, toy, 2, 256, 32).ttft_s  # the draft prefills the prompt too
    assert max_batch_that_fits(M, toy, 256, 32, speculative=sp) < max_batch_that_fits(M, toy, 256, 32)


def test_llama_3_2_1b_draft_config_parameter_count():
    assert load_draft("llama-3.2-1b").params_total == pytest.approx(1.236e9, rel=2e-3)  # published 1.23B


def test_step_coster_hook_matches_verify_step(toy):
    k, B, c = 3, 4, 300
    base = StepCoster(M, toy)
    w = apply_to_step_coster(base, speculative=SpecConfig(k=k, acceptance=1.0, step_cost_s=0.0))
    assert w.tokens_per_step == k + 1
    ref = StepCoster(M, toy, attention_kernel="paged").step(((k + 1, c),) * B)
    assert w.step(((1, c),) * B).time_s == pytest.approx(ref.time_s)
    assert w.step(((64, 0),)).time_s == pytest.approx(base.step(((64, 0),)).time_s)  # prefills untouched

    class Rng:
        def __init__(self, x):
            self.x = x

        def random(self):
            return self.x

    assert w.sample_tokens(Rng(0.99)) == k + 1
    w0 = apply_to_step_coster(base, speculative=SpecConfig(k=k, acceptance=0.0))
    assert w0.sample_tokens(Rng(0.0)) == 1


def test_step_coster_hook_adds_draft_steps(toy):
    k, c = 2, 100
    base = StepCoster(M, toy)
    w = apply_to_step_coster(base, speculative=SpecConfig(k=k, acceptance=0.5, draft=M, step_cost_s=1e-4))
    draft = StepCoster(M, toy)
    ref = (StepCoster(M, toy, attention_kernel="paged").step(((k + 1, c),)).time_s + 1e-4
           + draft.step(((1, c),)).time_s + draft.step(((1, c + 1),)).time_s)
    assert w.step(((1, c),)).time_s == pytest.approx(ref)


# ---- 2:4 sparsity -----------------------------------------------------------------------------

def test_sparse_compute_bound_gemm_takes_half_the_time(toy_sparse):
    dense = CostModel(toy_sparse, CostOptions(tiling=False)).op_cost(gemm(8192, 8192, 8192))
    sp = CostModel(toy_sparse, CostOptions(tiling=False)).op_cost(gemm(8192, 8192, 8192, sparse=True))
    assert dense.compute_s == pytest.approx(2 * 8192**3 / 100e12)
    assert sp.compute_s == pytest.approx(dense.compute_s / 2)
    tiled_d = CostModel(toy_sparse).op_cost(gemm(8192, 8192, 8192)).compute_s
    tiled_s = CostModel(toy_sparse).op_cost(gemm(8192, 8192, 8192, sparse=True)).compute_s
    assert tiled_s == pytest.approx(tiled_d / 2)


def test_no_sparse_peak_no_change(toy):
    a = CostModel(toy).op_cost(gemm(8192, 8192, 8192)).compute_s
    assert CostModel(toy).op_cost(gemm(8192, 8192, 8192, sparse=True)).compute_s == pytest.approx(a)


def test_sparse_option_applies_to_weight_gemms_only(toy_sparse):
    g = build_graph(M, Batch.prefill(4, 512))
    dense = estimate(g, toy_sparse)
    sp = estimate(g, toy_sparse, CostOptions(sparse=True))
    for d, s in zip(dense.ops, sp.ops):
        if d.kind == "gemm":
            assert s.compute_s <= d.compute_s
        else:
            assert s.time_s == pytest.approx(d.time_s)  # attention and streaming ops untouched


def test_sparsity_marks_selected_layers_and_compresses_bytes():
    g = build_graph(M, Batch.decode(2, 100))
    gs = build_graph(M, Batch.decode(2, 100), sparsity=Sparsity(layers=("mlp",)))
    gu = build_graph(M, Batch.decode(2, 100), sparsity=Sparsity(layers=("mlp",), compressed=False))
    for name in ("mlp.gate_up_proj", "mlp.down_proj"):
        assert gs.find(name).sparse and gu.find(name).sparse
        # bf16: half the elements kept, each with 2 bits of metadata: (2 + 0.25) / 2 / 2 = 0.5625
        assert gs.find(name).bytes_of("weight") == pytest.approx(0.5625 * g.find(name).bytes_of("weight"))
        assert gu.find(name).bytes_of("weight") == g.find(name).bytes_of("weight")
    for name in ("attn.qkv_proj", "lm_head"):
        assert not gs.find(name).sparse
    assert gs.find("attn.core").sparse is False
    assert Sparsity().element_bytes(1.0) == pytest.approx(0.625)  # fp8
    assert Sparsity().element_bytes(0.5) == pytest.approx(0.375)  # int4


def test_sparse_footprint_by_hand():
    s = load_model(M)
    dense = footprint(s, (1, 10)).weights_bytes
    sp = footprint(s, (1, 10), sparsity=Sparsity(layers="mlp")).weights_bytes
    mlp = s.layers * 3 * s.hidden * s.intermediate * 2
    assert dense - sp == pytest.approx(mlp * (1 - 0.5625))


def test_sparsity_rejects_unknown_layers():
    with pytest.raises(SpecError):
        Sparsity(layers=("router",))


def test_predict_with_sparsity_is_faster_on_a_sparse_chip(toy_sparse):
    base = predict(M, toy_sparse, 8, 1024, 16)
    sp = predict(M, toy_sparse, 8, 1024, 16, sparsity=Sparsity())
    assert sp.ttft_s < base.ttft_s and sp.tpot_s < base.tpot_s and sp.weights_bytes < base.weights_bytes


# ---- offload ----------------------------------------------------------------------------------

def test_offload_plan_by_hand(toy):
    o = Offload(kv=True, weights=True, bandwidth=10e9)
    plan = plan_offload(weights=6e9, kv=3e9, workspace=0.5e9, capacity=8e9, offload=o, chip=toy)
    assert plan.kv_bytes == pytest.approx(1.5e9) and plan.weights_bytes == 0 and plan.kv_fraction == pytest.approx(0.5)
    assert plan.seconds(kv_step_bytes=2e9) == pytest.approx(0.5 * 2e9 / 10e9)
    plan = plan_offload(weights=6e9, kv=1e9, workspace=0.5e9, capacity=5e9, offload=o, chip=toy)
    assert plan.kv_bytes == pytest.approx(1e9) and plan.weights_bytes == pytest.approx(1.5e9)
    assert OffloadPlan("host", 10e9, weights_bytes=1e9, overlap=True).apply(0.05, 0.0) == pytest.approx(0.1)
    assert OffloadPlan("host", 10e9, weights_bytes=1e9).apply(0.05, 0.0) == pytest.approx(0.15)


def test_offload_errors(toy):
    with pytest.raises(InfeasibleError, match="host_link"):
        plan_offload(6e9, 3e9, 0.0, 8e9, Offload(), toy)  # the toy chip has no host link
    with pytest.raises(InfeasibleError, match="even with"):
        plan_offload(9e9, 0.0, 0.0, 8e9, Offload(kv=True, bandwidth=1e9), toy)  # weights may not spill
    with pytest.raises(InfeasibleError, match="far tier"):
        plan_offload(6e9, 5e9, 0.0, 8e9, Offload(kv=True, bandwidth=1e9, capacity=1e9), toy)


def test_weight_offload_adds_x_over_b_per_step():
    big = load_chip(TOY, ["host_link={bandwidth: 10 GB/s}"])
    fp = footprint(M, (2, 256 + 17))
    cap = fp.total_bytes - 0.25e9  # 0.25 GB of weights do not fit
    small = load_chip(TOY, ["host_link={bandwidth: 10 GB/s}", f"memory.hbm.capacity={cap:.0f} B"])
    a = predict(M, big, 2, 256, 17)
    b = predict(M, small, 2, 256, 17, offload=Offload(kv=False, weights=True))
    assert b.offload_bytes == pytest.approx(0.25e9)
    assert b.tpot_s - a.tpot_s == pytest.approx(0.25e9 / 10e9)  # X / B per step
    assert b.ttft_s - a.ttft_s == pytest.approx(0.25e9 / 10e9)
    with pytest.raises(InfeasibleError):
        predict(M, small, 2, 256, 17)


# ---- KV layout, batch that fits, eviction -----------------------------------------------------

def test_kv_tokens_per_request_by_hand():
    assert kv_tokens_per_request(1000, 30, "exact") == 1030
    assert kv_tokens_per_request(1000, 30, "paged", 16) == 1040  # at most one partly used block
    assert kv_tokens_per_request(1000, 24, "paged", 16) == 1024  # whole blocks: no waste
    assert kv_tokens_per_request(1000, 30, "contiguous", max_context=4096) == 4096
    with pytest.raises(InfeasibleError):
        kv_tokens_per_request(1000, 30, "contiguous", max_context=512)


def test_contiguous_kv_allows_fewer_requests_than_paged(toy):
    paged = max_batch_that_fits(M, toy, 1000, 30, kv_layout="paged")
    contiguous = max_batch_that_fits(M, toy, 1000, 30, kv_layout="contiguous", max_context=8192)
    whole = max_batch_that_fits(M, toy, 1000, 30, kv_layout="contiguous")  # the model's 32768 tokens
    assert 0 < whole < contiguous < paged
    s, q, par = load_model(M), Quantization.parse("bf16"), Parallelism()
    cap = 10 * 2**30
    for b, tokens in ((paged, 1040), (contiguous, 8192)):
        assert memory_need(s, q, par, b, tokens, input_len=1000).total <= cap
        assert memory_need(s, q, par, b + 1, tokens, input_len=1000).total > cap


def test_kv_window_caps_the_cache_and_attention(toy):
    s = with_kv_window(M, 128)
    fp = footprint(s, (2, 1000))
    assert fp.kv_cache_bytes == pytest.approx(2 * 128 * footprint(M, (1, 1)).kv_bytes_per_token)
    full = predict(M, toy, 4, 4000, 8)
    ev = predict(M, toy, 4, 4000, 8, kv_window=128)
    assert ev.tpot_s < full.tpot_s and ev.kv_cache_bytes < full.kv_cache_bytes and ev.kv_window == 128
    assert max_batch_that_fits(M, toy, 4000, 8, kv_window=128) > max_batch_that_fits(M, toy, 4000, 8)


# ---- weight-only dequantization per tile ----------------------------------------------------------

def test_dequant_per_tile_slows_compute_bound_weight_only_gemm(toy):
    m, n, k = 4096, 4096, 4096
    w4 = gemm(m, n, k, dt="bf16", wdt="int4", wbytes=0.5)
    plain = CostModel(toy, CostOptions(tiling=False)).op_cost(w4).compute_s
    per_tile = CostModel(toy, CostOptions(tiling=False, dequant_per_tile=True)).op_cost(w4).compute_s
    # 2 vector FLOPs per weight element, once more for each of the ceil(m/128) - 1 further M tiles
    assert per_tile - plain == pytest.approx(2 * n * k * (math.ceil(m / 128) - 1) / 10e12)
    bf = CostModel(toy, CostOptions(tiling=False, dequant_per_tile=True)).op_cost(gemm(m, n, k)).compute_s
    assert bf == pytest.approx(plain)  # bf16 weights: nothing to dequantize
    # decode-sized GEMMs (one M tile) pay nothing extra
    small = gemm(16, n, k, dt="bf16", wdt="int4", wbytes=0.5)
    assert CostModel(toy, CostOptions(dequant_per_tile=True)).op_cost(small).time_s == \
        pytest.approx(CostModel(toy).op_cost(small).time_s)


# ---- predict CLI ---------------------------------------------------------------------------------

def test_predict_cli_spec_flags_json(capsys):
    assert main(["predict", "--hw", str(TOY), "--model", M, "--batch", "2", "--input-len", "128",
                 "--output-len", "16", "--spec-ngram", "--spec-k", "3", "--spec-acceptance", "1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["tokens_per_step"] == 4 and "n-gram" in d["speculative"]
    for k in ("ttft_s", "tpot_s", "output_throughput_tok_s", "usd_per_mtok_output", "fits"):
        assert k in d


def test_predict_cli_bad_spec_exit_2(capsys):
    assert main(["predict", "--hw", str(TOY), "--model", M, "--batch", "2", "--input-len", "128",
                 "--output-len", "16", "--spec-ngram", "--spec-acceptance", "2"]) == 2
    assert "acceptance" in capsys.readouterr().err


def test_predict_cli_sparse_and_window(capsys):
    assert main(["predict", "--hw", "h100-sxm", "--model", M, "--batch", "2", "--input-len", "128",
                 "--output-len", "16", "--sparse", "mlp", "--kv-window", "64", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["sparsity"] == "2:4[mlp]" and d["kv_window"] == 64
