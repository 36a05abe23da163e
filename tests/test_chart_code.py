"""06's chart-to-code step: the generated charts, the code extractor (on the answer Qwen3-VL really gave in the
official mmcode cookbook), the sandbox that runs chart code, and the scorer (1.0 on the reference, less on a
changed chart, 0 with a reason when there is no code)."""

import json
from pathlib import Path

import pytest

from cookbook import design
from cookbook.kit import charts

REAL = [e for e in json.loads((Path(__file__).parent / "fixtures" / "real_answers" / "qwen3vl_mmcode.json")
                              .read_text(encoding="utf-8")) if e["parser"] == "design.extract_code"]


@pytest.fixture(scope="module")
def chart_set():
    return charts.chart_set()


@pytest.fixture(scope="module")
def targets(chart_set):
    return design.run_charts([c.code for c in chart_set])


def test_charts_are_deterministic_and_their_code_draws_their_data(chart_set, targets):
    assert [c.code for c in charts.chart_set()] == [c.code for c in chart_set]
    assert [c.code for c in charts.chart_set(1)] != [c.code for c in chart_set]
    assert [c.kind for c in chart_set] == ["bar", "line", "scatter"]
    for chart, target in zip(chart_set, targets, strict=True):
        assert target.status == "ok" and target.image.size == (600, 400)
        assert set(target.kinds) == {chart.kind}
        assert target.values == chart.values          # what was plotted is the generator's data


def test_extract_code():
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2])"
    assert design.extract_code(f"Sure:\n```python\n{code}\n```\nDone.") == code
    assert design.extract_code(f"```python\nold\n```\n```py\n{code}\n```") == code
    assert design.extract_code(f"```\n{code}\n```") == code
    assert design.extract_code(f"```python\n{code}") == code                  # cut off: the unclosed fence
    assert design.extract_code(f"```python\n{code}\n```\n```bash\npip install x\n```") == code
    for text in ["The chart shows bars.", "```html\n<p>x</p>\n```", "```python\n   \n```", ""]:
        with pytest.raises(ValueError, match="no Python code"):
            design.extract_code(text)
    assert design.extract_html("```html\n<p>x</p>\n```") == "<p>x</p>"       # the shared fence rule


@pytest.mark.parametrize("e", REAL, ids=lambda e: e["id"])
def test_real_chart_answer_extracts_runs_and_draws_its_data(e):
    """The official notebook printed what its extract_last_code_block took; fenced again, extract_code takes
    the same, and the sandbox draws the 20 bars with the values the code lists."""
    assert design.extract_code(f"Here is the code.\n```python\n{e['answer']}\n```\nIt draws the chart.") == \
        e["official"]["python"].strip()
    render = design.run_charts([e["answer"]])[0]
    assert render.status == "ok", render.error
    assert render.kinds == ("bar",) * 20
    assert render.values == (5520, 2100, 1250, 1150, 1090, 938, 431, 151, 310, 200, 61, 1240, 1140, 94, 559, 228,
                             195, 160, 130, 102)
    assert "Downloads of Qwen3 Model Variants by Type" in render.texts and "5520k" in render.texts
    assert render.image.size == (1400, 800)                                  # figsize (14, 8) at 100 dpi


def test_sandbox_refuses_network_stops_loops_and_reports_errors():
    renders = design.run_charts([
        "import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=5)",
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=5)",
        "while True:\n    pass",
        "print('no figure')",
        "raise SystemExit(0)",
        "open('/tmp/../tmp/x', 'w')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])",
    ], timeout_s=1.0)
    assert [r.status for r in renders[:5]] == ["error", "error", "timeout", "no figure", "error"]
    assert "no network" in renders[0].error and "no network" in renders[1].error
    assert renders[5].status == "ok" and renders[5].kinds == ("line",)     # files are not the guard's business


def test_scores_reference_one_changed_less_and_no_code_zero(chart_set, targets):
    answers = [f"```python\n{c.code}```" for c in chart_set]
    bar = chart_set[0]
    changed = bar.code.replace(str(list(bar.values)), str([v + 30 for v in bar.values]))
    retitled = bar.code.replace("Library visits per day", "Visits")
    as_line = bar.code.replace("ax.bar(days, visits", "ax.plot(days, visits")
    scored = design.score_chart_answers(
        answers + [f"```python\n{c}```" for c in (changed, retitled, as_line)] + ["no code here", "```python\n1/0\n```"],
        targets + targets[:1] * 5, timeout_s=10)
    for score, _ in scored[:3]:
        assert (score.ssim, score.kinds, score.text, score.data, score.total) == (1.0, 1.0, 1.0, 1.0, 1.0)
    values, title, line, none, fails = (s for s, _ in scored[3:])
    assert values.data < 0.5 and values.kinds == 1.0 and values.total < 0.9 and values.ssim < 1
    assert title.text < 1 and title.data == 1.0 and 0.8 < title.total < 1
    assert line.kinds == 0.0 and line.data == 1.0 and line.total < 0.9
    assert none.total == 0 and "no Python code" in none.reason and scored[6][1] is None
    assert fails.total == 0 and fails.reason.startswith("error") and scored[7][1].image is None


def test_value_f1_tolerance():
    assert design.value_f1((10.0, 20.0, 30.0), (10.3, 20.0, 29.8)) == 1.0    # within 2% of the range (0.4)
    assert design.value_f1((10.0, 20.0, 30.0), (11.0, 20.0, 30.0)) == pytest.approx(2 / 3)
    assert design.value_f1((10.0, 20.0), (10.0, 20.0, 99.0)) == pytest.approx(0.8)
    assert design.value_f1((), ()) == 1.0 and design.value_f1((1.0,), ()) == 0.0
