"""The static predictor: formulas between its outputs, exactness of decode sampling, CLI contract."""

import json
from pathlib import Path

import pytest

from hwmodels.errors import InfeasibleError, SpecError
from llmsim.cli import main
from sim.predict import predict

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")

JSON_KEYS = ["ttft_s", "tpot_s", "e2e_s", "output_throughput_tok_s", "per_chip_output_throughput_tok_s", "fits",
             "weights_bytes", "kv_cache_bytes", "usd_per_mtok_output", "joules_per_output_token", "mfu", "mbu",
             "bound_breakdown"]


def test_identities():
    p = predict("qwen2.5-0.5b", TOY, 4, 256, 64)
    assert p.e2e_s == pytest.approx(p.ttft_s + 63 * p.tpot_s)
    assert p.output_throughput_tok_s == pytest.approx(4 * 64 / p.e2e_s)
    # toy chip: 3.6 USD/h = 0.001 USD/s
    assert p.usd_per_mtok_output == pytest.approx(0.001 * p.e2e_s / (4 * 64) * 1e6)
    assert p.fits and 0 < p.mfu < 1 and 0 < p.mbu <= 1
    assert sum(p.bound_breakdown.values()) == pytest.approx(1.0)


def test_decode_sampling_matches_exact_steps():
    exact = predict("qwen2.5-0.5b", TOY, 8, 128, 300, samples=300)
    fast = predict("qwen2.5-0.5b", TOY, 8, 128, 300)
    assert fast.tpot_s == pytest.approx(exact.tpot_s, rel=5e-3)


def test_decode_is_weight_bound_on_toy_at_batch_one():
    # every bf16 weight is read once per decode step at 1 TB/s (the tied embedding as the LM head)
    p = predict("qwen2.5-0.5b", TOY, 1, 16, 8, stack="ideal")  # kernels only: no runtime outside them
    assert p.weights_bytes / 1e12 <= p.tpot_s < 1.3 * p.weights_bytes / 1e12


def test_does_not_fit():
    with pytest.raises(InfeasibleError, match="holds"):
        predict("llama-2-70b", TOY, 1, 128, 16)
    p = predict("llama-2-70b", TOY, 1, 128, 16, check_memory=False)
    assert not p.fits and "GB" in p.reason


def test_bad_lengths():
    with pytest.raises(SpecError, match="input_len"):
        predict("llama-3.1-8b", TOY, 1, 0, 16)


def test_chip_with_tp_uses_standard_system():
    p = predict("llama-3.1-70b", "h100-sxm", 8, 512, 32, tp=4)
    assert p.system == "hgx-h100-8" and p.chips == 4
    assert any("standard system" in n for n in p.notes)


def test_cli_json_keys(capsys):
    assert main(["predict", "--hw", "h100-sxm", "--model", "llama-3.1-8b", "--batch", "8", "--input-len", "512",
                 "--output-len", "128", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for k in JSON_KEYS:
        assert k in d
    assert d["fits"] is True


def test_cli_infeasible_exit_3(capsys):
    rc = main(["predict", "--hw", "h100-sxm", "--model", "llama-2-70b", "--batch", "1", "--input-len", "128",
               "--output-len", "16", "--json"])
    assert rc == 3
    d = json.loads(capsys.readouterr().out)
    assert d["fits"] is False and "holds" in d["reason"]


def test_cli_bad_model_exit_2(capsys):
    assert main(["predict", "--hw", "h100-sxm", "--model", "llama-9", "--batch", "1", "--input-len", "8",
                 "--output-len", "8"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_quant_fp8_is_faster_at_decode_on_h100():
    a = predict("llama-3.1-8b", "h100-sxm", 8, 512, 64)
    b = predict("llama-3.1-8b", "h100-sxm", 8, 512, 64, quant="fp8")
    assert b.tpot_s < a.tpot_s and b.weights_bytes < a.weights_bytes


def test_breakdown_frame():
    p = predict("qwen2.5-0.5b", TOY, 2, 64, 8)
    df = p.to_frame()
    assert set(df["phase"]) == {"prefill", "decode"}
    assert {"gemm", "attention"} <= set(df["kind"])
