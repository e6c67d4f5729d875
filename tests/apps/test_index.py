"""`videomamba index`: windows, build, incremental update, kill-and-rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from search_fixtures import make_tiny_model, make_videos
from videomamba.apps.search_index import (
    MANIFEST, LoadedIndex, SearchIndexError, VideoTextEmbedder, build_index, plan_windows,
    read_manifest, window_frames,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> VideoTextEmbedder:
    return VideoTextEmbedder(model_dir)


def test_windows_cover_the_video_with_overlap() -> None:
    assert plan_windows(5.0, 2.0, 1.0) == [(0, 2), (1, 3), (2, 4), (3, 5)]
    # 5.5 s: regular windows stop at 5.0, so one more ends exactly at the end.
    assert plan_windows(5.5, 2.0, 2.0) == [(0, 2), (2, 4), (3.5, 5.5)]
    assert plan_windows(1.2, 2.0, 1.0) == [(0, 1.2)]
    assert plan_windows(0.0, 2.0, 1.0) == []
    # no drift over an hour of 0.1 s strides
    assert plan_windows(3600.0, 1.0, 0.1)[-1] == (3599.0, 3600.0)


def test_window_frames_are_segment_middles() -> None:
    times = np.arange(80) / 8.0  # 10 s at 8 fps
    assert window_frames(times, 2.0, 4.0, 4) == [18, 22, 26, 30]  # 2.25 s, 2.75 s, ...


def test_build_then_incremental(tmp_path: Path, embedder: VideoTextEmbedder) -> None:
    videos = tmp_path / "videos"
    paths = make_videos(videos, 3, seconds=3.0)
    out = tmp_path / "index"
    report = build_index(videos, out, embedder, window=2.0, stride=1.0)
    assert sorted(report.added) == sorted(p.name for p in paths)
    assert report.windows == 3 * 2  # 3 s videos: (0, 2) and (1, 3)
    index = LoadedIndex(out)
    assert len(index) == 6 and index.vectors.shape == (6, 16)
    first_vectors = {f: index.vectors[i] for i, f in enumerate(index.files) if index.starts[i] == 0}

    # Nothing changed: nothing is embedded again.
    again = build_index(videos, out, embedder, window=2.0, stride=1.0)
    assert again.added == again.updated == [] and len(again.unchanged) == 3

    # One new, one changed (other content, other size), one removed.
    make_videos(videos, 1, seconds=2.0, first_seed=10)
    make_videos(videos, 1, seconds=4.0, first_seed=1)  # overwrites clip_001.mp4
    (videos / "clip_002.mp4").unlink()
    delta = build_index(videos, out, embedder, window=2.0, stride=1.0)
    assert delta.added == ["clip_010.mp4"]
    assert delta.updated == ["clip_001.mp4"]
    assert delta.removed == ["clip_002.mp4"]
    assert delta.unchanged == ["clip_000.mp4"]
    index = LoadedIndex(out)
    assert sorted(set(index.files)) == ["clip_000.mp4", "clip_001.mp4", "clip_010.mp4"]
    assert index.files.count("clip_001.mp4") == 3  # 4 s now
    kept = [i for i, f in enumerate(index.files) if f == "clip_000.mp4" and index.starts[i] == 0]
    np.testing.assert_array_equal(index.vectors[kept[0]], first_vectors["clip_000.mp4"])
    # Old shards of the changed and removed files are gone.
    manifest = read_manifest(out)
    assert {p.name for p in (out / "shards").iterdir()} == \
        {Path(e["shard"]).name for e in manifest.files.values()}


def test_vectors_are_the_model_similarity(tmp_path: Path, embedder: VideoTextEmbedder) -> None:
    import torch

    from videomamba.tasks.retrieval.losses import similarity

    videos = tmp_path / "videos"
    make_videos(videos, 1, seconds=2.0)
    out = tmp_path / "index"
    build_index(videos, out, embedder, window=2.0, stride=1.0)
    index = LoadedIndex(out)
    # Re-embed the same window through the model's own contrastive path.
    from videomamba.apps.search_index import load_windows, _frame_times
    from videomamba.data.decoding import open_video

    with open_video(str(videos / "clip_000.mp4")) as reader:
        clip = load_windows(reader, _frame_times(reader), [(0.0, 2.0)], embedder)
    model = embedder.model
    with torch.no_grad():
        _, pooled = model.encode_video(clip)
        text = model.text_vectors(["a red square moves to the left"])
        expected = similarity(model.project_video(pooled), text, 1.0)[0, 0].item()
    assert float(index.vectors[0] @ text[0].numpy()) == pytest.approx(expected, abs=1e-5)


def test_other_settings_are_refused(tmp_path: Path, embedder: VideoTextEmbedder) -> None:
    videos = tmp_path / "videos"
    make_videos(videos, 1)
    out = tmp_path / "index"
    build_index(videos, out, embedder, window=2.0, stride=1.0)
    with pytest.raises(SearchIndexError, match="--stride"):
        build_index(videos, out, embedder, window=2.0, stride=0.5)
    report = build_index(videos, out, embedder, window=2.0, stride=0.5, rebuild=True)
    assert report.added == ["clip_000.mp4"]


def test_hash_mode_ignores_a_touched_but_identical_file(tmp_path: Path,
                                                         embedder: VideoTextEmbedder) -> None:
    videos = tmp_path / "videos"
    (path,) = make_videos(videos, 1)
    out = tmp_path / "index"
    build_index(videos, out, embedder, use_hash=True)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert build_index(videos, out, embedder, use_hash=True).unchanged == ["clip_000.mp4"]
    assert build_index(videos, out, embedder).updated == ["clip_000.mp4"]  # size+mtime mode


# Runs one command module as the CLI does (its own parser), in a fresh process.
_RUNNER = ("import argparse, importlib, sys; m = importlib.import_module('videomamba.apps.' + "
           "sys.argv[1]); p = argparse.ArgumentParser(); m.add_arguments(p); "
           "sys.exit(m.run(p.parse_args(sys.argv[2:])))")


def run_cli(*args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.Popen([sys.executable, "-c", _RUNNER, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_commands_are_registered() -> None:
    from videomamba.cli import COMMANDS

    assert {"index", "search", "serve"} <= set(COMMANDS)
    assert all(COMMANDS[name][0] == name for name in ("index", "search", "serve"))


def indexed_count(out: Path) -> int:
    try:
        return len(json.loads((out / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError):
        return 0


def test_kill_mid_index_then_rerun(tmp_path: Path, model_dir: Path,
                                   embedder: VideoTextEmbedder) -> None:
    videos = tmp_path / "videos"
    make_videos(videos, 24, seconds=2.0)
    out = tmp_path / "index"
    proc = run_cli("index", str(videos), "--model", str(model_dir), "--out", str(out),
                   "--batch-size", "1")
    deadline = time.time() + 120
    while indexed_count(out) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    done_before = indexed_count(out)
    assert 2 <= done_before < 24, f"the kill should land mid-way; stderr: {stderr[-2000:]}"

    # What was indexed before the kill is complete and readable.
    index = LoadedIndex(out)
    assert len(set(index.files)) == done_before and len(index) == done_before

    # The rerun finishes the job, keeps what was done, and cleans leftovers.
    proc = run_cli("index", str(videos), "--model", str(model_dir), "--out", str(out), "--json")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    assert len(report["unchanged"]) == done_before
    assert len(report["added"]) == 24 - done_before
    final = LoadedIndex(out)
    manifest = read_manifest(out)
    assert {p.name for p in (out / "shards").iterdir()} == \
        {Path(e["shard"]).name for e in manifest.files.values()}
    assert not list(out.glob(".*.tmp"))

    # Same vectors as an index built without interruption.
    clean = tmp_path / "clean"
    build_index(videos, clean, embedder)
    reference = LoadedIndex(clean)
    assert final.files == reference.files
    np.testing.assert_allclose(final.vectors, reference.vectors, atol=1e-6)
