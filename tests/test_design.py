"""06 UI to code: HTML extraction, the safe renderer against hostile pages (a real Chromium), the
Design2Code-style score's sanity cases, and the refine loop."""

from __future__ import annotations

import asyncio
import re
import time

import numpy as np
import pytest
from PIL import Image

import cookbook as cb
from cookbook.design import extract_html

D = cb.design
K = cb.kit.designs
needs_chromium = pytest.mark.skipif(cb.kit.browser.chromium_executable() is None, reason=cb.kit.browser.INSTALL_HINT)


# --- extraction ------------------------------------------------------------------------------

PAGE = "<!DOCTYPE html>\n<html><body><h1>Hi</h1></body></html>"


@pytest.mark.parametrize(("text", "expected"), [
    (f"Here is the page:\n```html\n{PAGE}\n```\nIt uses flexbox.", PAGE),
    (f"```html\n<p>draft</p>\n```\nBetter:\n```html\n{PAGE}\n```", PAGE),
    (f"```html\n{PAGE}\n```\nand the styles alone:\n```css\nh1 {{ color: red; }}\n```", PAGE),
    (f"```\n{PAGE}\n```", PAGE),
    (f"```HTML title=index.html\n{PAGE}\n```", PAGE),
    (f"Sure!\n```html\n{PAGE}\n<!-- the answer was cut here", PAGE + "\n<!-- the answer was cut here"),
    (f"The code is {PAGE} as requested.", PAGE),
    ("<html><body><p>no end tag", "<html><body><p>no end tag"),
])
def test_extract_html(text, expected):
    assert extract_html(text) == expected


@pytest.mark.parametrize("text", ["I cannot see the image.", "```python\nprint('hi')\n```", "```html\n\n```", ""])
def test_no_html_raises_and_quotes_the_text(text):
    with pytest.raises(ValueError, match="no HTML code") as err:
        extract_html(text)
    assert repr(text[:200]) in str(err.value)


def test_long_answers_are_quoted_shortened():
    with pytest.raises(ValueError) as err:
        extract_html("blah " * 500)
    assert len(str(err.value)) < 300 and str(err.value).endswith("...'")


# --- one browser for the module --------------------------------------------------------------

@pytest.fixture(scope="module")
def run():
    """Run a coroutine function with the module's Chromium: ``run(lambda browser: ...)``."""
    if cb.kit.browser.chromium_executable() is None:
        pytest.skip(cb.kit.browser.INSTALL_HINT)
    loop = asyncio.new_event_loop()
    manager = cb.kit.browser.launch()
    browser = loop.run_until_complete(manager.__aenter__())
    yield lambda fn: loop.run_until_complete(fn(browser))
    loop.run_until_complete(manager.__aexit__(None, None, None))
    loop.close()


def render(run, html, **kw):
    return run(lambda b: D.render(b, html, **kw))


# --- the renderer against hostile pages ------------------------------------------------------

def test_no_script_runs(run):
    shot = render(run, '<p>static</p><script>document.body.innerHTML = "<h1>pwned</h1>"</script>')
    assert [b.text for b in shot.blocks] == ["static"]


def test_no_request_leaves(run):
    shot = render(run, '<p>pic</p><img src="http://198.51.100.7/a.png">'
                       '<link rel="stylesheet" href="https://cdn.example.com/x.css">'
                       '<iframe src="http://127.0.0.1:9/"></iframe><div style="background:url(http://evil.test/b.png)">x</div>')
    assert sorted(shot.blocked) == ["http://127.0.0.1:9/", "http://198.51.100.7/a.png",
                                    "http://evil.test/b.png", "https://cdn.example.com/x.css"]


@pytest.mark.parametrize("target", ["http://198.51.100.7/x", "data:text/html,<p>gone</p>"])  # data: passes the router
def test_meta_refresh_does_not_replace_the_page(run, target):
    shot = render(run, f'<head><META HTTP-EQUIV="Refresh" content="0;url={target}"></head><body><p>stay</p></body>')
    assert [b.text for b in shot.blocks] == ["stay"]
    assert shot.blocked == ()


def test_huge_page_is_capped(run):
    shot = render(run, '<div style="height:200000px">top</div><p>bottom</p>', max_height=1500)
    assert shot.image.size == (D.WIDTH, 1500)
    assert shot.truncated and shot.page_height > 200000
    assert [b.text for b in shot.blocks] == ["top"]  # text below the cap is not scored


def test_endless_animation_is_stopped(run):
    page = ("<style>@keyframes s { to { transform: translateX(900px) } }"
            "div { animation: s .5s infinite linear; width: 80px; height: 80px; background: red }</style><div></div>")
    start = time.perf_counter()
    first, second = render(run, page), render(run, page)
    assert time.perf_counter() - start < 20
    assert np.array_equal(np.asarray(first.image), np.asarray(second.image))


def test_time_limit_holds_and_the_browser_survives(run):
    start = time.perf_counter()  # this page needs over a minute on a 2-core machine
    with pytest.raises(TimeoutError, match="longer than 1.0 s"):
        render(run, "<p>x</p>" * 100_000, timeout_s=1.0)
    assert time.perf_counter() - start < 8
    assert [b.text for b in render(run, "<p>after</p>").blocks] == ["after"]


def test_blocks_carry_box_and_colour(run):
    shot = render(run, '<body style="margin:0"><p style="margin:0;position:absolute;left:640px;top:400px;'
                       'color:rgb(200, 10, 30);font:20px DejaVu Sans">Hello</p><p style="display:none">hidden</p>'
                       '<p style="visibility:hidden">ghost</p><p>  \n </p><style>p { }</style></body>')
    (block,) = shot.blocks
    assert block.text == "Hello" and block.color == (200, 10, 30)
    assert block.box[0] == pytest.approx(0.5, abs=0.002) and block.box[1] == pytest.approx(0.5, abs=0.01)


# --- the score -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def references(run):
    return {name: render(run, K.reference(name)[0]) for name in K.DESIGNS}


def perfect(score) -> bool:
    return ((score.block, score.text, score.position, score.color, score.ssim) == (1.0, 1.0, 1.0, 1.0, 1.0)
            and score.total == pytest.approx(1.0) and not score.missing and not score.extra)


@pytest.mark.parametrize("name", K.DESIGNS)
def test_reference_scores_one_against_itself_and_matches_its_png(references, name):
    shot, png = references[name], K.reference(name)[1]
    assert perfect(D.visual_score(shot, shot)), str(D.visual_score(shot, shot))
    assert D.ssim(Image.open(png).convert("RGB"), shot.image)[0] > 0.99, "run scripts/make_designs.py"


def test_a_fresh_render_scores_one(run, references):
    # the dashboard repeats texts ("Paid") and has a table: a second render must pair every block again
    score = D.visual_score(references["dashboard"], render(run, K.reference("dashboard")[0]))
    assert perfect(score), str(score)


def changed(html: str) -> dict[str, tuple[str, str]]:
    """Controlled changes to a page, each with the component it must lower."""
    style = lambda css: html.replace("</head>", f"<style>{css}</style></head>", 1)  # noqa: E731
    return {
        "moved block": (style("h1 { position: relative; left: 160px; top: 40px; }"), "position"),
        "changed colour": (style("h1 { color: #e11d48 !important; }"), "color"),
        "missing text": (re.sub(r"<p\b[^>]*>.*?</p>", "", html, count=1, flags=re.S), "block"),
        "extra block": (html.replace("</body>", "<p>A paragraph that is not in the design.</p></body>"), "block"),
        "reworded heading": (re.sub(r"(<h1[^>]*>)(.*?)(</h1>)", r"\1\2!\3", html, count=1), "text"),
    }


@pytest.mark.parametrize("name", ["login"])
def test_controlled_changes_lower_their_component_and_the_total(run, references, name):
    for change, (html, component) in changed(K.reference(name)[0]).items():
        score = D.visual_score(references[name], render(run, html))
        assert getattr(score, component) < 1 - 1e-6, f"{change} left {component} at {getattr(score, component)}"
        assert score.total < 1 - 1e-6, change


def test_unrelated_page_scores_low(references):
    score = D.visual_score(references["landing"], references["chinese"])
    assert score.total < 0.5 and score.block == 0.0 and score.reason == "no text block in common"


def test_feedback_names_what_differs(run, references):
    html = K.reference("login")[0]
    variant = html.replace("Welcome back", "Hello there").replace("</head>", "<style>button { color: #000 }</style></head>")
    text = D.feedback(D.visual_score(references["login"], render(run, variant)))
    assert 'missing text "Welcome back"' in text and 'text not in the target: "Hello there"' in text
    assert '"Sign in" should be colour rgb(255, 255, 255), not rgb(0, 0, 0)' in text


def test_an_answer_without_code_scores_zero_with_the_reason(run, references):
    score, shot = run(lambda b: D.score_answer(b, "I am sorry, I cannot do that.", references["login"]))
    assert shot is None and score.total == 0.0
    assert "no HTML code" in score.reason and "I am sorry" in score.reason


def test_side_by_side_draws_three_panels(references):
    score = D.visual_score(references["login"], references["pricing"])
    fig = D.side_by_side(references["login"], references["pricing"], score)
    assert len(fig.axes) == 4 and fig.axes[2].images[0].get_array().shape == score.heat.shape  # 3 panels + colour bar
    empty = D.side_by_side(references["login"], None, D.Score(0.0, 0.0, 0.0, 0.0, 0.0, reason="no HTML code"))
    assert len(empty.axes) == 3 and not empty.axes[1].images and not empty.axes[2].images
    assert [t.get_text() for ax in empty.axes[1:] for t in ax.texts] == ["nothing to render", "no render, no map"]
    assert empty.axes[1].get_title() == "render"
    import matplotlib.pyplot as plt

    plt.close(fig)
    plt.close(empty)


# --- the refine loop -------------------------------------------------------------------------

def scripted(answers: list[str]):
    """A generate(messages) callable that answers from a list and records what it was sent."""
    sent = []

    def generate(messages):
        sent.append(messages)
        return answers[len(sent) - 1]

    return generate, sent


def test_refine_keeps_the_best_and_stops_when_the_score_drops(run, references):
    html = K.reference("login")[0]
    moved = changed(html)["moved block"][0]
    generate, sent = scripted([
        "I cannot read that.",                          # round 1: no code, 0
        f"```html\n{moved}\n```",                       # round 2: close
        f"Fixed:\n```html\n{html}\n```",                # round 3: exact
        "```html\n<p>worse</p>\n```",                   # round 4: worse, so the loop stops
        f"```html\n{html}\n```",                        # never asked
    ])
    best, history = run(lambda b: D.refine(generate, b, references["login"], rounds=5))
    assert [round(r.score.total, 3) for r in history][:1] == [0.0] and len(history) == 4
    assert history[1].score.total < history[2].score.total == pytest.approx(1.0)
    assert best is history[2] and best.score.total > history[3].score.total
    # round 3 was sent the target and the render of round 2's answer with what differed; round 2, the reason
    last = sent[2][-1]["content"]
    assert [p["type"] for p in last] == ["image", "image", "text"]
    assert '"Welcome back" is +12% across and +5% down' in last[-1]["text"]
    assert "no HTML code" in sent[1][-1]["content"][-1]["text"]


def test_refine_stops_after_n_rounds(run, references):
    html = K.reference("login")[0]
    generate, sent = scripted(["No code, sorry.", f"```html\n{html}\n```", f"```html\n{html}\n```"])
    best, history = run(lambda b: D.refine(generate, b, references["login"], rounds=2))
    assert len(history) == len(sent) == 2 and best is history[1]  # still improving, but out of rounds
    assert best.score.total == pytest.approx(1.0)
