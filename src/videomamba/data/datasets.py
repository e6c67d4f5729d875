"""Video datasets: annotation records -> decoded, sampled, transformed clips.

Build one from plain data::

    ds = build_dataset({"annotation": "data/train.csv", "prefix": "data", "mode": "train",
                        "num_frames": 8, "crop_size": 224})
    sample = ds[0]

``sample`` is a dict (PyTorch's default collate batches it):

- ``"video"``: float, ImageNet-normalised; ``(C, T, H, W)`` in ``train``/``val`` mode,
  ``(V, C, T, H, W)`` in ``test`` mode with ``V = num_clips * num_crops`` views ordered
  temporal-major (view ``v`` = clip ``v // num_crops``, crop ``v % num_crops``);
- ``"label"``: int (-1 when the annotation has none); ``"index"``: int, the record returned (after
  a skip, the replacement's); ``"path"``: str;
- ``"skipped"``: int, how many unreadable videos were replaced to produce this sample
  (``on_error="skip"``; always 0 with ``"raise"``); :class:`videomamba.data.loader.VideoLoader`
  sums it across workers and reports it at the end of each epoch;
- ``"caption"``: str, when the annotation has captions (a random one in train mode, else the first);
- ``"start"``, ``"end"``: float seconds, when the annotation has segments (JSON ``start``/``end``).

``ds.classes`` holds the class names (``ds.classes[label]``); ``ds.records`` the annotation.
Modes: ``train`` = one random clip (``sampling`` with ``clip_idx=-1``) + :class:`TrainTransform`;
``val`` = the single centred view + :class:`EvalTransform`; ``test`` = all views.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch.utils.data import Dataset

from videomamba.data.annotations import VideoRecord, read_annotations, resolve_class_names
from videomamba.data.decoding import DEFAULT_BACKEND, DEFAULT_TIMEOUT_S, decode_with_resample, \
    open_video
from videomamba.data.sampling import SAMPLINGS, sample_indices, eval_views, window
from videomamba.data.transforms import IMAGENET_MEAN, IMAGENET_STD, OFFICIAL_RAND_AUGMENT, \
    EvalTransform, TrainTransform
from videomamba.errors import ConfigError, VideoDecodeError

log = logging.getLogger(__name__)

MODES = ("train", "val", "test")


@dataclass
class DataConfig:
    """Everything a video dataset needs; YAML recipes map onto these keys one to one."""

    annotation: str                      # CSV / JSON file, or the root of a class-per-folder tree
    format: str = "auto"                 # "csv" | "json" | "folder" | "auto" (by the path)
    prefix: str = ""                     # joined before every video path of the annotation
    separator: str = " "                 # CSV field separator
    classes: str | list[str] | None = None  # class names: a list or a file; None: see annotations
    mode: str = "train"                  # "train" | "val" | "test"
    num_frames: int = 8                  # T
    sampling: str = "sparse"             # "sparse" (Kinetics_sparse/LVU) | "dense" | "segment" (SSv2)
    stride: int = 4                      # frame stride of dense sampling
    num_clips: int = 1                   # test: temporal views
    num_crops: int = 1                   # test: spatial crops (1 = centre, 3 = official 3-crop)
    crop_size: int = 224
    short_side: int | None = None        # eval resize of the short side; None: crop_size
    crop: str = "random_resized"         # train crop: "random_resized" | "multi_scale"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (0.75, 1.3333)
    flip: bool = True                    # False for direction-sensitive data (SSv2, synthetic motion)
    rand_augment: str | None = OFFICIAL_RAND_AUGMENT  # None disables RandAugment
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    random_erase: float = 0.0            # train: per-frame random-erasing probability (official 0.25)
    backend: str = DEFAULT_BACKEND       # "pyav" | "decord" | "torchcodec"
    decode_threads: int = 1              # FFmpeg threads per reader (workers already run in parallel)
    decode_timeout: float | None = DEFAULT_TIMEOUT_S  # seconds per video before giving up
    on_error: str = "raise"              # "raise" | "skip" (replace an unreadable video, count it)
    max_retries: int = 10                # replacements tried for one sample before raising

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"data config: unknown key(s) {', '.join(unknown)}; "
                              f"known keys: {', '.join(sorted(known))}")
        if "annotation" not in data:
            raise ConfigError("data config: 'annotation' (CSV/JSON file or folder) is required")
        values = dict(data)
        for key in ("scale", "ratio", "mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def validate(self) -> None:
        checks = [
            (self.mode in MODES, f"mode {self.mode!r} must be one of {', '.join(MODES)}"),
            (self.sampling in SAMPLINGS,
             f"sampling {self.sampling!r} must be one of {', '.join(SAMPLINGS)}"),
            (self.on_error in ("raise", "skip"), f"on_error {self.on_error!r} must be raise|skip"),
            (self.num_frames >= 1 and self.stride >= 1, "num_frames and stride must be >= 1"),
            (self.num_clips >= 1 and self.num_crops >= 1, "num_clips and num_crops must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"data config: {message}")


class VideoDataset(Dataset):
    """Videos from an annotation, as sample dicts (see the module docstring)."""

    def __init__(self, config: DataConfig, records: list[VideoRecord] | None = None,
                 classes: list[str] | None = None):
        config.validate()
        self.config = config
        self.records = records if records is not None else read_annotations(
            config.annotation, config.format, config.separator, config.prefix)
        self.classes = classes if classes is not None else resolve_class_names(
            config.annotation, self.records, config.classes)
        self.has_captions = any(r.captions for r in self.records)
        self.has_segments = any(r.start is not None or r.end is not None for r in self.records)
        self.skipped = 0  # replacements made in this process (the loader counts across workers)
        self._train_transform = TrainTransform(
            config.crop_size, config.crop, config.scale, config.ratio, config.flip,
            config.rand_augment, config.mean, config.std, config.random_erase
        ) if config.mode == "train" else None
        self._eval_transform = EvalTransform(config.crop_size, config.short_side,
                                             config.num_crops, config.mean, config.std)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def views(self) -> list[tuple[int, int]]:
        """``(clip_idx, crop_idx)`` of each view this mode produces; ``(-1, -1)`` = random."""
        if self.config.mode == "train":
            return [(-1, -1)]
        if self.config.mode == "val":
            return [(0, 0)]
        return eval_views(self.config.num_clips, self.config.num_crops)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = random.Random(int(torch.randint(0, 2**62, (1,)).item()))
        skipped = 0
        while True:
            try:
                sample = self._load_sample(index, rng)
                sample["skipped"] = skipped
                return sample
            except VideoDecodeError as err:
                if self.config.on_error != "skip" or skipped >= self.config.max_retries:
                    raise
                skipped += 1
                self.skipped += 1
                log.warning("skipping unreadable video (%s); replacing sample %d", err, index)
                index = rng.randrange(len(self))

    def load_clip(self, index: int, rng: random.Random | None = None
                  ) -> tuple[torch.Tensor, list[list[int]], dict[str, Any]]:
        """Decode the frames of every view of sample ``index``, without transforms.

        Returns ``(frames uint8 (N, C, H, W), per-view frame indices, info)``: the union of the
        views' frames in sorted order, each view's indices into the video, and ``info`` with
        ``fps``, ``duration`` and ``position`` (video frame index -> row of ``frames``).
        """
        rng = rng or random.Random()
        record = self.records[index]
        cfg = self.config
        with open_video(record.path, cfg.backend, threads=cfg.decode_threads,
                        timeout_s=cfg.decode_timeout) as reader:
            clip_ids = sorted({clip for clip, _ in self.views()})
            views: list[list[int]] = []

            def all_view_indices(video_len: int) -> list[int]:
                frame_range = window(record.start, record.end, reader.fps, video_len)
                views[:] = [sample_indices(cfg.sampling, video_len, cfg.num_frames,
                                           stride=cfg.stride, clip_idx=c, num_clips=cfg.num_clips,
                                           rng=rng, frame_range=frame_range) for c in clip_ids]
                return sorted({i for v in views for i in v})

            frames, unique = decode_with_resample(reader, all_view_indices)
            info = {"fps": reader.fps, "duration": reader.duration,
                    "position": {f: row for row, f in enumerate(unique)}}
        return frames, views, info

    def _load_sample(self, index: int, rng: random.Random) -> dict[str, Any]:
        record = self.records[index]
        frames, view_indices, info = self.load_clip(index, rng)
        clips = {c: frames[[info["position"][i] for i in idx]]
                 for c, idx in zip(sorted({c for c, _ in self.views()}), view_indices)}
        if self.config.mode == "train":
            video = self._train_transform(clips[-1], rng)
        elif self.config.mode == "val":
            video = self._eval_transform(clips[0], 0)
        else:
            video = torch.stack([self._eval_transform(clips[c], s) for c, s in self.views()])
        sample: dict[str, Any] = {"video": video, "label": record.label, "index": index,
                                  "path": record.path}
        if self.has_captions:
            caps = record.captions or [""]
            sample["caption"] = rng.choice(caps) if self.config.mode == "train" else caps[0]
        if self.has_segments:
            sample["start"] = float(record.start or 0.0)
            sample["end"] = float(record.end if record.end is not None else info["duration"])
        return sample


def build_dataset(config: DataConfig | Mapping[str, Any], **overrides: Any) -> VideoDataset:
    """A :class:`VideoDataset` from a :class:`DataConfig` or a plain dict (YAML), with
    ``overrides`` applied on top (e.g. ``mode="val"``). Bad keys raise ``ConfigError``."""
    if isinstance(config, DataConfig):
        config = dataclasses.replace(config, **overrides)
    else:
        config = DataConfig.from_dict({**dict(config), **overrides})
    return VideoDataset(config)
