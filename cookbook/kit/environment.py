"""The one place that reads environment variables: COOKBOOK_*, HF_* (cookbook.runtime.settings builds on it)."""

from __future__ import annotations

import os
from pathlib import Path

TRUE = {"1", "true", "yes", "on"}


def env(name: str, default: str = "") -> str:
    """The variable's value without surrounding spaces (``default`` when unset) (00)."""
    return os.environ.get(name, default).strip()


def offline() -> bool:
    """True when the Hugging Face offline switches are set (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) (00)."""
    return any(env(v).lower() in TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hf_cache_dir() -> Path:
    """Where downloaded weights go (HF_HUB_CACHE, HF_HOME/hub, or ~/.cache/huggingface/hub) (00)."""
    if env("HF_HUB_CACHE"):
        return Path(env("HF_HUB_CACHE")).expanduser()
    return Path(env("HF_HOME") or Path.home() / ".cache" / "huggingface").expanduser() / "hub"


def cookbook_cache_dir() -> Path:
    """Where the tiny checkpoints are built: COOKBOOK_CACHE or ~/.cache/qwen3-vl-cookbook (00)."""
    return Path(env("COOKBOOK_CACHE") or Path.home() / ".cache" / "qwen3-vl-cookbook").expanduser()
