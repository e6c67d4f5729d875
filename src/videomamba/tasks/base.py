"""The task interface: what the engine trains and evaluates, whatever the objective.

A task turns a batch into a loss (training) and into per-sample outputs (evaluation), then turns
all the outputs of a split into metrics. The engine owns everything else: devices, precision,
the optimiser, distribution, checkpoints. Classification is one task; masked alignment,
distillation and video-text retrieval plug in the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from torch import Tensor, nn


@dataclass
class StepOutput:
    """What a training step returns: the loss to back-propagate and numbers to log."""

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)  # scalar tensors, logged as floats
    batch_size: int = 0


class Task(ABC):
    """Subclasses define :meth:`training_step`, :meth:`eval_step` and :meth:`summarize`."""

    #: key of :meth:`summarize`'s result that picks the best checkpoint (higher is better)
    best_metric: str = "loss"

    @abstractmethod
    def training_step(self, model: nn.Module, batch: Mapping[str, Any]) -> StepOutput:
        """Loss of one (already device-placed) batch."""

    @abstractmethod
    def eval_step(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Per-sample outputs of one batch; every tensor's first dim is the batch.

        Must include ``"index"`` (the dataset index) so that outputs gathered from several
        ranks can be de-duplicated and put back in dataset order.
        """

    @abstractmethod
    def summarize(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """Metrics of a whole split from the concatenated, de-duplicated outputs."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
