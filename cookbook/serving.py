"""Serving Qwen3-VL (04_vllm_serving): inputs for ``vllm.LLM``, a ``vllm serve`` plan derived from the
hardware, and local OpenAI-compatible servers that always stop.

Every flag the plan emits exists in vLLM 0.33 (``vllm/engine/arg_utils.py``); each carries its reason.
``python -m cookbook.serving`` is what ``make serve`` runs: vLLM with the plan when vLLM and a CUDA GPU are
present, otherwise ``transformers serve``.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cookbook.kit.hardware import Hardware
from cookbook.lineup import Checkpoint, Fit, checkpoint, fit, gpu_gib, recommend_model
from cookbook.kit.show import Pretty

LOOPBACK = ("127.0.0.1", "localhost", "::1")
NATIVE_CONTEXT = 262144  # config max_position_embeddings: 256K
LENGTHS = (8192, 16384, 32768, 65536, 131072, 262144)
TEXT_RESERVE = 2048  # tokens of each request kept for the question and the answer, not for pixels
MAX_IMAGE_TOKENS = 16384  # the checkpoints' own image budget (preprocessor_config.json)


# ---------------------------------------------------------------------------------------------
# 1. Inputs for vllm.LLM (the seed's prepare_inputs_for_vllm, fixed)
# ---------------------------------------------------------------------------------------------


def vllm_inputs(messages: list[dict], processor: Any) -> dict[str, Any]:
    """One prompt for ``vllm.LLM.generate`` from cookbook messages: the chat text, the images, and each video as
    ``(frames, metadata)`` with the fps and frame indices Qwen3-VL's timestamps need (04_vllm_serving)."""
    import numpy as np

    from cookbook.kit.messages import load_image
    from cookbook.video import read_video

    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images, videos = [], []
    for message in messages:
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part["type"] == "image":
                images.append(load_image(part["image"]))
            elif part["type"] == "video" and isinstance(part["video"], list):  # frames taken at part["fps"]
                frames = np.stack([np.asarray(f.convert("RGB")) for f in part["video"]])
                n = len(frames)
                videos.append((frames, {"fps": part["fps"], "frames_indices": list(range(n)), "total_num_frames": n}))
            elif part["type"] == "video":  # a file: sampled here (2 fps), real frame indices and fps kept
                videos.append(read_video(part["video"], fps=part.get("fps", 2.0)))
    data = {"image": images, "video": videos}
    return {"prompt": text, "multi_modal_data": {k: v for k, v in data.items() if v},
            "mm_processor_kwargs": {"do_sample_frames": False} if videos else {}}  # sampled already


# ---------------------------------------------------------------------------------------------
# 2. A vllm serve plan from a hardware description
# ---------------------------------------------------------------------------------------------


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


def pixel_budget(max_model_len: int, images: int, videos: int) -> int:
    """Pixels per image (and per whole video) so that ``images`` + ``videos`` fit ``max_model_len`` beside
    ``TEXT_RESERVE`` text tokens: one token per 32x32 pixels, a video's two frames share a token (04)."""
    items = images + videos / 2
    tokens = min(MAX_IMAGE_TOKENS, int((max_model_len - TEXT_RESERVE) / items)) if items else MAX_IMAGE_TOKENS
    return max(4, tokens) * 32 * 32


def plan_numbers(ck: Checkpoint, hw: Hardware, max_model_len: int | None = None, kv_dtype: str = "auto",
                 utilization: float = 0.9) -> tuple[Fit, int]:
    """The split and the context length of a plan: ``lineup.fit`` (the rule ``recommend_model`` uses), then the
    longest of 8K..256K that two full-length requests fill, unless you set one (04_vllm_serving)."""
    f = fit(ck, hw, utilization=utilization, kv_dtype=kv_dtype)
    if f is None:
        raise DoesNotFitError(
            f"{ck.id} ({ck.weights_gib:.1f} GiB of weights) leaves no room for a KV cache of two 8K-token "
            f"requests on {len(hw.gpus)} x {gpu_gib(hw):.1f} GiB at any tensor parallel size. "
            f"This machine serves {recommend_model(hw, ck.variant == 'Thinking').checkpoint.id} (cb.recommend_model).")
    if max_model_len is None:
        max_model_len = max([n for n in LENGTHS if 2 * n <= f.kv_tokens] or [LENGTHS[0]])
    return f, max_model_len


@dataclass(frozen=True)
class VllmPlan(Pretty):
    """A ``vllm serve`` command and the matching ``vllm.LLM`` arguments for one machine, each flag explained."""

    model: str
    fit: Fit
    max_model_len: int
    limit_mm_per_prompt: dict[str, int]
    flags: tuple[Flag, ...]
    notes: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # environment variables the server needs (vLLM on CPU: KV cache size)

    def value(self, name: str) -> str | None:
        """The value of flag ``name`` (``"--max-model-len"``), or None when the plan does not set it."""
        return next((f.value for f in self.flags if f.name == name), None)

    def command(self, host: str = "127.0.0.1", port: int = 8000) -> list[str]:
        """``vllm serve`` argv (pass to subprocess; no shell quoting needed)."""
        argv = ["vllm", "serve", self.model]
        for f in self.flags:
            argv += f.argv()
        return argv + ["--host", host, "--port", str(port)]

    def shell(self, host: str = "127.0.0.1", port: int = 8000) -> str:
        """The command as you would type it, one flag per line."""
        lines = [f"vllm serve {self.model}"]
        lines += [" ".join(shlex.quote(w) for w in f.argv()) for f in self.flags]
        lines.append(f"--host {host} --port {port}")
        return " \\\n  ".join(lines)

    def llm_kwargs(self, prompts: list[dict] | None = None) -> dict[str, Any]:
        """Keyword arguments for ``vllm.LLM``; ``limit_mm_per_prompt`` counted from ``prompts`` (``vllm_inputs``
        results), refused with the counts when a prompt carries more than the plan was sized for (04)."""
        limit = dict(self.limit_mm_per_prompt)
        if prompts is not None:
            counts = [{k: len(p["multi_modal_data"].get(k, [])) for k in ("image", "video")} for p in prompts]
            for i, c in enumerate(counts):
                if any(c[k] > self.limit_mm_per_prompt[k] for k in c):
                    raise ValueError(
                        f"prompt {i} carries {c['image']} image(s) and {c['video']} video(s), more than this plan "
                        f"was sized for ({self.limit_mm_per_prompt}); plan again with "
                        f"vllm_plan(hw, model, images={max(x['image'] for x in counts)}, "
                        f"videos={max(x['video'] for x in counts)}).")
            limit = {k: max(c[k] for c in counts) for k in ("image", "video")}
        kw: dict[str, Any] = {"model": self.model, "tensor_parallel_size": self.fit.tensor_parallel}
        if self.value("--gpu-memory-utilization"):  # a GPU plan; on CPU the KV cache is VLLM_CPU_KVCACHE_SPACE
            kw["gpu_memory_utilization"] = float(self.value("--gpu-memory-utilization"))
        kw |= {"max_model_len": self.max_model_len, "limit_mm_per_prompt": limit}
        for flag in ("--mm-processor-kwargs", "--hf-overrides"):
            if self.value(flag):
                kw[flag[2:].replace("-", "_")] = json.loads(self.value(flag))
        for flag in ("--mm-encoder-tp-mode", "--kv-cache-dtype", "--moe-backend", "--dtype",
                     "--distributed-executor-backend"):
            if self.value(flag):
                kw[flag[2:].replace("-", "_")] = self.value(flag)
        for flag in ("--enable-expert-parallel", "--async-scheduling", "--enforce-eager"):
            if any(f.name == flag for f in self.flags):
                kw[flag[2:].replace("-", "_")] = True
        return kw | {"seed": 0}

    def llm_call(self, prompts: list[dict] | None = None) -> str:
        """``LLM(...)`` with every argument written out, as a notebook shows it."""
        args = "".join(f"\n    {k}={v!r}," for k, v in self.llm_kwargs(prompts).items())
        return f"LLM({args}\n)"

    def explain(self) -> str:
        """A table: flag, value, why; then the notes."""
        rows = [f"{f.name:<26} {(f.value or '')[:44]:<44} {f.why}" for f in self.flags]
        head = f"{self.model}: {self.fit}" if self.value("--gpu-memory-utilization") else \
            f"{self.model}: vLLM on CPU, " + " ".join(f"{k}={v}" for k, v in self.env)
        notes = [f"note: {n}" for n in self.notes] if self.value("--gpu-memory-utilization") else \
            ["left out on CPU:", *(f"  {n}" for n in self.notes)]
        return "\n".join([head, *rows, *notes])

    def __str__(self) -> str:
        return self.shell() + "\n\n" + self.explain()


def vllm_plan(hw: Hardware, model: str, *, images: int = 4, videos: int = 1, text_only: bool = False,
              tools: bool = True, kv_cache_dtype: str = "auto", max_model_len: int | None = None,
              gpu_memory_utilization: float = 0.9, served_name: str | None = None) -> VllmPlan:
    """Derive ``vllm serve`` flags for ``model`` on ``hw``, each with its reason (04_vllm_serving).

    Raises ``NoGPUError`` without CUDA, ``DoesNotFitError`` when ``lineup.fit`` finds no split.
    """
    if not hw.cuda:
        raise NoGPUError(f"vLLM needs a CUDA GPU and this machine has none (device: {hw.device}); serve with "
                         "`transformers serve` instead: cb.serving.start(model) or `make serve`.")
    ck = checkpoint(model)
    if ck is None:
        raise ValueError(f"{model!r} is not a Qwen3-VL checkpoint name (Qwen/Qwen3-VL-<size>-<Instruct|Thinking>[-FP8]).")
    f, length = plan_numbers(ck, hw, max_model_len, kv_cache_dtype, gpu_memory_utilization)
    n = len(hw.gpus)
    images, videos = (0, 0) if text_only else (images, videos)
    flags = [Flag("--tensor-parallel-size", str(f.tensor_parallel),
                  f"{ck.weights_gib:.1f} GiB of weights over {f.tensor_parallel} GPU(s) leaves a KV cache of "
                  f"{f.kv_tokens:,} tokens (lineup.fit; the seed's hard-coded 2 fails on one GPU).")]
    if f.replicas > 1:
        flags.append(Flag("--data-parallel-size", str(f.replicas),
                          f"{n} GPUs / {f.tensor_parallel} per copy: {f.replicas} replicas serve more requests "
                          "than splitting a model that already fits."))
    flags += [
        Flag("--gpu-memory-utilization", f"{gpu_memory_utilization:g}", "share of each GPU vLLM takes (weights + KV cache)."),
        Flag("--max-model-len", str(length), "two requests of this length fit the KV cache; the default 262144 "
             "(256K) would not start." if max_model_len is None else "set by you."),
        Flag("--language-model-only", None, "text only: every modality's limit is 0, so nothing is reserved for "
             "the vision encoder's inputs (vLLM's MultiModalConfig; the vLLM recipe's text_only feature).")
        if text_only else
        Flag("--limit-mm-per-prompt", json.dumps({"image": images, "video": videos}),
             "items per request; vLLM reserves memory for this many at start-up."),
    ]
    if not text_only:
        pixels = pixel_budget(length, images, videos)
        flags.append(Flag("--mm-processor-kwargs", json.dumps({"size": {"longest_edge": pixels, "shortest_edge": 4096}}),
                          f"at most {pixels // 1024:,} tokens per image ({pixels // 2048:,} per video): {images} "
                          f"image(s) + {videos} video(s) + {TEXT_RESERVE} text tokens fit {length:,} (vLLM PR #34402)."))
    if videos:
        flags.append(Flag("--media-io-kwargs", json.dumps({"video": {"num_frames": -1}}),
                          "no 32-frame pre-sampling of a video_url: vLLM samples it at the model's 2 fps and keeps the "
                          "real frame indices, so the <t seconds> stamps are right (measured on vLLM 0.32)."))
    if f.tensor_parallel > 1:
        flags.append(Flag("--mm-encoder-tp-mode", "data", "a whole vision encoder per GPU instead of a split one "
                          "(Qwen3-VL README, vLLM recipe): small encoder, less communication."))
        if ck.moe:
            flags.append(Flag("--enable-expert-parallel", None, "whole experts per GPU instead of slices of every "
                              "expert (the Qwen3-VL README's MoE command)."))
    flags.append(Flag("--async-scheduling", None, "schedule the next step while the GPU runs this one (Qwen3-VL README)."))
    if kv_cache_dtype != "auto":
        flags.append(Flag("--kv-cache-dtype", kv_cache_dtype, "one byte per cached value: twice the tokens in the "
                          "same memory (03's kv_cache_bytes with kv_dtype='fp8'), at a small accuracy cost."))
    notes = []
    if ck.fp8 and not hw.fp8:
        notes.append("no FP8 tensor cores (compute capability < 8.9): vLLM runs these FP8 weights weight-only "
                     "(W8A16) with its FP8 Marlin kernels, still half the memory of bf16 "
                     "(vllm/model_executor/kernels/linear/scaled_mm/marlin.py).")
        if ck.moe:
            flags.append(Flag("--moe-backend", "marlin", "FP8 experts on Ampere: Marlin; the default Triton MoE kernel "
                              "fails with 'fp8e4nv not supported' (vLLM issue #18182). That Marlin serves these "
                              "experts rests on vLLM issue #54318, still open: not tested here."))
    elif ck.fp8:
        notes.append("FP8 tensor cores on every GPU: W8A8 with dynamic activation scales, as the checkpoint says.")
    flags += answer_flags(reasoning=ck.variant == "Thinking", tools=tools, served_name=served_name)
    if length > NATIVE_CONTEXT:
        factor = min(3.0, -(-length // NATIVE_CONTEXT))
        flags.append(Flag("--hf-overrides", json.dumps(yarn_overrides(factor)), "YaRN beyond 256K (README: factor "
                          "2-3); --rope-scaling, the README's older form, is gone from vLLM 0.33. Needs "
                          "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1."))
    return VllmPlan(ck.id, f, length, {"image": images, "video": videos}, tuple(flags), tuple(notes))


def answer_flags(*, reasoning: bool, tools: bool, served_name: str | None) -> list[Flag]:
    """The flags that shape answers, the same on GPU and CPU: reasoning parser, tool calls, served name (04)."""
    flags = []
    if reasoning:
        flags.append(Flag("--reasoning-parser", "deepseek_r1", "the template opens <think> in the prompt, so the "
                          "output has only </think>; this parser splits reasoning from the answer."))
    if tools:
        flags += [Flag("--enable-auto-tool-choice", None, "let the model decide when to call a tool (05's agent)."),
                  Flag("--tool-call-parser", "hermes", "Qwen3's <tool_call>{json}</tool_call> format.")]
    if served_name:
        flags.append(Flag("--served-model-name", served_name, "the name clients send as `model`."))
    return flags


def yarn_overrides(factor: float) -> dict[str, Any]:
    """The config override that stretches Qwen3-VL's 256K context with YaRN (``--hf-overrides``)."""
    return {"text_config": {"rope_parameters": {
        "rope_type": "yarn", "factor": factor, "original_max_position_embeddings": NATIVE_CONTEXT,
        "rope_theta": 5_000_000, "mrope_section": [24, 20, 20], "mrope_interleaved": True}}}


CPU_KV_CACHE_GIB = 1  # VLLM_CPU_KVCACHE_SPACE: plenty for the tiny model's few thousand tokens


def cpu_plan(model: str, *, images: int = 2, videos: int = 1, max_model_len: int = 4096, tools: bool = True,
             reasoning: bool = False, served_name: str | None = None, dtype: str = "float32",
             kv_cache_gib: int = CPU_KV_CACHE_GIB) -> VllmPlan:
    """``vllm serve`` flags for vLLM's CPU build (``make vllm`` without a GPU), each with its reason, and the
    GPU flags it leaves out, each with why they mean nothing here (04_vllm_serving)."""
    images, videos = max(0, images), max(0, videos)
    pixels = pixel_budget(max_model_len, images, videos)
    flags = [
        Flag("--max-model-len", str(max_model_len), "a short context: the CPU KV cache is a few GiB of RAM."),
        Flag("--dtype", dtype, "the weights' own precision; vLLM would cast float32 to bfloat16, which CPUs "
             "without AVX512-BF16 only emulate."),
        Flag("--enforce-eager", None, "no torch.compile warm-up (minutes on a small CPU); on a GPU leave it off, "
             "it also disables CUDA graphs."),
        Flag("--distributed-executor-backend", "uni", "the model runs in the engine process: one process less "
             "to start (one device, nothing to distribute)."),
        Flag("--limit-mm-per-prompt", json.dumps({"image": images, "video": videos}),
             "items per request; vLLM reserves memory for this many at start-up."),
        Flag("--mm-processor-kwargs", json.dumps({"size": {"longest_edge": pixels, "shortest_edge": 4096}}),
             f"at most {pixels // 1024:,} tokens per image: {images} image(s) + {videos} video(s) + {TEXT_RESERVE} "
             f"text tokens fit {max_model_len:,}; also keeps the start-up profiling image small."),
    ]
    if videos:
        flags.append(Flag("--media-io-kwargs", json.dumps({"video": {"num_frames": -1}}),
                          "no fixed frame count: vLLM 0.32's Qwen3-VL video loader samples a video_url at 2 frames "
                          "per second and passes the real frame indices on (a 3 s clip at 10 fps: frames 0, 6, 12, "
                          "17, 23, 29)."))
    flags.append(Flag("--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
                      "JSON answers (response_format, tool_choice='required') without free whitespace: a weak model "
                      "can otherwise fill max_tokens with blank lines inside valid JSON."))
    flags += answer_flags(reasoning=reasoning, tools=tools, served_name=served_name)
    notes = (
        "--tensor-parallel-size / --data-parallel-size: one CPU, nothing to split; the GPU plan sizes them.",
        f"--gpu-memory-utilization: no GPU memory; the KV cache is VLLM_CPU_KVCACHE_SPACE={kv_cache_gib} GiB of RAM.",
        "--async-scheduling: overlaps CPU scheduling with GPU work; here both are the same cores.",
        "--kv-cache-dtype fp8 and FP8 checkpoints: FP8 tensor cores are a GPU feature.",
        "--mm-encoder-tp-mode data: only with tensor parallelism over GPUs.",
    )
    return VllmPlan(model, Fit(1, 1, 0.0, 0.0, 0), max_model_len, {"image": images, "video": videos},
                    tuple(flags), notes, (("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib)),))


def choose_backend(hw: Hardware, model: str | None = None) -> tuple[str, str]:
    """``("vllm" | "transformers", reason)``: vLLM when it is installed (here or in ``.venv-vllm``) and
    either a CUDA GPU serves a Qwen3-VL checkpoint name or the CPU build serves any model (04);
    otherwise ``transformers serve``."""
    if not hw.cuda:
        if hw.vllm_env and hw.device == "cpu":
            return "vllm", f"vLLM's CPU build in {hw.vllm_env} (make vllm); no CUDA GPU"
        return "transformers", f"no CUDA GPU (device: {hw.device}) and no vLLM environment (make vllm)"
    if not (hw.vllm or hw.vllm_env):
        return "transformers", "vLLM is not installed (make vllm)"
    if model is not None and checkpoint(str(model)) is None:
        return "transformers", f"{model} is not a Qwen3-VL line-up checkpoint (the tiny model, a local folder)"
    return "vllm", f"vLLM is installed and {len(hw.gpus)} CUDA GPU(s) are present"


# ---------------------------------------------------------------------------------------------
# 3. A local server that always stops
# ---------------------------------------------------------------------------------------------


def transformers_command(model: str, host: str = "127.0.0.1", port: int = 8000,
                         extra: tuple[str, ...] = ()) -> list[str]:
    """``transformers serve`` argv that preloads ``model`` (a hub id or a local folder)."""
    exe = Path(sys.executable).with_name("transformers")
    head = [str(exe)] if exe.exists() else ["transformers"]
    return [*head, "serve", "--host", host, "--port", str(port), *extra, str(model)]


def _launch_spec(kind: str, model: str, host: str, port: int, plan: VllmPlan | None,
                 extra: tuple[str, ...] = (), vllm_env: str | None = None) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and the model name clients send, for ``start`` and ``make serve``."""
    from cookbook.kit.assets import hf_cache_dir

    env = dict(os.environ, HF_HUB_DISABLE_UPDATE_CHECK="1")
    if Path(model).is_dir():
        env["HF_HUB_OFFLINE"] = "1"  # a local folder: never ask the hub
    if kind == "transformers":
        # transformers serve scans the hub cache for /v1/models and fails with CacheNotFound when
        # the folder does not exist yet (fresh machines, CI).
        hf_cache_dir().mkdir(parents=True, exist_ok=True)
        return transformers_command(model, host, port, extra), env, model
    if plan.value("--hf-overrides"):
        env["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"  # YaRN: a context beyond the config's 256K
    env.update(dict(plan.env))
    argv = plan.command(host, port) + list(extra)
    argv[0] = vllm_executable(vllm_env)
    return argv, env, plan.value("--served-model-name") or plan.model


def vllm_executable(vllm_env: str | None = None) -> str:
    """The ``vllm`` command of ``vllm_env`` (``hardware().vllm_env``), else ``vllm`` on the PATH."""
    exe = Path(vllm_env or sys.prefix) / "bin" / "vllm"
    return str(exe) if exe.exists() else "vllm"




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


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port``: a bind as servers do it (``SO_REUSEADDR``, so a
    closed connection's TIME_WAIT does not count) succeeds (04)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


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
class Server(Pretty):
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



def _get(url: str, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def wait_healthy(server: Server, timeout: float = 180.0, interval: float = 0.5,
                 progress: float | None = None) -> float:
    """Poll ``/health`` until it answers 200; raise ``ServerError`` with the log tail if the process
    dies or ``timeout`` seconds pass. Every ``progress`` seconds, print how long it has waited. Returns
    the seconds waited."""
    t0 = time.monotonic()
    said = t0
    while True:
        if progress and time.monotonic() - said >= progress:
            said = time.monotonic()
            last = (server.logs(1) or "").strip()[-100:]
            print(f"  waiting for {server.kind} serve on {server.url}: {said - t0:.0f} s | {last}", flush=True)
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
    timeout: float | None = None,
    log_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    extra: tuple[str, ...] = (),
    plan: VllmPlan | None = None,
    progress: float | None = 30.0,
) -> Server:
    """Start ``transformers serve`` (or ``vllm serve``: ``kind="vllm"``/``"auto"``) for ``model`` on
    loopback, wait until ``/health`` answers, and return a ``Server`` (04_vllm_serving).

    ``with cb.serving.start(path) as server:`` stops it even when the body raises; servers left
    running are stopped when Python exits, and on Linux when the starting thread dies (call this
    from the main thread, as notebooks and scripts do).
    """
    from cookbook.kit.hardware import hardware

    _check_loopback(host)
    model = str(model)
    hw = hw or hardware()
    if kind == "auto":
        kind, _ = choose_backend(hw, model)
    if kind not in ("transformers", "vllm"):
        raise ValueError(f"kind={kind!r}: use 'transformers', 'vllm' or 'auto'.")
    port = port or free_port(host)
    if not port_free(host, port):  # else /health would be answered by that server, and "healthy" a lie
        raise ServerError(f"port={port}: something already listens on {host}:{port}; pass another port, "
                          "or none for a free one.")
    if kind == "vllm" and plan is None:
        plan = plan_for(hw, model)
    if timeout is None:  # vLLM imports torch, vLLM and transformers in each process: minutes on a small CPU
        timeout = 900.0 if kind == "vllm" else 180.0
    argv, env, served = _launch_spec(kind, model, host, port, plan, extra, hw.vllm_env)
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
        server.started_s = wait_healthy(server, timeout=timeout, progress=progress)
    except BaseException:
        server.stop()
        raise
    return server


def plan_for(hw: Hardware, model: str, served_name: str | None = None) -> VllmPlan:
    """The vLLM plan ``start`` uses: ``vllm_plan`` on a CUDA GPU, ``cpu_plan`` on the CPU build; a Thinking
    model (its name says so) gets the reasoning parser (04)."""
    if hw.cuda:
        return vllm_plan(hw, model, served_name=served_name)
    return cpu_plan(model, reasoning="thinking" in Path(model).name.lower(), served_name=served_name)


def running_servers() -> list[Server]:
    """Servers this Python process started and has not stopped yet."""
    return list(_LIVE.values())


# ---------------------------------------------------------------------------------------------
# make serve
# ---------------------------------------------------------------------------------------------


def local_model(name: str | None = None) -> str:
    """What a server loads for this run's model: the tiny checkpoint's folder in a smoke run, else the id (04)."""
    from cookbook.runtime.settings import settings, tiny_flavour

    name = name or settings().model
    flavour = tiny_flavour(name)
    if flavour:
        from cookbook.runtime.loading import fetch

        return str(fetch(name))
    return name


def main(argv: list[str] | None = None) -> int:
    """``python -m cookbook.serving``: vLLM when installed with a CUDA GPU, else transformers serve."""
    import argparse

    from cookbook.kit.hardware import hardware

    p = argparse.ArgumentParser(prog="python -m cookbook.serving", description=main.__doc__)
    p.add_argument("--model", default=None, help="hub id or folder (default: COOKBOOK_MODEL's pick)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--backend", choices=("auto", "vllm", "transformers"), default="auto")
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--dry-run", action="store_true", help="print the command and exit")
    args = p.parse_args(argv)

    hw = hardware()
    model = local_model(args.model)
    backend, reason = choose_backend(hw, model) if args.backend == "auto" else (args.backend, "chosen with --backend")
    plan = plan_for(hw, model, args.served_model_name) if backend == "vllm" else None
    if plan is not None:
        print(plan.explain())
    cmd, env, served = _launch_spec(backend, model, args.host, args.port, plan, vllm_env=hw.vllm_env)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"backend: {backend} ({reason})")
    print("$ " + " ".join(shlex.quote(a) for a in cmd))
    print("\nClients (notebooks, learners) set:\n"
          f"  export COOKBOOK_BASE_URL=http://{host}:{args.port}/v1\n"
          f"  export COOKBOOK_SERVED_MODEL={shlex.quote(served)}\n"
          "  export COOKBOOK_API_KEY=EMPTY", flush=True)
    if args.dry_run:
        return 0
    # Started as a child, not exec'd: start-up shows progress, and Ctrl-C or SIGTERM stops the server's
    # whole process group (vLLM's engine and workers included) before this exits.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    server = None
    try:
        server = start(model, kind=backend, hw=hw, host=args.host, port=args.port, plan=plan, progress=15.0)
        print(f"{backend} serve is healthy after {server.started_s:.0f} s on {server.base_url}. Ctrl-C stops it.\n"
              f"log: {server.log_path}", flush=True)
        server.process.wait()
        print(f"{backend} serve exited with code {server.process.returncode}; last lines:\n{server.logs(20)}")
        return server.process.returncode or 1
    except KeyboardInterrupt:
        print(f"\nstopping {backend} serve ...", flush=True)
        return 0
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
