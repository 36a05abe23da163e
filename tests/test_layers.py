"""The house: three floors that import downwards only, no import circle, no name hiding a module, and the
lesson modules generated from the notebooks (``make export``).

Floors, top to bottom: ``cookbook/runtime/`` (what runs the lessons: cb.chat, cb.load, servers) ->
``cookbook/*.py`` (lessons, one per notebook topic) -> ``cookbook/kit/`` (plumbing no notebook teaches).
Imports inside functions count.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

import cookbook
from cookbook.kit import export

PACKAGE = Path(cookbook.__file__).parent
FLOOR = {"runtime": 2, "lesson": 1, "kit": 0}


def floor(module: str) -> str:
    """``kit``, ``runtime`` or ``lesson`` for a dotted module name under cookbook (``cookbook.kit.tiny`` is kit)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("kit", "runtime") else "lesson"


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (package ``__init__`` files excluded)."""
    return {".".join(("cookbook", *p.relative_to(PACKAGE).with_suffix("").parts)): p
            for p in PACKAGE.rglob("*.py") if p.stem != "__init__"}


def imports(path: Path, known: set[str]) -> set[str]:
    """The cookbook modules a file imports anywhere (top level or inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cookbook":
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out |= subs or ({node.module} & known)
    return out


def graph() -> dict[str, set[str]]:
    files = modules()
    return {name: imports(path, set(files)) - {name} for name, path in files.items()}


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Each module that can reach itself, with one path back to it."""
    found = []
    for start in sorted(g):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(g[node]):
                if nxt == start:
                    found.append(path + [start])
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return found


def climbing(g: dict[str, set[str]]) -> list[str]:
    """Imports that go up a floor (kit -> lesson, lesson -> runtime, kit -> runtime)."""
    return [f"{a} imports {b}" for a, targets in sorted(g.items()) for b in sorted(targets)
            if FLOOR[floor(b)] > FLOOR[floor(a)]]


def test_finders_find_what_they_look_for(tmp_path):
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})[0] == ["a", "b", "c", "a"]
    assert circles({"a": {"b"}, "b": set()}) == []
    f = tmp_path / "x.py"
    f.write_text("from cookbook.kit.tiny import y\ndef g():\n    from cookbook import video\n    import cookbook.runtime.engine\n")
    known = {"cookbook.kit.tiny", "cookbook.video", "cookbook.runtime.engine"}
    assert imports(f, known) == known
    assert climbing({"cookbook.kit.tiny": {"cookbook.video"}, "cookbook.video": {"cookbook.kit.tiny"}}) == [
        "cookbook.kit.tiny imports cookbook.video"]


def test_no_import_circle():
    assert circles(graph()) == []


def test_no_import_climbs_a_floor():
    assert climbing(graph()) == []


def names_hiding_modules(package: object) -> list[str]:
    """Attributes of a package that are not modules but share a submodule's name (``cb.chat`` over chat.py)."""
    subs = {m.name for m in pkgutil.iter_modules(package.__path__)}
    public = set(getattr(package, "__all__", [])) | {n for n in vars(package) if not n.startswith("_")}
    return sorted(n for n in public & subs if not inspect.ismodule(getattr(package, n)))


@pytest.mark.parametrize("name", ["cookbook", "cookbook.kit", "cookbook.runtime"])
def test_no_name_hides_a_module(name):
    assert names_hiding_modules(importlib.import_module(name)) == []


def test_a_hiding_name_is_found(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def chat():\n    pass\n")
    (pkg / "chat.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert names_hiding_modules(importlib.import_module("pkg")) == ["chat"]


def test_lesson_modules_are_generated_from_the_notebooks():
    """Every line of cookbook/*.py is a notebook cell's: `make export` would change nothing."""
    assert export.differences() == []


def test_a_changed_module_is_reported(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "cookbook").mkdir()
    cell = {"cell_type": "code", "source": ["# saved in cookbook/x.py\n", "X = 1\n"], "metadata": {}, "outputs": []}
    (tmp_path / "notebooks" / "01_x.ipynb").write_text(
        '{"cells": [{"cell_type": "markdown", "source": ["# 01 · X"], "metadata": {}}, ' + __import__("json").dumps(cell) + "]}")
    assert export.differences(tmp_path) == ["cookbook/x.py is missing"]
    (tmp_path / "cookbook" / "x.py").write_text(export.generate(tmp_path)["x"])
    assert export.differences(tmp_path) == []
    (tmp_path / "cookbook" / "x.py").write_text(export.generate(tmp_path)["x"] + "Y = 2\n")
    assert export.differences(tmp_path) == ["cookbook/x.py differs from its notebook cells"]


NOTEBOOKS = sorted((PACKAGE.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DEFINING = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def test_every_lesson_notebook_saves_code():
    """Every notebook but 00 (set-up) and 12 (troubleshooting) writes a lesson module."""
    saving = {nb.name[:2] for nb in NOTEBOOKS if export.saved_cells(nb)}
    assert {nb.name[:2] for nb in NOTEBOOKS} - {"00", "12"} <= saving


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.name[:2] for nb in NOTEBOOKS])
def test_saved_cells_only_define(notebook):
    """A saved cell defines (imports, constants, functions, classes): a call or a print would run on import."""
    for module, body in export.saved_cells(notebook):
        for node in ast.parse(body).body:
            docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            assert docstring or isinstance(node, DEFINING), f"{notebook.name} -> cookbook/{module}.py line {node.lineno}"


NAMED = re.compile(r"\bcb\.((?:kit\.|runtime\.)?[a-z_0-9]+)(?:\.([A-Za-z_][A-Za-z_0-9]*))?")


def missing_names(text: str) -> list[str]:
    """The ``cb.<module>.<name>`` and ``cb.<name>`` a text mentions that the package does not have."""
    out = []
    for path, name in sorted(set(NAMED.findall(text))):
        obj: object = cookbook
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is None or (name and inspect.ismodule(obj) and not hasattr(obj, name)):
            out.append(f"cb.{path}" + (f".{name}" if name else ""))
    return out


def test_a_missing_name_is_found():
    assert missing_names("cb.video.read_video and cb.chat(...) and cb.kit.tiny.build") == []
    assert missing_names("cb.documents.no_such and cb.no_such_thing") == ["cb.documents.no_such", "cb.no_such_thing"]


DOCS = [*NOTEBOOKS, *PACKAGE.parent.glob("README*.md"), *PACKAGE.parent.glob("docs/*.md"),
        *PACKAGE.parent.glob("assets/**/*.md")]


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_name_a_notebook_or_page_mentions_exists(path):
    """After a move, no cell or page still says cb.documents.document when the kit has it (code and prose)."""
    if path.suffix == ".ipynb":
        text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"])
    else:
        text = path.read_text(encoding="utf-8")
    assert missing_names(text) == []
