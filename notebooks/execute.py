"""Execute the notebooks in place, so that they are stored with their outputs (``make notebooks``).

A code host renders the stored outputs (plots included); the test suite re-executes every
notebook (tests/test_notebooks.py). Runs each notebook top to bottom in a fresh python3 kernel
with notebooks/ as the working directory; a failing cell stops with its traceback. Needs
nbclient, nbformat and ipykernel (requirements-dev.txt).

    python notebooks/execute.py                 # all of them
    python notebooks/execute.py 01-quickstart   # some of them
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def execute(path: Path, timeout: int = 300):
    """The notebook at ``path`` executed (a NotebookNode); raises CellExecutionError on a failing cell."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # no timing metadata: a regenerated notebook differs from the stored one only where outputs do
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False, record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def main(argv: list[str]) -> int:
    import nbformat

    paths = sorted(HERE.glob("*.ipynb"))
    if argv:
        paths = [p for p in paths if p.stem in argv or p.name in argv]
    for p in paths:
        print(f"executing {p.name} ...", flush=True)
        nb = execute(p)
        nbformat.write(nb, p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
