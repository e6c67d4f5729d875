"""Time-tiled Triton forward of the selective scan (contract: ``ref.py``).

One program owns one batch row, ``BLOCK_D`` channels and one segment of the sequence, which it
walks in tiles of ``T`` steps. A tile is ``(BLOCK_D, N, T)`` with the ``T`` steps in registers:
with ``BLOCK_D = 32`` one thread holds a channel's ``N`` states; with ``BLOCK_D < 32``
(``SPLIT_N``, the default 8) one warp holds the block, ``32 / BLOCK_D`` lanes sharing a channel's
states (4 states per thread at N=16), which gives 4x the warps for a 2-level shuffle in ``<h, C>``.
The pair kernel's 8-channel, 8-step tiles at N=16 use the ``PAIRS`` layout instead (2 channels x 2
states per thread, 8 state lanes, the output reduce-scattered: :func:`pairs_layout`).
Per tile every input is loaded at once (``T`` steps of u, delta, z, B, C), the exponentials and
``B x`` are computed for the whole tile, and the recurrence over ``T`` is an
``associative_scan`` along the in-register axis (no shuffles; the carried state enters through
the tile's first element), so a tile's loads are all in flight before its arithmetic and the
per-step load/address overhead of a step-by-step loop is divided by ``T``.

With ``n_seg == 1`` the sequence is walked once (one exponential per state element and step).
With ``n_seg > 1`` there are two launches: ``SUMMARY`` programs compute each segment's final
state from zero and its sum of delta, then the output programs fold the summaries before their
segment into its entry state. That doubles the exponentials but lets more warps run when
``batch * channels / 32`` warps would leave most of the GPU idle.

The output pass stores the state at every multiple of ``ck_steps`` of the position (after the
positions below it, or in a reverse scan above it), so that the backward pass
(``triton_tile_bwd.lean_bwd``) starts each of its segments from it. The loads of tile k + 1 are
issued before the arithmetic of tile k. Measurements and the layout rules these kernels rely on:
``docs/kernels.md`` (version 3).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from videomamba.ops.selective_scan.triton_common import (
    ROW_TILE,
    _a_log2e,
    _exchange_add,
    _exp2,
    _affine_combine,
    _sigmoid,
    _aligned,
    _row_tile,
    _softplus,
    a_layout,
    as_groups,
    bc_alignment,
    block_for_groups,
    cdiv,
    interpreting,
    multiprocessors,
    next_power_of_2,
    pair_groups,
    row_tile_grid,
)
from videomamba.ops.triton_launch import launch


@triton.jit
def _tile_positions(tile, n_tiles, offs_t, T: tl.constexpr, rev):
    """Positions ``(1, 1, T)`` of tile ``tile`` in scan order, and the position boundary after
    it (reverse: the tiles are aligned to position 0 with the padding at the top). ``rev`` is
    0/1: a constant in the one-direction kernel (the arithmetic folds away), a value in the pair
    kernel."""
    forward = tile * T + offs_t
    return (forward + rev * (n_tiles * T - 1 - 2 * forward),
            (tile + 1) * T + rev * ((n_tiles - 2 * tile - 2) * T))


@triton.jit
def _ck_phase(tile, n_tiles, ck_tiles, rev):
    """Tiles between the boundary after tile ``tile`` (:func:`_tile_positions`) and the state
    boundary below it in scan order: 0 when that boundary is a multiple of ``ck_tiles`` tiles."""
    return (tile + 1 + rev * (n_tiles - 2 * tile - 2)) % ck_tiles


@triton.jit
def _next_ck_phase(phase, ck_tiles, rev):
    """:func:`_ck_phase` of the next tile: the boundary moves one tile up (down in reverse)."""
    phase = phase + 1 - 2 * rev
    phase = tl.where(phase == ck_tiles, 0, phase)
    return tl.where(phase < 0, ck_tiles - 1, phase)


@triton.jit
def _state_offsets(N: tl.constexpr, PAIRS: tl.constexpr):
    """``(1, N, 1)`` state indices. The arithmetic takes the layout of the A loads (docs/kernels.md,
    session 5), and Triton gives a load as many adjacent states per thread as it can prove
    contiguous: 4 (4 state lanes, 8 channel lanes), or with ``PAIRS`` 2, written so that only
    runs of 2 are provable (2 states per thread on 8 state lanes, 2 channels per thread on 4
    channel lanes)."""
    n = tl.arange(0, N)[None, :, None]
    if PAIRS:
        return (n // 2) * 2 + n % 2
    return n


@triton.jit
def _state_sums_by_step(prod, SCATTER: tl.constexpr):
    """``prod`` ``(BLOCK_D, 16, 8)`` in the ``PAIRS`` layout (:func:`_state_offsets`: state lane
    ``l`` of lane bits 0-2 holds states 2l, 2l + 1, steps in the thread) summed over the states:
    ``(BLOCK_D, 8, 1)`` whose element ``(c, s)`` is channel c's sum at tile step s, held by the
    lanes of state lane s. With ``SCATTER`` a reduce-scatter in three exchange levels (14
    shuffles a thread where an all-reduce takes 48), else ``tl.sum`` (the CPU interpreter)."""
    block_d: tl.constexpr = prod.shape[0]
    p = tl.sum(tl.reshape(prod, (block_d, 8, 2, 8)), axis=2)  # a thread's two states
    if SCATTER:
        lane = tl.arange(0, 8)[None, :, None]
        lo, hi = tl.split(tl.reshape(p, (block_d, 8, 4, 2)))  # even / odd steps
        shape: tl.constexpr = (block_d, 8, 4)
        r = _exchange_add(lo, hi, tl.broadcast_to(lane & 1, shape), tl.full(shape, 1, tl.int32))
        lo, hi = tl.split(tl.reshape(r, (block_d, 8, 2, 2)))
        half: tl.constexpr = (block_d, 8, 2)
        r = _exchange_add(lo, hi, tl.broadcast_to((lane >> 1) & 1, half),
                          tl.full(half, 2, tl.int32))
        lo, hi = tl.split(tl.reshape(r, (block_d, 8, 1, 2)))
        one: tl.constexpr = (block_d, 8, 1)
        return _exchange_add(lo, hi, tl.broadcast_to((lane >> 2) & 1, one),
                             tl.full(one, 4, tl.int32))
    return tl.reshape(tl.sum(p, axis=1), (block_d, 8, 1))


@triton.jit
def _fwd_tile_loads(tile, n_tiles, length, offs_t, mask_d, mask_n, B_base, C_base, d_base, u_base,
                    z_base, y_base, sB_t, sC_t, sd_t, su_t, sz_t, sy_t, T: tl.constexpr,
                    HAS_Z: tl.constexpr, rev, ACCUMULATE: tl.constexpr, SUMMARY: tl.constexpr):
    """One tile's raw inputs ``(B, C, delta, u, z, y)`` (0 outside the sequence; the ones a
    variant does not use are stand-ins). B and C are loaded first: Triton propagates the layout
    of the last load first, and the arithmetic must take the channel loads' (or A's) layout."""
    t, _ = _tile_positions(tile, n_tiles, offs_t, T, rev)
    valid = (t >= 0) & (t < length)
    m = valid & mask_d
    Bt = tl.load(B_base + t * sB_t, mask=valid & mask_n, other=0.0)
    Ct = Bt
    if not SUMMARY:
        Ct = tl.load(C_base + t * sC_t, mask=valid & mask_n, other=0.0)
    dt = tl.load(d_base + t * sd_t, mask=m, other=0.0)
    u = tl.load(u_base + t * su_t, mask=m, other=0.0)
    zt = u
    acc = u
    if not SUMMARY:
        if HAS_Z:
            zt = tl.load(z_base + t * sz_t, mask=m, other=0.0)
        if ACCUMULATE:
            acc = tl.load(y_base + t * sy_t, mask=m, other=0.0)
    return Bt, Ct, dt, u, zt, acc


@triton.jit
def _fwd_body(
    pid_b, pid_d, seg, rev,
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, y_ptr, last_ptr, ck_ptr,
    hseg_ptr, dsum_ptr, a2_ptr,
    length, channels, chans_per_group, n_state, n_tiles, tiles_per_seg, n_seg, ck_steps, n_ck,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sy_b, sy_d, sy_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr, T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    ACCUMULATE: tl.constexpr, SUMMARY: tl.constexpr,
    SAVE_CK: tl.constexpr, SPLIT_N: tl.constexpr, A_IS_LOG: tl.constexpr,
    BC_ALIGN: tl.constexpr, EVEN_N: tl.constexpr, PAIRS: tl.constexpr = False,
    SCATTER: tl.constexpr = False,
):
    """One program's (batch row ``pid_b``, channel block ``pid_d``, segment ``seg``) walk of one
    direction (``rev`` 0/1)."""
    tl.static_assert(not PAIRS or (N == 16 and T == 8 and not (ACCUMULATE or HAS_Z)),
                     "PAIRS: 16 states, 8-step tiles, an ungated output of its own")
    sB_b, sB_g, sB_t = _aligned(sB_b, BC_ALIGN), _aligned(sB_g, BC_ALIGN), _aligned(sB_t, BC_ALIGN)
    sC_b, sC_g, sC_t = _aligned(sC_b, BC_ALIGN), _aligned(sC_g, BC_ALIGN), _aligned(sC_t, BC_ALIGN)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)[:, None, None]  # (BLOCK_D, 1, 1)
    offs_n = _state_offsets(N, PAIRS)  # (1, N, 1)
    offs_t = tl.arange(0, T)[None, None, :]  # (1, 1, T)
    offs_s = tl.arange(0, T)[None, :, None]  # (1, T, 1): with PAIRS, the step a lane finishes
    mask_d, mask_n = offs_d < channels, offs_n < n_state
    if EVEN_N:  # a constant mask lets the B/C loads be vectorised along the states
        mask_n = tl.full((1, N, 1), 1, tl.int1)
    mask_nd = mask_n & mask_d
    group = (pid_d * BLOCK_D) // chans_per_group
    A2 = _a_log2e(tl.load(A_ptr + offs_d * sA_d + offs_n * sA_n, mask=mask_nd, other=0.0),
                  A_IS_LOG)  # (BLOCK_D, N, 1): exp(dt A) = exp2(dt A2)
    if SPLIT_N:  # A2 for the loop's reloads, so that they skip A_log's exponential (every
        # program of a channel block writes the same values)
        a2_at = a2_ptr + offs_d * N + offs_n
        tl.store(a2_at, A2, mask=mask_nd)
        tl.debug_barrier()
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    u_base = u_ptr + pid_b * su_b + offs_d * su_d
    d_base = delta_ptr + pid_b * sd_b + offs_d * sd_d
    z_base = z_ptr + pid_b * sz_b + offs_d * sz_d
    y_base = y_ptr + pid_b * sy_b + offs_d * sy_d
    B_base = B_ptr + pid_b * sB_b + group * sB_g + offs_n * sB_n
    C_base = C_ptr + pid_b * sC_b + group * sC_g + offs_n * sC_n
    first = offs_t == 0
    last_step = offs_t == T - 1

    h = tl.zeros((BLOCK_D, N, 1), dtype=tl.float32)
    if not SUMMARY:
        for j in range(0, seg):  # entry state: fold the summaries of the segments before
            summary = ((pid_b * n_seg + j) * N + offs_n) * channels + offs_d
            hj = tl.load(hseg_ptr + summary, mask=mask_nd, other=0.0)
            dj = tl.load(dsum_ptr + (pid_b * n_seg + j) * channels + offs_d, mask=mask_d, other=0.0)
            h = _exp2(A2 * dj) * h + hj
    dsum = tl.zeros((BLOCK_D, 1, T), dtype=tl.float32)
    first_tile = seg * tiles_per_seg
    # tiles from a state boundary, counted along the loop instead of dividing in every tile
    ck_tiles = ck_steps // T
    phase = 0
    if SAVE_CK:
        phase = _ck_phase(first_tile, n_tiles, ck_tiles, rev)
    # software pipelining: the loads of tile k + 1 are issued before the arithmetic of tile k
    nxt = _fwd_tile_loads(first_tile, n_tiles, length, offs_t, mask_d, mask_n, B_base, C_base,
                          d_base, u_base, z_base, y_base, sB_t, sC_t, sd_t, su_t, sz_t, sy_t,
                          T, HAS_Z, rev, ACCUMULATE, SUMMARY)
    for tile in range(first_tile, first_tile + tiles_per_seg):
        Bt, Ct, dt, u, zt, acc = nxt
        nxt = _fwd_tile_loads(tile + 1, n_tiles, length, offs_t, mask_d, mask_n, B_base, C_base,
                              d_base, u_base, z_base, y_base, sB_t, sC_t, sd_t, su_t, sz_t, sy_t,
                              T, HAS_Z, rev, ACCUMULATE, SUMMARY)
        t, boundary = _tile_positions(tile, n_tiles, offs_t, T, rev)
        m = (t >= 0) & (t < length) & mask_d  # (BLOCK_D, 1, T)
        Bt, Ct, dt, u = Bt.to(tl.float32), Ct.to(tl.float32), dt.to(tl.float32), u.to(tl.float32)
        zt, acc = zt.to(tl.float32), acc.to(tl.float32)
        if HAS_BIAS:
            dt = dt + bias
        if SOFTPLUS:
            dt = _softplus(dt)
        dt = tl.where(m, dt, 0.0)  # padding steps are the identity (decay 1, input 0)
        if SPLIT_N:  # reloaded (from L1) as the last load: its layout is the arithmetic's
            # (masked by the tile's index so that it is not hoisted out of the loop)
            A2 = tl.load(a2_at, mask=mask_nd & (tile < n_tiles), other=0.0)
        decay = _exp2(A2 * dt)  # (BLOCK_D, N, T)
        bx = Bt * (dt * u)
        bx = tl.where(first, decay * h + bx, bx)  # the carried state enters at the first step
        _, hs = tl.associative_scan((decay, bx), axis=2, combine_fn=_affine_combine)
        h = tl.sum(tl.where(last_step, hs, -0.0), axis=2, keep_dims=True)  # the tile's last state
        if SUMMARY:
            dsum += dt
        else:
            if PAIRS:  # each lane finishes and stores one step of its channels
                out = _state_sums_by_step(hs * Ct, SCATTER)  # (BLOCK_D, T, 1)
                t_s, _ = _tile_positions(tile, n_tiles, offs_s, T, rev)
                m_s = (t_s >= 0) & (t_s < length) & mask_d
                if HAS_D:
                    out += Dv * tl.load(u_base + t_s * su_t, mask=m_s, other=0.0).to(tl.float32)
                tl.store(y_base + t_s * sy_t, out.to(y_ptr.dtype.element_ty), mask=m_s)
            else:
                out = tl.sum(hs * Ct, axis=1, keep_dims=True)  # (BLOCK_D, 1, T)
                if HAS_D:
                    out += Dv * u
                if ACCUMULATE:
                    out += acc
                if HAS_Z:
                    out = out * zt * _sigmoid(zt)
                tl.store(y_base + t * sy_t, out.to(y_ptr.dtype.element_ty), mask=m)
            if SAVE_CK:  # the state at each multiple k * ck_steps of the position, k >= 1
                if (phase == 0) & (boundary > 0) & (boundary < length):
                    k = boundary // ck_steps - 1
                    # (B, n_ck, D, N): a thread's states are adjacent, as in the arithmetic
                    ck = ((pid_b * n_ck + k) * channels + offs_d) * N + offs_n
                    tl.store(ck_ptr + ck, h, mask=mask_nd)
                phase = _next_ck_phase(phase, ck_tiles, rev)
    if SUMMARY:
        summary = ((pid_b * n_seg + seg) * N + offs_n) * channels + offs_d
        tl.store(hseg_ptr + summary, h, mask=mask_nd)
        tl.store(dsum_ptr + (pid_b * n_seg + seg) * channels + offs_d,
                 tl.sum(dsum, axis=2, keep_dims=True), mask=mask_d)
    else:
        if seg == n_seg - 1:
            tl.store(last_ptr + (pid_b * channels + offs_d) * n_state + offs_n, h, mask=mask_nd)


_T_STRIDES = ["su_t", "sd_t", "sz_t", "sy_t"]


# Tiles are (BLOCK_D, N, T). Triton gives a load's lanes to its axes in the order of the
# contiguity of its addresses, ties going to the first axis. The time strides are left
# unspecialised so that the channel loads tie and their first axis (channels) gets the lanes
# with N and T in registers; B and C are loaded first in the loop body because Triton
# propagates the layout of the last load first: so the arithmetic takes the channel loads'
# layout, and only the small (1, N, T) B and C tiles are converted (through shared memory).
@triton.jit(do_not_specialize=_T_STRIDES)
def _tile_fwd(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, y_ptr, last_ptr, ck_ptr,
    hseg_ptr, dsum_ptr, a2_ptr,
    length, channels, chans_per_group, n_state, n_tiles, tiles_per_seg, n_seg, ck_steps, n_ck,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sy_b, sy_d, sy_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr, T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, ACCUMULATE: tl.constexpr, SUMMARY: tl.constexpr,
    SAVE_CK: tl.constexpr, SPLIT_N: tl.constexpr, A_IS_LOG: tl.constexpr,
    BC_ALIGN: tl.constexpr, EVEN_N: tl.constexpr,
):
    """One direction (``REVERSE`` 0/1): grid (batch, channel blocks, segments)."""
    _fwd_body(
        tl.program_id(0), tl.program_id(1), tl.program_id(2), REVERSE,
        u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, y_ptr, last_ptr, ck_ptr,
        hseg_ptr, dsum_ptr, a2_ptr,
        length, channels, chans_per_group, n_state, n_tiles, tiles_per_seg, n_seg, ck_steps, n_ck,
        su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sy_b, sy_d, sy_t,
        sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
        N, BLOCK_D, T, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, ACCUMULATE, SUMMARY, SAVE_CK, SPLIT_N,
        A_IS_LOG, BC_ALIGN, EVEN_N)


@triton.jit(do_not_specialize=_T_STRIDES)
def _tile_fwd_pair(
    u_f, delta_f, A_f, B_f, C_f, D_f, bias_f, y_f, last_f, ck_f,
    u_b, delta_b, A_b, B_b, C_b, D_b, bias_b, y_b, last_b, ck_b,
    a2_ptr,
    length, channels, chans_per_group, n_state, n_tiles, ck_steps, n_ck,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sy_b, sy_d, sy_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr, T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    SAVE_CK: tl.constexpr, SPLIT_N: tl.constexpr, A_IS_LOG: tl.constexpr,
    BC_ALIGN: tl.constexpr, EVEN_N: tl.constexpr, PAIRS: tl.constexpr, SCATTER: tl.constexpr,
):
    """Both directions of a bidirectional block in one launch, grid (batch, channel blocks, 2):
    each writes its ungated output to its own ``y`` (:func:`gate_sum` adds and gates), one
    segment per program."""
    rev = tl.program_id(2)
    r = rev == 1
    _fwd_body(
        tl.program_id(0), tl.program_id(1), 0, rev,
        tl.where(r, u_b, u_f), tl.where(r, delta_b, delta_f), tl.where(r, A_b, A_f),
        tl.where(r, B_b, B_f), tl.where(r, C_b, C_f), tl.where(r, D_b, D_f), u_f,
        tl.where(r, bias_b, bias_f), tl.where(r, y_b, y_f), tl.where(r, last_b, last_f),
        tl.where(r, ck_b, ck_f), a2_ptr, a2_ptr, a2_ptr + rev * (channels * N),
        length, channels, chans_per_group, n_state, n_tiles, n_tiles, 1, ck_steps, n_ck,
        su_b, su_d, su_t, sd_b, sd_d, sd_t, su_b, su_d, su_t, sy_b, sy_d, sy_t,
        sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
        N, BLOCK_D, T, HAS_D, False, HAS_BIAS, SOFTPLUS, False, False, SAVE_CK, SPLIT_N,
        A_IS_LOG, BC_ALIGN, EVEN_N, PAIRS, SCATTER)


@triton.jit
def _gate_sum_kernel(yf_ptr, yb_ptr, z_ptr, length, channels, sy_b, sy_d, sy_t, sz_b, sz_d, sz_t,
                     BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr):
    """``y_f = (y_f + y_b) * silu(z)`` on a ``(BLOCK_L, BLOCK_C)`` tile of one row."""
    pid_b, t, c, m = _row_tile(length, channels, BLOCK_L, BLOCK_C)
    y = pid_b * sy_b + c * sy_d + t * sy_t
    zt = tl.load(z_ptr + pid_b * sz_b + c * sz_d + t * sz_t, mask=m, other=0.0).to(tl.float32)
    out = (tl.load(yf_ptr + y, mask=m, other=0.0).to(tl.float32)
           + tl.load(yb_ptr + y, mask=m, other=0.0).to(tl.float32))
    tl.store(yf_ptr + y, (out * zt * _sigmoid(zt)).to(yf_ptr.dtype.element_ty), mask=m)


# --- launcher -------------------------------------------------------------------------------


def tile_config(batch: int, channels: int, length: int) -> dict:
    """``T`` steps per tile, ``BLOCK_D`` channels per program (one per thread) and the number of
    sequence segments (``VIDEOMAMBA_TILE_CONFIG="T,BLOCK_D,n_seg"``; ``n_seg`` 0 = automatic: split
    the sequence only when one program per (row, channel block) leaves most of the GPU idle)."""
    if interpreting():
        t, block_d, n_seg = 4, 8, int(os.environ.get("VIDEOMAMBA_TILE_SEGMENTS", "2"))
    else:
        text = os.environ.get("VIDEOMAMBA_TILE_CONFIG")
        # default: the best of the sweep at B=8, D=768, L=3137 on an H200 (docs/kernels.md)
        t, block_d, n_seg = (int(v) for v in text.split(",")) if text else (16, 8, 0)
    n_tiles = cdiv(max(length, 1), t)
    if n_seg <= 0:  # about 4 warps per SM at least (one program is max(BLOCK_D / 32, 1) warps)
        programs = batch * cdiv(channels, block_d)
        n_seg = max(1, min(4, (4 * multiprocessors(132)) // max(programs * max(block_d // 32, 1),
                                                               1)))
    n_seg = max(1, min(n_seg, n_tiles))
    tiles_per_seg = cdiv(n_tiles, n_seg)
    return {"T": t, "block_d": block_d, "n_seg": cdiv(n_tiles, tiles_per_seg),
            "tiles_per_seg": tiles_per_seg}


def tile_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=False, out=None,
             ck_steps: int = 0, accumulate: bool | None = None,
             a_is_log: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Forward on the tiled kernel. Returns ``(y, last (B, D, N) float32, ck)`` where ``ck``
    ``(B, n_ck, D, N_pow2)`` float32 holds, for k = 1 .. n_ck = (L - 1) // ck_steps, the state
    after the positions below k * ck_steps (with ``reverse``, at and above it); ``ck_steps`` is a
    multiple of the tile length, 0 stores none. ``y`` is written into ``out`` (any strides) when
    given, added to what it holds when ``accumulate`` (default: whenever ``out`` is given). With
    ``a_is_log``, ``A`` is ``A_log`` and the kernel uses ``-exp(A_log)``."""
    batch, channels, length = u.shape
    n_state = A.shape[1]
    B4, C4 = as_groups(B), as_groups(C)
    chans_per_group = channels // B4.shape[1]
    cfg = tile_config(batch, channels, length)
    t = cfg["T"]
    block_d = block_for_groups(cfg["block_d"], chans_per_group)
    n_pow2 = max(next_power_of_2(n_state), 2)
    n_seg, tiles_per_seg = cfg["n_seg"], cfg["tiles_per_seg"]
    if ck_steps % t:
        raise ValueError(f"checkpoint interval {ck_steps} is not a multiple of the tile length {t}")
    n_ck = (length - 1) // ck_steps if ck_steps else 0
    dev = u.device
    f32 = dict(device=dev, dtype=torch.float32)
    # every element is written by the last segment's programs (zeros for an empty sequence)
    last = (torch.empty if length > 0 else torch.zeros)(batch, channels, n_state, **f32)
    ck = torch.empty(batch, n_ck, channels, n_pow2, **f32)
    hseg = torch.empty(batch, n_seg, n_pow2, channels, **f32)
    dsum = torch.empty(batch, n_seg, channels, **f32)
    y = out if out is not None else torch.empty_like(u, memory_format=torch.contiguous_format)
    zz = z if z is not None else u
    bias = delta_bias if delta_bias is not None else u
    At, sA_d, sA_n = a_layout(A)
    grid = (batch, cdiv(channels, block_d), n_seg)
    a2 = torch.empty(channels, n_pow2, **f32)  # A * log2(e), written by the programs
    args = (u, delta, At, B4, C4, D if D is not None else u, zz, bias, y, last, ck, hseg, dsum, a2,
            length, channels, chans_per_group, n_state, cdiv(max(length, 1), t),
            tiles_per_seg, n_seg, max(ck_steps, 1), n_ck,
            *u.stride(), *delta.stride(), *zz.stride(), *y.stride(),
            *B4.stride(), *C4.stride(), sA_d, sA_n)
    flags = dict(N=n_pow2, BLOCK_D=block_d, T=t, HAS_D=D is not None,
                 HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                 SOFTPLUS=bool(delta_softplus), REVERSE=int(bool(reverse)),
                 ACCUMULATE=out is not None if accumulate is None else bool(accumulate),
                 SPLIT_N=block_d < 32, A_IS_LOG=bool(a_is_log), BC_ALIGN=bc_alignment(B4, C4),
                 EVEN_N=n_pow2 == n_state,
                 num_warps=max(block_d // 32, 1))
    if n_seg > 1:
        launch(_tile_fwd, grid, *args, SUMMARY=True, SAVE_CK=False, **flags)
    launch(_tile_fwd, grid, *args, SUMMARY=False, SAVE_CK=n_ck > 0, **flags)
    return y, last, ck


def pair_forward_config(batch: int, channels: int) -> tuple[int, int, int]:
    """``(T, BLOCK_D, maxnreg)`` of :func:`tile_fwd_pair` (``VIDEOMAMBA_FWD_PAIR_TILE=
    "T,BLOCK_D[,maxnreg]"``, ``maxnreg`` 0 = no register cap). Default: 8-step tiles of 8
    channels (123 registers) while both directions' programs fit 12 warps per SM, else 16
    channels per program (168 registers, half the programs; a thread holds two channels that
    share their B and C values). Runs 54 and 57, H200, the two scans of a mixer at L = 1569 /
    12545: batch 8 0.240 / 1.866 ms at 8 channels against 0.256 / 1.962 at 16; batch 16 0.473 /
    3.737 against 0.367 / 2.857; batch 32 0.926 / 7.394 against 0.718 / 5.655."""
    text = os.environ.get("VIDEOMAMBA_FWD_PAIR_TILE")
    if not text and interpreting():
        return 4, 8, 0
    if not text:
        fits = 2 * batch * cdiv(channels, 8) <= 12 * multiprocessors(132)
        return 8, 8 if fits else 16, 0
    values = [int(v) for v in text.split(",")]
    if len(values) not in (2, 3):
        raise ValueError(f"VIDEOMAMBA_FWD_PAIR_TILE={text!r}: expected T,BLOCK_D[,maxnreg]")
    t, block_d, maxnreg = (values + [0])[:3]
    return t, block_d, maxnreg


def pairs_layout(t: int, block_d: int, n_pow2: int) -> bool:
    """Whether the pair forward runs in the ``PAIRS`` layout (:func:`_state_offsets`: 2 channels x
    2 states per thread on 4 channel x 8 state lanes; ``VIDEOMAMBA_FWD_PAIRS``: ``auto`` or
    ``1``: yes, ``0``: 1 channel x 4 states per thread on 8 x 4 lanes). It needs 8-step tiles
    of 8 channels and 16 states (the batch-8 tile at D=768). A thread then receives 8 bytes per
    state and step instead of 10 (B and C per state, delta and u per channel) and the output is
    reduce-scattered; run 68, H200, the mixer's two forward scans at batch 8: 0.224 against
    0.241 ms at L=1569, 1.763 against 1.867 at L=12545 (docs/kernels.md, session 9)."""
    mode = os.environ.get("VIDEOMAMBA_FWD_PAIRS", "auto")
    fits = t == 8 and block_d == 8 and n_pow2 == 16
    return fits and mode in ("auto", "1")


def pair_forward_fits() -> bool:
    """Whether the mixer runs both directions' forwards in one launch (``VIDEOMAMBA_FWD_PAIR``:
    ``auto`` or ``1``: yes, ``0``: one launch per direction). One launch was faster at every
    batch of runs 54 and 57 (1-32, L = 1569 and 12545) but one: batch 1 at L = 12545, where the
    split launches cut each direction's sequence into segments (0.887 against 0.941 ms). The
    CPU interpreter runs the split launches unless ``1`` is set."""
    mode = os.environ.get("VIDEOMAMBA_FWD_PAIR", "auto")
    if mode != "auto":
        return mode == "1"
    return not interpreting()


def tile_fwd_pair(f: tuple, b: tuple, z: Tensor, delta_softplus: bool, y: Tensor,
                  ck_steps: int = 0, a_is_log: bool = True) -> tuple[Tensor, Tensor]:
    """Both directions of a bidirectional block in one launch: ``y = silu(z) * (scan_f +
    reverse_scan_b)`` written into ``y`` ``(B, D, L)`` (any strides), and each direction's
    states every ``ck_steps`` (as :func:`tile_fwd`'s ``ck``). ``f``/``b``: each direction's
    ``(u, delta, A, B, C, D, delta_bias)`` with the same strides. The reverse direction writes
    its ungated output to a buffer in ``y``'s layout that :func:`gate_sum` adds."""
    u, delta, A, _, _, D, delta_bias = f
    batch, channels, length = u.shape
    n_state = A.shape[1]
    B4s, C4s = pair_groups(f, b, "tile_fwd_pair")
    chans_per_group = channels // B4s[0].shape[1]
    t, block_d, maxnreg = pair_forward_config(batch, channels)
    block_d = block_for_groups(block_d, chans_per_group)
    if ck_steps % t:
        raise ValueError(f"checkpoint interval {ck_steps} is not a multiple of the tile length {t}")
    n_pow2 = max(next_power_of_2(n_state), 2)
    n_ck = (length - 1) // ck_steps if ck_steps else 0
    f32 = dict(device=u.device, dtype=torch.float32)
    y_b = torch.empty_strided(y.shape, y.stride(), dtype=y.dtype, device=y.device)
    per_dir = []
    for (u_, delta_, A_, _, _, D_, bias_), B4, C4, out in zip((f, b), B4s, C4s, (y, y_b)):
        At, sA_d, sA_n = a_layout(A_)
        per_dir.append((u_, delta_, At, B4, C4, D_ if D_ is not None else u_,
                        bias_ if bias_ is not None else u_, out,
                        torch.empty(batch, channels, n_state, **f32),
                        torch.empty(batch, n_ck, channels, n_pow2, **f32)))
    a2 = torch.empty(2, channels, n_pow2, **f32)
    args = (*per_dir[0], *per_dir[1], a2, length, channels, chans_per_group, n_state,
            cdiv(max(length, 1), t), max(ck_steps, 1), n_ck,
            *u.stride(), *delta.stride(), *y.stride(), *B4s[0].stride(), *C4s[0].stride(),
            sA_d, sA_n)
    launch(
        _tile_fwd_pair, (batch, cdiv(channels, block_d), 2),
        *args, N=n_pow2, BLOCK_D=block_d, T=t, HAS_D=D is not None,
        HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus), SAVE_CK=n_ck > 0,
        SPLIT_N=block_d < 32, A_IS_LOG=bool(a_is_log), BC_ALIGN=bc_alignment(*B4s, *C4s),
        EVEN_N=n_pow2 == n_state, num_warps=max(block_d // 32, 1),
        PAIRS=pairs_layout(t, block_d, n_pow2), SCATTER=not interpreting(),
        **({"maxnreg": maxnreg} if maxnreg else {}))
    gate_sum(y, y_b, z)
    return per_dir[0][9], per_dir[1][9]


def gate_sum(y_f: Tensor, y_b: Tensor, z: Tensor) -> Tensor:
    """``y_f = (y_f + y_b) * silu(z)`` in place: ``(B, D, L)``, ``y_b`` in ``y_f``'s strides,
    ``z`` any strides."""
    _, channels, length = y_f.shape
    launch(
        _gate_sum_kernel, row_tile_grid(y_f.shape),
        y_f, y_b, z, length, channels, *y_f.stride(), *z.stride(), BLOCK_L=ROW_TILE[0],
        BLOCK_C=ROW_TILE[1], num_warps=4)
    return y_f
