"""Every catalog chip and system predicts a small model without an error, below 100% of peak, and the
pricing rule holds: per-GPU price between tp 1 and the system a chip switches to differs only by the
system's documented premium (docs/hardware-format.md, Prices)."""

from pathlib import Path

import pytest

from hwmodels import list_hardware, load_chip, load_system
from hwmodels.chip import System
from sim.predict import predict

CATALOG = Path(__file__).parent.parent / "hwmodels" / "catalog"
CHIPS = sorted(p.stem for p in (CATALOG / "chips").glob("*.yaml"))
SYSTEMS = sorted(p.stem for p in (CATALOG / "systems").glob("*.yaml"))
MODEL = "qwen2.5-0.5b"  # 14 query heads, 2 KV heads, MLP 4864, 24 layers: tp 1 or 2, pp up to 24


def _parallelism(count: int) -> tuple[int, int]:
    """(tp, pp) for a system of ``count`` chips: tp 2 where there are two chips, and 8 pipeline stages on
    16 chips or more (so the 1 GB of weights spreads over the SRAM-only racks)."""
    tp = 2 if count >= 2 else 1
    return tp, (8 if count >= 16 else 1)


@pytest.mark.parametrize("name", CHIPS + SYSTEMS)
def test_every_entry_predicts_a_small_model_below_peak(name):
    count = 1 if name in CHIPS else load_system(name).count
    tp, pp = _parallelism(count)
    p = predict(MODEL, name, 2, 128, 8, tp=tp, pp=pp, samples=3, check_memory=False)
    assert p.e2e_s > 0 and p.output_throughput_tok_s > 0
    assert 0 < p.mbu < 1.0, (name, p.mbu)  # no silent 100% of datasheet bandwidth
    assert 0 < p.mfu < 1.0, (name, p.mfu)
    assert p.calibration in ("measured", "published", "class-default")
    if p.usd_per_hour is not None:  # every price says where it comes from and when
        assert p.price_source and p.usd_per_mtok_output > 0


@pytest.mark.parametrize("name", CHIPS + SYSTEMS)
def test_every_price_has_a_source_and_a_date(name):
    hw = load_chip(name) if name in CHIPS else load_system(name)
    if isinstance(hw, System):
        if hw.cloud_usd_per_s is not None:  # its own price (or one derived from an override)
            assert hw.price_source and hw.price_date, name
        return
    if hw.cloud_usd_per_s is not None:
        assert hw.price_source and hw.price_date, name
        assert "on-demand" in hw.price_source.lower(), f"{name}: chip prices are on-demand per chip-hour"


PRICED_WITH_SYSTEMS = sorted({load_system(s).chip.name for s in SYSTEMS
                              if load_system(s).chip.cloud_usd_per_s is not None})


@pytest.mark.parametrize("chip", PRICED_WITH_SYSTEMS)
def test_tp1_to_tp2_changes_the_per_gpu_price_only_by_the_system_premium(chip):
    one = predict(MODEL, chip, 2, 128, 8, tp=1, samples=3, check_memory=False)
    two = predict(MODEL, chip, 2, 128, 8, tp=2, samples=3, check_memory=False)
    system = load_system(two.system)
    per_gpu_1 = one.usd_per_hour
    per_gpu_2 = two.usd_per_hour / two.chips
    assert per_gpu_2 == pytest.approx(per_gpu_1 * (1 + system.price_premium), rel=1e-9)
    # the switch is said, with the price change
    note = next(n for n in two.notes if "standard system" in n)
    assert "price per chip-hour" in note and "premium" in note
    # per-GPU USD per million output tokens: the same premium once the throughput per GPU is factored out
    mtok_1 = one.usd_per_mtok_output * one.per_chip_output_throughput_tok_s
    mtok_2 = two.usd_per_mtok_output * two.per_chip_output_throughput_tok_s
    assert mtok_2 == pytest.approx(mtok_1 * (1 + system.price_premium), rel=1e-9)


def test_generic_systems_carry_no_premium_and_hgx_h100_matches_its_chip():
    # the inconsistency of issue 14: h100-sxm, hgx-h100-8 and h100-sxm-4x8 now price a GPU-hour alike
    chip = load_chip("h100-sxm").price_usd_per_hour
    for s in ("hgx-h100-8", "h100-sxm-4x8", "aws-p5-48xlarge"):
        sysobj = load_system(s)
        assert sysobj.usd_per_hour / sysobj.count == pytest.approx(chip)
        assert sysobj.price_premium == pytest.approx(0.0, abs=1e-9)
    azure = load_system("azure-nd-h100-v5")
    assert azure.price_premium == pytest.approx(98.32 / 55.04 - 1)


def test_price_override_reaches_systems_and_keeps_the_premium():
    s = load_system("aws-g5-12xlarge", ["chip.price.cloud=1 USD/h"])
    assert s.usd_per_hour == pytest.approx(4 * 1.0 * (1 + s.price_premium))
    assert "command line" in s.price_source
    c = load_chip("l4", ["chip.price.cloud=2 USD/h"])
    assert c.price_usd_per_hour == pytest.approx(2.0) and c.price_date is None


def test_catalog_breadth_named_by_issue_14():
    rows = list_hardware()
    chips = {r["name"] for r in rows if r["kind"] == "chip"}
    systems = {r["name"] for r in rows if r["kind"] == "system"}
    assert len(chips) >= 45 and len(systems) >= 25
    assert {"gh200", "h20", "h800", "a800-sxm", "a800-pcie", "a100-pcie", "a100-sxm-40gb", "v100-sxm2", "a10g", "a10",
            "t4", "l40", "rtx-6000-ada", "rtx-5090", "b300", "gb300", "mi250x", "mi300a"} <= chips
    assert {"l40s-pcie-8", "l4-pcie-8", "aws-g5-12xlarge", "aws-g5-48xlarge", "a100-pcie-8", "h100-pcie-8",
            "hgx-h800-8", "hgx-h20-8", "gh200-nvl2", "mi325x-8", "gaudi3-8", "aws-trn2-48xlarge", "tpu-v5p-64",
            "tpu-v6e-256", "groq-rack-64", "cerebras-wse3-4", "h100-sxm-4x8", "h200-sxm-4x8",
            "aws-p4d-24xlarge", "aws-p5-48xlarge", "aws-p5e-48xlarge", "aws-g6e-48xlarge", "aws-inf2-48xlarge",
            "aws-trn1-32xlarge", "gcp-a2-highgpu-8g", "gcp-a3-highgpu-8g", "gcp-a3-ultragpu-8g", "gcp-g2-standard-48",
            "gcp-tpu-v5e-8", "gcp-tpu-v6e-8", "azure-nd-h100-v5", "azure-nd-mi300x-v5"} <= systems
    for r in rows:  # hw list: kind, memory, peak, price and its date, calibration (new keys beside the old)
        for k in ("kind", "memory_gb", "bf16_tflops", "usd_per_hour", "price_date", "calibration", "chip_class"):
            assert k in r, (r["name"], k)
        if r["usd_per_hour"] is not None:
            assert r["price_date"], r["name"]


def test_gh200_has_its_lpddr5x_as_a_second_memory_level():
    g = load_chip("gh200")
    lvl = g.memory_level("lpddr5x")
    assert lvl.kind == "host" and lvl.capacity_bytes == pytest.approx(480e9)
    assert g.main_memory.name == "hbm" and g.host_link.bandwidth_bytes_per_s == pytest.approx(450e9)


def test_llmsim_check_passes_on_every_catalog_file(capsys):
    from llmsim.cli import main

    files = [str(p) for sub in ("chips", "systems", "calibrated") for p in sorted((CATALOG / sub).glob("*.yaml"))]
    assert main(["check", *files]) == 0
    assert capsys.readouterr().out.count("ok: ") == len(files)
