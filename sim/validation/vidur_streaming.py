"""Score only Vidur's streaming rows (norm, elementwise, rope, embedding) with the catalog files: seconds, not
the whole validation report's minutes, for work on the streaming-kernel model (docs/cost-model.md, Streaming
ops). The rows, the split (by shape, :func:`sim.validation.calibrate.split_by_shape`) and the pricing
(:func:`sim.validation.compare.compare`, Vidur's own kernels and GPU time) are those of ``llmsim
validate-report``, so the held-out figures here are its catalog-file figures for these kinds.

    python -m sim.validation.vidur_streaming [--split held-out|train|all] [--chip a100 --chip h100]
    python -m sim.validation.vidur_streaming --derive a100   # kernel_fixed_time and gather (training folds)
    python -m sim.validation.vidur_streaming --chip h100 --hw my-h100.yaml   # a chip file in the catalog's place

:func:`trip_times` reads the measured time per loop trip of the row-per-block kernels off the rows (a
least-squares line of time against loop trips per row in a fixed occupancy regime), which is how
docs/cost-model.md's per-trip figures were read (training folds only). :func:`derive_kernel_fixed_time` and
:func:`derive_gather_efficiency` reproduce the catalog's ``kernel_fixed_time`` and main-memory ``gather``
fraction of a100-sxm and h100-sxm from the training folds only. ``--hw FILE`` prices the rows of one chip on
another chip file (a what-if: a changed memory efficiency or latency, with the derivations re-run on it).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np
import pandas as pd

from hwmodels.loader import load_hardware

from sim.validation.calibrate import split_by_shape
from sim.validation.compare import compare, error_stats
from sim.validation.measure import load_measurements
from sim.validation.vidur import GPU_HARDWARE, ROW_KERNELS, hw_file

__all__ = ["STREAMING", "streaming_rows", "score", "summary", "trip_times", "derive_kernel_fixed_time",
           "derive_gather_efficiency"]

STREAMING = ("elementwise", "norm", "rope", "embedding")
SPLITS = ("held-out", "train", "all")


def streaming_rows(chip: str, folds: int = 5, holdout: int = 0, limit: int | None = None) -> pd.DataFrame:
    """Vidur's streaming rows of ``chip`` ('a100', 'h100'), with ``held_out`` (the fold the validation
    report scores) marked; the split is taken on all rows, as the report takes it. ``limit``: the first rows
    only (tests)."""
    df = load_measurements(f"vidur-{chip}")
    if limit is not None:
        df = df.head(limit)
    _, test = split_by_shape(df, folds, holdout)
    df = df.assign(held_out=test)
    return df[df["op"].isin(STREAMING)].reset_index(drop=True)


def score(rows: pd.DataFrame, hardware: dict | None = None) -> pd.DataFrame:
    """The scored rows (``compare``'s columns: ``predicted_time_s``, ``rel_error``, ...), priced on the
    hardware each row names (the catalog file, or ``hardware``'s chip of that name)."""
    scored = compare(rows, hardware=hardware).scored
    if len(scored) != len(rows):
        raise ValueError(f"{len(rows) - len(scored)} of {len(rows)} streaming rows were rejected")
    return scored


def summary(scored: pd.DataFrame, split: str = "held-out") -> pd.DataFrame:
    """Median |error| and bias per op kind and per Vidur op (``name``) on ``split``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    s = scored if split == "all" else scored[scored["held_out"] == (split == "held-out")]
    out = []
    for col in ("op", "name"):
        for key, g in s.groupby(col, sort=True):
            st = error_stats(g["predicted_time_s"], g["measured_time_s"])
            out.append({"hardware": g["hardware"].iloc[0], "group": col, "key": key, "rows": st["n"],
                        "median_ape": st["median_ape"], "bias": st["bias"]})
    return pd.DataFrame(out)


def trip_times(rows: pd.DataFrame, variant: str, kind: str, cores: int, tokens: tuple) -> dict:
    """Measured time per loop trip of a row-per-block kernel (Vidur ``variant``, e.g. 'silu_and_mul', of op
    ``kind``) on rows of ``tokens`` = (lo, hi] tokens: the slope of a least-squares line of measured time
    (Vidur's truncated Kineto time + 0.5 us, as the converter writes it) against waves x loop trips per row, with the kernel's threads and
    elements per thread from :data:`ROW_KERNELS` and ``cores`` x (resident threads // threads) blocks a wave.
    Returns {'rows', 'per_trip_s', 'intercept_s'}."""
    facts = ROW_KERNELS.of(kind)
    if facts is None:
        raise ValueError(f"no row kernel for op kind {kind!r}")
    cap, per = facts[0], facts[1]
    g = rows[(rows["name"].isin(["mlp_act", "input_layernorm", "post_attention_layernorm", "attn_rope"]))
             & (rows["variant"] == variant)]
    t = g["num_tokens"].astype(float).to_numpy()
    if kind == "norm":
        items = g["n"].astype(float).to_numpy()
    else:
        items = g["numel"].astype(float).to_numpy() / t
    threads = np.minimum(np.ceil(items / per), cap)
    waves = np.ceil(t / (cores * np.maximum(1, ROW_KERNELS.resident_threads // threads)))
    trips = waves * np.ceil(items / (threads * per))
    m = (t > tokens[0]) & (t <= tokens[1]) & np.isfinite(trips)
    y = g["measured_time_s"].astype(float).to_numpy()[m]
    if m.sum() < 2 or len(set(trips[m])) < 2:
        return {"rows": int(m.sum()), "per_trip_s": float("nan"), "intercept_s": float("nan")}
    slope, icpt = np.polyfit(trips[m], y, 1)
    return {"rows": int(m.sum()), "per_trip_s": float(slope), "intercept_s": float(icpt)}


def derive_kernel_fixed_time(chip: str, rows: pd.DataFrame | None = None, max_tokens: int = 32, hw=None) -> dict:
    """The chip's ``kernel_fixed_time`` as the catalog derives it (docs/cost-model.md, Fixed time per kernel), on
    the TRAINING folds only: the smallest kernels Vidur timed, one-kernel residual adds of 1-``max_tokens``
    tokens (a few KB: an empty kernel and one main-memory round trip), median of the measured time (Vidur's
    truncated Kineto time + 0.5 us, as the converter writes it) minus the model's time for those rows without a
    fixed time. ``hw``: the chip to derive it on (default: the catalog file).
    Returns {'rows', 'kernel_fixed_time_s'}."""
    rows = streaming_rows(chip) if rows is None else rows
    small = rows[~rows["held_out"] & (rows["variant"] == "residual add")
                 & (rows["num_tokens"].astype(float) <= max_tokens)]
    name = GPU_HARDWARE.get(chip, chip)
    plain = replace(hw or load_hardware(name), kernel_fixed_time_s=0.0)
    s = score(small, hardware={name: plain})
    res = s["measured_time_s"] - s["predicted_time_s"]
    return {"rows": len(s), "kernel_fixed_time_s": float(np.median(res))}


def derive_gather_efficiency(chip: str, rows: pd.DataFrame | None = None, hw=None, step: float = 0.005,
                             bounds: tuple = (0.05, 0.5)) -> dict:
    """The main memory's ``efficiency_by_pattern`` ``gather`` fraction (of its streaming rate) as the catalog fits
    it, on the TRAINING folds only: the fraction on a ``step`` grid within ``bounds`` that minimises the median
    |error| of the training ``emb`` rows (PyTorch's F.embedding, an index_select of T rows). ``hw``: the chip to
    fit it on (default: the catalog file). Returns {'rows', 'gather', 'median_ape', 'bias'}."""
    rows = streaming_rows(chip) if rows is None else rows
    train = rows[~rows["held_out"] & (rows["op"] == "embedding")]
    name = GPU_HARDWARE.get(chip, chip)
    hw = hw or load_hardware(name)
    main = next(i for i, m in enumerate(hw.memory) if m.kind == "dram")
    best = None
    for f in np.round(np.arange(bounds[0], bounds[1] + step / 2, step), 6):
        mem = list(hw.memory)
        mem[main] = replace(mem[main], efficiency_by_pattern={**mem[main].efficiency_by_pattern, "gather": float(f)})
        s = score(train, hardware={name: replace(hw, memory=tuple(mem))})
        st = error_stats(s["predicted_time_s"], s["measured_time_s"])
        if best is None or st["median_ape"] < best["median_ape"]:
            best = {"rows": st["n"], "gather": float(f), "median_ape": st["median_ape"], "bias": st["bias"]}
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.validation.vidur_streaming", description=__doc__.split("\n")[0])
    ap.add_argument("--chip", action="append", choices=[k for k, v in GPU_HARDWARE.items() if k != "a40"])
    ap.add_argument("--split", choices=SPLITS, default="held-out")
    ap.add_argument("--derive", choices=[k for k in GPU_HARDWARE if k != "a40"],
                    help="print the kernel_fixed_time and gather derivations of this chip and stop")
    ap.add_argument("--hw", metavar="FILE", help="price the rows of the one chip named (--chip or --derive) on this "
                    "chip file instead of the catalog's")
    a = ap.parse_args(argv)
    chips = [a.derive] if a.derive else (a.chip or ["a100", "h100"])
    hw = hw_file(ap, a.hw, chips)
    if isinstance(hw, int):
        return hw
    if a.derive:
        d = derive_kernel_fixed_time(a.derive, hw=hw)
        print(f"{GPU_HARDWARE[a.derive]}: kernel_fixed_time {d['kernel_fixed_time_s'] * 1e6:.2f} us from {d['rows']} "
              f"training residual adds of 1-32 tokens")
        g = derive_gather_efficiency(a.derive, hw=hw)
        print(f"{GPU_HARDWARE[a.derive]}: gather {g['gather']:.3f} of the stream rate from {g['rows']} training emb "
              f"rows (training |err| {100 * g['median_ape']:.1f}%, bias {100 * g['bias']:+.1f}%)")
        return 0
    for chip in chips:
        t = summary(score(streaming_rows(chip), None if hw is None else {GPU_HARDWARE[chip]: hw}), a.split)
        for r in t.itertuples():
            print(f"{r.hardware:9s} {a.split:8s} {r.group:4s} {r.key:26s} {r.rows:6d} rows  |err| {100 * r.median_ape:5.1f}%"
                  f"  bias {100 * r.bias:+6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
