"""Which frames make a clip: the official VideoMamba index formulas, as plain functions.

Every function returns a list of ``num_frames`` frame indices in ``[0, video_len)``, in temporal
order (repeats allowed for short videos). ``clip_idx = -1`` means training (random);
``clip_idx = k >= 0`` is the k-th of ``num_clips`` deterministic test views (validation uses
``clip_idx=0, num_clips=1``). ``rng`` is a ``random.Random`` (the DataLoader seeds each worker).

- :func:`sparse_indices` - official ``Kinetics_sparse`` / LVU (``_get_seq_frames``): the video
  is cut into ``num_frames`` equal segments, one frame per segment (random in training; at offset
  ``(k + 1) / (num_clips + 1)`` of a segment for view k). A video shorter than the clip repeats
  frames (segments shorter than one frame).
- :func:`dense_indices` - official ``Kinetics`` (``loadvideo_decord``): ``num_frames`` frames
  with a stride inside a window of ``num_frames * stride`` frames (random window in training,
  ``num_clips`` evenly spaced windows at test). A video shorter than the window is spread
  over its whole length and the last frame repeated.
- :func:`segment_indices` - official SSv2 (TSN): ``num_frames`` segments of ``len // num_frames``
  frames, a random frame in each for training, the middle one for validation; test view k of K
  is offset by ``k / K`` of a segment. Shorter videos: sorted random frames, or the first frames
  then zeros, as the official code.
- :func:`window` turns a ``(start, end)`` segment in seconds into a frame range for long videos.
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np

SAMPLINGS = ("sparse", "dense", "segment")


def _rng(rng: random.Random | None) -> random.Random:
    return rng if rng is not None else random.Random()


def sparse_indices(video_len: int, num_frames: int, clip_idx: int = -1, num_clips: int = 1,
                   rng: random.Random | None = None, start: int = 0, end: int | None = None
                   ) -> list[int]:
    """Segment-based sparse sampling (official ``_get_seq_frames``) inside frames ``[start, end]``.

    ``end`` is inclusive and defaults to the last frame; a long video's segment passes both.
    """
    last = video_len - 1
    start = max(0, min(start, last))
    end = last if end is None else max(start, min(end, last))
    seg_size = max(0.0, float(end - start) / num_frames)
    seq = []
    if clip_idx == -1:
        gen = _rng(rng)
        for i in range(num_frames):
            lo = int(np.round(seg_size * i)) + start
            hi = int(np.round(seg_size * (i + 1))) + start
            seq.append(min(gen.randint(lo, hi), end))
    else:
        offset = seg_size / (num_clips + 1)
        for i in range(num_frames):
            lo = int(np.round(seg_size * i)) + start
            seq.append(min(lo + int(offset * (clip_idx + 1)), end))
    return seq


def dense_indices(video_len: int, num_frames: int, stride: int, clip_idx: int = -1,
                  num_clips: int = 1, rng: random.Random | None = None) -> list[int]:
    """Dense sampling with a stride (official ``VideoClsDataset``)."""
    window_len = num_frames * stride
    if clip_idx >= 0:
        return _dense_test_view(video_len, num_frames, stride, clip_idx, num_clips)
    if video_len <= window_len:
        # Official: spread over the whole (short) video, pad with the last frame.
        n = video_len // stride
        index = np.linspace(0, video_len, num=n)
        index = np.concatenate((index, np.ones(num_frames - n) * video_len))
        return np.clip(index, 0, video_len - 1).astype(np.int64).tolist()
    end = _rng(rng).randint(window_len, video_len - 1)
    begin = end - window_len
    index = np.linspace(begin, end, num=num_frames)
    return np.clip(index, begin, end - 1).astype(np.int64).tolist()


def _dense_test_view(video_len: int, num_frames: int, stride: int, clip_idx: int,
                     num_clips: int) -> list[int]:
    """Official test view: windows evenly spaced from the start to the end of the video.

    With one view (validation) the window is centred; the official validation formula
    ``end = (len - window) // 2`` can start before frame 0, which we do not copy.
    """
    window_len = num_frames * stride
    if num_clips == 1:
        begin = max(video_len - window_len, 0) // 2
    else:
        step = max(1.0 * (video_len - window_len) / (num_clips - 1), 0)
        begin = int(clip_idx * step)
    bound = min(begin + window_len, video_len)
    index = list(range(begin, bound, stride))
    while len(index) < num_frames:
        index.append(index[-1])
    return index[:num_frames]


def segment_indices(video_len: int, num_frames: int, clip_idx: int = -1, num_clips: int = 1,
                    rng: random.Random | None = None) -> list[int]:
    """TSN segment sampling as the official SSv2 dataset."""
    if clip_idx >= 0:
        tick = video_len / float(num_frames)
        # Official test views are offsets 0 and tick/2 (two views); k/K generalises that, and one
        # view (validation) takes the middle of each segment.
        offset = tick / 2.0 if num_clips == 1 else tick * clip_idx / num_clips
        return [min(int(offset + tick * x), video_len - 1) for x in range(num_frames)]
    gen = _rng(rng)
    average = video_len // num_frames
    if average > 0:
        return [i * average + gen.randrange(average) for i in range(num_frames)]
    if video_len > num_frames:
        return sorted(gen.randrange(video_len) for _ in range(num_frames))
    return [0] * num_frames


def sample_indices(sampling: str, video_len: int, num_frames: int, *, stride: int = 1,
                   clip_idx: int = -1, num_clips: int = 1, rng: random.Random | None = None,
                   frame_range: tuple[int, int] | None = None) -> list[int]:
    """Dispatch on ``sampling`` (``"sparse"``, ``"dense"`` or ``"segment"``).

    ``frame_range``: inclusive ``(first, last)`` frames of a segment of a long video; the clip is
    taken inside it (sparse sampling) or inside the cut video (other samplings, shifted back).
    """
    if video_len <= 0:
        raise ValueError(f"cannot sample from a video of {video_len} frames")
    if sampling == "sparse":
        first, last = frame_range if frame_range else (0, None)
        return sparse_indices(video_len, num_frames, clip_idx, num_clips, rng, first, last)
    offset, length = 0, video_len
    if frame_range:
        offset = max(0, min(frame_range[0], video_len - 1))
        length = max(1, min(frame_range[1], video_len - 1) - offset + 1)
    if sampling == "dense":
        idx = dense_indices(length, num_frames, stride, clip_idx, num_clips, rng)
    elif sampling == "segment":
        idx = segment_indices(length, num_frames, clip_idx, num_clips, rng)
    else:
        raise ValueError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    return [i + offset for i in idx]


def window(start_s: float | None, end_s: float | None, fps: float,
           video_len: int) -> tuple[int, int] | None:
    """Seconds ``[start_s, end_s]`` -> inclusive frame range, as the official LVU code
    (``int(start * fps)``, ``int(end * fps)``). ``None`` when no segment is given."""
    if start_s is None and end_s is None:
        return None
    first = int((start_s or 0.0) * fps)
    last = int(end_s * fps) if end_s is not None else video_len - 1
    return first, last


def eval_views(num_clips: int, num_crops: int) -> list[tuple[int, int]]:
    """All ``(clip_idx, crop_idx)`` test views, temporal-major: the order of the ``V`` axis."""
    return [(c, s) for c in range(num_clips) for s in range(num_crops)]


def is_monotonic(indices: Sequence[int]) -> bool:
    """Whether ``indices`` never go back in time (every sampler promises this)."""
    return all(a <= b for a, b in zip(indices, indices[1:]))
