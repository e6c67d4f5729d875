"""The selective scan, written as the recurrence reads: the oracle every fast path is tested against.

Contract (same as ``mamba_ssm.selective_scan_fn``)::

    delta = softplus(delta + delta_bias)            if delta_softplus (bias optional)
    h_t   = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t
    y_t   = <h_t, C_t> + D * u_t
    y     = y * silu(z)                             if z is given

Shapes: u, delta, z ``(B, D, L)``; A ``(D, N)``; B, C ``(B, N, L)`` (or ``(B, G, N, L)`` with
G groups sharing the D channels evenly); D, delta_bias ``(D,)``. Returns y ``(B, D, L)`` in u's
dtype, and the last state ``(B, D, N)`` when ``return_last_state``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def expand_groups(bc: Tensor, channels: int) -> Tensor:
    """B or C as ``(B, D, N, L)``: ``(B, N, L)`` is shared by all channels, ``(B, G, N, L)`` by
    ``channels // G`` consecutive channels each."""
    if bc.dim() == 3:
        return bc.unsqueeze(1).expand(-1, channels, -1, -1)
    groups = bc.shape[1]
    if channels % groups:
        raise ValueError(f"{channels} channels cannot be split into {groups} groups of B/C")
    return bc.repeat_interleave(channels // groups, dim=1)


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Sequential selective scan in float32 (float64 if any input is float64); see module doc."""
    out_dtype = u.dtype
    compute = torch.float64 if torch.float64 in (u.dtype, delta.dtype, A.dtype) else torch.float32
    u, delta, A = u.to(compute), delta.to(compute), A.to(compute)
    batch, channels, length = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias.to(compute)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    Bx = expand_groups(B.to(compute), channels)  # (B, D, N, L)
    Cx = expand_groups(C.to(compute), channels)
    decay = torch.exp(delta.unsqueeze(2) * A[None, :, :, None])  # (B, D, N, L)
    drive = (delta * u).unsqueeze(2) * Bx  # (B, D, N, L)
    h = u.new_zeros(batch, channels, A.shape[1])
    ys = []
    for t in range(length):
        h = decay[..., t] * h + drive[..., t]
        ys.append((h * Cx[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(batch, channels, 0)
    if D is not None:
        y = y + u * D.to(compute)[:, None]
    if z is not None:
        y = y * F.silu(z.to(compute))
    y = y.to(out_dtype)
    return (y, h) if return_last_state else y
