"""``videomamba embed VIDEO... --model DIR|OFFICIAL.pth --out F.npy|F.safetensors``.

Writes one feature row per video (the model's normalised cls token, averaged over the test
views): ``.npy`` holds a float32 array ``(N, d)`` (with ``F.paths.txt`` listing the videos in
order); ``.safetensors`` holds ``features`` ``(N, d)`` and the paths in its metadata.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", help="video files")
    parser.add_argument("--model", required=True, help="model folder or official .pth/.safetensors")
    parser.add_argument("--model-name", default=None, help="architecture of an official checkpoint")
    parser.add_argument("--out", required=True, help="output file: .npy or .safetensors")
    parser.add_argument("--num-frames", type=int, default=None, help="frames per clip (the model's)")
    parser.add_argument("--clips", type=int, default=1, help="temporal clips averaged (1)")
    parser.add_argument("--crops", type=int, default=1, help="spatial crops averaged (1)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")


def write_features(path: Path, features, videos: list[str]) -> None:
    """``features`` float32 ``(N, d)`` to ``.npy`` (+ ``.paths.txt``) or ``.safetensors``, atomically."""
    import numpy as np

    from videomamba.utils.io import atomic_path, atomic_write_text
    from videomamba.errors import ConfigError

    if path.suffix == ".npy":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, features.numpy().astype(np.float32))
        atomic_write_text(path.with_suffix(".paths.txt"), "".join(f"{v}\n" for v in videos))
    elif path.suffix == ".safetensors":
        from safetensors.torch import save_file

        with atomic_path(path) as tmp:
            save_file({"features": features.float().contiguous()}, str(tmp),
                      metadata={"paths": json.dumps(videos)})
    else:
        raise ConfigError(f"--out {path}: use a .npy or .safetensors file name")


def run(args: argparse.Namespace) -> int:
    import torch

    from videomamba.apps.predict import Predictor

    out = Path(args.out)
    if out.suffix not in (".npy", ".safetensors"):
        from videomamba.errors import ConfigError

        raise ConfigError(f"--out {out}: use a .npy or .safetensors file name")
    predictor = Predictor(args.model, args.model_name, args.device, args.num_frames, args.clips, args.crops)
    features = torch.stack([predictor.embed(video) for video in args.videos])
    write_features(out, features, list(args.videos))
    summary = {"out": str(out), "videos": len(args.videos), "dim": int(features.shape[1])}
    print(json.dumps(summary) if args.json else
          f"wrote {features.shape[0]} x {features.shape[1]} features to {out}")
    return 0
