"""Fuzzing the command line with hostile inputs (issue #18): llmsim keeps its promise.

The promise, for every input: exit 0 with finite numbers in its JSON, exit 2 with ``error:``
lines (a file's lines carry ``file:line:col``), or exit 3 (valid but cannot run); never a
traceback, never a hang. Hypothesis generates the inputs: mutated hardware YAML, model
config.json, trace CSV, sweep specs, and single bad values of numeric flags.

The CLI runs in-process (``llmsim.cli.main``) under a wall-clock alarm per example. CI runs a small
fixed number of examples (derandomized, so a run is reproducible); set ``LLMSIM_FUZZ_EXAMPLES``
(e.g. 2000) for a long hunt (docs/hardware-format.md, "Fuzzing").
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from llmsim.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOY = ROOT / "tests" / "data" / "toy-chip.yaml"
TOY_TEXT = TOY.read_text()
QWEN_TEXT = (ROOT / "workloads" / "catalog" / "models" / "qwen2.5-0.5b.json").read_text()
EXAMPLES = int(os.environ.get("LLMSIM_FUZZ_EXAMPLES", "8"))
DEADLINE_S = 30

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 50, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


class _Deadline(Exception):
    pass


#: work-size bounds lowered while fuzzing, so that whatever passes them runs in well under the
#: deadline (the bounds themselves are what is under test)
SMALL_WORK = {"LLMSIM_MAX_REQUESTS": "200", "LLMSIM_MAX_BATCH": "64", "LLMSIM_MAX_TOKENS": "8192",
              "LLMSIM_MAX_REPLICAS": "8", "LLMSIM_MAX_POINTS": "1000"}


@pytest.fixture(autouse=True)
def _small_work(monkeypatch):
    for k, v in SMALL_WORK.items():
        monkeypatch.setenv(k, v)


def promise(argv, files=(), summaries=()):
    """Run the CLI; assert the promise; return (rc, stdout). ``summaries``: fragments of error lines about a
    whole run, not a place in the file (exempt from file:line:col)."""
    def _alarm(signum, frame):
        raise _Deadline(f"llmsim {' '.join(map(str, argv))} ran past {DEADLINE_S} s")
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(DEADLINE_S)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                rc = main([str(a) for a in argv])
            except SystemExit as e:  # argparse's usage errors
                rc = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    o, e = out.getvalue(), err.getvalue()
    assert rc in (0, 2, 3), f"exit {rc}: {e[-2000:]}"
    assert "Traceback" not in e
    if rc == 2:
        assert "error" in e, e
        for f in files:
            for line in (ln for ln in e.splitlines() if ln.startswith(f"error: {f}")
                         and not any(s in ln for s in summaries)):
                assert re.match(rf"error: {re.escape(str(f))}:\d+:\d+: ", line), line
    if rc == 0 and o.lstrip().startswith(("{", "[")):
        def bad(token):
            raise AssertionError(f"{token} in JSON output")
        json.loads(o, parse_constant=bad)  # null, never NaN/Infinity
        _finite(json.loads(o))
    return rc, o


def _finite(o):
    if isinstance(o, float):
        assert math.isfinite(o)
    elif isinstance(o, dict):
        for v in o.values():
            _finite(v)
    elif isinstance(o, list):
        for v in o:
            _finite(v)


# hostile values: what an attacker or a careless user writes
HOSTILE_SCALARS = [
    "1e308 GB/s", "1e-320 TB/s", "-5 TB/s", ".nan", ".inf", "-.inf", "0", "-1", "1e400", "9" * 60, "9" * 5000,
    "2147483648", "9223372036854775808", "''", "~", "[]", "{}", "[[[[[[[[]]]]]]]]", "!!python/tuple [1]",
    "!!binary aGVsbG8=", "&a [*a]", '"\\udc80"', '"\\x00"', "yes", "0x10", "1_000", "2023-01-01", "5 TB",
    "5 W", "100 TFLOP/s", "1e30 GB", "1 EB", "1e20 USD/h", "../../etc/passwd", "*undefined",
]
BYTES = [b"\x00", b"\x01", b"\x7f", b"\xff", b"\xfe\xff", b"\t", b"\r", b": ", b"- ", b"&x ", b"*x", b"!!", b"{", b"[",
         b"\"", b"'", b"#", b"%YAML 1.1\n", b"---\n"]


@st.composite
def mutated_yaml(draw):
    lines = TOY_TEXT.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["value", "bytes", "drop", "dup"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {draw(st.sampled_from(HOSTILE_SCALARS))}"
        elif kind == "bytes":
            b = draw(st.sampled_from(BYTES)).decode("latin-1")
            j = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j] + b + lines[i][j:]
        elif kind == "drop":
            del lines[i]
        else:
            lines.insert(i, lines[i])
        if not lines:
            lines = ["x"]
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=mutated_yaml())
def test_fuzz_hardware_yaml(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("hw") / "toy-chip.yaml"
    p.write_bytes(text.encode("utf-8", "surrogatepass"))
    rc, _ = promise(["check", p], files=[p])
    if rc == 0:
        promise(["hw", "show", p, "--json"], files=[p])
        promise(["predict", "--hw", p, "--model", "qwen2.5-0.5b", "--batch", "2", "--input-len", "32",
                 "--output-len", "8", "--json"], files=[p])


JSON_HOSTILE = ["NaN", "Infinity", "-Infinity", "1e400", "-1", "0", "1.5", "9" * 50, "9" * 5000, "1e9",
                "9223372036854775808", "null", "true", '"x"', '"\\udc80"', "[]", "{}", "[" * 200 + "]" * 200]


@st.composite
def mutated_config(draw):
    cfg = json.loads(QWEN_TEXT)
    text = json.dumps(cfg, indent=2)
    keys = [k for k, v in cfg.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for _ in range(draw(st.integers(1, 2))):
        k = draw(st.sampled_from(keys))
        new = f'"{k}": {draw(st.sampled_from(JSON_HOSTILE))}'
        text = re.sub(rf'"{k}": [^,\n]+', lambda m: new, text, count=1)
    return text


@FUZZ
@given(text=mutated_config())
def test_fuzz_model_config(tmp_path_factory, text):
    d = tmp_path_factory.mktemp("m")
    p = d / "config.json"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    promise(["predict", "--hw", TOY, "--model", p, "--batch", "2", "--input-len", "32", "--output-len", "8",
             "--json"], files=[p])


#: catalog configs whose fields between them hold every kind the reader takes: numbers, names, lists of
#: layer indices, soft caps, MoE and MLA fields, nested objects
CONFIGS = {m: json.loads((ROOT / "workloads" / "catalog" / "models" / f"{m}.json").read_text())
           for m in ("qwen2.5-0.5b", "gemma-2-27b", "qwen3-30b-a3b", "deepseek-v2-lite")}
ANY_HOSTILE = st.one_of(st.sampled_from([0, -1, 1, 3, 1.5, 1e300, 2**63, None, True, False, "", "x", "16", [], {}, [1, 2],
                                         [-1], [10**6], ["a"], {"a": 1}, [[[]]], "\udc80"]),
                        st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=5),
                                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                                     max_leaves=6))


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(CONFIGS)))
def test_fuzz_model_config_any_field(tmp_path_factory, data, name):
    """Any field of a real config (not only the numeric ones) set to any JSON value, or removed: the softcaps,
    mlp_only_layers and hidden_act of session 13's hunt each took a list or an object to a traceback or a
    silent reading."""
    cfg = dict(CONFIGS[name])
    for key in data.draw(st.lists(st.sampled_from(sorted(cfg)), min_size=1, max_size=2, unique=True)):
        if data.draw(st.booleans()):
            cfg[key] = data.draw(ANY_HOSTILE)
        else:
            del cfg[key]
    p = tmp_path_factory.mktemp("m") / "config.json"
    p.write_text(json.dumps(cfg, indent=2), encoding="utf-8", errors="surrogatepass")
    promise(["predict", "--hw", "hgx-h100-8", "--tp", "2", "--model", p, "--batch", "2", "--input-len", "32",
             "--output-len", "8", "--json"], files=[p])


KERNEL_COLUMNS = ["hardware", "op", "dtype", "m", "n", "k", "phase", "batch", "heads", "kv_heads", "head_dim", "seqlen_q",
                  "seqlen_kv", "causal", "bytes", "num_devices", "numel", "measured_time_s", "kernel", "out_dtype"]
KERNEL_CELL = st.one_of(st.sampled_from(["", " ", "h100-sxm", "hgx-h100-8", "gemm", "attention", "memcpy", "allreduce",
                                         "norm", "rope", "embedding", "elementwise", "bf16", "fp8", "fp4", "prefill",
                                         "decode", "true", "0", "1", "8", "64", "-1", "nan", "inf", "1e308", "1e-6",
                                         "x" * 5000, "flash", "naive"]),
                        st.integers(-(2**70), 2**70).map(str), st.text(max_size=6))


@FUZZ
@given(cols=st.lists(st.sampled_from(KERNEL_COLUMNS), min_size=1, max_size=12, unique=True),
       data=st.data(), command=st.sampled_from(["ops", "validate"]), twice=st.booleans())
def test_fuzz_kernel_csv(tmp_path_factory, cols, data, command, twice):
    """ops and validate on a kernel CSV of any columns and cells: session 13 found an all-blank op column
    crashing ops (pandas read it as floats); ``twice``: the last column is given twice."""
    import csv as _csv

    cols = list(dict.fromkeys(["hardware", "op", *cols]))
    cols += cols[-1:] if twice else []
    rows = data.draw(st.lists(st.lists(KERNEL_CELL, min_size=len(cols), max_size=len(cols)), max_size=5))
    p = tmp_path_factory.mktemp("k") / "kernels.csv"
    with open(p, "w", newline="", encoding="utf-8", errors="surrogatepass") as f:
        w = _csv.writer(f)
        w.writerow(cols)
        w.writerows(rows)
    # every error about the file carries file:line:col (hwmodels/csvtext.py), except validate's
    # summary 'FILE: no row could be scored' (each rejected row is listed with its reason)
    promise([command, p, *(["--json"] if command == "validate" else [])], files=[p],
            summaries=("no row could be scored",))


CELL = st.one_of(st.integers(-(2**70), 2**70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.sampled_from(["", "nan", "inf", "-0", "1e308", "2023-11-16 18:17:03", "x" * 5000, '"', '""',
                                  "\x00", "1,2"]),
                 st.text(max_size=12))


@FUZZ
@given(rows=st.lists(st.tuples(CELL, CELL, CELL), min_size=0, max_size=8),
       header=st.sampled_from(["arrival_s,input_tokens,output_tokens", "TIMESTAMP,ContextTokens,GeneratedTokens",
                               "a,b,c", "", "arrival_s,input_tokens,Arrival_S", '"arrival_s,input_tokens,output_tokens']))
def test_fuzz_trace_csv(tmp_path_factory, rows, header):
    p = tmp_path_factory.mktemp("t") / "trace.csv"
    p.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8", errors="surrogatepass")
    promise(["serve", "--hw", TOY, "--model", "qwen2.5-0.5b", "--rate", "100", "--trace", p, "--json"], files=[p])


AXIS_VALUES = st.sampled_from(["[1, 2]", "[0]", "[-1]", "[1e20]", "[.nan]", "[.inf]", "{range: [1, 1e12], steps: "
                               "1000000000}", "{range: [1, 2]}", "[]", "x", "[bogus]", "&a [*a]", "[1e308 TB/s]",
                               "['1 TB/s', '2 TB/s']", "{range: ['1 TB/s', '1e30 TB/s'], steps: 3}"])
AXIS_NAMES = st.sampled_from(["batch", "input_len", "tp", "serving.scheduler", "serving.num_requests", "serving.cv",
                              "hw.memory.hbm.bandwidth", "hw.cores", "hw.memory.sram.capacity", "nonsense",
                              "hw.../../x"])


@FUZZ
@given(axes=st.dictionaries(AXIS_NAMES, AXIS_VALUES, min_size=1, max_size=3),
       name=st.sampled_from(["ok", "../x", "/abs", "''", "a/b", "ok2"]),
       evaluator=st.sampled_from(["static", "serving", "os:path", "no_such_mod:f", "x"]),
       sampling=st.sampled_from(["", "sampling: {method: random, samples: 3}\n",
                                 "sampling: {method: lhs, samples: 100000000000}\n"]))
def test_fuzz_sweep_spec(tmp_path_factory, axes, name, evaluator, sampling):
    d = tmp_path_factory.mktemp("s")
    p = d / "spec.yaml"
    p.write_text(f"version: 1\nkind: sweep\nname: {name}\nhardware: {TOY}\nmodel: qwen2.5-0.5b\n"
                 f"evaluator: {evaluator}\nserving: {{rate: 5, num_requests: 5}}\n{sampling}axes:\n"
                 + "".join(f"  {k}: {v}\n" for k, v in axes.items()))
    promise(["sweep", p, "--dry-run"], files=[p])


BAD_NUMBERS = st.one_of(st.sampled_from(["1e20", "-1", "0", "inf", "-inf", "nan", "1e-320", "1e400", "9" * 5000,
                                         "0x10", "", " ", "1.5", "2147483648", "abc"]),
                        st.floats(allow_nan=True, allow_infinity=True).map(repr),
                        st.integers(-(2**80), 2**80).map(str))
PREDICT_FLAGS = ["--batch", "--input-len", "--output-len", "--tp", "--pp", "--ep", "--spec-k", "--kv-window",
                 "--spec-step-cost"]
SERVE_FLAGS = ["--num-requests", "--input-len", "--output-len", "--cv", "--swap-space", "--decode-replicas",
               "--prefill-replicas", "--max-num-seqs", "--block-size", "--chunk-size", "--memory-utilization",
               "--watermark", "--seed", "--slo-ttft", "--slo-tpot", "--rate", "--replicas", "--trace-speedup"]


@FUZZ
@given(flag=st.sampled_from(PREDICT_FLAGS), value=BAD_NUMBERS)
def test_fuzz_predict_flag(flag, value):
    argv = {"--batch": "2", "--input-len": "32", "--output-len": "8"}
    argv[flag] = value
    extra = ["--spec-ngram"] if flag in ("--spec-k", "--spec-step-cost") else []
    promise(["predict", "--hw", TOY, "--model", "qwen2.5-0.5b", "--json", *extra,
             *[x for kv in argv.items() for x in kv]])


@FUZZ
@given(flag=st.sampled_from(SERVE_FLAGS), value=BAD_NUMBERS)
def test_fuzz_serve_flag(flag, value):
    argv = {"--rate": "50", "--num-requests": "6", "--input-len": "32", "--output-len": "8"}
    argv[flag] = value
    extra = ["--scheduler", "disagg"] if "replicas" in flag else ["--arrival", "gamma"] if flag == "--cv" else []
    promise(["serve", "--hw", TOY, "--model", "qwen2.5-0.5b", "--json", *extra,
             *[x for kv in argv.items() for x in kv]])


# valid flags in combination: each works alone, and the combinations are where the scheduler, the block
# manager and the replicas meet (session 12's smoke found static + --prefix-caching crashing the block count)
SCHEDULER_FLAGS = [["--scheduler", "vllm"], ["--scheduler", "sarathi"], ["--scheduler", "static"],
                   ["--scheduler", "disagg", "--prefill-replicas", "1", "--decode-replicas", "1"]]
PARALLEL_FLAGS = [[], ["--tp", "2"], ["--pp", "2"], ["--tp", "2", "--ep", "2"]]
EXTRA_FLAGS = [[], ["--prefix-caching", "--shared-prefix", "64", "--num-prefixes", "2"],
               ["--preemption", "swap", "--memory-utilization", "0.15"], ["--replicas", "2", "--router", "least-kv"],
               ["--cuda-graphs", "--fused"], ["--quant", "fp8"], ["--stack", "sglang"], ["--usage", "offline"],
               ["--arrival", "gamma", "--cv", "3"], ["--max-num-seqs", "2", "--block-size", "8"]]


@FUZZ
@given(sched=st.sampled_from(SCHEDULER_FLAGS), par=st.sampled_from(PARALLEL_FLAGS),
       extras=st.lists(st.sampled_from(EXTRA_FLAGS), max_size=2, unique_by=lambda f: tuple(f)),
       model=st.sampled_from(["qwen2.5-0.5b", "deepseek-v2-lite"]))
def test_fuzz_serve_flag_combinations(sched, par, extras, model):
    extra = [x for f in extras for x in f]
    if "--replicas" in extra and "disagg" in sched:  # disagg sets its own replica count
        extra = []
    promise(["serve", "--hw", "hgx-h100-8", "--model", model, "--json", "--rate", "20", "--num-requests", "12",
             "--input-len", "160", "--output-len", "6", *sched, *par, *extra])
