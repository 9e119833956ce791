"""Whole-request predict prices the decode attention of all sampled contexts in one vectorized
evaluation (sim.predict._decode_contexts_at_once): it must equal pricing every context's whole graph
op by op, to 1e-9, across attention variants, parallelism, quantizations, kernels and stacks."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import sim.predict as P
from sim.cost import CostModel, CostOptions
from sim.estimate import estimate, step_kernels
from sim.techniques import Offload
from workloads import Batch, Parallelism, Quantization, build_graph, load_model
from workloads.graph import SeqArrays, _attn_stats
from workloads.stepops import attention_ops

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")
TOY_SYS = str(DATA / "toy-system.yaml")


def _per_context(cfg, su, cm, ctxs, _gc, _g):
    """The reference: each context's whole graph, priced op by op (the pre-vectorization path)."""
    out = [[], [], [], [], []]
    kernels = None
    for c in ctxs:
        g = build_graph(su.spec, Batch.decode(su.batch, int(c)), quant=su.quant, parallel=su.parallel,
                        attention_kernel=cfg.attention_kernel, fused=cfg.options.fused, sparsity=cfg.sparsity)
        gc = estimate(g, su.system, cfg.options, model=cm)
        for lst, v in zip(out, (gc.time_s, gc.energy_j, gc.bytes_main, gc.flops, g.kv_bytes())):
            lst.append(v)
        kernels = step_kernels(gc)
    return tuple(np.array(v) for v in out) + (kernels,)


NUMERIC = [f.name for f in dataclasses.fields(P.Prediction)
           if f.type in ("float", "float | None", "int")]

CASES = [
    ("llama-3.1-8b", "h100-sxm", {}),  # dense GQA
    ("llama-2-7b", TOY, {"quant": "fp8"}),  # MHA
    ("gemma-2-27b", "h100-sxm", {"attention_kernel": "flash"}),  # sliding window + softcap, flash decode
    ("mistral-7b", TOY, {"attention_kernel": "naive", "kv_dtype": "fp8"}),
    ("deepseek-v2-lite", "h100-sxm", {"stack": "vllm"}),  # MLA + MoE
    ("mixtral-8x7b", "hgx-h100-8", {"tp": 4, "pp": 2, "quant": "w4a16", "stack": "sglang"}),  # MoE, tp x pp
    ("qwen3-30b-a3b", "hgx-h100-8", {"tp": 2, "ep": 4, "options": CostOptions(fused=True, overlap_comm=True)}),
    ("qwen2.5-0.5b", TOY_SYS, {"tp": 2, "kv_window": 300, "stack": "tensorrt-llm"}),
    ("llama-3.1-8b", "groq-lpu", {}),  # SRAM home / partial residency
    ("llama-3.1-70b", "hgx-h100-8", {"tp": 8, "options": CostOptions(tiling=False, cuda_graphs=True)}),
]


@pytest.mark.parametrize("model,hw,kw", CASES, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(CASES)])
def test_vectorized_decode_equals_per_context_pricing(model, hw, kw, monkeypatch):
    kw = {"check_memory": False, **kw}
    fast = P.predict(model, hw, 4, 700, 90, samples=16, **kw)
    monkeypatch.setattr(P, "_decode_contexts_at_once", _per_context)
    ref = P.predict(model, hw, 4, 700, 90, samples=16, **kw)
    for name in NUMERIC:
        a, b = getattr(fast, name), getattr(ref, name)
        if isinstance(a, float) and isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-9, nan_ok=True), name
        else:
            assert a == b, name
    assert fast.bound_breakdown == pytest.approx(ref.bound_breakdown, rel=1e-9)


def test_vectorized_decode_with_offload_link(monkeypatch):
    kw = {"offload": Offload(kv=True, bandwidth=25e9)}
    fast = P.predict("llama-3.1-8b", "l4", 32, 4000, 40, **kw)
    monkeypatch.setattr(P, "_decode_contexts_at_once", _per_context)
    ref = P.predict("llama-3.1-8b", "l4", 32, 4000, 40, **kw)
    assert fast.offload_bytes > 0
    assert fast.tpot_s == pytest.approx(ref.tpot_s, rel=1e-9)
    assert fast.e2e_s == pytest.approx(ref.e2e_s, rel=1e-9)


@pytest.mark.parametrize("window", [None, 5, 64])
def test_seq_arrays_count_as_tuples(window):
    """The accounting over K steps at once equals each step's tuple accounting exactly."""
    rng = np.random.default_rng(1)
    new = rng.integers(1, 40, size=(6, 5))
    ctx = rng.integers(0, 200, size=(6, 5))
    pairs, rect, cached = _attn_stats(SeqArrays(new, ctx), window)
    for k in range(6):
        ref = _attn_stats(tuple(zip(new[k].tolist(), ctx[k].tolist())), window)
        assert (pairs[k], rect[k], cached[k]) == ref


@pytest.mark.parametrize("model", ["llama-3.1-8b", "gemma-2-27b", "deepseek-v2-lite"])
@pytest.mark.parametrize("kernel", ["auto", "flash", "naive"])
def test_attention_ops_over_steps_equal_each_step(model, kernel):
    """Mixed steps (prefill chunks and decodes) over K steps: every priced figure equals the op of
    that step's own graph, priced alone."""
    from hwmodels import load_system

    spec = load_model(model)
    q = Quantization.parse("bf16")
    par = Parallelism()
    system = load_system("h100-sxm")
    cm = CostModel(system, resident_bytes=2e10)
    rng = np.random.default_rng(2)
    new = np.array([[1, 1, 37, 1]] * 5)
    ctx = rng.integers(1, 3000, size=(1, 4)) + np.arange(5)[:, None]
    ops = attention_ops(spec, SeqArrays(new, ctx), q, par, kernel)
    priced = [cm.over_steps()._price(o) for o in ops]
    for k in range(5):
        seqs = tuple(zip(new[k].tolist(), ctx[k].tolist()))
        g = build_graph(spec, Batch(seqs), quant=q, parallel=par, attention_kernel=kernel)
        ref = [cm._price(o) for o in g.ops if o.kind == "attention"]
        assert len(ref) == len(priced)
        for r, p in zip(ref, priced):
            for f in ("compute_s", "memory_s", "overhead_s", "time_s", "flops", "bytes_main", "energy_j"):
                assert np.asarray(getattr(p, f))[k] == pytest.approx(getattr(r, f), rel=1e-12), f
