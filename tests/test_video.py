"""cookbook.video: a real H.264 file whose content encodes the frame number, read back exactly."""

from __future__ import annotations

import pytest

from cookbook import video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return video.write_demo_video(tmp_path_factory.mktemp("v") / "demo.mp4", seconds=3.0, fps=10,
                                  size=(160, 96))


def test_container_metadata(clip):
    info = video.video_info(clip)
    assert (info.fps, info.frames, info.width, info.height, info.codec) == (10.0, 30, 160, 96, "h264")
    assert info.duration == pytest.approx(3.0)


def test_square_moves_at_constant_speed(clip):
    side = 96 // 3
    frames = video.read_frames(clip, [0, 10, 29])
    assert frames.shape == (3, 96, 160, 3) and frames.dtype.name == "uint8"
    for idx, frame in zip([0, 10, 29], frames, strict=True):
        centre = video.find_square(frame)
        assert centre == pytest.approx(video.square_x(idx, 30, 160, side) + side / 2, abs=1.5)
    assert video.square_x(0, 30, 160, side) == 0
    assert video.square_x(29, 30, 160, side) == 160 - side


def test_read_frames_keeps_requested_order(clip):
    a = video.read_frames(clip, [20, 5])
    b = video.read_frames(clip, [5, 20])
    assert (a[0] == b[1]).all() and (a[1] == b[0]).all()
    assert video.read_frames(clip).shape[0] == 30
    with pytest.raises(IndexError):
        video.read_frames(clip, [0, 99])


def test_transformers_pyav_loader_agrees(clip):
    from transformers.video_utils import load_video

    frames, meta = load_video(str(clip), backend="pyav")
    assert frames.shape[0] == 30 and meta.fps == 10.0 and meta.total_num_frames == 30
    assert (frames[7] == video.read_frames(clip, [7])[0]).all()


def test_rejects_odd_size_and_single_frame(tmp_path):
    with pytest.raises(ValueError):
        video.write_demo_video(tmp_path / "a.mp4", size=(161, 96))
    with pytest.raises(ValueError):
        video.write_demo_video(tmp_path / "b.mp4", seconds=0.1, fps=10)
