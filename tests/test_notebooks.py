"""Every notebook in notebooks/ runs top to bottom on the tiny synthetic corpus (QUICK = True)."""

import glob
import os
import time

import pytest

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "notebooks", "*.ipynb")))
# The systems' notebooks run from tests/test_notebooks_systems.py: a second file, so that the two
# xdist workers (one file each) share the notebooks.
SYSTEM_NOTEBOOKS = {"epr.ipynb", "fg_cme.ipynb"}


def test_there_are_notebooks():
    names = {os.path.basename(p) for p in NOTEBOOKS}
    assert "quickstart.ipynb" in names, names


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if os.path.basename(p) not in SYSTEM_NOTEBOOKS],
                         ids=os.path.basename)
def test_notebook_executes(path, tmp_path, monkeypatch):
    execute_notebook(path, tmp_path, monkeypatch)


def execute_notebook(path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("KERAS_SER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(path, as_version=4)
    assert "QUICK = True" in nb.cells[1].source, "the parameters cell must default to the quick settings"
    start = time.time()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"{os.path.basename(path)}: {time.time() - start:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Traceback" not in text
