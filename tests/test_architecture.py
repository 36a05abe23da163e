"""cookbook.architecture against the model's own code: rotary axes, rope index, DeepStack,
timestamps and token counts (on the tiny model and the real processors)."""

from __future__ import annotations

import pytest

from cookbook import architecture as arch
from cookbook import video
from cookbook.kit import clips

# --- Interleaved-MRoPE ----------------------------------------------------------------------


def test_mrope_axes_hand_computed():
    assert arch.mrope_axes([2, 1, 1]) == ["t", "h", "w", "t"]
    assert arch.mrope_axes([2, 1, 1], interleaved=False) == ["t", "t", "h", "w"]
    big = arch.mrope_axes([24, 20, 20])
    assert "".join(big[:7]) == "thwthwt" and big[-4:] == ["t"] * 4
    assert [big.count(a) for a in "thw"] == [24, 20, 20]
    blocks = arch.mrope_axes([24, 20, 20], interleaved=False)
    assert blocks[23:25] == ["t", "h"] and blocks[43:45] == ["h", "w"]


def test_probe_matches_released_layout():
    """The 8B/4B text rotary (head_dim 128, [24, 20, 20]) built from transformers' own class."""
    from transformers import Qwen3VLTextConfig
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRotaryEmbedding

    cfg = Qwen3VLTextConfig(
        hidden_size=4096, num_attention_heads=32, head_dim=128,
        rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [24, 20, 20]},
    )
    probed = arch.probe_rotary_axes(Qwen3VLTextRotaryEmbedding(cfg))
    assert probed == arch.mrope_axes([24, 20, 20])
    assert probed != arch.mrope_axes([24, 20, 20], interleaved=False)
    assert arch.mrope_section_of(cfg) == [24, 20, 20]


def test_probe_matches_tiny_model(tiny):
    model, _ = tiny
    section = arch.mrope_section_of(model)
    assert section == [16, 8, 8]  # head_dim 64: 32 rotary frequencies split t/h/w (cookbook/kit/tiny.py)
    assert arch.probe_rotary_axes(model.model.language_model.rotary_emb) == arch.mrope_axes(section)


def test_rotary_frequencies():
    f = arch.rotary_frequencies(8, 10000.0)
    assert f.tolist() == pytest.approx([1.0, 0.1, 0.01, 0.001])


# --- 3-D position ids -----------------------------------------------------------------------


def test_segments_hand_example():
    pos = [[0, 1, 2, 2, 2, 2, 4], [0, 1, 2, 2, 3, 3, 4], [0, 1, 2, 3, 2, 3, 4]]
    kinds = [0, 0, 1, 1, 1, 1, 0]
    segs = arch.segments(pos, kinds)
    assert [(s.kind, s.start, s.end) for s in segs] == [("text", 0, 2), ("image", 2, 6), ("text", 6, 7)]
    assert (segs[1].t, segs[1].h, segs[1].w) == ((2, 2), (2, 3), (2, 3))


def test_rope_index_image_layout(tiny, photo):
    import cookbook as cb

    model, processor = tiny
    enc = cb.inputs(processor, [cb.messages.user(photo, "What is this?")])
    pos, _ = model.model.get_rope_index(
        enc["input_ids"], enc["mm_token_type_ids"], image_grid_thw=enc["image_grid_thw"],
        attention_mask=enc["attention_mask"],
    )
    _, gh, gw = (int(v) // m for v, m in zip(enc["image_grid_thw"][0], (1, 2, 2), strict=True))
    segs = arch.segments(pos[:, 0], enc["mm_token_type_ids"][0])
    image = next(s for s in segs if s.kind == "image")
    start = image.start  # text before the image counts 0..start-1
    assert image.end - image.start == gh * gw
    assert image.t == (start, start)
    assert image.h == (start, start + gh - 1) and image.w == (start, start + gw - 1)
    after = segs[segs.index(image) + 1]
    assert after.t[0] == start + max(gh, gw)  # text resumes after the larger side


# --- DeepStack ------------------------------------------------------------------------------


def test_deepstack_adds_exactly_the_features_at_visual_tokens(tiny, photo):
    import cookbook as cb

    model, processor = tiny
    enc = cb.inputs(processor, [cb.messages.user(photo, "Describe.")])
    n_visual = int((enc["input_ids"] == model.config.image_token_id).sum())
    injections = arch.trace_deepstack(model, enc)
    assert [(i.vision_layer, i.llm_layer) for i in injections] == [(0, 0), (1, 1)]
    hidden = model.config.text_config.hidden_size
    for inj in injections:
        assert inj.feature_shape == (n_visual, hidden)
        assert inj.added_error < 1e-5 * max(1.0, inj.hidden_norm_after)
        assert inj.text_changed == 0.0
        assert inj.feature_norm > 0 and inj.hidden_norm_after != inj.hidden_norm_before


def test_deepstack_with_image_and_video(tiny, photo, tmp_path):
    from transformers.video_utils import load_video

    model, processor = tiny
    clip = clips.write_clip(tmp_path / "c.mp4", seconds=2.0, fps=8, size=(96, 64))
    frames, meta = load_video(str(clip), backend="pyav")
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "text", "text": "?"}]}]
    text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], images=[photo], videos=[frames], video_metadata=[meta],
                    return_tensors="pt")
    n_visual = int(((enc["input_ids"] == model.config.image_token_id)
                    | (enc["input_ids"] == model.config.video_token_id)).sum())
    for inj in arch.trace_deepstack(model, enc):
        assert inj.feature_shape[0] == n_visual
        assert inj.added_error < 1e-5 and inj.text_changed == 0.0


# --- timestamps -----------------------------------------------------------------------------


def test_timestamp_helpers_hand_computed():
    assert arch.parse_timestamps("<0.2 seconds><|vision_start|>x<12.0 seconds>") == [0.2, 12.0]
    assert arch.expected_timestamps([0, 6, 13, 19], 12) == pytest.approx([0.25, 16 / 12])
    assert arch.expected_timestamps([0, 2, 4], 2) == pytest.approx([0.5, 2.0])  # last frame repeated
    assert video.frame_indices(72, 12, 2) == [0, 6, 13, 19, 26, 32, 39, 45, 52, 58, 65, 71]
    assert video.frame_indices(10, 10, 1) == [0, 3, 6, 9]  # at least min_frames=4


@pytest.fixture(scope="module")
def clip12(tmp_path_factory):
    path = clips.write_clip(tmp_path_factory.mktemp("ts") / "clip.mp4", seconds=6.0, fps=12, size=(128, 96))
    from transformers.video_utils import load_video

    return load_video(str(path), backend="pyav")


@pytest.mark.parametrize("sample_fps", [2.0, 1.0])
def test_processor_timestamps_match_expected(tiny, clip12, sample_fps):
    model, processor = tiny
    frames, meta = clip12
    msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "?"}]}]
    text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], videos=[frames], video_metadata=[meta], fps=sample_fps,
                    return_tensors="pt")
    got = arch.parse_timestamps(processor.decode(enc["input_ids"][0]))
    idx = video.frame_indices(72, 12.0, sample_fps)
    want = [float(f"{t:.1f}") for t in arch.expected_timestamps(idx, 12.0)]
    assert got == want
    assert len(got) == int(enc["video_grid_thw"][0, 0])


def test_frames_without_metadata_get_24_fps(tiny, clip12):
    model, processor = tiny
    frames, _ = clip12
    idx = video.frame_indices(72, 12.0, 2.0)
    msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "?"}]}]
    text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    bare = processor(text=[text], videos=[frames[idx]], do_sample_frames=False, return_tensors="pt")
    wrong = arch.parse_timestamps(processor.decode(bare["input_ids"][0]))
    assert wrong == [float(f"{t:.1f}") for t in arch.expected_timestamps(range(len(idx)), 24.0)]
    fixed = processor(text=[text], videos=[frames[idx]], do_sample_frames=False, return_tensors="pt",
                      video_metadata=[{"fps": 12.0, "frames_indices": idx, "total_num_frames": 72}])
    right = arch.parse_timestamps(processor.decode(fixed["input_ids"][0]))
    assert right == [float(f"{t:.1f}") for t in arch.expected_timestamps(idx, 12.0)]
    assert right[-1] == pytest.approx(5.7) and wrong[-1] < 0.5


# --- visual token accounting ----------------------------------------------------------------

SIZES = [(32, 32), (200, 120), (640, 480), (1000, 100), (1920, 1080), (4000, 3000), (20, 2000)]
BUDGETS = [(64, 16384), (4, 256), (256, 1280)]


@pytest.mark.parametrize("min_tokens,max_tokens", BUDGETS)
def test_token_breakdown_equals_image_processor(min_tokens, max_tokens):
    import numpy as np
    from PIL import Image
    from transformers import Qwen2VLImageProcessor

    proc = Qwen2VLImageProcessor(patch_size=16, temporal_patch_size=2, merge_size=2,
                                 size=arch.token_budget(max_tokens, min_tokens))
    for w, h in SIZES:
        ours = arch.token_breakdown(w, h, min_tokens * 1024, max_tokens * 1024)
        grid = proc(images=[Image.fromarray(np.zeros((h, w, 3), np.uint8))],
                    return_tensors="pt")["image_grid_thw"][0].tolist()
        assert [ours.grid_t, ours.grid_h, ours.grid_w] == grid, (w, h)
        assert ours.tokens == grid[1] * grid[2] // 4
        assert (ours.resized_height, ours.resized_width) == (grid[1] * 16, grid[2] * 16)


def test_token_breakdown_equals_prompt_placeholders(tiny):
    """End to end: the number of <|image_pad|> tokens the processor writes into the prompt."""
    import numpy as np
    from PIL import Image

    import cookbook as cb

    model, processor = tiny
    for w, h in [(640, 480), (333, 1000)]:
        img = Image.fromarray(np.full((h, w, 3), 127, np.uint8))
        enc = cb.inputs(processor, [cb.messages.user(img, "hi")])
        n = int((enc["input_ids"] == model.config.image_token_id).sum())
        assert n == arch.token_breakdown(w, h).tokens


def test_hand_computed_token_counts():
    # 640x480 at the default budget: 640/32=20, 480/32=15 -> 300 tokens, no resizing
    t = arch.token_breakdown(640, 480)
    assert (t.resized_width, t.resized_height, t.grid_h, t.grid_w, t.tokens) == (640, 480, 30, 40, 300)
    # 1920x1080 under 256 tokens: sqrt(1920*1080/262144) = 2.8125 -> 682.7/32 floor 21, 384/32 = 12
    t = arch.token_breakdown(1920, 1080, max_pixels=256 * 1024)
    assert (t.resized_width, t.resized_height, t.tokens) == (672, 384, 252)
    assert arch.token_budget(1280) == {"longest_edge": 1280 * 1024, "shortest_edge": 4096}


def test_plots_return_figures(tiny):
    import matplotlib

    matplotlib.use("Agg")
    fig = arch.plot_mrope_layout([24, 20, 20], head_dim=128)
    assert len(fig.axes) == 2
    inj = [arch.Injection(8, 0, (4, 8), 1, 1, 1, 0, 0), arch.Injection(16, 1, (4, 8), 1, 1, 1, 0, 0)]
    assert arch.plot_deepstack(inj, 27, 36).axes
    assert arch.plot_position_ids([[0, 1, 1], [0, 1, 2], [0, 2, 1]], [0, 1, 1]).axes

