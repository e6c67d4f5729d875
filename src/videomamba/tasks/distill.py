"""Self-distillation: a trained smaller VideoMamba teaches a larger student while it learns labels.

The official recipe (``image_sm/engine_distill.py``, ``models/videomamba_distill.py``,
``exp_distill/videomamba_middle``: small teaches middle):

- the teacher is frozen and in eval mode; its final-norm tokens (all of them, cls included) are
  L2-normalised;
- the student's final-norm tokens go through ``distill_head`` (its norm, then a linear layer to
  the teacher's width) and are L2-normalised;
- ``loss = classification loss + mean over tokens of (2 - 2 * cos(student, teacher))``.

``distill_head`` is attached to the student (the official key names ``distill_head.0/1``) so that
the engine optimises it; :func:`remove_distill_head` takes it off before the model is exported.

Our extension, off by default: the feature term on unlabelled clips too. Wrap the labelled
training set in :class:`WithUnlabelledClips` and give the task ``unlabelled_weight > 0``; every
labelled clip then brings ``per_clip`` unlabelled ones, which get only the feature loss. The
labelled batches (order, augmentation) stay those of the official run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from videomamba.errors import ConfigError
from videomamba.models.block import make_norm
from videomamba.tasks.base import StepOutput, Task
from videomamba.tasks.classification import (
    ClassificationTask, smooth_one_hot, soft_target_cross_entropy,
)
from videomamba.tasks.masked import call_objective, enable_objective_forward


#: batch key of the unlabelled clips ``(B, U, C, T, H, W)`` added by :class:`WithUnlabelledClips`
UNLABELLED_KEY = "unlabelled_video"


@dataclass
class DistillConfig:
    """How the distillation term is weighted and where it applies (plain data)."""

    weight: float = 1.0  # on the labelled clips; 1 as the official engine
    unlabelled_weight: float = 0.0  # ours: > 0 adds the term on unlabelled clips (0 = official)
    unlabelled_per_clip: int = 1  # unlabelled clips drawn per labelled clip

    def __post_init__(self) -> None:
        if self.weight < 0 or self.unlabelled_weight < 0:
            raise ConfigError(f"distill.weight / distill.unlabelled_weight must be >= 0, got "
                              f"{self.weight} / {self.unlabelled_weight}")
        if self.unlabelled_per_clip < 1:
            raise ConfigError(f"distill.unlabelled_per_clip must be >= 1, got "
                              f"{self.unlabelled_per_clip}")


class WithUnlabelledClips(Dataset):
    """Each labelled sample plus ``per_clip`` clips drawn at random from ``unlabelled``, stacked as
    ``sample[UNLABELLED_KEY]`` ``(per_clip, C, T, H, W)`` (their labels are not read).

    The labelled sample is read first and the draw uses the torch RNG afterwards, so under the
    engine's per-sample seeding the labelled clips are exactly those of a run without this
    wrapper, and the draw depends only on (seed, epoch, index)."""

    def __init__(self, labelled: Dataset, unlabelled: Dataset, per_clip: int = 1) -> None:
        if len(unlabelled) == 0:  # type: ignore[arg-type]
            raise ConfigError("distill: the unlabelled set is empty")
        self.labelled, self.unlabelled, self.per_clip = labelled, unlabelled, per_clip

    def __len__(self) -> int:
        return len(self.labelled)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.labelled[index])
        picks = torch.randint(len(self.unlabelled), (self.per_clip,)).tolist()  # type: ignore[arg-type]
        sample[UNLABELLED_KEY] = torch.stack([self.unlabelled[i]["video"] for i in picks])
        return sample


def distillation_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """``mean(2 - 2 * cos(student, teacher))`` over every leading dim; features ``(..., D)``
    (normalised here). 0 for identical directions, 4 for opposite ones."""
    student = F.normalize(student.float(), dim=-1)
    teacher = F.normalize(teacher.float(), dim=-1)
    return (2 - 2 * (student * teacher).sum(dim=-1)).mean()


def attach_distill_head(model: nn.Module, teacher_dim: int) -> nn.Module:
    """Give the student ``distill_head``: its norm type, then ``Linear(d, teacher_dim)``."""
    c = model.config
    linear = nn.Linear(c.embed_dim, teacher_dim)
    nn.init.trunc_normal_(linear.weight, std=0.02)
    nn.init.zeros_(linear.bias)
    model.distill_head = nn.Sequential(make_norm(c.embed_dim, c.norm_eps, c.rms_norm), linear)
    return enable_objective_forward(model.to(model.pos_embed.device))


def remove_distill_head(model: nn.Module) -> nn.Module:
    """The student without ``distill_head`` (a plain classifier again)."""
    if hasattr(model, "distill_head"):
        del model.distill_head
    vars(model).pop("forward", None)  # back to the class's forward
    return model


def freeze_teacher(teacher: nn.Module) -> nn.Module:
    """Frozen (no gradients) and in eval mode (no dropout / drop path)."""
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher.eval()


def student_logits_and_features(model: nn.Module, video: Tensor) -> tuple[Tensor, Tensor]:
    """Class scores ``(B, K)`` and ``distill_head`` features ``(B, L, d_teacher)`` of one pass."""
    if not hasattr(model, "distill_head"):
        raise ConfigError("the distillation student has no distill_head; build it with "
                          "attach_distill_head(model, teacher_dim)")
    tokens = model.forward_features(video, return_all_tokens=True)
    return model.forward_head(tokens[:, 0]), model.distill_head(tokens)


class DistillationTask(Task):
    """Classification plus token-feature distillation from a frozen teacher (see module doc).

    Evaluation is plain classification of the student."""

    best_metric = "top1"

    def __init__(self, teacher: nn.Module, num_classes: int, label_smoothing: float = 0.0,
                 class_names: Sequence[str] | None = None, distill_weight: float = 1.0,
                 unlabelled_weight: float = 0.0) -> None:
        DistillConfig(distill_weight, unlabelled_weight)  # validates
        self.teacher = freeze_teacher(teacher)
        self.classification = ClassificationTask(num_classes, label_smoothing, class_names)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.distill_weight = distill_weight
        self.unlabelled_weight = unlabelled_weight

    @torch.no_grad()
    def teacher_tokens(self, video: Tensor) -> Tensor:
        """The teacher's final-norm tokens ``(B, L, d_teacher)``."""
        self.teacher.to(video.device).eval()  # held by the task, out of the engine's train()
        return self.teacher.forward_features(video, return_all_tokens=True)

    def unlabelled_clips(self, batch: Mapping[str, Any]) -> Tensor | None:
        """The batch's unlabelled clips flattened to ``(B * U, C, T, H, W)``, or None when the
        term is off."""
        if self.unlabelled_weight == 0:
            return None
        if UNLABELLED_KEY not in batch:
            raise ConfigError(
                f"distill.unlabelled_weight is {self.unlabelled_weight} but the batch has no "
                f"{UNLABELLED_KEY!r}: wrap the training set in WithUnlabelledClips (and keep "
                f"data.repeated_aug at 1), or set distill.unlabelled_weight to 0")
        return batch[UNLABELLED_KEY].flatten(0, 1)

    def training_step(self, model: nn.Module, batch: Mapping[str, Any]) -> StepOutput:
        video, labels = batch["video"], batch["label"]
        unlabelled = self.unlabelled_clips(batch)
        num_labelled = int(video.shape[0])
        # one pass over labelled and unlabelled clips together: the same computation, fewer calls
        clips = video if unlabelled is None else torch.cat([video, unlabelled.to(video.dtype)])
        target_tokens = self.teacher_tokens(clips)
        logits, features = call_objective(model, student_logits_and_features, clips)
        if features.shape[1] != target_tokens.shape[1]:
            raise ConfigError(f"teacher has {target_tokens.shape[1]} tokens per clip, student "
                              f"{features.shape[1]}: use the same frames, input and patch sizes")
        logits = logits[:num_labelled]
        targets = batch.get("target")
        if targets is None:
            targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)
        loss_cls = soft_target_cross_entropy(logits, targets)
        loss_distill = distillation_loss(features[:num_labelled], target_tokens[:num_labelled])
        loss = loss_cls + self.distill_weight * loss_distill
        metrics = {"loss_cls": loss_cls.detach(), "loss_distill": loss_distill.detach()}
        if unlabelled is not None:
            loss_unlabelled = distillation_loss(features[num_labelled:],
                                                target_tokens[num_labelled:])
            loss = loss + self.unlabelled_weight * loss_unlabelled
            metrics["loss_distill_unlabelled"] = loss_unlabelled.detach()
        with torch.no_grad():
            metrics["train_acc"] = (logits.argmax(dim=-1) == labels).float().mean()
        return StepOutput(loss, metrics, num_labelled)

    def eval_step(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        return self.classification.eval_step(model, batch)

    def summarize(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        return self.classification.summarize(outputs)


def setup_distillation(student: nn.Module, task: ClassificationTask, teacher_dir: str,
                       distill_weight: float = 1.0,
                       unlabelled_weight: float = 0.0) -> DistillationTask:
    """What ``videomamba train --teacher DIR`` does: load the trained teacher from ``DIR`` (a
    ``save_pretrained`` folder or a run folder with ``model/``), give the student its
    ``distill_head`` and wrap the classification ``task``; ``unlabelled_weight > 0`` turns on our
    extension (the training set must then be wrapped in :class:`WithUnlabelledClips`). Call
    :func:`remove_distill_head` before exporting the student."""
    from videomamba.models.checkpoint import from_pretrained
    from videomamba.models.teachers import resolve_model_dir

    if not isinstance(task, ClassificationTask):
        raise ConfigError(f"--teacher: self-distillation applies to the classification task, "
                          f"not {type(task).__name__}")
    teacher = from_pretrained(resolve_model_dir(teacher_dir))
    s, t = student.config, teacher.config
    if (s.num_tokens_t, s.num_patches) != (t.num_tokens_t, t.num_patches):
        raise ConfigError(
            f"--teacher {teacher_dir}: its token grid ({t.num_tokens_t} x {t.num_patches}: "
            f"{t.num_frames} frames, {t.img_size} px, patch {t.patch_size}) differs from the "
            f"student's ({s.num_tokens_t} x {s.num_patches}); train the teacher with the same "
            f"frames, input size and patch size")
    attach_distill_head(student, t.embed_dim)
    return DistillationTask(teacher, task.num_classes, task.label_smoothing, task.class_names,
                            distill_weight, unlabelled_weight)
