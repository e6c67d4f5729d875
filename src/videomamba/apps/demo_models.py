"""The demo's order-blind baseline: the same VideoMamba backbone on each frame alone, mean-pooled.

Its prediction is a function of the *set* of frames, so it cannot tell a clip from the same clip
played backwards: on the motion set's reversed pairs it is at chance by construction.
"""

from __future__ import annotations

from torch import Tensor, nn


class FrameMeanBaseline(nn.Module):
    """``(B, C, T, H, W)`` -> logits: ``head(mean_t backbone_features(frame_t))``.

    ``backbone`` is a one-frame VideoMamba (``create_model(name, num_frames=1, ...)``).
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, time, height, width = x.shape
        frames = x.transpose(1, 2).reshape(batch * time, channels, 1, height, width)
        features = self.backbone.forward_features(frames)  # (B*T, d): the cls token of each frame
        return self.backbone.forward_head(features.view(batch, time, -1).mean(dim=1))
