"""The gradient tensors the custom ops return, and what their fake kernels promise (the two must
agree, strides included, or ``torch.compile`` fails in the backward)."""

from __future__ import annotations

import torch
from torch import Tensor


def dense_like(t: Tensor) -> Tensor:
    """A contiguous tensor of ``t``'s shape, dtype and device (``empty_like`` would keep a
    transposed input's strides)."""
    return torch.empty(t.shape, dtype=t.dtype, device=t.device)


def bias_grad_like(b: Tensor | None, w: Tensor, channels: int) -> Tensor:
    """The gradient of a ``(channels,)`` bias; a missing bias still gets a (discarded) one, in
    the weight's dtype."""
    return torch.empty((channels,), dtype=(b if b is not None else w).dtype, device=w.device)
