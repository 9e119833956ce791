"""`llmsim ops QUERY.csv [--out PRED.csv]`: bulk per-kernel predictions."""

from __future__ import annotations

import sys

from llmsim.commands._common import add_set_option, module_doc
from sim.cost import CostOptions


def register(sub) -> None:
    p = sub.add_parser("ops", help="bulk per-kernel predictions from a CSV (one row per kernel)",
                       description=module_doc("sim.ops"), formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("query", metavar="QUERY.csv",
                   help="one row per kernel: hardware, op, dtype and its shape columns (e.g. examples/kernels.csv)")
    p.add_argument("--out", metavar="PRED.csv", help="write predictions here (default: standard output)")
    p.add_argument("--no-efficiency", action="store_true", help="ignore achievable-efficiency fields")
    p.add_argument("--no-tiling", action="store_true", help="plain roofline for GEMMs")
    add_set_option(p)
    from llmsim.commands.predict import add_stack_option

    add_stack_option(p)
    p.set_defaults(func=cmd_ops)


def cmd_ops(args) -> int:
    from sim.ops import predict_ops, read_ops_csv

    df = read_ops_csv(args.query)
    out = predict_ops(df, overrides=args.overrides,
                      options=CostOptions(use_efficiency=not args.no_efficiency, tiling=not args.no_tiling),
                      stack=args.stack)
    bad = int((out["error"] != "").sum())
    if args.out:
        out.to_csv(args.out, index=False)
        print(f"wrote {len(out)} predictions to {args.out}" + (f" ({bad} rows with errors)" if bad else ""),
              file=sys.stderr)
    else:
        out.to_csv(sys.stdout, index=False)
        if bad:
            print(f"{bad} of {len(out)} rows have errors (see the error column)", file=sys.stderr)
    return 0
