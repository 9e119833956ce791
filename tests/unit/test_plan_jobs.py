"""`plan --workers`: candidates searched and verified in worker processes give the plan of a sequential run."""
import dataclasses
import json

import pytest

from hwmodels.errors import SpecError
from hwmodels.stack import load_stack
from sim.plan import PlanRequest, plan
from test_plan import CHIP, SYSTEM, capacity_sim, req


def small(**kw):
    """qwen2.5-0.5b at 40 req/s on the toy chip (3.6 USD/h) and the toy system, tp 1 and 2, the 2 cheapest
    kept: toy-chip tp1 and toy-system tp1 each sustain 40 req/s on 1 chip (3.6 USD/h); toy-system tp2 needs
    2 chips (lower bound 7.2 USD/h > 3.6) and is skipped; a lone toy chip cannot run tp2 (infeasible).
    The `vllm` stack without its API server (runtime.frontend): a serial 16 ms a request in front of each
    replica would bound it near 40 req/s itself, and these cases are about the engines."""
    engines_only = dataclasses.replace(load_stack("vllm"), frontend_per_request_s=0.0)
    base = dict(model="qwen2.5-0.5b", rate_rps=40.0, slo_ttft_p99_s=0.05, slo_tpot_p99_s=0.004, input_len=128,
                output_len=16, hardware=(CHIP, SYSTEM), tps=(1, 2), num_requests=100, request_budget=200,
                max_probes=3, tolerance=0.5, top=2, serving={"stack": engines_only})
    base.update(kw)
    return PlanRequest(**base)


def _timeless(d):
    """A result's dict without the elapsed times (PlanResult.wall_s, each probe's and verification's wall_s), as
    JSON text (NaN equals NaN there)."""
    def drop(x):
        if isinstance(x, dict):
            return {k: drop(v) for k, v in x.items() if k != "wall_s"}
        return [drop(v) for v in x] if isinstance(x, list) else x

    return json.dumps(drop(d), default=str)


def test_two_jobs_give_the_sequential_plan(monkeypatch):
    import sim.plan as P
    import sim.plan_jobs as pj

    speculated = []
    here = []  # searches and verifications run in this process
    discard = pj.Jobs.discard

    def spy(self, c):  # a skipped candidate whose search had been started ahead of its turn
        speculated.append((c.label, (id(c), False) in self.futures))
        discard(self, c)

    def seen_here(f):
        def g(rq, c, *a, **k):
            here.append((f.__name__, c.label))
            return f(rq, c, *a, **k)
        return g

    monkeypatch.setattr(pj.Jobs, "discard", spy)
    monkeypatch.setattr(P, "search_candidate", seen_here(P.search_candidate))
    monkeypatch.setattr(P, "verify_candidate", seen_here(P.verify_candidate))
    runs = {}
    for jobs in (1, 2):
        lines: list = []
        here.clear()
        res = plan(small(workers=jobs), progress=lines.append)
        runs[jobs] = (_timeless(res.to_dict()), lines, list(here))
    (one, said1, here1), (two, said2, here2) = runs[1], runs[2]
    assert two == one and said2 == said1
    assert len(here1) == 4 and here2 == []  # 2 searches and 2 verifications, here with 1 job, in workers with 2
    one = json.loads(one)
    status = {c["label"]: (c["status"], c["replicas"], c["usd_per_hour"]) for c in one["candidates"]}
    assert status["toy-chip tp=1 sarathi(max_num_seqs=256)"] == ("ok", 1, 3.6)
    assert status["toy-system tp=1 sarathi(max_num_seqs=256)"] == ("ok", 1, 3.6)
    assert status["toy-system tp=2 sarathi(max_num_seqs=256)"][0] == "skipped"
    assert status["toy-chip tp=2 sarathi(max_num_seqs=256)"][0] == "infeasible"
    assert one["probes"] == sum(len(c["probes"]) for c in one["candidates"]) > 0  # the skipped one counts none
    assert [c["verified"] for c in one["best"]] == [True, True]
    # with 2 workers, toy-system tp2's search started while toy-system tp1's ran; dropped, as the order says
    assert speculated == [("toy-system tp=2 sarathi(max_num_seqs=256)", False),
                          ("toy-system tp=2 sarathi(max_num_seqs=256)", True)]


def test_a_stand_in_simulate_runs_in_this_process():
    calls1: list = []
    calls2: list = []
    a = plan(req(workers=1), simulate=capacity_sim(3.0, calls1))
    b = plan(req(workers=2), simulate=capacity_sim(3.0, calls2))
    assert calls2 == calls1 and len(calls1) > 4  # every call seen here: nothing went to a worker
    assert _timeless(b.to_dict()) == _timeless(a.to_dict())


def test_an_unexpected_error_in_a_worker_surfaces(monkeypatch):
    """A bug inside a worker's search raises from plan() as it does in-process; nothing is left running."""
    import multiprocessing

    import sim.plan as P
    from sim.procpool import mp_context

    if mp_context().get_start_method() != "fork":
        pytest.skip("the workers see this test's patch only when forked")
    search = P._search

    def broken(rq, c, *a, **k):
        if str(c.hardware).endswith("toy-system.yaml"):
            raise RuntimeError(f"bug in {c.label}")
        return search(rq, c, *a, **k)

    monkeypatch.setattr(P, "_search", broken)
    for jobs in (1, 2):
        with pytest.raises(RuntimeError, match="bug in toy-system tp=1"):
            plan(small(workers=jobs))
    assert multiprocessing.active_children() == []


def test_jobs_default_cap_and_bad_values():
    import os

    from sim.plan_jobs import Jobs, default_jobs

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_jobs() == usable
    assert Jobs(small(workers=8), None, None, 10, 16.0, None, work=3, task=None).workers == 3  # no more than the candidates
    assert Jobs(small(), None, None, 10, 16.0, None, work=100, task=None).workers == usable
    for bad in (0, -1, 1.5, True):
        with pytest.raises(SpecError, match="--workers"):
            plan(small(workers=bad))


def test_cli_workers_flag(capsys):
    # the same flag name and bound as sweep --workers (llmsim.commands._common: a count of processes >= 1)
    from llmsim.cli import main

    with pytest.raises(SystemExit) as e:
        main(["plan", "--model", "qwen2.5-0.5b", "--rate", "1", "--input-len", "8", "--output-len", "8",
              "--slo-ttft-p99", "1", "--slo-tpot-p99", "1", "--hw", CHIP, "--workers", "0"])
    assert e.value.code == 2 and "--workers" in capsys.readouterr().err
