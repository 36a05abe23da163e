import base64
import io
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from PIL import Image

from cookbook.kit import messages as m
from cookbook.kit.messages import InputError


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_every_image_source_gives_the_same_pixels(photo, tmp_path):
    path = tmp_path / "p.png"
    photo.save(path)
    data = _png_bytes(photo)
    b64 = base64.b64encode(data).decode()
    sources = [photo, str(path), path, f"file://{path}", data, f"data:image/png;base64,{b64}", b64,
               np.asarray(photo), np.asarray(photo) / 255.0]
    for src in sources:
        img = m.load_image(src)
        assert img.mode == "RGB" and img.size == (200, 120)
        assert np.array_equal(np.asarray(img), np.asarray(photo)), type(src)


def test_grey_and_rgba_become_rgb():
    assert m.load_image(Image.new("L", (40, 30))).mode == "RGB"
    assert m.load_image(np.zeros((30, 40, 4), dtype=np.uint8)).size == (40, 30)


def test_bad_images_name_the_item(tmp_path):
    with pytest.raises(InputError, match="missing.png: no such file"):
        m.load_image(tmp_path / "missing.png")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    with pytest.raises(InputError, match="junk.jpg: not a readable image"):
        m.load_image(junk)
    with pytest.raises(InputError, match="type int"):
        m.load_image(42)
    with pytest.raises(InputError, match="shape"):
        m.load_image(np.zeros((2, 3, 7)))


@pytest.fixture
def http_server(photo):
    body = _png_bytes(photo)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/slow.png":
                threading.Event().wait(2)
            if self.path in ("/cat.png", "/slow.png"):
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_url_images(http_server, photo):
    img = m.load_image(f"{http_server}/cat.png")
    assert np.array_equal(np.asarray(img), np.asarray(photo))
    with pytest.raises(InputError, match="404"):
        m.load_image(f"{http_server}/nope.png")
    with pytest.raises(InputError, match="timed out|could not be fetched"):
        m.load_image(f"{http_server}/slow.png", timeout=0.3)


def test_elongated_images_are_refused(photo):
    with pytest.raises(InputError, match="aspect ratio.*crop it first"):
        m.image(photo.resize((10000, 20)))


def test_per_image_budget(photo):
    big = photo.resize((2000, 1200))
    part = m.image(big, max_tokens=64)
    w, h = part["image"].size
    assert (w * h) // (32 * 32) <= 64 and w % 32 == 0 and h % 32 == 0 and abs(w / h - 5 / 3) < 0.2
    assert m.image(photo)["image"].size == photo.size  # no budget: left for the processor
    with pytest.raises(InputError, match="below the minimum"):
        m.image(big, max_tokens=2)


def test_user_message_parts(photo, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0")
    msg = m.user(photo, "What is this?", str(video))
    assert msg["role"] == "user"
    assert [p["type"] for p in msg["content"]] == ["image", "text", "video"]
    assert msg["content"][1]["text"] == "What is this?"
    with pytest.raises(InputError, match="empty user message"):
        m.user()
    with pytest.raises(InputError, match="empty user message"):
        m.user("   ")
    with pytest.raises(InputError, match="at least 2"):
        m.video([photo])
    with pytest.raises(InputError, match="no such file"):
        m.video(tmp_path / "nope.mp4")


def test_check_names_the_bad_message():
    with pytest.raises(InputError, match="no messages"):
        m.check([])
    with pytest.raises(InputError, match="message 1 \\(user\\): empty content"):
        m.check([m.system("hi"), {"role": "user", "content": []}])
    with pytest.raises(InputError, match="message 0"):
        m.check([{"role": "robot", "content": "x"}])


def test_to_openai(photo, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"fake-mp4")
    conv = [m.system("Be brief."), m.user(photo, "Describe.", str(video)), m.assistant("A square.")]
    out = m.to_openai(conv)
    assert out[0] == {"role": "system", "content": "Be brief."}
    img, txt, vid = out[1]["content"]
    assert img["type"] == "image_url" and img["image_url"]["url"].startswith("data:image/png;base64,")
    decoded = m.load_image(img["image_url"]["url"])
    assert np.array_equal(np.asarray(decoded), np.asarray(photo))
    assert txt == {"type": "text", "text": "Describe."}
    assert vid["video_url"]["url"] == "data:video/mp4;base64," + base64.b64encode(b"fake-mp4").decode()
    assert out[2] == {"role": "assistant", "content": "A square."}


def test_to_openai_takes_raw_parts_and_leaves_them_as_they_were(photo):
    arr = np.asarray(photo)
    conv = [{"role": "user", "content": [{"type": "image", "image": arr}, {"type": "text", "text": "Hi"}]}]
    before = repr(conv)
    url = m.to_openai(conv)[0]["content"][0]["image_url"]["url"]  # a numpy array is no truth value
    assert np.array_equal(np.asarray(m.load_image(url)), arr) and repr(conv) == before


def test_to_openai_keeps_urls():
    conv = [{"role": "user", "content": [{"type": "image", "image": "https://example.com/cat.jpg"},
                                         {"type": "text", "text": "And this?"}]}]
    assert m.to_openai(conv)[0]["content"][0] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}


@pytest.mark.parametrize("src", [np.zeros((0, 0, 3), dtype=np.uint8), np.zeros((0, 7)), Image.new("RGB", (0, 0)),
                                 Image.new("L", (9, 0))], ids=["array 0x0", "array 0x7", "PIL 0x0", "PIL 9x0"])
def test_a_zero_size_image_is_named(src):
    """A picture with no pixels fails where it is given, with its size, in every entry point."""
    for make in (m.load_image, m.image, lambda s: m.user(s, "What is this?")):
        with pytest.raises(InputError, match=r"no pixels|0 pixels|x0 pixels"):
            make(src)
    with pytest.raises(InputError):
        m.to_openai([{"role": "user", "content": [{"type": "image", "image": src}]}])


def test_data_url_round_trip(photo, tmp_path):
    url = m.to_data_url(photo)
    assert url.startswith("data:image/png;base64,") and np.array_equal(np.asarray(m.load_image(url)), np.asarray(photo))
    assert m.to_data_url(url) == url  # already a data URL
    with pytest.raises(InputError, match="no such file"):
        m.to_data_url(tmp_path / "gone.mp4")


def test_a_sentence_naming_a_file_is_text_and_a_lone_path_is_media(tmp_path):
    """`user("Describe photo.jpg")` is a question, not a missing file (issue 20); a lone path is still media."""
    assert m.user("Describe photo.jpg")["content"] == [{"type": "text", "text": "Describe photo.jpg"}]
    assert m.user("What happens in clip.mp4 at 3 s?")["content"][0]["type"] == "text"
    with pytest.raises(m.InputError):
        m.user("no-such-photo.jpg", "What is this?")  # one word with an image suffix: loaded, and missing
