"""Serving-stack profiles (hwmodels/stack.py): loading, errors, the step-time rule, and how predict,
the serving step coster and `llmsim serve` use them. Hand-checkable numbers on the toy chip."""

import dataclasses
import json
from pathlib import Path

import pytest

from hwmodels.errors import SpecError
from hwmodels.loader import check_files
from hwmodels.jsonschema import json_schema
from hwmodels.stack import DEFAULT_STACK, Stack, list_stacks, load_stack
from llmsim.cli import main
from sim.predict import predict

TOY = str(Path(__file__).parents[1] / "data" / "toy-chip.yaml")

STACK_YAML = """version: 1
kind: stack
name: toy-stack
source: round numbers for tests
kernels: {{attention_prefill: flash, attention_decode: paged, source: test}}
runtime:
  step_overhead: 1 ms
  per_request_overhead: 10 us
  overlap: {overlap}
  cuda_graphs: true
  eager_launch: 0 s
  source: test
scheduler: {{chunked_prefill: true, max_num_batched_tokens: 2048, max_num_seqs: 64, source: test}}
"""


def _stack_file(tmp_path, overlap="false", text=None) -> str:
    p = tmp_path / "toy-stack.yaml"
    p.write_text(text if text is not None else STACK_YAML.format(overlap=overlap))
    return str(p)


def test_catalog_stacks_load_and_check():
    names = list_stacks()
    assert {"vllm", "sglang", "tensorrt-llm", "ideal"} <= set(names)
    assert DEFAULT_STACK == "vllm"
    for n in names:
        s = load_stack(n)
        assert s.name == n and s.source and all(s.sources.values())
    assert load_stack("ideal").is_ideal and not load_stack("vllm").is_ideal
    assert all(not problems for _, problems in check_files([f"hwmodels/catalog/stacks/{n}.yaml" for n in names]))
    kinds = [s["properties"]["kind"] for s in json_schema()["oneOf"]]
    assert {"const": "stack"} in kinds


def test_bad_stack_file_names_file_line_and_suggests(tmp_path):
    bad = STACK_YAML.format(overlap="false").replace("step_overhead: 1 ms", "step_overhed: 1 ms")
    with pytest.raises(SpecError) as e:
        load_stack(_stack_file(tmp_path, text=bad))
    msg = str(e.value)
    assert "toy-stack.yaml:7:3: runtime.step_overhed" in msg and "did you mean 'step_overhead'" in msg
    bad = STACK_YAML.format(overlap="false").replace("per_request_overhead: 10 us", "per_request_overhead: 10")
    problems = check_files([_stack_file(tmp_path, text=bad)])[0][1]
    assert problems and "per_request_overhead" in str(problems[0])
    with pytest.raises(SpecError, match="did you mean vllm"):
        load_stack("vlm")


def test_step_time_rule_by_hand(tmp_path):
    s = load_stack(_stack_file(tmp_path))
    # not overlapped: kernels 5 ms + 1 ms + 8 x 10 us
    assert s.step_time(5e-3, 100, 8, decode=True) == pytest.approx(6.08e-3)
    o = load_stack(_stack_file(tmp_path, overlap="true"))
    assert o.step_time(5e-3, 100, 8, decode=True) == pytest.approx(5e-3)  # CPU work hidden
    assert o.step_time(0.5e-3, 100, 8, decode=True) == pytest.approx(1.08e-3)  # CPU-bound step
    eager = Stack(**{**s.__dict__, "eager_launch_s": 5e-6, "cuda_graphs": False})
    # 1,000 eager launches at 5 us = 5 ms > 2 ms of kernels; then the CPU work adds
    assert eager.step_time(2e-3, 1000, 1, decode=True) == pytest.approx(5e-3 + 1e-3 + 10e-6)
    ideal = load_stack("ideal")
    assert ideal.step_time(1.234e-3, 10_000, 500, decode=False) == 1.234e-3


def test_predict_adds_the_stack_runtime_to_every_step(tmp_path):
    stack = _stack_file(tmp_path)
    base = predict("qwen2.5-0.5b", TOY, 4, 128, 9, stack="ideal")
    p = predict("qwen2.5-0.5b", TOY, 4, 128, 9, stack=stack)
    step = 1e-3 + 4 * 10e-6
    assert p.ttft_s == pytest.approx(base.ttft_s + step)
    assert p.tpot_s == pytest.approx(base.tpot_s + step)
    assert p.stack == "toy-stack" and base.stack == "ideal"
    # the added time is idle time: energy = kernel energy + idle power x the extra seconds
    extra = p.e2e_s - base.e2e_s
    assert extra == pytest.approx(9 * step)
    assert p.joules_per_output_token * 36 == pytest.approx(base.joules_per_output_token * 36 + 100 * extra)


def test_request_beyond_max_position_predicts_with_a_warning():
    p = predict("gpt-2", "h100-sxm", 1, 2000, 10)
    assert p.warnings and "max_position_embeddings 1024" in p.warnings[0]
    assert p.e2e_s > 0 and p.to_dict()["warnings"] == list(p.warnings)
    assert predict("gpt-2", "h100-sxm", 1, 500, 10).warnings == ()


def test_step_coster_uses_the_stack(tmp_path):
    from sim.step import StepCoster
    from workloads import Batch, build_graph
    from sim.estimate import estimate
    from hwmodels.loader import load_system

    stack = _stack_file(tmp_path)
    sysobj = load_system(TOY)
    sc = StepCoster("qwen2.5-0.5b", sysobj, stack=stack)
    seqs = ((1, 100), (1, 50), (1, 10))
    kernel = estimate(build_graph("qwen2.5-0.5b", Batch(seqs)), sysobj, model=sc.cm).time_s
    assert sc.step(seqs).time_s == pytest.approx(kernel + 1e-3 + 3 * 10e-6)
    assert sc.exact(seqs).time_s == pytest.approx(sc.step(seqs).time_s)
    # the chips idle while the stack's runtime runs (as predict counts it): the toy chip's 100 W x 1.03 ms
    bare = StepCoster("qwen2.5-0.5b", sysobj, stack="ideal")
    assert sc.step(seqs).energy_j == pytest.approx(bare.step(seqs).energy_j + 100 * (1e-3 + 3 * 10e-6))
    # a decode run's steps (decode_steps) count it the same way as one step at a time
    runs = sc.decode_steps([100, 50, 10], 3)
    assert runs is not None
    for k in range(3):
        one = sc.step(tuple((1, c + k) for c in (100, 50, 10)))
        assert runs[1][k] == pytest.approx(one.energy_j) and runs[0][k] == pytest.approx(one.time_s)


def test_predict_cli_names_the_stack(capsys):
    rc = main(["predict", "--hw", "h100-sxm", "--model", "llama-3.1-8b", "--batch", "2", "--input-len", "64",
               "--output-len", "8", "--json", "--stack", "sglang"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["stack"] == "sglang" and d["warnings"] == [] and "calibration" in d


def test_serve_long_prompts_follow_the_stack_and_never_exit_0_when_all_rejected(capsys):
    args = ["serve", "--hw", "h100-sxm", "--model", "llama-3.1-8b", "--rate", "inf", "--num-requests", "4",
            "--input-len", "20000", "--output-len", "4", "--json"]
    assert main(args) == 0  # vllm: chunked prefill (8192-token budget) by default
    d = json.loads(capsys.readouterr().out)
    assert d["requests_completed"] == 4 and d["scheduler"] == "sarathi" and d["stack"] == "vllm"
    assert main(args + ["--stack", "ideal"]) == 3  # whole-prompt steps of at most 16,384 tokens
    out = capsys.readouterr()
    d = json.loads(out.out)
    assert d["requests_completed"] == 0 and d["warnings"]
    assert "every request was rejected" in out.err and "infeasible" in out.err


def test_published_e2e_rows_are_scored_with_their_engines_stack():
    from sim.validation.published import load_e2e, score_e2e

    df = load_e2e()
    assert set(df["stack"]) <= {"", "vllm"} and (df.loc[df["engine"] == "vLLM", "stack"] == "vllm").all()
    sub = df[df["engine"] == "vLLM"].head(1)
    own = score_e2e(sub)
    ideal = score_e2e(sub, stack="ideal")
    assert list(own["stack_used"]) == ["vllm"] and list(ideal["stack_used"]) == ["ideal"]
    assert own["predicted"].iloc[0] > ideal["predicted"].iloc[0]  # e2e_s: the runtime adds time


def _toy_with_sfu(tmp_path, overlaps: bool) -> str:
    """The toy chip plus a special-function unit of 1 T exp/s (round numbers)."""
    name = f"toy-sfu-{'ov' if overlaps else 'serial'}"
    src = Path(TOY).read_text().replace("name: toy-chip", f"name: {name}").replace(
        "  - kind: vector\n",
        f"  - kind: special\n    peak: {{fp32: 1 TFLOP/s}}\n    overlaps_matrix: {str(overlaps).lower()}\n"
        "  - kind: vector\n")
    p = tmp_path / f"{name}.yaml"
    p.write_text(src)
    return str(p)


def test_softmax_exponentials_on_the_special_unit_by_hand(tmp_path):
    import math

    from hwmodels.loader import load_chip
    from sim.cost import PINGPONG_WARPGROUPS, CostModel, CostOptions
    from workloads import Batch, build_graph

    g = build_graph("qwen2.5-0.5b", Batch.prefill(1, 1280))  # 14 query heads of head_dim 64
    op = next(o for o in g.ops if o.kind == "attention")
    assert op.flops_special == op.flops_vector / 5  # one exp per score, inside the 5 softmax FLOPs
    blocks = math.ceil(1280 / 128) * 14
    wq = math.ceil(blocks / 100) * 100 / blocks  # 100 cores: waves of blocks
    mat = op.flops_matrix / 100e12  # toy: bf16 matrix 100 TFLOP/s
    soft = op.flops_special / 1e12 + (op.flops_vector - op.flops_special) / 10e12  # exps at 1 T/s, rest 10 TFLOP/s

    def t(path, mode):
        return CostModel(load_chip(path), CostOptions(softmax=mode)).op_cost(op).compute_s

    serial, ov = _toy_with_sfu(tmp_path, False), _toy_with_sfu(tmp_path, True)
    assert t(serial, "ideal") == pytest.approx(max(mat, op.flops_vector / 10e12) * wq)  # today's kernel-only rule
    assert t(serial, None) == t(serial, "ideal")
    assert t(serial, "serial") == pytest.approx((mat + soft) * wq)
    assert t(serial, "overlapped") == t(serial, "serial")  # this unit cannot run under the matrix work
    assert t(ov, "overlapped") == pytest.approx(max(mat, (mat + soft) / PINGPONG_WARPGROUPS) * wq)
    assert t(TOY, "serial") == t(TOY, "ideal")  # no special unit listed: the vector unit runs the exps


def test_head_dim_matters_at_fixed_flops_under_a_real_kernel():
    """Same matrix FLOPs, half the head_dim = twice the scores and exponentials: an FA2-style kernel on
    the A100 is slower at head_dim 64; the kernel-only model cannot tell them apart."""
    import pandas as pd

    from sim.ops import predict_ops

    rows = pd.DataFrame([{"hardware": "a100-sxm", "op": "attention", "dtype": "bf16", "batch": 1, "seqlen_q": s,
                          "seqlen_kv": s, "heads": 32, "kv_heads": 32, "head_dim": d, "causal": True, "phase": "prefill"}
                         for s, d in ((4096, 128), (int(4096 * 2 ** 0.5), 64))])
    ideal = predict_ops(rows, stack="ideal")["time_s"].to_numpy()
    real = predict_ops(rows, stack="vllm")["time_s"].to_numpy()
    assert real[1] / real[0] > ideal[1] / ideal[0] + 0.05


def test_a_stack_file_is_read_within_the_limits(tmp_path):
    """A stack path goes through the same bounded, located read as hardware files: a device file is
    refused without reading it, bytes that are not UTF-8 are located."""
    import pytest

    from hwmodels.errors import SpecError
    from hwmodels.stack import load_stack

    with pytest.raises(SpecError):
        load_stack("/dev/zero")
    bad = tmp_path / "bad-stack.yaml"
    bad.write_bytes(b"kind: stack\nname: \xff\n")
    with pytest.raises(SpecError, match="not a text file"):
        load_stack(str(bad))


def _toy_with_l2(tmp_path) -> str:
    """The toy chip plus a 200 MiB, 5 TB/s L2 (100 ns) and a 500 ns HBM latency."""
    src = Path(TOY).read_text().replace("name: toy-chip", "name: toy-l2").replace(
        "  - {name: hbm, kind: dram, capacity: 10 GiB, bandwidth: 1 TB/s}",
        "  - {name: l2, kind: cache, capacity: 200 MiB, bandwidth: 5 TB/s, latency: 100 ns}\n"
        "  - {name: hbm, kind: dram, capacity: 10 GiB, bandwidth: 1 TB/s, latency: 500 ns}")
    p = tmp_path / "toy-l2.yaml"
    p.write_text(src)
    return str(p)


def test_decode_kernel_split_partials_and_pipeline_by_hand(tmp_path):
    """qwen2.5-0.5b (14 query heads, 2 KV heads, head_dim 64), one request at 1,000 tokens, on a
    100-core toy chip with an L2: 2 units < 0.8 x 200 slots, so split = min(ceil(200 / 2), ceil(1000 /
    128)) = 8; 16 CTAs; partials 14 heads x 8 splits x (64 + 1) fp32 = 29,120 B written and read back
    in L2; Little's law: 16 CTAs hold all 512 kB in flight, so the stream takes at least one 500 ns
    latency; the combine kernel adds its round trip to L2 (100 ns)."""
    from hwmodels.loader import load_chip
    from hwmodels.stack import DecodeKernel
    from sim.cost import CostModel, CostOptions, kv_read_bytes
    from workloads import Batch, build_graph

    chip = load_chip(_toy_with_l2(tmp_path))
    op = next(o for o in build_graph("qwen2.5-0.5b", Batch.decode(1, 1000)).ops if o.kind == "attention")
    dk = DecodeKernel(page_size=16, split_ctas_per_core=2, kv_tile_tokens=128, split_threshold=0.8,
                      split_gqa_only=True, split_partials=True, pipeline_fill=True)
    c = CostModel(chip, CostOptions(decode_kernel=dk)).op_cost(op)
    assert c.detail == "split-kv 8, 16 cores"
    levels = dict(c.bytes_by_level)
    assert levels["l2"] == 2 * 14 * 8 * 65 * 4
    hbm = levels["hbm"]
    assert kv_read_bytes(op) <= hbm < 1.01 * kv_read_bytes(op)  # K, V (+ the query and output)
    assert c.memory_s == pytest.approx(max(hbm / 1e12, 500e-9))
    assert c.time_s == pytest.approx(max(c.compute_s, c.memory_s) + 500e-9 + 100e-9)
    # the kernel-only model: split to fill one CTA per core in 256-token chunks, no partials, no floor
    base = CostModel(chip, CostOptions()).op_cost(op)
    assert base.detail == "split-kv 4, 8 cores" and "l2" not in dict(base.bytes_by_level)
    assert base.memory_s == pytest.approx(hbm / 1e12 / 0.08)  # 8 of 100 cores: their share of the bandwidth
    # a CTA per query head: 14 units, the group's 7 query heads re-read its K and V through L2
    pq = CostModel(chip, CostOptions(decode_kernel=DecodeKernel(gqa="per_query_head"))).op_cost(op)
    assert dict(pq.bytes_by_level)["l2"] == pytest.approx(kv_read_bytes(op) * 7)
    assert pq.detail == "split-kv 4, 56 cores, per query head"
    # split-KV only for grouped-query models: a multi-head model's decode runs unsplit
    mha = next(o for o in build_graph("llama-2-7b", Batch.decode(1, 1000)).ops if o.kind == "attention")
    assert CostModel(chip, CostOptions(decode_kernel=dk)).op_cost(mha).detail == "split-kv 1, 32 cores"


def test_short_contexts_cannot_keep_the_memory_busy(tmp_path):
    """Little's law: 2 CTAs of 32 tokens each hold their whole KV (16 kB) in flight; 32 kB per 500 ns
    is 64 GB/s, far below the toy's 1 TB/s: the kernel streams at that rate, not at the bandwidth."""
    from hwmodels.loader import load_chip
    from hwmodels.stack import DecodeKernel
    from sim.cost import CostModel, CostOptions
    from workloads import Batch, build_graph

    chip = load_chip(_toy_with_l2(tmp_path))
    op = next(o for o in build_graph("qwen2.5-0.5b", Batch.decode(1, 32)).ops if o.kind == "attention")
    dk = DecodeKernel(kv_tile_tokens=128, pipeline_fill=True)
    c = CostModel(chip, CostOptions(decode_kernel=dk)).op_cost(op)
    assert c.detail == "split-kv 1, 2 cores"
    assert c.memory_s == pytest.approx(500e-9)  # kvb x latency / kvb in flight


def test_stack_decode_kernel_loads_and_reaches_the_cost_model():
    from hwmodels.stack import DecodeKernel
    from sim.cost import CostOptions

    v = load_stack("vllm")
    assert v.decode_kernel.page_size == 16 and v.decode_kernel.split_partials
    assert load_stack("ideal").decode_kernel == DecodeKernel()
    assert v.cost_options(CostOptions()).decode_kernel == v.decode_kernel
    mine = DecodeKernel(gqa="per_query_head")
    assert v.cost_options(CostOptions(decode_kernel=mine)).decode_kernel == mine  # given: kept
    assert v.to_dict()["decode_attention"]["kv_tile_tokens"] == 128


def test_decode_kernel_bad_values_are_located(tmp_path):
    text = STACK_YAML.format(overlap="false").replace(
        "kernels: {attention_prefill: flash, attention_decode: paged, source: test}",
        "kernels:\n  attention_prefill: flash\n  attention_decode: paged\n  source: test\n"
        "  decode_attention: {gqa: per_kv, page_size: 16, split_ctas_per_core: 2, kv_tile_tokens: 128,\n"
        "    split_threshold: 0.8, split_gqa_only: true, split_partials: true, pipeline_fill: true, source: t}")
    with pytest.raises(SpecError, match="gqa"):
        load_stack(_stack_file(tmp_path, text=text))


def test_decode_tile_the_stream_cannot_hide_by_hand(tmp_path):
    """q_tile_rows: qwen2.5-0.5b (14 query heads, 2 KV heads, head_dim 64), one request at 32 tokens on
    the 100-core toy chip: 2 CTAs (one per KV head), one wave, one CTA per core. Each CTA computes one
    64 x 128 tile of (query, key) pairs alone: per pair 4 x 64 matrix FLOPs at 100 TFLOP/s over 100
    cores (1 TFLOP/s a core: 256 ps) and 5 softmax FLOPs at 10 TFLOP/s over 100 cores (0.1 TFLOP/s a
    core: 50 ps), 8,192 pairs x 306 ps = 2.507 us on top of the 500 ns Little's-law stream. The toy
    lists a special unit (a GPU's facts key on it); the softmax stays on the vector unit (kernel-only)."""
    from hwmodels.loader import load_chip
    from hwmodels.stack import DecodeKernel
    from sim.cost import CostModel, CostOptions
    from workloads import Batch, build_graph

    path = Path(_toy_with_l2(tmp_path))
    path.write_text(path.read_text().replace("memory:", "  - kind: special\n    peak: {fp32: 1 TFLOP/s}\nmemory:", 1))
    chip = load_chip(str(path))
    tiled0 = DecodeKernel(kv_tile_tokens=128, pipeline_fill=True, q_tile_rows=64)
    op = next(o for o in build_graph("qwen2.5-0.5b", Batch.decode(1, 32)).ops if o.kind == "attention")
    base = DecodeKernel(kv_tile_tokens=128, pipeline_fill=True)
    tiled = dataclasses.replace(base, q_tile_rows=64)
    c0 = CostModel(chip, CostOptions(decode_kernel=base)).op_cost(op)
    c1 = CostModel(chip, CostOptions(decode_kernel=tiled)).op_cost(op)
    assert c0.memory_s == pytest.approx(500e-9)
    assert c1.memory_s == pytest.approx(500e-9 + 64 * 128 * (256 / 1e12 + 5 / 0.1e12))
    # a loop that waits for each load (FlashAttention-2: K, then V) holds one tile, half its KV: twice the stream
    one = CostModel(chip, CostOptions(decode_kernel=dataclasses.replace(base, kv_tiles_in_flight=1))).op_cost(op)
    assert one.memory_s == pytest.approx(1000e-9)
    # two CTAs resident on a core share it: 200 requests x 2 KV heads = 400 CTAs over 200 slots
    # (2 per core): 2 waves x 2 resident CTAs x one tile each
    big = next(o for o in build_graph("qwen2.5-0.5b", Batch.decode(200, 32)).ops if o.kind == "attention")
    two = dataclasses.replace(tiled, split_ctas_per_core=2)
    c2 = CostModel(chip, CostOptions(decode_kernel=two)).op_cost(big)
    c3 = CostModel(chip, CostOptions(decode_kernel=dataclasses.replace(two, q_tile_rows=0))).op_cost(big)
    assert c2.memory_s - c3.memory_s == pytest.approx(2 * 2 * 64 * 128 * (256 / 1e12 + 5 / 0.1e12))
    # a KV stream at half the share of the bandwidth: the bandwidth-bound part doubles
    long = next(o for o in build_graph("qwen2.5-0.5b", Batch.decode(64, 4096)).ops if o.kind == "attention")
    half = CostModel(chip, CostOptions(decode_kernel=dataclasses.replace(base, kv_stream_efficiency=0.5)))
    full = CostModel(chip, CostOptions(decode_kernel=base))
    assert half.op_cost(long).memory_s == pytest.approx(2 * full.op_cost(long).memory_s)
    # a chip without the special unit (not a GPU: a wafer's cores are not SMs) pays no tile
    nogpu = load_chip(_toy_with_l2(tmp_path))
    assert CostModel(nogpu, CostOptions(decode_kernel=tiled0)).op_cost(op).memory_s == pytest.approx(500e-9)


def test_decode_tiles_pad_the_compute_by_hand(tmp_path):
    """q_tile_rows pads the steady-state work too: the kernel issues its MMA and softmax on whole tiles.
    qwen2.5-0.5b (14 query heads, 2 KV heads) decoding one request after 4,095 cached tokens (4,096 keys
    with the new one: 32 whole tiles of 128) on the toy chip with a special unit: a grouped kernel packs each KV head's 7 query heads
    into a 64-row tile (x 64 / 7 the work), a per-query-head kernel puts 1 row in each (x 64); the
    steady-state compute grows by exactly that factor (kernel-only softmax: the matrix work binds).
    Chips without the special unit (not GPUs) are not padded."""
    from hwmodels.loader import load_chip
    from hwmodels.stack import DecodeKernel
    from sim.cost import CostModel, CostOptions
    from workloads import Batch, build_graph

    path = Path(_toy_with_l2(tmp_path))
    path.write_text(path.read_text().replace("memory:", "  - kind: special\n    peak: {fp32: 1 TFLOP/s}\nmemory:", 1))
    chip = load_chip(str(path))
    op = next(o for o in build_graph("qwen2.5-0.5b", Batch.decode(1, 4095)).ops if o.kind == "attention")
    base = DecodeKernel(kv_tile_tokens=128, pipeline_fill=True)
    for gqa, pad in (("grouped", 64 / 7), ("per_query_head", 64.0)):
        plain = CostModel(chip, CostOptions(decode_kernel=dataclasses.replace(base, gqa=gqa))).op_cost(op)
        tiled = CostModel(chip, CostOptions(decode_kernel=dataclasses.replace(base, gqa=gqa, q_tile_rows=64))).op_cost(op)
        assert tiled.compute_s == pytest.approx(pad * plain.compute_s)
    nogpu = load_chip(_toy_with_l2(tmp_path))
    tiled = dataclasses.replace(base, q_tile_rows=64)
    assert CostModel(nogpu, CostOptions(decode_kernel=tiled)).op_cost(op).compute_s == \
        pytest.approx(CostModel(nogpu, CostOptions(decode_kernel=base)).op_cost(op).compute_s)


def test_decode_softmax_hidden_under_the_padded_matrix_work(tmp_path):
    """softmax_hidden: with the serial softmax on a chip whose special unit overlaps the matrix unit, the
    steady state is matrix + max(0, softmax - hidden x matrix); 0 keeps them in turn."""
    from hwmodels.loader import load_chip
    from hwmodels.stack import DecodeKernel
    from sim.cost import CostModel, CostOptions
    from workloads import Batch, build_graph

    path = Path(_toy_with_l2(tmp_path))
    path.write_text(path.read_text().replace(
        "memory:", "  - kind: special\n    peak: {fp32: 1 TFLOP/s}\n    overlaps_matrix: true\nmemory:", 1))
    chip = load_chip(str(path))
    op = next(o for o in build_graph("qwen2.5-0.5b", Batch.decode(1, 4096)).ops if o.kind == "attention")
    dk = DecodeKernel(kv_tile_tokens=128, pipeline_fill=True, q_tile_rows=64)
    turn = CostModel(chip, CostOptions(softmax="serial", decode_kernel=dk)).op_cost(op).compute_s
    hid = CostModel(chip, CostOptions(softmax="serial", decode_kernel=dataclasses.replace(dk, softmax_hidden=1.0)))
    # per pair: 256 matrix FLOPs at 100 TFLOP/s (2.56 ps), 1 exp at 1 T/s (1 ps) + 4 FLOPs at 10 TFLOP/s (0.4 ps)
    assert turn == pytest.approx(hid.op_cost(op).compute_s * (2.56 + 1.4) / 2.56)


@pytest.mark.parametrize("stack", ["vllm", "ideal"])
def test_decode_attention_time_grows_with_context_and_batch(stack):
    """Property: under a stack's decode kernel, more context or more requests never take less time."""
    from hwmodels.loader import load_system
    from sim.cost import CostModel, CostOptions
    from workloads import Batch, build_graph

    opts = load_stack(stack).cost_options(CostOptions(cuda_graphs=True))
    cm = CostModel(load_system("h100-sxm"), opts)

    def t(b, kv):
        return cm.op_cost(next(o for o in build_graph("llama-3.1-8b", Batch.decode(b, kv)).ops
                               if o.kind == "attention")).time_s

    for b in (1, 8, 64, 256):
        ts = [t(b, kv) for kv in (16, 128, 129, 512, 2048, 8192, 32768)]
        assert all(x <= y * (1 + 1e-12) for x, y in zip(ts, ts[1:])), (b, ts)
    for kv in (32, 1024, 8192):
        ts = [t(b, kv) for b in (1, 2, 16, 100, 132, 133, 264, 512)]
        assert all(x <= y * (1 + 1e-12) for x, y in zip(ts, ts[1:])), (kv, ts)
