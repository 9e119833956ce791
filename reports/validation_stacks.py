"""The validation report's end-to-end sections by serving stack (docs/stacks.md).

Every published end-to-end row (``sim/validation/data/published/e2e.csv``, static batches, section
5b) and every offline-serving row (``serving.csv``, ``llmsim serve --rate inf``, section 5c) is
predicted under each catalog stack profile. ``ideal`` is the kernel-only model (llmsim's numbers before stack
profiles: the "before" column); the default stack (``vllm``) is the "after". ``own`` predicts
each row with the profile of the engine that was measured where the catalog has one, else the
default. Errors are time-equivalent (a throughput that is too high is a time that is too low), so
negative means the model is too fast.
"""

from __future__ import annotations

import math

import numpy as np

E2E_TARGET = 0.15  # median |error| end to end (the accuracy issue's target)
BIAS_TARGET = 0.10  # no signed bias beyond this


def stack_errors(stacks=None):
    """(table of rows with one time-error column per stack, list of stack names, 'own' column name)."""
    from hwmodels.stack import DEFAULT_STACK, list_stacks
    from sim.validation.published import score_e2e

    names = list(stacks or (["ideal", DEFAULT_STACK] + [s for s in list_stacks() if s not in ("ideal", DEFAULT_STACK)]))
    base = score_e2e()  # each row under its own engine's profile (else the default)
    t = base[["model", "hardware", "tp", "batch", "input_len", "output_len", "metric", "measured", "engine",
              "stack_used"]].copy()
    t["own"] = base["time_rel_error"]
    for n in names:
        t[n] = score_e2e(stack=n)["time_rel_error"].to_numpy()
    t[kernel_only_decode()] = score_e2e(stack=_without_decode_kernel())["time_rel_error"].to_numpy()
    t["reason"] = base["reason"]
    _add_groups(t)
    return t, names


def serving_errors(stacks=None, rows: int | None = None):
    """(table of the offline-serving rows with one time-error column per stack and ``own``, stack names).
    Each row is simulated once per stack (``sim.validation.published.score_serving``); ``rows``: only the
    table's first rows (a smoke test of the wiring)."""
    from hwmodels.stack import DEFAULT_STACK, list_stacks
    from sim.validation.published import load_serving, score_serving

    names = list(stacks or (["ideal", DEFAULT_STACK] + [s for s in list_stacks() if s not in ("ideal", DEFAULT_STACK)]))
    df = load_serving() if rows is None else load_serving().head(rows)
    base = score_serving(df)
    t = base[["model", "hardware", "tp", "num_prompts", "input_len", "output_len", "metric", "measured", "predicted",
              "engine", "stack_used", "reason"]].copy()
    t["own"] = base["time_rel_error"]
    for n in names:
        t[n] = base["time_rel_error"].to_numpy() if n == DEFAULT_STACK and (base["stack_used"] == n).all() \
            else score_serving(df, stack=n)["time_rel_error"].to_numpy()
    _add_groups(t)
    return t, names


def _gpu(hw: str) -> str:
    """The chip a row's hardware name stands for (a system's chip), or the name where it is not in the catalog."""
    from hwmodels.chip import System
    from hwmodels.loader import load_hardware

    try:
        obj = load_hardware(hw)
    except (ValueError, OSError):
        return hw
    return (obj.chip if isinstance(obj, System) else obj).name


def _add_groups(t) -> None:
    """The keys the breakdowns group by: ``gpu`` (the chip) and ``family`` (MHA / GQA / MoE)."""
    from sim.validation.published import model_family

    t["gpu"] = [_gpu(str(h)) for h in t["hardware"]]
    t["family"] = [model_family(str(m)) for m in t["model"]]


def breakdown(t, cols, keys=("gpu", "family", "metric")) -> list:
    """:func:`summary` of ``cols`` within each value of each grouping key (rows: key, group, stack...)."""
    out = []
    for k in keys:
        for g, sub in t.groupby(k, sort=True):
            for r in summary(sub, cols):
                out.append({"by": k, "group": g, **r})
    return out


def unpredictable(t) -> list:
    """Rows that could not be predicted (a model or chip not in the catalog, a run that cannot fit), with why."""
    return [{"case": f"{r['model']} on {r['hardware']} tp{r['tp']}", "reason": str(r["reason"])[:120]}
            for r in t.to_dict("records") if str(r.get("reason") or "").strip()]


def kernel_only_decode() -> str:
    """The column of the default stack with the kernel-only decode attention (its
    ``kernels.decode_attention`` left out): the before of the decode-kernel model."""
    from hwmodels.stack import DEFAULT_STACK

    return f"{DEFAULT_STACK}, kernel-only decode"


def _without_decode_kernel():
    import dataclasses

    from hwmodels.stack import DEFAULT_STACK, DecodeKernel, load_stack

    return dataclasses.replace(load_stack(DEFAULT_STACK), decode_kernel=DecodeKernel())


def summary(t, cols) -> list:
    """One row per column: rows, median bias, median |error|, share within 15 %."""
    out = []
    for c in cols:
        e = t[c].dropna().to_numpy(float)
        out.append({"stack": c, "n": len(e), "bias": float(np.median(e)) if len(e) else math.nan,
                    "ape": float(np.median(np.abs(e))) if len(e) else math.nan,
                    "within": float(np.mean(np.abs(e) <= E2E_TARGET)) if len(e) else math.nan})
    return out


def stack_section(body, facts: dict, pct) -> None:
    """Append the section to ``body`` (a report document) and its figures to ``facts['stacks']``."""
    from hwmodels.stack import DEFAULT_STACK

    t, names = stack_errors()
    body.h(2, "5b. End to end by serving stack (before: `ideal`, after: the default stack)")
    body.p("The same published rows, each predicted under every serving-stack profile (docs/stacks.md). "
           "`ideal` is the kernel-only model, llmsim's numbers before stack profiles; `" + DEFAULT_STACK + "` is the "
           "default stack; `own` uses the profile of the engine that was measured where the catalog has one "
           "(vLLM rows: `vllm`) and the default elsewhere (lmdeploy TurboMind has no profile). Errors are "
           "time-equivalent (negative: the model is too fast). Nothing here is fitted to these rows: the profiles' "
           "values come from the engines' code, documentation and issue threads. `" + kernel_only_decode() + "` is "
           "the default stack with the kernel-only decode attention (no `kernels.decode_attention`: split to fill one "
           "CTA per core, no partial outputs, the active cores' share of the bandwidth): the before of the "
           "decode-kernel model (docs/cost-model.md, decode attention).")
    ko = kernel_only_decode()
    srows = summary(t, names + [ko, "own"])
    body.table(srows, [("stack", "stack"), ("n", "rows"), ("bias", "median bias"), ("ape", "median |err|"),
                       ("within", "share within 15 %")],
               {"bias": lambda v: pct(v, True), "ape": pct, "within": lambda v: f"{v * 100:.0f} %"})
    groups = []
    for eng, g in t.groupby("engine", sort=False):
        for r in summary(g, ["ideal", DEFAULT_STACK, "own"]):
            groups.append({"engine": eng, **r})
    body.p("By measured engine:")
    body.table(groups, [("engine", "engine"), ("stack", "stack"), ("n", "rows"), ("bias", "median bias"),
                        ("ape", "median |err|")], {"bias": lambda v: pct(v, True), "ape": pct})
    _breakdown_tables(body, t, ["ideal", DEFAULT_STACK, "own"], pct)
    rows = []
    for r in t.to_dict("records"):
        rows.append({"case": f"{r['model']} on {r['hardware']} tp{r['tp']}",
                     "shape": f"{r['batch']} x {r['input_len']}/{r['output_len']}", "metric": r["metric"],
                     "engine": r["engine"], **{n: r[n] for n in names + [ko]}, "own": r["own"]})
    body.table(rows, [("case", "model, hardware"), ("shape", "B x L/O"), ("metric", "metric"), ("engine", "engine")]
               + [(n, n) for n in names + [ko]] + [("own", "own")],
               {n: (lambda v: pct(v, True)) for n in names + [ko, "own"]})
    s = {r["stack"]: r for r in srows}
    after = s[DEFAULT_STACK]
    facts["stacks"] = {"summary": s, "default": DEFAULT_STACK, "unpredictable": len(unpredictable(t))}
    body.p(f"Targets with the default stack: end-to-end median |error| <= {E2E_TARGET * 100:.0f} %: "
           f"{pct(after['ape'])} ({'met' if after['ape'] <= E2E_TARGET else 'NOT met'}; it was {pct(s['ideal']['ape'])} "
           f"under `ideal`); signed bias within {BIAS_TARGET * 100:.0f} %: {pct(after['bias'], True)} "
           f"({'met' if abs(after['bias']) <= BIAS_TARGET else 'NOT met'}; it was {pct(s['ideal']['bias'], True)}).")


def _breakdown_tables(body, t, cols, pct) -> None:
    """The errors of ``cols`` by GPU, model family and metric, then the rows that could not be predicted."""
    fmt = {"bias": lambda v: pct(v, True), "ape": pct, "within": lambda v: f"{v * 100:.0f} %"}
    body.p("By GPU, model family (MHA: as many K/V heads as query heads; GQA: fewer; MoE: routed experts) and metric:")
    body.table(breakdown(t, cols), [("by", "by"), ("group", "group"), ("stack", "stack"), ("n", "rows"),
                                    ("bias", "median bias"), ("ape", "median |err|"), ("within", "share within 15 %")],
               fmt)
    bad = unpredictable(t)
    body.p(f"Rows that could not be predicted: {len(bad)}" + (" (counted here, left out of the medians):" if bad else "."))
    if bad:
        body.table(bad, [("case", "row"), ("reason", "reason")])


# --quick scores this many serving rows (each is a full serving simulation; the table has grown past 30)
QUICK_SERVING_ROWS = 3


def serving_section(body, facts: dict, pct, quick: bool = False) -> None:
    """5c: the offline-serving rows (``serving.csv``) under each stack, as ``llmsim serve --rate inf`` runs them
    (``quick``: the table's first QUICK_SERVING_ROWS rows under the default stack only)."""
    from hwmodels.stack import DEFAULT_STACK

    t, names = serving_errors([DEFAULT_STACK], QUICK_SERVING_ROWS) if quick else serving_errors()
    body.h(2, "5c. Offline serving throughput (published), predicted with `llmsim serve --rate inf`")
    if quick:
        body.p(f"(--quick: the first {QUICK_SERVING_ROWS} rows of the table only)")
    body.p("Request-level offline runs (`sim/validation/data/published/serving.csv`, never fitted to): N prompts of "
           "fixed input and output lengths sent at once (vLLM's `benchmark_throughput.py`, or `vllm bench serve` at an "
           "infinite request rate against a server: column usage), simulated by "
           "`sim.serving.simulate` with an infinite arrival rate on one replica of tp chips, with the run's published "
           "scheduler limits (max_num_seqs, max_num_batched_tokens) where given and the stack's defaults for the run's "
           "entry point and chip elsewhere. "
           "Errors are time-equivalent (measured / predicted - 1; negative: the model is too fast).")
    srows = summary(t, names + ["own"])
    fmt = {"bias": lambda v: pct(v, True), "ape": pct, "within": lambda v: f"{v * 100:.0f} %"}
    body.table(srows, [("stack", "stack"), ("n", "rows"), ("bias", "median bias"), ("ape", "median |err|"),
                       ("within", "share within 15 %")], fmt)
    _breakdown_tables(body, t, list(dict.fromkeys([*names[:2], "own"])), pct)
    rows = [{"case": f"{r['model']} on {r['hardware']} tp{r['tp']}",
             "shape": f"{r['num_prompts']} x {r['input_len']}/{r['output_len']}", "metric": r["metric"],
             "measured": f"{r['measured']:.4g}", **{n: r[n] for n in names}, "own": r["own"]}
            for r in t.to_dict("records")]
    body.table(rows, [("case", "model, hardware"), ("shape", "N x L/O"), ("metric", "metric"), ("measured", "measured")]
               + [(n, n) for n in names] + [("own", "own")], {n: (lambda v: pct(v, True)) for n in names + ["own"]})
    facts["serving"] = {"summary": {r["stack"]: r for r in srows}, "default": DEFAULT_STACK,
                        "unpredictable": len(unpredictable(t))}
