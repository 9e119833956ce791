"""The notebooks run top to bottom on the embedded defaults, so they never rot.

Each notebook in notebooks/ is executed in memory with nbclient (a fresh python3 kernel, working
directory notebooks/); a cell that raises fails the test with the cell's traceback. The files are
kept without outputs in git, which is checked too. Needs nbclient, nbformat and ipykernel
(requirements-dev.txt); skipped with that message when they are missing.
"""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
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
def test_stored_without_outputs(path):
    _deps()
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {i} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    _deps()
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{path.name} failed:\n{e}")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # every notebook draws at least one figure
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
