"""StepCoster: the decomposed, memoized step price equals estimate(build_graph(...)) exactly."""

import random
from pathlib import Path

import pytest

from hwmodels.loader import load_hardware
from sim.cost import CostOptions
from sim.estimate import estimate
from sim.step import StepCoster
from workloads import Batch, Parallelism, build_graph

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")
TOY_SYS = str(DATA / "toy-system.yaml")


def _batches(rng, n=60, max_req=12):
    """Random mixes of prefills, chunks and decodes, with repeated (T, R) keys."""
    out = []
    for _ in range(n):
        seqs = []
        for _ in range(rng.randint(1, max_req)):
            kind = rng.random()
            if kind < 0.6:
                seqs.append((1, rng.randint(1, 3000)))
            elif kind < 0.8:
                seqs.append((rng.randint(2, 700), 0))
            else:
                seqs.append((rng.randint(2, 300), rng.randint(1, 2000)))
        out.append(tuple(seqs))
    # decode batches sharing (T, R) with earlier ones: the decomposed path answers these
    out += [tuple((1, rng.randint(1, 4000)) for _ in range(len(b))) for b in out[:20]]
    return out


CASES = [
    ("qwen2.5-0.5b", TOY, Parallelism(), CostOptions()),
    ("llama-3.1-8b", TOY, Parallelism(), CostOptions(fused=True)),
    ("gemma-2-27b", "h100-sxm", Parallelism(), CostOptions()),  # sliding + global layers, softcap
    ("deepseek-v2-lite", "h100-sxm", Parallelism(), CostOptions()),  # MLA: prefill/decode split
    ("mixtral-8x7b", TOY_SYS, Parallelism(tp=2, pp=2), CostOptions(overlap_comm=True)),  # MoE, TP, PP
    ("qwen3-30b-a3b", TOY_SYS, Parallelism(tp=4, ep=4), CostOptions(cuda_graphs=True)),  # EP
]


@pytest.mark.parametrize("model,hw,par,opt", CASES, ids=[c[0] for c in CASES])
def test_step_equals_estimate_of_the_whole_graph(model, hw, par, opt):
    system = load_hardware(hw)
    c = StepCoster(model, system, parallel=par, options=opt, stack="ideal")  # kernels only, like estimate()
    rng = random.Random(7)
    for seqs in _batches(rng):
        got = c.step(seqs)
        g = build_graph(model, Batch(seqs), parallel=par, fused=opt.fused)
        ref = estimate(g, system, opt, model=c.cm)
        chips = par.tp * par.pp
        assert got.time_s == pytest.approx(ref.time_s, rel=1e-12)
        assert got.energy_j == pytest.approx(ref.energy_j * chips, rel=1e-12)
        assert got.flops == pytest.approx(ref.flops * chips, rel=1e-12)
        assert got.bytes_main == pytest.approx(ref.bytes_main * chips, rel=1e-12)
    assert c.graph_builds < c.misses  # the decomposition did answer some steps


def test_memo_returns_the_same_answer_and_counts_hits():
    c = StepCoster("qwen2.5-0.5b", load_hardware(TOY))
    a = c.step(((128, 0),))
    b = c.step(((128, 0),))
    assert a == b and c.calls == 2 and c.misses == 1 and c.shape_hit_rate == 0.5 and c.memo_hit_rate == 0.5
    assert c.step(((1, 128),) * 3) == c.exact(((1, 128),) * 3)
