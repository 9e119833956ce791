"""The process-wide cost memo (sim/costmemo.py): a hit returns exactly what pricing gives.

Every prediction here is made with the memo off (each cost model prices from cold, the reference),
then twice with it on (the first fills it, the second is answered from it), and all three must be
equal field by field, per-op costs included."""

from pathlib import Path

import pytest

from hwmodels import load_chip, load_system
from sim import costmemo
from sim.cost import CostModel, CostOptions
from sim.predict import predict
from workloads.quant import Sparsity

DATA = Path(__file__).parent.parent / "data"

CASES = [
    ("llama-3.1-8b", "h100-sxm", dict()),
    ("llama-3.1-70b", "hgx-h100-8", dict(tp=8)),
    ("llama-3.1-70b", "hgx-h100-8", dict(tp=8, overrides=["chip.memory.hbm.bandwidth=4 TB/s"])),
    ("llama-3.1-70b", "hgx-h100-8", dict(tp=8, stack="vllm")),
    ("llama-3.1-8b", "h100-sxm", dict(stack="sglang", options=CostOptions(fused=True, cuda_graphs=True))),
    ("llama-3.1-8b", "a100-sxm", dict(quant="w4a16", options=CostOptions(dequant_per_tile=True))),
    ("llama-3.1-8b", "h100-sxm", dict(options=CostOptions(tiling=False, use_efficiency=False))),
    ("llama-3.1-8b", "h100-sxm", dict(sparsity=Sparsity(), options=CostOptions(sparse=True))),
    ("mixtral-8x7b", "hgx-h100-8", dict(tp=2, stack="tensorrt-llm")),
    ("qwen3-30b-a3b", "hgx-h100-8", dict(tp=2, ep=2)),
    ("llama-3.1-8b", "cerebras-wse3", dict()),
    ("qwen2.5-0.5b", "hypo-sram-infer", dict(quant="fp8")),
    ("llama-3.1-8b", "hypo-hbm-infer", dict()),
]


def _all(pred) -> str:
    """Every field and per-op cost, written exactly (repr: floats round-trip, NaN equals NaN)."""
    return repr((pred.to_dict(), tuple(pred.prefill.ops), tuple(pred.decode.ops)))


def _run(model, hw, kw):
    return _all(predict(model, hw, 4, 512, 33, **kw))


def _tpot(model, hw, kw):
    return predict(model, hw, 4, 512, 33, **kw).tpot_s


@pytest.fixture
def memo_off(monkeypatch):
    def off():
        monkeypatch.setattr(costmemo, "ENABLED", False)

    def on():
        monkeypatch.setattr(costmemo, "ENABLED", True)

    costmemo.clear()
    yield off, on
    costmemo.clear()


def test_predictions_equal_with_the_memo_on_and_off(memo_off):
    off, on = memo_off
    off()
    cold = [_run(m, h, kw) for m, h, kw in CASES]
    assert costmemo.size() == 0
    on()
    first = [_run(m, h, kw) for m, h, kw in CASES]
    filled = costmemo.size()
    assert filled > 0
    second = [_run(m, h, kw) for m, h, kw in reversed(CASES)][::-1]
    assert costmemo.size() == filled  # the second pass priced nothing new: every op a hit
    for case, a, b, c in zip(CASES, cold, first, second):
        assert a == b == c, case
    # the override reached the prediction (another hardware key, not the base's entries)
    assert cold[1] != cold[2]


def test_an_edited_chip_file_is_priced_anew(memo_off, tmp_path):
    off, on = memo_off
    f = tmp_path / "toy-chip.yaml"
    text = (DATA / "toy-chip.yaml").read_text()
    f.write_text(text)
    on()
    before = _run("qwen2.5-0.5b", str(f), {}), _tpot("qwen2.5-0.5b", str(f), {})
    f.write_text(text.replace("bandwidth: 1 TB/s", "bandwidth: 2.5 TB/s"))  # another size: the loader sees it
    after = _run("qwen2.5-0.5b", str(f), {}), _tpot("qwen2.5-0.5b", str(f), {})
    off()
    ref = _run("qwen2.5-0.5b", str(f), {})
    assert after[0] == ref and after[1] < before[1]


def test_models_share_by_content_and_placement_changes_rebind(memo_off):
    off, on = memo_off
    on()
    a, b = CostModel(load_chip(DATA / "toy-chip.yaml")), CostModel(load_chip(DATA / "toy-chip.yaml"))
    assert a._memo is b._memo  # the same numbers, options and placement: one table
    assert CostModel(load_chip(DATA / "toy-chip.yaml"), tp=2)._memo is not a._memo
    assert CostModel(load_chip(DATA / "toy-chip.yaml"), CostOptions(fused=True))._memo is not a._memo
    toy = load_system(DATA / "toy-chip.yaml")
    c, d = CostModel(toy), CostModel(toy)
    d.home = toy.chip.memory[0]  # weights and KV in the per-core SRAM: another placement, another table
    assert c.home_index != d.home_index and c._memo is not d._memo
    d.same_placement_as(c)
    assert d._memo is c._memo
    off()
    assert CostModel(load_chip(DATA / "toy-chip.yaml"))._memo is not a._memo


def test_the_memo_is_bounded_and_stays_exact(memo_off, monkeypatch):
    off, on = memo_off
    off()
    ref = [_run(m, h, kw) for m, h, kw in CASES[:3]]
    on()
    monkeypatch.setattr(costmemo, "LIMIT", 40)
    got = [_run(m, h, kw) for m, h, kw in CASES[:3]]
    assert got == ref
    assert costmemo.size() < 40  # cleared whenever the count reached the limit
