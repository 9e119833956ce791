"""`llmsim serve`: JSON keys, text layout, output files, exit codes."""

import json
from pathlib import Path

import pytest

from llmsim.cli import main

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")
BASE = ["serve", "--hw", TOY, "--model", "qwen2.5-0.5b"]
SYNTH = ["--rate", "20", "--num-requests", "40", "--input-len", "128", "--output-len", "16"]

JSON_KEYS = [
    "requests_completed",
    "duration_s",
    "request_throughput_rps",
    "output_throughput_tok_s",
    "ttft_p50_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p99_s",
    "e2e_p50_s",
    "e2e_p99_s",
    "goodput_rps",
    "slo_attainment",
    "usd_per_mtok_output",
    "preemptions",
    "sim_wall_s",
    "requests_rejected",
    "mfu",
    "mbu",
    "energy_j_per_output_token",
    "kv_utilization_mean",
    "batch_size_mean",
]


def test_json_has_the_stable_keys(capsys):
    assert main(BASE + SYNTH + ["--json", "--slo-ttft", "0.5", "--slo-tpot", "0.05", "--seed", "3"]) == 0
    d = json.loads(capsys.readouterr().out)
    for k in JSON_KEYS:
        assert k in d, k
    assert d["requests_completed"] == 40 and d["seed"] == 3 and 0 <= d["slo_attainment"] <= 1


def test_text_fits_80_columns(capsys):
    assert main(BASE + SYNTH + ["--scheduler", "sarathi", "--chunk-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "TTFT" in out and "goodput" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_offline_mode_and_out_dir(tmp_path, capsys):
    args = [
        "--rate",
        "inf",
        "--num-requests",
        "30",
        "--input-len",
        "64",
        "--output-len",
        "8",
        "--replicas",
        "2",
        "--out",
        str(tmp_path),
        "--json",
    ]
    assert main(BASE + args) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["offline"] and d["requests_completed"] == 30 and d["replicas"] == 2
    assert {p.name for p in tmp_path.iterdir()} >= {
        "requests.csv",
        "timeline.csv",
        "summary.json",
        "trace.json",
    }


def test_trace_replay_with_limit(capsys):
    assert (
        main(
            [
                "serve",
                "--hw",
                "h100-sxm",
                "--model",
                "qwen2.5-0.5b",
                "--trace",
                "azure-code-2023",
                "--limit",
                "25",
                "--trace-speedup",
                "10",
                "--json",
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)
    assert d["requests_completed"] + d["requests_rejected"] == 25


@pytest.mark.parametrize(
    "extra,flag",
    [
        (["--slo-ttft", "0"], "--slo-ttft"),
        (["--slo-tpot", "-0.1"], "--slo-tpot"),
    ],
)
def test_bad_slo_exit_2(extra, flag, capsys):
    try:
        rc = main(BASE + SYNTH + extra)
    except SystemExit as e:  # the flag's checked type: argparse's exit 2
        rc = e.code
    assert rc == 2
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize("rate", ["0", "-3", "fast"])
def test_bad_rate_exit_2(rate, capsys):
    assert main(BASE + ["--rate", rate, "--num-requests", "3", "--input-len", "8", "--output-len", "2"]) == 2
    assert "--rate" in capsys.readouterr().err


def test_missing_workload_exit_2(capsys):
    assert main(BASE + ["--rate", "3"]) == 2
    err = capsys.readouterr().err
    assert "--num-requests" in err and "--input-len" in err


def test_model_that_does_not_fit_exit_3(capsys):
    assert main(["serve", "--hw", TOY, "--model", "llama-2-70b"] + SYNTH) == 3
    assert "infeasible" in capsys.readouterr().err
