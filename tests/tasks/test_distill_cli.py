"""`videomamba train RECIPE --teacher DIR` end to end on a few tiny synthetic videos."""

import json

import pytest
import torch
import yaml

from videomamba.cli import main
from videomamba.data.synthetic import SynthConfig, generate
from videomamba.models import create_model, from_pretrained, save_pretrained
from videomamba.models.checkpoint import read_state_dict


pytestmark = pytest.mark.usefixtures("one_thread")


def write_recipe_and_teacher(tmp_path):
    generate(SynthConfig(kind="motion", out=str(tmp_path / "motion"), num=8, frames=8, size=32))
    torch.manual_seed(0)
    save_pretrained(create_model("videomamba_tiny", num_classes=10, img_size=32, num_frames=4,
                                 embed_dim=24, depth=2), tmp_path / "small" / "model")
    recipe = {
        "task": "classification",
        "model": {"name": "videomamba_tiny", "num_classes": 10, "drop_path_rate": 0.0,
                  "kwargs": {"embed_dim": 32, "depth": 2}},
        "data": {"train": str(tmp_path / "motion" / "train.csv"),
                 "prefix": str(tmp_path / "motion"), "batch_size": 4, "num_workers": 0,
                 "repeated_aug": 1, "num_frames": 4, "crop_size": 32, "flip": False,
                 "rand_augment": None},
        "optim": {"lr": 1e-3, "lr_batch_reference": None},
        "schedule": {"epochs": 1, "warmup_epochs": 0},
        "mixup": {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "label_smoothing": 0.1},
        "train": {"precision": "fp32", "device": "cpu", "output_dir": str(tmp_path / "run"),
                  "log_every_steps": 1},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))


def test_train_with_teacher_distills_and_exports_a_plain_classifier(tmp_path, capsys):
    write_recipe_and_teacher(tmp_path)
    assert main(["train", str(tmp_path / "r.yaml"), "--teacher", str(tmp_path / "small"),
                 "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["global_step"] == 2
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train = [r for r in logged if r.get("kind") == "train"]
    assert len(train) == 2 and all(0 < r["loss_distill"] <= 4 for r in train)
    assert all(abs(r["loss"] - r["loss_cls"] - r["loss_distill"]) < 1e-4 for r in train)
    assert not any(k.startswith("distill_head") for k in read_state_dict(tmp_path / "run" / "model"))
    assert from_pretrained(tmp_path / "run" / "model").config.embed_dim == 32


def test_train_with_teacher_and_unlabelled_videos(tmp_path, capsys):
    """Our extension from the command line: each labelled clip brings two clips of
    ``--unlabelled`` that get the distillation term only (logged separately)."""
    write_recipe_and_teacher(tmp_path)
    assert main(["train", str(tmp_path / "r.yaml"), "--teacher", str(tmp_path / "small"),
                 "--unlabelled", str(tmp_path / "motion" / "val.csv"), "--unlabelled-weight",
                 "10", "--unlabelled-per-clip", "2", "--no-progress", "--json"]) == 0
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train = [r for r in logged if r.get("kind") == "train"]
    assert len(train) == 2 and all(0 < r["loss_distill_unlabelled"] <= 4 for r in train)
    assert all(abs(r["loss"] - r["loss_cls"] - r["loss_distill"]
                   - 10 * r["loss_distill_unlabelled"]) < 1e-3 for r in train)


@pytest.mark.parametrize("args,match", [
    (["--unlabelled-weight", "1"], "needs --unlabelled"),
    (["--unlabelled", "x.csv"], "unused without"),
])
def test_unlabelled_options_are_checked(tmp_path, capsys, args, match):
    write_recipe_and_teacher(tmp_path)
    assert main(["train", str(tmp_path / "r.yaml"), "--teacher", str(tmp_path / "small"),
                 "--no-progress", *args]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()
