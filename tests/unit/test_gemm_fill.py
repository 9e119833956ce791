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
    # 100 CTAs start together (200 units, 100 cores), a 10 x 10 square of 128 x 128 tiles sharing their A rows
    # and B columns through the cache: main memory serves (10 x 128 + 10 x 128) x 32 bf16 = 163,840 B:
    # 0.16384 us at 1 TB/s per wave, 2 waves (each CTA's own 16,384 B would be 10 times as much)
    assert fill(toy_with(tmp_path, False)) == pytest.approx(2 * 0.16384e-6)


def test_persistent_kernel_fills_once_and_stores_its_last_tiles(tmp_path):
    # one fill (0.16384 us) + the last 100 output tiles of 128 x 128 bf16 (3.2768 MB: 3.2768 us)
    assert fill(toy_with(tmp_path, True)) == pytest.approx(0.16384e-6 + 3.2768e-6)


def test_only_the_rows_that_exist_are_loaded_and_stored(tmp_path):
    # m = 8: the A panel has 8 rows, not 128; 10 units start, one tile row by 10 tile columns: (8 + 1,280)
    # x 32 x 2 B; the last store is the 8 x 4096 output
    chip = toy_with(tmp_path, True)
    assert fill(chip, m=8, units=10.0, waves=1.0) == pytest.approx((1288 * 64 + 8 * 4096 * 2) / 1e12)


def test_no_kernel_facts_no_fill(tmp_path):
    assert fill(toy_with(tmp_path, None)) == 0.0


def test_fill_reaches_the_priced_gemm(tmp_path):
    base = CostModel(toy_with(tmp_path, None)).op_cost(gemm(4096, 4096, 4096))
    nonp = CostModel(toy_with(tmp_path, False)).op_cost(gemm(4096, 4096, 4096))
    assert nonp.compute_s > base.compute_s  # the fill (and the exposed store) come on top of the main loop


def toy_with_cache(tmp_path):
    """The toy chip with a 2 TB/s chip-level cache (20 GB/s per core of its 100 cores)."""
    text = TOY.read_text(encoding="utf-8").replace(
        "  - {name: hbm,", "  - {name: l2, kind: cache, capacity: 256 MiB, bandwidth: 2 TB/s}\n  - {name: hbm,", 1)
    p = tmp_path / "toy-chip.yaml"
    p.write_text(text, encoding="utf-8")
    return load_chip(p)


def test_operand_feed_of_one_cta_at_its_cores_share(tmp_path):
    # a 128 x 128 CTA of a 256 x 256 x 1024 bf16 GEMM streams (128 + 128) x 1024 x 2 B = 524,288 B through
    # its core's 2 TB/s / 100 = 20 GB/s: 26.2144 us; with 8 rows (m = 8) only 8 A rows exist
    cm = CostModel(toy_with_cache(tmp_path), CostOptions(use_efficiency=False))
    cols0 = [0.0, 1e6, 1e6]
    g = gemm(256, 256, 1024)
    t = cm._operand_feed(g.gemm, np.array(128.0), np.array(128.0), 1024.0, 256 * 1024 * 2, 1024 * 256 * 2, cols0)
    assert float(t) == pytest.approx(524288 / 20e9)
    g8 = gemm(8, 256, 1024)
    t8 = cm._operand_feed(g8.gemm, np.array(128.0), np.array(128.0), 1024.0, 8 * 1024 * 2, 1024 * 256 * 2, cols0)
    assert float(t8) == pytest.approx((8 + 128) * 1024 * 2 / 20e9)


def test_few_tiles_are_paced_by_their_feed(tmp_path):
    # one 256 x 256 output, k = 8192: however the search tiles and splits it, its CTAs read at least
    # A and B once through the cores they occupy (at most 100): >= (256 + 256) x 8192 x 2 B / 2 TB/s
    op = gemm(256, 256, 8192)
    c = CostModel(toy_with_cache(tmp_path), CostOptions(use_efficiency=False)).op_cost(op)
    no_cache = CostModel(load_chip(TOY), CostOptions(use_efficiency=False)).op_cost(op)
    assert c.compute_s >= (256 + 256) * 8192 * 2 / 2e12
    assert c.compute_s > no_cache.compute_s  # the MMAs alone (2 x 256^2 x 8192 at 100 TFLOP/s) are faster


def test_blackwell_tiles_are_at_least_64_rows_and_64_deep():
    # tcgen05.mma (one CTA): M 64 or 128, K 16 -> candidate tiles of >= 64 rows and a K-step of 4 x 16 = 64
    c = CostModel(load_chip("b200"))._tile_context("bf16")
    assert c.tk == 64 and c.tm.min() == 64 and c.tn.min() == 32
