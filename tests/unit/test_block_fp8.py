"""Block-scaled FP8 weights (quantization_config weight_block_size, the fp8-block scheme): how a checkpoint's
config is read, the ops the graph adds (numbers a reader can check by hand on a tiny model), how the cost
model prices them on the toy chip, the stack's block_fp8 section, and the stack values re-derived from
their public sources (docs/stacks.md)."""

import json
from pathlib import Path

import pytest

from hwmodels import load_chip
from hwmodels.errors import SpecError
from hwmodels.stack import BlockFp8, load_stack
from sim.cost import CostModel, CostOptions
from workloads.graph import ACT_QUANT_FLOPS, BLOCK_SCALE_FLOPS, Batch, build_graph
from workloads.memory import weight_bytes_per_chip
from workloads.model import load_model
from workloads.quant import Quantization, from_hf_config

DATA = Path(__file__).parents[1] / "data"
BLOCK = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}


def tiny_config(tmp_path, quantization_config=BLOCK, name="tiny-fp8"):
    """One Llama layer, hidden 256, MLP 512, 2 heads of 128 (1 KV head), vocab 1000."""
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
           "intermediate_size": 512, "num_attention_heads": 2, "num_key_value_heads": 1, "num_hidden_layers": 1,
           "vocab_size": 1000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16"}
    if quantization_config is not None:
        cfg["quantization_config"] = quantization_config
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(cfg, indent=2))
    return p


# ---- reading a checkpoint's quantization_config -------------------------------------------------------

def test_hf_block_config_reads_as_fp8_block():
    q, problems = from_hf_config(BLOCK)
    assert not problems and q.name == "fp8-block" and q.weight_block == (128, 128) and q.act_group == 128
    assert q.block_scaled and q.weight == q.activation == "fp8"
    # one fp32 scale per 128 x 128 block: 1 + 4 / 16384 bytes per weight element
    assert q.weight_bytes == 1 + 4 / 16384


def test_hf_config_without_blocks_is_per_tensor_fp8_and_other_methods_are_not_read():
    q, problems = from_hf_config({"quant_method": "fp8", "activation_scheme": "static"})
    assert not problems and q.name == "fp8" and not q.block_scaled
    assert from_hf_config({"quant_method": "awq", "bits": 4}) == (None, [])
    assert from_hf_config(None) == (None, [])


def test_catalog_deepseek_v3_is_a_block_fp8_checkpoint_and_qwen3_bf16_is_not():
    assert load_model("deepseek-v3").checkpoint_quant.name == "fp8-block"
    assert load_model("qwen3-30b-a3b").checkpoint_quant is None


@pytest.mark.parametrize("qc, field", [
    ({**BLOCK, "weight_block_size": [128]}, "weight_block_size"),
    ({**BLOCK, "weight_block_size": [128, 0]}, "weight_block_size"),
    ({**BLOCK, "activation_scheme": "static"}, "activation_scheme"),
    ({**BLOCK, "activation_scheme": "sometimes"}, "activation_scheme"),
])
def test_bad_quantization_config_names_file_field_and_expectation(tmp_path, qc, field):
    with pytest.raises(SpecError) as e:
        load_model(str(tiny_config(tmp_path, qc)))
    msg = str(e.value)
    assert f"quantization_config.{field}" in msg and "tiny-fp8.json:" in msg


def test_fp8_on_a_block_checkpoint_runs_its_blocks_and_nothing_else_changes():
    ckpt = load_model("deepseek-v3").checkpoint_quant
    assert Quantization.named("fp8").for_checkpoint(ckpt).name == "fp8-block"
    for name in ("bf16", "w4a16", "fp8-kv", "fp4", "w8a8"):
        assert Quantization.named(name).for_checkpoint(ckpt) == Quantization.named(name)
    assert Quantization.named("fp8").for_checkpoint(None).name == "fp8"
    # an fp8 KV cache given with it is kept: the weights take the blocks, the cache stays fp8
    kv8 = Quantization("fp8", "fp8", "fp8").for_checkpoint(ckpt)
    assert kv8.weight_block == (128, 128) and kv8.kv_cache == "fp8" and "block128x128" in kv8.name


# ---- the graph, by hand -----------------------------------------------------------------------------

def test_block_gemm_and_its_activation_quantization_by_hand(tmp_path):
    """8 tokens through o_proj (k 256 -> n 256): the quantization kernel reads 8 x 256 bf16 (4096 B), writes
    8 x 256 fp8 (2048 B) and 8 x 2 fp32 scales (64 B), 4 FLOPs per element; the GEMM reads those, the
    weight 256 x 256 fp8 plus 2 x 2 fp32 block scales (65,552 B), and applies both scales once per output
    element and 128-deep K block: 8 x 256 x 2 x 3 = 12,288 vector FLOPs."""
    g = build_graph(str(tiny_config(tmp_path)), Batch.prefill(1, 8), quant="fp8")
    assert g.quant.name == "fp8-block"
    aq, o = g.find("attn.o_proj.act_quant"), g.find("attn.o_proj")
    assert aq.kind == "elementwise" and aq.flops_vector == ACT_QUANT_FLOPS * 8 * 256 == 8192
    assert {t.name: (t.bytes, t.write) for t in aq.tensors} == {
        "x": (4096, False), "x_q": (2048, True), "x_scale": (64, True)}
    assert o.scale_block == 128 and o.flops_matrix == 2 * 8 * 256 * 256
    assert o.flops_vector == 8 * 256 * 2 * BLOCK_SCALE_FLOPS == 12288
    reads = {t.name: t.bytes for t in o.tensors if not t.write}
    assert reads == {"x_q": 2048, "x_scale": 64, "w_o_proj": 256 * 256 + 2 * 2 * 4}
    # the same checkpoint under bf16, and per-tensor fp8 on a bf16 checkpoint: no quantization op, no scales
    assert all(not op.name.endswith(".act_quant") for op in build_graph(str(tiny_config(tmp_path)),
                                                                         Batch.prefill(1, 8), quant="bf16").ops)
    plain = build_graph(str(tiny_config(tmp_path, None, "tiny-bf16")), Batch.prefill(1, 8), quant="fp8")
    assert plain.quant.name == "fp8" and plain.find("attn.o_proj").scale_block == 0
    assert all(not op.name.endswith(".act_quant") for op in plain.ops)


def test_block_scheme_weight_bytes_count_the_scales(tmp_path):
    path = str(tiny_config(tmp_path))
    block = weight_bytes_per_chip(path, "fp8")
    per_tensor = weight_bytes_per_chip(str(tiny_config(tmp_path, None, "tiny-bf16")), "fp8")
    # linear weights: qkv 256 x (256 + 128 + 128), o 256 x 256, gate_up 256 x 1024, down 512 x 256 = 589,824
    # elements, one fp32 scale per 16,384 of them: 144 bytes more
    assert block - per_tensor == pytest.approx(589824 * 4 / 16384) == 144


def test_routed_experts_quantize_the_tokens_once_and_gather_them_per_expert():
    g = build_graph("qwen3-30b-a3b", Batch.prefill(1, 64), quant="fp8-block")
    aq, up = g.find("moe.experts.gate_up.act_quant"), g.find("moe.experts.gate_up")
    x_q = next(t for t in up.tensors if t.name == "x_q")
    assert next(t for t in aq.tensors if t.name == "x").bytes == 64 * 2048 * 2  # 64 tokens, bf16, once
    assert x_q.bytes == 64 * 8 * 2048  # each token's fp8 row read once per expert it goes to (top 8)


def test_mla_absorbed_matrices_stay_in_bf16_under_block_fp8():
    g = build_graph("deepseek-v3", Batch.decode(4, 512), quant="fp8")
    for name in ("attn.q_absorb", "attn.v_absorb"):
        op = g.find(name)
        assert op.compute_dtype == "bf16" and op.scale_block == 0
    assert g.find("attn.o_proj").scale_block == 128


# ---- the cost model on the toy chip, by hand -----------------------------------------------------------

def test_block_gemm_runs_at_the_stack_efficiency_by_hand(tmp_path):
    """Untiled (roofline) toy chip: 2 x 8 x 256 x 256 matrix FLOPs at 200 TFLOP/s fp8 x 0.5 take 10.49 ns,
    twice the dense rate; the 12,288 scale FLOPs run on the 10 TFLOP/s vector unit either way (1.23 ns)."""
    toy = load_chip(DATA / "toy-chip.yaml")
    o = build_graph(str(tiny_config(tmp_path)), Batch.prefill(1, 8), quant="fp8").find("attn.o_proj")
    dense = CostModel(toy, CostOptions(tiling=False)).op_cost(o).compute_s
    half = CostModel(toy, CostOptions(tiling=False, block_fp8=BlockFp8(gemm_efficiency=0.5))).op_cost(o).compute_s
    mm, vec = 2 * 8 * 256 * 256 / 200e12, 12288 / 10e12
    assert dense == pytest.approx(mm + vec) and half == pytest.approx(2 * mm + vec)


def test_block_efficiency_by_architecture_and_only_on_block_gemms(tmp_path):
    facts = BlockFp8(gemm_efficiency=0.5, by_architecture=(("hopper", (("gemm_efficiency", 0.25),)),))
    toy = load_chip(DATA / "toy-chip.yaml")
    hopper = load_chip(DATA / "toy-chip.yaml", ["architecture=hopper"])
    g = build_graph(str(tiny_config(tmp_path)), Batch.prefill(1, 8), quant="fp8")
    o, head = g.find("attn.o_proj"), g.find("lm_head")
    mm = 2 * 8 * 256 * 256 / 200e12
    vec = o.flops_vector / 10e12
    for chip, eff in ((toy, 0.5), (hopper, 0.25)):
        cm = CostModel(chip, CostOptions(tiling=False, block_fp8=facts))
        assert cm.op_cost(o).compute_s == pytest.approx(mm / eff + vec)
        # the LM head is not quantized: dense rate
        assert cm.op_cost(head).compute_s == CostModel(chip, CostOptions(tiling=False)).op_cost(head).compute_s


# ---- the stack section ------------------------------------------------------------------------------------

def test_stack_block_fp8_sections():
    vllm, sglang, ideal = load_stack("vllm"), load_stack("sglang"), load_stack("ideal")
    assert ideal.block_fp8 == BlockFp8() and ideal.block_fp8.gemm_efficiency == 1.0
    assert vllm.block_fp8.on("hopper").gemm_efficiency == 0.53
    assert vllm.block_fp8.on("cdna3").gemm_efficiency == 0.69
    assert vllm.block_fp8.on("ada").gemm_efficiency == 0.47 and vllm.block_fp8.on(None).gemm_efficiency == 0.47
    assert "cutlass" in vllm.block_fp8.on("hopper").kernel
    assert sglang.block_fp8.on("hopper").gemm_efficiency == 0.61
    assert vllm.cost_options(CostOptions()).block_fp8 is vllm.block_fp8
    assert vllm.to_dict()["block_fp8"]["by_architecture"]["hopper"]["gemm_efficiency"] == 0.53


def test_stack_block_fp8_entry_without_source_is_an_error(tmp_path):
    src = (Path(__file__).parents[2] / "hwmodels/catalog/stacks/ideal.yaml").read_text()
    bad = tmp_path / "bad-block.yaml"
    bad.write_text(src.replace("name: ideal", "name: bad-block").replace(
        "  softmax: ideal\n", "  softmax: ideal\n  block_fp8:\n    kernel: k\n    gemm_efficiency: 0.5\n"
        "    by_architecture:\n      hopper: {gemm_efficiency: 0.4}\n    source: [s]\n"))
    with pytest.raises(SpecError, match="source"):
        load_stack(str(bad))
    bad.write_text(src.replace("name: ideal", "name: bad-block").replace(
        "  softmax: ideal\n", "  softmax: ideal\n  block_fp8: {kernel: k, gemm_efficiency: 1.5, source: [s]}\n"))
    with pytest.raises(SpecError, match="gemm_efficiency"):
        load_stack(str(bad))


# ---- the stack values from their sources --------------------------------------------------------------

def _dense_fp8_tflops(chip: str, rows) -> list:
    """llmsim's dense FP8 price (fp8 in, bf16 out; the ideal stack) of each (m, n, k), as `llmsim ops` does."""
    import pandas as pd

    from sim.ops import predict_ops

    df = pd.DataFrame([{"hardware": chip, "op": "gemm", "dtype": "fp8", "m": m, "n": n, "k": k, "out_dtype": "bf16"}
                       for m, n, k in rows])
    return list(predict_ops(df, stack="ideal")["achieved_tflops"])


# (kernel TFLOP/s at (m, n, k)) from the sources the stack files name; each median over llmsim's dense price
# must stay within 10% of the value in the file (the kernel model moving it is then seen)
SOURCES = {
    ("vllm", "hopper"): [((2048, 2112, 7168), 426.640953), ((4096, 2112, 7168), 456.931446),
                         ((8192, 2112, 7168), 489.655688)],  # vLLM PR #23280, H100, cutlass
    ("vllm", None): [((2048, 2112, 7168), 396.032348), ((4096, 2112, 7168), 402.982983),
                     ((8192, 2112, 7168), 406.511360)],  # vLLM PR #23280, H100, triton
    ("sglang", "hopper"): [((1024, 18432, 7168), 969.8), ((1024, 4096, 7168), 670.1),
                           ((2048, 4096, 7168), 687.0)],  # vLLM PR #13917, H100, DeepGEMM
}


@pytest.mark.parametrize("stack, arch", list(SOURCES))
def test_stack_gemm_efficiency_rederived_from_its_source(stack, arch):
    import statistics

    rows = SOURCES[(stack, arch)]
    dense = _dense_fp8_tflops("h100-sxm", [r for r, _ in rows])
    ratio = statistics.median(t / d for (_, t), d in zip(rows, dense))
    assert load_stack(stack).block_fp8.on(arch).gemm_efficiency == pytest.approx(ratio, rel=0.10)
