"""The hardware loader: toy chip by hand, overrides, every bad file gives its stated message."""

from pathlib import Path

import pytest

from hwmodels import load_chip, load_system
from hwmodels.chip import interpolate_efficiency
from hwmodels.errors import SpecError
from hwmodels.jsonschema import json_schema
from llmsim.cli import main

DATA = Path(__file__).parent.parent / "data"
TOY = DATA / "toy-chip.yaml"
BAD = sorted((DATA / "bad" / "hw").glob("*.yaml"))
# files that cannot carry their expectation in a comment
NO_COMMENT = {"empty.yaml": "the file is empty", "binary.yaml": "not a text file"}


def test_toy_chip_in_si_units():
    chip = load_chip(TOY)
    assert chip.cores == 100
    assert chip.peak_flops("bf16") == 100e12
    assert chip.peak_flops("fp32", "vector") == 10e12
    hbm = chip.memory_level("hbm")
    assert hbm.capacity_bytes == 10 * 2**30
    assert hbm.bandwidth_bytes_per_s == 1e12
    assert chip.memory_level("sram").total_capacity_bytes(chip.cores) == 100 * 2**20
    assert chip.price_usd_per_hour == pytest.approx(3.6)
    assert chip.main_memory.name == "hbm"


def test_system_of_one_and_toy_system():
    one = load_system(TOY)
    assert one.count == 1 and one.tiers == ()
    sys8 = load_system(DATA / "toy-system.yaml")
    assert sys8.count == 8 and sys8.chip.name == "toy-chip"
    assert sys8.tiers[0].bandwidth_bytes_per_s == 100e9
    assert sys8.usd_per_hour == pytest.approx(8 * 3.6)


def test_overrides_python_and_strings_agree():
    a = load_chip(TOY, {"memory.hbm.bandwidth": "6 TB/s", "compute.matrix.peak.bf16": "200 TFLOP/s"})
    b = load_chip(TOY, ["memory.hbm.bandwidth=6 TB/s", "compute.matrix.peak.bf16=200 TFLOP/s"])
    assert a.memory_level("hbm").bandwidth_bytes_per_s == 6e12 == b.memory_level("hbm").bandwidth_bytes_per_s
    assert a.peak_flops("bf16") == 200e12 == b.peak_flops("bf16")
    c = load_chip(TOY, ["cores=50"])
    assert c.cores == 50
    s = load_system(DATA / "toy-system.yaml", ["memory.hbm.capacity=20 GiB", "tiers.link.latency=3 us"])
    assert s.chip.memory_level("hbm").capacity_bytes == 20 * 2**30
    assert s.tiers[0].latency_s == pytest.approx(3e-6)


@pytest.mark.parametrize("override,fragment", [
    ("memory.hbn.bandwidth=6 TB/s", "did you mean 'hbm'"),
    ("memory.hbm.bandwidth=6 TB", "not a bandwidth unit"),
    ("memry.hbm.bandwidth=6 TB/s", "memry"),
    ("nonsense", "expected PATH=VALUE"),
])
def test_bad_overrides(override, fragment):
    with pytest.raises(SpecError, match=fragment):
        load_chip(TOY, [override])


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_file_gives_its_message(path, capsys):
    if path.name in NO_COMMENT:
        expected = NO_COMMENT[path.name]
    else:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# expect: "), f"{path.name} must state its expected message"
        expected = first[len("# expect: "):]
    with pytest.raises(SpecError) as e:
        load_system(path)
    text = str(e.value)
    assert expected in text
    assert str(path) in text  # every message names the file
    # and the CLI prints it without a traceback, exit 2
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_all_problems_at_once():
    with pytest.raises(SpecError) as e:
        load_chip(DATA / "bad" / "hw" / "unknown-key.yaml", ["cores=0"])
    assert len(e.value.problems) >= 2


def test_line_and_column():
    with pytest.raises(SpecError) as e:
        load_chip(DATA / "bad" / "hw" / "wrong-dimension.yaml")
    p = e.value.problems[0]
    assert p.line == 8 and p.path == "memory[0].bandwidth"


def test_efficiency_table_interpolates_in_log_size():
    table = ((1e6, 0.6), (1e9, 0.9))
    assert interpolate_efficiency(table, 1e3) == 0.6
    assert interpolate_efficiency(table, 1e12) == 0.9
    assert interpolate_efficiency(table, 10**7.5) == pytest.approx(0.75)
    assert interpolate_efficiency(0.8, 5) == 0.8


def test_json_schema_covers_fields():
    s = json_schema()
    chip = s["oneOf"][0]
    assert "memory" in chip["properties"] and "compute" in chip["required"]


def test_cli_show_json(capsys):
    import json
    assert main(["hw", "show", str(TOY), "--json", "--set", "memory.hbm.bandwidth=2 TB/s"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "chip" and d["memory"][1]["bandwidth_bytes_per_s"] == 2e12


def test_loading_is_cached_until_the_file_changes(tmp_path):
    """A hardware file is parsed once per process while unchanged; an edit is seen at once."""
    from hwmodels import load_chip

    src = (Path(__file__).parent.parent / "data" / "toy-chip.yaml").read_text()
    p = tmp_path / "toy-chip.yaml"
    p.write_text(src)
    a = load_chip(str(p))
    assert load_chip(str(p)) is a  # cached: the same object
    assert load_chip(str(p), {"cores": 3}) is not a  # overrides are part of the key
    p.write_text(src + "\n# an edit that changes the size\n")
    assert load_chip(str(p)) is not a
