"""Writing videos with PyAV (used by the synthetic generators, tests and benchmarks).

:func:`write_video` writes uint8 ``(T, H, W, 3)`` RGB frames atomically (temp file + ``os.replace``)
to ``.mp4``/``.mkv`` (H.264, else MPEG-4 part 2), ``.avi`` (MPEG-4 part 2) or ``.webm`` (VP9/VP8).
``pts_ms`` gives each frame its own time in milliseconds, for variable-frame-rate files.

:func:`index_pattern` draws frames whose pixels encode their frame index (a grid of large black or
white cells, one bit each, which survive lossy compression); :func:`read_index_pattern` reads the
index back from a decoded frame. Tests use them to check that a decoder or sampler returns exactly
the frames it promised, in order.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

from videomamba.utils.io import atomic_path

_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".avi": "avi", ".webm": "webm",
            ".mov": "mov"}
_CODECS = {"mp4": ("libx264", "mpeg4"), "matroska": ("libx264", "mpeg4"), "mov": ("libx264", "mpeg4"),
           "avi": ("mpeg4",), "webm": ("libvpx-vp9", "libvpx")}

INDEX_BITS = 12  # frame indices up to 4095
_GRID = 4        # 4 x 4 cells: 12 data bits, then 4 cells of a fixed check pattern


def pick_codec(path: str, codec: str | None = None) -> tuple[str, str]:
    """``(container format, codec)`` for ``path``'s extension (or the given codec)."""
    import av

    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise ValueError(f"{path}: unsupported video extension {ext!r}; use one of "
                         f"{', '.join(sorted(_FORMATS))}")
    fmt = _FORMATS[ext]
    if codec is not None:
        return fmt, codec
    for name in _CODECS[fmt]:
        if name in av.codecs_available:
            return fmt, name
    raise RuntimeError(f"no encoder for {ext} in this FFmpeg build (tried {_CODECS[fmt]})")


def _codec_options(codec: str, quality: str) -> dict[str, str]:
    crf = {"high": "16", "medium": "23"}[quality]
    if codec == "libx264":
        return {"crf": crf, "preset": "veryfast"}
    if codec.startswith("libvpx"):
        return {"crf": "20" if quality == "high" else "32", "b": "0",
                "deadline": "realtime", "cpu-used": "8"}
    # A fixed quantiser: "qscale" is no encoder option (FFmpeg ignored it and rate control made
    # the first frames sharper than the last ones, so quality told where a clip starts).
    q = "2" if quality == "high" else "5"
    return {"qmin": q, "qmax": q}


def write_video(path: str, frames: np.ndarray | torch.Tensor, fps: float = 25.0, *,
                codec: str | None = None, pts_ms: Sequence[int] | None = None,
                quality: str = "high", gop: int | None = None) -> str:
    """Write RGB uint8 frames ``(T, H, W, 3)`` (H, W even) to ``path``; returns ``path``.

    ``gop``: keyframe interval (default: the encoder's). ``pts_ms``: per-frame times (VFR).
    """
    import av

    frames = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video needs uint8 (T, H, W, 3) frames, got {frames.dtype} "
                         f"{tuple(frames.shape)}")
    fmt, codec = pick_codec(path, codec)
    with atomic_path(path, keep_suffix=True) as tmp:
        _encode(av, str(tmp), fmt, codec, frames, fps, pts_ms, quality, gop)
    return path


def _encode(av, tmp, fmt, codec, frames, fps, pts_ms, quality, gop) -> None:
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(tmp, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, options=_codec_options(codec, quality))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # One encoder thread: with several, x264 and libvpx output depends on timing, and the
        # same seed must give the same files.
        stream.codec_context.thread_count = 1
        if gop:
            stream.codec_context.gop_size = gop
        time_base = Fraction(1, 1000) if pts_ms is not None else 1 / rate
        stream.codec_context.time_base = time_base
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = int(pts_ms[i]) if pts_ms is not None else i
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def index_pattern(num_frames: int, size: int = 64, start: int = 0) -> np.ndarray:
    """Frames ``(num_frames, size, size, 3)`` whose cells spell frame number ``start + t``."""
    if size % (2 * _GRID):
        raise ValueError(f"size must be a multiple of {2 * _GRID}")
    cell = size // _GRID
    out = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        for b, bit in enumerate(_bits(start + t)):
            r, c = divmod(b, _GRID)
            out[t, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = 255 * bit
    return out


def _bits(value: int) -> list[int]:
    if not 0 <= value < 2**INDEX_BITS:
        raise ValueError(f"index {value} does not fit in {INDEX_BITS} bits")
    data = [(value >> k) & 1 for k in range(INDEX_BITS)]
    return data + [1, 0, 1, 0]  # check cells: a decoded frame must reproduce them


def read_index_pattern(frame: np.ndarray | torch.Tensor) -> int:
    """Frame number drawn by :func:`index_pattern`, from an RGB frame ``(C, H, W)`` or ``(H, W, C)``.

    Raises ``ValueError`` when the check cells do not match (not a pattern frame, or mangled).
    """
    x = frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if x.shape[0] == 3 and x.shape[-1] != 3:
        x = x.transpose(1, 2, 0)
    gray = x.astype(np.float32).mean(-1)
    h, w = gray.shape
    ch, cw = h // _GRID, w // _GRID
    cells = [gray[r * ch + ch // 4:(r + 1) * ch - ch // 4,
                  c * cw + cw // 4:(c + 1) * cw - cw // 4].mean() > 127
             for r in range(_GRID) for c in range(_GRID)]
    if [int(v) for v in cells[INDEX_BITS:]] != [1, 0, 1, 0]:
        raise ValueError("not an index-pattern frame (check cells do not match)")
    return sum(int(v) << k for k, v in enumerate(cells[:INDEX_BITS]))
