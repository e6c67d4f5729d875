"""An on-disk index of video windows for text search: build (incremental, kill-safe) and query.

Layout of an index directory::

    manifest.json          what is indexed: settings, model id, and per file its size, mtime,
                           (optional) content hash, shard name and window count
    shards/<name>.npz      one per indexed file: vectors (n, E) float32, starts (n,), ends (n,)

Crash safety: a shard is written to a temporary name and renamed (atomic) before the manifest
that refers to it is replaced (atomic too), so after a kill at any point the manifest lists only
complete shards; shards or temporaries that no manifest refers to are removed by the next run.
A file is re-indexed when its size or modification time changed (or, with ``use_hash``, its
SHA-256); files that disappeared are dropped.

Search is exact inner product in NumPy by default, or FAISS (``IndexFlatIP``, exact, faster on
many vectors) when ``faiss`` is installed and asked for. Vectors are the model's
:meth:`~videomamba.models.video_text.VideoTextModel.video_vectors`, so the score of a window is
the model's contrastive similarity to the query.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from videomamba.utils.io import atomic_path, atomic_write_json
from videomamba.errors import ConfigError, VideoDecodeError, VideoMambaError

log = logging.getLogger(__name__)

FORMAT_NAME = "videomamba-search-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARDS = "shards"
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


class SearchIndexError(VideoMambaError):
    """An index directory that is missing, corrupt, or was built with other settings."""


# ---------------------------------------------------------------------------------------- windows
def plan_windows(duration: float, window: float, stride: float) -> list[tuple[float, float]]:
    """Overlapping ``(start, end)`` seconds covering ``[0, duration]``: starts every ``stride``
    seconds, plus one window ending exactly at the end when the last regular one stops short.
    A video shorter than ``window`` is one window over its whole length."""
    if window <= 0 or stride <= 0:
        raise ConfigError(f"window ({window}) and stride ({stride}) must be > 0 seconds")
    if duration <= 0:
        return []
    if duration <= window:
        return [(0.0, float(duration))]
    spans = []
    step = 0
    while step * stride + window <= duration + 1e-6:
        start = step * stride  # multiplied, not accumulated: no drift on long videos
        spans.append((round(start, 6), round(start + window, 6)))
        step += 1
    if spans[-1][1] < duration - 1e-6:
        spans.append((round(duration - window, 6), round(float(duration), 6)))
    return spans


def window_frames(frame_times: np.ndarray, start: float, end: float, num_frames: int) -> list[int]:
    """Indices of ``num_frames`` frames spread over ``[start, end)``: the frame shown at the middle
    of each of ``num_frames`` equal segments (the official "middle" test sampling)."""
    centres = start + (np.arange(num_frames) + 0.5) * (end - start) / num_frames
    idx = np.searchsorted(frame_times, centres, side="right") - 1
    return np.clip(idx, 0, len(frame_times) - 1).astype(int).tolist()


# ---------------------------------------------------------------------------------------- embedders
class Embedder(Protocol):
    """What the index needs from a model."""

    model_id: dict[str, Any]  # name, path, weights id: stored in the manifest
    num_frames: int
    img_size: int

    def embed_clips(self, clips: Any) -> np.ndarray:
        """Float clips ``(B, C, T, H, W)`` -> vectors ``(B, E)`` float32."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Queries -> vectors ``(B, E)`` float32."""


class VideoTextEmbedder:
    """An :class:`Embedder` over a saved :class:`~videomamba.models.video_text.VideoTextModel`."""

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        import torch

        from videomamba.models.video_text import load_video_text_model, weights_id

        self.model = load_video_text_model(model_dir).to(device).eval()
        self.device = torch.device(device)
        self.num_frames = self.model.num_frames
        self.img_size = self.model.img_size
        self.model_id = {"path": str(Path(model_dir).resolve()), "weights_id": weights_id(model_dir),
                         "vision": self.model.config.vision}

    def embed_clips(self, clips: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.video_vectors(clips.to(self.device)).cpu().numpy().astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.text_vectors(list(texts)).cpu().numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------- manifest
@dataclass
class Manifest:
    root: str
    window: float
    stride: float
    num_frames: int
    img_size: int
    model: dict[str, Any]
    embed_dim: int = 0
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # relative path -> entry

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "root": self.root,
                "window": self.window, "stride": self.stride, "num_frames": self.num_frames,
                "img_size": self.img_size, "model": self.model, "embed_dim": self.embed_dim,
                "files": self.files}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> Manifest:
        if data.get("format") != FORMAT_NAME:
            raise SearchIndexError(f"{source}: not a videomamba search index manifest")
        keys = ("root", "window", "stride", "num_frames", "img_size", "model", "embed_dim", "files")
        missing = [k for k in keys if k not in data]
        if missing:
            raise SearchIndexError(f"{source}: manifest lacks {missing}; rebuild the index")
        return cls(**{k: data[k] for k in keys})

    @property
    def num_vectors(self) -> int:
        return sum(int(entry["num_windows"]) for entry in self.files.values())


def read_manifest(index_dir: str | Path) -> Manifest:
    path = Path(index_dir) / MANIFEST
    if not path.is_file():
        raise SearchIndexError(f"{path}: no index here; build one with `videomamba index DIR --model M "
                          f"--out {index_dir}`")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SearchIndexError(f"{path}: not valid JSON ({err}); rebuild the index") from err
    return Manifest.from_dict(data, str(path))


def write_manifest(index_dir: Path, manifest: Manifest) -> None:
    atomic_write_json(index_dir / MANIFEST, manifest.to_dict())


# ---------------------------------------------------------------------------------------- building
@dataclass
class BuildReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    windows: int = 0
    video_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def find_videos(root: Path) -> list[Path]:
    """Video files under ``root`` (recursively, sorted); hidden files and folders are skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(VIDEO_EXTENSIONS):
                found.append(Path(dirpath) / name)
    return found


def file_signature(path: Path, use_hash: bool) -> dict[str, Any]:
    stat = path.stat()
    sig: dict[str, Any] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if use_hash:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        sig["sha256"] = digest.hexdigest()
    return sig


def unchanged(entry: dict[str, Any] | None, sig: dict[str, Any]) -> bool:
    if entry is None:
        return False
    if "sha256" in sig:
        return entry.get("sha256") == sig["sha256"]
    return entry.get("size") == sig["size"] and entry.get("mtime_ns") == sig["mtime_ns"]


def open_or_create(index_dir: Path, root: Path, embedder: Embedder, window: float,
                   stride: float, rebuild: bool) -> Manifest:
    """The existing manifest when it was built with the same settings, else a fresh one
    (``rebuild``), else an error saying what differs."""
    fresh = Manifest(root=str(root.resolve()), window=float(window), stride=float(stride),
                     num_frames=embedder.num_frames, img_size=embedder.img_size,
                     model=dict(embedder.model_id))
    if not (index_dir / MANIFEST).is_file() or rebuild:
        return fresh
    old = read_manifest(index_dir)
    differences = [name for name, a, b in (
        ("the model", old.model.get("weights_id"), fresh.model.get("weights_id")),
        ("the folder", old.root, fresh.root),
        ("--window", old.window, fresh.window), ("--stride", old.stride, fresh.stride),
    ) if a != b]
    if differences:
        raise SearchIndexError(f"{index_dir}: was built with another {', '.join(differences)}; pass "
                          f"--rebuild to re-index everything, or choose another --out")
    return old


def collect_garbage(index_dir: Path, manifest: Manifest) -> None:
    """Delete shards and temporaries that the manifest does not refer to (left by a kill)."""
    referenced = {entry["shard"] for entry in manifest.files.values()}
    shard_dir = index_dir / SHARDS
    if shard_dir.is_dir():
        for path in shard_dir.iterdir():
            if f"{SHARDS}/{path.name}" not in referenced:
                path.unlink(missing_ok=True)
    for path in index_dir.glob(f".{MANIFEST}.*.tmp"):
        path.unlink(missing_ok=True)


def build_index(root: str | Path, index_dir: str | Path, embedder: Embedder, window: float = 2.0,
                stride: float = 1.0, batch_size: int = 16, use_hash: bool = False,
                rebuild: bool = False, progress: Callable[[str], None] | None = None) -> BuildReport:
    """Index every video under ``root`` into ``index_dir`` (new or changed files only)."""
    root, index_dir = Path(root), Path(index_dir)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder of videos")
    started = time.perf_counter()
    index_dir.mkdir(parents=True, exist_ok=True)
    (index_dir / SHARDS).mkdir(exist_ok=True)
    manifest = open_or_create(index_dir, root, embedder, window, stride, rebuild)
    if rebuild:
        manifest.files.clear()
        write_manifest(index_dir, manifest)
    collect_garbage(index_dir, manifest)
    report = BuildReport()
    videos = {str(p.relative_to(root)): p for p in find_videos(root)}
    for rel in sorted(set(manifest.files) - set(videos)):
        manifest.files.pop(rel)
        report.removed.append(rel)
    if report.removed:
        write_manifest(index_dir, manifest)
        collect_garbage(index_dir, manifest)
    for rel, path in videos.items():
        sig = file_signature(path, use_hash)
        entry = manifest.files.get(rel)
        if unchanged(entry, sig):
            report.unchanged.append(rel)
            continue
        try:
            vectors, spans, duration = embed_video(path, embedder, window, stride, batch_size)
        except VideoDecodeError as err:
            report.failed[rel] = str(err)
            log.warning("skipping %s: %s", rel, err)
            continue
        shard = write_shard(index_dir, rel, vectors, spans)
        manifest.embed_dim = int(vectors.shape[1]) if len(vectors) else manifest.embed_dim
        manifest.files[rel] = {**sig, "shard": shard, "num_windows": len(spans),
                               "duration": round(duration, 6)}
        write_manifest(index_dir, manifest)
        if entry is not None and entry.get("shard") != shard:
            (index_dir / entry["shard"]).unlink(missing_ok=True)
        (report.updated if entry is not None else report.added).append(rel)
        report.windows += len(spans)
        report.video_seconds += duration
        if progress:
            progress(f"indexed {rel}: {len(spans)} windows over {duration:.1f}s")
    report.seconds = time.perf_counter() - started
    return report


def write_shard(index_dir: Path, rel: str, vectors: np.ndarray,
                spans: Sequence[tuple[float, float]]) -> str:
    """Write one file's vectors atomically under a fresh name; returns ``shards/<name>.npz``."""
    name = f"{hashlib.sha1(rel.encode()).hexdigest()[:12]}-{uuid.uuid4().hex[:8]}.npz"
    starts = np.array([s for s, _ in spans], dtype=np.float64)
    ends = np.array([e for _, e in spans], dtype=np.float64)
    with atomic_path(index_dir / SHARDS / name) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, vectors=vectors.astype(np.float32), starts=starts, ends=ends)
    return f"{SHARDS}/{name}"


def embed_video(path: Path, embedder: Embedder, window: float, stride: float,
                batch_size: int) -> tuple[np.ndarray, list[tuple[float, float]], float]:
    """Vectors ``(n, E)`` of the windows of one video, the windows, and its duration."""
    from videomamba.data.decoding import open_video

    with open_video(str(path)) as reader:
        times = _frame_times(reader)
        duration = float(reader.duration)
        spans = plan_windows(duration, window, stride)
        chunks = []
        for first in range(0, len(spans), batch_size):
            batch = spans[first:first + batch_size]
            chunks.append(embedder.embed_clips(load_windows(reader, times, batch, embedder)))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
    return vectors, spans, duration


def _frame_times(reader: Any) -> np.ndarray:
    if hasattr(reader, "frame_times"):
        return np.asarray(reader.frame_times(), dtype=np.float64)
    return np.arange(reader.num_frames, dtype=np.float64) / max(reader.fps, 1e-6)


def load_windows(reader: Any, times: np.ndarray, spans: Sequence[tuple[float, float]],
                 embedder: Embedder) -> Any:
    """Decode the frames of ``spans`` once and return float clips ``(B, C, T, S, S)``."""
    import torch

    from videomamba.data.transforms import EvalTransform

    per_window = [window_frames(times, s, e, embedder.num_frames) for s, e in spans]
    wanted = sorted({i for idx in per_window for i in idx})
    frames = reader.get_frames(wanted)  # uint8 (N, C, H, W)
    position = {frame: row for row, frame in enumerate(wanted)}
    transform = EvalTransform(size=embedder.img_size)
    clips = [transform(frames[[position[i] for i in idx]]) for idx in per_window]
    return torch.stack(clips)


# ---------------------------------------------------------------------------------------- searching
@dataclass
class Hit:
    file: str
    start: float
    end: float
    score: float
    rank: int

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "file": self.file, "start": self.start, "end": self.end,
                "score": self.score}


class VectorSearch:
    """Top-k by inner product over ``vectors`` ``(N, E)``: NumPy (exact) or FAISS flat (exact)."""

    def __init__(self, vectors: np.ndarray, backend: str = "numpy") -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.backend = resolve_backend(backend)
        self._faiss_index = None
        if self.backend == "faiss" and len(self.vectors):
            import faiss

            self._faiss_index = faiss.IndexFlatIP(self.vectors.shape[1])
            self._faiss_index.add(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(Q, k')`` with ``k' = min(k, N)``, best first."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self.vectors))
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self._faiss_index is not None:
            scores, ids = self._faiss_index.search(queries, k)
            return scores, ids.astype(np.int64)
        scores = queries @ self.vectors.T  # (Q, N)
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
            np.tile(np.arange(scores.shape[1]), (len(queries), 1))
        part_scores = np.take_along_axis(scores, part, axis=1)
        # Order by score, then by position (earlier file/time first) for equal scores.
        order = np.lexsort((part, -part_scores), axis=1)
        ids = np.take_along_axis(part, order, axis=1)
        return np.take_along_axis(scores, ids, axis=1), ids.astype(np.int64)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str) -> str:
    if backend == "auto":
        return "faiss" if faiss_available() else "numpy"
    if backend == "faiss" and not faiss_available():
        from videomamba.errors import BackendUnavailableError

        raise BackendUnavailableError("search backend 'faiss' is not installed: "
                                      "pip install faiss-cpu (or use --backend numpy)")
    if backend not in ("numpy", "faiss"):
        raise ConfigError(f"unknown search backend {backend!r}; choose numpy, faiss or auto")
    return backend


class LoadedIndex:
    """An index read into memory: vectors and, for each, its file and time span."""

    def __init__(self, index_dir: str | Path, backend: str = "numpy") -> None:
        self.dir = Path(index_dir)
        self.manifest = read_manifest(self.dir)
        vectors, files, starts, ends = [], [], [], []
        for rel, entry in sorted(self.manifest.files.items()):
            shard = self.dir / entry["shard"]
            try:
                with np.load(shard) as data:
                    vectors.append(data["vectors"])
                    starts.append(data["starts"])
                    ends.append(data["ends"])
            except (OSError, ValueError, KeyError) as err:
                raise SearchIndexError(f"{shard}: unreadable ({err}); run `videomamba index` again "
                                  f"with --rebuild") from err
            files += [rel] * len(starts[-1])
        dim = self.manifest.embed_dim
        self.vectors = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
        self.files = files
        self.starts = np.concatenate(starts) if starts else np.zeros(0)
        self.ends = np.concatenate(ends) if ends else np.zeros(0)
        self.searcher = VectorSearch(self.vectors, backend)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def root(self) -> Path:
        return Path(self.manifest.root)

    def search_vector(self, query: np.ndarray, k: int) -> list[Hit]:
        scores, ids = self.searcher.search(query[None], k)
        return [Hit(self.files[i], float(self.starts[i]), float(self.ends[i]), float(s), r + 1)
                for r, (s, i) in enumerate(zip(scores[0], ids[0]))]

    def resolve_file(self, rel: str) -> Path | None:
        """The absolute path of an indexed file, or None when ``rel`` is not in the index."""
        if rel not in self.manifest.files:
            return None
        return self.root / rel


def format_time(seconds: float) -> str:
    minutes, secs = divmod(max(seconds, 0.0), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes}:{secs:05.2f}"


def embedder_for_index(manifest: Manifest, model_dir: str | None = None,
                       device: str = "cpu") -> VideoTextEmbedder:
    """Load the model an index was built with (or ``model_dir``), checking it is the same one."""
    path = model_dir or manifest.model.get("path")
    if not path or not Path(path).is_dir():
        raise SearchIndexError(f"the index's model {path!r} is not there any more; pass --model DIR "
                          f"(the same weights the index was built with)")
    embedder = VideoTextEmbedder(path, device)
    if embedder.model_id["weights_id"] != manifest.model.get("weights_id"):
        raise SearchIndexError(f"model {path} (weights {embedder.model_id['weights_id']}) is not the "
                          f"one the index was built with ({manifest.model.get('weights_id')}); "
                          f"re-index or pass the right --model")
    return embedder
