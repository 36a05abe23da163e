"""Every parser of the cookbook on real model answers stored in the official cookbooks.

The fixtures (``tests/fixtures/real_answers/*.json``, built by ``collect.py`` there) hold answers that
Qwen3-VL and Qwen2.5-VL gave in QwenLM's own notebooks, each cited by repository, commit, notebook,
cell and output, with what the official notebook code derives from it (pixel boxes, clicks,
seconds). Each test runs a cookbook parser on the raw answer and compares it with that derivation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cookbook import agent, design, documents, grounding, stem, video

FIXTURES = Path(__file__).parent / "fixtures" / "real_answers"
ANSWERS = [entry for path in sorted(FIXTURES.glob("qwen*.json"))
           for entry in json.loads(path.read_text(encoding="utf-8"))]


def answers(parser: str, when=lambda e: True) -> list:
    chosen = [e for e in ANSWERS if e["parser"] == parser and when(e)]
    assert chosen, f"no fixture for {parser}"
    return [pytest.param(e, id=e["id"]) for e in chosen]


def squash(text: str) -> str:
    return "".join(text.split())


# ---- the collection itself ---------------------------------------------------------------------
def test_enough_real_answers_from_enough_notebooks():
    notebooks = {(e["source"].get("official_repo", e["source"]["repo"]), e["source"]["path"]) for e in ANSWERS}
    assert len(ANSWERS) >= 40 and len({p for _, p in notebooks}) >= 8
    for e in ANSWERS:
        src = e["source"]
        assert re.fullmatch(r"[0-9a-f]{40}", src["commit"]) and src["path"].startswith("cookbooks/")
        assert isinstance(src["cell"], int) and e["answer"].strip() and e["official"]["code"]


# ---- grounding.parse ----------------------------------------------------------------------------
def frame(e: dict):
    """The coordinate frame an answer uses: Qwen3-VL's 0-1000, or a Qwen2.5-VL model-input size."""
    return tuple(e["model_input_size"]) if "model_input_size" in e else grounding.SCALE


@pytest.mark.parametrize("e", answers("grounding.parse", lambda e: "boxes" in e["official"]))
def test_grounding_boxes_match_the_official_pixels(e):
    w, h = e["image_size"] or (1000, 1000)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")          # a complete answer raises no "truncated" warning
        items = grounding.parse(e["answer"], w, h, scale=frame(e))
    assert not any(n.startswith("truncated") for n in items.notes), items.notes
    boxes = [[int(v) for v in it["box"]] for it in items]
    official = e["official"]["boxes"] or [e["official"]["relative"]]
    assert boxes == official
    if "labels" in e["official"]:
        assert [it["label"] for it in items] == e["official"]["labels"]
    if "texts" in e["official"]:
        assert [it["text_content"] for it in items] == e["official"]["texts"]


def test_a_malformed_complete_answer_is_repaired_not_called_truncated():
    e = next(e for e in ANSWERS if e["id"] == "q3-omni-7")            # a stray "{" before the 6th object
    items = grounding.parse(e["answer"], *e["image_size"])
    assert len(items) == 9 and items[5]["names"]["en"] == "Obanai Iguro"
    assert items.notes and all("truncated" not in n for n in items.notes)
    assert any("malformed" in n for n in items.notes)


def test_a_cut_off_real_answer_is_still_called_truncated():
    e = next(e for e in ANSWERS if e["id"] == "q3-2d-225f4d29")
    cut = e["answer"][:e["answer"].index('"scallop"}') + 4]           # as if max_new_tokens ended there
    with pytest.warns(UserWarning, match="truncated"):
        items = grounding.parse(cut, *e["image_size"])
    assert [it["label"] for it in items] == e["official"]["labels"][:6]


@pytest.mark.parametrize("e", answers("grounding.parse", lambda e: "points" in e["official"]))
def test_grounding_points_match_the_official_pixels(e):
    items = grounding.parse(e["answer"], *e["image_size"])
    assert [v for it in items for v in it["point"]] == pytest.approx([v for p in e["official"]["points"] for v in p])


@pytest.mark.parametrize("e", answers("grounding.parse", lambda e: "items" in e["official"]))
def test_grounding_keeps_the_3d_boxes(e):
    items = grounding.parse(e["answer"], *e["image_size"])
    assert [(it["label"], it["bbox_3d"]) for it in items] == [(o["label"], o["bbox_3d"]) for o in e["official"]["items"]]
    corners = grounding.project(grounding.box3d_corners(items[0]["bbox_3d"]), e["official"]["camera"] or
                                grounding.camera(*e["image_size"]))
    assert corners is None or corners.shape == (8, 2)


# ---- documents ----------------------------------------------------------------------------------
@pytest.mark.parametrize("e", answers("documents.parse_html"))
def test_parse_html_matches_the_official_boxes_and_keeps_every_table(e):
    w, h = e["image_size"]
    got = documents.parse_html(e["answer"], w, h, scale=frame(e))
    official = e["official"]["elements"]
    assert [(g["label"], g["class"]) for g in got] == [(o["tag"], o["class"]) for o in official]
    assert [[int(v) for v in g["box"]] for g in got] == [o["box"] for o in official]
    assert [squash(g["text"]) for g in got] == [squash(o["text"]) for o in official]
    for g, o in zip(got, official, strict=True):
        assert ("html" in g) == o["table"]
        if o["table"]:
            assert g["html"].startswith("<table") and documents.table_rows(g["html"])


def test_the_real_qwenvl_html_tables_score_against_themselves():
    e = next(e for e in ANSWERS if e["id"] == "q3-docparse-7f5e9daa")
    tables = [el["html"] for el in documents.parse_html(e["answer"], *e["image_size"]) if "html" in el]
    assert len(tables) == 2 and documents.teds(tables[1], tables[1]) == 1.0
    assert documents.table_rows(tables[0])[0] == ["行业", "汽车和汽车零部件"]


@pytest.mark.parametrize("e", answers("documents.table_rows"))
def test_table_rows_match_the_rendered_table(e):
    assert documents.table_rows(e["answer"]) == e["official"]["rows"]


@pytest.mark.parametrize("e", answers("documents.parse_fields"))
def test_parse_fields_reads_the_fenced_json_after_prose(e):
    from pydantic import create_model

    schema = create_model("Fields", **{key: (str, ...) for key in e["schema"]})
    assert documents.parse_fields(e["answer"], schema).model_dump() == e["official"]["fields"]


# ---- video --------------------------------------------------------------------------------------
@pytest.mark.parametrize("e", answers("video.parse_span"))
def test_parse_span_reads_the_real_spans(e):
    assert video.parse_span(e["answer"]) == pytest.approx(tuple(e["official"]["span"]))


@pytest.mark.parametrize("e", answers("video.parse_dense_captions"))
def test_dense_captions_in_both_official_shapes(e):
    got = video.parse_dense_captions(e["answer"])
    official = sorted(e["official"]["events"], key=lambda ev: ev["start"])
    assert [(g["start"], g["end"], g["event"]) for g in got] == \
        [(pytest.approx(o["start"]), pytest.approx(o["end"]), o["event"]) for o in official]


def test_dense_captions_in_an_unknown_shape_raise_a_clear_error():
    e = next(e for e in ANSWERS if e["id"] == "q25-video-15")
    renamed = e["answer"].replace('"start_time"', '"begin"').replace('"end_time"', '"finish"')
    with pytest.raises(ValueError, match="start_time"):
        video.parse_dense_captions(renamed)


@pytest.mark.parametrize("e", answers("stem.extract_answer", lambda e: e["official"]["choices"]))
def test_video_mme_letters_follow_the_official_rule(e):
    assert (video.extract_letter(e["answer"]) or "") == e["official"]["videomme_letter"]


# ---- stem ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("e", answers("stem.extract_answer"))
def test_extract_answer_on_real_replies(e):
    expected, choices = e["official"]["expected"], e["official"]["choices"]
    extracted = stem.extract_answer(e["answer"])
    if choices:
        chosen = stem.to_option(extracted, choices)
        assert chosen == choices[stem.LETTERS.index(expected)], extracted
        assert stem.is_correct(extracted, expected, choices)
    else:
        assert extracted == expected


# ---- agent --------------------------------------------------------------------------------------
@pytest.mark.parametrize("e", answers("agent.parse_tool_calls"))
def test_tool_calls_match_the_official_json(e):
    assert agent.parse_tool_calls(e["answer"]) == e["official"]["calls"]


def test_the_real_click_lands_where_the_official_code_draws_it():
    e = next(e for e in ANSWERS if e["id"] == "q3-mobile-7")
    call = agent.parse_tool_calls(e["answer"])[0]
    assert agent.thought_of(e["answer"]).startswith("Thought: To search for Musk in X")
    w, h = e["image_size"]
    screen = agent.Screen("official", w, h, 1.0, True)
    x, y = agent.to_css(call["arguments"]["coordinate"], screen, e["official"]["scale"])
    assert [round(x), round(y)] == e["official"]["pixel"]
    assert agent.predicted_point(e["answer"], screen) == (x, y)
    step = agent.history_line(e["answer"], [call])                     # the model's Action: line, quoted
    assert step == '"I tapped on the search bar to begin searching for Musk."'
    assert "Step 1: I tapped on the search bar to begin searching for Musk.; " in agent.task_prompt("x", [step])


def test_a_repaired_call_that_does_not_fit_the_tool_is_refused():
    e = next(e for e in ANSWERS if e["id"] == "q3-mobile-7")
    cut = e["answer"][:e["answer"].index("447") + 3]                 # cut inside the coordinate: [447
    with pytest.raises(agent.ParseError, match="coordinate"):
        agent.parse_tool_calls(cut)
    no_action = e["answer"].replace('"action": "click", ', "")
    with pytest.raises(agent.ParseError, match="action"):
        agent.parse_tool_calls(no_action)


# ---- design -------------------------------------------------------------------------------------
@pytest.mark.parametrize("e", answers("design.extract_html"))
def test_extract_html_takes_the_code_the_official_notebook_takes(e):
    assert design.extract_html(e["answer"]) == e["official"]["html"].strip()
