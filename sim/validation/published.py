"""Published measurements: kernel times and end-to-end serving figures from public sources.

Two small tables under ``sim/validation/data/published/``, every row with its ``source``
(a URL or citation) and, where the figure needed interpreting, a ``note``:

- ``kernels.csv``: per-kernel rows in the measured-CSV format (GEMM TFLOP/s from a public
  benchmark repository, NCCL bandwidths stated by NCCL's maintainers, a p2p copy), scored by
  ``sim.validation.compare`` like any measurement file;
- ``e2e.csv``: static-batch serving figures (model, hardware, tensor parallelism, batch, input and
  output lengths, dtype, one metric: ``output_throughput_tok_s``, ``e2e_s`` or ``ttft_s``),
  predicted with ``sim.predict.predict`` and compared with the same sign convention
  (error = (predicted - measured) / measured);
- ``serving.csv``: offline serving throughput (``num_prompts`` requests of fixed input and output
  lengths, all sent at once, as vLLM's ``benchmark_throughput.py`` runs them), predicted through the
  same path as ``llmsim serve --rate inf`` (``sim.serving.simulate``) with the row's published
  scheduler limits (``max_num_seqs``, ``max_num_batched_tokens``) where given, else the stack's.

A row whose model or hardware is not in the catalog is kept and reported as not predictable, with
the reason, rather than dropped.

Nothing here is fitted to: these rows only score. Some public tables are deliberately not used
(see the README in the data folder).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace

import numpy as np
import pandas as pd

from hwmodels.chip import System
from hwmodels.errors import InfeasibleError, Problem, SpecError
from hwmodels.loader import load_hardware
from hwmodels.stack import DEFAULT_STACK
from sim.cost import CostOptions
from sim.predict import predict
from sim.validation.compare import compare
from sim.validation.kernel_profiles import (ATTENTION_KERNELS, DECODE_PROFILES, PREFILL_PROFILES,  # noqa: F401 (re-exported)
                                            attention_kernel_profiles, decode_kernel_profiles, profile_options)
from hwmodels import csvtext
from sim.validation.measure import load_measurements

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "published")
KERNELS = os.path.join(DATA, "kernels.csv")
E2E = os.path.join(DATA, "e2e.csv")
E2E_COLUMNS = ("model", "hardware", "tp", "batch", "input_len", "output_len", "quant", "metric", "measured", "source")
METRICS = {"output_throughput_tok_s": "output tokens/s", "e2e_s": "end-to-end latency (s)",
           "ttft_s": "time to first token (s)", "tpot_s": "time per output token (s)"}
DEFAULT_OPTIONS = CostOptions()
SERVING = os.path.join(DATA, "serving.csv")
SERVING_COLUMNS = ("model", "hardware", "tp", "num_prompts", "input_len", "output_len", "quant", "metric",
                   "measured", "source")
SERVING_METRICS = {"request_throughput_rps": "requests/s", "output_throughput_tok_s": "output tokens/s",
                   "total_token_throughput_tok_s": "input + output tokens/s"}
MOE_KERNELS = os.path.join(DATA, "moe_kernels.csv")
MOE_COLUMNS = ("model", "hardware", "tp", "tokens", "quant", "measured_time_s")
# the ops of one MoE layer a fused-MoE call runs, given the router's logits (vLLM's fused_moe:
# top-k softmax, align, the two expert GEMMs and the activation, the top-k weighted sum)
FUSED_MOE_OPS = ("moe.topk", "moe.align", "moe.experts.gate_up", "moe.experts.act", "moe.experts.down",
                 "moe.combine")


def read_table(path: str, columns) -> tuple[pd.DataFrame, list[int]]:
    """A published CSV as text cells (no type guessing, empty cells kept as '') and the line of each row:
    SpecError naming the file, and the line and column where the problem stands, when it is missing, is
    not a CSV, lacks one of ``columns`` or has no row (``csvtext.read_csv``)."""
    return csvtext.read_csv(path, "a published table", columns, rows="one row per published figure", dtype=str,
                            keep_default_na=False)


def read_table_text(path: str, columns) -> pd.DataFrame:
    """:func:`read_table`'s frame."""
    return read_table(path, columns)[0]


class RowProblems(list):
    """Problems with a published table's rows, each at its line and the field's column, worded
    ``row LINE, field NAME: expected ...`` (the row is its line in the file)."""

    def __init__(self, path: str, df: pd.DataFrame, lines: list[int]):
        super().__init__()
        self.path, self.lines, self.cols = path, lines, {c: j + 1 for j, c in enumerate(df.columns)}

    def add(self, i: int, field: str, what: str) -> None:
        line = self.lines[i]
        self.append(Problem(f"row {line}, field {field}: {what}", file=self.path, line=line, col=self.cols.get(field)))

    def check(self) -> None:
        if self:
            raise SpecError(list(self))


def _read_table(path: str, columns, metrics: dict, ints: dict, optional_ints: dict = None):
    """A published table with its checks: the required ``columns``, a source on every row, a known
    ``metric``, integer fields within bounds (``ints``: field -> least value; ``optional_ints``: the
    same where the cell is not empty) and a positive finite ``measured``. Every problem names the file,
    the row's line and the field's column; all are reported at once (SpecError). Returns the frame and the
    rows' problems so far (a :class:`RowProblems`, checked: for a caller's further checks)."""
    df, lines = read_table(path, columns)
    problems = RowProblems(path, df, lines)
    for i, r in enumerate(df.to_dict("records")):
        if not str(r["source"]).strip():
            problems.add(i, "source", "every row needs a source (URL or citation)")
        if r["metric"] not in metrics:
            problems.add(i, "metric", f"expected one of {', '.join(metrics)}, got {r['metric']!r}")
        for f, least in list(ints.items()) + list((optional_ints or {}).items()):
            v = str(r[f]).strip() if f in r else ""
            if not v and f not in ints:
                continue
            try:
                ok = float(v) == int(float(v)) and int(float(v)) >= least
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                problems.add(i, f, f"expected a whole number >= {least}, got {v!r}")
        try:
            m = float(r["measured"])
            ok = math.isfinite(m) and m > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.add(i, "measured", f"expected a positive number, got {r['measured']!r}")
    problems.check()
    for f in list(ints) + [f for f in (optional_ints or {}) if f in df.columns]:
        df[f] = [int(float(v)) if str(v).strip() else None for v in df[f]]
    df["measured"] = df["measured"].astype(float)
    return df, problems


def load_e2e(path: str = E2E) -> pd.DataFrame:
    """The end-to-end table; SpecError (file, row, field) if a required column is missing, a row has no
    source, an unknown metric, a count below 1 or a measured value that is not a positive number."""
    return _read_table(path, E2E_COLUMNS, METRICS, {"tp": 1, "batch": 1, "input_len": 1, "output_len": 1})[0]


def load_serving(path: str = SERVING) -> pd.DataFrame:
    """The offline-serving table, with the same checks as :func:`load_e2e`; ``max_num_seqs`` and
    ``max_num_batched_tokens`` may be empty (the stack's default), as may ``scheduler`` (a
    ``llmsim serve --scheduler`` name: ``vllm`` for an engine that schedules whole prompts) and ``usage``
    (the engine's entry point whose default limits apply: ``offline``, vLLM's LLM class as
    ``benchmark_throughput.py`` runs it, or ``server``, a ``vllm bench serve`` run against ``vllm serve``;
    empty: offline, every request arriving at once)."""
    df, problems = _read_table(path, SERVING_COLUMNS, SERVING_METRICS,
                     {"tp": 1, "num_prompts": 1, "input_len": 1, "output_len": 1},
                     {"max_num_seqs": 1, "max_num_batched_tokens": 1})
    for c in ("max_num_seqs", "max_num_batched_tokens", "kv_dtype", "scheduler", "stack", "engine", "note", "usage"):
        if c not in df.columns:
            df[c] = None if c.startswith("max_") else ""
    for i, u in enumerate(df["usage"]):
        if str(u).strip() not in ("", "server", "offline"):
            problems.add(i, "usage", f"expected server, offline or empty, got {u!r}")
    problems.check()
    return df


def model_family(model: str) -> str:
    """The attention/FFN family a published row's model belongs to: ``MoE`` (routed experts), ``GQA``
    (fewer K/V heads than query heads) or ``MHA``; ``?`` when the model is not in the catalog."""
    from workloads.model import load_model

    try:
        spec = load_model(model)
    except (SpecError, OSError):
        return "?"
    if spec.num_experts:
        return "MoE"
    return "GQA" if spec.kv_heads < spec.heads else "MHA"


def _with_chip(hw, chips: dict | None, systems: dict | None = None):
    """``hw`` (a catalog name) with its chip replaced by ``chips[chip name]`` (e.g. a calibrated chip),
    or ``systems[hw]`` where given (a calibrated system)."""
    if systems and hw in systems:
        return systems[hw]
    if not chips:
        return hw
    obj = load_hardware(hw)
    chip = obj.chip if isinstance(obj, System) else obj
    new = chips.get(chip.name)
    if new is None:
        return hw
    return replace(obj, chip=new) if isinstance(obj, System) else new


def row_stack(r: dict, stack=None):
    """The stack a published row is priced under: ``stack`` where given, else the row's own ``stack`` column, else
    the default stack."""
    return stack if stack is not None else (str(r.get("stack") or "").strip() or DEFAULT_STACK)


def score_e2e(df: pd.DataFrame | None = None, *, chips: dict | None = None, systems: dict | None = None,
              options: CostOptions = DEFAULT_OPTIONS, stack=None) -> pd.DataFrame:
    """Predict every end-to-end row; adds ``predicted``, ``rel_error`` and ``reason`` (why a row failed).

    ``chips`` maps a chip name to a Chip to use instead, ``systems`` a system name to a System (to
    score calibrated files on the same rows). ``stack``: the serving-stack profile every row is
    predicted with; None: the row's own ``stack`` column where it names one (the engine that was
    measured has a profile), else the default stack. The column ``stack_used`` says which.
    """
    df = load_e2e() if df is None else df.copy()
    pred, reason, used = [], [], []
    for r in df.to_dict("records"):
        st = row_stack(r, stack)
        used.append(getattr(st, "name", st))
        try:
            p = predict(str(r["model"]), _with_chip(str(r["hardware"]), chips, systems), int(r["batch"]), int(r["input_len"]),
                        int(r["output_len"]), tp=int(r["tp"]), quant=str(r.get("quant") or "bf16"), options=options,
                        stack=st)
            pred.append(float(getattr(p, r["metric"])))
            reason.append("")
        except (SpecError, InfeasibleError, ValueError) as e:
            pred.append(math.nan)
            reason.append(f"{type(e).__name__}: {e}")
    return _scored(df, pred, reason, used, df["metric"] == "output_throughput_tok_s")


def _scored(df: pd.DataFrame, pred: list, reason: list, used: list, throughput) -> pd.DataFrame:
    """``df`` with the predictions, why a row could not be predicted, the stack used, ``rel_error`` and
    ``time_rel_error``: a throughput that is too high is a time that is too low, so the time-equivalent
    error keeps one sign convention (negative: the model is too fast). ``throughput``: which rows are
    throughputs (a boolean Series, or True for all)."""
    df["predicted"] = pred
    df["reason"] = reason
    df["stack_used"] = used
    m = df["measured"].astype(float)
    df["rel_error"] = (df["predicted"] - m) / m
    df["time_rel_error"] = np.where(throughput, m / df["predicted"] - 1.0, df["rel_error"])
    return df


def serving_case(r: dict, stack=None, options: CostOptions = DEFAULT_OPTIONS, seed: int = 0):
    """(scenario, ServingConfig) of one offline-serving row as ``llmsim serve --rate inf`` runs it:
    ``num_prompts`` requests of ``input_len``/``output_len`` tokens all at t=0 on one replica of ``tp`` chips,
    the row's ``max_num_seqs``/``max_num_batched_tokens``/``kv_dtype``/``scheduler``/``usage`` where given (else
    the stack's); ``stack``: as in :func:`score_e2e` (the row's own where None)."""
    from sim.config import ServingConfig
    from workloads.scenario import Scenario, arrival_process

    st = row_stack(r, stack)
    limits = {k: int(r[k]) for k in ("max_num_seqs", "max_num_batched_tokens")
              if r.get(k) is not None and not (isinstance(r[k], float) and math.isnan(r[k]))}
    kv = str(r.get("kv_dtype") or "").strip() or None
    sched = str(r.get("scheduler") or "").strip() or None
    usage = str(r.get("usage") or "").strip() or None
    sc = Scenario(arrival_process(math.inf), int(r["input_len"]), int(r["output_len"]),
                  num_requests=int(r["num_prompts"]))
    cfg = ServingConfig(tp=int(r["tp"]), quant=str(r.get("quant") or "bf16"), kv_dtype=kv, options=options,
                        stack=st, seed=seed, scheduler=sched, usage=usage, **limits)
    return sc, cfg


def score_serving(df: pd.DataFrame | None = None, *, stack=None, options: CostOptions = DEFAULT_OPTIONS,
                  seed: int = 0) -> pd.DataFrame:
    """Simulate every offline-serving row as ``llmsim serve --rate inf`` does (:func:`serving_case`). Adds
    ``predicted``, ``reason`` (why a row could not be predicted), ``stack_used``, ``rel_error`` and
    ``time_rel_error`` (every metric is a throughput: measured / predicted - 1, negative when the model is
    too fast)."""
    from sim.serving.simulate import simulate

    df = load_serving() if df is None else df.copy()
    pred, reason, used = [], [], []
    for r in df.to_dict("records"):
        st = row_stack(r, stack)
        used.append(getattr(st, "name", st))
        try:
            sc, cfg = serving_case(r, stack, options, seed)
            s = simulate(sc, str(r["hardware"]), str(r["model"]), cfg).summary
            if not s.get("requests_completed"):
                raise InfeasibleError(f"no request completed ({s.get('rejection_reasons')})")
            pred.append(float(s[r["metric"]]))
            reason.append("")
        except (SpecError, InfeasibleError, ValueError) as e:
            pred.append(math.nan)
            reason.append(f"{type(e).__name__}: {e}")
    return _scored(df, pred, reason, used, True)


def score_moe_kernels(path: str = MOE_KERNELS, stack=None) -> pd.DataFrame:
    """Published fused-MoE kernel times (``moe_kernels.csv``) against the cost model: one MoE layer's
    FUSED_MOE_OPS for ``tokens`` tokens on one chip of ``tp``, kernels replayed from a CUDA graph (as
    vLLM's benchmark_moe.py times them), priced with ``stack``'s kernel facts (None: each row's
    ``stack`` column, else the default stack). Adds ``predicted``, ``rel_error``, ``stack_used``."""
    from hwmodels.stack import load_stack
    from sim.cost import CostModel
    from workloads.graph import Batch, build_graph
    from workloads.parallel import Parallelism

    df, _ = csvtext.read_csv(path, "a published MoE kernel table", MOE_COLUMNS, rows="one row per published figure",
                             dtype={"source": str, "note": str, "stack": str}, keep_default_na=False)
    pred, used = [], []
    for r in df.to_dict("records"):
        st = load_stack(row_stack(r, stack))
        used.append(st.name)
        g = build_graph(str(r["model"]), Batch.decode(int(r["tokens"]), 1), str(r["quant"]),
                        Parallelism(tp=int(r["tp"])))
        cm = CostModel(load_hardware(str(r["hardware"])), st.cost_options(CostOptions(cuda_graphs=True)))
        pred.append(sum(cm.op_cost(o).time_s for o in g.ops if o.layer != "pre" and o.layer != "post"
                        and o.name in FUSED_MOE_OPS))
    df["predicted"] = pred
    df["stack_used"] = used
    df["rel_error"] = (df["predicted"] - df["measured_time_s"].astype(float)) / df["measured_time_s"].astype(float)
    return df


def score_attention_kernels(path: str = KERNELS, stack=None, options: CostOptions | None = None,
                            own_kernel: bool = False) -> pd.DataFrame:
    """The published attention rows of ``kernels.csv`` (op == attention: fused prefill kernels timed by
    others) priced as ``llmsim ops`` prices them, with ``stack``'s kernel facts (None: the default stack)
    and ``options`` (None: the stack's own; e.g. CostOptions(softmax="serial") to price one softmax
    schedule; decode rows, timed from CUDA graphs or as GPU time, without launch overhead).
    ``own_kernel``: a row whose ``kernel_profile`` names a kernel of attention_kernels.yaml is priced
    with that kernel's prefill facts (``kernels``) or decode facts (``decode_kernels``) instead of the
    stack's (the kernel that was timed: :func:`profile_options`, through ``predict_ops``); without it the
    column is ignored.
    Adds ``predicted``, ``bound`` (what bounds the priced kernel), ``rel_error``, ``measured_tflops`` (4 x B x H
    x Sq x Skv x D / time, halved when causal, as the sources count) and ``stack_used``."""
    from hwmodels.stack import load_stack
    from sim.ops import predict_ops

    df, _ = csvtext.read_csv(path, "a per-kernel CSV", ("op",), dtype={"source": str, "note": str, "kernel": str,
                             "kernel_profile": str, "fit": str}, keep_default_na=False)
    df = df[df["op"] == "attention"].reset_index(drop=True)
    st = load_stack(stack if stack is not None else DEFAULT_STACK)
    opts = options or CostOptions()
    rows = df if own_kernel else df.drop(columns=["kernel_profile"], errors="ignore")
    pred = pd.Series(np.nan, index=df.index)
    bound = pd.Series("", index=df.index, dtype=object)
    # decode rows were timed from CUDA graphs or as GPU time (their sources say so): no launch overhead
    dec = df["phase"].astype(str).str.strip().str.lower().eq("decode")
    for d, idx in df.groupby(dec).groups.items():
        o = replace(opts, cuda_graphs=True) if d else opts
        out = predict_ops(rows.loc[idx], options=o, stack=st)
        pred[idx] = out["time_s"].astype(float).to_numpy()
        bound[idx] = out["bound"].astype(str).to_numpy()
    m = df["measured_time_s"].astype(float)
    df["predicted"] = pred
    df["bound"] = bound
    df["rel_error"] = (df["predicted"] - m) / m
    work = 4.0 * df["batch"].astype(float) * df["heads"].astype(float) * df["seqlen_q"].astype(float) \
        * df["seqlen_kv"].astype(float) * df["head_dim"].astype(float)
    df["measured_tflops"] = work * np.where(df["causal"].astype(str).isin(["1", "True", "true"]), 0.5, 1.0) / m / 1e12
    df["stack_used"] = st.name
    return df


def kernel_comparison(hw: str | None = None, options: CostOptions = DEFAULT_OPTIONS, hardware: dict | None = None):
    """The published kernel rows scored like any measurement file (a Comparison), every row with the default
    stack's kernels (the catalog's prediction: ``kernel_profile`` is set aside here; section 4c/4d of the
    validation report price the rows that name their kernel with its facts, :func:`score_attention_kernels`)."""
    rows = load_measurements(KERNELS)
    rows = rows.drop(columns=["kernel_profile"], errors="ignore")
    return compare(rows, hw, options=options, hardware=hardware)


__all__ = ["ATTENTION_KERNELS", "E2E", "KERNELS", "METRICS", "MOE_KERNELS", "SERVING", "SERVING_METRICS",
           "DECODE_PROFILES", "PREFILL_PROFILES", "attention_kernel_profiles", "decode_kernel_profiles", "kernel_comparison",
           "load_e2e", "load_serving", "model_family", "profile_options",
           "row_stack", "score_attention_kernels", "score_e2e", "score_moe_kernels", "score_serving", "serving_case"]
