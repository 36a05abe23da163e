import pytest
import torch

import cookbook as cb
from cookbook.generation import split_thinking
from cookbook.kit.messages import InputError
from cookbook.runtime.engine import is_thinking
from cookbook.runtime.settings import SMOKE_BUDGET


def test_split_thinking():
    assert split_thinking("I look.\n</think>\n\nA cat.") == ("I look.", "A cat.")
    assert split_thinking("<think>\nhm</think>ok") == ("hm", "ok")
    assert split_thinking("just an answer") == ("", "just an answer")


def test_inputs_follow_the_fixed_recipe(tiny, photo):
    model, processor = tiny
    enc = cb.inputs(processor, [cb.messages.user(photo, "Describe.")], device=model.device)
    assert {"input_ids", "attention_mask", "pixel_values", "image_grid_thw"} <= set(enc)
    image_id = model.config.image_token_id
    assert int((enc["input_ids"] == image_id).sum()) == int(enc["image_grid_thw"].prod()) // 4
    assert enc["input_ids"].device == model.device


def test_chat_trims_the_prompt_and_counts_tokens(tiny, photo):
    model, processor = tiny
    conv = [cb.messages.user(photo, "Describe this image.")]
    reply = cb.chat(model, processor, conv, do_sample=False, presence_penalty=0, max_new_tokens=6)
    enc = cb.inputs(processor, conv)
    with torch.inference_mode():
        raw = model.generate(**enc, do_sample=False, max_new_tokens=6)
    expected = processor.decode(raw[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert reply.text == expected and reply.answer == expected.strip()
    assert reply.prompt_tokens == enc["input_ids"].shape[1] and 1 <= reply.new_tokens <= 6
    assert "Describe this image" not in reply.text and reply.seconds > 0


@pytest.mark.filterwarnings("ignore:Unfeasible length constraints")
def test_chat_reads_no_environment(tiny, photo, monkeypatch):
    """The same call gives the same reply in a smoke run and a real run: no hidden cap."""
    model, processor = tiny
    conv = [cb.messages.user(photo, "Hi")]
    replies = []
    encodings = []
    for value in ("tiny", "Qwen/Qwen3-VL-8B-Instruct"):
        monkeypatch.setenv("COOKBOOK_MODEL", value)
        encodings.append(cb.inputs(processor, conv))
        replies.append(cb.chat(model, processor, conv, seed=0, min_new_tokens=24, max_new_tokens=24))
        pieces = list(cb.stream(model, processor, conv, seed=0, min_new_tokens=24, max_new_tokens=24))
        assert "".join(pieces).strip() == replies[-1].text.strip()
    assert replies[0].text == replies[1].text
    assert all(torch.equal(encodings[0][k], encodings[1][k]) for k in encodings[0])
    assert replies[0].new_tokens == 24 > SMOKE_BUDGET.max_new_tokens  # the smoke budget did not cap it


def test_the_chat_module_reads_no_settings():
    import ast
    import importlib
    from pathlib import Path

    source = Path(importlib.import_module("cookbook.runtime.engine").__file__).read_text()
    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    modules = {n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    assert not names & {"settings", "budget", "environ"} and "cookbook.runtime.settings" not in modules


def test_seed_makes_sampling_repeatable(tiny, photo):
    model, processor = tiny
    conv = [cb.messages.user(photo, "Tell a story.")]
    a = cb.chat(model, processor, conv, seed=3, max_new_tokens=8)
    b = cb.chat(model, processor, conv, seed=3, max_new_tokens=8)
    assert a.text == b.text


def test_batch_is_left_padded_and_matches_single_runs(tiny, photo):
    model, processor = tiny
    convs = [[cb.messages.user(photo, "Describe.")],
             [cb.messages.user(photo.resize((96, 64)), "What colour is the square in this picture?")]]
    snapshot = repr(convs)
    processor.tokenizer.padding_side = "right"  # as a tokenizer for training would have it
    try:
        enc = cb.inputs(processor, convs)
        replies = cb.chat(model, processor, convs, do_sample=False, max_new_tokens=5)
        assert processor.tokenizer.padding_side == "right"  # left as it was given
    finally:
        processor.tokenizer.padding_side = "left"
    assert repr(convs) == snapshot and len(replies) == 2  # the conversations are unchanged too
    assert enc["attention_mask"][:, -1].tolist() == [1, 1]  # padded on the left: every row ends in a token
    singles = [cb.chat(model, processor, c, do_sample=False, max_new_tokens=5) for c in convs]
    assert [r.prompt_tokens for r in replies] == [s.prompt_tokens for s in singles]
    # greedy decoding is the same with and without padding (float32 on CPU)
    assert [r.text for r in replies] == [s.text for s in singles]


def test_stream_yields_the_same_text(tiny, photo, capsys):
    model, processor = tiny
    conv = [cb.messages.user(photo, "Describe.")]
    pieces = list(cb.stream(model, processor, conv, do_sample=False, max_new_tokens=6))
    whole = cb.chat(model, processor, conv, do_sample=False, max_new_tokens=6)
    assert "".join(pieces).strip() == whole.text.strip() and len(pieces) >= 1
    seen: list[str] = []
    streamed = cb.chat(model, processor, conv, on_text=seen.append, do_sample=False, max_new_tokens=6)
    assert streamed.text == whole.text and "".join(seen).strip() == whole.text.strip()
    assert capsys.readouterr().out == ""  # chat prints nothing itself


def test_multi_turn(tiny, photo):
    model, processor = tiny
    conv = [cb.messages.user(photo, "What is this?")]
    first = cb.chat(model, processor, conv, max_new_tokens=4, seed=0)
    conv += [cb.messages.assistant(first.answer or "?"), cb.messages.user("And the colour?")]
    second = cb.chat(model, processor, conv, max_new_tokens=4, seed=0)
    assert second.prompt_tokens > first.prompt_tokens + 4


def test_thinking_flavour(tiny_thinking, photo):
    model, processor = tiny_thinking
    assert is_thinking(processor)
    reply = cb.chat(model, processor, [cb.messages.user(photo, "Why?")], max_new_tokens=4, seed=0)
    assert (reply.reasoning, reply.answer) == split_thinking(reply.text)
    prompt = processor.apply_chat_template([cb.messages.user("Why?")], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")


def test_bad_input_is_named(tiny):
    model, processor = tiny
    with pytest.raises(InputError, match="no messages"):
        cb.chat(model, processor, [])
    with pytest.raises(InputError, match="empty content"):
        cb.chat(model, processor, [{"role": "user", "content": []}])
    with pytest.raises(KeyError, match="unknown preset"):
        cb.chat(model, processor, [cb.messages.user("hi")], preset="wild")


def test_prompt_longer_than_the_context_is_refused(tiny, photo, monkeypatch):
    model, processor = tiny
    monkeypatch.setattr(model.config.text_config, "max_position_embeddings", 32)  # the prompt is ~30+24 tokens
    with pytest.raises(InputError, match="context is 32"):
        cb.chat(model, processor, [cb.messages.user(photo, "Hi")], max_new_tokens=2)


def _write_clip(path, frames, fps, size):
    """A real H.264 file encoded with PyAV: a bright square moving across a dark frame."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            arr = np.full((size[1], size[0], 3), 30, dtype=np.uint8)
            x = i * (size[0] - 16) // max(frames - 1, 1)
            arr[40:56, x:x + 16] = 230
            container.mux(stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_video_file_gets_frames_and_true_timestamps(tiny, tmp_path):
    import re

    model, processor = tiny
    clip = _write_clip(tmp_path / "clip.mp4", frames=40, fps=10, size=(128, 96))
    enc = cb.inputs(processor, [cb.messages.user(cb.messages.video(clip, fps=2), "What moves?")])
    text = processor.decode(enc["input_ids"][0])
    stamps = [float(t) for t in re.findall(r"<(\d+\.\d) seconds>", text)]
    # 4 s at 2 fps: 8 frames from 40 (qwen-vl-utils' rule), paired: each stamp is the mean time of 2
    _, meta = cb.video.read_video(clip, fps=2)
    idx = meta["frames_indices"]
    expected = [round((idx[i] + idx[i + 1]) / 2 / 10, 1) for i in range(0, len(idx), 2)]
    assert len(idx) == 8 and stamps == pytest.approx(expected, abs=0.051)
    assert int(enc["video_grid_thw"][0][0]) == len(idx) // 2
    reply = cb.chat(model, processor, [cb.messages.user(cb.messages.video(clip), "What moves?")], max_new_tokens=3)
    assert reply.new_tokens >= 1


def test_frames_need_their_sampling_rate(tiny, photo):
    model, processor = tiny
    with pytest.raises(InputError, match="fps"):
        cb.messages.video([photo, photo, photo, photo])
    enc = cb.inputs(processor, [cb.messages.user(cb.messages.video([photo] * 4, fps=1), "Hi")])
    text = processor.decode(enc["input_ids"][0])
    assert "<0.5 seconds>" in text and "<2.5 seconds>" in text  # pairs (0,1) and (2,3) at 1 fps


def test_a_long_720p_clip_is_resized_once(tiny, tmp_path):
    """cb.chat's path gives the model exactly the pixels of 07's own recipe (read_video, then the processor with
    do_resize=False): the processor does not shrink the frames a second time (issue 20)."""
    import av
    import numpy as np

    path = tmp_path / "long720p.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=2)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for i in range(120):  # 60 s at 2 fps: 120 frames of 921,600 pixels, more than the processor's own budget
            arr = np.full((720, 1280, 3), (i * 2) % 255, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")))
        container.mux(stream.encode())
    model, processor = tiny
    frames, meta = cb.video.read_video(path, fps=2)
    conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What changes?"}]}]
    prompt = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    lesson = processor(text=[prompt], videos=[frames], video_metadata=[meta], do_resize=False,
                       do_sample_frames=False, return_tensors="pt")
    ours = cb.inputs(processor, [cb.messages.user(cb.messages.video(path), "What changes?")])
    t, h, w = (int(x) for x in ours["video_grid_thw"][0])
    assert (h * 16, w * 16) == frames.shape[1:3] != (720, 1280)  # read_video's size, kept by the processor
    assert ours["video_grid_thw"].tolist() == lesson["video_grid_thw"].tolist()
    assert np.array_equal(ours["pixel_values_videos"].numpy(), lesson["pixel_values_videos"].numpy())
    resized_again = processor(text=[prompt], videos=[frames], video_metadata=[meta], do_sample_frames=False,
                              return_tensors="pt")
    assert resized_again["video_grid_thw"].tolist() != ours["video_grid_thw"].tolist()  # what do_resize=False prevents
