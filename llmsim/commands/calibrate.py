"""`llmsim calibrate MEASURED.csv --hw NAME --out CALIBRATED.yaml`: fit efficiency fields to measurements."""

from __future__ import annotations

import sys

from hwmodels.chip import System
from hwmodels.errors import Problem, SpecError
from hwmodels.loader import load_chip, load_hardware
from llmsim.commands._common import print_json


def register(sub) -> None:
    from llmsim.commands._common import HelpFormatter

    p = sub.add_parser(
        "calibrate", help="fit a hardware file's achievable-efficiency fields to measured kernel times",
        description="Fit the matrix-unit efficiency, the main-memory efficiency table (by transfer size), the "
                    "launch overhead and, on a system, the innermost tier's efficiency and latency to measured "
                    "kernel times (fit in log space). Rows are split by shape: one fold is held out and its "
                    "error reported next to the training error. Writes a plain hardware file of the same schema.",
        formatter_class=HelpFormatter)
    p.add_argument("measured", metavar="MEASURED.csv", help="a measured per-kernel CSV or a built-in data set "
                                                             "(vidur-a100, vidur-h100, vidur-network, ...)")
    p.add_argument("--hw", required=True, metavar="NAME", help="chip or system to calibrate (catalog name or YAML)")
    p.add_argument("--out", metavar="CALIBRATED.yaml", help="write the calibrated hardware file here")
    p.add_argument("--name", help="name of the calibrated hardware (default and must equal: the stem of --out)")
    p.add_argument("--fit", help="comma-separated fields to fit: matrix, memory, launch, tier, tier_latency "
                                 "(default: every field the rows constrain)")
    p.add_argument("--ops", help="comma-separated op kinds to fit to (default: all; every kind is scored)")
    p.add_argument("--include-approx", action="store_true",
                   help="also fit to rows whose 'mapping' column says the op only approximates what was timed")
    p.add_argument("--all-rows", action="store_true", help="treat every row as measured on --hw")
    p.add_argument("--folds", type=int, default=5, help="folds of the by-shape split")
    p.add_argument("--holdout", type=int, default=0, help="the held-out fold")
    p.add_argument("--loss", choices=("mean", "median"), default="mean", help="mean or median |ln(pred/meas)|")
    p.add_argument("--max-shapes", type=int, default=200, help="training shapes per op kind used by the fit")
    p.add_argument("--chip", metavar="REF", help="system only: the chip to fit the tiers with and to reference in the "
                                                 "written file (e.g. a calibrated chip file beside --out)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on standard error")
    p.set_defaults(func=cmd_calibrate)


def _split(s, flag: str):
    """The comma-separated names of --fit / --ops (None: the flag left out); given but naming nothing is an error."""
    if s is None:
        return None
    names = tuple(x.strip() for x in s.split(",") if x.strip())
    if not names:
        raise SpecError([Problem(f"no names in {s!r}; give comma-separated names or leave the flag out", path=flag)])
    return names


def cmd_calibrate(args) -> int:
    from reports.validation import md_table, pct
    from sim.validation.calibrate import calibrate
    from sim.validation.calibrated_file import write_calibrated

    if args.folds < 2 or args.max_shapes < 1:
        raise SpecError("--folds must be at least 2 and --max-shapes at least 1")
    log = None if args.quiet or args.json else (lambda m: print(m, file=sys.stderr))
    hw = args.hw
    if args.chip:
        # a system's tiers are fitted with the (calibrated) chip it will reference
        from dataclasses import replace
        from pathlib import Path

        system = load_hardware(args.hw)
        if not isinstance(system, System):
            raise SpecError(f"--chip applies to a system; {args.hw} is a chip")
        ref = Path(args.chip)
        if not ref.exists() and args.out:
            ref = Path(args.out).parent / args.chip
        system = replace(system, chip=load_chip(ref if ref.exists() else args.chip))
        hw = system
    cal = calibrate(args.measured, hw, name=args.hw, fit=_split(args.fit, "--fit"), fit_ops=_split(args.ops, "--ops"),
                    exact_only=not args.include_approx, folds=args.folds, holdout=args.holdout, loss=args.loss,
                    max_shapes=args.max_shapes, all_rows=args.all_rows, log=log)
    path = write_calibrated(cal, args.out, name=args.name, chip_ref=args.chip) if args.out else None
    if args.json:
        d = cal.to_dict()
        d["written"] = str(path) if path else None
        print_json(d)
        return 0
    c = cal.counts
    print(f"{cal.name}: {c['rows']} rows, {c['rejected']} rejected"
          + (f" ({', '.join(f'{k}: {v}' for k, v in c['by_reason'].items())})" if c["rejected"] else "")
          + f"; split by shape: {c['train_shapes']} training shapes ({c['fit_shapes']} fitted), "
            f"{c['test_shapes']} held-out shapes ({c['test_rows']} rows)")
    print("fitted: " + ", ".join(f"{k} = {_fmt(k, v)}" for k, v in cal.knobs.as_dict().items()))
    print("was:    " + ", ".join(f"{k} = {_fmt(k, v)}" for k, v in cal.initial.as_dict().items()
                                  if k in cal.knobs.as_dict()))
    print()
    print("median |error| on HELD-OUT shapes (bias = median signed error); training error is the fit's residual:")
    print(md_table(cal.table(), [("op", "op"), ("n_test", "held-out rows"), ("peak_median_ape", "peaks only"),
                                 ("catalog_median_ape", "catalog file"), ("calibrated_median_ape", "calibrated"),
                                 ("calibrated_bias", "calibrated bias"), ("train_median_ape", "training")],
                   {k: pct for k in ("peak_median_ape", "catalog_median_ape", "calibrated_median_ape",
                                     "train_median_ape")} | {"calibrated_bias": lambda v: pct(v, True)}))
    for n in cal.notes:
        print(f"note: {n}")
    if path:
        print(f"\nwrote {path} (`llmsim check {path}` passes)")
    return 0


def _fmt(k, v):
    if v is None:
        return "-"
    from hwmodels.format import fmt_bytes, fmt_time

    if k.endswith("_s"):
        return fmt_time(v)
    if isinstance(v, list):
        return "[" + ", ".join(f"{fmt_bytes(s)}: {f:.3f}" for s, f in v) + "]"
    return f"{v:.3f}"
