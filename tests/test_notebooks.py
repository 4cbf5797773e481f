"""The notebooks run top to bottom in the project's Jupyter kernel, each shows a figure, and none prints known noise.

They run in order, as a reader would: the quick start makes the state (its own
Spark session, in the kernel's process) and the others read it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

ORDER = ("quickstart", "model_analysis", "identity", "campaign_metrics")
NOTEBOOKS = [REPO / "notebooks" / f"{name}.ipynb" for name in ORDER]
# What a figure is in a notebook's outputs: a drawn image, or a chart (Splink's are Vega-Lite in HTML).
FIGURE = ("image/png", "application/vnd.vegalite.v5+json")
NOISE = ("WindowExec", "ObjectStore", "replaced a previously registered function", "Successfully registered model",
         "Downloading artifacts", "Traceback")


def test_the_notebooks_are_what_the_tests_run():
    assert sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb")) == sorted(p.name for p in NOTEBOOKS)
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        assert notebook.metadata.kernelspec.name == "votelake"
        # Kept without outputs: what a reader sees comes from running them.
        assert not [c for c in notebook.cells if c.cell_type == "code" and (c.outputs or c.execution_count)], path


def _figures(notebook) -> int:
    """Outputs that are figures: images, Vega-Lite charts, or HTML embedding one."""
    found = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if any(kind in data for kind in FIGURE) or "vegaEmbed" in str(data.get("text/html", "")):
                found += 1
    return found


@pytest.mark.e2e
def test_the_notebooks_run_in_order_and_each_shows_a_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("VOTELAKE_NOTEBOOK_DIR", str(tmp_path))  # the kernel inherits the environment
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        # Raises CellExecutionError, naming the cell, on any error.
        NotebookClient(notebook, timeout=1800, kernel_name="votelake",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        assert _figures(notebook) >= 1, f"{path.name} drew no figure"
        printed = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", [])
                          if o.get("output_type") == "stream")
        assert not [n for n in NOISE if n in printed], f"{path.name} printed:\n{printed[-3000:]}"
    assert (tmp_path / "notebook.yaml").is_file() and Path(tmp_path / "lakehouse" / "gold").is_dir()
