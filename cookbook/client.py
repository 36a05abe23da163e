"""One OpenAI-compatible client for every Qwen3-VL server: vLLM, SGLang, ``transformers serve`` and
DashScope's compatible mode (04_vllm_serving).

Workshop mode: one server for a room; each learner sets ``COOKBOOK_BASE_URL`` (and, when the room
needs them, ``COOKBOOK_SERVED_MODEL`` and ``COOKBOOK_API_KEY``) and calls ``Client()``.

Every failure a learner meets in practice becomes an exception whose message names the fix:
``ServerNotRunning`` (nothing listens: wrong port, server not started), ``ModelNotFound`` (the model
name differs from what the server serves; lists the names it does serve), ``RequestTimeout``,
``ContextTooLong``, ``UnsupportedField``.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cookbook.chat import THINK_CLOSE, split_thinking

ENV_BASE_URL = "COOKBOOK_BASE_URL"
ENV_API_KEY = "COOKBOOK_API_KEY"
ENV_MODEL = "COOKBOOK_SERVED_MODEL"
ENV_TIMEOUT = "COOKBOOK_TIMEOUT"
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"

# Where each server listens by default, and the cloud endpoint (Qwen3-VL README, DashScope docs).
ENDPOINTS = {
    "vllm": "http://127.0.0.1:8000/v1",
    "transformers": "http://127.0.0.1:8000/v1",
    "sglang": "http://127.0.0.1:30000/v1",
    "dashscope": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "dashscope-intl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
}
# Sampling fields outside the OpenAI schema: vLLM, SGLang and DashScope take them in the body;
# transformers serve rejects unknown fields with 422.
_NON_OPENAI = ("top_k", "repetition_penalty", "min_p", "mm_processor_kwargs", "chat_template_kwargs")


# ------------------------------------------------------------------------------------ errors


class ClientError(RuntimeError):
    """A request failed; ``fix`` says what to do about it."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(f"{message}\nFix: {fix}" if fix else message)
        self.fix = fix


class ServerNotRunning(ClientError):
    """Nothing answers at the base URL (server not started, wrong host or port)."""


class ModelNotFound(ClientError):
    """The server does not serve the requested model name."""

    def __init__(self, message: str, fix: str = "", available: list[str] | None = None):
        super().__init__(message, fix)
        self.available = available or []


class RequestTimeout(ClientError):
    """No complete answer within the client's timeout."""


class ContextTooLong(ClientError):
    """Prompt plus requested output exceed the server's context length."""


class UnsupportedField(ClientError):
    """The server rejected a request field it does not know."""


class AuthError(ClientError):
    """The server wants a (different) API key."""


# ------------------------------------------------------------------------------------ media

_B64 = re.compile(r"[A-Za-z0-9+/=\s]+")
_MAGIC = [
    (b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"), (b"BM", "image/bmp"), (b"\x1aE\xdf\xa3", "video/webm"),
]


def _sniff(data: bytes, kind: str) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return "image/png" if kind == "image" else "video/mp4"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. base64 text too long to be a file name
        return False


def media_url(src: Any, kind: str = "image") -> str:
    """An ``http(s)://`` or ``data:`` URL for an image or video given as URL, data URL, file path,
    raw base64 text, bytes, or a PIL image (images only). Local files are inlined as base64."""
    if hasattr(src, "save") and kind == "image":  # PIL.Image: encoded as PNG
        from cookbook.messages import to_data_url

        return to_data_url(src)
    if isinstance(src, (bytes, bytearray)):
        return f"data:{_sniff(bytes(src), kind)};base64," + base64.b64encode(bytes(src)).decode()
    if isinstance(src, os.PathLike):
        src = os.fspath(src)
    if not isinstance(src, str):
        raise TypeError(f"cannot send {type(src).__name__} as {kind}: use a path, URL, base64 text or bytes")
    if src.startswith(("http://", "https://", "data:")):
        return src
    path = Path(src[7:] if src.startswith("file://") else src).expanduser()
    if len(src) < 4096 and _is_file(path):
        data = path.read_bytes()
        mime = mimetypes.guess_type(path.name)[0] or _sniff(data, kind)
        return f"data:{mime};base64," + base64.b64encode(data).decode()
    if len(src) > 64 and _B64.fullmatch(src):
        raw = base64.b64decode(src)
        return f"data:{_sniff(raw, kind)};base64," + "".join(src.split())
    raise FileNotFoundError(f"{kind} {src[:80]!r} is neither a file, a URL nor base64 text")


def image_part(src: Any) -> dict:
    """``{"type": "image_url", "image_url": {"url": ...}}`` for a path, URL, base64 text or PIL image."""
    return {"type": "image_url", "image_url": {"url": media_url(src, "image")}}


def video_part(src: Any, local_path: bool = False) -> dict:
    """``{"type": "video_url", ...}``; ``local_path=True`` sends an absolute file path instead of
    inlining it (for ``transformers serve`` on this machine, whose video loader reads only http(s)
    URLs and local files, not data URLs)."""
    if local_path and isinstance(src, (str, os.PathLike)) and _is_file(Path(os.fspath(src))):
        url = str(Path(os.fspath(src)).resolve())
    else:
        url = media_url(src, "video")
    return {"type": "video_url", "video_url": {"url": url}}


def message(text: str | None = None, images: Iterable[Any] = (), videos: Iterable[Any] = (),
            role: str = "user", local_video: bool = False) -> dict:
    """One OpenAI chat message: media first, then the text (the order the Qwen3-VL examples use)."""
    parts = [image_part(i) for i in images] + [video_part(v, local_video) for v in videos]
    if text is not None:
        parts.append({"type": "text", "text": text})
    return {"role": role, "content": parts}


def _to_openai(messages: list[dict]) -> list[dict]:
    """OpenAI messages pass through; cookbook messages (``cb.messages.user(...)``, parts of type
    ``image``/``video``) go through ``cb.messages.to_openai`` (media become data URLs)."""
    from cookbook.messages import to_openai

    out = []
    for m in messages:
        content = m.get("content")
        cookbook_form = isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") in ("image", "video") for p in content)
        out.extend(to_openai([m]) if cookbook_form else [m])
    return out


# ------------------------------------------------------------------------------------ answers


@dataclass
class Answer:
    """What came back: the text (answer only), the reasoning of Thinking models, token counts
    (``None`` when the server did not report them), timing."""

    text: str
    model: str
    reasoning: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    seconds: float = 0.0
    ttft: float | None = None
    chunks: int = 0

    def __str__(self) -> str:
        return self.text


def _split_reasoning(text: str, reasoning: str | None) -> tuple[str, str | None]:
    """(answer, reasoning): a server without a reasoning parser leaves ``</think>`` in the text."""
    if reasoning is None and THINK_CLOSE in text:
        thought, answer = split_thinking(text)
        return answer, thought
    return text, reasoning


def _reasoning_of(obj: Any) -> str | None:
    for name in ("reasoning_content", "reasoning"):
        value = getattr(obj, name, None)
        if value is None and getattr(obj, "model_extra", None):
            value = obj.model_extra.get(name)
        if value:
            return value
    return None


class Stream:
    """Iterate to receive text pieces as they arrive; ``.answer`` holds the full Answer afterwards."""

    def __init__(self, pieces: Iterator[str], holder: dict):
        self._pieces = pieces
        self._holder = holder

    def __iter__(self) -> Iterator[str]:
        yield from self._pieces

    @property
    def answer(self) -> Answer:
        """The complete Answer (reads the rest of the stream first if needed)."""
        if "answer" not in self._holder:
            for _ in self._pieces:  # drain
                pass
        return self._holder["answer"]


# ------------------------------------------------------------------------------------ client


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class Client:
    """OpenAI-compatible chat client configured from arguments or the environment
    (``COOKBOOK_BASE_URL``, ``COOKBOOK_API_KEY``, ``COOKBOOK_SERVED_MODEL``, ``COOKBOOK_TIMEOUT``)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int = 0,
        server: str | None = None,
        log_tail: Any = None,
    ):
        from openai import OpenAI

        self.base_url = (base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
        key = api_key or os.environ.get(ENV_API_KEY)
        if key is None and "dashscope" in self.base_url:
            key = os.environ.get("DASHSCOPE_API_KEY")
        self.api_key = key or "EMPTY"
        self.model = model or os.environ.get(ENV_MODEL) or None
        self.timeout = float(timeout or os.environ.get(ENV_TIMEOUT) or 600.0)
        self.server = server or ("dashscope" if "dashscope" in self.base_url else "openai-compatible")
        self.log_tail = log_tail  # callable returning the server's log tail (local servers only)
        self._openai = OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout,
                              max_retries=max_retries)

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, model={self.model!r}, server={self.server!r})"

    # -- errors ------------------------------------------------------------------------------

    def _translate(self, err: Exception, model: str | None) -> ClientError:
        import openai

        if isinstance(err, openai.APITimeoutError):
            return RequestTimeout(
                f"No answer from {self.base_url} within {self.timeout:g} s.",
                "raise the timeout (Client(timeout=...) or COOKBOOK_TIMEOUT), ask for fewer tokens "
                "(max_tokens), send smaller images/fewer video frames, or check the server is not "
                "overloaded (its log).",
            )
        if isinstance(err, openai.APIConnectionError):
            return ServerNotRunning(
                f"Cannot connect to {self.base_url}: no server answers there ({err.__cause__ or err}).",
                "start a server (`make serve`, or cb.serving.start(model) in a notebook) or point "
                f"{ENV_BASE_URL} at the right host and port (vLLM and transformers serve default to "
                "8000, SGLang to 30000; the URL ends in /v1). In a workshop, ask for the room's URL.",
            )
        if isinstance(err, openai.APIStatusError):
            status = err.status_code
            text = _error_text(err)
            low = text.lower()
            if status in (401, 403):
                return AuthError(f"{status} from {self.base_url}: {text}",
                                 f"set {ENV_API_KEY} (or DASHSCOPE_API_KEY for DashScope) to the key "
                                 "the server expects.")
            pinned = re.search(r"pinned to '([^']+)'", text)
            if pinned or (status in (400, 404) and "model" in low and
                          any(w in low for w in ("does not exist", "not found", "not exist", "pinned"))):
                available = [pinned.group(1)] if pinned else []
                try:
                    available += [m for m in self.models() if m not in available]
                except ClientError:
                    pass
                names = ", ".join(available[:12]) or "(the server lists none)"
                return ModelNotFound(
                    f"The server at {self.base_url} does not serve model {model!r}. It serves: {names}.",
                    f"set {ENV_MODEL} (or Client(model=...)) to one of those names; with vLLM, "
                    "--served-model-name sets the name clients use.",
                    available=available,
                )
            if re.search(r"maximum context length|maximum model length|context_length_exceeded|"
                         r"context length|too long|longer than", low):
                return ContextTooLong(
                    f"The request does not fit the model's context: {text}",
                    "send fewer or smaller images (max_pixels), fewer video frames (fps, max_frames), "
                    "shorter text or a lower max_tokens; on vLLM a larger --max-model-len needs more "
                    "KV-cache memory (see cb.serving.vllm_plan).",
                )
            if status == 422 and "unexpected fields" in low:
                return UnsupportedField(
                    f"{self.base_url} rejected the request: {text}",
                    "transformers serve accepts only OpenAI chat fields: drop vLLM extras such as "
                    "top_k, repetition_penalty or mm_processor_kwargs (Client(server='transformers') "
                    "drops them for you), or serve with vLLM.",
                )
            log = f"\n--- server log (last lines) ---\n{self.log_tail()}" if self.log_tail else ""
            return ClientError(f"{status} from {self.base_url}: {text}{log}",
                               "read the server's log; the message above is the server's own.")
        return ClientError(f"{type(err).__name__}: {err}")

    # -- requests ----------------------------------------------------------------------------

    def models(self) -> list[str]:
        """The model names the server lists at ``/v1/models``."""
        try:
            return [m.id for m in self._openai.models.list()]
        except Exception as err:  # noqa: BLE001 - translated into a ClientError naming the fix
            raise self._translate(err, None) from err

    def resolve_model(self) -> str:
        """The model name to send: the configured one, or the server's only model."""
        if self.model:
            return self.model
        names = self.models()
        if len(names) == 1:
            self.model = names[0]
            return self.model
        raise ModelNotFound(
            f"No model name configured and {self.base_url} lists {len(names)}: {', '.join(names[:12]) or 'none'}.",
            f"set {ENV_MODEL} or Client(model=...) to the name the server serves.",
            available=names,
        )

    def build_messages(self, prompt: str | list[dict], images: Iterable[Any] = (), videos: Iterable[Any] = (),
                       system: str | None = None) -> list[dict]:
        """The OpenAI messages a request sends (media encoded as URLs or data URLs)."""
        local_video = self.server == "transformers" and _is_loopback(self.base_url)
        if isinstance(prompt, str):
            msgs = [message(prompt, images, videos, local_video=local_video)]
        else:
            msgs = _to_openai(list(prompt))
            if images or videos:
                msgs.append(message(None, images, videos, local_video=local_video))
        if system:
            msgs = [{"role": "system", "content": system}, *msgs]
        return msgs

    def _body(self, max_tokens: int | None, temperature: float | None, top_p: float | None,
              preset: str | None, extra_body: dict | None, kw: dict) -> dict:
        body: dict[str, Any] = {}
        extras: dict[str, Any] = dict(extra_body or {})
        if preset is not None:
            from cookbook.presets import PRESETS

            p = PRESETS[preset]
            body.update(temperature=p.temperature, top_p=p.top_p, presence_penalty=p.presence_penalty)
            extras.update(top_k=p.top_k, repetition_penalty=p.repetition_penalty)
            if max_tokens is None:
                max_tokens = p.max_new_tokens
        for name, value in (("max_tokens", max_tokens), ("temperature", temperature), ("top_p", top_p)):
            if value is not None:
                body[name] = value
        body.update(kw)
        if self.server == "transformers":
            body.pop("presence_penalty", None)  # logged and ignored by transformers serve
            extras = {k: v for k, v in extras.items() if k not in _NON_OPENAI}
        if extras:
            body["extra_body"] = extras
        return body

    def _request(self, prompt: str | list[dict], images: Iterable[Any], videos: Iterable[Any],
                 system: str | None, knobs: tuple) -> tuple[str, list[dict], dict[str, Any]]:
        """(served model name, OpenAI messages, request body) shared by ``chat`` and ``stream``."""
        return self.resolve_model(), self.build_messages(prompt, images, videos, system), self._body(*knobs)

    def chat(
        self,
        prompt: str | list[dict],
        *,
        images: Iterable[Any] = (),
        videos: Iterable[Any] = (),
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        preset: str | None = None,
        extra_body: dict | None = None,
        **kw: Any,
    ) -> Answer:
        """One request, one Answer. ``prompt`` is a string (with ``images``/``videos`` by path, URL,
        base64 or PIL) or a list of chat messages (OpenAI or cookbook form)."""
        model, msgs, body = self._request(prompt, images, videos, system,
                                          (max_tokens, temperature, top_p, preset, extra_body, kw))
        t0 = time.perf_counter()
        try:
            r = self._openai.chat.completions.create(model=model, messages=msgs, **body)
        except Exception as err:  # noqa: BLE001 - translated into a ClientError naming the fix
            raise self._translate(err, model) from err
        choice = r.choices[0]
        text, reasoning = _split_reasoning(choice.message.content or "", _reasoning_of(choice.message))
        usage = r.usage
        return Answer(
            text=text, model=r.model or model, reasoning=reasoning,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            finish_reason=choice.finish_reason, seconds=time.perf_counter() - t0,
        )

    def stream(
        self,
        prompt: str | list[dict],
        *,
        images: Iterable[Any] = (),
        videos: Iterable[Any] = (),
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        preset: str | None = None,
        extra_body: dict | None = None,
        **kw: Any,
    ) -> Stream:
        """Like ``chat`` but streamed: ``for piece in client.stream(...): print(piece, end="")``;
        the Stream's ``.answer`` has token counts and time to first token."""
        model, msgs, body = self._request(prompt, images, videos, system,
                                          (max_tokens, temperature, top_p, preset, extra_body, kw))
        # vLLM reports usage in a stream only when asked; transformers serve always sends it.
        if self.server != "transformers":
            body.setdefault("stream_options", {"include_usage": True})
        holder: dict[str, Answer] = {}

        def pieces() -> Iterator[str]:
            t0 = time.perf_counter()
            ttft = None
            text, reasoning = [], []
            usage = finish = None
            name = model
            n = 0
            try:
                response = self._openai.chat.completions.create(model=model, messages=msgs, stream=True,
                                                                **body)
                for chunk in response:
                    n += 1
                    name = chunk.model or name
                    if chunk.usage is not None:
                        usage = chunk.usage
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    finish = choice.finish_reason or finish
                    delta = choice.delta
                    think = _reasoning_of(delta) if delta is not None else None
                    piece = (delta.content if delta is not None else None) or ""
                    if (piece or think) and ttft is None:
                        ttft = time.perf_counter() - t0
                    if think:
                        reasoning.append(think)
                    if piece:
                        text.append(piece)
                        yield piece
            except Exception as err:  # noqa: BLE001 - translated into a ClientError naming the fix
                raise self._translate(err, model) from err
            full, think_text = _split_reasoning("".join(text), "".join(reasoning) or None)
            holder["answer"] = Answer(
                text=full, model=name, reasoning=think_text,
                prompt_tokens=getattr(usage, "prompt_tokens", None),
                completion_tokens=getattr(usage, "completion_tokens", None),
                finish_reason=finish, seconds=time.perf_counter() - t0, ttft=ttft, chunks=n,
            )

        return Stream(pieces(), holder)

    def batch(
        self,
        prompts: list[str | list[dict]],
        *,
        concurrency: int = 4,
        progress: bool = True,
        errors: str = "raise",
        **kw: Any,
    ) -> list[Answer | ClientError]:
        """Send many requests at once (``concurrency`` in flight) with a progress bar; answers come
        back in the order of ``prompts``. ``errors="return"`` puts each ClientError in its slot."""
        from tqdm.auto import tqdm

        self.resolve_model()
        results: list[Any] = [None] * len(prompts)

        def one(i: int) -> None:
            try:
                results[i] = self.chat(prompts[i], **kw)
            except ClientError as err:
                results[i] = err

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool, \
                tqdm(total=len(prompts), disable=not progress, desc=f"{len(prompts)} requests") as bar:
            for future in as_completed([pool.submit(one, i) for i in range(len(prompts))]):
                future.result()
                bar.update(1)
        if errors == "raise":
            for r in results:
                if isinstance(r, ClientError):
                    raise r
        return results


def _error_text(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value
            if value:
                return str(value)
    return getattr(err, "message", None) or str(err)
