"""The architecture tour's measuring and drawing helpers (notebook 11).

Interleaved-MRoPE (which rotary frequency follows time, height or width), DeepStack (which
vision-encoder layers are added to which language-model layers, observed with forward hooks),
text-timestamp alignment (the ``<t seconds>`` tokens the processor writes) and visual token
accounting (image size -> resized size -> patch grid -> tokens).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

AXES = ("t", "h", "w")
AXIS_COLOURS = {"t": "tab:orange", "h": "tab:blue", "w": "tab:green"}

# ---------------------------------------------------------------------------------------------
# Interleaved-MRoPE: which axis drives each rotary frequency
# ---------------------------------------------------------------------------------------------


def mrope_axes(mrope_section: Sequence[int], interleaved: bool = True) -> list[str]:
    """The axis ('t', 'h', 'w') that drives each of the ``sum(mrope_section)`` rotary frequencies (11).

    Interleaved (Qwen3-VL): slots 1, 4, 7, ... (the first ``3 * section[1]`` slots) follow
    height, slots 2, 5, 8, ... (the first ``3 * section[2]``) follow width, every other slot time,
    so each axis gets frequencies from the whole spectrum. In blocks (Qwen2-VL, Qwen2.5-VL): the
    first ``section[0]`` frequencies follow time, the next ``section[1]`` height, the last width.
    """
    s_t, s_h, s_w = (int(v) for v in mrope_section)
    n = s_t + s_h + s_w
    if not interleaved:
        return ["t"] * s_t + ["h"] * s_h + ["w"] * s_w
    axes = ["t"] * n
    for i in range(n):
        if i % 3 == 1 and i < 3 * s_h:
            axes[i] = "h"
        elif i % 3 == 2 and i < 3 * s_w:
            axes[i] = "w"
    return axes


def mrope_section_of(model_or_config: Any) -> list[int]:
    """``mrope_section`` from the model's config (``rope_parameters`` in transformers 5,
    ``rope_scaling`` in 4.x) (11)."""
    cfg = getattr(model_or_config, "config", model_or_config)
    cfg = getattr(cfg, "text_config", cfg)
    params = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    return list(params.get("mrope_section", [24, 20, 20]))


def rotary_frequencies(head_dim: int, theta: float) -> np.ndarray:
    """The ``head_dim / 2`` inverse frequencies of standard RoPE: theta^(-2i/head_dim) (11)."""
    return 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def probe_rotary_axes(rotary_emb: Any, position: int = 1000) -> list[str]:
    """Ask a text rotary-embedding module which axis each frequency follows (11).

    Feeds a position where only one axis (t, h or w) is non-zero and records which frequencies'
    sine moves. Works on ``model.model.language_model.rotary_emb`` (the model's own code).
    """
    import torch

    n = int(rotary_emb.inv_freq.shape[0])
    x = torch.zeros(1, dtype=torch.float32)
    owner = [""] * n
    for a, axis in enumerate(AXES):
        ids = torch.zeros(3, 1, 1, dtype=torch.long)
        ids[a] = position
        _, sin = rotary_emb(x, ids)
        moved = (sin[0, 0, :n] != 0).tolist()
        for i, m in enumerate(moved):
            if m:
                if owner[i]:
                    raise RuntimeError(f"frequency {i} follows both {owner[i]} and {axis}")
                owner[i] = axis
    return owner


def plot_mrope_layout(mrope_section: Sequence[int], head_dim: int | None = None, theta: float = 5e6) -> Any:
    """Two strips of coloured cells: each rotary frequency's axis, in blocks vs interleaved (11).

    With ``head_dim`` the x axis is labelled with each frequency's wavelength in tokens.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = sum(mrope_section)
    fig, axes = plt.subplots(2, 1, figsize=(10, 2.6), sharex=True)
    for ax, interleaved in zip(axes, (False, True), strict=True):
        owner = mrope_axes(mrope_section, interleaved)
        colours = [AXIS_COLOURS[a] for a in owner]
        ax.bar(range(n), np.ones(n), width=1.0, color=colours, edgecolor="white", linewidth=0.3)
        ax.set_yticks([])
        name = "interleaved (Qwen3-VL)" if interleaved else "in blocks (the Qwen2/2.5-VL layout)"
        ax.set_title(f"{name}, mrope_section={list(mrope_section)}", fontsize=9, loc="left")
    axes[-1].set_xlabel("frequency index i (0 = fastest rotation)")
    if head_dim:
        wave = 2 * math.pi / rotary_frequencies(head_dim, theta)
        ticks = sorted({0, n // 4, n // 2, 3 * n // 4, n - 1})
        axes[-1].set_xticks(ticks, [f"{i}\n~{wave[i]:.3g} tok" for i in ticks], fontsize=8)
    fig.legend(handles=[Patch(color=AXIS_COLOURS[a], label=a) for a in AXES], loc="upper right", ncol=3)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# 3-D position ids (from model.model.get_rope_index)
# ---------------------------------------------------------------------------------------------

KINDS = {0: "text", 1: "image", 2: "video"}


@dataclass(frozen=True)
class Segment:
    """A run of tokens of one kind and the ranges of its (t, h, w) positions (11)."""

    kind: str
    start: int
    end: int  # exclusive
    t: tuple[int, int]
    h: tuple[int, int]
    w: tuple[int, int]


def segments(position_ids: Any, mm_token_type_ids: Any) -> list[Segment]:
    """Split one sequence's (3, seq) position ids into runs of text / image / video tokens (11)."""
    pos = np.asarray(position_ids.tolist() if hasattr(position_ids, "tolist") else position_ids)
    kinds = np.asarray(mm_token_type_ids.tolist() if hasattr(mm_token_type_ids, "tolist") else mm_token_type_ids)
    pos, kinds = pos.reshape(3, -1), kinds.reshape(-1)
    out, start = [], 0
    for i in range(1, len(kinds) + 1):
        if i == len(kinds) or kinds[i] != kinds[start]:
            block = pos[:, start:i]
            rng = lambda r: (int(r.min()), int(r.max()))  # noqa: E731
            out.append(Segment(KINDS[int(kinds[start])], start, i, rng(block[0]), rng(block[1]), rng(block[2])))
            start = i
    return out


def plot_position_ids(position_ids: Any, mm_token_type_ids: Any, title: str = "") -> Any:
    """Plot the t, h and w position of every token, image and video runs shaded (11)."""
    import matplotlib.pyplot as plt

    pos = np.asarray(position_ids.tolist() if hasattr(position_ids, "tolist") else position_ids).reshape(3, -1)
    fig, ax = plt.subplots(figsize=(11, 3.6))
    shade = {"image": "#cfe3ff", "video": "#ffe2c4"}
    labelled = set()
    for seg in segments(pos, mm_token_type_ids):
        if seg.kind in shade:
            label = None if seg.kind in labelled else f"{seg.kind} tokens"
            labelled.add(seg.kind)
            ax.axvspan(seg.start - 0.5, seg.end - 0.5, color=shade[seg.kind], label=label, lw=0)
    x = np.arange(pos.shape[1])
    for a, axis in enumerate(AXES):
        ax.plot(x, pos[a], ".", ms=2.5, color=AXIS_COLOURS[axis], label=f"{axis} position")
    ax.set_xlabel("token index in the prompt")
    ax.set_ylabel("position id")
    ax.legend(loc="upper left", fontsize=8, ncol=5)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# DeepStack: hooks on the loaded model
# ---------------------------------------------------------------------------------------------


@dataclass
class Injection:
    """One DeepStack injection seen during a forward pass (11).

    ``vision_layer`` (index in the vision encoder) produced features that were added to the
    output of language-model layer ``llm_layer`` at the visual token positions.
    """

    vision_layer: int
    llm_layer: int
    feature_shape: tuple[int, ...]
    feature_norm: float  # mean L2 norm per visual token of the added features
    hidden_norm_before: float  # mean L2 norm of the hidden states at visual tokens, before the add
    hidden_norm_after: float
    added_error: float  # max |(after - before) - features| at visual tokens (0 up to rounding)
    text_changed: float  # max |after - before| at text tokens (exactly 0: text is untouched)

    def row(self) -> dict[str, Any]:
        """A dict for a table row (rounded)."""
        return {
            "vision layer": self.vision_layer, "-> LLM layer": self.llm_layer,
            "features": "x".join(map(str, self.feature_shape)),
            "|feature|": round(self.feature_norm, 3), "|h| before": round(self.hidden_norm_before, 3),
            "|h| after": round(self.hidden_norm_after, 3), "max add error": f"{self.added_error:.1e}",
            "text changed": self.text_changed,
        }


def _mean_norm(x: Any) -> float:
    return float(x.float().norm(dim=-1).mean()) if x.numel() else 0.0


def trace_deepstack(model: Any, inputs: Any) -> list[Injection]:
    """Run one forward pass with hooks and report every DeepStack injection (11).

    Hooks: each ``visual.deepstack_merger_list[j]`` (the features), the output of the LLM layer
    they are added after, and the input of the module that follows it (the next layer, or the
    final norm), so ``after - before`` is exactly what DeepStack added.
    """
    import torch

    core = model.model
    visual, lm = core.visual, core.language_model
    vision_layers = list(visual.deepstack_visual_indexes)
    n = len(vision_layers)
    feats: dict[int, list[Any]] = {j: [] for j in range(n)}
    before: dict[int, Any] = {}
    after: dict[int, Any] = {}
    handles = []

    def cpu(x):  # measured on the CPU in float32, whatever the model's device and dtype
        return x.detach().float().cpu()

    def keep_feature(j):
        return lambda mod, args, out: feats[j].append(cpu(out))

    def keep_output(i):
        return lambda mod, args, out: before.__setitem__(i, cpu(out[0] if isinstance(out, tuple) else out))

    def keep_input(i):
        def hook(mod, args, kwargs):
            after[i] = cpu(args[0] if args else kwargs["hidden_states"])
        return hook

    for j in range(n):
        handles.append(visual.deepstack_merger_list[j].register_forward_hook(keep_feature(j)))
    for i in range(n):
        handles.append(lm.layers[i].register_forward_hook(keep_output(i)))
        following = lm.layers[i + 1] if i + 1 < len(lm.layers) else lm.norm
        handles.append(following.register_forward_pre_hook(keep_input(i), with_kwargs=True))
    try:
        with torch.no_grad():
            model(**inputs, use_cache=False)
    finally:
        for h in handles:
            h.remove()

    ids = inputs["input_ids"].cpu()
    image_mask = ids == model.config.image_token_id
    video_mask = ids == model.config.video_token_id
    visual_mask = image_mask | video_mask
    has_image = "pixel_values" in inputs and inputs["pixel_values"] is not None
    out = []
    for j in range(n):
        # Rebuild what the model adds: image features at image tokens, video features at video tokens
        # (the vision tower runs once for the images, then once for the videos).
        calls = list(feats[j])
        width = calls[0].shape[-1]
        added = torch.zeros(int(visual_mask.sum()), width)
        joint_image = image_mask[visual_mask]
        if has_image and image_mask.any():
            added[joint_image] = calls.pop(0)
        if video_mask.any():
            added[~joint_image] = calls.pop(0)
        h0, h1 = before[j][visual_mask], after[j][visual_mask]
        text0, text1 = before[j][~visual_mask], after[j][~visual_mask]
        out.append(Injection(
            vision_layer=vision_layers[j], llm_layer=j, feature_shape=tuple(added.shape),
            feature_norm=_mean_norm(added), hidden_norm_before=_mean_norm(h0),
            hidden_norm_after=_mean_norm(h1), added_error=float((h1 - h0 - added).abs().max()),
            text_changed=float((text1 - text0).abs().max()) if text0.numel() else 0.0,
        ))
    return out


def plot_deepstack(injections: Sequence[Injection], vision_depth: int, llm_depth: int) -> Any:
    """Draw the vision-encoder and LLM layer stacks with an arrow per DeepStack injection (11).

    Layer 0 is at the bottom of each stack; the language model's input embeddings (where the
    last vision layer's merged output goes, as visual tokens) sit below its layer 0.
    """
    import matplotlib.pyplot as plt

    tallest = max(vision_depth, llm_depth + 1)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.22 * tallest))
    vx, lx, width = 0.0, 4.0, 1.6
    for k in range(vision_depth):
        ax.add_patch(plt.Rectangle((vx, k), width, 0.8, color="#dde6f0"))
        ax.text(vx + width / 2, k + 0.4, str(k), ha="center", va="center", fontsize=7)
    ax.add_patch(plt.Rectangle((lx, -1.2), width, 0.8, color="#f3e3c3"))
    ax.text(lx + width / 2, -0.8, "embeddings", ha="center", va="center", fontsize=7)
    for k in range(llm_depth):
        ax.add_patch(plt.Rectangle((lx, k), width, 0.8, color="#dde6f0"))
        ax.text(lx + width / 2, k + 0.4, str(k), ha="center", va="center", fontsize=7)
    ax.text(vx + width / 2, vision_depth + 0.3, "vision encoder", ha="center", fontsize=9)
    ax.text(lx + width / 2, llm_depth + 0.3, "language model", ha="center", fontsize=9)
    ax.annotate("", xy=(lx, -0.8), xytext=(vx + width, vision_depth - 0.6),
                arrowprops=dict(arrowstyle="->", color="grey", ls="--"))
    for inj in injections:
        ax.annotate("", xy=(lx, inj.llm_layer + 0.4), xytext=(vx + width, inj.vision_layer + 0.4),
                    arrowprops=dict(arrowstyle="->", color="tab:red", lw=1.4))
    ax.text((vx + width + lx) / 2, -1.1, "last layer: merger -> visual tokens", ha="center",
            fontsize=7, color="grey")
    ax.text((vx + width + lx) / 2, tallest + 0.1, "red: DeepStack (merged, added to the layer's output)",
            ha="center", fontsize=7, color="tab:red")
    ax.set_xlim(-0.3, lx + width + 0.3)
    ax.set_ylim(-1.5, tallest + 0.6)
    ax.axis("off")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Text-timestamp alignment
# ---------------------------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"<(\d+(?:\.\d+)?) seconds>")


def parse_timestamps(text: str) -> list[float]:
    """The times of the ``<t seconds>`` markers in a decoded prompt, in order (11)."""
    return [float(t) for t in _TIMESTAMP.findall(text)]


def expected_timestamps(frames_indices: Sequence[int], fps: float, temporal_patch_size: int = 2) -> list[float]:
    """The time of each temporal patch: the mean time of its frames, ``index / fps`` (11).

    Frames are grouped ``temporal_patch_size`` at a time; a short last group repeats the last frame.
    """
    idx = [int(i) for i in frames_indices]
    while len(idx) % temporal_patch_size:
        idx.append(idx[-1])
    groups = [idx[k : k + temporal_patch_size] for k in range(0, len(idx), temporal_patch_size)]
    return [(g[0] + g[-1]) / 2 / fps for g in groups]


def plot_frames(frames: Sequence[Any], titles: Sequence[str], cols: int = 6) -> Any:
    """A contact sheet: frames (H, W, 3 arrays) in a grid with a title each (11)."""
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(len(frames) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, frame, title in zip(axes.ravel(), frames, titles, strict=False):
        ax.imshow(frame)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def sample_indices(total_frames: int, video_fps: float, sample_fps: float, min_frames: int = 4,
                   max_frames: int = 768) -> list[int]:
    """The frame indices a Qwen3-VL video processor keeps when sampling at ``sample_fps`` (11):
    ``total/video_fps*sample_fps`` frames (clamped to [min_frames, max_frames] and the total),
    spread evenly from the first frame to the last."""
    from cookbook.memory import video_frames  # the one copy of the frame-count rule

    n = video_frames(total_frames / video_fps, sample_fps, video_fps, min_frames, max_frames)
    return [int(v) for v in np.linspace(0, total_frames - 1, n).round().astype(int)]


# ---------------------------------------------------------------------------------------------
# Visual token accounting
# ---------------------------------------------------------------------------------------------

PATCH, MERGE = 16, 2
FACTOR = PATCH * MERGE  # one visual token = 32 x 32 pixels


@dataclass(frozen=True)
class ImageTokens:
    """One image's way from pixels to visual tokens (11)."""

    height: int
    width: int
    resized_height: int
    resized_width: int
    grid_t: int
    grid_h: int
    grid_w: int
    tokens: int

    def row(self) -> dict[str, Any]:
        """A dict for a table row."""
        return {
            "image (WxH)": f"{self.width}x{self.height}",
            "resized (WxH)": f"{self.resized_width}x{self.resized_height}",
            "grid (t,h,w)": f"{self.grid_t},{self.grid_h},{self.grid_w}",
            "patches": self.grid_t * self.grid_h * self.grid_w, "tokens": self.tokens,
        }


def token_breakdown(width: int, height: int, min_pixels: int = 64 * FACTOR**2,
                    max_pixels: int = 16384 * FACTOR**2, patch_size: int = PATCH,
                    merge_size: int = MERGE) -> ImageTokens:
    """Follow an image (``width`` x ``height``, PIL order) from pixels to visual tokens (11).

    Resized with ``cb.memory.smart_resize`` to multiples of 32 within [min_pixels, max_pixels],
    cut into 16x16 patches (grid_h x grid_w), 2x2 patches merged into one token. Defaults: the
    released checkpoints' budget of 64 to 16384 tokens.
    """
    from cookbook.memory import smart_resize  # the cookbook's one copy of the resize rule

    rh, rw = smart_resize(height, width, patch_size * merge_size, min_pixels, max_pixels)
    gh, gw = rh // patch_size, rw // patch_size
    return ImageTokens(height, width, rh, rw, 1, gh, gw, gh * gw // merge_size**2)


def token_budget(max_tokens: int, min_tokens: int = 4) -> dict[str, int]:
    """The image processor ``size`` dict for a budget in tokens (11): ``{"longest_edge": ...,
    "shortest_edge": ...}`` in pixels (1 token = 32x32), honoured by every transformers release."""
    return {"longest_edge": max_tokens * FACTOR**2, "shortest_edge": min_tokens * FACTOR**2}


def draw_token_grid(image: Any, grid_h: int, grid_w: int) -> Any:
    """The image resized to its grid, with a line around every visual token (32x32 px) (11)."""
    from PIL import ImageDraw

    w, h = grid_w * PATCH, grid_h * PATCH
    out = image.convert("RGB").resize((w, h), resample=3)
    draw = ImageDraw.Draw(out)
    for x in range(0, w + 1, FACTOR):
        draw.line([(min(x, w - 1), 0), (min(x, w - 1), h)], fill=(255, 255, 0), width=1)
    for y in range(0, h + 1, FACTOR):
        draw.line([(0, min(y, h - 1)), (w, min(y, h - 1))], fill=(255, 255, 0), width=1)
    return out
