"""Make the model inputs of 06_ui_to_code under assets/designs/.

- ``<name>.png`` for each hand-written reference page ``<name>.html``: rendered with
  ``cookbook.design.render`` (the same safe renderer and 1280x800 viewport the notebook scores with);
- ``sketch.png``: a wireframe of the login page drawn with Pillow, wobbly lines and all.

Run: ``.venv/bin/python scripts/make_designs.py`` (needs Chromium; about 15 s).
"""

from __future__ import annotations

import asyncio
import random

import cookbook as cb
from cookbook.kit.system import font_file


def wobbly_line(draw, start: tuple[float, float], end: tuple[float, float], rng: random.Random, width: int = 3) -> None:
    """A pen stroke from start to end that wanders a pixel or two, like a hand-drawn line."""
    (x0, y0), (x1, y1) = start, end
    steps = max(2, int(max(abs(x1 - x0), abs(y1 - y0)) / 12))
    points = [(x0 + (x1 - x0) * i / steps + rng.uniform(-1.5, 1.5),
               y0 + (y1 - y0) * i / steps + rng.uniform(-1.5, 1.5)) for i in range(steps + 1)]
    draw.line(points, fill=(40, 40, 48), width=width, joint="curve")


def wobbly_box(draw, box: tuple[float, float, float, float], rng: random.Random, width: int = 3) -> None:
    """A hand-drawn rectangle (x0, y0, x1, y1) whose corners overshoot a little."""
    x0, y0, x1, y1 = box
    o = lambda: rng.uniform(-4, 4)  # noqa: E731
    wobbly_line(draw, (x0 + o(), y0), (x1 + o(), y0), rng, width)
    wobbly_line(draw, (x1, y0 + o()), (x1, y1 + o()), rng, width)
    wobbly_line(draw, (x1 + o(), y1), (x0 + o(), y1), rng, width)
    wobbly_line(draw, (x0, y1 + o()), (x0, y0 + o()), rng, width)


def sketch(seed: int = 6):
    """The login page as a pen-on-paper wireframe: card, title, two labelled fields, a button."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed)
    image = Image.new("RGB", (1024, 768), (250, 248, 240))
    draw = ImageDraw.Draw(image)
    font = lambda size: ImageFont.truetype(font_file("DejaVuSans.ttf"), size)  # noqa: E731
    wobbly_box(draw, (292, 90, 732, 690), rng)  # the card
    draw.text((330, 130), "Welcome back", font=font(40), fill=(40, 40, 48))
    draw.text((330, 190), "Sign in to continue to your account.", font=font(18), fill=(90, 90, 100))
    for y, label, hint in ((260, "Email", "you@example.com"), (370, "Password", "Your password")):
        draw.text((330, y), label, font=font(22), fill=(40, 40, 48))
        wobbly_box(draw, (330, y + 34, 694, y + 84), rng, width=2)
        draw.text((346, y + 48), hint, font=font(17), fill=(150, 150, 160))
    draw.text((330, 486), "[ ] Remember me", font=font(17), fill=(40, 40, 48))
    draw.text((540, 486), "Forgot password?", font=font(17), fill=(30, 120, 60))
    wobbly_box(draw, (330, 540, 694, 600), rng)  # the button, shaded with pen strokes
    for x in range(340, 690, 14):
        wobbly_line(draw, (x, 548), (x + 10, 592), rng, width=1)
    draw.text((466, 555), "Sign in", font=font(24), fill=(40, 40, 48))
    draw.text((400, 630), "No account yet? Create one", font=font(17), fill=(90, 90, 100))
    draw.text((760, 110), "green button,\nfull width", font=font(16), fill=(30, 120, 60))
    wobbly_line(draw, (790, 160), (700, 560), rng, width=2)
    return image


async def render_references() -> None:
    """Render every reference page to <name>.png beside its HTML."""
    async with cb.kit.browser.launch() as browser:
        for name in cb.kit.designs.DESIGNS:
            html, png = cb.kit.designs.reference(name)
            shot = await cb.design.render(browser, html)
            shot.image.save(png, optimize=True)
            print(f"{png.name}: {shot.image.size[0]}x{shot.image.size[1]}, {len(shot.blocks)} text blocks")


def main() -> None:
    asyncio.run(render_references())
    path = cb.kit.designs.folder() / f"{cb.kit.designs.SKETCH}.png"
    sketch().save(path, optimize=True)
    print(f"{path.name}: 1024x768 wireframe")


if __name__ == "__main__":
    main()
