"""Benchmark an OpenAI-compatible server: requests/s, output tokens/s, time to first token and
latency percentiles at several concurrency levels; two servers side by side (04_vllm_serving).

Every request is streamed, so the time to first token (TTFT) is the moment the first piece of text
(or reasoning) reaches the client. A level with concurrency ``c`` keeps at most ``c`` requests in
flight until ``requests`` have finished (a closed loop, like many users waiting for answers).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """One request: when it started, when its first text arrived, when it ended (perf_counter
    seconds), and how many tokens it produced."""

    start: float
    first_token: float | None
    end: float
    output_tokens: int
    prompt_tokens: int | None = None
    tokens_from_usage: bool = True
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


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks (NumPy's
    default): p50 of [1, 2, 3, 4] is 2.5."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q={q}: use 0..100")
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


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
    tokens_from: str

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (for pandas or JSON)."""
        return asdict(self)


def summarize(timings: Sequence[Timing], server: str, concurrency: int, seconds: float | None = None) -> Row:
    """Statistics of one level: rates over the wall time (first start to last end, unless
    ``seconds`` is given), percentiles over the successful requests."""
    done = [t for t in timings if t.ok]
    if seconds is None:
        seconds = (max(t.end for t in timings) - min(t.start for t in timings)) if timings else 0.0
    tokens = sum(t.output_tokens for t in done)
    ttfts = [t.ttft for t in done if t.ttft is not None]
    lat = [t.latency for t in done]

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
        tokens_from="usage" if all(t.tokens_from_usage for t in done) else "chunks",
    )


def measure(client: Any, prompt: Any, **kw: Any) -> Timing:
    """Send one streamed request with ``client`` (a ``cookbook.client.Client``) and time it."""
    from cookbook.client import ClientError

    start = time.perf_counter()
    first = None
    chunks = 0
    try:
        stream = client.stream(prompt, **kw)
        for _ in stream:
            if first is None:
                first = time.perf_counter()
            chunks += 1
        answer = stream.answer
    except ClientError as err:
        return Timing(start, first, time.perf_counter(), 0, error=str(err).splitlines()[0])
    end = time.perf_counter()
    if first is None and answer.ttft is not None:  # reasoning arrived before any answer text
        first = start + answer.ttft
    used = answer.completion_tokens is not None
    return Timing(start, first, end, answer.completion_tokens if used else chunks,
                  prompt_tokens=answer.prompt_tokens, tokens_from_usage=used)


def run(
    client: Any,
    prompt: Any,
    *,
    concurrency: Sequence[int] = (1, 4),
    requests: int = 8,
    label: str | None = None,
    warmup: int = 1,
    progress: bool = True,
    **kw: Any,
) -> list[Row]:
    """Benchmark one server: for each concurrency level send ``requests`` streamed requests of
    ``prompt`` (``kw`` as for ``client.stream``: images, max_tokens, ...), return one Row per level."""
    from tqdm.auto import tqdm

    from cookbook.client import ClientError

    label = label or client.server
    # Encode images/videos once, so the timings measure the server, not base64 on this side.
    prompt = client.build_messages(prompt, kw.pop("images", ()), kw.pop("videos", ()), kw.pop("system", None))
    for _ in range(warmup):  # loads lazy parts (model, kernels, caches); not counted
        client.chat(prompt, **kw)
    rows = []
    for c in concurrency:
        timings: list[Timing] = []
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=c) as pool, \
                tqdm(total=requests, disable=not progress, desc=f"{label} x{c}") as bar:
            for future in as_completed([pool.submit(measure, client, prompt, **kw) for _ in range(requests)]):
                timings.append(future.result())
                bar.update(1)
        wall = time.perf_counter() - t0
        if timings and not any(t.ok for t in timings):
            raise ClientError(f"every request at concurrency {c} failed: {timings[0].error}")
        rows.append(summarize(timings, label, c, seconds=wall))
    return rows


def compare(clients: dict[str, Any], prompt: Any, **kw: Any) -> list[Row]:
    """The same workload against several servers, one after the other (``{"vLLM": c1, ...}``)."""
    rows: list[Row] = []
    for name, client in clients.items():
        rows += run(client, prompt, label=name, **kw)
    return rows


def ratios(rows: Sequence[Row], numerator: str, denominator: str,
           metric: str = "output_tokens_per_s") -> dict[int, float]:
    """``metric`` of server ``numerator`` divided by ``denominator``'s, per concurrency level: the
    number to hold against "vLLM gives 2-3x the throughput"."""
    a = {r.concurrency: getattr(r, metric) for r in rows if r.server == numerator}
    b = {r.concurrency: getattr(r, metric) for r in rows if r.server == denominator}
    return {c: a[c] / b[c] for c in sorted(a) if c in b and b[c]}


COLUMNS = ("server", "concurrency", "ok", "errors", "requests_per_s", "output_tokens_per_s",
           "ttft_p50", "ttft_p90", "ttft_p99", "latency_p50", "latency_p90", "latency_p99")


def format_rows(rows: Sequence[Row], columns: Sequence[str] = COLUMNS) -> str:
    """A plain-text table of benchmark rows (seconds for TTFT and latency)."""
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return str(v)

    table = [list(columns)] + [[cell(getattr(r, c)) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
