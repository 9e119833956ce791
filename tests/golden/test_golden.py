"""Golden end-to-end predictions, compared with a tolerance; regenerate only on purpose:

    LLMSIM_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/golden
"""

import os
from pathlib import Path

import pandas as pd
import pytest

from sim.predict import predict

GOLDEN = Path(__file__).parent / "predict.csv"  # the default serving stack (vllm)
GOLDEN_IDEAL = Path(__file__).parent / "predict-ideal.csv"  # --stack ideal: the kernel-only numbers
CASES = [
    ("llama-3.1-8b", "h100-sxm", 1, 1, 32, 1024, 256),
    ("llama-3.1-8b", "a100-sxm", 1, 1, 8, 512, 128),
    ("llama-3.1-70b", "hgx-h100-8", 4, 1, 16, 2048, 256),
    ("mixtral-8x7b", "hgx-h100-8", 2, 1, 8, 1024, 128),
    ("llama-3.1-8b", "cerebras-wse3", 1, 1, 1, 128, 32),
    ("deepseek-v3", "hgx-h200-8", 8, 1, 16, 1024, 128),
    ("llama-3.1-8b", "mi300x", 1, 1, 64, 512, 512),
]
COLS = ["ttft_s", "tpot_s", "e2e_s", "output_throughput_tok_s", "joules_per_output_token", "mfu", "mbu",
        "weights_bytes", "kv_cache_bytes"]


def _run(stack=None):
    rows = []
    for model, hw, tp, pp, b, i, o in CASES:
        p = predict(model, hw, b, i, o, tp=tp, pp=pp, quant="fp8" if model == "deepseek-v3" else "bf16",
                    check_memory=False, stack=stack)
        rows.append({"model": model, "hw": hw, "tp": tp, "pp": pp, "batch": b, "input_len": i, "output_len": o,
                     **{c: getattr(p, c) for c in COLS}})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("stack, path", [(None, GOLDEN), ("ideal", GOLDEN_IDEAL)])
def test_golden_predictions(stack, path):
    df = _run(stack)
    if os.environ.get("LLMSIM_REGEN_GOLDEN"):
        df.to_csv(path, index=False, float_format="%.9g")
        pytest.skip("golden file regenerated")
    gold = pd.read_csv(path)
    assert list(gold["model"]) == list(df["model"])
    for c in COLS:
        for a, b, m in zip(df[c], gold[c], df["model"]):
            assert a == pytest.approx(b, rel=1e-6, nan_ok=True), f"{m} {c}: {a} vs golden {b}"
