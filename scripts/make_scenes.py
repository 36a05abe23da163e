"""Render the grounding scenes of 08_spatial_grounding and their exact truth (assets/grounding/).

    .venv/bin/python scripts/make_scenes.py            # writes assets/grounding/
    .venv/bin/python scripts/make_scenes.py OUT_DIR    # anywhere else (the tests do this)

Deterministic: the committed files are this script's output. The shapes come from cookbook.kit.scenes;
the three boxes on a floor are drawn through a known camera with 08's own ``box3d_corners`` and ``project``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cookbook.grounding import box3d_corners, project
from cookbook.kit.scenes import COLORS, GROUNDING, SHAPES, relations, shapes_scene

SHAPE_SCENES = {"shapes_wide.png": (960, 540, 7, 1, (90, 160), False),
                "shapes_tall.png": (480, 800, 6, 2, (150, 260), False),
                "crowd.png": (800, 600, 48, 3, (60, 85), True)}
SCENE_3D = {
    "intrinsics": {"fx": 554.26, "fy": 554.26, "cx": 320.0, "cy": 240.0},   # 60 degrees across 640 pixels
    "boxes": [
        {"label": "box", "color": "red", "bbox_3d": [-1.1, 0.9, 4.0, 0.8, 0.6, 0.8, 0.0, 0.1, 0.0]},
        {"label": "box", "color": "blue", "bbox_3d": [0.6, 0.7, 5.5, 1.0, 1.0, 1.0, 0.0, -0.2, 0.0]},
        {"label": "box", "color": "green", "bbox_3d": [1.2, 1.0, 3.2, 0.5, 0.4, 0.7, 0.0, 0.25, 0.0]},
    ],
}
FACES = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]  # x+ x- y+ y- z+ z-


def boxes3d_scene(width: int, height: int, intrinsics: dict, boxes: list[dict]) -> Any:
    """Solid boxes (``bbox_3d``, ``color``) on a floor 1.2 m below a level camera, drawn through ``intrinsics``."""
    canvas = Image.new("RGB", (width, height), (200, 215, 230))
    pen = ImageDraw.Draw(canvas)
    floor = 1.2                                      # y grows downwards: the floor is at y = +1.2 m
    pen.rectangle([0, intrinsics["cy"], width, height], fill=(180, 170, 150))
    lines = [[[x, floor, 1.5], [x, floor, 30.0]] for x in np.arange(-4, 4.01, 1.0)]   # a 1 m floor grid
    lines += [[[-10, floor, z], [10, floor, z]] for z in (1.5, 2, 3, 4, 5, 6, 8, 10, 15)]
    for line in lines:
        pen.line([tuple(p) for p in project(np.array(line), intrinsics)], fill=(150, 140, 120), width=1)
    light = np.array([0.3, 0.8, 0.5]) / np.linalg.norm([0.3, 0.8, 0.5])   # the way the light travels
    for spec in sorted(boxes, key=lambda b: -b["bbox_3d"][2]):         # far boxes first
        corners = box3d_corners(spec["bbox_3d"])
        centre, pixels = corners.mean(axis=0), project(corners, intrinsics)
        for face in FACES:
            pts = corners[list(face)]
            normal = pts.mean(axis=0) - centre
            if normal @ pts.mean(axis=0) >= 0:        # facing away from the camera
                continue
            shade = 0.5 + 0.5 * max(0.0, float(-(normal / np.linalg.norm(normal)) @ light))
            pen.polygon([tuple(pixels[i]) for i in face], fill=tuple(int(c * shade) for c in spec["color"]),
                        outline=(40, 40, 40))
    return canvas


def make_scenes(folder: Path = GROUNDING) -> dict:
    """Render the scenes into ``folder``, write their truth to ``scenes.json`` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, dict] = {}
    for name, (w, h, n, seed, sizes, grid) in SHAPE_SCENES.items():
        image, items = shapes_scene(w, h, n, seed, sizes, grid)
        image.save(folder / name, optimize=True)
        counts = {s: sum(it["label"] == s for it in items) for s in SHAPES if any(it["label"] == s for it in items)}
        truth[f"grounding/{name}"] = {"width": w, "height": h, "items": items, "counts": counts,
                                      "relations": relations(items) if not grid else []}
    w, h, camera = 640, 480, SCENE_3D["intrinsics"]
    image = boxes3d_scene(w, h, camera, [{**b, "color": COLORS[b["color"]]} for b in SCENE_3D["boxes"]])
    image.save(folder / "boxes3d.png", optimize=True)
    items = []
    for b in SCENE_3D["boxes"]:
        px = project(box3d_corners(b["bbox_3d"]), camera)
        box = [float(v) for v in (*np.clip(px.min(axis=0), 0, [w, h]), *np.clip(px.max(axis=0), 0, [w, h]))]
        items.append({"label": b["label"], "color": b["color"], "ref": f"the {b['color']} box",
                      "bbox_3d": b["bbox_3d"], "box": [round(v, 2) for v in box]})
    truth["grounding/boxes3d.png"] = {"width": w, "height": h, "intrinsics": camera, "items": items,
                                      "counts": {"box": len(items)}, "relations": relations(items)}
    (folder / "scenes.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return truth


if __name__ == "__main__":
    make_scenes(Path(sys.argv[1]) if len(sys.argv) > 1 else GROUNDING)
