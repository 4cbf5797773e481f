"""The notebooks run top to bottom (in this process, on the shared session)."""

from __future__ import annotations

import runpy
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


@pytest.mark.e2e
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(spark, path, tmp_path, monkeypatch):
    # A valid jupytext notebook that opens in Jupyter, not just a script.
    notebook = jupytext.read(path)
    assert any(cell.cell_type == "code" for cell in notebook.cells)
    monkeypatch.setenv("VOTELAKE_NOTEBOOK_DIR", str(tmp_path))
    namespace = runpy.run_path(str(path), run_name="__main__")
    assert namespace["results"]["score"]["rows"] > 0
