"""Build chat messages with images, videos and text; convert them to the OpenAI format (01, 04).

A message is the dict transformers' chat template reads: ``{"role": ..., "content": [parts]}``.
Images are loaded when the part is made, so a bad file or URL fails here, naming the item.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import io
import math
import mimetypes
import numbers
import re
import socket
import threading
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

PIXELS_PER_TOKEN = 32 * 32  # patch 16 x spatial merge 2: one visual token covers 32x32 pixels
URL_TIMEOUT_S = 20.0  # for the whole download, however slowly the server sends it
URL_MAX_BYTES = 64 * 2**20  # a download stops here: images are a few MB, an endless body is not
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif"}


class InputError(ValueError):
    """A message item that cannot be used; the message names the item and the fix (01)."""


def _describe(src: Any) -> str:
    text = str(src) if isinstance(src, (str, Path)) else f"({type(src).__module__.split('.')[0]} {type(src).__name__})"
    return text if len(text) < 80 else text[:60] + "..." + text[-12:]


def _open_bytes(data: bytes, what: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Image.DecompressionBombError as err:
        raise InputError(f"image {what}: refused as a possible decompression bomb ({err}) Shrink it first, "
                         "or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file.") from err
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"image {what}: not a readable image ({err}).") from err
    return img


_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False where the name cannot be a file (too long for the file system)."""
    try:
        return path.is_file()
    except OSError:  # ENAMETOOLONG: a prompt that happens to end in ".png"
        return False


class _Tracked(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """urllib's HTTP(S) handlers, keeping each socket they open so that a deadline can shut it."""

    def __init__(self) -> None:
        urllib.request.HTTPHandler.__init__(self)
        urllib.request.HTTPSHandler.__init__(self)
        self.sockets: list[socket.socket] = []

    def _tracking(self, cls: type) -> type:
        sockets = self.sockets

        class Tracked(cls):  # type: ignore[valid-type,misc]
            def connect(self) -> None:
                super().connect()
                sockets.append(self.sock)  # the response reads from it after urllib drops the connection

        return Tracked

    def http_open(self, req: Any) -> Any:
        return self.do_open(self._tracking(http.client.HTTPConnection), req)

    def https_open(self, req: Any) -> Any:
        return self.do_open(self._tracking(http.client.HTTPSConnection), req, context=self._context)

    def cut(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _download(opener: Any, request: Any, timeout: float, max_bytes: int) -> bytes:
    with opener.open(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise _TooBig(int(length))
        body = bytearray()
        while chunk := response.read1(1 << 16):
            body += chunk
            if len(body) > max_bytes:
                raise _TooBig(len(body))
        return bytes(body)


class _TooBig(Exception):
    """A download past the size cap."""


def _fetch(url: str, timeout: float, what: str = "image", max_bytes: int | None = None) -> bytes:
    """The body at ``url``: all of it within ``timeout`` seconds, and at most ``max_bytes`` (01).

    The socket's own timeout only bounds each read, so a server that drips a byte a second would
    never time out: the download runs in a thread, and at the deadline its socket is shut.
    """
    max_bytes = URL_MAX_BYTES if max_bytes is None else max_bytes
    request = urllib.request.Request(url, headers={"User-Agent": "qwen3-vl-cookbook"})
    handler = _Tracked()
    opener = urllib.request.build_opener(handler)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["body"] = _download(opener, request, timeout, max_bytes)
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread below
            result["error"] = err

    worker = threading.Thread(target=work, name="cookbook-fetch", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        handler.cut()  # the worker's read fails now and the thread ends
        raise InputError(f"{what} URL {url}: timed out, not fully received within {timeout:g} s (timeout=). The server "
                         "is slow or never stops sending; download the file and pass its path.")
    err = result.get("error")
    if err is None:
        return result["body"]
    if isinstance(err, _TooBig):
        raise InputError(f"{what} URL {url}: over {max_bytes / 2**20:g} MiB ({err.args[0]} bytes and counting); "
                         "download it yourself if it really is that large.") from None
    if isinstance(err, urllib.error.HTTPError):
        raise InputError(f"{what} URL {url}: the server answered HTTP {err.code} {err.reason}.") from err
    if isinstance(err, (TimeoutError, OSError, urllib.error.URLError, http.client.HTTPException)):
        reason = getattr(err, "reason", err)
        raise InputError(
            f"{what} URL {url}: could not be fetched ({reason}). Check the address and your network, "
            "or download the file and pass its path."
        ) from err
    raise err


def load_image(src: Any, timeout: float = URL_TIMEOUT_S) -> Any:
    """Open an image from a path, URL, data URL / base64 string, bytes, numpy array or PIL image, as RGB (01)."""
    from PIL import Image

    if isinstance(src, Image.Image):
        img = src
    elif isinstance(src, (bytes, bytearray)):
        img = _open_bytes(bytes(src), "bytes")
    elif type(src).__module__ == "numpy":
        img = _from_array(src)
    elif isinstance(src, (str, Path)):
        text = str(src)
        if text.startswith(("http://", "https://")):
            img = _open_bytes(_fetch(text, timeout), text)
        elif text.startswith("data:"):
            img = _open_bytes(_b64decode(text.split(",", 1)[-1], "data URL"), "data URL")
        elif text.startswith("file://"):
            return load_image(text[len("file://"):], timeout)
        else:
            path = Path(text).expanduser()
            if _is_file(path):
                img = _open_bytes(path.read_bytes(), text)
            elif len(text) > 256 and "/" not in text[:64].rstrip("/+=") and _BASE64.fullmatch(text):
                img = _open_bytes(_b64decode(text, "base64 string"), "base64 string")
            else:
                raise InputError(f"image {_describe(text)}: no such file (relative paths start at {Path.cwd()}).")
    else:
        raise InputError(
            f"image of type {type(src).__name__}: use a path, URL, data URL, base64 string, bytes, "
            "numpy array or PIL image."
        )
    if img.width == 0 or img.height == 0:
        raise InputError(f"image {_describe(src)}: it is {img.width}x{img.height} pixels; an image needs at least one pixel each way.")
    return _to_rgb(img, _describe(src))


def _from_array(src: Any) -> Any:
    """A PIL image from a numpy array: uint8 as is, floats in 0..1, uint16 as 16-bit, other integers
    when they hold 0..255; anything else is an ``InputError`` naming the dtype."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(src)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InputError(f"image array of shape {arr.shape}: expected HxW, HxWx3 or HxWx4.")
    if 0 in arr.shape[:2]:
        raise InputError(f"image array of shape {arr.shape}: it has no pixels (zero height or width).")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"image array of dtype {arr.dtype}: it holds NaN or infinite values.")
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    elif arr.dtype.kind == "b":
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:  # 16-bit: 65535 is white
        arr = (arr / 257).round().astype(np.uint8)
    elif arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        if arr.min() < 0 or arr.max() > 255:
            raise InputError(f"image array of dtype {arr.dtype} with values {arr.min()}..{arr.max()}: expected "
                             "0..255 (uint8), 0..65535 (uint16) or floats in 0..1.")
        arr = arr.astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise InputError(f"image array of dtype {arr.dtype}: expected uint8, uint16, an integer or a float array.")
    return Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[2] == 1 else arr)


def _to_rgb(img: Any, what: str) -> Any:
    """RGB as Qwen's processors make it: transparency composited onto white (transformers'
    ``convert_to_rgb``, qwen-vl-utils' ``to_rgb``), 16-bit grey scaled to 8 bits rather than clipped."""
    import numpy as np
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):  # 16/32-bit grey, float grey
        grey = np.asarray(img, dtype=np.float64)
        if not np.isfinite(grey).all():
            raise InputError(f"image {what}: {img.mode} pixels hold NaN or infinite values.")
        low, high = float(grey.min()), float(grey.max())
        if img.mode.startswith("I;16") or (img.mode == "I" and low >= 0 and 255 < high <= 65535):
            grey = grey / 257  # 16-bit: 65535 is white
        elif img.mode == "F" and low >= 0 and high <= 1:
            grey = grey * 255
        elif not (low >= 0 and high <= 255):
            warnings.warn(f"image {what}: {img.mode} pixels span {low:g}..{high:g}, not a known bit depth; "
                          "stretched to 0..255.", stacklevel=3)
            grey = (grey - low) / ((high - low) or 1) * 255
        return Image.fromarray(grey.round().clip(0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def _b64decode(data: str, what: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as err:
        raise InputError(f"image {what}: not valid base64 ({err}).") from err


def image(src: Any, *, max_pixels: int | None = None, max_tokens: int | None = None) -> dict[str, Any]:
    """An image part, loaded now; ``max_pixels`` or ``max_tokens`` caps this one image's visual tokens (01)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize  # the processor's own rule

    img = load_image(src)
    limit = max_pixels if max_tokens is None else max_tokens * PIXELS_PER_TOKEN
    if limit is not None and not (isinstance(limit, numbers.Real) and limit >= 4 * PIXELS_PER_TOKEN):  # NaN too
        given = f"max_pixels={max_pixels!r}" if max_tokens is None else f"max_tokens={max_tokens!r}"
        raise InputError(f"image {_describe(src)}: {given} is below the minimum of 4 tokens "
                         f"({4 * PIXELS_PER_TOKEN} pixels) or not a number.")
    try:
        h, w = smart_resize(img.height, img.width, factor=32, min_pixels=4 * PIXELS_PER_TOKEN,
                            max_pixels=limit or img.width * img.height + PIXELS_PER_TOKEN * 4)
    except ValueError as err:  # aspect ratio above 200
        raise InputError(f"image {_describe(src)} ({img.width}x{img.height}): {err}; crop it first.") from err
    if limit is not None and (w, h) != img.size:
        img = img.resize((w, h), resample=3)  # bicubic, as the processor does
    return {"type": "image", "image": img}


def video(src: Any, *, fps: float | None = None, max_frames: int | None = None) -> dict[str, Any]:
    """A video part: a file path or URL (sampled at ``fps``, default 2), or frames you sampled yourself (07).

    For frames, ``fps`` is required: it is the rate they were taken at, and Qwen3-VL's ``<t seconds>``
    stamps are computed from it (without it the processor assumes 24 fps and every time is wrong).
    """
    part: dict[str, Any] = {"type": "video"}
    if fps is not None and not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise InputError(f"video fps={fps!r}: the rate must be a positive number of frames per second.")
    if max_frames is not None and not (isinstance(max_frames, numbers.Integral) and max_frames >= 2):
        raise InputError(f"video max_frames={max_frames!r}: a whole number, at least 2 (temporal patch 2).")
    if isinstance(src, (list, tuple)):
        if len(src) < 2:
            raise InputError(f"video of {len(src)} frame(s): Qwen3-VL needs at least 2 (temporal patch 2).")
        if fps is None:
            raise InputError(
                f"video of {len(src)} frames: say at what rate they were sampled (fps=...); Qwen3-VL "
                "timestamps each pair of frames from it."
            )
        part["video"] = [load_image(f) for f in src]
    elif isinstance(src, (str, Path)):
        text = str(src)
        if not text.startswith(("http://", "https://")):
            path = Path(text).expanduser()
            if not _is_file(path):
                raise InputError(f"video {_describe(text)}: no such file.")
            if path.suffix.lower() not in VIDEO_SUFFIXES:
                raise InputError(f"video {text}: unsupported type {path.suffix!r} ({', '.join(sorted(VIDEO_SUFFIXES))}).")
            text = str(path)
        part["video"] = text
    else:
        raise InputError(f"video of type {type(src).__name__}: use a path, URL or a list of frames.")
    if fps is not None:
        part["fps"] = fps
    if max_frames is not None:
        part["max_frames"] = max_frames
    return part


def _text(s: str) -> dict[str, Any]:
    """A text part."""
    if not isinstance(s, str):
        raise InputError(f"text part of type {type(s).__name__}: expected a string.")
    return {"type": "text", "text": s}


def _part(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        if item.get("type") not in ("text", "image", "video"):
            raise InputError(f"part {item!r}: 'type' must be text, image or video.")
        return item
    if isinstance(item, str):  # a string names media only as one word (a path or URL); a sentence is text
        if item.startswith(("http://", "https://", "data:image")) and not any(c.isspace() for c in item):
            return image(item)
        suffix = Path(item).suffix.lower() if len(item) < 1024 and not any(c.isspace() for c in item) else ""
        if suffix in VIDEO_SUFFIXES:
            return video(item)
        if suffix in {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}:
            return image(item)
        return _text(item)
    if isinstance(item, Path):
        return video(item) if item.suffix.lower() in VIDEO_SUFFIXES else image(item)
    return image(item)  # PIL, numpy, bytes


def user(*parts: Any) -> dict[str, Any]:
    """A user message: strings are text, except one word naming an image or video (a path with its suffix, or a URL);
    other items are images (01). ``user("Describe photo.jpg")`` is text; ``user("photo.jpg", "Describe it")`` is not."""
    if not parts or all(isinstance(p, str) and not p.strip() for p in parts):
        raise InputError("empty user message: give at least one text, image or video.")
    return {"role": "user", "content": [_part(p) for p in parts]}


def system(content: str) -> dict[str, Any]:
    """A system message (05)."""
    return {"role": "system", "content": [_text(content)]}


def assistant(content: str, reasoning: str | None = None) -> dict[str, Any]:
    """An assistant turn (for multi-turn history); ``reasoning`` keeps a Thinking model's thoughts (01)."""
    msg: dict[str, Any] = {"role": "assistant", "content": [_text(content)]}
    if reasoning:
        msg["reasoning_content"] = reasoning
    return msg


def check(messages: list[dict[str, Any]]) -> None:
    """Raise ``InputError`` naming the first malformed message: empty, unknown role, no content (01)."""
    if not messages:
        raise InputError("no messages: a conversation needs at least one user message.")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant", "tool"):
            raise InputError(f"message {i}: expected a dict with role system/user/assistant/tool, got {msg!r:.80}.")
        content = msg.get("content")
        if not content and not msg.get("tool_calls"):
            raise InputError(f"message {i} ({msg['role']}): empty content.")


def to_data_url(src: Any, image_format: str = "PNG") -> str:
    """Encode an image (any ``load_image`` source) or a local video file as a base64 data URL (04)."""
    if isinstance(src, (str, Path)) and Path(str(src)).suffix.lower() in VIDEO_SUFFIXES:
        path = Path(src)
        if not path.is_file():
            raise InputError(f"video {src}: no such file.")
        mime = mimetypes.guess_type(path.name)[0] or "video/mp4"
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
    if isinstance(src, str) and src.startswith("data:"):
        return src
    buf = io.BytesIO()
    load_image(src).save(buf, format=image_format)
    return f"data:image/{image_format.lower()};base64,{base64.b64encode(buf.getvalue()).decode()}"


def _source(part: dict[str, Any], kind: str) -> Any:
    """The media of a part: under its type's key, or "url"/"path" (never truth-tested: arrays)."""
    return next((part[k] for k in (kind, "url", "path") if part.get(k, None) is not None), None)


def _openai_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part["type"]
    if kind == "text":
        return {"type": "text", "text": part["text"]}
    if kind == "image":
        src = _source(part, "image")
        url = src if isinstance(src, str) and src.startswith(("http://", "https://", "data:")) else to_data_url(src)
        return {"type": "image_url", "image_url": {"url": url}}
    src = _source(part, "video")
    if isinstance(src, (list, tuple)):
        raise InputError("video given as frames: OpenAI-style servers take a video file or URL; write the frames to a file first.")
    url = src if str(src).startswith(("http://", "https://", "data:")) else to_data_url(src)
    return {"type": "video_url", "video_url": {"url": url}}


def to_openai(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same conversation in the OpenAI chat format: images and local videos become data URLs (02, 04)."""
    check(messages)
    out = []
    for msg in messages:
        content = msg["content"]
        if isinstance(content, str):
            out.append({"role": msg["role"], "content": content})
            continue
        parts = [_openai_part(p) for p in content]
        if msg["role"] in ("system", "assistant") and all(p["type"] == "text" for p in parts):
            out.append({"role": msg["role"], "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": msg["role"], "content": parts})
    return out
