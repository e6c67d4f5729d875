"""Depthwise causal 1-D convolution, the ``causal_conv1d_fn`` of the causal-conv1d package in
plain PyTorch (any device, autograd through ``F.conv1d``).

Output position ``t`` sees inputs ``t-K+1 .. t`` only; the missing past is zero padding.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

_ACTIVATIONS = (None, "silu", "swish")


def causal_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    activation: str | None = None,
) -> Tensor:
    """Depthwise causal convolution of ``x`` ``(B, D, L)`` with ``weight`` ``(D, K)`` (an
    ``nn.Conv1d(D, D, K, groups=D)`` weight ``(D, 1, K)`` squeezed) and ``bias`` ``(D,)``;
    ``activation`` is ``None`` or ``"silu"`` (alias ``"swish"``). Returns ``(B, D, L)``."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    if weight.dim() == 3:
        weight = weight.squeeze(1)
    channels, width = weight.shape
    if x.dim() != 3 or x.shape[1] != channels:
        raise ValueError(f"x must be (B, {channels}, L) to match weight {tuple(weight.shape)}, "
                         f"got {tuple(x.shape)}")
    length = x.shape[-1]
    out = F.conv1d(x, weight.unsqueeze(1), bias, padding=width - 1, groups=channels)[..., :length]
    return F.silu(out) if activation is not None else out
