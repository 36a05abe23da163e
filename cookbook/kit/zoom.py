"""Ground truth for 05's "think with images" step: large generated scenes where the answer, a short code on
one small tag, is too small to read at the model's input size and plain in a crop; the zoom tool the official
``think_with_images`` cookbook gives the model (Qwen-Agent's ``image_zoom_in_tool``); a reference that replays
the truth."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The tool as Qwen-Agent declares it (QwenLM/Qwen-Agent ``qwen_agent/tools/image_zoom_in_qwen3vl.py``,
# registered as ``image_zoom_in_tool``; used by QwenLM/Qwen3-VL ``cookbooks/think_with_images.ipynb``).
# ``bbox_2d`` is relative, 0-1000, as the cookbook's note says.
ZOOM_TOOL: dict[str, Any] = {"type": "function", "function": {
    "name": "image_zoom_in_tool",
    "description": ("Zoom in on a specific region of an image by cropping it based on a bounding box (bbox) "
                    "and an optional object label"),
    "parameters": {
        "type": "object",
        "properties": {
            "bbox_2d": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                        "description": ("The bounding box of the region to zoom in, as [x1, y1, x2, y2], where "
                                        "(x1, y1) is the top-left corner and (x2, y2) is the bottom-right corner")},
            "label": {"type": "string", "description": "The name or label of the object in the specified bounding box"},
            "img_idx": {"type": "number", "description": "The index of the zoomed-in image (starting from 0)"},
        },
        "required": ["bbox_2d", "label", "img_idx"],
    },
}}
SCALE = 1000                 # bbox_2d's range
SIZE = (3200, 2400)          # the scene: large, so the model's resized input shrinks the tag's text
FONT_PX = 10                 # the tags' font size in scene pixels (capitals about 7 px tall)
ALPHABET = "ACEFHKLMNPRTUVWXY34679"  # no look-alikes (0/O, 1/I, 2/Z, 5/S, 8/B)
INK = (0, 0, 0)              # the tags' text: the only pixels darker than DARK in every channel
DARK = 90                    # the clutter's channels start here
TARGET, DISTRACTOR = (220, 30, 30), (30, 80, 220)  # tag borders: the asked one red, the others blue
QUESTION = "What is the code printed on the small tag with the red border? Answer with the code only."


@dataclass(frozen=True)
class Puzzle:
    """A scene, the question, the code on the red tag and that tag's box [x1, y1, x2, y2] in scene pixels (05)."""

    image: Any
    question: str
    answer: str
    box: tuple[int, int, int, int]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font with no file to find
    except TypeError:
        return ImageFont.load_default()


def puzzle(seed: int, size: tuple[int, int] = SIZE) -> Puzzle:
    """One deterministic scene: pastel clutter, four blue-bordered decoy tags and the red-bordered one (05)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    w, h = size
    image = Image.new("RGB", size, (246, 244, 238))
    draw = ImageDraw.Draw(image)
    for _ in range(140):  # clutter: shapes in mid tones, never black
        x, y = rng.randrange(w), rng.randrange(h)
        rw, rh = rng.randrange(40, 400), rng.randrange(40, 300)
        colour = tuple(rng.randrange(DARK, 235) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + rw, y + rh], fill=colour)
    font = _font(FONT_PX)
    cells = [(cx, cy) for cx in range(8) for cy in range(6)]  # one tag per grid cell: tags never overlap
    rng.shuffle(cells)
    codes: list[str] = []
    while len(codes) < 5:
        code = "".join(rng.choice(ALPHABET) for _ in range(5))
        if code not in codes:
            codes.append(code)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    for i, (code, (cx, cy)) in enumerate(zip(codes, cells, strict=False)):
        left, top, right, bottom = draw.textbbox((0, 0), code, font=font)
        tw, th = right - left + 12, bottom - top + 10
        x = cx * (w // 8) + rng.randrange(20, w // 8 - tw - 20)
        y = cy * (h // 6) + rng.randrange(20, h // 6 - th - 20)
        draw.rectangle([x, y, x + tw - 1, y + th - 1], fill=(255, 255, 255), outline=TARGET if i == 0 else DISTRACTOR,
                       width=2)
        draw.text((x + 6 - left, y + 5 - top), code, font=font, fill=INK)
        if i == 0:
            box = (x, y, x + tw, y + th)
    return Puzzle(image, QUESTION, codes[0], box)


def puzzles(n: int, seed: int = 0) -> list[Puzzle]:
    """``n`` scenes, seeds ``seed`` .. ``seed + n - 1`` (05)."""
    return [puzzle(seed + i) for i in range(n)]


def relative(box: tuple[int, int, int, int] | list[float], width: int, height: int) -> list[float]:
    """A pixel box as the tool's 0-1000 ``bbox_2d`` (floats, so that it maps back exactly) (05)."""
    return [box[0] / width * SCALE, box[1] / height * SCALE, box[2] / width * SCALE, box[3] / height * SCALE]


def reference_policy(p: Puzzle) -> Callable[[list[dict]], str]:
    """A policy that replays the truth: first a zoom call on the red tag's box, then the code. It reads the
    ground truth, never the pixels; it proves the loop and the scorer, not a model (05)."""
    call = {"name": ZOOM_TOOL["function"]["name"],
            "arguments": {"bbox_2d": relative(p.box, *p.image.size), "label": "the tag with the red border",
                          "img_idx": 0}}

    def policy(messages: list[dict]) -> str:
        turns = sum(m["role"] == "assistant" for m in messages)
        return f"<tool_call>\n{json.dumps(call)}\n</tool_call>" if turns == 0 else p.answer

    return policy
