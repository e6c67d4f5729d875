import pytest
import torch
from torch import nn

from videomamba.tasks import ClassificationTask, build_task
from videomamba.tasks.classification import smooth_one_hot, soft_target_cross_entropy
from videomamba.errors import ConfigError


class Linear(nn.Module):
    def __init__(self, k=3):
        super().__init__()
        self.fc = nn.Linear(3, k)

    def forward(self, x):  # (B, C, T, H, W)
        return self.fc(x.mean(dim=(2, 3, 4)))


def test_smoothing_and_soft_cross_entropy_match_torch():
    labels = torch.tensor([0, 2, 1])
    logits = torch.randn(3, 3)
    targets = smooth_one_hot(labels, 3, 0.1)
    torch.testing.assert_close(targets.sum(1), torch.ones(3))
    expected = nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    torch.testing.assert_close(soft_target_cross_entropy(logits, targets), expected)


def test_training_step_uses_soft_targets_when_given():
    torch.manual_seed(0)
    task, model = ClassificationTask(3, label_smoothing=0.0), Linear()
    batch = {"video": torch.randn(4, 3, 2, 4, 4), "label": torch.tensor([0, 1, 2, 0])}
    hard = task.training_step(model, batch)
    expected = nn.functional.cross_entropy(model(batch["video"]), batch["label"])
    torch.testing.assert_close(hard.loss, expected)
    uniform = torch.full((4, 3), 1 / 3)
    soft = task.training_step(model, {**batch, "target": uniform})
    torch.testing.assert_close(soft.loss, -model(batch["video"]).log_softmax(-1).mean(-1).mean())
    assert hard.batch_size == 4 and 0 <= float(hard.metrics["train_acc"]) <= 1


def test_eval_step_returns_per_sample_outputs_for_views():
    task, model = ClassificationTask(3), Linear()
    batch = {"video": torch.randn(2, 5, 3, 2, 4, 4), "label": torch.tensor([1, 2]), "index": torch.tensor([7, 3])}
    out = task.eval_step(model, batch)
    assert out["scores"].shape == (2, 3) and out["index"].tolist() == [7, 3]
    torch.testing.assert_close(out["scores"].sum(1), torch.ones(2))


def test_unknown_task_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown task"):
        build_task("segmentation")
