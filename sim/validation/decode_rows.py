"""Score only the published paged decode-attention rows (docs/validation.md section 4d): the decode rows of
``kernels.csv``, through the function the validation report uses
(:func:`sim.validation.published.score_attention_kernels`), under the default stack and with each row's own
kernel facts (``kernel_profile``: attention_kernels.yaml ``decode_kernels``). ``python -m
sim.validation.decode_rows`` prints one line per row (measured, predicted, error; negative: the model is too
fast) and the median |error| and bias of each column; it writes nothing."""

from __future__ import annotations

import pandas as pd

from sim.validation.published import score_attention_kernels


def score_decode_rows(stack=None) -> pd.DataFrame:
    """The decode rows with ``predicted``/``rel_error`` under ``stack`` (None: the default) and
    ``own_predicted``/``own_rel_error`` with each row's own kernel facts."""
    cols = []
    for own in (False, True):
        df = score_attention_kernels(stack=stack, own_kernel=own)
        cols.append(df[df["phase"].astype(str).str.strip().str.lower().eq("decode")].reset_index(drop=True))
    out = cols[0].copy()
    out["own_predicted"], out["own_rel_error"] = cols[1]["predicted"], cols[1]["rel_error"]
    return out


def main() -> None:
    d = score_decode_rows()
    for r in d.itertuples():
        print(f"4d  {r.name}: measured {r.measured_time_s * 1e6:,.1f} us, {r.stack_used} {r.predicted * 1e6:,.1f} us "
              f"({r.rel_error * 100:+.1f}%), own {r.own_predicted * 1e6:,.1f} us ({r.own_rel_error * 100:+.1f}%)")
    for label, col in ((d["stack_used"].iloc[0], "rel_error"), ("own", "own_rel_error")):
        print(f"{label}: median |err| {d[col].abs().median() * 100:.1f}%, bias {d[col].median() * 100:+.1f}% "
              f"over {len(d)} rows")


if __name__ == "__main__":
    main()
