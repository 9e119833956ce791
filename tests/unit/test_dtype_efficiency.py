"""Matrix efficiency by dtype (``efficiency_by_dtype`` on a compute unit) on the toy chip (100 TFLOP/s bf16,
200 TFLOP/s fp8, no efficiency of its own, no launch overhead): checkable by hand."""

from pathlib import Path

import numpy as np
import pytest

from hwmodels import load_chip
from hwmodels.errors import SpecError
from hwmodels.chip import System
from sim.cost import CostModel, CostOptions
from sim.hwparams import HwPoints, param_table
from sim.ops import row_to_op

DATA = Path(__file__).parent.parent / "data"
TOY = DATA / "toy-chip.yaml"
HALF_FP8 = {"compute.matrix.efficiency": 0.8, "compute.matrix.efficiency_source": "test: 80% for every dtype",
            "compute.matrix.efficiency_by_dtype": {"fp8": 0.5},
            "compute.matrix.efficiency_by_dtype_source": "test: half of the fp8 peak"}


def gemm(dtype):
    """4000 x 4096 x 4096: 2 x 4000 x 4096^2 = 134.2 GFLOP, compute-bound on the toy chip (about 50 us of
    operands at 1 TB/s), 125 x 128 output tiles of 32 x 32 = 160 full waves of the 100 cores (no partial wave)."""
    return row_to_op({"op": "gemm", "dtype": dtype, "m": 4000, "n": 4096, "k": 4096})


FLOPS = 2 * 4000 * 4096 ** 2


def test_fp8_runs_at_its_own_fraction_by_hand():
    """fp8: 134.2 GFLOP / (200 TFLOP/s x 0.5) = 1.342 ms; bf16 keeps the unit's 0.8: / (100 x 0.8) = 1.678 ms."""
    chip = load_chip(TOY, HALF_FP8)
    flops = FLOPS
    assert CostModel(chip).op_cost(gemm("fp8")).compute_s == pytest.approx(flops / (200e12 * 0.5))
    assert CostModel(chip).op_cost(gemm("bf16")).compute_s == pytest.approx(flops / (100e12 * 0.8))
    # --no-efficiency ignores it, as every efficiency field
    off = CostModel(chip, CostOptions(use_efficiency=False)).op_cost(gemm("fp8"))
    assert off.compute_s == pytest.approx(flops / 200e12)


def test_without_the_field_nothing_changes():
    """A file without efficiency_by_dtype prices fp8 at the unit's efficiency, as before the field existed."""
    plain = load_chip(TOY, {"compute.matrix.efficiency": 0.8, "compute.matrix.efficiency_source": "test"})
    assert plain.matrix_unit().efficiency_by_dtype == {}
    assert CostModel(plain).op_cost(gemm("fp8")).compute_s == pytest.approx(FLOPS / (200e12 * 0.8))


def test_a_parameter_for_sweeps_and_overrides():
    """The fraction is a parameter: listed in the parameter table, varied per point, set by --set."""
    chip = load_chip(TOY, HALF_FP8)
    assert param_table(chip)["chip.compute.matrix.efficiency_by_dtype.fp8"] == 0.5
    hw = HwPoints(System.single(chip), {"chip.compute.matrix.efficiency_by_dtype.fp8": [0.25, 0.5]})
    t = CostModel(hw).op_arrays(gemm("fp8")).compute_s
    np.testing.assert_allclose(t, [FLOPS / (200e12 * f) for f in (0.25, 0.5)])
    assert hw.system_at(0).chip.matrix_unit().efficiency_by_dtype == {"fp8": 0.25}
    set_ = load_chip("mi300x", ["compute.matrix.efficiency_by_dtype.fp8=0.4"])  # a file that has the field
    assert set_.matrix_unit().efficiency_for("fp8") == 0.4


@pytest.mark.parametrize("over, fragment", [
    ({"compute.matrix.efficiency_by_dtype": {"fp9": 0.5}, "compute.matrix.efficiency_by_dtype_source": "x"},
     "efficiency_by_dtype.fp9: unknown dtype 'fp9'"),
    ({"compute.matrix.efficiency_by_dtype": {"fp8": 0}, "compute.matrix.efficiency_by_dtype_source": "x"},
     "efficiency_by_dtype.fp8"),
    ({"compute.matrix.efficiency_by_dtype": {"fp8": 0.5}}, "needs 'efficiency_by_dtype_source'"),
])
def test_bad_values_name_file_and_field(over, fragment):
    with pytest.raises(SpecError, match=fragment) as e:
        load_chip(TOY, over)
    assert str(TOY) in str(e.value)


def test_mi300x_fp8_below_its_bf16_share():
    """The catalog's MI300X prices FP8 at its own published fraction (hipBLASLt), below the BF16 MAMF share."""
    mu = load_chip("mi300x").matrix_unit()
    assert mu.efficiency_for("fp8") < mu.efficiency_for("bf16") == mu.efficiency
    assert "hipBLASLt" in mu.efficiency_by_dtype_source


def test_fp32_gemm_on_the_vector_unit_at_its_fp32_fraction_by_hand():
    """A matrix unit with no fp32 rate runs fp32 GEMMs on the vector unit (toy: 10 TFLOP/s fp32), at that unit's
    fp32 fraction: 134.2 GFLOP / (10 TFLOP/s x 0.5) = 13.4 ms; without the field at the whole 10 TFLOP/s."""
    no_fp32 = {"compute.matrix.peak": {"bf16": "100 TFLOP/s", "fp8": "200 TFLOP/s"}}
    half = {**no_fp32, "compute.vector.efficiency_by_dtype": {"fp32": 0.5},
            "compute.vector.efficiency_by_dtype_source": "test: half of the fp32 peak"}
    assert CostModel(load_chip(TOY, half)).op_cost(gemm("fp32")).compute_s == pytest.approx(FLOPS / (10e12 * 0.5))
    assert CostModel(load_chip(TOY, no_fp32)).op_cost(gemm("fp32")).compute_s == pytest.approx(FLOPS / 10e12)


def test_h100_sxm_fp32_from_the_own_set():
    """h100-sxm: FP32 GEMMs (cuBLAS's SIMT SGEMM, no tensor cores) at 0.77 of the 66.9 TFLOP/s vector peak, fitted
    on llmsim's own H100 SXM set; its matrix unit has no fp32 rate, so the vector unit's fraction is the one read."""
    chip = load_chip("h100-sxm")
    assert chip.matrix_unit().rate_for("fp32") is None
    vu = chip.vector_unit()
    assert vu.efficiency_for("fp32") == 0.77 and vu.efficiency_for("bf16") is None
    assert "sim/validation/data/h100-sxm" in vu.efficiency_by_dtype_source
