"""Video with ground truth (07, 11): clips the project generates, a fast PyAV reader, time parsing,
token budgets and the scorers the field uses (dense captions, temporal grounding, needle, multiple choice).

The generators are plumbing: ``write_clip`` encodes a short clip with a burned-in clock and scripted
events (``EVENTS``), ``write_long_clip`` a long low-resolution one with a needle frame. The lessons
(``frame_indices``, ``read_video``, ``parse_time``, ``temporal_iou``, ``video_cost`` and the scorers)
are saved cells of 07 and 11.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from cookbook.kit.messages import InputError
from cookbook.kit.replies import bounded, json_ready

# ---------------------------------------------------------------------------------------------
# Ground truth: a clip whose content says what happens when (plumbing, not a lesson)
# ---------------------------------------------------------------------------------------------

BACKGROUND = (40, 44, 60)
GREEN = (30, 150, 60)
SQUARE = (230, 40, 40)
TEXT = (245, 245, 245)
NEEDLE = (250, 210, 0)

#: The scripted events of the short clip: [start, end) in seconds, what a viewer sees.
EVENTS: list[dict[str, Any]] = [
    {"start": 2.0, "end": 5.0, "kind": "square", "event": "a red square appears in the middle"},
    {"start": 6.0, "end": 9.0, "kind": "green", "event": "the background turns green"},
    {"start": 9.5, "end": 11.5, "kind": "caption", "event": "the caption HELLO is shown"},
]


class VideoError(InputError):
    """A video file that cannot be used; the message names the file and what to do (07)."""


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def clock(seconds: float) -> str:
    """``mm:ss.ff``: the clock burned into every generated frame (07)."""
    minutes, rest = divmod(round(seconds * 100), 6000)
    return f"{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}"


def render_frame(t: float, size: tuple[int, int], events: Sequence[dict[str, Any]] = EVENTS,
                 needle: str | None = None) -> np.ndarray:
    """One RGB frame (H, W, 3 uint8) at time ``t``: clock, and each event active at ``t`` (07).

    Kinds: ``square`` (a red square in the middle), ``green`` (green background), ``caption`` (a
    white word at the bottom), ``chapter`` (the background colour in ``colour``, a title) and, when
    ``needle`` is given, a yellow box with that word.
    """
    from PIL import Image, ImageDraw

    width, height = size
    active = [e for e in events if e["start"] <= t < e["end"]]
    background = BACKGROUND
    for e in active:
        if e["kind"] == "green":
            background = GREEN
        elif e["kind"] == "chapter":
            background = tuple(e["colour"])
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
        draw.text((width // 2, height * 7 // 12), needle, fill=(0, 0, 0), anchor="mm",
                  font=_font(max(10, height // 5)))
    return np.asarray(img)


def detect(frame: np.ndarray) -> set[str]:
    """Which scripted kinds a decoded frame shows (square, green, needle), read from its pixels (07)."""
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


def _encoder(path: Path) -> tuple[str, str, dict[str, str]]:
    """(codec, pixel format, encoder options) for a file name's suffix."""
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return "gif", "rgb8", {}
    if suffix == ".avi":
        return "mpeg4", "yuv420p", {"qscale": "3"}
    if suffix in (".mp4", ".mkv", ".mov"):
        return "libx264", "yuv420p", {"crf": "23", "preset": "veryfast"}
    raise ValueError(f"{path.name}: write .mp4, .mkv, .mov, .avi or .gif")


def write_frames(path: str | Path, frames: Any, fps: float, size: tuple[int, int]) -> Path:
    """Encode RGB frames (an iterable of (H, W, 3) uint8) to ``path``; the codec follows the suffix (07).

    .mp4/.mkv/.mov: H.264; .avi: MPEG-4 part 2; .gif: GIF. The frame rate is stored exactly.
    """
    import av

    path = Path(path)
    codec, pix_fmt, options = _encoder(path)
    width, height = size
    if pix_fmt == "yuv420p" and (width % 2 or height % 2):
        raise ValueError(f"size {size}: width and height must be even for {codec}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():  # flush the encoder
            container.mux(packet)
    return path


def write_clip(path: str | Path, seconds: float = 12.0, fps: float = 8, size: tuple[int, int] = (320, 180),
               events: Sequence[dict[str, Any]] = EVENTS) -> Path:
    """Encode the ground-truth clip (clock + scripted ``events``) to ``path`` (07, 11)."""
    n = int(round(seconds * fps))
    if n < 2:
        raise ValueError("a video needs at least 2 frames (Qwen3-VL's temporal patch is 2)")
    return write_frames(path, (render_frame(i / fps, size, events) for i in range(n)), fps, size)


def write_long_clip(path: str | Path, minutes: float = 30.0, fps: float = 1.0, size: tuple[int, int] = (128, 72),
                    needle: str = "KIWI", depth: float = 0.62, needle_seconds: float = 2.0) -> dict[str, Any]:
    """A long low-resolution clip: six chapters (a colour and a title each) and a needle frame (07).

    The needle (a yellow box with ``needle``) is shown from ``depth`` x duration for
    ``needle_seconds``. Returns the ground truth: path, chapters, needle word and its time span.
    """
    seconds = minutes * 60
    colours = [(40, 60, 140), (140, 60, 40), (40, 120, 60), (110, 40, 120), (30, 110, 120), (120, 110, 30)]
    words = ["ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX"]
    step = seconds / len(words)
    chapters = [{"start": k * step, "end": (k + 1) * step, "kind": "chapter", "colour": colours[k],
                 "word": words[k], "event": f"chapter {words[k]}"} for k in range(len(words))]
    start = round(depth * seconds * fps) / fps
    span = (start, start + needle_seconds)
    n = int(round(seconds * fps))
    frames = (render_frame(i / fps, size, chapters, needle if span[0] <= i / fps < span[1] else None)
              for i in range(n))
    write_frames(path, frames, fps, size)
    return {"path": str(path), "seconds": seconds, "fps": fps, "chapters": chapters, "needle": needle,
            "needle_span": span, "depth": depth}


def write_panning_clip(path: str | Path, seconds: float = 60.0, fps: float = 30, size: tuple[int, int] = (1280, 720),
                       photo: str = "astronaut.jpg") -> Path:
    """A camera-like clip for the reader benchmark (07): a photo panned and zoomed, clock burned in.

    Real texture in every frame, so decoding costs what a filmed video costs.
    """
    from PIL import Image, ImageDraw

    from cookbook.kit.assets import asset

    width, height = size
    source = Image.open(asset(photo)).convert("RGB")
    big = source.resize((width * 3 // 2, height * 3 // 2))
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
    """Write the committed assets of 07: the clip as MP4, AVI and GIF, a frame list and events.json."""
    folder = Path(folder)
    frames = [render_frame(i / fps, size) for i in range(int(round(seconds * fps)))]
    out = {ext: write_frames(folder / f"events.{ext}", frames, fps, size) for ext in ("mp4", "avi")}
    gif_step = max(1, round(fps / 4))  # GIF at 4 fps keeps the file small
    out["gif"] = write_frames(folder / "events.gif", frames[::gif_step], fps / gif_step, size)
    from PIL import Image

    listing = folder / "frames"
    listing.mkdir(parents=True, exist_ok=True)
    step = max(1, round(fps / frame_list_fps))
    for i in range(0, len(frames), step):
        Image.fromarray(frames[i]).save(listing / f"{i:04d}.jpg", quality=85)
    truth = {"seconds": seconds, "fps": fps, "size": list(size), "frame_list_fps": fps / step,
             "events": [{k: e[k] for k in ("start", "end", "event")} for e in EVENTS]}
    out["json"] = folder / "events.json"
    out["json"].write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    out["frames"] = listing
    return out


# ---------------------------------------------------------------------------------------------
# Reading: which frames, at what size, decoded how
# ---------------------------------------------------------------------------------------------


def probe(path: str | Path) -> dict[str, Any]:
    """Frame rate, frame count, duration, size and codec of a video file, read with PyAV (07, 11).

    Raises ``VideoError`` naming the file when it is missing or not a video PyAV can open.
    """
    import av

    path = Path(str(path).removeprefix("file://"))
    if not path.is_file():
        raise VideoError(f"{path}: no such video file; check the path (relative paths start at the notebook's folder)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: the file holds no video stream; pass a video (MP4, MKV, AVI, GIF)")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
            promised = (container.duration or 0) / 1_000_000 * fps  # what the header says, in frames
            if frames < promised - 2:
                raise VideoError(f"{path}: {frames} frames where the header promises {promised:.0f}; the file "
                                 "is truncated. Re-download it, or re-encode what is left: ffmpeg -i in out.mp4")
            info = {"path": str(path), "fps": fps, "frames": int(frames), "duration": frames / fps if fps else 0.0,
                    "width": stream.codec_context.width, "height": stream.codec_context.height,
                    "codec": stream.codec_context.name}
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: not a video PyAV can read ({type(err).__name__}: {err}). "
                         "Check that the download finished, or re-encode it: ffmpeg -i in out.mp4") from err
    if fps <= 0 or frames < 2:
        raise VideoError(f"{path}: {frames} frame(s) at {fps} fps; Qwen3-VL needs at least 2 frames "
                         "(its temporal patch is 2). Pass a longer clip, or the image itself as an image")
    return info


def local_copy(src: str | Path) -> Path:
    """A file path for ``src``: an http(s) URL is downloaded once to the temp folder (07)."""
    import hashlib
    import tempfile

    text = str(src)
    if not text.startswith(("http://", "https://")):
        return Path(text.removeprefix("file://"))
    from cookbook.kit.messages import URL_TIMEOUT_S, _fetch

    suffix = Path(text.split("?")[0]).suffix or ".mp4"
    path = Path(tempfile.gettempdir()) / f"cookbook-video-{hashlib.sha1(text.encode()).hexdigest()[:16]}{suffix}"
    if not path.exists():
        path.write_bytes(_fetch(text, URL_TIMEOUT_S, what="video"))
    return path


def frame_indices(total_frames: int, video_fps: float, fps: float = 2.0, *, min_frames: int = 4,
                  max_frames: int = 768, nframes: int | None = None, start: float | None = None,
                  end: float | None = None) -> list[int]:
    """The frames qwen-vl-utils samples (07): ``fps`` per second of the segment [start, end],
    clamped to [min_frames, max_frames], an even number, spread evenly from first to last."""
    for name, value in (("total_frames", total_frames), ("video_fps", video_fps), ("fps", fps)):
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):  # 0, NaN, -1
            raise ValueError(f"{name}={value!r}: expected a positive number")
    for name, value in (("max_frames", max_frames), ("nframes", nframes)):
        if value is not None and not (isinstance(value, numbers.Integral) and value >= 2):
            raise ValueError(f"{name}={value!r}: a video needs at least 2 frames (temporal patch 2)")
    for name, value in (("start", start), ("end", end)):
        if value is not None and not (isinstance(value, numbers.Real) and math.isfinite(value)):
            raise ValueError(f"{name}={value!r}: expected a time in seconds")
    first = 0 if start is None else math.ceil(min(max(start, 0.0), total_frames / video_fps) * video_fps)
    last = total_frames - 1
    if end is not None:
        last = min(math.floor(min(max(end, 0.0), total_frames / video_fps) * video_fps), total_frames - 1)
    if first >= last:
        raise ValueError(f"no frames between {start or 0} s and {total_frames / video_fps if end is None else end} s "
                         f"of a {total_frames / video_fps:.2f} s video. Pick start/end inside "
                         f"0-{total_frames / video_fps:.2f} s")
    count = last - first + 1
    if nframes is not None:
        n = round(nframes / 2) * 2
    else:
        wanted = count / video_fps * fps
        n = min(max(wanted, math.ceil(min_frames / 2) * 2), max_frames // 2 * 2, count)
        n = int(n // 2 * 2)
    if not 2 <= n <= count:
        raise ValueError(f"{n} frames asked from a segment of {count} (fps={fps}, min_frames={min_frames}, "
                         f"nframes={nframes}); a video needs 2 to {count}")
    return np.linspace(first, last, n).round().astype(int).tolist()


def frame_size(height: int, width: int, frames: int, min_pixels: int = 128 * 32 * 32,
               max_pixels: int = 768 * 32 * 32, total_pixels: int = int(128_000 * 32 * 32 * 0.9)) -> tuple[int, int]:
    """Per-frame (height, width) qwen-vl-utils resizes to (07): multiples of 32, at most
    ``max_pixels`` per frame and ``total_pixels`` over the frames (two frames per temporal patch)."""
    from cookbook.memory import smart_resize  # the cookbook's one copy of the resize rule

    per_frame = max(min(max_pixels, total_pixels / frames * 2), int(min_pixels * 1.05))
    return smart_resize(height, width, 32, min_pixels, int(per_frame))


def read_video(path: str | Path, fps: float = 2.0, *, start: float | None = None, end: float | None = None,
               min_frames: int = 4, max_frames: int = 768, nframes: int | None = None,
               max_pixels: int = 768 * 32 * 32, total_pixels: int = int(128_000 * 32 * 32 * 0.9),
               resize: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode the sampled frames of a video file with PyAV, resized as qwen-vl-utils would (07).

    Returns frames (T, H, W, 3) uint8 and the ``video_metadata`` the processor's timestamps need.
    Only kept frames are converted; FFmpeg's scaler resizes them during the colour conversion.
    """
    import av

    info = probe(local_copy(path))
    try:
        indices = frame_indices(info["frames"], info["fps"], fps, min_frames=min_frames,
                                max_frames=max_frames, nframes=nframes, start=start, end=end)
    except ValueError as err:  # the message names the argument to change
        raise VideoError(f"{path}: {err}") from err
    height, width = info["height"], info["width"]
    if resize:
        height, width = frame_size(height, width, len(indices), max_pixels=max_pixels, total_pixels=total_pixels)
    position = {index: k for k, index in enumerate(indices)}
    frames = np.empty((len(indices), height, width, 3), np.uint8)  # filled in place: no second copy
    done = set()
    try:
        with av.open(info["path"]) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame- and slice-threaded decoding
            if indices[0] > 0:  # jump to the keyframe before the segment
                container.seek(int(indices[0] / info["fps"] / stream.time_base), stream=stream, backward=True)
            offset = stream.start_time or 0
            for count, frame in enumerate(container.decode(stream)):
                # the frame's index in the file, from its timestamp (a counter when the file has none)
                index = count if frame.pts is None else round(float((frame.pts - offset) * stream.time_base) * info["fps"])
                if index in position:
                    frames[position[index]] = frame.to_ndarray(width=width, height=height, format="rgb24",
                                                               interpolation="BICUBIC")
                    done.add(index)
                if index >= indices[-1]:
                    break
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: decoding failed ({err}); the file is damaged. Re-download or re-encode it") from err
    missing = [i for i in indices if i not in done]
    if missing:
        raise VideoError(f"{path}: frames {missing[:3]}... of {info['frames']} could not be decoded; the file "
                         "is truncated or damaged. Re-download it, or re-encode it: ffmpeg -i in out.mp4")
    metadata = {"fps": info["fps"], "frames_indices": indices, "total_num_frames": info["frames"],
                "video_backend": "pyav"}
    return frames, metadata


def contact_sheet(frames: Sequence[np.ndarray], times: Sequence[float], cols: int = 6) -> Any:
    """A grid of frames, each titled with its time in seconds and as ``mm:ss.ff`` (07, 11)."""
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(len(frames) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 1.5 * rows + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, frame, t in zip(axes.ravel(), frames, times, strict=False):
        ax.imshow(frame)
        ax.set_title(f"{t:.2f} s ({clock(t)})", fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Times: parsing and overlap
# ---------------------------------------------------------------------------------------------


class ParseError(ValueError):
    """A model's time, span or dense captions that cannot be read; the message quotes it (07)."""


_TIME = re.compile(r"^\s*<?\s*(?:(\d+):)??(?:(\d+):)?(\d+(?:\.\d+)?)\s*(seconds?|s)?\s*>?\s*$")


def parse_time(text: str) -> float:
    """Seconds from ``mm:ss.ff``, ``m:ss``, ``hh:mm:ss(.f)``, ``12.5`` or the processor's
    ``<12.5 seconds>`` (07). Raises ``ParseError`` (a ``ValueError``) for anything else."""
    text = str(text).strip()
    if len(text) > 40:  # no time is longer; bounded, the pattern cannot backtrack for long
        raise ParseError(f"not a time: {text[:60]!r}... ({len(text)} characters)")
    m = _TIME.match(text)
    if not m or (m.group(4) and (m.group(1) or m.group(2))):
        raise ParseError(f"not a time: {text!r} (expected mm:ss.ff, hh:mm:ss or <t seconds>)")
    hours, minutes, seconds = m.group(1), m.group(2), float(m.group(3))
    if minutes is not None and seconds >= 60 or hours is not None and int(minutes) >= 60:
        raise ParseError(f"not a time: {text!r} (seconds and minutes run to 59)")
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + seconds


def temporal_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Overlap / union of two (start, end) spans in seconds: Charades-STA's tIoU (07)."""
    (s1, e1), (s2, e2) = sorted(a), sorted(b)
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    union = max(e1, e2) - min(s1, s2)
    return inter / union if union > 0 else float(s1 == s2 and e1 == e2)


def parse_span(text: str) -> tuple[float, float] | None:
    """The first two times an answer gives, as a (start, end) span in seconds, or None (07).

    Accepts ``mm:ss.ff`` and ``hh:mm:ss`` clocks, ``N seconds`` / ``N s`` each, and two numbers
    sharing one unit: "64.0 - 72.0 seconds", "from 64 to 72 s", "between 64 and 72 seconds"."""
    text = bounded(text, ParseError)
    # Possessive runs (\d++, \s*+) and no start inside a number: each character is looked at a
    # bounded number of times, so a page of digits or spaces is read in linear time.
    number = r"\d++(?:\.\d++)?"
    unit = r"\s*+(?:seconds?|secs?|s)\b"
    pattern = (rf"(?<![\d.])(?:(?P<pair>(?P<a>{number})\s*+(?:-|–|to|and)\s*+(?P<b>{number}){unit})"
               rf"|(?P<one>\d++(?::\d{{1,2}}){{1,2}}(?:\.\d++)?|{number}{unit}))")
    times: list[float] = []
    for m in re.finditer(pattern, text):
        if len(times) >= 2:
            break
        if m.group("pair"):
            times += [float(m.group("a")), float(m.group("b"))]
        else:
            times.append(parse_time(re.sub(r"\s*(secs?)$", "s", m.group("one"))))
    times = times[:2]
    return (min(times), max(times)) if len(times) == 2 else None


# ---------------------------------------------------------------------------------------------
# Scorers, as the benchmarks score
# ---------------------------------------------------------------------------------------------


def grounding_scores(predictions: Sequence[Sequence[float] | None], truths: Sequence[Sequence[float]],
                     thresholds: Sequence[float] = (0.3, 0.5, 0.7)) -> dict[str, float]:
    """Charades-STA's protocol (07): R@1 at each tIoU threshold (share of queries whose one
    predicted span reaches it) and mIoU; a missing prediction counts as tIoU 0."""
    ious = [temporal_iou(p, t) if p is not None else 0.0 for p, t in zip(predictions, truths, strict=True)]
    scores = {f"R@1 IoU={k}": sum(i >= k for i in ious) / len(ious) for k in thresholds}
    return {**scores, "mIoU": sum(ious) / len(ious)}


def parse_dense_captions(text: str) -> list[dict[str, Any]]:
    """Events ``{"start", "end", "event"}`` (seconds) from a dense-caption answer, sorted by start (07).

    Accepts Qwen3-VL's ``{"mm:ss.ff - mm:ss.ff": "caption", ...}`` (a list of such objects too) and
    Qwen2.5-VL's ``[{"start_time": "mm:ss.ff", "end_time": ..., "description": ...}]``, fenced or
    not, repaired with json-repair; an event whose times do not read is skipped. Text with no JSON
    gives []; JSON objects in neither shape, or nested past reason, raise ``ParseError``."""
    import json_repair

    text = json_ready(text, ParseError)
    fence = re.search(r"```(?:json)?\s*(.*?)(?:```|$)", text, re.S)
    try:
        data = json_repair.loads(fence.group(1) if fence else text)
    except (ValueError, RecursionError) as err:  # json-repair recurses on runs of "/" as well
        raise ParseError(f"dense captions json-repair cannot read ({err}): {text[:200]!r}") from None
    items = [item for item in (data if isinstance(data, list) else [data]) if isinstance(item, dict)]
    events = []
    for item in items:
        if "start_time" in item or "end_time" in item:
            try:
                start, end = parse_time(item.get("start_time", "")), parse_time(item.get("end_time", ""))
            except ParseError:
                continue
            events.append({"start": min(start, end), "end": max(start, end),
                           "event": str(item.get("description", item.get("caption", "")))})
            continue
        for key, caption in item.items():
            span = parse_span(str(key))
            if span is not None:
                events.append({"start": span[0], "end": span[1], "event": str(caption)})
    if items and not events:
        raise ParseError(f"dense captions in no known shape: {text[:200]!r}; expected "
                         '{"mm:ss.ff - mm:ss.ff": "caption"} or [{"start_time", "end_time", "description"}]')
    return sorted(events, key=lambda e: e["start"])


def dense_caption_scores(predicted: Sequence[dict[str, Any]], truth: Sequence[dict[str, Any]],
                         thresholds: Sequence[float] = (0.3, 0.5, 0.7, 0.9)) -> dict[str, float]:
    """ActivityNet Captions' localisation rule (``evaluate_detection`` in its densevid_eval) (07):
    at each tIoU threshold an event counts as found, and a prediction as valid, when any pair of
    them overlaps by more than the threshold (no one-to-one matching); precision = valid /
    predictions, recall = found / true events, each averaged over the thresholds. The caption
    score is not METEOR: the rapidfuzz similarity of each true event to its best-overlapping prediction."""
    from rapidfuzz import fuzz

    if not predicted or not truth:
        return {"precision": 0.0, "recall": 0.0, "caption similarity": 0.0}
    iou = np.array([[temporal_iou((p["start"], p["end"]), (t["start"], t["end"])) for t in truth]
                    for p in predicted])
    precision = np.mean([(iou > k).any(axis=1).mean() for k in thresholds])
    recall = np.mean([(iou > k).any(axis=0).mean() for k in thresholds])
    similar = [fuzz.token_set_ratio(predicted[int(iou[:, j].argmax())]["event"], t["event"]) / 100
               for j, t in enumerate(truth) if iou[:, j].max() > 0]
    return {"precision": float(precision), "recall": float(recall),
            "caption similarity": float(np.mean(similar)) if similar else 0.0}


def extract_letter(text: str, letters: str = "ABCD") -> str | None:
    """The option letter of a multiple-choice answer by Video-MME's own rule, its
    ``extract_characters_regex`` (07): answer prefixes removed, then the FIRST capital A-D anywhere,
    even inside a word ("After" reads as A); None where that scorer returns "" (its "more than ten
    words and no A-D" test changes nothing, since no A-D gives "" anyway)."""
    text = text.strip()
    for prefix in ("The best answer is", "The correct answer is", "The answer is", "The answer",
                   "The best option is", "The correct option is", "Best answer:", "Best option:"):
        text = text.replace(prefix, "")
    m = re.search(f"[{letters}]", text)
    return m.group(0) if m else None


def needle_hit(answer: str, needle: str) -> bool:
    """Exact match of a needle answer (07): case, spaces, quotes and final punctuation ignored."""
    def norm(s: str) -> str:
        return re.sub(r"\s+", " ", s).strip().strip("\"'`.!").strip().upper()

    return norm(answer) == norm(needle)


# ---------------------------------------------------------------------------------------------
# Long videos: cost before sending, chunks with absolute times
# ---------------------------------------------------------------------------------------------


def video_cost(seconds: float, width: int, height: int, fps: float = 2.0, video_fps: float = 30.0, *,
               max_frames: int = 768, max_pixels: int = 768 * 32 * 32,
               total_pixels: int = int(128_000 * 32 * 32 * 0.9), min_pixels: int = 128 * 32 * 32) -> dict[str, Any]:
    """Frames, frame size and prompt tokens of a video before sending it (07): visual tokens
    (32x32 pixels x 2 frames each) plus each temporal patch's ``<t seconds>`` text and markers."""
    indices = frame_indices(max(2, round(seconds * video_fps)), video_fps, fps, max_frames=max_frames)
    h, w = frame_size(height, width, len(indices), min_pixels=min_pixels, max_pixels=max_pixels,
                      total_pixels=total_pixels)
    patches = len(indices) // 2
    visual = patches * (h // 32) * (w // 32)
    times = [(indices[2 * k] + indices[2 * k + 1]) / 2 / video_fps for k in range(patches)]
    # per patch: "<", one token per digit or ".", " seconds", ">", and its vision start/end markers.
    # The template's own <|vision_start|><|video_pad|><|vision_end|> becomes these patches (Qwen's
    # processor and vLLM replace all three; transformers 5.x before 5.25 kept the outer pair: +2).
    text = sum(len(f"{t:.1f}") + 3 + 2 for t in times)
    return {"frames": len(indices), "sampled fps": round(len(indices) / seconds, 3), "frame (HxW)": f"{h}x{w}",
            "tokens/frame": (h // 32) * (w // 32) // 2, "visual tokens": visual, "text tokens": text,
            "total tokens": visual + text}


def chunks(seconds: float, chunk_seconds: float, overlap: float = 0.0) -> list[tuple[float, float]]:
    """(start, end) windows covering ``seconds``, each ``chunk_seconds`` long, overlapping by
    ``overlap`` (07). Read each with ``read_video(start=, end=)``: its timestamps stay absolute."""
    if not 0 <= overlap < chunk_seconds:
        raise ValueError("overlap must be at least 0 and shorter than a chunk")
    out, start = [], 0.0
    while start < seconds:
        out.append((start, min(seconds, start + chunk_seconds)))
        if start + chunk_seconds >= seconds:
            break
        start += chunk_seconds - overlap
    return out


def merge_events(per_chunk: Sequence[Sequence[dict[str, Any]]], min_iou: float = 0.5) -> list[dict[str, Any]]:
    """Reduce step of map-reduce (07): all chunks' events by start time, an event dropped when it
    overlaps a kept one by ``min_iou`` or more (the same event seen by two overlapping chunks)."""
    kept: list[dict[str, Any]] = []
    for event in sorted((e for events in per_chunk for e in events), key=lambda e: e["start"]):
        if all(temporal_iou((event["start"], event["end"]), (k["start"], k["end"])) < min_iou for k in kept):
            kept.append(dict(event))
    return kept


# ---------------------------------------------------------------------------------------------
# Reader benchmark: each reader in its own process, so peak memory is its own
# ---------------------------------------------------------------------------------------------

_CHILD = """
import json, sys, time
path, backend, fps, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
def status_mb(key):
    return [int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith(key)][0]
if backend == 'cookbook':
    import av, numpy as np
    from cookbook.video import read_video
    base = status_mb('VmRSS'); t0 = time.perf_counter()
    frames, meta = read_video(path, fps)
    seconds, peak = time.perf_counter() - t0, status_mb('VmHWM')
else:
    import os; os.environ['FORCE_QWENVL_VIDEO_READER'] = backend
    import numpy as np, torch, torchvision
    from qwen_vl_utils import vision_process as vp
    import %s
    base = status_mb('VmRSS'); t0 = time.perf_counter()
    video, meta = vp.fetch_video({'video': path, 'fps': fps}, image_patch_size=16, return_video_metadata=True)
    seconds, peak = time.perf_counter() - t0, status_mb('VmHWM')
    frames = video.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
if out != '-':
    np.save(out, frames)
print(json.dumps({'reader': backend, 'seconds': seconds, 'peak_mb': peak, 'imports_mb': base,
                  'frames': list(frames.shape), 'indices': [int(i) for i in meta['frames_indices']]}))
"""


def bench_reader(path: str | Path, backend: str = "cookbook", fps: float = 2.0, save: str | Path | None = None,
                 timeout: float = 600) -> dict[str, Any]:
    """Time one reader in a fresh process (07): ``cookbook`` (``read_video``) or qwen-vl-utils'
    ``fetch_video`` with ``torchcodec`` / ``decord``. Wall time of the read+resize, peak RSS (MB)
    (VmHWM) and RSS after imports; with ``save`` the frames as .npy (uint8 T, H, W, 3)."""
    import subprocess
    import sys

    module = {"cookbook": "av", "torchcodec": "torchcodec.decoders", "decord": "decord"}[backend]
    code = _CHILD % module
    done = subprocess.run([sys.executable, "-c", code, str(path), backend, str(fps), str(save or "-")],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"{backend} reader failed: {done.stderr[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def with_silent_audio(src: str | Path, dst: str | Path) -> Path:
    """A copy of ``src`` with a silent AAC track beside its video, packets copied as they are (07).

    ``transformers serve`` loads audio from every video it is sent for Qwen3-VL and fails on a
    silent file ("The best audio stream is unknown"); a track of silence satisfies it.
    """
    import av

    dst = Path(dst)
    with av.open(str(src)) as source, av.open(str(dst), mode="w") as out:
        video_in = source.streams.video[0]
        video_out = out.add_stream_from_template(video_in)
        audio = out.add_stream("aac", rate=16000)
        seconds = float(video_in.duration * video_in.time_base) if video_in.duration else probe(src)["duration"]
        for packet in source.demux(video_in):
            if packet.dts is not None:
                packet.stream = video_out
                out.mux(packet)
        for k in range(math.ceil(seconds * 16000 / 1024)):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return dst
