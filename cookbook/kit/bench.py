"""A fair benchmark of an OpenAI-compatible server (04_vllm_serving).

Fair means: every request carries its own generated image and question, so neither vLLM's prefix cache nor
its multimodal cache turns repeats into free answers; the output length is fixed where the server allows it
(vLLM: ``ignore_eos`` + ``min_tokens``; ``transformers serve`` takes no such field, so its answers may stop
early and ``mean_output_tokens`` says so); warm-up requests are sent first and not counted. Each level of
concurrency ``c`` keeps at most ``c`` requests in flight (a closed loop). On a GPU, ``vllm bench serve`` is the
tool with more workload shapes; this one runs against any server, on CPU too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

QUESTIONS = ("Describe the picture.", "How many shapes are there?", "Which colour covers most of the image?",
             "Where is the largest shape?", "Name every colour you see.", "What does the picture remind you of?")
CACHES = {
    "vllm": "prefix cache and multimodal cache on (vLLM defaults); every request distinct, so no hits",
    "transformers": "no prefix or multimodal cache across requests",
}


def workload(n: int, seed: int = 0, size: tuple[int, int] = (448, 448)) -> list[list[dict]]:
    """``n`` distinct requests in OpenAI form, each with its own generated picture and question (04)."""
    import random

    from PIL import Image, ImageDraw

    from cookbook.kit.messages import to_openai, user

    rng = random.Random(seed)
    out = []
    for i in range(n):
        img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(2, 7)):
            x, y = rng.randrange(size[0] - 40), rng.randrange(size[1] - 40)
            box = (x, y, x + rng.randint(20, size[0] // 2), y + rng.randint(20, size[1] // 2))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape(box, fill=tuple(rng.randrange(256) for _ in range(3)))
        out.append(to_openai([user(img, f"Request {i}: {rng.choice(QUESTIONS)}")]))
    return out


@dataclass(frozen=True)
class Timing:
    """One request: when it started, when its first text arrived, when it ended (perf_counter
    seconds), and how many tokens it produced."""

    start: float
    first_token: float | None
    end: float
    output_tokens: int
    prompt_tokens: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return not self.error

    @property
    def latency(self) -> float:
        """Seconds from sending the request to its last piece."""
        return self.end - self.start

    @property
    def ttft(self) -> float | None:
        """Seconds to the first piece of text, or None if none came."""
        return None if self.first_token is None else self.first_token - self.start

    @property
    def itl(self) -> float | None:
        """Mean inter-token latency: seconds from the first piece to the end over the tokens after the
        first, or None with fewer than two tokens."""
        if self.first_token is None or self.output_tokens < 2:
            return None
        return (self.end - self.first_token) / (self.output_tokens - 1)


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated linearly as NumPy does by default: p50 of
    [1, 2, 3, 4] is 2.5 (04)."""
    import numpy as np

    xs = list(values)
    if not xs:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q={q}: use 0..100")
    return float(np.percentile(xs, q))


@dataclass(frozen=True)
class Row:
    """One concurrency level of one server."""

    server: str
    concurrency: int
    requests: int
    ok: int
    errors: int
    seconds: float
    requests_per_s: float
    output_tokens_per_s: float
    mean_output_tokens: float
    ttft_p50: float | None
    ttft_p90: float | None
    ttft_p99: float | None
    latency_p50: float | None
    latency_p90: float | None
    latency_p99: float | None
    itl_p50: float | None = None  # median over requests of each one's mean inter-token latency

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict, floats rounded to 3 decimals (for ``cb.table``, pandas or JSON)."""
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def summarize(timings: Sequence[Timing], server: str, concurrency: int, seconds: float | None = None) -> Row:
    """Statistics of one level: rates over the wall time (first start to last end, unless
    ``seconds`` is given), percentiles over the successful requests."""
    done = [t for t in timings if t.ok]
    if seconds is None:
        seconds = (max(t.end for t in timings) - min(t.start for t in timings)) if timings else 0.0
    tokens = sum(t.output_tokens for t in done)
    ttfts = [t.ttft for t in done if t.ttft is not None]
    lat = [t.latency for t in done]
    itls = [t.itl for t in done if t.itl is not None]

    def pct(xs: list[float], q: float) -> float | None:
        return percentile(xs, q) if xs else None

    return Row(
        server=server, concurrency=concurrency, requests=len(timings), ok=len(done),
        errors=len(timings) - len(done), seconds=seconds,
        requests_per_s=len(done) / seconds if seconds > 0 else 0.0,
        output_tokens_per_s=tokens / seconds if seconds > 0 else 0.0,
        mean_output_tokens=tokens / len(done) if done else 0.0,
        ttft_p50=pct(ttfts, 50), ttft_p90=pct(ttfts, 90), ttft_p99=pct(ttfts, 99),
        latency_p50=pct(lat, 50), latency_p90=pct(lat, 90), latency_p99=pct(lat, 99),
        itl_p50=pct(itls, 50),
    )


def fixed_length(server: str, max_tokens: int) -> dict[str, Any]:
    """The ``extra_body`` that makes every answer exactly ``max_tokens`` long, where the server has one (04)."""
    return {"ignore_eos": True, "min_tokens": max_tokens} if server == "vllm" else {}


def time_request(client: Any, model: str, messages: list[dict], max_tokens: int,
                 extra_body: dict[str, Any] | None = None) -> Timing:
    """Send one streamed request with the OpenAI SDK and time it; errors become a Timing with ``error`` (04)."""
    import openai

    start, first, tokens, prompt = time.perf_counter(), None, 0, None
    try:
        stream = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, stream=True,
                                                stream_options={"include_usage": True}, extra_body=extra_body or None)
        for chunk in stream:
            delta = chunk.choices[0].delta if chunk.choices else None
            if first is None and delta is not None and (delta.content or getattr(delta, "reasoning_content", None)):
                first = time.perf_counter()
            if chunk.usage is not None:
                tokens, prompt = chunk.usage.completion_tokens, chunk.usage.prompt_tokens
    except openai.OpenAIError as err:
        return Timing(start, first, time.perf_counter(), 0, error=str(err).splitlines()[0][:200])
    return Timing(start, first, time.perf_counter(), tokens, prompt_tokens=prompt)


def run(client: Any, model: str, requests: Sequence[list[dict]], *, server: str, concurrency: Sequence[int] = (1, 4),
        per_level: int = 8, max_tokens: int = 64, warmup: int = 1, label: str | None = None) -> list[Row]:
    """Benchmark one server: ``warmup`` requests not counted, then ``per_level`` unseen requests at each
    concurrency level, output length fixed where ``server`` ("vllm", "transformers") allows it (04)."""
    need = warmup + per_level * len(concurrency)
    if len(requests) < need:
        raise ValueError(f"{len(requests)} requests for {warmup} warm-up + {len(concurrency)} levels x {per_level}: "
                         f"pass workload({need}) so that no request repeats.")
    extra = fixed_length(server, max_tokens)
    for messages in requests[:warmup]:  # loads lazy parts (kernels, CUDA graphs, caches); not counted
        time_request(client, model, messages, max_tokens, extra)
    rows, i = [], warmup
    for c in concurrency:
        batch, i = requests[i:i + per_level], i + per_level
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=c) as pool:
            timings = list(pool.map(lambda m: time_request(client, model, m, max_tokens, extra), batch))
        rows.append(summarize(timings, label or server, c, seconds=time.perf_counter() - t0))
    return rows


def ratios(rows: Sequence[Row], numerator: str, denominator: str,
           metric: str = "output_tokens_per_s") -> dict[int, float]:
    """``metric`` of server ``numerator`` divided by ``denominator``'s, per concurrency level: the
    number to hold against "vLLM gives 2-3x the throughput"."""
    a = {r.concurrency: getattr(r, metric) for r in rows if r.server == numerator}
    b = {r.concurrency: getattr(r, metric) for r in rows if r.server == denominator}
    return {c: a[c] / b[c] for c in sorted(a) if c in b and b[c]}


def plot(rows: Sequence[Row], title: str | None = None) -> Any:
    """Three panels against concurrency, one line per server: output tokens/s, p50/p90 latency,
    p50 TTFT. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    servers = list(dict.fromkeys(r.server for r in rows))
    for s in servers:
        rs = sorted((r for r in rows if r.server == s), key=lambda r: r.concurrency)
        xs = [r.concurrency for r in rs]
        axes[0].plot(xs, [r.output_tokens_per_s for r in rs], "o-", label=s)
        axes[1].plot(xs, [r.latency_p50 or 0 for r in rs], "o-", label=f"{s} p50")
        axes[1].plot(xs, [r.latency_p90 or 0 for r in rs], "x--", label=f"{s} p90")
        axes[2].plot(xs, [r.ttft_p50 or 0 for r in rs], "o-", label=s)
    for ax, name in zip(axes, ("output tokens / s", "latency (s)", "time to first token, p50 (s)"), strict=True):
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(name)
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
