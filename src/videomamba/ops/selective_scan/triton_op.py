"""The Triton selective scan as ``torch.library`` custom ops with autograd, so that
``torch.compile`` traces a model through it without graph breaks.

``videomamba::scan_fwd`` / ``videomamba::scan_bwd`` wrap one direction; ``selective_scan_triton``
is the public function with the contract of ``ref.selective_scan_ref``. Three kernel families,
picked by ``VIDEOMAMBA_SCAN_ALGO``: ``tile`` (the default: ``triton_tile.py``, time-tiled forward;
its backward by ``VIDEOMAMBA_TILE_BWD``: ``lean`` (default, ``triton_tile_bwd.py``), ``tile`` (the
previous one in ``triton_tile.py``) or ``seq`` (the segmented backward of ``triton_seq.py``,
started from the forward's stored segment states)), ``seq`` (``triton_seq.py`` both
ways) and ``chunk`` (``triton_fwd.py`` / ``triton_bwd.py``, chunked associative scan). The
forward saves two tensors for the backward:
the segment-boundary states and an empty tensor (``tile``), the segment summaries (``seq``) or
the chunk-boundary states and an empty tensor (``chunk``).
"""

from __future__ import annotations

import torch
import triton
from torch import Tensor

import os

from videomamba.ops.selective_scan.triton_bwd import scan_bwd
from videomamba.ops.selective_scan.triton_fwd import fwd_config, scan_fwd
from videomamba.ops.selective_scan.triton_seq import seq_bwd, seq_config, seq_fwd
from videomamba.ops.selective_scan.triton_tile import tile_bwd, tile_fwd
from videomamba.ops.selective_scan.triton_tile_bwd import lean_bwd

ALGOS = ("tile", "seq", "chunk")


def scan_algo() -> str:
    """``tile``, ``seq`` or ``chunk`` (environment variable ``VIDEOMAMBA_SCAN_ALGO``, default
    ``tile``)."""
    algo = os.environ.get("VIDEOMAMBA_SCAN_ALGO", "tile")
    if algo not in ALGOS:
        raise ValueError(f"VIDEOMAMBA_SCAN_ALGO must be one of {ALGOS}, got {algo!r}")
    return algo


def run_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, block_l, algo, out=None):
    """One direction's forward: ``(y, last, saved_a, saved_b)``."""
    if algo == "tile":
        seg_len = seq_config(u.shape[0], u.shape[1], u.shape[2])["seg_len"]
        y, last, ck = tile_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                               reverse=reverse, out=out, ck_steps=seg_len)
        return y, last, ck, u.new_empty(0, dtype=torch.float32)
    if algo == "seq":
        return seq_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=reverse, out=out)
    y, last, states, used = scan_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     reverse=reverse, out=out)
    if used != block_l:
        raise RuntimeError(f"scan_fwd used BLOCK_L={used}, the caller planned {block_l}")
    return y, last, states, u.new_empty(0, dtype=torch.float32)


def run_bwd(dy, u, delta, A, B, C, D, z, delta_bias, delta_softplus, saved_a, saved_b, block_l,
            algo, dlast=None, reverse=False, z_mode=0, partner=None) -> dict:
    """One direction's backward (see ``triton_bwd.scan_bwd`` for the outputs)."""
    tile_bwd_kind = os.environ.get("VIDEOMAMBA_TILE_BWD", "lean")
    if algo == "tile" and tile_bwd_kind in ("lean", "tile"):
        seg_len = seq_config(u.shape[0], u.shape[1], u.shape[2])["seg_len"]
        backward = lean_bwd if tile_bwd_kind == "lean" else tile_bwd
        return backward(dy, u, delta, A, B, C, D, z, delta_bias, delta_softplus, saved_a, seg_len,
                        dlast=dlast, reverse=reverse, z_mode=z_mode, partner=partner)
    if algo in ("seq", "tile"):  # tile with VIDEOMAMBA_TILE_BWD=seq: the segmented backward
        return seq_bwd(dy, u, delta, A, B, C, D, z, delta_bias, delta_softplus, saved_a, saved_b,
                       dlast=dlast, reverse=reverse, z_mode=z_mode, partner=partner,
                       entry_states=algo == "tile")
    return scan_bwd(dy, u, delta, A, B, C, D, z, delta_bias, delta_softplus, saved_a, block_l,
                    dlast=dlast, reverse=reverse, z_mode=z_mode, partner=partner)


def saved_shapes(batch: int, channels: int, length: int, n_state: int, block_l: int, algo: str):
    """Shapes of the two tensors the forward saves (for the fake implementations)."""
    n_pow2 = max(triton.next_power_of_2(n_state), 2)
    if algo == "tile":
        seg_len = seq_config(batch, channels, length)["seg_len"]
        return (batch, (max(length, 1) - 1) // seg_len, n_pow2, channels), (0,)
    if algo == "seq":
        n_seg = seq_config(batch, channels, length)["n_seg"]
        return (batch, n_seg, n_pow2, channels), (batch, n_seg, channels)
    return (batch, channels, max(triton.cdiv(length, block_l), 1), n_pow2), (0,)


def dense_like(t: Tensor) -> Tensor:
    """A contiguous tensor of ``t``'s shape, dtype and device: what the kernels return as a
    gradient. (``empty_like`` keeps a transposed input's strides, and a fake kernel must match
    the real one's strides or ``torch.compile`` fails in the backward.)"""
    return torch.empty(t.shape, dtype=t.dtype, device=t.device)


@torch.library.custom_op("videomamba::scan_fwd", mutates_args=())
def _scan_fwd_op(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, delta_softplus: bool, reverse: bool, block_l: int, algo: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    y, last, saved_a, saved_b = run_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                        reverse, block_l, algo)
    return y, last.contiguous(), saved_a, saved_b


@_scan_fwd_op.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, block_l, algo):
    batch, channels, length = u.shape
    n_state = A.shape[1]
    shape_a, shape_b = saved_shapes(batch, channels, length, n_state, block_l, algo)
    y = torch.empty(u.shape, dtype=u.dtype, device=u.device)
    last = u.new_empty((batch, channels, n_state), dtype=torch.float32)
    return (y, last, u.new_empty(shape_a, dtype=torch.float32),
            u.new_empty(shape_b, dtype=torch.float32))


@torch.library.custom_op("videomamba::scan_bwd", mutates_args=())
def _scan_bwd_op(
    dy: Tensor, dlast: Tensor | None, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
    D: Tensor | None, z: Tensor | None, delta_bias: Tensor | None, saved_a: Tensor,
    saved_b: Tensor, delta_softplus: bool, reverse: bool, block_l: int, algo: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    g = run_bwd(dy, u, delta, A, B, C, D, z, delta_bias, delta_softplus, saved_a, saved_b, block_l,
                algo, dlast=dlast, reverse=reverse)
    return (
        g["du"], g["ddelta"], g["dA"].to(A.dtype), g["dB"].to(B.dtype), g["dC"].to(C.dtype),
        g["dD"].to(D.dtype) if D is not None else u.new_empty(0),
        g["dz"] if z is not None else u.new_empty(0),
        g["ddelta_bias"].to(delta_bias.dtype) if delta_bias is not None else u.new_empty(0),
    )


@_scan_bwd_op.register_fake
def _(dy, dlast, u, delta, A, B, C, D, z, delta_bias, saved_a, saved_b, delta_softplus, reverse,
      block_l, algo):
    return (
        torch.empty(u.shape, dtype=u.dtype, device=u.device),
        torch.empty(delta.shape, dtype=delta.dtype, device=u.device),
        dense_like(A), dense_like(B), dense_like(C),
        dense_like(D) if D is not None else u.new_empty(0),
        dense_like(z) if z is not None else u.new_empty(0),
        dense_like(delta_bias) if delta_bias is not None else u.new_empty(0),
    )


def _setup_context(ctx, inputs, output):
    u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, block_l, algo = inputs
    _, _, saved_a, saved_b = output
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, saved_a, saved_b)
    ctx.flags = (delta_softplus, reverse, block_l, algo)


def _backward(ctx, dy, dlast, _dsaved_a, _dsaved_b):
    u, delta, A, B, C, D, z, delta_bias, saved_a, saved_b = ctx.saved_tensors
    delta_softplus, reverse, block_l, algo = ctx.flags
    if dy is None:
        dy = torch.zeros_like(u)
    du, ddelta, dA, dB, dC, dD, dz, dbias = _scan_bwd_op(
        dy, dlast, u, delta, A, B, C, D, z, delta_bias, saved_a, saved_b, delta_softplus, reverse,
        block_l, algo
    )
    return (
        du, ddelta, dA, dB, dC,
        dD if D is not None else None,
        dz if z is not None else None,
        dbias if delta_bias is not None else None,
        None, None, None, None,
    )


_scan_fwd_op.register_autograd(_backward, setup_context=_setup_context)


def planned_block_l(channels: int, length: int) -> int:
    """The forward kernel's chunk length for this problem (the backward must use the same)."""
    return fwd_config(channels, length)[1]


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
    block_l = planned_block_l(u.shape[1], u.shape[2])
    y, last, _, _ = _scan_fwd_op(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus),
                                 bool(reverse), block_l, scan_algo())
    return (y, last) if return_last_state else y
