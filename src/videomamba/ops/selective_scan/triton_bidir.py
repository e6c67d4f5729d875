"""Both directions of a bidirectional Mamba block on the Triton kernels, without flipped copies.

The backward branch of the official "v2" mixer runs on the reversed sequence and its output is
reversed back. Every step but the scan is per position, so the branch equals, in the original
order: an anti-causal depthwise conv (the causal one with its taps reversed), the same
projections, and a scan from t = L-1 down to 0. So nothing is flipped: one fused Triton kernel
(``ops/triton_conv.py``) reads x once for both branches' convs and SiLUs, and the two scans are a
launch pair whose second adds the first's output and applies the shared gate ``silu(z)`` (the
official backward branch gates with ``flip(z)`` on the flipped sequence, which is ``z`` in
place).

The whole mixer between ``in_proj`` and ``out_proj`` is one custom-op pair
(``videomamba::bimamba_inner_fwd/bwd``) that saves only ``xz``, the weights and the scans'
segment states, and recomputes the convs and projections in the backward. The model calls
``videomamba::bimamba_mixer_fwd/bwd``, the same with ``in_proj`` inside, which keeps the block's
hidden states instead of ``xz`` (:func:`bimamba_mixer_triton`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from videomamba.ops.eager import AutogradRoute
from videomamba.ops.grad_buffers import bias_grad_like, dense_like
from videomamba.ops.selective_scan.triton_common import segment_length
from videomamba.ops.selective_scan.triton_op import run_bwd, run_fwd, saved_shape
from videomamba.ops.selective_scan.triton_tile import pair_forward_fits, tile_fwd_pair
from videomamba.ops.selective_scan.triton_tile_bwd import lean_bwd_pair, pair_programs_fill_gpu
from videomamba.ops.triton_conv import conv_silu_backward, conv_silu_forward
from videomamba.ops.triton_proj import branch_projections, fused_projections


class BranchWeights(NamedTuple):
    """One direction's parameters, as the mixer holds them."""

    conv_weight: Tensor  # (D, 1, K) or (D, K)
    conv_bias: Tensor | None  # (D,)
    x_proj_weight: Tensor  # (dt_rank + 2N, D)
    dt_proj_weight: Tensor  # (D, dt_rank)
    dt_proj_bias: Tensor  # (D,)
    A_log: Tensor  # (D, N)
    D: Tensor  # (D,)


def _scan_pair_forward(f: tuple, b: tuple, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Both scans: ``y = silu(z) * (scan_f(...) + reverse_scan_b(...))`` ``(B, D, L)``, written
    into ``(B, L, D)`` memory (what ``out_proj`` reads, so no transposed copy), and each
    direction's segment states ``ck`` for the backward. ``f``/``b``: (u, delta, A, B, C, D,
    delta_bias) of each branch. Both directions in one launch (``tile_fwd_pair``), or with
    ``VIDEOMAMBA_FWD_PAIR=0`` one after the other, the second adding to the first's output and
    gating."""
    batch, channels, length = z.shape
    y = torch.empty((batch, length, channels), dtype=z.dtype, device=z.device).transpose(1, 2)
    if pair_forward_fits():
        ck_f, ck_b = tile_fwd_pair(f, b, z, True, y,
                                   ck_steps=segment_length(batch, channels, length))
        return y, ck_f, ck_b
    _, _, ck_f = run_fwd(*f[:6], None, f[6], True, False, out=y, accumulate=False, a_is_log=True)
    _, _, ck_b = run_fwd(*b[:6], z, b[6], True, True, out=y, accumulate=True, a_is_log=True)
    return y, ck_f, ck_b


def _scan_pair_backward(dy: Tensor, f: tuple, b: tuple, z: Tensor, ck_f: Tensor,
                        ck_b: Tensor, dz_out: Tensor) -> list[Tensor]:
    """Gradients of :func:`_scan_pair_forward`: per branch (du, ddelta, dA, dB, dC, dD,
    ddelta_bias); dz goes into ``dz_out``. With enough programs for the GPU, one launch for both
    directions without the SUMMARY pass (``lean_bwd_pair``); otherwise one direction after the
    other: the first launch writes its ungated output to a float32 buffer so that the second,
    which owns the gate, can form dz."""
    batch, channels, length = z.shape
    if pair_programs_fill_gpu(batch, channels, f[2].shape[1]):
        seg_len = segment_length(batch, channels, length)
        g_f, g_b, _ = lean_bwd_pair(dy, f, b, z, True, ck_f, ck_b, seg_len, a_is_log=True,
                                    dz_out=dz_out)
        return [g[k] for g in (g_f, g_b) for k in _GRAD_KEYS]
    partner = torch.empty_like(dy, dtype=torch.float32)
    g_f = run_bwd(dy, *f[:6], z, f[6], True, ck_f, z_mode=1, partner=partner, a_is_log=True)
    g_b = run_bwd(dy, *b[:6], z, b[6], True, ck_b, reverse=True, z_mode=2, partner=partner,
                  a_is_log=True)
    dz_out.copy_(g_b["dz"])
    return [g[k] for g in (g_f, g_b) for k in _GRAD_KEYS]


_GRAD_KEYS = ("du", "ddelta", "dA", "dB", "dC", "dD", "ddelta_bias")


def bidirectional_conv_silu_grouped(x: Tensor, w_f: Tensor, b_f: Tensor | None, w_b: Tensor,
                                    b_b: Tensor | None) -> tuple[Tensor, Tensor]:
    """``silu(causal_conv(x, w_f) + b_f)`` and ``silu(anticausal_conv(x, w_b) + b_b)`` (the
    backward branch's conv in the original order) from one grouped ``F.conv1d`` that reads ``x``
    ``(B, D, L)`` once: any device, any width. The reference of the fused Triton kernel."""
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


def bimamba_inner_triton(
    xz: Tensor, forward: BranchWeights, backward: BranchWeights, d_state: int, dt_rank: int
) -> Tensor:
    """The mixer between ``in_proj`` and ``out_proj``: ``xz`` ``(B, 2*D, L)`` (x then z) ->
    ``silu(z) * (branch_f(x) + flip(branch_b(flip(x))))`` ``(B, D, L)``, on CUDA (or the Triton
    interpreter). Differentiable in ``xz`` and every weight."""
    if not _needs_grad(xz, *forward, *backward):
        forward, backward = _matmul_weights_in(forward, xz.dtype), _matmul_weights_in(backward,
                                                                                      xz.dtype)
    y, *_ = _INNER(xz, *forward, *backward, d_state, dt_rank)
    return y


def _needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _matmul_weights_in(w: BranchWeights, dtype: torch.dtype) -> BranchWeights:
    """Without autograd, the x_proj/dt_proj weights already in the compute dtype, cast once per
    weight version instead of on every call (two launches per branch and block that a CPU-bound
    inference step would otherwise pay)."""
    return w._replace(x_proj_weight=_cast_once(w.x_proj_weight, dtype),
                      dt_proj_weight=_cast_once(w.dt_proj_weight, dtype))


def _cast_once(weight: Tensor, dtype: torch.dtype) -> Tensor:
    """``weight.to(dtype)``, kept on the weight itself and redone when the weight changes in place
    (its version counter moves: an optimizer step, ``load_state_dict``). For calls without
    autograd only (inference: CUDA-graph replays assume frozen weights, ``utils.cuda_graph``)."""
    if weight.dtype == dtype or torch.compiler.is_compiling():
        return weight.to(dtype)
    cached = getattr(weight, "_videomamba_cast", None)
    if cached is None or cached[0] != weight._version or cached[1] != dtype:
        cached = (weight._version, dtype, weight.detach().to(dtype))
        weight._videomamba_cast = cached  # type: ignore[attr-defined]
    return cached[2]


# --- the whole mixer inner as one op pair, recomputing instead of saving ----------------------
#
# Autograd over the conv, the projections and the scans would keep, per block, both branches'
# conv outputs, their deltas, the pre-SiLU conv outputs and the scan inputs: about nine
# (B, D, L) tensors. Like the official ``mamba_inner_fn``, this pair saves only ``xz``, the
# weights and the scans' small segment states, and recomputes the convs and projections (cheap
# next to the scans) in the backward, where every gradient is written out explicitly so that the
# op stays opaque to ``torch.compile``.

def _branch_weights(*tensors: Tensor | None) -> BranchWeights:
    return BranchWeights(*tensors)  # type: ignore[arg-type]


class _Branch(NamedTuple):
    """One branch's forward values that its backward needs again."""

    u: Tensor  # conv output (B, D, L)
    x_dbl: Tensor  # x_proj output (B, L, dt_rank + 2N)
    scan_in: tuple  # (u, delta, A_log, B, C, D, delta_bias) for the scan kernels
    x_proj_weight: Tensor  # in u's dtype
    dt_proj_weight: Tensor  # in u's dtype


def _projection_weights(w: BranchWeights, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """x_proj and dt_proj weights cast to the compute dtype (what autocast does to the
    linears)."""
    # cast per call: kept on the weight, a cast made inside a compiled step's CUDA-graph pool
    # would outlive the step (cudagraph trees refuse it)
    return w.x_proj_weight.to(dtype), w.dt_proj_weight.to(dtype)


def _branch(u: Tensor, w: BranchWeights, d_state: int, dt_rank: int) -> _Branch:
    """The projections of one branch from its conv output ``u`` ``(B, D, L)``."""
    x_proj_weight, dt_proj_weight = _projection_weights(w, u.dtype)
    x_dbl = F.linear(u.transpose(1, 2), x_proj_weight)
    delta = F.linear(x_dbl[..., :dt_rank], dt_proj_weight).transpose(1, 2)
    return _branch_from(u, x_dbl, delta, w, x_proj_weight, dt_proj_weight, d_state, dt_rank)


def _branch_from(u: Tensor, x_dbl: Tensor, delta: Tensor, w: BranchWeights, x_proj_weight: Tensor,
                 dt_proj_weight: Tensor, d_state: int, dt_rank: int) -> _Branch:
    """A branch's saved values and scan inputs from its conv output ``u`` and ``delta``
    ``(B, D, L)`` and its x_proj output ``x_dbl`` ``(B, L, dt_rank + 2N)``."""
    _, B, C = x_dbl.split([dt_rank, d_state, d_state], dim=-1)
    # A_log goes to the kernels as it is: they use A = -exp(A_log) and return d/dA_log
    scan_in = (u, delta, w.A_log, B.transpose(1, 2), C.transpose(1, 2), w.D.float(),
               w.dt_proj_bias.float())
    return _Branch(u, x_dbl, scan_in, x_proj_weight, dt_proj_weight)


def _branches(xz: Tensor, fw: BranchWeights, bw: BranchWeights, d_state: int,
              dt_rank: int) -> tuple[Tensor, Tensor, _Branch, _Branch]:
    """``x``, ``z`` and both branches up to the scans: what the forward computes and the
    backward recomputes. Both branches' projections in one launch where the conv outputs allow
    it (``ops/triton_proj.py``)."""
    x, z = xz.chunk(2, dim=1)
    x_f, x_b = conv_silu_forward(x, fw.conv_weight, fw.conv_bias, bw.conv_weight, bw.conv_bias)
    if fused_projections(x_f) and fused_projections(x_b):
        pw_f, pw_b = _projection_weights(fw, x_f.dtype), _projection_weights(bw, x_b.dtype)
        (dbl_f, delta_f), (dbl_b, delta_b) = branch_projections(
            x_f, x_b, (pw_f[0], pw_b[0]), (pw_f[1], pw_b[1]), dt_rank)
        return (x, z, _branch_from(x_f, dbl_f, delta_f, fw, *pw_f, d_state, dt_rank),
                _branch_from(x_b, dbl_b, delta_b, bw, *pw_b, d_state, dt_rank))
    return x, z, _branch(x_f, fw, d_state, dt_rank), _branch(x_b, bw, d_state, dt_rank)


def _inner_forward(xz: Tensor, fw: BranchWeights, bw: BranchWeights, d_state: int,
                   dt_rank: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(y, ck_f, ck_b)`` of the mixer inner from ``xz`` ``(B, 2*D, L)``."""
    _, z, f, b = _branches(xz, fw, bw, d_state, dt_rank)
    return _scan_pair_forward(f.scan_in, b.scan_in, z)


def _inner_grads(dy: Tensor, xz: Tensor, fw: BranchWeights, bw: BranchWeights, ck_f: Tensor,
                 ck_b: Tensor, d_state: int, dt_rank: int) -> list[Tensor]:
    """Recompute the branches from ``xz`` and return ``[dxz, conv weight, conv bias, x_proj,
    dt_proj weight, dt_proj bias, A_log, D]`` (forward branch, then backward branch); ``dxz``
    has ``xz``'s strides."""
    x, z, f, b = _branches(xz, fw, bw, d_state, dt_rank)
    dxz = torch.empty_like(xz)  # the kernels write dx and dz into its halves
    channels = x.shape[1]
    scan_grads = _scan_pair_backward(dy, f.scan_in, b.scan_in, z, ck_f, ck_b,
                                     dz_out=dxz[:, channels:])
    du_f, grads_f = _projection_grads(scan_grads[:7], f, fw, dt_rank)
    del f
    du_b, grads_b = _projection_grads(scan_grads[7:14], b, bw, dt_rank)
    del b
    _, dw_f, db_f, dw_b, db_b = conv_silu_backward(du_f, du_b, x, fw.conv_weight, fw.conv_bias,
                                                   bw.conv_weight, bw.conv_bias,
                                                   dx_out=dxz[:, :channels])
    return [dxz, dw_f, db_f, *grads_f, dw_b, db_b, *grads_b]


def _inner_fwd_impl(
    xz: Tensor,
    conv_w_f: Tensor, conv_b_f: Tensor | None, x_proj_f: Tensor, dt_w_f: Tensor, dt_b_f: Tensor,
    A_log_f: Tensor, D_f: Tensor,
    conv_w_b: Tensor, conv_b_b: Tensor | None, x_proj_b: Tensor, dt_w_b: Tensor, dt_b_b: Tensor,
    A_log_b: Tensor, D_b: Tensor,
    d_state: int, dt_rank: int,
) -> tuple[Tensor, Tensor, Tensor]:
    fw = _branch_weights(conv_w_f, conv_b_f, x_proj_f, dt_w_f, dt_b_f, A_log_f, D_f)
    bw = _branch_weights(conv_w_b, conv_b_b, x_proj_b, dt_w_b, dt_b_b, A_log_b, D_b)
    return _inner_forward(xz, fw, bw, d_state, dt_rank)


_bimamba_inner_fwd = torch.library.custom_op("videomamba::bimamba_inner_fwd", _inner_fwd_impl,
                                             mutates_args=())


@_bimamba_inner_fwd.register_fake
def _(xz, conv_w_f, conv_b_f, x_proj_f, dt_w_f, dt_b_f, A_log_f, D_f, conv_w_b, conv_b_b,
      x_proj_b, dt_w_b, dt_b_b, A_log_b, D_b, d_state, dt_rank):
    batch, channels, length = xz.shape[0], xz.shape[1] // 2, xz.shape[2]
    ck_shape = saved_shape(batch, channels, length, A_log_f.shape[1])
    y = torch.empty((batch, length, channels), dtype=xz.dtype, device=xz.device).transpose(1, 2)
    return (y, xz.new_empty(ck_shape, dtype=torch.float32),
            xz.new_empty(ck_shape, dtype=torch.float32))


def _projection_grads(grads: list[Tensor], branch: _Branch, w: BranchWeights, dt_rank: int):
    """One branch: the scan's (du, ddelta, dA, dB, dC, dD, ddelta_bias) -> the gradient of the
    conv output ``u`` ``(B, D, L)`` and of x_proj, dt_proj (weight, bias), A_log and D."""
    du, ddelta, dA, dB, dC, dD, dbias = grads
    u = branch.u
    channels = u.shape[1]
    ddelta_t = ddelta.transpose(1, 2)  # (B, L, D)
    ddt = ddelta_t @ branch.dt_proj_weight.to(ddelta.dtype)  # (B, L, dt_rank)
    dx_dbl = torch.cat([ddt.to(u.dtype), dB.transpose(1, 2).to(u.dtype),
                        dC.transpose(1, 2).to(u.dtype)], dim=-1)  # (B, L, dt_rank + 2N)
    width = dx_dbl.shape[-1]
    dt = branch.x_dbl[..., :dt_rank].reshape(-1, dt_rank)
    d_dt_w = ddelta_t.reshape(-1, channels).t().to(u.dtype) @ dt
    d_x_proj = dx_dbl.reshape(-1, width).t() @ u.transpose(1, 2).reshape(-1, channels)
    du = du + (dx_dbl @ branch.x_proj_weight).transpose(1, 2)
    return du, [d_x_proj.to(w.x_proj_weight.dtype), d_dt_w.to(w.dt_proj_weight.dtype),
                dbias.to(w.dt_proj_bias.dtype), dA.to(w.A_log.dtype), dD.to(w.D.dtype)]


def _inner_bwd_impl(
    dy: Tensor, xz: Tensor,
    conv_w_f: Tensor, conv_b_f: Tensor | None, x_proj_f: Tensor, dt_w_f: Tensor, dt_b_f: Tensor,
    A_log_f: Tensor, D_f: Tensor,
    conv_w_b: Tensor, conv_b_b: Tensor | None, x_proj_b: Tensor, dt_w_b: Tensor, dt_b_b: Tensor,
    A_log_b: Tensor, D_b: Tensor,
    ck_f: Tensor, ck_b: Tensor, d_state: int, dt_rank: int,
) -> list[Tensor]:
    fw = _branch_weights(conv_w_f, conv_b_f, x_proj_f, dt_w_f, dt_b_f, A_log_f, D_f)
    bw = _branch_weights(conv_w_b, conv_b_b, x_proj_b, dt_w_b, dt_b_b, A_log_b, D_b)
    return _inner_grads(dy, xz, fw, bw, ck_f, ck_b, d_state, dt_rank)


_bimamba_inner_bwd = torch.library.custom_op("videomamba::bimamba_inner_bwd", _inner_bwd_impl,
                                             mutates_args=())


@_bimamba_inner_bwd.register_fake
def _(dy, xz, conv_w_f, conv_b_f, x_proj_f, dt_w_f, dt_b_f, A_log_f, D_f, conv_w_b, conv_b_b,
      x_proj_b, dt_w_b, dt_b_b, A_log_b, D_b, ck_f, ck_b, d_state, dt_rank):
    return [torch.empty_like(xz), *_weight_grads_like(
        xz.shape[1] // 2, conv_w_f, conv_b_f, x_proj_f, dt_w_f, dt_b_f, A_log_f, D_f,
        conv_w_b, conv_b_b, x_proj_b, dt_w_b, dt_b_b, A_log_b, D_b)]


def _weight_grads_like(channels: int, *weights: Tensor | None) -> list[Tensor | None]:
    """Fake gradients of both branches' seven weights (conv weight, conv bias, x_proj, dt_proj
    weight and bias, A_log, D; forward branch first)."""
    grads: list[Tensor | None] = []
    for conv_w, conv_b, *rest in (weights[:7], weights[7:]):
        grads += [dense_like(conv_w), bias_grad_like(conv_b, conv_w, channels),
                  *[dense_like(t) for t in rest]]
    return grads


def _recompute_autograd(fwd_op, fwd_impl, bwd_op, bwd_impl, n_lead: int) -> AutogradRoute:
    """Autograd of an op pair whose forward takes ``n_lead`` leading tensors, both branches'
    seven weights, then ``d_state, dt_rank``, and returns ``(y, ck_f, ck_b)``: the inputs and
    the segment states are saved, the backward gives every gradient (None for absent conv
    biases). Registered on the custom op (for ``torch.compile``); returns the eager route."""
    bias_f, bias_b = n_lead + 1, n_lead + 8  # the conv biases' positions among the inputs

    def setup(ctx, inputs, output):
        *tensors, d_state, dt_rank = inputs
        _, *saved = output
        ctx.has_conv_bias = (tensors[bias_f] is not None, tensors[bias_b] is not None)
        ctx.save_for_backward(*tensors, *saved)
        ctx.flags = (d_state, dt_rank)

    def backward_with(bwd):
        def backward(ctx, dy, *_dsaved):
            grads = bwd(dy, *ctx.saved_tensors, *ctx.flags)
            has_bf, has_bb = ctx.has_conv_bias
            grads[bias_f] = grads[bias_f] if has_bf else None
            grads[bias_b] = grads[bias_b] if has_bb else None
            return (*grads, None, None)
        return backward

    return AutogradRoute.register(fwd_op, fwd_impl, bwd_op, bwd_impl, setup, backward_with)


_INNER = _recompute_autograd(_bimamba_inner_fwd, _inner_fwd_impl, _bimamba_inner_bwd,
                             _inner_bwd_impl, n_lead=1)


# --- the same with in_proj inside: xz is recomputed in the backward instead of saved ---------
#
# ``xz`` (B, L, 2*D) is the largest activation a block keeps for the backward (38.5 MB per
# block of VideoMamba-S at batch 8, 8 frames: 0.9 GB of its 24 blocks). This pair starts from
# the block's normalised hidden states (B, L, d_model), which the in_proj linear would keep
# anyway, and recomputes in_proj in the backward: one (B*L, d_model) x (d_model, 2*D) product.

def _in_proj(hidden: Tensor, in_proj_w: Tensor) -> Tensor:
    """``xz`` ``(B, 2*D, L)``, a transposed view of the ``(B, L, 2*D)`` product."""
    return F.linear(hidden, in_proj_w).transpose(1, 2)


def _mixer_fwd_impl(
    hidden: Tensor, in_proj_w: Tensor,
    conv_w_f: Tensor, conv_b_f: Tensor | None, x_proj_f: Tensor, dt_w_f: Tensor, dt_b_f: Tensor,
    A_log_f: Tensor, D_f: Tensor,
    conv_w_b: Tensor, conv_b_b: Tensor | None, x_proj_b: Tensor, dt_w_b: Tensor, dt_b_b: Tensor,
    A_log_b: Tensor, D_b: Tensor,
    d_state: int, dt_rank: int,
) -> tuple[Tensor, Tensor, Tensor]:
    fw = _branch_weights(conv_w_f, conv_b_f, x_proj_f, dt_w_f, dt_b_f, A_log_f, D_f)
    bw = _branch_weights(conv_w_b, conv_b_b, x_proj_b, dt_w_b, dt_b_b, A_log_b, D_b)
    return _inner_forward(_in_proj(hidden, in_proj_w), fw, bw, d_state, dt_rank)


_bimamba_mixer_fwd = torch.library.custom_op("videomamba::bimamba_mixer_fwd", _mixer_fwd_impl,
                                             mutates_args=())


@_bimamba_mixer_fwd.register_fake
def _(hidden, in_proj_w, conv_w_f, conv_b_f, x_proj_f, dt_w_f, dt_b_f, A_log_f, D_f, conv_w_b,
      conv_b_b, x_proj_b, dt_w_b, dt_b_b, A_log_b, D_b, d_state, dt_rank):
    batch, length, channels = hidden.shape[0], hidden.shape[1], in_proj_w.shape[0] // 2
    ck_shape = saved_shape(batch, channels, length, A_log_f.shape[1])
    dtype = torch.promote_types(hidden.dtype, in_proj_w.dtype)
    y = hidden.new_empty((batch, length, channels), dtype=dtype).transpose(1, 2)
    return (y, hidden.new_empty(ck_shape, dtype=torch.float32),
            hidden.new_empty(ck_shape, dtype=torch.float32))


def _mixer_bwd_impl(
    dy: Tensor, hidden: Tensor, in_proj_w: Tensor,
    conv_w_f: Tensor, conv_b_f: Tensor | None, x_proj_f: Tensor, dt_w_f: Tensor, dt_b_f: Tensor,
    A_log_f: Tensor, D_f: Tensor,
    conv_w_b: Tensor, conv_b_b: Tensor | None, x_proj_b: Tensor, dt_w_b: Tensor, dt_b_b: Tensor,
    A_log_b: Tensor, D_b: Tensor,
    ck_f: Tensor, ck_b: Tensor, d_state: int, dt_rank: int,
) -> list[Tensor]:
    fw = _branch_weights(conv_w_f, conv_b_f, x_proj_f, dt_w_f, dt_b_f, A_log_f, D_f)
    bw = _branch_weights(conv_w_b, conv_b_b, x_proj_b, dt_w_b, dt_b_b, A_log_b, D_b)
    dxz, *grads = _inner_grads(dy, _in_proj(hidden, in_proj_w), fw, bw, ck_f, ck_b, d_state,
                               dt_rank)
    dxz = dxz.transpose(1, 2)  # (B, L, 2*D), contiguous: empty_like kept xz's strides
    d_hidden = (dxz @ in_proj_w.to(dxz.dtype)).to(hidden.dtype)
    d_in_proj = dxz.reshape(-1, dxz.shape[-1]).t() @ hidden.reshape(-1, hidden.shape[-1]).to(
        dxz.dtype)
    return [d_hidden, d_in_proj.to(in_proj_w.dtype), *grads]


_bimamba_mixer_bwd = torch.library.custom_op("videomamba::bimamba_mixer_bwd", _mixer_bwd_impl,
                                             mutates_args=())


@_bimamba_mixer_bwd.register_fake
def _(dy, hidden, in_proj_w, conv_w_f, conv_b_f, x_proj_f, dt_w_f, dt_b_f, A_log_f, D_f,
      conv_w_b, conv_b_b, x_proj_b, dt_w_b, dt_b_b, A_log_b, D_b, ck_f, ck_b, d_state, dt_rank):
    return [torch.empty_like(hidden), dense_like(in_proj_w), *_weight_grads_like(
        in_proj_w.shape[0] // 2, conv_w_f, conv_b_f, x_proj_f, dt_w_f, dt_b_f, A_log_f, D_f,
        conv_w_b, conv_b_b, x_proj_b, dt_w_b, dt_b_b, A_log_b, D_b)]


_MIXER = _recompute_autograd(_bimamba_mixer_fwd, _mixer_fwd_impl, _bimamba_mixer_bwd,
                             _mixer_bwd_impl, n_lead=2)


def bimamba_mixer_triton(
    hidden: Tensor, in_proj_weight: Tensor, forward: BranchWeights, backward: BranchWeights,
    d_state: int, dt_rank: int
) -> Tensor:
    """:func:`bimamba_inner_triton` of ``in_proj(hidden)``: ``hidden`` ``(B, L, d_model)``,
    ``in_proj_weight`` ``(2*D, d_model)`` -> ``(B, D, L)``. ``hidden`` and ``in_proj_weight``
    are taken in the compute dtype (the caller casts them as autocast would); differentiable in
    both and in every branch weight. Keeps ``hidden`` for the backward instead of ``xz``."""
    if not _needs_grad(hidden, in_proj_weight, *forward, *backward):
        forward, backward = (_matmul_weights_in(forward, hidden.dtype),
                             _matmul_weights_in(backward, hidden.dtype))
        in_proj_weight = _cast_once(in_proj_weight, hidden.dtype)
    y, *_ = _MIXER(hidden, in_proj_weight.to(hidden.dtype), *forward, *backward, d_state,
                   dt_rank)
    return y
