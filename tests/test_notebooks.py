"""Every notebook in notebooks/ runs top to bottom (nbclient, a fresh kernel, bounded time), so
that none can rot; each must also print what it claims."""

import glob
import os

import nbclient
import nbformat
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))


def _text(cell):
    return "".join(out.get("text", "") for out in cell.get("outputs", []))


# The smallest settings each notebook runs with here, in place of its cell tagged "parameters"
# (papermill's convention): the suite checks that the notebook works, not how well it trains.
SMALLEST = {"prototype_objective.ipynb": "STEPS, BATCH, COMPARE = 2, 10, False"}


def _with_smallest_settings(notebook, name):
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    assert name in SMALLEST, f"give {name}'s smallest settings in SMALLEST, {__file__}"
    cells[0].source = SMALLEST[name]
    return notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    notebook = _with_smallest_settings(nbformat.read(path, as_version=4), os.path.basename(path))
    # The kernel inherits the environment: it compiles as modules using conftest's
    # unoptimized_xla do, about a third faster here.
    monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": REPO}}).execute()
    outputs = "\n".join(_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    if os.path.basename(path) == "prototype_objective.ipynb":
        assert "KL(x, x) = 0.0" in outputs, outputs
        assert "non-finite steps 0" in outputs, outputs
        assert "P-VAE + histogram KL: test accuracy" in outputs, outputs
        assert "histogram KL of the generated batch" in outputs, outputs
        figures = [out for cell in notebook.cells for out in cell.get("outputs", [])
                   if "image/png" in out.get("data", {})]
        assert figures, "the samples figure was not drawn"


def test_there_is_a_notebook():
    assert any(p.endswith("prototype_objective.ipynb") for p in NOTEBOOKS)
