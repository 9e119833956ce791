"""Score only the AMD Instinct published rows (docs/validation.md sections 5 and 5c): the MI300X rows of
``serving.csv`` (offline serving) and ``e2e.csv`` (static batches), through the same functions the
validation report uses (:func:`sim.validation.published.score_serving`, :func:`score_e2e`), each row under
its own ``stack`` column. ``python -m sim.validation.amd_rows`` prints one line per row with the
time-equivalent error (negative: the model is too fast) and the medians; it writes nothing."""

from __future__ import annotations

import pandas as pd

from sim.validation.published import load_e2e, load_serving, score_e2e, score_serving

AMD_HARDWARE = ("mi300x", "mi325x", "mi355x")


def _amd(df: pd.DataFrame) -> pd.DataFrame:
    hw = df["hardware"].astype(str)
    return df[hw.str.split("-").str[0].isin(AMD_HARDWARE)].reset_index(drop=True)


def score_amd_rows() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(serving rows, end-to-end rows) of AMD hardware, scored with ``time_rel_error``."""
    return score_serving(_amd(load_serving())), score_e2e(_amd(load_e2e()))


def main() -> None:
    serving, e2e = score_amd_rows()
    for r in serving.itertuples():
        print(f"5c  {r.model} on {r.hardware} tp{r.tp}  {r.num_prompts} x {r.input_len}/{r.output_len}  "
              f"{r.time_rel_error * 100:+.1f}%  {r.reason}")
    for r in e2e.itertuples():
        print(f"5   {r.model} on {r.hardware} tp{r.tp}  B{r.batch} {r.input_len}/{r.output_len}  "
              f"{r.time_rel_error * 100:+.1f}%  {r.reason}")
    print(f"median 5c {serving['time_rel_error'].median() * 100:+.1f}%, "
          f"median 5 {e2e['time_rel_error'].median() * 100:+.1f}%")


if __name__ == "__main__":
    main()
