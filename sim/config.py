"""Configuration objects: every setting of a serving run and of a static prediction, written once.

``ServingConfig`` holds what ``sim.serving.simulate`` takes (parallelism, quantization, scheduler,
KV blocks, preemption, replicas, router, disaggregation, SLOs, software options); ``RunControls``
holds how one call runs and records (timeline size, trace, stop time, injected pricer);
``PredictConfig`` holds the 21 settings of ``sim.predict.predict``. Each field carries its
metadata (see :func:`setting`): help text, unit, CLI flag and argparse keywords, and the name a
sweep spec gives it. From that one place come the CLI flags of ``llmsim serve`` / ``llmsim
predict`` (``llmsim/commands/_config.py``), the serving fields of a sweep spec and their
defaults (``sim/sweep/spec.py:SERVING_FIELDS``) and the keywords a sweep point passes to
``simulate`` (``sim/sweep/serving.py``). A new option is one new field here plus the code that
uses it.

This module is light on purpose (no pandas, no SimPy): the CLI imports it to build its parser.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import MISSING, dataclass, field, fields, replace

import numpy as np

from hwmodels.errors import Problem, SpecError
from sim.cost import CostOptions
from workloads.quant import SCHEMES

__all__ = [
    "PREEMPTION_MODES",
    "ROUTERS",
    "SCHEDULERS",
    "PredictConfig",
    "RunControls",
    "ServingConfig",
    "UnknownSettingError",
    "cli_fields",
    "make_config",
    "setting",
    "split_settings",
    "sweep_fields",
]

SCHEDULERS = ("vllm", "sarathi", "static", "disagg")
#: why the static scheduler refuses prefix caching (ServingConfig and PlanRequest checks)
STATIC_NO_PREFIX = ("prefix caching needs continuous batching (--scheduler vllm or sarathi): the static scheduler "
                    "reserves each request's KV blocks for its whole batch and shares none")
ROUTERS = ("round-robin", "least-outstanding", "least-kv")
PREEMPTION_MODES = ("recompute", "swap")
ATTENTION_KERNELS = ("auto", "flash", "naive")

#: the software-option flags (``llmsim.commands.predict.add_cost_options``): flag -> (the
#: ``CostOptions`` field it sets, the value it sets, help); ``--attention-kernel`` follows the third
COST_FLAGS = {
    "--fused": ("fused", True, "fuse elementwise/norm chains (intermediates on chip)"),
    "--cuda-graphs": ("cuda_graphs", True, "no per-kernel launch overhead"),
    "--overlap-comm": ("overlap_comm", True, "overlap collectives with compute"),
    "--no-efficiency": ("use_efficiency", False, "ignore achievable-efficiency fields (pure datasheet)"),
    "--no-tiling": ("tiling", False, "plain roofline for GEMMs (no tiles, padding, waves)"),
    "--dequant-per-tile": ("dequant_per_tile", True,
                           "weight-only quantized GEMMs re-dequantize their weights once per M tile (Marlin-style)"),
}
COST_OPTION_FLAGS = tuple(COST_FLAGS)


#: the --quant help of every command: the schemes workloads.quant knows
QUANT_HELP = f"quantization scheme: {', '.join(SCHEMES)} (default bf16)"


def setting(default, help: str, *, flag: str | None = None, group: str | None = None, unit: str | None = None,
            sweep=None, shared: tuple = (), cli_default=MISSING, **argparse_kw):
    """A dataclass field with its metadata.

    ``flag``: the CLI option (``--tp``) a command adds from this field, in argument group ``group``;
    ``argparse_kw``: the rest of its ``add_argument`` keywords (type, choices, metavar, action,
    dest); ``cli_default``: the flag's default where it differs from the field's (the command
    resolves it).
    ``shared``: flags a shared helper adds instead (the software options, ``--set``).
    ``sweep``: how a sweep spec names it: ``("serving", name, type)`` a serving field,
    ``("workload", name)`` a workload field, ``("options",)`` the options block, ``("hw",)`` axes.
    """
    if cli_default is not MISSING:
        argparse_kw["default"] = cli_default
    meta = {"help": help, "flag": flag, "group": group, "unit": unit, "sweep": sweep, "shared": tuple(shared),
            "argparse": argparse_kw}
    return field(default=default, metadata=meta)


def cli_fields(cls, group: str | None = None) -> list:
    """Fields of ``cls`` with a CLI flag of their own (in ``group`` if given), in declaration order."""
    return [f for f in fields(cls) if f.metadata.get("flag") and (group is None or f.metadata["group"] == group)]


def sweep_fields(cls, kind: str = "serving") -> list:
    """(field, sweep name, sweep type) of the fields a sweep spec sets in its ``kind`` block."""
    out = []
    for f in fields(cls):
        sw = f.metadata.get("sweep")
        if sw and sw[0] == kind:
            out.append((f, sw[1] if len(sw) > 1 else f.name, sw[2] if len(sw) > 2 else None))
    return out


def default_of(f):
    return f.default_factory() if f.default is MISSING else f.default


class UnknownSettingError(SpecError, TypeError):
    """A keyword that names no setting (a SpecError for the CLI, a TypeError for Python callers)."""


def split_settings(settings: dict, classes: tuple, what: str) -> list[dict]:
    """``settings`` split by the class whose field it names; UnknownSettingError (with did-you-mean)
    for a name no class has."""
    names = [[f.name for f in fields(c)] for c in classes]
    known = [n for ns in names for n in ns]
    out: list[dict] = [{} for _ in classes]
    problems = []
    for k, v in settings.items():
        for i, ns in enumerate(names):
            if k in ns:
                out[i][k] = v
                break
        else:
            hint = difflib.get_close_matches(str(k), known, n=1)
            problems.append(Problem(
                f"unknown setting {k!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; {what} takes {', '.join(c.__name__ for c in classes)} fields: {', '.join(known)}",
                path=what))
    if problems:
        raise UnknownSettingError(problems)
    return out


def make_config(cls, base, settings: dict, what: str):
    """``base`` (an instance of ``cls``, or the defaults when None) with ``settings`` applied."""
    (own,) = split_settings(settings, (cls,), what)
    if base is None:
        return cls(**own)
    if not isinstance(base, cls):
        raise UnknownSettingError(Problem(f"config must be a {cls.__name__}, got {type(base).__name__}", path=what))
    return replace(base, **own) if own else base


def _flag(cls, name: str) -> str:
    f = next(f for f in fields(cls) if f.name == name)
    return f.metadata.get("flag") or name


def _int_problem(problems, cls, name, v, lo=1, optional=False):
    if optional and v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        problems.append(Problem(f"must be an integer >= {lo}, got {v!r}", path=f"{name} ({_flag(cls, name)})"))


def _num_problem(problems, cls, name, v):
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v <= 0:
        problems.append(Problem(f"must be a number > 0, got {v!r}", path=f"{name} ({_flag(cls, name)})"))


# ---------------------------------------------------------------------------------------------
# serving

_R, _S, _W, _O = "replicas", "scheduler", "workload", "objectives"


@dataclass(frozen=True)
class ServingConfig:
    """Every setting of a serving simulation (``sim.serving.simulate``); times in seconds."""

    tp: int = setting(1, "tensor-parallel degree per replica", flag="--tp", group=_R, type=int,
                      sweep=("workload", "tp"))
    pp: int = setting(1, "pipeline stages per replica", flag="--pp", group=_R, type=int, sweep=("workload", "pp"))
    ep: int = setting(1, "expert-parallel degree (MoE; <= tp)", flag="--ep", group=_R, type=int,
                      sweep=("workload", "ep"))
    replicas: int = setting(1, "data-parallel replicas behind the router", flag="--replicas", group=_R, type=int,
                            sweep=("workload", "replicas"))
    router: str = setting("round-robin", "how arrivals are spread over replicas (default round-robin)",
                          flag="--router", group=_R, choices=list(ROUTERS), sweep=("serving", "router", str))
    quant: object = setting("bf16", QUANT_HELP,
                            flag="--quant", group=_R, metavar="SCHEME", sweep=("workload", "quant"))
    weight_dtype: str | None = setting(None, "override the scheme's weight dtype", flag="--weight-dtype", group=_R,
                                       sweep=("serving", "weight_dtype", str))
    act_dtype: str | None = setting(None, "override the scheme's activation dtype", flag="--act-dtype", group=_R,
                                    sweep=("serving", "act_dtype", str))
    kv_dtype: str | None = setting(None, "override the scheme's KV-cache dtype", flag="--kv-dtype", group=_R,
                                   sweep=("serving", "kv_dtype", str))
    memory_utilization: float = setting(
        0.9, "share of device memory the replica may use (vLLM gpu_memory_utilization, default 0.9)",
        flag="--memory-utilization", group=_R, type=float, sweep=("serving", "memory_utilization", "fraction1"))
    max_model_len: int | None = setting(None, "longest request in tokens; longer ones are rejected (default: none, and "
                                        "one longer than the model's max_position_embeddings is a what-if, with a warning)",
                                        unit="tokens",
                                        flag="--max-model-len", group=_R, type=int,
                                        sweep=("serving", "max_model_len", int))
    # None: the serving stack's (docs/stacks.md; ServingConfig.with_stack fills them in)
    scheduler: str | None = setting(None, "vllm (continuous batching, whole prompts), sarathi (chunked prefill), "
                                    "static, disagg (default: the --stack's: sarathi where it chunks prefills, e.g. "
                                    "vllm, sglang; else vllm)", flag="--scheduler", group=_S,
                                    choices=list(SCHEDULERS), sweep=("serving", "scheduler", str))
    max_num_seqs: int | None = setting(None, "requests per step (default: the --stack's, e.g. 1024 for vllm)",
                                       flag="--max-num-seqs", group=_S, type=int,
                                       sweep=("serving", "max_num_seqs", int))
    max_num_batched_tokens: int | None = setting(
        None, "tokens per prefill step for vllm/disagg/static (default: the --stack's, e.g. 8192 for vllm)",
        unit="tokens", flag="--max-num-batched-tokens", group=_S, type=int,
        sweep=("serving", "max_num_batched_tokens", int))
    usage: str | None = setting(None, "the engine entry point whose default limits apply: server (vllm serve) or "
                                "offline (vLLM's LLM class, benchmark_throughput) (default: offline when every "
                                "request arrives at once, --rate inf; else server)", flag="--usage", group=_S,
                                choices=["server", "offline"], sweep=("serving", "usage", str))
    chunk_size: int | None = setting(None, "sarathi: tokens per step, decodes + prefill chunks (default: "
                                     "--max-num-batched-tokens when given, else the --stack's token budget where it "
                                     "chunks prefills, else 512)", unit="tokens", flag="--chunk-size", group=_S,
                                     type=int, sweep=("serving", "chunk_size", int))
    block_size: int = setting(16, "KV block size in tokens (default 16)", unit="tokens", flag="--block-size",
                              group=_S, type=int, sweep=("serving", "block_size", int))
    watermark: float = setting(0.01, "share of KV blocks kept free at admission", flag="--watermark", group=_S,
                               type=float, sweep=("serving", "watermark", "fraction0"))
    preemption: str = setting("recompute", "when KV blocks run out (default recompute)", flag="--preemption",
                              group=_S, choices=list(PREEMPTION_MODES), sweep=("serving", "preemption", str))
    swap_space_gib: float = setting(4.0, "host swap space per chip (GiB)", unit="GiB", flag="--swap-space",
                                    group=_S, type=float, metavar="GIB", dest="swap_space",
                                    sweep=("serving", "swap_space_gib", "nonneg"))
    prefix_caching: bool = setting(False, "reuse KV blocks of shared prompt prefixes", flag="--prefix-caching",
                                   group=_S, action="store_true", sweep=("serving", "prefix_caching", bool))
    prefill_replicas: int | None = setting(None, "disagg: replicas in the prefill pool (default 1)",
                                           flag="--prefill-replicas", group=_S, type=int,
                                           sweep=("serving", "prefill_replicas", int))
    decode_replicas: int | None = setting(None, "disagg: replicas in the decode pool (default 1)",
                                          flag="--decode-replicas", group=_S, type=int,
                                          sweep=("serving", "decode_replicas", int))
    seed: int = setting(0, "random seed of the synthetic stream (default 0)", flag="--seed", group=_W, type=int,
                        sweep=("serving", "seed", int))
    slo_ttft_s: float | None = setting(None, "TTFT target: seconds (0.5) or with a unit (500ms) (goodput, SLO "
                                       "attainment)", unit="s", flag="--slo-ttft", group=_O, metavar="TIME",
                                       dest="slo_ttft",
                                       sweep=("serving", "slo_ttft_p99", "time"))
    slo_tpot_s: float | None = setting(None, "TPOT target: seconds (0.05) or with a unit (50ms) (goodput, SLO "
                                       "attainment)", unit="s", flag="--slo-tpot", group=_O, metavar="TIME",
                                       dest="slo_tpot",
                                       sweep=("serving", "slo_tpot_p99", "time"))
    options: CostOptions = setting(CostOptions(), "how the software runs the work (sim.cost.CostOptions)",
                                   shared=COST_OPTION_FLAGS, sweep=("options",))
    attention_kernel: str = setting("auto", "attention implementation (auto: flash prefill, paged decode)",
                                    flag="--attention-kernel", group="software", choices=list(ATTENTION_KERNELS),
                                    sweep=("serving", "attention_kernel", str))
    overrides: object = setting(None, "hardware field overrides (path=value)", shared=("--set", "--price"), sweep=("hw",))
    stack: object = setting(None, "serving-stack profile: catalog name, YAML path or hwmodels.stack.Stack (None: "
                            "the default stack); prices every step and fills the scheduler settings left at None",
                            shared=("--stack",), sweep=("serving", "stack", str))

    def with_stack(self, chip=None, offline: bool = False) -> ServingConfig:
        """A copy with the scheduler settings left at None taken from the serving stack
        (``hwmodels.stack``): sarathi (chunked prefill) where it chunks prefills, else vllm; its
        token budget (also sarathi's chunk; 512 where it does not chunk) and sequence limit, those of
        the entry point ``usage`` (None: offline where ``offline``, every request at once; else server)
        on ``chip`` (None: a large device; ``Stack.scheduler_limits``)."""
        from hwmodels.stack import load_stack

        st = load_stack(self.stack)
        ch = {}
        usage = self.usage or ("offline" if offline else "server")
        tokens, seqs = st.scheduler_limits(usage, chip)
        if self.usage is None:
            ch["usage"] = usage
        if self.scheduler is None:
            ch["scheduler"] = "sarathi" if st.chunked_prefill else "vllm"
        if self.max_num_seqs is None:
            ch["max_num_seqs"] = seqs
        if self.chunk_size is None:
            given = self.max_num_batched_tokens
            ch["chunk_size"] = given or (tokens if st.chunked_prefill else 512)
        if self.max_num_batched_tokens is None:
            ch["max_num_batched_tokens"] = tokens
        return replace(self, **ch) if ch else self

    def problems(self) -> list[Problem]:
        """Every problem of these settings (empty when they can run), each naming its flag."""
        P: list = []
        C = ServingConfig
        for name in ("tp", "pp", "ep", "replicas", "block_size"):
            _int_problem(P, C, name, getattr(self, name))
        for name in ("max_num_seqs", "chunk_size"):  # None: the stack's (with_stack)
            _int_problem(P, C, name, getattr(self, name), optional=True)
        for name in ("max_num_batched_tokens", "prefill_replicas", "decode_replicas", "max_model_len"):
            _int_problem(P, C, name, getattr(self, name), optional=True)
        for name in ("slo_ttft_s", "slo_tpot_s", "memory_utilization"):
            _num_problem(P, C, name, getattr(self, name))
        mu = self.memory_utilization
        if isinstance(mu, (int, float)) and mu > 1:
            P.append(Problem(f"must be <= 1, got {mu!r}", path="memory_utilization (--memory-utilization)"))
        if not isinstance(self.watermark, (int, float)) or not 0 <= self.watermark < 1:
            P.append(Problem(f"must be a fraction in [0, 1), got {self.watermark!r}", path="watermark (--watermark)"))
        if not isinstance(self.swap_space_gib, (int, float)) or self.swap_space_gib < 0:
            P.append(Problem(f"must be >= 0, got {self.swap_space_gib!r}", path="swap_space_gib (--swap-space)"))
        P += self._choice_problems()
        return P

    def _choice_problems(self) -> list[Problem]:
        P = []
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            P.append(Problem(f"unknown scheduler {self.scheduler!r}; known: {', '.join(SCHEDULERS)}",
                             path="scheduler (--scheduler)"))
        if self.usage is not None and self.usage not in ("server", "offline"):
            P.append(Problem(f"unknown usage {self.usage!r}; known: server, offline", path="usage (--usage)"))
        if self.router not in ROUTERS:
            P.append(Problem(f"unknown router {self.router!r}; known: {', '.join(ROUTERS)}", path="router (--router)"))
        if self.preemption not in PREEMPTION_MODES:
            P.append(Problem(f"unknown preemption mode {self.preemption!r}; known: {', '.join(PREEMPTION_MODES)}",
                             path="preemption (--preemption)"))
        if self.scheduler == "static" and self.prefix_caching:
            P.append(Problem(STATIC_NO_PREFIX, path="prefix_caching (--prefix-caching)"))
        disagg = self.scheduler == "disagg"
        if not disagg and (self.prefill_replicas is not None or self.decode_replicas is not None):
            P.append(Problem("only the disagg scheduler has prefill and decode pools",
                             path="prefill_replicas (--prefill-replicas)"))
        if not P and disagg:
            p_rep, d_rep = self.prefill_replicas or 1, self.decode_replicas or 1
            if self.replicas != 1 and self.replicas != p_rep + d_rep:
                P.append(Problem(f"with disagg, replicas = prefill + decode replicas ({p_rep} + {d_rep}); "
                                 f"got {self.replicas}", path="replicas (--replicas)"))
        tp, ep = self.tp, self.ep
        if isinstance(tp, int) and isinstance(ep, int) and tp >= 1 and ep > tp:
            from workloads import Parallelism

            # predict's rule (Parallelism.from_degrees): ep wider than tp means ep/tp data-parallel
            # attention replicas, which one simulated replica (tp x pp chips) cannot hold
            lay = Parallelism.from_degrees(tp, 1, ep) if ep % tp == 0 else None
            P.append(Problem(f"{lay.describe_dp()}; the serving simulator runs each replica on its own tp x pp "
                             f"chips, so ep must be at most tp: use --tp {ep} --ep {ep}, or --ep {tp} with "
                             f"--replicas {lay.dp}" if lay is not None else
                             f"ep={ep} must be at most tp={tp} (an EP group inside one replica's TP chips)",
                             path="ep (--ep)"))
        return P

    @property
    def roles(self) -> list[str]:
        """The role of each replica: prefill/decode pools under disagg, else all mixed."""
        if self.scheduler == "disagg":
            return ["prefill"] * (self.prefill_replicas or 1) + ["decode"] * (self.decode_replicas or 1)
        return ["mixed"] * self.replicas

    @property
    def step_budget(self) -> int:
        """max_num_batched_tokens, or its default of 16384 tokens."""
        return 16384 if self.max_num_batched_tokens is None else self.max_num_batched_tokens


@dataclass(frozen=True)
class RunControls:
    """How one ``simulate`` call runs and what it records (not part of the served configuration).

    ``trace_speedup``: replay a Trace this many times faster; ``out_dir``: stream requests.csv
    there and write the timeline, summary and trace at the end; ``trace``: record the
    Chrome/Perfetto trace of replica ``trace_replica`` (default: when ``out_dir`` is given);
    ``until_s``: stop the simulated clock there; ``record_events``: keep (time, event, request id);
    ``coster``/``kv_capacity_tokens``: inject a step pricer and a KV capacity (tests);
    ``keep_requests``: keep the per-request table in memory (``ServingResult.requests``) when no
    ``out_dir`` streams it; False keeps only the float32 latency columns the percentiles need (20
    bytes per request), for runs of millions of requests (``llmsim serve`` without ``--out``).
    """

    trace_speedup: float = 1.0
    out_dir: object = None
    timeline_points: int = 20_000
    trace: bool | None = None
    trace_replica: int = 0
    trace_max_events: int = 200_000
    until_s: float | None = None
    record_events: bool = False
    coster: object = None
    kv_capacity_tokens: int | None = None
    progress: object = None  # callable(simulated s, requests finished, requests arrived), every progress_every
    progress_every: int = 256
    keep_requests: bool = True

    def problems(self) -> list[Problem]:
        P: list = []
        _int_problem(P, RunControls, "timeline_points", self.timeline_points)
        _int_problem(P, RunControls, "kv_capacity_tokens", self.kv_capacity_tokens, optional=True)
        _int_problem(P, RunControls, "progress_every", self.progress_every)
        if self.trace_speedup is not None:
            v = self.trace_speedup
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v <= 0:
                P.append(Problem(f"must be a number > 0, got {v!r}", path="trace_speedup (--trace-speedup)"))
        return P


# ---------------------------------------------------------------------------------------------
# static prediction


@dataclass(frozen=True)
class PredictConfig:
    """The settings of a static prediction (``sim.predict.predict``): B requests of ``input_len``
    prompt and ``output_len`` output tokens of ``model`` on ``hw``.

    ``model``: catalog name, config.json path or ModelSpec; ``hw``: chip or system name, path or
    object. Techniques (default off): ``speculative`` (``workloads.techniques.SpecConfig``),
    ``sparsity`` (``workloads.quant.Sparsity``), ``offload`` (``sim.techniques.Offload``),
    ``kv_window`` (keep the last W tokens of KV). ``samples``: decode contexts priced (the others
    interpolated); ``check_memory``: raise InfeasibleError when it does not fit (else fits=False).
    """

    model: object = setting(None, "model: catalog name or config.json path", flag="--model", group="model",
                            required=True)
    hw: object = setting(None, "chip or system: catalog name or YAML path", flag="--hw", group="hw", required=True)
    batch: int = setting(None, "requests in the batch", flag="--batch", group="batch", type=int, required=True)
    input_len: int = setting(None, "prompt tokens per request", unit="tokens", flag="--input-len", group="batch",
                             type=int, required=True)
    output_len: int = setting(None, "output tokens per request", unit="tokens", flag="--output-len", group="batch",
                              type=int, required=True)
    tp: int = setting(1, "tensor-parallel degree", flag="--tp", group="parallel", type=int)
    pp: int = setting(1, "pipeline-parallel stages", flag="--pp", group="parallel", type=int)
    ep: int = setting(1, "expert-parallel degree (MoE)", flag="--ep", group="parallel", type=int)
    quant: object = setting("bf16", QUANT_HELP, flag="--quant",
                            group="parallel", metavar="SCHEME")
    weight_dtype: str | None = setting(None, "override the scheme's weight dtype", flag="--weight-dtype",
                                       group="parallel")
    act_dtype: str | None = setting(None, "override the scheme's activation dtype", flag="--act-dtype",
                                    group="parallel")
    kv_dtype: str | None = setting(None, "override the scheme's KV-cache dtype", flag="--kv-dtype", group="parallel")
    overrides: object = setting(None, "hardware field overrides (path=value)", shared=("--set", "--price"))
    options: CostOptions = setting(CostOptions(), "how the software runs the work (sim.cost.CostOptions)",
                                   shared=COST_OPTION_FLAGS)
    attention_kernel: str = setting("auto", "attention implementation (auto: flash prefill, paged decode)",
                                    shared=("--attention-kernel",))
    samples: int = setting(33, "decode contexts priced exactly (the others interpolated)")
    check_memory: bool = setting(True, "raise InfeasibleError when the batch does not fit (else fits=False)")
    speculative: object = setting(None, "speculative decoding (workloads.techniques.SpecConfig)",
                                  shared=("--spec-draft", "--spec-ngram", "--spec-k", "--spec-acceptance",
                                          "--spec-step-cost", "--spec-draft-quant"))
    sparsity: object = setting(None, "2:4 structured sparsity (workloads.quant.Sparsity)",
                               shared=("--sparse", "--sparse-uncompressed"))
    offload: object = setting(None, "far-tier offload (sim.techniques.Offload)",
                              shared=("--offload", "--offload-bandwidth", "--offload-capacity"))
    kv_window: int | None = setting(None, "keep only the last W tokens of KV cache (lossy eviction)",
                                    shared=("--kv-window",))
    stack: object = setting(None, "serving-stack profile: catalog name, YAML path or hwmodels.stack.Stack (None: "
                            "the default stack)", shared=("--stack",))
    interval_level: float | None = setting(
        None, "level of the prediction intervals, 0 < P < 1 (docs/uncertainty.md; the CLI's default 0.8, "
        "the API's None: no intervals)", flag="--interval-level", group="intervals", type=float, metavar="P",
        cli_default=0.8)

    def problems(self) -> list[Problem]:
        P = []
        for name in ("batch", "input_len", "output_len", "tp", "pp", "ep", "samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                P.append(Problem(f"{name} must be a positive integer; got {v!r}"))
        lv = self.interval_level
        if lv is not None and (isinstance(lv, bool) or not isinstance(lv, (int, float, np.number))
                               or not 0.0 < float(lv) < 1.0):
            P.append(Problem(f"must be between 0 and 1 (exclusive), e.g. 0.8; got {lv!r}",
                             path="interval_level (--interval-level)"))
        return P
