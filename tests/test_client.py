"""cookbook.client against a real `transformers serve` on 127.0.0.1 (tiny checkpoint, started once
for this module), plus vLLM's error bodies replayed by a stub server (vLLM does not run here)."""

from __future__ import annotations

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from cookbook import client as cl
from cookbook import serving as sv
from cookbook.client import _split_reasoning

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHELSEA = os.path.join(ROOT, "assets", "chelsea.jpg")
MAX = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import cookbook as cb

    with sv.start(cb.tiny.build(), log_dir=tmp_path_factory.mktemp("logs"), threads=1) as s:
        yield s


@pytest.fixture(scope="module")
def processor():
    from transformers import AutoProcessor

    import cookbook as cb

    return AutoProcessor.from_pretrained(cb.tiny.build())


def prompt_tokens(processor, text: str, image: str | None = None) -> int:
    """What the server should count: the same chat template and processor, run here."""
    content = ([{"type": "image", "url": image}] if image else []) + [{"type": "text", "text": text}]
    batch = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                          tokenize=True, return_dict=True)
    return len(batch["input_ids"][0])


def test_reasoning_split_without_a_server_parser():
    assert _split_reasoning("I see a cat.</think>\n\nA cat.", None) == ("A cat.", "I see a cat.")
    assert _split_reasoning("A cat.", None) == ("A cat.", None)
    assert _split_reasoning("A cat.", "parsed by vLLM") == ("A cat.", "parsed by vLLM")


def test_plain_request(server, processor):
    c = server.client()
    a = c.chat("Hello there", max_tokens=MAX)
    assert a.model.startswith(server.model)
    assert a.completion_tokens == MAX and a.finish_reason == "length"
    assert a.prompt_tokens == prompt_tokens(processor, "Hello there")
    # the tiny model samples random tokens, </think> among them now and then: split only then
    assert isinstance(a.text, str) and (a.reasoning is None or "</think>" not in a.text)


def test_streaming_request(server, processor):
    s = server.client().stream("Hello there", max_tokens=MAX)
    pieces = list(s)
    a = s.answer
    joined = "".join(pieces)
    assert joined  # every piece arrives
    assert _split_reasoning(joined, None) == (a.text, a.reasoning)  # the Answer is the streamed text
    assert a.completion_tokens == MAX and a.prompt_tokens == prompt_tokens(processor, "Hello there")
    assert a.ttft is not None and 0 < a.ttft <= a.seconds
    assert a.finish_reason == "length"


def test_image_by_path_url_base64_and_pil_reach_the_model(server, processor):
    from PIL import Image

    c = server.client()
    expected = prompt_tokens(processor, "Describe.", CHELSEA)
    assert expected > prompt_tokens(processor, "Describe.") + 100  # 451x300 -> 448x288: 126 image tokens
    raw = open(CHELSEA, "rb").read()
    sources = [CHELSEA, base64.b64encode(raw).decode(), "data:image/jpeg;base64," + base64.b64encode(raw).decode(),
               raw, Image.open(CHELSEA)]
    for src in sources:
        a = c.chat("Describe.", images=[src], max_tokens=2)
        assert a.prompt_tokens == expected, type(src)
        assert a.completion_tokens == 2


def test_cookbook_messages_are_accepted(server, processor):
    import cookbook as cb

    a = server.client().chat([cb.messages.user(CHELSEA, "Describe.")], max_tokens=2)
    # cb.messages re-encodes the photo as PNG: same pixels, same token count
    assert a.prompt_tokens == prompt_tokens(processor, "Describe.", CHELSEA)


def test_batch_keeps_order_and_counts(server, processor):
    c = server.client()
    prompts = ["a", "a b c", "a b c d e f", "a b c d e f g h i", "x"]
    answers = c.batch(prompts, concurrency=3, max_tokens=2, progress=False)
    assert [a.prompt_tokens for a in answers] == [prompt_tokens(processor, p) for p in prompts]
    assert all(a.completion_tokens == 2 for a in answers)


def test_model_name_mismatch_lists_what_is_served(server):
    c = cl.Client(base_url=server.base_url, model="Qwen/Qwen3-VL-8B-Instruct")
    with pytest.raises(cl.ModelNotFound) as info:
        c.chat("hi", max_tokens=2)
    assert info.value.available[0] == server.model
    assert "Qwen/Qwen3-VL-8B-Instruct" in str(info.value) and "COOKBOOK_SERVED_MODEL" in str(info.value)


def test_wrong_port_names_the_fix():
    url = f"http://127.0.0.1:{sv.free_port()}/v1"
    c = cl.Client(base_url=url, model="m")
    with pytest.raises(cl.ServerNotRunning) as info:
        c.chat("hi")
    assert url in str(info.value) and "COOKBOOK_BASE_URL" in str(info.value)
    assert "make serve" in info.value.fix


def test_timeout_names_the_fix(server):
    c = cl.Client(base_url=server.base_url, model=server.model, timeout=0.05)
    with pytest.raises(cl.RequestTimeout, match="within 0.05 s") as info:
        c.chat("hi", max_tokens=400)
    assert "COOKBOOK_TIMEOUT" in info.value.fix


def test_non_openai_fields(server):
    generic = cl.Client(base_url=server.base_url, model=server.model)  # server kind unknown
    with pytest.raises(cl.UnsupportedField, match="top_k"):
        generic.chat("hi", max_tokens=2, extra_body={"top_k": 20})
    # told it is transformers serve, the client drops what that server rejects
    a = server.client().chat("hi", max_tokens=2, extra_body={"top_k": 20}, presence_penalty=1.5)
    assert a.completion_tokens == 2


def test_preset_sampling_fields(server):
    a = server.client().chat("hi", preset="instruct-vision", max_tokens=2)
    assert a.completion_tokens == 2


# ----------------------------------------------------------------------------- configuration


def test_workshop_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv("COOKBOOK_BASE_URL", "http://10.0.0.5:8000/v1/")
    monkeypatch.setenv("COOKBOOK_API_KEY", "room-key")
    monkeypatch.setenv("COOKBOOK_SERVED_MODEL", "qwen3-vl")
    monkeypatch.setenv("COOKBOOK_TIMEOUT", "30")
    c = cl.Client()
    assert (c.base_url, c.api_key, c.model, c.timeout) == ("http://10.0.0.5:8000/v1", "room-key", "qwen3-vl", 30.0)


def test_dashscope_endpoint_uses_its_key(monkeypatch):
    monkeypatch.delenv("COOKBOOK_API_KEY", raising=False)
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test")
    c = cl.Client(base_url=cl.ENDPOINTS["dashscope"], model="qwen3-vl-plus")
    assert c.server == "dashscope" and c.api_key == "sk-test"


def test_media_urls(tmp_path):
    raw = open(CHELSEA, "rb").read()
    b64 = base64.b64encode(raw).decode()
    assert cl.media_url(CHELSEA) == "data:image/jpeg;base64," + b64
    assert cl.media_url(b64) == "data:image/jpeg;base64," + b64
    assert cl.media_url(raw) == "data:image/jpeg;base64," + b64
    assert cl.media_url("https://example.com/a.png") == "https://example.com/a.png"
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16)
    assert cl.video_part(video)["video_url"]["url"].startswith("data:video/mp4;base64,")
    assert cl.video_part(video, local_path=True)["video_url"]["url"] == str(video.resolve())
    with pytest.raises(FileNotFoundError, match="neither a file"):
        cl.media_url(str(tmp_path / "missing.png"))


# ----------------------------------------------------------------------------- vLLM's error bodies


class _VllmStub(BaseHTTPRequestHandler):
    """Replays what vLLM answers (vllm/entrypoints/openai: 404 for an unknown model, 400 for a
    request longer than --max-model-len); /v1/models lists the served name."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "qwen3-vl", "object": "model", "owned_by": "vllm",
                                                     "max_model_len": 8192}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["model"] != "qwen3-vl":
            self._send(404, {"object": "error", "message": f"The model `{body['model']}` does not exist.",
                             "type": "NotFoundError", "param": None, "code": 404})
        else:
            self._send(400, {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
                             "message": "This model's maximum context length is 8192 tokens. However, you "
                                        "requested 4096 output tokens and your prompt contains at least "
                                        "4097 input tokens, for a total of at least 8193 tokens."})


@pytest.fixture(scope="module")
def vllm_stub():
    httpd = HTTPServer(("127.0.0.1", 0), _VllmStub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_vllm_unknown_model(vllm_stub):
    with pytest.raises(cl.ModelNotFound) as info:
        cl.Client(base_url=vllm_stub, model="Qwen/Qwen3-VL-8B-Instruct").chat("hi")
    assert info.value.available == ["qwen3-vl"]
    assert "It serves: qwen3-vl." in str(info.value)


def test_vllm_context_too_long(vllm_stub):
    with pytest.raises(cl.ContextTooLong, match="maximum context length is 8192") as info:
        cl.Client(base_url=vllm_stub, model="qwen3-vl").chat("long", max_tokens=4096)
    assert "max_pixels" in info.value.fix and "--max-model-len" in info.value.fix


def test_model_name_from_the_server_when_it_serves_one(vllm_stub, monkeypatch):
    monkeypatch.delenv("COOKBOOK_SERVED_MODEL", raising=False)
    c = cl.Client(base_url=vllm_stub)
    assert c.model is None and c.resolve_model() == "qwen3-vl"
