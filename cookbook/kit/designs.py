"""The reference designs of 06 (``assets/designs/``, made by ``scripts/make_designs.py``): each page's
HTML (the ground truth) and its rendered PNG, and a hand-drawn sketch of the login page."""

from __future__ import annotations

from pathlib import Path

from cookbook.kit.assets import ASSETS

DESIGNS = ("landing", "pricing", "login", "dashboard", "chinese")
SKETCH = "sketch"


def folder() -> Path:
    """The folder of the reference designs: ``<name>.html`` (ground truth) and ``<name>.png``."""
    return ASSETS / "designs"


def reference(name: str) -> tuple[str, Path]:
    """A reference design's HTML (the ground truth) and the path of its rendered PNG."""
    if name not in DESIGNS:
        raise KeyError(f"unknown design {name!r}; choose from {', '.join(DESIGNS)}")
    return (folder() / f"{name}.html").read_text(encoding="utf-8"), folder() / f"{name}.png"
