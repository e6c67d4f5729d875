"""Per-step cosine learning-rate schedule with linear warmup (the official ``cosine_scheduler``).

Steps ``0 .. W-1`` go linearly from ``warmup_lr`` to ``base_lr`` (both ends included, as
``np.linspace``); the remaining ``total - W`` steps follow
``min_lr + (base_lr - min_lr) * (1 + cos(pi * i / (total - W))) / 2``; after ``total``: ``min_lr``.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def cosine_lr(step: int, base_lr: float, min_lr: float, total_steps: int, warmup_steps: int = 0,
              warmup_lr: float = 0.0) -> float:
    """The learning rate at optimiser step ``step`` (0-based)."""
    if step < warmup_steps:
        if warmup_steps == 1:
            return warmup_lr
        return warmup_lr + (base_lr - warmup_lr) * step / (warmup_steps - 1)
    decay_steps = total_steps - warmup_steps
    if step >= total_steps or decay_steps <= 0:
        return min_lr
    progress = (step - warmup_steps) / decay_steps
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


class CosineWarmupScheduler:
    """Sets every group's lr to ``cosine_lr(step) * group["lr_scale"]`` before each step.

    Call :meth:`apply` before ``optimizer.step()`` and :meth:`advance` after it. Its state is the
    step counter alone, so a resumed run continues the curve exactly.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, min_lr: float,
                 total_steps: int, warmup_steps: int = 0, warmup_lr: float = 0.0) -> None:
        self.optimizer = optimizer
        self.base_lr, self.min_lr, self.warmup_lr = base_lr, min_lr, warmup_lr
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.step_count = 0

    def current_lr(self) -> float:
        return cosine_lr(self.step_count, self.base_lr, self.min_lr, self.total_steps,
                         self.warmup_steps, self.warmup_lr)

    def apply(self) -> float:
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def advance(self) -> None:
        self.step_count += 1

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
