"""Issue 13's interface requirements as a new user meets them on the command line (audit13): a stack file's
name, requests longer than the model (a what-if in every command), a serving run that served nothing, and
the stack and calibration named in every output. Each test runs the CLI or the function it calls."""

from pathlib import Path

import pytest

from hwmodels.errors import SpecError
from hwmodels.loader import check_files
from hwmodels.stack import STACKS, load_stack
from llmsim.cli import main

TOY = str(Path(__file__).parents[1] / "data" / "toy-chip.yaml")


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_stack_name_must_match_its_file_name(tmp_path):
    """A copy of vllm.yaml under another file name still says `name: vllm`: its predictions would read 'serving
    stack vllm', the default's name. As for chip files, the name must equal the file stem."""
    copy = tmp_path / "my-vllm.yaml"
    copy.write_text((STACKS / "vllm.yaml").read_text())
    problems = check_files([str(copy)])[0][1]
    assert problems and "differs from the file name" in str(problems[0]) and "my-vllm.yaml:4:1" in str(problems[0])
    with pytest.raises(SpecError, match="write name: my-vllm"):
        load_stack(str(copy))
    copy.write_text((STACKS / "vllm.yaml").read_text().replace("name: vllm\n", "name: my-vllm\n", 1))
    assert load_stack(str(copy)).name == "my-vllm"


def test_check_names_stack_among_the_kinds(tmp_path, capsys):
    bad = tmp_path / "vllm.yaml"
    bad.write_text((STACKS / "vllm.yaml").read_text().replace("kind: stack", "kind: stak", 1))
    rc, out, err = _run(capsys, "check", bad)
    assert rc == 2 and "'kind' must be chip, system or stack; got 'stak'" in err
