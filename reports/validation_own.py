"""Section 4f of the validation report (docs/validation.md): llmsim's own H100 SXM measurements
(sim/validation/data/h100-sxm, a development and calibration set), scored through the same comparison path as
sections 2-4 (GPU-side times: the rows are CUDA-graph replays), with the GPU probes' headline figures."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from hwmodels.format import fmt_bandwidth, fmt_compute, fmt_power, fmt_si, fmt_time
from reports.validation import pct
from sim.validation.compare import compare
from sim.validation.measure import DATA_DIR, builtin_measurements

KERNELS, ATTENTION = "h100-sxm-own", "h100-sxm-own-attention"
FOLDER = os.path.join(DATA_DIR, "h100-sxm")
M_BANDS = ((1, 16, "m 1-16"), (17, 512, "m 128-512"), (513, 2048, "m 1024-2048"), (2049, 1 << 30, "m 4096-8192"))


def _stats(g: pd.DataFrame) -> dict:
    e = g["rel_error"].to_numpy(float)
    return {"n": len(g), "ape": float(np.median(np.abs(e))), "bias": float(np.median(e)),
            "within_20": float(np.mean(np.abs(e) <= 0.2))}


def _groups(s: pd.DataFrame, attention: bool) -> list[dict]:
    """Per op and dtype (attention rows: per SDPA backend, phase and head_dim), then all."""
    out = []
    if attention:
        for (v, ph, d), g in s.groupby(["variant", "phase", "head_dim"], sort=True):
            out.append({"case": f"attention {v}, {ph}, d{int(d)}", **_stats(g)})
    else:
        for (op, dt), g in s.groupby(["op", "dtype"], sort=True):
            out.append({"case": f"{op} {dt}", **_stats(g)})
    out.append({"case": "all", **_stats(s)})
    return out


def _gemm_bands(s: pd.DataFrame) -> list[dict]:
    g = s[s["op"] == "gemm"]
    out = []
    for dt, gd in g.groupby("dtype", sort=True):
        r = {"dtype": dt}
        for lo, hi, name in M_BANDS:
            e = gd["rel_error"][(gd["m"] >= lo) & (gd["m"] <= hi)]
            r[name] = float(np.median(e)) if len(e) else None
        out.append(r)
    return out


def _probe_text(path: str) -> str:
    """The probes' headline figures, read from probes.json (what the chip file's fields are checked against)."""
    try:
        with open(path) as f:
            p = json.load(f)["probes"]
        bf16 = next(r for r in p["clock"]["runs"] if r["dtype"] == "bf16")
        mix = next(r for r in p["load"]["runs"] if r["name"].startswith("bf16 mix"))
        st = p["stream"]
        chase = {(r["footprint_bytes"], r["kernel"]): r["ns_per_load"] for r in p["chase"]["rows"] if "kernel" in r}
        la = p["launch"]
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return "The probes' file `sim/validation/data/h100-sxm/probes.json` could not be read: no probe figures."
    mib = 1 << 20
    bw = {k: fmt_bandwidth(st[k]["gbyte_per_s"] * 1e9) for k in ("read_sum", "write_fill", "copy", "gather_rows_8KiB")}
    return (f"GPU probes on the same card (probes.json): an 8192^3 bf16 GEMM ran "
            f"{fmt_compute(bf16['tflops_first_replay'] * 1e12)} for its first replays and "
            f"{fmt_compute(bf16['tflops_median_late'] * 1e12)} held ({fmt_si(bf16['sm_mhz_median_late'] * 1e6, 'Hz', 4)}, "
            f"{fmt_power(bf16['power_w_median_late'])}, power-capped), while a serving-like prefill/decode mix held "
            f"{fmt_si(mix['sm_mhz_median_late'] * 1e6, 'Hz', 4)} (the chip file keeps the burst rate: docs/cost-model.md, "
            f"Clocks under the power limit); 2 GiB streams: read {bw['read_sum']}, write {bw['write_fill']}, copy "
            f"{bw['copy']} (read + write), row gather {bw['gather_rows_8KiB']}; dependent loads: L2 "
            f"{fmt_time(chase[(8 * mib, 'chase_cg')] * 1e-9)} (8 MiB), {fmt_time(chase[(40 * mib, 'chase_cg')] * 1e-9)} "
            f"(40 MiB), HBM {fmt_time(chase[(4096 * mib, 'chase_cg')] * 1e-9)} past L1 and "
            f"{fmt_time(chase[(4096 * mib, 'chase_ca')] * 1e-9)} through it (4 GiB); an empty kernel "
            f"{fmt_time(la['cupy_graph_s_per_empty_kernel'])} back to back in a CUDA graph, "
            f"{fmt_time(la['cupy_eager_s_per_launch'])} per eager launch from Python.")


def own_gpu_section(body, facts: dict) -> None:
    """4f. The own H100 SXM set scored with the catalog file and the default stack; facts["own_h100"]. A
    development set, so none of it goes to the report's summary of held-out rows."""
    body.h(2, "4f. llmsim's own H100 SXM measurements (development set)")
    have = builtin_measurements()
    if KERNELS not in have:
        body.p("The own H100 SXM set (`sim/validation/data/h100-sxm/`) is not in this checkout: nothing to score.")
        return
    k = compare(KERNELS).scored
    a = compare(ATTENTION).scored if ATTENTION in have else None
    body.p("Measured by llmsim itself on one H100 80GB HBM3 (SXM, 700 W) on 2026-12-05, the first GPU lent to "
           "this project: `llmsim measure --device cuda --suite full` (cuBLAS GEMMs through torch 2.11 in five "
           "dtypes, SDPA's flash backend, copies, elementwise ops, norms) and the GPU probes "
           "(`python -m sim.validation.measure.probes`; SDPA with each backend forced at head_dim 64/128/256). "
           "Environment, commands and headline figures in `sim/validation/data/h100-sxm/README.md`. This is a "
           "**development and calibration set**, not an independent check: values fitted to it name it. Each row "
           "is priced on the catalog file `h100-sxm` with the default stack as GPU-side time (the rows are "
           "CUDA-graph replays, so no CPU launch), through the path of section 4. The SDPA rows ran "
           "FlashAttention-2, cuDNN or the memory-efficient kernel, not the FA3 the default stack prices on "
           "Hopper, so their errors measure that difference as much as the model.")
    cols = [("case", "op, dtype"), ("n", "rows"), ("ape", "median \\|err\\|"), ("bias", "bias"),
            ("within_20", "within 20 %")]
    fmt = {"ape": pct, "bias": lambda v: pct(v, True), "within_20": pct}
    rows = _groups(k, False)
    body.table(rows, cols, fmt)
    bands = _gemm_bands(k)
    body.p("GEMM bias (median signed error) by m, the token count (each m row spans six LLM (n, k) pairs): the "
           "rows of m >= 2048 ran long enough back to back to reach the power-capped clock, which the file does "
           "not price (docs/cost-model.md, h100-sxm).")
    body.table(bands, [("dtype", "dtype")] + [(name, name) for _, _, name in M_BANDS],
               {name: (lambda v: pct(v, True)) for _, _, name in M_BANDS})
    arows = []
    if a is not None:
        arows = _groups(a, True)
        body.p("SDPA with each backend forced (`attention.csv`; the memory-efficient kernel refuses grouped KV heads, "
               "so its rows ran with K and V repeated to every head):")
        body.table(arows, [("case", "backend, phase, head_dim")] + cols[1:], fmt)
    body.p(_probe_text(os.path.join(FOLDER, "probes.json")))
    facts["own_h100"] = {"kernels": rows, "gemm_bands": bands, "attention": arows}
