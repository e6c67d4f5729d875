"""Both directions of a bidirectional Mamba block on the Triton kernels, without flipped copies.

The backward branch of the official "v2" mixer runs on the reversed sequence and its output is
reversed back. Every step but the scan is per position, so the branch equals, in the original
order: an anti-causal depthwise conv (the causal one with its taps reversed), the same
projections, and a scan from t = L-1 down to 0. So nothing is flipped: one grouped conv reads x
once for both branches, and the two scans are a launch pair whose second adds the first's output
and applies the shared gate ``silu(z)`` (the official backward branch gates with ``flip(z)`` on
the flipped sequence, which is ``z`` in place).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
import triton
from torch import Tensor

from videomamba.ops.selective_scan.triton_fwd import fwd_config, interpreting
from videomamba.ops.selective_scan.triton_op import dense_like, run_bwd, run_fwd, saved_shapes, scan_algo
from videomamba.ops.triton_conv import MAX_WIDTH, bidirectional_conv_silu_triton


class BranchWeights(NamedTuple):
    """One direction's parameters, as the mixer holds them."""

    conv_weight: Tensor  # (D, 1, K) or (D, K)
    conv_bias: Tensor | None  # (D,)
    x_proj_weight: Tensor  # (dt_rank + 2N, D)
    dt_proj_weight: Tensor  # (D, dt_rank)
    dt_proj_bias: Tensor  # (D,)
    A_log: Tensor  # (D, N)
    D: Tensor  # (D,)


@torch.library.custom_op("videomamba::bi_scan_fwd", mutates_args=())
def _bi_scan_fwd(
    u_f: Tensor, delta_f: Tensor, A_f: Tensor, B_f: Tensor, C_f: Tensor, D_f: Tensor, bias_f: Tensor,
    u_b: Tensor, delta_b: Tensor, A_b: Tensor, B_b: Tensor, C_b: Tensor, D_b: Tensor, bias_b: Tensor,
    z: Tensor, block_l: int, algo: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    y, _, sa_f, sb_f = run_fwd(u_f, delta_f, A_f, B_f, C_f, D_f, None, bias_f, True, False,
                               block_l, algo)
    y, _, sa_b, sb_b = run_fwd(u_b, delta_b, A_b, B_b, C_b, D_b, z, bias_b, True, True, block_l,
                               algo, out=y)
    return y, sa_f, sb_f, sa_b, sb_b


@_bi_scan_fwd.register_fake
def _(u_f, delta_f, A_f, B_f, C_f, D_f, bias_f, u_b, delta_b, A_b, B_b, C_b, D_b, bias_b, z,
      block_l, algo):
    batch, channels, length = u_f.shape
    shape_a, shape_b = saved_shapes(batch, channels, length, A_f.shape[1], block_l, algo)
    new = lambda shape: u_f.new_empty(shape, dtype=torch.float32)  # noqa: E731
    return (torch.empty(u_f.shape, dtype=u_f.dtype, device=u_f.device),
            new(shape_a), new(shape_b), new(shape_a), new(shape_b))


@torch.library.custom_op("videomamba::bi_scan_bwd", mutates_args=())
def _bi_scan_bwd(
    dy: Tensor,
    u_f: Tensor, delta_f: Tensor, A_f: Tensor, B_f: Tensor, C_f: Tensor, D_f: Tensor, bias_f: Tensor,
    u_b: Tensor, delta_b: Tensor, A_b: Tensor, B_b: Tensor, C_b: Tensor, D_b: Tensor, bias_b: Tensor,
    z: Tensor, sa_f: Tensor, sb_f: Tensor, sa_b: Tensor, sb_b: Tensor, block_l: int, algo: str,
) -> list[Tensor]:
    partner = torch.empty(dy.shape, device=dy.device, dtype=torch.float32)
    g_f = run_bwd(dy, u_f, delta_f, A_f, B_f, C_f, D_f, z, bias_f, True, sa_f, sb_f, block_l, algo,
                  z_mode=1, partner=partner)
    g_b = run_bwd(dy, u_b, delta_b, A_b, B_b, C_b, D_b, z, bias_b, True, sa_b, sb_b, block_l, algo,
                  reverse=True, z_mode=2, partner=partner)
    grads = []
    for g, (A, B, C, D, bias) in ((g_f, (A_f, B_f, C_f, D_f, bias_f)), (g_b, (A_b, B_b, C_b, D_b, bias_b))):
        grads += [g["du"], g["ddelta"], g["dA"].to(A.dtype), g["dB"].to(B.dtype),
                  g["dC"].to(C.dtype), g["dD"].to(D.dtype), g["ddelta_bias"].to(bias.dtype)]
    return grads + [g_b["dz"]]


@_bi_scan_bwd.register_fake
def _(dy, u_f, delta_f, A_f, B_f, C_f, D_f, bias_f, u_b, delta_b, A_b, B_b, C_b, D_b, bias_b, z,
      sa_f, sb_f, sa_b, sb_b, block_l, algo):
    grads = []
    for u, delta, A, B, C, D, bias in ((u_f, delta_f, A_f, B_f, C_f, D_f, bias_f),
                                       (u_b, delta_b, A_b, B_b, C_b, D_b, bias_b)):
        grads += [dense_like(t) for t in (u, delta, A, B, C, D, bias)]
    return grads + [dense_like(z)]


def _bi_setup(ctx, inputs, output):
    *tensors, block_l, algo = inputs
    _, *saved = output
    ctx.save_for_backward(*tensors, *saved)
    ctx.flags = (block_l, algo)


def _bi_backward(ctx, dy, *_dsaved):
    grads = _bi_scan_bwd(dy, *ctx.saved_tensors, *ctx.flags)
    return (*grads, None, None)


_bi_scan_fwd.register_autograd(_bi_backward, setup_context=_bi_setup)


def bidirectional_conv_silu(x: Tensor, w_f: Tensor, b_f: Tensor | None, w_b: Tensor,
                            b_b: Tensor | None) -> tuple[Tensor, Tensor]:
    """``silu(causal_conv(x, w_f))`` and, in the original order, the backward branch's
    ``flip(silu(causal_conv(flip(x), w_b)))``. x ``(B, D, L)``; weights ``(D, K)`` or
    ``(D, 1, K)``; returns two ``(B, D, L)``. Without autograd on CUDA (or the Triton
    interpreter), one fused Triton kernel (``ops/triton_conv.py``) computes both with their SiLU;
    otherwise the grouped conv. The fused kernel's backward is correct but measured 3x slower
    than the grouped conv's (H200, docs/kernels.md "Whole model"), so training keeps the latter."""
    if _fused_conv_applies(x, w_f, b_f, w_b, b_b):
        return bidirectional_conv_silu_triton(x, w_f, b_f, w_b, b_b)
    return bidirectional_conv_silu_grouped(x, w_f, b_f, w_b, b_b)


def _fused_conv_applies(x: Tensor, *params: Tensor | None) -> bool:
    width = params[0].numel() // max(x.shape[1], 1)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, *params))
    return (x.is_cuda or interpreting()) and width <= MAX_WIDTH and not needs_grad


def bidirectional_conv_silu_grouped(x: Tensor, w_f: Tensor, b_f: Tensor | None, w_b: Tensor,
                                    b_b: Tensor | None) -> tuple[Tensor, Tensor]:
    """:func:`bidirectional_conv_silu` from one grouped ``F.conv1d`` that reads ``x`` once (any
    device, any width)."""
    channels, length = x.shape[1], x.shape[2]
    w_f, w_b = w_f.reshape(channels, -1), w_b.reshape(channels, -1)
    width = w_f.shape[1]
    # out channel 2c is channel c's causal tap set, 2c+1 its reversed (anti-causal) one
    weight = torch.stack([w_f, w_b.flip(-1)], dim=1).reshape(2 * channels, 1, width)
    bias = None
    if b_f is not None or b_b is not None:
        zero = torch.zeros(channels, device=x.device, dtype=w_f.dtype)
        bias = torch.stack([b_f if b_f is not None else zero, b_b if b_b is not None else zero],
                           dim=1).reshape(-1)
    out = F.conv1d(x, weight.to(x.dtype), bias.to(x.dtype) if bias is not None else None,
                   padding=width - 1, groups=channels)
    out = out.view(x.shape[0], channels, 2, length + width - 1)
    return F.silu(out[:, :, 0, :length]), F.silu(out[:, :, 1, width - 1:])


def _branch_inputs(x: Tensor, w: BranchWeights, d_state: int, dt_rank: int):
    """(u, delta, A, B, C, D, delta_bias) of one branch, all in the original order."""
    x_dbl = F.linear(x.transpose(1, 2), w.x_proj_weight)  # (B, L, dt_rank + 2N)
    dt, B, C = x_dbl.split([dt_rank, d_state, d_state], dim=-1)
    delta = F.linear(dt, w.dt_proj_weight).transpose(1, 2)  # (B, D, L)
    A = -torch.exp(w.A_log.float())
    return (x, delta, A, B.transpose(1, 2), C.transpose(1, 2), w.D.float(),
            w.dt_proj_bias.float())


def bimamba_inner_triton(
    xz: Tensor, forward: BranchWeights, backward: BranchWeights, d_state: int, dt_rank: int
) -> Tensor:
    """The mixer between ``in_proj`` and ``out_proj``: ``xz`` ``(B, 2*D, L)`` (x then z) ->
    ``silu(z) * (branch_f(x) + flip(branch_b(flip(x))))`` ``(B, D, L)``, on CUDA (or the Triton
    interpreter). Differentiable in ``xz`` and every weight."""
    x, z = xz.chunk(2, dim=1)
    x_f, x_b = bidirectional_conv_silu(x, forward.conv_weight, forward.conv_bias,
                                       backward.conv_weight, backward.conv_bias)
    f = _branch_inputs(x_f, forward, d_state, dt_rank)
    b = _branch_inputs(x_b, backward, d_state, dt_rank)
    block_l = fwd_config(x.shape[1], x.shape[2])[1]
    y, *_ = _bi_scan_fwd(*f, *b, z, block_l, scan_algo())
    return y
