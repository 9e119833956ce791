"""The HTML report of measured kernel times against the cost model (``llmsim report validate``).

Predicted against measured (with error bands), error against kernel size, error statistics per op
and per (hardware, op, dtype) group, the worst rows, the rejected rows by reason, and the inputs
with the hashes of the measured, hardware and model files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hwmodels.errors import SpecError
from hwmodels.loader import load_hardware
from reports.html import Report, command_line, hardware_files
from reports.plots import plot_predicted_vs_measured
from reports.style import new_figure, style
from reports.validation import error_size_panel
from sim.validation.compare import error_stats
from sim.validation.measure import BUILTIN_GROUPS, builtin_measurements

__all__ = ["validate_report"]


def _figures(rep: Report, scored: pd.DataFrame) -> None:
    with style("light"):
        fig, ax = new_figure(figsize=(7.5, 6))
        plot_predicted_vs_measured(scored, ax=ax)
        rep.figure(fig, "predicted-vs-measured", "Predicted against measured kernel time, one colour per op; "
                                                 "the shaded band is +-20 %.")
        units = [u for u in ("FLOP", "B") if (scored.get("size_unit") == u).any()]
        if units:
            fig, axes = new_figure(1, len(units), figsize=(5.5 * len(units), 4.2))
            for ax, u in zip(np.atleast_1d(axes), units):
                error_size_panel(ax, scored, u, "FLOP-sized ops" if u == "FLOP" else "byte-sized ops")
            rep.figure(fig, "error-vs-size", "Signed relative error against the work of each kernel (FLOPs for "
                                             "GEMM and attention, bytes for the rest); the band is +-20 %.")


def _files(src: str, scored: pd.DataFrame, hw: str | None) -> list[tuple[str, str, str]]:
    """The measured files (a built-in group stands for several) and the hardware files scored on."""
    files = []
    builtin = builtin_measurements()
    for name in BUILTIN_GROUPS.get(str(src), [str(src)]):
        path = name if Path(name).is_file() else builtin.get(name)
        if path:
            files.append(("measurements", name, str(path)))
    names = [hw] if hw else sorted({str(h) for h in scored.get("hardware", [])})
    for n in names:
        try:
            files += hardware_files(load_hardware(n))
        except SpecError:
            continue
    return files


def validate_report(cmp, src: str, *, hw: str | None = None, inputs: dict | None = None,
                    title: str | None = None) -> Report:
    """The report of a comparison ``cmp`` (``sim.validation.compare.compare``) of the measured file
    or built-in data set ``src``, scored on ``hw`` (None: each row's hardware column)."""
    rep = Report(title or f"llmsim validation: {Path(str(src)).name}",
                 f"{cmp.counts['scored']} of {cmp.counts['rows']} measured rows scored against the cost model")
    st = error_stats(cmp.scored["predicted_time_s"], cmp.scored["measured_time_s"]) if len(cmp.scored) else {}
    rep.section("Summary", "rel_error = (predicted - measured) / measured; APE = |rel_error|.")
    rep.key_values({"rows": cmp.counts["rows"], "scored": cmp.counts["scored"], "rejected": cmp.counts["rejected"],
                    **{k: v for k, v in st.items() if k != "n"}}, "overall", "Error statistics over all scored rows.")
    rep.table(cmp.overall(("op",)), "by-op", "Error statistics per op.")
    rep.table(cmp.summary, "by-group", "Error statistics per hardware, op and dtype.")
    if len(cmp.scored):
        _figures(rep, cmp.scored)
    rep.section("Worst rows")
    rep.table(cmp.worst(20), "worst", "The 20 rows with the largest absolute relative error.")
    if len(cmp.rejected):
        reasons = pd.DataFrame([{"reason": k, "rows": v} for k, v in cmp.counts["by_reason"].items()])
        rep.table(reasons, "rejected-reasons", "Rows that could not be scored, by reason.")
    rep.provenance(inputs, _files(src, cmp.scored, hw), command_line())
    return rep
