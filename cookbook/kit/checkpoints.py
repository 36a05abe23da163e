"""The Qwen3-VL line-up's shapes: the numbers of each checkpoint's ``config.json`` that the memory
estimate (03) needs, and the processors' pixel budgets, so nothing is downloaded to size a machine.

Source: config.json of Qwen/Qwen3-VL-<size>-Instruct (cross-checked against torchtitan's qwen3_vl registry
and QWEN3VL_FACTS.md); -Thinking and -FP8 checkpoints share their -Instruct sibling's shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shape:
    """The numbers of a Qwen3-VL config the estimator needs (text model, MoE, vision tower)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tie: bool
    experts: int = 0
    experts_per_token: int = 0
    moe_intermediate: int = 0
    moe_layers: int | None = None  # None: every layer is MoE when experts > 0
    vision_depth: int = 27
    vision_hidden: int = 1152
    vision_intermediate: int = 4304
    deepstack: int = 3
    patch: int = 16
    temporal_patch: int = 2
    merge: int = 2
    position_embeddings: int = 2304
    in_channels: int = 3
    attention_bias: bool = False

    @property
    def moe(self) -> bool:
        """True for the mixture-of-experts checkpoints (30B-A3B, 235B-A22B)."""
        return self.experts > 0

    @property
    def n_moe_layers(self) -> int:
        """How many decoder layers hold experts instead of a dense MLP."""
        return (self.layers if self.moe_layers is None else self.moe_layers) if self.moe else 0


_SMALL_VIT = dict(vision_depth=24, vision_hidden=1024, vision_intermediate=4096)  # 2B, 4B; 8B and up: defaults
_TEXT = dict(head_dim=128, vocab=151936)
CHECKPOINTS: dict[str, Shape] = {
    "2B": Shape(2048, 28, 16, 8, intermediate=6144, tie=True, **_TEXT, **_SMALL_VIT),
    "4B": Shape(2560, 36, 32, 8, intermediate=9728, tie=True, **_TEXT, **_SMALL_VIT),
    "8B": Shape(4096, 36, 32, 8, intermediate=12288, tie=False, **_TEXT),
    "32B": Shape(5120, 64, 64, 8, intermediate=25600, tie=False, **_TEXT),
    "30B-A3B": Shape(2048, 48, 32, 4, intermediate=6144, tie=False, experts=128, experts_per_token=8,
                     moe_intermediate=768, **_TEXT),
    "235B-A22B": Shape(4096, 94, 64, 4, intermediate=12288, tie=False, experts=128, experts_per_token=8,
                       moe_intermediate=1536, **_TEXT),
}

# Processor budgets of the published checkpoints (preprocessor_config.json, video_preprocessor_config.json):
# pixels, one visual token per 32x32 pixels; the video budget is over all frames (T*H*W).
IMAGE_MIN_PIXELS = 64 * 32 * 32
IMAGE_MAX_PIXELS = 16384 * 32 * 32
VIDEO_MIN_PIXELS = 4096
VIDEO_MAX_PIXELS = 24576 * 32 * 32

# The seed article's "minimum memory" column (GB); 2B and 32B are not in it (03 compares it with the estimate).
SEED_MIN_MEMORY_GB = {"4B": 8, "8B": 16, "30B-A3B": 48, "235B-A22B": 160}

_SIZE = re.compile(r"(235B-A22B|30B-A3B|32B|8B|4B|2B)", re.IGNORECASE)


def shape(config: Any) -> Shape:
    """A ``Shape`` from a Qwen3VL(Moe)Config, a config.json dict, a Shape, or a line-up size or hub id."""
    if isinstance(config, Shape):
        return config
    if isinstance(config, str):
        if not (m := _SIZE.search(config)):
            raise KeyError(f"{config!r} is not in the Qwen3-VL line-up ({', '.join(CHECKPOINTS)})")
        return CHECKPOINTS[next(k for k in CHECKPOINTS if k.lower() == m.group(1).lower())]
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    text, vision = dict(d.get("text_config") or d), dict(d.get("vision_config") or {})
    tie = d.get("tie_word_embeddings")
    heads, layers = text["num_attention_heads"], text["num_hidden_layers"]
    experts = int(text.get("num_experts") or text.get("num_local_experts") or 0)  # to_dict() renames it
    moe_layers = None
    if experts:
        only, step = set(text.get("mlp_only_layers") or []), int(text.get("decoder_sparse_step") or 1)
        moe_layers = sum(1 for i in range(layers) if i not in only and (i + 1) % step == 0)
        moe_layers = None if moe_layers == layers else moe_layers
    first = lambda v: int(v[0]) if isinstance(v, (list, tuple)) else int(v)  # noqa: E731
    base = Shape(0, 0, 1, 1, 1, 0, 0, False)
    return Shape(
        hidden=text["hidden_size"], layers=layers, heads=heads,
        kv_heads=text.get("num_key_value_heads") or heads,
        head_dim=text.get("head_dim") or text["hidden_size"] // heads,
        intermediate=text["intermediate_size"], vocab=text["vocab_size"],
        tie=bool(text.get("tie_word_embeddings", False) if tie is None else tie),
        experts=experts,
        experts_per_token=int(text.get("num_experts_per_tok") or 0) if experts else 0,
        moe_intermediate=int(text.get("moe_intermediate_size") or 0) if experts else 0,
        moe_layers=moe_layers,
        vision_depth=vision.get("depth", base.vision_depth),
        vision_hidden=vision.get("hidden_size", base.vision_hidden),
        vision_intermediate=vision.get("intermediate_size", base.vision_intermediate),
        deepstack=len(vision.get("deepstack_visual_indexes", (8, 16, 24))),
        patch=first(vision.get("patch_size", base.patch)),
        temporal_patch=first(vision.get("temporal_patch_size", base.temporal_patch)),
        merge=vision.get("spatial_merge_size", base.merge),
        position_embeddings=vision.get("num_position_embeddings", base.position_embeddings),
        in_channels=vision.get("in_channels", base.in_channels),
        attention_bias=bool(text.get("attention_bias", False)),
    )
