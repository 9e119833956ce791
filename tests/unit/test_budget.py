"""The serving KV budget, term by term as vLLM computes it (sim/serving/budget.py), on the toy chip (10 GiB)."""

import re

import pytest

from hwmodels import load_hardware
from hwmodels.errors import InfeasibleError
from hwmodels.stack import STACKS, load_stack
from sim.config import ServingConfig
from sim.serving.budget import memory_budget
from workloads import Batch, Parallelism, Quantization, footprint, load_model

GiB = 2**30
TOY = "tests/data/toy-chip.yaml"


def _stack(tmp_path, name, memory: str) -> str:
    """A copy of the vllm stack with its memory section replaced by ``memory`` (YAML lines, '' for none)."""
    text = (STACKS / "vllm.yaml").read_text()
    text = re.sub(r"^name: vllm$", f"name: {name}", text, flags=re.M)
    text = text[:text.index("\nmemory:")] + "\n" + memory
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return str(p)


def _budget(stack, tp=1, util=0.5):
    chip = load_hardware(TOY)
    cfg = ServingConfig(tp=tp, memory_utilization=util, stack=stack, max_num_batched_tokens=1024,
                        max_num_seqs=8).with_stack(chip)
    return memory_budget(load_model("gpt-2"), chip, Quantization.parse("bf16"), Parallelism(tp=tp), cfg), cfg


def test_kv_is_requested_less_weights_workspace_and_engine_memory(tmp_path):
    # requested = 10 GiB x 0.5 = 5 GiB; KV = 5 GiB - weights - the 1024-token step's workspace - 1 GiB
    plain, cfg = _budget(_stack(tmp_path, "plain", ""))
    engine, _ = _budget(_stack(tmp_path, "eng", "memory:\n  non_torch: 1 GiB\n  source: [test]\n"))
    fp = footprint("gpt-2", Batch(((1024, 0),)), "bf16", attention_kernel=cfg.attention_kernel)
    kv_tokens = (5 * GiB - fp.weights_bytes - fp.activation_bytes) // fp.kv_bytes_per_token
    assert plain.num_blocks == kv_tokens // cfg.block_size
    # gpt-2 holds 12 layers x 768 x 2 (K and V) x 2 bytes = 36 KiB per token: 1 GiB is 29,127 tokens
    assert fp.kv_bytes_per_token == 36864
    lost = plain.num_blocks - engine.num_blocks
    assert lost in (GiB // 36864 // cfg.block_size, GiB // 36864 // cfg.block_size + 1)


def test_multi_chip_replicas_take_their_own_engine_memory(tmp_path):
    st = _stack(tmp_path, "two", "memory:\n  non_torch: 1 GiB\n  non_torch_multi_chip: 2 GiB\n  source: [test]\n")
    assert load_stack(st).non_torch(1) == GiB and load_stack(st).non_torch(2) == 2 * GiB
    one, _ = _budget(st, tp=1)
    two, _ = _budget(st, tp=2)
    assert two.num_blocks < 2 * one.num_blocks  # each chip holds half the weights but 1 GiB more engine memory
    default = _stack(tmp_path, "same", "memory:\n  non_torch: 1 GiB\n  source: [test]\n")
    assert load_stack(default).non_torch(4) == GiB  # non_torch_multi_chip defaults to non_torch


def test_engine_memory_that_leaves_no_room_says_so(tmp_path):
    st = _stack(tmp_path, "big", "memory:\n  non_torch: 6 GiB\n  source: [test]\n")
    with pytest.raises(InfeasibleError, match=r"no room for a KV cache .* engine 6\.4\d GB") as e:
        _budget(st)
    assert e.value.numbers["non_torch_bytes"] == 6 * GiB


def test_catalog_vllm_memory_facts():
    # vLLM's own logs (sources in the stack file): 0.16 GiB on one H100, 0.20 GiB per tensor-parallel worker
    st = load_stack("vllm")
    assert st.non_torch(1) == pytest.approx(0.16 * GiB) and st.non_torch(8) == pytest.approx(0.20 * GiB)
    assert "memory" in st.sources and load_stack("ideal").non_torch(1) == 0


def test_bad_engine_memory_names_file_field_and_form(tmp_path, capsys):
    from hwmodels.errors import SpecError
    from llmsim.cli import main

    st = _stack(tmp_path, "badmem", "memory:\n  non_torch: 0.16 GiB/s\n  source: [test]\n")
    with pytest.raises(SpecError) as e:
        load_stack(st)
    text = str(e.value)
    assert st in text and "memory.non_torch" in text and "expected e.g. '80 GiB'" in text
    assert main(["check", st]) == 2
    err = capsys.readouterr().err
    assert "memory.non_torch" in err and "Traceback" not in err


def test_budget_against_a_vllm_log():
    """vLLM's own profile of Llama-3-8B (the layers and shapes of llama-3.1-8b) on one H100-80G, V0 worker with the
    accounting of the vllm-0.5 stack (vllm-project/vllm PR #10511, 2024-12-14): total 79.22 GiB x 0.90 = 71.29
    GiB; weights 14.96 GiB; non_torch 1.79 GiB; activation peak 1.26 GiB; available KV cache 53.29 GiB. Our
    capacity is the total CUDA reports with a 2025 driver (79.11 GiB) and our workspace of the 8192-token
    profile step 0.66 GiB (one op's tensors; vLLM's peak also holds the residual stream): 53.8 GiB."""
    chip = load_hardware("h100-sxm")
    cfg = ServingConfig(tp=1, stack="vllm-0.5", max_num_batched_tokens=8192).with_stack(chip)
    b = memory_budget(load_model("llama-3.1-8b"), chip, Quantization.parse("bf16"), Parallelism(tp=1), cfg)
    assert b.weights_bytes / GiB == pytest.approx(14.96, abs=0.005)
    assert b.num_blocks * b.block_bytes / GiB == pytest.approx(53.29, rel=0.02)
