"""Mixup and CutMix for video batches, with label smoothing (timm's "batch" mode, for clips).

One mixing coefficient per batch; the partner of sample i is sample B-1-i (the batch flipped).
CutMix cuts the same box out of every frame of a clip, so motion inside the box stays intact,
and the coefficient is corrected to the box's true area after clipping to the frame.
Randomness comes from the object's own NumPy generator so that its state can be checkpointed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from torch import Tensor

from videomamba.engine.config import MixupConfig
from videomamba.tasks.classification import smooth_one_hot


class VideoMixup:
    """Callable ``(video (B, C, T, H, W), labels (B,)) -> (mixed video, soft targets (B, K))``."""

    def __init__(self, cfg: MixupConfig, num_classes: int, seed: int = 0) -> None:
        self.cfg = cfg
        self.num_classes = num_classes
        self.rng = np.random.Generator(np.random.PCG64(seed))

    @property
    def active(self) -> bool:
        return self.cfg.prob > 0 and (self.cfg.mixup_alpha > 0 or self.cfg.cutmix_alpha > 0)

    def _uniform(self) -> float:
        return float(self.rng.random())

    def choose(self) -> tuple[str, float]:
        """Pick ``("none" | "mixup" | "cutmix", lam)`` for the next batch."""
        cfg = self.cfg
        if not self.active or self._uniform() >= cfg.prob:
            return "none", 1.0
        use_cutmix = cfg.cutmix_alpha > 0 and (cfg.mixup_alpha <= 0 or self._uniform() < cfg.switch_prob)
        alpha = cfg.cutmix_alpha if use_cutmix else cfg.mixup_alpha
        return ("cutmix" if use_cutmix else "mixup"), float(self.rng.beta(alpha, alpha))

    def cut_box(self, lam: float, height: int, width: int) -> tuple[int, int, int, int]:
        """A box of area ~``(1 - lam) * H * W`` at a random centre, clipped to the frame."""
        ratio = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * ratio), int(width * ratio)
        cy, cx = int(self._uniform() * height), int(self._uniform() * width)
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        return y0, y1, x0, x1

    def __call__(self, video: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        kind, lam = self.choose()
        if kind == "mixup":
            video = video * lam + video.flip(0) * (1.0 - lam)
        elif kind == "cutmix":
            height, width = video.shape[-2:]
            y0, y1, x0, x1 = self.cut_box(lam, height, width)
            video = video.clone()
            video[..., y0:y1, x0:x1] = video.flip(0)[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
        targets = smooth_one_hot(labels, self.num_classes, self.cfg.label_smoothing)
        if kind != "none":
            targets = targets * lam + targets.flip(0) * (1.0 - lam)
        return video, targets

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
