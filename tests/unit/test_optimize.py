"""The optimization ladder on the toy chip: deterministic, greedy, speedups multiply, reasons for skips,
break-even by hand, the CLI contract (JSON keys, 80 columns, files, exit codes)."""

import csv
import json
import math
from pathlib import Path

import pytest

from hwmodels import load_chip
from hwmodels.errors import InfeasibleError, SpecError
from llmsim.cli import main
from sim.optimize import TECHNIQUES, Config, Workload, break_even, ladder, optimize, to_json
from sim.predict import predict

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")
M = "qwen2.5-0.5b"
WL = Workload(16, 512, 128)


@pytest.fixture(scope="module")
def lad():
    return ladder(M, TOY, WL)


def test_ladder_is_deterministic(lad):
    again = ladder(M, TOY, WL)
    assert json.dumps(lad.to_dict(), sort_keys=True) == json.dumps(again.to_dict(), sort_keys=True)


def test_speedups_multiply_to_the_total(lad):
    prod = math.prod(s.speedup for s in lad.steps)
    assert prod == pytest.approx(lad.total_speedup, rel=1e-12)
    base, fin = lad.steps[0].point, lad.final.point
    assert lad.total_speedup == pytest.approx(fin.output_throughput_tok_s / base.output_throughput_tok_s, rel=1e-12)


def test_every_step_helps_and_is_the_best_of_its_round(lad):
    assert lad.steps[0].technique == "baseline" and lad.steps[0].config == Config()
    assert len(lad.steps) > 2
    for s in lad.steps[1:]:
        assert s.speedup > 1.0
    # greedy: no technique skipped at the end would have helped
    applied = {s.technique for s in lad.steps}
    names = {t.name for t in TECHNIQUES}
    assert applied | {n for n, _ in lad.skipped} == names | {"baseline"}
    for name, why in lad.skipped:
        assert why


def test_first_step_is_the_best_single_technique(lad):
    from sim.optimize import _BY_NAME, _Ctx, _default_spec, evaluate
    from sim.predict import resolve_system
    from workloads import load_model

    spec = load_model(M)
    system, _ = resolve_system(TOY, 1)
    ctx = _Ctx(spec, system, 1, WL, _default_spec(spec), None, 9)
    best = max((evaluate(c, ctx).objective, n) for n, t in _BY_NAME.items()
               if isinstance(c := t.apply(Config(), ctx), Config) and evaluate(c, ctx).feasible)
    assert lad.steps[1].point.objective == pytest.approx(best[0])  # ties (fp8 = int8 here) go to the first listed


def test_reasons_on_the_toy_chip(lad):
    why = dict(lad.skipped)
    assert "no kernel launch overhead" in why["cuda-graphs"]
    assert "no 2:4 sparse peak" in why["sparsity-2:4"]
    assert "no host link" in why["kv-offload"]
    assert "equal-length" in why["continuous-batching"]
    assert "no fp4 matrix math" in why["fp4"] or "superseded" in why["fp4"]
    assert "--kv-window" in why["kv-eviction"]


def test_baseline_is_predict_with_plain_options(lad):
    from sim.cost import CostOptions

    p = predict(M, TOY, 16, 512, 128, quant="fp16", attention_kernel="naive",
                options=CostOptions(dequant_per_tile=True), samples=9, check_memory=False)
    b = lad.steps[0].point
    assert b.waves == 1 and b.running_batch == 16
    assert b.ttft_s == pytest.approx(p.ttft_s) and b.tpot_s == pytest.approx(p.tpot_s)
    assert b.output_throughput_tok_s == pytest.approx(p.output_throughput_tok_s)


def test_contiguous_reservation_forces_waves_and_paged_kv_removes_them():
    wl = Workload(64, 512, 128, max_context=32768)
    lad = ladder(M, TOY, wl, techniques=["paged-kv", "flash-attention"])
    base = lad.steps[0].point
    assert base.max_batch < 64 and base.waves == math.ceil(64 / base.max_batch)
    paged = next(s for s in lad.steps if s.technique == "paged-kv")
    assert paged.point.waves == 1 and paged.point.max_batch >= 64


def test_no_lossy_and_exclude():
    lad = ladder(M, TOY, WL, lossy=False, exclude=("speculative",))
    assert not any(s.lossy for s in lad.steps)
    why = dict(lad.skipped)
    assert "lossy" in why["fp8"] and why["speculative"] == "excluded"
    with pytest.raises(SpecError):
        ladder(M, TOY, WL, techniques=["warp-drive"])


def test_trace_uses_mean_lengths_and_continuous_batching_removes_padding(tmp_path):
    from workloads.trace import load_trace

    f = tmp_path / "t.csv"
    f.write_text("arrival_s,input_tokens,output_tokens\n0,100,10\n1,300,200\n2,50,30\n3,400,5\n"
                 "4,120,80\n5,200,150\n6,80,20\n7,500,300\n")
    wl = Workload.from_trace(load_trace(str(f)), batch=4)
    assert (wl.input_len, wl.output_len) == (219, 99)  # means, rounded
    assert wl.padded(4) == (450, 250)  # means of the per-batch maxima: (400+500)/2, (200+300)/2
    lad = ladder(M, TOY, wl, techniques=["continuous-batching"])
    assert lad.order == ["continuous-batching"]
    assert lad.steps[1].speedup > 1.5
    assert any("mean lengths" in n for n in lad.notes)


def test_break_even_by_hand(lad):
    be = break_even(lad.final, WL, 30.0, 60.0)
    # toy chip: 3.6 USD/h; 4 input tokens per output token: P = (4 x 30 + 60) / 1e6 = 180e-6 USD
    assert be["api_usd_per_output_token_blended"] == pytest.approx(180e-6)
    assert be["break_even_output_tok_per_h"] == pytest.approx(3.6 / 180e-6)
    assert be["break_even_input_tok_per_h"] == pytest.approx(4 * 3.6 / 180e-6)
    thr = lad.final.point.output_throughput_tok_s
    assert be["break_even_utilization"] == pytest.approx(3.6 / 180e-6 / (3600 * thr))


def test_unpriced_chip_ranks_by_throughput_and_has_no_break_even(tmp_path):
    text = Path(TOY).read_text().replace("price: {cloud: 3.6 USD/h}\n", "")
    f = tmp_path / "toy-chip.yaml"
    f.write_text(text)
    assert load_chip(f).cloud_usd_per_s is None
    lad = ladder(M, str(f), WL, techniques=["fp8"])
    p = lad.final.point
    assert p.usd_per_mtok_output is None and p.objective == pytest.approx(p.output_throughput_tok_s)
    assert break_even(lad.final, WL, 30, 60) is None


def test_infeasible_baseline_raises():
    with pytest.raises(InfeasibleError):
        ladder("llama-3.1-70b", TOY, WL)  # 141 GB of weights on a 10 GiB chip without a host link


def test_baseline_offloads_weights_that_do_not_fit():
    lad = ladder(M, TOY, Workload(2, 128, 16), overrides=["memory.hbm.capacity=0.8 GB", "host_link={bandwidth: 10 GB/s}"],
                 techniques=["fp8", "w4a16"])
    assert lad.steps[0].config.weight_offload
    assert any("do not fit" in n for n in lad.notes)
    assert lad.steps[1].speedup > 2  # 8-bit or 4-bit weights stop the streaming over the host link


def test_alternatives_and_json_shape():
    res = optimize(M, TOY, WL, alternatives=[TOY, "no-such-chip"], api_price_in=30, api_price_out=60,
                   techniques=["fp8", "kernel-fusion"])
    d = to_json(res)
    assert d["alternatives"][0]["hw"] == TOY and "error" in d["alternatives"][1]
    for s in d["steps"]:
        for k in ("technique", "ttft_s", "tpot_s", "output_throughput_tok_s", "usd_per_mtok_output",
                  "usd_per_mtok_input", "max_batch", "speedup"):
            assert k in s
    assert d["break_even"]["break_even_output_tok_per_h"] > 0


# ---- CLI ------------------------------------------------------------------------------------------

ARGS = ["optimize", "--hw", TOY, "--model", M, "--batch", "16", "--input-len", "512", "--output-len", "128",
        "--alt-hw", "none"]


def test_cli_table_fits_80_columns_and_is_deterministic(capsys):
    assert main(ARGS + ["--api-price-in", "30", "--api-price-out", "60"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "break-even" in out and "skipped:" in out
    assert main(ARGS + ["--api-price-in", "30", "--api-price-out", "60"]) == 0
    assert capsys.readouterr().out == out


def test_cli_json(capsys):
    assert main(ARGS + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["steps"][0]["technique"] == "baseline"
    assert math.prod(s["speedup"] for s in d["steps"]) == pytest.approx(d["total_speedup"])


def test_stack_prices_every_step_and_is_named(capsys):
    from hwmodels.stack import DEFAULT_STACK
    from sim.cost import CostOptions

    assert main(ARGS + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["stack"] == DEFAULT_STACK
    assert main(ARGS + ["--json", "--stack", "ideal"]) == 0
    di = json.loads(capsys.readouterr().out)
    assert di["stack"] == "ideal"
    p = predict(M, TOY, 16, 512, 128, quant="fp16", attention_kernel="naive", stack="ideal",
                options=CostOptions(dequant_per_tile=True), samples=9, check_memory=False)
    assert di["steps"][0]["tpot_s"] == pytest.approx(p.tpot_s)  # the baseline is predict under that stack
    assert di["steps"][0]["tpot_s"] != pytest.approx(d["steps"][0]["tpot_s"])  # ideal: no runtime outside kernels
    assert main(ARGS + ["--stack", "ideal"]) == 0
    assert "serving stack ideal" in capsys.readouterr().out
    assert main(ARGS + ["--stack", "nosuch"]) == 2


def test_cli_out_writes_plot_and_csv(tmp_path, capsys):
    assert main(ARGS[:-2] + ["--alt-hw", TOY, "--out", str(tmp_path)]) == 0
    for n in ("optimize_waterfall.png", "optimize_waterfall.svg", "optimize.csv"):
        assert (tmp_path / n).stat().st_size > 0
    with open(tmp_path / "optimize.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["technique"] == "baseline" and any(r["applied"] == "False" for r in rows)


def test_cli_errors(capsys):
    assert main(["optimize", "--hw", TOY, "--model", M, "--batch", "4"]) == 2
    assert main(ARGS + ["--api-price-in", "30"]) == 2
    assert main(["optimize", "--hw", TOY, "--model", "llama-3.1-70b", "--batch", "1", "--input-len", "8",
                 "--output-len", "8", "--alt-hw", "none"]) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_sim_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, sim.optimize, sim.techniques; sys.exit(1 if 'matplotlib' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False, cwd=Path(__file__).parents[2]).returncode == 0


def test_pessimistic_ladder_ranks_at_the_slow_end():
    """Each step's objective is taken at the waves' e2e high ends: never above the point's, every step still
    raises it, and the slow throughput is B x O over the slow e2e (by hand from predict's interval)."""
    from sim.uncertainty import prediction_intervals

    pes = ladder(M, TOY, WL, pessimistic=0.8)
    for s in pes.steps:
        p = s.point
        assert p.e2e_s_slow >= p.e2e_s and p.output_throughput_tok_s_slow <= p.output_throughput_tok_s
        assert p.output_throughput_tok_s_slow == pytest.approx(WL.batch * WL.output_len / p.e2e_s_slow)
    for a, b in zip(pes.steps, pes.steps[1:]):
        assert b.point.objective > a.point.objective
    base = pes.steps[0]
    p = predict(M, TOY, base.point.running_batch, WL.input_len, WL.output_len, options=base.config.options(),
                quant=base.config.quantization(), attention_kernel=base.config.attention_kernel, samples=9,
                check_memory=False, kv_window=base.config.kv_window)
    hi = prediction_intervals(p, TOY, 0.8, options=base.config.options())["e2e_s"][1]
    assert base.point.e2e_s_slow == pytest.approx(base.point.waves * hi, rel=1e-9)
    d = to_json({"ladder": pes, "alternatives": [], "pessimistic": 0.8})
    assert d["pessimistic_level"] == 0.8 and d["steps"][0]["e2e_s_slow"] == pytest.approx(base.point.e2e_s_slow)
    with pytest.raises(SpecError) as e:
        ladder(M, TOY, WL, pessimistic=1.2)
    assert "--pessimistic" in str(e.value.problems[0])
