"""cookbook.kit.client against a real `transformers serve` on 127.0.0.1 (tiny checkpoint, started once for this
module) through the OpenAI SDK, plus vLLM's error bodies replayed by a stub server (vLLM does not run here)."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import openai
import pytest

import cookbook as cb
from cookbook.kit import client as cl
from cookbook.runtime import server as sv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHELSEA = os.path.join(ROOT, "assets", "chelsea.jpg")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with sv.start(cb.kit.tiny.build(), log_dir=tmp_path_factory.mktemp("logs"), threads=1) as s:
        yield s


def _fail(client, model, **kw):
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], **kw)
    except openai.OpenAIError as err:
        return cl.explain(err, client, model)
    pytest.fail("the request should have failed")


def test_configured_client_talks_to_a_real_server(server):
    client, model = cl.configured(server.base_url, "EMPTY", server.model)
    assert model == server.model and str(client.base_url).rstrip("/") == server.base_url
    messages = cb.messages.to_openai([cb.messages.user(CHELSEA, "Describe.")])
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=2)
    assert r.usage.completion_tokens == 2 and r.usage.prompt_tokens > 100  # the image arrived as tokens


def test_wrong_port_names_the_fix():
    url = f"http://127.0.0.1:{sv.free_port()}/v1"
    client, _ = cl.configured(url, model="m")
    err = _fail(client, "m")
    assert err.kind == "not running" and url in str(err) and "make serve" in err.fix


def test_model_name_mismatch_lists_what_is_served(server):
    client, _ = cl.configured(server.base_url, model="x")
    err = _fail(client, "Qwen/Qwen3-VL-8B-Instruct", max_tokens=2)
    assert err.kind == "model not found" and "Qwen/Qwen3-VL-8B-Instruct" in str(err), str(err)
    assert "COOKBOOK_SERVED_MODEL" in err.fix


def test_timeout_names_the_fix(server):
    client, model = cl.configured(server.base_url, model=server.model, timeout=0.05)
    err = _fail(client, model, max_tokens=400)
    assert err.kind == "timeout" and "timeout" in err.fix


def test_non_openai_fields_are_rejected_by_transformers_serve(server):
    client, model = cl.configured(server.base_url, model=server.model)
    err = _fail(client, model, max_tokens=2, extra_body={"top_k": 20})
    assert err.kind == "unsupported field" and "extra_body" in err.fix


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
    client, _ = cl.configured(vllm_stub, model="x")
    err = _fail(client, "Qwen/Qwen3-VL-8B-Instruct")
    assert err.kind == "model not found" and "It serves: qwen3-vl." in str(err)


def test_vllm_context_too_long(vllm_stub):
    client, _ = cl.configured(vllm_stub, model="qwen3-vl")
    err = _fail(client, "qwen3-vl", max_tokens=4096)
    assert err.kind == "context too long" and "maximum context length is 8192" in str(err)
    assert "--max-model-len" in err.fix


def test_model_name_from_the_server_when_it_serves_one(vllm_stub):
    assert cl.configured(vllm_stub)[1] == "qwen3-vl"
    with pytest.raises(cl.ClientError, match="nothing answers"):
        cl.configured(f"http://127.0.0.1:{sv.free_port()}/v1")
