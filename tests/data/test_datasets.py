"""Annotations, datasets and loaders: formats, errors naming file and line, exact frames through
the dataset, test views, skipping bad videos across workers, seeding and distributed sampling."""

from __future__ import annotations

import json
import os
import random

import pytest
import torch

from videomamba.data import DataConfig, build_dataset, build_loader, read_annotations
from videomamba.data.sampling import sparse_indices
from videomamba.data.video_io import index_pattern, read_index_pattern, write_video
from videomamba.errors import AnnotationError, ConfigError, VideoDecodeError


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """root/videos/{a,b}.mp4 (index patterns of 150 and 40 frames), CSV, JSON and class files."""
    root = tmp_path_factory.mktemp("ds")
    write_video(str(root / "videos" / "a.mp4"), index_pattern(150, 64), fps=25, gop=12)
    write_video(str(root / "videos" / "b.mp4"), index_pattern(40, 64), fps=25, gop=12)
    (root / "train.csv").write_text("videos/a.mp4 0\n\n# comment\nvideos/b.mp4 1\n")
    (root / "classes.txt").write_text("alpha\nbeta\n")
    return root


def cfg(tree, **kw) -> dict:
    return {"annotation": str(tree / "train.csv"), "prefix": str(tree), "num_frames": 8,
            "crop_size": 32, **kw}


def test_csv_with_separator_header_and_prefix(tmp_path):
    ann = tmp_path / "a.csv"
    ann.write_text("path,label\nmy clips/x y.mp4,3\n")
    recs = read_annotations(str(ann), separator=",", prefix="/data")
    assert recs[0].path == "/data/my clips/x y.mp4" and recs[0].label == 3


@pytest.mark.parametrize("line, message", [("videos/a.mp4\n", "expected 'path label'"),
                                           ("videos/a.mp4 cat\n", "not an integer")])
def test_bad_csv_line_names_file_and_line(tmp_path, line, message):
    ann = tmp_path / "bad.csv"
    ann.write_text("ok.mp4 0\n" + line)
    with pytest.raises(AnnotationError, match=rf"bad.csv:2: .*{message}"):
        read_annotations(str(ann))


def test_json_folder_and_class_names(tmp_path, tree):
    ann = tmp_path / "caps.json"
    ann.write_text(json.dumps([{"video": "a.mp4", "caption": ["x", "y"], "start": 1, "end": 2.5},
                               {"video": "b.mp4", "label": 1}]))
    a, b = read_annotations(str(ann))
    assert a.captions == ["x", "y"] and (a.start, a.end) == (1.0, 2.5) and b.label == 1
    ann.write_text('[{"video": "a.mp4",}]')
    with pytest.raises(AnnotationError, match="caps.json:1: invalid JSON"):
        read_annotations(str(ann))
    ann.write_text('[{"video": "a.mp4", "start": 5, "end": 1}]')
    with pytest.raises(AnnotationError, match="entry 0: 'end'"):
        read_annotations(str(ann))
    folder = tmp_path / "tree"
    for name in ("walk", "jump"):
        (folder / name).mkdir(parents=True)
        (folder / name / "v.mp4").write_bytes(b"x")
    ds = build_dataset({"annotation": str(folder)})
    assert ds.classes == ["jump", "walk"] and [r.label for r in ds.records] == [0, 1]
    assert build_dataset(cfg(tree)).classes == ["alpha", "beta"]  # classes.txt beside the CSV


def test_config_errors(tree):
    with pytest.raises(ConfigError, match="unknown key.*num_frame\\b"):
        build_dataset(cfg(tree, num_frame=3))
    with pytest.raises(ConfigError, match="mode 'eval'"):
        build_dataset(cfg(tree, mode="eval"))
    with pytest.raises(AnnotationError, match="missing.csv: annotation file not found"):
        build_dataset({"annotation": str(tree / "missing.csv")})


def test_train_sample_contract(tree):
    ds = build_dataset(cfg(tree, flip=False))
    s = ds[0]
    assert s["video"].shape == (3, 8, 32, 32) and s["video"].dtype == torch.float32
    assert (s["label"], s["index"], s["skipped"]) == (0, 0, 0)
    assert s["path"].endswith("videos/a.mp4")


@pytest.mark.parametrize("sampling", ["sparse", "dense", "segment"])
def test_dataset_returns_exactly_the_promised_frames(tree, sampling):
    ds = build_dataset(cfg(tree, sampling=sampling, stride=3, mode="test", num_clips=3))
    for index in range(2):
        frames, views, info = ds.load_clip(index, random.Random(0))
        for view in views:
            clip = frames[[info["position"][i] for i in view]]
            assert [read_index_pattern(f) for f in clip] == view
    train = build_dataset(cfg(tree, sampling=sampling, stride=3))
    for seed in range(5):
        frames, (view,), info = train.load_clip(1, random.Random(seed))
        assert [read_index_pattern(frames[info["position"][i]]) for i in view] == view
    # and the views are the official formula's
    if sampling == "sparse":
        assert views[1] == sparse_indices(40, 8, clip_idx=1, num_clips=3)


def test_test_mode_stacks_views(tree):
    ds = build_dataset(cfg(tree, mode="test", num_clips=2, num_crops=3))
    assert ds[1]["video"].shape == (6, 3, 8, 32, 32)
    assert build_dataset(cfg(tree, mode="val"))[1]["video"].shape == (3, 8, 32, 32)


def test_segments_of_a_long_video(tree, tmp_path):
    ann = tmp_path / "seg.json"
    ann.write_text(json.dumps([{"video": "videos/a.mp4", "caption": "c", "start": 2.0, "end": 4.0}]))
    ds = build_dataset({"annotation": str(ann), "prefix": str(tree), "num_frames": 8,
                        "crop_size": 32, "mode": "val"})
    frames, (view,), info = ds.load_clip(0)
    assert all(50 <= i <= 100 for i in view)  # 2 s .. 4 s at 25 fps
    s = ds[0]
    assert (s["caption"], s["start"], s["end"]) == ("c", 2.0, 4.0)


def test_bad_video_raises_or_is_skipped_and_counted(tree, tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 100)
    ann = tmp_path / "mixed.csv"
    ann.write_text(f"{tmp_path}/broken.mp4 0\n{tmp_path}/gone.mp4 0\n"
                   f"{tree}/videos/a.mp4 1\n{tree}/videos/b.mp4 1\n")
    raising = build_dataset({"annotation": str(ann), "num_frames": 4, "crop_size": 32})
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        raising[0]
    with pytest.raises(VideoDecodeError, match="gone.mp4: no such video"):
        raising[1]
    skipping = build_dataset({"annotation": str(ann), "num_frames": 4, "crop_size": 32,
                              "on_error": "skip", "mode": "val"})
    loader = build_loader(skipping, batch_size=2, train=False, num_workers=2)
    labels = [int(l) for batch in loader for l in batch["label"]]
    assert labels == [1, 1, 1, 1]  # both bad ones replaced by good ones
    assert loader.skipped >= 2  # counted across worker processes
    assert loader.reset_skipped() >= 2 and loader.skipped == 0


def test_loader_is_seeded_and_reshuffles_per_epoch(tree, tmp_path):
    ann = tmp_path / "many.csv"
    ann.write_text("".join(f"videos/{'ab'[i % 2]}.mp4 {i % 2}\n" for i in range(8)))
    ds = build_dataset({"annotation": str(ann), "prefix": str(tree), "num_frames": 4,
                        "crop_size": 16, "classes": ["a", "b"]})

    def epoch(loader, e):
        loader.set_epoch(e)
        batches = list(loader)
        return [int(i) for b in batches for i in b["index"]], torch.cat([b["video"] for b in batches])

    one = build_loader(ds, batch_size=3, train=True, num_workers=2, seed=5)
    two = build_loader(ds, batch_size=3, train=True, num_workers=2, seed=5)
    order_a, video_a = epoch(one, 0)
    order_b, video_b = epoch(two, 0)
    assert order_a == order_b and torch.equal(video_a, video_b)  # same seed: same data
    assert len(order_a) == 6  # drop_last in training
    assert epoch(one, 1)[0] != order_a or epoch(one, 2)[0] != order_a


def test_distributed_sampler_when_initialised(tree, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        loader = build_loader(build_dataset(cfg(tree)), batch_size=1, train=True)
        assert type(loader.sampler).__name__ == "DistributedSampler"
        loader.set_epoch(3)
        assert loader.sampler.epoch == 3
    finally:
        dist.destroy_process_group()
