"""Exponential moving average of a model's weights (kept in float32 on the model's device)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEma:
    """``ema = decay * ema + (1 - decay) * weights`` after every optimiser step.

    Floating-point buffers are averaged too; integer buffers (counters) are copied.
    ``module`` is a frozen copy usable for evaluation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(unwrap(model)).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        source = unwrap(model).state_dict()
        for name, target in self.module.state_dict().items():
            value = source[name].detach()
            if target.dtype.is_floating_point:
                target.mul_(self.decay).add_(value.to(target.dtype), alpha=1.0 - self.decay)
            else:
                target.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.module.load_state_dict(state["module"])


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside DDP/FSDP (``.module``) and ``torch.compile`` (``._orig_mod``)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel,)) or (
            type(model).__name__ == "FullyShardedDataParallel" and hasattr(model, "module")
        ):
            model = model.module
        else:
            return model
