"""The notebooks run top to bottom on the embedded defaults, so they never rot.

Each notebook in notebooks/ is executed in memory with nbclient (a fresh python3 kernel, working
directory notebooks/); a cell that raises fails the test with the cell's traceback (marked slow).
The files are kept in git executed, with their outputs, so that a code host shows the plots
(``make notebooks`` regenerates them); that and their imports (only ``llmsim``, pandas,
matplotlib and the standard library) are checked too. Needs nbclient, nbformat and ipykernel
(requirements-dev.txt); skipped with that message when they are missing.
"""

import ast
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
ALLOWED_IMPORTS = {"llmsim", "pandas", "matplotlib", "numpy"}
REQUIRED = ["01-quickstart", "02-chip-architect", "03-capacity-plan", "04-validation"]


def _deps():
    missing = []
    for mod in ("nbformat", "nbclient", "ipykernel"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        pytest.skip(f"notebook tests need {', '.join(missing)} (pip install nbclient nbformat ipykernel)")


def test_the_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS][: len(REQUIRED)] == REQUIRED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_with_outputs(path):
    _deps()
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    counts = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"{path.name} cell {i} was not executed (run `make notebooks`)"
            assert not [o for o in cell.outputs if o.output_type == "error"], f"{path.name} cell {i} stored an error"
            counts.append(cell.execution_count)
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not executed top to bottom (`make notebooks`)"
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_uses_only_the_public_api(path):
    _deps()
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for n in names:
                top = n.split(".")[0]
                assert top in ALLOWED_IMPORTS or top in sys.stdlib_module_names, \
                    f"{path.name} cell {i} imports {n}: notebooks use `import llmsim` (extend llmsim's API instead)"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    _deps()
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # run from a clean slate, not on top of the stored outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{path.name} failed:\n{e}")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # every notebook draws at least one figure
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
