"""The fixed time per kernel on the toy chip, by hand: the GPU-side kernel_fixed_time (paid always) and the
CPU-side launch_overhead (eager launches only), their class default, bad values, and the array path."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwmodels import load_chip
from hwmodels.errors import SpecError
from sim.cost import CostModel, CostOptions
from sim.validation.vidur import scoring_options
from sim.vector import HwPoints
from workloads.graph import Op, TensorIO

DATA = Path(__file__).parent.parent / "data"
TOY = DATA / "toy-chip.yaml"


def copy_op(nbytes=1e3, fusable=False):
    """An elementwise copy of nbytes in and out: 2 kB at 1 TB/s = 2 ns, well under the fixed times."""
    return Op("copy", "elementwise", 1, 0.0, 0.0, "bf16",
              (TensorIO("x", "activation", "bf16", nbytes, False), TensorIO("y", "activation", "bf16", nbytes, True)),
              fusable=fusable)


@pytest.fixture(scope="module")
def toy():
    # 5 us of CPU launch, 2 us of GPU-side fixed time, no memory latency (the toy chip gives none)
    return load_chip(TOY, ["launch_overhead=5 us", "kernel_fixed_time=2 us"])


def test_eager_pays_both_graphs_pay_the_gpu_side(toy):
    assert toy.kernel_fixed_time_s == pytest.approx(2e-6)
    eager = CostModel(toy).op_cost(copy_op())
    graphs = CostModel(toy, CostOptions(cuda_graphs=True)).op_cost(copy_op())
    assert eager.overhead_s == pytest.approx(7e-6)  # 2 us GPU + 5 us CPU launch
    assert graphs.overhead_s == pytest.approx(2e-6)  # a graph removes the CPU launch, not the grid launch
    assert eager.time_s == pytest.approx(7e-6 + 2e-9) and graphs.time_s == pytest.approx(2e-6 + 2e-9)


def test_a_fused_op_is_no_kernel(toy):
    op = copy_op(fusable=True)
    for graphs in (False, True):
        assert CostModel(toy, CostOptions(fused=True, cuda_graphs=graphs)).op_cost(op).overhead_s == 0.0


def test_default_is_zero_without_a_class():
    chip = load_chip(TOY)
    assert chip.kernel_fixed_time_s == 0.0 and chip.kernel_fixed_time_source is None
    assert CostModel(chip, CostOptions(cuda_graphs=True)).op_cost(copy_op()).overhead_s == 0.0


def test_class_default_fills_and_the_file_wins(tmp_path):
    text = TOY.read_text(encoding="utf-8").replace("hypothetical: true", "hypothetical: true\nclass: gpu-hbm")
    p = tmp_path / "toy-chip.yaml"
    p.write_text(text, encoding="utf-8")
    chip = load_chip(p)
    assert chip.kernel_fixed_time_s == pytest.approx(2e-6)  # classes.yaml gpu-hbm: 2 us
    assert chip.kernel_fixed_time_source.startswith("class default gpu-hbm")
    own = load_chip(p, ["kernel_fixed_time=1.5 us"])
    assert own.kernel_fixed_time_s == pytest.approx(1.5e-6)
    p.write_text(text + "kernel_fixed_time: 3 us\nkernel_fixed_time_source: test\n", encoding="utf-8")
    assert load_chip(p).kernel_fixed_time_s == pytest.approx(3e-6)


@pytest.mark.parametrize("value", ["-1 us", "3 GB", "fast"])
def test_bad_value_names_file_and_field(tmp_path, value):
    p = tmp_path / "toy-chip.yaml"
    p.write_text(TOY.read_text(encoding="utf-8") + f"kernel_fixed_time: {value}\n", encoding="utf-8")
    with pytest.raises(SpecError) as e:
        load_chip(p)
    assert "kernel_fixed_time" in str(e.value) and "toy-chip.yaml" in str(e.value)


def test_bad_value_exits_2_from_the_cli(tmp_path):
    p = tmp_path / "toy-chip.yaml"
    p.write_text(TOY.read_text(encoding="utf-8") + "kernel_fixed_time: -1 us\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "llmsim.cli", "check", str(p)], capture_output=True, text=True)
    assert r.returncode == 2 and "kernel_fixed_time" in r.stderr and "Traceback" not in r.stderr


def test_array_path_uses_the_same_formula(toy):
    vals = [0.0, 1e-6, 2.5e-6]
    for graphs in (False, True):
        opts = CostOptions(cuda_graphs=graphs)
        arr = CostModel(HwPoints(toy, {"chip.kernel_fixed_time": vals}), opts).op_arrays(copy_op())
        one = [CostModel(load_chip(TOY, ["launch_overhead=5 us", f"kernel_fixed_time={v * 1e6} us"]), opts)
               .op_cost(copy_op()).time_s for v in vals]
        assert np.allclose(arr.time_s, one, rtol=1e-12, atol=0)


def test_vidur_rows_are_scored_as_gpu_time():
    rows = pd.DataFrame({"source": ["vidur:compute/h100/x/mlp.csv"] * 2})
    o = scoring_options(rows, CostOptions())
    assert o.cuda_graphs and o.row_kernels is not None
    other = pd.DataFrame({"source": ["somewhere else"]})
    assert scoring_options(other, CostOptions()) == CostOptions()
