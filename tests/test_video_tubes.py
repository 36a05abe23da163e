"""07's spatio-temporal grounding recipe: the moving-shapes clip matches its truth in the decoded pixels, the
message interleaves stamps and frames as the official cookbook does, the parser reads what models write, and
vIoU scores the reference 1 and a worse tube less."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cookbook import video as V
from cookbook.kit import clips as C

RED = C.MOVERS[0]["label"]
BLUE = C.MOVERS[1]["label"]


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    path = C.write_movers_clip(tmp_path_factory.mktemp("movers") / "movers.mp4")
    frames, meta = V.read_video(path, nframes=6)
    return frames, [i / meta["fps"] for i in meta["frames_indices"]]


def _mask(frame, colour):
    return (np.abs(frame.astype(int) - np.array(colour)).sum(-1) < 90)


def test_truth_matches_the_decoded_pixels(sampled):
    frames, times = sampled
    assert times == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    for mover in C.MOVERS:
        tube = {f["time"]: f["box"] for f in C.tube_truth(times, mover["label"])}
        for frame, t in zip(frames, times, strict=True):
            ys, xs = np.nonzero(_mask(frame, mover["colour"]))
            if t not in tube:
                assert len(xs) < 10, (mover["label"], t)          # off screen: no such pixels
                continue
            h, w = frame.shape[:2]
            seen = [xs.min() / w * 1000, ys.min() / h * 1000, (xs.max() + 1) / w * 1000, (ys.max() + 1) / h * 1000]
            assert np.allclose(seen, tube[t], atol=12), (mover["label"], t, seen, tube[t])
    assert [f["time"] for f in C.tube_truth(times, RED)] == [1.0, 2.0, 3.0, 4.0]   # absent at 0 s and 5 s


def test_message_interleaves_stamps_and_frames_as_the_official_cookbook(sampled):
    frames, times = sampled
    message = V.timestamped_frames(frames, times, "the red ball")
    parts = message["content"]
    assert message["role"] == "user" and len(parts) == 2 * len(frames) + 1
    assert [p["text"] for p in parts[0:-1:2]] == ["<0.0 seconds>", "<1.0 seconds>", "<2.0 seconds>",
                                                    "<3.0 seconds>", "<4.0 seconds>", "<5.0 seconds>"]
    assert all(p["type"] == "image" and p["image"].size == (frames.shape[2], frames.shape[1]) for p in parts[1:-1:2])
    assert parts[-1]["text"].startswith('Given the query "the red ball", for each frame, detect and localize')
    assert parts[-1]["text"].endswith('"bbox_2d": [x_min, y_min, x_max, y_max], "label": ""}, ...].')


def test_parse_tube_reads_fences_text_stamps_and_cut_offs():
    answer = ('Sure! Here is the result:\n```json\n[{"time": 2.0, "bbox_2d": [10, 20, 110, 220], "label": "ball"},\n'
              ' {"time": "1.0", "bbox_2d": [0, 0, 50, 50], "label": "ball"},\n'
              ' {"time": "<3.0 seconds>", "bbox_2d": [1200, 5, 300, 40]},\n'
              ' {"time": "later", "bbox_2d": [1, 2, 3, 4]},\n {"time": 4.0, "bbox_2d": [5, 5')
    with pytest.warns(UserWarning):
        tube = V.parse_tube(answer)
    assert [t["time"] for t in tube] == [1.0, 2.0, 3.0]             # sorted; unreadable time and cut-off item dropped
    assert tube[1] == {"time": 2.0, "box": [10.0, 20.0, 110.0, 220.0], "label": "ball"}
    assert tube[2]["box"] == [300.0, 5.0, 1000.0, 40.0]             # clamped to 0-1000, corners ordered
    assert V.parse_tube('[{"time": "00:01.50", "bbox_2d": [1, 2, 3, 4], "label": ""}]')[0]["time"] == 1.5
    with pytest.raises(V.ParseError):
        V.parse_tube("I cannot see any ball.")


def test_reference_scores_one_and_worse_tubes_less(sampled):
    _, times = sampled
    truth = C.tube_truth(times, RED)
    reference = json.dumps([{"time": f["time"], "bbox_2d": [round(v) for v in f["box"]], "label": RED} for f in truth])
    assert V.tube_scores(V.parse_tube(reference), truth, times) == {"tIoU": 1.0, "vIoU": 1.0, "frames shared": 4,
                                                                    "frames either": 4}
    shifted = [{**f, "box": [f["box"][0] + 40, f["box"][1], f["box"][2] + 40, f["box"][3]]} for f in truth]
    s = V.tube_scores(shifted, truth, times)
    assert s["tIoU"] == 1.0 and 0.5 < s["vIoU"] < 1.0
    extra = truth + [{"time": 0.1, "box": truth[0]["box"]}]           # 0.1 s counts at the 0 s frame: a false frame
    assert V.tube_scores(extra, truth, times) == {"tIoU": 0.8, "vIoU": 0.8, "frames shared": 4, "frames either": 5}
    missing = truth[1:]
    assert V.tube_scores(missing, truth, times)["vIoU"] == pytest.approx(0.75)
    late = [{**f, "time": f["time"] + 0.7} for f in truth]           # 0.7 s late: each box counts at the next frame
    assert V.tube_scores(late, truth, times)["vIoU"] < 0.5
    assert V.tube_scores([], truth, times) == {"tIoU": 0.0, "vIoU": 0.0, "frames shared": 0, "frames either": 4}
    assert V.tube_scores([], [], times)["vIoU"] == 1.0               # nothing to find, nothing claimed


def test_the_tiny_model_answers_the_interleaved_message(tiny, sampled):
    import cookbook as cb

    model, processor = tiny
    frames, times = sampled
    message = V.timestamped_frames(frames[:2], times[:2], "the blue square")
    encoded = cb.inputs(processor, [message])
    text = processor.decode(encoded["input_ids"][0])
    assert text.index("<0.0 seconds>") < text.index("<|image_pad|>") < text.index("<1.0 seconds>")
    reply = cb.chat(model, processor, [message], max_new_tokens=4, seed=0)
    assert 0 < reply.new_tokens <= 4
