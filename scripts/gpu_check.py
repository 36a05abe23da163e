"""GPU check (`make gpu-check`): the cookbook's own code paths on a CUDA GPU, with a tiny Qwen3-VL whose language
linears are multiples of 128 (FP8 blocks). Writes gpu_check.json to --out; without CUDA it says why and exits 0.

Steps: load in bf16 with device_map="auto"; cb.chat single, batched and cb.stream; the memory estimate
(cb.memory) against torch.cuda.memory_allocated / max_memory_allocated; an FP8 checkpoint in the official format
written by cb.fp8.save_checkpoint and, on compute capability >= 8.9, loaded by transformers and compared with bf16.
Needs only torch, torchvision, transformers, accelerate, pillow, numpy, tokenizers, safetensors (and jinja2).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

WIDTHS = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4, "num_key_value_heads": 2,
          "head_dim": 64}  # q: 4 x 64 = 256, k/v: 2 x 64 = 128, MLP 512: every FP8 linear is whole 128x128 blocks


def build_fp8_sized_tiny(folder: Path, seed: int = 0) -> Path:
    """The cookbook's tiny Qwen3-VL (tokenizer, processor, template) widened to ``WIDTHS``, random bf16 weights."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from cookbook.kit import tiny

    base = tiny.build("instruct")
    config = AutoConfig.from_pretrained(base)
    for key, value in WIDTHS.items():
        setattr(config.text_config, key, value)
    rope = dict(config.text_config.rope_parameters)
    rope["mrope_section"] = [12, 10, 10]  # sums to head_dim / 2
    config.text_config.rope_parameters = rope
    config.vision_config.out_hidden_size = WIDTHS["hidden_size"]
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    AutoProcessor.from_pretrained(base).save_pretrained(folder)
    return Path(folder)


def _step(results: dict[str, Any], name: str, fn: Any) -> Any:
    """Run one check, record its result (or its error) under ``name``; never stop the script."""
    t0 = time.perf_counter()
    try:
        value = fn()
        results[name] = {"ok": True, "seconds": round(time.perf_counter() - t0, 3), **(value or {})}
        return value
    except Exception as err:  # noqa: BLE001 - a check script reports every failure and goes on
        results[name] = {"ok": False, "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
        return None


def run_checks(work: Path) -> dict[str, Any]:
    """Every check on this machine's first CUDA GPU; the results as a dict."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import cookbook as cb
    from cookbook import fp8, memory

    steps: dict[str, Any] = {}
    folder = build_fp8_sized_tiny(work / "tiny-fp8-sized")
    state: dict[str, Any] = {}

    def load() -> dict[str, Any]:
        torch.cuda.reset_peak_memory_stats()
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.bfloat16, device_map="auto").eval()
        state["model"], state["processor"] = model, AutoProcessor.from_pretrained(folder)
        measured = sum(p.numel() * p.element_size() for p in model.parameters())
        return {"device": str(model.device), "dtype": str(model.dtype), "weight_bytes_measured": measured,
                "weight_bytes_estimated": memory.weight_bytes(model.config, "bf16"),
                "allocated_after_load": torch.cuda.memory_allocated()}

    def conversation(i: int) -> list[dict]:
        from PIL import Image

        image = Image.new("RGB", (320 + 32 * i, 240), (40 * i, 120, 200))
        return [cb.messages.user(image, f"Describe picture {i}.")]

    def single() -> dict[str, Any]:
        torch.cuda.reset_peak_memory_stats()
        reply = cb.chat(state["model"], state["processor"], conversation(0), max_new_tokens=16, seed=0)
        tokens = reply.prompt_tokens + reply.new_tokens
        estimate = memory.estimate(state["model"].config, context=tokens, dtype="bf16")
        return {"prompt_tokens": reply.prompt_tokens, "new_tokens": reply.new_tokens,
                "peak_allocated": torch.cuda.max_memory_allocated(),
                "estimate_weights": estimate.weights, "estimate_kv_cache": estimate.kv_cache,
                "estimate_total_with_overhead": estimate.total,
                "peak_over_estimate_without_overhead": round(torch.cuda.max_memory_allocated()
                                                             / (estimate.weights + estimate.kv_cache), 3)}

    def batched() -> dict[str, Any]:
        replies = cb.chat(state["model"], state["processor"], [conversation(1), conversation(2)],
                          max_new_tokens=16, seed=0)
        return {"replies": len(replies), "new_tokens": [r.new_tokens for r in replies]}

    def streamed() -> dict[str, Any]:
        pieces = list(cb.stream(state["model"], state["processor"], conversation(3), max_new_tokens=16, seed=0))
        return {"pieces": len(pieces), "chars": sum(len(p) for p in pieces)}

    def write_fp8() -> dict[str, Any]:
        out = fp8.save_checkpoint(state["model"], work / "tiny-fp8", state["processor"])
        config = json.loads((out / "config.json").read_text())["quantization_config"]
        return {"folder": str(out), "quantization_config": {k: v for k, v in config.items() if k != "modules_to_not_convert"},
                "modules_to_not_convert": len(config["modules_to_not_convert"]),
                "bytes": (out / "model.safetensors").stat().st_size}

    def load_fp8() -> dict[str, Any]:
        from transformers import FineGrainedFP8Config

        model, processor = state["model"], state["processor"]
        encoded = cb.inputs(processor, conversation(0), device=model.device)
        out: dict[str, Any] = {}
        with torch.no_grad():
            ref = model(**encoded).logits
            fake, _ = fp8.fake_quantize(model)
            weight_only = fake(**encoded).logits
            handles = fp8.add_activation_quantization(fake)
            w8a8 = fake(**encoded).logits
            for h in handles:
                h.remove()
            try:  # transformers' FP8 kernels: transformers >= 5.1x fetches them from the Hub with `kernels`
                native = AutoModelForImageTextToText.from_pretrained(work / "tiny-fp8", device_map="cuda").eval()
                got = native(**encoded).logits
                layer = native.model.language_model.layers[0].mlp.up_proj
                out["native_fp8"] = {"layer_class": type(layer).__name__, "weight_dtype": str(layer.weight.dtype),
                                     "memory_footprint": native.get_memory_footprint(),
                                     "bf16_vs_native_fp8": fp8.compare_logits(ref, got),
                                     "cookbook_w8a8_vs_native_fp8": fp8.compare_logits(w8a8, got)}
            except ImportError as err:
                out["native_fp8"] = f"not run: {err}"
            # The same checkpoint through transformers' FP8 loader, dequantized to bf16 (what it does below 8.9)
            deq = AutoModelForImageTextToText.from_pretrained(
                work / "tiny-fp8", device_map="cuda", quantization_config=FineGrainedFP8Config(dequantize=True)).eval()
            dequantized = deq(**encoded).logits
        out["memory_footprint_bf16"] = model.get_memory_footprint()
        out["bf16_vs_transformers_dequantized"] = fp8.compare_logits(ref, dequantized)
        out["cookbook_weight_only_vs_transformers_dequantized"] = fp8.compare_logits(weight_only, dequantized)
        out["bf16_vs_cookbook_w8a8"] = fp8.compare_logits(ref, w8a8)
        return out

    def tensor_core_gemm() -> dict[str, Any]:
        """One FP8 linear on the GPU's FP8 tensor cores (torch._scaled_mm), W8A8 with 1x128 activation groups
        and 128x128 weight blocks (one rowwise-scaled GEMM per 128-wide K slice), against the cookbook's
        float32 simulation of the same arithmetic."""
        weight = state["model"].model.language_model.layers[0].mlp.up_proj.weight.detach()  # (N, K) bf16
        torch.manual_seed(0)
        x = torch.randn(64, weight.shape[1], device=weight.device, dtype=torch.bfloat16)
        q_w, s_w = fp8.quantize(weight)                        # (N, K) e4m3, (N/128, K/128) scale_inv
        groups = x.float().reshape(x.shape[0], -1, 128)
        s_x = (groups.abs().amax(-1) / fp8.FP8_MAX).clamp(min=1e-12)             # (M, K/128)
        q_x = (groups / s_x[..., None]).clamp(-fp8.FP8_MAX, fp8.FP8_MAX).to(torch.float8_e4m3fn).reshape(x.shape)
        real = torch.zeros(x.shape[0], weight.shape[0], device=x.device, dtype=torch.float32)
        for kb in range(weight.shape[1] // 128):
            cols = slice(kb * 128, (kb + 1) * 128)
            scale_b = s_w[:, kb].repeat_interleave(128)[: weight.shape[0]].float()[None, :].contiguous()
            real += torch._scaled_mm(q_x[:, cols].contiguous(), q_w[:, cols].contiguous().t(),
                                     scale_a=s_x[:, kb : kb + 1].contiguous(), scale_b=scale_b,
                                     out_dtype=torch.bfloat16).float()
        simulated = (q_x.float().reshape(groups.shape) * s_x[..., None]).reshape(x.shape) @ fp8.dequantize(q_w, s_w).t()
        exact = x.float() @ weight.float().t()
        rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
        return {"shape": [x.shape[0], weight.shape[1], weight.shape[0]],
                "tensor_cores_vs_cookbook_simulation_rel_error": rel(real, simulated),
                "tensor_cores_vs_bf16_rel_error": rel(real, exact),
                "simulation_vs_bf16_rel_error": rel(simulated, exact)}

    _step(steps, "load_bf16_device_map_auto", load)
    if "model" in state:
        _step(steps, "chat_single", single)
        _step(steps, "chat_batched", batched)
        _step(steps, "stream", streamed)
        _step(steps, "write_fp8_checkpoint", write_fp8)
        cc = torch.cuda.get_device_capability(0)
        if cc >= (8, 9) and steps.get("write_fp8_checkpoint", {}).get("ok"):
            _step(steps, "load_fp8_with_transformers", load_fp8)
            _step(steps, "fp8_tensor_core_gemm", tensor_core_gemm)
        else:
            steps["load_fp8_with_transformers"] = {"ok": True, "skipped": f"compute capability {cc[0]}.{cc[1]} < 8.9: "
                                                   "no FP8 tensor cores (transformers would dequantize)"}
    return steps


def main(argv: list[str] | None = None) -> int:
    """Run the GPU check and write ``gpu_check.json`` to ``--out``; 0 without CUDA, 1 if a check failed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="gpu-check", help="folder for gpu_check.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch
    import transformers

    result: dict[str, Any] = {"torch": torch.__version__, "transformers": transformers.__version__,
                              "python": sys.version.split()[0], "cuda": torch.cuda.is_available()}
    if not result["cuda"]:
        result["reason"] = "no CUDA GPU on this machine (torch.cuda.is_available() is False): nothing to check"
        result["ok"] = True
        print(f"gpu-check: {result['reason']}.")
    else:
        result["gpu"] = torch.cuda.get_device_name(0)
        result["capability"] = list(torch.cuda.get_device_capability(0))
        result["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 2)
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
            result["steps"] = run_checks(Path(work))
        result["ok"] = all(s.get("ok") for s in result["steps"].values())
        for name, step in result["steps"].items():
            print(f"{'ok' if step.get('ok') else 'FAILED':>6}  {name}: "
                  + (step.get("error") or step.get("skipped") or ""))
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"gpu-check: wrote {out / 'gpu_check.json'}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
