"""The video data pipeline: decoding, frame sampling, clip transforms, datasets, loaders and
synthetic datasets.

Contracts: a decoded clip is uint8 ``(T, C, H, W)``; a dataset sample is a dict with ``"video"``
float ``(C, T, H, W)`` (``(V, C, T, H, W)`` for V test views), ``"label"``, ``"index"``,
``"path"``, ``"skipped"`` (+ ``"caption"``, ``"start"``, ``"end"`` where the annotation has them).

Typical use by the engine::

    from videomamba.data import build_dataset, build_loader
    train = build_dataset(cfg["data"], mode="train")       # dict / DataConfig
    loader = build_loader(train, batch_size=32, train=True, num_workers=8, seed=0)

See ``docs/data.md`` for annotation layouts, samplings and transforms.
"""

from videomamba.data.annotations import VideoRecord, read_annotations, read_class_names
from videomamba.data.datasets import DataConfig, VideoDataset, build_dataset
from videomamba.data.decoding import (BACKENDS, DecordReader, FrameCountError, PyAVReader,
                                      TorchCodecReader, VideoReader, available_backends,
                                      backend_available, open_video)
from videomamba.data.loader import VideoLoader, build_loader
from videomamba.data.sampling import dense_indices, sample_indices, segment_indices, \
    sparse_indices, eval_views
from videomamba.data.synthetic import LONGRANGE_CLASSES, MOTION_CLASSES, SynthConfig, generate
from videomamba.data.transforms import EvalTransform, RandAugment, TrainTransform, normalize
from videomamba.data.video_io import index_pattern, read_index_pattern, write_video

# The dataset class under the official name, for readers of the official code.
VideoClsDataset = VideoDataset

__all__ = [
    "BACKENDS", "DataConfig", "DecordReader", "EvalTransform", "FrameCountError",
    "LONGRANGE_CLASSES", "MOTION_CLASSES", "PyAVReader", "RandAugment", "SynthConfig",
    "TorchCodecReader", "TrainTransform", "VideoClsDataset", "VideoDataset", "VideoLoader",
    "VideoReader", "VideoRecord", "available_backends", "backend_available", "build_dataset",
    "build_loader", "dense_indices", "generate", "index_pattern", "normalize", "open_video",
    "read_annotations", "read_class_names", "read_index_pattern", "sample_indices",
    "segment_indices", "sparse_indices", "eval_views", "write_video",
]
