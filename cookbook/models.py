"""The Qwen3-VL line-up, which checkpoint fits this machine, and loading it (00_setup, 01)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookbook.hardware import MIN_TRANSFORMERS, Hardware, hardware, parse_version, version

# The seed article's "minimum memory" column (GB); 2B and 32B are not in it.
SEED_MIN_MEMORY_GB = {"4B": 8, "8B": 16, "30B-A3B": 48, "235B-A22B": 160}
HEADROOM = 1.2  # weights + ~20% for activations, KV cache of a few images and CUDA context


@dataclass(frozen=True)
class Checkpoint:
    """One published checkpoint: id, size, parameters (total and active for MoE), variant, FP8."""

    id: str
    size: str
    params_b: float
    active_params_b: float | None
    variant: str  # "Instruct" or "Thinking"
    fp8: bool
    disk_gb: float  # weights in GB (1e9 bytes): bf16, or FP8 linears + bf16 rest with block scales

    @property
    def moe(self) -> bool:
        return self.active_params_b is not None

    @property
    def min_memory_gb(self) -> float:
        """Weights plus ~20% headroom; 03_fp8_and_memory estimates it properly for a context length."""
        return round(self.disk_gb * HEADROOM, 1)


def _lineup() -> tuple[Checkpoint, ...]:
    """Every published checkpoint, its sizes computed from its config's shape (cookbook.memory)."""
    from cookbook.memory import CHECKPOINTS, parameters, weight_bytes

    out = []
    for size, shape in CHECKPOINTS.items():
        params = parameters(shape)
        active = round(params.active / 1e9, 2) if shape.experts else None
        for variant in ("Instruct", "Thinking"):
            for fp8 in (False, True):
                cid = f"Qwen/Qwen3-VL-{size}-{variant}" + ("-FP8" if fp8 else "")
                disk = weight_bytes(shape, "fp8" if fp8 else "bf16") / 1e9
                out.append(Checkpoint(cid, size, round(params.total / 1e9, 2), active, variant, fp8, round(disk, 1)))
    return tuple(out)


LINEUP: tuple[Checkpoint, ...] = _lineup()
PREFERENCE = ("235B-A22B", "32B", "30B-A3B", "8B", "4B", "2B")  # strongest first


_ID = re.compile(r"Qwen3-VL-(?P<size>\d+B(?:-A\d+B)?)-(?P<variant>Instruct|Thinking)(?P<fp8>-FP8)?", re.IGNORECASE)


def checkpoint(model: str) -> Checkpoint | None:
    """The line-up entry a hub id or a folder name refers to (case-insensitive), or None."""
    m = _ID.search(str(model))
    if not m:
        return None
    size, variant, fp8 = m.group("size").upper(), m.group("variant").capitalize(), bool(m.group("fp8"))
    return next((c for c in LINEUP if (c.size.upper(), c.variant, c.fp8) == (size, variant, fp8)), None)


@dataclass(frozen=True)
class Recommendation:
    """The checkpoint picked for a machine, and why."""

    checkpoint: Checkpoint
    reason: str

    def __str__(self) -> str:
        return f"{self.checkpoint.id}\n  why: {self.reason}"

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def _pick(size: str, variant: str, fp8: bool) -> Checkpoint:
    return next(c for c in LINEUP if c.size == size and c.variant == variant and c.fp8 == fp8)


def recommend_model(hw: Hardware | None = None, thinking: bool = False) -> Recommendation:
    """The strongest checkpoint whose weights fit this machine's GPUs (FP8 where the GPU has it)."""
    hw = hw or hardware()
    variant = "Thinking" if thinking else "Instruct"
    if not hw.cuda:
        size = "4B" if hw.mps and hw.ram_gb >= 16 else "2B"
        ck = _pick(size, variant, fp8=False)
        return Recommendation(ck, (
            f"no CUDA GPU ({hw.device}, {hw.ram_gb:.0f} GB RAM): the {size} model in bf16 is the "
            f"largest that answers in reasonable time here; FP8 checkpoints need a CUDA GPU."
        ))
    room = hw.gpu_memory_gb
    for size in PREFERENCE:
        bf16 = _pick(size, variant, fp8=False)
        if bf16.min_memory_gb <= room:
            return Recommendation(bf16, (
                f"{room:.0f} GB of GPU memory holds {bf16.id} in bf16 "
                f"(about {bf16.min_memory_gb:.0f} GB with headroom)."
            ))
        fp8 = _pick(size, variant, fp8=True)
        if hw.fp8 and fp8.min_memory_gb <= room:
            return Recommendation(fp8, (
                f"{room:.0f} GB is too little for {size} in bf16 ({bf16.min_memory_gb:.0f} GB) but "
                f"enough for the FP8 checkpoint ({fp8.min_memory_gb:.0f} GB), and these GPUs run FP8."
            ))
    ck = _pick("2B", variant, fp8=False)
    return Recommendation(ck, f"only {room:.0f} GB of GPU memory: even the 2B model is tight.")


class LoadError(RuntimeError):
    """Loading failed for a reason the user can fix; the message names the fix."""


def _check_transformers() -> None:
    tf = version("transformers")
    if tf is None or parse_version(tf) < MIN_TRANSFORMERS:
        raise LoadError(
            f"transformers {tf or '(not installed)'} does not know Qwen3-VL (added in 4.57.0). "
            "Fix: pip install -U 'transformers>=4.57'."
        )


def download(model_id: str, hub: str | None = None) -> Path:
    """Fetch a checkpoint into the local cache (with a progress bar) and return its folder."""
    from cookbook.settings import offline, settings

    hub = hub or settings().hub
    hint = (
        f"Fetch it on a machine with internet: `hf download {model_id}` (Hugging Face; set HF_ENDPOINT "
        f"for a mirror) or `modelscope download --model {model_id}` (COOKBOOK_HUB=modelscope). "
        "Or run offline with COOKBOOK_MODEL=tiny (a tiny random model: every code path, nonsense answers)."
    )
    if hub == "modelscope":
        try:
            from modelscope import snapshot_download as ms_download
        except ImportError as err:
            raise LoadError("COOKBOOK_HUB=modelscope needs: pip install modelscope") from err
        try:
            return Path(ms_download(model_id))
        except Exception as err:  # modelscope raises plain exceptions for every failure
            raise LoadError(f"ModelScope could not provide {model_id}: {err}\n{hint}") from err

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return Path(snapshot_download(model_id, local_files_only=offline()))
    except RepositoryNotFoundError as err:
        raise LoadError(
            f"{model_id!r} is not a model on the hub. Known Qwen3-VL ids: "
            + ", ".join(c.id for c in LINEUP if not c.fp8 and c.variant == "Instruct")
            + " (add -Thinking / -FP8 variants as listed in 00_setup)."
        ) from err
    except GatedRepoError as err:
        raise LoadError(f"{model_id} needs a login: run `hf auth login`.") from err
    except LocalEntryNotFoundError as err:
        state = "offline (HF_HUB_OFFLINE is set)" if offline() else "unable to reach the hub"
        raise LoadError(f"No local copy of {model_id} and {state}.\n{hint}") from err


def attention_for(hw: Hardware) -> str:
    """flash_attention_2 where it is installed and supported (CUDA, Ampere+), sdpa everywhere else."""
    return "flash_attention_2" if hw.cuda and hw.flash_attn and hw.bf16 else "sdpa"


def set_image_budget(processor: Any, max_pixels: int | None = None, min_pixels: int | None = None) -> None:
    """Cap the pixels (and so the visual tokens) per image of a loaded processor (01).

    One token covers 32x32 pixels. Sets ``processor.image_processor.size``, which works on every
    transformers release; ``from_pretrained(..., max_pixels=...)`` was ignored in 4.57 (transformers#41955).
    """
    size = dict(processor.image_processor.size)
    if max_pixels is not None:
        size["longest_edge"] = int(max_pixels)
    if min_pixels is not None:
        size["shortest_edge"] = int(min_pixels)
    if size.get("shortest_edge", 0) > size.get("longest_edge", float("inf")):
        raise ValueError(f"min_pixels {size['shortest_edge']} is above max_pixels {size['longest_edge']}.")
    processor.image_processor.size = size


def fetch(model: str | None = None, check_memory: bool = True) -> Path:
    """The local folder of a checkpoint: the tiny one (built), a local folder, or a hub download.

    Refuses, with the fix, an FP8 checkpoint on a GPU without FP8 and a model too big for memory.
    """
    from cookbook import tiny
    from cookbook.settings import settings, tiny_flavour

    name = model or settings().model
    flavour = tiny_flavour(name)
    if flavour:
        return tiny.build(flavour)
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    hw = hardware()
    ck = checkpoint(name)
    if ck is not None and ck.fp8 and not hw.fp8:
        raise LoadError(
            f"{name} stores FP8 weights; running them needs a CUDA GPU with compute capability "
            f"8.9+ (this machine: {hw.device}). Use {name.removesuffix('-FP8')} (bf16) instead, "
            "or see 03_fp8_and_memory for 8-bit/4-bit options."
        )
    if ck is not None and check_memory:
        room = hw.gpu_memory_gb if hw.cuda else hw.ram_gb
        if room and room < ck.min_memory_gb:
            raise LoadError(
                f"{name} needs about {ck.min_memory_gb:.0f} GB and this machine has {room:.0f} GB "
                f"of {'GPU memory' if hw.cuda else 'RAM'}. Try {recommend_model(hw).checkpoint.id} "
                "(cb.recommend_model()), or pass check_memory=False to try anyway."
            )
    return download(name)


def load(
    model: str | None = None,
    *,
    dtype: Any = "auto",
    device_map: Any = "auto",
    attn_implementation: str | None = None,
    max_pixels: int | None = None,
    min_pixels: int | None = None,
    check_memory: bool = True,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """Load ``(model, processor)`` for a hub id, a local folder or ``tiny`` (default: this run's model).

    Picks the attention implementation from what is installed, downloads with progress, and raises
    ``LoadError`` with the fix for the usual failures. Taught in 01_first_image_chat.
    """
    from cookbook.settings import settings, tiny_flavour

    _check_transformers()
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    name = model or settings().model
    hw = hardware()
    if tiny_flavour(name):
        dtype, device_map, attn_implementation = torch.float32, None, attn_implementation or "sdpa"
    path = fetch(name, check_memory=check_memory)
    attn = attn_implementation or attention_for(hw)
    processor = AutoProcessor.from_pretrained(path)
    set_image_budget(processor, max_pixels, min_pixels)
    net = AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype, device_map=device_map, attn_implementation=attn, **kwargs
    )
    return net.eval(), processor

