"""Qwen3-VL Cookbook: the thin module every notebook imports as ``cb``.

Importing is cheap: torch and transformers are imported inside the functions that need them.
Submodules (``cb.memory``, ``cb.serving``, ...) load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

from cookbook.assets import asset
from cookbook.chat import Reply, chat, inputs, stream
from cookbook.doctor import doctor
from cookbook.generation import PRESETS
from cookbook.hardware import GPU, Hardware, hardware
from cookbook.lineup import recommend_model
from cookbook.loading import load
from cookbook.settings import budget, settings, successor

__all__ = [
    "GPU",
    "PRESETS",
    "Hardware",
    "Reply",
    "asset",
    "budget",
    "chat",
    "doctor",
    "hardware",
    "inputs",
    "load",
    "recommend_model",
    "settings",
    "stream",
    "successor",
]


def __getattr__(name: str) -> Any:
    """Load ``cookbook.<name>`` on first use, so ``cb.memory.table()`` works without an import."""
    if name.startswith("_"):
        raise AttributeError(name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"{__name__}.{name}":
            raise AttributeError(f"module 'cookbook' has no attribute {name!r}") from None
        raise
