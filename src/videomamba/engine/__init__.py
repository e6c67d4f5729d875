"""The training loop shared by every task: optimiser with layer-wise lr decay, per-step cosine
schedule, mixup/cutmix, EMA, AMP, DDP/FSDP, atomic checkpoints with exact resume, logs, evaluation.

Entry points: :class:`~videomamba.engine.trainer.Trainer`, :func:`~videomamba.engine.config.load_recipe`,
:func:`~videomamba.engine.evaluate.evaluate`. Modules are imported on use to keep this light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Trainer": "videomamba.engine.trainer",
    "TrainingDiverged": "videomamba.engine.trainer",
    "Recipe": "videomamba.engine.config",
    "load_recipe": "videomamba.engine.config",
    "evaluate": "videomamba.engine.evaluate",
    "build_optimizer": "videomamba.engine.optim",
    "param_groups": "videomamba.engine.optim",
    "CosineWarmupScheduler": "videomamba.engine.schedule",
    "VideoMixup": "videomamba.engine.mixup",
    "ModelEma": "videomamba.engine.ema",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'videomamba.engine' has no attribute {name!r}")
