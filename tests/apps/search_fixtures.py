"""Helpers for the index/search/serve tests: a tiny video-text model and tiny videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WORDS = ["a", "the", "red", "green", "blue", "square", "ball", "moves", "to", "left", "right",
         "up", "down", "grows", "shrinks", "there", "is", "that"]


def write_vocab(path: Path) -> Path:
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return path


def make_tiny_model(directory: Path, seed: int = 0) -> Path:
    """A randomly initialised video-text model small enough for CPU tests, saved to ``directory``."""
    import torch

    from videomamba.models.video_text import VideoTextConfig, VideoTextModel

    torch.manual_seed(seed)
    vocab = write_vocab(directory.parent / f"{directory.name}-vocab.txt")
    config = VideoTextConfig(
        vision="videomamba_tiny",
        vision_kwargs={"num_frames": 4, "img_size": 32, "depth": 2, "embed_dim": 32,
                       "scan_backend": "torch"},
        text_config={"vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "intermediate_size": 64,
                     "max_position_embeddings": 64},
        tokenizer=str(vocab), text_pool="mean", embed_dim=16, fusion_layers=1)
    model = VideoTextModel(config).eval()
    model.save_pretrained(directory)
    return directory


def coloured_clip(seed: int, frames: int = 16, size: int = 32) -> np.ndarray:
    """A square moving across a plain background; colours and direction set by ``seed``."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, 3)
    colour = rng.integers(0, 255, 3)
    clip = np.empty((frames, size, size, 3), np.uint8)
    clip[:] = background
    for t in range(frames):
        x = int((size - 8) * t / max(frames - 1, 1))
        x = x if seed % 2 == 0 else size - 8 - x
        clip[t, 12:20, x:x + 8] = colour
    return clip


def make_videos(folder: Path, count: int, seconds: float = 2.0, fps: float = 8.0,
                first_seed: int = 0) -> list[Path]:
    from videomamba.data.video_io import write_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"clip_{first_seed + i:03d}.mp4"
        write_video(str(path), coloured_clip(first_seed + i, int(seconds * fps)), fps)
        paths.append(path)
    return paths
