"""Both depthwise convolutions of a bidirectional Mamba block, with their SiLU, in one Triton pass.

For ``x`` ``(B, D, L)`` and per-channel taps ``w_f``, ``w_b`` ``(D, K)``:

* forward branch, causal: ``x_f[t] = silu(b_f + sum_k w_f[k] * x[t - (K-1) + k])``;
* backward branch, anti-causal: ``x_b[t] = silu(b_b + sum_k w_b[k] * x[t + (K-1) - k])``, which
  is ``flip(silu(causal_conv(flip(x), w_b) + b_b))`` without the flips.

Missing neighbours outside ``0 .. L-1`` are zeros. The forward kernel reads each ``x`` tile
(through its strides: the mixer's ``x`` is a transposed view of ``in_proj``'s output) and writes
both outputs once, accumulating in float32. The backward kernel recomputes the pre-activations
instead of saving them: ``dx`` at ``t`` needs the SiLU gradients at ``t .. t+K-1`` (causal taps)
and ``t-K+1 .. t`` (anti-causal ones), so each program re-evaluates the K shifted tiles of both
branches from ``x`` (the shifted loads hit cache). Weight and bias gradients are summed over the
program's tiles in float32 registers, then added atomically into float32 buffers. That backward
is correct but was measured 3x slower than the grouped conv's on an H200 (docs/kernels.md, "Whole
model"), so the mixer uses this kernel only for inference for now.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

# imported for its side effect: under TRITON_INTERPRET=1 it installs the interpreter shims
from videomamba.ops.selective_scan.triton_fwd import interpreting  # noqa: F401

MAX_WIDTH = 4
_FWD_BLOCK_D, _FWD_BLOCK_L, _FWD_WARPS = 64, 64, 4
_BWD_BLOCK_D, _BWD_BLOCK_L, _BWD_WARPS = 32, 64, 4
_BWD_TILES_PER_PROGRAM = 8


@triton.jit
def _preactivation(x_base, sx_d, sx_l, offs_d, mask_d, t, length, w_ptr, sw_d, sw_k, b_ptr,
                   K: tl.constexpr, ANTI: tl.constexpr, HAS_BIAS: tl.constexpr,
                   BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    """float32 ``(BLOCK_D, BLOCK_L)`` conv + bias at positions ``t`` ``(BLOCK_L,)`` (any ints)."""
    acc = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)
    for k in tl.static_range(K):
        if ANTI:
            src = t + (K - 1 - k)
        else:
            src = t - (K - 1) + k
        mask = mask_d[:, None] & ((src >= 0) & (src < length))[None, :]
        xv = tl.load(x_base + offs_d[:, None] * sx_d + src[None, :] * sx_l, mask=mask, other=0.0)
        wk = tl.load(w_ptr + offs_d * sw_d + k * sw_k, mask=mask_d, other=0.0).to(tl.float32)
        acc += wk[:, None] * xv.to(tl.float32)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    return acc


@triton.jit
def _bi_conv_silu_fwd_kernel(
    x_ptr, wf_ptr, bf_ptr, wb_ptr, bb_ptr, yf_ptr, yb_ptr,
    channels, length, sx_b, sx_d, sx_l, swf_d, swf_k, swb_d, swb_k,
    K: tl.constexpr, HAS_BF: tl.constexpr, HAS_BB: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
):
    pid_l, pid_d, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_t = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    mask_d = offs_d < channels
    x_base = x_ptr + pid_b.to(tl.int64) * sx_b
    pre_f = _preactivation(x_base, sx_d, sx_l, offs_d, mask_d, offs_t, length, wf_ptr, swf_d,
                           swf_k, bf_ptr, K, False, HAS_BF, BLOCK_D, BLOCK_L)
    pre_b = _preactivation(x_base, sx_d, sx_l, offs_d, mask_d, offs_t, length, wb_ptr, swb_d,
                           swb_k, bb_ptr, K, True, HAS_BB, BLOCK_D, BLOCK_L)
    out = pid_b.to(tl.int64) * channels * length + offs_d[:, None] * length + offs_t[None, :]
    mask = mask_d[:, None] & (offs_t < length)[None, :]
    tl.store(yf_ptr + out, (pre_f * tl.sigmoid(pre_f)).to(yf_ptr.dtype.element_ty), mask=mask)
    tl.store(yb_ptr + out, (pre_b * tl.sigmoid(pre_b)).to(yb_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _silu_grad(x_base, sx_d, sx_l, dy_base, sdy_d, sdy_l, offs_d, mask_d, t, length,
               w_ptr, sw_d, sw_k, b_ptr,
               K: tl.constexpr, ANTI: tl.constexpr, HAS_BIAS: tl.constexpr,
               BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    """``dy * silu'(pre)`` at positions ``t``, float32, zero outside ``0 .. L-1``."""
    pre = _preactivation(x_base, sx_d, sx_l, offs_d, mask_d, t, length, w_ptr, sw_d, sw_k, b_ptr,
                         K, ANTI, HAS_BIAS, BLOCK_D, BLOCK_L)
    mask = mask_d[:, None] & ((t >= 0) & (t < length))[None, :]
    dy = tl.load(dy_base + offs_d[:, None] * sdy_d + t[None, :] * sdy_l, mask=mask, other=0.0)
    sig = tl.sigmoid(pre)
    return dy.to(tl.float32) * sig * (1.0 + pre * (1.0 - sig))


@triton.jit
def _bi_conv_silu_bwd_kernel(
    x_ptr, wf_ptr, bf_ptr, wb_ptr, bb_ptr, dyf_ptr, dyb_ptr, dx_ptr, dwf_ptr, dwb_ptr, dbf_ptr,
    dbb_ptr,
    channels, length, n_tiles, sx_b, sx_d, sx_l, swf_d, swf_k, swb_d, swb_k,
    sdyf_b, sdyf_d, sdyf_l, sdyb_b, sdyb_d, sdyb_l,
    K: tl.constexpr, K_POW2: tl.constexpr, HAS_BF: tl.constexpr, HAS_BB: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """The float32 ``(D, K)`` weight and ``(D,)`` bias gradient buffers get atomic adds; dx
    ``(B, D, L)`` contiguous is written."""
    pid_g, pid_d, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n_groups = tl.num_programs(0)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_k = tl.arange(0, K_POW2)
    mask_d = offs_d < channels
    batch = pid_b.to(tl.int64)
    x_base = x_ptr + batch * sx_b
    dyf_base = dyf_ptr + batch * sdyf_b
    dyb_base = dyb_ptr + batch * sdyb_b
    dw_f = tl.zeros((BLOCK_D, K_POW2), dtype=tl.float32)
    dw_b = tl.zeros((BLOCK_D, K_POW2), dtype=tl.float32)
    db_f = tl.zeros((BLOCK_D,), dtype=tl.float32)
    db_b = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for tile in range(pid_g, n_tiles, n_groups):
        offs_t = tile * BLOCK_L + tl.arange(0, BLOCK_L)
        dx = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)
        for m in tl.static_range(K):
            # causal: dx[t] += w_f[K-1-m] g_f[t+m]; anti-causal: dx[t] += w_b[K-1-m] g_b[t-m]
            g_f = _silu_grad(x_base, sx_d, sx_l, dyf_base, sdyf_d, sdyf_l, offs_d, mask_d,
                             offs_t + m, length, wf_ptr, swf_d, swf_k, bf_ptr, K, False, HAS_BF,
                             BLOCK_D, BLOCK_L)
            g_b = _silu_grad(x_base, sx_d, sx_l, dyb_base, sdyb_d, sdyb_l, offs_d, mask_d,
                             offs_t - m, length, wb_ptr, swb_d, swb_k, bb_ptr, K, True, HAS_BB,
                             BLOCK_D, BLOCK_L)
            wf = tl.load(wf_ptr + offs_d * swf_d + (K - 1 - m) * swf_k, mask=mask_d, other=0.0)
            wb = tl.load(wb_ptr + offs_d * swb_d + (K - 1 - m) * swb_k, mask=mask_d, other=0.0)
            dx += wf.to(tl.float32)[:, None] * g_f + wb.to(tl.float32)[:, None] * g_b
            if m == 0:
                db_f += tl.sum(g_f, axis=1)
                db_b += tl.sum(g_b, axis=1)
                for k in tl.static_range(K):
                    src_f = offs_t - (K - 1) + k
                    src_b = offs_t + (K - 1 - k)
                    mask_f = mask_d[:, None] & ((src_f >= 0) & (src_f < length))[None, :]
                    mask_b = mask_d[:, None] & ((src_b >= 0) & (src_b < length))[None, :]
                    xf = tl.load(x_base + offs_d[:, None] * sx_d + src_f[None, :] * sx_l,
                                 mask=mask_f, other=0.0).to(tl.float32)
                    xb = tl.load(x_base + offs_d[:, None] * sx_d + src_b[None, :] * sx_l,
                                 mask=mask_b, other=0.0).to(tl.float32)
                    column = (offs_k == k)[None, :]
                    dw_f += tl.where(column, tl.sum(g_f * xf, axis=1)[:, None], 0.0)
                    dw_b += tl.where(column, tl.sum(g_b * xb, axis=1)[:, None], 0.0)
        out = batch * channels * length + offs_d[:, None] * length + offs_t[None, :]
        mask = mask_d[:, None] & (offs_t < length)[None, :]
        tl.store(dx_ptr + out, dx.to(dx_ptr.dtype.element_ty), mask=mask)
    mask_dk = mask_d[:, None] & (offs_k < K)[None, :]
    dw_offs = offs_d[:, None] * K + offs_k[None, :]
    tl.atomic_add(dwf_ptr + dw_offs, dw_f, mask=mask_dk)
    tl.atomic_add(dwb_ptr + dw_offs, dw_b, mask=mask_dk)
    tl.atomic_add(dbf_ptr + offs_d, db_f, mask=mask_d)
    tl.atomic_add(dbb_ptr + offs_d, db_b, mask=mask_d)


def _taps(w: Tensor, channels: int) -> Tensor:
    """A ``(D, K)`` view of a ``(D, K)`` or ``(D, 1, K)`` weight (no copy when it is dense)."""
    return w.reshape(channels, -1)


def _dummy(t: Tensor | None, like: Tensor) -> Tensor:
    return t if t is not None else like


def _check(x: Tensor, w_f: Tensor, w_b: Tensor) -> int:
    channels = x.shape[1]
    width = w_f.numel() // max(channels, 1)
    if x.dim() != 3 or w_f.numel() != channels * width or w_b.numel() != channels * width:
        raise ValueError(f"x (B, D, L) and weights (D, K) or (D, 1, K) expected, got x "
                         f"{tuple(x.shape)}, w_f {tuple(w_f.shape)}, w_b {tuple(w_b.shape)}")
    if not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"kernel width must be 1..{MAX_WIDTH}, got {width}")
    return width


@torch.library.custom_op("videomamba::bi_conv_silu_fwd", mutates_args=())
def _bi_conv_silu_fwd(x: Tensor, w_f: Tensor, b_f: Tensor | None, w_b: Tensor,
                      b_b: Tensor | None) -> tuple[Tensor, Tensor]:
    batch, channels, length = x.shape
    width = _check(x, w_f, w_b)
    y_f = torch.empty((batch, channels, length), dtype=x.dtype, device=x.device)
    y_b = torch.empty_like(y_f)
    if y_f.numel() == 0:
        return y_f, y_b
    wf, wb = _taps(w_f, channels), _taps(w_b, channels)
    grid = (triton.cdiv(length, _FWD_BLOCK_L), triton.cdiv(channels, _FWD_BLOCK_D), batch)
    _bi_conv_silu_fwd_kernel[grid](
        x, wf, _dummy(b_f, wf), wb, _dummy(b_b, wb), y_f, y_b,
        channels, length, *x.stride(), *wf.stride(), *wb.stride(),
        K=width, HAS_BF=b_f is not None, HAS_BB=b_b is not None,
        BLOCK_D=_FWD_BLOCK_D, BLOCK_L=_FWD_BLOCK_L, num_warps=_FWD_WARPS,
    )
    return y_f, y_b


@_bi_conv_silu_fwd.register_fake
def _(x, w_f, b_f, w_b, b_b):
    out = lambda: torch.empty(x.shape, dtype=x.dtype, device=x.device)  # noqa: E731
    return out(), out()


def _bias_dtype(b: Tensor | None, w: Tensor) -> torch.dtype:
    """A missing bias still gets a (discarded) gradient, in the weight's dtype."""
    return (b if b is not None else w).dtype


def _bias_grad_like(b: Tensor | None, w: Tensor, channels: int) -> Tensor:
    return torch.empty((channels,), dtype=_bias_dtype(b, w), device=w.device)


@torch.library.custom_op("videomamba::bi_conv_silu_bwd", mutates_args=())
def _bi_conv_silu_bwd(dy_f: Tensor, dy_b: Tensor, x: Tensor, w_f: Tensor, b_f: Tensor | None,
                      w_b: Tensor, b_b: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor,
                                                                Tensor]:
    batch, channels, length = x.shape
    width = _check(x, w_f, w_b)
    dx = torch.empty((batch, channels, length), dtype=x.dtype, device=x.device)
    # separate buffers: outputs of a custom op may not alias each other
    dw_f, dw_b = (torch.zeros((channels, width), dtype=torch.float32, device=x.device)
                  for _ in range(2))
    db_f, db_b = (torch.zeros((channels,), dtype=torch.float32, device=x.device)
                  for _ in range(2))
    if dx.numel() > 0:
        wf, wb = _taps(w_f, channels), _taps(w_b, channels)
        n_tiles = triton.cdiv(length, _BWD_BLOCK_L)
        grid = (triton.cdiv(n_tiles, _BWD_TILES_PER_PROGRAM), triton.cdiv(channels, _BWD_BLOCK_D),
                batch)
        _bi_conv_silu_bwd_kernel[grid](
            x, wf, _dummy(b_f, wf), wb, _dummy(b_b, wb), dy_f, dy_b, dx, dw_f, dw_b, db_f, db_b,
            channels, length, n_tiles, *x.stride(), *wf.stride(), *wb.stride(),
            *dy_f.stride(), *dy_b.stride(),
            K=width, K_POW2=triton.next_power_of_2(width), HAS_BF=b_f is not None,
            HAS_BB=b_b is not None, BLOCK_D=_BWD_BLOCK_D, BLOCK_L=_BWD_BLOCK_L,
            num_warps=_BWD_WARPS,
        )
    return (dx, dw_f.to(w_f.dtype).reshape(w_f.shape), db_f.to(_bias_dtype(b_f, w_f)),
            dw_b.to(w_b.dtype).reshape(w_b.shape), db_b.to(_bias_dtype(b_b, w_b)))


@_bi_conv_silu_bwd.register_fake
def _(dy_f, dy_b, x, w_f, b_f, w_b, b_b):
    channels = x.shape[1]
    dense = lambda t: torch.empty(t.shape, dtype=t.dtype, device=t.device)  # noqa: E731
    return (dense(x), dense(w_f), _bias_grad_like(b_f, w_f, channels), dense(w_b),
            _bias_grad_like(b_b, w_b, channels))


def _setup_context(ctx, inputs, output):
    x, w_f, b_f, w_b, b_b = inputs
    ctx.save_for_backward(x, w_f, b_f, w_b, b_b)


def _backward(ctx, dy_f, dy_b):
    x, w_f, b_f, w_b, b_b = ctx.saved_tensors
    dx, dw_f, db_f, dw_b, db_b = _bi_conv_silu_bwd(dy_f, dy_b, x, w_f, b_f, w_b, b_b)
    return dx, dw_f, db_f if b_f is not None else None, dw_b, db_b if b_b is not None else None


_bi_conv_silu_fwd.register_autograd(_backward, setup_context=_setup_context)


def bidirectional_conv_silu_triton(x: Tensor, w_f: Tensor, b_f: Tensor | None, w_b: Tensor,
                                   b_b: Tensor | None) -> tuple[Tensor, Tensor]:
    """``silu(causal_conv(x, w_f) + b_f)`` and ``silu(anticausal_conv(x, w_b) + b_b)`` (the
    backward branch's conv in the original order), ``x`` ``(B, D, L)`` with any strides, weights
    ``(D, K)`` or ``(D, 1, K)`` with ``K <= 4``, biases ``(D,)`` or ``None``. Returns two contiguous
    ``(B, D, L)`` in ``x``'s dtype; differentiable in every tensor. CUDA or the Triton
    interpreter."""
    return _bi_conv_silu_fwd(x, w_f, b_f, w_b, b_b)
