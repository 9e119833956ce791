"""Error bands on shipped measurements: the calibrated files' held-out GEMM error must not regress.

A regression guard, not a benchmark: the shipped calibrated A100/H100 files are scored on the
held-out fold (fold 0 of 5, split by shape) of Vidur's GEMM profiles, the fold they were never
fitted to. The bands were set from the measured errors (docs/validation.md) plus a margin. No
test here times this machine.
"""

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cost import CostOptions
from sim.validation.calibrate import split_by_shape
from sim.validation.compare import compare
from sim.validation.measure import builtin_measurements

pytestmark = pytest.mark.validation

ROOT = Path(__file__).resolve().parents[2]
CALIBRATED = ROOT / "hwmodels" / "catalog" / "calibrated"
# (data set, catalog chip, band for the calibrated held-out median |error|, loose band for the catalog file)
CASES = [("vidur-a100", "a100-sxm", 0.08, 0.30), ("vidur-h100", "h100-sxm", 0.10, 0.20)]


def heldout_gemms(name):
    path = builtin_measurements().get(name)
    if path is None:
        pytest.skip(f"{name} is not shipped")
    with gzip.open(path, "rt") as f:
        df = pd.read_csv(io.StringIO(f.read()))
    df = df[df["op"] == "gemm"].reset_index(drop=True)
    _, test = split_by_shape(df, folds=5, holdout=0)
    return df[test].reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("name,chip,band,catalog_band", CASES)
def test_calibrated_gemm_heldout_error_within_band(name, chip, band, catalog_band):
    test = heldout_gemms(name)
    assert len(test) > 1000
    cal_file = CALIBRATED / f"{chip}-calibrated.yaml"
    assert cal_file.exists(), f"{cal_file} is missing: run llmsim validate-report --write-calibrated {CALIBRATED}"
    cal = compare(test, hw=str(cal_file))
    assert cal.counts["rejected"] == 0
    med = float(np.median(cal.scored["abs_rel_error"]))
    assert med < band, f"{chip}: calibrated held-out GEMM median |error| {med:.1%} above the band {band:.0%}"
    # datasheet-only and catalog errors: computed, finite, and within a loose band
    cat = compare(test)
    peak = compare(test, options=CostOptions(use_efficiency=False))
    for c, loose in ((cat, catalog_band), (peak, 0.40)):
        m = float(np.median(c.scored["abs_rel_error"]))
        assert np.isfinite(m) and m < loose
    # calibration must help on the held-out shapes, not only on the fitted ones
    assert med <= float(np.median(cat.scored["abs_rel_error"])) + 0.005


def test_calibrated_files_load_and_name_their_measurements():
    from hwmodels.loader import check_files, load_hardware

    files = sorted(CALIBRATED.glob("*.yaml"))
    assert files, "no calibrated files shipped"
    for path, problems in check_files([str(p) for p in files]):
        assert not problems, (path, problems)
    for p in files:
        hw = load_hardware(p)
        assert hw.name == p.stem
        assert any("calibration measurement" in s for s in hw.source)
