"""The notebooks run top to bottom (in this process, on the shared session)."""

from __future__ import annotations

import runpy
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


@pytest.fixture
def session_conf_kept(spark):
    """The shared session's SQL settings as they were: a notebook's settings (its shuffle partitions) reach the
    running session through the factory, and the tests after it on this worker expect the tiny-data ones."""
    before = spark.conf.getAll
    yield
    after = spark.conf.getAll
    for key in after.keys() - before.keys():
        if spark.conf.isModifiable(key):
            spark.conf.unset(key)
    for key, value in before.items():
        if after.get(key) != value and spark.conf.isModifiable(key):
            spark.conf.set(key, value)
    assert spark.conf.get("spark.sql.shuffle.partitions") == before["spark.sql.shuffle.partitions"]


@pytest.mark.e2e
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(spark, session_conf_kept, path, tmp_path, monkeypatch):
    # A valid jupytext notebook that opens in Jupyter, not just a script.
    notebook = jupytext.read(path)
    assert any(cell.cell_type == "code" for cell in notebook.cells)
    monkeypatch.setenv("VOTELAKE_NOTEBOOK_DIR", str(tmp_path))
    namespace = runpy.run_path(str(path), run_name="__main__")
    assert namespace["results"]["score"]["rows"] > 0
