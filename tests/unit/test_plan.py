"""Capacity planning on a toy setup with a stand-in simulator whose capacity is known by hand."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwmodels.errors import SpecError
from sim.plan import PlanRequest, plan

DATA = Path(__file__).parent.parent / "data"
CHIP = str(DATA / "toy-chip.yaml")  # 3.6 USD/h per chip
SYSTEM = str(DATA / "toy-system.yaml")  # 8 toy chips, priced as 8 x 3.6 USD/h


class Result:
    def __init__(self, summary, requests=None):
        self.summary = summary
        self.requests = requests


def capacity_sim(capacity_rps: float, calls: list | None = None, tpot_s: float = 0.01):
    """A stand-in simulator checkable by hand: each replica serves one request at a time, taking
    1 / ``capacity_rps`` seconds (its TTFT when it does not wait), then streams tokens every ``tpot_s``.
    Arrivals go round-robin over ``replicas``. Below capacity with fixed-rate arrivals nobody
    waits; above it the queue grows without bound."""

    def sim(scenario, system, model, **kw):
        reps = kw.get("replicas", 1)
        reqs = sorted(scenario.requests(kw.get("seed", 0)), key=lambda r: r.arrival_s)
        if calls is not None:
            calls.append((system.name, kw["tp"], len(reqs) / max(reqs[-1].arrival_s, 1e-9), reps))
        service = 1.0 / capacity_rps
        free = [0.0] * reps
        rows = []
        for i, r in enumerate(reqs):
            k = i % reps
            start = max(r.arrival_s, free[k])
            free[k] = start + service
            ttft = free[k] - r.arrival_s
            e2e = ttft + tpot_s * (r.output_tokens - 1)
            rows.append((r.arrival_s, start - r.arrival_s, ttft, tpot_s, e2e, r.arrival_s + e2e))
        df = pd.DataFrame(rows, columns=["arrival_s", "queue_s", "ttft_s", "tpot_s", "e2e_s", "finish_s"])
        ok = (df.ttft_s <= kw["slo_ttft_s"]) & (df.tpot_s <= kw["slo_tpot_s"])
        return Result({"ttft_p99_s": float(np.percentile(df.ttft_s, 99)), "tpot_p99_s": tpot_s,
                       "requests_completed": len(df), "requests_rejected": 0, "slo_attainment": float(ok.mean()),
                       "request_throughput_rps": len(df) / df.finish_s.max()}, df)

    return sim


def req(**kw):
    base = {"model": "qwen2.5-0.5b", "rate_rps": 10.0, "slo_ttft_p99_s": 1.0, "slo_tpot_p99_s": 0.05, "input_len": 256,
            "output_len": 64, "hardware": (CHIP, SYSTEM), "tps": (1, 2), "num_requests": 200, "cv": 0.0,
            "request_budget": 800}
    base.update(kw)
    return PlanRequest(**base)


def test_replicas_match_the_hand_calculation():
    calls = []
    res = plan(req(), simulate=capacity_sim(3.0, calls))
    best = res.best[0]
    # one replica sustains 3 req/s (found within 5 %): 10 req/s needs ceil(10 / 3) = 4 replicas of one chip
    assert best.hardware == CHIP and best.tp == 1
    assert 3.0 / 1.05 <= best.sustained_rps <= 3.0
    assert best.replicas == 4
    assert best.usd_per_hour == pytest.approx(4 * 3.6)
    assert best.usd_per_mtok_output == pytest.approx(4 * 3.6 / 3600 / (10 * 64) * 1e6)
    assert best.utilization == pytest.approx(10 / (4 * best.sustained_rps)) and best.headroom == pytest.approx(
        1 - best.utilization)
    # the system with tp=2 also meets the SLOs but costs 4 x 2 x 3.6 = 28.8 USD/h; the chip cannot do tp=2
    by = {(Path(c.hardware).stem, c.tp): c for c in res.candidates}
    assert by[("toy-system", 2)].status == "ok" and by[("toy-system", 2)].usd_per_hour == pytest.approx(28.8)
    assert by[("toy-chip", 2)].status == "infeasible" and "no system" in by[("toy-chip", 2)].reason
    # every probe round and every fleet verification is one simulation; three candidates were probed
    sims = sum(p.rounds for c in res.candidates for p in c.probes)
    verifications = sum(1 + len(c.verification.history) for c in res.candidates if c.verification is not None)
    assert res.probes <= 3 * 12 and sims + verifications == len(calls)
    # the verification simulated the whole fleet (4 replicas at 10 req/s) and it met the SLOs as planned
    assert best.verified and best.replicas_grown == 0 and best.replicas_planned == 4
    assert any(c[3] == 4 for c in calls) and best.verification.slo_attainment == 1.0
    assert "--replicas 4 --rate 10 " in best.serve_command


def test_budget_nothing_meets_says_what_came_closest():
    res = plan(req(budget_usd_per_hour=10.0), simulate=capacity_sim(3.0))
    assert not res.best
    assert res.closest is not None and res.closest.usd_per_hour == pytest.approx(14.4)
    assert "budget" in res.closest.reason


def test_slo_nobody_meets():
    res = plan(req(hardware=(CHIP,), tps=(1,)), simulate=capacity_sim(3.0, tpot_s=1.0))
    c = res.candidates[0]
    assert not res.best and c.status == "fails_slo" and "misses the SLOs even at" in c.reason
    assert res.closest is c and c.closeness == pytest.approx(20.0)  # TPOT 1 s against 50 ms


def test_queue_growth_fails_a_probe_however_good_the_early_requests_look():
    # 10 % over capacity: the first requests wait little, but the queue grows all along
    res = plan(req(hardware=(CHIP,), tps=(1,), verify=False), simulate=capacity_sim(3.0))
    over = [p for p in res.candidates[0].probes if 3.0 < p.rate_rps < 3.5]
    assert over and not any(p.ok for p in over)
    assert all(p.decided_by in ("queue growth", "no steady state") for p in over)


@pytest.mark.parametrize("capacity", [1.5, 3.0, 40.0, 1e6])
def test_sustained_rate_never_exceeds_the_static_bound(capacity):
    res = plan(req(hardware=(CHIP,), tps=(1,), verify=False), simulate=capacity_sim(capacity))
    c = res.candidates[0]
    assert c.status == "ok" and c.sustained_rps <= c.static_bound_rps
    assert c.sustained_rps_lo <= c.sustained_rps <= c.sustained_rps_hi <= c.static_bound_rps
    assert all(p.rate_rps <= c.static_bound_rps for p in c.probes)
    if capacity > c.static_bound_rps:  # the stand-in could take more: the bound caps it
        assert c.capped_by_bound and c.sustained_rps == c.static_bound_rps
    else:
        assert capacity / (1 + 0.05) ** 2 <= c.sustained_rps <= capacity


def fleet_sim(capacity_rps, factor):
    """Like capacity_sim, but in a fleet of 2+ replicas each one serves only ``factor`` x capacity."""
    one = capacity_sim(capacity_rps)

    def sim(scenario, system, model, **kw):
        return (capacity_sim(capacity_rps * factor) if kw.get("replicas", 1) > 1 else one)(scenario, system, model,
                                                                                            **kw)

    return sim


def test_verification_grows_the_fleet_and_says_so():
    # one replica holds 3 req/s, so the plan starts at 4 replicas; in the fleet each holds 2.4:
    # 4 x 2.4 = 9.6 < 10 req/s misses, 5 x 2.4 = 12 meets
    res = plan(req(hardware=(CHIP,), tps=(1,)), simulate=fleet_sim(3.0, 0.8))
    b = res.best[0]
    assert b.replicas_planned == 4 and b.replicas == 5 and b.replicas_grown == 1 and b.verified
    assert b.usd_per_hour == pytest.approx(5 * 3.6)
    assert [h.replicas for h in b.verification.history] == [4] and "TTFT" in b.verification.history[0].why
    d = res.to_dict()
    assert d["verification"]["replicas_grown"] == 1 and d["verification"]["missed"][0]["replicas"] == 4
    assert d["verification"]["slo_attainment"] == 1.0 and d["verification"]["ttft_p99_s"] <= 1.0


def test_lone_request_too_slow_fails_without_simulating():
    calls = []
    res = plan(req(hardware=(CHIP,), tps=(1,), slo_tpot_p99_s=1e-6), simulate=capacity_sim(3.0, calls))
    assert not calls and res.candidates[0].status == "fails_slo"
    assert "even for a lone request" in res.candidates[0].reason


def test_api_comparison_by_hand():
    res = plan(req(hardware=(CHIP,), tps=(1,), api_price_in=1.0, api_price_out=2.0), simulate=capacity_sim(3.0))
    # 10 req/s x 3600 s x (256 x 1 + 64 x 2) USD per million tokens
    assert res.api_usd_per_hour == pytest.approx(10 * 3600 * (256 + 128) / 1e6)


def test_misspelled_names_are_bad_input():
    with pytest.raises(SpecError, match="did you mean h100-sxm"):
        plan(req(hardware=("h100-sxmm",)), simulate=capacity_sim(1.0))
    with pytest.raises(SpecError, match="unknown model"):
        plan(req(model="llama-3.1-8bb"), simulate=capacity_sim(1.0))


def test_bad_requests_name_the_flag():
    with pytest.raises(SpecError, match="--input-len"):
        plan(req(input_len=None), simulate=capacity_sim(1.0))
    with pytest.raises(SpecError, match="--api-price-in"):
        plan(req(api_price_in=1.0), simulate=capacity_sim(1.0))
    with pytest.raises(SpecError, match="--top: must be a number of configurations >= 1; got 0"):
        plan(req(top=0), simulate=capacity_sim(1.0))  # was an IndexError once a configuration was found
    res = plan(req(tps=(3,)), simulate=capacity_sim(1.0))  # 14 heads: tp=3 cannot split them
    assert not res.best and all(c.status == "infeasible" for c in res.candidates)
    assert "tp=3 does not divide" in res.candidates[-1].reason


def test_cli_prints_the_plan(capsys, monkeypatch):
    from llmsim.cli import main
    from sim.sweep import serving

    monkeypatch.setattr(serving, "get_simulate", lambda: capacity_sim(3.0))
    args = ["plan", "--model", "qwen2.5-0.5b", "--rate", "10", "--input-len", "256", "--output-len", "64",
            "--slo-ttft-p99", "1 s", "--slo-tpot-p99", "50ms", "--hw", CHIP, "--tp", "1", "--requests", "200",
            "--request-budget", "800", "--quiet", "--api-price-in", "1", "--api-price-out", "2", "--cv", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "cheapest 1 configuration(s)" in out and "14.40" in out and "through an API" in out
    assert "verified: 4 x toy-chip" in out and "re-run it: llmsim serve" in out and "--replicas 4" in out
    assert main(args + ["--budget", "5"]) == 3
    assert "closest" in capsys.readouterr().err
    assert main(args + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("model", "rate_rps", "best", "candidates", "closest", "probes", "notes", "num_requests_per_probe"):
        assert key in d  # the keys plan --json always had
    assert d["verification"]["replicas"] == 4 and d["verification"]["slo_attainment"] == 1.0
    assert main(["plan", *args[1:3], "--rate", "10", "--input-len", "8", "--output-len", "8", "--slo-ttft-p99", "1",
                 "--slo-tpot-p99", "1", "--hw", "h100-sxmm"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_serving_settings_reach_every_simulation_and_the_rerun_command():
    seen = []
    inner = capacity_sim(3.0)

    def sim(scenario, system, model, **kw):
        seen.append(kw)
        return inner(scenario, system, model, **kw)

    res = plan(req(hardware=(CHIP,), tps=(1,), serving={"router": "least-outstanding", "max_num_batched_tokens": 4096},
                   overrides=("price.cloud=2 USD/h",)), simulate=sim)
    assert all(k["router"] == "least-outstanding" and k["max_num_batched_tokens"] == 4096 for k in seen)
    assert all(k["overrides"] == ["price.cloud=2 USD/h"] for k in seen)
    b = res.best[0]
    assert b.usd_per_hour == pytest.approx(4 * 2.0)  # the overridden price
    assert "--router least-outstanding" in b.serve_command and "--max-num-batched-tokens 4096" in b.serve_command
    assert "--set 'price.cloud=2 USD/h'" in b.serve_command


def test_stack_reaches_every_simulation_the_rerun_command_and_the_output(capsys, monkeypatch):
    from llmsim.cli import main
    from sim.sweep import serving

    seen = []
    inner = capacity_sim(3.0)

    def sim(scenario, system, model, **kw):
        seen.append(kw)
        return inner(scenario, system, model, **kw)

    monkeypatch.setattr(serving, "get_simulate", lambda: sim)
    args = ["plan", "--model", "qwen2.5-0.5b", "--rate", "10", "--input-len", "256", "--output-len", "64",
            "--slo-ttft-p99", "1 s", "--slo-tpot-p99", "50ms", "--hw", CHIP, "--tp", "1", "--requests", "200",
            "--request-budget", "800", "--quiet", "--cv", "0", "--stack", "ideal"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "serving stack ideal" in out and "--stack ideal" in out
    assert seen and all(k["stack"] == "ideal" for k in seen)
    assert main(args + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["stack"] == "ideal" and "--stack ideal" in d["verification"]["serve_command"]
    assert main(args[:-1] + ["sglang", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stack"] == "sglang"
    assert main(args[:-1] + ["nosuch"]) == 2
    assert "unknown stack" in capsys.readouterr().err


def test_options_compared_list_why_each_lost(capsys, monkeypatch):
    from llmsim.cli import main
    from sim.sweep import serving

    monkeypatch.setattr(serving, "get_simulate", lambda: capacity_sim(3.0))
    assert main(["plan", "--model", "qwen2.5-0.5b", "--rate", "10", "--input-len", "256", "--output-len", "64",
                 "--slo-ttft-p99", "1000ms", "--slo-tpot-p99", "0.05", "--hw", CHIP, "--hw", SYSTEM, "--tp", "1",
                 "--tp", "2", "--quant", "bf16", "--quant", "fp8", "--requests", "200", "--request-budget", "800",
                 "--cv", "0", "--top", "1", "--router", "least-outstanding"]) == 0
    out = capsys.readouterr().out
    assert "compared 8 configurations (2 hardware x tp [1, 2] x quant ['bf16', 'fp8']" in out
    assert "why the others lost:" in out and "toy-chip tp=2 fp8" in out and "no system" in out
    assert "meets the SLOs but costs more" in out and "--router least-outstanding" in out


def test_progress_only_on_a_terminal(capsys, monkeypatch):
    import sys

    from llmsim.cli import main
    from sim.sweep import serving

    monkeypatch.setattr(serving, "get_simulate", lambda: capacity_sim(3.0))
    args = ["plan", "--model", "qwen2.5-0.5b", "--rate", "10", "--input-len", "256", "--output-len", "64",
            "--slo-ttft-p99", "1s", "--slo-tpot-p99", "50ms", "--hw", CHIP, "--tp", "1", "--requests", "200",
            "--request-budget", "800", "--cv", "0"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal here: quiet
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "plan: qwen2.5-0.5b at 10 req/s offered" in err and "verify toy-chip" in err and "req/s, 200 requests" in err
    assert main(args + ["--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_serve_progress_and_slo_units(capsys, monkeypatch):
    import sys

    from llmsim.cli import main

    base = ["serve", "--hw", CHIP, "--model", "qwen2.5-0.5b", "--rate", "50", "--num-requests", "600",
            "--input-len", "64", "--output-len", "8", "--json"]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(base + ["--slo-ttft", "500ms", "--slo-tpot", "0.05"]) == 0
    cap = capsys.readouterr()
    d = json.loads(cap.out)
    assert d["slo_ttft_s"] == 0.5 and d["slo_tpot_s"] == 0.05
    assert "offered 50 req/s, 600 requests" in cap.err and "requests done" in cap.err
    assert main(base + ["--slo-ttft", "1 s", "--quiet"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["slo_ttft_s"] == 1.0 and cap.err == ""
    assert main(base + ["--slo-ttft", "fast"]) == 2
    assert "--slo-ttft" in capsys.readouterr().err


def test_rerunning_serve_on_the_plan_meets_the_slos(capsys):
    """The issue's acceptance check with a fast stand-in: plan with the real simulator on the toy
    chip, then run the `llmsim serve` command it prints; every p99 is within its SLO."""
    import shlex

    from llmsim.cli import main

    res = plan(PlanRequest(model="qwen2.5-0.5b", rate_rps=600, slo_ttft_p99_s=0.05, slo_tpot_p99_s=0.004,
                           input_len=128, output_len=16, hardware=(CHIP,), tps=(1,), num_requests=1000,
                           request_budget=1000, max_probes=5, tolerance=0.2))
    b = res.best[0]
    assert b.verified and b.sustained_rps <= b.static_bound_rps
    cmd = shlex.split(b.serve_command)[1:] + ["--json"]
    assert main(cmd) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["replicas"] == b.replicas and s["requests_completed"] == b.verification.requests
    assert s["ttft_p99_s"] <= 0.05 and s["tpot_p99_s"] <= 0.004
    assert s["ttft_p99_s"] == pytest.approx(b.verification.ttft_p99_s)  # the same run


def test_disaggregated_units_scale_as_whole_units():
    seen = []
    inner = capacity_sim(3.0)

    def sim(scenario, system, model, **kw):
        seen.append(kw)
        reps = kw.get("prefill_replicas", 1)  # a unit of 1 prefill + 2 decode replicas serves like one replica
        return inner(scenario, system, model, **{**kw, "replicas": reps})

    res = plan(req(hardware=(SYSTEM,), tps=(1,), schedulers=(("disagg", 64, 1, 2),)), simulate=sim)
    b = res.best[0]
    assert b.scheduler == "disagg" and b.chips_per_replica == 3 and b.replicas == 4
    assert b.usd_per_hour == pytest.approx(4 * 3 * 3.6)  # 4 units of 3 chips
    assert {(k["prefill_replicas"], k["decode_replicas"]) for k in seen} == {(1, 2), (4, 8)}
    assert "--prefill-replicas 4 --decode-replicas 8" in b.serve_command and "--replicas" not in b.serve_command


_RATIO: dict = {}


def e2e_ratio(kind_scale) -> float:
    """How much slower a full batch (64 x 256/64 on h100-sxm) runs with op times scaled by ``kind_scale``."""
    from sim.cost import CostOptions
    from sim.predict import predict

    key = tuple(kind_scale)
    if key not in _RATIO:
        base = predict("qwen2.5-0.5b", "h100-sxm", 64, 256, 64).e2e_s
        _RATIO[key] = predict("qwen2.5-0.5b", "h100-sxm", 64, 256, 64, options=CostOptions(kind_scale=key)).e2e_s / base
    return _RATIO[key]


def scaled_capacity_sim(capacity_rps: float, calls: list | None = None):
    """capacity_sim whose replica is as much slower as a full batch gets with the cost options' kind_scale
    (the slow end's scaling reaches every simulation): capacity = capacity_rps / e2e ratio."""
    def sim(scenario, system, model, **kw):
        r = e2e_ratio(getattr(kw.get("options"), "kind_scale", ()) or ())
        if calls is not None:
            calls.append(r)
        return capacity_sim(capacity_rps / r)(scenario, system, model, **kw)

    return sim


def test_pessimistic_plan_never_needs_fewer_replicas_and_reports_both():
    calls = []
    res = plan(req(hardware=("h100-sxm",), tps=(1,), pessimistic=0.95), simulate=scaled_capacity_sim(3.0, calls))
    b = res.best[0]
    f = e2e_ratio(b.kind_scale)
    assert f > 1.0 and b.slow_end_e2e_ratio > 1
    # the point plan: 3 req/s per replica (within 5 %) -> ceil(10 / 3) = 4 replicas; the slow end: 3 / f
    assert 3.0 / 1.05 <= b.sustained_rps_point <= 3.0 and b.replicas_point == 4
    assert 3.0 / f / 1.05 <= b.sustained_rps <= 3.0 / f
    assert b.replicas >= b.replicas_point and b.replicas >= math.ceil(10 / (3.0 / f) - 1e-9)
    assert set(calls) == {1.0, f}  # point probes unscaled, slow-end probes and the verification scaled
    d = res.to_dict()
    assert d["pessimistic"]["interval_level"] == 0.95 and d["pessimistic"]["replicas"] == b.replicas
    assert d["pessimistic"]["replicas_point"] == 4 and d["verification"]["replicas_point"] == 4
    json.dumps(d)


@pytest.mark.parametrize("level", [0.3, 0.8, 0.95])
def test_pessimistic_never_fewer_replicas_at_any_level(level):
    # (a TTFT SLO of 3 s: the stand-in simulator's lone-request TTFT is ~0.4 s, and the 95% slow end prices it
    # ~2.7x slower with the serving engine term, past the 1 s of the other tests)
    res = plan(req(hardware=("h100-sxm",), tps=(1,), rate_rps=7.0, pessimistic=level, verify=False, slo_ttft_p99_s=3.0),
               simulate=scaled_capacity_sim(2.0))
    b = res.best[0]
    assert b.replicas >= b.replicas_point and b.sustained_rps <= b.sustained_rps_point


def test_pessimistic_level_toward_zero_approaches_the_point_plan(monkeypatch):
    """As the level shrinks, the interval's high end (which contains the point) goes to max(point, the draws'
    median): with an engine term of a small positive mean (the static batches' term: engines run a little
    slower than the kernel model) the slow end's scaling shrinks to the median's few percent and the plan
    becomes the point plan (h100-sxm). The shipped serving term says offline serving runs ~1.5x slower than
    simulated: there even a small level stays well above the point."""
    import sim.uncertainty as U

    shipped = U.ErrorModel.load()
    point = plan(req(hardware=("h100-sxm",), tps=(1,), verify=False), simulate=scaled_capacity_sim(3.0)).best[0]

    def slow_ends(levels):
        out = []
        for lv in levels:
            b = plan(req(hardware=("h100-sxm",), tps=(1,), verify=False, pessimistic=lv),
                     simulate=scaled_capacity_sim(3.0)).best[0]
            out.append(b.slow_end_e2e_ratio)
        return out, b

    no_serving = U.ErrorModel(dict(shipped.data, serving_engine={}))  # the static batches' term
    monkeypatch.setattr(U.ErrorModel, "load", classmethod(lambda cls, path=None: no_serving))
    ratios, b = slow_ends((0.9, 0.5, 0.02))
    assert ratios == sorted(ratios, reverse=True) and 1.0 <= ratios[-1] < 1.05
    assert b.replicas == point.replicas == b.replicas_point
    monkeypatch.setattr(U.ErrorModel, "load", classmethod(lambda cls, path=None: shipped))
    mu, _ = shipped.engine_term("published", "serving")
    assert mu > 0.2  # the record (validation.md section 5c): engines' offline throughput below the simulator's
    (r,), b = slow_ends((0.8,))  # the point lies below the draws: [point, Q(F(point) + 0.8)], above their median
    assert r > math.exp(mu) and r > ratios[0] and b.replicas >= b.replicas_point


def test_pessimistic_bad_level_names_the_flag():
    with pytest.raises(SpecError) as e:
        plan(req(pessimistic=1.5), simulate=capacity_sim(3.0))
    assert "--pessimistic" in str(e.value.problems[0])


def test_static_batch_never_exceeds_the_serving_kv_budget():
    """The static bound's full batch holds no more requests than the KV budget the probes simulate with
    (one formula: sim.serving.simulate.kv_budget), here far fewer than max_num_seqs."""
    from sim.plan import Candidate, _kv_budget, _static

    req = PlanRequest(model="qwen2.5-0.5b", hardware=(CHIP,), rate_rps=1.0, input_len=8000, output_len=1000,
                      slo_ttft_p99_s=10.0, slo_tpot_p99_s=1.0)
    cand = Candidate(CHIP, 1, "sarathi", 256)
    kv = _kv_budget(req, cand)
    fits = kv.num_blocks // -(-9000 // kv.block_size)  # requests of 9,000 tokens the budget holds
    assert 1 <= fits < 256
    full: list = []
    _static(req, cand, 8000, 1000, full=full)
    assert full[0].batch <= fits


def test_default_scheduler_is_the_stacks_and_serves_prompts_over_the_token_budget():
    """Left out, the scheduler is the serving stack's own (as `llmsim serve` runs it): for vllm, chunked prefill
    (sarathi) with max_num_seqs 1,024 on an H100 and 256 on an A100 (EngineArgs.get_batch_defaults). A prompt
    longer than the 8,192-token budget is then chunked, not rejected: before, the default `vllm:256` (whole
    prompts) rejected such a request and no fleet could pass verification (the Azure conversation trace has one)."""
    from sim.plan import _candidates

    cands = _candidates(req(hardware=("h100-sxm", "a100-sxm"), tps=(1,)), [1])
    assert [(c.hardware, c.scheduler, c.max_num_seqs) for c in cands] == [
        ("h100-sxm", "sarathi", 1024), ("a100-sxm", "sarathi", 256)]
    assert [(c.scheduler, c.max_num_seqs) for c in _candidates(req(schedulers=(("vllm", 64),)), [1])][0] == ("vllm", 64)
    res = plan(PlanRequest(model="qwen2.5-0.5b", rate_rps=2.0, slo_ttft_p99_s=5.0, slo_tpot_p99_s=0.5,
                           input_len=9000, output_len=8, hardware=("h100-sxm",), tps=(1,), num_requests=100,
                           request_budget=200, max_probes=3, tolerance=0.5))
    b = res.best[0]
    assert b.scheduler == "sarathi" and b.verified and b.verification.requests > 0


def test_a_candidate_without_the_asked_price_says_which_price_and_what_to_give():
    # the toy chip lists a cloud price only: under --cost purchase it cannot be priced, and says so (it used to
    # say "no cloud or purchase price"; the command then said "nothing meets the SLOs", now "no candidate could
    # be priced")
    from sim.tco import TcoAssumptions

    res = plan(req(hardware=(CHIP,), tps=(1,), cost=TcoAssumptions(source="purchase")), simulate=capacity_sim(3.0))
    (c,) = res.candidates
    assert not res.best and c.status == "no_price"
    assert "lists no purchase price (--cost purchase): give --purchase-price USD, or --cost cloud" in c.reason
