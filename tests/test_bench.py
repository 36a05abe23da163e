"""cookbook.kit.bench: the statistics on synthetic timings (exact numbers), the generated workload, then a real
run against `transformers serve` on 127.0.0.1 with the tiny checkpoint (started once for this module)."""

from __future__ import annotations

import pytest

import cookbook as cb
from cookbook.kit import bench
from cookbook.kit.bench import Timing


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
    # a given wall time wins over first-start-to-last-end
    assert bench.summarize(timings, "s", 2, seconds=10.0).requests_per_s == pytest.approx(0.4)


def test_ratios():
    rows = [bench.summarize([Timing(0, 0.1, 1, 100)], "vLLM", 1),
            bench.summarize([Timing(0, 0.1, 1, 40)], "transformers", 1),
            bench.summarize([Timing(0, 0.1, 2, 600)], "vLLM", 8),
            bench.summarize([Timing(0, 0.1, 2, 100)], "transformers", 8)]
    assert bench.ratios(rows, "vLLM", "transformers") == {1: 2.5, 8: 6.0}
    assert bench.summarize([], "s", 1).requests_per_s == 0.0
    assert rows[0].as_dict()["ttft_p50"] == 0.1


def test_workload_is_distinct_and_reproducible():
    w = bench.workload(12, seed=3)
    urls = [m[0]["content"][0]["image_url"]["url"] for m in w]
    texts = [m[0]["content"][1]["text"] for m in w]
    assert len(set(urls)) == 12 and len(set(texts)) == 12  # no two requests share an image or a prompt
    assert bench.workload(12, seed=3) == w and bench.workload(12, seed=4) != w


def test_fixed_length_only_where_the_server_has_it():
    assert bench.fixed_length("vllm", 64) == {"ignore_eos": True, "min_tokens": 64}
    assert bench.fixed_length("transformers", 64) == {}


# ----------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from cookbook.runtime import server as sv

    with sv.start(cb.kit.tiny.build(), log_dir=tmp_path_factory.mktemp("logs"), threads=1) as s:
        yield s


def test_real_run_rows(server):
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key="EMPTY")
    requests = bench.workload(1 + 2 * 3)
    with pytest.raises(ValueError, match="pass workload\\(9\\)"):
        bench.run(client, server.model, requests[:5], server="transformers", concurrency=(1, 3), per_level=4)
    rows = bench.run(client, server.model, requests, server="transformers", concurrency=(1, 3), per_level=3,
                     max_tokens=8)
    assert [(r.server, r.concurrency, r.requests, r.ok, r.errors) for r in rows] == [
        ("transformers", 1, 3, 3, 0), ("transformers", 3, 3, 3, 0)]
    for r in rows:
        assert 0 < r.mean_output_tokens <= 8  # transformers serve cannot fix the length
        assert r.requests_per_s > 0 and r.output_tokens_per_s == pytest.approx(r.mean_output_tokens * r.requests_per_s)
        assert r.latency_p50 <= r.latency_p90 <= r.latency_p99
        assert r.ttft_p50 is None or r.ttft_p50 <= r.latency_p99


def test_a_dead_server_fails_each_request_with_its_error():
    import openai

    from cookbook.runtime import server as sv

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{sv.free_port()}/v1", api_key="EMPTY", max_retries=0)
    t = bench.time_request(client, "m", bench.workload(1)[0], 4)
    assert not t.ok and "Connection" in t.error and t.output_tokens == 0
