"""The GEMM prologue (pipeline fill) and a persistent kernel's last store, on the toy chip by hand (100 cores,
1 TB/s HBM without latency, 2-byte bf16, K-step 32)."""

from pathlib import Path

import numpy as np
import pytest

from hwmodels import load_chip
from sim.cost import CostModel, CostOptions
from workloads.graph import GemmShape, Op, TensorIO

DATA = Path(__file__).parent.parent / "data"
TOY = DATA / "toy-chip.yaml"


def gemm(m, n, k, dt="bf16"):
    return Op(f"g{m}x{n}x{k}", "gemm", 1, 2.0 * m * n * k, 0.0, dt,
              (TensorIO("a", "activation", dt, m * k * 2, False), TensorIO("w", "weight", dt, k * n * 2, False),
               TensorIO("c", "activation", dt, m * n * 2, True)), gemm=GemmShape(m, n, k))


def toy_with(tmp_path, overlap):
    text = TOY.read_text(encoding="utf-8")
    if overlap is not None:
        text = text.replace("  - kind: matrix\n", f"  - kind: matrix\n    epilogue_overlap: {str(overlap).lower()}\n"
                                                   "    epilogue_source: test\n", 1)
    p = tmp_path / "toy-chip.yaml"
    p.write_text(text, encoding="utf-8")
    return load_chip(p)


def fill(chip, m=4096, n=4096, units=200.0, waves=2.0):
    cm = CostModel(chip, CostOptions(use_efficiency=False))
    cols0 = [0.0, 1e9]  # main-memory bytes of the op (sram, hbm): only the achievable rate's size
    return float(cm._fill_drain(gemm(m, n, 1024), np.array(128.0), np.array(128.0), 32, np.array(units),
                                np.array(waves), cols0))


def test_non_persistent_kernel_fills_every_wave(tmp_path):
    # 100 CTAs start together (200 units, 100 cores), each loads (128 + 128) x 32 bf16 = 16,384 B:
    # 1.6384 MB at 1 TB/s = 1.6384 us per wave, 2 waves
    assert fill(toy_with(tmp_path, False)) == pytest.approx(2 * 1.6384e-6)


def test_persistent_kernel_fills_once_and_stores_its_last_tiles(tmp_path):
    # one fill (1.6384 us) + the last 100 output tiles of 128 x 128 bf16 (3.2768 MB: 3.2768 us)
    assert fill(toy_with(tmp_path, True)) == pytest.approx(1.6384e-6 + 3.2768e-6)


def test_only_the_rows_that_exist_are_loaded_and_stored(tmp_path):
    # m = 8: the A panel has 8 rows, not 128: 100 x (8 + 128) x 32 x 2 = 870,400 B; 10 units start
    chip = toy_with(tmp_path, True)
    assert fill(chip, m=8, units=10.0, waves=1.0) == pytest.approx((10 * 136 * 64 + 8 * 4096 * 2) / 1e12)


def test_no_kernel_facts_no_fill(tmp_path):
    assert fill(toy_with(tmp_path, None)) == 0.0


def test_fill_reaches_the_priced_gemm(tmp_path):
    base = CostModel(toy_with(tmp_path, None)).op_cost(gemm(4096, 4096, 4096))
    nonp = CostModel(toy_with(tmp_path, False)).op_cost(gemm(4096, 4096, 4096))
    assert nonp.compute_s > base.compute_s  # the fill (and the exposed store) come on top of the main loop
