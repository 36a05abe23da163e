"""Boxes, points, counts and 3D boxes from Qwen3-VL: parse, draw and score them (08).

Qwen3-VL writes coordinates relative to the original image, 0-1000 on each axis (``bbox_2d``
``[x1, y1, x2, y2]``, ``point_2d`` ``[x, y]``). ``parse`` turns its JSON into pixels, ``draw`` puts
the result on the image, and the scorers measure it the way RefCOCO, COCO/ODinW and counting
benchmarks do. The scene generators at the end make the ground truth under ``assets/grounding/``.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

from cookbook.kit.system import font_file

SCALE = 1000  # Qwen3-VL's coordinate range; some Alibaba docs and the mobile cookbook use 999
GROUNDING = Path(__file__).resolve().parent.parent / "assets" / "grounding"


class ParseError(ValueError):
    """The model's answer holds no JSON the parser can use; the message quotes the text (08)."""


class Parsed(list):
    """The items ``parse`` found (a plain list of dicts) plus ``notes``: what was repaired or lost (08)."""

    notes: list[str]


def _scan(text: str) -> tuple[list[tuple[int, int]], int, int]:
    """Where the JSON values of ``text`` lie: the complete top-level spans (start, end), the start
    of a value left open at the end (-1 if none), and the end of its last complete element."""
    spans, depth, start, last_inner, quote, escaped = [], 0, -1, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            escaped = ch == "\\" and not escaped
            if ch == quote and not escaped:
                quote = ""
            continue
        if ch in "\"'" and depth:
            quote = ch
        elif ch in "[{":
            if depth == 0:
                start, last_inner = i, -1
            depth += 1
        elif ch in "]}" and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
            elif depth == 1:
                last_inner = i + 1
    return spans, start if depth else -1, last_inner


def _json_part(text: str) -> tuple[str, list[str]]:
    """The JSON text to repair (a list, an object, or objects one per line joined into a list) and
    notes on what was cut off or malformed. The inside of a ```json fence is preferred to the whole
    answer. A value left open is "truncated" only when the answer stops there; when the fence closes
    or the answer ends on a bracket, the model finished and the JSON is malformed instead."""
    fence = re.search(r"```(?:json)?\s*\n?(.*?)(```|$)", text, re.S)
    fenced = bool(fence and re.search(r"[\[{]", fence.group(1)))
    body = fence.group(1) if fenced else text
    finished = (fenced and bool(fence.group(2))) or body.rstrip().endswith(("]", "}"))
    spans, open_at, last_inner = _scan(body)
    values = [body[a:b] for a, b in spans]
    objects = [v for v in values if v[0] == "{"]
    lists = [v for v in values if v[0] == "[" and "{" in v]
    if open_at >= 0 and body[open_at] == "{" and ":" not in body[open_at:]:
        open_at = -1                                  # a stray brace in prose, not JSON
    if open_at >= 0 and finished and not lists:       # complete, but a bracket is left open
        return body[open_at:].strip(), ["repaired: malformed JSON (a bracket is left open), read by json-repair"]
    if open_at >= 0:                                  # the answer stopped inside a value
        if body[open_at] == "[" and not lists:
            kept = body[open_at:last_inner] if last_inner > 0 else "["
            lost = body[max(last_inner, open_at + 1):].strip(" ,\n\t")
            return kept + "]", ["truncated: the answer was cut off" +
                                ("; its incomplete last object was dropped" if lost else "")]
        if not lists:
            return "[" + ",".join(objects) + "]", ["truncated: the answer was cut off inside an object, which was dropped"]
    if lists:
        return lists[0], []
    if objects:
        return "[" + ",".join(objects) + "]", []
    return (values[0], []) if values else ("", [])


def parse(text: str, width: int, height: int, scale: float | tuple[float, float] = SCALE) -> list[dict]:
    """Items of the model's JSON answer in pixels of a ``width`` x ``height`` image: ``bbox_2d`` as
    ``box`` [x1, y1, x2, y2], ``point_2d`` as ``point`` [x, y], ``bbox_3d`` and other keys kept (08).
    Accepts a list, one object, objects one per line or a bare [x1, y1, x2, y2], fenced or not, slips
    repaired by json-repair (``.notes`` lists them; a cut-off answer keeps its complete objects and
    warns "truncated"). ``scale``: 1000 (Qwen3-VL), 999 (the OCR cookbook's spotting), or the model
    input's (width, height) for Qwen2.5-VL's absolute pixels."""
    import json_repair

    from cookbook.kit.replies import json_ready

    sx, sy = (scale, scale) if isinstance(scale, (int, float)) else scale
    for name, value in (("width", width), ("height", height), ("scale", sx), ("scale", sy)):
        if not (isinstance(value, (int, float)) and 0 < value < 1e300):  # NaN, 0 and negatives fail
            raise ValueError(f"{name}={value!r}: expected a positive number")
    text = json_ready(text, ParseError)  # bounded and shallow: json-repair recurses once per bracket
    part, notes = _json_part(text)
    try:
        data = json_repair.loads(part) if part else None
    except (ValueError, RecursionError) as err:  # json-repair recurses on runs of "/" as well
        raise ParseError(f"json-repair cannot read the answer ({err}): {text[:300]!r}") from None
    if isinstance(data, dict):
        data = [data]
    if isinstance(data, list) and len(data) in (2, 4) and all(isinstance(v, (int, float)) for v in data):
        data = [{"point_2d" if len(data) == 2 else "bbox_2d": data}]   # a bare [x1, y1, x2, y2]
    if not isinstance(data, list) or (data and not any(isinstance(v, dict) for v in data)):
        raise ParseError(f"no JSON object or list of objects in the answer: {text[:300]!r}")

    def numbers(values: Any, size: int) -> bool:  # finite: NaN, Infinity and 1e400 slip past min/max
        return (isinstance(values, list) and len(values) == size
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e300 for v in values))

    items = Parsed()
    for n, raw in enumerate(data):
        if not isinstance(raw, dict):
            notes.append(f"item {n}: not an object ({raw!r}), skipped")
            continue
        item = {"label": str(raw.get("label", ""))}
        item.update((k, v) for k, v in raw.items() if k not in ("bbox_2d", "point_2d", "label"))
        if "bbox_3d" in raw and not numbers(raw["bbox_3d"], 9):
            notes.append(f"item {n}: bbox_3d is not 9 finite numbers ({raw['bbox_3d']!r}), dropped")
            del item["bbox_3d"]
        for key, size, out in (("bbox_2d", 4, "box"), ("point_2d", 2, "point")):
            if key not in raw:
                continue
            values = raw[key]
            if not numbers(values, size):
                notes.append(f"item {n}: {key} is not {size} finite numbers ({values!r}), dropped")
                continue
            clamped = [min(max(float(v), 0.0), sx if i % 2 == 0 else sy) for i, v in enumerate(values)]
            if clamped != values:
                notes.append(f"item {n}: {key} {values} clamped to the {sx:g}x{sy:g} frame")
            if size == 4 and (clamped[0] > clamped[2] or clamped[1] > clamped[3]):
                notes.append(f"item {n}: reversed corners in {values} put in order")
                clamped = [min(clamped[0], clamped[2]), min(clamped[1], clamped[3]),
                           max(clamped[0], clamped[2]), max(clamped[1], clamped[3])]
            item[out] = [v / sx * width if i % 2 == 0 else v / sy * height for i, v in enumerate(clamped)]
        if not {"box", "point", "bbox_3d"} & item.keys():
            notes.append(f"item {n}: no usable coordinates, skipped")
            continue
        items.append(item)
    items.notes = notes
    if notes and notes[0].startswith("truncated"):
        warnings.warn(f"{notes[0]}; {len(items)} complete object(s) kept", stacklevel=2)
    return items


def to_answer(items: list[dict], width: int, height: int, scale: int = SCALE) -> str:
    """Items in pixels written back as the model would answer (a ```json fence, 0-1000 integers):
    ground truth in the model's own format, to prove ``parse`` and the scorers (08)."""
    out = []
    for item in items:
        row = {k: v for k, v in item.items() if k not in ("box", "point")}
        if "box" in item:
            x1, y1, x2, y2 = item["box"]
            row["bbox_2d"] = [round(x1 / width * scale), round(y1 / height * scale),
                              round(x2 / width * scale), round(y2 / height * scale)]
        if "point" in item:
            row["point_2d"] = [round(item["point"][0] / width * scale), round(item["point"][1] / height * scale)]
        out.append(row)
    return "```json\n" + json.dumps(out, ensure_ascii=False, indent=2) + "\n```"


def draw(image: Any, items: list[dict], intrinsics: dict | None = None, labels: bool = True) -> Any:
    """A copy of ``image`` (PIL) with each item's ``box``, ``point`` and label drawn with supervision;
    ``bbox_3d`` items too when camera ``intrinsics`` (fx, fy, cx, cy) are given (08, 09)."""
    import numpy as np
    from PIL import Image

    with warnings.catch_warnings():   # supervision warns once that OpenCV is absent; it draws without it
        warnings.simplefilter("ignore")
        import supervision as sv

    canvas = (image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))).convert("RGB")
    names = sorted({str(it.get("label", "")) for it in items})
    colour = [names.index(str(it.get("label", ""))) for it in items]          # one colour per label
    text = [str(it.get("label") or it.get("text_content") or "") for it in items]
    thick = max(2, round(max(canvas.size) / 400))

    def detections(pairs: list) -> Any:
        return sv.Detections(xyxy=np.array([b for _, b in pairs], dtype=float).reshape(-1, 4),
                             class_id=np.array([colour[i] for i, _ in pairs], dtype=int))

    boxes = [(i, it["box"]) for i, it in enumerate(items) if "box" in it]
    points = [(i, [*it["point"], *it["point"]]) for i, it in enumerate(items) if "point" in it]
    cubes = [(i, project(box3d_corners(it["bbox_3d"]), intrinsics)) for i, it in enumerate(items)
             if "bbox_3d" in it and intrinsics is not None]
    cubes = [(i, c) for i, c in cubes if c is not None]              # None: partly behind the camera
    if boxes:
        canvas = sv.BoxAnnotator(thickness=thick).annotate(canvas, detections(boxes))
    if points:
        canvas = sv.DotAnnotator(radius=2 * thick + 2, outline_thickness=1).annotate(canvas, detections(points))
    for i, corners in cubes:                                          # supervision counts vertices from 1
        edges = [(a + 1, b + 1) for a, b in BOX3D_EDGES]
        cube = sv.EdgeAnnotator(color=sv.ColorPalette.DEFAULT.by_idx(colour[i]), thickness=thick, edges=edges)
        canvas = cube.annotate(canvas, sv.KeyPoints(xy=np.array([corners], dtype=np.float32)))
    anchors: dict[int, list] = {}                                     # one label per item, at its first mark
    for i, b in boxes + points + [(i, [*c.min(axis=0), *c.max(axis=0)]) for i, c in cubes]:
        anchors.setdefault(i, b)
    anchored = [(i, b) for i, b in anchors.items() if text[i]]
    if labels and anchored:
        size = max(10, round(max(canvas.size) / 70))
        annotator = sv.RichLabelAnnotator(font_path=font_file("NotoSansCJK-Regular.ttc"), font_size=size, text_padding=2, smart_position=True)
        canvas = annotator.annotate(canvas, detections(anchored), labels=[text[i] for i, _ in anchored])
    return canvas


# The 12 edges of a 3D box between the corners of ``box3d_corners`` (same order as the 3D cookbook)
BOX3D_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]


def camera(width: int, height: int, fov: float = 60.0) -> dict:
    """Pinhole intrinsics fx, fy, cx, cy for an image with no calibration, as the 3D-grounding
    cookbook assumes: a ``fov``-degree view across the width and, separately, across the height (08)."""
    fx = width / (2 * math.tan(math.radians(fov) / 2))
    fy = height / (2 * math.tan(math.radians(fov) / 2))
    return {"fx": fx, "fy": fy, "cx": width / 2, "cy": height / 2}


def box3d_corners(bbox_3d: list[float]) -> Any:
    """The 8 corners (8x3 array, metres, camera frame: x right, y down, z forward) of a ``bbox_3d``
    [x, y, z, x_size, y_size, z_size, a, b, c]. As in the official drawing code, the angles are in
    units of pi (0.5 = 90 degrees) and turn the box about x by a, then y by b, then z by c (08)."""
    import itertools

    import numpy as np

    x, y, z, sx, sy, sz, a, b, c = (float(v) for v in bbox_3d)
    a, b, c = a * math.pi, b * math.pi, c * math.pi
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    local = np.array(list(itertools.product((1, -1), repeat=3)), dtype=float) * [sx / 2, sy / 2, sz / 2]
    return local @ (rz @ ry @ rx).T + [x, y, z]


def project(points: Any, intrinsics: dict) -> Any:
    """Pixel positions (Nx2) of camera-frame points (Nx3) through pinhole ``intrinsics``
    (u = fx * X / Z + cx, v = fy * Y / Z + cy); None when a point is not in front of the camera (08)."""
    import numpy as np

    pts = np.asarray(points, dtype=float)
    if (pts[:, 2] <= 1e-6).any():
        return None
    return np.stack([intrinsics["fx"] * pts[:, 0] / pts[:, 2] + intrinsics["cx"],
                     intrinsics["fy"] * pts[:, 1] / pts[:, 2] + intrinsics["cy"]], axis=1)


def iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two boxes [x1, y1, x2, y2] (any unit, same for both) (08)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def match(pred: list[dict], truth: list[dict], threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one pairs (pred index, truth index, IoU) of boxes with the same label, chosen by the
    Hungarian method (scipy) to maximise total IoU; pairs under ``threshold`` are dropped (08)."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    if not pred or not truth:
        return []
    scores = np.array([[iou(p["box"], t["box"]) if p.get("label") == t.get("label") else 0.0
                        for t in truth] for p in pred])
    rows, cols = linear_sum_assignment(scores, maximize=True)
    return [(int(r), int(c), float(scores[r, c])) for r, c in zip(rows, cols, strict=True) if scores[r, c] >= threshold]


def detection_scores(pred: list[dict], truth: list[dict], threshold: float = 0.5) -> dict:
    """Precision, recall and F1 of predicted boxes against the truth, each box matched at most once (08)."""
    pred = [p for p in pred if "box" in p]
    tp = len(match(pred, truth, threshold))
    precision = tp / len(pred) if pred else float(not truth)
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": len(pred) - tp, "fn": len(truth) - tp,
            "precision": precision, "recall": recall, "f1": f1}


def coco_map(preds: list[list[dict]], truths: list[list[dict]]) -> dict:
    """COCO box mAP (IoU 0.50:0.95), AP50 and AP75 with pycocotools, one list of items per image.
    Every predicted box is scored 1.0, as Qwen's ODinW evaluation does: the model gives no confidence (08)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = sorted({t["label"] for ts in truths for t in ts} | {p["label"] for ps in preds for p in ps if "box" in p})
    cat = {name: i + 1 for i, name in enumerate(names)}

    def xywh(box: list[float]) -> list[float]:
        return [box[0], box[1], box[2] - box[0], box[3] - box[1]]

    gt = {"images": [{"id": i} for i in range(len(truths))], "categories": [{"id": v, "name": k} for k, v in cat.items()],
          "annotations": [{"id": n + 1, "image_id": i, "category_id": cat[t["label"]], "bbox": xywh(t["box"]),
                           "area": xywh(t["box"])[2] * xywh(t["box"])[3], "iscrowd": 0}
                          for n, (i, t) in enumerate((i, t) for i, ts in enumerate(truths) for t in ts)]}
    dets = [{"image_id": i, "category_id": cat[p["label"]], "bbox": xywh(p["box"]), "score": 1.0}
            for i, ps in enumerate(preds) for p in ps if "box" in p]
    if not dets or not gt["annotations"]:
        return {"mAP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):     # pycocotools prints its progress
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(dets), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"mAP": max(0.0, float(evaluation.stats[0])), "AP50": max(0.0, float(evaluation.stats[1])),
            "AP75": max(0.0, float(evaluation.stats[2]))}


def refcoco_accuracy(pred_boxes: list[list[float] | None], truth_boxes: list[list[float]], threshold: float = 0.5) -> float:
    """RefCOCO-style accuracy: the share of referring expressions whose one predicted box has
    IoU >= ``threshold`` with the truth; no box (None) counts as a miss (08)."""
    hits = [p is not None and iou(p, t) >= threshold for p, t in zip(pred_boxes, truth_boxes, strict=True)]
    return sum(hits) / len(hits) if hits else 0.0


def count_accuracy(pred_counts: list[int | None], truth_counts: list[int]) -> float:
    """The share of counting questions answered with exactly the true number (None = no number) (08)."""
    hits = [p == t for p, t in zip(pred_counts, truth_counts, strict=True)]
    return sum(hits) / len(hits) if hits else 0.0


def point_in_box_accuracy(points: list[list[float] | None], boxes: list[list[float]]) -> float:
    """The share of predicted points (pixels) inside their target box, as ScreenSpot and pointing
    benchmarks score a click; no point (None) counts as a miss (08)."""
    hits = [p is not None and b[0] <= p[0] <= b[2] and b[1] <= p[1] <= b[3] for p, b in zip(points, boxes, strict=True)]
    return sum(hits) / len(hits) if hits else 0.0


def first_number(text: str) -> int | None:
    """The first whole number in an answer ("There are 12 dots." -> 12), or None (08)."""
    found = re.search(r"-?\d+", text.replace(",", ""))
    return int(found.group()) if found else None


# ---- ground truth: scenes the project renders, and the hand-checked photo boxes ----------------

COLORS = {"red": (220, 50, 47), "green": (40, 160, 60), "blue": (38, 100, 210), "orange": (245, 140, 20),
          "purple": (140, 70, 180), "black": (30, 30, 30), "yellow": (235, 200, 30)}
SHAPES = ("circle", "square", "triangle")


def _draw_shape(canvas: Any, shape: str, box: list[float], color: tuple[int, int, int]) -> None:
    """Fill one shape whose pixels cover exactly the rounded ``box`` (right/bottom edges exclusive)."""
    from PIL import ImageDraw

    x1, y1, x2, y2 = (round(v) for v in box)
    pen = ImageDraw.Draw(canvas)
    if shape == "circle":
        pen.ellipse([x1, y1, x2 - 1, y2 - 1], fill=color)
    elif shape == "square":
        pen.rectangle([x1, y1, x2 - 1, y2 - 1], fill=color)
    else:
        pen.polygon([(x1, y2 - 1), ((x1 + x2 - 1) / 2, y1), (x2 - 1, y2 - 1)], fill=color)


def shapes_scene(width: int, height: int, count: int, seed: int, sizes: tuple[int, int] = (90, 160),
                 grid: bool = False) -> tuple[Any, list[dict]]:
    """A rendered scene of coloured shapes and its exact truth: items with ``label`` (the shape),
    ``color``, ``ref`` ("the red circle") and ``box`` in pixels on the 0-1000 grid (08).

    ``sizes`` is the shape width range in relative units; ``grid=True`` packs small shapes in a
    jittered grid for a crowded scene (labels then repeat)."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    canvas = Image.new("RGB", (width, height), (246, 244, 238))
    combos = [(c, s) for c in COLORS for s in SHAPES]
    rng.shuffle(combos)
    boxes: list[list[int]] = []
    if grid:
        cols = math.ceil(math.sqrt(count * width / height))
        rows = math.ceil(count / cols)
        cells = [(i % cols, i // cols) for i in range(count)]
        cw, ch = 1000 // cols, 1000 // rows
        for cx, cy in cells:
            rw = rng.randint(sizes[0], sizes[1])
            rh = max(1, round(rw * width / height))
            rw, rh = min(rw, cw - 4), min(rh, ch - 4)
            x = cx * cw + rng.randint(2, cw - rw - 2)
            y = cy * ch + rng.randint(2, ch - rh - 2)
            boxes.append([x, y, x + rw, y + rh])
    else:
        while len(boxes) < count:
            rw = rng.randint(*sizes)
            rh = round(rw * width / height)           # round in pixels on a non-square image
            x, y = rng.randint(20, 980 - rw), rng.randint(20, 980 - rh)
            new = [x, y, x + rw, y + rh]
            if all(iou([a - 15 for a in new[:2]] + [a + 15 for a in new[2:]], b) == 0 for b in boxes):
                boxes.append(new)
    items = []
    for n, rel in enumerate(boxes):
        color, shape = combos[n % len(combos)] if not grid else (rng.choice(list(COLORS)), rng.choice(SHAPES[:2]))
        box = [rel[0] / 1000 * width, rel[1] / 1000 * height, rel[2] / 1000 * width, rel[3] / 1000 * height]
        _draw_shape(canvas, shape, box, COLORS[color])
        items.append({"label": shape, "color": color, "ref": f"the {color} {shape}", "box": box})
    return canvas, items


def relations(items: list[dict], limit: int = 8) -> list[dict]:
    """Yes/no questions about which shape is left of / above which, answered from the boxes
    (only pairs clearly apart on that axis) (08)."""
    out = []
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            for axis, word, other in ((0, "to the left of", "to the right of"), (1, "above", "below")):
                if a["box"][axis + 2] < b["box"][axis] or b["box"][axis + 2] < a["box"][axis]:
                    first = a["box"][axis + 2] < b["box"][axis]
                    ask = word if len(out) % 2 == 0 else other
                    yes = first if ask == word else not first
                    out.append({"question": f"Is {a['ref']} {ask} {b['ref']}? Answer yes or no.",
                                "answer": "yes" if yes else "no"})
    return out[:limit]


def _faces() -> list[tuple[int, int, int, int]]:
    """The 6 faces of a box as corner indices of ``box3d_corners`` (x+, x-, y+, y-, z+, z-)."""
    return [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]


def boxes3d_scene(width: int, height: int, intrinsics: dict, boxes: list[dict]) -> Any:
    """A rendered scene of solid boxes on a floor (camera 1.2 m above it, looking level), drawn
    through ``intrinsics``; each box dict has ``bbox_3d`` and ``color`` (08)."""
    import numpy as np
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (width, height), (200, 215, 230))
    pen = ImageDraw.Draw(canvas)
    floor = 1.2                                      # y grows downwards: the floor is at y = +1.2 m
    horizon = intrinsics["cy"]
    pen.rectangle([0, horizon, width, height], fill=(180, 170, 150))
    for x in np.arange(-4, 4.01, 1.0):             # floor grid lines, 1 m apart
        line = project(np.array([[x, floor, 1.5], [x, floor, 30.0]]), intrinsics)
        pen.line([tuple(p) for p in line], fill=(150, 140, 120), width=1)
    for z in (1.5, 2, 3, 4, 5, 6, 8, 10, 15):
        line = project(np.array([[-10, floor, z], [10, floor, z]]), intrinsics)
        pen.line([tuple(p) for p in line], fill=(150, 140, 120), width=1)
    light = np.array([0.3, 0.8, 0.5]) / np.linalg.norm([0.3, 0.8, 0.5])   # the way the light travels
    for spec in sorted(boxes, key=lambda b: -b["bbox_3d"][2]):         # far boxes first
        corners = box3d_corners(spec["bbox_3d"])
        centre = corners.mean(axis=0)
        pixels = project(corners, intrinsics)
        for face in _faces():
            pts = corners[list(face)]
            normal = pts.mean(axis=0) - centre
            if normal @ pts.mean(axis=0) >= 0:        # facing away from the camera
                continue
            shade = 0.5 + 0.5 * max(0.0, float(-(normal / np.linalg.norm(normal)) @ light))
            color = tuple(int(c * shade) for c in spec["color"])
            pen.polygon([tuple(pixels[i]) for i in face], fill=color, outline=(40, 40, 40))
    return canvas


SCENES_3D = {
    "intrinsics": {"fx": 554.26, "fy": 554.26, "cx": 320.0, "cy": 240.0},   # 60 degrees across 640 pixels
    "boxes": [
        {"label": "box", "color": "red", "bbox_3d": [-1.1, 0.9, 4.0, 0.8, 0.6, 0.8, 0.0, 0.1, 0.0]},
        {"label": "box", "color": "blue", "bbox_3d": [0.6, 0.7, 5.5, 1.0, 1.0, 1.0, 0.0, -0.2, 0.0]},
        {"label": "box", "color": "green", "bbox_3d": [1.2, 1.0, 3.2, 0.5, 0.4, 0.7, 0.0, 0.25, 0.0]},
    ],
}


def make_scenes(folder: Path = GROUNDING) -> dict:
    """Render the synthetic scenes into ``folder`` and write their truth to ``scenes.json``;
    returns that truth. Deterministic: the committed files are this function's output (08)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, dict] = {}
    for name, (w, h, n, seed, sizes, grid) in {
        "shapes_wide.png": (960, 540, 7, 1, (90, 160), False),
        "shapes_tall.png": (480, 800, 6, 2, (150, 260), False),
        "crowd.png": (800, 600, 48, 3, (60, 85), True),
    }.items():
        image, items = shapes_scene(w, h, n, seed, sizes, grid)
        image.save(folder / name, optimize=True)
        counts = {s: sum(it["label"] == s for it in items) for s in SHAPES if any(it["label"] == s for it in items)}
        truth[f"grounding/{name}"] = {"width": w, "height": h, "items": items, "counts": counts,
                                      "relations": relations(items) if not grid else []}
    spec = SCENES_3D
    w, h = 640, 480
    image = boxes3d_scene(w, h, spec["intrinsics"], [{**b, "color": COLORS[b["color"]]} for b in spec["boxes"]])
    image.save(folder / "boxes3d.png", optimize=True)
    items = []
    for b in spec["boxes"]:
        px = project(box3d_corners(b["bbox_3d"]), spec["intrinsics"])
        box = [float(v) for v in (*np.clip(px.min(axis=0), 0, [w, h]), *np.clip(px.max(axis=0), 0, [w, h]))]
        items.append({"label": b["label"], "color": b["color"], "ref": f"the {b['color']} box",
                      "bbox_3d": b["bbox_3d"], "box": [round(v, 2) for v in box]})
    truth["grounding/boxes3d.png"] = {"width": w, "height": h, "intrinsics": spec["intrinsics"], "items": items,
                                      "counts": {"box": len(items)}, "relations": relations(items)}
    (folder / "scenes.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return truth


def truth(folder: Path = GROUNDING) -> dict:
    """Ground truth for every grounding image, keyed by its name under ``assets/`` (use with
    ``cb.asset``): the hand-checked photo boxes (``photos.json``) and the rendered scenes (08)."""
    out = json.loads((folder / "photos.json").read_text(encoding="utf-8"))
    out.update(json.loads((folder / "scenes.json").read_text(encoding="utf-8")))
    return out
