"""The EPR and FG_CME notebooks run top to bottom on the tiny corpus (see test_notebooks.py)."""

import os

import pytest

from tests.test_notebooks import NOTEBOOKS, SYSTEM_NOTEBOOKS, execute_notebook


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if os.path.basename(p) in SYSTEM_NOTEBOOKS],
                         ids=os.path.basename)
def test_system_notebook_executes(path, tmp_path, monkeypatch):
    execute_notebook(path, tmp_path, monkeypatch)
