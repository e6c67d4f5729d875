"""Video classification: cross-entropy on (soft) targets; multi-view testing by averaged softmax.

Training batches carry ``"video"`` ``(B, C, T, H, W)`` and ``"label"`` ``(B,)``, and optionally
``"target"`` ``(B, K)`` soft targets (written by mixup/cutmix). Evaluation batches may carry test
views ``(B, V, C, T, H, W)``: each view's softmax is computed and the V are averaged, as the
official ``merge`` of test views does.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videomamba.tasks.base import StepOutput, Task
from videomamba.tasks.metrics import classification_report


def smooth_one_hot(labels: Tensor, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """``(B,)`` int labels -> ``(B, num_classes)`` float targets whose rows sum to 1."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return targets.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)


def soft_target_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean over the batch of ``-sum(targets * log_softmax(logits))``; both ``(B, K)``."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def view_averaged_probs(model: nn.Module, video: Tensor) -> Tensor:
    """Class probabilities ``(B, K)`` of ``(B, C, T, H, W)`` or views ``(B, V, C, T, H, W)``."""
    if video.dim() == 5:
        return model(video).float().softmax(dim=-1)
    batch, views = video.shape[:2]
    logits = model(video.flatten(0, 1)).float()
    return logits.softmax(dim=-1).view(batch, views, -1).mean(dim=1)


class ClassificationTask(Task):
    best_metric = "top1"

    def __init__(self, num_classes: int, label_smoothing: float = 0.0,
                 class_names: Sequence[str] | None = None) -> None:
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.class_names = list(class_names) if class_names else None

    def training_step(self, model: nn.Module, batch: Mapping[str, Any]) -> StepOutput:
        video, labels = batch["video"], batch["label"]
        logits = model(video)
        targets = batch.get("target")
        if targets is None:
            targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)
        loss = soft_target_cross_entropy(logits, targets)
        with torch.no_grad():
            # Against the hard labels even when mixing: a rough progress signal, not a metric.
            accuracy = (logits.argmax(dim=-1) == labels).float().mean()
        return StepOutput(loss, {"train_acc": accuracy}, int(video.shape[0]))

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        probs = view_averaged_probs(model, batch["video"])
        labels = torch.as_tensor(batch["label"], device=probs.device)
        loss = F.nll_loss(probs.clamp_min(1e-12).log(), labels.clamp_min(0), reduction="none")
        return {"scores": probs, "label": labels, "index": torch.as_tensor(batch["index"]), "loss": loss}

    def summarize(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        labels = outputs["label"].astype(np.int64)
        report = classification_report(outputs["scores"], labels, self.num_classes, self.class_names)
        report["loss"] = float(np.mean(outputs["loss"])) if len(labels) else float("nan")
        return report
