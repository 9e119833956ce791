"""libyaml's parser under llmsim's composer (``hwmodels.yamlio._FastLoader``) reads every text that the
pure-Python loader reads exactly as it does: the same data, the same ``file:line:col`` marks. A text that
libyaml cannot parse is read again by PyYAML, so every parse message stays PyYAML's own.

libyaml is closer to the YAML spec than PyYAML's Python scanner in a few places (a tab as separating
white space, e.g. ``peak: 1.5<TAB># note``; ``?`` keys in flow mappings), so it reads some texts PyYAML
refuses; such a text reads as the spec says, never as something else."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwmodels import yamlio
from hwmodels.errors import SpecError

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CATALOG = sorted((ROOT / "hwmodels" / "catalog").rglob("*.yaml"))
BASE = (ROOT / "hwmodels" / "catalog" / "chips" / "h100-sxm.yaml").read_text(encoding="utf-8")
fast = pytest.mark.skipif(yamlio._FastLoader is None, reason="PyYAML built without libyaml")


def _read(text: str, loader) -> list:
    """(data, marks) of each document of ``text`` read by one loader class."""
    return [(d.data, d.marks) for d in yamlio._load_with(loader, text, "f.yaml")]


@fast
@pytest.mark.parametrize("path", CATALOG, ids=lambda p: p.name)
def test_catalog_files_read_the_same(path):
    text = path.read_text(encoding="utf-8")
    assert _read(text, yamlio._FastLoader) == _read(text, yamlio._Loader)


@fast
def test_parse_error_keeps_pyyaml_message():
    text = "a: 1\nb: [1, 2\nc: 3\n"
    with pytest.raises(SpecError) as fast_err:
        yamlio.load_marked(text, "f.yaml")
    assert "not valid YAML" in str(fast_err.value)
    assert str(fast_err.value) == str(_python_only_error(text))


def _python_only_error(text: str) -> SpecError:
    saved = yamlio._FastLoader
    yamlio._FastLoader = None
    try:
        yamlio.load_marked(text, "f.yaml")
    except SpecError as e:
        return e
    finally:
        yamlio._FastLoader = saved
    raise AssertionError("expected a SpecError")


def _mutate(text: str, pos: int, cut: int, insert: str) -> str:
    pos %= len(text) + 1
    return text[:pos] + insert + text[pos + cut:]


@fast
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(pos=st.integers(0, len(BASE)), cut=st.integers(0, 40),
       insert=st.text(alphabet=st.sampled_from(list(":-[]{},&*!|>'\"#\t\n ?%@`aZ09.e+\\\u00e9\x00\x85")), max_size=12))
def test_mutated_text_reads_the_same(pos, cut, insert):
    text = _mutate(BASE, pos, cut, insert)
    if not text.strip():
        return
    saved = yamlio._FastLoader
    try:
        got = _outcome(text)
        yamlio._FastLoader = None
        want = _outcome(text)
    finally:
        yamlio._FastLoader = saved
    if want[0] == "ok":  # PyYAML reads it: the same data and marks
        assert got == want
    elif got[0] == "error":  # both refuse it (perhaps at different places), each with a message
        assert got[1] and want[1]


def _outcome(text: str):
    try:
        return ("ok", [(d.data, d.marks) for d in yamlio.load_marked(text, "f.yaml")])
    except SpecError as e:
        return ("error", [str(p) for p in e.problems])
