"""The package's own rules: public code documented and annotated, cheap to import, one reader of the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MODULES = sorted((Path(__file__).parent.parent / "cookbook").rglob("*.py"))
HEAVY = {"torch", "torchvision", "transformers", "vllm", "qwen_vl_utils", "av", "matplotlib", "openai"}


def _public(tree: ast.Module):
    for node in tree.body:
        overload = any(getattr(d, "id", None) == "overload" for d in getattr(node, "decorator_list", []))
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_") and not overload:
            yield node
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    is_property = any(getattr(d, "id", None) == "property" for d in getattr(member, "decorator_list", []))
                    if isinstance(member, ast.FunctionDef) and not member.name.startswith("_") and not is_property:
                        yield member


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_public_functions_are_documented_and_annotated(path):
    problems = []
    for node in _public(ast.parse(path.read_text())):
        doc = ast.get_docstring(node)
        if not doc:
            problems.append(f"{node.name}: no docstring")
        elif len(doc.strip().splitlines()) > 6:
            problems.append(f"{node.name}: docstring longer than 6 lines")
        if isinstance(node, ast.FunctionDef):
            args = [a for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
            missing = [a.arg for a in args if a.annotation is None]
            if missing or node.returns is None:
                problems.append(f"{node.name}: missing annotations {missing or ''}{' return' if node.returns is None else ''}")
    assert not problems, f"{path.name}: {problems}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_heavy_import_at_module_top(path):
    top = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            top |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    assert not top & HEAVY, f"{path.name} imports {sorted(top & HEAVY)} at module top: import inside the function"


def _environment_reads(tree: ast.AST) -> list[int]:
    """Lines that read a variable: os.getenv(...), os.environ.get(...), os.environ[...] (passing the
    whole environment on to a child process, dict(os.environ, ...), is not reading a setting)."""
    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "getenv" or (node.func.attr in ("get", "setdefault") and is_environ(node.func.value)):
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load):
            lines.append(node.lineno)
    return lines


def test_environment_reader_finds_reads():
    code = "import os\na = os.getenv('A')\nb = os.environ.get('B')\nc = os.environ['C']\nd = dict(os.environ, E='1')\n"
    assert _environment_reads(ast.parse(code)) == [2, 3, 4]


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "environment.py"], ids=lambda p: p.name)
def test_only_kit_environment_reads_the_environment(path):
    assert _environment_reads(ast.parse(path.read_text())) == [], f"{path.name} reads the environment: use cookbook.kit.environment"
