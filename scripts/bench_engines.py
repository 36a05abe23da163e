"""`make bench`: batched `model.generate`, `transformers serve` and vLLM side by side, in one run (issue 22).

Same requests for every engine (cb.kit.bench.workload: a generated picture and a question each, none repeated
within an engine), the same fixed output length (vLLM: ignore_eos + min_tokens; generate: min_new_tokens;
transformers serve takes no such field, so its mean output length is printed), warm-up excluded, engines
measured one after the other, never at the same time. Prints throughput, TTFT and inter-token latency, and the
ratios to hold against the seed article's "vLLM gives 2-3x the throughput of transformers".

    python scripts/bench_engines.py [--model FOLDER_OR_ID] [--requests 16] [--max-tokens 32] [--concurrency 1 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import urllib.request

import cookbook as cb
from cookbook.kit import bench
from cookbook.kit.hardware import version


def generate_rows(model_id: str, requests: list[list[dict]], max_tokens: int, batch_sizes: list[int],
                  per_level: int) -> list[bench.Row]:
    """Batched ``model.generate`` in this process: ``per_level`` requests per level, in batches of ``c``.
    TTFT is the time of a 1-token generate of the batch (the prefill); ITL the rest over the other tokens."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_id)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(model_id).eval()

    def run(batch: list[list[dict]], n: int) -> float:
        inputs = processor.apply_chat_template([m for m in batch], add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt", padding=True)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        assert out.shape[1] - inputs["input_ids"].shape[1] == n
        return time.perf_counter() - t0

    run(requests[:1], 2)  # warm-up, not counted
    rows, i = [], 1
    for c in batch_sizes:
        level, i = requests[i:i + per_level], i + per_level
        timings = []
        t_start = time.perf_counter()
        for k in range(0, len(level), c):
            batch = level[k:k + c]
            s0 = time.perf_counter()
            prefill = run(batch, 1)
            s1 = time.perf_counter()
            full = run(batch, max_tokens)
            # one request's view: its first token after the prefill, the rest at the batch's pace
            for _ in batch:
                timings.append(bench.Timing(s1, s1 + prefill, s1 + full, max_tokens))
            t_start += s1 - s0  # the 1-token prefill run is a measurement, not serving time
        rows.append(bench.summarize(timings, "generate (batched)", c, seconds=time.perf_counter() - t_start))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="default: the tiny checkpoint (cb.runtime.server.local_model)")
    p.add_argument("--requests", type=int, default=16, help="measured requests per concurrency level")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = p.parse_args(argv)

    hw = cb.hardware()
    model = cb.runtime.server.local_model(args.model)
    n = 1 + args.requests * len(args.concurrency)
    requests = bench.workload(n, seed=22, size=(224, 224))  # the same requests for every engine
    levels = dict(concurrency=args.concurrency, per_level=args.requests, max_tokens=args.max_tokens)
    print(f"model: {model}\nmachine: {platform.processor() or platform.machine()}, device {hw.device}, "
          f"{len(os.sched_getaffinity(0))} CPU cores\n{n} requests per engine (1 warm-up), "
          f"{args.max_tokens} output tokens each, concurrency {args.concurrency}\n", flush=True)
    rows: list[bench.Row] = []

    t = time.perf_counter()
    rows += generate_rows(model, requests, args.max_tokens, args.concurrency, args.requests)
    print(f"generate: {time.perf_counter() - t:.0f} s", flush=True)

    with cb.runtime.server.start(model, kind="transformers", threads=2) as server:
        import openai

        client = openai.OpenAI(base_url=server.base_url, api_key="EMPTY", max_retries=0)
        t = time.perf_counter()
        rows += bench.run(client, server.model, requests, server="transformers", label="transformers serve", **levels)
        print(f"transformers serve: started in {server.started_s:.0f} s, measured in {time.perf_counter() - t:.0f} s",
              flush=True)

    vllm_versions = ""
    if hw.vllm_env:
        with cb.runtime.server.start(model, kind="vllm") as server:
            import openai

            client = openai.OpenAI(base_url=server.base_url, api_key="EMPTY", max_retries=0)
            t = time.perf_counter()
            rows += bench.run(client, server.model, requests, server="vllm", label="vllm serve", **levels)
            print(f"vllm serve: started in {server.started_s:.0f} s, measured in {time.perf_counter() - t:.0f} s",
                  flush=True)
            with urllib.request.urlopen(server.url + "/version", timeout=10) as r:
                vllm_versions = f", vllm {json.load(r)['version']} (its own torch and transformers in {hw.vllm_env})"
    else:
        print("Skipped vLLM: no vLLM environment (run `make vllm`).")

    cols = ("server", "concurrency", "ok", "output_tokens_per_s", "mean_output_tokens", "ttft_p50", "itl_p50",
            "latency_p50")
    print()
    print(cb.table([{k: r.as_dict()[k] for k in cols} for r in rows]))
    print(f"\nversions: python {sys.version.split()[0]}, torch {version('torch')}, "
          f"transformers {version('transformers')}{vllm_versions}")
    for num, den in (("vllm serve", "transformers serve"), ("vllm serve", "generate (batched)"),
                     ("transformers serve", "generate (batched)")):
        r = bench.ratios(rows, num, den)
        if r:
            print(f"output tokens/s, {num} / {den}: " + ", ".join(f"c={c}: {v:.1f}x" for c, v in r.items()))
    print("\nThe seed claims vLLM gives 2-3x the throughput of transformers. This run is a 1.7M-parameter random model on a "
          "CPU: every engine spends its time in Python, HTTP and scheduling, not in matrix products, so the ratio "
          "measures serving overhead and batching, not GPU kernels, attention backends or KV-cache paging. It says "
          "which engine batches concurrent requests; it cannot say how large the gap is for an 8B model on a GPU. "
          "Run this script there with --model Qwen/Qwen3-VL-8B-Instruct for that number.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
