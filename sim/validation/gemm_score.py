"""Score only the GEMM rows: Vidur's GEMMs (catalog files) and OpenXLA's held-out matmul table, in seconds
rather than the whole validation report's minutes, for work on the GEMM model (docs/cost-model.md, GEMMs).
A third, NOT held-out set, ``data/published/torch_matmul.csv``, holds public torch.matmul sweeps (square n^3 GEMMs
in TF32, FP16 and BF16 on the H100 SXM, H100 PCIe and H20; BF16 on the B200): a development set for GEMMs outside
the BF16 sweet spot that anyone may look at while changing the GEMM model (:func:`torch_rows`, :func:`torch_summary`;
the sources are in the data README, "torch.matmul sweeps").
The rows, the split (by shape, :func:`sim.validation.calibrate.split_by_shape`) and the pricing
(:func:`sim.validation.compare.compare`: Vidur's GPU time; :func:`sim.validation.published_xla.score_xla_gemms`)
are those of ``llmsim validate-report``, so the held-out figures here are its catalog-file GEMM figures.

    python -m sim.validation.gemm_score [--split held-out|train|all] [--chip a100 --chip h100] [--no-xla] [--no-torch]
    python -m sim.validation.gemm_score --derive a100      # the gemm_fixed_time derivation (training folds)
    python -m sim.validation.gemm_score --chip h100 --no-xla --hw my-h100.yaml   # a chip file in the catalog's place

:func:`derive_gemm_fixed_time` reproduces the catalog's ``gemm_fixed_time`` of a100-sxm and h100-sxm from
Vidur's training folds only (never the held-out fold, never the XLA table).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

import numpy as np
import pandas as pd

from hwmodels.loader import load_hardware
from sim.validation.calibrate import split_by_shape
from sim.validation.compare import compare, error_stats
from sim.validation.measure import load_measurements
from sim.validation.vidur import GPU_HARDWARE, KINETO_TRUNCATION_S, hw_file  # noqa: F401 (re-exported)

__all__ = ["gemm_rows", "score", "summary", "xla_summary", "torch_rows", "torch_summary", "derive_gemm_fixed_time",
           "KINETO_TRUNCATION_S", "TORCH_CSV"]

SPLITS = ("held-out", "train", "all")
M_BANDS = [0, 16, 64, 256, 1024, 4096, 1e12]
GFLOP_BANDS = [0, 1.1, 8.6, 69, 1e12]  # the XLA table's size bands (docs/validation.md, section 4e)
TORCH_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "published", "torch_matmul.csv")


def gemm_rows(chip: str, folds: int = 5, holdout: int = 0, limit: int | None = None) -> pd.DataFrame:
    """Vidur's GEMM rows of ``chip`` ('a100', 'h100') with ``held_out`` (the fold the validation report
    scores) marked; ``limit``: the first rows of the data set only (tests)."""
    df = load_measurements(f"vidur-{chip}")
    if limit is not None:
        df = df.head(limit)
    _, test = split_by_shape(df, folds, holdout)
    df = df.assign(held_out=test)
    return df[df["op"] == "gemm"].reset_index(drop=True)


def score(rows: pd.DataFrame, hardware: dict | None = None) -> pd.DataFrame:
    """The scored rows (``compare``'s columns), priced on the hardware each row names (the catalog file, or
    ``hardware``'s chip of that name)."""
    scored = compare(rows, hardware=hardware).scored
    if len(scored) != len(rows):
        raise ValueError(f"{len(rows) - len(scored)} of {len(rows)} GEMM rows were rejected")
    return scored


def _split(scored: pd.DataFrame, split: str) -> pd.DataFrame:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    return scored if split == "all" else scored[scored["held_out"] == (split == "held-out")]


def summary(scored: pd.DataFrame, split: str = "held-out") -> pd.DataFrame:
    """Median |error| and bias of all ``split`` rows, then by m (tokens) as the report's table bands them."""
    s = _split(scored, split)
    out = []
    bands = pd.cut(s["m"].astype(float), M_BANDS)
    for key, g in [("all", s)] + [(f"m {b.left:g}-{b.right:g}", g) for b, g in s.groupby(bands, observed=True)]:
        st = error_stats(g["predicted_time_s"], g["measured_time_s"])
        out.append({"hardware": s["hardware"].iloc[0] if len(s) else "", "key": key, "rows": st["n"],
                    "median_ape": st["median_ape"], "bias": st["bias"]})
    return pd.DataFrame(out)


def xla_summary(scored: pd.DataFrame) -> pd.DataFrame:
    """Per GPU and dtype of the scored XLA table: median |error|, bias, and the bias per size band (GFLOP)."""
    gf = 2.0 * scored["m"] * scored["n"] * scored["k"] * scored["batch"] / 1e9
    bands = pd.cut(gf, GFLOP_BANDS, right=False)
    out = []
    for (hw, dt), g in scored.groupby(["hardware", "dtype"], sort=True):
        st = error_stats(g["predicted_time_s"], g["measured_time_s"])
        row = {"hardware": hw, "dtype": dt, "rows": st["n"], "median_ape": st["median_ape"], "bias": st["bias"]}
        for b, gg in g.groupby(bands.loc[g.index], observed=True):
            row[f"bias {b.left:g}-{b.right:g} GFLOP"] = float(np.median(gg["rel_error"]))
        out.append(row)
    return pd.DataFrame(out)


def torch_rows(path: str = TORCH_CSV) -> pd.DataFrame:
    """The public torch.matmul sweep rows (a development set, not held out; data README, "torch.matmul sweeps"),
    read with the whole-file checks of any CSV (``csvtext.read_csv``)."""
    from hwmodels import csvtext

    return csvtext.read_csv(path, "a per-kernel CSV")[0]


def torch_summary(scored: pd.DataFrame) -> pd.DataFrame:
    """Per chip and dtype of the scored torch.matmul sweeps: median |error| and bias over the rows of at least
    2048^3 (where a sweep's host loop and launch gaps are far below a kernel), then the signed error per size."""
    out = []
    for (hw, dt), g in scored.groupby(["hardware", "dtype"], sort=False):
        big = g[g["m"] >= 2048]
        st = error_stats(big["predicted_time_s"], big["measured_time_s"])
        row = {"hardware": hw, "dtype": dt, "rows": st["n"], "median_ape": st["median_ape"], "bias": st["bias"]}
        row.update({f"n={int(r.m)}": float(r.rel_error) for r in g.itertuples()})
        out.append(row)
    return pd.DataFrame(out)


def derive_gemm_fixed_time(chip: str, rows: pd.DataFrame | None = None, share: float = 0.01, hw=None) -> dict:
    """The matrix unit's ``gemm_fixed_time`` as the catalog derives it (docs/cost-model.md, GEMM fixed time),
    on the TRAINING folds only: the ``share`` smallest of the training GEMMs by FLOPs, median of the measured
    time (Vidur's truncated Kineto time + 0.5 us, as the converter writes it: :func:`sim.validation.vidur.
    kineto_unbiased_s`) minus the model's time for those rows without a GEMM fixed time. ``hw``: the chip to
    derive it on (default: the catalog file). Returns {'rows', 'max_gflop', 'gemm_fixed_time_s'}."""
    rows = gemm_rows(chip) if rows is None else rows
    train = rows[~rows["held_out"]]
    flops = 2.0 * train["m"].astype(float) * train["n"].astype(float) * train["k"].astype(float)
    cut = float(np.quantile(flops, share))
    small = train[flops <= cut]
    name = GPU_HARDWARE.get(chip, chip)
    hw = hw or load_hardware(name)
    unit = hw.matrix_unit()
    plain = replace(hw, compute=tuple(replace(u, gemm_fixed_time_s=0.0) if u is unit else u for u in hw.compute))
    s = score(small, hardware={name: plain})
    res = s["measured_time_s"] - s["predicted_time_s"]
    return {"rows": len(s), "max_gflop": cut / 1e9, "gemm_fixed_time_s": float(np.median(res))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.validation.gemm_score", description=__doc__.split("\n")[0])
    chips = [k for k in GPU_HARDWARE if k != "a40"]
    ap.add_argument("--chip", action="append", choices=chips)
    ap.add_argument("--split", choices=SPLITS, default="held-out")
    ap.add_argument("--no-xla", action="store_true", help="leave out OpenXLA's table")
    ap.add_argument("--no-torch", action="store_true", help="leave out the torch.matmul sweeps (development set)")
    ap.add_argument("--derive", choices=chips, help="print the gemm_fixed_time derivation of this chip and stop")
    ap.add_argument("--hw", metavar="FILE", help="price the Vidur rows of the one chip named (--chip or --derive) "
                    "on this chip file instead of the catalog's")
    a = ap.parse_args(argv)
    hw = hw_file(ap, a.hw, [a.derive] if a.derive else (a.chip or chips))
    if isinstance(hw, int):
        return hw
    if a.derive:
        d = derive_gemm_fixed_time(a.derive, hw=hw)
        print(f"{GPU_HARDWARE[a.derive]}: gemm_fixed_time {d['gemm_fixed_time_s'] * 1e6:.2f} us from {d['rows']} "
              f"training GEMMs of at most {d['max_gflop']:.2f} GFLOP")
        return 0
    for chip in a.chip or chips:
        for r in summary(score(gemm_rows(chip), None if hw is None else {GPU_HARDWARE[chip]: hw}), a.split).itertuples():
            print(f"vidur {r.hardware:9s} {a.split:8s} {r.key:12s} {r.rows:6d} rows  |err| {100 * r.median_ape:5.1f}%"
                  f"  bias {100 * r.bias:+6.1f}%")
    if not a.no_torch:
        from sim.cost import CostOptions

        for r in torch_summary(compare(torch_rows(), options=CostOptions(cuda_graphs=True)).scored).to_dict("records"):
            sizes = "  ".join(f"{k}: {100 * v:+.1f}%" for k, v in r.items() if k.startswith("n=") and v == v)
            print(f"torch {r['hardware']:9s} {r['dtype']:9s} {r['rows']:4d} rows  |err| {100 * r['median_ape']:5.1f}%"
                  f"  bias {100 * r['bias']:+6.1f}%  | {sizes}")
    if not a.no_xla:
        from sim.validation.published_xla import score_xla_gemms

        for r in xla_summary(score_xla_gemms().scored).to_dict("records"):
            bands = "  ".join(f"{k[5:]}: {100 * v:+.1f}%" for k, v in r.items() if k.startswith("bias ") and v == v)
            print(f"xla   {r['hardware']:9s} {r['dtype']:9s} {r['rows']:4d} rows  |err| {100 * r['median_ape']:5.1f}%"
                  f"  bias {100 * r['bias']:+6.1f}%  | {bands}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
