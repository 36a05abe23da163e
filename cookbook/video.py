"""Real video files, written and read with PyAV (04, 11). ``load`` is how ``cb.inputs`` and
``cb.serving.vllm_inputs`` decode video files, so neither torchcodec nor decord is needed.

``write_demo_video`` encodes a short clip whose content says where you are in it: a coloured square
moves left to right at a constant speed and every frame prints its number and time. That makes
frame sampling and timestamps checkable by eye and by code.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

BACKGROUND = (24, 26, 32)
SQUARE = (230, 60, 40)
TEXT = (240, 240, 240)


@dataclass(frozen=True)
class VideoInfo:
    """What a video file's container says about it (11)."""

    path: str
    fps: float
    frames: int
    duration: float
    width: int
    height: int
    codec: str


def square_x(frame_index: int, frames: int, width: int, side: int) -> int:
    """Left edge (pixels) of the demo square in frame ``frame_index``: constant speed across (11)."""
    travel = width - side
    return round(travel * frame_index / max(1, frames - 1))


def demo_frame(index: int, frames: int, fps: float, width: int, height: int) -> np.ndarray:
    """One RGB frame of the demo clip (H, W, 3 uint8): square, frame number and time (11)."""
    from PIL import Image, ImageDraw, ImageFont

    side = max(8, height // 3)
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    x = square_x(index, frames, width, side)
    y = (height - side) // 2 + height // 8
    draw.rectangle([x, y, x + side - 1, y + side - 1], fill=SQUARE)
    try:
        font = ImageFont.load_default(size=max(10, height // 12))
    except TypeError:  # Pillow without FreeType sizes
        font = ImageFont.load_default()
    draw.text((6, 4), f"frame {index:03d}  t={index / fps:.2f}s", fill=TEXT, font=font)
    return np.asarray(img)


def write_demo_video(
    path: str | Path,
    seconds: float = 6.0,
    fps: int = 12,
    size: tuple[int, int] = (320, 240),
    codec: str = "libx264",
) -> Path:
    """Encode the demo clip (moving square, frame counter) to ``path`` and return it (11).

    ``size`` is (width, height), both even (H.264 with yuv420p needs even sides). The frame
    rate is stored exactly in the container, so readers recover ``fps`` and every frame's time.
    """
    import av

    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"size {size}: width and height must be even for yuv420p")
    frames = int(round(seconds * fps))
    if frames < 2:
        raise ValueError("a video needs at least 2 frames (Qwen3-VL's temporal patch is 2)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(demo_frame(i, frames, fps, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():  # flush the encoder
            container.mux(packet)
    return path


def video_info(path: str | Path) -> VideoInfo:
    """Frame rate, frame count, duration, size and codec of a video file, read with PyAV (11).

    The frame count is the container's when it records one, else counted by decoding.
    """
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        frames = stream.frames or sum(1 for _ in container.decode(stream))
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
    duration = frames / fps if fps else 0.0
    return VideoInfo(str(path), fps, int(frames), duration, width, height, codec)


def read_frames(path: str | Path, indices: Any = None) -> np.ndarray:
    """Decode frames (all, or those at ``indices``) as an array (T, H, W, 3) uint8 RGB (11)."""
    import av

    with av.open(str(path)) as container:
        if indices is None:
            return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
        wanted = {int(i) for i in indices}
        last = max(wanted)
        decoded: dict[int, np.ndarray] = {}
        seen = 0
        for frame in container.decode(video=0):
            if seen in wanted:
                decoded[seen] = frame.to_ndarray(format="rgb24")
            seen += 1
            if seen > last:
                break
    missing = sorted(wanted - decoded.keys())
    if missing:
        raise IndexError(f"asked for frames {missing[:5]}, the file has only {seen}")
    return np.stack([decoded[int(i)] for i in indices])


def find_square(frame: np.ndarray) -> float | None:
    """Horizontal centre (pixels) of the demo square in a decoded frame, or None if absent (11)."""
    rgb = frame.astype(np.int16)
    mask = (rgb[..., 0] > 150) & (rgb[..., 1] < 120) & (rgb[..., 2] < 110)
    if mask.sum() < 16:
        return None
    return float(np.nonzero(mask)[1].mean())


def load(path: str | Path, fps: float = 2.0, **options: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode a video file or http(s) URL with PyAV, sampled at ``fps`` as qwen-vl-utils does (04, 11).

    ``options``: qwen-vl-utils' video keys (``max_frames``, ``min_frames``, ``nframes``, ``video_start``,
    ``video_end``). Returns frames (T, H, W, 3) uint8 and the ``video_metadata`` the timestamps need.
    """
    from qwen_vl_utils import vision_process as vp

    text = str(path)
    if text.startswith(("http://", "https://")):
        import tempfile

        from cookbook.messages import URL_TIMEOUT_S, _fetch

        with tempfile.NamedTemporaryFile(suffix=Path(text.split("?")[0]).suffix or ".mp4") as tmp:
            tmp.write(_fetch(text, URL_TIMEOUT_S, what="video"))
            tmp.flush()
            return load(tmp.name, fps, **options)
    path = text.removeprefix("file://")
    info = video_info(path)
    options = {"fps": fps, **{k: v for k, v in options.items() if v is not None}}
    start, end, total = vp.calculate_video_frame_range(options, info.frames, info.fps)
    n = vp.smart_nframes(options, total_frames=total, video_fps=info.fps)
    indices = np.linspace(start, end, n).round().astype(int).tolist()
    metadata = {"fps": info.fps, "frames_indices": indices, "total_num_frames": info.frames,
                "video_backend": "pyav"}
    return read_frames(path, indices), metadata
