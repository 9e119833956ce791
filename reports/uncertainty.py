"""The prediction-interval section of the validation report: fit the error model, write it, show its
held-out coverage (tables and a reliability plot). Method: docs/uncertainty.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

STATE_NAMES = {"measured": "measured (calibrated file)", "published": "published",
               "class-default": "class-default (catalog file)", "none": "none (datasheet peaks)"}


def _pct(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x * 100:.1f}%"


def reliability_plot(kernel_cv: pd.DataFrame, e2e_cv: pd.DataFrame, stem, formats=("png",)) -> list[Path]:
    """Nominal level against held-out coverage, one line per calibration state, kernels and end to end."""
    from reports.validation import _plt, _save
    from sim.validation.errormodel import reliability

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2), sharey=True)
    for ax, cv, title in ((axes[0], kernel_cv, "kernel rows (held out by configuration)"),
                          (axes[1], e2e_cv, "end-to-end rows (leave one configuration out)")):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="ideal")
        ax.axhspan(0.7, 0.9, xmin=0.75, xmax=0.85, color="0.9")
        if not cv.empty:
            for st, g in reliability(cv).groupby("state", sort=False):
                ax.plot(g["level"], g["covered"], marker="o", ms=3, label=STATE_NAMES.get(st, st))
        ax.set_xlabel("nominal interval level")
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of measured values inside")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, stem, formats)


def section(cals: dict, chips_cal: dict, systems_cal: dict, out: Path, rel: str, error_model=None,
            log=print) -> tuple[str, list, dict]:
    """(markdown of the section, paths written, facts for the summary)."""
    from sim.validation.errormodel import (FALLBACK, MIN_ROWS, SIZE_EDGES, build_error_model, coverage_table,
                                           write_error_model)

    data, ev = build_error_model(cals, chips_cal, systems_cal, log=log)
    from sim.validation.serving_term import add_serving_term

    add_serving_term(data, ev, log)
    written = []
    if error_model:
        written.append(write_error_model(data, error_model))
    kt = coverage_table(ev["kernel_cv"])
    et = coverage_table(ev["e2e_cv"], by=("state",)) if not ev["e2e_cv"].empty else pd.DataFrame()
    written += reliability_plot(ev["kernel_cv"], ev["e2e_cv"], Path(out) / "interval-reliability")
    lines = ["## 6. Prediction intervals: held-out coverage", ""]
    w = data["unseen_chip_widening"]
    rows = ev["rows"]
    cat = rows[rows["pricing"] == "catalog"].groupby("chip")["state"].first()
    catalog_states = "; ".join(f"{c}: {s}" for c, s in cat.items())
    lines.append(
        f"Every prediction carries an interval from the error model `sim/validation/data/error_model.json` "
        f"(method: [uncertainty.md](uncertainty.md)), fitted here on {len(ev['rows']):,} kernel residuals "
        f"ln(measured / predicted) of the held-out rows above (the calibrations' rows priced three ways: datasheet peaks "
        f"without efficiencies = state none; the catalog file = its own calibration state ({catalog_states}); the "
        f"calibrated file = measured; and the published attention kernel rows of sections 4c and 4d priced with the "
        f"catalog file and the default stack; a state without rows of its own reads another's cells: "
        f"{', '.join(f'{a} -> {b}' for a, b in data.get('state_fallback', {}).items()) or 'none'}), per cell (state, hardware family, "
        f"op kind, bound, size) with at least {MIN_ROWS} rows, else the first of the fallbacks "
        f"{' > '.join(FALLBACK)} (a level naming the size tries the op's bucket, then the nearest buckets; the size "
        f"is log10 of the predicted time of one call, cut at {', '.join(f'{x:g}' for x in SIZE_EDGES)}). Coverage below is measured on rows **held out from fitting the error model**: "
        f"kernel rows in 5 folds split by configuration (the Vidur model a row was profiled for; the shape for "
        f"CPU and NCCL rows), end-to-end rows leaving one (model, hardware, tp) configuration out. Width is "
        f"(hi - lo) / predicted, and (hi - lo) / measured beside it (a biased prediction, e.g. an embedding gather "
        f"measured several times slower than predicted, has a wide range relative to its point even when the range "
        f"is narrow relative to the run). Target: an 80% interval covers 70-90% of the measured values.")
    lines.append("")
    lines.append("Kernel rows, 80% intervals:")
    lines.append("")
    lines.append("| state | op kind | rows | coverage | median width | median width of measured |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for r in kt.to_dict("records"):
        lines.append(f"| {r['state']} | {r['kind']} | {r['n']:,} | {_pct(r['coverage'])} | {_pct(r['median_width'])} "
                     f"| {_pct(r.get('median_width_of_measured'))} |")
    lines.append("")
    lines += _size_table(ev["kernel_cv"])
    if not et.empty:
        lines.append("Published end-to-end rows (TTFT, e2e latency, output throughput; `llmsim predict` intervals "
                     "with the step shrink and the engine term refitted without the held-out configuration), 80% "
                     "intervals:")
        lines.append("")
        lines.append("| state | rows | coverage | median width | median width of measured |")
        lines.append("|---|---:|---:|---:|---:|")
        for r in et.to_dict("records"):
            lines.append(f"| {r['state']} | {r['n']} | {_pct(r['coverage'])} | {_pct(r['median_width'])} | "
                         f"{_pct(r.get('median_width_of_measured'))} |")
        allc = ev["e2e_cv"][np.isclose(ev["e2e_cv"]["level"], 0.8)]
        lines.append(f"| all | {len(allc)} | {_pct(allc['covered'].mean())} | {_pct(allc['width'].median())} | "
                     f"{_pct(allc['width_of_measured'].median())} |")
        lines.append("")
        mt = coverage_table(ev["e2e_cv"], by=("metric",))
        lines.append("By metric (all states): " + "; ".join(
            f"{r['metric']}: {r['n']} rows, coverage {_pct(r['coverage'])}, median width {_pct(r['median_width'])}"
            for r in mt.to_dict("records")) + ".")
        lines.append("")
    eng = data["engine"]
    lines.append("End-to-end (engine) term, ln(measured / kernel-model median) in time terms: " + "; ".join(
        f"{s}: mean {eng[s]['mu']:+.3f}, sd {eng[s]['sd']:.3f} (predictive {eng[s]['sd_pred']:.3f}, {eng[s]['n']} rows)"
        for s in ("measured", "published", "class-default", "none") if s in eng) + ".")
    lines.append("")
    lines += _serving_lines(ev.get("serving_cv"), data.get("serving_engine") or {})
    sh = data.get("step_shrink", {})
    if sh:
        lines.append(f"Step shrink **{sh['factor']:.2f}**: a whole step's Monte Carlo keeps this share of each cell's "
                     f"spread about its median (per-op residuals carry shape-specific noise that partly averages out "
                     f"over a step's many ops); chosen on the end-to-end rows as {sh['how'].split(': ', 1)[-1]} "
                     f"(in-sample coverage by factor: " + ", ".join(f"{k}: {_pct(v)}" for k, v in
                                                                    sh.get("coverage", {}).items()) + "), and "
                     "re-chosen without the held-out configuration for the table above.")
        lines.append("")
    bk = w.get("by_kind") or {}
    lines.append(f"Chips outside the record ({', '.join(data['chips_in_record'])} are in it) get their cell quantiles "
                 f"widened about the median by **{w['factor']:.2f}** over all kinds"
                 + (" (per kind: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(bk.items())) + ")" if bk else "")
                 + f", measured: {w['how']}. Attention reads its own cells, fitted on the published attention kernel rows "
                 f"(sections 4c and 4d, less the rows a profile value was chosen on: "
                 f"{int((ev['rows']['source'] == 'published attention').sum())} rows, priced on the catalog files with the "
                 f"default stack, held out by source and phase in the coverage above); a state without them (datasheet "
                 f"peaks, calibrated files) reads the GEMM cells widened by GEMM's factor."
                 + _source_lines(data.get("unseen_source_shifts") or {}))
    lines.append("")
    lines.append(f"![Reliability of the intervals]({rel}/interval-reliability.png)")
    lines.append("")
    k80 = kt[kt["kind"] != "all"]
    facts = {"kernel": kt, "e2e": et, "widening": w["factor"],
             "kinds_in_band": int(((k80["coverage"] >= 0.7) & (k80["coverage"] <= 0.9)).sum()), "kinds": len(k80)}
    return "\n".join(lines) + "\n", written, facts


def _source_lines(ss: dict) -> str:
    """The unseen-source shifts, as a sentence (empty for a file without them)."""
    by = ss.get("by_kind") or {}
    if not by:
        return ""
    det = ss.get("details") or {}
    parts = []
    for kind, fams in sorted(by.items()):
        for fam, v in sorted(fams.items()):
            d = (det.get(kind) or {}).get(fam, {})
            parts.append(f"{kind} on {fam}: {len(v)} configurations ({d.get('rows', '?')} rows), shifts ln "
                         f"{min(v):+.2f} to {max(v):+.2f} (median {float(np.median(v)):+.2f})")
    return (" A kernel source not in the record (a user's own build, harness and card) sits apart from the record's "
            "sources, so these kinds read each cell as a draw from it plus the shift of a source left out of the "
            "fit: " + "; ".join(parts) + " (how: " + ss.get("how", "") + "). In the held-out coverage above the "
            "shifts are measured on each fold's training rows alone.")


def _serving_lines(cv, term: dict) -> list[str]:
    """Held-out coverage of ``serve``'s intervals on the offline-serving rows, with the static batches' engine
    term (before) and the serving term refitted without the row's configuration (after), and the term."""
    if cv is None or cv.empty:
        return []
    out = ["Published offline-serving rows (section 5c; `llmsim serve --rate inf` intervals: the simulation re-run "
           "at the ends of a static batch's Monte Carlo, sim/serving/intervals.py), 80% intervals, leaving one "
           "(model, hardware, tp) configuration out: **before** with the static batches' engine term, **after** "
           "with the serving engine term (sim/validation/serving_term.py) refitted without the held-out configuration:",
           "", "| engine term | state | rows | coverage | median width | median width of measured |",
           "|---|---|---:|---:|---:|---:|"]
    for (t, st), g in cv.groupby(["term", "state"], sort=False):
        out.append(f"| {t} | {st} | {len(g)} | {_pct(g['covered'].mean())} | {_pct(g['width'].median())} | "
                   f"{_pct(g['width_of_measured'].median())} |")
    for t, g in cv.groupby("term", sort=False):
        out.append(f"| {t} | all | {len(g)} | {_pct(g['covered'].mean())} | {_pct(g['width'].median())} | "
                   f"{_pct(g['width_of_measured'].median())} |")
    out.append("")
    out.append("Serving engine term, ln(measured / kernel-model median) in time terms (what `serve` and `plan "
               "--pessimistic` draw; the point predictions are unchanged): " + "; ".join(
                   f"{s}: mean {term[s]['mu']:+.3f}, sd {term[s]['sd']:.3f} (predictive {term[s]['sd_pred']:.3f}, "
                   f"{term[s]['n']} rows)" for s in ("measured", "published", "class-default", "none", "*") if s in term)
               + ". A positive mean says real engines ran slower than the simulator predicts: its intervals lie "
                 "mostly below the point throughput.")
    out.append("")
    return out


def _size_table(kernel_cv: pd.DataFrame) -> list[str]:
    """Coverage and median width per op kind and size bucket (80 % intervals, the catalog's class-default and
    the calibrated measured states)."""
    from sim.validation.errormodel import coverage_table

    if "size" not in kernel_cv.columns:
        return []
    t = coverage_table(kernel_cv[kernel_cv["state"].isin(("class-default", "measured"))], by=("kind", "size", "state"))
    t = t[t["kind"] != "all"]
    lines = ["By size bucket (log10 of the predicted time of one call, s), 80% intervals, coverage / median width:", "",
             "| op kind | size | rows | class-default | measured |", "|---|---|---:|---:|---:|"]
    for (kind, size), g in t.groupby(["kind", "size"], sort=True):
        by = {r["state"]: r for r in g.to_dict("records")}
        cell = [f"{_pct(by[s]['coverage'])} / {_pct(by[s]['median_width'])}" if s in by else "–"
                for s in ("class-default", "measured")]
        lines.append(f"| {kind} | {size} | {max(r['n'] for r in by.values()):,} | {cell[0]} | {cell[1]} |")
    return lines + [""]


__all__ = ["reliability_plot", "section"]
