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
    """Mixin: a notebook shows the object as its ``str()`` (doctor's checkup, recommendations, plans) (00)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # IPython takes the first of _repr_pretty_ / __repr__ it meets walking the MRO, and a dataclass
        # writes __repr__ into each class: so each subclass gets _repr_pretty_ in its own namespace.
        super().__init_subclass__(**kwargs)
        cls._repr_pretty_ = Pretty._repr_pretty_

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))
