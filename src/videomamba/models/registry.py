"""The one way to build a model: ``create_model(name, ...)``; ``list_models()`` names them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from videomamba.models.config import PRESETS, preset
from videomamba.models.videomamba import VisionMambaBase, build_model

log = logging.getLogger(__name__)


def list_models(pattern: str = "") -> list[str]:
    """Sorted model names containing ``pattern``."""
    return sorted(name for name in PRESETS if pattern in name)


def create_model(
    name: str,
    num_classes: int | None = None,
    num_frames: int | None = None,
    img_size: int | None = None,
    pretrained: str | Path | None = None,
    **overrides: Any,
) -> VisionMambaBase:
    """Build the model ``name`` (see :func:`list_models`).

    ``num_classes``, ``num_frames``, ``img_size`` and ``overrides`` (any
    :class:`~videomamba.models.config.VideoMambaConfig` field, e.g. ``drop_path_rate=0.2``,
    ``use_checkpoint=True``) change the preset. ``pretrained`` is a directory written by
    :func:`~videomamba.models.checkpoint.save_pretrained` or an official ``.pth`` /
    ``.safetensors`` file; position embeddings are resized and the patch weights inflated to fit,
    and a head of another class count is dropped (logged)."""
    changes = dict(overrides)
    for key, value in (("num_classes", num_classes), ("num_frames", num_frames),
                       ("img_size", img_size)):
        if value is not None:
            changes[key] = value
    config = preset(name).replace(**changes)
    model = build_model(config)
    model.model_name = name
    if pretrained is not None:
        from videomamba.models.checkpoint import load_pretrained_weights

        load_pretrained_weights(model, pretrained)
    return model
