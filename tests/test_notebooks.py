"""Notebook hygiene: numbered names, the shared template, stored without outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
SECTIONS = ("## Reading the answer", "## Pitfalls", "## Exercises", "## Next steps")
BOX = ("**Time to run:**", "**Hardware:**", "**Models:**", "**Prerequisites:**")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert "00_setup.ipynb" in names and "01_first_image_chat.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_name_and_title(path):
    match = re.fullmatch(r"(\d\d)_[a-z0-9_]+\.ipynb", path.name)
    assert match, f"{path.name}: expected NN_topic.ipynb"
    first = _load(path)["cells"][0]
    assert first["cell_type"] == "markdown"
    assert _source(first).startswith(f"# {match.group(1)} · "), "first cell: '# NN · Title'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_clean(path):
    nb = _load(path)
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"cell {i} has outputs"
        assert not cell.get("metadata"), f"cell {i} has metadata {cell.get('metadata')}"
        assert cell.get("id"), f"cell {i} has no id (nbformat 4.5 requires one; add it when inserting a cell)"
    assert len({c["id"] for c in nb["cells"]}) == len(nb["cells"]), "two cells share an id"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_template_sections(path):
    cells = _load(path)["cells"]
    box = _source(cells[1])
    assert cells[1]["cell_type"] == "markdown" and box.lstrip().startswith(">")
    assert all(key in box for key in BOX), f"the box needs {BOX}"
    code = [_source(c) for c in cells if c["cell_type"] == "code"]
    assert "import cookbook as cb" in code[0] and "cb.settings()" in code[0], "first code cell: setup"
    headings = [line for c in cells if c["cell_type"] == "markdown" for line in _source(c).splitlines()]
    positions = [next((i for i, h in enumerate(headings) if h.startswith(s)), None) for s in SECTIONS]
    assert None not in positions, f"missing sections: {[s for s, p in zip(SECTIONS, positions, strict=True) if p is None]}"
    assert positions == sorted(positions), "sections out of order"
    md = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    assert "<details>" in md, "exercises need collapsed solutions"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_do_not_branch_on_smoke_mode(path):
    code = "\n".join(_source(c) for c in _load(path)["cells"] if c["cell_type"] == "code")
    assert "COOKBOOK_MODEL" not in code and ".smoke" not in code, "use cb.budget() instead"
    assert "sys.path" not in code
