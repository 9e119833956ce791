"""Model configs: every shipped config loads, parameter counts match the published sizes, and bad
configs raise a SpecError naming the file and every bad field."""

import json
from pathlib import Path

import pytest

from hwmodels.errors import SpecError
from workloads import list_models, load_model
from workloads.model import parse_config

# Published sizes in billions, with the unit of the last digit published. Tolerance: 1 %, or one
# unit of the last published digit when the figure is rounded coarser than that (3.3B means
# 3.2-3.4B). Sources: the Hugging Face model cards and papers (workloads/catalog/README.md).
# DeepSeek counts its "activated" parameters without the input embedding (36.6B for V3, of which
# 0.9B is the output head), so for DeepSeek the active figure is compared with
# params_active - embedding.
PUBLISHED = {
    # name: (total, unit, active, unit)
    "llama-2-7b": (6.74, 0.01, None, None),
    "llama-2-13b": (13.02, 0.01, None, None),
    "llama-2-70b": (68.98, 0.01, None, None),
    "llama-3.1-8b": (8.03, 0.01, None, None),
    "llama-3.1-70b": (70.55, 0.01, None, None),
    "llama-3.1-405b": (405.8, 0.1, None, None),
    "llama-3.3-70b": (70.55, 0.01, None, None),
    "mistral-7b": (7.24, 0.01, None, None),
    "mixtral-8x7b": (46.7, 0.1, 12.9, 0.1),
    "mixtral-8x22b": (141, 1, 39, 1),
    "qwen2.5-0.5b": (0.49, 0.01, None, None),
    "qwen2.5-7b": (7.61, 0.01, None, None),
    "qwen2.5-72b": (72.7, 0.1, None, None),
    "qwen3-8b": (8.2, 0.1, None, None),
    "qwen3-14b": (14.8, 0.1, None, None),
    "qwen3-32b": (32.8, 0.1, None, None),
    "qwen3-30b-a3b": (30.5, 0.1, 3.3, 0.1),
    "qwen3-235b-a22b": (235, 1, 22, 1),
    "deepseek-v2-lite": (15.7, 0.1, 2.4, 0.1),
    "deepseek-v3": (671, 1, 36.6, 0.1),
    "gemma-2-27b": (27.2, 0.1, None, None),
    "phi-3-mini": (3.82, 0.01, None, None),
    "gpt-2": (0.124, 0.001, None, None),
    "gpt-j-6b": (6.05, 0.01, None, None),
    "opt-30b": (30, 1, None, None),
    "falcon-180b": (180, 1, None, None),
}


def _close(got_b: float, pub: float, unit: float) -> bool:
    return abs(got_b - pub) <= max(0.01 * pub, unit)


def test_catalog_has_at_least_15_models_all_published():
    names = list_models()
    assert len(names) >= 15
    assert set(names) == set(PUBLISHED), "every shipped model needs a published size here"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_published(name):
    s = load_model(name)
    total, tu, active, au = PUBLISHED[name]
    assert _close(s.params_total / 1e9, total, tu), (name, s.params_total)
    assert sum(s.param_counts().values()) == s.params_total
    if active is None:
        assert s.params_active == s.params_total
    else:
        got = s.params_active
        if s.family.startswith("deepseek"):
            got -= s.param_counts()["embedding"]
        assert _close(got / 1e9, active, au), (name, got)


def test_exact_counts_of_well_known_checkpoints():
    # exact element counts of the safetensors checkpoints
    assert load_model("llama-2-7b").params_total == 6_738_415_616
    assert load_model("llama-2-70b").params_total == 68_976_648_192
    assert load_model("llama-3.1-8b").params_total == 8_030_261_248
    assert load_model("mistral-7b").params_total == 7_241_732_096
    assert load_model("gpt-2").params_total == 124_439_808


def test_shapes_and_attention_kinds():
    s = load_model("llama-3.1-70b")
    assert (s.layers, s.hidden, s.heads, s.kv_heads, s.head_dim, s.vocab) == (80, 8192, 64, 8, 128, 128256)
    assert s.attention == "gqa" and s.family == "llama"
    assert load_model("llama-2-7b").attention == "mha"
    assert load_model("deepseek-v3").attention == "mla"
    g = load_model("gemma-2-27b")
    assert g.head_dim == 128 and g.heads * g.head_dim != g.hidden and g.tied_embeddings
    assert [(k.tag, k.count, k.window) for k in g.layer_kinds] == [("layer.sliding", 23, 4096),
                                                                  ("layer.global", 23, None)]
    d = load_model("deepseek-v3")
    assert [(k.tag, k.count, k.moe) for k in d.layer_kinds] == [("layer.dense", 3, False), ("layer.moe", 58, True)]
    assert (d.q_lora_rank, d.kv_lora_rank, d.qk_nope_head_dim, d.qk_rope_head_dim, d.v_head_dim) == \
        (1536, 512, 128, 64, 128)
    assert d.layer_tags[:4] == ("layer.dense",) * 3 + ("layer.moe",)
    f = load_model("falcon-180b")
    assert f.parallel_block and f.kv_heads == 8 and not f.mlp_gated
    assert load_model("gpt-2").position == "learned" and load_model("opt-30b").learned_positions == 2050


@pytest.mark.parametrize("name", ["llama-3.1-8b", "llama-2-7b", "qwen2.5-7b", "gemma-2-27b", "mixtral-8x7b"])
def test_kv_bytes_per_token_closed_form(name):
    s = load_model(name)
    for dt, b in (("bf16", 2), ("fp8", 1)):
        assert s.kv_bytes_per_token(dt) == 2 * s.layers * s.kv_heads * s.head_dim * b


def test_kv_bytes_per_token_mla():
    s = load_model("deepseek-v3")
    assert s.kv_bytes_per_token("bf16") == 61 * (512 + 64) * 2
    assert s.kv_bytes_per_token("fp8") == 61 * (512 + 64)


def test_load_by_path_and_folder(tmp_path):
    src = load_model("mistral-7b").source
    cfg = json.loads(Path(src).read_text())
    d = tmp_path / "my-model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    s = load_model(d)
    assert s.name == "my-model" and s.params_total == load_model("mistral-7b").params_total
    assert load_model(str(d / "config.json")).name == "my-model"


def _write(tmp_path, cfg, name="bad.json"):
    p = tmp_path / name
    p.write_text(json.dumps(cfg, indent=2))
    return p


BASE = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
        "intermediate_size": 512, "num_attention_heads": 8, "num_key_value_heads": 2,
        "num_hidden_layers": 2, "vocab_size": 1000, "max_position_embeddings": 512}


def test_tiny_config_loads(tmp_path):
    s = load_model(_write(tmp_path, BASE, "tiny.json"))
    assert s.name == "tiny" and s.head_dim == 32 and s.attention == "gqa"


def test_missing_fields_all_reported(tmp_path):
    cfg = {k: v for k, v in BASE.items() if k not in ("hidden_size", "vocab_size")}
    p = _write(tmp_path, cfg)
    with pytest.raises(SpecError) as e:
        load_model(p)
    paths = {pr.path for pr in e.value.problems}
    assert {"hidden_size", "vocab_size"} <= paths
    assert all(pr.file == str(p) for pr in e.value.problems)
    assert "bad.json" in str(e.value) and "required field missing" in str(e.value)


def test_unknown_architecture(tmp_path):
    p = _write(tmp_path, dict(BASE, architectures=["FooForCausalLM"], model_type="foo"))
    with pytest.raises(SpecError) as e:
        load_model(p)
    assert e.value.problems[0].path == "architectures"
    assert "FooForCausalLM" in str(e.value) and "bad.json" in str(e.value)
    assert e.value.problems[0].line == 2  # the line of "architectures" in the file


def test_no_architecture_at_all(tmp_path):
    cfg = {k: v for k, v in BASE.items() if k not in ("architectures", "model_type")}
    with pytest.raises(SpecError, match="architectures"):
        load_model(_write(tmp_path, cfg))


def test_zero_heads_names_field_with_line(tmp_path):
    p = _write(tmp_path, dict(BASE, num_attention_heads=0, num_hidden_layers=-1))
    with pytest.raises(SpecError) as e:
        load_model(p)
    by_path = {pr.path: pr for pr in e.value.problems}
    assert "num_attention_heads" in by_path and "num_hidden_layers" in by_path
    assert by_path["num_attention_heads"].line is not None
    assert "got 0" in str(by_path["num_attention_heads"])


def test_heads_not_divisible(tmp_path):
    with pytest.raises(SpecError, match="num_key_value_heads"):
        load_model(_write(tmp_path, dict(BASE, num_key_value_heads=3)))
    with pytest.raises(SpecError, match="num_attention_heads"):
        load_model(_write(tmp_path, dict(BASE, num_attention_heads=7, num_key_value_heads=7)))


def test_wrong_types_and_moe_fields(tmp_path):
    cfg = dict(BASE, architectures=["MixtralForCausalLM"], model_type="mixtral", hidden_size="big",
               num_local_experts=4, num_experts_per_tok=8)
    with pytest.raises(SpecError) as e:
        load_model(_write(tmp_path, cfg))
    paths = {pr.path for pr in e.value.problems}
    assert {"hidden_size", "num_experts_per_tok"} <= paths


def test_deepseek_requires_mla_fields(tmp_path):
    cfg = json.loads(Path(load_model("deepseek-v3").source).read_text())
    del cfg["kv_lora_rank"]
    with pytest.raises(SpecError, match="kv_lora_rank"):
        load_model(_write(tmp_path, cfg))


def test_not_json_and_duplicate_keys(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{\n  "hidden_size": 4096,\n  oops\n}')
    with pytest.raises(SpecError) as e:
        load_model(p)
    assert e.value.problems[0].line == 3
    p.write_text('{"architectures": ["LlamaForCausalLM"],\n "hidden_size": 1,\n "hidden_size": 2}')
    with pytest.raises(SpecError, match="duplicate key"):
        load_model(p)


def test_unknown_name_suggests():
    with pytest.raises(SpecError, match="did you mean llama-3.1-8b"):
        load_model("llama-3.1-8")
    with pytest.raises(SpecError, match="no such model config"):
        load_model("nowhere/config.json")


def test_parse_config_rejects_non_object():
    with pytest.raises(SpecError):
        parse_config([1, 2], "x")


def test_spec_is_frozen_and_hashable():
    s = load_model("llama-3.1-8b")
    assert hash(s) == hash(load_model("llama-3.1-8b"))
    with pytest.raises(AttributeError):
        s.layers = 3
