"""The notebooks, examples/*.py in jupytext's percent format: keras.io's header, a parameters
cell, checks of their own, plain Python, and every one executed as a notebook (nbclient), as
`make notebooks` does, with its plots inline."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

from zoo import registry

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "examples").glob("*.py"))
LECTURE = ("learning_from_data", "automatic_differentiation", "keras_programming")
HEADER = re.compile(
    r"# (?P<title>[^\n]+)\n\n"
    r"\*\*Title:\*\* (?P=title)<br>\n"
    r"\*\*Author:\*\* (?P<author>[^\n]+)<br>\n"
    r"\*\*Date created:\*\* (?P<created>\d{4}/\d{2}/\d{2})<br>\n"
    r"\*\*Last modified:\*\* (?P<modified>\d{4}/\d{2}/\d{2})<br>\n"
    r"\*\*Description:\*\* (?P<description>\S.+)",
    re.S,
)


def _read(path: Path):
    return jupytext.read(path, fmt="py:percent")


def _code(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_the_lecture_and_every_app_have_a_notebook():
    names = {path.stem for path in NOTEBOOKS}
    expected = {*LECTURE, *(f"app_{spec.name}" for spec in registry.all_specs())}
    assert expected <= names, f"missing: {sorted(expected - names)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_parameters_and_checks(path):
    notebook = _read(path)
    header = HEADER.match(notebook.cells[0].source) if notebook.cells[0].cell_type == "markdown" else None
    assert header, f"{path.name}: the first cell is not keras.io's header (title, author, dates, description)"
    created, modified = (datetime.strptime(header[k], "%Y/%m/%d").date() for k in ("created", "modified"))
    assert created <= modified <= date.today()
    parameters = notebook.cells[1]
    assert parameters.cell_type == "code" and "parameters" in parameters.metadata.get("tags", []), (
        f'{path.name}: the second cell is not the parameters cell (# %% tags=["parameters"])'
    )
    assert any(re.search(r"^\s*assert ", source, re.M) for source in _code(notebook)), f"{path.name} checks nothing"
    assert sum(cell.cell_type == "markdown" for cell in notebook.cells) >= 4, f"{path.name}: too little prose"
    magics = [line for source in _code(notebook) for line in source.splitlines() if line.lstrip()[:1] in ("%", "!")]
    assert not magics, f"{path.name}: IPython magics keep it from running as a plain script: {magics}"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_as_a_notebook(path):
    """Executed cell by cell in a fresh kernel from the repository root; a failing assert fails the test."""
    notebook = _read(path)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # Every plt.show() draws inline: nothing the notebook calls switched matplotlib to a non-interactive backend.
    shows = sum(source.count("plt.show()") for source in _code(notebook))
    pictures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert pictures >= max(shows, 1), f"{path.name}: {pictures} pictures for {shows} plt.show() calls"
