"""Getting a model: fetch or download a checkpoint, load it, cap its image budget (00, 01)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cookbook.kit.hardware import MIN_TRANSFORMERS, Hardware, hardware, parse_version, version
from cookbook.lineup import LINEUP, Checkpoint, checkpoint, fit, recommend_model
from cookbook.recipe import set_image_budget
from cookbook.runtime.settings import offline, settings, tiny_flavour


class LoadError(RuntimeError):
    """Loading failed for a reason the user can fix; the message names the fix (00, 01)."""


def _check_transformers() -> None:
    tf = version("transformers")
    if tf is None or parse_version(tf) < MIN_TRANSFORMERS:
        raise LoadError(
            f"transformers {tf or '(not installed)'} does not know Qwen3-VL (added in 4.57.0). "
            "Fix: pip install -U 'transformers>=4.57'."
        )


def download(model_id: str, hub: str | None = None) -> Path:
    """Fetch a checkpoint into the local cache (with a progress bar) and return its folder (00)."""
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
    """flash_attention_2 where it is installed and supported (CUDA, Ampere+), sdpa everywhere else (01)."""
    return "flash_attention_2" if hw.cuda and hw.flash_attn and hw.bf16 else "sdpa"


def _room(hw: Hardware) -> float:
    return hw.gpu_memory_gib if hw.cuda else hw.ram_gib


def fits(ck: Checkpoint, hw: Hardware) -> bool:
    """Whether ``hw`` holds the checkpoint: lineup's sizing rule on CUDA, weights + 20% of RAM elsewhere (00).

    Without FP8 tensor cores (CPU, MPS, GPUs before compute capability 8.9) transformers dequantizes an
    FP8 checkpoint to bf16 (its ``quantizer_finegrained_fp8.py``), so the bf16 size is what must fit.
    """
    if ck.fp8 and not hw.fp8:
        ck = checkpoint(ck.id.removesuffix("-FP8")) or ck
    return fit(ck, hw) is not None if hw.cuda else hw.ram_gib >= ck.min_memory_gib


def fetch(model: str | None = None, check_memory: bool = True) -> Path:
    """The local folder of a checkpoint: the tiny one (built), a local folder, or a hub download (01).

    Refuses, with the fix, a checkpoint too big for this machine (``check_memory=False`` skips that).
    """
    from cookbook.kit import tiny, tiny_qwen35

    name = model or settings().model
    flavour = tiny_flavour(name)
    if flavour:
        return tiny_qwen35.build() if flavour == "qwen3.5" else tiny.build(flavour)
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    hw = hardware()
    ck = checkpoint(name)
    if ck is not None and check_memory and not fits(ck, hw):
        raise LoadError(
            f"{name} needs about {ck.min_memory_gib:.0f} GiB and this machine has {_room(hw):.0f} GiB of "
            f"{'GPU memory' if hw.cuda else 'RAM'}. Try {recommend_model(hw).checkpoint.id} "
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

