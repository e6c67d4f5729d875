"""``videomamba predict VIDEO... --model DIR|OFFICIAL.pth``: top-k labels of videos.

The Python API is :class:`Predictor` (also ``videomamba.Predictor``)::

    predictor = videomamba.Predictor("runs/demo/motion/videomamba/model")
    predictor("clip.mp4", k=3)   # [{"label": "move_left", "index": 1, "score": 0.97}, ...]
    predictor.embed("clip.mp4")  # the cls feature (d,), averaged over the test views
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence


class Predictor:
    """Classify or embed videos with a saved model.

    ``model`` is a folder written by ``save_pretrained`` (``videomamba train``, ``convert`` or
    the demo) or an official ``.pth`` / ``.safetensors`` checkpoint; for the latter the
    architecture is recognised from the weights, or named with ``model_name``. Videos are read
    with the data pipeline's test transform: ``num_clips`` temporal clips x ``num_crops`` crops,
    whose softmax scores (or features) are averaged.
    """

    def __init__(self, model: str | Path, model_name: str | None = None, device: str = "auto",
                 num_frames: int | None = None, num_clips: int = 1, num_crops: int = 1,
                 class_names: Sequence[str] | None = None, cuda_graph: bool = False) -> None:
        import torch

        from videomamba.engine.distributed import pick_device

        self.device = pick_device(device)
        self.model = load_model(model, model_name, num_frames).to(self.device).eval()
        names = class_names or getattr(self.model, "class_names", None)
        self.class_names = list(names) if names else None
        self.num_clips, self.num_crops = num_clips, num_crops
        self._torch = torch
        self._graphed = None
        if cuda_graph and self.device.type == "cuda":
            from videomamba.utils.cuda_graph import CudaGraphRunner

            self._graphed = (CudaGraphRunner(self.model),
                             CudaGraphRunner(self.model.forward_features))

    @property
    def config(self) -> Any:
        return self.model.config

    def dataset_config(self) -> dict[str, Any]:
        from videomamba.models.config import default_data_config

        data = default_data_config(self.config)
        return {"num_frames": data.num_frames, "crop_size": data.input_size,
                "short_side": data.input_size, "mean": tuple(data.mean), "std": tuple(data.std),
                "sampling": "sparse", "num_clips": self.num_clips, "num_crops": self.num_crops}

    def load_views(self, video: Any) -> Any:
        """Views ``(V, C, T, H, W)`` of a path, or of a tensor ``(C, T, H, W)`` / ``(V, C, T, H, W)``
        that is already normalised as the model expects."""
        torch = self._torch
        if isinstance(video, torch.Tensor):
            if video.dim() == 4:
                return video.unsqueeze(0).float()
            if video.dim() == 5:
                return video.float()
            raise ValueError(f"a video tensor must be (C, T, H, W) or (V, C, T, H, W), got {tuple(video.shape)}")
        from videomamba.data.annotations import VideoRecord
        from videomamba.data.datasets import DataConfig, VideoDataset

        path = str(video)
        if not Path(path).is_file():
            from videomamba.errors import VideoDecodeError

            raise VideoDecodeError(f"{path}: no such video file")
        config = DataConfig(annotation=path, mode="test", **self.dataset_config())
        dataset = VideoDataset(config, records=[VideoRecord(path)], classes=[])
        return dataset[0]["video"]

    def _forward(self, views: Any, features: bool) -> Any:
        torch = self._torch
        with torch.no_grad():
            views = views.to(self.device)
            if self._graphed is not None:
                out = self._graphed[1 if features else 0](views).float()
            elif features:
                out = self.model.forward_features(views).float()
            else:
                out = self.model(views).float()
            return out.mean(dim=0) if features else out.softmax(dim=-1).mean(dim=0)

    def scores(self, video: Any) -> Any:
        """Class probabilities ``(K,)`` averaged over the views."""
        return self._forward(self.load_views(video), features=False).cpu()

    def embed(self, video: Any) -> Any:
        """The normalised cls feature ``(d,)`` averaged over the views."""
        return self._forward(self.load_views(video), features=True).cpu()

    def __call__(self, video: Any, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` most likely classes of one video: label, class index and probability."""
        probs = self.scores(video)
        top = probs.topk(min(k, probs.numel()))
        return [{"label": self.label(int(i)), "index": int(i), "score": float(s)}
                for s, i in zip(top.values, top.indices)]

    def label(self, index: int) -> str:
        return self.class_names[index] if self.class_names else str(index)


def load_model(source: str | Path, model_name: str | None = None, num_frames: int | None = None) -> Any:
    """A model from a ``save_pretrained`` folder or an official checkpoint file."""
    from videomamba.errors import CheckpointError
    from videomamba.models import create_model, from_pretrained, load_state_dict_into, read_state_dict
    from videomamba.models.checkpoint import checkpoint_sizes, guess_model_name

    path = Path(source)
    overrides = {"num_frames": num_frames} if num_frames else {}
    if path.is_dir():
        return from_pretrained(path, **overrides)
    if not path.is_file():
        raise CheckpointError(f"--model {source}: no such folder or file; pass a folder written "
                              f"by `videomamba train`/`convert` or an official .pth")
    state = read_state_dict(path)
    name = model_name or guess_model_name(state)
    if name is None:
        raise CheckpointError(f"{path}: cannot tell which model these weights are for; "
                              f"pass --model-name (see videomamba.list_models())")
    sizes = {**checkpoint_sizes(state), **overrides}
    model = create_model(name, **sizes)
    load_state_dict_into(model, state, str(path))
    model.class_names = None
    return model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", help="video files")
    parser.add_argument("--model", required=True, help="model folder or official .pth/.safetensors")
    parser.add_argument("--model-name", default=None, help="architecture of an official checkpoint "
                        "(default: recognised from the weights)")
    parser.add_argument("-k", "--top-k", type=int, default=5, help="labels to show (5)")
    parser.add_argument("--num-frames", type=int, default=None, help="frames per clip (the model's)")
    parser.add_argument("--clips", type=int, default=1, help="temporal clips averaged (1)")
    parser.add_argument("--crops", type=int, default=1, help="spatial crops averaged: 1 or 3 (1)")
    parser.add_argument("--classes", default=None, help="text file with one class name per line")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="on CUDA, replay the model from CUDA graphs (one capture per number "
                             "of views): less host overhead per video")
    parser.add_argument("--json", action="store_true", help="print JSON lines")


def class_names_from(path: str | None) -> list[str] | None:
    if path is None:
        return None
    from videomamba.data.annotations import read_class_names

    return read_class_names(path)


def run(args: argparse.Namespace) -> int:
    predictor = Predictor(args.model, args.model_name, args.device, args.num_frames, args.clips,
                          args.crops, class_names_from(args.classes),
                          cuda_graph=args.cuda_graph)
    for video in args.videos:
        top = predictor(video, k=args.top_k)
        if args.json:
            print(json.dumps({"video": video, "top": top}))
        else:
            shown = "  ".join(f"{p['label']} {p['score']:.3f}" for p in top)
            print(f"{video}: {shown}")
    return 0
