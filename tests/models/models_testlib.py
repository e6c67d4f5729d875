"""Tiny models for fast CPU tests: depth 2, width 64, 2 frames of 32x32 (2x2 patches)."""

from __future__ import annotations

import torch

from videomamba.models import create_model

TINY = dict(embed_dim=64, depth=2, num_frames=2, img_size=32, num_classes=5, drop_path_rate=0.0)


def tiny_video(**overrides):
    return create_model("videomamba_tiny", **{**TINY, **overrides})


def tiny_image(**overrides):
    options = {**TINY, **overrides}
    options.pop("num_frames")
    return create_model("videomamba_image_tiny", **options)


def perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move every parameter off its initial value (zeros, ones) so that mistakes show."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    return model


