"""The HTML report of a sweep's result table (``llmsim report sweep``).

Status counts, the axes, the best points by a metric, Pareto fronts (default: the sweep command's
fronts whose columns the table has), the sensitivity of the metric to each axis and a heat map over
the two strongest axes (figures from ``reports.sweep_plots``), the sweep's recorded assumptions,
and the hashes of the spec, hardware, model and Parquet files.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pandas as pd

from hwmodels.errors import SpecError
from hwmodels.format import format_value, label
from hwmodels.loader import resolve
from reports.html import Report, command_line, model_files
from reports.style import style
from reports.sweep_plots import heatmap_figure, pareto_figure, sensitivity_figure
from sim.sweep import load_results, pareto_front, parse_objectives, sensitivity
from sim.sweep.pareto import DEFAULT_FRONTS

__all__ = ["metric_sense", "sweep_report"]


def metric_sense(metric: str) -> str:
    """'max' for metrics where more is better (throughputs, per-joule, goodput, utilizations), else 'min'."""
    more = ("tok_s" in metric or "per_joule" in metric or metric in ("goodput_rps", "slo_attainment", "mfu", "mbu")
            or metric.endswith("_rps"))
    return "max" if more else "min"


def _summary(rep: Report, table: pd.DataFrame, ok: pd.DataFrame, axes: list[str], metric, sense: str) -> None:
    rep.section("Summary")
    counts = table["status"].value_counts().to_dict() if "status" in table.columns else {"rows": len(table)}
    # the serving stack and the hardware's calibration state the points rest on (tables of older sweeps lack them)
    named = {c: ", ".join(sorted(map(str, table[c].dropna().unique()))) or "-"
             for c in ("stack", "calibration") if c in table.columns}
    rep.key_values({"points": len(table), **{f"status {k}": v for k, v in counts.items()}, "feasible": len(ok),
                    "metric": metric or "-", "metric sense": sense, **named}, "counts", formatted=False)
    if axes:
        rows = []
        for a in axes:
            v = table[a]
            num = pd.api.types.is_numeric_dtype(v)
            rows.append({"axis": a, "levels": int(v.nunique()), "min": v.min() if num else "",
                         "max": v.max() if num else "",
                         "values": ", ".join(format_value(a, x) for x in sorted(v.dropna().unique())[:8])
                         + (" ..." if v.nunique() > 8 else "")})
        axes_df = pd.DataFrame(rows)
        shown = axes_df.assign(axis=[label(a) for a in axes_df["axis"]],
                               min=[format_value(a, x) for a, x in zip(axes_df["axis"], axes_df["min"])],
                               max=[format_value(a, x) for a, x in zip(axes_df["axis"], axes_df["max"])])
        rep.table(shown, "axes", "The swept axes (axes.csv keeps their names and SI values).", formatted=False)
        rep.tables["axes"] = axes_df
    if "status" in table.columns and (table["status"] != "ok").any():
        bad = table[table["status"] != "ok"]
        why = bad["reason"].fillna(bad.get("error", pd.Series(index=bad.index, dtype=object))).fillna("?")
        rep.table(pd.DataFrame({"status": bad["status"], "reason": why}).value_counts().reset_index(name="points"),
                  "not-ok", "Points that could not run, by reason.", formatted=False)


def _fronts_and_sensitivity(rep: Report, table, ok, fronts, show, axes, metric, sense) -> None:
    if fronts and len(ok):
        rep.section("Pareto fronts", "Points no other point beats on both objectives (feasible points only).")
        for i, f in enumerate(fronts):
            x, y = list(f)[:2]
            fig = pareto_figure(table, f)
            rep.figure(fig, f"pareto-{i + 1}", f"{label(x)} ({f[x]}) against {label(y)} ({f[y]}).")
            ft = pareto_front(table, f)
            rep.table(ft[list(dict.fromkeys(show + [x, y]))], f"pareto-{i + 1}",
                      f"The front of {label(x)} ({f[x]}) and {label(y)} ({f[y]}).")
    if metric and len(ok) > 1 and axes:
        sens = sensitivity(table, metric, axes=axes, sense=sense)
        if len(sens):
            rep.section("Sensitivity", f"Which axis moves {label(metric)} most: the share of its variance each "
                                       "axis explains alone, and its elasticity (% change per % change of the axis).")
            rep.figure(sensitivity_figure(sens, metric), "sensitivity", f"Sensitivity of {label(metric)} to each axis.")
            shown = sens.assign(best_level=[format_value(a, v) for a, v in zip(sens["axis"], sens["best_level"])],
                                best_mean=[format_value(metric, v) for v in sens["best_mean"]])
            rep.table(shown, "sensitivity", "One row per axis, most influential first (sensitivity.csv keeps the raw "
                                            "values).")
            rep.tables["sensitivity"] = sens
            top = [a for a in sens["axis"] if table[a].nunique() <= 40][:2]
            if len(top) == 2:
                rep.figure(heatmap_figure(table, top[0], top[1], metric), "heatmap",
                           f"{label(metric)} over the two strongest axes ({label(top[0])} x {label(top[1])}), "
                           "mean over the others.")


def _files(src: Path, meta: dict, meta_path: Path | None, table: pd.DataFrame) -> list[tuple[str, str, str]]:
    files = []
    for role, key in (("sweep spec", "spec"), ("hardware", "hardware")):
        p = meta.get(key)
        if not p:
            continue
        # paths are as the sweep was given them (relative to where it ran); a file not found here
        # is listed with sha256 'missing'
        cand = [Path(p), src.parent / p]
        found = next((c for c in cand if c.is_file()), None)
        if found is None and role == "hardware":
            try:
                found = resolve(p)
            except SpecError:
                found = None
        files.append((role, Path(p).name, str(found or p)))
    if "model" in table.columns:
        for m in sorted(table["model"].dropna().unique()):
            try:
                files += model_files(m)
            except SpecError:
                pass
    parts = sorted(src.glob("*.parquet")) if src.is_dir() else [src]
    files += [("results", p.name, str(p)) for p in parts]
    if meta_path is not None and meta_path.is_file():
        files.append(("results", meta_path.name, str(meta_path)))
    return files


def sweep_report(results, *, metric: str | None = None, pareto: list[str] = (), top: int = 10,
                 title: str | None = None) -> Report:
    """The report of the sweep results folder (or Parquet file) ``results``.

    ``metric``: column for the best points, sensitivity and heat map (default usd_per_mtok_output
    when present); ``pareto``: fronts as 'A:max,B:min' (default: the standard fronts the table has);
    ``top``: best points to list. SpecError when ``metric`` is not a column."""
    src = Path(results)
    table = load_results(src)
    meta = {}
    meta_path = src / "_sweep.json" if src.is_dir() else None
    if meta_path is not None and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
    metric = metric or ("usd_per_mtok_output" if "usd_per_mtok_output" in table.columns else None)
    if metric is not None and metric not in table.columns:
        hint = difflib.get_close_matches(metric, list(table.columns), n=1)
        raise SpecError(f"--metric {metric}: not a column of the table" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
    sense = metric_sense(metric) if metric else "min"
    axes = list(meta.get("axes") or {}) or [c for c in table.columns if c.startswith(("hw.", "serving."))]
    axes = [a for a in axes if a in table.columns]
    fronts = [parse_objectives(t, table.columns) for t in pareto] or \
        [f for f in DEFAULT_FRONTS if all(c in table.columns and table[c].notna().any() for c in f)]
    ok = table
    if "status" in ok.columns:
        ok = ok[ok["status"] == "ok"]
    if "fits" in ok.columns:
        ok = ok[ok["fits"].fillna(True).astype(bool)]

    name = meta.get("name") or src.stem
    rep = Report(title or f"llmsim sweep: {name}",
                 f"{len(table):,} points, {len(ok):,} feasible; evaluator {meta.get('evaluator', '?')}; "
                 f"hardware {meta.get('hardware', ', '.join(map(str, table.get('hardware', pd.Series()).unique()[:4])))}")
    _summary(rep, table, ok, axes, metric, sense)
    show = [c for c in axes + ["model", "quant", "tp", "batch", "ttft_s", "tpot_s", "output_tok_s_per_chip",
                               "usd_per_hour", "usd_per_mtok_output", "joules_per_output_token", "chips"]
            if c in table.columns]
    if metric and len(ok):
        best = ok.sort_values(metric, ascending=sense == "min").head(top)
        rep.table(best[list(dict.fromkeys(show + [metric]))], "best",
                  f"The {len(best)} best points by {label(metric)} ({'lowest' if sense == 'min' else 'highest'}).")
    with style("light"):
        _fronts_and_sensitivity(rep, table, ok, fronts, show, axes, metric, sense)
    rep.section("All points")
    rep.table(table, "results", "Every point of the sweep (all rows and columns in results.csv).", max_rows=50,
              collapsed=len(table) > 50)
    if meta.get("derived"):
        rep.table(pd.DataFrame([{"column": k, "meaning": v} for k, v in meta["derived"].items()]), "derived-columns",
                  "What the derived columns mean (from the sweep).", formatted=False)
    inputs = {"report": "sweep", "results": str(src), "metric": metric or "-", "sense": sense,
              "pareto": "; ".join(pareto) or "(standard fronts)", "top": top}
    for k in ("name", "evaluator", "fingerprint", "units"):
        if k in meta:
            inputs[f"sweep {k}"] = meta[k]
    for i, a in enumerate(meta.get("cost_assumptions") or []):
        inputs[f"assumption {i + 1}"] = a
    rep.provenance(inputs, _files(src, meta, meta_path, table), command_line())
    return rep
