"""Frame index formulas: hand-computed official values, ranges and order for every length."""

from __future__ import annotations

import random

import pytest

from videomamba.data.sampling import dense_indices, is_monotonic, sample_indices, \
    segment_indices, sparse_indices, eval_views, window


def test_sparse_views_match_the_official_formula():
    # seg = 99 / 8 = 12.375; starts round(12.375 i) = 0 12 25 37 50 62 74 87; view offset int(6.1875)
    assert sparse_indices(100, 8, clip_idx=0) == [6, 18, 31, 43, 56, 68, 80, 93]
    # 4 test views: offset seg/5 * (k+1) = 2.475 (k+1)
    assert sparse_indices(100, 8, clip_idx=3, num_clips=4) == [9, 21, 34, 46, 59, 71, 83, 96]


def test_sparse_short_video_repeats_frames_like_official():
    # seg = 4/8 = 0.5, numpy rounds half to even: starts 0 0 1 2 2 2 3 4
    assert sparse_indices(5, 8, clip_idx=0) == [0, 0, 1, 2, 2, 2, 3, 4]
    assert sparse_indices(1, 8, clip_idx=0) == [0] * 8
    rng = random.Random(0)
    for _ in range(50):
        assert all(0 <= i <= 4 for i in sparse_indices(5, 8, rng=rng))


@pytest.mark.parametrize("video_len", [1, 3, 8, 9, 17, 100, 301])
def test_sparse_train_one_frame_per_segment(video_len):
    rng = random.Random(video_len)
    seg = (video_len - 1) / 8
    for _ in range(30):
        idx = sparse_indices(video_len, 8, rng=rng)
        assert len(idx) == 8 and is_monotonic(idx)
        for i, f in enumerate(idx):
            assert round(seg * i) <= f <= min(round(seg * (i + 1)), video_len - 1)


def test_sparse_inside_a_segment_of_a_long_video():
    rng = random.Random(0)
    for _ in range(20):
        idx = sparse_indices(1000, 16, rng=rng, start=300, end=450)
        assert 300 <= min(idx) and max(idx) <= 450 and is_monotonic(idx)
    assert window(10.0, 15.0, 30.0, 1000) == (300, 450)
    assert window(None, None, 30.0, 1000) is None
    assert sample_indices("sparse", 1000, 4, clip_idx=0, frame_range=(300, 450))[0] >= 300


def test_dense_official_values():
    # train: window of 8 x 4 = 32 frames ending at a random end in [32, len)
    rng = random.Random(1)
    for _ in range(20):
        idx = dense_indices(300, 8, 4, rng=rng)
        assert idx[-1] - idx[0] <= 32 and is_monotonic(idx) and max(idx) < 300
    # short video: linspace(0, 20, 5) then the last frame: 0 5 10 15 19 19 19 19
    assert dense_indices(20, 8, 4, rng=rng) == [0, 5, 10, 15, 19, 19, 19, 19]
    # test: 3 windows from the start to the end: step (300 - 32) / 2 = 134
    assert dense_indices(300, 8, 4, clip_idx=0, num_clips=3) == list(range(0, 32, 4))
    assert dense_indices(300, 8, 4, clip_idx=2, num_clips=3) == list(range(268, 300, 4))
    assert dense_indices(20, 8, 4, clip_idx=1, num_clips=3) == [0, 4, 8, 12, 16, 16, 16, 16]
    # one view (validation): centred
    assert dense_indices(300, 8, 4, clip_idx=0) == list(range(134, 166, 4))


def test_segment_ssv2_values():
    assert segment_indices(80, 8, clip_idx=0) == [5, 15, 25, 35, 45, 55, 65, 75]
    # the official two test views: offsets 0 and tick / 2
    assert segment_indices(80, 8, clip_idx=0, num_clips=2) == [0, 10, 20, 30, 40, 50, 60, 70]
    assert segment_indices(80, 8, clip_idx=1, num_clips=2) == [5, 15, 25, 35, 45, 55, 65, 75]
    rng = random.Random(0)
    for _ in range(20):
        idx = segment_indices(80, 8, rng=rng)
        assert all(10 * i <= f < 10 * (i + 1) for i, f in enumerate(idx))
    assert segment_indices(5, 8, rng=rng) == [0] * 8
    short = segment_indices(12, 8, rng=rng)
    assert is_monotonic(short) and max(short) < 12


def test_test_views_are_temporal_major():
    assert eval_views(2, 3) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


def test_unknown_sampling():
    with pytest.raises(ValueError, match="unknown sampling"):
        sample_indices("uniform", 10, 4)
