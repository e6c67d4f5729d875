"""Both depthwise convolutions of a bidirectional Mamba block, with their SiLU, in Triton: the
forward in one pass, the backward in two.

For ``x`` ``(B, D, L)`` and per-channel taps ``w_f``, ``w_b`` ``(D, K)``:

* forward branch, causal: ``x_f[t] = silu(b_f + sum_k w_f[k] * x[t - (K-1) + k])``;
* backward branch, anti-causal: ``x_b[t] = silu(b_b + sum_k w_b[k] * x[t + (K-1) - k])``, which
  is ``flip(silu(causal_conv(flip(x), w_b) + b_b))`` without the flips.

Missing neighbours outside ``0 .. L-1`` are zeros. For channels-fastest ``x`` (the mixer's: a
transposed view of ``in_proj``'s output) the forward walks each program's positions with the last
K-1 inputs in registers (``_bi_conv_silu_slide_kernel``: every input read once, loads and stores
contiguous across channels); otherwise it computes tiles of K shifted ``x`` tiles per branch.
Both accumulate in float32 and write each output once.

The backward recomputes the pre-activations from ``x`` instead of saving them, in two passes:

1. ``_bi_conv_silu_grads_kernel``: each program walks ``TILES`` tiles of one branch (grid axis 0
   interleaves the two branches of a tile range, so the second reads ``x`` from L2), loads the K
   shifted ``x`` tiles its taps need once, forms ``g = dy * silu'(pre)`` and writes it (float32,
   see ``_grad_dtype``), and keeps the products ``g[t] x[src_k(t)]`` and ``g`` in K+1 float32
   register tiles that are reduced over positions once per program into a partial-sum buffer
   ``(B * n_groups, 2, K+1, D)``; ``torch.sum`` over its first axis gives ``dw`` and ``db``
   (fixed order: deterministic, no atomics).
2. ``_bi_conv_silu_dx_kernel``: ``dx[t] = sum_m w_f[K-1-m] g_f[t+m] + w_b[K-1-m] g_b[t-m]`` from
   K shifted tiles of each ``g``.

``g`` and ``dx`` are laid out like ``x`` (channels fastest for the mixer's view, else
contiguous), and the tiles put ``x``'s fast axis last (``D_MAJOR``), the axis Triton lays out
fastest, so only ``dy`` tiles may need a register-layout conversion when their memory order
differs from ``x``'s. Bytes moved per call: read ``x``, ``dy_f``, ``dy_b``, write and read two
float32 ``g``, write ``dx`` (plus the small partial sums).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

# imported for its side effect: under TRITON_INTERPRET=1 it installs the interpreter shims
from videomamba.ops.grad_buffers import bias_grad_like, dense_like
from videomamba.ops.selective_scan.triton_common import _sigmoid, cdiv, interpreting  # noqa: F401
from videomamba.ops.triton_launch import launch

MAX_WIDTH = 4
# forward (BLOCK_D, BLOCK_L, num_warps): the fastest of run 46's sweep (H200, B=8, D=768, x a
# view of (B, L, 2D), `model.py --conv-fwd-sweep`, do_bench): 0.037 / 0.124 / 0.240 ms at
# L = 1569 / 6273 / 12545 against 0.096 / 0.144 / 0.285 for the previous (64, 64, 4) (floor
# 0.019 / 0.077 / 0.154); graphed VideoMamba-S inference +0.9 % at 8 frames, +1.3 % at 64 (ABAB).
# 8 warps per 64 x 64 tile were slower (run 45). VIDEOMAMBA_CONV_FWD_CONFIG overrides it.
_FWD_CONFIG = (128, 32, 4)
# backward (BLOCK_D, BLOCK_L, num_warps, tiles per program) for channels-fastest / contiguous x.
# Channels-fastest (the mixer's): the fastest of run 48's sweep (H200, B=8, D=768, dy
# channels-fastest, `model.py --conv-bwd-sweep`, do_bench): 0.122 / 0.364 / 0.690 ms at L = 1569
# / 6273 / 12545 against 0.150 / 0.390 / 0.758 for the previous (32, 16, 4, 8); compiled
# training unchanged within noise (157.1-157.6 against 156.6-157.4 clips/s, ABAB). Contiguous:
# chosen from the sm_90 compile (ptxas: no spills), not timed.
_BWD_CONFIG_D_MAJOR = (64, 8, 4, 16)
_BWD_CONFIG_L_MAJOR = (16, 32, 4, 4)
_SUM_BLOCK_R, _SUM_BLOCK_D = 32, 64


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
    channels, length, sx_b, sx_d, sx_l, swf_d, swf_k, swb_d, swb_k, sy_b, sy_d, sy_l,
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
    out = pid_b.to(tl.int64) * sy_b + offs_d[:, None] * sy_d + offs_t[None, :] * sy_l
    mask = mask_d[:, None] & (offs_t < length)[None, :]
    tl.store(yf_ptr + out, (pre_f * _sigmoid(pre_f)).to(yf_ptr.dtype.element_ty), mask=mask)
    tl.store(yb_ptr + out, (pre_b * _sigmoid(pre_b)).to(yb_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _slide_step(xs, w_f, w_b, b_f, b_b, K: tl.constexpr):
    """Both pre-activations from the window ``xs`` = ``(x[s-3], x[s-2], x[s-1], x[s])`` (float32
    ``(BLOCK_C,)`` each, the first ``4 - K`` unused): the causal one at ``s`` and the anti-causal
    one at ``s - (K - 1)``."""
    pre_f = b_f + w_f[K - 1] * xs[3]
    pre_b = b_b + w_b[0] * xs[3]
    for k in tl.static_range(1, K):
        pre_f += w_f[K - 1 - k] * xs[3 - k]
        pre_b += w_b[k] * xs[3 - k]
    return pre_f, pre_b


@triton.jit
def _bi_conv_silu_slide_kernel(
    x_ptr, wf_ptr, bf_ptr, wb_ptr, bb_ptr, yf_ptr, yb_ptr,
    channels, length, sx_b, sx_d, sx_l, swf_d, swf_k, swb_d, swb_k, sy_b, sy_d, sy_l,
    K: tl.constexpr, HAS_BF: tl.constexpr, HAS_BB: tl.constexpr,
    BLOCK_C: tl.constexpr, CHUNK: tl.constexpr, P: tl.constexpr,
):
    """The forward for channels-fastest ``x``: one program walks ``CHUNK`` positions of
    ``BLOCK_C`` channels, ``P`` positions per iteration, keeping the last ``K - 1`` inputs in
    registers, so each input is read once (plus ``K - 1`` at the chunk's start) where a tile
    reads it ``2K`` times; each step's loads and stores are contiguous across the channels."""
    tl.static_assert(K <= 4 and P <= 8, "the window holds 4 inputs and an iteration 8 positions")
    pid_l, pid_c, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < channels
    x_row = x_ptr + pid_b.to(tl.int64) * sx_b + offs_c * sx_d
    yf_row = yf_ptr + pid_b.to(tl.int64) * sy_b + offs_c * sy_d
    yb_row = yb_ptr + pid_b.to(tl.int64) * sy_b + offs_c * sy_d
    zero = tl.zeros((BLOCK_C,), dtype=tl.float32)
    w_f = (zero, zero, zero, zero)
    w_b = (zero, zero, zero, zero)
    for k in tl.static_range(K):
        w_f = _set(w_f, k, tl.load(wf_ptr + offs_c * swf_d + k * swf_k, mask=mask_c,
                                   other=0.0).to(tl.float32))
        w_b = _set(w_b, k, tl.load(wb_ptr + offs_c * swb_d + k * swb_k, mask=mask_c,
                                   other=0.0).to(tl.float32))
    b_f, b_b = zero, zero
    if HAS_BF:
        b_f = tl.load(bf_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)
    if HAS_BB:
        b_b = tl.load(bb_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)
    first = pid_l * CHUNK
    # the window before the chunk's first position (zeros before the sequence)
    xs = (zero, zero, zero, zero)
    for j in tl.static_range(1, K):
        s = first - K + j
        xs = _set(xs, 4 - K + j, tl.load(x_row + s * sx_l, mask=mask_c & (s >= 0),
                                         other=0.0).to(tl.float32))
    # positions first .. first + CHUNK + K - 2: causal outputs at s, anti-causal at s - (K - 1)
    for it in range(tl.cdiv(CHUNK + K - 1, P)):
        base = first + it * P
        new = (zero, zero, zero, zero, zero, zero, zero, zero)
        for j in tl.static_range(P):  # all of the iteration's loads before its arithmetic
            s = base + j
            new = _set(new, j, tl.load(x_row + s * sx_l, mask=mask_c & (s < length),
                                       other=0.0).to(tl.float32))
        for j in tl.static_range(P):
            s = base + j
            xs = (xs[1], xs[2], xs[3], new[j])
            pre_f, pre_b = _slide_step(xs, w_f, w_b, b_f, b_b, K)
            keep_f = mask_c & (s < first + CHUNK) & (s < length)
            tl.store(yf_row + s * sy_l, (pre_f * _sigmoid(pre_f)).to(yf_ptr.dtype.element_ty),
                     mask=keep_f)
            t = s - (K - 1)
            keep_b = mask_c & (t >= first) & (t < first + CHUNK) & (t < length)
            tl.store(yb_row + t * sy_l, (pre_b * _sigmoid(pre_b)).to(yb_ptr.dtype.element_ty),
                     mask=keep_b)


@triton.jit
def _set(values, i: tl.constexpr, v):
    """``values`` (a tuple) with element ``i`` replaced by ``v``."""
    out = ()
    for j in tl.static_range(len(values)):
        if j == i:
            out = out + (v,)
        else:
            out = out + (values[j],)
    return out


@triton.jit
def _outer(per_d, per_l, D_MAJOR: tl.constexpr):
    """``per_d (BLOCK_D,) + per_l (BLOCK_L,)`` as a tile: ``(BLOCK_L, BLOCK_D)`` when ``D_MAJOR``
    (channels on the last axis, which Triton lays out fastest), else ``(BLOCK_D, BLOCK_L)``."""
    if D_MAJOR:
        return per_l[:, None] + per_d[None, :]
    else:
        return per_d[:, None] + per_l[None, :]


@triton.jit
def _both(mask_d, mask_l, D_MAJOR: tl.constexpr):
    if D_MAJOR:
        return mask_l[:, None] & mask_d[None, :]
    else:
        return mask_d[:, None] & mask_l[None, :]


@triton.jit
def _per_channel(ptr, offs_d, mask_d, D_MAJOR: tl.constexpr):
    """float32 per-channel values shaped to broadcast over a tile."""
    v = tl.load(ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if D_MAJOR:
        return v[None, :]
    else:
        return v[:, None]


@triton.jit
def _zeros(BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, D_MAJOR: tl.constexpr):
    if D_MAJOR:
        return tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
    else:
        return tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)


@triton.jit
def _tile_at(base, s_d, s_l, offs_d, mask_d, t, length, D_MAJOR: tl.constexpr):
    """float32 tile of a ``(D, L)`` slice at positions ``t`` ``(BLOCK_L,)`` (any ints), zeros
    outside ``0 .. L-1``."""
    mask = _both(mask_d, (t >= 0) & (t < length), D_MAJOR)
    ptrs = base + _outer(offs_d * s_d, t * s_l, D_MAJOR)
    return tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _sum_over_l(tile, D_MAJOR: tl.constexpr):
    if D_MAJOR:
        return tl.sum(tile, axis=0)
    else:
        return tl.sum(tile, axis=1)


@triton.jit
def _source(t, k, K: tl.constexpr, ANTI: tl.constexpr):
    """Where tap ``k`` reads ``x`` for the outputs at ``t``: ``t - (K-1-k)`` causal, ``t + (K-1-k)``
    anti-causal."""
    if ANTI:
        return t + (K - 1 - k)
    else:
        return t - (K - 1 - k)


@triton.jit
def _branch_grads(x_base, sx_d, sx_l, w_ptr, sw_d, sw_k, b_ptr, dy_base, sdy_d, sdy_l, g_base,
                  sg_d, sg_l, part_row, offs_d, mask_d, first_t, length, channels,
                  K: tl.constexpr, ANTI: tl.constexpr, HAS_BIAS: tl.constexpr,
                  D_MAJOR: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
                  TILES: tl.constexpr):
    """One branch over ``TILES`` tiles from ``first_t``: ``g = dy * silu'(pre)`` stored, and the
    float32 sums ``sum_t g[t] x[src_k(t)]`` (tap ``k``, row ``k`` of ``part_row``) and
    ``sum_t g[t]`` (row ``K``), accumulated per element across the tiles and reduced over
    positions once."""
    # K <= 4 taps written out: per-channel values cannot live in a list inside a kernel
    w_0 = _per_channel(w_ptr + 0 * sw_k, offs_d * sw_d, mask_d, D_MAJOR)
    if K > 1:
        w_1 = _per_channel(w_ptr + 1 * sw_k, offs_d * sw_d, mask_d, D_MAJOR)
    if K > 2:
        w_2 = _per_channel(w_ptr + 2 * sw_k, offs_d * sw_d, mask_d, D_MAJOR)
    if K > 3:
        w_3 = _per_channel(w_ptr + 3 * sw_k, offs_d * sw_d, mask_d, D_MAJOR)
    if HAS_BIAS:
        bias = _per_channel(b_ptr, offs_d, mask_d, D_MAJOR)
    t = first_t + tl.arange(0, BLOCK_L)
    zero = _zeros(BLOCK_D, BLOCK_L, D_MAJOR)
    acc_0, acc_1, acc_2, acc_3, acc_bias = zero, zero, zero, zero, zero
    for _ in range(TILES):
        # dy first: Triton computes in the layout of the loop's last load, so the x loads
        # (K of them, vs one of dy) keep theirs when dy's memory order differs. dy is zero
        # past the end, so g is too and adds nothing to the sums there.
        dy = _tile_at(dy_base, sdy_d, sdy_l, offs_d, mask_d, t, length, D_MAJOR)
        x_0 = _tile_at(x_base, sx_d, sx_l, offs_d, mask_d, _source(t, 0, K, ANTI), length,
                       D_MAJOR)
        pre = w_0 * x_0
        if K > 1:
            x_1 = _tile_at(x_base, sx_d, sx_l, offs_d, mask_d, _source(t, 1, K, ANTI), length,
                           D_MAJOR)
            pre += w_1 * x_1
        if K > 2:
            x_2 = _tile_at(x_base, sx_d, sx_l, offs_d, mask_d, _source(t, 2, K, ANTI), length,
                           D_MAJOR)
            pre += w_2 * x_2
        if K > 3:
            x_3 = _tile_at(x_base, sx_d, sx_l, offs_d, mask_d, _source(t, 3, K, ANTI), length,
                           D_MAJOR)
            pre += w_3 * x_3
        if HAS_BIAS:
            pre += bias
        sig = _sigmoid(pre)
        g = dy * sig * (1.0 + pre * (1.0 - sig))
        mask = _both(mask_d, t < length, D_MAJOR)
        tl.store(g_base + _outer(offs_d * sg_d, t * sg_l, D_MAJOR),
                 g.to(g_base.dtype.element_ty), mask=mask)
        acc_bias += g
        acc_0 += g * x_0
        if K > 1:
            acc_1 += g * x_1
        if K > 2:
            acc_2 += g * x_2
        if K > 3:
            acc_3 += g * x_3
        t += BLOCK_L
    tl.store(part_row + offs_d, _sum_over_l(acc_0, D_MAJOR), mask=mask_d)
    if K > 1:
        tl.store(part_row + channels + offs_d, _sum_over_l(acc_1, D_MAJOR), mask=mask_d)
    if K > 2:
        tl.store(part_row + 2 * channels + offs_d, _sum_over_l(acc_2, D_MAJOR), mask=mask_d)
    if K > 3:
        tl.store(part_row + 3 * channels + offs_d, _sum_over_l(acc_3, D_MAJOR), mask=mask_d)
    tl.store(part_row + K * channels + offs_d, _sum_over_l(acc_bias, D_MAJOR), mask=mask_d)


@triton.jit
def _bi_conv_silu_grads_kernel(
    x_ptr, wf_ptr, bf_ptr, wb_ptr, bb_ptr, dyf_ptr, dyb_ptr, gf_ptr, gb_ptr, part_ptr,
    channels, length, sx_b, sx_d, sx_l, swf_d, swf_k, swb_d, swb_k,
    sdyf_b, sdyf_d, sdyf_l, sdyb_b, sdyb_d, sdyb_l, sg_b, sg_d, sg_l,
    K: tl.constexpr, HAS_BF: tl.constexpr, HAS_BB: tl.constexpr, D_MAJOR: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, TILES: tl.constexpr,
):
    """Pass 1: the SiLU gradients ``g_f = dy_f * silu'(pre_f)`` and ``g_b`` (in ``g``'s dtype and
    strides) and float32 partial sums of the weight and bias gradients, ``part[p, branch]``
    ``(K+1, D)`` = rows ``dw[:, 0..K-1], db`` over this program's ``TILES * BLOCK_L`` positions,
    ``p = batch * n_groups + group``. Grid axis 0 interleaves the two branches of each group
    (even: causal, odd: anti-causal), so both read the same ``x`` tiles at about the same time
    and the second finds them in L2."""
    pid, pid_d, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    group = pid // 2
    n_groups = tl.num_programs(0) // 2
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < channels
    batch = pid_b.to(tl.int64)
    x_base = x_ptr + batch * sx_b
    first_t = group * TILES * BLOCK_L
    row = part_ptr + (batch * n_groups + group) * 2 * (K + 1) * channels
    if pid % 2 == 0:
        _branch_grads(x_base, sx_d, sx_l, wf_ptr, swf_d, swf_k, bf_ptr, dyf_ptr + batch * sdyf_b,
                      sdyf_d, sdyf_l, gf_ptr + batch * sg_b, sg_d, sg_l, row, offs_d, mask_d,
                      first_t, length, channels, K, False, HAS_BF, D_MAJOR, BLOCK_D, BLOCK_L,
                      TILES)
    else:
        _branch_grads(x_base, sx_d, sx_l, wb_ptr, swb_d, swb_k, bb_ptr, dyb_ptr + batch * sdyb_b,
                      sdyb_d, sdyb_l, gb_ptr + batch * sg_b, sg_d, sg_l,
                      row + (K + 1) * channels, offs_d, mask_d, first_t, length, channels, K,
                      True, HAS_BB, D_MAJOR, BLOCK_D, BLOCK_L, TILES)


@triton.jit
def _bi_conv_silu_dx_kernel(
    gf_ptr, gb_ptr, wf_ptr, wb_ptr, dx_ptr,
    channels, length, sg_b, sg_d, sg_l, swf_d, swf_k, swb_d, swb_k, sdx_b, sdx_d, sdx_l,
    K: tl.constexpr, D_MAJOR: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    TILES: tl.constexpr,
):
    """Pass 2: ``dx[t] = sum_m w_f[K-1-m] g_f[t+m] + w_b[K-1-m] g_b[t-m]`` (the transposed convs of
    both branches) from K shifted tiles of each SiLU gradient, zeros outside ``0 .. L-1``; the
    ``2K`` taps are loaded once per ``TILES`` tiles."""
    pid_g, pid_d, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < channels
    batch = pid_b.to(tl.int64)
    gf_base = gf_ptr + batch * sg_b
    gb_base = gb_ptr + batch * sg_b
    dx_base = dx_ptr + batch * sdx_b
    # tap K-1-m of each branch, m = 0 .. K-1
    wf_0 = _per_channel(wf_ptr + (K - 1) * swf_k, offs_d * swf_d, mask_d, D_MAJOR)
    wb_0 = _per_channel(wb_ptr + (K - 1) * swb_k, offs_d * swb_d, mask_d, D_MAJOR)
    if K > 1:
        wf_1 = _per_channel(wf_ptr + (K - 2) * swf_k, offs_d * swf_d, mask_d, D_MAJOR)
        wb_1 = _per_channel(wb_ptr + (K - 2) * swb_k, offs_d * swb_d, mask_d, D_MAJOR)
    if K > 2:
        wf_2 = _per_channel(wf_ptr + (K - 3) * swf_k, offs_d * swf_d, mask_d, D_MAJOR)
        wb_2 = _per_channel(wb_ptr + (K - 3) * swb_k, offs_d * swb_d, mask_d, D_MAJOR)
    if K > 3:
        wf_3 = _per_channel(wf_ptr + (K - 4) * swf_k, offs_d * swf_d, mask_d, D_MAJOR)
        wb_3 = _per_channel(wb_ptr + (K - 4) * swb_k, offs_d * swb_d, mask_d, D_MAJOR)
    t = pid_g * TILES * BLOCK_L + tl.arange(0, BLOCK_L)
    for _ in range(TILES):
        dx = wf_0 * _tile_at(gf_base, sg_d, sg_l, offs_d, mask_d, t, length, D_MAJOR)
        dx += wb_0 * _tile_at(gb_base, sg_d, sg_l, offs_d, mask_d, t, length, D_MAJOR)
        if K > 1:
            dx += wf_1 * _tile_at(gf_base, sg_d, sg_l, offs_d, mask_d, t + 1, length, D_MAJOR)
            dx += wb_1 * _tile_at(gb_base, sg_d, sg_l, offs_d, mask_d, t - 1, length, D_MAJOR)
        if K > 2:
            dx += wf_2 * _tile_at(gf_base, sg_d, sg_l, offs_d, mask_d, t + 2, length, D_MAJOR)
            dx += wb_2 * _tile_at(gb_base, sg_d, sg_l, offs_d, mask_d, t - 2, length, D_MAJOR)
        if K > 3:
            dx += wf_3 * _tile_at(gf_base, sg_d, sg_l, offs_d, mask_d, t + 3, length, D_MAJOR)
            dx += wb_3 * _tile_at(gb_base, sg_d, sg_l, offs_d, mask_d, t - 3, length, D_MAJOR)
        tl.store(dx_base + _outer(offs_d * sdx_d, t * sdx_l, D_MAJOR),
                 dx.to(dx_ptr.dtype.element_ty), mask=_both(mask_d, t < length, D_MAJOR))
        t += BLOCK_L


@triton.jit
def _sum_partials_kernel(part_ptr, dwf_ptr, dbf_ptr, dwb_ptr, dbb_ptr, n_rows, channels,
                         K: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    """Row ``j`` (grid axis 1) of the partial sums ``(n_rows, 2, K+1, D)`` summed over ``n_rows``
    in a fixed order, converted and written where it belongs: tap ``k`` of ``dw`` (dense
    ``(D, K)`` memory, weight dtype) or ``db``, of branch ``j // (K+1)``."""
    pid_d, j = tl.program_id(0), tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_r = tl.arange(0, BLOCK_R)
    mask_d = offs_d < channels
    acc = tl.zeros((BLOCK_R, BLOCK_D), dtype=tl.float32)
    for first in range(0, n_rows, BLOCK_R):
        rows = (first + offs_r).to(tl.int64)
        ptrs = part_ptr + (rows[:, None] * (2 * (K + 1)) + j) * channels + offs_d[None, :]
        acc += tl.load(ptrs, mask=(rows < n_rows)[:, None] & mask_d[None, :], other=0.0)
    total = tl.sum(acc, axis=0)
    if j < K + 1:
        _store_weight_or_bias_grad(dwf_ptr, dbf_ptr, total, offs_d, mask_d, j, K)
    else:
        _store_weight_or_bias_grad(dwb_ptr, dbb_ptr, total, offs_d, mask_d, j - (K + 1), K)


@triton.jit
def _store_weight_or_bias_grad(dw_ptr, db_ptr, total, offs_d, mask_d, k, K: tl.constexpr):
    if k < K:
        tl.store(dw_ptr + offs_d * K + k, total.to(dw_ptr.dtype.element_ty), mask=mask_d)
    else:
        tl.store(db_ptr + offs_d, total.to(db_ptr.dtype.element_ty), mask=mask_d)


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
    return conv_silu_forward(x, w_f, b_f, w_b, b_b)


def conv_silu_forward(x: Tensor, w_f: Tensor, b_f: Tensor | None, w_b: Tensor,
                      b_b: Tensor | None) -> tuple[Tensor, Tensor]:
    """The forward kernel without the custom op around it (callers that are themselves inside a
    custom op skip a dispatch): see :func:`bidirectional_conv_silu_triton`."""
    batch, channels, length = x.shape
    width = _check(x, w_f, w_b)
    y_f, y_b = _like_layout(x, x.dtype), _like_layout(x, x.dtype)
    if y_f.numel() == 0:
        return y_f, y_b
    wf, wb = _taps(w_f, channels), _taps(w_b, channels)
    if sliding_forward(x):
        block_c, chunk, steps, warps = slide_config()
        grid = (cdiv(length, chunk), cdiv(channels, block_c), batch)
        launch(
            _bi_conv_silu_slide_kernel, grid,
            x, wf, _dummy(b_f, wf), wb, _dummy(b_b, wb), y_f, y_b,
            channels, length, *x.stride(), *wf.stride(), *wb.stride(), *y_f.stride(),
            K=width, HAS_BF=b_f is not None, HAS_BB=b_b is not None,
            BLOCK_C=block_c, CHUNK=chunk, P=steps, num_warps=warps,
        )
        return y_f, y_b
    block_d, block_l, warps = fwd_config()
    grid = (cdiv(length, block_l), cdiv(channels, block_d), batch)
    launch(
        _bi_conv_silu_fwd_kernel, grid,
        x, wf, _dummy(b_f, wf), wb, _dummy(b_b, wb), y_f, y_b,
        channels, length, *x.stride(), *wf.stride(), *wb.stride(), *y_f.stride(),
        K=width, HAS_BF=b_f is not None, HAS_BB=b_b is not None,
        BLOCK_D=block_d, BLOCK_L=block_l, num_warps=warps,
    )
    return y_f, y_b


@_bi_conv_silu_fwd.register_fake
def _(x, w_f, b_f, w_b, b_b):
    return _like_layout(x, x.dtype), _like_layout(x, x.dtype)


def _d_major(x: Tensor) -> bool:
    """Whether ``x`` ``(B, D, L)`` is laid out channel-fastest (the mixer's transposed view)."""
    return x.stride(1) == 1 and x.stride(2) != 1


def _like_layout(x: Tensor, dtype: torch.dtype) -> Tensor:
    """A new dense ``(B, D, L)`` in ``x``'s layout: channel-fastest when ``x`` is, else
    contiguous. The backward's SiLU gradients and ``dx`` follow ``x`` so that both passes walk
    memory along the same axis as their biggest input."""
    batch, channels, length = x.shape
    if _d_major(x):
        return torch.empty((batch, length, channels), dtype=dtype, device=x.device).transpose(1, 2)
    return torch.empty((batch, channels, length), dtype=dtype, device=x.device)


def _grad_dtype(x: Tensor) -> torch.dtype:
    """Storage of the SiLU gradients between the two passes: float32. Stored in bf16 they
    doubled ``dx``'s error for bf16 inputs (relative 6.0-6.1e-3, against 3.3e-3 with float32
    storage and 3.1e-3 for the grouped-conv path's own bf16 backward; float64 reference, B=2,
    D=16, L=300, K=4, seeds 0-2, in the interpreter), for a third less traffic."""
    return torch.float32


def fwd_config() -> tuple[int, int, int]:
    """(BLOCK_D, BLOCK_L, num_warps) of the forward, or the ``VIDEOMAMBA_CONV_FWD_CONFIG``
    override ``"BLOCK_D,BLOCK_L,warps"`` (benchmarks)."""
    return _config_from_env("VIDEOMAMBA_CONV_FWD_CONFIG", _FWD_CONFIG)


def sliding_forward(x: Tensor) -> bool:
    """Whether the forward walks positions with a sliding window (``_bi_conv_silu_slide_kernel``)
    instead of tiles: for channels-fastest ``x`` (the mixer's), unless
    ``VIDEOMAMBA_CONV_FWD_ALGO=tile``. Run 71 (H200, B=8, D=768, K=4, bf16): 0.028 / 0.083 /
    0.155 ms at L = 1569 / 6273 / 12545 against the tiles' 0.038 / 0.125 / 0.242. The CPU
    interpreter takes the tiles unless ``slide`` is set (one step at a time costs it far more
    Python calls; the sliding kernel's own tests set it)."""
    algo = os.environ.get("VIDEOMAMBA_CONV_FWD_ALGO", "auto")
    if interpreting() and algo != "slide":
        return False
    return _d_major(x) and algo != "tile"


def slide_config() -> tuple[int, int, int, int]:
    """(BLOCK_C, CHUNK, P, num_warps) of the sliding-window forward (run 71's fastest at L=1569
    of seven; within 2 % of the fastest at 6273 and 12545), or the
    ``VIDEOMAMBA_CONV_SLIDE_CONFIG`` override."""
    return _config_from_env("VIDEOMAMBA_CONV_SLIDE_CONFIG", (256, 64, 8, 4))


def bwd_config(d_major: bool) -> tuple[int, int, int, int]:
    """(BLOCK_D, BLOCK_L, num_warps, tiles per program) of both backward passes, or the
    ``VIDEOMAMBA_CONV_BWD_CONFIG`` override ``"BLOCK_D,BLOCK_L,warps,tiles"`` (benchmarks,
    tests)."""
    return _config_from_env("VIDEOMAMBA_CONV_BWD_CONFIG",
                            _BWD_CONFIG_D_MAJOR if d_major else _BWD_CONFIG_L_MAJOR)


def _config_from_env(variable: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """``default``, or the comma-separated integers of ``variable``, as many as ``default``."""
    text = os.environ.get(variable)
    if not text:
        return default
    values = tuple(int(v) for v in text.split(","))
    if len(values) != len(default):
        raise ValueError(f"{variable}={text!r}: expected {len(default)} comma-separated integers")
    return values


@torch.library.custom_op("videomamba::bi_conv_silu_bwd", mutates_args=())
def _bi_conv_silu_bwd(dy_f: Tensor, dy_b: Tensor, x: Tensor, w_f: Tensor, b_f: Tensor | None,
                      w_b: Tensor, b_b: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor,
                                                                Tensor]:
    return conv_silu_backward(dy_f, dy_b, x, w_f, b_f, w_b, b_b)


def conv_silu_backward(dy_f: Tensor, dy_b: Tensor, x: Tensor, w_f: Tensor, b_f: Tensor | None,
                       w_b: Tensor, b_b: Tensor | None,
                       dx_out: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor,
                                                              Tensor]:
    """The backward kernels without the custom op around them: ``(dx, dw_f, db_f, dw_b, db_b)``
    (a missing bias still gets a gradient buffer); ``dx`` is written into ``dx_out`` (any
    strides, ``x``'s dtype) when given."""
    batch, channels, length = x.shape
    width = _check(x, w_f, w_b)
    d_major = _d_major(x)
    dx = dx_out if dx_out is not None else _like_layout(x, x.dtype)
    wf, wb = _taps(w_f, channels), _taps(w_b, channels)
    block_d, block_l, warps, tiles = bwd_config(d_major)
    n_groups = cdiv(length, block_l * tiles)
    # per-program partial sums (every row is written), reduced below in a fixed order: the
    # weight and bias gradients are deterministic, without atomics
    part = torch.empty((batch * n_groups, 2, width + 1, channels), dtype=torch.float32,
                       device=x.device)
    if dx.numel() > 0:
        g_f, g_b = _like_layout(x, _grad_dtype(x)), _like_layout(x, _grad_dtype(x))
        consts = dict(K=width, D_MAJOR=d_major, BLOCK_D=block_d, BLOCK_L=block_l, TILES=tiles,
                      num_warps=warps)
        launch(
            _bi_conv_silu_grads_kernel, (2 * n_groups, cdiv(channels, block_d), batch),
            x, wf, _dummy(b_f, wf), wb, _dummy(b_b, wb), dy_f, dy_b, g_f, g_b, part,
            channels, length, *x.stride(), *wf.stride(), *wb.stride(),
            *dy_f.stride(), *dy_b.stride(), *g_f.stride(),
            HAS_BF=b_f is not None, HAS_BB=b_b is not None, **consts,
        )
        launch(
            _bi_conv_silu_dx_kernel, (n_groups, cdiv(channels, block_d), batch),
            g_f, g_b, wf, wb, dx, channels, length, *g_f.stride(), *wf.stride(), *wb.stride(),
            *dx.stride(), **consts,
        )
    dw_f, dw_b = dense_like(w_f), dense_like(w_b)
    db_f, db_b = bias_grad_like(b_f, w_f, channels), bias_grad_like(b_b, w_b, channels)
    if channels > 0:
        launch(
            _sum_partials_kernel, (cdiv(channels, _SUM_BLOCK_D), 2 * (width + 1)),
            part, dw_f, db_f, dw_b, db_b, part.shape[0], channels, K=width,
            BLOCK_R=_SUM_BLOCK_R, BLOCK_D=_SUM_BLOCK_D,
        )
    return dx, dw_f, db_f, dw_b, db_b


@_bi_conv_silu_bwd.register_fake
def _(dy_f, dy_b, x, w_f, b_f, w_b, b_b):
    channels = x.shape[1]
    return (_like_layout(x, x.dtype), dense_like(w_f), bias_grad_like(b_f, w_f, channels),
            dense_like(w_b), bias_grad_like(b_b, w_b, channels))


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
    ``(D, K)`` or ``(D, 1, K)`` with ``K <= 4``, biases ``(D,)`` or ``None``. Returns two dense
    ``(B, D, L)`` in ``x``'s dtype and memory order (channel-fastest for the mixer's transposed
    ``x``, so that ``x_proj`` reads them as a plain ``(B*L, D)`` matrix), else contiguous;
    differentiable in every tensor. CUDA or the Triton interpreter."""
    return _bi_conv_silu_fwd(x, w_f, b_f, w_b, b_b)
