"""The kit: plumbing no notebook teaches (tiny models, browser, hardware probe, message builders, asset
generators, benchmarks, the export of lesson modules). It imports no lesson and nothing from
``cookbook.runtime``; its modules load on first use (``cb.kit.tiny``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy(package: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``<package>.<name>`` on first use, so ``cb.kit.tiny`` needs no import."""

    def __getattr__(name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"{package}.{name}":
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
            raise

    return __getattr__


__getattr__ = lazy(__name__)
