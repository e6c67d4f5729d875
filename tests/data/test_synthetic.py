"""Synthetic datasets: real files in our formats, deterministic, balanced, order-sensitive."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

from videomamba.apps import synth as synth_app
from videomamba.data import build_dataset, open_video
from videomamba.data.synthetic import FLASH_COLOURS, LONGRANGE_CLASSES, MOTION_CLASSES, \
    SynthConfig, generate, longrange_clip, motion_clip
from videomamba.errors import ConfigError


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    synth_app.add_arguments(parser)
    return synth_app.run(parser.parse_args(list(argv)))


def decode_all(path: str) -> np.ndarray:
    with open_video(path) as r:
        return r.get_frames(range(r.num_frames)).numpy()


def test_motion_cli_writes_a_loadable_balanced_dataset(tmp_path, capsys):
    out = tmp_path / "motion"
    assert run_cli("motion", "--out", str(out), "--num", "20", "--frames", "8", "--size", "32",
                   "--seed", "3", "--json") == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["splits"] == {"train": 20, "val": 5, "test": 5}
    assert (out / "classes.txt").read_text().split() == list(MOTION_CLASSES)
    ds = build_dataset({"annotation": str(out / "train.csv"), "prefix": str(out),
                        "num_frames": 8, "crop_size": 32, "flip": False})
    assert ds.classes == list(MOTION_CLASSES)
    assert sorted(r.label for r in ds.records) == sorted(list(range(10)) * 2)
    with open_video(ds.records[0].path) as r:
        assert (r.num_frames, r.fps) == (8, 8.0)
    assert ds[0]["video"].shape == (3, 8, 32, 32)


def test_same_seed_same_files_other_seed_other_videos(tmp_path):
    def make(name, seed, num):
        generate(SynthConfig("motion", str(tmp_path / name), num=num, frames=6, size=32, seed=seed))
        return [(tmp_path / name / f"videos/train/{i:06d}.mp4").read_bytes() for i in range(4)]

    a, b, c = make("a", 7, 4), make("b", 7, 12), make("c", 8, 4)
    assert a == b  # byte-identical, and more clips keep the first ones
    assert (tmp_path / "a" / "train.csv").read_text().splitlines() == \
        (tmp_path / "b" / "train.csv").read_text().splitlines()[:4]
    assert not np.array_equal(decode_all(str(tmp_path / "a/videos/train/000003.mp4")),
                              decode_all(str(tmp_path / "c/videos/train/000003.mp4")))


@pytest.mark.parametrize("pair", range(5))
def test_pairs_are_exact_time_reversals(pair):
    for seed in range(3):
        forward = motion_clip(2 * pair, np.random.default_rng(seed), frames=8, size=32)
        backward = motion_clip(2 * pair + 1, np.random.default_rng(seed), frames=8, size=32)
        assert np.array_equal(forward[::-1], backward)
        assert not np.array_equal(forward, backward)  # the motion is visible


def test_motion_classes_really_move():
    rng = np.random.default_rng(0)
    clip = motion_clip(0, rng, frames=8, size=32).astype(float)  # move_right
    diff = np.abs(clip[-1] - clip[0]).mean(-1)
    cols = np.nonzero(diff > 60)[1]
    assert cols.size and cols.max() - cols.min() > 8


def _bright_centroids(clip: np.ndarray) -> np.ndarray:
    """``(T, 2)`` x, y centres of the pixels well above each frame's median brightness."""
    grey = clip.astype(float).mean(-1)
    centres = []
    for frame in grey:
        ys, xs = np.nonzero(frame > np.median(frame) + 45)
        assert xs.size > 10  # the bright object is visible in every frame
        centres.append((xs.mean(), ys.mean()))
    return np.array(centres)


@pytest.mark.parametrize("seed", range(6))
def test_rotations_carry_the_object_along_an_arc_of_their_direction(seed):
    """Turning about a pivot off the centre moves the centre on a clockwise arc (y down: the
    cross product of successive displacements is positive), so a square's turn is visible too."""
    clip = motion_clip(8, np.random.default_rng(seed), frames=8, size=32)  # rotate_clockwise
    c = _bright_centroids(clip)
    first, second = c[4] - c[0], c[7] - c[4]
    cross = first[0] * second[1] - first[1] * second[0]
    assert cross > 2.0, (seed, c)
    reversed_c = _bright_centroids(motion_clip(9, np.random.default_rng(seed), frames=8, size=32))
    first, second = reversed_c[4] - reversed_c[0], reversed_c[7] - reversed_c[4]
    assert first[0] * second[1] - first[1] * second[0] < -2.0


def test_written_motion_sets_hold_each_clip_and_its_exact_reversal(tmp_path):
    """Clip 2m + 1 is clip 2m backwards, also after encoding: an order-blind model then scores
    exactly 50 % between the classes of each pair on any split."""
    generate(SynthConfig("motion", str(tmp_path), num=4, frames=6, size=32, seed=0))
    rows = (tmp_path / "test.csv").read_text().splitlines() + \
        (tmp_path / "train.csv").read_text().splitlines()
    labels = {r.split()[0]: int(r.split()[1]) for r in rows}
    for split in ("train",):
        for m in range(2):
            even = f"videos/{split}/{2 * m:06d}.mp4"
            odd = f"videos/{split}/{2 * m + 1:06d}.mp4"
            assert labels[odd] == labels[even] + 1 and labels[even] % 2 == 0
            forward, backward = decode_all(str(tmp_path / even)), decode_all(str(tmp_path / odd))
            assert np.array_equal(forward[::-1], backward)
            assert not np.array_equal(forward, backward)
    assert not np.array_equal(decode_all(str(tmp_path / "videos/train/000000.mp4")),
                              decode_all(str(tmp_path / "videos/train/000002.mp4"))[::-1])


def test_longrange_flashes_are_far_apart_and_decide_the_label():
    names = list(FLASH_COLOURS)
    for label in range(len(LONGRANGE_CLASSES)):
        clip = longrange_clip(label, np.random.default_rng(label), frames=96, size=32)
        centre = clip[:, 12:20, 12:20].reshape(96, -1, 3).mean(1)
        hits = [(t, c) for t in range(96) for c, rgb in enumerate(FLASH_COLOURS.values())
                if np.abs(centre[t] - rgb).max() < 25]
        colours_in_order = [c for _, c in hits]
        first, second = divmod(label, 3)
        assert colours_in_order[0] == first and colours_in_order[-1] == second
        assert hits[-1][0] - hits[0][0] >= 96 // 4, names  # far apart


def test_longrange_and_captions_cli(tmp_path, capsys):
    assert run_cli("longrange", "--out", str(tmp_path / "lr"), "--num", "3", "--frames", "64",
                   "--size", "32") == 0
    with open_video(str(tmp_path / "lr" / "videos/train/000000.mp4")) as r:
        assert r.num_frames == 64
    out = tmp_path / "cap"
    assert run_cli("captions", "--out", str(out), "--num", "4", "--frames", "8", "--size", "32",
                   "--segments", "3", "--fps", "4") == 0
    items = json.loads((out / "train.json").read_text())
    assert len(items) == 4 and all(i["caption"].split()[0] in ("a", "the", "there") for i in items)
    ds = build_dataset({"annotation": str(out / "train.json"), "prefix": str(out),
                        "num_frames": 4, "crop_size": 32, "mode": "val"})
    assert ds[0]["caption"] == items[0]["caption"]
    segments = json.loads((out / "long" / "segments.json").read_text())
    assert [(s["start"], s["end"]) for s in segments] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    with open_video(str(out / "long" / "long_video.mp4")) as r:
        assert r.num_frames == 24 and r.duration == pytest.approx(6.0)
    assert "wrote captions" in capsys.readouterr().out


def test_bad_synth_arguments():
    with pytest.raises(ConfigError, match="--size 33"):
        generate(SynthConfig("motion", "/tmp/never", size=33))
    with pytest.raises(ConfigError, match="longrange.*--frames 16"):
        generate(SynthConfig("longrange", "/tmp/never", frames=16))


def test_every_synthetic_frame_is_a_key_frame(tmp_path):
    """With one key frame per clip, compression quality would differ between the start and the
    end of a motion and let an order-blind model tell a clip from its reversal."""
    import av

    generate(SynthConfig("motion", str(tmp_path), num=4, frames=6, size=32, seed=0))
    clips = sorted(tmp_path.glob("videos/*/*.mp4"))
    assert clips
    for path in clips:
        with av.open(str(path)) as container:
            flags = [p.is_keyframe for p in container.demux(video=0) if p.size]
        assert len(flags) == 6 and all(flags), (path, flags)
