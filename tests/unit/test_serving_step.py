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


BLOCK_CASES = [
    ("llama-3.1-8b", "h100-sxm", "bf16", CostOptions()),
    ("gemma-2-27b", "h100-sxm", "bf16", CostOptions()),  # sliding + global layers, softcaps, embedding scale
    ("qwen2.5-7b", "a100-sxm", "w4a16", CostOptions(fused=True, dequant_per_tile=True)),  # bias, dequant ops
    ("llama-3.1-8b", TOY, "fp8", CostOptions()),  # no cache level
    ("llama-3.1-8b", "groq-lpu", "fp8", CostOptions()),  # SRAM home
    ("qwen3-30b-a3b", "mi300x", "bf16", CostOptions()),  # MoE: routed experts padded per expert, 128 experts
    ("mixtral-8x7b", "h200", "fp8", CostOptions()),  # MoE, 8 experts, quantized expert GEMMs
]


@pytest.mark.parametrize("model,hw,quant,opt", BLOCK_CASES, ids=[f"{c[0]}-{c[1][-12:]}" for c in BLOCK_CASES])
def test_block_priced_steps_equal_the_whole_graph(model, hw, quant, opt):
    """(T, R) parts priced a block of token counts at a time (from the second miss of a block, whatever
    R): the ops that depend on T alone over the block's token counts, continued by the ops that depend
    on R alone (priced once per R), give every step of that block the whole graph's price (1e-9; the
    non-attention ops are the builder's own, priced elementwise by the same formulas, summed in the
    same order)."""
    system = load_hardware(hw)
    c = StepCoster(model, system, quant=quant, options=opt, stack="ideal")
    rng = random.Random(11)
    shapes = [((rng.randint(300, 511), 0),) for _ in range(6)]  # one prompt, one block of token counts
    shapes += [((rng.randint(300, 480), 0), (1, rng.randint(1, 900)), (rng.randint(2, 30), 40))
               for _ in range(6)]  # a prefill, a decode, a chunk: R = 3
    for seqs in shapes:
        got, ref = c.step(seqs), c.exact(seqs)
        for f in ("time_s", "energy_j", "flops", "bytes_main", "kernels"):
            assert getattr(got, f) == pytest.approx(getattr(ref, f), rel=1e-9), f
    assert c.blocks == 1  # one block of token counts, whatever the request count
    assert sorted(c._heads) == [1, 3]  # the ops that depend on R (LM head, sampling) priced once per R
    # the first miss of the block only: the steps of R = 3 continue the sums of the ops that depend on
    # the token count alone with R = 3's head ops (priced at R = 3's first miss)
    assert c.graph_builds == 1


def test_block_fp8_checkpoint_prices_its_blocks_in_every_part(tmp_path):
    """--quant fp8 on a checkpoint stored in block FP8 (its quantization_config) runs the checkpoint's blocks
    (Quantization.for_checkpoint, as build_graph applies it): the coster's token blocks and head ops see the same
    scheme as the whole graph (before, they priced plain fp8: 2.9% off on Qwen3-8B at 300-511 tokens)."""
    import json

    cfg = json.loads((Path(__file__).parents[2] / "workloads" / "catalog" / "models" / "qwen3-8b.json").read_text())
    cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                  "weight_block_size": [128, 128]}
    path = tmp_path / "qwen3-8b-fp8.json"
    path.write_text(json.dumps(cfg))
    c = StepCoster(str(path), load_hardware("h100-sxm"), quant="fp8", stack="ideal")
    assert c.quant.block_scaled
    rng = random.Random(11)
    for seqs in [((rng.randint(300, 511), 0),) for _ in range(4)]:
        got, ref = c.step(seqs), c.exact(seqs)
        assert got.time_s == pytest.approx(ref.time_s, rel=1e-9)
    assert c.blocks == 1


TP_BLOCK_CASES = [
    ("llama-3.1-70b", "hgx-h100-8", 4, "ideal"),  # all-reduces over NVLink: NCCL's algorithm by message size
    ("llama-3.1-70b", "hgx-h100-8", 8, "vllm"),  # vLLM's custom all-reduce below 8 MiB, NCCL above
    ("qwen3-30b-a3b", "hgx-h100-8", 2, "ideal"),  # MoE with tensor-parallel experts
    ("mixtral-8x7b", "hgx-a100-8", 4, "vllm"),
    # expert parallelism: the busiest rank's expected load per token count (uniform routing: alike ranks),
    # all-to-alls over the block's sizes
    ("qwen3-30b-a3b", "hgx-h100-8", (4, 4), "vllm"),
    ("mixtral-8x7b", "hgx-h100-8", (2, 2), "ideal"),
    ("deepseek-v2-lite", "hgx-h100-8", (2, 2), "vllm"),  # MLA + MoE under EP: the split sides as well
]


@pytest.mark.parametrize("model,hw,tp,stack", TP_BLOCK_CASES, ids=[f"{c[0]}-tp{c[2]}" for c in TP_BLOCK_CASES])
def test_block_priced_steps_equal_the_whole_graph_under_tensor_parallelism(model, hw, tp, stack):
    """Tensor- and expert-parallel replicas price token blocks too: a block's collectives (bytes over the token
    counts) are priced by the same collective formula once per distinct size (CostModel._collective), the
    busiest expert-parallel rank's load per token count (workloads.routing.expected_max_load), the rest as
    arrays. ``tp``: a tensor-parallel degree, or (tp, ep)."""
    tp, ep = tp if isinstance(tp, tuple) else (tp, 1)
    c = StepCoster(model, load_hardware(hw), parallel=Parallelism(tp=tp, ep=ep), stack=stack)
    rng = random.Random(11)
    shapes = [((rng.randint(300, 511), 0),) for _ in range(4)]
    shapes += [((rng.randint(300, 480), 0), (1, rng.randint(1, 900)), (rng.randint(2, 30), 40)) for _ in range(4)]
    for seqs in shapes:
        got, ref = c.step(seqs), c.exact(seqs)
        for f in ("time_s", "energy_j", "flops", "bytes_main", "kernels"):
            assert getattr(got, f) == pytest.approx(getattr(ref, f), rel=1e-9), f
    assert c.blocks == 1 and c.graph_builds == 1


MLA_CASES = [("deepseek-v2-lite", hw, q, Parallelism(tp=tp, ep=ep)) for q in ("bf16", "fp8", "fp8-block")
             for hw, tp, ep in (("h100-sxm", 1, 1), ("hgx-h100-8", 2, 1))]
MLA_CASES += [("deepseek-v2-lite", "hgx-h100-8", "fp8-block", Parallelism(tp=2, ep=2)),
              ("deepseek-v3", "hgx-h200-8", "fp8", Parallelism(tp=8))]  # fp8 on its block-FP8 checkpoint


@pytest.mark.parametrize("model,hw,quant,par", MLA_CASES,
                         ids=[f"{m[-4:]}-{q}-tp{p.tp}-ep{p.ep}" for m, _, q, p in MLA_CASES])
def test_mla_steps_priced_in_parts_equal_the_whole_graph(model, hw, quant, par):
    """An MLA model's step (DeepSeek-V2-Lite, DeepSeek-V3: MLA + MoE): the ops that depend on the prefill/decode
    split (kv_b_proj over the prefill side's new + cached rows, the absorbed q/v GEMMs over the decodes) priced per
    side shape, every other op by (T, R) from token blocks, give the whole graph's price (1e-9) for prefill-only,
    decode-only and mixed steps. Under a block-scaled scheme (fp8-block; DeepSeek-V3's fp8 checkpoint) the
    activation quantizations of o_proj and kv_b_proj (whose fresh bytes are what v_absorb, the attention core or
    rope wrote) are priced per (T, R, split) key from the step's own neighbours (cut_ops)."""
    c = StepCoster(model, load_hardware(hw), quant=quant, parallel=par, stack="vllm")
    assert c.quant.block_scaled == (quant != "bf16" and (quant == "fp8-block" or model == "deepseek-v3"))
    rng = random.Random(17)
    prefills = [((rng.randint(300, 511), 0),) for _ in range(5)]  # one block of token counts
    prefills += [((rng.randint(2, 200), 0), (rng.randint(2, 90), rng.randint(1, 900))) for _ in range(4)]  # chunks
    decodes = [tuple((1, rng.randint(1, 4000)) for _ in range(r)) for r in (1, 3, 3, 7, 7, 1)]
    mixed = [((rng.randint(300, 480), 0), (1, rng.randint(1, 900)), (rng.randint(2, 30), 40)) for _ in range(4)]
    mixed += [((rng.randint(2, 40), rng.randint(1, 99)),) + tuple((1, rng.randint(1, 3000)) for _ in range(5))
              for _ in range(4)]
    for seqs in prefills + decodes + mixed:
        got, ref = c.step(seqs), c.exact(seqs)
        for f in ("time_s", "energy_j", "flops", "bytes_main", "kernels"):
            assert getattr(got, f) == pytest.approx(getattr(ref, f), rel=1e-9), (seqs, f)
    # a whole graph at the first miss of each block of token counts only (as for other models)
    blocks = {sum(n for n, _ in seqs) // c.BLOCK for seqs in prefills + decodes + mixed}
    assert c._apart and c.graph_builds == c.blocks == len(blocks)
    # each side priced once per shape (the steps priced in parts: all but those whole graphs): the prefill
    # sides' rows (new + cached; the cached ones read from the KV cache) and the decode sides' counts
    kv_rows = {(sum(n + k for n, k in seqs if not (n == 1 and k > 0)), sum(k for n, k in seqs if n != 1))
               for seqs in prefills + mixed}
    pre = {k[:2] for k in c._sides if k[0]}
    assert pre <= kv_rows and len(pre) >= len(kv_rows) - c.graph_builds and any(k[1] for k in pre)
    assert {k[2] for k in c._sides if k[2]} == {1, 3, 5, 7}
    assert all((k[0] == 0) != (k[2] == 0) for k in c._sides)  # one side each


PARTS_CASES = [("deepseek-v2-lite", Parallelism(), "fp8-block"), ("deepseek-v2-lite", Parallelism(tp=2, ep=2), "fp8-block"),
               ("deepseek-v2-lite", Parallelism(), "w4a16"), ("qwen3-8b", Parallelism(tp=2), "fp8-block"),
               ("llama-3.1-8b", Parallelism(), "fp8")]


@pytest.mark.parametrize("model,par,quant", PARTS_CASES, ids=[f"{m}-tp{p.tp}-{q}" for m, p, q in PARTS_CASES])
def test_a_steps_parts_are_its_whole_graphs_ops(model, par, quant):
    """other_ops + attention_ops + mla_split_ops + cut_ops of a step are the whole graph's ops, each once and
    field for field (fresh bytes included): under a block-scaled scheme o_proj's activation quantization (after
    the attention core, or MLA's v_absorb) and MLA's kv_b_proj's (after rope) are cut ops, marked fresh after the
    step's own neighbours. Before the cut ops, a model without MLA priced o_proj's after rope in token blocks
    (qwen3-8b fp8-block: its fresh_span rope's 2.5x the attention output's, 0.58 % off at 4,096-4,351 tokens)."""
    from sim.step import _same
    from workloads import Quantization
    from workloads.model import load_model
    from workloads.stepops import CUT_OPS, attention_ops, cut_ops, mla_split_ops, other_ops

    spec, q = load_model(model), Quantization.parse(quant)
    for seqs in (((300, 0),), ((1, 900), (1, 50)), ((40, 60), (1, 900), (7, 0))):
        whole = build_graph(spec, Batch(seqs), quant=q, parallel=par, cache=False).ops
        T, R = sum(n for n, _ in seqs), len(seqs)
        parts = other_ops(spec, T, R, q, par) + attention_ops(spec, seqs, q, par) + cut_ops(spec, seqs, q, par)
        if spec.attention == "mla":
            parts += mla_split_ops(spec, *StepCoster._mla_key(seqs), q, par)
        assert len(parts) == len(whole)
        by_name = {(o.layer, o.name): o for o in parts}
        assert len(by_name) == len(parts) and all(_same(o, by_name[(o.layer, o.name)]) for o in whole), seqs
        # o_proj's under a block-scaled scheme; kv_b_proj's too where an MLA step has a prefill side
        prefill = spec.attention == "mla" and any(not (n == 1 and k > 0) for n, k in seqs)
        want = set() if not q.block_scaled else CUT_OPS if prefill else {"attn.o_proj.act_quant"}
        assert {o.name for o in cut_ops(spec, seqs, q, par)} == want


def test_block_scaled_steps_of_many_tokens_equal_the_whole_graph():
    """A dense model under a block-scaled scheme in token blocks at 4,096-8,447 tokens, where o_proj's activation
    quantization finds the attention output in the cache only if what the kernel before it wrote fits: the
    attention core's output (cut_ops), not rope's q and k (before the cut ops: 0.57-0.58 % off). Without MLA it
    depends on T alone and is priced in the block (over one-request steps of its token counts): prefills,
    chunks over a cached context and steps with decodes of one block give the whole graph's price."""
    c = StepCoster("qwen3-8b", load_hardware("h100-sxm"), quant="fp8-block", stack="ideal")
    rng = random.Random(1)
    for lo in (4096, 8192, 4096, 8192, 4096, 4096, 4096):
        seqs = ((rng.randint(lo, lo + 200), rng.choice((0, 3000))),) + tuple((1, rng.randint(1, 4000))
                                                                            for _ in range(rng.randint(0, 40)))
        assert c.step(seqs).time_s == pytest.approx(c.exact(seqs).time_s, rel=1e-9)
    assert c.blocks == 2 and c.graph_builds == 2


def test_attention_ops_of_one_window_differ_only_in_layer_and_count():
    """The step coster prices an attention op once per (name, window) in a step (StepCoster._with_attention)
    and an MLA split op once per name in a side (StepCoster._side): layer kinds of the same window (DeepSeek's
    dense and MoE layers) give ops equal but for layer and count, and a price reads neither (the same figures
    from the op under another layer and count)."""
    from dataclasses import replace

    from sim.step import _same
    from workloads import Quantization
    from workloads.model import load_model
    from workloads.graph import _Builder, _mark_fresh
    from workloads.stepops import CUT_OPS, attention_ops, cut_ops, mla_split_ops

    spec = load_model("deepseek-v2-lite")
    assert len({k.tag for k in spec.layer_kinds}) == 2 and len({k.window for k in spec.layer_kinds}) == 1
    c = StepCoster(spec, load_hardware("h100-sxm"), stack="ideal")
    for seqs in (((300, 0),), ((1, 900), (1, 50)), ((40, 60), (1, 900), (7, 0))):
        ops = attention_ops(spec, seqs, Quantization.parse("bf16"), Parallelism())
        half = len(ops) // 2
        assert len(ops) == 2 * half and {o.layer for o in ops[:half]} != {o.layer for o in ops[half:]}
        for a, b in zip(ops[:half], ops[half:]):
            assert a.count != b.count and _same(a, replace(b, layer=a.layer, count=a.count))
            pa, pb = c.cm._price(a), c.cm._price(b)
            assert (pa.time_s, pa.energy_j, pa.flops, pa.bytes_main) == (pb.time_s, pb.energy_j, pb.flops, pb.bytes_main)
    # the same of the split ops (StepCoster._side prices each name once): kv_b_proj, q_absorb, v_absorb per kind
    ops = mla_split_ops(spec, 700, 300, 5, Quantization.parse("w4a16"), Parallelism())
    half = len(ops) // 2
    assert [o.name for o in ops[:half]] == [o.name for o in ops[half:]] and half == 6  # with their dequant ops
    for a, b in zip(ops[:half], ops[half:]):
        assert a.layer != b.layer and _same(a, replace(b, layer=a.layer, count=a.count))
        pa, pb = c.cm._price(a), c.cm._price(b)
        assert (pa.time_s, pa.energy_j, pa.flops, pa.bytes_main) == (pb.time_s, pb.energy_j, pb.flops, pb.bytes_main)
    # and of the cut ops (cut_ops builds the first kind of a window and gives the others its ops): built apart
    q = Quantization.parse("fp8-block")
    seqs = ((40, 60), (1, 900), (7, 0))
    ops = cut_ops(spec, seqs, q, Parallelism())
    assert [o.name for o in ops] == ["attn.kv_b_proj.act_quant", "attn.o_proj.act_quant"] * 2
    for kind, count in ((k, 3) for k in spec.layer_kinds):  # each kind's own attention block, as build_graph's
        b = _Builder(spec, Batch(seqs), q, Parallelism(), "auto")
        b.attention_block(kind, count)
        own = [o for o in _mark_fresh(b.ops) if o.name in CUT_OPS]
        theirs = [replace(o, layer=kind.tag, count=count) for o in ops[:2]]
        assert len(own) == 2 and all(_same(x, y) for x, y in zip(own, theirs)) and own[1].fresh_bytes > 0


def test_blocks_are_not_used_where_ops_depend_on_more_than_tokens():
    # a block-scaled scheme with the naive attention kernel (o_proj's activation quantization finds in the cache
    # what the kernel wrote along its output: the scores of every request), pipeline stages
    for model, par, quant, kernel in (("deepseek-v2-lite", Parallelism(), "fp8-block", "naive"),
                                      ("qwen3-8b", Parallelism(), "fp8-block", "naive"),
                                      ("llama-3.1-8b", Parallelism(pp=2), "bf16", "auto")):
        c = StepCoster(model, load_hardware("hgx-h100-8"), quant=quant, parallel=par, attention_kernel=kernel,
                       stack="ideal")
        for t in (300, 301, 302):
            c.step(((t, 0),))
        assert c.blocks == 0 and c.graph_builds == 3, model
    # the naive kernel under a block-scaled scheme: no part kept, every step its whole graph (before, the (T, R)
    # part of the first step of a (T, R) came back for the next: 2.0e-3 off here)
    c = StepCoster("qwen3-8b", load_hardware("h100-sxm"), quant="fp8-block", attention_kernel="naive", stack="ideal")
    for seqs in (((300, 0),), ((300, 0),), ((100, 2000), (200, 0)), ((299, 4000), (1, 0))):
        assert c.step(seqs).time_s == pytest.approx(c.exact(seqs).time_s, rel=1e-12)
    assert not c._base and c.graph_builds == 3  # the second step: the whole-shape memo
    assert StepCoster("deepseek-v2-lite", load_hardware("h100-sxm"), quant="fp8-block")._apart
    assert not StepCoster("deepseek-v2-lite", load_hardware("h100-sxm"), quant="fp8-block",
                          attention_kernel="naive")._apart


def test_one_time_parts_priced_by_an_earlier_coster_give_the_same_bits():
    """A coster of a context another coster priced before (same hardware content, options, placement, model)
    takes its token-count blocks and head ops from the shared parts and gives every step the same bits as
    a coster in an empty process; a coster of another context shares nothing."""
    from sim import step as S

    rng = random.Random(5)
    shapes = [((rng.randint(2, 1500), 0),) for _ in range(30)]
    shapes += [((rng.randint(2, 1500), 0), (1, rng.randint(1, 900))) for _ in range(20)]
    shapes += _batches(rng, n=30)

    def run(opt=CostOptions()):
        c = StepCoster("llama-3.1-8b", load_hardware("h100-sxm"), options=opt, stack="ideal")
        return c, [c.step(s) for s in shapes]

    S.shared_parts_clear()
    cold, a = run()
    assert cold.blocks >= 3 and cold.blocks_reused == 0 and cold.heads_reused == 0
    warm, b = run()
    assert warm.blocks_reused == warm.blocks == cold.blocks and warm.heads_reused == len(cold._heads) > 0
    assert a == b  # StepCost equality: every float bit for bit
    assert (warm.graph_builds, warm.misses) == (cold.graph_builds, cold.misses)  # the same paths taken
    other, _ = run(CostOptions(tiling=False))
    assert other.blocks_reused == 0 and other.heads_reused == 0
    S.shared_parts_clear()


def test_serving_run_after_others_equals_a_run_in_a_fresh_process():
    """Runs of one chip and model on 1 and 2 replicas, each after the shared parts were emptied (what a
    fresh process gives) and again after the other runs warmed them: the same requests, timeline and
    summary bit for bit (but the wall time)."""
    import pandas as pd

    from sim import step as S
    from sim.serving import simulate
    from workloads.trace import load_trace

    stream = list(load_trace("azure-conv-2023", limit=120).requests())

    def go(n):
        return simulate(stream, "h100-sxm", "llama-3.1-8b", replicas=n)

    cold = {}
    for n in (1, 2):
        S.shared_parts_clear()
        cold[n] = go(n)
    go(1)  # warms the parts both runs use
    for n in (2, 1):
        warm = go(n)
        pd.testing.assert_frame_equal(warm.requests, cold[n].requests, check_exact=True)
        pd.testing.assert_frame_equal(warm.timeline, cold[n].timeline, check_exact=True)
        drop = {k for k in warm.summary if "wall" in k or "rss" in k or k == "steps_per_s"}
        assert {k: v for k, v in warm.summary.items() if k not in drop} == \
               {k: v for k, v in cold[n].summary.items() if k not in drop}
    S.shared_parts_clear()
