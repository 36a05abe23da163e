"""How much memory a Qwen3-VL checkpoint needs: weights by dtype, KV cache, visual tokens (03_fp8_and_memory).

Everything is computed from a handful of numbers in each checkpoint's ``config.json`` (a ``Shape``), so
an estimate can be checked against a model instantiated here: the weight term must equal
``sum(p.numel() * p.element_size())`` of the real ``Qwen3VLForConditionalGeneration``.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from cookbook.kit.show import Pretty

GIB = 2**30

# --------------------------------------------------------------------------------------------------
# The line-up's shapes.
# Source: the Hugging Face config.json of Qwen/Qwen3-VL-<size>-Instruct (text_config, vision_config,
# tie_word_embeddings). Cross-checked against public copies of those files: 2B, 8B, 30B-A3B and
# 235B-A22B against torchtitan's qwen3_vl model registry (pytorch/torchtitan,
# torchtitan/experiments/qwen3_vl/__init__.py) and THUDM slime's Qwen3-VL launch arguments; 4B and 32B
# against verbatim config.json copies in public repositories; 8B and 4B against QWEN3VL_FACTS.md.
# -Thinking and -FP8 checkpoints share their -Instruct sibling's shape.
# Constant across the line-up (transformers defaults, identical in every config.json): patch 16,
# temporal patch 2, spatial merge 2, 2304 learned vision position embeddings, vocab 151936,
# head_dim 128, no attention bias.
# --------------------------------------------------------------------------------------------------


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
        if not self.moe:
            return 0
        return self.layers if self.moe_layers is None else self.moe_layers


_VIT_SMALL = dict(vision_depth=24, vision_hidden=1024, vision_intermediate=4096)  # 2B, 4B
_VIT_LARGE = dict(vision_depth=27, vision_hidden=1152, vision_intermediate=4304)  # 8B and up

CHECKPOINTS: dict[str, Shape] = {
    "2B": Shape(hidden=2048, layers=28, heads=16, kv_heads=8, head_dim=128, intermediate=6144,
                vocab=151936, tie=True, **_VIT_SMALL),
    "4B": Shape(hidden=2560, layers=36, heads=32, kv_heads=8, head_dim=128, intermediate=9728,
                vocab=151936, tie=True, **_VIT_SMALL),
    "8B": Shape(hidden=4096, layers=36, heads=32, kv_heads=8, head_dim=128, intermediate=12288,
                vocab=151936, tie=False, **_VIT_LARGE),
    "32B": Shape(hidden=5120, layers=64, heads=64, kv_heads=8, head_dim=128, intermediate=25600,
                 vocab=151936, tie=False, **_VIT_LARGE),
    "30B-A3B": Shape(hidden=2048, layers=48, heads=32, kv_heads=4, head_dim=128, intermediate=6144,
                     vocab=151936, tie=False, experts=128, experts_per_token=8, moe_intermediate=768,
                     **_VIT_LARGE),
    "235B-A22B": Shape(hidden=4096, layers=94, heads=64, kv_heads=4, head_dim=128, intermediate=12288,
                       vocab=151936, tie=False, experts=128, experts_per_token=8, moe_intermediate=1536,
                       **_VIT_LARGE),
}

# Processor budgets of the published checkpoints (preprocessor_config.json and
# video_preprocessor_config.json of Qwen/Qwen3-VL-*): pixels, with one visual token per 32x32 pixels.
IMAGE_MIN_PIXELS = 64 * 32 * 32  # size.shortest_edge: 64 tokens
IMAGE_MAX_PIXELS = 16384 * 32 * 32  # size.longest_edge: 16384 tokens
VIDEO_MIN_PIXELS = 4096  # size.shortest_edge, over all frames (T*H*W)
VIDEO_MAX_PIXELS = 24576 * 32 * 32  # size.longest_edge (25165824), over all frames (T*H*W)
VIDEO_FPS = 2.0
VIDEO_MIN_FRAMES = 4
VIDEO_MAX_FRAMES = 768
VIDEO_MAX_TOKENS_PER_FRAME = 768  # qwen-vl-utils' cap, applied by transformers with cap_pixels_per_frame

# Overhead added on top of weights + KV cache: CUDA context, cuBLAS workspace, activations of the
# prefill and of the vision tower. A rule of thumb, not a measurement: 1 GiB plus 10% of the weights.
OVERHEAD_GIB = 1.0
OVERHEAD_FRACTION = 0.10

_SIZE_RE = re.compile(r"(235B-A22B|30B-A3B|32B|8B|4B|2B)", re.IGNORECASE)


def checkpoint_shape(model: str) -> Shape:
    """The stored shape of a line-up checkpoint, from its size ("8B") or hub id (any variant, FP8 too)."""
    m = _SIZE_RE.search(model)
    if not m:
        raise KeyError(f"{model!r} is not in the Qwen3-VL line-up ({', '.join(CHECKPOINTS)})")
    return CHECKPOINTS[next(k for k in CHECKPOINTS if k.lower() == m.group(1).lower())]


def shape(config: Any) -> Shape:
    """A ``Shape`` from a Qwen3VL(Moe)Config, a config.json dict, a Shape, or a line-up size/hub id."""
    if isinstance(config, Shape):
        return config
    if isinstance(config, str):
        return checkpoint_shape(config)
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    text = dict(d.get("text_config") or d)
    vision = dict(d.get("vision_config") or {})
    tie = d.get("tie_word_embeddings")
    if tie is None:
        tie = text.get("tie_word_embeddings", False)
    heads = text["num_attention_heads"]
    experts = int(text.get("num_experts") or text.get("num_local_experts") or 0)  # to_dict() renames it
    moe_layers = None
    if experts:
        only = set(text.get("mlp_only_layers") or [])
        step = int(text.get("decoder_sparse_step") or 1)
        moe_layers = sum(1 for i in range(text["num_hidden_layers"]) if i not in only and (i + 1) % step == 0)
        moe_layers = None if moe_layers == text["num_hidden_layers"] else moe_layers
    defaults = Shape(hidden=0, layers=0, heads=1, kv_heads=1, head_dim=1, intermediate=0, vocab=0, tie=False)
    return Shape(
        hidden=text["hidden_size"],
        layers=text["num_hidden_layers"],
        heads=heads,
        kv_heads=text.get("num_key_value_heads") or heads,
        head_dim=text.get("head_dim") or text["hidden_size"] // heads,
        intermediate=text["intermediate_size"],
        vocab=text["vocab_size"],
        tie=bool(tie),
        experts=experts,
        experts_per_token=int(text.get("num_experts_per_tok") or 0) if experts else 0,
        moe_intermediate=int(text.get("moe_intermediate_size") or 0) if experts else 0,
        moe_layers=moe_layers,
        vision_depth=vision.get("depth", defaults.vision_depth),
        vision_hidden=vision.get("hidden_size", defaults.vision_hidden),
        vision_intermediate=vision.get("intermediate_size", defaults.vision_intermediate),
        deepstack=len(vision.get("deepstack_visual_indexes", (8, 16, 24))),
        patch=_int(vision.get("patch_size", defaults.patch)),
        temporal_patch=_int(vision.get("temporal_patch_size", defaults.temporal_patch)),
        merge=vision.get("spatial_merge_size", defaults.merge),
        position_embeddings=vision.get("num_position_embeddings", defaults.position_embeddings),
        in_channels=vision.get("in_channels", defaults.in_channels),
        attention_bias=bool(text.get("attention_bias", False)),
    )


def _int(v: Any) -> int:
    return int(v[0]) if isinstance(v, (list, tuple)) else int(v)


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """Parameter counts by part, named as in ``Qwen3VLForConditionalGeneration`` (see ``count_parameters``)."""

    vision: int
    embeddings: int
    attention: int
    mlp: int
    experts: int
    router: int
    norms: int
    lm_head: int
    experts_active: int = 0

    @property
    def total(self) -> int:
        """Every parameter (tied embeddings counted once, as transformers stores them)."""
        return sum(getattr(self, f.name) for f in fields(self) if f.name != "experts_active")

    @property
    def active(self) -> int:
        """Parameters used per token: for MoE only ``experts_per_token`` of the experts count."""
        return self.total - self.experts + self.experts_active

    @property
    def language(self) -> int:
        """Everything but the vision tower."""
        return self.total - self.vision

    def as_dict(self) -> dict[str, int]:
        """The parts plus ``total`` and ``active``, for printing."""
        return {**asdict(self), "total": self.total, "active": self.active}


def _merger(vh: int, merge: int, out: int, postshuffle: bool) -> int:
    mh = vh * merge * merge
    norm = 2 * (mh if postshuffle else vh)
    return norm + mh * mh + mh + mh * out + out


def parameters(config: Any) -> Params:
    """Count every parameter of the model a config describes (03_fp8_and_memory)."""
    s = shape(config)
    vh, vi = s.vision_hidden, s.vision_intermediate
    block = 2 * 2 * vh + (vh * 3 * vh + 3 * vh) + (vh * vh + vh) + (vh * vi + vi) + (vi * vh + vh)
    vision = (
        s.in_channels * s.temporal_patch * s.patch * s.patch * vh + vh  # Conv3d patch embedding
        + s.position_embeddings * vh  # learned position grid
        + s.vision_depth * block
        + _merger(vh, s.merge, s.hidden, postshuffle=False)
        + s.deepstack * _merger(vh, s.merge, s.hidden, postshuffle=True)
    )
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    bias = (q + 2 * kv + s.hidden) if s.attention_bias else 0
    attention = s.layers * (s.hidden * q + 2 * s.hidden * kv + q * s.hidden + bias)
    norms = s.layers * (2 * s.hidden + 2 * s.head_dim) + s.hidden  # 2 RMSNorms, q/k norms, final norm
    n_moe = s.n_moe_layers
    mlp = (s.layers - n_moe) * 3 * s.hidden * s.intermediate
    per_expert = 3 * s.hidden * s.moe_intermediate
    experts = n_moe * s.experts * per_expert
    return Params(
        vision=vision,
        embeddings=s.vocab * s.hidden,
        attention=attention,
        mlp=mlp,
        experts=experts,
        router=n_moe * s.experts * s.hidden,
        norms=norms,
        lm_head=0 if s.tie else s.vocab * s.hidden,
        experts_active=n_moe * s.experts_per_token * per_expert,
    )


def count_parameters(model: Any) -> Params:
    """The same breakdown counted from a real (or meta-device) model's named parameters (03_fp8_and_memory)."""
    parts = dict.fromkeys(("vision", "embeddings", "attention", "mlp", "experts", "router", "norms", "lm_head"), 0)
    for name, p in model.named_parameters():  # tied weights are listed once
        n = p.numel()
        if ".visual." in f".{name}":
            parts["vision"] += n
        elif "embed_tokens" in name:
            parts["embeddings"] += n
        elif name.startswith("lm_head"):
            parts["lm_head"] += n
        elif "norm" in name.rsplit(".", 2)[-2]:
            parts["norms"] += n
        elif ".self_attn." in name:
            parts["attention"] += n
        elif ".mlp.experts." in name:
            parts["experts"] += n
        elif name.endswith(".mlp.gate.weight"):
            parts["router"] += n
        elif ".mlp." in name:
            parts["mlp"] += n
        else:
            raise ValueError(f"unexpected parameter {name}")
    return Params(**parts)


# --------------------------------------------------------------------------------------------------
# Weights by dtype
# --------------------------------------------------------------------------------------------------

BLOCK_SIDE = 128  # FP8 block (128x128) and int4 group size

SCHEMES: dict[str, str] = {
    "fp32": "every parameter in float32 (4 bytes)",
    "bf16": "every parameter in bfloat16 (2 bytes), as published",
    "fp8": "language-model linears in float8 e4m3 (1 byte) + one float32 scale per 128x128 block, as the "
           "official -FP8 checkpoints; vision tower, embeddings, lm_head, router, norms stay bf16",
    "int8": "language-model linears in int8 + one float32 scale per output row (bitsandbytes LLM.int8); "
            "the rest bf16",
    "int4": "language-model linears in 4 bits + per-group-of-128 fp16 scale and 4-bit zero point "
            "(AWQ/GPTQ); the rest bf16",
}


def _quantized_matrices(s: Shape) -> list[tuple[int, int, int]]:
    """(rows, cols, count) of every language-model linear weight a quantized checkpoint converts."""
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    mats = [(q, s.hidden, s.layers), (kv, s.hidden, 2 * s.layers), (s.hidden, q, s.layers)]
    dense = s.layers - s.n_moe_layers
    if dense:
        mats += [(s.intermediate, s.hidden, 2 * dense), (s.hidden, s.intermediate, dense)]
    if s.n_moe_layers:
        n = s.n_moe_layers * s.experts
        mats += [(s.moe_intermediate, s.hidden, 2 * n), (s.hidden, s.moe_intermediate, n)]
    return mats


def weight_bytes(config: Any, dtype: str = "bf16") -> int:
    """Bytes of the weights in ``dtype`` (one of ``SCHEMES``), scales included (03_fp8_and_memory)."""
    s = shape(config)
    total = parameters(s).total
    if dtype in ("fp32", "float32"):
        return 4 * total
    if dtype in ("bf16", "bfloat16", "fp16", "float16"):
        return 2 * total
    if dtype not in SCHEMES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {', '.join(SCHEMES)}")
    quantized, n_quantized = 0.0, 0
    for rows, cols, count in _quantized_matrices(s):
        n = rows * cols
        n_quantized += n * count
        if dtype == "fp8":  # 1 byte per weight + one float32 scale per 128x128 block
            b = n + 4 * math.ceil(rows / BLOCK_SIDE) * math.ceil(cols / BLOCK_SIDE)
        elif dtype == "int8":  # 1 byte per weight + one float32 scale per output row
            b = n + 4 * rows
        else:  # int4: half a byte per weight + an fp16 scale and a 4-bit zero point per group of 128
            b = n / 2 + rows * math.ceil(cols / BLOCK_SIDE) * (2 + 0.5)
        quantized += b * count
    return int(math.ceil(quantized)) + 2 * (total - n_quantized)  # everything else stays bf16


KV_BYTES = {"auto": 2, "bf16": 2, "fp16": 2, "fp8": 1, "fp32": 4}  # vLLM --kv-cache-dtype; auto = the model's bf16


def kv_cache_bytes(config: Any, tokens: int, batch: int = 1, kv_dtype: str = "auto") -> int:
    """KV cache for ``tokens`` per sequence: layers x 2 (K and V) x kv_heads x head_dim x bytes (03_fp8_and_memory)."""
    s = shape(config)
    return s.layers * 2 * s.kv_heads * s.head_dim * KV_BYTES[kv_dtype] * tokens * batch


def quantized_parameters(config: Any) -> int:
    """Parameters in the language-model linears that FP8/int8/int4 checkpoints convert (the rest stays bf16)."""
    return sum(rows * cols * count for rows, cols, count in _quantized_matrices(shape(config)))


# --------------------------------------------------------------------------------------------------
# Visual tokens
# --------------------------------------------------------------------------------------------------


def smart_resize(height: int, width: int, factor: int = 32, min_pixels: int = IMAGE_MIN_PIXELS,
                 max_pixels: int = IMAGE_MAX_PIXELS, frames: int = 1, temporal_factor: int = 1) -> tuple[int, int]:
    """Resized (height, width): multiples of ``factor``, frames*H*W within [min_pixels, max_pixels]."""
    for name, value, least in (("height", height, 1), ("width", width, 1), ("factor", factor, 1),
                               ("frames", frames, 1), ("temporal_factor", temporal_factor, 1),
                               ("min_pixels", min_pixels, 0), ("max_pixels", max_pixels, 1)):
        if not (isinstance(value, numbers.Real) and value >= least and (math.isfinite(value) or name == "max_pixels")):
            raise ValueError(f"{name}={value!r}: expected a number of at least {least}")  # NaN and 0 included
    if temporal_factor > 1 and (height < factor or width < factor):  # the video processor's rule
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be under 200, got {max(height, width) / min(height, width):.0f}")
    h = round(height / factor) * factor
    w = round(width / factor) * factor
    t = round(frames / temporal_factor) * temporal_factor
    if t * h * w > max_pixels:
        beta = math.sqrt(frames * height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif t * h * w < min_pixels:
        beta = math.sqrt(min_pixels / (frames * height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def image_tokens(width: int, height: int, min_pixels: int = IMAGE_MIN_PIXELS,
                 max_pixels: int = IMAGE_MAX_PIXELS) -> int:
    """Visual tokens of one image: resized to multiples of 32, one token per 32x32 pixels."""
    h, w = smart_resize(height, width, 32, min_pixels, max_pixels)
    return (h // 32) * (w // 32)


def video_frames(seconds: float, fps: float = VIDEO_FPS, source_fps: float = 30.0,
                 min_frames: int = VIDEO_MIN_FRAMES, max_frames: int = VIDEO_MAX_FRAMES) -> int:
    """Frames the Qwen3-VL video processor samples from a clip (fps, clamped to [min, max] and the clip)."""
    total = max(1, int(round(seconds * source_fps)))
    n = int(total / source_fps * fps)
    return min(max(n, min_frames), max_frames, total)


def video_tokens(seconds: float, width: int, height: int, fps: float = VIDEO_FPS, source_fps: float = 30.0,
                 min_pixels: int = VIDEO_MIN_PIXELS, max_pixels: int = VIDEO_MAX_PIXELS,
                 max_frames: int = VIDEO_MAX_FRAMES, cap_pixels_per_frame: bool = False,
                 frames: int | None = None) -> int:
    """Visual tokens of a video: sampled frames, resized jointly, two frames per temporal patch."""
    n = frames if frames is not None else video_frames(seconds, fps, source_fps, max_frames=max_frames)
    if n < 2:
        raise ValueError("a video needs at least 2 frames (temporal patch 2)")
    budget = max_pixels
    if cap_pixels_per_frame:
        per_frame = max(min(VIDEO_MAX_TOKENS_PER_FRAME * 32 * 32, max_pixels // n), int(min_pixels * 1.05))
        budget = per_frame * n
    h, w = smart_resize(height, width, 32, min_pixels, budget, frames=n, temporal_factor=2)
    return math.ceil(n / 2) * (h // 32) * (w // 32)


def _image_size(img: Any) -> tuple[int, int]:
    if hasattr(img, "size") and not isinstance(img, (tuple, list)):
        return tuple(img.size)  # PIL: (width, height)
    w, h = img
    return int(w), int(h)


def visual_tokens(images: Iterable[Any] = (), videos: Iterable[Any] = (), **budgets: int) -> int:
    """Total visual tokens for images ((width, height) or PIL) and videos ((seconds, width, height))."""
    n = sum(image_tokens(*_image_size(i), **budgets) for i in images)
    for v in videos:
        if isinstance(v, Mapping):
            n += video_tokens(**v)
        else:
            n += video_tokens(*v)
    return n


# --------------------------------------------------------------------------------------------------
# Estimate, table, plot
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate(Pretty):
    """Memory for one checkpoint, dtype, context and media: weights + KV cache + stated overhead."""

    model: str
    dtype: str
    params: int
    active_params: int
    weights: int
    text_tokens: int
    visual_tokens: int
    batch: int
    kv_cache: int
    overhead: int
    kv_dtype: str = "auto"

    @property
    def tokens(self) -> int:
        """Tokens per sequence held in the KV cache: text plus visual."""
        return self.text_tokens + self.visual_tokens

    @property
    def total(self) -> int:
        """Bytes: weights + KV cache + overhead."""
        return self.weights + self.kv_cache + self.overhead

    def __str__(self) -> str:
        return (
            f"{self.model} in {self.dtype}: {self.params / 1e9:.2f}B parameters"
            + (f" ({self.active_params / 1e9:.1f}B active)" if self.active_params != self.params else "")
            + f"\n  weights   {self.weights / GIB:8.2f} GiB"
            + f"\n  KV cache  {self.kv_cache / GIB:8.2f} GiB  ({self.tokens:,} tokens = {self.text_tokens:,} text"
            + f" + {self.visual_tokens:,} visual, batch {self.batch}, {KV_BYTES[self.kv_dtype]} byte(s) per value)"
            + f"\n  overhead  {self.overhead / GIB:8.2f} GiB  ({OVERHEAD_GIB:g} GiB + {OVERHEAD_FRACTION:.0%} of weights)"
            + f"\n  total     {self.total / GIB:8.2f} GiB"
        )


def estimate(model: Any, context: int = 4096, images: Sequence[Any] = (), videos: Sequence[Any] = (),
             batch: int = 1, dtype: str = "bf16", kv_dtype: str = "auto",
             overhead_gib: float = OVERHEAD_GIB, overhead_fraction: float = OVERHEAD_FRACTION) -> Estimate:
    """Estimate memory for ``model`` (size, hub id, config or Shape) at ``context`` text tokens + media."""
    s = shape(model)
    p = parameters(s)
    weights = weight_bytes(s, dtype)
    vis = visual_tokens(images, videos)
    kv = kv_cache_bytes(s, context + vis, batch, kv_dtype)
    name = model if isinstance(model, str) else getattr(model, "name_or_path", None) or "model"
    return Estimate(
        model=str(name), dtype=dtype, params=p.total, active_params=p.active, weights=weights,
        text_tokens=context, visual_tokens=vis, batch=batch, kv_cache=kv,
        overhead=int(overhead_gib * GIB + overhead_fraction * weights), kv_dtype=kv_dtype,
    )


def lineup_table(context: int | Sequence[int] = 8192, images: Sequence[Any] = (), videos: Sequence[Any] = (),
          dtypes: Sequence[str] = ("bf16", "fp8", "int4"), batch: int = 1,
          models: Sequence[str] = tuple(CHECKPOINTS)) -> list[dict[str, Any]]:
    """One row per line-up checkpoint and context: parameters, visual tokens, KV cache, totals by dtype, GiB (03)."""
    contexts = [context] if isinstance(context, int) else list(context)
    rows = []
    for m in models:
        p = parameters(m)
        for ctx in contexts:
            row: dict[str, Any] = {
                "model": m,
                "params_b": round(p.total / 1e9, 2),
                "active_b": round(p.active / 1e9, 2),
                "context": ctx,
                "visual_tokens": visual_tokens(images, videos),
            }
            for dt in dtypes:
                e = estimate(m, ctx, images, videos, batch=batch, dtype=dt)
                row["kv_gib"] = round(e.kv_cache / GIB, 2)
                row[f"weights_{dt}_gib"] = round(e.weights / GIB, 2)
                row[f"total_{dt}_gib"] = round(e.total / GIB, 2)
            rows.append(row)
    return rows


def plot(rows: Sequence[Mapping[str, Any]], dtypes: Sequence[str] = ("bf16", "fp8", "int4"),
         gpus_gb: Sequence[float] = (8, 16, 24, 48, 80), title: str | None = None) -> Any:
    """Bar chart of total memory per checkpoint (rows from ``lineup_table``), one bar per dtype, GPU sizes as lines (GiB)."""
    import matplotlib.pyplot as plt

    labels = [f"{r['model']}\n{r['context'] // 1024}K" if len({x['context'] for x in rows}) > 1 else r["model"]
              for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.2))
    width = 0.8 / len(dtypes)
    for j, dt in enumerate(dtypes):
        xs = [i + (j - (len(dtypes) - 1) / 2) * width for i in range(len(rows))]
        weights = [r[f"weights_{dt}_gib"] for r in rows]
        rest = [r[f"total_{dt}_gib"] - w for r, w in zip(rows, weights, strict=True)]
        bars = ax.bar(xs, weights, width, label=f"{dt} weights")
        ax.bar(xs, rest, width, bottom=weights, color=bars.patches[0].get_facecolor(), alpha=0.4,
               label=f"{dt} KV cache + overhead")
    for g in gpus_gb:  # a card sold as "24 GB" has 24 GiB of memory (a little less is usable)
        ax.axhline(g, color="grey", lw=0.7, ls="--", zorder=0)
        ax.text(-0.5, g, f"{g:g} GB card ({g:g} GiB)", va="bottom", ha="left", fontsize=7, color="grey")
    ax.set_yscale("log")
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(bottom=min(1.0, min(r[f"weights_{dt}_gib"] for r in rows for dt in dtypes) / 2))
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("GiB")
    ax.set_title(title or "Estimated memory per checkpoint")
    ax.legend(fontsize=7, ncol=len(dtypes), loc="upper left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Building configs from a shape (to instantiate and measure smaller copies)
# --------------------------------------------------------------------------------------------------


def to_config(model: Any, **changes: Any) -> Any:
    """A transformers Qwen3VL(Moe)Config with this shape; ``changes`` override Shape fields (e.g. layers=2)."""
    s = replace(shape(model), **changes)
    half = s.head_dim // 2
    t, h = round(half * 24 / 64), round(half * 20 / 64)
    text = dict(
        vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
        num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
        head_dim=s.head_dim, attention_bias=s.attention_bias, tie_word_embeddings=s.tie,
        rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0,
                         "mrope_section": [t, h, half - t - h], "mrope_interleaved": True},
    )
    step = max(1, s.vision_depth // max(1, s.deepstack))
    vision = dict(
        depth=s.vision_depth, hidden_size=s.vision_hidden, intermediate_size=s.vision_intermediate,
        num_heads=max(1, s.vision_hidden // 72) if s.vision_hidden % 72 == 0 else max(1, s.vision_hidden // 64),
        patch_size=s.patch, temporal_patch_size=s.temporal_patch, spatial_merge_size=s.merge,
        out_hidden_size=s.hidden, num_position_embeddings=s.position_embeddings, in_channels=s.in_channels,
        deepstack_visual_indexes=[min(s.vision_depth - 1, step * (i + 1) - 1) for i in range(s.deepstack)],
    )
    if s.moe:
        from transformers import Qwen3VLMoeConfig

        text.update(num_experts=s.experts, num_experts_per_tok=s.experts_per_token,
                    moe_intermediate_size=s.moe_intermediate, decoder_sparse_step=1, mlp_only_layers=[])
        return Qwen3VLMoeConfig(text_config=text, vision_config=vision, tie_word_embeddings=s.tie)
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=s.tie)


def instantiate(config: Any, dtype: Any = None, device: str = "cpu") -> Any:
    """Build a random-weight model from a config on ``device`` ("meta" allocates nothing)."""
    import torch
    from transformers import AutoModelForImageTextToText

    dtype = dtype or torch.bfloat16
    with torch.device(device):
        return AutoModelForImageTextToText.from_config(config, dtype=dtype)
