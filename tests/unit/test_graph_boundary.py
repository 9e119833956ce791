"""workloads/ counts work: it never imports sim/, reports/, matplotlib or torch."""

import ast
from pathlib import Path

FORBIDDEN = ("sim", "reports", "matplotlib", "torch", "llmsim")


def test_workloads_imports_stay_inside_the_boundary():
    root = Path(__file__).resolve().parents[2] / "workloads"
    bad = []
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [f"{f.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not bad, bad
