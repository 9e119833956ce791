"""MLP activation names (workloads/activations.py): each Hugging Face name is priced by the function it
is; an unknown name warns (file, line, field, value) and is priced as GELU; a non-text name is an error.

The FLOPs checked by hand: a prefill of T tokens through an MLP of width I runs T * I activation
elements per layer; each costs the function's count (workloads.activations.FUNCTION_FLOPS), plus one
multiply by the up projection when the MLP is gated."""

import json
from dataclasses import replace

import pytest

from hwmodels.errors import SpecError
from llmsim.cli import main
from workloads import Batch, build_graph, load_model
from workloads.activations import ACTIVATIONS, ACTIVATIONS_SOURCE, FUNCTION_FLOPS, activation_flops

T = 16  # prefill tokens
LLAMA = {"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
         "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 1000, "max_position_embeddings": 2048}
GPT2 = {"architectures": ["GPT2LMHeadModel"], "n_embd": 256, "n_inner": 1024, "n_head": 4, "n_layer": 2,
        "vocab_size": 1000, "n_positions": 2048}


def _model(tmp_path, base, name="toy.json", **fields):
    p = tmp_path / name
    p.write_text(json.dumps({**base, **fields}, indent=2))
    return load_model(p)


def _act_flops_per_element(spec, op="mlp.act", inter=None):
    o = build_graph(spec, Batch.prefill(1, T), cache=False).find(op)
    return o.flops_vector / (T * (inter or spec.intermediate))


def test_swish_prices_exactly_as_silu(tmp_path):
    silu = _model(tmp_path, LLAMA, "silu.json", hidden_act="silu")
    swish = _model(tmp_path, LLAMA, "swish.json", hidden_act="swish")
    assert swish.warnings == ()
    g1 = build_graph(silu, Batch.prefill(1, T), cache=False)
    g2 = build_graph(swish, Batch.prefill(1, T), cache=False)
    assert [(o.name, o.flops_vector, o.flops_matrix) for o in g1.ops] == \
           [(o.name, o.flops_vector, o.flops_matrix) for o in g2.ops]
    assert _act_flops_per_element(swish) == 5  # exp, add, divide, multiply; times the up projection


@pytest.mark.parametrize("name, gated_flops", [("relu", 2), ("relu2", 3), ("quick_gelu", 6),
                                               ("gelu_pytorch_tanh", 9), ("gelu", 9), ("linear", 1)])
def test_gated_mlp_priced_by_its_function(tmp_path, name, gated_flops):
    # relu: max 1 + gate multiply 1; relu2: max, square + 1; quick_gelu: scale, exp, add, divide,
    # multiply + 1; GELU (either form): 8 + 1; linear: no operation, only the gate multiply
    s = _model(tmp_path, LLAMA, hidden_act=name)
    assert s.warnings == ()
    assert _act_flops_per_element(s) == gated_flops


@pytest.mark.parametrize("name, flops", [("relu", 1), ("relu2", 2), ("gelu_new", 8), ("silu", 4),
                                         ("tanh", 1), ("gelu_10", 10)])
def test_plain_mlp_priced_by_its_function(tmp_path, name, flops):
    s = _model(tmp_path, GPT2, activation_function=name)
    assert not s.mlp_gated and s.warnings == ()
    assert _act_flops_per_element(s) == flops


def test_catalog_counts_unchanged():
    # the counts llmsim priced before the table: SiLU gated 5, GELU gated 9, GELU 8, ReLU 1
    for model, flops in (("llama-3.1-8b", 5), ("gemma-2-27b", 9), ("gpt-2", 8), ("falcon-180b", 8),
                         ("opt-30b", 1)):
        s = load_model(model)
        assert s.warnings == ()
        assert _act_flops_per_element(s) == flops, model


def test_moe_experts_priced_by_the_models_activation():
    s = load_model("mixtral-8x7b")
    g = build_graph(replace(s, activation="relu"), Batch.prefill(1, T), cache=False)
    o = g.find("moe.experts.act")
    base = build_graph(s, Batch.prefill(1, T), cache=False).find("moe.experts.act")
    assert o.flops_vector / base.flops_vector == pytest.approx(2 / 5)  # relu + gate vs SiLU + gate


def test_unknown_name_warns_with_file_line_field_and_is_priced_as_gelu(tmp_path):
    s = _model(tmp_path, LLAMA, "bogus.json", hidden_act="bogus")
    assert len(s.warnings) == 1
    w = s.warnings[0]
    # json.dumps(indent=2): '{', the architectures list on lines 2-4, six widths, then "hidden_act"
    assert w.startswith(f"{tmp_path / 'bogus.json'}:11:3: ")
    assert "hidden_act: unknown activation function 'bogus'" in w and "priced as GELU" in w
    assert "transformers v5.25.0" in w
    assert _act_flops_per_element(s) == 9  # GELU 8 + the gate multiply
    plain = _model(tmp_path, GPT2, "plain.json", activation_function="bogus")
    assert "activation_function: unknown" in plain.warnings[0] and _act_flops_per_element(plain) == 8


def test_unknown_name_suggests_and_names_the_field_read(tmp_path):
    s = _model(tmp_path, LLAMA, hidden_act="SiLU")
    assert "did you mean silu?" in s.warnings[0]
    gemma = json.loads(open(load_model("gemma-2-27b").source).read())
    g = _model(tmp_path, gemma, "gemma.json", hidden_activation="gelu_tanh")
    assert "hidden_activation: unknown activation function 'gelu_tanh'" in g.warnings[0]


def test_non_text_name_is_an_error(tmp_path):
    with pytest.raises(SpecError, match="hidden_act: must be a name"):
        _model(tmp_path, LLAMA, hidden_act=3)


def test_predict_and_serve_json_carry_the_warning(tmp_path, capsys):
    p = tmp_path / "toy.json"
    p.write_text(json.dumps({**LLAMA, "hidden_act": "bogus"}, indent=2))
    assert main(["predict", "--hw", "h100-sxm", "--model", str(p), "--batch", "1", "--input-len", "64",
                 "--output-len", "4", "--json"]) == 0
    out = capsys.readouterr()
    warns = json.loads(out.out)["warnings"]
    assert len(warns) == 1 and "hidden_act: unknown activation function 'bogus'" in warns[0]
    assert f"warning: {warns[0]}" in out.err
    assert main(["serve", "--hw", "h100-sxm", "--model", str(p), "--rate", "10", "--num-requests", "4",
                 "--input-len", "64", "--output-len", "4", "--json", "--quiet"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["warnings"] == warns and f"warning: {warns[0]}" in out.err
    # the run's own record keeps it too (summary.json under --out; the API's summary)
    assert main(["serve", "--hw", "h100-sxm", "--model", str(p), "--rate", "10", "--num-requests", "4",
                 "--input-len", "64", "--output-len", "4", "--quiet", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["warnings"] == warns
    assert main(["model", "show", str(p)]) == 0
    assert f"warning: {warns[0]}" in capsys.readouterr().err


def test_table_is_whole():
    assert set(ACTIVATIONS.values()) <= set(FUNCTION_FLOPS)
    assert "src/transformers/activations.py" in ACTIVATIONS_SOURCE
    assert activation_flops("swish", gated=True) == activation_flops("silu", gated=True) == 5
    assert activation_flops("no-such-name", gated=False) == FUNCTION_FLOPS["gelu_tanh"][0]


def test_compare_plan_optimize_and_sweep_say_the_warning(tmp_path, capsys):
    """Every command that prices a model tells the user its config was priced by a rule: on stderr once
    (`warning: ...`), and in the JSON where the command has one (`warnings`, a key added beside the others)."""
    p = tmp_path / "toy.json"
    p.write_text(json.dumps({**LLAMA, "hidden_act": "bogus"}, indent=2))
    want = "hidden_act: unknown activation function 'bogus'"

    def said(out):
        lines = [ln for ln in out.err.splitlines() if ln.startswith("warning: ") and want in ln]
        return len(lines) == 1  # once, though compare prices two chips

    assert main(["compare", "--model", str(p), "--hw", "h100-sxm", "--hw", "a100-sxm", "--batch", "1",
                 "--input-len", "64", "--output-len", "4"]) == 0
    assert said(capsys.readouterr())
    assert main(["plan", "--model", str(p), "--hw", "h100-sxm", "--rate", "1", "--input-len", "64",
                 "--output-len", "4", "--slo-ttft-p99", "2", "--slo-tpot-p99", "0.2", "--json", "--quiet",
                 "--no-verify", "--workers", "1"]) == 0
    out = capsys.readouterr()
    assert said(out) and any(want in w for w in json.loads(out.out)["warnings"])
    assert main(["optimize", "--model", str(p), "--hw", "h100-sxm", "--batch", "1", "--input-len", "64",
                 "--output-len", "4", "--json"]) == 0
    out = capsys.readouterr()
    assert said(out) and any(want in w for w in json.loads(out.out)["warnings"])
    spec = tmp_path / "grid.yaml"
    spec.write_text(f"version: 1\nkind: sweep\nname: g\nhardware: h100-sxm\nmodel: {p}\n"
                    "workload: {batch: 1, input_len: 64, output_len: 4}\naxes:\n  batch: [1, 2]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "g.parquet"), "--json", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert said(out) and any(want in w for w in json.loads(out.out)["warnings"])
    # a model without warnings: the key is there and empty, and nothing is said
    spec.write_text(spec.read_text().replace(str(p), "qwen2.5-0.5b"))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "g2.parquet"), "--json", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["warnings"] == [] and "warning: " not in out.err
