"""05's think-with-images step: the generated scenes' ground truth against their pixels, the zoom rule, the
loop on a reference and on broken replies, the scorer, and the calls Qwen3-VL really made (official cookbook)."""

import json
from pathlib import Path

import numpy as np
import pytest
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from cookbook import agent
from cookbook.kit import zoom

REAL = Path(__file__).parent / "fixtures" / "real_answers" / "qwen3vl_think_with_images.json"


@pytest.fixture(scope="module")
def scenes():
    return zoom.puzzles(3)


def ink_rows(image, box):
    x1, y1, x2, y2 = box
    dark = np.asarray(image.convert("RGB"))[y1:y2, x1:x2].max(axis=-1) < zoom.DARK
    return np.flatnonzero(dark.any(axis=1))


def test_scenes_are_deterministic_and_the_code_is_in_the_red_tag(scenes):
    again = zoom.puzzle(0)
    assert again.answer == scenes[0].answer and again.box == scenes[0].box
    assert np.array_equal(np.asarray(again.image), np.asarray(scenes[0].image))
    for p in scenes:
        a = np.asarray(p.image)
        x1, y1, x2, y2 = p.box
        assert tuple(a[y1, x1 + 5]) == zoom.TARGET  # the red border is where the truth says
        assert len(p.answer) == 5 and set(p.answer) <= set(zoom.ALPHABET)
        dark = a.max(axis=-1) < zoom.DARK
        inside = dark[y1:y2, x1:x2].sum()
        assert inside > 30                        # the code's ink lies in the box
        assert len({q.answer for q in scenes}) == len(scenes)


@pytest.mark.parametrize("tokens", [256, 1280])  # the smoke and the full budget of cb.budget()
def test_code_is_unreadable_in_the_model_input_and_readable_in_the_crop(scenes, tokens):
    for p in scenes:
        rows = ink_rows(p.image, p.box)
        text_px = rows[-1] - rows[0] + 1
        h, w = smart_resize(p.image.height, p.image.width, factor=32, min_pixels=4 * 1024, max_pixels=tokens * 1024)
        assert text_px * w / p.image.width < 4          # a few pixels: no glyph survives
        crop = agent.zoom_in(p.image, zoom.relative(p.box, *p.image.size))
        crop_rows = ink_rows(crop, (0, 0, crop.width, crop.height))
        ch, cw = smart_resize(crop.height, crop.width, factor=32, min_pixels=4 * 1024, max_pixels=tokens * 1024)
        assert (crop_rows[-1] - crop_rows[0] + 1) * ch / crop.height >= 16   # large print in the crop


def test_zoom_box_converts_clamps_and_widens():
    assert agent.zoom_box([100, 200, 500, 600], 1000, 500) == [100, 100, 500, 300]
    assert agent.zoom_box([500, 600, 100, 200], 1000, 500) == [100, 100, 500, 300]   # corners reordered
    assert agent.zoom_box([-50, 0, 1200, 1000], 1000, 500) == [0, 0, 1000, 500]      # clamped
    x1, y1, x2, y2 = agent.zoom_box([500, 500, 505, 502], 1000, 1000)                 # 5x2 px -> 32x32
    assert (x2 - x1, y2 - y1) == (32, 32) and x1 <= 500 <= x2 and y1 <= 500 <= y2
    assert agent.zoom_box([995, 995, 1000, 1000], 1000, 1000) == [968, 968, 1000, 1000]  # widened inside
    crop = agent.zoom_in(zoom.puzzle(0).image, [500, 500, 505, 502])
    assert crop.width * crop.height >= agent.MIN_CROP_PIXELS


def test_reference_scores_one_and_a_perturbed_one_less(scenes):
    runs = [agent.think_with_images(zoom.reference_policy(p), p.image, p.question, 3, 64) for p in scenes]
    assert all(r.turns == 2 and r.calls == 1 and r.malformed == 0 and len(r.crops) == 1 for r in runs)
    scores = agent.zoom_scores(runs, scenes)
    assert scores["exact"] == 1.0 and scores["zoom_iou"] == pytest.approx(1.0, abs=1e-4)
    wrong = [agent.think_with_images(lambda m, p=p: p.answer[::-1] + "Z", p.image, p.question, 3, 64) for p in scenes]
    assert agent.zoom_scores(wrong, scenes)["exact"] == 0.0 and agent.zoom_scores(wrong, scenes)["zoom_iou"] == 0.0
    p = scenes[0]
    x1, y1, x2, y2 = p.box
    shifted = zoom.relative((x1 + (x2 - x1) // 2, y1, x2 + (x2 - x1) // 2, y2), *p.image.size)
    call = json.dumps({"name": "image_zoom_in_tool", "arguments": {"bbox_2d": shifted, "label": "tag", "img_idx": 0}})
    replies = iter([f"<tool_call>\n{call}\n</tool_call>", f"**{p.answer.lower()}.**"])
    run = agent.think_with_images(lambda m: next(replies), p.image, p.question, 3, 64)
    half = agent.zoom_scores([run], [p])
    assert half["exact"] == 1.0 and 0.2 < half["zoom_iou"] < 0.5


def test_loop_counts_malformed_calls_and_stops_at_the_turn_bound(scenes):
    p = scenes[0]
    bad = ["<tool_call>\nnot json at all\n</tool_call>",
           '<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4]}}\n</tool_call>',
           '<tool_call>\n{"name": "web_search", "arguments": {"q": "x"}}\n</tool_call>',
           '<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [0, 0, 9, 9], "label": "x", '
           '"img_idx": 7}}\n</tool_call>']
    seen = []

    def policy(messages):
        seen.append(messages)
        return bad[len(seen) - 1]

    run = agent.think_with_images(policy, p.image, p.question, 4, 64)
    assert run.answer is None and run.turns == 4 and run.malformed == 4 and run.calls == 0
    last = seen[-1][-1]
    assert last["role"] == "tool" and last["content"][0]["text"].startswith("Error:")
    noise = agent.think_with_images(lambda m: "zx\x04 qq", p.image, p.question, 4, 64)
    assert noise.turns == 1 and noise.answer == "zx\x04 qq" and noise.calls == 0


def test_a_crop_of_a_crop_uses_img_idx():
    p = zoom.puzzle(1)
    first = {"bbox_2d": [0, 0, 500, 500], "label": "top left", "img_idx": 0}
    second = {"bbox_2d": [0, 0, 500, 500], "label": "its top left", "img_idx": 1}
    replies = iter([f"<tool_call>\n{json.dumps({'name': 'image_zoom_in_tool', 'arguments': a})}\n</tool_call>"
                    for a in (first, second)] + ["done"])
    run = agent.think_with_images(lambda m: next(replies), p.image, p.question, 5, 64)
    assert run.calls == 2 and run.answer == "done" and len(run.boxes) == 1   # only img_idx 0 is scored
    assert run.crops[0].size == (1600, 1200) and run.crops[1].size == (800, 600)  # the second cut from the first


def test_the_messages_render_with_the_real_chat_template(scenes, tiny):
    _, processor = tiny
    p = scenes[0]
    captured = []
    policy = zoom.reference_policy(p)

    def recording(messages):
        captured.append(list(messages))
        return policy(messages)

    agent.think_with_images(recording, p.image, p.question, 3, 64)
    text = processor.apply_chat_template(captured[-1], add_generation_prompt=True, tokenize=False)
    assert '"name": "image_zoom_in_tool"' in text and "<tool_response>" in text
    assert text.count("<|image_pad|>") == 2   # the scene and the crop


@pytest.mark.parametrize("entry", json.loads(REAL.read_text(encoding="utf-8")), ids=lambda e: e["id"])
def test_real_calls_parse_and_crop_where_the_official_note_says(entry):
    text = f'<tool_call>\n{{"name": "image_zoom_in_tool", "arguments": {entry["answer"]}}}\n</tool_call>'
    calls = agent.parse_tool_calls(text, [zoom.ZOOM_TOOL])
    assert len(calls) == 1 and calls[0]["name"] == "image_zoom_in_tool"
    assert calls[0]["arguments"]["bbox_2d"] == entry["official"]["relative"]
    assert calls[0]["arguments"]["img_idx"] == 0
    if entry["image_size"] is not None:
        w, h = entry["image_size"]
        box = agent.zoom_box(calls[0]["arguments"]["bbox_2d"], w, h)
        assert all(abs(a - b) <= 1 for a, b in zip(box, entry["official"]["boxes"][0], strict=True))
