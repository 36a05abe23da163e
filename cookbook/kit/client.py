"""Reaching an OpenAI-compatible Qwen3-VL server (04_vllm_serving): vLLM, SGLang, ``transformers serve`` or
DashScope's compatible mode. Requests are the OpenAI SDK's own ``client.chat.completions.create``; this module
adds only what the SDK does not do: a client from the workshop settings, and ``explain(err)``, which turns a
failed call into an error that names the fix.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # vLLM's and transformers serve's default port
# Where each server listens by default, and the cloud endpoint (Qwen3-VL README, DashScope docs).
ENDPOINTS = {
    "vllm": "http://127.0.0.1:8000/v1",
    "transformers": "http://127.0.0.1:8000/v1",
    "sglang": "http://127.0.0.1:30000/v1",
    "dashscope": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "dashscope-intl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
}


class ClientError(RuntimeError):
    """A request failed; ``kind`` says how ("not running", "model not found", ...) and ``fix`` what to do."""

    def __init__(self, kind: str, message: str, fix: str = ""):
        super().__init__(f"{message}\nFix: {fix}" if fix else message)
        self.kind, self.fix = kind, fix


def configured(base_url: str | None = None, api_key: str | None = None, model: str | None = None,
               timeout: float = 600.0) -> tuple[Any, str]:
    """``(openai.OpenAI, model)`` for a server: pass ``cb.settings()``'s workshop fields; the model defaults to
    the one the server lists at /v1/models when it lists exactly one (04_vllm_serving)."""
    import openai

    client = openai.OpenAI(base_url=base_url or DEFAULT_BASE_URL, api_key=api_key or "EMPTY", timeout=timeout,
                           max_retries=0)
    if model is None:
        try:
            served = [m.id for m in client.models.list()]
        except openai.OpenAIError as err:
            raise explain(err, client) from err
        if len(served) != 1:
            raise ClientError("model not found", f"{client.base_url} serves {len(served)} models: {served[:8]}.",
                              "name one: COOKBOOK_SERVED_MODEL=... (or model=...).")
        model = served[0]
    return client, model


def _text(err: Any) -> str:
    """The server's own message inside an OpenAI status error (vLLM, FastAPI and OpenAI body shapes)."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            msg = inner.get("message") or inner.get("detail") or inner
            return msg if isinstance(msg, str) else str(msg)
        return str(inner)
    return str(getattr(err, "message", "") or err)


def explain(err: Exception, client: Any = None, model: str | None = None) -> ClientError:
    """A failed SDK call as a ``ClientError`` whose message names the fix; ``raise cb.kit.client.explain(err) from err`` (04)."""
    import openai

    url = str(getattr(client, "base_url", "") or "the server")
    if isinstance(err, openai.APITimeoutError):
        return ClientError("timeout", f"No answer from {url} within the client's timeout.",
                           "raise it (openai.OpenAI(timeout=...)), ask for fewer tokens (max_tokens), send smaller "
                           "images or fewer video frames, or read the server's log: it may be overloaded.")
    if isinstance(err, openai.APIConnectionError):
        return ClientError("not running", f"Cannot connect to {url}: nothing answers there.",
                           "start a server (`make serve`, or cb.runtime.server.start(model)) or fix COOKBOOK_BASE_URL: "
                           "vLLM and transformers serve listen on port 8000, SGLang on 30000; the URL ends in /v1.")
    if not isinstance(err, openai.APIStatusError):
        return ClientError("other", f"{type(err).__name__}: {err}")
    status, text = err.status_code, _text(err)
    low = text.lower()
    if status in (401, 403):
        return ClientError("auth", f"{status} from {url}: {text}",
                           "set COOKBOOK_API_KEY (DASHSCOPE_API_KEY for DashScope) to the key the server expects.")
    pinned = re.search(r"pinned to '([^']+)'", text)  # transformers serve: one model, named in the message
    if status in (400, 404) and ("model" in low and re.search(r"does not exist|not found", low) or pinned):
        served = [pinned.group(1)] if pinned else []
        if client is not None:
            try:
                served += [m.id for m in client.models.list() if m.id not in served]
            except openai.OpenAIError:
                pass
        return ClientError("model not found", f"{url} does not serve model {model!r}. It serves: "
                           f"{', '.join(served[:12]) or '(it lists none)'}.",
                           "send one of those names (COOKBOOK_SERVED_MODEL); vLLM's --served-model-name sets it.")
    items = re.search(r"at most (\d+) (image|video)\(s\) may be provided", low)  # vLLM's --limit-mm-per-prompt
    if status == 400 and items:
        return ClientError("too many items", f"The server takes at most {items.group(1)} {items.group(2)}(s) per "
                           f"request: {text}",
                           "send fewer per request (split it), or restart vLLM with a larger --limit-mm-per-prompt "
                           "(cb.serving.vllm_plan(hw, model, images=..., videos=...) sizes the pixel budget to match).")
    if re.search(r"maximum context length|maximum model length|context length|longer than", low):
        return ClientError("context too long", f"The request does not fit the model's context: {text}",
                           "send fewer or smaller images, fewer video frames (fps), shorter text or a lower "
                           "max_tokens; on vLLM a larger --max-model-len needs more KV cache (cb.serving.vllm_plan).")
    if status == 422 and ("unexpected" in low or "extra" in low):
        return ClientError("unsupported field", f"{url} rejected the request: {text}",
                           "this server takes only OpenAI fields (transformers serve): leave out extra_body "
                           "(top_k, mm_processor_kwargs, ignore_eos, ...) or serve with vLLM.")
    return ClientError("other", f"{status} from {url}: {text}", "read the server's log; the message is the server's own.")
