"""Predictor, `videomamba predict` and `videomamba embed` on generated and real videos."""

import glob
import json

import numpy as np
import pytest
import torch

from videomamba.cli import main

OPENCV_AVI = sorted(p for p in glob.glob("/usr/share/doc/opencv-doc/examples/data/*.avi") if "bugy" not in p)
CLASSES = [f"class_{i}" for i in range(10)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from videomamba.models import create_model, save_pretrained

    torch.manual_seed(0)
    model = create_model("videomamba_tiny", num_classes=10, embed_dim=32, depth=2, patch_size=16,
                         img_size=32, num_frames=4)
    return save_pretrained(model, tmp_path_factory.mktemp("model") / "m", class_names=CLASSES)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from videomamba.data.synthetic import motion_clip
    from videomamba.data.video_io import write_video

    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    return [write_video(str(root / f"v{i}.mp4"), motion_clip(i, rng, frames=8, size=32), fps=8)
            for i in range(2)]


def test_predictor_top_k_on_a_file_and_on_a_tensor(model_dir, videos):
    from videomamba import Predictor

    predictor = Predictor(model_dir)
    top = predictor(videos[0], k=3)
    assert [p["label"] for p in top] == [CLASSES[p["index"]] for p in top]
    scores = [p["score"] for p in top]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    views = predictor.load_views(videos[0])
    assert views.shape == (1, 3, 4, 32, 32)
    assert predictor(views[0], k=3) == top  # the same clip given as a tensor
    probs = predictor.scores(videos[0])
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0))


def test_predictor_averages_views(model_dir, videos):
    from videomamba import Predictor

    multi = Predictor(model_dir, num_clips=2, num_crops=3)
    views = multi.load_views(videos[1])
    assert views.shape[0] == 6
    expected = torch.stack([multi.scores(v) for v in views]).mean(0)
    torch.testing.assert_close(multi.scores(videos[1]), expected)


def test_predict_cli_json(model_dir, videos, capsys):
    assert main(["predict", *videos, "--model", str(model_dir), "-k", "2", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["video"] for x in lines] == videos and all(len(x["top"]) == 2 for x in lines)


def test_predict_cli_bad_model_is_one_clear_error(tmp_path, videos, capsys):
    assert main(["predict", videos[0], "--model", str(tmp_path / "nope")]) == 2
    assert "no such folder or file" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_embed_cli_writes_features(model_dir, videos, tmp_path, suffix):
    from videomamba import Predictor

    out = tmp_path / f"features{suffix}"
    assert main(["embed", *videos, "--model", str(model_dir), "--out", str(out)]) == 0
    if suffix == ".npy":
        features = np.load(out)
        assert (tmp_path / "features.paths.txt").read_text().split() == videos
    else:
        from safetensors import safe_open

        with safe_open(str(out), "pt") as handle:
            features = handle.get_tensor("features").numpy()
            assert json.loads(handle.metadata()["paths"]) == videos
    assert features.shape == (2, 32) and features.dtype == np.float32
    expected = Predictor(model_dir).embed(videos[1]).numpy()
    np.testing.assert_allclose(features[1], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not OPENCV_AVI, reason="run scripts/install_test_videos.sh (Debian opencv-doc)")
def test_predict_and_embed_real_videos(model_dir, tmp_path, capsys):
    real = OPENCV_AVI[:2]
    assert main(["predict", *real, "--model", str(model_dir), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(real) and all(len(x["top"]) == 5 for x in lines)
    out = tmp_path / "real.npy"
    assert main(["embed", *real, "--model", str(model_dir), "--out", str(out)]) == 0
    features = np.load(out)
    assert features.shape == (len(real), 32) and np.isfinite(features).all()
    assert not np.allclose(features[0], features[1])


def test_official_checkpoint_file_is_recognised(tmp_path, videos):
    """A raw state dict (as the official .pth files are) is read through the converter."""
    from videomamba import Predictor
    from videomamba.models import create_model

    torch.manual_seed(0)
    model = create_model("videomamba_tiny", num_classes=7, num_frames=4, img_size=32, depth=24)
    torch.save({"model": model.state_dict()}, tmp_path / "official.pth")
    predictor = Predictor(tmp_path / "official.pth")
    assert predictor.model.config.num_classes == 7 and predictor.model.config.num_frames == 4
    top = predictor(videos[0], k=7)
    assert sorted(p["index"] for p in top) == list(range(7)) and top[0]["label"] == str(top[0]["index"])
