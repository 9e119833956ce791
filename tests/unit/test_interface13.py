"""Issue 13's interface requirements as a new user meets them on the command line (audit13): a stack file's
name, requests longer than the model (a what-if in every command), a serving run that served nothing, and
the stack and calibration named in every output. Each test runs the CLI or the function it calls."""

import json
from pathlib import Path

import pytest

from hwmodels.errors import SpecError
from hwmodels.loader import check_files
from hwmodels.stack import STACKS, load_stack
from llmsim.cli import main

TOY = str(Path(__file__).parents[1] / "data" / "toy-chip.yaml")


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_stack_name_must_match_its_file_name(tmp_path):
    """A copy of vllm.yaml under another file name still says `name: vllm`: its predictions would read 'serving
    stack vllm', the default's name. As for chip files, the name must equal the file stem."""
    copy = tmp_path / "my-vllm.yaml"
    copy.write_text((STACKS / "vllm.yaml").read_text())
    problems = check_files([str(copy)])[0][1]
    assert problems and "differs from the file name" in str(problems[0]) and "my-vllm.yaml:4:1" in str(problems[0])
    with pytest.raises(SpecError, match="write name: my-vllm"):
        load_stack(str(copy))
    copy.write_text((STACKS / "vllm.yaml").read_text().replace("name: vllm\n", "name: my-vllm\n", 1))
    assert load_stack(str(copy)).name == "my-vllm"


def test_check_names_stack_among_the_kinds(tmp_path, capsys):
    bad = tmp_path / "vllm.yaml"
    bad.write_text((STACKS / "vllm.yaml").read_text().replace("kind: stack", "kind: stak", 1))
    rc, out, err = _run(capsys, "check", bad)
    assert rc == 2 and "'kind' must be chip, system or stack; got 'stak' (did you mean 'stack'?)" in err
    # the rest of the file is checked against the kind it nearly names (a stack), not a chip's schema: no noise
    assert "in chip" not in err and err.count("error:") == 1
    bad.write_text((STACKS / "vllm.yaml").read_text().replace("kind: stack", "kind: 42", 1))
    rc, out, err = _run(capsys, "check", bad)
    assert rc == 2 and "got 42" in err and "did you mean" not in err and err.count("error:") == 1
    # a misspelt kind on a broken stack still shows the stack's own problems
    bad.write_text((STACKS / "vllm.yaml").read_text().replace("kind: stack", "kind: stak", 1)
                   .replace("step_overhead: 0.8 ms", "step_overhead: -1 ms", 1))
    rc, out, err = _run(capsys, "check", bad)
    assert rc == 2 and "runtime.step_overhead" in err and "in chip" not in err


# ---- requests longer than the model: a what-if with a warning, never refused (unless --max-model-len says so) ----

WHAT_IF = "longer than its max_position_embeddings 1024; predicted as a what-if"


def test_serve_predicts_requests_longer_than_the_model(capsys):
    """gpt-2 (max_position_embeddings 1024), 4 requests of 1000 + 50 tokens: served, with the warning on stderr and in
    JSON; with --max-model-len 1024 they are refused as vLLM refuses them (exit 3, the reason said)."""
    args = ["serve", "--model", "gpt-2", "--hw", TOY, "--rate", "inf", "--num-requests", 4, "--input-len", 1000,
            "--output-len", 50, "--no-intervals"]
    rc, out, err = _run(capsys, *args, "--json")
    s = json.loads(out)
    assert rc == 0 and s["requests_completed"] == 4 and s["requests_rejected"] == 0
    assert s["warnings"] == [f"gpt-2: 4 requests of up to 1050 tokens are {WHAT_IF} (the model was not trained for "
                             "that length)"]
    assert f"warning: gpt-2: 4 requests of up to 1050 tokens are {WHAT_IF}" in err
    rc, out, err = _run(capsys, *args, "--max-model-len", 1024)
    assert rc == 3 and "4 longer than the model" in out and "infeasible: no request could be served" in err
    assert WHAT_IF not in err


def test_report_serve_that_served_nothing_exits_3(tmp_path, capsys):
    """`report serve` writes its report of a run that rejected every request, says why and exits 3 (was 0, silent)."""
    rc, out, err = _run(capsys, "report", "serve", "--model", "gpt-2", "--hw", TOY, "--rate", "inf", "--num-requests", 3,
                        "--input-len", 1000, "--output-len", 50, "--max-model-len", 512, "--out", tmp_path / "r")
    assert rc == 3 and (tmp_path / "r" / "report.html").exists()
    assert "every request was rejected (3): 3 x longer than the model" in err and "infeasible:" in err


def test_plan_workload_warns_about_requests_longer_than_the_model():
    from sim.plan_probe import Workload
    from workloads.model import load_model
    from workloads.trace import Trace

    gpt2 = load_model("gpt-2")
    assert Workload(input_len=1000, output_len=24).context_warnings(gpt2) == []  # 1024 tokens fit
    [w] = Workload(input_len=1000, output_len=25).context_warnings(gpt2)
    assert w.startswith(f"gpt-2: a request of 1025 tokens is {WHAT_IF}")
    assert Workload(input_len=1000, output_len=25).context_warnings(gpt2, max_model_len=1024) == []  # rejected instead
    tr = Trace.from_arrays([0.0, 1.0, 2.0], [100, 2000, 1000], [10, 10, 100], name="t")
    [w] = Workload(trace=tr, trace_name="t").context_warnings(gpt2)
    assert w.startswith(f"gpt-2: 2 requests of up to 2010 tokens are {WHAT_IF}")


def test_sweep_warns_about_requests_longer_than_the_model(tmp_path, capsys):
    spec = tmp_path / "long.yaml"
    spec.write_text(f"version: 1\nkind: sweep\nname: long\nhardware: {TOY}\nmodel: gpt-2\nevaluator: static\n"
                    "workload: {input_len: 2000, output_len: 50}\naxes:\n  batch: [1, 2]\n")
    rc, out, err = _run(capsys, "sweep", spec, "--out", tmp_path / "l.parquet", "--no-progress", "--workers", 1,
                        "--json")
    assert rc == 0 and json.loads(out)["warnings"] == [f"gpt-2: a request of 2050 tokens is {WHAT_IF} (the model was "
                                                       "not trained for that length)"]
    assert f"warning: gpt-2: a request of 2050 tokens is {WHAT_IF}" in err


# ---- every output names its stack and the hardware's calibration state (no silent 100 %) ----

def test_serve_text_and_report_name_stack_and_calibration(tmp_path, capsys):
    """toy-chip has no efficiency data and no class (calibration 'none': datasheet peaks); b200 class-default."""
    args = ["--model", "gpt-2", "--rate", "inf", "--num-requests", 3, "--input-len", 100, "--output-len", 10,
            "--no-intervals"]
    rc, out, _ = _run(capsys, "serve", "--hw", TOY, *args)
    assert rc == 0 and "gpt-2 on toy-chip, sarathi scheduler, vllm stack" in out
    assert "efficiency  none (no efficiency data: datasheet peaks)" in out
    rc, out, _ = _run(capsys, "serve", "--hw", "b200", *args, "--stack", "ideal")
    assert "efficiency  class-default (typical of its class, not measured)" in out
    assert ", ideal stack" in out
    rc, _, _ = _run(capsys, "report", "serve", "--hw", "b200", *args, "--out", tmp_path / "rs")
    html = (tmp_path / "rs" / "report.html").read_text()
    assert rc == 0 and "serving stack: vllm; hardware calibration: class-default" in html


def test_report_predict_summary_csv_names_stack_and_calibration(tmp_path, capsys):
    rc, _, _ = _run(capsys, "report", "predict", "--model", "gpt-2", "--hw", "b200", "--batch", 1, "--input-len", 100,
                    "--output-len", 10, "--stack", "sglang", "--sweep", "1", "--out", tmp_path / "rp")
    rows = dict(line.split(",", 1) for line in (tmp_path / "rp" / "summary.csv").read_text().splitlines()[1:])
    assert rc == 0 and rows["stack"] == "sglang" and rows["calibration"] == "class-default"


def test_compare_names_each_calibration_and_the_stack(tmp_path, capsys):
    args = ["compare", "--model", "gpt-2", "--hw", "h100-sxm", "--hw", "b200", "--batch", 1, "--input-len", 100,
            "--output-len", 10]
    rc, out, _ = _run(capsys, *args, "--out", tmp_path / "c")
    line = next(x for x in out.splitlines() if x.startswith("efficiency data"))
    assert rc == 0 and line.split() == ["efficiency", "data", "published", "class-default"]
    import pandas as pd

    csv = pd.read_csv(tmp_path / "c" / "comparison.csv")
    assert list(csv.columns[-2:]) == ["calibration", "stack"]  # added at the end: the columns before keep their places
    assert list(csv["calibration"]) == ["published", "class-default"] and set(csv["stack"]) == {"vllm"}


def test_plan_names_each_candidates_calibration(capsys):
    rc, out, _ = _run(capsys, "plan", "--model", "gpt-2", "--rate", 1, "--input-len", 100, "--output-len", 10,
                      "--slo-ttft-p99", "1s", "--slo-tpot-p99", "50ms", "--hw", "b200", "--hw", "h100-sxm", "--tp", 1,
                      "--requests", 50, "--no-verify", "--workers", 1, "--json")
    d = json.loads(out)
    assert rc == 0 and {c["hardware"]: c["calibration"] for c in d["candidates"]} == {
        "b200": "class-default", "h100-sxm": "published"}
    plan_text = _run(capsys, "plan", "--model", "gpt-2", "--rate", 1, "--input-len", 100, "--output-len", 10,
                     "--slo-ttft-p99", "1s", "--slo-tpot-p99", "50ms", "--hw", "b200", "--tp", 1, "--requests", 50,
                     "--no-verify", "--workers", 1)[1]
    assert "efficiency data: b200 class-default (typical of its class, not measured)" in plan_text


def test_optimize_names_calibration_and_stack(tmp_path, capsys):
    args = ["optimize", "--model", "gpt-2", "--hw", "b200", "--batch", 2, "--input-len", 100, "--output-len", 10,
            "--alt-hw", "none", "--techniques", "cuda-graphs"]
    rc, out, _ = _run(capsys, *args, "--out", tmp_path / "o")
    assert rc == 0 and "serving stack vllm\nefficiency data class-default (typical of its class, not measured)" in out
    import pandas as pd

    csv = pd.read_csv(tmp_path / "o" / "optimize.csv")
    assert list(csv.columns[-2:]) == ["stack", "calibration"]
    assert set(csv["stack"]) == {"vllm"} and set(csv["calibration"]) == {"class-default"}
    d = json.loads(_run(capsys, *args, "--json", "--stack", "ideal")[1])
    assert d["stack"] == "ideal" and d["calibration"] == "class-default"


def test_ops_rows_name_stack_and_calibration(tmp_path, capsys):
    q = tmp_path / "q.csv"
    q.write_text("hardware,op,dtype,m,n,k\nh100-sxm,gemm,bf16,64,4096,4096\nb200,gemm,bf16,64,4096,4096\n"
                 f"{TOY},gemm,bf16,64,4096,4096\nno-such-chip,gemm,bf16,64,4096,4096\n")
    rc, _, _ = _run(capsys, "ops", q, "--out", tmp_path / "p.csv", "--stack", "sglang")
    import pandas as pd

    p = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert rc == 0 and list(p.columns[-2:]) == ["stack", "calibration"]  # added last: the others keep their places
    assert list(p["calibration"]) == ["published", "class-default", "none", ""] and set(p["stack"]) == {"sglang"}


def test_sweep_rows_text_json_and_report_name_stack_and_calibration(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("version: 1\nkind: sweep\nname: s\nhardware: b200\nmodel: gpt-2\nevaluator: static\n"
                    "workload: {input_len: 100, output_len: 10}\naxes:\n  batch: [1, 2]\n")
    res = tmp_path / "s.parquet"
    rc, out, _ = _run(capsys, "sweep", spec, "--out", res, "--no-progress", "--workers", 1, "--stack", "sglang")
    assert rc == 0 and "serving stack sglang" in out
    assert "efficiency data: class-default (typical of its class, not measured)" in out
    import pandas as pd

    t = pd.read_parquet(res)
    assert list(t.columns[-2:]) == ["stack", "calibration"]
    assert set(t["stack"]) == {"sglang"} and set(t["calibration"]) == {"class-default"}
    d = json.loads(_run(capsys, "sweep", spec, "--out", tmp_path / "j.parquet", "--no-progress", "--workers", 1,
                        "--json")[1])
    assert d["calibration"] == "class-default"
    rc, _, _ = _run(capsys, "report", "sweep", res, "--out", tmp_path / "r")
    counts = dict(x.split(",", 1) for x in (tmp_path / "r" / "counts.csv").read_text().splitlines()[1:])
    assert rc == 0 and counts["stack"] == "sglang" and counts["calibration"] == "class-default"


def test_reports_hash_the_stack_file_and_report_predict_says_its_warnings(tmp_path, capsys):
    """A stack given by path is an input like the hardware and model files: its hash is in input-files.csv (the
    default stack's catalog file too); report predict says a request longer than the model on stderr, as predict."""
    mine = tmp_path / "my-stack.yaml"
    mine.write_text((STACKS / "sglang.yaml").read_text().replace("name: sglang\n", "name: my-stack\n", 1))
    rc, _, err = _run(capsys, "report", "predict", "--model", "gpt-2", "--hw", TOY, "--batch", 1, "--input-len", 2000,
                      "--output-len", 10, "--sweep", "none", "--stack", mine, "--out", tmp_path / "rp")
    files = (tmp_path / "rp" / "input-files.csv").read_text()
    assert rc == 0 and f"stack,my-stack,{mine}," in files
    assert f"warning: gpt-2: a request of 2010 tokens is {WHAT_IF}" in err
    rc, _, _ = _run(capsys, "compare", "--model", "gpt-2", "--hw", TOY, "--batch", 1, "--input-len", 100,
                    "--output-len", 10, "--out", tmp_path / "c")
    assert rc == 0 and "stack,vllm," in (tmp_path / "c" / "input-files.csv").read_text()
    rc, _, _ = _run(capsys, "report", "serve", "--model", "gpt-2", "--hw", TOY, "--rate", "inf", "--num-requests", 2,
                    "--input-len", 100, "--output-len", 10, "--stack", mine, "--out", tmp_path / "rs")
    assert rc == 0 and f"stack,my-stack,{mine}," in (tmp_path / "rs" / "input-files.csv").read_text()
