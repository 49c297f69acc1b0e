"""examples/quickstart.ipynb runs headless, every cell without an error."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_notebook_runs_without_errors(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3, "the pentagon, the sparsity figure and the loss curves"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "a pentagon" in text and text.count(": mean loss ") >= 2
