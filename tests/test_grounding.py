"""cookbook.grounding: parsing the model's boxes, drawing them, 3D projection, the scorers and the
scenes with exact ground truth (08_spatial_grounding)."""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cookbook as cb
from cookbook import grounding as g
from cookbook.kit import scenes

W, H = 900, 600
ROOT = Path(__file__).resolve().parents[1]


# ---- parse ------------------------------------------------------------------------------------

def test_fenced_json_with_prose_around_it():
    text = 'Sure!\n```json\n[\n {"bbox_2d": [100, 200, 300, 400], "label": "cat"},\n {"point_2d": [500, 500], "label": "eye"}\n]\n```\nHope this helps [1].'
    items = g.parse(text, W, H)
    assert items == [{"label": "cat", "box": [90.0, 120.0, 270.0, 240.0]}, {"label": "eye", "point": [450.0, 300.0]}]
    assert items.notes == []


def test_bare_json_single_quotes_and_trailing_commas():
    assert g.parse("Here: [{'bbox_2d': [100,200,300,400], 'label': 'cat',},]", W, H) == [
        {"label": "cat", "box": [90.0, 120.0, 270.0, 240.0]}]


def test_a_single_object_and_one_object_per_line():
    assert g.parse('{"bbox_2d": [0, 0, 1000, 1000], "label": "all"}', W, H) == [{"label": "all", "box": [0.0, 0.0, 900.0, 600.0]}]
    lines = '{"bbox_2d": [0, 0, 500, 500], "label": "a"}\n{"bbox_2d": [500, 500, 1000, 1000], "label": "b"}'
    assert [it["label"] for it in g.parse(lines, W, H)] == ["a", "b"]


def test_truncated_list_keeps_complete_objects_and_reports_the_loss():
    text = '```json\n[{"bbox_2d": [0, 0, 100, 100], "label": "a"}, {"bbox_2d": [100, 100, 200, 200], "label": "b"}, {"bbox_2d": [9, 10'
    with pytest.warns(UserWarning, match="2 complete object"):
        items = g.parse(text, 1000, 1000)
    assert [it["label"] for it in items] == ["a", "b"]
    assert items.notes and items.notes[0].startswith("truncated")


def test_truncated_inside_a_label_drops_that_object():
    """json-repair alone would keep {"label": "bi"}: the cut-off object must go."""
    text = '[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8], "label": "bi'
    with pytest.warns(UserWarning):
        assert [it["label"] for it in g.parse(text, 1000, 1000)] == ["a"]


def test_reversed_corners_and_out_of_range_values():
    items = g.parse('[{"bbox_2d": [300, 400, 100, 1200], "label": "x"}, {"point_2d": [-5, 1001], "label": "p"}]', W, H)
    assert items[0]["box"] == [90.0, 240.0, 270.0, 600.0]
    assert items[1]["point"] == [0.0, 600.0]
    assert any("reversed" in n for n in items.notes) and sum("clamped" in n for n in items.notes) == 2


def test_prose_with_brackets_before_the_json():
    text = 'The objects (see note [1]) are: [{"bbox_2d": [0, 0, 500, 500], "label": "a"}]. Note [1]: approximate.'
    assert g.parse(text, 100, 100) == [{"label": "a", "box": [0.0, 0.0, 50.0, 50.0]}]
    assert g.parse("The box is [100, 200, 300, 400].", 1000, 1000) == [{"label": "", "box": [100.0, 200.0, 300.0, 400.0]}]


def test_cut_off_after_a_complete_object_loses_nothing_written():
    with pytest.warns(UserWarning, match="cut off; 2 complete"):
        items = g.parse('[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8], "label": "b"},', 1000, 1000)
    assert len(items) == 2 and "dropped" not in items.notes[0]


def test_empty_list_and_no_json():
    assert g.parse("```json\n[]\n```", W, H) == []
    with pytest.raises(g.ParseError, match="I cannot see any cat") as err:
        g.parse("I cannot see any cat.", W, H)
    assert isinstance(err.value, ValueError)
    for prose in ("See [1] and [2].", "a { b", ""):
        with pytest.raises(g.ParseError):
            g.parse(prose, W, H)


def test_extra_keys_are_kept_for_documents_and_3d():
    items = g.parse('[{"bbox_2d": [10, 20, 500, 60], "text_content": "你好"}, {"bbox_3d": [0, 0, 3, 1, 1, 1, 0, 0, 0], "label": "box"}]', W, H)
    assert items[0] == {"label": "", "text_content": "你好", "box": [9.0, 12.0, 450.0, 36.0]}
    assert items[1] == {"label": "box", "bbox_3d": [0, 0, 3, 1, 1, 1, 0, 0, 0]}


def test_bad_items_are_skipped_and_noted():
    items = g.parse('[{"bbox_2d": [1, 2, 3], "label": "short"}, "text", {"label": "nothing"}, '
                    '{"bbox_3d": [1, 2], "label": "flat"}, {"bbox_2d": [0, 0, 10, 10], "label": "ok"}]', 1000, 1000)
    assert [it["label"] for it in items] == ["ok"]
    assert len(items.notes) == 6


def test_coordinates_are_relative_on_non_square_images():
    """The same answer lands on the same part of a 1000x500 and a 250x800 image."""
    answer = '[{"bbox_2d": [250, 500, 750, 1000], "label": "lower middle"}]'
    assert g.parse(answer, 1000, 500)[0]["box"] == [250.0, 250.0, 750.0, 500.0]
    assert g.parse(answer, 250, 800)[0]["box"] == [62.5, 400.0, 187.5, 800.0]
    assert g.parse(answer, 1000, 1000, scale=999)[0]["box"][2] == pytest.approx(750 / 999 * 1000)


def test_absolute_pixels_read_as_relative_go_wrong():
    """A Qwen2.5-VL style answer (pixels of a 451x300 image) read as 0-1000 lands elsewhere."""
    truth = [135, 85, 204, 147]
    wrong = g.parse(json.dumps([{"bbox_2d": truth, "label": "eye"}]), 451, 300)[0]["box"]
    assert g.iou(wrong, truth) < 0.3


# ---- round trip, scorers ------------------------------------------------------------------------

def test_ground_truth_round_trips_through_the_model_format():
    truth = g.truth()
    for name, scene in truth.items():
        boxes = [it for it in scene["items"] if "box" in it]
        text = g.to_answer(boxes, scene["width"], scene["height"])
        parsed = g.parse(text, scene["width"], scene["height"])
        ious = [g.iou(p["box"], t["box"]) for p, t in zip(parsed, boxes, strict=True)]
        if name.startswith("grounding/") and name != "grounding/boxes3d.png":   # boxes on the 1/1000 grid
            assert ious == pytest.approx([1.0] * len(ious), abs=1e-9), name
        else:                                        # hand-checked pixels: within 1/1000 of the side
            assert min(ious) > 0.97, name
        assert [p["label"] for p in parsed] == [t["label"] for t in boxes]


def test_iou_hand_computed():
    assert g.iou([0, 0, 10, 10], [5, 5, 15, 15]) == pytest.approx(25 / 175)
    assert g.iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert g.iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0
    assert g.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


def test_matching_is_one_to_one_and_label_aware():
    truth = [{"label": "a", "box": [0, 0, 10, 10]}, {"label": "b", "box": [20, 0, 30, 10]}]
    twice = [{"label": "a", "box": [0, 0, 10, 10]}, {"label": "a", "box": [1, 0, 11, 10]}]
    assert g.match(twice, truth) == [(0, 0, 1.0)]
    s = g.detection_scores(twice, truth)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1) and s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5
    wrong_label = [{"label": "b", "box": [0, 0, 10, 10]}]
    assert g.detection_scores(wrong_label, truth)["tp"] == 0
    assert g.detection_scores([], [])["f1"] == 1.0 and g.detection_scores([], truth)["recall"] == 0.0


def test_hungarian_beats_greedy():
    """Greedy (best IoU first) pairs p0 with t0 (0.9) and leaves p1 with nothing above 0.5; the
    assignment that maximises total IoU pairs p0-t1 (0.64) and p1-t0 (0.67): two hits."""
    def strip(x1, x2):
        return {"label": "x", "box": [x1, 0, x2, 10]}
    truth = [strip(2, 12), strip(5, 14)]
    pred = [strip(3, 12), strip(0, 10)]
    assert g.iou(pred[0]["box"], truth[0]["box"]) == pytest.approx(0.9)
    assert g.iou(pred[1]["box"], truth[1]["box"]) < 0.5
    assert sorted((p, t) for p, t, _ in g.match(pred, truth)) == [(0, 1), (1, 0)]


def test_coco_map_hand_computed():
    truth = [[{"label": "a", "box": [0, 0, 10, 10]}]]
    assert g.coco_map(truth, truth)["mAP"] == pytest.approx(1.0)
    hit, miss = {"label": "a", "box": [0, 0, 10, 10]}, {"label": "a", "box": [50, 50, 60, 60]}
    # every box has score 1.0, so the answer's order decides the ranking: the miss first halves AP
    assert g.coco_map([[hit, miss]], truth)["AP50"] == pytest.approx(1.0)
    assert g.coco_map([[miss, hit]], truth)["AP50"] == pytest.approx(0.5, abs=0.01)
    assert g.coco_map([[]], truth)["mAP"] == 0.0
    shifted = [[{"label": "a", "box": [2, 0, 12, 10]}]]                 # IoU 8/12 = 0.667
    r = g.coco_map(shifted, truth)
    assert r["AP50"] == pytest.approx(1.0) and r["AP75"] == 0.0 and r["mAP"] == pytest.approx(0.4, abs=0.01)


def test_refcoco_count_and_point_scores():
    assert g.refcoco_accuracy([[0, 0, 10, 10], [0, 0, 4, 10], None], [[0, 0, 10, 10]] * 3) == pytest.approx(1 / 3)
    assert g.count_accuracy([3, 4, None], [3, 5, 2]) == pytest.approx(1 / 3)
    assert g.point_in_box_accuracy([[5, 5], [10, 10], [11, 5], None], [[0, 0, 10, 10]] * 4) == 0.5
    assert g.first_number("There are 1,024 dots") == 1024 and g.first_number("none") is None


# ---- 3D -------------------------------------------------------------------------------------------

def test_camera_fallback_is_the_cookbooks_60_degrees():
    cam = g.camera(640, 480)
    assert cam["fx"] == pytest.approx(320 / math.tan(math.radians(30)))
    assert cam["fy"] == pytest.approx(240 / math.tan(math.radians(30)))
    assert (cam["cx"], cam["cy"]) == (320, 240)


def test_box_corners_and_projection_against_hand_computed_values():
    corners = g.box3d_corners([0, 0, 5, 2, 2, 2, 0, 0, 0])
    assert corners[0].tolist() == [1, 1, 6] and corners[7].tolist() == [-1, -1, 4]
    cam = {"fx": 100.0, "fy": 100.0, "cx": 50.0, "cy": 40.0}
    px = g.project(corners, cam)
    assert px[0].tolist() == pytest.approx([50 + 100 / 6, 40 + 100 / 6])
    assert px[7].tolist() == pytest.approx([50 - 100 / 4, 40 - 100 / 4])
    assert g.project([[0, 0, -1]], cam) is None


def test_angles_are_in_units_of_pi():
    """0.5 turns a 4 x 1 x 2 box a quarter turn about y: its x and z extents swap."""
    turned = g.box3d_corners([0, 0, 10, 4, 1, 2, 0, 0.5, 0])
    assert np.ptp(turned[:, 0]) == pytest.approx(2) and np.ptp(turned[:, 2]) == pytest.approx(4)
    about_z = g.box3d_corners([0, 0, 10, 4, 1, 2, 0, 0, 0.5])
    assert np.ptp(about_z[:, 0]) == pytest.approx(1) and np.ptp(about_z[:, 1]) == pytest.approx(4)


# ---- drawing --------------------------------------------------------------------------------------

def test_draw_marks_boxes_points_and_3d_and_leaves_the_input_alone():
    image = Image.new("RGB", (400, 300), "white")
    items = [{"label": "a", "box": [50, 50, 150, 120]}, {"label": "猫", "point": [300, 200]},
             {"label": "cube", "bbox_3d": [0, 0, 4, 1, 1, 1, 0, 0, 0]}]
    cam = g.camera(400, 300)
    out = np.asarray(g.draw(image, items, intrinsics=cam, labels=True))
    assert np.asarray(image).min() == 255, "the input image changed"
    assert out.shape == (300, 400, 3)
    assert (out[100, 50] != 255).any() and (out[100, 100] == 255).all()          # box edge drawn, inside empty
    assert (out[200, 300] != 255).any()                                           # the point
    u, v = g.project(g.box3d_corners(items[2]["bbox_3d"]), cam)[7].round().astype(int)
    assert (out[v, u] != 255).any()                                               # a cube corner
    assert (np.asarray(g.draw(image, [])) == 255).all()
    bare = np.asarray(g.draw(image, items[:1], labels=False))
    assert (bare[38:47, 52:60] == 255).all() and (out[38:47, 52:60] != 255).any()  # the label sits above the box


# ---- scenes and ground truth ------------------------------------------------------------------------

def test_committed_scenes_are_what_the_generator_makes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_scenes", ROOT / "scripts" / "make_scenes.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    made = script.make_scenes(tmp_path)
    committed = json.loads((scenes.GROUNDING / "scenes.json").read_text())
    assert json.loads(json.dumps(made)) == committed
    for name in made:
        fresh, kept = np.asarray(Image.open(tmp_path / name.split("/")[1])), np.asarray(Image.open(cb.asset(name)))
        assert (fresh == kept).all(), name


def test_scene_boxes_match_the_drawn_pixels():
    for name, scene in g.truth().items():
        if not name.startswith("grounding/shapes") and name != "grounding/crowd.png":
            continue
        pixels = np.asarray(Image.open(cb.asset(name))).astype(int)
        assert pixels.shape[:2] == (scene["height"], scene["width"])
        for it in scene["items"]:
            x1, y1, x2, y2 = (round(v) for v in it["box"])
            inside = (np.abs(pixels[y1:y2, x1:x2] - scenes.COLORS[it["color"]]).sum(axis=2) == 0)
            ys, xs = np.nonzero(inside)
            assert abs(xs.min() - 0) <= 1 and abs(xs.max() - (x2 - x1 - 1)) <= 1, (name, it)
            assert abs(ys.min() - 0) <= 1 and abs(ys.max() - (y2 - y1 - 1)) <= 1, (name, it)


def test_scenes_cover_the_issue():
    truth = g.truth()
    sizes = {(s["width"], s["height"]) for s in truth.values()}
    assert any(w > h for w, h in sizes) and any(w < h for w, h in sizes)
    assert len(truth["grounding/crowd.png"]["items"]) >= 40
    assert sum(truth["grounding/crowd.png"]["counts"].values()) == len(truth["grounding/crowd.png"]["items"])
    assert {"chelsea.jpg", "astronaut.jpg", "coffee.jpg", "rocket.jpg"} <= truth.keys()
    grasp = truth["coffee.jpg"]["affordances"][0]
    assert grasp["box"] == next(it["box"] for it in truth["coffee.jpg"]["items"] if it["label"] == "handle")
    for scene in truth.values():
        for it in scene["items"]:
            x1, y1, x2, y2 = it["box"]
            assert 0 <= x1 < x2 <= scene["width"] and 0 <= y1 < y2 <= scene["height"]
    scene3d = truth["grounding/boxes3d.png"]
    for it in scene3d["items"]:
        px = g.project(g.box3d_corners(it["bbox_3d"]), scene3d["intrinsics"])
        assert px.min(axis=0).tolist() == pytest.approx(it["box"][:2], abs=0.01)


def test_relations_follow_the_boxes():
    items = [{"ref": "A", "box": [0, 0, 10, 10]}, {"ref": "B", "box": [20, 30, 30, 40]}]
    qs = scenes.relations(items)
    assert qs[0] == {"question": "Is A to the left of B? Answer yes or no.", "answer": "yes"}
    assert qs[1] == {"question": "Is A below B? Answer yes or no.", "answer": "no"}


def test_parse_does_not_warn_on_clean_answers():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g.parse('[{"bbox_2d": [1, 2, 3, 4], "label": "a"}]', 10, 10)


def test_points_and_extra_keys_round_trip():
    items = [{"label": "grasp", "point": [123.0, 45.0], "note": "handle"}]
    text = g.to_answer(items, 600, 400)
    assert text.startswith("```json\n") and text.endswith("\n```")
    assert json.loads(text[8:-4]) == [{"label": "grasp", "note": "handle", "point_2d": [205, 112]}]   # 123/600, 45/400
    back = g.parse(text, 600, 400)
    assert back[0]["note"] == "handle" and back[0]["point"] == pytest.approx([123.0, 45.0], abs=600 / 2000)


def test_an_item_with_a_box_and_a_3d_box_is_labelled_once():
    """The 3D truth carries both its 2D box and its bbox_3d: one label, not one per mark."""
    scene = g.truth()["grounding/boxes3d.png"]
    image, cam = Image.new("RGB", (scene["width"], scene["height"]), "white"), scene["intrinsics"]

    def label_pixels(items: list[dict]) -> int:
        drawn = np.asarray(g.draw(image, items, intrinsics=cam)) != np.asarray(g.draw(image, items, intrinsics=cam, labels=False))
        return int(drawn.any(axis=2).sum())

    both = scene["items"][0]
    assert "box" in both and "bbox_3d" in both
    assert label_pixels([both]) == label_pixels([{"label": both["label"], "box": both["box"]}]) > 0
