"""The demo's pieces: the order-blind baseline really is blind to order; the order metrics."""

import numpy as np
import torch

from videomamba.apps.demo import order_accuracy
from videomamba.apps.demo_models import FrameMeanBaseline
from videomamba.models import create_model


def _tiny(frames):
    torch.manual_seed(0)
    return create_model("videomamba_tiny", num_classes=10, embed_dim=32, depth=2, patch_size=16,
                        img_size=32, num_frames=frames).eval()


def test_baseline_cannot_see_order_but_videomamba_can():
    x = torch.randn(2, 3, 4, 32, 32)
    reversed_x = x.flip(2)
    baseline = FrameMeanBaseline(_tiny(1)).eval()
    with torch.no_grad():
        torch.testing.assert_close(baseline(x), baseline(reversed_x), rtol=1e-5, atol=1e-6)
        videomamba = _tiny(4)
        assert not torch.allclose(videomamba(x), videomamba(reversed_x), atol=1e-4)


def test_order_accuracy_motion_pairs_and_longrange_orders():
    labels = np.array([0, 1, 2, 3])
    scores = np.zeros((4, 10))
    scores[0, 0] = scores[1, 0] = 1.0  # clip 1 (label 1) prefers its twin 0: wrong
    scores[2, 2] = scores[3, 3] = 1.0
    merged = {"scores": scores, "label": labels}
    assert order_accuracy("motion", merged) == 0.75
    # long range: label 3*first + second; same-colour clips (0, 4, 8) are not counted
    labels = np.array([1, 3, 4, 5])  # r->g, g->r, g->g, g->b
    scores = np.zeros((4, 9))
    scores[0, 1] = 1.0  # right
    scores[1, 1] = 1.0  # picks the twin r->g: wrong
    scores[3, 5] = 1.0
    assert order_accuracy("longrange", {"scores": scores, "label": labels}) == 2 / 3


def test_demo_motion_clips_reach_the_models_as_exact_reversal_pairs(tmp_path):
    """Written, decoded, sampled and transformed as the demo does, clip 2m + 1 is clip 2m
    backwards: the order-blind baseline sees the same frames and scores exactly 50 % per pair."""
    from videomamba.apps.demo import FULL, CachedClips, experiment_recipe, make_dataset
    from videomamba.engine.build import build_split

    size = {**FULL["motion"], "num": 4}
    make_dataset("motion", tmp_path / "data", size)
    recipe = experiment_recipe("motion", tmp_path / "data", tmp_path / "run", size)
    clips = CachedClips(build_split(recipe, "train", mode="val"))
    assert clips.videos.shape == (4, 3, 8, 32, 32) and clips.labels == [0, 1, 2, 3]
    for even in (0, 2):
        assert torch.equal(clips.videos[even].flip(1), clips.videos[even + 1])
    assert not torch.equal(clips.videos[0], clips.videos[1])


def test_demo_rewrites_a_set_from_an_older_generator(tmp_path):
    import json

    from videomamba.apps.demo import make_dataset

    size = {"num": 2, "frames": 8, "size": 32, "val_fraction": 0.5}
    make_dataset("motion", tmp_path, size)
    meta_path = tmp_path / "meta.json"
    first = meta_path.stat().st_mtime_ns
    make_dataset("motion", tmp_path, size)
    assert meta_path.stat().st_mtime_ns == first  # same set: kept
    meta = json.loads(meta_path.read_text())
    meta["version"] -= 1
    meta_path.write_text(json.dumps(meta))
    make_dataset("motion", tmp_path, size)
    assert json.loads(meta_path.read_text())["version"] == meta["version"] + 1


def test_model_runner_runs_calls_here_or_in_worker_processes():
    import math
    import os

    from videomamba.apps.demo import model_runner

    for jobs in (1, 2):
        with model_runner(jobs) as submit:
            pending = [submit(math.factorial, n) for n in (3, 5)]
            pids = [submit(os.getpid) for _ in range(2)]
            assert [p.result() for p in pending] == [6, 120]
            assert (os.getpid() in {p.result() for p in pids}) == (jobs == 1)


def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    import json

    from videomamba.cli import main

    assert main(["demo", "--quick", "--out", str(tmp_path), "--json", "--threads", "1"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert printed == saved
    for name in ("motion", "longrange"):
        models = saved[name]["models"]
        assert set(models) == {"videomamba", "baseline"}
        assert all(0.0 <= m["top1"] <= 1.0 and m["steps"] >= 1 for m in models.values())
    assert (tmp_path / "motion" / "videomamba" / "model" / "config.json").is_file()
    assert saved["prediction"]["top"] and saved["prediction"]["true"] in (
        "move_right", "move_left", "move_down", "move_up", "grow", "shrink", "appear",
        "disappear", "rotate_clockwise", "rotate_counterclockwise")
