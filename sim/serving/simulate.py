"""``simulate``: a request stream served by data-parallel replicas, as a discrete-event simulation.

The phases, each in its own module: the settings are checked (``sim.config.ServingConfig`` and
``RunControls``), the model and hardware resolved (:func:`setup`), the memory budget computed
(``sim.serving.budget``: vLLM's profile-then-allocate), the KV links priced
(``sim.serving.links``), the replicas run on one SimPy clock (``sim.serving.run``) and the
summary computed (``sim.serving.summary``). Every step's time comes from the shared cost model
through :class:`sim.step.StepCoster`, so one request alone sees exactly the static predictor's
prefill time (its TTFT) and the same decode steps.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from hwmodels.errors import SpecError
from sim.config import PREEMPTION_MODES, RunControls, ServingConfig, make_config, split_settings
from sim.resolve import make_quantization, resolve_system, system_usd_per_s
from sim.serving.budget import memory_budget
from sim.serving.links import links_for
from sim.serving.metrics import RequestLog
from sim.serving.run import all_at_once, request_list, run_replicas
from sim.serving.summary import summarize, timeline_frame
from sim.serving.trace_export import TraceRecorder
from sim.step import StepCoster
from workloads import Parallelism, load_model
from workloads.parallel import check_parallelism

__all__ = ["PREEMPTION_MODES", "ServingResult", "Setup", "setup", "simulate"]


# --------------------------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class ServingResult:
    """What a serving run measured.

    ``summary``: JSON-ready dict (latency percentiles, throughput, goodput, cost, energy...);
    ``requests``: one row per finished request (seconds and tokens; see ``REQUEST_COLUMNS``);
    ``timeline``: sampled steps of every replica (time_s, replica, batch_size, tokens,
    kv_utilization, step_s, ...); ``trace``: the Chrome/Perfetto trace of one replica.
    """

    summary: dict
    timeline: pd.DataFrame = field(repr=False)
    config: dict = field(repr=False)
    rejected: tuple = field(default=(), repr=False)  # (request_id, reason) for the first rejections
    trace: TraceRecorder | None = field(default=None, repr=False)
    events: tuple = field(default=(), repr=False)  # (time_s, event, request id) with record_events=True
    _log: RequestLog | None = field(default=None, repr=False, compare=False)

    @cached_property
    def requests(self) -> pd.DataFrame:
        return self._log.frame() if self._log is not None else pd.DataFrame()

    def to_frame(self) -> pd.DataFrame:
        """The summary as a one-row DataFrame (scalar entries), for concatenating runs."""
        return pd.DataFrame(
            [{k: v for k, v in self.summary.items() if not isinstance(v, (dict, list, tuple))}]
        )

    def trace_json(self) -> dict:
        return (
            self.trace.to_dict({"summary": self.summary}) if self.trace is not None else {"traceEvents": []}
        )

    def write(self, out_dir: str | Path) -> Path:
        """Write requests.csv, timeline.csv, summary.json and trace.json into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        req = out / "requests.csv"
        if self._log is not None and (self._log.path is None or self._log.path.resolve() != req.resolve()):
            self.requests.to_csv(req, index=False)
        self.timeline.to_csv(out / "timeline.csv", index=False)
        (out / "summary.json").write_text(json.dumps(_json_clean(self.summary), indent=2) + "\n")
        (out / "trace.json").write_text(json.dumps(self.trace_json()))
        return out


def _json_clean(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _json_clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_clean(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    return o


# --------------------------------------------------------------------------------------------
# simulate


@dataclass(frozen=True)
class Setup:
    """The model and hardware one replica runs, resolved from a ServingConfig."""

    spec: object  # ModelSpec
    quant: object  # Quantization
    parallel: object  # Parallelism
    system: object  # System (a chip is a system of one)
    hardware: str  # as the caller named it
    notes: tuple
    max_model_len: int  # the config's, or the model's

    @property
    def chip(self):
        return self.system.chip

    @property
    def chips(self) -> int:
        """Chips per replica (tp x pp)."""
        return self.parallel.tp * self.parallel.pp

    @cached_property
    def usd_per_s(self) -> float | None:
        return system_usd_per_s(self.system, self.chips)


def setup(system, model, cfg: ServingConfig) -> Setup:
    """Load the model, the quantization and a System with room for one replica (tp x pp chips)."""
    spec = load_model(model)
    q = make_quantization(cfg.quant, weight_dtype=cfg.weight_dtype, act_dtype=cfg.act_dtype, kv_dtype=cfg.kv_dtype)
    q = q.for_checkpoint(spec.checkpoint_quant)  # fp8 on a block-FP8 checkpoint runs its blocks
    par = Parallelism(tp=cfg.tp, pp=cfg.pp, ep=cfg.ep)
    sysobj, notes = resolve_system(system, par.tp * par.pp, cfg.overrides)
    check_parallelism(spec, par)
    return Setup(spec, q, par, sysobj, str(getattr(system, "name", system)), tuple(notes),
                 cfg.max_model_len or spec.max_position)


def kv_budget(system, model, config: ServingConfig | None = None, offline: bool = False, **settings):
    """The KV budget (sim.serving.budget.KvBudget) of one replica of ``model`` on ``system``, as
    :func:`simulate` computes it (the same setup and stack defaults; ``offline``: the offline entry point's
    scheduler limits): for callers that size batches without simulating (the capacity planner's static
    bound). ``settings``: ServingConfig fields (RunControls ones are ignored). InfeasibleError when the
    weights, or one block, do not fit."""
    cfg_kw, _ = split_settings(settings, (ServingConfig, RunControls), "kv_budget()")
    cfg = make_config(ServingConfig, config, cfg_kw, "kv_budget()")
    if problems := cfg.problems():
        raise SpecError(problems)
    su = setup(system, model, cfg)
    cfg = cfg.with_stack(su.chip, offline=offline)
    return memory_budget(su.spec, su.chip, su.quant, su.parallel, cfg)


def simulate(scenario, system, model, config: ServingConfig | None = None, **settings) -> ServingResult:
    """Simulate serving ``scenario`` with ``model`` on replicas of ``system``.

    ``scenario``: a :class:`workloads.Scenario` (seeded by ``seed``), a :class:`workloads.trace.Trace`
    (replayed ``trace_speedup`` times faster) or an iterable of Requests. ``system``: chip or
    system name, path or object (a chip is a system of one; a replica uses ``tp x pp`` of its
    chips). ``config``: a :class:`sim.config.ServingConfig` (default: its defaults);
    ``settings``: any of its fields (they replace the config's) and of
    :class:`sim.config.RunControls` (out_dir, trace, until_s, record_events...), by keyword;
    an unknown name raises UnknownSettingError (a SpecError and a TypeError) with a did-you-mean.
    ``stack`` (a ServingConfig field): the serving-stack profile (default hwmodels.stack.DEFAULT_STACK)
    prices every step (``Stack.step_time``) and fills the scheduler settings left at None.
    Times and SLOs in seconds. Raises SpecError on bad input, InfeasibleError when the model does
    not fit a replica.
    """
    wall0 = time.perf_counter()
    cfg_kw, ctl_kw = split_settings(settings, (ServingConfig, RunControls), "simulate()")
    cfg = make_config(ServingConfig, config, cfg_kw, "simulate()")
    ctl = RunControls(**ctl_kw)
    problems = cfg.problems() + ctl.problems()
    if problems:
        raise SpecError(problems)
    if ctl.out_dir is not None:
        ctl = replace(ctl, out_dir=Path(ctl.out_dir))
    su = setup(system, model, cfg)
    # the settings left out: the stack's, for the entry point (offline when every request arrives at once,
    # the rule the run's shared queue follows) and chip
    scenario = request_list(scenario)
    cfg = cfg.with_stack(su.chip, offline=all_at_once(scenario))
    budget = memory_budget(su.spec, su.chip, su.quant, su.parallel, cfg, ctl.kv_capacity_tokens)
    coster = ctl.coster
    if coster is None:
        coster = StepCoster(su.spec, su.system, su.quant, su.parallel, cfg.options, cfg.attention_kernel,
                            resident_bytes=budget.resident_bytes, stack=cfg.stack)
    links = links_for(su.system, su.chips, cfg)
    state = run_replicas(scenario, cfg, ctl, budget, coster, links, su.max_model_len)
    summary = summarize(su, cfg, state, budget, coster, ctl.until_s, wall0)
    config = {"scenario": state.scenario, "scheduler": state.scheduler.__dict__,
              "memory_utilization": cfg.memory_utilization, "max_model_len": su.max_model_len,
              "options": cfg.options.__dict__, "attention_kernel": cfg.attention_kernel}
    run = state.run
    result = ServingResult(summary, timeline_frame(run), config, tuple(run.rejected_examples), state.recorder,
                           tuple(run.events or ()), state.log)
    if ctl.out_dir is not None:
        result.write(ctl.out_dir)
    return result
