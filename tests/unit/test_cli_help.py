"""Small things a new user meets first: help texts, example files the README names, hints in errors."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from llmsim.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def test_help_texts(capsys):
    assert "(default: None)" not in _help(capsys, "calibrate")
    assert "(default: 0)" in _help(capsys, "calibrate")  # a real default is still shown
    for cmd in ("predict", "serve", "compare"):
        assert "w8a16" in _help(capsys, cmd), cmd
    assert "catalog model" in _help(capsys, "demo")
    assert "hardware YAML files" in _help(capsys, "check")


def test_every_option_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = []
    for name, p in sub.choices.items():
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction) or a.dest in ("help", "weight_dtype", "act_dtype", "kv_dtype"):
                continue  # subcommand selectors list their choices; the dtype overrides are named by their flag
            if not a.help:
                missing.append(f"{name} {a.option_strings or a.dest}")
    assert not missing, missing


def test_the_readme_ops_example_runs(tmp_path, capsys, monkeypatch):
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith("llmsim ops "))
    argv = shlex.split(line.split("#")[0])[1:]
    monkeypatch.chdir(ROOT)
    argv[argv.index("--out") + 1] = str(tmp_path / "predicted.csv")
    assert main(argv) == 0
    out = pd.read_csv(tmp_path / "predicted.csv", keep_default_na=False)
    assert len(out) >= 10 and (out["error"] == "").all() and (pd.to_numeric(out["time_s"]) > 0).all()
    assert set(out["op"]) >= {"gemm", "attention", "memcpy", "elementwise", "norm", "allreduce"}


def test_a_hugging_face_repo_id_suggests_the_catalog_name(capsys):
    rc = main(["predict", "--hw", "h100-sxm", "--model", "meta-llama/Llama-3.1-8B", "--batch", "1", "--input-len",
               "8", "--output-len", "8"])
    err = capsys.readouterr().err
    assert rc == 2 and "--model llama-3.1-8b" in err and "Traceback" not in err


def test_does_not_fit_suggests_what_fits(capsys):
    rc = main(["predict", "--hw", "h100-sxm", "--model", "llama-3.1-70b", "--batch", "8", "--input-len", "1024",
               "--output-len", "256"])
    err = capsys.readouterr().err
    assert rc == 3
    # 141 GB of bf16 weights on an 80 GB chip: two chips halve them, fp8 halves them too, offload always works
    assert "--tp 2" in err and "--quant fp8" in err and "--offload" in err
    gb = float(re.search(r"--tp 2 \(([\d.]+) GB per chip", err).group(1))
    assert gb < 80


def test_one_rule_for_ep_wider_than_tp(capsys):
    argv = ["--hw", "hgx-h100-8", "--model", "mixtral-8x7b", "--tp", "4", "--ep", "8", "--input-len", "256",
            "--output-len", "32"]
    assert main(["predict", *argv, "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "8 chips" in out and "2 data-parallel attention replicas" in out  # said, not silent
    assert main(["serve", *argv, "--rate", "1", "--num-requests", "4"]) == 2
    err = capsys.readouterr().err
    assert "2 data-parallel attention replicas" in err and "--replicas 2" in err


def test_the_text_of_predict_loads_no_pandas():
    """The formatter and the placement line keep predict's text output as light as its JSON."""
    import subprocess
    import sys

    code = ("import sys, io, contextlib\nfrom llmsim.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['predict', '--hw', 'h100-sxm', '--model', 'llama-3.1-8b', '--batch', '2', "
            "'--input-len', '64', '--output-len', '8']) == 0\n"
            "print(' '.join(m for m in ('pandas', 'matplotlib', 'simpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == ""
