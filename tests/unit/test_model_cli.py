"""`llmsim model list|show`: JSON keys, 80-column text, exit codes."""

import json
from pathlib import Path

import pytest

from llmsim.cli import main
from workloads import list_models


def test_list_json(capsys):
    assert main(["model", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_models()
    r = {r["name"]: r for r in rows}["mixtral-8x7b"]
    assert r["family"] == "mixtral" and r["params_total"] > r["params_active"] > 0


def test_list_text_fits_80_columns(capsys):
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    assert "llama-3.1-405b" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_show_json(capsys):
    assert main(["model", "show", "deepseek-v3", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("params_total", "params_active", "layers", "attention", "kv_bytes_per_token"):
        assert key in d
    assert d["attention"] == "mla" and d["layers"] == 61
    assert d["kv_bytes_per_token"]["bf16"] == 61 * 576 * 2


@pytest.mark.parametrize("name", list_models())
def test_show_text_fits_80_columns(name, capsys):
    assert main(["model", "show", name]) == 0
    out = capsys.readouterr().out
    assert name in out and "KV cache" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_show_path(tmp_path, capsys):
    from workloads import load_model

    p = tmp_path / "config.json"
    p.write_text(Path(load_model("qwen2.5-7b").source).read_text())
    assert main(["model", "show", str(p), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params_total"] == load_model("qwen2.5-7b").params_total


def test_errors_exit_2(tmp_path, capsys):
    assert main(["model", "show", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 0}))
    assert main(["model", "show", str(p)]) == 2
    err = capsys.readouterr().err
    assert "hidden_size" in err and "bad.json" in err and "Traceback" not in err
