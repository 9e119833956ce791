"""What a person reads shows no raw exponent and no snake_case result key.

Runs the main commands in-process (the ``llmsim`` CLI's ``main``) and builds the HTML reports,
then scans the text a person reads: stdout of each command and the report pages with their tags,
scripts and styles removed. Raw values stay in CSV/JSON/Parquet, which are not scanned.
"""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import pytest

from hwmodels.format import axis_scale, fmt_bytes, fmt_compute, fmt_number, fmt_si, fmt_time, format_value, label
from llmsim.cli import main

EXPONENT = re.compile(r"(?<![\w-])\d+\.?\d*e[+-]\d+", re.IGNORECASE)
# snake_case words such as tpot_s or usd_per_mtok_output (identifiers a person should not have to read)
SNAKE = re.compile(r"(?<![\w./'`\"=-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w.(/'`\"=-])")
# words that are names, not result keys: file stems, flags written as code
ALLOWED = {"read_parquet", "lm_head"}  # a pandas call; the layer's name in every HF model


def _problems(text: str) -> list[str]:
    out = [f"exponent {m.group(0)!r}" for m in EXPONENT.finditer(text)]
    out += [f"snake_case {m.group(0)!r}" for m in SNAKE.finditer(text) if m.group(0) not in ALLOWED]
    return out


def _run(capsys, argv) -> str:
    rc = main(argv)
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    return cap.out


def _visible(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.DOTALL | re.IGNORECASE)
    page = re.sub(r"<img\b[^>]*>", " ", page)
    page = re.sub(r"<svg\b.*?</svg>", " ", page, flags=re.DOTALL)
    page = re.sub(r"<code>.*?</code>|<pre>.*?</pre>", " ", page, flags=re.DOTALL)  # the command line, as typed
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", page))


WORK = ["--model", "llama-3.1-8b", "--batch", "16", "--input-len", "512", "--output-len", "128"]

COMMANDS = {
    "hw show": ["hw", "show", "h100-sxm"],
    "hw show system": ["hw", "show", "hgx-h100-8"],
    "hw list": ["hw", "list"],
    "predict": ["predict", "--hw", "h100-sxm", *WORK, "--breakdown"],
    "compare": ["compare", "--hw", "a100-sxm", "--hw", "h100-sxm", *WORK],
    "serve": ["serve", "--hw", "h100-sxm", "--model", "llama-3.1-8b", "--rate", "5", "--num-requests", "60",
              "--input-len", "256", "--output-len", "32"],
    "model show": ["model", "show", "llama-3.1-8b"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_text_is_readable(name, capsys):
    text = _run(capsys, COMMANDS[name])
    assert not _problems(text), f"llmsim {name}:\n" + "\n".join(_problems(text)) + "\n---\n" + text


@pytest.mark.slow
def test_sweep_text_is_readable(capsys, tmp_path):
    spec = Path(__file__).resolve().parents[2] / "examples" / "sweep-small.yaml"
    text = _run(capsys, ["sweep", str(spec), "--out", str(tmp_path / "s.parquet"), "--no-progress", "--workers", "1"])
    assert not _problems(text), "\n".join(_problems(text)) + "\n---\n" + text


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["predict", "serve"])
def test_report_html_is_readable(kind, capsys, tmp_path):
    if kind == "predict":
        argv = ["report", "predict", "--hw", "h100-sxm", *WORK, "--out", str(tmp_path)]
    else:
        argv = ["report", "serve", "--hw", "h100-sxm", "--model", "llama-3.1-8b", "--rate", "5", "--num-requests", "60",
                "--input-len", "256", "--output-len", "32", "--out", str(tmp_path)]
    _run(capsys, argv)
    page = _visible((tmp_path / "report.html").read_text())
    probs = _problems(page)
    assert not probs, "\n".join(probs[:40])


def test_report_serve_writes_the_real_trace(capsys, tmp_path):
    import json

    _run(capsys, ["report", "serve", "--hw", "h100-sxm", "--model", "llama-3.1-8b", "--rate", "5", "--num-requests",
                  "20", "--input-len", "128", "--output-len", "16", "--out", str(tmp_path)])
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    assert len(events) > 20  # steps and requests of replica 0, as `serve --out` writes them


# ---------------------------------------------------------------------------------------------
# the formatter itself (numbers checked by hand)


@pytest.mark.parametrize("value,unit,text", [
    (9.894e14, "FLOP/s", "989 TFLOP/s"), (1.9e15, "FLOP/s", "1.90 PFLOP/s"), (3.35e12, "B/s", "3.35 TB/s"),
    (999.96, "W", "1.00 kW"), (0.0004688, "J", "469 uJ"), (6.25e22, "FLOP/s", "62,500 EFLOP/s"),
])
def test_si_prefixes(value, unit, text):
    assert fmt_si(value, unit) == text


def test_units_by_kind():
    assert fmt_time(0.0872) == "87.2 ms" and fmt_time(2.608) == "2.61 s" and fmt_time(4e-8) == "40.0 ns"
    assert fmt_bytes(16.06e9) == "16.1 GB" and fmt_bytes(512) == "512 B"
    assert fmt_compute(1.979e15, "int8") == "1.98 POP/s" and fmt_compute(1.979e15, "fp8") == "1.98 PFLOP/s"
    assert fmt_number(1.34e13) == "13.4 T" and fmt_number(3e-5) == "30.0 u" and fmt_number(12345) == "12,345"
    assert format_value("hw.memory.hbm.bandwidth", 8e12) == "8.00 TB/s"
    assert format_value("hw.compute.matrix.peak.int8", 2e15) == "2.00 POP/s"
    assert format_value("usd_per_hour", 4.916) == "$4.92/h" and format_value("mfu", 0.23) == "23.0%"


def test_labels():
    assert label("tpot_s") == "TPOT" and label("ttft_s", unit=True) == "TTFT (s)"
    assert label("hw.memory.hbm.bandwidth") == "HBM bandwidth"
    assert label("hw.memory.sram.capacity", unit=True) == "SRAM capacity (B)"
    assert label("hw.compute.matrix.peak.bf16") == "matrix bf16 peak"
    assert label("kv_utilization_mean") == "KV utilization mean"


def test_axis_scale():
    assert axis_scale([1e12, 8e12], "B/s") == (1e12, "TB/s")
    assert axis_scale([0.004, 0.02], "s") == (1e-3, "ms")
    assert axis_scale([3.0], "") == (1.0, "")
