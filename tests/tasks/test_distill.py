"""Self-distillation: the loss, the head, the frozen teacher, a few training steps."""

import pytest
import torch

from videomamba.models import create_model
from videomamba.tasks.distill import (
    DistillationTask, attach_distill_head, distillation_loss, remove_distill_head,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(dim, depth=2, num_classes=3, **kwargs):
    return create_model("videomamba_tiny", num_classes=num_classes, depth=depth, embed_dim=dim,
                        img_size=32, num_frames=2, **kwargs)


def test_distillation_loss_is_0_for_identical_and_4_for_opposite_features():
    features = torch.randn(2, 5, 16)
    torch.testing.assert_close(distillation_loss(features, features), torch.tensor(0.0),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(distillation_loss(features, -features), torch.tensor(4.0))
    torch.testing.assert_close(distillation_loss(3.0 * features, features), torch.tensor(0.0),
                               atol=1e-6, rtol=0)  # scale does not matter, direction does
    orthogonal = distillation_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(orthogonal, torch.tensor(2.0))


def test_distill_head_has_official_keys_and_comes_off():
    student = attach_distill_head(tiny(32), teacher_dim=24)
    keys = sorted(k for k in student.state_dict() if k.startswith("distill_head"))
    assert keys == ["distill_head.0.weight", "distill_head.1.bias", "distill_head.1.weight"]
    assert student.distill_head[1].out_features == 24
    remove_distill_head(student)
    assert not any(k.startswith("distill_head") for k in student.state_dict())


def test_distillation_task_trains_with_a_frozen_teacher_and_loss_falls():
    torch.manual_seed(0)
    teacher = tiny(24)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = attach_distill_head(tiny(32, drop_path_rate=0.0), 24)
    task = DistillationTask(teacher, num_classes=3)
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)
    batch = {"video": torch.randn(4, 3, 2, 32, 32), "label": torch.tensor([0, 1, 2, 0])}
    records = []
    for _ in range(6):
        student.train()
        out = task.training_step(student, batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        records.append({k: float(v) for k, v in out.metrics.items()} | {"loss": float(out.loss.detach())})
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert records[-1]["loss_distill"] < 0.7 * records[0]["loss_distill"], records
    assert records[-1]["loss"] < records[0]["loss"]
    for record in records:  # the total is classification + distillation (weight 1)
        assert abs(record["loss"] - record["loss_cls"] - record["loss_distill"]) < 1e-4
    scores = task.eval_step(student.eval(), {**batch, "index": torch.arange(4)})
    assert scores["scores"].shape == (4, 3)


def test_setup_distillation_loads_the_teacher_dir_and_checks_the_grid(tmp_path):
    from videomamba.errors import ConfigError
    from videomamba.models import save_pretrained
    from videomamba.tasks.classification import ClassificationTask
    from videomamba.tasks.distill import setup_distillation

    torch.manual_seed(0)
    save_pretrained(tiny(24), tmp_path / "run" / "model")
    student = tiny(32)
    task = setup_distillation(student, ClassificationTask(3, 0.1), str(tmp_path / "run"))
    assert isinstance(task, DistillationTask) and task.label_smoothing == 0.1
    assert student.distill_head[1].out_features == 24 and not task.teacher.training
    other = create_model("videomamba_tiny", num_classes=3, depth=2, embed_dim=32, img_size=32,
                         num_frames=4)
    with pytest.raises(ConfigError, match="token grid"):
        setup_distillation(other, ClassificationTask(3), str(tmp_path / "run"))
