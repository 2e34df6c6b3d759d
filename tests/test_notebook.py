"""examples/walkthrough.ipynb: stored without outputs, and run top to bottom by a real kernel
(nbclient + ipykernel, from the test extra) on a PATH without Graphviz; any cell that raises
fails the test."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "walkthrough.ipynb"
SVG = "{http://www.w3.org/2000/svg}"

nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra")
nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra")
pytest.importorskip("ipykernel", reason="ipykernel is in the test extra")


def run(notebook, tmp_path, monkeypatch):
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))  # no `dot`: the graphs must render anyway
    monkeypatch.delenv("TINYGRAD_FNN_DOT", raising=False)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    return client.execute()


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert len(code) >= 8
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None


def test_the_notebook_runs_and_shows_the_whole_story(tmp_path, monkeypatch):
    notebook = run(nbformat.read(NOTEBOOK, as_version=4), tmp_path, monkeypatch)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    svgs = [
        [t.text for t in ET.fromstring(o.data["image/svg+xml"]).iter(f"{SVG}text")]
        for o in outputs
        if "image/svg+xml" in o.get("data", {})
    ]
    assert len(svgs) == 3  # forward graph, backward graph, the recorded gradient's graph
    assert "W1" in svgs[0] and "= dZ2 / m (tutorial)" in svgs[1]
    assert sum(line.startswith("vs formula: ") for line in svgs[1]) == 7
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "| gradient | max abs diff |" in text and "Epoch 400, Cost:" in text
    assert "test accuracy:" in text and "H·v, engine:" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the cost curve


def test_a_cell_that_raises_fails_the_run(tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.insert(3, nbformat.v4.new_code_cell("raise ValueError('a broken cell')"))
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="a broken cell"):
        run(notebook, tmp_path, monkeypatch)
