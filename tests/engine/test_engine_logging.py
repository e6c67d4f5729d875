"""Run logs: every numeric field of log.jsonl also lands in TensorBoard, same values and steps."""

import json

import pytest
import torch

from engine_toys import ToyClips, ToyVideoNet, toy_recipe
from videomamba.engine.trainer import Trainer
from videomamba.tasks import ClassificationTask

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="tensorboard is not installed (pip install -e .[dev])")


def test_tensorboard_scalars_match_the_json_lines_log(tmp_path):
    recipe = toy_recipe(str(tmp_path), schedule={"epochs": 2})
    torch.manual_seed(0)
    Trainer(recipe, ClassificationTask(4), ToyVideoNet(), ToyClips(n=16),
            val_set=ToyClips(n=8, seed=1, augment=False), progress=False).fit()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert train and evals

    events = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "eval/top1"} <= tags
    logged_loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert logged_loss == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in train]
    assert [e.value for e in events.Scalars("eval/top1")] == \
        [pytest.approx(r["top1"], rel=1e-6) for r in evals]


def test_compiled_training_matches_eager_and_saves_plain_keys(tmp_path):
    """``train.compile`` wraps the model in torch.compile (here the aot_eager backend, which
    traces the same graph Inductor would get, without a C++ build): same losses as eager, and
    checkpoints without the ``_orig_mod.`` prefix, so they load into an uncompiled model."""
    runs = {}
    for name, compile_with in (("eager", False), ("compiled", "aot_eager")):
        recipe = toy_recipe(str(tmp_path / name), schedule={"epochs": 1},
                            train={"compile": compile_with})
        torch.manual_seed(0)
        Trainer(recipe, ClassificationTask(4), ToyVideoNet(), ToyClips(n=16), progress=False).fit()
        runs[name] = [json.loads(line)["loss"] for line in
                      (tmp_path / name / "log.jsonl").read_text().splitlines()
                      if json.loads(line)["kind"] == "train"]
    assert runs["compiled"] == pytest.approx(runs["eager"], rel=1e-4)
    state = torch.load(tmp_path / "compiled" / "last.pt", weights_only=False)
    model_state = state["model"]
    assert not any(k.startswith("_orig_mod.") for k in model_state)
    ToyVideoNet().load_state_dict(model_state)
