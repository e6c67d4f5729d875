"""`videomamba train` and `videomamba eval` end to end on a tiny synthetic motion set."""

import json
from pathlib import Path

import pytest

from videomamba.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = ["model.kwargs={embed_dim: 32, depth: 2, patch_size: 16}", "data.num_frames=4",
        "data.batch_size=4", "schedule.epochs=2", "train.eval_every_epochs=1", "train.log_every_steps=1"]


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    from videomamba.data.synthetic import SynthConfig, generate

    out = tmp_path_factory.mktemp("motion")
    generate(SynthConfig(kind="motion", out=str(out), num=12, frames=8, size=32, val_fraction=0.5))
    return out


def _data_args(root):
    return [f"data.train={root}/train.csv", f"data.val={root}/val.csv", f"data.test={root}/test.csv",
            f"data.prefix={root}"]


def test_train_then_eval_then_resume(motion, tmp_path, capsys):
    recipe = str(CONFIGS / "synthetic/motion.yaml")
    run_dir = tmp_path / "run"
    args = ["train", recipe, "--output-dir", str(run_dir), "--no-progress", "--json",
            "--set", *TINY, *_data_args(motion)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["global_step"] == 6 and summary["best"]["epoch"] in (0, 1)
    for name in ("last.pt", "best.pt", "last.json", "recipe.yaml", "log.jsonl", "model/config.json"):
        assert (run_dir / name).is_file(), name
    evals = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()
             if '"eval"' in x]
    assert [e["epoch"] for e in evals] == [0, 1] and all(e["num_samples"] == 6 for e in evals)

    # eval: 2 clips x 3 crops per test video, results and plots written
    out = tmp_path / "eval"
    assert main(["eval", recipe, "--model", str(run_dir / "model"), "--out", str(out), "--json",
                 "--set", *TINY, *_data_args(motion), "data.num_clips=2", "data.num_crops=3"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["views"] == 6 and result["num_samples"] == 6
    full = json.loads((out / "results.json").read_text())
    assert len(full["per_class_accuracy"]) == 10 and len(full["confusion_matrix"]) == 10
    assert len(json.loads((out / "predictions.json").read_text())) == 6
    pytest.importorskip("matplotlib")
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"

    # the training checkpoint itself can be evaluated too
    assert main(["eval", recipe, "--model", str(run_dir / "best.pt"), "--out", str(tmp_path / "e2"),
                 "--no-confusion", "--set", *TINY, *_data_args(motion)]) == 0

    # resuming a finished run does nothing more
    assert main([*args, "--resume", "auto"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["global_step"] == 6


def test_train_with_a_bad_key_is_one_clear_error(tmp_path, capsys):
    recipe = str(CONFIGS / "synthetic/motion.yaml")
    assert main(["train", recipe, "--set", "optim.lrr=1"]) == 2
    assert "unknown key(s) lrr" in capsys.readouterr().err
