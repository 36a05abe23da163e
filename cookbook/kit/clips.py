"""Clips with known content for 07 and 11: frames with a burned-in clock and scripted ``EVENTS``, read back
from their pixels (``detect``); writers for the short events clip, a 30-minute chaptered clip with a needle,
a panned photo for the reader benchmark, the committed ``assets/video/`` files, and a silent audio track."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

BACKGROUND, GREEN, SQUARE, TEXT, NEEDLE = (40, 44, 60), (30, 150, 60), (230, 40, 40), (245, 245, 245), (250, 210, 0)
#: The scripted events of the short clip: [start, end) in seconds, what a viewer sees.
EVENTS: list[dict[str, Any]] = [
    {"start": 2.0, "end": 5.0, "kind": "square", "event": "a red square appears in the middle"},
    {"start": 6.0, "end": 9.0, "kind": "green", "event": "the background turns green"},
    {"start": 9.5, "end": 11.5, "kind": "caption", "event": "the caption HELLO is shown"},
]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow 10.0 has no sized default font
        return ImageFont.load_default()


def clock(seconds: float) -> str:
    """``mm:ss.ff``: the clock burned into every generated frame."""
    minutes, rest = divmod(round(seconds * 100), 6000)
    return f"{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}"


def render_frame(t: float, size: tuple[int, int], events: Sequence[dict[str, Any]] = EVENTS,
                 needle: str | None = None) -> np.ndarray:
    """One RGB frame (H, W, 3 uint8) at time ``t``: the clock and each event active at ``t`` (kinds ``square``,
    ``green``, ``caption``, ``chapter`` with its ``colour`` and ``word``), and a yellow box with ``needle``."""
    from PIL import Image, ImageDraw

    width, height = size
    active = [e for e in events if e["start"] <= t < e["end"]]
    background = BACKGROUND
    for e in active:
        if e["kind"] in ("green", "chapter"):
            background = GREEN if e["kind"] == "green" else tuple(e["colour"])
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    draw.text((4, 2), clock(t), fill=TEXT, font=_font(max(10, height // 9)))
    for e in active:
        if e["kind"] == "square":
            side = height // 3
            x0, y0 = (width - side) // 2, (height - side) // 2
            draw.rectangle([x0, y0, x0 + side - 1, y0 + side - 1], fill=SQUARE)
        elif e["kind"] in ("caption", "chapter"):
            word = e.get("word") or e["event"].split()[-1]
            draw.text((width // 2, height - 4), word, fill=TEXT, anchor="md", font=_font(max(10, height // 6)))
    if needle:
        draw.rectangle([width // 6, height // 3, width - width // 6, height - height // 6], fill=NEEDLE)
        draw.text((width // 2, height * 7 // 12), needle, fill=(0, 0, 0), anchor="mm", font=_font(max(10, height // 5)))
    return np.asarray(img)


def detect(frame: np.ndarray) -> set[str]:
    """Which scripted kinds a decoded frame shows (square, green, needle), read from its pixels."""
    rgb = frame.astype(np.int16)
    h, w = rgb.shape[:2]
    found = set()
    centre = rgb[h // 2 - 2:h // 2 + 2, w // 2 - 2:w // 2 + 2].reshape(-1, 3).mean(0)
    if centre[0] > 170 and centre[1] < 100 and centre[2] < 100:
        found.add("square")
    corner = rgb[h - 3:h, w - 3:w].reshape(-1, 3).mean(0)
    if corner[1] > 120 and corner[0] < 80 and corner[2] < 100:
        found.add("green")
    r, g, b = rgb[h * 2 // 5, w // 4]
    if r > 200 and g > 170 and b < 80:  # inside the needle's yellow box, left of its word
        found.add("needle")
    return found


ENCODERS = {".gif": ("gif", "rgb8", {}), ".avi": ("mpeg4", "yuv420p", {"qscale": "3"}),
            **dict.fromkeys((".mp4", ".mkv", ".mov"), ("libx264", "yuv420p", {"crf": "23", "preset": "veryfast"}))}


def write_frames(path: str | Path, frames: Any, fps: float, size: tuple[int, int]) -> Path:
    """Encode RGB frames ((H, W, 3) uint8) to ``path`` at exactly ``fps``: .mp4/.mkv/.mov H.264, .avi MPEG-4, .gif."""
    import av

    path = Path(path)
    if path.suffix.lower() not in ENCODERS:
        raise ValueError(f"{path.name}: write .mp4, .mkv, .mov, .avi or .gif")
    codec, pix_fmt, options = ENCODERS[path.suffix.lower()]
    width, height = size
    if pix_fmt == "yuv420p" and (width % 2 or height % 2):
        raise ValueError(f"size {size}: width and height must be even for {codec}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")))
        container.mux(stream.encode())  # flush the encoder
    return path


def write_clip(path: str | Path, seconds: float = 12.0, fps: float = 8, size: tuple[int, int] = (320, 180),
               events: Sequence[dict[str, Any]] = EVENTS) -> Path:
    """Encode the ground-truth clip (clock + scripted ``events``) to ``path``."""
    n = int(round(seconds * fps))
    if n < 2:
        raise ValueError("a video needs at least 2 frames (Qwen3-VL's temporal patch is 2)")
    return write_frames(path, (render_frame(i / fps, size, events) for i in range(n)), fps, size)


def write_long_clip(path: str | Path, minutes: float = 30.0, fps: float = 1.0, size: tuple[int, int] = (128, 72),
                    needle: str = "KIWI", depth: float = 0.62, needle_seconds: float = 2.0) -> dict[str, Any]:
    """A long low-resolution clip: six chapters (a colour and a title each) and ``needle`` shown from ``depth`` x
    the duration for ``needle_seconds``. Returns the truth: path, chapters, needle and its span."""
    seconds = minutes * 60
    colours = [(40, 60, 140), (140, 60, 40), (40, 120, 60), (110, 40, 120), (30, 110, 120), (120, 110, 30)]
    words = ["ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX"]
    step = seconds / len(words)
    chapters = [{"start": k * step, "end": (k + 1) * step, "kind": "chapter", "colour": colours[k],
                 "word": words[k], "event": f"chapter {words[k]}"} for k in range(len(words))]
    start = round(depth * seconds * fps) / fps
    span = (start, start + needle_seconds)
    frames = (render_frame(i / fps, size, chapters, needle if span[0] <= i / fps < span[1] else None)
              for i in range(int(round(seconds * fps))))
    write_frames(path, frames, fps, size)
    return {"path": str(path), "seconds": seconds, "fps": fps, "chapters": chapters, "needle": needle,
            "needle_span": span, "depth": depth}


def write_panning_clip(path: str | Path, seconds: float = 60.0, fps: float = 30, size: tuple[int, int] = (1280, 720),
                       photo: str = "astronaut.jpg") -> Path:
    """A camera-like clip for the reader benchmark: a photo panned and zoomed, clock burned in (real texture,
    so decoding costs what a filmed video costs)."""
    from PIL import Image, ImageDraw

    from cookbook.kit.assets import asset

    width, height = size
    big = Image.open(asset(photo)).convert("RGB").resize((width * 3 // 2, height * 3 // 2))
    n = int(round(seconds * fps))

    def frame(i: int) -> np.ndarray:
        x = round((big.width - width) * i / max(1, n - 1))
        y = round((big.height - height) * (0.5 + 0.5 * math.sin(i / fps)))
        img = big.crop((x, y, x + width, y + height))
        ImageDraw.Draw(img).text((8, 4), clock(i / fps), fill=TEXT, font=_font(height // 12))
        return np.asarray(img)

    return write_frames(path, (frame(i) for i in range(n)), fps, size)


def make_assets(folder: str | Path, seconds: float = 12.0, fps: float = 8, size: tuple[int, int] = (320, 180),
                frame_list_fps: float = 2.0) -> dict[str, Path]:
    """Write the committed ``assets/video/``: the clip as MP4, AVI and GIF, a frame list and events.json."""
    from PIL import Image

    folder = Path(folder)
    frames = [render_frame(i / fps, size) for i in range(int(round(seconds * fps)))]
    out = {ext: write_frames(folder / f"events.{ext}", frames, fps, size) for ext in ("mp4", "avi")}
    gif_step = max(1, round(fps / 4))  # GIF at 4 fps keeps the file small
    out["gif"] = write_frames(folder / "events.gif", frames[::gif_step], fps / gif_step, size)
    out["frames"] = folder / "frames"
    out["frames"].mkdir(parents=True, exist_ok=True)
    step = max(1, round(fps / frame_list_fps))
    for i in range(0, len(frames), step):
        Image.fromarray(frames[i]).save(out["frames"] / f"{i:04d}.jpg", quality=85)
    truth = {"seconds": seconds, "fps": fps, "size": list(size), "frame_list_fps": fps / step,
             "events": [{k: e[k] for k in ("start", "end", "event")} for e in EVENTS]}
    out["json"] = folder / "events.json"
    out["json"].write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return out


def contact_sheet(frames: Sequence[np.ndarray], titles: Sequence[float | str], cols: int = 6) -> Any:
    """A matplotlib grid of frames, each titled with its text, or its time as seconds and ``mm:ss.ff``."""
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(len(frames) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 1.5 * rows + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, frame, t in zip(axes.ravel(), frames, titles, strict=False):
        ax.imshow(frame)
        ax.set_title(t if isinstance(t, str) else f"{t:.2f} s ({clock(t)})", fontsize=8)
    fig.tight_layout()
    return fig


def with_silent_audio(src: str | Path, dst: str | Path) -> Path:
    """A copy of ``src`` with a silent AAC track beside its video (packets copied as they are): ``transformers
    serve`` loads audio from every video it is sent for Qwen3-VL and fails on a silent file."""
    import av

    dst = Path(dst)
    with av.open(str(src)) as source, av.open(str(dst), mode="w") as out:
        video_in = source.streams.video[0]
        video_out = out.add_stream_from_template(video_in)
        audio = out.add_stream("aac", rate=16000)
        seconds = float(video_in.duration * video_in.time_base) if video_in.duration else (source.duration or 0) / 1e6
        for packet in source.demux(video_in):
            if packet.dts is not None:
                packet.stream = video_out
                out.mux(packet)
        for k in range(math.ceil(seconds * 16000 / 1024)):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return dst


#: 07's spatio-temporal grounding clip: two shapes, each moving in a straight line while on screen. ``start``
#: and ``end`` in seconds, ``path`` the top-left corner from and to and ``size`` the shape, as fractions of the frame.
MOVERS: list[dict[str, Any]] = [
    {"label": "red ball", "shape": "ellipse", "colour": SQUARE, "start": 1.0, "end": 4.5,
     "path": ((0.75, 0.12), (0.10, 0.35)), "size": (0.16, 0.28)},
    {"label": "blue square", "shape": "rectangle", "colour": (40, 90, 230), "start": 0.0, "end": 5.5,
     "path": ((0.05, 0.70), (0.80, 0.70)), "size": (0.12, 0.22)},
]


def mover_box(mover: dict[str, Any], t: float, size: tuple[int, int]) -> list[int] | None:
    """The pixel box [x1, y1, x2, y2) of a ``MOVERS`` shape at time ``t`` in a frame of ``size``, None off screen (07)."""
    if not mover["start"] <= t < mover["end"]:
        return None
    width, height = size
    k = (t - mover["start"]) / (mover["end"] - mover["start"])
    (x0, y0), (x1, y1) = mover["path"]
    left, top = round((x0 + k * (x1 - x0)) * width), round((y0 + k * (y1 - y0)) * height)
    return [left, top, left + round(mover["size"][0] * width), top + round(mover["size"][1] * height)]


def render_movers(t: float, size: tuple[int, int], movers: Sequence[dict[str, Any]] = MOVERS) -> np.ndarray:
    """One RGB frame of the moving-shapes clip at time ``t``: the clock and each shape on screen (07)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(img)
    draw.text((4, 2), clock(t), fill=TEXT, font=_font(max(10, size[1] // 9)))
    for mover in movers:
        box = mover_box(mover, t, size)
        if box is not None:
            shape = draw.ellipse if mover["shape"] == "ellipse" else draw.rectangle
            shape([box[0], box[1], box[2] - 1, box[3] - 1], fill=tuple(mover["colour"]))
    return np.asarray(img)


def write_movers_clip(path: str | Path, seconds: float = 5.0, fps: float = 8, size: tuple[int, int] = (320, 180),
                      movers: Sequence[dict[str, Any]] = MOVERS) -> Path:
    """Encode the moving-shapes clip (07): frames 0 to ``seconds`` inclusive at ``fps``."""
    frames = (render_movers(i / fps, size, movers) for i in range(int(round(seconds * fps)) + 1))
    return write_frames(path, frames, fps, size)


def tube_truth(times: Sequence[float], label: str, movers: Sequence[dict[str, Any]] = MOVERS,
               scale: int = 1000) -> list[dict[str, Any]]:
    """Where ``label`` is at each of ``times`` it is on screen: ``{"time", "box"}``, the box in Qwen3-VL's
    0-``scale`` coordinates (07): the ground truth of a spatio-temporal grounding answer."""
    mover = next((m for m in movers if m["label"] == label), None)
    if mover is None:
        raise ValueError(f"no mover {label!r}: choose from {[m['label'] for m in movers]}")
    out = []
    for t in times:
        box = mover_box(mover, t, (scale, scale))   # fractions of the frame, as 0-scale coordinates
        if box is not None:
            out.append({"time": float(t), "box": [float(v) for v in box]})
    return out
