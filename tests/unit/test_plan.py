"""Capacity planning on a toy setup with a stand-in simulator whose capacity is known by hand."""

import math
from pathlib import Path

import pytest

from hwmodels.errors import SpecError
from sim.plan import PlanRequest, plan

DATA = Path(__file__).parent.parent / "data"
CHIP = str(DATA / "toy-chip.yaml")  # 3.6 USD/h per chip
SYSTEM = str(DATA / "toy-system.yaml")  # 8 toy chips, priced as 8 x 3.6 USD/h


class Result:
    def __init__(self, summary):
        self.summary = summary


def capacity_sim(capacity_rps: float, calls: list | None = None):
    """Meets p99 TTFT 0.1 s / TPOT 10 ms up to ``capacity_rps`` per replica, 10 s / 1 s beyond."""

    def sim(scenario, system, model, **kw):
        rate = scenario.arrivals.rate_rps
        if calls is not None:
            calls.append((system.name, kw["tp"], rate))
        ok = rate <= capacity_rps
        return Result({"ttft_p99_s": 0.1 if ok else 10.0, "tpot_p99_s": 0.01 if ok else 1.0,
                       "requests_completed": scenario.num_requests, "requests_rejected": 0})

    return sim


def req(**kw):
    base = {"model": "qwen2.5-0.5b", "rate_rps": 10.0, "slo_ttft_p99_s": 1.0, "slo_tpot_p99_s": 0.05, "input_len": 256,
            "output_len": 64, "hardware": (CHIP, SYSTEM), "tps": (1, 2), "num_requests": 50}
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
    assert res.probes == len(calls) <= 3 * 12  # three candidates were simulated


def test_budget_nothing_meets_says_what_came_closest():
    res = plan(req(budget_usd_per_hour=10.0), simulate=capacity_sim(3.0))
    assert not res.best
    assert res.closest is not None and res.closest.usd_per_hour == pytest.approx(14.4)
    assert "budget" in res.closest.reason


def test_slo_nobody_meets():
    res = plan(req(hardware=(CHIP,), tps=(1,)), simulate=capacity_sim(0.0))
    c = res.candidates[0]
    assert not res.best and c.status == "fails_slo" and "misses the SLOs even at" in c.reason
    assert res.closest is c and c.closeness == pytest.approx(20.0)  # TPOT 1 s against 50 ms


def test_lone_request_too_slow_fails_without_simulating():
    calls = []
    res = plan(req(hardware=(CHIP,), tps=(1,), slo_tpot_p99_s=1e-6), simulate=capacity_sim(3.0, calls))
    assert not calls and res.candidates[0].status == "fails_slo"
    assert "even for a lone request" in res.candidates[0].reason


def test_api_comparison_by_hand():
    res = plan(req(hardware=(CHIP,), tps=(1,), api_price_in=1.0, api_price_out=2.0), simulate=capacity_sim(3.0))
    # 10 req/s x 3600 s x (256 x 1 + 64 x 2) USD per million tokens
    assert res.api_usd_per_hour == pytest.approx(10 * 3600 * (256 + 128) / 1e6)


def test_bad_requests_name_the_flag():
    with pytest.raises(SpecError, match="--input-len"):
        plan(req(input_len=None), simulate=capacity_sim(1.0))
    with pytest.raises(SpecError, match="--api-price-in"):
        plan(req(api_price_in=1.0), simulate=capacity_sim(1.0))
    res = plan(req(tps=(3,)), simulate=capacity_sim(1.0))  # 14 heads: tp=3 cannot split them
    assert not res.best and all(c.status == "infeasible" for c in res.candidates)
    assert "tp=3 does not divide" in res.candidates[-1].reason


def test_cli_prints_the_plan(capsys, monkeypatch):
    from llmsim.cli import main
    from sim.sweep import serving

    monkeypatch.setattr(serving, "get_simulate", lambda: capacity_sim(3.0))
    args = ["plan", "--model", "qwen2.5-0.5b", "--rate", "10", "--input-len", "256", "--output-len", "64",
            "--slo-ttft-p99", "1 s", "--slo-tpot-p99", "50ms", "--hw", CHIP, "--tp", "1", "--requests", "50",
            "--quiet", "--api-price-in", "1", "--api-price-out", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "cheapest 1 configuration(s)" in out and "14.40" in out and "through an API" in out
    assert "50 requests each" in out
    assert main(args + ["--budget", "5"]) == 3
    assert "closest" in capsys.readouterr().err
    assert math.isfinite(1.0)
