"""The STEM problem set of 10 (``assets/stem/``): specifications drawn with matplotlib so that every given
value is in the picture, the ``Problem`` records, and replies built from the ground truth.
``build()`` writes the committed files; ``load_problems()`` reads them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cookbook.kit.assets import ASSETS

FOLDER = ASSETS / "stem"


@dataclass(frozen=True)
class Problem:
    """One problem with a known answer: the image, the question, the options, the reference."""

    id: str
    kind: str
    image: str
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    labels: tuple[str, ...] = field(default=())  # the given values drawn in the figure

    @property
    def path(self) -> Path:
        """Where the image lies (``assets/stem/<image>``)."""
        return FOLDER / self.image


SPECS: tuple[dict[str, Any], ...] = (
    {"id": "geometry-1", "kind": "geometry", "draw": "right_triangle", "legs": (5, 12), "unit": "cm",
     "question": "The triangle has a right angle. How long is the side c, in cm?", "answer": "13"},
    {"id": "geometry-2", "kind": "geometry", "draw": "triangle_angles", "angles": (48, 67),
     "question": "Two angles of the triangle are marked. What is the angle x, in degrees?", "answer": "65"},
    {"id": "geometry-3", "kind": "geometry", "draw": "right_triangle", "legs": (1, 1), "unit": "m",
     "question": "The triangle has a right angle. How long is the side c, in m? Give an exact value.",
     "answer": "\\sqrt{2}"},
    {"id": "plot-1", "kind": "plot", "draw": "function", "f": (0, 2, -1), "x": (-1, 4),
     "question": "The straight line is the graph of f. What is its slope?", "answer": "2"},
    {"id": "plot-2", "kind": "plot", "draw": "function", "f": (1, -2, -3), "x": (-2, 4),
     "question": "The curve is the graph of f(x) = x^2 + bx + c. What is the smallest value of f(x)?",
     "answer": "-4"},
    {"id": "plot-3", "kind": "plot", "draw": "function", "f": (0, -0.5, 3), "x": (-1, 8),
     "question": "At what x does the straight line cross the x-axis?", "answer": "6"},
    {"id": "table-1", "kind": "table", "draw": "table",
     "header": ("item", "price ($)", "quantity"),
     "rows": (("notebook", "3.50", "4"), ("pen", "1.25", "6"), ("ruler", "2.00", "2")),
     "question": "A student buys everything in the table. How many dollars does she pay in total?",
     "answer": "25.5"},
    {"id": "table-2", "kind": "table", "draw": "table",
     "header": ("month", "rain (mm)"),
     "rows": (("March", "42"), ("April", "57"), ("May", "63"), ("June", "38")),
     "question": "What is the mean monthly rainfall over the four months, in mm?", "answer": "50"},
    {"id": "table-3", "kind": "table", "draw": "table",
     "header": ("ticket", "price ($)"),
     "rows": (("adult", "12"), ("child", "7"), ("senior", "9")),
     "question": "A family buys 2 adult, 3 child and 1 senior ticket. What do they pay, in dollars?",
     "answer": "54"},
    {"id": "choice-1", "kind": "choice", "draw": "circle", "radius": 3, "unit": "cm",
     "question": "What is the area of the circle?",
     "choices": ("6\\pi cm^2", "9\\pi cm^2", "3\\pi cm^2", "36\\pi cm^2"), "answer": "B"},
    {"id": "choice-2", "kind": "choice", "draw": "function", "f": (-1, 0, 4), "x": (-3, 3),
     "question": "Which equation matches the graph?",
     "choices": ("y = x^2 + 4", "y = 4 - x^2", "y = 4x - 1", "y = x^2 - 4"), "answer": "B"},
    {"id": "choice-3", "kind": "choice", "draw": "bars",
     "bars": (("apples", 34), ("pears", 21), ("plums", 45), ("figs", 17)),
     "question": "Which fruit sold the most?",
     "choices": ("apples", "pears", "plums", "figs"), "answer": "C"},
)


def labels(spec: dict[str, Any]) -> tuple[str, ...]:
    """The given values a figure must show for its answer to follow from it."""
    kind = spec["draw"]
    if kind == "right_triangle":
        return tuple(f"{v} {spec['unit']}" for v in spec["legs"]) + ("c",)
    if kind == "triangle_angles":
        return tuple(f"{a}°" for a in spec["angles"]) + ("x",)
    if kind == "function":
        return ()  # the gridlines carry the values; tests check the plotted data instead
    if kind == "table":
        return tuple(spec["header"]) + tuple(cell for row in spec["rows"] for cell in row)
    if kind == "circle":
        return (f"r = {spec['radius']} {spec['unit']}",)
    if kind == "bars":
        return tuple(name for name, _ in spec["bars"]) + tuple(str(v) for _, v in spec["bars"])
    raise ValueError(f"unknown drawing {kind!r}")


def draw(spec: dict[str, Any]) -> Any:
    """A matplotlib Figure for one specification (480x360 pixels at 100 dpi)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 3.6), dpi=100)
    ax = fig.add_subplot()
    kind = spec["draw"]
    if kind in ("right_triangle", "triangle_angles", "circle"):
        ax.set_aspect("equal")
        ax.axis("off")
    if kind == "right_triangle":
        a, b = spec["legs"]
        w, h = (4.0, 4.0 * b / a) if b <= a else (4.0 * a / b, 4.0)
        ax.plot([0, w, 0, 0], [0, 0, h, 0], color="black", lw=2)
        s = 0.08 * max(w, h)
        ax.plot([s, s, 0], [0, s, s], color="black", lw=1)
        ax.text(w / 2, -0.08 * h - 0.1, f"{a} {spec['unit']}", ha="center", va="top", fontsize=13)
        ax.text(-0.1, h / 2, f"{b} {spec['unit']}", ha="right", va="center", fontsize=13)
        ax.text(w / 2 + 0.15, h / 2 + 0.15, "c", ha="left", va="bottom", fontsize=15, style="italic")
        ax.set(xlim=(-1.6, w + 0.6), ylim=(-0.9, h + 0.4))
    elif kind == "triangle_angles":
        p, q = np.radians(spec["angles"])
        base = 5.0
        # apex from the two base angles: tan(p) = y / x, tan(q) = y / (base - x)
        x = base * np.tan(q) / (np.tan(p) + np.tan(q))
        y = x * np.tan(p)
        ax.plot([0, base, x, 0], [0, 0, y, 0], color="black", lw=2)
        ax.text(0.55, 0.12, f"{spec['angles'][0]}°", fontsize=13)
        ax.text(base - 0.55, 0.12, f"{spec['angles'][1]}°", ha="right", fontsize=13)
        ax.text(x, y - 0.55, "x", ha="center", va="top", fontsize=15, style="italic")
        ax.set(xlim=(-0.4, base + 0.4), ylim=(-0.4, y + 0.4))
    elif kind == "function":
        c2, c1, c0 = spec["f"]
        xs = np.linspace(*spec["x"], 200)
        ax.plot(xs, c2 * xs**2 + c1 * xs + c0, color="tab:blue", lw=2, label="f")
        ax.axhline(0, color="black", lw=1)
        ax.axvline(0, color="black", lw=1)
        lo, hi = spec["x"]
        ax.set_xticks(range(int(np.floor(lo)), int(np.ceil(hi)) + 1))
        ax.grid(True, color="0.85")
        ax.set(xlabel="x", ylabel="y")
    elif kind == "table":
        ax.axis("off")
        tab = ax.table(cellText=[list(r) for r in spec["rows"]], colLabels=list(spec["header"]), loc="center",
                       cellLoc="center")
        tab.auto_set_font_size(False)
        tab.set_fontsize(13)
        tab.scale(1.0, 2.0)
    elif kind == "circle":
        import matplotlib.patches as patches

        r = 2.0
        ax.add_patch(patches.Circle((0, 0), r, fill=False, lw=2))
        ax.plot([0, r], [0, 0], color="black", lw=1.5)
        ax.plot([0], [0], "ko", ms=4)
        ax.text(r / 2, 0.15, f"r = {spec['radius']} {spec['unit']}", ha="center", va="bottom", fontsize=13)
        ax.set(xlim=(-2.4, 2.4), ylim=(-2.4, 2.4))
    elif kind == "bars":
        names, values = zip(*spec["bars"], strict=True)
        ax.bar(names, values, color="tab:green")
        for i, v in enumerate(values):
            ax.text(i, v + 0.8, str(v), ha="center", va="bottom", fontsize=11)
        ax.set(ylabel="kg sold", ylim=(0, max(values) * 1.2))
    else:
        raise ValueError(f"unknown drawing {kind!r}")
    fig.tight_layout()
    return fig


def problem(spec: dict[str, Any]) -> Problem:
    """The ``Problem`` record of a specification (its image is ``<id>.png``)."""
    return Problem(id=spec["id"], kind=spec["kind"], image=f"{spec['id']}.png", question=spec["question"],
                   answer=spec["answer"], choices=tuple(spec.get("choices", ())), labels=labels(spec))


def build(folder: Path = FOLDER) -> list[Problem]:
    """Draw every problem into ``folder`` as PNG and write ``answers.json`` beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    for spec in SPECS:
        draw(spec).savefig(folder / f"{spec['id']}.png", metadata={"Software": None})
    problems = [problem(spec) for spec in SPECS]
    rows = [asdict(p) for p in problems]
    (folder / "answers.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return problems


def load_problems(folder: Path = FOLDER) -> list[Problem]:
    """The committed problem set (``assets/stem/answers.json``), in order."""
    rows = json.loads((folder / "answers.json").read_text(encoding="utf-8"))
    return [Problem(**{**r, "choices": tuple(r["choices"]), "labels": tuple(r["labels"])}) for r in rows]


def reference_reply(p: Problem, style: str = "boxed") -> str:
    """A reply built from the ground truth (not a model's): proves the extraction and the scorer."""
    final = {"boxed": f"So the final answer is \\boxed{{{p.answer}}}.", "said": f"The answer is {p.answer}.",
             "bare": p.answer}[style]
    return f"<think>\nThe reference solution to {p.id}.\n</think>\n\n{final}"
