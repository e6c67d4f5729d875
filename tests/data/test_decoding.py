"""Decoding: exact frames for every backend and container, seeking, VFR, bad files, time budget."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from videomamba.data.decoding import FrameCountError, PyAVReader, backend_available, \
    decode_with_resample, open_video
from videomamba.data.video_io import index_pattern, read_index_pattern, write_video
from videomamba.errors import BackendUnavailableError, VideoDecodeError

from .conftest import BACKENDS, CONTAINERS, INDEX_FRAMES

WANTED = [0, 1, 149, 75, 12, 11, 13, 75, 148, 100, 30]  # unsorted, repeated, keyframe borders


def indices_of(clip: torch.Tensor) -> list[int]:
    return [read_index_pattern(frame) for frame in clip]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ext", CONTAINERS)
def test_exact_frames_every_backend_and_container(index_videos, ext, backend):
    with open_video(index_videos[ext], backend) as reader:
        assert reader.num_frames == INDEX_FRAMES
        assert reader.fps == pytest.approx(25.0, rel=1e-3)
        assert reader.duration == pytest.approx(INDEX_FRAMES / 25.0, rel=0.02)
        clip = reader.get_frames(WANTED)
    assert clip.dtype == torch.uint8 and clip.shape == (len(WANTED), 3, 64, 64)
    assert indices_of(clip) == WANTED


@pytest.mark.parametrize("ext", CONTAINERS)
def test_every_single_frame_is_exact_with_pyav(index_videos, ext):
    with open_video(index_videos[ext]) as reader:
        assert indices_of(reader.get_frames(range(INDEX_FRAMES))) == list(range(INDEX_FRAMES))


def test_pyav_seeks_instead_of_decoding_everything(index_videos):
    with PyAVReader(index_videos["mp4"]) as reader:
        reader.get_frames([140])
        # keyframes every 12 frames: at most one GOP before frame 140 plus the look-ahead
        assert reader.frames_decoded <= 12 + 1 + 16
        reader.get_frames([5, 70, 140])
        assert reader.frames_decoded <= 3 * (12 + 1 + 16)


def test_variable_frame_rate_indexes_by_presentation_order(vfr_video):
    path, pts_ms = vfr_video
    with PyAVReader(path) as reader:
        assert reader.num_frames == len(pts_ms)
        np.testing.assert_allclose(reader.frame_times() * 1000, pts_ms, atol=1.5)
        assert reader.duration == pytest.approx(pts_ms[-1] / 1000 + 1 / reader.fps, rel=1e-3)
        wanted = [79, 0, 40, 41, 7]
        assert indices_of(reader.get_frames(wanted)) == wanted


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "pyav"])
def test_vfr_same_frames_in_other_backends(vfr_video, backend):
    path, pts_ms = vfr_video
    with open_video(path, backend) as reader:
        assert reader.num_frames == len(pts_ms)
        assert indices_of(reader.get_frames([0, 33, 79])) == [0, 33, 79]


def test_missing_and_empty_files_name_the_file(tmp_path):
    with pytest.raises(VideoDecodeError, match="nope.mp4.*no such video"):
        open_video(str(tmp_path / "nope.mp4"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty.mp4.*empty file"):
        open_video(str(empty))


@pytest.mark.parametrize("backend", BACKENDS)
def test_garbage_file_is_a_decode_error(tmp_path, backend):
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match="garbage.mp4"):
        open_video(str(bad), backend).get_frames([0])


def test_zero_frame_video(tmp_path):
    import av

    path = str(tmp_path / "zero.mp4")
    with av.open(path, "w") as container:  # a valid mp4 with a video stream but no frames
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    with pytest.raises(VideoDecodeError, match="zero.mp4"):
        open_video(path).get_frames([0])


def test_index_out_of_range(index_videos):
    with open_video(index_videos["mp4"]) as reader:
        with pytest.raises(VideoDecodeError, match="frame index 150 out of range"):
            reader.get_frames([0, 150])


def test_truncated_avi_decodes_what_is_there(tmp_path, index_videos):
    """Cut an AVI in half: the index shrinks to the packets present; if the last one is cut
    through, the reader learns the decodable count and sampling again gives exact frames."""
    src = index_videos["avi"]
    cut = tmp_path / "cut.avi"
    data = open(src, "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    with open_video(str(cut)) as reader:
        assert 10 < reader.num_frames < INDEX_FRAMES
        frames, idx = decode_with_resample(reader, lambda n: [0, n // 2, n - 1])
        assert indices_of(frames) == idx and idx[-1] == reader.num_frames - 1


def test_lying_frame_count_is_corrected_while_decoding(index_videos, monkeypatch):
    """When packets promise frames that never decode, the reader learns the true count and
    decode_with_resample samples again inside it."""
    reader = PyAVReader(index_videos["mp4"])
    real = reader.num_frames
    fake_pts = np.concatenate([reader._pts, reader._pts[-1] + np.arange(1, 31) * 512])
    reader._pts, reader._num_frames = fake_pts, real + 30  # the container "says" 180 frames
    with pytest.raises(FrameCountError) as info:
        reader.get_frames([0, real + 10])
    assert info.value.true_count == real and reader.num_frames == real
    reader._pts, reader._num_frames = fake_pts, real + 30
    frames, idx = decode_with_resample(reader, lambda n: [0, n // 2, n - 1])
    assert idx == [0, real // 2, real - 1] and indices_of(frames) == idx
    reader.close()


def test_time_budget_stops_a_slow_decode(tmp_path):
    path = write_video(str(tmp_path / "long.mp4"), index_pattern(400, 64), fps=25, gop=400)
    with PyAVReader(path, timeout_s=None) as reader:
        assert indices_of(reader.get_frames([399])) == [399]
    with PyAVReader(path, timeout_s=None) as reader:
        reader.timeout_s = 1e-4  # decoding 400 frames of one GOP takes far longer than 0.1 ms
        with pytest.raises(VideoDecodeError, match="long.mp4.*budget"):
            reader.get_frames([399])


def test_unknown_and_unavailable_backends(index_videos):
    with pytest.raises(BackendUnavailableError, match="unknown decoding backend"):
        open_video(index_videos["mp4"], "opencv")
    for name in ("decord", "torchcodec"):
        if not backend_available(name):
            with pytest.raises(BackendUnavailableError, match=name):
                open_video(index_videos["mp4"], name)


def test_torchcodec_backend_or_reason():
    if not backend_available("torchcodec"):
        pytest.skip("torchcodec is not usable beside this torch build (its PyPI wheel needs CUDA "
                    "libraries and a system FFmpeg); the backend is tested where it loads")
    assert "torchcodec" in BACKENDS


def test_decord_backend_or_reason():
    if not backend_available("decord"):
        pytest.skip("decord not installed (pip install decord; Linux x86_64 wheels only)")
    assert "decord" in BACKENDS
