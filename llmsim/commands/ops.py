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
    p.add_argument("--interval-level", type=float, default=0.8, metavar="P",
                   help="level of the time_s_lo/time_s_hi prediction interval, 0 < P < 1 (default 0.8)")
    add_set_option(p)
    from llmsim.commands.predict import add_stack_option

    add_stack_option(p)
    p.set_defaults(func=cmd_ops)


def cmd_ops(args) -> int:
    from sim.ops import predict_ops, read_ops_csv

    from sim.uncertainty import check_level

    level = check_level(args.interval_level)
    df = read_ops_csv(args.query)
    out = predict_ops(df, overrides=args.overrides,
                      options=CostOptions(use_efficiency=not args.no_efficiency, tiling=not args.no_tiling),
                      stack=args.stack)
    objs = add_intervals(out, level, args.overrides, not args.no_efficiency)
    from hwmodels.stack import load_stack

    # the stack whose kernel facts priced the rows, and what each row's efficiency figures rest on (columns added last)
    out["stack"] = load_stack(args.stack).name
    out["calibration"] = [getattr(h, "calibration", "") or "" for h in objs]
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


def add_intervals(out, level: float, overrides, use_efficiency: bool) -> list:
    """time_s_lo / time_s_hi columns: each row's time times its error-model cell's interval
    (sim.uncertainty.op_intervals; NaN where the row has no time). Returns each row's hardware (None: not loaded)."""
    from hwmodels.errors import SpecError
    from hwmodels.loader import load_hardware
    import numpy as np

    from sim.uncertainty import cell_kind, op_intervals, row_kind

    hw: dict = {}
    objs = []
    for name in out["hardware"].astype(str).str.strip():
        if name not in hw:
            try:
                hw[name] = load_hardware(name, overrides)
            except SpecError:
                hw[name] = None
        objs.append(hw[name])
    names = out["name"].astype(str).tolist() if "name" in out.columns else [""] * len(out)
    # each row's cell kind: its FLOPs per byte (achieved FLOP/s over achieved bytes/s) and its collective operation
    with np.errstate(divide="ignore", invalid="ignore"):
        fpb = out["achieved_tflops"].to_numpy(float) * 1e12 / out["achieved_bytes_per_s"].to_numpy(float)
    kinds = [cell_kind(row_kind(o, n), f, 1.0, o.strip().lower()) for o, n, f in zip(out["op"].astype(str), names, fpb)]
    lo, hi = op_intervals(kinds, out["bound"].astype(str).tolist(), out["time_s"].to_numpy(float).tolist(), objs,
                          level, use_efficiency=use_efficiency)
    out["time_s_lo"] = lo
    out["time_s_hi"] = hi
    return objs
