"""The modules form layers: no import circle among ``cookbook`` modules, imports inside functions
counted."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "cookbook"


def imports(path: Path, modules: set[str]) -> set[str]:
    """The cookbook modules a file imports anywhere (top level or inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("cookbook.")}
        elif isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 0 and parts[0] != "cookbook":
                continue
            inner = parts[1:] if node.level == 0 else parts
            names = [inner[0]] if inner and inner[0] else [a.name for a in node.names]
            out |= {n for n in names if n in modules}
    return out - {path.stem}


def graph() -> dict[str, set[str]]:
    files = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: imports(path, set(files)) for name, path in files.items()}


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Each module that can reach itself, with one path back to it."""
    found = []
    for start in sorted(g):
        stack = [(start, [start])]
        seen = set()
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


def test_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})[0] == ["a", "b", "c", "a"]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_import_finder_counts_imports_inside_functions(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("from cookbook.a import y\ndef g():\n    from cookbook import b\n    import cookbook.c\n")
    assert imports(f, {"a", "b", "c"}) == {"a", "b", "c"}


def test_no_import_circle():
    assert circles(graph()) == []
