import math

import numpy as np
import pytest
import torch
from torch import nn

from engine_toys import ToyClips, ToyVideoNet, toy_recipe
from videomamba.engine.evaluate import evaluate, merge_outputs
from videomamba.engine.sampling import eval_loader
from videomamba.engine.trainer import Trainer, TrainingDiverged
from videomamba.tasks import ClassificationTask


class PoisonedClips(ToyClips):
    """Clips whose listed indices are NaN."""

    def __init__(self, bad: set[int], **kw):
        super().__init__(**kw)
        self.bad = bad

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if index in self.bad:
            item["video"] = torch.full_like(item["video"], float("nan"))
        return item


def _trainer(tmp_path, dataset, **train):
    recipe = toy_recipe(str(tmp_path), train={"max_bad_steps": 2, **train}, schedule={"epochs": 1},
                        mixup={"mixup_alpha": 0.0, "cutmix_alpha": 0.0})
    torch.manual_seed(0)
    return Trainer(recipe, ClassificationTask(4), ToyVideoNet(), dataset, progress=False)


def test_nan_loss_is_skipped_and_counted(tmp_path):
    # batch size 4, no shuffle control: poison one sample -> exactly one batch is non-finite
    trainer = _trainer(tmp_path, PoisonedClips({5}, n=24))
    summary = trainer.fit()
    assert summary["skipped_steps"] == 1 and summary["global_step"] == 6
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    logged = (tmp_path / "log.jsonl").read_text()
    assert '"skipped": 1.0' in logged


def test_nan_losses_in_a_row_stop_the_run_with_a_clear_message(tmp_path):
    trainer = _trainer(tmp_path, PoisonedClips(set(range(24)), n=24))
    with pytest.raises(TrainingDiverged, match=r"2 non-finite losses in a row.*max_bad_steps=2"):
        trainer.fit()
    assert trainer.skipped_steps == 2


class ViewScorer(nn.Module):
    """Logits = [mean, -mean, 0] of each clip: the views' probabilities are easy to compute."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3, 4))
        return torch.stack([m, -m, torch.zeros_like(m)], dim=1)


class ViewClips(torch.utils.data.Dataset):
    def __init__(self, values):  # values: (N, V) one constant per view
        self.values = torch.tensor(values, dtype=torch.float32)

    def __len__(self):
        return len(self.values)

    def __getitem__(self, i):
        video = self.values[i].view(-1, 1, 1, 1, 1).expand(-1, 3, 2, 4, 4).clone()
        return {"video": video, "label": 0, "index": i, "path": ""}


def test_multi_view_scores_are_averaged_softmax():
    values = [[2.0, -3.0, 0.5], [-1.0, -1.0, -1.0], [0.2, 0.4, -2.0], [5.0, -1.0, -1.0]]
    metrics, merged = evaluate(ClassificationTask(3), ViewScorer(), eval_loader(ViewClips(values), 3, 0),
                               torch.device("cpu"))
    expected = []
    for row in values:
        probs = [torch.tensor([v, -v, 0.0]).softmax(0) for v in row]
        expected.append(torch.stack(probs).mean(0))
    np.testing.assert_allclose(merged["scores"], torch.stack(expected).numpy(), rtol=1e-6)
    # averaging logits instead would call sample 3 class 0 (mean logit +1); softmax-mean says 1
    assert merged["scores"][3].argmax() == 1
    assert metrics["top1"] == pytest.approx(np.mean(merged["scores"].argmax(1) == 0))
    assert metrics["num_samples"] == 4 and metrics["top5"] == 1.0


def test_merge_drops_padding_duplicates_and_sorts():
    rank0 = {"index": np.array([0, 2, 4]), "scores": np.array([[0.0], [2.0], [4.0]])}
    rank1 = {"index": np.array([1, 3, 0]), "scores": np.array([[1.0], [3.0], [0.0]])}
    merged = merge_outputs([rank0, rank1])
    np.testing.assert_array_equal(merged["index"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(merged["scores"][:, 0], [0, 1, 2, 3, 4])


def test_classification_report_per_class_and_topk():
    from videomamba.tasks.metrics import classification_report

    scores = np.array([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.3, 0.6, 0.1], [0.5, 0.4, 0.1]])
    labels = np.array([0, 1, 1, 2])
    report = classification_report(scores, labels, 3, ["a", "b", "c"])
    assert report["top1"] == 0.5
    assert report["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert report["confusion_matrix"][1] == [0, 1, 1]
    assert math.isclose(report["mean_class_accuracy"], 0.5)


def test_repeated_augmentation_reads_each_clip_several_times(tmp_path):
    seen = []

    class Recording(ToyVideoNet):
        def forward(self, x):
            seen.append(x.shape[0])
            return super().forward(x)

    recipe = toy_recipe(str(tmp_path), data={"repeated_aug": 2}, schedule={"epochs": 1})
    torch.manual_seed(0)
    trainer = Trainer(recipe, ClassificationTask(4), Recording(), ToyClips(24), progress=False)
    summary = trainer.fit()
    assert summary["global_step"] == 6 and set(seen) == {8}  # batch 4 clips x 2 augmentations
