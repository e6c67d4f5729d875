"""`videomamba pretrain` end to end on a few tiny synthetic videos, then the classifier export."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from videomamba.cli import main
from videomamba.data.synthetic import SynthConfig, generate
from videomamba.errors import ConfigError
from videomamba.models import create_model, save_pretrained
from videomamba.apps.pretrain import load_pretrain_recipe
from videomamba.models.checkpoint import read_state_dict

SIZES = {"embed_dim": 32, "depth": 2}
BASE = Path(__file__).resolve().parents[2] / "configs" / "pretrain" / "_base_mask_pretrain.yaml"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    generate(SynthConfig(kind="motion", out=str(root), num=8, frames=8, size=32, seed=0))
    return root


def write_recipe(path, motion, teacher_dir, output):
    recipe = {
        "base": str(BASE),
        "model": {"name": "videomamba_tiny", "drop_path_rate": 0.0, "kwargs": SIZES},
        "data": {"train": str(motion / "train.csv"), "prefix": str(motion), "batch_size": 4,
                 "num_workers": 0, "num_frames": 4, "crop_size": 32, "crop": "random_resized",
                 "flip": False},
        "optim": {"lr": 2e-3, "lr_batch_reference": None},
        "schedule": {"epochs": 1, "warmup_epochs": 0},
        "train": {"precision": "fp32", "device": "cpu", "output_dir": str(output),
                  "log_every_steps": 1},
        "pretrain": {"mask_type": "tube", "mask_ratio": 0.5, "teacher_kind": "videomamba",
                     "teacher_path": str(teacher_dir)},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_pretrain_cli_trains_then_exports_a_classifier(tmp_path, motion, capsys):
    torch.manual_seed(0)
    teacher = create_model("videomamba_tiny", num_classes=0, img_size=32, num_frames=4,
                           embed_dim=48, depth=2)
    save_pretrained(teacher, tmp_path / "teacher")
    recipe = write_recipe(tmp_path / "pt.yaml", motion, tmp_path / "teacher", tmp_path / "run")
    assert main(["pretrain", "--config", str(recipe), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["global_step"] == 2  # 8 clips / batch 4, 1 epoch
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["align_loss"] for r in logged if r.get("kind") == "train"]
    assert len(losses) == 2 and all(0 <= v <= 4 for v in losses)
    assert (tmp_path / "run" / "model" / "config.json").is_file()

    assert main(["pretrain", "--export-classifier", str(tmp_path / "run" / "model"),
                 "--num-classes", "10", "--output", str(tmp_path / "cls")]) == 0
    classifier = create_model("videomamba_tiny", num_classes=10, img_size=32, num_frames=4,
                              pretrained=tmp_path / "cls", **SIZES)
    pretrained = read_state_dict(tmp_path / "run" / "model")
    torch.testing.assert_close(classifier.layers[0].mixer.in_proj.weight,
                               pretrained["layers.0.mixer.in_proj.weight"])


def test_pretrain_recipe_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"pretrain": {"mask_kind": "tube"}}))
    with pytest.raises(ConfigError, match="mask_kind"):
        load_pretrain_recipe(bad)
    bad.write_text(yaml.safe_dump({"task": "classification"}))
    with pytest.raises(ConfigError, match="masked_pretrain"):
        load_pretrain_recipe(bad)
    with pytest.raises(ConfigError, match="mask_ratio"):
        load_pretrain_recipe(None, ["pretrain.mask_ratio=1.5"])
    assert main(["pretrain"]) == 2  # neither --config nor --export-classifier: one clear line


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted((CONFIGS / "pretrain").glob("*.yaml")) + sorted(
    (CONFIGS / "distill").glob("*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_recipes_load(path):
    from videomamba.data import DataConfig
    from videomamba.engine.config import load_recipe
    from videomamba.models import list_models

    if path.parent.name == "pretrain":
        recipe, pretrain = load_pretrain_recipe(path)
        assert recipe.mixup.mixup_alpha == 0 and pretrain.mask_ratio > 0
    else:
        recipe = load_recipe(path)
        assert recipe.data.train and recipe.data.val
    assert recipe.model.name in list_models()
    DataConfig.from_dict({"annotation": "x.csv", **recipe.data.dataset}).validate()


def test_synthetic_motion_recipes_match_the_benchmark():
    """configs/{distill,pretrain}/synthetic_motion_* are the CLI form of
    benchmarks/pretraining_demo.py: same sizes, recipe, epochs and mask."""
    import importlib.util

    from videomamba.engine.config import load_recipe

    path = CONFIGS.parent / "benchmarks" / "pretraining_demo.py"
    spec = importlib.util.spec_from_file_location("pretraining_demo", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    import sys

    argv, sys.argv = sys.argv, ["pretraining_demo.py"]
    try:
        args = bench.parse_args()
    finally:
        sys.argv = argv
    small = load_recipe(CONFIGS / "distill" / "synthetic_motion_small.yaml")
    student = load_recipe(CONFIGS / "distill" / "synthetic_motion_student.yaml")
    masked, pretrain = load_pretrain_recipe(CONFIGS / "pretrain" / "synthetic_motion_tiny.yaml")
    assert small.model.kwargs == bench.SMALL
    assert student.model.kwargs == masked.model.kwargs == bench.STUDENT
    assert small.schedule.epochs == student.schedule.epochs == args.epochs
    assert masked.schedule.epochs == args.pretrain_epochs
    assert pretrain.mask_ratio == args.mask_ratio and pretrain.mask_type == "random"
    base = bench.RECIPE
    for recipe in (small, student, masked):
        assert recipe.optim.lr == base["optim"]["lr"]
        assert recipe.data.batch_size == base["data"]["batch_size"]
        assert recipe.model.drop_path_rate == base["model"]["drop_path_rate"]
        for key in ("num_frames", "sampling", "crop_size"):
            assert recipe.data.dataset[key] == base["data"][key]
    assert small.mixup.label_smoothing == base["mixup"]["label_smoothing"]
