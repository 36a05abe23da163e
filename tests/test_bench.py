"""cookbook.bench: the statistics on synthetic timings (exact numbers), then a real run against
`transformers serve` on 127.0.0.1 with the tiny checkpoint (started once for this module)."""

from __future__ import annotations

import os

import pytest

from cookbook import bench
from cookbook.bench import Timing

CHELSEA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "chelsea.jpg")


def test_percentile_interpolates_linearly():
    assert bench.percentile([4, 1, 3, 2], 50) == 2.5
    assert bench.percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert bench.percentile([1, 2, 3, 4], 99) == pytest.approx(3.97)
    assert bench.percentile([1, 2, 3, 4], 0) == 1 and bench.percentile([1, 2, 3, 4], 100) == 4
    assert bench.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        bench.percentile([], 50)
    with pytest.raises(ValueError):
        bench.percentile([1], 101)


def test_summary_of_synthetic_timings():
    timings = [
        Timing(start=0.0, first_token=0.5, end=2.0, output_tokens=10),
        Timing(start=0.0, first_token=1.0, end=3.0, output_tokens=20),
        Timing(start=1.0, first_token=1.5, end=4.0, output_tokens=30),
        Timing(start=2.0, first_token=2.2, end=5.0, output_tokens=40),
        Timing(start=2.0, first_token=None, end=2.1, output_tokens=0, error="boom"),
    ]
    row = bench.summarize(timings, server="s", concurrency=2)
    assert (row.requests, row.ok, row.errors) == (5, 4, 1)
    assert row.seconds == 5.0  # first start 0.0 to last end 5.0
    assert row.requests_per_s == pytest.approx(4 / 5)
    assert row.output_tokens_per_s == pytest.approx(100 / 5)
    assert row.mean_output_tokens == 25
    # TTFTs 0.5, 1.0, 0.5, 0.2 -> sorted 0.2 0.5 0.5 1.0; latencies 2, 3, 3, 3
    assert row.ttft_p50 == pytest.approx(0.5)
    assert row.ttft_p90 == pytest.approx(0.85)
    assert row.ttft_p99 == pytest.approx(0.985)
    assert (row.latency_p50, row.latency_p90, row.latency_p99) == (3.0, 3.0, 3.0)
    assert row.tokens_from == "usage"
    # a given wall time wins over first-start-to-last-end
    assert bench.summarize(timings, "s", 2, seconds=10.0).requests_per_s == pytest.approx(0.4)


def test_summary_when_tokens_were_counted_from_chunks():
    t = [Timing(0.0, 0.1, 1.0, 5, tokens_from_usage=False), Timing(0.0, 0.1, 1.0, 5)]
    assert bench.summarize(t, "s", 1).tokens_from == "chunks"
    assert bench.summarize([], "s", 1).requests_per_s == 0.0


def test_ratios_and_table():
    rows = [bench.summarize([Timing(0, 0.1, 1, 100)], "vLLM", 1),
            bench.summarize([Timing(0, 0.1, 1, 40)], "transformers", 1),
            bench.summarize([Timing(0, 0.1, 2, 600)], "vLLM", 8),
            bench.summarize([Timing(0, 0.1, 2, 100)], "transformers", 8)]
    assert bench.ratios(rows, "vLLM", "transformers") == {1: 2.5, 8: 6.0}
    table = bench.format_rows(rows).splitlines()
    assert table[0].split() == list(bench.COLUMNS)
    assert len(table) == 2 + len(rows)
    assert table[2].split()[:4] == ["vLLM", "1", "1", "0"]


# ----------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import cookbook as cb
    from cookbook import serving as sv

    with sv.start(cb.tiny.build(), log_dir=tmp_path_factory.mktemp("logs"), threads=1) as s:
        yield s


def test_real_run_rows(server):
    rows = bench.run(server.client(), "Describe the picture.", images=[CHELSEA], max_tokens=8,
                     concurrency=(1, 3), requests=6, progress=False)
    assert [(r.server, r.concurrency, r.requests, r.ok, r.errors) for r in rows] == [
        ("transformers", 1, 6, 6, 0), ("transformers", 3, 6, 6, 0)]
    for r in rows:
        assert r.mean_output_tokens == 8 and r.tokens_from == "usage"
        assert r.requests_per_s > 0 and r.output_tokens_per_s == pytest.approx(8 * r.requests_per_s)
        assert 0 < r.ttft_p50 <= r.latency_p50 <= r.latency_p90 <= r.latency_p99
        assert set(r.as_dict()) >= set(bench.COLUMNS)


def test_compare_two_servers_and_plot(server):
    import matplotlib

    matplotlib.use("Agg")
    a, b = server.client(), server.client()
    rows = bench.compare({"A": a, "B": b}, "Hello", max_tokens=4, concurrency=(1, 2), requests=2,
                         warmup=0, progress=False)
    assert [(r.server, r.concurrency) for r in rows] == [("A", 1), ("A", 2), ("B", 1), ("B", 2)]
    assert set(bench.ratios(rows, "A", "B")) == {1, 2}
    fig = bench.plot(rows, title="test")
    assert len(fig.axes) == 3 and len(fig.axes[0].lines) == 2


def test_a_dead_server_fails_loudly():
    from cookbook import client as cl
    from cookbook import serving as sv

    c = cl.Client(base_url=f"http://127.0.0.1:{sv.free_port()}/v1", model="m")
    t = bench.measure(c, "hi", max_tokens=2)
    assert not t.ok and "Cannot connect" in t.error
    with pytest.raises(cl.ClientError, match="every request at concurrency 1 failed"):
        bench.run(c, "hi", concurrency=(1,), requests=2, warmup=0, progress=False, max_tokens=2)
