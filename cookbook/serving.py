"""Serving Qwen3-VL: vLLM inputs, `vllm serve` plans derived from the hardware, and a local server
that always stops (04_vllm_serving).

Three parts:

- ``vllm_inputs(messages, processor)``: the seed's ``prepare_inputs_for_vllm`` with its bugs fixed
  (video metadata, OpenAI-style items, qwen-vl-utils 0.0.14's frame-list resize).
- ``vllm_plan(hw, model)``: tensor parallel size, memory utilisation, context length, images per
  prompt, encoder mode, reasoning parser, expert parallelism, FP8 only where the GPU has it; as a
  ``vllm serve`` command and as ``vllm.LLM(**kwargs)``, with the reason for every flag.
- ``start(model)``: ``transformers serve`` (or ``vllm serve``) on 127.0.0.1 with a free port, waited
  for until healthy, logs to a file, and a context manager that kills its process group.

``python -m cookbook.serving`` is what ``make serve`` runs: vLLM when it is installed and a CUDA GPU
is present, otherwise ``transformers serve``.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cookbook.models import Checkpoint, checkpoint

if TYPE_CHECKING:
    from cookbook.client import Client
    from cookbook.hardware import Hardware

LOOPBACK = ("127.0.0.1", "localhost", "::1")

# ---------------------------------------------------------------------------------------------
# 1. vLLM inputs (the seed's prepare_inputs_for_vllm, fixed)
# ---------------------------------------------------------------------------------------------


def _openai_part_to_qwen(part: dict) -> dict:
    """One OpenAI-style content part as the Qwen form qwen-vl-utils and the chat template read."""
    kind = part.get("type")
    if kind in ("image_url", "video_url"):
        target = "image" if kind == "image_url" else "video"
        value = part[kind]
        url = value.get("url") if isinstance(value, dict) else value
        extra = {k: v for k, v in part.items() if k not in ("type", kind)}
        return {"type": target, target: url, **extra}
    if kind == "image" and "image" not in part and "url" in part:  # transformers' {"type","url"}
        extra = {k: v for k, v in part.items() if k not in ("type", "url")}
        return {"type": "image", "image": part["url"], **extra}
    if kind == "video" and "video" not in part and "url" in part:
        extra = {k: v for k, v in part.items() if k not in ("type", "url")}
        return {"type": "video", "video": part["url"], **extra}
    return part


def normalize_messages(messages: list[dict]) -> list[dict]:
    """Copy of ``messages`` with OpenAI ``image_url``/``video_url`` parts turned into Qwen parts.

    qwen-vl-utils 0.0.14 crashes on ``{"type": "image_url", "image_url": {"url": ...}}`` (it calls
    ``.startswith`` on the dict) and silently drops ``video_url`` parts (04_vllm_serving).
    """
    out = []
    for message in messages:
        message = dict(message)
        if isinstance(message.get("content"), list):
            message["content"] = [_openai_part_to_qwen(p) for p in message["content"]]
        out.append(message)
    return out


def qwen_vl_utils_reads_video() -> bool:
    """True when one of qwen-vl-utils 0.0.14's video readers works here: torchcodec, decord, or
    ``torchvision.io.read_video`` (removed from recent torchvision releases)."""
    import importlib.util

    if importlib.util.find_spec("torchcodec") or importlib.util.find_spec("decord"):
        return True
    import torchvision.io

    return hasattr(torchvision.io, "read_video")


def _resize_video(video: Any, part: dict, factor: int) -> Any:
    """Resize a (T, C, H, W) video the way qwen-vl-utils does (per-frame and total pixel budgets),
    with sides that are multiples of ``factor`` (32 for Qwen3-VL)."""
    from qwen_vl_utils import vision_process as vp
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    from cookbook.memory import smart_resize

    frames, _, height, width = video.shape
    min_pixels = part.get("min_pixels", vp.VIDEO_MIN_TOKEN_NUM * factor * factor)
    total_pixels = part.get("total_pixels", vp.MODEL_SEQ_LEN * factor * factor * 0.9)
    max_pixels = max(min(vp.VIDEO_MAX_TOKEN_NUM * factor * factor, total_pixels / frames * vp.FRAME_FACTOR),
                     int(min_pixels * 1.05))
    max_pixels = min(part.get("max_pixels", max_pixels), max_pixels)
    if "resized_height" in part and "resized_width" in part:  # qwen-vl-utils' image bounds: 4 to 16384 tokens
        height, width = part["resized_height"], part["resized_width"]
        min_pixels, max_pixels = vp.IMAGE_MIN_TOKEN_NUM * factor**2, vp.IMAGE_MAX_TOKEN_NUM * factor**2
    h, w = smart_resize(height, width, factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return F.resize(video, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True).float()


def _frame_list_video(part: dict, factor: int) -> tuple[Any, dict]:
    """A list of frames (PIL images or paths) as ``(frames, metadata)``: sides multiples of
    ``factor``, aspect ratio kept, timestamps at ``sample_fps`` frames per second (default 2).

    Replaces qwen-vl-utils 0.0.14's frame-list branch, which first resizes every frame to multiples
    of 64 (it passes the merge factor where the patch size belongs) and so distorts the picture.
    """
    import numpy as np
    import torch
    from PIL import Image
    from qwen_vl_utils import vision_process as vp

    from cookbook.messages import load_image

    # PIL frames through qwen-vl-utils' to_rgb (alpha over white); paths, URLs, arrays via load_image
    frames = [vp.to_rgb(src) if isinstance(src, Image.Image) else load_image(src) for src in part["video"]]
    if len(frames) % vp.FRAME_FACTOR:  # temporal patch 2: pad with the last frame, as upstream does
        frames.append(frames[-1])
    video = torch.stack([torch.from_numpy(np.asarray(f).copy()).permute(2, 0, 1) for f in frames])
    metadata = {"fps": float(part.get("sample_fps", vp.FPS)), "frames_indices": list(range(len(frames))),
                "total_num_frames": len(frames), "video_backend": "frames"}
    return _resize_video(video, part, factor), metadata


def _file_video(part: dict, factor: int) -> tuple[Any, dict]:
    """A video file read with PyAV and sampled like qwen-vl-utils (``fps``, default 2; 4 to 768
    frames; ``video_start``/``video_end``), with the original fps and frame indices as metadata."""
    import torch

    from cookbook.video import load

    options = {k: v for k, v in part.items() if k not in ("type", "video")}
    frames, metadata = load(part["video"], **options)
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    return _resize_video(video, part, factor), metadata


def vllm_inputs(messages: list[dict], processor: Any, image_patch_size: int | None = None) -> dict:
    """One prompt for ``vllm.LLM.generate``: text with vision placeholders, ``multi_modal_data`` and
    ``mm_processor_kwargs`` (04_vllm_serving). The seed's ``prepare_inputs_for_vllm``, fixed.

    Images come back as PIL images with sides that are multiples of 32; videos as
    ``(frames, metadata)`` pairs with the fps and frame indices Qwen3-VL's timestamps need.
    """
    from qwen_vl_utils import process_vision_info

    messages = normalize_messages(messages)
    patch = image_patch_size or getattr(getattr(processor, "image_processor", None), "patch_size", None) or 16
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    # Videos are read here (qwen-vl-utils 0.0.14 distorts frame lists and needs torchcodec, decord or
    # an old torchvision for files); it handles the images.
    pairs: list[tuple[Any, dict]] = []
    kept = []
    for m in messages:
        content = m.get("content")
        if not isinstance(content, list):
            kept.append(m)
            continue
        parts = []
        for part in content:
            if isinstance(part, dict) and "video" in part:
                if isinstance(part["video"], (list, tuple)):
                    pairs.append(_frame_list_video(part, factor=patch * 2))
                else:  # files and URLs: decoded with PyAV, no torchcodec/decord/FFmpeg needed
                    pairs.append(_file_video(part, factor=patch * 2))
            else:
                parts.append(part)
        kept.append({**m, "content": parts})
    images, _, _ = process_vision_info(
        kept,
        image_patch_size=patch,  # 16 for Qwen3-VL (14 is the default, for Qwen2.5-VL)
        return_video_kwargs=True,
        return_video_metadata=True,  # for videos: Qwen3-VL needs fps + frame indices for its stamps
    )

    mm_data: dict[str, list] = {}
    if images is not None:
        mm_data["image"] = images
    if pairs:
        mm_data["video"] = pairs  # (frames, metadata) pairs, as vLLM expects for Qwen3-VL
    out: dict[str, Any] = {"prompt": text, "multi_modal_data": mm_data}
    if pairs:
        # frames were sampled here; vLLM must not sample them again
        out["mm_processor_kwargs"] = {"do_sample_frames": False}
    return out


# ---------------------------------------------------------------------------------------------
# 2. vllm serve / vllm.LLM plans from a hardware description
# ---------------------------------------------------------------------------------------------

NATIVE_CONTEXT = 262144  # config max_position_embeddings: 256K
NICE_LENGTHS = (8192, 16384, 32768, 65536, 131072, 262144)
def _checkpoint(model: str) -> Checkpoint:
    """The line-up entry for ``model`` (hub id or folder name), or a ValueError naming the form."""
    ck = checkpoint(model)
    if ck is None:
        raise ValueError(
            f"{model!r} is not a Qwen3-VL checkpoint name (Qwen/Qwen3-VL-<size>-<Instruct|Thinking>[-FP8]). "
            "Pass one of the line-up, e.g. Qwen/Qwen3-VL-8B-Instruct."
        )
    return ck


class NoGPUError(RuntimeError):
    """vLLM was asked for on a machine without a CUDA GPU."""


class DoesNotFitError(RuntimeError):
    """The checkpoint does not fit the GPUs at any tensor parallel size."""


@dataclass(frozen=True)
class Flag:
    """One ``vllm serve`` option with the reason it is there."""

    name: str
    value: str | None
    why: str

    def argv(self) -> list[str]:
        """The flag as command-line words: ``[name]`` or ``[name, value]``."""
        return [self.name] if self.value is None else [self.name, self.value]


@dataclass(frozen=True)
class VllmPlan:
    """A ``vllm serve`` command and the matching ``vllm.LLM`` keyword arguments, each flag explained."""

    model: str
    requested: str
    tensor_parallel_size: int
    data_parallel_size: int
    gpu_memory_utilization: float
    max_model_len: int
    limit_mm_per_prompt: dict[str, int]
    flags: tuple[Flag, ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    kv_cache_tokens: int = 0
    weights_gb_per_gpu: float = 0.0
    moe: bool = False
    thinking: bool = False

    def command(self, host: str = "127.0.0.1", port: int = 8000) -> list[str]:
        """``vllm serve`` argv (pass to subprocess; no shell quoting needed)."""
        argv = ["vllm", "serve", self.model]
        for f in self.flags:
            argv += f.argv()
        return argv + ["--host", host, "--port", str(port)]

    def shell(self, host: str = "127.0.0.1", port: int = 8000) -> str:
        """The command as you would type it, one flag per line."""
        argv = self.command(host, port)
        lines = [" ".join(shlex.quote(a) for a in argv[:3])]
        i = 3
        while i < len(argv):
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                lines.append(f"  {argv[i]} {shlex.quote(argv[i + 1])}")
                i += 2
            else:
                lines.append(f"  {argv[i]}")
                i += 1
        return " \\\n".join(lines)

    def llm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for offline ``vllm.LLM(**kwargs)`` derived the same way."""
        kw: dict[str, Any] = {
            "model": self.model,
            "tensor_parallel_size": self.tensor_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_model_len": self.max_model_len,
            "limit_mm_per_prompt": dict(self.limit_mm_per_prompt),
            "seed": 0,
        }
        if self.tensor_parallel_size > 1:
            kw["mm_encoder_tp_mode"] = "data"
            if self.moe:
                kw["enable_expert_parallel"] = True
        overrides = next((f.value for f in self.flags if f.name == "--hf-overrides"), None)
        if overrides:
            kw["hf_overrides"] = json.loads(overrides)
        return kw

    def explain(self) -> str:
        """A table: flag, value, why."""
        rows = [f"{'flag':<28} {'value':<26} why", "-" * 100]
        for f in self.flags:
            rows.append(f"{f.name:<28} {(f.value or ''):<26} {f.why}")
        rows += [f"note: {n}" for n in self.notes]
        rows += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.shell() + "\n\n" + self.explain()

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def vllm_plan(
    hw: Hardware,
    model: str,
    *,
    images: int = 4,
    videos: int = 1,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    min_sequences: int = 2,
    served_name: str | None = None,
) -> VllmPlan:
    """Derive ``vllm serve`` flags for ``model`` on ``hw``, each with its reason (04_vllm_serving).

    Tensor parallel: the smallest split (MoE: the widest, with expert parallelism) that leaves room for
    ``min_sequences`` sequences of 8192+ tokens. Raises ``NoGPUError`` or ``DoesNotFitError``.
    """
    if not hw.cuda:
        raise NoGPUError(
            "vLLM needs a CUDA GPU and this machine has none "
            f"(device: {hw.device}). Serve with `transformers serve` instead: "
            "cb.serving.start(model) or `make serve`, which falls back to it automatically."
        )
    from cookbook import memory

    ck = _checkpoint(model)
    size, variant, fp8 = ck.size, ck.variant, ck.fp8
    arch = memory.shape(size)  # layers, heads, KV heads, experts: from the checkpoints' config.json
    warnings: list[str] = []
    notes: list[str] = []
    served = model
    if fp8 and not hw.fp8:
        low = min(hw.gpus, key=lambda g: g.capability)
        served = re.sub(r"-FP8$", "", model, flags=re.I)
        fp8 = False
        warnings.append(
            f"{model} is an FP8 checkpoint but {low.name} has compute capability "
            f"{low.capability[0]}.{low.capability[1]} (< 8.9, no FP8 tensor cores; vLLM fails with "
            f"'fp8e4nv not supported' or falls back to slower weight-only kernels). Serving the BF16 "
            f"checkpoint {served} instead; AWQ/GPTQ checkpoints are the other way to save memory."
        )
    n = len(hw.gpus)
    per_gpu = min(g.memory_gb for g in hw.gpus)
    weights_gb = memory.weight_bytes(size, "fp8" if fp8 else "bf16") / 1e9
    vision_gb = memory.parameters(size).vision * 2 / 1e9  # the vision tower stays 16-bit
    overhead_gb = 1.5  # activations, CUDA graphs, sampler: a rough allowance (estimate)

    splits = [t for t in range(1, n + 1) if n % t == 0 and arch.heads % t == 0]
    if arch.moe:
        splits = splits[::-1]  # widest first: experts spread over every GPU
    fits = []
    need = min_sequences * (max_model_len or NICE_LENGTHS[0])  # KV-cache tokens a replica must hold
    for tp in splits:
        extra_vision = vision_gb * (1 - 1 / tp) if tp > 1 else 0.0  # --mm-encoder-tp-mode data copies it
        free = per_gpu * gpu_memory_utilization - weights_gb / tp - extra_vision - overhead_gb
        # the KV heads one GPU holds (vLLM replicates them when tp > kv_heads), 16-bit cache
        per_tok = memory.kv_cache_bytes(replace(arch, kv_heads=max(1, arch.kv_heads // tp)), tokens=1)
        tokens = int(free * 1e9 / per_tok) if free > 0 else 0
        if tokens >= need:
            fits.append((tp, tokens, weights_gb / tp))
    chosen = fits[0] if fits else None
    if chosen is None:
        hint = "the FP8 checkpoint (this GPU has FP8)" if hw.fp8 and not fp8 else "a smaller checkpoint"
        raise DoesNotFitError(
            f"{served} needs about {weights_gb:.0f} GB of weights; {n} x {per_gpu:.0f} GB at "
            f"gpu_memory_utilization={gpu_memory_utilization} leaves no room for a KV cache of {need} "
            f"tokens ({min_sequences} x {need // min_sequences}) at any tensor parallel size. Use {hint}, "
            "more GPUs, or cb.recommend_model(hw); or accept less: max_model_len=4096, min_sequences=1."
        )
    tp, kv_tokens, w_per_gpu = chosen
    dp = 1 if arch.moe else n // tp

    if max_model_len is None:
        fitting = [L for L in NICE_LENGTHS if L * min_sequences <= kv_tokens]
        length = fitting[-1]
    else:
        length = max_model_len
        if length > kv_tokens:
            warnings.append(
                f"max_model_len={length} is more than the KV cache holds (~{kv_tokens} tokens per "
                "replica): vLLM will refuse to start. Lower it or add GPUs."
            )

    limit = {"image": images, "video": videos}
    flags = [
        Flag("--tensor-parallel-size", str(tp),
             f"{served} is ~{weights_gb:.0f} GB of weights; {tp} GPU(s) hold ~{w_per_gpu:.1f} GB each "
             f"and leave room for the KV cache (a divisor of {n} GPUs and of {arch.heads} heads; "
             "the seed's hard-coded 2 fails on one GPU)."),
    ]
    if dp > 1:
        flags.append(Flag("--data-parallel-size", str(dp),
                          f"{n} GPUs / {tp} per copy = {dp} independent replicas behind one endpoint: "
                          "more throughput than splitting a model that already fits."))
    flags += [
        Flag("--gpu-memory-utilization", f"{gpu_memory_utilization:g}",
             "fraction of each GPU vLLM may take (weights + KV cache); lower it if the GPU is shared "
             "or the data-parallel vision encoder runs out of memory."),
        Flag("--max-model-len", str(length),
             (f"the KV cache fits ~{kv_tokens} tokens per replica; {length} lets {min_sequences} "
              f"full-length requests run at once (the default, {NATIVE_CONTEXT} = 256K, may not start). "
              "One image can cost up to 16384 tokens at the checkpoint's default budget: keep images "
              "near 1024x1024 (~1024 tokens).")
             if max_model_len is None else "set by you."),
        Flag("--limit-mm-per-prompt", json.dumps(limit),
             "images and videos one request may carry (JSON form of current vLLM); vLLM reserves "
             "memory for this many at startup, so 0 videos frees memory for image-only servers."),
    ]
    if tp > 1:
        flags.append(Flag("--mm-encoder-tp-mode", "data",
                          "the vision encoder is small: run a full copy per GPU (data parallel) "
                          "instead of splitting it; less communication (vLLM Qwen3-VL recipe)."))
    if arch.moe and tp * dp > 1:
        flags.append(Flag("--enable-expert-parallel", None,
                          f"{size} is a mixture of experts: place whole experts on GPUs instead of "
                          "slicing each one (Qwen3-VL README's 235B command); FP8 experts cannot be "
                          "sliced into pieces narrower than their 128-wide scale blocks."))
    if variant == "Thinking":
        flags.append(Flag("--reasoning-parser", "deepseek_r1",
                          "the Thinking chat template opens <think> in the prompt, so the output has "
                          "only </think>; this parser splits reasoning from the answer without the "
                          "opening tag (vLLM's qwen3 parser does too only in releases after PR #34779)."))
    if hw.fp8 and not fp8 and length < 32768:
        notes.append(f"these GPUs have FP8: {served}-FP8 halves the weights and leaves a longer context.")
    if fp8:
        notes.append(f"{served} runs its FP8 weights natively: every GPU has compute capability >= 8.9. "
                     "vLLM reads the checkpoint's quantization_config; no --quantization flag is needed.")
    if served_name:
        flags.append(Flag("--served-model-name", served_name,
                          "the name clients send as `model` (workshop: one short name for the room)."))
    if length > NATIVE_CONTEXT:
        factor = min(3.0, float(math.ceil(length / NATIVE_CONTEXT)))
        if length > factor * NATIVE_CONTEXT:
            warnings.append(f"max_model_len={length} needs a YaRN factor above 3; the Qwen3-VL README "
                            "advises 2-3 (about 1M tokens at most).")
        flags.append(Flag("--hf-overrides", json.dumps(yarn_overrides(factor)),
                          "YaRN beyond 256K (the Qwen3-VL README: factor 2-3, not 4); vLLM also needs "
                          "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 in the environment."))
    return VllmPlan(
        model=served, requested=model, tensor_parallel_size=tp, data_parallel_size=dp,
        gpu_memory_utilization=gpu_memory_utilization, max_model_len=length, limit_mm_per_prompt=limit,
        flags=tuple(flags), warnings=tuple(warnings), notes=tuple(notes), kv_cache_tokens=kv_tokens,
        weights_gb_per_gpu=w_per_gpu, moe=arch.moe, thinking=variant == "Thinking",
    )


def yarn_overrides(factor: float) -> dict[str, Any]:
    """The config override that stretches Qwen3-VL's 256K context with YaRN (``--hf-overrides``)."""
    return {"text_config": {"rope_parameters": {
        "rope_type": "yarn", "factor": factor, "original_max_position_embeddings": NATIVE_CONTEXT,
        "rope_theta": 5_000_000, "mrope_section": [24, 20, 20], "mrope_interleaved": True}}}


def choose_backend(hw: Hardware, model: str | None = None) -> tuple[str, str]:
    """``("vllm" | "transformers", reason)``: vLLM when it is installed, a CUDA GPU is present and
    ``model`` (if given) is a Qwen3-VL checkpoint name; otherwise ``transformers serve``."""
    if not hw.cuda:
        return "transformers", f"no CUDA GPU (device: {hw.device}); vLLM needs one"
    if not hw.vllm:
        return "transformers", "vLLM is not installed (pip install -e '.[gpu]')"
    if model is not None and checkpoint(str(model)) is None:
        return "transformers", f"{model} is not a Qwen3-VL line-up checkpoint (the tiny model, a local folder)"
    return "vllm", f"vLLM is installed and {len(hw.gpus)} CUDA GPU(s) are present"


def transformers_command(model: str, host: str = "127.0.0.1", port: int = 8000,
                         extra: tuple[str, ...] = ()) -> list[str]:
    """``transformers serve`` argv that preloads ``model`` (a hub id or a local folder)."""
    exe = Path(sys.executable).with_name("transformers")
    head = [str(exe)] if exe.exists() else ["transformers"]
    return [*head, "serve", "--host", host, "--port", str(port), *extra, str(model)]


def _launch_spec(kind: str, model: str, host: str, port: int, plan: VllmPlan | None,
                 extra: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and the model name clients send, for ``start`` and ``make serve``."""
    from cookbook.hardware import hf_cache_dir

    env = dict(os.environ, HF_HUB_DISABLE_UPDATE_CHECK="1")
    if Path(model).is_dir():
        env["HF_HUB_OFFLINE"] = "1"  # a local folder: never ask the hub
    if kind == "transformers":
        # transformers serve scans the hub cache for /v1/models and fails with CacheNotFound when
        # the folder does not exist yet (fresh machines, CI).
        hf_cache_dir().mkdir(parents=True, exist_ok=True)
        return transformers_command(model, host, port, extra), env, model
    if any(f.name == "--hf-overrides" for f in plan.flags):
        env["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"  # YaRN: a context beyond the config's 256K
    served = next((f.value for f in plan.flags if f.name == "--served-model-name" and f.value), plan.model)
    return plan.command(host, port) + list(extra), env, served


# ---------------------------------------------------------------------------------------------
# 3. A local server that always stops
# ---------------------------------------------------------------------------------------------


def _check_loopback(host: str) -> None:
    if host in LOOPBACK:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(
        f"host={host!r}: cb.serving starts servers on loopback only (127.0.0.1). To serve a room, "
        "run the printed command yourself with --host 0.0.0.0 behind your network's firewall."
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: SIGTERM the server when the Python process that started it dies, even by SIGKILL
    (a crashed notebook kernel), where atexit handlers never run."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerError(RuntimeError):
    """A server did not start or died; the message ends with the tail of its log."""


_LIVE: dict[int, Server] = {}


def _stop_all() -> None:
    for server in list(_LIVE.values()):
        server.stop()


atexit.register(_stop_all)


@dataclass
class Server:
    """A running OpenAI-compatible server on loopback. Use it as a context manager, or call stop()."""

    kind: str
    model: str
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path
    argv: list[str]
    started_s: float = 0.0
    _log_file: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client needs: ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    @property
    def running(self) -> bool:
        """True while the server process has not exited."""
        return self.process.poll() is None

    def env(self) -> dict[str, str]:
        """The environment variables a client (or a learner in workshop mode) sets to use this server."""
        return {"COOKBOOK_BASE_URL": self.base_url, "COOKBOOK_API_KEY": "EMPTY",
                "COOKBOOK_SERVED_MODEL": self.model}

    def client(self, **kw: Any) -> Client:
        """A ``cookbook.client.Client`` for this server (04_vllm_serving)."""
        from cookbook.client import Client

        kw.setdefault("server", self.kind)
        kw.setdefault("log_tail", lambda: self.logs(15))
        return Client(base_url=self.base_url, api_key="EMPTY", model=self.model, **kw)

    def logs(self, tail: int = 40) -> str:
        """The last ``tail`` lines of the server's log."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-tail:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate the server's whole process group (SIGTERM, then SIGKILL). Safe to call twice."""
        _LIVE.pop(id(self), None)
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()
        return self.process.poll()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __str__(self) -> str:
        state = "running" if self.running else f"stopped (exit {self.process.poll()})"
        return (f"{self.kind} serve on {self.base_url}  [{state}]\n  model: {self.model}\n"
                f"  log: {self.log_path}\n  command: {' '.join(shlex.quote(a) for a in self.argv)}")

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def _get(url: str, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def wait_healthy(server: Server, timeout: float = 180.0, interval: float = 0.5) -> float:
    """Poll ``/health`` until it answers 200; raise ``ServerError`` with the log tail if the process
    dies or ``timeout`` seconds pass. Returns the seconds waited."""
    t0 = time.monotonic()
    while True:
        if not server.running:
            raise ServerError(
                f"{server.kind} serve exited with code {server.process.returncode} before it was "
                f"healthy.\n--- last lines of {server.log_path} ---\n{server.logs()}"
            )
        try:
            status, _ = _get(server.url + "/health", timeout=2.0)
            if status == 200:
                return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() - t0 > timeout:
            server.stop()
            raise ServerError(
                f"{server.kind} serve was not healthy after {timeout:.0f} s (stopped it).\n"
                f"--- last lines of {server.log_path} ---\n{server.logs()}"
            )
        time.sleep(interval)


def start(
    model: str | os.PathLike,
    *,
    kind: str = "transformers",
    hw: Hardware | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 180.0,
    log_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    extra: tuple[str, ...] = (),
    plan: VllmPlan | None = None,
) -> Server:
    """Start ``transformers serve`` (or ``vllm serve``: ``kind="vllm"``/``"auto"``) for ``model`` on
    loopback, wait until ``/health`` answers, and return a ``Server`` (04_vllm_serving).

    ``with cb.serving.start(path) as server:`` stops it even when the body raises; servers left
    running are stopped when Python exits, and on Linux when the starting thread dies (call this
    from the main thread, as notebooks and scripts do).
    """
    from cookbook.hardware import hardware

    _check_loopback(host)
    model = str(model)
    if kind == "auto":
        kind, _ = choose_backend(hw or hardware(), model)
    if kind not in ("transformers", "vllm"):
        raise ValueError(f"kind={kind!r}: use 'transformers', 'vllm' or 'auto'.")
    port = port or free_port(host)
    if kind == "vllm" and plan is None:
        plan = vllm_plan(hw or hardware(), model)
    argv, env, served = _launch_spec(kind, model, host, port, plan, extra)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    logs = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "cookbook-servers"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{kind}-{port}.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed by Server.stop
    log_file.write("$ " + " ".join(shlex.quote(a) for a in argv) + "\n")
    log_file.flush()
    process = subprocess.Popen(
        argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, start_new_session=True,  # its own process group: stop() kills workers too
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    server = Server(kind=kind, model=served, host=host, port=port, process=process,
                    log_path=log_path, argv=argv, _log_file=log_file)
    _LIVE[id(server)] = server
    try:
        server.started_s = wait_healthy(server, timeout=timeout)
    except BaseException:
        server.stop()
        raise
    return server


def running_servers() -> list[Server]:
    """Servers this Python process started and has not stopped yet."""
    return list(_LIVE.values())


# ---------------------------------------------------------------------------------------------
# make serve
# ---------------------------------------------------------------------------------------------


def resolve_model(name: str | None = None) -> str:
    """A model argument a server can load: the tiny checkpoint's folder in tiny mode, else the id."""
    from cookbook.settings import settings, tiny_flavour

    name = name or settings().model
    flavour = tiny_flavour(name)
    if flavour:
        from cookbook import tiny

        return str(tiny.build(flavour))
    return name


def main(argv: list[str] | None = None) -> int:
    """``python -m cookbook.serving``: vLLM when installed with a CUDA GPU, else transformers serve."""
    import argparse

    from cookbook.hardware import hardware

    p = argparse.ArgumentParser(prog="python -m cookbook.serving", description=main.__doc__)
    p.add_argument("--model", default=None, help="hub id or folder (default: COOKBOOK_MODEL's pick)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("COOKBOOK_PORT", "8000")))
    p.add_argument("--backend", choices=("auto", "vllm", "transformers"), default="auto")
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--dry-run", action="store_true", help="print the command and exit")
    args = p.parse_args(argv)

    hw = hardware()
    model = resolve_model(args.model)
    backend, reason = choose_backend(hw, model) if args.backend == "auto" else (args.backend, "chosen with --backend")
    plan = vllm_plan(hw, model, served_name=args.served_model_name) if backend == "vllm" else None
    if plan is not None:
        print(plan.explain())
    cmd, env, served = _launch_spec(backend, model, args.host, args.port, plan)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"backend: {backend} ({reason})")
    print("$ " + " ".join(shlex.quote(a) for a in cmd))
    print("\nClients (notebooks, learners) set:\n"
          f"  export COOKBOOK_BASE_URL=http://{host}:{args.port}/v1\n"
          f"  export COOKBOOK_SERVED_MODEL={shlex.quote(served)}\n"
          "  export COOKBOOK_API_KEY=EMPTY", flush=True)
    if args.dry_run:
        return 0
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
