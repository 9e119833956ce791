"""One direction of dependency (docs/architecture.md): hwmodels <- workloads <- sim <- reports <- llmsim.

hwmodels and workloads never import sim or reports; sim never imports reports or matplotlib;
nothing below the front door imports llmsim (the version comes from the package metadata);
nothing imports torch at module level (kernel measurement imports it lazily, inside functions).
Checked with ``ast`` on the source, imports inside functions included, so a stray import fails
here, not in a user's notebook. Cycles between modules: tests/test_import_cycles.py.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "hwmodels": ("workloads", "sim", "reports", "llmsim", "matplotlib", "torch"),
    "workloads": ("sim", "reports", "llmsim", "matplotlib", "torch"),
    "sim": ("reports", "llmsim", "matplotlib", "torch"),
    "reports": ("llmsim", "torch"),
}


def _imports(path: Path, top_level_only: bool):
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_inside_the_boundary(package):
    bad = []
    for f in (ROOT / package).rglob("*.py"):
        for name in _imports(f, top_level_only=False):
            top = name.split(".")[0]
            if top in FORBIDDEN[package] and not (top == "torch"):
                bad.append(f"{f.relative_to(ROOT)}: imports {name}")
        for name in _imports(f, top_level_only=True):
            if name.split(".")[0] == "torch":
                bad.append(f"{f.relative_to(ROOT)}: imports torch at module level")
    assert not bad, "\n".join(bad)
