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

SCALE = 1000  # Qwen3-VL's coordinate range; some Alibaba docs and the mobile cookbook use 999
GROUNDING = Path(__file__).resolve().parent.parent / "assets" / "grounding"
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "/Library/Fonts", "C:/Windows/Fonts")


class ParseError(ValueError):
    """The model's answer holds no JSON the parser can use; the message quotes the text (08)."""


class Parsed(list):
    """The items ``parse`` found (a plain list of dicts) plus ``notes``: what was repaired or lost (08)."""

    notes: list[str]


def _scan(text: str) -> tuple[list[tuple[int, int]], int, int]:
    """Top-level JSON spans of ``text`` (start, end), the bracket depth left open at the end, and
    the end of the last element that closed inside the open top-level value (-1 if none)."""
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
    return spans, depth, last_inner if depth else -1


def _json_part(text: str) -> str:
    """The text inside a ```json fence (or any fence), else from the first bracket on."""
    fence = re.search(r"```(?:json)?\s*\n?(.*?)(?:```|$)", text, re.S)
    body = fence.group(1) if fence and re.search(r"[\[{]", fence.group(1)) else text
    first = re.search(r"[\[{]", body)
    return body[first.start():] if first else ""


# saved in cookbook/grounding.py
def parse(text: str, width: int, height: int, scale: int = SCALE) -> list[dict]:
    """Items from the model's JSON answer, ``bbox_2d``/``point_2d`` turned into pixels of a
    ``width`` x ``height`` image as ``box`` [x1, y1, x2, y2] / ``point`` [x, y]; other keys are kept.
    Repairs are listed in ``.notes``; a cut-off answer keeps its complete objects and warns (08)."""
    import json_repair

    part = _json_part(text)
    if not part:
        raise ParseError(f"no JSON in the answer: {text[:300]!r}")
    notes = []
    spans, open_depth, last_inner = _scan(part)
    if open_depth:                                    # the answer stopped mid-JSON
        if part[0] == "[":
            part = part[:last_inner] + "]" if last_inner > 0 else "[]"
            notes.append("truncated: the answer was cut off; the incomplete last object was dropped")
        else:
            part = "[" + ",".join(part[a:b] for a, b in spans) + "]"
            notes.append("truncated: the answer was cut off inside an object, which was dropped")
    elif part[0] == "{" and len(spans) > 1:          # one object per line, no list around them
        part = "[" + ",".join(part[a:b] for a, b in spans if part[a] == "{") + "]"
    else:
        part = part[slice(*spans[0])]
    data = json_repair.loads(part)
    if isinstance(data, dict):
        data = [data]
    if isinstance(data, list) and len(data) in (2, 4) and all(isinstance(v, (int, float)) for v in data):
        data = [{"point_2d" if len(data) == 2 else "bbox_2d": data}]   # a bare [x1, y1, x2, y2]
    if not isinstance(data, list):
        raise ParseError(f"no JSON list or object in the answer: {text[:300]!r}")

    items = Parsed()
    for n, raw in enumerate(data):
        if not isinstance(raw, dict):
            notes.append(f"item {n}: not an object ({raw!r}), skipped")
            continue
        item = {"label": str(raw.get("label", ""))}
        item.update((k, v) for k, v in raw.items() if k not in ("bbox_2d", "point_2d", "label"))
        for key, size, out in (("bbox_2d", 4, "box"), ("point_2d", 2, "point")):
            if key not in raw:
                continue
            values = raw[key]
            if not (isinstance(values, list) and len(values) == size
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
                notes.append(f"item {n}: {key} is not {size} numbers ({values!r}), dropped")
                continue
            clamped = [min(max(float(v), 0.0), scale) for v in values]
            if clamped != values:
                notes.append(f"item {n}: {key} {values} clamped to 0-{scale}")
            if size == 4 and (clamped[0] > clamped[2] or clamped[1] > clamped[3]):
                notes.append(f"item {n}: reversed corners in {values} put in order")
                clamped = [min(clamped[0], clamped[2]), min(clamped[1], clamped[3]),
                           max(clamped[0], clamped[2]), max(clamped[1], clamped[3])]
            item[out] = [v / scale * (width if i % 2 == 0 else height) for i, v in enumerate(clamped)]
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


def _font() -> str | None:
    """A font file with Chinese glyphs (Noto CJK), or None; labels then use supervision's default."""
    for folder in FONT_DIRS:
        root = Path(folder).expanduser()
        if root.is_dir():
            for pattern in ("NotoSansCJK-Regular.ttc", "NotoSansCJK*.ttc", "NotoSans*CJK*.otf", "msyh.ttc"):
                found = sorted(root.rglob(pattern))
                if found:
                    return str(found[0])
    return None


# saved in cookbook/grounding.py
def draw(image: Any, items: list[dict], intrinsics: dict | None = None, labels: bool = True) -> Any:
    """A copy of ``image`` (PIL) with each item's ``box``, ``point`` and label drawn with supervision;
    ``bbox_3d`` items too when camera ``intrinsics`` (fx, fy, cx, cy) are given (08, 09)."""
    import numpy as np
    from PIL import Image

    with warnings.catch_warnings():   # supervision warns once that OpenCV is absent; it draws without it
        warnings.simplefilter("ignore")
        import supervision as sv

    canvas = image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    canvas = canvas.copy()
    names = sorted({str(it.get("label", "")) for it in items})
    text = [str(it.get("label") or it.get("text_content") or "") for it in items]
    thick = max(2, round(max(canvas.size) / 400))

    boxes = [(i, it["box"]) for i, it in enumerate(items) if "box" in it]
    if boxes:
        det = sv.Detections(xyxy=np.array([b for _, b in boxes], dtype=float),
                            class_id=np.array([names.index(str(items[i].get("label", ""))) for i, _ in boxes]))
        canvas = sv.BoxAnnotator(thickness=thick).annotate(canvas, det)
    points = [(i, it["point"]) for i, it in enumerate(items) if "point" in it]
    if points:
        xy = np.array([[x, y, x, y] for _, (x, y) in points], dtype=float)
        det_p = sv.Detections(xyxy=xy, class_id=np.array([names.index(str(items[i].get("label", ""))) for i, _ in points]))
        canvas = sv.DotAnnotator(radius=2 * thick + 2, outline_thickness=1).annotate(canvas, det_p)
    cubes = [(i, project(box3d_corners(it["bbox_3d"]), intrinsics)) for i, it in enumerate(items)
             if "bbox_3d" in it and intrinsics is not None]
    cubes = [(i, c) for i, c in cubes if c is not None]
    if cubes:
        edges = [(a + 1, b + 1) for a, b in BOX3D_EDGES]             # supervision counts vertices from 1
        for i, corners in cubes:
            color = sv.ColorPalette.DEFAULT.by_idx(names.index(str(items[i].get("label", ""))))
            key = sv.KeyPoints(xy=np.array([corners], dtype=np.float32))
            canvas = sv.EdgeAnnotator(color=color, thickness=thick, edges=edges).annotate(canvas, key)
    if labels:
        anchored = list(boxes)
        anchored += [(i, [x, y, x, y]) for i, (x, y) in points]
        anchored += [(i, [*c.min(axis=0), *c.max(axis=0)]) for i, c in cubes]
        anchored = [(i, b) for i, b in anchored if text[i]]
        if anchored:
            det_l = sv.Detections(xyxy=np.array([b for _, b in anchored], dtype=float),
                                  class_id=np.array([names.index(str(items[i].get("label", ""))) for i, _ in anchored]))
            size = max(10, round(max(canvas.size) / 70))
            annotator = sv.RichLabelAnnotator(font_path=_font(), font_size=size, text_padding=2, smart_position=True)
            canvas = annotator.annotate(canvas, det_l, labels=[text[i] for i, _ in anchored])
    return canvas


# The 12 edges of a 3D box between the corners of ``box3d_corners`` (same order as the 3D cookbook)
BOX3D_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]


# saved in cookbook/grounding.py
def camera(width: int, height: int, fov: float = 60.0) -> dict:
    """Pinhole intrinsics fx, fy, cx, cy for an image with no calibration, as the 3D-grounding
    cookbook assumes: a ``fov``-degree view across the width and, separately, across the height (08)."""
    fx = width / (2 * math.tan(math.radians(fov) / 2))
    fy = height / (2 * math.tan(math.radians(fov) / 2))
    return {"fx": fx, "fy": fy, "cx": width / 2, "cy": height / 2}


# saved in cookbook/grounding.py
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


# saved in cookbook/grounding.py
def project(points: Any, intrinsics: dict) -> Any:
    """Pixel positions (Nx2) of camera-frame points (Nx3) through pinhole ``intrinsics``
    (u = fx * X / Z + cx, v = fy * Y / Z + cy); None when a point is not in front of the camera (08)."""
    import numpy as np

    pts = np.asarray(points, dtype=float)
    if (pts[:, 2] <= 1e-6).any():
        return None
    return np.stack([intrinsics["fx"] * pts[:, 0] / pts[:, 2] + intrinsics["cx"],
                     intrinsics["fy"] * pts[:, 1] / pts[:, 2] + intrinsics["cy"]], axis=1)
