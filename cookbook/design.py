"""UI to code (06_ui_to_code): the prompt, HTML extraction, safe rendering, Design2Code's visual
score with SSIM in place of CLIP, and a refine loop.

Rendering uses the shared Chromium (``cookbook.kit.browser``) with JavaScript off and every request
aborted. The score follows Design2Code (Si et al., NAACL 2025; ``NoviScl/Design2Code``,
``Design2Code/metrics/visual_score.py``): text
blocks read from both rendered DOMs, matched one-to-one, then block-match, text, position and colour,
each in [0, 1], averaged with an image similarity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The prompt of the official Qwen3-VL multimodal-coding cookbook (QwenLM/Qwen3-VL cookbooks/mmcode.ipynb).
PROMPT = "Analyze this screenshot and convert it to clean, functional and modern HTML code."
DESIGNS = ("landing", "pricing", "login", "dashboard", "chinese")
SKETCH = "sketch"
WIDTH, HEIGHT, MAX_HEIGHT = 1280, 800, 4000


def folder() -> Path:
    """The folder of the reference designs: ``<name>.html`` (ground truth) and ``<name>.png`` (06)."""
    from cookbook.kit.assets import ASSETS

    return ASSETS / "designs"


def reference(name: str) -> tuple[str, Path]:
    """A reference design's HTML (the ground truth) and the path of its rendered PNG (06)."""
    if name not in DESIGNS:
        raise KeyError(f"unknown design {name!r}; choose from {', '.join(DESIGNS)}")
    from cookbook.kit.assets import asset

    return asset(f"designs/{name}.html").read_text(encoding="utf-8"), folder() / f"{name}.png"


class ParseError(ValueError):
    """An answer with no HTML in it; the message quotes the answer (06)."""


def extract_html(text: str) -> str:
    """The HTML in a model's answer: the last fenced code block (an unclosed fence counts), else a
    bare document; a ``ParseError`` (a ``ValueError``) quoting the text when there is none (06)."""
    import re

    from cookbook.kit.replies import bounded

    text = bounded(text, ParseError)
    # Fences are found with str.find, each character read once: a regular expression looking for
    # "```lang\n" backtracks quadratically over a run of backticks, a known way for a model to fail.
    blocks, at = [], 0
    while (start := text.find("```", at)) >= 0:
        eol = text.find("\n", start + 3)
        if eol < 0:
            break                                         # no line after the fence: no code in it
        end = text.find("```", eol + 1)                   # an unclosed fence runs to the end
        lang = re.match(r"[ \t]*([\w+-]*)", text[start + 3:eol]).group(1)
        blocks.append((lang, text[eol + 1:] if end < 0 else text[eol + 1:end]))
        if end < 0:
            break
        at = end + 3
    html = [body for lang, body in blocks if lang.lower() in ("html", "htm", "")]
    if html and html[-1].strip():
        return html[-1].strip()
    bare = re.search(r"(<!doctype html|<html\b).*?(</html>|\Z)", text, flags=re.DOTALL | re.IGNORECASE)
    if bare:
        return bare.group(0).strip()
    shown = text if len(text) <= 200 else text[:200] + "..."
    raise ParseError(f"no HTML code in the answer: {shown!r}")


@dataclass(frozen=True)
class Block:
    """A run of visible text: its words, box (x, y, w, h as fractions of the screenshot) and colour (06)."""

    text: str
    box: tuple[float, float, float, float]
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Render:
    """A rendered page: screenshot, text blocks, full height before the cap, refused requests (06)."""

    html: str
    image: Any
    blocks: tuple[Block, ...]
    page_height: int
    truncated: bool
    blocked: tuple[str, ...] = ()


async def read_blocks(page: Any, width: int, height: int) -> list[Block]:
    """The visible text runs of a rendered page, read from its DOM (not OCR) (06).

    One block per text node: its words, the box of its glyphs in page pixels divided by the
    screenshot's size, and its computed CSS colour. Blocks below ``height`` are dropped.
    """
    import re

    runs = await page.evaluate("""() => {
        const out = [], skip = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "TEMPLATE", "TITLE"]);
        const walker = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const text = node.textContent.replace(/\\s+/g, " ").trim(), el = node.parentElement;
            if (!text || !el || skip.has(el.tagName)) continue;
            const style = getComputedStyle(el);
            if (style.visibility !== "visible" || style.opacity === "0") continue;
            const range = document.createRange();
            range.selectNodeContents(node);
            const r = range.getBoundingClientRect();
            if (r.width < 1 || r.height < 1) continue;
            out.push({text, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height, color: style.color});
        }
        return out;
    }""")
    blocks = []
    for run in runs:
        top, bottom = max(run["y"], 0.0), min(run["y"] + run["h"], float(height))
        left, right = max(run["x"], 0.0), min(run["x"] + run["w"], float(width))
        if bottom - top < 1 or right - left < 1:
            continue
        numbers = [float(v) for v in re.findall(r"[\d.]+", run["color"])[:3]]
        if run["color"].startswith("color("):  # color(srgb r g b) with channels in 0..1
            numbers = [v * 255 for v in numbers]
        rgb = tuple(int(round(v)) for v in (numbers + [0.0, 0.0, 0.0])[:3])
        box = (left / width, top / height, (right - left) / width, (bottom - top) / height)
        blocks.append(Block(run["text"], box, rgb))
    return blocks


async def render(browser: Any, html: str, *, width: int = WIDTH, height: int = HEIGHT,
                 max_height: int = MAX_HEIGHT, timeout_s: float = 10.0) -> Render:
    """Render HTML safely: JavaScript off, every request aborted (and no connection opened), meta
    refresh, resource hints and pings removed, animations stopped, at most ``max_height`` pixels
    tall, ``TimeoutError`` after ``timeout_s`` seconds (06)."""
    import asyncio
    import io

    from PIL import Image

    from cookbook.kit import browser as chromium

    page = await chromium.new_page(browser, width=width, height=height, javascript=False, allow=())
    try:
        async with asyncio.timeout(timeout_s):
            # Chromium follows <meta http-equiv="refresh"> even with JavaScript off, and acts on
            # resource hints (a prefetch is a whole GET) and pings below the request router: parse
            # the page with the browser's own parser (which runs nothing) and drop them first, in
            # the pages of srcdoc frames too. The proxy in `new_page` refuses whatever is left.
            clean = await page.evaluate("""(html) => {
                const ahead = ["preconnect", "dns-prefetch", "prefetch", "preload", "modulepreload", "prerender"];
                const clean = (source) => {
                    const doc = new DOMParser().parseFromString(source, "text/html");
                    doc.querySelectorAll("link[rel]").forEach((l) => {
                        if ([...l.relList].some((r) => ahead.includes(r.toLowerCase()))) l.remove();
                    });
                    doc.querySelectorAll("script[type]").forEach((s) => {
                        if (s.type.trim().toLowerCase() === "speculationrules") s.remove();
                    });
                    doc.querySelectorAll("meta[http-equiv]").forEach((m) => {
                        if (["refresh", "link"].includes(m.httpEquiv.trim().toLowerCase())) m.remove();
                    });
                    doc.querySelectorAll("[ping]").forEach((a) => a.removeAttribute("ping"));
                    doc.querySelectorAll("iframe[srcdoc]").forEach((f) => f.setAttribute("srcdoc", clean(f.srcdoc)));
                    return (doc.doctype ? "<!DOCTYPE html>" : "") + doc.documentElement.outerHTML;
                };
                return clean(html);
            }""", html)
            await page.emulate_media(reduced_motion="reduce")
            await page.set_content(clean, wait_until="load", timeout=timeout_s * 1000)
            full = int(await page.evaluate("document.documentElement.scrollHeight"))
            shot_height = max(1, min(full, max_height))
            png = await page.screenshot(full_page=True, animations="disabled", timeout=timeout_s * 1000,
                                        clip={"x": 0, "y": 0, "width": width, "height": shot_height})
            blocks = await read_blocks(page, width, shot_height)
    except TimeoutError as err:
        raise TimeoutError(f"the page took longer than {timeout_s} s to render") from err
    finally:
        refused = tuple(chromium.blocked(page))
        closing = asyncio.ensure_future(page.context.close())  # a page still busy closes in the background
        closing.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.wait({closing}, timeout=2)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return Render(html, image, tuple(blocks), full, full > max_height, refused)


def match_blocks(target: list[Block], candidate: list[Block], threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Pair target and candidate blocks one-to-one by text similarity (Hungarian method); pairs
    under ``threshold`` are dropped, as in Design2Code. Returns (target index, candidate index, ratio) (06)."""
    from difflib import SequenceMatcher

    import numpy as np
    from scipy.optimize import linear_sum_assignment

    if not target or not candidate:
        return []
    ratio = np.array([[SequenceMatcher(None, a.text, b.text).ratio() for b in candidate] for a in target])
    centre = lambda b: np.array([b.box[0] + b.box[2] / 2, b.box[1] + b.box[3] / 2])  # noqa: E731
    dist = np.array([[np.abs(centre(a) - centre(b)).max() for b in candidate] for a in target])
    # Repeated texts ("Paid", "$0") tie on text; a small bonus for nearby blocks breaks the tie.
    rows, cols = linear_sum_assignment(ratio + 0.01 * (1 - dist), maximize=True)
    return [(int(i), int(j), float(ratio[i, j])) for i, j in zip(rows, cols, strict=True) if ratio[i, j] >= threshold]


def ssim(a: Any, b: Any, width: int = 640) -> tuple[float, Any]:
    """Structural similarity of two screenshots (grey, padded with white to one height, scaled to
    ``width``) and its per-pixel map, 1 where they agree (06)."""
    import numpy as np
    from PIL import Image
    from skimage.metrics import structural_similarity

    height = max(a.height, b.height)
    grey = []
    for image in (a, b):
        canvas = Image.new("L", (a.width, height), 255)
        canvas.paste(image.convert("L").resize((a.width, image.height)), (0, 0))
        grey.append(np.asarray(canvas.resize((width, max(7, round(height * width / a.width))))))
    value, full = structural_similarity(grey[0], grey[1], data_range=255, full=True)
    return float(value), full


@dataclass(frozen=True)
class Score:
    """Design2Code's four block scores and SSIM (each 0..1); ``total`` is their mean; ``reason``
    says why a candidate scored 0 (06)."""

    block: float
    text: float
    position: float
    color: float
    ssim: float
    matches: tuple[tuple[Block, Block, float], ...] = ()
    missing: tuple[Block, ...] = ()
    extra: tuple[Block, ...] = ()
    reason: str = ""
    heat: Any = field(default=None, repr=False, compare=False)

    @property
    def total(self) -> float:
        return 0.2 * (self.block + self.text + self.position + self.color + self.ssim)

    def __str__(self) -> str:
        parts = f"block {self.block:.3f}  text {self.text:.3f}  position {self.position:.3f}  " \
                f"colour {self.color:.3f}  ssim {self.ssim:.3f}  -> total {self.total:.3f}"
        return parts + (f"  ({self.reason})" if self.reason else "")


def visual_score(target: Render, candidate: Render) -> Score:
    """Score a candidate render against the target as Design2Code does, with SSIM for CLIP (06)."""
    import numpy as np
    from skimage.color import deltaE_ciede2000, rgb2lab

    similarity, heat = ssim(target.image, candidate.image)
    pairs = match_blocks(list(target.blocks), list(candidate.blocks))
    if not pairs:
        reason = "no text block in common" if target.blocks and candidate.blocks else "a page without text"
        return Score(0.0, 0.0, 0.0, 0.0, similarity, missing=target.blocks, extra=candidate.blocks,
                     reason=reason, heat=heat)
    area = lambda b: b.box[2] * b.box[3]  # noqa: E731
    t = [target.blocks[i] for i, _, _ in pairs]
    c = [candidate.blocks[j] for _, j, _ in pairs]
    used_t, used_c = {i for i, _, _ in pairs}, {j for _, j, _ in pairs}
    missing = tuple(b for i, b in enumerate(target.blocks) if i not in used_t)
    extra = tuple(b for j, b in enumerate(candidate.blocks) if j not in used_c)
    matched = sum(area(a) + area(b) for a, b in zip(t, c, strict=True))
    unmatched = sum(map(area, missing + extra))
    centres = [np.array([[b.box[0] + b.box[2] / 2, b.box[1] + b.box[3] / 2] for b in side]) for side in (t, c)]
    position = 1 - np.abs(centres[0] - centres[1]).max(axis=1)
    labs = [rgb2lab(np.array([[b.color for b in side]], dtype=float) / 255) for side in (t, c)]
    color = np.clip(1 - deltaE_ciede2000(labs[0], labs[1])[0] / 100, 0, 1)
    return Score(
        block=float(matched / (matched + unmatched)), text=float(np.mean([r for _, _, r in pairs])),
        position=float(position.mean()), color=float(color.mean()), ssim=similarity,
        matches=tuple((a, b, r) for a, b, (_, _, r) in zip(t, c, pairs, strict=True)),
        missing=missing, extra=extra, heat=heat,
    )


async def score_answer(browser: Any, text: str, target: Render) -> tuple[Score, Render | None]:
    """Extract, render and score a model's answer; no HTML in it scores 0 with the reason (06)."""
    try:
        html = extract_html(text)
    except ValueError as err:
        return Score(0.0, 0.0, 0.0, 0.0, 0.0, missing=target.blocks, reason=str(err)), None
    candidate = await render(browser, html)
    return visual_score(target, candidate), candidate


def side_by_side(target: Render, candidate: Render | None, score: Score) -> Any:
    """A matplotlib figure: target, candidate render and the SSIM difference heat map (06)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    axes[0].imshow(target.image)
    axes[0].set_title("target")
    if candidate is not None:
        axes[1].imshow(candidate.image)
        axes[1].set_title(f"render (total {score.total:.2f})")
    else:
        axes[1].text(0.5, 0.5, "nothing to render", ha="center", va="center")
        axes[1].set_title("render")
    if score.heat is not None:
        shown = axes[2].imshow(1 - score.heat, cmap="magma", vmin=0, vmax=1)
        fig.colorbar(shown, ax=axes[2], fraction=0.046, shrink=0.6, label="1 - SSIM")
    else:
        axes[2].text(0.5, 0.5, "no render, no map", ha="center", va="center")
    axes[2].set_title("where they differ")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def feedback(score: Score, limit: int = 8) -> str:
    """What differs, in words the model can act on: missing and extra text, moved and recoloured
    blocks (06)."""
    lines = []
    for b in score.missing[:limit]:
        lines.append(f'- missing text "{b.text}" at x={b.box[0]:.0%}, y={b.box[1]:.0%} of the page')
    for b in score.extra[:limit]:
        lines.append(f'- text not in the target: "{b.text}"')
    for a, b, _ in score.matches:
        dx, dy = b.box[0] - a.box[0], b.box[1] - a.box[1]
        if max(abs(dx), abs(dy)) > 0.02:
            lines.append(f'- "{a.text}" is {dx:+.0%} across and {dy:+.0%} down from where it should be')
        if a.color != b.color:
            lines.append(f'- "{a.text}" should be colour rgb{a.color}, not rgb{b.color}')
    shown = lines[: limit * 2] or ["- the text matches; compare spacing, sizes and backgrounds"]
    return ("The first image is the target, the second is how your HTML renders. Differences:\n"
            + "\n".join(shown) + "\nReturn the whole corrected page in one ```html code block.")


@dataclass(frozen=True)
class Round:
    """One round of the refine loop: the model's answer, its render (None without HTML), its score (06)."""

    answer: str
    render: Render | None
    score: Score


async def refine(generate: Callable[[list[dict[str, Any]]], str], browser: Any, target: Render,
                 image: Any = None, rounds: int = 3, image_tokens: int | None = None) -> tuple[Round, list[Round]]:
    """Ask, render, score, and send target and render back with what differs; keep the best round,
    stop after ``rounds`` or when the score stops improving. ``generate(messages) -> str`` (06)."""
    from cookbook.kit import messages as m

    picture = lambda im: m.image(im, max_tokens=image_tokens)  # noqa: E731
    conversation = [m.user(picture(image if image is not None else target.image), PROMPT)]
    history: list[Round] = []
    best: Round | None = None
    for _ in range(rounds):
        answer = generate(conversation)
        score, candidate = await score_answer(browser, answer, target)
        history.append(Round(answer, candidate, score))
        if best is not None and score.total <= best.score.total:
            break
        best = history[-1]
        shown = candidate.image if candidate is not None else None
        note = feedback(score) if candidate is not None else f"{score.reason}. {PROMPT} Answer with one ```html code block."
        images = [picture(target.image), picture(shown)] if shown is not None else []
        conversation = conversation + [m.assistant(answer), m.user(*images, note)]
    return best, history
