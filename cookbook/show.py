"""Printing results: one table formatter and one pretty-printer for the whole cookbook."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def table(rows: Iterable[Mapping[str, Any]]) -> str:
    """Dict rows as a fixed-width text table; the first row's keys are the columns (02 and later)."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(r) for r in cells)])


class Pretty:
    """Mixin: a notebook shows the object as its ``str()`` (settings, doctor's checkup, plans)."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))
