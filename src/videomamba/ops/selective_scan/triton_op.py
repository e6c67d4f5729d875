"""The Triton selective scan as ``torch.library`` custom ops with autograd, so that
``torch.compile`` traces a model through it without graph breaks.

``videomamba::scan_fwd`` / ``videomamba::scan_bwd`` wrap one direction; ``selective_scan_triton``
is the public function with the contract of ``ref.selective_scan_ref``. The kernels: the
time-tiled forward (``triton_tile.py``) and the lean backward (``triton_tile_bwd.py``). The
forward saves, for the backward, the state at every segment boundary (``ck``, float32
``(B, n_seg - 1, D, N_pow2)``; segments of ``triton_common.segment_length`` steps). Earlier kernel
generations (chunked, segmented sequential, the first tiled backward) were removed after commit
353f833; their measurements are in docs/kernels.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

from videomamba.ops.eager import AutogradRoute
from videomamba.ops.grad_buffers import dense_like
from videomamba.ops.selective_scan.triton_common import next_power_of_2, segment_length
from videomamba.ops.selective_scan.triton_tile import tile_fwd
from videomamba.ops.selective_scan.triton_tile_bwd import lean_bwd


def run_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, out=None,
            accumulate=None, a_is_log=False):
    """One direction's forward: ``(y, last, ck)`` (``triton_tile.tile_fwd``, storing the state at
    every backward segment boundary; ``out``/``accumulate``/``a_is_log`` as there)."""
    seg_len = segment_length(u.shape[0], u.shape[1], u.shape[2])
    return tile_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=reverse, out=out,
                    ck_steps=seg_len, accumulate=accumulate, a_is_log=a_is_log)


def run_bwd(dy, u, delta, A, B, C, D, z, delta_bias, delta_softplus, ck, dlast=None,
            reverse=False, z_mode=0, partner=None, a_is_log=False) -> dict:
    """One direction's backward (outputs: ``triton_tile_bwd.lean_bwd``)."""
    seg_len = segment_length(u.shape[0], u.shape[1], u.shape[2])
    return lean_bwd(dy, u, delta, A, B, C, D, z, delta_bias, delta_softplus, ck, seg_len,
                    dlast=dlast, reverse=reverse, z_mode=z_mode, partner=partner,
                    a_is_log=a_is_log)


def saved_shape(batch: int, channels: int, length: int, n_state: int) -> tuple[int, ...]:
    """Shape of ``ck``, the tensor the forward saves (for the fake implementations)."""
    seg_len = segment_length(batch, channels, length)
    n_pow2 = max(next_power_of_2(n_state), 2)
    return batch, (max(length, 1) - 1) // seg_len, channels, n_pow2


def _scan_fwd_impl(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, delta_softplus: bool, reverse: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    y, last, ck = run_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse)
    return y, last.contiguous(), ck


_scan_fwd_op = torch.library.custom_op("videomamba::scan_fwd", _scan_fwd_impl, mutates_args=())


@_scan_fwd_op.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse):
    batch, channels, length = u.shape
    n_state = A.shape[1]
    y = torch.empty(u.shape, dtype=u.dtype, device=u.device)
    last = u.new_empty((batch, channels, n_state), dtype=torch.float32)
    ck = u.new_empty(saved_shape(batch, channels, length, n_state), dtype=torch.float32)
    return y, last, ck


def _scan_bwd_impl(
    dy: Tensor, dlast: Tensor | None, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
    D: Tensor | None, z: Tensor | None, delta_bias: Tensor | None, ck: Tensor,
    delta_softplus: bool, reverse: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    # contiguous: the fake kernel promises contiguous du/ddelta/dz (they take dy's layout)
    g = run_bwd(dy.contiguous(), u, delta, A, B, C, D, z, delta_bias, delta_softplus, ck,
                dlast=dlast, reverse=reverse)
    return (
        g["du"], g["ddelta"], g["dA"].to(A.dtype), g["dB"].to(B.dtype), g["dC"].to(C.dtype),
        g["dD"].to(D.dtype) if D is not None else u.new_empty(0),
        g["dz"] if z is not None else u.new_empty(0),
        g["ddelta_bias"].to(delta_bias.dtype) if delta_bias is not None else u.new_empty(0),
    )


_scan_bwd_op = torch.library.custom_op("videomamba::scan_bwd", _scan_bwd_impl, mutates_args=())


@_scan_bwd_op.register_fake
def _(dy, dlast, u, delta, A, B, C, D, z, delta_bias, ck, delta_softplus, reverse):
    return (
        torch.empty(u.shape, dtype=u.dtype, device=u.device),
        torch.empty(delta.shape, dtype=delta.dtype, device=u.device),
        dense_like(A), dense_like(B), dense_like(C),
        dense_like(D) if D is not None else u.new_empty(0),
        dense_like(z) if z is not None else u.new_empty(0),
        dense_like(delta_bias) if delta_bias is not None else u.new_empty(0),
    )


def _setup_context(ctx, inputs, output):
    u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse = inputs
    _, _, ck = output
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, ck)
    ctx.flags = (delta_softplus, reverse)


def _backward_with(bwd):
    def backward(ctx, dy, dlast, _dck):
        u, delta, A, B, C, D, z, delta_bias, ck = ctx.saved_tensors
        if dy is None:
            dy = torch.zeros_like(u)
        du, ddelta, dA, dB, dC, dD, dz, dbias = bwd(
            dy, dlast, u, delta, A, B, C, D, z, delta_bias, ck, *ctx.flags
        )
        return (
            du, ddelta, dA, dB, dC,
            dD if D is not None else None,
            dz if z is not None else None,
            dbias if delta_bias is not None else None,
            None, None,
        )
    return backward


_SCAN = AutogradRoute.register(_scan_fwd_op, _scan_fwd_impl, _scan_bwd_op, _scan_bwd_impl,
                               _setup_context, _backward_with)


def selective_scan_triton(
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
    reverse: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan on the Triton kernels; same contract and shapes as ``selective_scan_ref``
    (u, delta, z ``(B, D, L)``; A ``(D, N)``; B, C ``(B, N, L)`` or ``(B, G, N, L)``; D, delta_bias
    ``(D,)``). ``reverse`` scans from t = L-1 down to 0 by index (equal to flipping every input and
    the output along L, without the copies). Differentiable in every tensor argument and in the
    returned last state (float32 ``(B, D, N)``)."""
    y, last, _ = _SCAN(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), bool(reverse))
    return (y, last) if return_last_state else y
