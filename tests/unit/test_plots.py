"""Plot functions: each returns an Axes with labelled axes and the expected artists on a small input;
save writes PNG and SVG; themes apply; the data helpers behind the plots give the documented columns."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from hwmodels import load_chip
from reports import plots
from reports.style import THEMES, new_figure, save, style, time_unit
from sim.predict import predict

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")
TOY_SYSTEM = str(DATA / "toy-system.yaml")


@pytest.fixture(scope="module")
def pred():
    return predict("qwen2.5-0.5b", TOY, 4, 128, 32, samples=5)


@pytest.fixture(scope="module")
def chip():
    return load_chip(TOY)


def _ax():
    _, ax = new_figure()
    return ax


def _labelled(ax):
    assert ax.get_xlabel().strip() and ax.get_ylabel().strip()
    assert any(ax.get_title(loc=where).strip() for where in ("center", "left", "right"))


# ---------------------------------------------------------------------------------------------
# roofline


def test_roofline_ceilings_slopes_ridges(chip):
    c = plots.ceilings(chip)
    # toy: fp8 and int8 share 200 TFLOP/s, bf16 and fp16 100, plus the vector fp32 10
    assert list(c["label"]) == ["matrix fp8/int8", "matrix bf16/fp16", "vector fp32"]
    assert list(c["peak_flop_s"]) == [200e12, 100e12, 10e12]
    m = plots.memory_slopes(chip)
    assert list(m["level"]) == ["sram", "hbm"] and list(m["main"]) == [False, True]
    r = plots.ridge_points(chip)
    assert len(r) == 6
    hbm_bf16 = r[(r["level"] == "hbm") & (r["ceiling"] == "matrix bf16/fp16")]
    assert hbm_bf16["intensity_flop_per_byte"].iloc[0] == pytest.approx(100.0)  # 100 TFLOP/s / 1 TB/s


def test_roofline_plot(chip, pred):
    ax = plots.plot_roofline(chip, pred, ax=_ax())
    _labelled(ax)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.lines) == 2 + 3  # one slope per memory level, one line per ceiling
    assert len(ax.collections) == 1 + 2  # ridge points, then one scatter per phase
    assert len(ax.collections[0].get_offsets()) == 6
    pts = plots.op_points(pred)
    assert set(pts["phase"]) == {"prefill", "decode"}
    assert len(ax.collections[1].get_offsets()) + len(ax.collections[2].get_offsets()) == len(pts)
    # shares are of each phase's time and ops without FLOPs or bytes are left out
    assert (pts["time_share"] > 0).all() and (pts.groupby("phase")["time_share"].sum() <= 1 + 1e-9).all()
    assert "embedding" not in set(pts["kind"])


def test_roofline_without_ops_and_from_a_graph_cost(chip, pred):
    ax = plots.plot_roofline(chip, ax=_ax())
    assert len(ax.collections) == 1
    ax = plots.plot_roofline(chip, pred.decode, ax=_ax(), dtypes=["bf16"], vector=False)
    assert len(ax.lines) == 2 + 1 and len(ax.collections) == 2


def test_op_points_frame_contract():
    df = pd.DataFrame({"name": ["a", "b", "c"], "kind": ["gemm", "collective", "norm"], "flops": [1e9, 0, 1e6],
                       "bytes_main": [1e6, 1e6, 1e6], "time_s": [1e-3, 1e-3, 1e-5], "total_time_s": [2e-3, 1e-3, 1e-5]})
    pts = plots.op_points(df)
    assert list(pts.columns) == ["phase", "name", "kind", "category", "intensity_flop_per_byte", "achieved_flop_s",
                                 "time_share"]
    assert list(pts["name"]) == ["a", "c"]
    assert pts["intensity_flop_per_byte"].iloc[0] == pytest.approx(1000.0)
    assert pts["achieved_flop_s"].iloc[0] == pytest.approx(1e12)
    assert pts["time_share"].iloc[0] == pytest.approx(2e-3 / 3.01e-3)


# ---------------------------------------------------------------------------------------------
# breakdown


def test_breakdown_frame_sums_to_step_time(pred):
    bf = plots.breakdown_frame(pred, "x")
    assert list(bf.columns) == ["label", "phase", "category", "time_s", "share"]
    for phase, gc in (("prefill", pred.prefill), ("decode", pred.decode)):
        g = bf[bf["phase"] == phase]
        assert list(g["category"]) == ["gemm", "attention", "communication", "elementwise", "overhead"]
        runtime = pred.runtime_prefill_s if phase == "prefill" else pred.runtime_decode_s  # the stack's
        assert g["time_s"].sum() == pytest.approx(sum(c.time_s * c.count for c in gc.ops) + runtime)
        assert g["share"].sum() == pytest.approx(1.0)
    assert (bf.loc[bf["category"] == "communication", "time_s"] == 0).all()


def test_breakdown_has_communication_with_tp_and_adds_up_to_the_step_with_pp():
    p = predict("qwen2.5-0.5b", TOY_SYSTEM, 4, 128, 32, tp=2, samples=5)
    bf = plots.breakdown_frame(p)
    assert bf.loc[bf["category"] == "communication", "time_s"].sum() > 0
    p = predict("qwen2.5-0.5b", TOY_SYSTEM, 4, 128, 32, pp=2, samples=5)
    bf = plots.breakdown_frame(p)
    assert bf.loc[bf["phase"] == "prefill", "time_s"].sum() == pytest.approx(p.ttft_s)


def test_breakdown_plot(pred):
    table = plots.breakdown_table({"batch 4": pred, "batch 8": predict("qwen2.5-0.5b", TOY, 8, 128, 32, samples=5)})
    assert list(table["label"].unique()) == ["batch 4", "batch 8"]
    ax = plots.plot_breakdown(table, "prefill", ax=_ax())
    _labelled(ax)
    nonzero = table[(table["phase"] == "prefill")].groupby("category")["time_s"].sum()
    n_cat = int((nonzero > 0).sum())
    assert len(ax.containers) == n_cat
    assert len(ax.patches) == 2 * n_cat
    assert [t.get_text() for t in ax.get_xticklabels()] == ["batch 4", "batch 8"]
    ax = plots.plot_breakdown(table, "decode", ax=_ax(), normalize=True)
    heights = np.sum([[p.get_height() for p in c] for c in ax.containers], axis=0)
    assert heights == pytest.approx([100.0, 100.0])
    with pytest.raises(ValueError, match="phase"):
        plots.plot_breakdown(table, "mixed", ax=_ax())


def test_breakdown_phases(pred):
    _, axes = new_figure(1, 2)
    out = plots.plot_breakdown_phases(plots.breakdown_table({"a": pred}), axes=axes)
    assert [a.get_title().split(":")[0] for a in out] == ["prefill", "decode"]


# ---------------------------------------------------------------------------------------------
# serving


def _requests(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"request_id": range(n), "ttft_s": rng.lognormal(-3, 0.5, n),
                         "tpot_s": rng.lognormal(-4.5, 0.2, n), "e2e_s": rng.lognormal(0, 0.3, n),
                         "replica": rng.integers(0, 2, n)})


def _timeline(n=60):
    t = np.cumsum(np.full(n, 0.02))
    pre = np.where(np.arange(n) % 10 == 0, 512, np.where(np.arange(n) % 10 == 5, 100, 0))
    return pd.DataFrame({"time_s": t, "replica": 0, "batch_size": (np.arange(n) % 16) + 1,
                         "tokens": np.where(pre == 512, 512, pre + 8),
                         "prefill_tokens": pre, "kv_utilization": np.linspace(0, 0.8, n), "step_s": 0.015,
                         "queued": 0})


def test_throughput_latency():
    df = pd.DataFrame({"batch": [1, 2, 4, 8] * 2, "label": ["a"] * 4 + ["b"] * 4,
                       "tpot_s": [0.005, 0.0052, 0.0055, 0.006, 0.004, 0.0041, 0.0043, np.nan],
                       "output_throughput_tok_s": [200, 390, 730, 1330, 250, 490, 930, np.nan]})
    ax = plots.plot_throughput_latency(df, annotate="batch", ax=_ax(), slo=0.0058)
    _labelled(ax)
    assert len(ax.lines) == 2 + 1  # one per group and the SLO
    assert len(ax.lines[1].get_xdata()) == 3  # the NaN point is skipped
    assert "ms" in ax.get_xlabel()
    assert len(ax.texts) == 7
    ax = plots.plot_throughput_latency(df.assign(rate_rps=df["batch"]), throughput="rate_rps", connect=False, ax=_ax())
    assert ax.lines[0].get_linestyle() == "None" and ax.get_ylabel() == "request rate (req/s)"


def test_static_sweep_keeps_infeasible_points():
    df = plots.static_sweep("qwen2.5-0.5b", TOY, [1, 4, 100000], 128, 16, samples=3)
    assert list(df["batch"]) == [1, 4, 100000]
    assert list(df["fits"]) == [True, True, False]
    assert df["output_throughput_tok_s"].iloc[1] > df["output_throughput_tok_s"].iloc[0]
    assert "holds" in df["reason"].iloc[2]


def test_latency_percentiles_and_cdf():
    req = _requests()
    pct = plots.latency_percentiles(req)
    assert list(pct["metric"]) == ["ttft_s", "tpot_s", "e2e_s"]
    assert {"count", "mean_s", "p50_s", "p90_s", "p95_s", "p99_s"} <= set(pct.columns)
    assert pct.loc[0, "p50_s"] == pytest.approx(np.percentile(req["ttft_s"], 50))
    by = plots.latency_percentiles(req, by="replica")
    assert len(by) == 6 and "replica" in by.columns
    ax = plots.plot_latency_cdf(req, "ttft_s", ax=_ax(), slo=0.05)
    _labelled(ax)
    assert len(ax.lines) == 1 + 1 and len(ax.collections) == 1
    assert len(ax.collections[0].get_offsets()) == 3  # p50, p90, p99
    assert "p99" in ax.get_legend().get_texts()[0].get_text()
    ax = plots.plot_latency_cdf(req, "tpot_s", by="replica", ax=_ax())
    assert len(ax.lines) == 2 and len(ax.collections) == 2


def test_utilization_and_step_timeline():
    tl = _timeline()
    ax = plots.plot_utilization(tl, ax=_ax())
    _labelled(ax)
    assert len(ax.lines) == 2 and len(ax.kv_axes.lines) == 1  # batch size raw and smoothed; KV utilization
    assert "KV" in ax.kv_axes.get_ylabel()
    assert list(plots.step_kind(tl)[:6]) == ["prefill", "decode", "decode", "decode", "decode", "mixed"]
    ax = plots.plot_step_timeline(tl, ax=_ax(), max_steps=20)
    _labelled(ax)
    assert len(ax.containers) == 3  # prefill, mixed, decode
    bars = sorted((p for c in ax.containers for p in c.patches), key=lambda p: p.get_x())
    assert len(bars) == 20
    first = tl[tl["replica"] == tl["replica"].min()] if "replica" in tl.columns else tl
    first = first.sort_values("time_s").head(20)
    # bar height is the step's batch size, on a real batch-size scale; x is time since the run began
    assert [b.get_height() for b in bars] == pytest.approx(first["batch_size"].tolist())
    assert ax.get_xlabel().startswith("time (") and "since" not in ax.get_xlabel()


# ---------------------------------------------------------------------------------------------
# design space


def test_pareto_front():
    df = pd.DataFrame({"cost": [1, 2, 3, 4, 2.5], "latency": [10, 5, 6, 1, 5], "name": list("abcde")})
    assert list(plots.pareto_front(df, "cost", "latency")["name"]) == ["a", "b", "d"]
    # maximise y: the cheapest point with the best y so far
    assert list(plots.pareto_front(df, "cost", "latency", minimize_y=False)["name"]) == ["a"]
    ax = plots.plot_pareto(df, "cost", "latency", annotate="name", ax=_ax())
    _labelled(ax)
    assert len(ax.collections) == 2 and len(ax.lines) == 1
    assert len(ax.collections[1].get_offsets()) == 3


def test_sensitivity():
    df = plots.sensitivity("qwen2.5-0.5b", TOY, {"memory.hbm.bandwidth": ("0.5 TB/s", "2 TB/s")}, "tpot_s",
                           batch=1, input_len=64, output_len=8, samples=3)
    r = df.iloc[0]
    assert r["metric_low"] > r["baseline"] > r["metric_high"]  # decode is bandwidth-bound on the toy chip
    assert r["change_low"] > 0 > r["change_high"]
    ax = plots.plot_sensitivity(df, ax=_ax())
    _labelled(ax)
    assert len(ax.containers) == 2


def test_heatmap():
    df = pd.DataFrame([{"bw": b, "tflops": f, "tpot_s": 1e-3 * f / b} for b in (1, 2, 4) for f in (100, 200)])
    ax = plots.plot_heatmap(df, "bw", "tflops", "tpot_s", ax=_ax())
    _labelled(ax)
    assert len(ax.images) == 1 and len(ax.texts) == 6
    assert ax.images[0].get_array().shape == (2, 3)


def test_metric_bars():
    df = pd.DataFrame({"label": ["a", "b", "c"], "tpot_s": [0.004, np.nan, 0.002]})
    ax = plots.plot_metric_bars(df, "tpot_s", ax=_ax())
    _labelled(ax)
    assert len(ax.containers) == 1 and len(ax.patches) == 3
    assert [t.get_text() for t in ax.texts] == ["4.00 ms", "n/a", "2.00 ms"]
    assert "lower" in ax.get_title()


def test_predicted_vs_measured():
    df = pd.DataFrame({"op": ["gemm"] * 5 + ["norm"] * 5, "measured_time_s": np.geomspace(1e-6, 1e-3, 10),
                       "predicted_time_s": np.geomspace(1e-6, 1e-3, 10) * 1.1})
    ax = plots.plot_predicted_vs_measured(df, ax=_ax())
    _labelled(ax)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.lines) == 1  # predicted = measured
    assert len(ax.collections) == 1 + 2  # the error band, one scatter per op


# ---------------------------------------------------------------------------------------------
# styling and saving


def test_save_writes_png_and_svg(tmp_path, chip):
    fig, ax = new_figure()
    plots.plot_roofline(chip, ax=ax)
    png, svg = save(fig, tmp_path / "sub" / "roof")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    assert "<svg" in text and "roofline" in text  # text kept as text
    png2, _ = save(fig, tmp_path / "again.png")
    assert png2.name == "again.png"


@pytest.mark.parametrize("theme", sorted(THEMES))
def test_themes(theme, tmp_path):
    with style(theme):
        fig, ax = new_figure()
        ax.plot([1, 2], [1, 2])
        ax.set_xlabel("x")
        png, _ = save(fig, tmp_path / theme)
    assert png.stat().st_size > 1000
    expect = {"light": (1, 1, 1, 1), "dark": to_rgba("#1e1e1e"), "transparent": (0, 0, 0, 0)}[theme]
    assert fig.get_facecolor() == pytest.approx(expect)
    with pytest.raises(ValueError, match="theme"), style("neon"):
        pass


def test_time_unit():
    assert time_unit([0.2]) == (1e-3, "ms")
    assert time_unit([2.0, 0.1]) == (1.0, "s")
    assert time_unit([3e-5]) == (1e-6, "us")
    assert time_unit([]) == (1e-3, "ms")
