"""Our extension of self-distillation: the feature term on unlabelled clips too (opt-in)."""

import pytest
import torch
from torch.utils.data import DataLoader

from videomamba.engine.sampling import SeededDataset
from videomamba.errors import ConfigError
from videomamba.models import create_model
from videomamba.tasks.distill import (
    UNLABELLED_KEY, DistillConfig, DistillationTask, WithUnlabelledClips, attach_distill_head,
    distillation_loss, student_logits_and_features,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(dim, num_classes=3):
    return create_model("videomamba_tiny", num_classes=num_classes, depth=2, embed_dim=dim,
                        img_size=32, num_frames=2, drop_path_rate=0.0)


class RandomClips:
    """Clips drawn from the torch RNG when read (like a random-crop transform would)."""

    def __init__(self, count, offset=0.0):
        self.count, self.offset = count, offset

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        video = torch.rand(3, 2, 32, 32) + self.offset + index
        return {"video": video, "label": index % 3, "index": index}


def test_labelled_samples_are_those_of_a_run_without_the_wrapper():
    labelled, unlabelled = RandomClips(6), RandomClips(50, offset=100.0)
    plain = SeededDataset(labelled, seed=3)
    wrapped = SeededDataset(WithUnlabelledClips(labelled, unlabelled, per_clip=2), seed=3)
    for key in [(0, 0), (0, 5), (1, 5)]:
        sample = wrapped[key]
        assert torch.equal(sample["video"], plain[key]["video"])
        assert sample[UNLABELLED_KEY].shape == (2, 3, 2, 32, 32)
        assert (sample[UNLABELLED_KEY] >= 100).all()  # drawn from the unlabelled set
        assert torch.equal(sample[UNLABELLED_KEY], wrapped[key][UNLABELLED_KEY])  # reproducible
    draws = {float(wrapped[(epoch, i)][UNLABELLED_KEY][:, 0, 0, 0, 0].floor().sum())
             for epoch in range(3) for i in range(6)}
    assert len(draws) > 5  # the draw changes with the epoch and the index


def batch_with_unlabelled(labelled=4, per_clip=2):
    torch.manual_seed(1)
    data = WithUnlabelledClips(RandomClips(labelled), RandomClips(20, offset=-5.0), per_clip)
    return next(iter(DataLoader(data, batch_size=labelled)))


def teacher_and_student():
    torch.manual_seed(0)
    return tiny(24), attach_distill_head(tiny(32), 24)


def test_without_unlabelled_weight_the_loss_is_the_official_one():
    teacher, student = teacher_and_student()
    batch = batch_with_unlabelled()
    official = DistillationTask(teacher, num_classes=3).training_step(student, batch)
    plain = {k: v for k, v in batch.items() if k != UNLABELLED_KEY}
    torch.testing.assert_close(official.loss,
                               DistillationTask(teacher, 3).training_step(student, plain).loss)
    assert "loss_distill_unlabelled" not in official.metrics


def test_unlabelled_term_is_the_feature_loss_of_the_unlabelled_clips_alone():
    teacher, student = teacher_and_student()
    batch = batch_with_unlabelled(labelled=4, per_clip=2)
    task = DistillationTask(teacher, num_classes=3, unlabelled_weight=0.5)
    out = task.training_step(student, batch)
    official = DistillationTask(teacher, num_classes=3).training_step(
        student, {k: v for k, v in batch.items() if k != UNLABELLED_KEY})
    unlabelled = batch[UNLABELLED_KEY].flatten(0, 1)
    assert unlabelled.shape[0] == 8
    with torch.no_grad():
        _, features = student_logits_and_features(student, unlabelled)
        expected = distillation_loss(features, teacher.forward_features(
            unlabelled, return_all_tokens=True))
    torch.testing.assert_close(out.metrics["loss_distill_unlabelled"], expected)
    torch.testing.assert_close(out.metrics["loss_cls"], official.metrics["loss_cls"])
    torch.testing.assert_close(out.metrics["loss_distill"], official.metrics["loss_distill"])
    torch.testing.assert_close(out.loss, official.loss + 0.5 * expected)
    assert out.batch_size == 4  # labelled clips


def test_unlabelled_feature_loss_falls_when_trained():
    teacher, student = teacher_and_student()
    batch = batch_with_unlabelled()
    task = DistillationTask(teacher, num_classes=3, unlabelled_weight=1.0)
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        out = task.training_step(student.train(), batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.metrics["loss_distill_unlabelled"]))
    assert all(p.grad is None for p in teacher.parameters())
    assert losses[-1] < 0.7 * losses[0], losses


def test_missing_unlabelled_clips_and_bad_settings_are_config_errors():
    teacher, student = teacher_and_student()
    task = DistillationTask(teacher, num_classes=3, unlabelled_weight=1.0)
    batch = {"video": torch.randn(2, 3, 2, 32, 32), "label": torch.tensor([0, 1])}
    with pytest.raises(ConfigError, match="WithUnlabelledClips"):
        task.training_step(student, batch)
    with pytest.raises(ConfigError, match="unlabelled_weight"):
        DistillConfig(unlabelled_weight=-1.0)
    with pytest.raises(ConfigError, match="unlabelled_per_clip"):
        DistillConfig(unlabelled_per_clip=0)
    with pytest.raises(ConfigError, match="empty"):
        WithUnlabelledClips(RandomClips(2), RandomClips(0))
