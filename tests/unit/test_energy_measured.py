"""Per-FLOP and per-byte energies under the TDP (docs/cost-model.md, Energy and price): hand checks on the toy
chip (TDP 1000 W, idle 100 W; 100 TFLOP/s bf16 at efficiency 0.5), and the H100 SXM's measured energies against
the loads they were measured on (sim/validation/data/h100-sxm/probes.json)."""

import json
from pathlib import Path

import pytest

from hwmodels import load_chip, load_hardware
from sim.cost import CostModel, CostOptions
from sim.ops import row_to_op
from sim.validation.measure import DATA_DIR

from workloads.graph import GemmShape, Op, TensorIO

DATA = Path(__file__).parent.parent / "data"
EFF = {"compute.matrix.efficiency": 0.5, "compute.matrix.efficiency_source": "test"}


def gemm(m, n, k, dt="bf16"):
    b = 2
    return Op(f"g{m}x{n}x{k}", "gemm", 1, 2.0 * m * n * k, 0.0, dt,
              (TensorIO("a", "activation", dt, m * k * b, False), TensorIO("w", "weight", dt, k * n * b, False),
               TensorIO("c", "activation", dt, m * n * b, True)), gemm=GemmShape(m, n, k))


ENERGY = {**EFF, "power.energy_per_flop": {"bf16": "10 pJ/FLOP"}}


def test_energy_per_flop_below_the_tdp_is_the_sum():
    c = CostModel(load_chip(DATA / "toy-chip.yaml", {**ENERGY, "power.energy_per_flop": {"bf16": "1 pJ/FLOP"}}))
    op = gemm(256, 256, 128)
    cost = c.op_cost(op)
    # 1 pJ x 16.8 MFLOP = 16.8 uJ, plus 100 W idle over the op: well under 1000 W
    assert cost.energy_j == pytest.approx(1e-12 * op.flops_matrix + 100 * cost.time_s)
    assert cost.energy_j < 1000 * cost.time_s


def test_energy_per_flop_above_the_tdp_is_capped_at_it():
    # a full-chip GEMM runs 50 TFLOP/s: at 100 pJ/FLOP that would be 5 kW + idle; the limiter holds the board at
    # its 1000 W TDP
    c = CostModel(load_chip(DATA / "toy-chip.yaml", {**ENERGY, "power.energy_per_flop": {"bf16": "100 pJ/FLOP"}}))
    cost = c.op_cost(gemm(6400, 6400, 4096))
    assert cost.energy_j == pytest.approx(1000 * cost.time_s)


def _probes():
    return json.loads((Path(DATA_DIR) / "h100-sxm" / "probes.json").read_text())["probes"]


def _power(cm, shapes, dtype="bf16"):
    costs = [cm.op_cost(row_to_op({"op": "gemm", "dtype": dtype, "m": m, "n": n, "k": k})) for m, n, k in shapes]
    return sum(c.energy_j for c in costs) / sum(c.time_s for c in costs)


def _layer(t):  # Llama-3.1-8B's projections (the load probe's shapes)
    return [(t, 6144, 4096), (t, 4096, 4096), (t, 28672, 4096), (t, 4096, 14336)]


def test_h100_sxm_energies_reproduce_the_measured_loads():
    cm = CostModel(load_hardware("h100-sxm"), CostOptions(cuda_graphs=True))
    runs = {r["name"]: r for r in _probes()["load"]["runs"]}
    # compute-bound loads sat at the 700 W cap (697-699 W measured): priced at the cap
    for name, shapes, dt in (("bf16 8192^3 again", [(8192, 8192, 8192)], "bf16"),
                             ("bf16 llama8b layer, 2048 tokens", _layer(2048), "bf16"),
                             ("bf16 llama8b layer, 512 tokens", _layer(512), "bf16"),
                             ("fp8 llama8b layer, 2048 tokens", _layer(2048), "fp8_e4m3")):
        assert _power(cm, shapes, dt) == pytest.approx(runs[name]["power_w_median_late"], rel=0.02), name
    # decode GEMMs streaming weights drew 570 W, well under the cap (the TDP model would say 700 W)
    dec = runs["bf16 llama8b decode, 32 tokens, 8 layers of weights"]["power_w_median_late"]
    assert _power(cm, _layer(32)) == pytest.approx(dec, rel=0.10)
    assert _power(cm, _layer(32)) < 0.85 * 700


def test_hw_show_prints_the_measured_fields():
    from hwmodels import load_chip
    from llmsim.commands.hw import _spec_lines

    chip = load_chip("h100-sxm")
    text = "\n".join(_spec_lines(chip, chip))
    assert "l2 (cache): 50.0 MB, 9.00 TB/s; latency 145 ns" in text
    assert "efficiency 0.9; latency 222 ns; 152 pJ/B" in text
    assert "idle 72.0 W; energy per FLOP bf16 860 fJ/FLOP, fp16 860 fJ/FLOP, fp8 470 fJ/FLOP" in text
    assert "mma.sync at 0.68 of it" in text
