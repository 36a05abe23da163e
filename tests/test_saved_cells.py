"""Shown in the notebook, saved in the module: a cell marked ``# saved in cookbook/<file>.py`` holds
definitions whose source equals the module's copy, and nothing is saved from two notebooks."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MARK = re.compile(r"#\s*saved in cookbook/(\w+)\.py\s*$")


def saved_cells(path: Path) -> list[tuple[str, str]]:
    """(module name, cell source) for each code cell of a notebook whose first line is the mark."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    out = []
    for cell in cells:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        first = src.splitlines()[0] if src.strip() else ""
        if cell["cell_type"] == "code" and (m := MARK.match(first.strip())):
            out.append((m.group(1), src))
    return out


def definitions(source: str) -> dict[str, str]:
    """Top-level functions and classes of a cell, each with its decorators, as source text."""
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            out[node.name] = "\n".join(lines[start - 1:node.end_lineno])
    return out


def mismatches(module_name: str, cell_source: str) -> list[str]:
    """What differs between a saved cell and its module (empty when they agree)."""
    module = importlib.import_module(f"cookbook.{module_name}")
    defs = definitions(cell_source)
    problems = [] if defs else ["the cell defines no function or class"]
    for name, text in defs.items():
        obj = getattr(module, name, None)
        if obj is None:
            problems.append(f"cookbook/{module_name}.py has no {name}")
            continue
        if inspect.getsource(obj).rstrip() != textwrap.dedent(text).rstrip():
            problems.append(f"{name} differs from cookbook/{module_name}.py")
    return problems


ALL = [(nb, mod, src) for nb in NOTEBOOKS for mod, src in saved_cells(nb)]


def test_notebooks_save_their_lessons():
    """Every lesson notebook (not 00 or 12) saves at least one definition."""
    saving = {nb.name[:2] for nb, _, _ in ALL}
    lessons = {nb.name[:2] for nb in NOTEBOOKS} - {"00", "12"}
    assert lessons <= saving, f"notebooks with no saved cell: {sorted(lessons - saving)}"


@pytest.mark.parametrize(("notebook", "module", "source"), ALL,
                         ids=[f"{nb.name}:{mod}:{i}" for i, (nb, mod, _) in enumerate(ALL)])
def test_saved_cell_equals_module(notebook, module, source):
    assert mismatches(module, source) == []


def test_nothing_is_saved_from_two_notebooks():
    seen: dict[tuple[str, str], str] = {}
    for nb, mod, src in ALL:
        for name in definitions(src):
            key = (mod, name)
            assert seen.get(key, nb.name) == nb.name, f"cookbook/{mod}.py:{name} saved from {seen[key]} and {nb.name}"
            seen[key] = nb.name


def test_a_changed_copy_fails():
    """The check bites: a cell whose last definition gained a line in the notebook only is reported."""
    nb, mod, src = ALL[0]
    last = list(definitions(src))[-1]
    drifted = src.rstrip() + "\n    pass  # a line added in the notebook only\n"
    assert mismatches(mod, src) == []
    assert mismatches(mod, drifted) == [f"{last} differs from cookbook/{mod}.py"]


def test_a_missing_definition_fails():
    assert mismatches("chat", "# saved in cookbook/chat.py\ndef no_such_function():\n    pass\n") == [
        "cookbook/chat.py has no no_such_function"]
