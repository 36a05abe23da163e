"""cookbook.video: real files encoded with PyAV, read back and checked against their ground truth."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from cookbook import video
from cookbook.kit import clips, messages
from cookbook.kit.read_bench import bench_reader

ASSETS = Path(__file__).parent.parent / "assets" / "video"


def truth_at(t: float) -> set[str]:
    return {e["kind"] for e in clips.EVENTS if e["start"] <= t < e["end"] and e["kind"] != "caption"}


@pytest.mark.parametrize("name", ["events.mp4", "events.avi", "events.gif"])
def test_reader_frames_and_times_match_ground_truth(name):
    frames, meta = video.read_video(ASSETS / name, fps=2.0)
    assert frames.dtype == np.uint8 and frames.shape[1] % 32 == 0 and frames.shape[2] % 32 == 0
    assert len(frames) == len(meta["frames_indices"]) == 24
    for frame, index in zip(frames, meta["frames_indices"], strict=True):
        assert clips.detect(frame) == truth_at(index / meta["fps"]), (name, index)


def test_committed_assets_are_what_the_generator_makes():
    truth = json.loads((ASSETS / "events.json").read_text())
    assert truth["events"] == [{k: e[k] for k in ("start", "end", "event")} for e in clips.EVENTS]
    info = video.probe(ASSETS / "events.mp4")
    assert (info["fps"], info["frames"], info["width"], info["height"]) == (8.0, 96, 320, 180)
    listed = sorted((ASSETS / "frames").glob("*.jpg"))
    assert len(listed) == truth["seconds"] * truth["frame_list_fps"]
    first = np.asarray(clips.render_frame(0.0, (320, 180)), dtype=int)
    from PIL import Image

    assert np.abs(np.asarray(Image.open(listed[0]), dtype=int) - first).mean() < 3


def test_segment_keeps_absolute_indices(tmp_path):
    frames, meta = video.read_video(ASSETS / "events.mp4", fps=2.0, start=4.0, end=8.0)
    assert meta["frames_indices"][0] == 32 and meta["frames_indices"][-1] == 64
    assert [clips.detect(f) for f in frames] == [truth_at(i / 8) for i in meta["frames_indices"]]


def test_frame_indices_equal_qwen_vl_utils():
    from qwen_vl_utils import vision_process as vp

    for total, vfps, fps, start, end, most in itertools.product(
            [9, 96, 54000], [8, 29.97], [0.5, 4], [None, 3.3], [None, 30.0], [16, 768]):
        ele = {"fps": fps, "max_frames": most, **({"video_start": start} if start is not None else {}),
               **({"video_end": end} if end is not None else {})}
        try:
            first, last, count = vp.calculate_video_frame_range(ele, total, vfps)
            n = vp.smart_nframes(ele, total_frames=count, video_fps=vfps)
        except ValueError:  # an empty segment: both refuse it
            with pytest.raises(ValueError):
                video.frame_indices(total, vfps, fps, max_frames=most, start=start, end=end)
            continue
        ref = np.linspace(first, last, n).round().astype(int).tolist()
        assert video.frame_indices(total, vfps, fps, max_frames=most, start=start, end=end) == ref


@pytest.mark.parametrize(("text", "seconds"), [
    ("00:23.00", 23.0), ("1:05", 65.0), ("01:02:03.5", 3723.5), ("<12.5 seconds>", 12.5), ("7.25", 7.25),
    ("12 s", 12.0), (" 00:00.50 ", 0.5)])
def test_parse_time(text, seconds):
    assert video.parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "1:75", "1:60:00", "12:30 seconds", "a:bc", "1:2:3:4"])
def test_parse_time_rejects(text):
    with pytest.raises(ValueError):
        video.parse_time(text)


def test_temporal_iou():
    assert video.temporal_iou((2, 5), (2, 5)) == 1.0
    assert video.temporal_iou((0, 2), (1, 3)) == pytest.approx(1 / 3)
    assert video.temporal_iou((0, 1), (2, 3)) == 0.0
    assert video.temporal_iou((5, 2), (2, 5)) == 1.0  # order inside a span does not matter


def test_scorers_perfect_on_ground_truth_and_not_otherwise():
    spans = [(e["start"], e["end"]) for e in clips.EVENTS]
    assert video.grounding_scores(spans, spans) == {"R@1 IoU=0.3": 1.0, "R@1 IoU=0.5": 1.0,
                                                    "R@1 IoU=0.7": 1.0, "mIoU": 1.0}
    shifted = video.grounding_scores([(s + 1, e + 1) for s, e in spans], spans)
    assert shifted["R@1 IoU=0.3"] == 1.0 and shifted["R@1 IoU=0.7"] < 1.0 and shifted["mIoU"] < 1.0
    assert video.grounding_scores([None, None, None], spans)["mIoU"] == 0.0
    answer = json.dumps({f"{clips.clock(e['start'])} - {clips.clock(e['end'])}": e["event"] for e in clips.EVENTS})
    parsed = video.parse_dense_captions(answer)
    assert [(e["start"], e["end"]) for e in parsed] == spans
    assert video.dense_caption_scores(parsed, clips.EVENTS) == {"precision": 1.0, "recall": 1.0,
                                                                "caption similarity": 1.0}
    half = video.dense_caption_scores(parsed[:1], clips.EVENTS)
    assert half["precision"] == 1.0 and half["recall"] == pytest.approx(1 / 3)
    assert video.parse_dense_captions("no json here") == []


def test_letters_and_needle():
    assert video.extract_letter("The best answer is: C") == "C"
    assert video.extract_letter("(B) a green background") == "B"
    assert video.extract_letter("I think none") is None
    assert video.needle_hit(' "kiwi". ', "KIWI") and not video.needle_hit("KIWI FRUIT", "KIWI")


def test_parse_span():
    assert video.parse_span("from 00:02.00 to 00:05.50") == (2.0, 5.5)
    assert video.parse_span('{"start": "6 seconds", "end": "9 s"}') == (6.0, 9.0)
    assert video.parse_span("at 3 seconds") is None


def test_chunks_and_merge():
    assert video.chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert video.chunks(10, 4, overlap=1) == [(0, 4), (3, 7), (6, 10)]
    with pytest.raises(ValueError):
        video.chunks(10, 4, overlap=4)
    a = [{"start": 1.0, "end": 3.0, "event": "x"}]
    b = [{"start": 1.1, "end": 3.0, "event": "x again"}, {"start": 5.0, "end": 6.0, "event": "y"}]
    assert [e["event"] for e in video.merge_events([b, a])] == ["x", "y"]


def test_video_cost_equals_the_processors_count(tiny):
    tiny_processor = tiny[1]
    frames, meta = video.read_video(ASSETS / "events.mp4", fps=2.0)
    conv = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "hi"}]}]
    plain = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    tpl = lambda c: tiny_processor.apply_chat_template(c, tokenize=False, add_generation_prompt=True)  # noqa: E731
    enc = tiny_processor(text=[tpl(conv)], videos=[frames], video_metadata=[meta], do_resize=False,
                         do_sample_frames=False, return_tensors="pt")
    base = tiny_processor(text=[tpl(plain)], return_tensors="pt")
    cost = video.video_cost(12.0, 320, 180, fps=2.0, video_fps=8.0)
    assert cost["total tokens"] == enc["input_ids"].shape[1] - base["input_ids"].shape[1]
    assert cost["frame (HxW)"] == f"{frames.shape[1]}x{frames.shape[2]}"


def test_long_clip_needle_is_where_it_was_put(tmp_path):
    gt = clips.write_long_clip(tmp_path / "long.mp4", minutes=2, fps=1, needle="KIWI", depth=0.5)
    assert gt["needle_span"] == (60.0, 62.0)
    frames, meta = video.read_video(gt["path"], nframes=4, start=58, end=63, resize=False)
    seen = [("needle" in clips.detect(f)) for f in frames]
    assert seen == [gt["needle_span"][0] <= i / meta["fps"] < gt["needle_span"][1] for i in meta["frames_indices"]]
    assert any(seen) and not all(seen)


def test_bad_input_names_the_file(tmp_path):
    data = (ASSETS / "events.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.mp4").write_text("not a video")
    clips.write_frames(tmp_path / "one.mp4", [clips.render_frame(0, (64, 48))], 8, (64, 48))
    clips.write_clip(tmp_path / "clip.mkv", seconds=4)
    mkv = (tmp_path / "clip.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(mkv[: len(mkv) * 2 // 3])
    cases = [("cut.mp4", {}, "re-encode"), ("notes.mp4", {}, "not a video"), ("one.mp4", {}, "at least 2 frames"),
             ("cut.mkv", {}, "truncated"), ("missing.mp4", {}, "no such video file")]
    for name, kwargs, words in cases:
        with pytest.raises(video.VideoError, match=words) as err:
            video.read_video(tmp_path / name, **kwargs)
        assert name in str(err.value) and isinstance(err.value, messages.InputError)
    with pytest.raises(video.VideoError, match="Pick start/end"):
        video.read_video(ASSETS / "events.mp4", start=20.0)


def test_reader_same_frames_as_qwen_vl_utils(tmp_path):
    """Same indices and size as qwen-vl-utils' fetch_video; our full-size frames resized by
    torchvision as fetch_video does give its output exactly (the only difference is the scaler)."""
    import torch
    from qwen_vl_utils import vision_process as vp
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    ref, meta = vp.fetch_video({"video": str(ASSETS / "events.mp4"), "fps": 2.0}, image_patch_size=16,
                               return_video_metadata=True)
    ours, ours_meta = video.read_video(ASSETS / "events.mp4", fps=2.0)
    assert ours_meta["frames_indices"] == list(meta["frames_indices"]) and ours_meta["fps"] == meta["fps"]
    ref = ref.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert ours.shape == ref.shape and np.abs(ours.astype(int) - ref).mean() < 3
    full, _ = video.read_video(ASSETS / "events.mp4", fps=2.0, resize=False)
    same = F.resize(torch.from_numpy(full).permute(0, 3, 1, 2), list(ref.shape[1:3]),
                    interpolation=InterpolationMode.BICUBIC, antialias=True).float()
    assert (same.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy() == ref).all()


def test_bench_reader_runs_in_its_own_process(tmp_path):
    result = bench_reader(ASSETS / "events.mp4", "cookbook", save=tmp_path / "a.npy")
    frames = np.load(tmp_path / "a.npy")
    assert list(frames.shape) == result["frames"] and len(result["indices"]) == 24
    assert 0 < result["imports_mb"] < result["peak_mb"] < 500 and result["seconds"] > 0


def test_with_silent_audio_keeps_the_video_packets(tmp_path):
    import av

    out = clips.with_silent_audio(ASSETS / "events.mp4", tmp_path / "a.mp4")
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1 and c.streams.audio[0].codec_context.name == "aac"
    a, meta_a = video.read_video(out, fps=2.0)
    b, meta_b = video.read_video(ASSETS / "events.mp4", fps=2.0)
    assert meta_a == meta_b and (a == b).all()


def test_chunk_stamps_are_absolute(tiny):
    """A segment read with start/end keeps its frames' indices in the whole file, so the processor's
    <t seconds> stamps are times in the whole video, not in the chunk."""
    import re

    processor = tiny[1]
    frames, meta = video.read_video(ASSETS / "events.mp4", fps=2.0, start=6.0, end=10.0)
    conv = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "hi"}]}]
    enc = processor(text=[processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)],
                    videos=[frames], video_metadata=[meta], do_resize=False, do_sample_frames=False,
                    return_tensors="pt")
    stamps = [video.parse_time(s) for s in re.findall(r"<[\d.]+ seconds>", processor.decode(enc["input_ids"][0]))]
    idx = meta["frames_indices"]
    assert stamps == [round((idx[k] + idx[k + 1]) / 2 / 8, 1) for k in range(0, len(idx), 2)]
    assert 6.0 <= stamps[0] and stamps[-1] <= 10.0
