"""Grounding scenes with exact ground truth (08, 13): coloured shapes drawn so that their pixels cover
exactly their boxes, and the relation questions those boxes answer (``scripts/make_scenes.py`` renders the
scenes of ``assets/grounding/``)."""

from __future__ import annotations

import math
from typing import Any

from cookbook.kit.assets import ASSETS

GROUNDING = ASSETS / "grounding"
COLORS = {"red": (220, 50, 47), "green": (40, 160, 60), "blue": (38, 100, 210), "orange": (245, 140, 20),
          "purple": (140, 70, 180), "black": (30, 30, 30), "yellow": (235, 200, 30)}
SHAPES = ("circle", "square", "triangle")


def draw_shape(canvas: Any, shape: str, box: list[float], color: tuple[int, int, int]) -> None:
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
    """A scene of coloured shapes and its exact truth: items with ``label`` (the shape), ``color``, ``ref``
    ("the red circle") and ``box`` in pixels. ``sizes``: the width range on the 0-1000 grid; ``grid=True``
    packs small shapes in a jittered grid (a crowded scene, labels repeat)."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    canvas = Image.new("RGB", (width, height), (246, 244, 238))
    combos = [(c, s) for c in COLORS for s in SHAPES]
    rng.shuffle(combos)
    boxes: list[list[int]] = []
    if grid:
        cols = math.ceil(math.sqrt(count * width / height))
        cw, ch = 1000 // cols, 1000 // math.ceil(count / cols)
        for cx, cy in [(i % cols, i // cols) for i in range(count)]:
            rw = rng.randint(sizes[0], sizes[1])
            rw, rh = min(rw, cw - 4), min(max(1, round(rw * width / height)), ch - 4)
            x, y = cx * cw + rng.randint(2, cw - rw - 2), cy * ch + rng.randint(2, ch - rh - 2)
            boxes.append([x, y, x + rw, y + rh])
    while len(boxes) < count:
        rw = rng.randint(*sizes)
        rh = round(rw * width / height)               # round in pixels on a non-square image
        x, y = rng.randint(20, 980 - rw), rng.randint(20, 980 - rh)
        if all(min(x + rw + 15, b[2]) <= max(x - 15, b[0]) or min(y + rh + 15, b[3]) <= max(y - 15, b[1])
               for b in boxes):                       # 15 units clear of every other shape
            boxes.append([x, y, x + rw, y + rh])
    items = []
    for n, rel in enumerate(boxes):
        color, shape = combos[n % len(combos)] if not grid else (rng.choice(list(COLORS)), rng.choice(SHAPES[:2]))
        box = [rel[0] / 1000 * width, rel[1] / 1000 * height, rel[2] / 1000 * width, rel[3] / 1000 * height]
        draw_shape(canvas, shape, box, COLORS[color])
        items.append({"label": shape, "color": color, "ref": f"the {color} {shape}", "box": box})
    return canvas, items


def relations(items: list[dict], limit: int = 8) -> list[dict]:
    """Yes/no questions on which item is left of / above which, answered from the boxes (pairs clearly apart)."""
    out = []
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            for axis, word, other in ((0, "to the left of", "to the right of"), (1, "above", "below")):
                if a["box"][axis + 2] < b["box"][axis] or b["box"][axis + 2] < a["box"][axis]:
                    first = a["box"][axis + 2] < b["box"][axis]
                    ask = word if len(out) % 2 == 0 else other
                    out.append({"question": f"Is {a['ref']} {ask} {b['ref']}? Answer yes or no.",
                                "answer": "yes" if first == (ask == word) else "no"})
    return out[:limit]
