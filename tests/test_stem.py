"""10_stem_reasoning: answer extraction, the MathVista-style scorer, the streamed split, and the
generated problem set (its ground truth recomputed from what each figure actually draws)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from cookbook import stem
from cookbook.generation import split_thinking
from cookbook.kit import problems

PROBLEMS = problems.load_problems()
BY_ID = {p.id: p for p in PROBLEMS}


# --- extract_answer -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("<think>x</think>\n\nSo c = \\boxed{13}.", "13"),
    ("</think>The area is \\boxed{\\frac{\\sqrt{2}}{2}} square units", "\\frac{\\sqrt{2}}{2}"),  # nested braces
    ("</think>first \\boxed{1}, corrected: \\boxed{2}", "2"),                                   # the last box wins
    ("</think>\\fbox{7}", "7"),
    ("reasoning with \\boxed{99} inside</think>The answer is 65.", "65"),                       # reasoning ignored
    ("</think>The final answer is: -4", "-4"),
    ("</think>**Answer:** B", "B"),
    ("</think>(C)", "C"),
    ("</think>I pick option d because it is largest.", "D"),
    ("</think>Of the four, the correct one is (C).", "C"),                                     # a letter in parentheses
    ("</think>**Final Answer**: **No**, it cannot.", "No"),                                      # bold marker, bold answer
    ("</think>Correct answer: **B. Blue.**", "B"),                                              # a letter leading its option
    ("</think>It is cut \\boxed{12", "It is cut \\boxed{12"),                                 # unclosed box: last line
    ("</think>\n\nline one\n54 dollars.\n", "54 dollars"),
    ("", ""),
])
def test_extract_answer(text, expected):
    assert stem.extract_answer(text) == expected


def test_a_thinking_reply_cut_before_its_answer_has_none():
    cut = "Let me compute the hypotenuse: 5^2 + 12^2 = 169, so the answer is 13 but wait"
    assert stem.extract_answer(cut, thinking=True) == ""
    assert stem.extract_answer(cut) == "13 but wait"            # an Instruct reply is read as it is
    assert stem.extract_answer("<think>started, never closed") == ""


def test_boxed_handles_nesting_and_truncation():
    assert stem.boxed("x \\boxed{a{b{c}}d} y") == "a{b{c}}d"
    assert stem.boxed("\\boxed{a{b}") is None
    assert stem.boxed("no box") is None


# --- the scorer ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("answer", "reference", "right"), [
    ("13", "13", True), ("13.0", "13", True), ("\\frac{26}{2}", "13", True), ("$13$", "13", True),
    ("12", "13", False), ("1.414214", "\\sqrt{2}", True), ("\\sqrt 2", "\\sqrt{2}", True),
    ("1.4", "\\sqrt{2}", False), ("65°", "65", True), ("65^\\circ", "65", True), ("\u22124", "-4", True),
    ("4", "-4", False), ("25.50", "25.5", True), ("51/2", "25.5", True), ("", "13", False),
    ("no idea", "13", False),
])
def test_is_correct_free_form(answer, reference, right):
    assert stem.is_correct(answer, reference) is right


def test_to_option_letter_then_nearest():
    choices = ("6\\pi cm^2", "9\\pi cm^2", "3\\pi cm^2", "36\\pi cm^2")
    assert stem.to_option("B", choices) == "9\\pi cm^2"
    assert stem.to_option("(b).", choices) == "9\\pi cm^2"
    assert stem.to_option("9\\pi", choices) == "9\\pi cm^2"      # nearest by edit distance
    assert stem.to_option("E", choices) == min(choices, key=lambda c: len(c))  # no such letter: nearest text
    assert stem.to_option("", choices) is None


def test_is_correct_multiple_choice():
    p = BY_ID["choice-3"]                                        # plums, letter C
    assert stem.is_correct("C", p.answer, p.choices)
    assert stem.is_correct("plums", p.answer, p.choices)
    assert stem.is_correct("plum", p.answer, p.choices)
    assert not stem.is_correct("A", p.answer, p.choices)
    assert not stem.is_correct("", p.answer, p.choices)


@pytest.mark.parametrize("style", ["boxed", "said", "bare"])
def test_reference_replies_score_100_percent(style):
    answers = [stem.extract_answer(problems.reference_reply(p, style), thinking=True) for p in PROBLEMS]
    assert stem.accuracy(answers, PROBLEMS) == 1.0


def test_accuracy_counts_by_hand():
    answers = [p.answer for p in PROBLEMS]
    answers[0], answers[3], answers[9] = "12", "3", "A"          # three wrong of twelve
    assert len(PROBLEMS) == 12
    assert stem.accuracy(answers, PROBLEMS) == pytest.approx(9 / 12)
    shifted = answers[1:] + answers[:1]
    assert stem.accuracy(shifted, PROBLEMS) < 0.5
    with pytest.raises(ValueError, match="11 answers for 12"):
        stem.accuracy(answers[:-1], PROBLEMS)


def test_prompt_letters_the_options_and_asks_for_a_box():
    text = stem.prompt(BY_ID["choice-1"])
    assert "\nA. 6\\pi cm^2\nB. 9\\pi cm^2\nC. 3\\pi cm^2\nD. 36\\pi cm^2\n" in text
    assert "\\boxed{}" in stem.prompt(BY_ID["geometry-1"]) and "step by step" in stem.prompt(BY_ID["geometry-1"])


# --- split_stream ---------------------------------------------------------------------------------------

TEXT = "Two legs 5 and 12; 25 + 144 = 169.</think>\n\nc = \\boxed{13}"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 100])
def test_split_stream_matches_split_thinking_for_any_chunking(size):
    chunks = [TEXT[i:i + size] for i in range(0, len(TEXT), size)]
    parts = list(stem.split_stream(chunks))
    reasoning = "".join(t for ch, t in parts if ch == "reasoning")
    answer = "".join(t for ch, t in parts if ch == "answer")
    assert (reasoning.strip(), answer.strip()) == split_thinking(TEXT)
    channels = [ch for ch, _ in parts]
    assert channels == sorted(channels, key=["reasoning", "answer"].index)  # never back to reasoning


def test_split_stream_without_the_tag_is_all_reasoning():
    assert list(stem.split_stream(["still ", "thinking <", "/thi"])) == [
        ("reasoning", "still "), ("reasoning", "thinking "), ("reasoning", "</thi")]


# --- the problem set: ground truth from what was drawn -----------------------------------------------

def _texts(fig) -> list[str]:
    from matplotlib.text import Text

    texts = [t.get_text() for t in fig.findobj(Text)]
    texts += [cell.get_text().get_text() for ax in fig.axes for tab in ax.tables for cell in tab.get_celld().values()]
    return [t for t in texts if t]


def _spec(pid: str) -> dict:
    return next(s for s in problems.SPECS if s["id"] == pid)


def _number(label: str) -> float:
    return float(re.search(r"-?\d+(?:\.\d+)?", label).group())


@pytest.mark.parametrize("spec", problems.SPECS, ids=lambda s: s["id"])
def test_every_given_value_is_drawn(spec):
    texts = _texts(problems.draw(spec))
    for label in problems.labels(spec):
        assert label in texts, f"{spec['id']}: {label!r} is not in the figure"


def test_geometry_answers_follow_from_the_drawn_labels():
    for pid in ("geometry-1", "geometry-3"):
        texts = _texts(problems.draw(_spec(pid)))
        legs = [_number(t) for t in texts if re.fullmatch(r"\d+ (cm|m)", t)]
        assert len(legs) == 2
        assert stem.is_correct(f"{math.hypot(*legs):.6f}", BY_ID[pid].answer), pid
    texts = _texts(problems.draw(_spec("geometry-2")))
    angles = [_number(t) for t in texts if t.endswith("°")]
    assert stem.is_correct(str(180 - sum(angles)), BY_ID["geometry-2"].answer)


def test_geometry_figures_have_the_drawn_shape():
    fig = problems.draw(_spec("geometry-1"))
    x, y = fig.axes[0].lines[0].get_data()
    assert (max(x) - min(x)) / (max(y) - min(y)) == pytest.approx(5 / 12)   # legs in proportion
    fig = problems.draw(_spec("geometry-2"))
    x, y = (np.asarray(v, float) for v in fig.axes[0].lines[0].get_data())
    base_left = math.degrees(math.atan2(y[2] - y[0], x[2] - x[0]))
    base_right = math.degrees(math.atan2(y[2] - y[1], x[1] - x[2]))
    assert (base_left, base_right) == (pytest.approx(48), pytest.approx(67))


def _curve(pid: str):
    x, y = problems.draw(_spec(pid)).axes[0].lines[0].get_data()
    return np.asarray(x, float), np.asarray(y, float)


def test_plot_answers_follow_from_the_drawn_curves():
    x, y = _curve("plot-1")
    assert stem.is_correct(f"{np.polyfit(x, y, 1)[0]:.6f}", BY_ID["plot-1"].answer)
    x, y = _curve("plot-2")
    a, b, c = np.polyfit(x, y, 2)
    assert stem.is_correct(f"{c - b * b / (4 * a):.6f}", BY_ID["plot-2"].answer)
    x, y = _curve("plot-3")
    slope, intercept = np.polyfit(x, y, 1)
    assert stem.is_correct(f"{-intercept / slope:.6f}", BY_ID["plot-3"].answer)
    x, y = _curve("choice-2")
    a, b, c = np.round(np.polyfit(x, y, 2), 6)
    p = BY_ID["choice-2"]
    assert (a, b, c) == (-1, 0, 4) and stem.to_option(p.answer, p.choices) == "y = 4 - x^2"


def _table(pid: str) -> list[list[str]]:
    tab = problems.draw(_spec(pid)).axes[0].tables[0]
    cells = tab.get_celld()
    rows = 1 + max(r for r, _ in cells)
    cols = 1 + max(c for _, c in cells)
    return [[cells[r, c].get_text().get_text() for c in range(cols)] for r in range(rows)]


def test_table_answers_follow_from_the_drawn_cells():
    t = _table("table-1")
    assert t[0] == ["item", "price ($)", "quantity"]
    assert stem.is_correct(str(sum(float(r[1]) * int(r[2]) for r in t[1:])), BY_ID["table-1"].answer)
    t = _table("table-2")
    assert stem.is_correct(str(np.mean([float(r[1]) for r in t[1:]])), BY_ID["table-2"].answer)
    price = {r[0]: float(r[1]) for r in _table("table-3")[1:]}
    assert stem.is_correct(str(2 * price["adult"] + 3 * price["child"] + price["senior"]), BY_ID["table-3"].answer)


def test_choice_answers_follow_from_the_drawing():
    p = BY_ID["choice-1"]
    r = _number(next(t for t in _texts(problems.draw(_spec("choice-1"))) if t.startswith("r = ")))
    assert stem.to_option(p.answer, p.choices) == f"{r * r:g}\\pi cm^2"
    fig = problems.draw(_spec("choice-3"))
    ax = fig.axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    names = [t.get_text() for t in ax.get_xticklabels()]
    p = BY_ID["choice-3"]
    assert stem.to_option(p.answer, p.choices) == names[int(np.argmax(heights))]


def test_committed_set_is_what_build_makes(tmp_path):
    made = problems.build(tmp_path)
    assert made == PROBLEMS
    assert json.loads((tmp_path / "answers.json").read_text()) == json.loads((problems.FOLDER / "answers.json").read_text())
    for p in PROBLEMS:
        new = np.asarray(Image.open(tmp_path / p.image).convert("L"), float)
        old = np.asarray(Image.open(p.path).convert("L"), float)
        assert new.shape == old.shape == (360, 480)
        assert np.abs(new - old).mean() < 3, f"{p.image} differs from a fresh drawing"


# --- with the tiny Thinking model -------------------------------------------------------------------

def test_streamed_split_of_a_real_generation(tiny_thinking):
    import cookbook as cb

    model, processor = tiny_thinking
    p = BY_ID["geometry-1"]
    message = cb.messages.user(cb.messages.image(p.path, max_tokens=64), stem.prompt(p))
    reply = cb.chat(model, processor, [message], preset="thinking-stem", max_new_tokens=24, seed=0)
    parts = list(stem.split_stream(cb.stream(model, processor, [message], preset="thinking-stem",
                                             max_new_tokens=24, seed=0)))
    streamed = "".join(t for _, t in parts)
    assert streamed.replace("</think>", "").strip() == reply.text.replace("</think>", "").strip()
    reasoning = "".join(t for ch, t in parts if ch == "reasoning").strip()
    assert reasoning == (reply.reasoning if "</think>" in reply.text else reply.text.strip())
    extracted = stem.extract_answer(reply.text, thinking=True)
    assert extracted == ("" if "</think>" not in reply.text else stem.extract_answer(reply.text))
