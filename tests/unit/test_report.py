"""Reports: unit formatting and 80-column tables, the HTML writer, `llmsim report` and `llmsim compare`."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmsim.cli import main
from reports.html import Report, file_hashes, hardware_files
from reports.style import new_figure
from reports.tables import (
    fmt_bytes,
    fmt_pct,
    fmt_rate,
    fmt_si,
    fmt_time,
    fmt_usd,
    format_value,
    render_kv,
    render_metrics,
    render_table,
)

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")
TOY_SYSTEM = str(DATA / "toy-system.yaml")
WORKLOAD = ["--model", "qwen2.5-0.5b", "--batch", "4", "--input-len", "128", "--output-len", "16"]


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# formatting


@pytest.mark.parametrize("value,text", [
    (0.0872, "87.2 ms"), (0.00623, "6.23 ms"), (0.878, "878 ms"), (2.08, "2.08 s"), (4.1e-5, "41.0 us"),
    (3e-9, "3.00 ns"), (0.0, "0 s"), (1500.0, "25.0 min"), (36000.0, "10.0 h"), (None, "-"), (float("nan"), "-"),
])
def test_fmt_time(value, text):
    assert fmt_time(value) == text


def test_formatters():
    assert fmt_bytes(16.06e9) == "16.1 GB"
    assert fmt_bytes(512) == "512 B"
    assert fmt_si(989.4e12, "FLOP/s") == "989 TFLOP/s"
    assert fmt_si(3.35e12, "B/s") == "3.35 TB/s"
    assert fmt_rate(1166.2) == "1,166 tok/s"
    assert fmt_rate(0.52) == "0.520 tok/s"
    assert fmt_rate(3.2e6) == "3.20 M tok/s"
    assert fmt_pct(0.0844) == "8.4%"
    assert fmt_usd(1.1709) == "$1.17"
    assert fmt_usd(4.916, "h") == "$4.92/h"


@pytest.mark.parametrize("column,value,text", [
    ("ttft_s", 0.0872, "87.2 ms"), ("output_throughput_tok_s", 1166.2, "1,166 tok/s"),
    ("weights_bytes", 16.06e9, "16.1 GB"), ("usd_per_mtok_output", 1.1709, "$1.17"), ("usd_per_hour", 4.916, "$4.92/h"),
    ("joules_per_output_token", 0.4688, "469 mJ"), ("mfu", 0.0844, "8.4%"), ("share", 0.5, "50.0%"),
    ("fits", True, "yes"), ("batch", 32, "32"), ("chips", 8.0, "8"), ("total_flops", 2e12, "2.00 TFLOP"),
    ("peak_flop_s", 1e15, "1.00 PFLOP/s"), ("bandwidth_bytes_per_s", 3.35e12, "3.35 TB/s"), ("rate_rps", 5.5, "5.50 req/s"),
    ("model", "llama", "llama"), ("tdp_w", 700, "700 W"),
])
def test_format_value_by_column_unit(column, value, text):
    assert format_value(column, value) == text


def test_render_table_fits_80_columns_and_splits_blocks():
    df = pd.DataFrame({"name": [f"op-{i}" for i in range(5)], **{f"col_{j}_s": np.linspace(1e-4, 1e-2, 5)
                                                                 for j in range(12)}})
    text = render_table(df, title="ops")
    lines = text.splitlines()
    assert lines[0] == "ops"
    assert max(len(x) for x in lines) <= 80
    # every block repeats the key column
    headers = [x for x in lines if x.startswith("name")]
    assert len(headers) >= 2
    assert sum(h.count("col_") for h in headers) == 12
    assert "10.0 ms" in text and "100 us" in text


def test_render_table_cuts_long_cells_and_aligns_numbers():
    df = pd.DataFrame({"k": ["a", "b"], "text": ["x" * 100, "short"], "n": [1, 1000]})
    text = render_table(df, width=60)
    assert max(len(x) for x in text.splitlines()) <= 60
    assert "\u2026" in text
    rows = text.splitlines()[2:]
    assert rows[0].endswith("    1") and rows[1].endswith("1,000")


def test_render_metrics_and_kv():
    res = pd.DataFrame([{"hardware": "a", "ttft_s": 0.1, "mfu": 0.5}, {"hardware": "a", "ttft_s": None, "mfu": 0.25}])
    text = render_metrics(res, label="hardware", metrics=[("ttft_s", "TTFT"), ("mfu", "MFU")])
    assert text.splitlines()[0].split() == ["metric", "a", "a", "#2"]
    assert "100 ms" in text and "-" in text.splitlines()[2] and "25.0%" in text
    kv = render_kv([("ttft_s", 0.1), ("weights_bytes", 1e9)])
    assert kv.splitlines() == ["  ttft_s         100 ms", "  weights_bytes  1.00 GB"]


# ---------------------------------------------------------------------------------------------
# the HTML writer


def test_html_report_has_tables_figures_inputs_and_csv(tmp_path):
    rep = Report("A <test> report", "subtitle")
    rep.section("Numbers")
    rep.table(pd.DataFrame({"x": [1, 2], "ttft_s": [0.1, 0.002]}), "numbers", "caption")
    rep.key_values({"tpot_s": 0.005, "model": "m"}, "summary")
    fig, ax = new_figure()
    ax.plot([1, 2], [3, 4])
    rep.figure(fig, "line", "a line")
    fig, ax = new_figure()
    ax.bar([1], [1])
    rep.figure(fig, "bar", inline_svg=True)
    rep.provenance({"model": "m", "batch": 4}, hardware_files(_toy_system()), "llmsim report predict ...")
    path = rep.write(tmp_path)
    html = path.read_text()
    assert path.name == "report.html"
    assert "A &lt;test&gt; report" in html  # escaped
    for name in ("numbers", "summary", "inputs", "environment", "input-files"):
        assert f'data-table="{name}"' in html
        assert (tmp_path / f"{name}.csv").is_file()
    assert '<figure data-figure="line"' in html and "data:image/png;base64," in html
    assert re.search(r'<figure data-figure="bar" id="figure-bar"><svg', html)
    assert (tmp_path / "figures" / "line.png").is_file() and (tmp_path / "figures" / "line.svg").is_file()
    assert "100 ms" in html and "2.00 ms" in html  # formatted cells; raw in CSV
    assert pd.read_csv(tmp_path / "numbers.csv")["ttft_s"].tolist() == [0.1, 0.002]
    # provenance: both YAML files hashed, the llmsim version listed
    assert sha(DATA / "toy-system.yaml") in html and sha(DATA / "toy-chip.yaml") in html
    from llmsim import __version__

    assert f"llmsim {__version__}" in html
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r'(src|href)="(https?:)?//', html)
    with pytest.raises(ValueError, match="already"):
        rep.table(pd.DataFrame({"a": [1]}), "numbers")


def _toy_system():
    from hwmodels.loader import load_system

    return load_system(TOY_SYSTEM)


def test_file_hashes():
    fh = file_hashes([("chip", "toy", TOY), ("chip", "toy", TOY), ("x", "gone", "/nonexistent.yaml")])
    assert list(fh["sha256"]) == [sha(TOY), "missing"]


# ---------------------------------------------------------------------------------------------
# llmsim report predict


@pytest.mark.slow
def test_report_predict(tmp_path, capsys):
    out = tmp_path / "r"
    rc = main(["report", "predict", "--hw", TOY, *WORKLOAD, "--sweep", "1,4,8", "--out", str(out), "--json"])
    assert rc == 0
    files = json.loads(capsys.readouterr().out)
    html = Path(files["report"]).read_text()
    tables = ["summary", "bound-breakdown", "breakdown", "ridge-points", "batch-sweep", "ops", "inputs",
              "environment", "input-files"]
    for t in tables:
        assert f'data-table="{t}"' in html, t
        assert (out / f"{t}.csv").is_file(), t
    for f in ("breakdown", "roofline", "throughput-latency"):
        assert f'data-figure="{f}"' in html
        assert (out / "figures" / f"{f}.png").is_file() and (out / "figures" / f"{f}.svg").is_file()
    assert html.count("data:image/png;base64,") == 3
    assert sha(TOY) in html
    # every input is listed
    inputs = pd.read_csv(out / "inputs.csv")
    assert {"hw", "model", "batch", "input_len", "output_len", "tp", "quant", "overrides (--set)"} <= set(inputs["key"])
    summary = pd.read_csv(out / "summary.csv").set_index("key")["value"]
    from sim.predict import predict

    p = predict("qwen2.5-0.5b", TOY, 4, 128, 16)
    assert float(summary["ttft_s"]) == pytest.approx(p.ttft_s)
    assert list(pd.read_csv(out / "batch-sweep.csv")["batch"]) == [1, 4, 8]
    assert len(pd.read_csv(out / "ops.csv")) == len(p.to_frame())


def test_report_predict_errors(tmp_path):
    assert main(["report", "predict", "--hw", "no-such-chip", *WORKLOAD, "--out", str(tmp_path)]) == 2
    assert main(["report", "predict", "--hw", TOY, "--model", "llama-2-70b", "--batch", "1", "--input-len", "8",
                 "--output-len", "2", "--out", str(tmp_path)]) == 3
    assert main(["report", "predict", "--hw", TOY, *WORKLOAD, "--sweep", "a,b", "--out", str(tmp_path)]) == 2
    assert main(["report"]) == 2


def test_report_validate(tmp_path, capsys):
    pytest.importorskip("sim.validation.compare")
    rows = []
    for m, n, k in ((256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (64, 4096, 4096)):
        rows.append({"hardware": TOY, "op": "gemm", "dtype": "bf16", "m": m, "n": n, "k": k,
                     "measured_time_s": 2 * m * n * k / 80e12})
    rows.append({"hardware": TOY, "op": "no-such-op", "dtype": "bf16", "measured_time_s": 1e-3})
    csv = tmp_path / "measured.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    rc = main(["report", "validate", str(csv), "--out", str(tmp_path / "v")])
    if rc != 0:
        pytest.skip(f"the validation module rejects this CSV: {capsys.readouterr().err}")
    html = (tmp_path / "v" / "report.html").read_text()
    for t in ("overall", "by-op", "by-group", "worst", "inputs", "environment", "input-files"):
        assert f'data-table="{t}"' in html, t
    assert 'data-figure="predicted-vs-measured"' in html
    assert sha(csv) in html and sha(TOY) in html


@pytest.mark.slow
def test_report_serve(tmp_path, capsys):
    pytest.importorskip("sim.serving")
    out = tmp_path / "serve"
    rc = main(["report", "serve", "--hw", TOY, "--model", "qwen2.5-0.5b", "--rate", "20", "--num-requests", "40",
               "--input-len", "64", "--output-len", "16", "--slo-ttft", "0.5", "--slo-tpot", "0.02",
               "--sweep-rates", "10,40", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    html = (out / "report.html").read_text()
    for t in ("headline", "summary", "latency-percentiles", "load-sweep", "requests", "timeline", "inputs",
              "environment", "input-files"):
        assert f'data-table="{t}"' in html, t
    for f in ("latency-cdf", "utilization", "step-timeline", "load-sweep"):
        assert f'data-figure="{f}"' in html, f
    for f in ("requests.csv", "timeline.csv", "summary.json", "trace.json"):
        assert (out / f).is_file()
    assert len(pd.read_csv(out / "requests.csv")) == 40
    assert list(pd.read_csv(out / "load-sweep.csv")["rate_rps"]) == [10, 40]


def test_report_serve_timeline_steps_zero(tmp_path, capsys):
    # --timeline-steps 0 (a count: 0 is in range) raised ValueError 'no steps in the chosen replica' (a traceback)
    pytest.importorskip("sim.serving")
    out = tmp_path / "serve"
    rc = main(["report", "serve", "--hw", TOY, "--model", "qwen2.5-0.5b", "--rate", "20", "--num-requests", "6",
               "--input-len", "32", "--output-len", "4", "--no-intervals", "--timeline-steps", "0", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    html = (out / "report.html").read_text()
    assert 'data-figure="utilization"' in html and 'data-figure="step-timeline"' not in html


def test_report_sweep(tmp_path, capsys):
    pytest.importorskip("sim.sweep")
    from sim.sweep import load_spec, run_sweep

    spec = DATA / "sweep" / "toy-grid.yaml"
    if not spec.is_file():
        pytest.skip("no toy sweep spec")
    results = tmp_path / "toy.parquet"
    run_sweep(load_spec(str(spec)), str(results), workers=1, progress=False)
    out = tmp_path / "report"
    rc = main(["report", "sweep", str(results), "--pareto", "tpot_s:min,usd_per_mtok_output:min", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    html = (out / "report.html").read_text()
    for t in ("counts", "axes", "best", "pareto-1", "sensitivity", "results", "inputs", "environment", "input-files"):
        assert f'data-table="{t}"' in html, t
    for f in ("pareto-1", "sensitivity", "heatmap"):
        assert f'data-figure="{f}"' in html, f
    assert len(pd.read_csv(out / "results.csv")) == 12
    files = pd.read_csv(out / "input-files.csv")
    assert set(files["role"]) >= {"sweep spec", "hardware", "model", "results"}
    assert sha(DATA / "toy-chip.yaml") in set(files["sha256"])
    assert main(["report", "sweep", str(results), "--metric", "no_such", "--out", str(out)]) == 2


# ---------------------------------------------------------------------------------------------
# llmsim compare

COMPARE_KEYS = {"label", "hardware", "overrides", "fits", "system", "chips", "ttft_s", "tpot_s", "e2e_s",
                "output_throughput_tok_s", "per_chip_output_throughput_tok_s", "usd_per_mtok_output",
                "joules_per_output_token", "mfu", "mbu", "bound_breakdown", "memory_used_bytes", "bound"}


def test_compare_json(capsys):
    rc = main(["compare", "--hw", TOY, "--hw", f"{TOY},memory.hbm.bandwidth=2 TB/s", *WORKLOAD, "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"workload", "results", "interval_overlap"}
    assert out["workload"]["model"] == "qwen2.5-0.5b" and out["workload"]["batch"] == 4
    (pair,) = out["interval_overlap"]  # prediction intervals (docs/uncertainty.md): do the two designs' ranges overlap?
    assert pair["a"] == "toy-chip" and pair["b"] == "toy-chip v1" and isinstance(pair["e2e_s"], bool)
    a, b = out["results"]
    assert COMPARE_KEYS <= set(a) and COMPARE_KEYS <= set(b)
    assert a["label"] == "toy-chip" and b["label"] == "toy-chip v1"
    assert a["hardware"] == TOY
    assert b["overrides"] == ["memory.hbm.bandwidth=2 TB/s"]
    assert b["tpot_s"] < a["tpot_s"]  # twice the bandwidth, memory-bound decode
    from sim.predict import predict

    assert a["ttft_s"] == pytest.approx(predict("qwen2.5-0.5b", TOY, 4, 128, 16).ttft_s)


@pytest.mark.slow
def test_compare_and_report_pass_technique_flags(tmp_path, capsys):
    rc = main(["compare", "--hw", TOY, *WORKLOAD, "--kv-window", "64", "--json"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)["results"][0]
    assert r["kv_window"] == 64
    assert main(["report", "predict", "--hw", TOY, *WORKLOAD, "--kv-window", "64", "--sweep", "none",
                 "--out", str(tmp_path)]) == 0
    inputs = pd.read_csv(tmp_path / "inputs.csv").set_index("key")["value"]
    assert inputs["kv_window"] == "64" and inputs["spec_k"] == "4"


def test_compare_keeps_infeasible_and_exit_codes(capsys):
    rc = main(["compare", "--hw", TOY, "--hw", TOY_SYSTEM, "--model", "llama-3.1-8b", "--batch", "1",
               "--input-len", "64", "--output-len", "4", "--tp", "8", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    one, sys8 = out["results"]
    assert one["fits"] is False and "no system" in one["reason"]
    assert sys8["fits"] is True and sys8["chips"] == 8
    rc = main(["compare", "--hw", TOY, "--model", "llama-2-70b", "--batch", "1", "--input-len", "64",
               "--output-len", "4"])
    assert rc == 3
    assert "holds" in capsys.readouterr().out
    assert main(["compare", "--hw", f"{TOY},oops", *WORKLOAD]) == 2


def test_compare_text_fits_80_columns(capsys):
    rc = main(["compare", "--hw", TOY, "--hw", TOY_SYSTEM, "--hw", f"{TOY},memory.hbm.bandwidth=2 TB/s",
               "--hw", f"{TOY},launch_overhead=5 us", "--hw", "a100-sxm", *WORKLOAD])
    assert rc == 0
    text = capsys.readouterr().out
    assert max(len(x) for x in text.splitlines()) <= 80
    for title in ("TTFT", "TPOT", "throughput", "USD/M out tok", "energy/out tok", "MFU"):
        assert title in text
    assert "toy-chip v1: " in text and "toy-system: " in text


@pytest.mark.slow
def test_compare_out_report(tmp_path, capsys):
    rc = main(["compare", "--hw", TOY, "--hw", "a100-sxm", *WORKLOAD, "--out", str(tmp_path)])
    assert rc == 0
    html = (tmp_path / "report.html").read_text()
    for t in ("comparison", "breakdown", "inputs", "environment", "input-files"):
        assert f'data-table="{t}"' in html
    for f in ("metrics", "breakdown"):
        assert f'data-figure="{f}"' in html
    df = pd.read_csv(tmp_path / "comparison.csv")
    assert list(df["label"]) == ["toy-chip", "a100-sxm"]
    from hwmodels.loader import resolve

    assert sha(resolve("a100-sxm")) in html and sha(TOY) in html
