"""Video decoding behind one interface, with PyAV by default and decord / torchcodec when installed.

Every backend is a :class:`VideoReader`::

    with open_video("a.mp4") as reader:          # backend="pyav" | "decord" | "torchcodec" | "auto"
        reader.num_frames, reader.fps, reader.duration
        clip = reader.get_frames([0, 10, 20])    # uint8 (T, C, H, W), frames in the order asked

Frame ``i`` is the ``i``-th frame in presentation order (sorted by timestamp), so variable frame
rate videos index by frame, not by ``i / fps``. The PyAV reader builds that index by demuxing the
packets once on open (no decoding: a 10 s clip takes about a millisecond), then for a request it
seeks to the keyframe at or before each wanted frame and decodes forward only as far as needed.

Bad input raises :class:`videomamba.errors.VideoDecodeError` naming the file: missing, unreadable,
no video stream, zero frames, an index past the end, or a decode that ran past its time budget
(``timeout_s``; checked between packets, so a worker never spends much longer than that on one
video). When a container's header or packet count lies (truncated files), the reader learns the
true count while decoding and raises :class:`FrameCountError`, which carries it, so the caller can
sample again (:func:`decode_with_resample` does that).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import time
from typing import Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from videomamba.errors import BackendUnavailableError, VideoDecodeError

log = logging.getLogger(__name__)

BACKENDS = ("pyav", "decord", "torchcodec")
DEFAULT_BACKEND = "pyav"
DEFAULT_TIMEOUT_S = 60.0


_SKIPPABLE = ("h264", "hevc")


class FrameCountError(VideoDecodeError):
    """The video holds fewer decodable frames than its container said; ``true_count`` has them."""

    def __init__(self, message: str, true_count: int):
        super().__init__(message)
        self.true_count = true_count


@runtime_checkable
class VideoReader(Protocol):
    """What every decoding backend offers. ``get_frames`` returns uint8 ``(T, C, H, W)`` RGB."""

    path: str

    @property
    def num_frames(self) -> int: ...

    @property
    def fps(self) -> float: ...

    @property
    def duration(self) -> float: ...

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor: ...

    def close(self) -> None: ...


class _ReaderBase:
    """Shared plumbing: context manager, index checks, time budget."""

    path: str
    timeout_s: float | None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    def _check_indices(self, indices: Sequence[int]) -> list[int]:
        wanted = [int(i) for i in indices]
        if not wanted:
            raise ValueError("get_frames needs at least one frame index")
        bad = [i for i in wanted if i < 0 or i >= self.num_frames]
        if bad:
            raise VideoDecodeError(
                f"{self.path}: frame index {bad[0]} out of range for a video of "
                f"{self.num_frames} frames; sample indices in [0, num_frames)"
            )
        return wanted

    def _deadline(self) -> float:
        return time.monotonic() + self.timeout_s if self.timeout_s else float("inf")

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise VideoDecodeError(
                f"{self.path}: decoding took longer than the {self.timeout_s:g} s budget; the file "
                "may be damaged or huge (raise timeout_s if it is fine)"
            )


def _require_file(path: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: no such video file (check the path and the dataset prefix)")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(f"{path}: empty file (0 bytes); re-download or remove it")
    return path


class PyAVReader(_ReaderBase):
    """PyAV (FFmpeg) reader: packet index on open, keyframe seeks, decode forward, match by pts.

    ``threads``: FFmpeg decoding threads for this reader (1 suits DataLoader workers, which
    already run in parallel). ``timeout_s``: time budget of one ``get_frames`` call and of opening.
    """

    def __init__(self, path: str, *, threads: int = 1, timeout_s: float | None = DEFAULT_TIMEOUT_S):
        import av
        from av.video.reformatter import VideoReformatter

        self.path = _require_file(path)
        self.timeout_s = timeout_s
        self._av = av
        try:
            # `timeout` bounds blocking reads (network filesystems) besides our own budget.
            self._container = av.open(self.path, timeout=timeout_s)
        except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
            raise VideoDecodeError(f"{self.path}: cannot open video ({err}); the file is corrupt "
                                   "or not a video") from err
        try:
            if not self._container.streams.video:
                raise VideoDecodeError(f"{self.path}: the file has no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.thread_count = threads
            self._reformatter = VideoReformatter()
            # Skipping non-reference frames needs one packet per frame and no frame threading.
            self._can_skip = threads == 1 and self._stream.codec_context.name in _SKIPPABLE
            self._index_packets()
        except BaseException:
            self._container.close()
            raise

    def _index_packets(self) -> None:
        """Sort packet timestamps into the presentation-order frame index; note keyframes."""
        deadline = self._deadline()
        pts, key_pts, key_seek = [], [], {}
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    continue
                pts.append(ts)
                if packet.is_keyframe:
                    key_pts.append(ts)
                    # Second seek target for demuxers that seek by dts (AVI), see _seek.
                    key_seek[ts] = min(ts, packet.dts) if packet.dts is not None else ts
                if len(pts) % 256 == 0:
                    self._check_deadline(deadline)
        except self._av.FFmpegError as err:
            # A truncated file ends in a broken packet: keep what was indexed before it.
            log.debug("%s: demuxing stopped early (%s)", self.path, err)
        if not pts:
            raise VideoDecodeError(f"{self.path}: the video has no frames")
        self._pts = np.unique(np.asarray(pts, dtype=np.int64))
        self._key_pts = sorted(set(key_pts)) or [int(self._pts[0])]
        self._key_seek = key_seek
        self._num_frames = len(self._pts)

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def fps(self) -> float:
        rate = self._stream.average_rate or self._stream.guessed_rate
        if rate:
            return float(rate)
        span = (self._pts[-1] - self._pts[0]) * float(self._stream.time_base)
        return (self._num_frames - 1) / span if span > 0 else 0.0

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last (from pts, so VFR is right)."""
        if self.fps <= 0:
            return 0.0
        span = (self._pts[-1] - self._pts[0]) * float(self._stream.time_base)
        return float(span) + 1.0 / self.fps

    def frame_times(self) -> np.ndarray:
        """Presentation time in seconds of every frame, ``(num_frames,)``."""
        return (self._pts - self._pts[0]) * float(self._stream.time_base)

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """Decode frames ``indices`` (any order, repeats allowed) -> uint8 ``(T, C, H, W)``."""
        wanted = self._check_indices(indices)
        deadline = self._deadline()
        found: dict[int, np.ndarray] = {}
        self.frames_decoded = 0  # frames the last call decoded (tests check that seeking works)
        for run in self._seek_runs(sorted(set(wanted))):
            self.frames_decoded += self._decode_run(run, self._keyframe_before(run[0]), found,
                                                    deadline)
        missing = sorted({i for i in wanted if i not in found})
        if missing:
            # A seek that landed late, or frames the index promised: one pass from the start
            # collects what is missing and counts the frames that really decode.
            decoded = self._decode_run(missing, None, found, deadline, count_all=True)
            self.frames_decoded += decoded
            self._check_all_found(wanted, found, decoded)
        return torch.from_numpy(np.stack([found[i] for i in wanted])).permute(0, 3, 1, 2)

    def _keyframe_before(self, frame: int) -> int:
        pos = bisect.bisect_right(self._key_pts, int(self._pts[frame])) - 1
        return self._key_pts[max(pos, 0)]

    def _seek_runs(self, frames: list[int]) -> list[list[int]]:
        """Group sorted frames so that each group is reached with one seek and forward decoding.

        A new seek pays off when the next wanted frame has a keyframe after the last one decoded.
        """
        runs: list[list[int]] = [[frames[0]]]
        for frame in frames[1:]:
            if self._keyframe_before(frame) > self._pts[runs[-1][-1]]:
                runs.append([frame])
            else:
                runs[-1].append(frame)
        return runs

    def _decode_run(self, run: list[int], keyframe_pts: int | None, found: dict[int, np.ndarray],
                    deadline: float, count_all: bool = False) -> int:
        """Seek to ``keyframe_pts`` (None: the start) and decode forward until every frame of
        ``run`` is in ``found``; with ``count_all``, decode to the end. Returns frames decoded."""
        want = {int(self._pts[i]): i for i in run}
        last_pts = max(want)
        decoded = past_last = 0
        skipping = self._can_skip and not count_all
        if self._can_skip:
            self._stream.codec_context.skip_frame = "DEFAULT"  # a previous run may have left NONREF
        try:
            for packet in self._seek(keyframe_pts):
                self._check_deadline(deadline)
                if skipping:
                    # A packet is one frame here: frames we do not want and that no other frame
                    # refers to need not be decoded (about half of an H.264 stream with B-frames).
                    self._stream.codec_context.skip_frame = \
                        "DEFAULT" if packet.pts in want else "NONREF"
                for frame in packet.decode():
                    decoded += 1
                    ts = frame.pts if frame.pts is not None else frame.dts
                    if ts in want and want[ts] not in found:
                        found[want[ts]] = self._to_rgb(frame)
                    if ts is not None and ts > last_pts:
                        past_last += 1
                # Decoders may emit frames out of pts order (packed B-frames): stop only after a few
                # frames beyond the last wanted one, or when all are in hand.
                if not count_all and (all(i in found for i in run) or past_last > 16):
                    break
        except self._av.FFmpegError as err:
            if not found:
                raise VideoDecodeError(f"{self.path}: cannot decode ({err}); the file is "
                                       "corrupt or truncated") from err
            log.debug("%s: decoding stopped early (%s)", self.path, err)
        return decoded

    def _seek(self, keyframe_pts: int | None) -> Iterator:
        """Seek to the keyframe with pts ``keyframe_pts`` (None: the start); return the packets.

        Demuxers disagree on what a seek timestamp means (mp4 seeks by pts, AVI by dts): seek by
        pts, and if that lands after the keyframe, seek again by its dts, else from the start.
        """
        if keyframe_pts is not None:
            for target in (keyframe_pts, self._key_seek.get(keyframe_pts, keyframe_pts)):
                first, packets = self._seek_to(target)
                ts = None if first is None else (first.pts if first.pts is not None else first.dts)
                if ts is None or ts <= keyframe_pts:
                    return itertools.chain([first] if first else [], packets)
        first, packets = self._seek_to(0)
        return itertools.chain([first] if first else [], packets)

    def _seek_to(self, target: int):
        self._container.seek(target, backward=True, any_frame=False, stream=self._stream)
        packets = self._container.demux(self._stream)
        return next(packets, None), packets

    def _to_rgb(self, frame) -> np.ndarray:
        # One reformatter per reader: a new swscale context per frame costs milliseconds.
        return self._reformatter.reformat(frame, format="rgb24").to_ndarray()

    def _check_all_found(self, wanted: list[int], found: dict[int, np.ndarray], decoded: int) -> None:
        """After a full pass: if the index promised frames that do not decode, learn the count."""
        missing = [i for i in wanted if i not in found]
        if not missing:
            return
        if decoded == 0:
            raise VideoDecodeError(f"{self.path}: the video has no decodable frames")
        if decoded < self._num_frames:
            log.warning("%s: container lists %d frames but only %d decode; using %d",
                        self.path, self._num_frames, decoded, decoded)
            self._num_frames = decoded
            self._pts = self._pts[:decoded]
            raise FrameCountError(f"{self.path}: only {decoded} frames decode (the container said "
                                  f"more); frame {missing[0]} does not exist", decoded)
        raise VideoDecodeError(f"{self.path}: frame {missing[0]} could not be decoded")

    def close(self) -> None:
        self._container.close()


class DecordReader(_ReaderBase):
    """decord reader (``pip install decord``): its own frame index, ``get_batch`` decoding."""

    def __init__(self, path: str, *, threads: int = 1, timeout_s: float | None = DEFAULT_TIMEOUT_S):
        decord = _import_decord()
        self.path = _require_file(path)
        self.timeout_s = timeout_s
        try:
            self._vr = decord.VideoReader(self.path, num_threads=threads, ctx=decord.cpu(0))
        except (decord.DECORDError, RuntimeError) as err:
            raise VideoDecodeError(f"{self.path}: decord cannot open the video ({err})") from err
        if len(self._vr) == 0:
            raise VideoDecodeError(f"{self.path}: the video has no frames")

    @property
    def num_frames(self) -> int:
        return len(self._vr)

    @property
    def fps(self) -> float:
        return float(self._vr.get_avg_fps())

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        import decord

        wanted = self._check_indices(indices)
        try:
            batch = self._vr.get_batch(wanted).asnumpy()
        except (decord.DECORDError, RuntimeError) as err:
            raise VideoDecodeError(f"{self.path}: decord cannot decode frames ({err})") from err
        return torch.from_numpy(batch).permute(0, 3, 1, 2)

    def close(self) -> None:
        self._vr = None


class TorchCodecReader(_ReaderBase):
    """torchcodec reader (``pip install torchcodec``, needs a matching torch and FFmpeg)."""

    def __init__(self, path: str, *, threads: int = 1, timeout_s: float | None = DEFAULT_TIMEOUT_S):
        decoders = _import_torchcodec()
        self.path = _require_file(path)
        self.timeout_s = timeout_s
        try:
            self._decoder = decoders.VideoDecoder(self.path, seek_mode="exact",
                                                  num_ffmpeg_threads=threads)
        except (RuntimeError, ValueError) as err:
            raise VideoDecodeError(f"{self.path}: torchcodec cannot open the video ({err})") from err
        self._meta = self._decoder.metadata
        if not self._meta.num_frames:
            raise VideoDecodeError(f"{self.path}: the video has no frames")

    @property
    def num_frames(self) -> int:
        return int(self._meta.num_frames)

    @property
    def fps(self) -> float:
        return float(self._meta.average_fps or 0.0)

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        wanted = self._check_indices(indices)
        try:
            return self._decoder.get_frames_at(indices=wanted).data
        except RuntimeError as err:
            raise VideoDecodeError(f"{self.path}: torchcodec cannot decode ({err})") from err

    def close(self) -> None:
        self._decoder = None


def _import_decord():
    try:
        import decord
    except Exception as err:  # ImportError, or OSError from a broken shared library
        raise BackendUnavailableError(
            f"decoding backend 'decord' is not usable here ({err}); `pip install decord` "
            "(Linux x86_64 wheels) or use backend='pyav'") from err
    return decord


def _import_torchcodec():
    try:
        from torchcodec import decoders
    except Exception as err:  # the wheel loads CUDA/FFmpeg libraries and fails with OSError
        raise BackendUnavailableError(
            f"decoding backend 'torchcodec' is not usable here ({type(err).__name__}: {err}); it "
            "needs a torchcodec wheel built for this torch and system FFmpeg; use backend='pyav'"
        ) from err
    return decoders


_READERS = {"pyav": PyAVReader, "decord": DecordReader, "torchcodec": TorchCodecReader}


def backend_available(name: str) -> bool:
    """Whether decoding backend ``name`` imports and can be used here."""
    try:
        {"pyav": lambda: __import__("av"), "decord": _import_decord,
         "torchcodec": _import_torchcodec}[name]()
    except (BackendUnavailableError, ImportError):
        return False
    return True


def available_backends() -> list[str]:
    """Installed, working decoding backends, default first."""
    return [name for name in BACKENDS if backend_available(name)]


def open_video(path: str, backend: str = DEFAULT_BACKEND, *, threads: int = 1,
               timeout_s: float | None = DEFAULT_TIMEOUT_S) -> VideoReader:
    """Open ``path`` with ``backend`` (``"pyav"``, ``"decord"``, ``"torchcodec"`` or ``"auto"``,
    which is ``"pyav"``). Raises ``VideoDecodeError`` for bad files and ``BackendUnavailableError``
    for a backend that is not installed."""
    name = DEFAULT_BACKEND if backend == "auto" else backend
    if name not in _READERS:
        raise BackendUnavailableError(
            f"unknown decoding backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return _READERS[name](path, threads=threads, timeout_s=timeout_s)


def decode_with_resample(reader: VideoReader, sample_indices) -> tuple[torch.Tensor, list[int]]:
    """Sample indices with ``sample_indices(num_frames) -> list[int]`` and decode them.

    If the container over-stated its frame count, sample again once with the true count.
    Returns ``(frames uint8 (T, C, H, W), indices)``.
    """
    indices = list(sample_indices(reader.num_frames))
    try:
        return reader.get_frames(indices), indices
    except FrameCountError:
        indices = list(sample_indices(reader.num_frames))
        return reader.get_frames(indices), indices
