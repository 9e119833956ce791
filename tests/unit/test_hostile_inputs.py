"""Every case of issue #18 (hostile input), one test each: exit 2 (or 3) with a located message,
no traceback, bounded time and memory; or exit 0 with correct, finite numbers.

The CLI runs in-process (``llmsim.cli.main``); the cases that used to blow up memory or hang run
within ``_bounded`` (a wall-clock alarm), and their inputs are sized so that an unbounded read
would be obvious (gigabytes, minutes) while the bounded one takes well under a second.
"""

from __future__ import annotations

import gzip
import json
import re
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from llmsim.cli import main

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
TOY = DATA / "toy-chip.yaml"
TOY_TEXT = TOY.read_text()
QWEN = json.loads((ROOT / "workloads" / "catalog" / "models" / "qwen2.5-0.5b.json").read_text())


@contextmanager
def _bounded(seconds: int):
    """Fail (not hang) when the block runs longer than ``seconds``."""
    def _alarm(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run(capsys, *argv, seconds: int = 30):
    with _bounded(seconds):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse's own errors: exit 2 with its usage message
            rc = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def chip(tmp_path, text, stem="toy-chip"):
    p = tmp_path / f"{stem}.yaml"
    p.write_text(text)
    return p


def located(err: str, path) -> bool:
    """Every error line about ``path`` carries file:line:col."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ") and str(path) in ln]
    return bool(lines) and all(re.match(rf"error: {re.escape(str(path))}:\d+:\d+: ", ln) for ln in lines)


# ---------------------------------------------------------------------------------------------
# YAML: bytes, numbers, aliases, nesting, tags, surrogates, sizes, non-regular files

@pytest.mark.parametrize("char", ["\x01", "\x00", "\x7f"])
def test_control_and_nul_bytes_in_yaml(tmp_path, capsys, char):
    p = chip(tmp_path, TOY_TEXT.replace("Toy chip", f"Toy{char}chip"))
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and f"U+{ord(char):04X} is not allowed" in err and located(err, p)


def test_integer_of_5000_digits_in_yaml(tmp_path, capsys):
    p = chip(tmp_path, TOY_TEXT.replace("cores: 100", "cores: " + "9" * 5000))
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "5000 characters" in err and located(err, p)


def test_recursive_alias(tmp_path, capsys):
    p = chip(tmp_path, "a: &a [*a]\n")
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "recursive alias" in err and located(err, p)


def test_deep_nesting(tmp_path, capsys):
    p = chip(tmp_path, "a: " + "[" * 900 + "]" * 900 + "\n")
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "nested deeper than 64" in err and located(err, p)


def test_billion_laughs(tmp_path, capsys):
    text = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))
    p = chip(tmp_path, text)
    rc, _, err = run(capsys, "check", p, seconds=10)
    assert rc == 2 and "after expanding aliases" in err and located(err, p)


def test_recursive_alias_in_a_set_value(capsys):
    rc, _, err = run(capsys, "hw", "show", TOY, "--set", "cores=&a [*a]")
    assert rc == 2 and "recursive alias" in err


@pytest.mark.parametrize("where", ["list", "scalar", "mapping"])
def test_python_tags_are_errors(tmp_path, capsys, where):
    text = {"list": TOY_TEXT.replace("source: [round", "source: !!python/tuple [round"),
            "scalar": TOY_TEXT.replace("vendor", "x").replace("cores: 100", "cores: !!python/int 100"),
            "mapping": TOY_TEXT.replace("power: {tdp", "power: !!python/object:os.system {tdp")}[where]
    p = chip(tmp_path, text)
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "!!python/" in err and "is not allowed" in err and located(err, p)


def test_lone_surrogate_in_description(tmp_path, capsys):
    p = chip(tmp_path, re.sub(r"description: .*", 'description: "Toy \\\\udc80 chip"', TOY_TEXT))
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "lone surrogate" in err and located(err, p)
    rc, _, err = run(capsys, "hw", "show", p)
    assert rc == 2 and "lone surrogate" in err


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "/dev/urandom", "folder"])
def test_non_regular_files(tmp_path, capsys, target):
    if target == "folder":
        target = tmp_path / "x.yaml"
        target.mkdir()
    rc, _, err = run(capsys, "check", target, seconds=10)
    assert rc == 2 and ("not a regular file" in err or "folder" in err)


def test_fifo_does_not_block(tmp_path, capsys):
    import os
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    rc, _, err = run(capsys, "check", fifo, seconds=10)
    assert rc == 2 and "not a regular file" in err and located(err, fifo)


def test_system_whose_chip_is_dev_zero(tmp_path, capsys):
    p = tmp_path / "toy-system.yaml"
    p.write_text((DATA / "toy-system.yaml").read_text().replace("chip: toy-chip.yaml", "chip: /dev/zero"))
    rc, _, err = run(capsys, "check", p, seconds=10)
    assert rc == 2 and "not a regular file" in err


def test_yaml_file_size_limit(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LLMSIM_MAX_YAML_BYTES", "1000")
    p = chip(tmp_path, TOY_TEXT + "#" * 2000 + "\n")
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "over the limit of 1,000 bytes" in err and "LLMSIM_MAX_YAML_BYTES" in err and located(err, p)


# ---------------------------------------------------------------------------------------------
# config.json

def model(tmp_path, text, name="m"):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(text)
    return d / "config.json"


def predict(*hw_model, extra=()):
    hw, m = hw_model
    return ["predict", "--hw", hw, "--model", m, "--batch", "1", "--input-len", "16", "--output-len", "4",
            "--json", *extra]


@pytest.mark.parametrize("old,new,fragment", [
    ('"hidden_size": 896', '"hidden_size": NaN', "NaN is not a number"),
    ('"rms_norm_eps": 1e-06', '"rms_norm_eps": Infinity', "Infinity is not a number"),
    ('"rms_norm_eps": 1e-06', '"rms_norm_eps": -Infinity', "-Infinity is not a number"),
    ('"rms_norm_eps": 1e-06', '"rms_norm_eps": 1e400', "not a finite number"),
    ('"num_hidden_layers": 24', '"num_hidden_layers": 9223372036854775808', "at most 10,000"),
    ('"num_hidden_layers": 24', '"num_hidden_layers": 1000000000', "at most 10,000"),
    ('"num_hidden_layers": 24', '"num_hidden_layers": 1e9', "at most 10,000"),
    ('"num_hidden_layers": 24', '"num_hidden_layers": ' + "9" * 5000, "5000 digits"),
    ('"hidden_size": 896', '"hidden_size": 4611686018427387904', "at most 1,048,576"),
    ('"architectures": [\n    "Qwen2ForCausalLM"\n  ]', '"architectures": ["\\udc80"]', "lone surrogate"),
])
def test_hostile_config_json(tmp_path, capsys, old, new, fragment):
    text = json.dumps(QWEN, indent=2)
    assert old in text
    p = model(tmp_path, text.replace(old, new))
    rc, _, err = run(capsys, *predict(TOY, p), seconds=20)
    assert rc == 2 and fragment in err and located(err, p), err


def test_required_field_missing_is_located(tmp_path, capsys):
    cfg = dict(QWEN)
    del cfg["num_hidden_layers"]
    p = model(tmp_path, json.dumps(cfg, indent=2))
    rc, _, err = run(capsys, "model", "show", p)
    assert rc == 2 and "required field missing" in err and located(err, p)


def test_first_k_dense_replace_above_layers(tmp_path, capsys):
    cfg = json.loads((ROOT / "workloads" / "catalog" / "models" / "deepseek-v3.json").read_text())
    cfg["first_k_dense_replace"] = cfg["num_hidden_layers"] + 1
    p = model(tmp_path, json.dumps(cfg, indent=2))
    rc, _, err = run(capsys, "model", "show", p)
    assert rc == 2 and "first_k_dense_replace" in err and located(err, p)


@pytest.mark.parametrize("value", [[], {"a": 1}, "x", 0, -30.0, True])
def test_softcapping_must_be_a_positive_number(tmp_path, capsys, value):
    # a list or an object here crashed the graph cache (unhashable) with a traceback; 0 or a negative
    # cap was priced as no cap (a falsy value) or as a cap: either way the user's value changed meaning
    cfg = json.loads((ROOT / "workloads" / "catalog" / "models" / "gemma-2-27b.json").read_text())
    cfg["attn_logit_softcapping"] = value
    p = model(tmp_path, json.dumps(cfg, indent=2))
    rc, _, err = run(capsys, *predict(TOY, p))
    assert rc == 2 and "attn_logit_softcapping: must be a positive number or null" in err and located(err, p), err


@pytest.mark.parametrize("value", [["silu"], 1, "", {"a": 1}])
def test_activation_must_be_a_name(tmp_path, capsys, value):
    # was str(value): a list or a number became a name like "['silu']" and was priced as GELU
    cfg = dict(QWEN, hidden_act=value)
    p = model(tmp_path, json.dumps(cfg, indent=2))
    rc, _, err = run(capsys, "model", "show", p)
    assert rc == 2 and "hidden_act: must be a name (text)" in err and located(err, p), err


@pytest.mark.parametrize("value", [1, "x", [48], [-1], ["0"], [0.0]])
def test_mlp_only_layers_must_be_layer_indices(tmp_path, capsys, value):
    # an integer crashed the layer split ('int' is not iterable); an index past the 48 layers was ignored
    cfg = json.loads((ROOT / "workloads" / "catalog" / "models" / "qwen3-30b-a3b.json").read_text())
    cfg["mlp_only_layers"] = value
    p = model(tmp_path, json.dumps(cfg, indent=2))
    rc, _, err = run(capsys, "model", "show", p)
    assert rc == 2 and "mlp_only_layers: must be a list of layer indices from 0 to" in err and located(err, p), err


def test_mlp_only_layers_dense_first_is_read(tmp_path, capsys):
    cfg = json.loads((ROOT / "workloads" / "catalog" / "models" / "qwen3-30b-a3b.json").read_text())
    cfg["mlp_only_layers"] = [0, 1]
    p = model(tmp_path, json.dumps(cfg, indent=2))
    rc, out, err = run(capsys, "model", "show", p, "--json")
    assert rc == 0, err
    kinds = {k["tag"]: k["count"] for k in json.loads(out)["layer_kinds"]}
    assert kinds == {"layer.dense": 2, "layer.moe": 46}


def test_model_config_dev_zero(capsys):
    rc, _, err = run(capsys, *predict(TOY, "/dev/zero"), seconds=10)
    assert rc == 2


# ---------------------------------------------------------------------------------------------
# traces

def serve_trace(path):
    return ["serve", "--hw", TOY, "--model", "qwen2.5-0.5b", "--rate", "1", "--json", "--trace", path]


def test_csv_cell_over_the_field_limit(tmp_path, capsys):
    p = tmp_path / "t.csv"
    p.write_text("arrival_s,input_tokens,output_tokens\n0,5,5\n0," + "1" * 140_000 + ",5\n")
    rc, _, err = run(capsys, *serve_trace(p))
    assert rc == 2 and "longer than 4096" in err and f"{p}:3:" in err


def test_gzip_bomb_stops_at_the_limit(tmp_path, capsys):
    p = tmp_path / "bomb.csv.gz"
    with gzip.open(p, "wb", compresslevel=9) as f:
        f.write(b"arrival_s,input_tokens,output_tokens\n")
        block = b"0,1,1\n" * (1 << 16)
        for _ in range(200):  # 78 MB of text in about 80 KB
            f.write(block)
    assert p.stat().st_size < 1_000_000
    rc, _, err = run(capsys, *serve_trace(p), seconds=20)
    assert rc == 2 and "decompressed data exceeds the limit" in err and "LLMSIM_MAX_TRACE_BYTES" in err
    assert located(err, p)


@pytest.mark.parametrize("row,fragment", [
    ("0,9223372036854775808,5", "at most 1e+08"),
    ("0,5,1e30", "at most 1e+08"),
    ("1e13,5,5", "arrival time must be at most"),
])
def test_trace_values_out_of_range(tmp_path, capsys, row, fragment):
    p = tmp_path / "t.csv"
    p.write_text(f"arrival_s,input_tokens,output_tokens\n0,5,5\n{row}\n")
    rc, _, err = run(capsys, *serve_trace(p))
    assert rc == 2 and fragment in err and f"{p}:3:" in err


def test_azure_timestamps_spanning_centuries(tmp_path, capsys):
    p = tmp_path / "az.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n1700-01-01 00:00:00,5,5\n2200-01-01 00:00:00,5,5\n")
    rc, _, err = run(capsys, *serve_trace(p))
    assert rc == 2 and "span 500 years" in err and f"{p}:3:" in err


def test_many_bad_rows_and_n_more_is_located(tmp_path, capsys):
    p = tmp_path / "t.csv"
    p.write_text("arrival_s,input_tokens,output_tokens\n" + "0,-1,5\n" * 50)
    rc, _, err = run(capsys, *serve_trace(p))
    assert rc == 2 and "and 30 more" in err and located(err, p)


def test_gamma_cv_tiny(capsys):
    rc, _, err = run(capsys, "serve", "--hw", TOY, "--model", "qwen2.5-0.5b", "--rate", "1", "--num-requests", "5",
                     "--input-len", "16", "--output-len", "4", "--arrival", "gamma", "--cv", "1e-320")
    assert rc == 2 and "cv" in err


# ---------------------------------------------------------------------------------------------
# kernel CSVs (ops, validate, calibrate): read as the trace is, a regular file within LLMSIM_MAX_CSV_BYTES

KERNEL_CSV_COMMANDS = [("ops",), ("validate", "--json"), ("calibrate", "--hw", "h100-sxm", "--quiet")]


@pytest.mark.parametrize("cmd", KERNEL_CSV_COMMANDS, ids=lambda c: c[0])
def test_kernel_csv_fifo_and_device_do_not_block(tmp_path, capsys, cmd):
    # a FIFO blocked ops and validate for ever; /dev/zero was read until the memory ran out
    import os
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for p in (fifo, "/dev/zero"):
        rc, _, err = run(capsys, cmd[0], p, *cmd[1:], seconds=10)
        assert rc == 2 and "not a regular file" in err and located(err, p), err


@pytest.mark.parametrize("cmd", KERNEL_CSV_COMMANDS, ids=lambda c: c[0])
def test_kernel_csv_gzip_bomb_stops_at_the_limit(tmp_path, capsys, monkeypatch, cmd):
    # 20 MB of rows in 20 KB: inflated whole before (a MemoryError traceback past the machine's memory)
    monkeypatch.setenv("LLMSIM_MAX_CSV_BYTES", str(10 * 1024 * 1024))
    p = tmp_path / "bomb.csv.gz"
    with gzip.open(p, "wb", compresslevel=9) as f:
        f.write(b"hardware,op,dtype,bytes,measured_time_s\n" + b"h100-sxm,memcpy,bf16,1024,1e-6\n" * 700_000)
    assert p.stat().st_size < 200_000
    rc, _, err = run(capsys, cmd[0], p, *cmd[1:], seconds=20)
    assert rc == 2 and "decompressed data exceeds the limit" in err and "LLMSIM_MAX_CSV_BYTES" in err, err
    assert located(err, p)


def test_ops_blank_text_cells(tmp_path, capsys):
    # an all-blank op column came in as floats (NaN) and crashed the interval step ('float' has no strip);
    # a blank dtype was 'unknown dtype nan'
    p = tmp_path / "q.csv"
    p.write_text("hardware,op,dtype,m,n,k,bytes\nh100-sxm,,bf16,8,8,8,\nh100-sxm,,,8,8,8,\n")
    rc, out, err = run(capsys, "ops", p)
    assert rc == 0 and "2 of 2 rows have errors" in err
    assert out.count("unknown op ''") == 2, out
    p.write_text("hardware,op,dtype,m,n,k,bytes\nh100-sxm,gemm,,8,8,8,\nh100-sxm,memcpy,,,,,1024\n")
    rc, out, err = run(capsys, "ops", p)
    gemm, memcpy = __import__("csv").DictReader(out.splitlines())
    assert rc == 0 and gemm["error"] == "missing value in column 'dtype'" and not gemm["time_s"]
    assert memcpy["error"] == "" and float(memcpy["time_s"]) > 0  # a memcpy is its bytes: no dtype needed


# ---------------------------------------------------------------------------------------------
# hardware numbers, names, needed rates, overrides

@pytest.mark.parametrize("old,new", [
    ("bandwidth: 1 TB/s", "bandwidth: 1e308 GB/s"),
    ("bf16: 100 TFLOP/s", "bf16: 1e308 TFLOP/s"),
    ("tdp: 1000 W", "tdp: 1e308 W"),
    ("tdp: 1000 W", "tdp: 1e-300 W"),
    ("capacity: 10 GiB", "capacity: 1e30 GB"),
    ("cloud: 3.6 USD/h", "cloud: 1e20 USD/h"),
])
def test_implausible_quantities(tmp_path, capsys, old, new):
    p = chip(tmp_path, TOY_TEXT.replace(old, new))
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "outside the plausible range" in err and located(err, p)


@pytest.mark.parametrize("text", ["cores: 9223372036854775808", "cores: 100000000000", "cores: 1e300"])
def test_implausible_integers(tmp_path, capsys, text):
    p = chip(tmp_path, TOY_TEXT.replace("cores: 100", text))
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "cores" in err and located(err, p)


def test_set_override_is_checked_like_a_file_value(capsys):
    rc, out, err = run(capsys, "hw", "show", TOY, "--set", "memory.hbm.capacity=1e308 GB", "--json")
    assert rc == 2 and "outside the plausible range" in err


@pytest.mark.parametrize("hw", ["h100-sxm", "hgx-h100-8"])
def test_set_with_an_empty_path(capsys, hw):
    # '--set =5' on a system indexed the first segment of an empty path: an IndexError traceback
    rc, _, err = run(capsys, "hw", "show", hw, "--set", "=5", "--json")
    assert rc == 2 and "--set '=5': empty path before '='" in err, err


@pytest.mark.parametrize("hw,value", [("h100-sxm", "kind=system"), ("h100-sxm", "chip.kind=system"),
                                      ("hgx-h100-8", "kind=chip"), ("hgx-h100-8", "chip.kind=system")])
def test_set_cannot_change_the_kind(capsys, hw, value):
    # the override was applied and then ignored: the chip stayed a chip without a word
    rc, _, err = run(capsys, "hw", "show", hw, "--set", value, "--json")
    assert rc == 2 and "file stays a" in err, err
    rc, _, err = run(capsys, "hw", "show", "h100-sxm", "--set", "kind=chip", "--json")
    assert rc == 0, err


@pytest.mark.parametrize("name,fragment", [
    ("''", "non-empty name"),
    ("other", "differs from the file name"),
    ("../../etc/passwd", "path separators"),
    ("'a\\\\b'", "path separators"),
])
def test_chip_names_as_the_docs_say(tmp_path, capsys, name, fragment):
    p = chip(tmp_path, TOY_TEXT.replace("name: toy-chip", f"name: {name}"))
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and fragment in err and located(err, p)


def test_system_name_equals_its_stem(tmp_path, capsys):
    (tmp_path / "toy-chip.yaml").write_text(TOY_TEXT)
    p = tmp_path / "other.yaml"
    p.write_text((DATA / "toy-system.yaml").read_text())
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "differs from the file name" in err and located(err, p)


def _fp32_only(text):
    return (text.replace("peak: {bf16: 100 TFLOP/s, fp16: 100 TFLOP/s, fp8: 200 TFLOP/s, int8: 200 TOP/s, "
                         "fp32: 50 TFLOP/s}", "peak: {fp32: 50 TFLOP/s}")
            .replace("peak: {fp32: 10 TFLOP/s, bf16: 10 TFLOP/s, fp16: 10 TFLOP/s}", "peak: {fp32: 10 TFLOP/s}"))


def test_chip_without_bf16_fails_check_not_predict(tmp_path, capsys):
    p = chip(tmp_path, _fp32_only(TOY_TEXT))
    assert "bf16" not in p.read_text().split("compute:")[1].split("memory:")[0]
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "rate for bf16" in err and located(err, p)
    rc, _, err = run(capsys, *predict(p, "qwen2.5-0.5b"))
    assert rc == 2 and "rate for bf16" in err


def test_chip_without_fp32_fails_check(tmp_path, capsys):
    p = chip(tmp_path, TOY_TEXT.replace(", fp32: 50 TFLOP/s}", "}").replace("{fp32: 10 TFLOP/s, ", "{"))
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "rate for fp32" in err and located(err, p)


def test_fp32_on_the_special_unit_only_fails_check(tmp_path, capsys):
    # the special (exp) unit's fp32 counted as the fp32 rate: check passed, predict raised 'lists no rate
    # for fp32 math' (a traceback); the engine runs fp32 math on the vector or the matrix unit only
    text = (ROOT / "hwmodels" / "catalog" / "chips" / "h100-sxm.yaml").read_text()
    assert text.count("      fp32: 66.9 TFLOP/s\n") == 1
    p = chip(tmp_path, text.replace("      fp32: 66.9 TFLOP/s\n", ""), stem="h100-sxm")
    rc, _, err = run(capsys, "check", p)
    assert rc == 2 and "rate for fp32" in err and located(err, p), err


SMEM = TOY_TEXT.replace("{name: sram, kind: sram, capacity: 1 MiB", "{name: smem, kind: sram, capacity: 1 MiB").replace(
    "  - {name: hbm", "  - {name: sram, kind: sram, capacity: 500 MiB, bandwidth: 5 TB/s}\n  - {name: hbm")


def test_override_matches_a_name_before_a_kind(tmp_path, capsys):
    p = chip(tmp_path, SMEM)
    rc, out, err = run(capsys, "hw", "show", p, "--set", "memory.sram.bandwidth=7 TB/s", "--json")
    assert rc == 0, err
    levels = {m["name"]: m for m in json.loads(out)["memory"]}
    assert levels["sram"]["bandwidth_bytes_per_s"] == 7e12
    assert levels["smem"]["bandwidth_bytes_per_s"] == 10e12


def test_override_with_an_ambiguous_kind_is_an_error(tmp_path, capsys):
    p = chip(tmp_path, SMEM.replace("{name: sram, kind: sram, capacity: 500", "{name: l2, kind: sram, capacity: 500"))
    rc, _, err = run(capsys, "hw", "show", p, "--set", "memory.sram.bandwidth=7 TB/s")
    assert rc == 2 and "kind of several entries (smem, l2)" in err
    rc, _, err = run(capsys, "hw", "show", p, "--set", "memory.dram.bandwidth=7 TB/s")  # hbm is the only dram
    assert rc == 0, err


# ---------------------------------------------------------------------------------------------
# CLI numbers: one set of checked types for every command

SERVE = ["serve", "--hw", TOY, "--model", "qwen2.5-0.5b", "--rate", "1", "--num-requests", "5",
         "--input-len", "16", "--output-len", "4"]


@pytest.mark.parametrize("argv,flag,fragment", [
    (predict(TOY, "qwen2.5-0.5b", extra=["--batch", "1e20"]), "--batch", "LLMSIM_MAX_BATCH"),
    (predict(TOY, "qwen2.5-0.5b", extra=["--batch", "100000000000000000000"]), "--batch", "at most 100,000"),
    (predict(TOY, "qwen2.5-0.5b", extra=["--batch", "inf"]), "--batch", "expected an integer"),
    (predict(TOY, "qwen2.5-0.5b", extra=["--input-len", "9" * 5000]), "--input-len", "at most 40 are read"),
    (predict(TOY, "qwen2.5-0.5b", extra=["--spec-ngram", "--spec-step-cost", "1e400"]), "--spec-step-cost",
     "finite"),
    (["compare", "--hw", TOY, "--model", "qwen2.5-0.5b", "--batch", "100000000", "--input-len", "16",
      "--output-len", "4"], "--batch", "LLMSIM_MAX_BATCH"),
    (SERVE + ["--arrival", "gamma", "--cv", "1e-320"], "--cv", "between 0.001 and 1000"),
    (SERVE + ["--swap-space", "inf"], "--swap-space", "finite"),
    (SERVE + ["--swap-space", "nan"], "--swap-space", "finite"),
    (SERVE + ["--decode-replicas", "1e20"], "--decode-replicas", "LLMSIM_MAX_REPLICAS"),
    (SERVE + ["--num-requests", "1e20"], "--num-requests", "LLMSIM_MAX_REQUESTS"),
    (SERVE + ["--memory-utilization", "1e300"], "--memory-utilization", "at most 1"),
    (SERVE + ["--seed", "-1"], "--seed", "at least 0"),
])
def test_numeric_flags_are_checked(capsys, argv, flag, fragment):
    rc, _, err = run(capsys, *argv, seconds=20)
    assert rc == 2 and f"argument {flag}" in err and fragment in err, err


def test_bound_can_be_raised(capsys, monkeypatch):
    monkeypatch.setenv("LLMSIM_MAX_BATCH", "10")
    rc, _, err = run(capsys, *predict(TOY, "qwen2.5-0.5b", extra=["--batch", "11"]))
    assert rc == 2 and "at most 10 " in err


def test_every_numeric_flag_has_a_checked_type():
    import argparse

    from llmsim.cli import build_parser

    def walk(p):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sp in a.choices.values():
                    yield from walk(sp)
            else:
                yield a
    raw = [a.option_strings for a in walk(build_parser()) if a.type in (int, float)]
    assert not raw, f"flags read with plain int/float: {raw}"


@pytest.mark.parametrize("argv,flag", [
    (["predict", "--weight-dtype", ""], "quant.weight: unknown dtype ''"),
    (["predict", "--kv-dtype", ""], "quant.kv_cache: unknown dtype ''"),
    (["predict", "--spec-draft", ""], "--spec-draft: empty value"),
    (["predict", "--sparse", ""], "--sparse: empty value"),
    (["predict", "--offload", "kv", "--offload-bandwidth", ""], "--offload-bandwidth: empty value"),
    (["compare", "--hw", "a100-sxm", "--offload", "kv", "--offload-capacity", " "], "--offload-capacity: empty value"),
    (["optimize", "--spec-draft", ""], "--spec-draft: empty value"),
    (["optimize", "--techniques", ""], "--techniques: no names in ''"),
    (["optimize", "--exclude", ","], "--exclude: no names in ','"),
    (["optimize", "--alt-hw", ""], "--alt-hw: no names in ''"),
])
def test_an_empty_flag_value_is_not_a_missing_flag(capsys, argv, flag):
    # each was read as 'not given' (a truthiness test): the run went on without the user's setting
    rc, _, err = run(capsys, *argv, "--hw", "h100-sxm", "--model", "qwen2.5-0.5b", "--batch", "2",
                     "--input-len", "32", "--output-len", "8", "--json")
    assert rc == 2 and flag in err, err


@pytest.mark.parametrize("flag,value", [("--fit", ""), ("--fit", ","), ("--ops", " ")])
def test_calibrate_empty_name_lists(capsys, flag, value):
    # read as 'flag not given': every field fitted, or every op kind used, without a word
    rc, _, err = run(capsys, "calibrate", "h100-sxm-own", "--hw", "h100-sxm", "--quiet", "--json", flag, value)
    assert rc == 2 and f"{flag}: no names in" in err, err


@pytest.mark.parametrize("argv,fragment", [
    (["predict", "--hw", "", "--model", "qwen2.5-0.5b", "--batch", "1", "--input-len", "8", "--output-len", "2"],
     "an empty hardware name"),  # was "error:  is a folder" (Path('') is the working folder)
    (["validate", "h100-sxm-own", "--hw", "", "--json"], "an empty hardware name"),
    (["validate", "h100-sxm-own", "--hw", "bogus", "--json"], "unknown hardware 'bogus'"),  # was 'no row could be scored'
])
def test_bad_hardware_name_is_said_once(capsys, argv, fragment):
    rc, _, err = run(capsys, *argv)
    assert rc == 2 and fragment in err and "no row could be scored" not in err, err


def test_rate_is_bounded(capsys):
    argv = [a if a != "1" else "1e300" for a in SERVE]
    rc, _, err = run(capsys, *argv)
    assert rc == 2 and "at most 1e+09" in err


# ---------------------------------------------------------------------------------------------
# sweeps

def sweep_spec(tmp_path, body, name="s"):
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"version: 1\nkind: sweep\nhardware: {TOY}\nmodel: qwen2.5-0.5b\n" + body)
    return p


def test_sweep_grid_bounded_before_allocation(tmp_path, capsys):
    p = sweep_spec(tmp_path, "axes:\n  batch: {range: [1, 1000000], steps: 1000}\n"
                             "  input_len: {range: [1, 1000000], steps: 1000}\n"
                             "  output_len: {range: [1, 100000], steps: 1000}\n")
    rc, _, err = run(capsys, "sweep", p, "--out", tmp_path / "o.parquet", seconds=20)
    assert rc == 2 and "LLMSIM_MAX_POINTS" in err and located(err, p)


def test_sweep_samples_bounded(tmp_path, capsys):
    p = sweep_spec(tmp_path, "sampling: {method: random, samples: 1000000000000}\n"
                             "axes:\n  batch: {range: [1, 64]}\n")
    rc, _, err = run(capsys, "sweep", p, "--out", tmp_path / "o.parquet", seconds=20)
    assert rc == 2 and "LLMSIM_MAX_POINTS" in err and located(err, p)


@pytest.mark.parametrize("body,fragment", [
    ("evaluator: serving\nserving: {rate: 1, num_requests: 5, scheduler: bogus}\naxes:\n  batch: [1]\n",
     "unknown scheduler 'bogus'"),
    ("evaluator: serving\nserving: {rate: 1, num_requests: 5}\naxes:\n  serving.scheduler: [vllm, bogus]\n",
     "unknown scheduler 'bogus'"),
    ("evaluator: nosuchmodule_xyz:fn\naxes:\n  batch: [1]\n", "cannot import it"),
    ("evaluator: os:no_such_function\naxes:\n  batch: [1]\n", "cannot import it"),
    ("evaluator: serving\nserving: {rate: 1, num_requests: 100000000000}\naxes:\n  batch: [1]\n",
     "LLMSIM_MAX_REQUESTS"),
    ("workload: {batch: 1000000000}\naxes:\n  input_len: [1]\n", "LLMSIM_MAX_BATCH"),
])
def test_sweep_bad_settings_exit_2(tmp_path, capsys, body, fragment):
    p = sweep_spec(tmp_path, body)
    rc, _, err = run(capsys, "sweep", p, "--out", tmp_path / "o.parquet")
    assert rc == 2 and fragment in err and located(err, p), err


@pytest.mark.parametrize("name", ["../x", "/tmp/abs", "a/b", ".."])
def test_sweep_name_cannot_write_outside_the_working_directory(tmp_path, capsys, monkeypatch, name):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    p = sweep_spec(work, f"name: '{name}'\naxes:\n  batch: [1]\n")
    before = set(tmp_path.rglob("*"))
    rc, _, err = run(capsys, "sweep", p)
    assert rc == 2 and "path separators" in err and located(err, p)
    assert set(tmp_path.rglob("*")) == before


# ---------------------------------------------------------------------------------------------
# output places and unknown values

@pytest.mark.parametrize("out", ["/dev/null", "/proc/llmsim-no-such-dir"])
def test_out_naming_a_non_directory_or_unwritable_place(capsys, out):
    rc, _, err = run(capsys, "compare", "--hw", TOY, "--model", "qwen2.5-0.5b", "--batch", "1", "--input-len", "16",
                     "--output-len", "4", "--out", out)
    assert rc == 2 and out in err


@pytest.mark.parametrize("argv", [
    ["report", "predict", "--hw", "h100-sxm", "--model", "qwen2.5-0.5b", "--batch", "1", "--input-len", "8",
     "--output-len", "2"],
    ["serve", "--hw", "h100-sxm", "--model", "qwen2.5-0.5b", "--rate", "5", "--num-requests", "5"],
    ["validate", "h100-sxm-own"],
    ["sweep", ROOT / "examples" / "sweep-small.yaml", "--dry-run", "--plots", "x"],
])
def test_out_empty(tmp_path, capsys, monkeypatch, argv):
    # '--out ""' (an unset shell variable) wrote report predict's files into the working folder,
    # overwriting any ops.csv or summary.csv there, and serve/validate silently wrote nothing
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, *argv, "--out", "")
    assert rc == 2 and "argument --out: an empty path" in err, err
    assert not list(tmp_path.iterdir())


def test_out_naming_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    rc, _, err = run(capsys, "compare", "--hw", TOY, "--model", "qwen2.5-0.5b", "--batch", "1", "--input-len", "16",
                     "--output-len", "4", "--out", f)
    assert rc == 2 and str(f) in err


def test_unknown_power_is_unknown_not_zero(tmp_path, capsys):
    p = chip(tmp_path, TOY_TEXT.replace("power: {tdp: 1000 W, idle: 100 W}\n", ""))
    rc, out, err = run(capsys, *predict(p, "qwen2.5-0.5b"))
    assert rc == 0, err
    d = json.loads(out)
    assert d["joules_per_output_token"] is None
    assert any("energy unknown" in n for n in d["notes"])
    rc, out, err = run(capsys, *predict(p, "qwen2.5-0.5b")[:-1])
    assert rc == 0 and "unknown (the hardware lists no power data)" in out and "0.000 J" not in out
