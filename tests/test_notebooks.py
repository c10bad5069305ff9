"""The read-along notebooks (notebooks/*.ipynb): each one runs top to bottom without an error,
and is stored without outputs.

Executing needs nbformat, nbclient, ipykernel and matplotlib: required test dependencies
(requirements-dev.txt), imported plainly, so a missing one is an error, never a skip.
Each notebook runs in a fresh ``python3`` kernel (the ipykernel of this interpreter), in the
notebook's own folder, with IPython's and Jupyter's runtime files kept in a temporary directory.
"""
import json
from pathlib import Path

import ipykernel  # noqa: F401  (the kernel the notebooks run in)
import matplotlib  # noqa: F401  (the notebooks plot)
import nbclient
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 120  # seconds per cell; each notebook is meant to run in a few seconds in total


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    """Outputs (plots as base64 PNG) make the repository heavy and the diffs unreadable:
    clear them before committing (Jupyter: Edit > Clear Outputs of All Cells, or
    ``jupyter nbconvert --clear-output --inplace notebooks/*.ipynb``)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb.get("nbformat") == 4, f"{path.name}: not an nbformat v4 notebook"
    dirty = [i for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    # The kernel inherits this environment: plots go to the inline backend (never a window), and
    # IPython's history and the kernel's connection file go to tmp_path, not the home directory.
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors
