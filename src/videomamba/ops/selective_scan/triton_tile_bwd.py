"""Backward of the tiled scan ("lean" backward; forward: ``triton_tile.py``).

The sequence is cut into segments (``triton_common.segment_length``, aligned to position 0) and
walked in the forward's tiles and layout. ``SUMMARY`` programs compute each segment's adjoint at
its first scan step from a zero carry, and the sum of ``delta_{next(t)}`` over it (the decay
that the carry from the following segment sees). The gradient programs fold those into their
carry, take their entry state from the forward's stored states, walk their segment once
forwards storing each tile's entry state into a per-program scratch (pass 1), then walk it back
tile by tile (pass 2): the tile's states again (one scan), the adjoint, and every gradient of
the tile; dB and dC (sums over channels) go out as float32 atomics per tile, summed over the
warp's 8 channels first by a reduce-scatter in inline PTX on the GPU (each lane ends with 4 of
the 128 sums: 28 shuffles instead of two butterfly all-reduces' 96; ``_bc_mode``). B and C are
loaded as ``(1, N, T)``, once per (state, step), not once per channel. With
``x_t = delta_t B_t u_t`` and ``exp(delta_t A) h_{t-1} = h_t - x_t`` (no division by a decay
that may underflow):

    du     = delta * sum_n g B + D * dout            ddelta = u * sum_n g B + sum_n g A (h - x)
    dA     = sum_{b,t} g delta (h - x)               dB = sum_d g delta u,   dC = sum_d dout h
    dD     = sum_{b,t} dout u                        dz = dy * out * silu'(z)

then ``ddelta`` goes through softplus (times sigmoid of its input) and sums into ``ddelta_bias``.

* **One load and one exponential per step in pass 2.** The adjoint
  ``g_t = c_t + a_{t+1} g_{t+1}`` (``a`` the decay, ``c = C dout``) runs over the flipped tile
  (a flip along the in-register axis is register renaming) as a scan whose elements carry their
  own decay to the next element: ``(p, q, a)`` composes as ``(p2 + q2 a1 p1, q2 a1 q1, a2)``, so
  the decay of the step after the tile enters with the carry and no shifted load is needed.
* **Optionally persistent programs** (``slots_per_sm`` > 0; not the default, it measured
  slower). A fixed grid of programs (what fits on the GPU at once) loops over the work items
  (batch row, channel block, segment), so the scratch holding each tile's entry state is
  ``programs * seg_len / T`` states instead of one per tile of the whole problem
  (``B*D*N*L/T`` float32: 155 MB at B=8, D=768, L=1569). The default grid is one program per
  work item (a loop of one iteration).

* **Both directions in one launch without SUMMARY** (``_tile_bwd_pair``, :func:`lean_bwd_pair`;
  the mixer's default when the grid fills the GPU, :func:`pair_programs_fill_gpu`). One program
  per (direction, batch row, channel block) walks all its segments from its scan's end back and
  carries the adjoint across them, so no SUMMARY pass and no fold are needed and the scratch is
  one segment per program. Both directions share one body (``_lean_body``): the direction is a
  0/1 value in the index arithmetic (constant in ``_tile_bwd_lean``), not a code path, and each
  direction writes its ungated output for :func:`gate_grad`, which forms ``dz``.

The gate: ``Z_MODE`` 0 takes ``dz`` from this direction's own output; 1 only writes the ungated
output to ``partner`` (the first of two directions, no gate; both directions of the pair
kernel); 2 adds ``partner`` to its own output before computing ``dz`` (the second direction of
the segmented bidirectional pair, which owns the gate). Measurements: ``docs/kernels.md``
(version 4, sessions 5-6).
"""

from __future__ import annotations

import os
from typing import NamedTuple

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
    _softplus,
    _softplus_sigmoid,
    _aligned,
    _row_tile,
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
def _shifted_decay_combine(p1, q1, a1, p2, q2, a2):
    """Compose adjoint steps ``g -> p + q * a_prev * g`` (``1`` first, reverse scan order); each
    element's own decay ``a`` multiplies the adjoint it hands to the next element."""
    return p2 + q2 * a1 * p1, q2 * a1 * q1, a2


@triton.jit
def _channel_sums_scattered(vb, vc, offs_dl):
    """Sums over the 8 channels of ``vb`` and ``vc`` ``(8, 16, 4)`` (one channel per lane
    group: channel bits 0, 1, 2 are lane bits 2, 3, 4 of the arithmetic layout, states and
    steps in the thread), reduced and scattered in three exchange levels (28 shuffles where two
    butterfly all-reduces take 96): returns ``(8, 16, 1)`` holding, in the lanes of channel
    ``c``, ``vc``'s sums if bit 2 of ``c`` is set else ``vb``'s, at tile step
    ``2 * (c & 1) + ((c >> 1) & 1)``."""
    shape: tl.constexpr = vb.shape
    bit2 = tl.broadcast_to((offs_dl >> 2) & 1, shape)
    r = _exchange_add(vb, vc, bit2, tl.full(shape, 16, tl.int32))
    lo, hi = tl.split(tl.reshape(r, (shape[0], shape[1], 2, 2)))  # even / odd steps
    half: tl.constexpr = (shape[0], shape[1], 2)
    r = _exchange_add(lo, hi, tl.broadcast_to((offs_dl >> 1) & 1, half),
                      tl.full(half, 8, tl.int32))
    lo, hi = tl.split(tl.reshape(r, (shape[0], shape[1], 1, 2)))
    one: tl.constexpr = (shape[0], shape[1], 1)
    return _exchange_add(lo, hi, tl.broadcast_to(offs_dl & 1, one), tl.full(one, 4, tl.int32))


@triton.jit
def _delta(raw, bias, m, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """delta after bias and softplus, 0 outside the sequence (a padding step is the identity)."""
    dt = raw.to(tl.float32)
    if HAS_BIAS:
        dt = dt + bias
    if SOFTPLUS:
        dt = _softplus(dt)
    return tl.where(m, dt, 0.0)


@triton.jit
def _delta_and_slope(raw, bias, m, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """:func:`_delta` and, with ``SOFTPLUS``, the softplus's derivative ``sigmoid(raw + bias)``
    (from the same exponential; 1.0 without softplus)."""
    dt = raw.to(tl.float32)
    if HAS_BIAS:
        dt = dt + bias
    slope = tl.full(dt.shape, 1.0, tl.float32)
    if SOFTPLUS:
        dt, slope = _softplus_sigmoid(dt)
    return tl.where(m, dt, 0.0), slope


@triton.jit
def _tile_steps(i, seg, seg_len, n_t, offs_t, T: tl.constexpr, rev):
    """Tile ``i`` of segment ``seg``: its lowest position and its positions ``(1, 1, T)`` in scan
    order (a reverse scan, ``rev`` 1, walks the segment's tiles from the top). ``rev`` is 0/1, a
    constant in the one-direction kernel and a value in the pair kernel: arithmetic, no branch."""
    low = seg * seg_len + (i + rev * (n_t - 1 - 2 * i)) * T
    t = low + offs_t + rev * (T - 1 - 2 * offs_t)
    return low, t


@triton.jit
def _grad_tile_loads(i, seg, seg_len, n_t, length, offs_t, mask_d, mask_nd, bc_mask, B_base,
                     C_base, scratch, d_base, u_base, z_base, dy_ptr, partner_ptr, g_off, sB_t,
                     sC_t, sd_t, su_t, sz_t, sg_t, N: tl.constexpr, BLOCK_D: tl.constexpr,
                     T: tl.constexpr, HAS_Z: tl.constexpr, Z_MODE: tl.constexpr, rev):
    """The raw inputs of the gradient pass's tile ``i`` (stand-ins for the unused ones); ``i``
    may be -1 (the prefetch after the last tile): its entry state is not read."""
    _, t = _tile_steps(i, seg, seg_len, n_t, offs_t, T, rev)
    valid = (t >= 0) & (t < length)
    m = valid & mask_d
    Ct = tl.load(C_base + t * sC_t, mask=valid & bc_mask, other=0.0)
    Bt = tl.load(B_base + t * sB_t, mask=valid & bc_mask, other=0.0)
    h = tl.load(scratch + i * (N * BLOCK_D), mask=mask_nd & (i >= 0), other=0.0)
    dt_raw = tl.load(d_base + t * sd_t, mask=m, other=0.0)
    u = tl.load(u_base + t * su_t, mask=m, other=0.0)
    dy = tl.load(dy_ptr + g_off + t * sg_t, mask=m, other=0.0)
    zt = u
    partner = dy
    if HAS_Z:
        zt = tl.load(z_base + t * sz_t, mask=m, other=0.0)
        if Z_MODE == 2:
            partner = tl.load(partner_ptr + g_off + t * sg_t, mask=m, other=0.0)
    return Ct, Bt, h, dt_raw, u, dy, zt, partner


@triton.jit
def _lean_body(
    work_first, work_step, rev,
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dy_ptr, dlast_ptr,
    ck_ptr, gseg_ptr, dnext_ptr, scratch_ptr, a2_ptr,
    du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr, partner_ptr,
    batch, n_blocks, length, channels, chans_per_group, n_state, seg_len, n_seg, n_ck,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sg_b, sg_d, sg_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr, T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_DLAST: tl.constexpr, Z_MODE: tl.constexpr, SUMMARY: tl.constexpr, SPLIT_N: tl.constexpr,
    BC_ATOMICS: tl.constexpr, BC_MODE: tl.constexpr, PREFETCH: tl.constexpr,
    A_IS_LOG: tl.constexpr, SEQ: tl.constexpr, BC_ALIGN: tl.constexpr, EVEN_N: tl.constexpr,
):
    """The work items ``work_first, work_first + work_step, ...`` of one direction (``rev``):
    (batch row, channel block, segment), or with ``SEQ`` (batch row, channel block) walking all
    its segments from the scan's end back, the adjoint carried across them (no SUMMARY pass)."""
    offs_dl = tl.arange(0, BLOCK_D)[:, None, None]
    offs_n = tl.arange(0, N)[None, :, None]  # (1, N, 1)
    offs_t = tl.arange(0, T)[None, None, :]  # (1, 1, T)
    mask_n = offs_n < n_state
    if EVEN_N:  # a constant mask lets the B/C loads be vectorised along the states
        mask_n = tl.full((1, N, 1), 1, tl.int1)
    sB_b, sB_g, sB_t = _aligned(sB_b, BC_ALIGN), _aligned(sB_g, BC_ALIGN), _aligned(sB_t, BC_ALIGN)
    sC_b, sC_g, sC_t = _aligned(sC_b, BC_ALIGN), _aligned(sC_g, BC_ALIGN), _aligned(sC_t, BC_ALIGN)
    n_groups = channels // chans_per_group
    first = offs_t == 0
    last_step = offs_t == T - 1
    n_t = seg_len // T
    last_t = (1 - rev) * (length - 1)  # the scan's last step: L - 1, or 0 in reverse
    # this program's scratch slot: the entry state of each tile of its current segment
    scratch = (scratch_ptr + tl.program_id(0).to(tl.int64) * (n_t * N * BLOCK_D)
               + offs_dl * N + offs_n)  # states fastest: the arithmetic's layout
    if SEQ:
        n_work = batch * n_blocks
        n_walk = n_seg
    else:
        n_work = batch * n_blocks * n_seg
        n_walk = 1
    for work in range(work_first, n_work, work_step):
        pid_b = work % batch
        pid_d = (work // batch) % n_blocks
        seg_w = work // (batch * n_blocks)  # 0 with SEQ
        offs_d = pid_d * BLOCK_D + offs_dl  # (BLOCK_D, 1, 1)
        mask_d = offs_d < channels
        mask_nd = mask_n & mask_d
        bc_mask = mask_n  # B and C as (1, N, T): one load per (state, step), not per channel
        group = (pid_d * BLOCK_D) // chans_per_group
        a_ptrs = A_ptr + offs_d * sA_d + offs_n * sA_n
        A2 = _a_log2e(tl.load(a_ptrs, mask=mask_nd, other=0.0), A_IS_LOG)  # (BLOCK_D, N, 1)
        a2_ptrs = a2_ptr + offs_d * N + offs_n
        if SPLIT_N:  # A2 for the loops' reloads, which then skip A_log's exponential (every
            # program of a channel block writes the same values)
            tl.store(a2_ptrs, A2, mask=mask_nd)
            tl.debug_barrier()
        bias = 0.0
        if HAS_BIAS:
            bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        Dv = 0.0
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        u_base = u_ptr + pid_b * su_b + offs_d * su_d
        d_base = delta_ptr + pid_b * sd_b + offs_d * sd_d
        z_base = z_ptr + pid_b * sz_b + offs_d * sz_d
        g_off = pid_b * sg_b + offs_d * sg_d
        B_base = B_ptr + pid_b * sB_b + group * sB_g + offs_n * sB_n
        C_base = C_ptr + pid_b * sC_b + group * sC_g + offs_n * sC_n
        dbc_base = ((pid_b * n_groups + group) * n_state + offs_n) * length  # (1, N, 1)
        dlast = 0.0
        if HAS_DLAST:
            dlast = tl.load(dlast_ptr + (pid_b * channels + offs_d) * n_state + offs_n,
                            mask=mask_nd, other=0.0)

        if SUMMARY:  # the adjoint at the segment's first scan step from a zero carry, and the
            # sum of delta_{next(t)} over the segment
            seg = seg_w
            g_carry = tl.zeros((BLOCK_D, N, 1), dtype=tl.float32)
            dnext_acc = tl.zeros((BLOCK_D, 1, T), dtype=tl.float32)
            for ii in range(0, n_t):
                # the segment's tiles from its scan end back, each tile's steps in reverse
                # scan order (t_r), with the step after each (t_rnx) for its decay
                i = n_t - 1 - ii
                low = seg * seg_len + (i + rev * (n_t - 1 - 2 * i)) * T
                t_r = low + (T - 1 - offs_t) + rev * (2 * offs_t - (T - 1))
                t_rnx = t_r + 1 - 2 * rev
                valid_r = (t_r >= 0) & (t_r < length)
                m_r = valid_r & mask_d
                m_rnx = (t_rnx >= 0) & (t_rnx < length) & mask_d
                C_r = tl.load(C_base + t_r * sC_t, mask=valid_r & bc_mask, other=0.0)
                dtn_r = tl.load(d_base + t_rnx * sd_t, mask=m_rnx, other=0.0)
                dout_r = tl.load(dy_ptr + g_off + t_r * sg_t, mask=m_r, other=0.0).to(tl.float32)
                if HAS_Z:
                    z_r = tl.load(z_base + t_r * sz_t, mask=m_r, other=0.0).to(tl.float32)
                    dout_r = dout_r * z_r * _sigmoid(z_r)
                if SPLIT_N:  # the last load: its layout is the arithmetic's (see triton_tile)
                    A2 = tl.load(a2_ptrs, mask=mask_nd & (low < length), other=0.0)
                dtn_r = _delta(dtn_r, bias, m_rnx, HAS_BIAS, SOFTPLUS)
                c_r = C_r.to(tl.float32) * dout_r
                if HAS_DLAST:
                    c_r += tl.where(t_r == last_t, dlast, 0.0)
                decay_nx = _exp2(A2 * dtn_r)
                c_r = tl.where(first, c_r + decay_nx * g_carry, c_r)
                _, g_r = tl.associative_scan((decay_nx, c_r), axis=2, combine_fn=_affine_combine)
                g_carry = tl.sum(tl.where(last_step, g_r, -0.0), axis=2, keep_dims=True)
                dnext_acc += dtn_r
            summary = ((pid_b * n_seg + seg) * N + offs_n) * channels + offs_d
            tl.store(gseg_ptr + summary, g_carry, mask=mask_nd)
            tl.store(dnext_ptr + (pid_b * n_seg + seg) * channels + offs_d,
                     tl.sum(dnext_acc, axis=2, keep_dims=True), mask=mask_d)
        else:
            # adjoint carry: at the first scan step after the segment, with that step's decay
            g_carry = tl.zeros((BLOCK_D, N, 1), dtype=tl.float32)
            a_carry = tl.zeros((BLOCK_D, N, 1), dtype=tl.float32) + 1.0
            if not SEQ:  # fold the summaries of the segments after this one
                seg = seg_w
                count = (n_seg - 1 - seg) + rev * (2 * seg - n_seg + 1)
                t_after = (seg + 1) * seg_len - rev * (seg_len + 1)
                for k in range(0, count):  # from the scan's end back
                    j = (n_seg - 1 - k) + rev * (2 * k - n_seg + 1)
                    sj = ((pid_b * n_seg + j) * N + offs_n) * channels + offs_d
                    gj = tl.load(gseg_ptr + sj, mask=mask_nd, other=0.0)
                    dj = tl.load(dnext_ptr + (pid_b * n_seg + j) * channels + offs_d,
                                 mask=mask_d, other=0.0)
                    g_carry = _exp2(A2 * dj) * g_carry + gj
                m_after = (t_after >= 0) & (t_after < length) & mask_d
                dt_after = _delta(tl.load(d_base + t_after * sd_t, mask=m_after, other=0.0),
                                  bias, m_after, HAS_BIAS, SOFTPLUS)
                a_carry = _exp2(A2 * dt_after)  # (BLOCK_D, N, 1)
            dA_acc = tl.zeros((BLOCK_D, N, 1), dtype=tl.float32)
            dD_acc = tl.zeros((BLOCK_D, 1, 1), dtype=tl.float32)
            dbias_acc = tl.zeros((BLOCK_D, 1, 1), dtype=tl.float32)
            for s in range(0, n_walk):
                if SEQ:  # the segments from the scan's end back
                    seg = s + (1 - rev) * (n_seg - 1 - 2 * s)
                else:
                    seg = seg_w
                # pass 1: each tile's entry state into this program's scratch slot
                k_entry = seg - 1 + rev
                ck = ((pid_b * n_ck + k_entry) * channels + offs_d) * N + offs_n
                h = tl.load(ck_ptr + ck, mask=mask_nd & (k_entry >= 0) & (k_entry < n_ck),
                            other=0.0)
                for i in range(0, n_t):
                    tl.store(scratch + i * (N * BLOCK_D), h, mask=mask_nd)
                    low, t = _tile_steps(i, seg, seg_len, n_t, offs_t, T, rev)
                    valid = (t >= 0) & (t < length)
                    m = valid & mask_d
                    Bt = tl.load(B_base + t * sB_t, mask=valid & bc_mask, other=0.0).to(tl.float32)
                    dt = tl.load(d_base + t * sd_t, mask=m, other=0.0)
                    u = tl.load(u_base + t * su_t, mask=m, other=0.0).to(tl.float32)
                    if SPLIT_N:
                        A2 = tl.load(a2_ptrs, mask=mask_nd & (low < length), other=0.0)
                    dt = _delta(dt, bias, m, HAS_BIAS, SOFTPLUS)
                    decay = _exp2(A2 * dt)
                    bx = Bt * (dt * u)
                    bx = tl.where(first, decay * h + bx, bx)
                    _, hs = tl.associative_scan((decay, bx), axis=2, combine_fn=_affine_combine)
                    h = tl.sum(tl.where(last_step, hs, -0.0), axis=2, keep_dims=True)

                # pass 2: the tiles from the segment's scan end back, each loaded once (with
                # PREFETCH, the loads of the next tile are issued before this tile's arithmetic)
                if PREFETCH:
                    nxt = _grad_tile_loads(n_t - 1, seg, seg_len, n_t, length, offs_t, mask_d,
                                           mask_nd, bc_mask, B_base, C_base, scratch, d_base,
                                           u_base, z_base, dy_ptr, partner_ptr, g_off, sB_t, sC_t,
                                           sd_t, su_t, sz_t, sg_t, N, BLOCK_D, T, HAS_Z, Z_MODE,
                                           rev)
                for ii in range(0, n_t):
                    i = n_t - 1 - ii
                    low, t = _tile_steps(i, seg, seg_len, n_t, offs_t, T, rev)
                    valid = (t >= 0) & (t < length)
                    m = valid & mask_d
                    if PREFETCH:
                        Ct, Bt, h, dt_raw, u, dy, zt, partner = nxt
                        nxt = _grad_tile_loads(i - 1, seg, seg_len, n_t, length, offs_t, mask_d,
                                               mask_nd, bc_mask, B_base, C_base, scratch, d_base,
                                               u_base, z_base, dy_ptr, partner_ptr, g_off, sB_t,
                                               sC_t, sd_t, su_t, sz_t, sg_t, N, BLOCK_D, T, HAS_Z,
                                               Z_MODE, rev)
                    else:
                        Ct, Bt, h, dt_raw, u, dy, zt, partner = _grad_tile_loads(
                            i, seg, seg_len, n_t, length, offs_t, mask_d, mask_nd, bc_mask,
                            B_base, C_base, scratch, d_base, u_base, z_base, dy_ptr, partner_ptr,
                            g_off, sB_t, sC_t, sd_t, su_t, sz_t, sg_t, N, BLOCK_D, T, HAS_Z,
                            Z_MODE, rev)
                    Ct, Bt, u = Ct.to(tl.float32), Bt.to(tl.float32), u.to(tl.float32)
                    dy, zt = dy.to(tl.float32), zt.to(tl.float32)
                    if SPLIT_N:  # masked by the tile's position: a tile with no valid step gets
                        # A = 0
                        A2 = tl.load(a2_ptrs, mask=mask_nd & (low < length), other=0.0)
                    dt, dsoftplus = _delta_and_slope(dt_raw, bias, m, HAS_BIAS, SOFTPLUS)
                    decay = _exp2(A2 * dt)  # (BLOCK_D, N, T)
                    bx = Bt * (dt * u)
                    _, hs = tl.associative_scan((decay, tl.where(first, decay * h + bx, bx)),
                                                axis=2, combine_fn=_affine_combine)
                    dout = dy
                    if HAS_Z:
                        sig = _sigmoid(zt)
                        dout = dy * zt * sig
                    c = Ct * dout
                    if HAS_DLAST:
                        c += tl.where(t == last_t, dlast, 0.0)
                    # the adjoint over the flipped tile; the carry enters with the decay after it
                    c_f = tl.flip(c, 2)
                    c_f = tl.where(first, c_f + a_carry * g_carry, c_f)
                    g_f, _, _ = tl.associative_scan((c_f, tl.full(c_f.shape, 1.0, tl.float32),
                                                     tl.flip(decay, 2)), axis=2,
                                                    combine_fn=_shifted_decay_combine)
                    g_carry = tl.sum(tl.where(last_step, g_f, -0.0), axis=2, keep_dims=True)
                    a_carry = tl.sum(tl.where(first, decay, -0.0), axis=2, keep_dims=True)
                    g = tl.flip(g_f, 2)
                    if HAS_Z:
                        out = tl.sum(hs * Ct, axis=1, keep_dims=True)
                        if HAS_D:
                            out += Dv * u
                        if Z_MODE == 1:
                            tl.store(partner_ptr + g_off + t * sg_t, out, mask=m)
                        else:
                            if Z_MODE == 2:
                                out += partner
                            dz = dy * out * sig * (1.0 + zt * (1.0 - sig))
                            tl.store(dz_ptr + g_off + t * sg_t, dz.to(dz_ptr.dtype.element_ty),
                                     mask=m)
                    decayed = hs - bx  # exp(delta_t A) h_{t-1}
                    gB = tl.sum(g * Bt, axis=1, keep_dims=True)  # (BLOCK_D, 1, T)
                    du = dt * gB
                    if HAS_D:
                        du += Dv * dout
                        dD_acc += tl.sum(dout * u, axis=2, keep_dims=True)
                    gdh = g * decayed
                    ddt = u * gB + tl.sum(gdh * A2, axis=1, keep_dims=True) * 0.6931471805599453
                    dA_acc += tl.sum(gdh * dt, axis=2, keep_dims=True)
                    if SOFTPLUS:
                        ddt = ddt * dsoftplus
                    ddt = tl.where(m, ddt, 0.0)
                    dbias_acc += tl.sum(ddt, axis=2, keep_dims=True)
                    tl.store(du_ptr + g_off + t * sg_t, du.to(du_ptr.dtype.element_ty), mask=m)
                    tl.store(ddelta_ptr + g_off + t * sg_t,
                             ddt.to(ddelta_ptr.dtype.element_ty), mask=m)
                    if BC_MODE == 1:  # each lane adds its own channel's terms: 8x the atomics
                        at_t = dbc_base + t + offs_dl * 0
                        tl.atomic_add(dB_ptr + at_t, g * (dt * u), mask=valid & mask_nd,
                                      sem="relaxed")
                        tl.atomic_add(dC_ptr + at_t, hs * dout, mask=valid & mask_nd,
                                      sem="relaxed")
                    elif BC_MODE == 2:  # reduce-scatter: each lane adds 4 finished sums
                        sums = _channel_sums_scattered(g * (dt * u), hs * dout, offs_dl)
                        j = 2 * (offs_dl & 1) + ((offs_dl >> 1) & 1)  # (BLOCK_D, 1, 1): step
                        t_j = low + j + rev * (T - 1 - 2 * j)
                        to_c = ((offs_dl >> 2) & 1) == 1
                        dbc = tl.where(to_c, dC_ptr, dB_ptr) + dbc_base + t_j
                        tl.atomic_add(dbc, sums, mask=(t_j >= 0) & (t_j < length) & mask_n,
                                      sem="relaxed")
                    else:  # summed over the warp's channels (shuffles), one atomic per (n, t)
                        dB_t = tl.sum(g * (dt * u), axis=0, keep_dims=True)  # (1, N, T)
                        dC_t = tl.sum(hs * dout, axis=0, keep_dims=True)
                        mbc = valid & mask_n
                        if BC_ATOMICS:
                            tl.atomic_add(dB_ptr + dbc_base + t, dB_t, mask=mbc, sem="relaxed")
                            tl.atomic_add(dC_ptr + dbc_base + t, dC_t, mask=mbc, sem="relaxed")
                        else:  # timing ablation only (dB, dC wrong): what the atomics cost
                            keep = (dB_t + dC_t) == 12345.0
                            tl.atomic_add(dB_ptr + dbc_base + t, dB_t, mask=mbc & keep,
                                          sem="relaxed")
            if A_IS_LOG:  # d/dA_log = d/dA * A (A reloaded: the last tile's A2 may be masked)
                A_last = _a_log2e(tl.load(a_ptrs, mask=mask_nd, other=0.0), A_IS_LOG)
                dA_acc = dA_acc * A_last * 0.6931471805599453
            tl.atomic_add(dA_ptr + offs_d * n_state + offs_n, dA_acc, mask=mask_nd, sem="relaxed")
            if HAS_D:
                tl.atomic_add(dD_ptr + offs_d, dD_acc, mask=mask_d, sem="relaxed")
            if HAS_BIAS:
                tl.atomic_add(dbias_ptr + offs_d, dbias_acc, mask=mask_d, sem="relaxed")


_STRIDES = ["su_t", "sd_t", "sz_t", "sg_t", "sB_t", "sC_t"]


@triton.jit(do_not_specialize=_STRIDES)
def _tile_bwd_lean(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dy_ptr, dlast_ptr,
    ck_ptr, gseg_ptr, dnext_ptr, scratch_ptr, a2_ptr,
    du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr, partner_ptr,
    batch, n_blocks, length, channels, chans_per_group, n_state, seg_len, n_seg, n_ck,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sg_b, sg_d, sg_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr, T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, HAS_DLAST: tl.constexpr, Z_MODE: tl.constexpr,
    SUMMARY: tl.constexpr, SPLIT_N: tl.constexpr, BC_ATOMICS: tl.constexpr, BC_MODE: tl.constexpr,
    PREFETCH: tl.constexpr, A_IS_LOG: tl.constexpr, BC_ALIGN: tl.constexpr, EVEN_N: tl.constexpr,
):
    """One direction: SUMMARY programs, or the gradient programs of the work items (batch row,
    channel block, segment)."""
    _lean_body(
        tl.program_id(0), tl.num_programs(0), REVERSE,
        u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dy_ptr, dlast_ptr,
        ck_ptr, gseg_ptr, dnext_ptr, scratch_ptr, a2_ptr,
        du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr, partner_ptr,
        batch, n_blocks, length, channels, chans_per_group, n_state, seg_len, n_seg, n_ck,
        su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sg_b, sg_d, sg_t,
        sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
        N, BLOCK_D, T, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, HAS_DLAST, Z_MODE, SUMMARY, SPLIT_N,
        BC_ATOMICS, BC_MODE, PREFETCH, A_IS_LOG, False, BC_ALIGN, EVEN_N)


@triton.jit(do_not_specialize=_STRIDES)
def _tile_bwd_pair(
    u_f, delta_f, A_f, B_f, C_f, D_f, bias_f, ck_f, du_f, ddelta_f, dA_f, dB_f, dC_f, dD_f,
    dbias_f, partner_f,
    u_b, delta_b, A_b, B_b, C_b, D_b, bias_b, ck_b, du_b, ddelta_b, dA_b, dB_b, dC_b, dD_b,
    dbias_b, partner_b,
    z_ptr, dy_ptr, scratch_ptr, a2_ptr,
    batch, n_blocks, length, channels, chans_per_group, n_state, seg_len, n_seg, n_ck,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sg_b, sg_d, sg_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr, T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    SPLIT_N: tl.constexpr, BC_MODE: tl.constexpr, PREFETCH: tl.constexpr,
    A_IS_LOG: tl.constexpr, BC_ALIGN: tl.constexpr, EVEN_N: tl.constexpr,
):
    """Both directions of a bidirectional block in one launch, without the SUMMARY pass: the
    first ``batch * n_blocks`` programs take the forward direction's (batch row, channel block)
    items, the others the reverse direction's, each walking its segments from its scan's end
    back. Each direction writes its ungated output to its ``partner`` buffer (``dz`` needs both:
    :func:`gate_grad`)."""
    half = batch * n_blocks
    rev = (tl.program_id(0) >= half).to(tl.int32)
    r = rev == 1
    _lean_body(
        tl.program_id(0) - rev * half, half, rev,
        tl.where(r, u_b, u_f), tl.where(r, delta_b, delta_f), tl.where(r, A_b, A_f),
        tl.where(r, B_b, B_f), tl.where(r, C_b, C_f), tl.where(r, D_b, D_f), z_ptr,
        tl.where(r, bias_b, bias_f), dy_ptr, dy_ptr,
        tl.where(r, ck_b, ck_f), scratch_ptr, scratch_ptr, scratch_ptr,
        a2_ptr + rev * (channels * N),
        tl.where(r, du_b, du_f), tl.where(r, ddelta_b, ddelta_f), tl.where(r, dA_b, dA_f),
        tl.where(r, dB_b, dB_f), tl.where(r, dC_b, dC_f), tl.where(r, dD_b, dD_f), dy_ptr,
        tl.where(r, dbias_b, dbias_f), tl.where(r, partner_b, partner_f),
        batch, n_blocks, length, channels, chans_per_group, n_state, seg_len, n_seg, n_ck,
        su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sg_b, sg_d, sg_t,
        sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
        N, BLOCK_D, T, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, False, 1, False, SPLIT_N,
        True, BC_MODE, PREFETCH, A_IS_LOG, True, BC_ALIGN, EVEN_N)


@triton.jit
def _gate_grad_kernel(dy_ptr, z_ptr, pf_ptr, pb_ptr, dz_ptr, length, channels,
                      sg_b, sg_d, sg_t, sz_b, sz_d, sz_t, so_b, so_d, so_t,
                      BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr):
    """``dz = dy * (out_f + out_b) * silu'(z)`` on a ``(BLOCK_L, BLOCK_C)`` tile of one row."""
    pid_b, t, c, m = _row_tile(length, channels, BLOCK_L, BLOCK_C)
    g = pid_b * sg_b + c * sg_d + t * sg_t
    zt = tl.load(z_ptr + pid_b * sz_b + c * sz_d + t * sz_t, mask=m, other=0.0).to(tl.float32)
    dy = tl.load(dy_ptr + g, mask=m, other=0.0).to(tl.float32)
    out = tl.load(pf_ptr + g, mask=m, other=0.0) + tl.load(pb_ptr + g, mask=m, other=0.0)
    sig = _sigmoid(zt)
    tl.store(dz_ptr + pid_b * so_b + c * so_d + t * so_t,
             (dy * out * sig * (1.0 + zt * (1.0 - sig))).to(dz_ptr.dtype.element_ty), mask=m)


def lean_bwd_config() -> tuple[int, int, int, int, bool]:
    """``T``, ``BLOCK_D``, persistent programs per SM, the register cap and prefetching of the
    lean backward (``VIDEOMAMBA_LEAN_BWD_CONFIG="T,BLOCK_D,slots_per_sm,maxnreg[,prefetch]"``;
    ``slots_per_sm`` 0 = one program per work item (one scratch slot per work item),
    ``maxnreg`` 0 = no cap, ``prefetch`` 1 = issue the next tile's loads before this tile's
    arithmetic in the gradient pass). The default ``4,8,0,168,0`` (one program per work item,
    168 registers: 3 warps per scheduler instead of 2, which ptxas fits without spilling; no
    prefetch) was the fastest on an H200 (runs 19 and 20, docs/kernels.md: 14 % faster than
    uncapped with prefetch); the persistent grid with a cap (``4,8,12,168``) needs ~3x less
    scratch but was 15% slower (run 5)."""
    if interpreting():
        return (4, 8, int(os.environ.get("VIDEOMAMBA_LEAN_SLOTS", "1")), 0,
                os.environ.get("VIDEOMAMBA_LEAN_PREFETCH", "0") == "1")
    text = os.environ.get("VIDEOMAMBA_LEAN_BWD_CONFIG")
    values = [int(v) for v in text.split(",")] if text else [4, 8, 0, 168, 0]
    t, block_d, slots, maxnreg = values[:4]
    return t, block_d, slots, maxnreg, len(values) > 4 and values[4] == 1


def _bc_mode(block_d: int, n_pow2: int, t: int) -> int:
    """How the gradient pass sums dB and dC over its channels before the atomics
    (``VIDEOMAMBA_LEAN_BC``): 0 ``reduce`` (butterfly all-reduce, ``tl.sum``), 1 ``lanes`` (no
    sum: every lane adds its own channel's terms), 2 ``scatter`` (butterfly reduce-scatter in
    inline PTX: the default on the GPU for the layout it is written for, 8 channels x 16 states x
    4 steps; elsewhere ``reduce``)."""
    mode = os.environ.get("VIDEOMAMBA_LEAN_BC", "scatter")
    if mode == "lanes":
        return 1
    fits = (block_d, n_pow2, t) == (8, 16, 4) and not interpreting()
    return 2 if mode == "scatter" and fits else 0


def _dense(t: Tensor) -> bool:
    """Whether ``t`` ``(B, D, L)`` is laid out densely along L or along D (the gradients then take
    its strides, which the kernel shares between dy, du, ddelta, dz and partner)."""
    batch, channels, length = t.shape
    return (t.stride() == (channels * length, length, 1)
            or t.stride() == (channels * length, 1, channels))


def lean_bwd(dy, u, delta, A, B, C, D, z, delta_bias, delta_softplus, ck, seg_len, dlast=None,
             reverse=False, z_mode=0, partner=None, a_is_log=False) -> dict[str, Tensor]:
    """Backward of the tiled scan. ``dy`` ``(B, D, L)``; ``ck`` from ``triton_tile.tile_fwd``
    with ``ck_steps=seg_len`` (``seg_len`` a multiple of ``T``); ``dlast`` ``(B, D, N)`` is the
    gradient of the returned last state. Returns float32 ``dA (D, N)``, ``dB``/``dC`` shaped
    like B/C, ``dD``/``ddelta_bias (D,)`` (None without D / delta_bias) and, in the input
    dtypes, ``du``, ``ddelta`` and ``dz`` (``(B, D, L)``; None without z or when
    ``z_mode == 1``: the ungated output goes to ``partner`` instead). Those three, and
    ``partner``, share ``dy``'s layout: contiguous along L, or along D (a transposed view of a
    ``(B, L, D)`` tensor, as the mixer's gradients come). With ``a_is_log``, ``A`` is ``A_log``
    (the kernel uses ``-exp(A_log)``) and ``dA`` is the gradient of ``A_log``."""
    batch, channels, length = u.shape
    n_state = A.shape[1]
    B4, C4 = as_groups(B), as_groups(C)
    chans_per_group = channels // B4.shape[1]
    geo = _geometry(channels, n_state, length, chans_per_group, seg_len)
    t, block_d, n_pow2, n_seg, n_blocks = geo.t, geo.block_d, geo.n_pow2, geo.n_seg, geo.n_blocks
    n_ck = ck.shape[1]
    assert n_ck == (max(length, 1) - 1) // seg_len, "forward and backward segmentations differ"
    f32 = dict(device=u.device, dtype=torch.float32)
    if not _dense(dy):
        dy = dy.contiguous()
    n_work = batch * n_blocks * n_seg
    programs = (n_work if geo.slots_per_sm <= 0
                else min(n_work, geo.slots_per_sm * multiprocessors(2)))
    gseg = torch.empty(batch, n_seg, n_pow2, channels, **f32)
    dnext = torch.empty(batch, n_seg, channels, **f32)
    out = _gradient_buffers(dy, u, delta, A, B4, C4, D, delta_bias)
    dz = torch.empty_like(dy, dtype=z.dtype) if z is not None and z_mode != 1 else None
    scratch = torch.empty(programs * (seg_len // t) * n_pow2 * block_d, **f32)
    zz = z if z is not None else u
    bias = delta_bias if delta_bias is not None else u
    dA = out["dA"]
    dl = dlast.contiguous().float() if dlast is not None else dA
    At, sA_d, sA_n = a_layout(A)
    a2 = torch.empty(channels, n_pow2, **f32)  # A * log2(e), written by the programs
    args = (u, delta, At, B4, C4, D if D is not None else dA, zz, bias, dy, dl,
            ck if ck.numel() else gseg, gseg, dnext, scratch, a2,
            out["du"], out["ddelta"], dA, out["dB"], out["dC"], _or(out["dD"], dA),
            _or(dz, out["du"]), _or(out["ddelta_bias"], dA), _or(partner, dA),
            batch, n_blocks, length, channels, chans_per_group, n_state, seg_len, n_seg, n_ck,
            *u.stride(), *delta.stride(), *zz.stride(), *dy.stride(),
            *B4.stride(), *C4.stride(), sA_d, sA_n)
    flags = _flags(geo, D, delta_bias, delta_softplus, a_is_log, HAS_Z=z is not None,
                   REVERSE=bool(reverse), HAS_DLAST=dlast is not None, Z_MODE=z_mode,
                   BC_ATOMICS=os.environ.get("VIDEOMAMBA_LEAN_ABLATE") != "atomics",
                   BC_ALIGN=bc_alignment(B4, C4), EVEN_N=n_pow2 == n_state)
    if n_seg > 1:  # no scratch: one program per work item, as many warps as fit
        launch(_tile_bwd_lean, (n_work,), *args, SUMMARY=True, **flags)
    launch(_tile_bwd_lean, (programs,), *args, SUMMARY=False, **flags)
    return _shaped(out, B, C) | {"dz": dz}


class _Geometry(NamedTuple):
    """How a backward launch tiles its problem: ``lean_bwd_config`` for these channels."""

    t: int
    block_d: int
    slots_per_sm: int
    maxnreg: int
    prefetch: bool
    n_pow2: int  # N padded to a power of two
    n_seg: int
    n_blocks: int


def _geometry(channels: int, n_state: int, length: int, chans_per_group: int,
              seg_len: int) -> _Geometry:
    t, block_d, slots_per_sm, maxnreg, prefetch = lean_bwd_config()
    if seg_len % t:
        raise ValueError(f"backward segment length {seg_len} is not a multiple of the tile {t}")
    block_d = block_for_groups(block_d, chans_per_group)
    return _Geometry(t, block_d, slots_per_sm, maxnreg, prefetch,
                     max(next_power_of_2(n_state), 2), cdiv(max(length, 1), seg_len),
                     cdiv(channels, block_d))


def _flags(geo: _Geometry, D, delta_bias, delta_softplus, a_is_log, **more) -> dict:
    """The launch options and constexprs both backward kernels take, plus ``more``."""
    flags = dict(N=geo.n_pow2, BLOCK_D=geo.block_d, T=geo.t, HAS_D=D is not None,
                 HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus),
                 SPLIT_N=geo.block_d < 32, BC_MODE=_bc_mode(geo.block_d, geo.n_pow2, geo.t),
                 PREFETCH=geo.prefetch, A_IS_LOG=bool(a_is_log),
                 num_warps=max(geo.block_d // 32, 1), **more)
    if geo.maxnreg > 0:
        flags["maxnreg"] = geo.maxnreg
    return flags


def _or(t: Tensor | None, stand_in: Tensor) -> Tensor:
    return t if t is not None else stand_in


def _gradient_buffers(dy, u, delta, A, B4, C4, D, delta_bias) -> dict[str, Tensor | None]:
    """One direction's outputs: ``du``/``ddelta`` in ``dy``'s layout, float32 accumulators
    (zeroed) for dA, dB, dC (``(B, G, N, L)``), dD and ddelta_bias."""
    channels, length = u.shape[1], u.shape[2]
    n_state = A.shape[1]
    f32 = dict(device=u.device, dtype=torch.float32)
    return {"du": torch.empty_like(dy, dtype=u.dtype),
            "ddelta": torch.empty_like(dy, dtype=delta.dtype),
            "dA": torch.zeros(channels, n_state, **f32),
            "dB": torch.zeros(B4.shape[0], B4.shape[1], n_state, length, **f32),
            "dC": torch.zeros(C4.shape[0], C4.shape[1], n_state, length, **f32),
            "dD": torch.zeros(channels, **f32) if D is not None else None,
            "ddelta_bias": torch.zeros(channels, **f32) if delta_bias is not None else None}


def _shaped(out: dict, B: Tensor, C: Tensor) -> dict[str, Tensor | None]:
    return out | {"dB": out["dB"].view(B.shape), "dC": out["dC"].view(C.shape)}


def pair_programs_fill_gpu(batch: int, channels: int, n_state: int) -> bool:
    """Whether :func:`lean_bwd_pair` has enough programs for the GPU (``VIDEOMAMBA_LEAN_PAIR``:
    ``auto``, ``1`` always, ``0`` never): one per (direction, batch row, 8-channel block), at
    least 90 % of the warps the gradient pass keeps resident (12 per SM at the 168-register cap).
    Smaller grids keep the segmented pair of launches per direction, whose segments add warps."""
    mode = os.environ.get("VIDEOMAMBA_LEAN_PAIR", "auto")
    t, block_d, slots_per_sm, maxnreg, _ = lean_bwd_config()
    if mode != "auto":
        return mode == "1"
    if interpreting() or slots_per_sm > 0 or max(next_power_of_2(n_state), 2) != 16:
        return False
    warps_per_sm = 12 if maxnreg == 168 else 8
    return 2 * batch * cdiv(channels, block_d) >= 0.9 * warps_per_sm * multiprocessors(2)


def lean_bwd_pair(dy: Tensor, f: tuple, b: tuple, z: Tensor, delta_softplus: bool, ck_f: Tensor,
                  ck_b: Tensor, seg_len: int, a_is_log: bool = True,
                  dz_out: Tensor | None = None) -> tuple[dict, dict, Tensor]:
    """Backward of both directions of a bidirectional pair in one launch (``_tile_bwd_pair``,
    no SUMMARY pass) and ``dz`` of the shared gate. ``f``/``b``: each direction's ``(u, delta,
    A, B, C, D, delta_bias)`` with the same strides; the reverse one scans from t = L-1 down.
    Returns each direction's gradients (as :func:`lean_bwd`) and ``dz`` (written into
    ``dz_out`` when given)."""
    u, delta, A, _, _, D, delta_bias = f
    batch, channels, length = u.shape
    n_state = A.shape[1]
    B4s, C4s = pair_groups(f, b, "lean_bwd_pair")
    chans_per_group = channels // B4s[0].shape[1]
    geo = _geometry(channels, n_state, length, chans_per_group, seg_len)
    t, block_d, n_pow2, n_seg, n_blocks = geo.t, geo.block_d, geo.n_pow2, geo.n_seg, geo.n_blocks
    n_ck = ck_f.shape[1]
    if not _dense(dy):
        dy = dy.contiguous()
    f32 = dict(device=u.device, dtype=torch.float32)
    scratch = torch.empty(2 * batch * n_blocks * (seg_len // t) * n_pow2 * block_d, **f32)
    per_dir = []
    for (u_, delta_, A_, _, _, D_, bias_), B4, C4, ck in zip((f, b), B4s, C4s, (ck_f, ck_b)):
        out = _gradient_buffers(dy, u_, delta_, A_, B4, C4, D_, bias_)
        out["partner"] = torch.empty_like(dy, dtype=torch.float32)
        At, sA_d, sA_n = a_layout(A_)
        dA = out["dA"]
        per_dir.append((u_, delta_, At, B4, C4, _or(D_, dA), _or(bias_, u_),
                        ck if ck.numel() else dA, out["du"], out["ddelta"], dA, out["dB"],
                        out["dC"], _or(out["dD"], dA), _or(out["ddelta_bias"], dA),
                        out["partner"], out))
    a2 = torch.empty(2, channels, n_pow2, **f32)  # each direction's A * log2(e)
    args = (*per_dir[0][:16], *per_dir[1][:16], z, dy, scratch, a2,
            batch, n_blocks, length, channels, chans_per_group, n_state, seg_len, n_seg, n_ck,
            *u.stride(), *delta.stride(), *z.stride(), *dy.stride(),
            *B4s[0].stride(), *C4s[0].stride(), sA_d, sA_n)
    flags = _flags(geo, D, delta_bias, delta_softplus, a_is_log, HAS_Z=True,
                   BC_ALIGN=bc_alignment(*B4s, *C4s), EVEN_N=n_pow2 == n_state)
    launch(_tile_bwd_pair, (2 * batch * n_blocks,), *args, **flags)
    out_f, out_b = per_dir[0][16], per_dir[1][16]
    dz = gate_grad(dy, z, out_f.pop("partner"), out_b.pop("partner"), out=dz_out)
    return _shaped(out_f, f[3], f[4]), _shaped(out_b, b[3], b[4]), dz


def gate_grad(dy: Tensor, z: Tensor, out_f: Tensor, out_b: Tensor,
              out: Tensor | None = None) -> Tensor:
    """``dz`` of ``y = silu(z) * (out_f + out_b)``: ``dy``, ``z`` ``(B, D, L)`` (any strides),
    ``out_f``/``out_b`` float32 in ``dy``'s layout; ``dz`` in ``dy``'s layout, ``z``'s dtype,
    or written into ``out`` (any strides: the mixer passes its slice of ``dxz``)."""
    _, channels, length = dy.shape
    dz = out if out is not None else torch.empty_like(dy, dtype=z.dtype)
    launch(
        _gate_grad_kernel, row_tile_grid(dy.shape),
        dy, z, out_f, out_b, dz, length, channels, *dy.stride(), *z.stride(), *dz.stride(),
        BLOCK_L=ROW_TILE[0], BLOCK_C=ROW_TILE[1], num_warps=4)
    return dz
