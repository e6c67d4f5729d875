"""Data-loading throughput: 16x224 training clips per second per worker, for each backend.

Generates Kinetics-like 10 s mp4 files (340x256, 30 fps, H.264 with x264's default keyframe
interval of 250) once, then times ``VideoDataset.__getitem__`` in one process (= one DataLoader
worker): open + sparse sampling of 16 frames + decoding + RandAugment (rand-m7-n4-mstd0.5-inc1)
+ random-resized crop to 224 + flip + normalisation. Also reports decode-only throughput.

    PYTHONPATH=src python benchmarks/data.py --clips 40 --json benchmarks/results/data.json
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time

import numpy as np
import torch

from videomamba.data import available_backends, build_dataset, write_video


def kinetics_like_video(path: str, seconds: float, fps: int, width: int, height: int,
                        seed: int) -> None:
    """Moving textured content (compresses like real footage, unlike noise)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, (3,))
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        phase = t / fps
        wave = np.sin(xs / 17 + phase * 2) * np.cos(ys / 23 - phase) * 60
        blob = 80 * np.exp(-(((xs - (t * 3) % width) ** 2) + (ys - height / 2) ** 2) / 800)
        img = base + wave[..., None] + blob[..., None] * np.array([1.0, -0.5, 0.3])
        frames[t] = np.clip(img + rng.normal(0, 3, img.shape), 0, 255)
    write_video(path, frames, fps=fps, quality="medium")


def make_videos(folder: str, count: int, seconds: float, fps: int, size: tuple[int, int]) -> str:
    os.makedirs(folder, exist_ok=True)
    lines = []
    for i in range(count):
        path = os.path.join(folder, f"clip{i}_{size[0]}x{size[1]}_{fps}fps_{seconds:g}s.mp4")
        if not os.path.exists(path):
            kinetics_like_video(path, seconds, fps, size[0], size[1], seed=i)
        lines.append(f"{path} {i % 2}\n")
    ann = os.path.join(folder, "bench.csv")
    with open(ann, "w") as fh:
        fh.writelines(lines)
    return ann


def time_backend(ann: str, backend: str, clips: int, transforms: bool) -> float:
    ds = build_dataset({"annotation": ann, "mode": "train", "num_frames": 16, "crop_size": 224,
                        "sampling": "sparse", "backend": backend, "classes": ["a", "b"]})
    rng = random.Random(0)
    ds[0]  # warm-up (imports, first open)
    start = time.perf_counter()
    for k in range(clips):
        if transforms:
            ds[k % len(ds)]
        else:
            ds.load_clip(k % len(ds), rng)
    return clips / (time.perf_counter() - start)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40, help="clips timed per backend")
    parser.add_argument("--videos", type=int, default=4, help="10 s files to generate")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "videomamba-bench"))
    parser.add_argument("--backends", nargs="*", default=None, help="default: all installed")
    parser.add_argument("--json", default=None, help="write the results here (JSON)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one worker = one core
    ann = make_videos(args.cache, args.videos, 10.0, 30, (340, 256))
    load_before = os.getloadavg()[0]
    rows = []
    for backend in args.backends or available_backends():
        full = time_backend(ann, backend, args.clips, transforms=True)
        decode = time_backend(ann, backend, args.clips, transforms=False)
        rows.append({"backend": backend, "train_clips_per_s": round(full, 2),
                     "decode_clips_per_s": round(decode, 2)})
    best = max(r["train_clips_per_s"] for r in rows)
    print(f"{'backend':<12}{'train clips/s':>15}{'decode clips/s':>16}{'vs fastest':>12}")
    for r in rows:
        r["slowdown_vs_fastest"] = round(best / r["train_clips_per_s"], 2)
        print(f"{r['backend']:<12}{r['train_clips_per_s']:>15.2f}{r['decode_clips_per_s']:>16.2f}"
              f"{r['slowdown_vs_fastest']:>11.2f}x")
    result = {"benchmark": "data", "clip": "16x224 sparse, train transforms",
              "videos": "10 s, 340x256, 30 fps, H.264 (keyint 250)", "workers": 1,
              "torch_threads": 1, "cpu": _cpu_name(),
              "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
              "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
              "results": rows}
    print(f"load average before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores (other work running makes these numbers lower)")
    if args.json:
        from videomamba.utils.io import atomic_write_json

        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
