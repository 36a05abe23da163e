"""Maths and science problems from images, and checking a Thinking model's final answer (10).

The lesson (saved from 10_stem_reasoning): how to ask (``prompt``), how to watch the reasoning apart
from the answer (``split_stream``), how to take the final answer out of a long reply
(``extract_answer``) and how to check it the way MathVista and MathVision evaluations do
(``to_option``, ``is_correct``). The plumbing below it draws the problem set with matplotlib, so
every answer is known: ``SPECS`` -> ``draw`` -> ``build`` writes ``assets/stem/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cookbook.kit.assets import ASSETS

FOLDER = ASSETS / "stem"
LETTERS = "ABCDEFGH"


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


# ---------------------------------------------------------------------------------------------
# The lesson: saved from 10_stem_reasoning
# ---------------------------------------------------------------------------------------------

def prompt(problem: Problem) -> str:
    """The question as the model sees it: options lettered, and where to put the final answer (10)."""
    text = problem.question
    if problem.choices:
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(problem.choices))
        return f"{text}\n{options}\nAnswer with the option's letter, in \\boxed{{}} at the end."
    return f"{text}\nPlease reason step by step, and put your final answer within \\boxed{{}}."


def split_stream(chunks: Iterable[str], close: str = "</think>") -> Iterator[tuple[str, str]]:
    """Label streamed text ``("reasoning", piece)`` until ``close``, then ``("answer", piece)`` (10).

    A chunk may end in the middle of the tag, so a possible start of it is held back one chunk.
    """
    channel, held = "reasoning", ""
    for chunk in chunks:
        text = held + chunk
        if channel == "reasoning" and close in text:
            before, after = text.split(close, 1)
            if before:
                yield channel, before
            channel, held = "answer", ""
            text = after
        keep = 0
        if channel == "reasoning":  # hold back a tail that could be the start of the tag
            keep = max((n for n in range(1, len(close)) if text.endswith(close[:n])), default=0)
        held = text[len(text) - keep:] if keep else ""
        if text[:len(text) - keep]:
            yield channel, text[:len(text) - keep]
    if held:
        yield channel, held


def boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces kept (10)."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j].strip()
    return None  # cut before the closing brace


def extract_answer(text: str, thinking: bool = False) -> str:
    """The final answer of a reply, after ``</think>`` (10): the last ``\\boxed{}``/``\\fbox{}``; else the
    last "answer is X" / "Answer: X" / "Final Answer: X", bold allowed ("**Final Answer**: **No**, ..."
    gives "No"); else "option C", "choice (C)", "... is (C)"; else the last line. A letter alone or
    before its option's text ("(C)", "B. Blue.") comes back as the letter. ``thinking=True``: no
    ``</think>`` means the budget cut the reasoning, so "" comes back.
    """
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    elif thinking or "<think>" in text:
        return ""
    text = text.strip()
    found = boxed(text)
    if found is not None:
        return found
    marker = r"(?:final answer|answer)\**\s*(?:is\b|:)\**[:\s]*(?:\*\*(?P<bold>[^*\n]+?)\*\*|(?P<plain>[^\n]+))"
    said = list(re.finditer(marker, text, flags=re.IGNORECASE))
    if said:
        answer = said[-1].group("bold") or said[-1].group("plain")
        answer = answer.strip().strip("*").strip().rstrip(".").strip()
    else:
        named = list(re.finditer(r"(?:option|choice)\s*\(?([A-H])\)?(?![A-Za-z])|\bis\s+\(([A-H])\)", text, re.IGNORECASE))
        if named:
            return (named[-1].group(1) or named[-1].group(2)).upper()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        answer = lines[-1].rstrip(".") if lines else ""
    letter = re.fullmatch(r"\(?([A-H])\)?(?:[.:)]\s*.*)?", answer, flags=re.DOTALL)
    return letter.group(1) if letter else answer


def to_option(answer: str, choices: Sequence[str]) -> str | None:
    """MathVista's rule: an option letter picks that option, else the nearest option by edit distance (10).

    One step before the edit distance: when exactly one option of three or more characters is
    quoted in the answer ("... the sequence is Turn Left, Turn Right."), that option is taken.
    An empty answer picks nothing (MathVista would still pick the shortest option).
    """
    from rapidfuzz.distance import Levenshtein

    answer = answer.strip()
    letter = re.fullmatch(r"\(?([A-Ha-h])\)?[.:]?", answer)
    if letter and LETTERS.index(letter.group(1).upper()) < len(choices):
        return choices[LETTERS.index(letter.group(1).upper())]
    if not answer:
        return None
    quoted = [c for c in choices if len(c) >= 3 and re.search(rf"(?<!\w){re.escape(c)}(?!\w)", answer, re.IGNORECASE)]
    if len(quoted) == 1:
        return quoted[0]
    return min(choices, key=lambda c: Levenshtein.distance(answer, c))


def is_correct(answer: str, reference: str, choices: Sequence[str] = ()) -> bool:
    """Is an extracted answer right? Options by ``to_option``; maths by ``math-verify`` (10).

    Numbers and LaTeX are compared as values: 13 = 13.0 = \\frac{26}{2}, \\sqrt{2} = 1.414214.
    """
    from math_verify import parse, verify

    if choices:
        picked = to_option(answer, choices)
        return picked is not None and picked == to_option(reference, choices)

    def as_math(text: str) -> list[Any]:
        text = text.replace("\u2212", "-").replace("°", "^\\circ").strip()
        if "\\" in text and "$" not in text:
            text = f"${text}$"
        return parse(text)

    gold, pred = as_math(reference), as_math(answer)
    return bool(gold) and bool(pred) and verify(gold, pred)


# ---------------------------------------------------------------------------------------------
# The problem set: specifications, drawing, building, loading (plumbing, not a lesson)
# ---------------------------------------------------------------------------------------------

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


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


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
        ax.set_xlim(-1.6, w + 0.6)
        ax.set_ylim(-0.9, h + 0.4)
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
        ax.set_xlim(-0.4, base + 0.4)
        ax.set_ylim(-0.4, y + 0.4)
    elif kind == "function":
        c2, c1, c0 = spec["f"]
        xs = np.linspace(*spec["x"], 200)
        ax.plot(xs, c2 * xs**2 + c1 * xs + c0, color="tab:blue", lw=2, label="f")
        ax.axhline(0, color="black", lw=1)
        ax.axvline(0, color="black", lw=1)
        lo, hi = spec["x"]
        ax.set_xticks(range(int(np.floor(lo)), int(np.ceil(hi)) + 1))
        ax.grid(True, color="0.85")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
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
        ax.set_xlim(-2.4, 2.4)
        ax.set_ylim(-2.4, 2.4)
    elif kind == "bars":
        names = [n for n, _ in spec["bars"]]
        values = [v for _, v in spec["bars"]]
        ax.bar(names, values, color="tab:green")
        for i, v in enumerate(values):
            ax.text(i, v + 0.8, str(v), ha="center", va="bottom", fontsize=11)
        ax.set_ylabel("kg sold")
        ax.set_ylim(0, max(values) * 1.2)
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
    problems = []
    for spec in SPECS:
        draw(spec).savefig(folder / f"{spec['id']}.png", metadata={"Software": None})
        problems.append(problem(spec))
    rows = [asdict(p) for p in problems]
    (folder / "answers.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return problems


def load_problems(folder: Path = FOLDER) -> list[Problem]:
    """The committed problem set (``assets/stem/answers.json``), in order."""
    rows = json.loads((folder / "answers.json").read_text(encoding="utf-8"))
    return [Problem(**{**r, "choices": tuple(r["choices"]), "labels": tuple(r["labels"])}) for r in rows]


def reference_reply(p: Problem, style: str = "boxed") -> str:
    """A reply built from the ground truth (not a model's): proves the extraction and the scorer."""
    final = {"boxed": f"So the final answer is \\boxed{{{p.answer}}}.",
             "said": f"The answer is {p.answer}.",
             "bare": p.answer}[style]
    return f"<think>\nThe reference solution to {p.id}.\n</think>\n\n{final}"


def accuracy(answers: Sequence[str], problems: Sequence[Problem]) -> float:
    """Share of extracted answers that ``is_correct`` judges right (0..1)."""
    if len(answers) != len(problems):
        raise ValueError(f"{len(answers)} answers for {len(problems)} problems")
    hits = [is_correct(a, p.answer, p.choices) for a, p in zip(answers, problems, strict=True)]
    return sum(hits) / len(hits) if hits else 0.0
