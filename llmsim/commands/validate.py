"""`llmsim validate MEASURED.csv`: score predictions against measured kernel times;
`llmsim validate-report`: regenerate docs/validation.md (tables and plots)."""

from __future__ import annotations

import sys

from llmsim.commands._common import add_set_option, print_json
from sim.cost import CostOptions


def register(sub) -> None:
    p = sub.add_parser(
        "validate", help="score predictions against measured kernel times (per op kind and dtype)",
        description="Predict every row of a measured per-kernel CSV and report, per hardware, op kind and dtype, "
                    "the median and mean absolute percentage error, the signed bias (median of "
                    "(predicted - measured) / measured) and the worst rows. Rows that cannot be scored are "
                    "rejected with their reason and counted.")
    p.add_argument("measured", metavar="MEASURED.csv", help="a measured per-kernel CSV or a built-in data set "
                                                             "(vidur-a100, vidur-h100, vidur-network, ...)")
    p.add_argument("--hw", metavar="NAME", help="price every row on this hardware instead of its hardware column "
                                                "(e.g. a calibrated file)")
    p.add_argument("--out", metavar="DIR", help="write scored.csv, rejected.csv, summary.csv/json and the plots "
                                                "(PNG and SVG) here")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--worst", type=int, default=10, help="how many worst rows to list")
    p.add_argument("--no-efficiency", action="store_true", help="ignore achievable-efficiency fields (peaks only)")
    p.add_argument("--no-svg", action="store_true", help="write the plots as PNG only")
    add_set_option(p)
    p.set_defaults(func=cmd_validate)

    r = sub.add_parser(
        "validate-report", help="regenerate the validation report (docs/validation.md and its plots)",
        description="Score the model against every shipped measurement set (this machine's CPU, Vidur's A100/H100 "
                    "kernels and collectives, published figures): datasheet-only, catalog and calibrated "
                    "(held-out shapes), and write the markdown report and its plots.")
    r.add_argument("--out", default="docs/validation", metavar="DIR", help="folder for the plots")
    r.add_argument("--report", metavar="FILE.md", help="the markdown report (default: DIR.md)")
    r.add_argument("--measure-cpu", action="store_true",
                   help="measure this machine's CPU now (quick suite) instead of using the committed file")
    r.add_argument("--cpu-file", metavar="FILE.csv", help="score this CPU measurement instead of the committed one")
    r.add_argument("--write-calibrated", metavar="DIR",
                   help="also write the calibrated hardware files here (e.g. hwmodels/catalog/calibrated)")
    r.add_argument("--quick", action="store_true", help="skip the slower data sets (for a smoke test)")
    r.add_argument("--error-model", metavar="FILE.json",
                   help="also write the prediction-interval error model here (make validate: "
                        "sim/validation/data/error_model.json)")
    r.set_defaults(func=cmd_report)


def cmd_validate(args) -> int:
    from reports.validation import md_table, pct
    from sim.validation.compare import compare, write_outputs

    if args.hw is not None:  # a bad --hw is one error here, not every row rejected for it
        from hwmodels.loader import load_hardware

        load_hardware(args.hw, args.overrides or None)
    cmp = compare(args.measured, args.hw, options=CostOptions(use_efficiency=not args.no_efficiency),
                  overrides=args.overrides or None)
    written = []
    if args.out:
        from pathlib import Path

        from reports.validation import error_size_plot, scatter_plot

        written += write_outputs(cmp, args.out, worst=max(args.worst, 20))
        fmts = ("png",) if args.no_svg else ("png", "svg")
        if len(cmp.scored):
            title = f"{args.measured}" + (f" on {args.hw}" if args.hw else "")
            written += scatter_plot(cmp.scored, Path(args.out) / "scatter", title, formats=fmts)
            written += error_size_plot(cmp.scored, Path(args.out) / "error_vs_size", title, formats=fmts)
    c = cmp.counts
    nothing = not len(cmp.scored)  # every row rejected (or none): nothing was validated, the file is unusable
    unusable = unscorable(args.measured, c["rows"], "in the JSON" if args.json else "above")
    if args.json:
        d = cmp.to_dict(args.worst)
        d["written"] = [str(p) for p in written]
        print_json(d)
        if nothing:
            print(unusable, file=sys.stderr)
        return 2 if nothing else 0
    print(f"{c['rows']} rows: {c['scored']} scored, {c['rejected']} rejected")
    for why, n in c["by_reason"].items():
        print(f"  rejected, {why}: {n}")
    ex = cmp.rejected.drop_duplicates("reason").head(5) if len(cmp.rejected) else []
    for r in (ex.to_dict("records") if len(ex) else []):
        print(f"    e.g. {r.get('op')} on {r.get('hardware')}: {r['reason']}")
    if nothing:
        print(unusable, file=sys.stderr)
        return 2
    print("\nerror = (predicted - measured) / measured; MAPE = |error|; bias = median error")
    cols = [("hardware", "hardware"), ("op", "op"), ("dtype", "dtype"), ("n", "rows"), ("median_ape", "median |err|"),
            ("mean_ape", "mean |err|"), ("p90_ape", "p90 |err|"), ("bias", "bias"), ("within_20", "within 20%")]
    fmt = {k: pct for k in ("median_ape", "mean_ape", "p90_ape", "within_20")} | {"bias": lambda v: pct(v, True)}
    print(md_table(cmp.summary, cols, fmt))
    print(f"\nworst {args.worst} rows:")
    for r in cmp.worst(args.worst).to_dict("records"):
        print(f"  {pct(r['rel_error'], True):>9}  {r['op']:<11} {r.get('shape_id', '')}  measured "
              f"{r['measured_time_s'] * 1e6:.4g} us, predicted {r['predicted_time_s'] * 1e6:.4g} us ({r['bound']})")
    if written:
        print(f"\nwrote {len(written)} files to {args.out}", file=sys.stderr)
    return 0


def cmd_report(args) -> int:
    from reports.validation_report import build_report

    paths = build_report(args.out, report=args.report, measure_cpu=args.measure_cpu,
                         write_calibrated=args.write_calibrated, quick=args.quick, cpu_file=args.cpu_file,
                         error_model=args.error_model, log=lambda m: print(m, file=sys.stderr))
    for p in paths:
        print(f"wrote {p}")
    return 0


def unscorable(measured, rows: int, where: str) -> str:
    """The error line of a measurement file none of whose rows could be scored (``validate`` and ``report
    validate`` exit 2 with it): ``where`` says where the rejection reasons are."""
    return (f"error: {measured}: no row could be scored ("
            + (f"every row was rejected, reasons {where}" if rows else "the file holds no rows")
            + "): nothing was validated")
