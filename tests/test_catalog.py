"""The hardware catalog: every file loads, names its sources, and key figures read back in SI units.

Spot checks compare against the vendor figures the YAML files copy (dense peaks, per-direction links).
"""

from pathlib import Path

import pytest
import yaml

from hwmodels import list_hardware, load_chip, load_system
from hwmodels.chip import Chip, System

CATALOG = Path(__file__).parent.parent / "hwmodels" / "catalog"
CHIP_FILES = sorted((CATALOG / "chips").glob("*.yaml"))
SYSTEM_FILES = sorted((CATALOG / "systems").glob("*.yaml"))

REQUIRED_CHIPS = {
    "a100-sxm", "h100-sxm", "h100-pcie", "h200", "b200", "gb200", "l4", "l40s", "rtx-4090",
    "mi300x", "mi325x", "mi355x", "gaudi3", "tpu-v5e", "tpu-v5p", "tpu-v6e", "trainium2",
    "groq-lpu", "cerebras-wse3", "host-cpu-xeon-2vcpu", "epyc-9654", "hypo-sram-infer", "hypo-hbm-infer",
}
REQUIRED_SYSTEMS = {
    "hgx-h100-8", "hgx-a100-8", "hgx-h200-8", "dgx-b200", "gb200-nvl72", "mi300x-8", "tpu-v5e-256",
    "h100-sxm-4x8",
}


def test_catalog_size():
    assert len(CHIP_FILES) >= 18
    assert len(SYSTEM_FILES) >= 6
    assert REQUIRED_CHIPS <= {p.stem for p in CHIP_FILES}
    assert REQUIRED_SYSTEMS <= {p.stem for p in SYSTEM_FILES}


@pytest.mark.parametrize("path", CHIP_FILES, ids=lambda p: p.stem)
def test_every_chip_loads(path):
    chip = load_chip(path.stem)
    assert isinstance(chip, Chip)
    assert chip.name == path.stem
    assert len(chip.source) >= 1 and all(s.strip() for s in chip.source)
    assert chip.cores >= 1
    assert chip.compute and all(u.peak for u in chip.compute)
    assert all(v > 0 for u in chip.compute for v in u.peak.values())
    assert chip.memory and all(m.capacity_bytes > 0 and m.bandwidth_bytes_per_s > 0 for m in chip.memory)
    # dense peaks only: any sparse figure is at least the dense one
    for u in chip.compute:
        for dt, sp in u.sparse_peak.items():
            if dt in u.peak:
                assert sp >= u.peak[dt]
    # the raw YAML: file stem, kind and at least one source, independent of the loader
    raw = yaml.safe_load(path.read_text())
    assert raw["kind"] == "chip" and raw["name"] == path.stem and raw["source"]
    # efficiency figures must say where they come from
    for u in raw["compute"]:
        if "efficiency" in u:
            assert u.get("efficiency_source")
    if raw.get("hypothetical"):
        assert "illustrative" in raw["description"].lower()


@pytest.mark.parametrize("path", SYSTEM_FILES, ids=lambda p: p.stem)
def test_every_system_loads(path):
    system = load_system(path.stem)
    assert isinstance(system, System)
    assert system.name == path.stem
    assert len(system.source) >= 1
    assert system.count >= 2 and system.tiers
    total = 1
    for t in system.tiers:
        total *= t.fanout
        assert t.bandwidth_bytes_per_s > 0
    assert total >= system.count
    raw = yaml.safe_load(path.read_text())
    assert raw["kind"] == "system" and raw["name"] == path.stem and raw["source"]


def test_list_hardware_has_every_file_and_no_errors():
    rows = {r["name"]: r for r in list_hardware()}
    for p in CHIP_FILES + SYSTEM_FILES:
        assert p.stem in rows
        assert "error" not in rows[p.stem], rows[p.stem].get("error")


def _peak(chip, kind, dtype):
    return next(u for u in chip.compute if u.kind == kind).peak[dtype]


def test_h100_sxm_spot_values():
    c = load_chip("h100-sxm")
    assert c.cores == 132
    assert _peak(c, "matrix", "bf16") == pytest.approx(989.4e12)
    assert _peak(c, "matrix", "fp8") == pytest.approx(1978.9e12)
    assert c.unit("matrix").sparse_peak["bf16"] == pytest.approx(1978.9e12)
    assert _peak(c, "vector", "fp32") == pytest.approx(66.9e12)
    hbm = c.memory_level("hbm")
    assert hbm.bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert hbm.capacity_bytes == 84942979072  # the total CUDA reports (79.11 GiB), not the datasheet 80 GB
    smem = c.memory_level("smem")
    assert smem.per == "core" and smem.capacity_bytes == 228 * 1024
    assert c.memory_level("l2").capacity_bytes == pytest.approx(50e6)
    assert c.interconnect.bandwidth_bytes_per_s == pytest.approx(450e9)  # per direction
    assert c.host_link.bandwidth_bytes_per_s == pytest.approx(64e9)
    assert c.tdp_w == pytest.approx(700)
    assert c.launch_overhead_s == pytest.approx(4e-6)


def test_other_chip_spot_values():
    a100 = load_chip("a100-sxm")
    assert _peak(a100, "matrix", "bf16") == pytest.approx(312e12)
    assert a100.memory_level("hbm").bandwidth_bytes_per_s == pytest.approx(2.039e12)
    assert a100.interconnect.bandwidth_bytes_per_s == pytest.approx(300e9)
    h200 = load_chip("h200")
    assert h200.memory_level("hbm").capacity_bytes == 143771 * 2**20  # nvidia-smi's total, not the datasheet 141 GB
    assert h200.memory_level("hbm").bandwidth_bytes_per_s == pytest.approx(4.8e12)
    b200 = load_chip("b200")
    assert _peak(b200, "matrix", "bf16") == pytest.approx(2250e12)
    assert _peak(b200, "matrix", "fp4") == pytest.approx(9000e12)
    assert b200.memory_level("hbm").bandwidth_bytes_per_s == pytest.approx(7.67e12)  # 7,680-bit bus (pytorch/ao #4002)
    mi300x = load_chip("mi300x")
    assert _peak(mi300x, "matrix", "bf16") == pytest.approx(1307.4e12)
    assert mi300x.memory_level("hbm").capacity_bytes == 206141652992  # rocm-smi, 192 GiB less 16 MiB
    assert mi300x.memory_level("infinity_cache").capacity_bytes == pytest.approx(256e6)
    l4 = load_chip("l4")
    assert _peak(l4, "matrix", "fp8") == pytest.approx(242.5e12)  # dense = half the datasheet's sparse 485
    v5e = load_chip("tpu-v5e")
    assert _peak(v5e, "matrix", "bf16") == pytest.approx(197e12)
    assert v5e.memory_level("vmem").capacity_bytes == 128 * 2**20
    assert v5e.memory_level("hbm").bandwidth_bytes_per_s == pytest.approx(819e9)


def test_sram_only_designs_keep_weights_in_sram():
    groq = load_chip("groq-lpu")
    assert groq.main_memory.kind == "sram"
    assert groq.main_memory.capacity_bytes == pytest.approx(230e6)
    assert groq.main_memory.bandwidth_bytes_per_s == pytest.approx(80e12)
    wse = load_chip("cerebras-wse3")
    assert wse.main_memory.kind == "sram" and wse.main_memory.capacity_bytes == pytest.approx(44e9)
    hypo = load_chip("hypo-sram-infer")
    assert hypo.hypothetical and hypo.main_memory.kind == "sram"
    assert hypo.main_memory.capacity_bytes == pytest.approx(1e9)
    hbm = load_chip("hypo-hbm-infer")
    assert hbm.hypothetical
    assert hbm.main_memory.capacity_bytes == 288 * 2**30  # 8 x 36 GiB stacks
    assert hbm.main_memory.bandwidth_bytes_per_s == pytest.approx(8e12)


def test_host_cpus_run_gemms_on_the_vector_unit():
    cpu = load_chip("host-cpu-xeon-2vcpu")
    assert cpu.unit("matrix") is None and cpu.matrix_unit().kind == "vector"
    # 2 cores x 2.6 GHz x 2 (FMA) x 16 lanes x 2 FMA units
    assert cpu.peak_flops("fp32") == pytest.approx(2 * 2.6e9 * 2 * 16 * 2)
    assert cpu.peak_flops("bf16") == pytest.approx(2 * cpu.peak_flops("fp32"))
    assert cpu.memory_level("dram").capacity_bytes == 24 * 2**30
    assert cpu.memory_level("l1").per == "core" and cpu.memory_level("l2").per == "core"
    epyc = load_chip("epyc-9654")
    assert epyc.cores == 96
    assert epyc.memory_level("dram").bandwidth_bytes_per_s == pytest.approx(460.8e9)


def test_system_spot_values():
    hgx = load_system("hgx-h100-8")
    assert hgx.chip.name == "h100-sxm" and hgx.count == 8
    (t,) = hgx.tiers
    assert t.name == "nvlink" and t.fanout == 8 and t.topology == "switch"
    assert t.bandwidth_bytes_per_s == pytest.approx(450e9)
    assert t.in_network_reduction
    assert hgx.usd_per_hour == pytest.approx(55.04)  # 8 x the chip (AWS p5.48xlarge on-demand / 8)
    a100 = load_system("hgx-a100-8")
    assert a100.tiers[0].bandwidth_bytes_per_s == pytest.approx(300e9)
    assert not a100.tiers[0].in_network_reduction
    assert a100.usd_per_hour == pytest.approx(27.44705, rel=1e-5)  # count x chip price (p4de.24xlarge / 8)
    nvl = load_system("gb200-nvl72")
    assert nvl.count == 72 and nvl.tiers[0].fanout == 72
    assert nvl.tiers[0].bandwidth_bytes_per_s == pytest.approx(900e9)
    mi = load_system("mi300x-8")
    assert mi.tiers[0].topology == "fully_connected"
    assert mi.tiers[0].bandwidth_bytes_per_s == pytest.approx(64e9)
    tpu = load_system("tpu-v5e-256")
    assert tpu.count == 256 and tpu.tiers[0].topology == "torus" and tpu.tiers[0].dims == (16, 16)
    multi = load_system("h100-sxm-4x8")
    assert multi.count == 32
    assert [t.name for t in multi.tiers] == ["nvlink", "infiniband"]
    assert [t.fanout for t in multi.tiers] == [8, 4]
    assert multi.tiers[1].bandwidth_bytes_per_s == pytest.approx(50e9)
    assert multi.tiers[1].latency_s == pytest.approx(5e-6)


# ---------------------------------------------------------------------------------------------
# calibration state and class defaults (no chip runs at 100% of datasheet peak without saying so)

from hwmodels.classes import CLASS_SOURCE_PREFIX, chip_classes  # noqa: E402
from hwmodels.errors import SpecError  # noqa: E402


@pytest.mark.parametrize("path", CHIP_FILES, ids=lambda p: p.stem)
def test_every_chip_declares_its_calibration_truthfully(path):
    raw = yaml.safe_load(path.read_text())
    assert raw.get("class") in chip_classes(), "every catalog chip names its efficiency class"
    chip = load_chip(path.stem)
    assert raw.get("calibration") == chip.calibration  # the file's label is what the loader derives
    # no silent 100%: the GEMM unit and the main memory both carry an efficiency below 1 with a source
    for eff, src in ((chip.matrix_unit().efficiency, chip.matrix_unit().efficiency_source),
                     (chip.main_memory.efficiency, chip.main_memory.efficiency_source)):
        assert eff is not None and src
    assert chip.calibration in ("measured", "published", "class-default")
    # every chip says whether its GEMM kernels overlap the output store (file or class default), with a source
    assert isinstance(chip.matrix_unit().epilogue_overlap, bool) and chip.matrix_unit().epilogue_source


def test_class_defaults_fill_only_missing_fields():
    h800 = load_chip("h800")  # a published GEMM figure, no HBM figure of its own
    assert h800.matrix_unit().efficiency == pytest.approx(0.803)  # Bekman's figure stays
    assert h800.efficiency_provenance == {"matrix": "published", "memory": "class-default"}
    cls = chip_classes()["gpu-hbm"]
    assert h800.main_memory.efficiency == pytest.approx(cls.memory_efficiency)
    assert h800.main_memory.efficiency_source.startswith(CLASS_SOURCE_PREFIX + " gpu-hbm")
    h100 = load_chip("h100-sxm")  # its own HBM figure (llmsim's own run) is not replaced by the class's
    assert h100.main_memory.efficiency == pytest.approx(0.90)
    assert h100.efficiency_provenance == {"matrix": "published", "memory": "published"}
    ada = load_chip("rtx-6000-ada")  # no published GEMM or GDDR figure: both fields from gpu-gddr
    assert ada.efficiency_provenance == {"matrix": "class-default", "memory": "class-default"}
    cpu = load_chip("epyc-9654")
    assert cpu.matrix_unit().kind == "vector"  # the class default lands on the unit GEMMs run on
    assert cpu.matrix_unit().efficiency == pytest.approx(chip_classes()["cpu"].matrix_efficiency)
    # an override beats the class default
    o = load_chip("rtx-6000-ada", {"compute.matrix.efficiency": 0.5, "compute.matrix.efficiency_source": "what-if"})
    assert o.matrix_unit().efficiency == 0.5 and o.efficiency_provenance["matrix"] == "published"


def test_gemm_epilogue_overlap_by_generation():
    # Hopper/Blackwell libraries run persistent warp-specialized GEMMs (stated in the files); Ampere-style
    # kernels store after the main loop (the gpu-hbm class default); a field in the file beats the class
    assert load_chip("h100-sxm").matrix_unit().epilogue_overlap is True
    assert load_chip("b200").matrix_unit().epilogue_overlap is True
    a100 = load_chip("a100-sxm").matrix_unit()
    assert a100.epilogue_overlap is False and a100.epilogue_source.startswith(CLASS_SOURCE_PREFIX + " gpu-hbm")
    assert load_chip("tpu-v5e").matrix_unit().epilogue_overlap is True  # asic-hbm: compiler-scheduled DMA
    o = load_chip("a100-sxm", {"compute.matrix.epilogue_overlap": True, "compute.matrix.epilogue_source": "what-if"})
    assert o.matrix_unit().epilogue_overlap is True and o.matrix_unit().epilogue_source == "what-if"
    with pytest.raises(Exception, match="epilogue_source"):
        load_chip("a100-sxm", {"compute.matrix.epilogue_overlap": True})


def test_calibrated_files_are_measured():
    c = load_chip(str(CATALOG / "calibrated" / "h100-sxm-calibrated.yaml"))
    assert c.calibration == "measured"
    s = load_system(str(CATALOG / "calibrated" / "hgx-h100-8-calibrated.yaml"))
    assert s.calibration == "measured"


def test_class_table_is_sourced():
    for c in chip_classes().values():
        assert 0 < c.matrix_efficiency < 1 and 0 < c.memory_efficiency < 1
        assert c.matrix_source and c.memory_source and c.description
        assert isinstance(c.epilogue_overlap, bool) and c.epilogue_source


def test_a_file_without_class_or_efficiency_says_none():
    toy = load_chip(str(Path(__file__).parent / "data" / "toy-chip.yaml"))
    assert toy.calibration == "none" and toy.matrix_unit().efficiency is None


@pytest.mark.parametrize("extra, expect", [
    ({"calibration": "class-default"}, "needs 'class'"),
    ({"calibration": "published"}, "gives no efficiency"),
    ({"class": "gpu-hmb"}, "did you mean 'gpu-hbm'"),
    ({"calibration": "guessed"}, "not one of"),
])
def test_bad_calibration_declarations(tmp_path, extra, expect):
    data = yaml.safe_load((Path(__file__).parent / "data" / "toy-chip.yaml").read_text())
    data.update(extra)
    p = tmp_path / "toy-chip.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as e:
        load_chip(str(p))
    assert expect in str(e.value)


def test_special_unit_on_every_gpu():
    """Every GPU file has a special-function unit: its own (NVIDIA: 16 per SM per clock x SMs x clock; 32 on
    Blackwell Ultra) or its class's (AMD, marked 'class default'); ASIC/dataflow/CPU classes say none."""
    for path in CHIP_FILES:
        raw = yaml.safe_load(path.read_text())
        chip = load_chip(path.stem)
        u = chip.unit("special")
        cls = chip_classes()[raw["class"]]
        if raw["class"] in ("gpu-hbm", "gpu-gddr"):
            assert u is not None and u.peak["fp32"] > 0, path.stem
        else:
            assert cls.special_per_core_clock is None and cls.special_source
            assert u is None, path.stem
    # by hand: A100 108 SMs x 16 x 1.41 GHz; MI300X 304 CUs x 16 x 2.1 GHz (class default); B300 160 x 32 x 2.0 GHz
    assert load_chip("a100-sxm").unit("special").peak["fp32"] == pytest.approx(108 * 16 * 1.41e9, rel=2e-3)
    mi = load_chip("mi300x").unit("special")
    assert mi.peak["fp32"] == pytest.approx(304 * 16 * 2.1e9) and not mi.overlaps_matrix
    assert mi.efficiency_source.startswith(CLASS_SOURCE_PREFIX + " gpu-hbm")
    assert load_chip("b300").unit("special").peak["fp32"] == pytest.approx(160 * 32 * 2.0e9, rel=2e-3)
    assert load_chip("b200").unit("special").overlaps_matrix and not load_chip("l40s").unit("special").overlaps_matrix
