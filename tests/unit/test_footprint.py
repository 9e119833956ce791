"""Memory footprint per chip: weights, KV cache, workspace, and the does-not-fit message."""

import pytest

from hwmodels.errors import InfeasibleError, SpecError
from workloads import Batch, Parallelism, check_fits, footprint, load_model


def test_weights_match_parameter_count():
    for name in ("llama-2-70b", "mixtral-8x7b", "deepseek-v3", "gemma-2-27b", "gpt-2"):
        s = load_model(name)
        assert footprint(s, (1, 128)).weights_bytes == 2 * s.params_total


def test_llama2_70b_does_not_fit_one_80gb_chip():
    fp = footprint("llama-2-70b", (1, 4096), "bf16")
    assert fp.weights_bytes == pytest.approx(137.95e9, rel=1e-4)
    with pytest.raises(InfeasibleError) as e:
        check_fits(fp, 80e9, "hbm")
    assert str(e.value) == "llama-2-70b bf16 weights need 138 GB per chip at tp=1; hbm holds 80.0 GB"
    assert e.value.numbers["capacity_bytes"] == 80e9 and e.value.numbers["tp"] == 1
    fp2 = footprint("llama-2-70b", (1, 4096), "bf16", Parallelism(tp=2))
    check_fits(fp2, 80e9, "hbm")  # 69 GB of weights + 0.7 GB of KV cache fit
    assert fp2.weights_bytes < 0.5001 * fp.weights_bytes


def test_kv_cache_too_large_message():
    fp = footprint("llama-3.1-8b", (64, 32768), "bf16")
    assert fp.kv_cache_bytes == 64 * 32768 * 2 * 32 * 8 * 128 * 2
    with pytest.raises(InfeasibleError, match=r"KV cache .* for 2097152 tokens"):
        check_fits(fp, 80e9)


def test_kv_cache_per_chip_and_window():
    fp = footprint("llama-3.1-70b", Batch.decode(4, 999), parallel=Parallelism(tp=8))
    assert fp.kv_bytes_per_token == 80 * 1 * 256 * 2  # one KV head per chip
    assert fp.kv_cache_bytes == 4 * 1000 * fp.kv_bytes_per_token
    g = footprint("gemma-2-27b", (2, 8192))
    per_layer = 16 * 256 * 2
    assert g.kv_cache_bytes == 23 * 2 * 4096 * per_layer + 23 * 2 * 8192 * per_layer
    d = footprint("deepseek-v3", (1, 1000), "fp8", Parallelism(tp=8))
    assert d.kv_bytes_per_token == 61 * 576 * 2  # latent replicated on every TP rank (KV stays bf16 in 'fp8')


def test_pipeline_and_quantized_weights():
    s = load_model("llama-3.1-70b")
    full = footprint(s, (1, 100)).weights_bytes
    pp = footprint(s, (1, 100), parallel=Parallelism(pp=4)).weights_bytes
    emb, final_norm = s.vocab * s.hidden * 2, s.hidden * 2
    # a quarter of the layers, plus the larger end: the LM head and final norm of the last stage
    assert pp == (full - 2 * emb - final_norm) / 4 + emb + final_norm
    w4 = footprint(s, (1, 100), "w4a16").weights_bytes
    emb = 2 * emb  # embedding and LM head stay bf16
    assert (w4 - emb) == pytest.approx((full - emb) * (4 + 16 / 128) / 16, rel=1e-3)


def test_workspace_is_largest_op_set():
    fp = footprint("llama-3.1-8b", Batch.prefill(1, 4096))
    assert fp.activation_bytes == pytest.approx(4096 * (2 * 14336 + 14336) * 2)  # the gated activation op
    naive = footprint("llama-3.1-8b", Batch.prefill(1, 4096), attention_kernel="naive")
    assert naive.activation_bytes > 32 * 4096 * 4096 * 2
    assert fp.total_bytes == fp.weights_bytes + fp.kv_cache_bytes + fp.activation_bytes


def test_bad_batch_argument():
    with pytest.raises(SpecError):
        footprint("llama-3.1-8b", "lots")
    with pytest.raises(SpecError):
        footprint("llama-3.1-8b", (0, 100))
