"""A small retrieval collection with exact ground truth (15): notice pages drawn in memory, each carrying one
fact found on no other page, and one question per page whose only relevant page is that one. Each page
also shows a coloured shape (``scenes.draw_shape``), so the images differ beyond their text."""

from __future__ import annotations

import random
from typing import Any

from cookbook.kit.scenes import COLORS, SHAPES, draw_shape

PLACES = ("Amber", "Birch", "Cedar", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper",
          "Kestrel", "Linden", "Maple", "Nimbus", "Onyx", "Pine", "Quartz", "Raven", "Sable", "Tundra",
          "Umber", "Violet", "Willow", "Zephyr")
BACKGROUND = (250, 250, 246)
INK = (20, 20, 20)
SIZE = (256, 128)  # 8 x 4 visual tokens of 32x32 pixels


def pages(count: int = 24, seed: int = 15, size: tuple[int, int] = SIZE) -> list[dict[str, Any]]:
    """``count`` notice pages: ``id``, ``image`` (PIL), ``title``, ``fact``, ``answer`` (the 4-digit code),
    ``text_boxes`` (pixel box of each drawn line), ``shape`` and ``color``. Same seed, same pages."""
    from PIL import Image, ImageDraw, ImageFont

    if not 1 <= count <= len(PLACES):
        raise ValueError(f"count must be 1..{len(PLACES)}, got {count}")
    rng = random.Random(seed)
    codes = rng.sample(range(1000, 10000), count)  # distinct: each fact is on one page only
    combos = [(c, s) for c in COLORS for s in SHAPES]
    rng.shuffle(combos)
    width, height = size
    font = ImageFont.load_default(size=max(12, height // 8))
    out = []
    for n, (place, code) in enumerate(zip(PLACES, codes, strict=False)):
        title, fact = f"{place} depot notice", f"Locker code: {code}"
        canvas = Image.new("RGB", size, BACKGROUND)
        pen = ImageDraw.Draw(canvas)
        boxes = []
        for line, y in ((title, height // 10), (fact, height // 2)):
            pen.text((width // 16, y), line, fill=INK, font=font)
            boxes.append([int(v) for v in pen.textbbox((width // 16, y), line, font=font)])
        color, shape = combos[n % len(combos)]
        side = height // 4
        draw_shape(canvas, shape, [width - side - 8, height - side - 8, width - 8, height - 8], COLORS[color])
        out.append({"id": f"page-{n:02d}", "image": canvas, "title": title, "fact": fact, "answer": str(code),
                    "text_boxes": boxes, "shape": shape, "color": color})
    return out


def queries(collection: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One question per page, ``{"query", "relevant", "answer"}``: ``relevant`` is the id of the only page
    that answers it (its place name appears on no other page)."""
    return [{"query": f"What is the locker code at the {p['title'].split()[0]} depot?",
             "relevant": p["id"], "answer": p["answer"]} for p in collection]
