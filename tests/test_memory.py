"""The memory estimator (cookbook.memory) against facts, real processors and models instantiated here."""

from __future__ import annotations

import math

import pytest

from cookbook import memory as m
from cookbook.kit import checkpoints

# Parameter counts (billions) on the Hugging Face pages of Qwen/Qwen3-VL-*-Instruct; the count of the
# model transformers builds must land within 2% (the 4B page counts lm_head although it is tied).
ADVERTISED_B = {"2B": 2.13, "4B": 4.44, "8B": 8.77, "32B": 33.4, "30B-A3B": 31.1, "235B-A22B": 236.0}
ACTIVE_B = {"30B-A3B": 3.0, "235B-A22B": 22.0}  # the A3B / A22B in the names

# A trimmed copy of Qwen/Qwen3-VL-4B-Instruct's config.json (only keys the estimator may read).
CONFIG_JSON_4B = {
    "architectures": ["Qwen3VLForConditionalGeneration"],
    "model_type": "qwen3_vl",
    "text_config": {
        "head_dim": 128, "hidden_size": 2560, "intermediate_size": 9728, "num_attention_heads": 32,
        "num_hidden_layers": 36, "num_key_value_heads": 8, "tie_word_embeddings": True,
        "vocab_size": 151936, "attention_bias": False,
    },
    "tie_word_embeddings": True,
    "vision_config": {
        "deepstack_visual_indexes": [5, 11, 17], "depth": 24, "hidden_size": 1024, "in_channels": 3,
        "intermediate_size": 4096, "num_heads": 16, "num_position_embeddings": 2304,
        "out_hidden_size": 2560, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
    },
}


def test_stored_shapes_match_the_facts_sheet():
    s8, s4 = checkpoints.CHECKPOINTS["8B"], checkpoints.CHECKPOINTS["4B"]
    assert (s8.hidden, s8.layers, s8.heads, s8.kv_heads, s8.head_dim) == (4096, 36, 32, 8, 128)
    assert (s8.vision_depth, s8.vision_hidden, s8.deepstack) == (27, 1152, 3)
    assert (s4.hidden, s4.vision_depth, s4.vision_hidden, s4.deepstack) == (2560, 24, 1024, 3)
    assert set(checkpoints.CHECKPOINTS) == {"2B", "4B", "8B", "32B", "30B-A3B", "235B-A22B"}


@pytest.mark.parametrize("size", list(ADVERTISED_B))
def test_parameter_count_matches_the_advertised_size(size):
    p = m.parameters(size)
    assert p.total / 1e9 == pytest.approx(ADVERTISED_B[size], rel=0.02)
    if size in ACTIVE_B:
        # the name counts the language model's active parameters; the vision tower runs on top
        assert (p.active - p.vision) / 1e9 == pytest.approx(ACTIVE_B[size], rel=0.15)
        assert p.active < p.total / 7  # 8 of 128 experts per token
    else:
        assert p.active == p.total


def test_shape_from_config_json_dict_and_hub_ids():
    assert m.shape(CONFIG_JSON_4B) == checkpoints.CHECKPOINTS["4B"]
    for hub_id in ("Qwen/Qwen3-VL-4B-Instruct", "Qwen/Qwen3-VL-4B-Thinking-FP8", "4b"):
        assert m.shape(hub_id) == checkpoints.CHECKPOINTS["4B"]
    assert m.shape("Qwen/Qwen3-VL-30B-A3B-Instruct-FP8") == checkpoints.CHECKPOINTS["30B-A3B"]
    with pytest.raises(KeyError, match="line-up"):
        m.shape("Qwen/Qwen2.5-VL-7B-Instruct")


@pytest.mark.parametrize("size", list(checkpoints.CHECKPOINTS))
def test_estimate_equals_the_full_size_model_on_meta(size):
    """Every line-up architecture, built by transformers on the meta device (no memory)."""
    import torch

    config = m.to_config(size)
    assert m.shape(config) == checkpoints.CHECKPOINTS[size]
    for dtype, name in ((torch.bfloat16, "bf16"), (torch.float32, "fp32")):
        model = m.instantiate(config, dtype, device="meta")
        assert sum(p.numel() * p.element_size() for p in model.parameters()) == m.weight_bytes(size, name)
    counted, estimated = m.count_parameters(model), m.parameters(size)
    assert counted.as_dict() | {"active": 0, "experts_active": 0} == (
        estimated.as_dict() | {"active": 0, "experts_active": 0}
    )


@pytest.mark.parametrize(
    "size,changes,dtype",
    [
        ("2B", dict(layers=2, vision_depth=3), "bf16"),  # the 2B's real widths, 1.1 GB
        ("30B-A3B", dict(layers=2, vision_depth=3, experts=8, experts_per_token=2, vocab=32000), "bf16"),
        ("2B", dict(layers=1, vision_depth=1, deepstack=1, vocab=4096), "fp32"),
    ],
)
def test_estimate_equals_a_model_allocated_on_cpu(size, changes, dtype):
    import torch

    config = m.to_config(size, **changes)
    model = m.instantiate(config, {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype], device="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert sum(p.numel() * p.element_size() for p in model.parameters()) == m.weight_bytes(config, dtype)
    assert m.count_parameters(model).total == m.parameters(config).total


def test_kv_cache_matches_a_real_cache():
    import torch

    shape = m.Shape(hidden=64, layers=3, heads=4, kv_heads=2, head_dim=16, intermediate=96, vocab=500,
                    tie=True, vision_depth=1, vision_hidden=32, vision_intermediate=64, deepstack=1)
    torch.manual_seed(0)
    model = m.instantiate(m.to_config(shape), torch.float32).eval()
    with torch.no_grad():
        out = model(input_ids=torch.randint(0, 500, (2, 37)), use_cache=True)
    cache = out.past_key_values
    real = sum(layer.keys.numel() * 4 + layer.values.numel() * 4 for layer in cache.layers)
    assert real == m.kv_cache_bytes(shape, tokens=37, batch=2, kv_dtype="fp32")


def test_kv_cache_of_8b_at_32k():
    # 36 layers x 2 x 8 KV heads x 128 x 2 bytes = 144 KiB per token
    assert m.kv_cache_bytes("8B", 1) == 147456
    assert m.kv_cache_bytes("8B", 32768) == 4.5 * m.GIB
    assert m.kv_cache_bytes("235B-A22B", 1) == 94 * 2 * 4 * 128 * 2
    assert m.kv_cache_bytes("8B", 32768, kv_dtype="fp8") == 2.25 * m.GIB  # --kv-cache-dtype fp8 halves it
    assert m.estimate("8B", 32768, kv_dtype="fp8").kv_cache * 2 == m.estimate("8B", 32768).kv_cache


def test_weight_bytes_by_scheme_for_a_hand_checked_shape():
    s = m.Shape(hidden=256, layers=1, heads=2, kv_heads=1, head_dim=128, intermediate=300, vocab=1000,
                tie=True, vision_depth=1, vision_hidden=32, vision_intermediate=32, deepstack=0)
    total = m.parameters(s).total
    # linears: q 256x256, k 128x256, v 128x256, o 256x256, gate/up 300x256, down 256x300
    mats = [(256, 256), (128, 256), (128, 256), (256, 256), (300, 256), (300, 256), (256, 300)]
    n = sum(r * c for r, c in mats)
    blocks = sum(math.ceil(r / 128) * math.ceil(c / 128) for r, c in mats)
    assert blocks == 4 + 2 + 2 + 4 + 6 + 6 + 6
    assert m.quantized_parameters(s) == n
    assert m.weight_bytes(s, "bf16") == 2 * total
    assert m.weight_bytes(s, "fp8") == n + 4 * blocks + 2 * (total - n)
    assert m.weight_bytes(s, "int8") == n + 4 * sum(r for r, _ in mats) + 2 * (total - n)
    groups = sum(r * math.ceil(c / 128) for r, c in mats)
    assert m.weight_bytes(s, "int4") == math.ceil(n / 2 + 2.5 * groups) + 2 * (total - n)
    with pytest.raises(ValueError, match="unknown dtype"):
        m.weight_bytes(s, "fp4")


def test_fp8_8b_is_more_than_half_of_bf16():
    """The seed says 16 GB -> 8 GB; embeddings, lm_head and the vision tower stay bf16 (about 10.6 GB)."""
    bf16, fp8 = m.weight_bytes("8B", "bf16"), m.weight_bytes("8B", "fp8")
    assert bf16 / 1e9 == pytest.approx(17.53, abs=0.01)
    assert fp8 / 1e9 == pytest.approx(10.59, abs=0.01)
    p = m.parameters("8B")
    kept = p.vision + p.embeddings + p.lm_head
    assert fp8 > 2 * kept + (p.total - kept)


@pytest.mark.parametrize("size", [(640, 480), (1920, 1080), (100, 50), (33, 1000), (20, 20)])
def test_image_tokens_match_the_real_image_processor(size):
    import numpy as np
    from transformers import Qwen2VLImageProcessor

    processor = Qwen2VLImageProcessor(
        patch_size=16, merge_size=2, temporal_patch_size=2,
        size={"shortest_edge": m.IMAGE_MIN_PIXELS, "longest_edge": m.IMAGE_MAX_PIXELS},
    )
    w, h = size
    grid = processor(images=[np.zeros((h, w, 3), dtype=np.uint8)], return_tensors="pt")["image_grid_thw"]
    assert m.image_tokens(w, h) == int(grid.prod()) // 4


def test_image_tokens_known_values():
    assert m.image_tokens(1024, 1024) == 1024  # the seed's "keep images under 1024x1024"
    assert m.image_tokens(1920, 1080) == 60 * 34
    assert m.image_tokens(10, 10) == 64  # the checkpoint's minimum
    assert m.image_tokens(8000, 8000) == 16384  # and maximum


@pytest.mark.parametrize("frames,w,h", [(8, 640, 360), (8, 1280, 720), (16, 1920, 1080)])
def test_smart_resize_with_frames_matches_the_real_video_processor(frames, w, h):
    import torch
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    budget = {"min_pixels": checkpoints.VIDEO_MIN_PIXELS, "max_pixels": checkpoints.VIDEO_MAX_PIXELS}
    processor = Qwen3VLVideoProcessor(size={"shortest_edge": budget["min_pixels"], "longest_edge": budget["max_pixels"]})
    video = torch.zeros((frames, 3, h, w), dtype=torch.uint8)
    out = processor(videos=[video], do_sample_frames=False, cap_pixels_per_frame=False, return_tensors="pt")
    rh, rw = m.smart_resize(h, w, frames=frames, temporal_factor=2, **budget)
    assert frames // 2 * (rh // 32) * (rw // 32) == int(out["video_grid_thw"].prod()) // 4


@pytest.mark.parametrize("bounds", [(m.IMAGE_MIN_PIXELS, m.IMAGE_MAX_PIXELS), (4 * 32 * 32, 256 * 32 * 32),
                                    (56 * 56, 14 * 14 * 4 * 1280)])
def test_smart_resize_equals_qwen_vl_utils_and_the_processor_for_single_images(bounds):
    """ONE resize rule: for one image ours (03) is qwen-vl-utils' smart_resize and the processor's own
    (transformers, which cb.messages.image uses), factor 32."""
    from qwen_vl_utils.vision_process import smart_resize as reference
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as processor_rule

    lo, hi = bounds
    for h in (32, 33, 50, 100, 224, 479, 720, 1080, 1500, 4000, 9000):
        for w in (32, 47, 64, 300, 640, 1001, 1920, 3000, 8000):
            if max(h, w) / min(h, w) > 200:
                continue
            ours = m.smart_resize(h, w, 32, lo, hi)
            assert ours == reference(h, w, factor=32, min_pixels=lo, max_pixels=hi), (h, w)
            assert ours == processor_rule(h, w, factor=32, min_pixels=lo, max_pixels=hi), (h, w)


def test_estimate_adds_up():
    e = m.estimate("Qwen/Qwen3-VL-8B-Instruct", context=8192, images=[(1920, 1080)], batch=2)
    assert e.visual_tokens == 2040 and e.tokens == 8192 + 2040
    assert e.kv_cache == m.kv_cache_bytes("8B", 8192 + 2040, batch=2)
    assert e.weights == m.weight_bytes("8B", "bf16")
    assert e.overhead == int(m.GIB + 0.1 * e.weights)
    assert e.total == e.weights + e.kv_cache + e.overhead
    assert "KV cache" in str(e) and "Qwen/Qwen3-VL-8B-Instruct" in str(e)
    video = m.estimate("8B", context=1024, images=[(1920, 1080)], video_tokens=11_400, dtype="fp8")
    assert video.visual_tokens == 2040 + 11_400 and video.kv_cache == m.kv_cache_bytes("8B", 1024 + 13_440)


def test_lineup_table_rows_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    rows = m.lineup_table(context=[8192, 131072], images=[(1280, 720)], dtypes=("bf16", "fp8"))
    assert len(rows) == 12 and [r["model"] for r in rows[:2]] == ["2B", "2B"]
    r8 = next(r for r in rows if r["model"] == "8B" and r["context"] == 8192)
    assert r8["visual_tokens"] == 880  # 720 / 32 = 22.5 rounds to 22 (round half to even): 22 x 40
    assert r8["weights_bf16_gib"] == round(m.weight_bytes("8B") / m.GIB, 2)
    assert r8["total_fp8_gib"] < r8["total_bf16_gib"]
    long = next(r for r in rows if r["model"] == "8B" and r["context"] == 131072)
    assert long["kv_gib"] == round(m.kv_cache_bytes("8B", 131072 + 880) / m.GIB, 2) == 18.12
    fig = m.plot(rows, dtypes=("bf16", "fp8"))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.get_xticklabels()) == 12


def test_estimate_equals_the_tiny_checkpoint(tiny, photo):
    """The project's tiny checkpoint (float32): weight bytes, parts, and the image tokens in a real prompt."""
    import cookbook as cb

    model, processor = tiny
    assert sum(p.numel() * p.element_size() for p in model.parameters()) == m.weight_bytes(model.config, "fp32")
    assert m.count_parameters(model).as_dict() | {"active": 0} == m.parameters(model.config).as_dict() | {"active": 0}
    encoded = cb.inputs(processor, [cb.messages.user(photo, "Hi")])
    in_prompt = int((encoded["input_ids"] == model.config.image_token_id).sum())
    # 200x120 is below the 64-token minimum, so it is scaled up to 352x224: 11 x 7 tokens
    assert in_prompt == m.image_tokens(*photo.size) == 77
