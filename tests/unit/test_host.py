"""Detecting the machine llmsim measure runs on (a fake /proc and /sys), and the starting chip file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from hwmodels.loader import load_hardware
from sim.validation import host as H


def _fake_root(tmp_path, vendor, model, flags, mhz="2600.000", cpus=2, family=25, model_no=17,
               caches=(("1", "Data", "32K", "0"), ("1", "Instruction", "32K", "0"), ("2", "Unified", "1024K", "0"),
                       ("3", "Unified", "32768K", "0-1")), mem_kb=8_000_000) -> Path:
    root = tmp_path / "root"
    blocks = []
    for i in range(cpus):
        blocks.append(f"processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model_no}\n"
                      f"model name\t: {model}\ncpu MHz\t\t: {mhz}\nphysical id\t: 0\ncore id\t\t: {i}\n"
                      f"flags\t\t: {' '.join(flags)}\n")
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "cpuinfo").write_text("\n".join(blocks) + "\n")
    (root / "proc" / "meminfo").write_text(f"MemTotal:       {mem_kb} kB\nMemFree:  1 kB\n")
    for i, (level, typ, size, shared) in enumerate(caches):
        d = root / "sys/devices/system/cpu/cpu0/cache" / f"index{i}"
        d.mkdir(parents=True)
        for name, v in (("level", level), ("type", typ), ("size", size), ("shared_cpu_list", shared)):
            (d / name).write_text(v + "\n")
    return root


EPYC_FLAGS = ["fpu", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni"]


def test_an_unknown_host_gets_a_starting_chip_file(tmp_path):
    """The issue's case: a 2-vCPU AMD EPYC with AVX-512 was labelled as the Xeon entry."""
    root = _fake_root(tmp_path, "AuthenticAMD", "AMD EPYC 9R14", EPYC_FLAGS)
    host = H.detect_cpu(root)
    assert (host.logical_cpus, host.cores, host.vector_bits, host.mhz) == (2, 2, 512, 2600.0)
    assert H.match_cpu(host) is None
    logs = []
    path = H.hardware_for_cpu(str(tmp_path / "host.csv"), root=root, log=logs.append,
                              copy={"bytes_per_s": 40e9, "threads": 2, "nbytes": 2**28, "repeats": 5})
    assert path == str(tmp_path / "host-cpu-amd-epyc-9r14-2cpu.yaml") and Path(path).exists()
    assert any("no catalog entry" in m for m in logs) and any("llmsim calibrate" in m for m in logs)
    chip = load_hardware(path)  # a valid hardware file
    assert chip.cores == 2 and chip.clock_hz == pytest.approx(2.6e9)
    peak = chip.vector_unit().peak
    # 2 cores x 2.6 GHz x 2 (FMA) x 16 fp32 lanes x 2 FMA units; bf16 doubled (AVX512-BF16), fp16 not (no AVX512-FP16)
    assert peak["fp32"] == pytest.approx(332.8e9) and peak["bf16"] == pytest.approx(665.6e9)
    assert peak["fp16"] == pytest.approx(332.8e9) and peak["fp64"] == pytest.approx(166.4e9)
    levels = {m.name: m for m in chip.memory}
    assert levels["l1"].capacity_bytes == 32 * 1024 and levels["l1"].per == "core"
    assert levels["l3"].capacity_bytes == 32 * 2**20 and levels["l3"].per != "core"
    assert levels["dram"].bandwidth_bytes_per_s == pytest.approx(40e9)
    assert levels["dram"].capacity_bytes == pytest.approx(8_000_000 * 1024, rel=1e-3)
    text = " ".join(chip.source)
    for word in ("detected:", "measured:", "derived:", "assumed"):
        assert word in text, word


def test_the_dev_vm_matches_its_catalog_entry(tmp_path):
    flags = EPYC_FLAGS + ["avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"]
    root = _fake_root(tmp_path, "GenuineIntel", "Intel(R) Xeon(R) Processor", flags, family=6, model_no=143)
    assert H.hardware_for_cpu(None, root=root, log=lambda m: None) == "host-cpu-xeon-2vcpu"


def test_dry_run_writes_nothing(tmp_path):
    root = _fake_root(tmp_path, "AuthenticAMD", "AMD EPYC 9R14", EPYC_FLAGS)
    path = H.hardware_for_cpu(str(tmp_path / "h.csv"), write=False, root=root, log=lambda m: None)
    assert not Path(path).exists()


def _fake_torch(name):
    props = SimpleNamespace(name=name, total_memory=48e9, multi_processor_count=100, major=9, minor=0,
                            L2_cache_size=64 * 2**20)
    return SimpleNamespace(cuda=SimpleNamespace(get_device_properties=lambda i: props))


def test_an_unknown_gpu_gets_a_starting_chip_file(tmp_path):
    torch = _fake_torch("NVIDIA Fake X1")
    path = H.hardware_for_gpu({"device_name": "NVIDIA Fake X1", "torch": torch}, str(tmp_path / "gpu.csv"),
                              log=lambda m: None,
                              measure=lambda t: (2e12, {"bf16": (5e14, "fake GEMM"), "fp16": (5e14, "fake GEMM")}))
    chip = load_hardware(path)
    assert chip.cores == 100 and chip.matrix_unit().peak["bf16"] == pytest.approx(5e14)
    hbm = chip.main_memory
    assert hbm.capacity_bytes == pytest.approx(48e9) and hbm.bandwidth_bytes_per_s == pytest.approx(2e12)
    assert "detected:" in " ".join(chip.source) and "measured:" in " ".join(chip.source)


def test_a_known_gpu_keeps_its_catalog_name():
    ctx = {"device_name": "NVIDIA H100 80GB HBM3", "torch": _fake_torch("NVIDIA H100 80GB HBM3")}
    assert H.hardware_for_gpu(ctx, None, log=lambda m: None, measure=None) == "h100-sxm"
