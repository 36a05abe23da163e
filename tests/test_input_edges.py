"""Inputs at the edges (01, 04, 07, 09): each gives the right pixels or the cookbook's own error,
naming the argument to change, never a library's exception, a hang, or a silently wrong image."""

from __future__ import annotations

import io
import math
import socket
import threading
import time
import warnings

import numpy as np
import pytest
from PIL import Image

import cookbook as cb
from cookbook.kit import messages as m
from cookbook.kit.assets import ASSETS
from cookbook.kit.messages import InputError

# --- transparency: composited onto white, as the processors do ------------------------------


def _logo(mode: str = "RGBA") -> Image.Image:
    """A dark logo on a transparent background whose hidden colour is black (what editors save)."""
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[10:30, 20:40] = (20, 30, 90, 255)   # the logo, opaque
    rgba[0:5, 0:5] = (0, 0, 0, 128)           # a half-transparent black corner
    img = Image.fromarray(rgba, "RGBA")
    return img if mode == "RGBA" else img.convert(mode)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_transparent_png_is_composited_onto_white_as_transformers_does(tmp_path):
    from transformers.image_transforms import convert_to_rgb

    path = tmp_path / "logo.png"
    path.write_bytes(_png(_logo()))
    got = np.asarray(m.load_image(path))
    assert got[35, 55].tolist() == [255, 255, 255]       # the transparent background: white, not black
    assert got[20, 30].tolist() == [20, 30, 90]           # the logo itself unchanged
    assert got[2, 2].tolist() == [127, 127, 127]          # half-transparent black over white
    assert np.array_equal(got, np.asarray(convert_to_rgb(Image.open(path))))  # transformers' own rule


@pytest.mark.parametrize("mode", ["LA", "PA"])
def test_other_transparent_modes_too(mode):
    img = _logo(mode)
    got = np.asarray(m.load_image(img))
    assert got[35, 55].tolist() == [255, 255, 255]


def test_palette_transparency_from_a_gif():
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 4, 8))
    buf = io.BytesIO()
    img.save(buf, format="GIF", transparency=0)      # index 0 (black) is transparent
    got = np.asarray(m.load_image(buf.getvalue()))
    assert got[0, 0].tolist() == [200, 0, 0] and got[0, 7].tolist() == [255, 255, 255]


def test_an_opaque_image_is_untouched(photo):
    assert np.array_equal(np.asarray(m.load_image(photo.convert("RGBA"))), np.asarray(photo))


# --- 16-bit and odd depths: scaled, not clipped -----------------------------------------------

def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(16, 16)
    path = tmp_path / "depth.png"
    Image.fromarray(ramp).save(path)                  # a 16-bit greyscale PNG
    assert Image.open(path).mode.startswith("I")
    got = np.asarray(m.load_image(path))[..., 0]
    assert np.array_equal(got, (ramp / 257).round().astype(np.uint8))
    assert got.min() == 0 and got.max() == 255 and len(np.unique(got)) > 200   # not 0 and a wall of 255
    assert np.array_equal(np.asarray(m.load_image(ramp))[..., 0], got)        # the array gives the same


def test_16_bit_colour_array_and_integer_arrays():
    rgb16 = np.full((4, 4, 3), 32896, np.uint16)
    assert np.asarray(m.load_image(rgb16))[0, 0].tolist() == [128, 128, 128]
    ints = np.array([[[0, 128, 255]] * 3] * 2)           # Python ints: an int64 array
    assert ints.dtype == np.int64
    assert np.asarray(m.load_image(ints))[0, 0].tolist() == [0, 128, 255]
    with pytest.raises(InputError, match="dtype int64 with values -1..300"):
        m.load_image(np.array([[-1, 300]]))
    with pytest.raises(InputError, match="NaN or infinite"):
        m.load_image(np.array([[0.5, np.nan]]))
    with pytest.raises(InputError, match="dtype complex"):
        m.load_image(np.zeros((2, 2), complex))
    assert np.asarray(m.load_image(np.eye(2, dtype=bool)))[0, 0].tolist() == [255, 255, 255]


def test_float_image_of_unknown_range_is_stretched_with_a_warning():
    img = Image.fromarray(np.array([[-50.0, 950.0]], np.float32), "F")
    with pytest.warns(UserWarning, match="stretched to 0..255"):
        got = np.asarray(m.load_image(img))[..., 0]
    assert got.tolist() == [[0, 255]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # 0..1 floats are a known range: no warning
        assert np.asarray(m.load_image(Image.fromarray(np.array([[0.0, 1.0]], np.float32), "F")))[0, 1, 0] == 255


def test_decompression_bomb_is_the_cookbooks_error(monkeypatch, photo):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 200x120 is now over twice the limit
    with pytest.raises(InputError, match="decompression bomb") as err:
        m.load_image(_png(photo))
    assert "MAX_IMAGE_PIXELS" in str(err.value)


# --- image URLs: one deadline for the whole download, and a size cap ------------------------

class RawServer:
    """A TCP server on 127.0.0.1 that runs ``talk(conn)`` for each connection, in a thread."""

    def __init__(self, talk):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/x.png"
        self.ended = threading.Event()
        self.talk = talk
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        try:
            conn.recv(4096)
            self.talk(conn)
        except OSError:  # the client hung up: what a deadline or a cap should do
            pass
        finally:
            conn.close()
            self.ended.set()
            self.sock.close()


def drip_body(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(600):
        conn.sendall(b"x")
        time.sleep(0.1)


def drip_headers(conn):
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 600:
        conn.sendall(bytes([byte]))
        time.sleep(0.1)


def endless(conn):
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\n")
    chunk = b"z" * 65536
    for _ in range(100_000):
        conn.sendall(chunk)


def huge_length(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 99999999999\r\n\r\n")
    time.sleep(5)


@pytest.mark.parametrize("talk", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_dripping_server_meets_one_overall_deadline(talk):
    server = RawServer(talk)
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"not fully received within 1\.5 s"):
        m.load_image(server.url, timeout=1.5)
    took = time.perf_counter() - start
    assert 1.4 < took < 3.0, took
    assert server.ended.wait(5)  # the connection was cut, the server's loop ended early


def test_an_endless_body_stops_at_the_size_cap(monkeypatch):
    monkeypatch.setattr(m, "URL_MAX_BYTES", 4 * 2**20)
    server = RawServer(endless)
    with pytest.raises(InputError, match="over 4 MiB"):
        m.load_image(server.url, timeout=30)
    assert server.ended.wait(5)


def test_a_declared_huge_length_is_refused_before_reading(monkeypatch):
    server = RawServer(huge_length)
    start = time.perf_counter()
    with pytest.raises(InputError, match="over 64 MiB"):
        m.load_image(server.url, timeout=30)
    assert time.perf_counter() - start < 2


def test_no_fetch_thread_is_left_behind():
    time.sleep(0.5)
    assert not [t for t in threading.enumerate() if t.name == "cookbook-fetch"]


# --- videos: rates and frame counts -----------------------------------------------------------

@pytest.mark.parametrize("fps", [0, -2, float("nan"), float("inf"), "2"])
def test_frame_lists_with_a_bad_fps_are_refused_naming_it(photo, fps):
    with pytest.raises(InputError, match=r"fps=.*positive number of frames per second"):
        m.video([photo, photo], fps=fps)


def test_max_frames_is_named_when_it_is_the_problem(photo):
    with pytest.raises(InputError, match="max_frames=1"):
        m.video([photo, photo], fps=2, max_frames=1)
    with pytest.raises(ValueError, match="max_frames=1"):
        cb.video.frame_indices(300, 30.0, 2.0, max_frames=1)
    with pytest.raises(cb.video.VideoError, match="max_frames=1") as err:
        cb.video.read_video(ASSETS / "video" / "events.mp4", max_frames=1)
    assert "start/end" not in str(err.value)                 # not a segment problem
    for name, kwargs in (("fps", {"fps": 0}), ("video_fps", {"video_fps": math.nan}), ("start", {"start": math.nan}),
                         ("nframes", {"nframes": 0})):
        args = {"total_frames": 300, "video_fps": 30.0, **kwargs}
        with pytest.raises(ValueError, match=f"^{name}="):
            cb.video.frame_indices(**args)


# --- sizes and budgets ------------------------------------------------------------------------

@pytest.mark.parametrize("args, name", [((0, 100), "height"), ((100, 0), "width"), ((math.nan, 10), "height"),
                                        ((10, 10, 0), "factor"), ((10, 10, 32, 0, 0), "max_pixels"),
                                        ((10, 10, 32, -1), "min_pixels"), ((10, 10, 32, 0, math.nan), "max_pixels")])
def test_smart_resize_names_a_zero_size_or_budget(args, name):
    with pytest.raises(ValueError, match=f"^{name}="):
        cb.memory.smart_resize(*args)


def test_image_tokens_and_budgets_name_the_argument(photo):
    with pytest.raises(ValueError, match="^width=0"):
        cb.memory.image_tokens(0, 100)
    with pytest.raises(InputError, match="max_tokens=0 is below"):
        m.image(photo, max_tokens=0)
    with pytest.raises(InputError, match="max_tokens=nan"):
        m.image(photo, max_tokens=math.nan)
    with pytest.raises(InputError, match="max_pixels=0 is below"):
        m.image(photo, max_pixels=0)


# --- PDFs and file names ----------------------------------------------------------------------

def test_a_truncated_pdf_names_the_file(tmp_path):
    data = (ASSETS / "documents" / "report.pdf").read_bytes()
    cut = tmp_path / "cut-short.pdf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut-short.pdf: not readable"):
        cb.documents.pdf_pages(cut)
    with pytest.raises(InputError, match="missing.pdf: no such file"):
        cb.documents.pdf_pages(tmp_path / "missing.pdf")
    with pytest.raises(InputError, match="dpi=0"):
        cb.documents.pdf_pages(ASSETS / "documents" / "report.pdf", dpi=0)


def test_a_long_prompt_ending_in_an_image_name_is_not_an_os_error():
    prompt = "Describe, in detail and " + "very " * 80 + "carefully, what you see in photo.png"
    assert m.user(prompt)["content"] == [{"type": "text", "text": prompt}]  # a sentence is text (issue 20)
    with pytest.raises(InputError, match="no such file"):
        m.load_image("a" * 300 + ".png")                  # one name longer than the file system allows
    with pytest.raises(InputError, match="no such file"):
        m.user("b" * 300 + ".mp4")                        # one word naming a video: a clear error, not an OSError
    with pytest.raises(InputError, match="no such file"):
        m.video("c" * 300 + ".mp4")


# --- servers: a port someone else holds ---------------------------------------------------------

def test_start_on_a_port_another_server_holds_fails_clearly():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Healthy(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    port = other.server_port
    try:
        start = time.perf_counter()
        with pytest.raises(cb.runtime.server.ServerError, match=f"port={port}: something already listens"):
            cb.runtime.server.start("any-model", port=port, hw=cb.hardware(), progress=None)
        assert time.perf_counter() - start < 5
        assert cb.runtime.server.running_servers() == []
        assert not cb.runtime.server.port_free("127.0.0.1", port)
    finally:
        other.shutdown()
        other.server_close()
    assert cb.runtime.server.port_free("127.0.0.1", port)
