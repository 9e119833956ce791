"""Where weights, KV and activations live, and partial SRAM residency (toy chip: 1 GB SRAM at 9 TB/s
beside 10 GB HBM at 1 TB/s, round numbers checkable by hand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwmodels.loader import load_chip
from sim.cost import CostModel, CostOptions
from sim.predict import predict
from sim.sweep import run_sweep, spec_from_dict
from workloads.graph import Op, TensorIO

DATA = Path(__file__).parent.parent / "data"
TOY = DATA / "toy-sram-hbm.yaml"
RAW = CostOptions(use_efficiency=False)


def _read(nbytes, role="weight"):
    return Op("read", "elementwise", 1, 0.0, 0.0, "bf16", (TensorIO("w", role, "bf16", nbytes, False),))


@pytest.mark.parametrize("resident,share", [(0.5e9, None), (2e9, 0.5), (4e9, 0.25), (8e9, 0.125), (1.05e9, 0.9)])
def test_the_sram_holds_the_share_that_fits(resident, share):
    cm = CostModel(load_chip(str(TOY)), RAW, resident_bytes=resident)
    t = cm.op_cost(_read(1e9)).memory_s
    if share is None:  # everything fits the SRAM: it is the home, 1 GB at 9 TB/s
        assert cm.home.name == "sram" and t == pytest.approx(1e9 / 9e12)
        return
    # a share of the resident bytes in SRAM (capped at 9 / (9 + 1) = 0.9, where both levels take as
    # long), the rest streamed from HBM at the same time: the slower of the two bounds the op
    assert cm.home.name == "hbm" and cm.part_share == pytest.approx(share)
    assert t == pytest.approx(max(share * 1e9 / 9e12, (1 - share) * 1e9 / 1e12))
    place = cm.placement(resident, 0.0, 1e6)
    assert place["weights"] == pytest.approx({"sram": share * resident, "hbm": (1 - share) * resident})
    assert place["activations"] == {"hbm": 1e6}  # activations stay in main memory


def test_kv_reads_split_like_weights():
    cm = CostModel(load_chip(str(TOY)), RAW, resident_bytes=2e9)
    assert cm.op_cost(_read(1e9, "kv")).memory_s == pytest.approx(0.5e9 / 1e12)


def test_a_chip_without_sram_is_unchanged():
    cm = CostModel(load_chip(str(DATA / "toy-chip.yaml")), RAW, resident_bytes=2e9)  # its SRAM is per core
    assert cm.part_index is None and cm.op_cost(_read(1e9)).memory_s == pytest.approx(1e9 / 1e12)


def test_predict_prints_the_placement(capsys):
    from llmsim.cli import main

    p = predict("qwen2.5-0.5b", str(TOY), 8, 512, 64)
    total = p.weights_bytes + p.kv_cache_bytes
    assert total > 1e9  # does not fit the 1 GB SRAM: 90 % of it there (the cap), the rest in HBM
    assert p.placement["weights"]["sram"] == pytest.approx(0.9 * p.weights_bytes)
    assert p.placement["kv_cache"]["hbm"] == pytest.approx(0.1 * p.kv_cache_bytes)
    assert main(["predict", "--hw", str(TOY), "--model", "qwen2.5-0.5b", "--batch", "8", "--input-len", "512",
                 "--output-len", "64"]) == 0
    out = capsys.readouterr().out
    assert "placement" in out and "sram" in out and "(90%)" in out
    assert main(["predict", "--hw", "h100-sxm", "--model", "qwen2.5-0.5b", "--batch", "8", "--input-len", "512",
                 "--output-len", "64", "--json"]) == 0
    import json

    place = json.loads(capsys.readouterr().out)["placement"]
    assert set(place) == {"weights", "kv_cache", "activations"} and list(place["weights"]) == ["hbm"]


def test_an_sram_capacity_sweep_shows_a_gradual_effect():
    """Decode steps get faster as the SRAM grows, well before the point where everything fits."""
    caps = ["50 MB", "200 MB", "400 MB", "600 MB", "800 MB", "2 GB"]
    spec = spec_from_dict({"version": 1, "kind": "sweep", "name": "sram", "hardware": str(TOY),
                           "model": "qwen2.5-0.5b", "evaluator": "static",
                           "workload": {"batch": 8, "input_len": 512, "output_len": 64},
                           "axes": {"hw.memory.sram.capacity": caps},
                           "stack": "ideal"},  # kernels only: the stack's fixed runtime per step dilutes the ratios
                          base_dir=DATA, file=str(TOY))
    t = run_sweep(spec, None, workers=1, progress=False).table.sort_values("hw.memory.sram.capacity")
    assert (t["status"] == "ok").all()
    tpot = t["tpot_s"].to_numpy()
    assert np.all(np.diff(tpot) < 0)  # every step of SRAM helps ...
    assert tpot[1] < 0.9 * tpot[0] and tpot[3] < 0.8 * tpot[0]  # ... a lot before it holds everything
    # and the sweep's array path prices exactly as a single prediction does
    one = predict("qwen2.5-0.5b", str(TOY), 8, 512, 64, overrides=["memory.sram.capacity=400 MB"], stack="ideal")
    assert t["tpot_s"].iloc[2] == pytest.approx(one.tpot_s, rel=1e-6)
