"""Segmented sequential Triton kernels of the selective scan (contract: ``ref.py``).

The chunked kernels of ``triton_fwd.py`` run an associative scan over time whose lanes trade
partial products with shuffles and shared memory; these run the recurrence one step at a time
with the ``(N, BLOCK_D)`` state spread so that each thread owns whole channels (forward: all N
states of a channel, so ``<h, C>`` sums in-thread). A step is then one exp2 and a few FMAs per
state element, the cheapest the recurrence allows. Parallelism comes from splitting the sequence
into ``n_seg`` segments:

1. ``_seg_fwd_summary``: each segment's final state from zero and its sum of delta (the decay of
   a state carried across the whole segment is ``exp(A * sum delta)``);
2. ``_seg_fwd_output``: each segment folds the summaries before it into its entry state, then
   scans its steps writing ``y``.

The backward pass mirrors it (``_seg_bwd_summary`` then ``_seg_bwd_grads``) for the adjoint
``g_t = dout_t C_t + exp(delta_{t+1} A) g_{t+1}``; it recomputes the states of each sub-chunk of
``SUB`` steps into a small per-program scratch and walks them backwards, so nothing of size
``(B, D, N, L)`` is ever stored. Only the per-segment summaries are saved between the passes.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from videomamba.ops.selective_scan.triton_fwd import _softplus, as_groups, block_for_groups, interpreting


@triton.jit
def _pos(seg, i, seg_len, REVERSE: tl.constexpr):
    """Sequence index of step ``i`` of segment ``seg`` in scan order."""
    if REVERSE:
        return seg * seg_len + seg_len - 1 - i
    else:
        return seg * seg_len + i


@triton.jit
def _delta(d_ptrs, t, length, mask_d, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """delta at step t for a block of channels (0 outside [0, length): the identity step)."""
    valid = (t >= 0) & (t < length)
    dt = tl.load(d_ptrs, mask=mask_d & valid, other=0.0).to(tl.float32)
    if HAS_BIAS:
        dt = dt + bias
    if SOFTPLUS:
        dt = _softplus(dt)
    return tl.where(mask_d & valid, dt, 0.0)


@triton.jit
def _seg_fwd_summary(
    u_ptr, delta_ptr, A_ptr, B_ptr, bias_ptr, hseg_ptr, dsum_ptr,
    length, channels, chans_per_group, n_state, seg_len, n_seg,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sB_b, sB_g, sB_n, sB_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr,
):
    pid_b, pid_d, seg = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N)
    mask_d, mask_n = offs_d < channels, offs_n < n_state
    mask_nd = mask_n[:, None] & mask_d[None, :]
    group = (pid_d * BLOCK_D) // chans_per_group
    A2 = tl.load(A_ptr + offs_d[None, :] * sA_d + offs_n[:, None] * sA_n, mask=mask_nd, other=0.0)
    A2 = A2.to(tl.float32) * 1.4426950408889634  # (N, BLOCK_D)
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    u_base = u_ptr + pid_b * su_b + offs_d * su_d
    d_base = delta_ptr + pid_b * sd_b + offs_d * sd_d
    B_base = B_ptr + pid_b * sB_b + group * sB_g + offs_n * sB_n

    h = tl.zeros((N, BLOCK_D), dtype=tl.float32)
    dsum = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for i in range(0, seg_len):
        t = _pos(seg, i, seg_len, REVERSE)
        valid = t < length
        dt = _delta(d_base + t * sd_t, t, length, mask_d, bias, HAS_BIAS, SOFTPLUS)
        u = tl.load(u_base + t * su_t, mask=mask_d & valid, other=0.0).to(tl.float32)
        Bt = tl.load(B_base + t * sB_t, mask=mask_n & valid, other=0.0).to(tl.float32)
        h = tl.exp2(A2 * dt[None, :]) * h + Bt[:, None] * (dt * u)[None, :]
        dsum += dt
    summary = ((pid_b * n_seg + seg) * N + offs_n[:, None]) * channels + offs_d[None, :]
    tl.store(hseg_ptr + summary, h, mask=mask_nd)
    tl.store(dsum_ptr + (pid_b * n_seg + seg) * channels + offs_d, dsum, mask=mask_d)


@triton.jit
def _fold_states(hseg_ptr, dsum_ptr, A2, pid_b, seg, n_seg, channels, offs_n, offs_d, mask_nd,
                 mask_d, N: tl.constexpr, BLOCK_D: tl.constexpr, REVERSE: tl.constexpr):
    """Entry state of segment ``seg``: the summaries of the segments before it in scan order."""
    h = tl.zeros((N, BLOCK_D), dtype=tl.float32)
    if REVERSE:
        count = n_seg - 1 - seg
    else:
        count = seg
    for k in range(0, count):
        if REVERSE:
            j = n_seg - 1 - k
        else:
            j = k
        summary = ((pid_b * n_seg + j) * N + offs_n[:, None]) * channels + offs_d[None, :]
        hj = tl.load(hseg_ptr + summary, mask=mask_nd, other=0.0)
        dj = tl.load(dsum_ptr + (pid_b * n_seg + j) * channels + offs_d, mask=mask_d, other=0.0)
        h = tl.exp2(A2 * dj[None, :]) * h + hj
    return h


@triton.jit
def _seg_fwd_output(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, y_ptr, last_ptr,
    hseg_ptr, dsum_ptr,
    length, channels, chans_per_group, n_state, seg_len, n_seg,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sy_b, sy_d, sy_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, ACCUMULATE: tl.constexpr,
):
    pid_b, pid_d, seg = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N)
    mask_d, mask_n = offs_d < channels, offs_n < n_state
    mask_nd = mask_n[:, None] & mask_d[None, :]
    group = (pid_d * BLOCK_D) // chans_per_group
    A2 = tl.load(A_ptr + offs_d[None, :] * sA_d + offs_n[:, None] * sA_n, mask=mask_nd, other=0.0)
    A2 = A2.to(tl.float32) * 1.4426950408889634
    bias = 0.0
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

    h = _fold_states(hseg_ptr, dsum_ptr, A2, pid_b, seg, n_seg, channels, offs_n, offs_d, mask_nd,
                     mask_d, N, BLOCK_D, REVERSE)
    for i in range(0, seg_len):
        t = _pos(seg, i, seg_len, REVERSE)
        valid = t < length
        dt = _delta(d_base + t * sd_t, t, length, mask_d, bias, HAS_BIAS, SOFTPLUS)
        u = tl.load(u_base + t * su_t, mask=mask_d & valid, other=0.0).to(tl.float32)
        Bt = tl.load(B_base + t * sB_t, mask=mask_n & valid, other=0.0).to(tl.float32)
        Ct = tl.load(C_base + t * sC_t, mask=mask_n & valid, other=0.0).to(tl.float32)
        h = tl.exp2(A2 * dt[None, :]) * h + Bt[:, None] * (dt * u)[None, :]
        out = tl.sum(h * Ct[:, None], axis=0)
        if HAS_D:
            out += Dv * u
        if ACCUMULATE:
            out += tl.load(y_base + t * sy_t, mask=mask_d & valid, other=0.0).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_base + t * sz_t, mask=mask_d & valid, other=0.0).to(tl.float32)
            out = out * zt * tl.sigmoid(zt)
        tl.store(y_base + t * sy_t, out.to(y_ptr.dtype.element_ty), mask=mask_d & valid)
    if REVERSE:
        is_last = seg == 0
    else:
        is_last = seg == n_seg - 1
    if is_last:
        tl.store(last_ptr + (pid_b * channels + offs_d[None, :]) * n_state + offs_n[:, None], h,
                 mask=mask_nd)


@triton.jit
def _seg_bwd_summary(
    delta_ptr, A_ptr, C_ptr, z_ptr, bias_ptr, dy_ptr, dlast_ptr, gseg_ptr, dnext_ptr,
    length, channels, chans_per_group, n_state, seg_len, n_seg,
    sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sg_b, sg_d, sg_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr,
    HAS_DLAST: tl.constexpr,
):
    """Per segment, the adjoint at its scan-order start from a zero carry, and the sum of
    delta_{next(t)} over it (the decay applied to the carry from the next segment)."""
    pid_b, pid_d, seg = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N)
    mask_d, mask_n = offs_d < channels, offs_n < n_state
    mask_nd = mask_n[:, None] & mask_d[None, :]
    group = (pid_d * BLOCK_D) // chans_per_group
    A2 = tl.load(A_ptr + offs_d[None, :] * sA_d + offs_n[:, None] * sA_n, mask=mask_nd, other=0.0)
    A2 = A2.to(tl.float32) * 1.4426950408889634
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    d_base = delta_ptr + pid_b * sd_b + offs_d * sd_d
    z_base = z_ptr + pid_b * sz_b + offs_d * sz_d
    g_base = dy_ptr + pid_b * sg_b + offs_d * sg_d
    C_base = C_ptr + pid_b * sC_b + group * sC_g + offs_n * sC_n
    if REVERSE:
        step, last_t = -1, 0
    else:
        step, last_t = 1, length - 1
    if HAS_DLAST:
        dlast = tl.load(dlast_ptr + (pid_b * channels + offs_d[None, :]) * n_state + offs_n[:, None],
                        mask=mask_nd, other=0.0)

    g = tl.zeros((N, BLOCK_D), dtype=tl.float32)
    dnext = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for k in range(0, seg_len):
        t = _pos(seg, seg_len - 1 - k, seg_len, REVERSE)
        valid = t < length
        dt_nx = _delta(d_base + (t + step) * sd_t, t + step, length, mask_d, bias, HAS_BIAS, SOFTPLUS)
        dout = tl.load(g_base + t * sg_t, mask=mask_d & valid, other=0.0).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_base + t * sz_t, mask=mask_d & valid, other=0.0).to(tl.float32)
            dout = dout * zt * tl.sigmoid(zt)
        Ct = tl.load(C_base + t * sC_t, mask=mask_n & valid, other=0.0).to(tl.float32)
        g = tl.exp2(A2 * dt_nx[None, :]) * g + Ct[:, None] * dout[None, :]
        if HAS_DLAST:
            if t == last_t:
                g += dlast
        dnext += dt_nx
    summary = ((pid_b * n_seg + seg) * N + offs_n[:, None]) * channels + offs_d[None, :]
    tl.store(gseg_ptr + summary, g, mask=mask_nd)
    tl.store(dnext_ptr + (pid_b * n_seg + seg) * channels + offs_d, dnext, mask=mask_d)


@triton.jit
def _seg_bwd_grads(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dy_ptr, dlast_ptr,
    hseg_ptr, dsum_ptr, gseg_ptr, dnext_ptr, scratch_ptr,
    du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr, partner_ptr,
    length, channels, chans_per_group, n_state, seg_len, n_seg, n_entry,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sg_b, sg_d, sg_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr, SUB: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, HAS_DLAST: tl.constexpr, Z_MODE: tl.constexpr,
    ENTRY_STATES: tl.constexpr,
):
    pid_b, pid_d, seg = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n_blocks = tl.num_programs(1)
    offs_dl = tl.arange(0, BLOCK_D)
    offs_d = pid_d * BLOCK_D + offs_dl
    offs_n = tl.arange(0, N)
    mask_d, mask_n = offs_d < channels, offs_n < n_state
    mask_nd = mask_n[:, None] & mask_d[None, :]
    n_groups = channels // chans_per_group
    group = (pid_d * BLOCK_D) // chans_per_group
    A = tl.load(A_ptr + offs_d[None, :] * sA_d + offs_n[:, None] * sA_n, mask=mask_nd, other=0.0)
    A = A.to(tl.float32)
    A2 = A * 1.4426950408889634
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    u_base = u_ptr + pid_b * su_b + offs_d * su_d
    d_base = delta_ptr + pid_b * sd_b + offs_d * sd_d
    z_base = z_ptr + pid_b * sz_b + offs_d * sz_d
    g_off = pid_b * sg_b + offs_d * sg_d
    B_base = B_ptr + pid_b * sB_b + group * sB_g + offs_n * sB_n
    C_base = C_ptr + pid_b * sC_b + group * sC_g + offs_n * sC_n
    dbc_base = ((pid_b * n_groups + group) * n_state + offs_n) * length
    n_sub = seg_len // SUB
    # this program's scratch: n_sub sub-chunk entry states, then SUB states of one sub-chunk
    prog = (pid_b * n_blocks + pid_d) * n_seg + seg
    tile = offs_n[:, None] * BLOCK_D + offs_dl[None, :]
    scratch = scratch_ptr + prog.to(tl.int64) * ((n_sub + SUB) * N * BLOCK_D) + tile
    hist = scratch + n_sub * N * BLOCK_D
    if REVERSE:
        step, last_t = -1, 0
    else:
        step, last_t = 1, length - 1
    if HAS_DLAST:
        dlast = tl.load(dlast_ptr + (pid_b * channels + offs_d[None, :]) * n_state + offs_n[:, None],
                        mask=mask_nd, other=0.0)

    # entry state and adjoint carry of this segment
    if ENTRY_STATES:  # hseg holds the forward's states at the segment boundaries (triton_tile)
        if REVERSE:
            k = seg
        else:
            k = seg - 1
        entry = ((pid_b * n_entry + k) * N + offs_n[:, None]) * channels + offs_d[None, :]
        h = tl.load(hseg_ptr + entry, mask=mask_nd & (k >= 0) & (k < n_entry), other=0.0)
    else:
        h = _fold_states(hseg_ptr, dsum_ptr, A2, pid_b, seg, n_seg, channels, offs_n, offs_d,
                         mask_nd, mask_d, N, BLOCK_D, REVERSE)
    g = tl.zeros((N, BLOCK_D), dtype=tl.float32)
    if REVERSE:
        count = seg
    else:
        count = n_seg - 1 - seg
    for k in range(0, count):  # segments after this one, from the scan's end back
        if REVERSE:
            j = k
        else:
            j = n_seg - 1 - k
        summary = ((pid_b * n_seg + j) * N + offs_n[:, None]) * channels + offs_d[None, :]
        gj = tl.load(gseg_ptr + summary, mask=mask_nd, other=0.0)
        dj = tl.load(dnext_ptr + (pid_b * n_seg + j) * channels + offs_d, mask=mask_d, other=0.0)
        g = tl.exp2(A2 * dj[None, :]) * g + gj

    # phase A: sub-chunk entry states
    for i in range(0, seg_len):
        if i % SUB == 0:
            tl.store(scratch + (i // SUB) * N * BLOCK_D, h)
        t = _pos(seg, i, seg_len, REVERSE)
        valid = t < length
        dt = _delta(d_base + t * sd_t, t, length, mask_d, bias, HAS_BIAS, SOFTPLUS)
        u = tl.load(u_base + t * su_t, mask=mask_d & valid, other=0.0).to(tl.float32)
        Bt = tl.load(B_base + t * sB_t, mask=mask_n & valid, other=0.0).to(tl.float32)
        h = tl.exp2(A2 * dt[None, :]) * h + Bt[:, None] * (dt * u)[None, :]

    dA_acc = tl.zeros((N, BLOCK_D), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for kk in range(0, n_sub):
        sub = n_sub - 1 - kk
        # phase B1: the sub-chunk's states, in scan order, into the scratch
        h = tl.load(scratch + sub * N * BLOCK_D)
        for j in range(0, SUB):
            t = _pos(seg, sub * SUB + j, seg_len, REVERSE)
            valid = t < length
            dt = _delta(d_base + t * sd_t, t, length, mask_d, bias, HAS_BIAS, SOFTPLUS)
            u = tl.load(u_base + t * su_t, mask=mask_d & valid, other=0.0).to(tl.float32)
            Bt = tl.load(B_base + t * sB_t, mask=mask_n & valid, other=0.0).to(tl.float32)
            h = tl.exp2(A2 * dt[None, :]) * h + Bt[:, None] * (dt * u)[None, :]
            tl.store(hist + j * N * BLOCK_D, h)
        # phase B2: walk it backwards with the adjoint
        for jj in range(0, SUB):
            j = SUB - 1 - jj
            t = _pos(seg, sub * SUB + j, seg_len, REVERSE)
            valid = t < length
            m = mask_d & valid
            h = tl.load(hist + j * N * BLOCK_D)
            dt_raw = tl.load(d_base + t * sd_t, mask=m, other=0.0).to(tl.float32)
            if HAS_BIAS:
                dt_raw += bias
            dt = dt_raw
            if SOFTPLUS:
                dt = _softplus(dt_raw)
            dt = tl.where(m, dt, 0.0)
            dt_nx = _delta(d_base + (t + step) * sd_t, t + step, length, mask_d, bias, HAS_BIAS,
                           SOFTPLUS)
            u = tl.load(u_base + t * su_t, mask=m, other=0.0).to(tl.float32)
            Bt = tl.load(B_base + t * sB_t, mask=mask_n & valid, other=0.0).to(tl.float32)
            Ct = tl.load(C_base + t * sC_t, mask=mask_n & valid, other=0.0).to(tl.float32)
            dy = tl.load(dy_ptr + g_off + t * sg_t, mask=m, other=0.0).to(tl.float32)
            dout = dy
            if HAS_Z:
                zt = tl.load(z_base + t * sz_t, mask=m, other=0.0).to(tl.float32)
                sig = tl.sigmoid(zt)
                out = tl.sum(h * Ct[:, None], axis=0)
                if HAS_D:
                    out += Dv * u
                if Z_MODE == 1:
                    tl.store(partner_ptr + g_off + t * sg_t, out, mask=m)
                else:
                    if Z_MODE == 2:
                        out += tl.load(partner_ptr + g_off + t * sg_t, mask=m, other=0.0)
                    dz = dy * out * sig * (1.0 + zt * (1.0 - sig))
                    tl.store(dz_ptr + g_off + t * sg_t, dz.to(dz_ptr.dtype.element_ty), mask=m)
                dout = dy * zt * sig
            if HAS_D:
                dD_acc += dout * u
            g = tl.exp2(A2 * dt_nx[None, :]) * g + Ct[:, None] * dout[None, :]
            if HAS_DLAST:
                if t == last_t:
                    g += dlast
            dtu = dt * u
            decayed = h - Bt[:, None] * dtu[None, :]  # exp(delta_t A) h_{t-1}
            gB = tl.sum(g * Bt[:, None], axis=0)
            du = dt * gB
            if HAS_D:
                du += Dv * dout
            ddt = u * gB + tl.sum(g * decayed * A, axis=0)
            dA_acc += g * decayed * dt[None, :]
            if SOFTPLUS:
                ddt = ddt * tl.sigmoid(dt_raw)
            ddt = tl.where(m, ddt, 0.0)
            dbias_acc += ddt
            tl.store(du_ptr + g_off + t * sg_t, du.to(du_ptr.dtype.element_ty), mask=m)
            tl.store(ddelta_ptr + g_off + t * sg_t, ddt.to(ddelta_ptr.dtype.element_ty), mask=m)
            dB_t = tl.sum(g * dtu[None, :], axis=1)
            dC_t = tl.sum(h * dout[None, :], axis=1)
            tl.atomic_add(dB_ptr + dbc_base + t, dB_t, mask=mask_n & valid, sem="relaxed")
            tl.atomic_add(dC_ptr + dbc_base + t, dC_t, mask=mask_n & valid, sem="relaxed")

    tl.atomic_add(dA_ptr + offs_d[None, :] * n_state + offs_n[:, None], dA_acc, mask=mask_nd,
                  sem="relaxed")
    if HAS_D:
        tl.atomic_add(dD_ptr + offs_d, dD_acc, mask=mask_d, sem="relaxed")
    if HAS_BIAS:
        tl.atomic_add(dbias_ptr + offs_d, dbias_acc, mask=mask_d, sem="relaxed")


# --- launchers ------------------------------------------------------------------------------


def _env(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    text = os.environ.get(name)
    return tuple(int(v) for v in text.split(",")) if text else default


def seq_config(batch: int, channels: int, length: int) -> dict:
    """Block sizes and segment length. Forward: ``BLOCK_D`` channels on ``BLOCK_D // 32`` warps
    (each thread one channel, all N states); backward: ``BLOCK_D_BWD`` channels on one warp (each
    thread a quarter of N) so the sums over channels (dB, dC) stay in a warp. Segments are cut so
    that about ``target`` programs run, a multiple of ``SUB`` steps long."""
    if interpreting():
        block_d, block_d_bwd, sub, target = 8, 8, 4, 4
    else:
        block_d, block_d_bwd, sub, target = _env("VIDEOMAMBA_SEQ_CONFIG", (64, 8, 16, 4096))
    warps = max(block_d // 32, 1)
    programs = batch * triton.cdiv(channels, block_d)
    n_seg_wanted = max(1, min(triton.cdiv(target, programs), triton.cdiv(length, sub)))
    seg_len = triton.cdiv(triton.cdiv(length, n_seg_wanted), sub) * sub
    return {"block_d": block_d, "warps": warps, "block_d_bwd": block_d_bwd, "sub": sub,
            "seg_len": seg_len, "n_seg": triton.cdiv(max(length, 1), seg_len)}


def _a_by_state(A: Tensor) -> tuple[Tensor, int, int]:
    """A as an (N, D) buffer contiguous along channels (the lane axis of the state tile), with the
    (channel, state) strides the kernels take."""
    at = A.t().contiguous()
    return at, at.stride(1), at.stride(0)


def _b_c_rows(bc: Tensor) -> Tensor:
    """B or C as (B, G, N, L) whose N axis is contiguous: each step reads one short vector."""
    bc4 = as_groups(bc)
    return bc4 if bc4.stride(2) == 1 else bc4.transpose(2, 3).contiguous().transpose(2, 3)


def seq_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=False, out=None):
    """Forward on the segmented kernels. Returns ``(y, last (B, D, N) float32, hseg, dsum)``:
    the per-segment summaries the backward pass folds again."""
    batch, channels, length = u.shape
    n_state = A.shape[1]
    B4, C4 = _b_c_rows(B), _b_c_rows(C)
    chans_per_group = channels // B4.shape[1]
    cfg = seq_config(batch, channels, length)
    block_d = block_for_groups(cfg["block_d"], chans_per_group)
    n_pow2 = max(triton.next_power_of_2(n_state), 2)
    seg_len, n_seg = cfg["seg_len"], cfg["n_seg"]
    dev = u.device
    hseg = torch.empty(batch, n_seg, n_pow2, channels, device=dev, dtype=torch.float32)
    dsum = torch.empty(batch, n_seg, channels, device=dev, dtype=torch.float32)
    last = torch.zeros(batch, channels, n_state, device=dev, dtype=torch.float32)
    y = out if out is not None else torch.empty_like(u, memory_format=torch.contiguous_format)
    zz = z if z is not None else u
    grid = (batch, triton.cdiv(channels, block_d), n_seg)
    flags = dict(N=n_pow2, BLOCK_D=block_d, HAS_BIAS=delta_bias is not None,
                 SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse), num_warps=cfg["warps"])
    bias = delta_bias if delta_bias is not None else u
    At, sA_d, sA_n = _a_by_state(A)
    _seg_fwd_summary[grid](
        u, delta, At, B4, bias, hseg, dsum,
        length, channels, chans_per_group, n_state, seg_len, n_seg,
        *u.stride(), *delta.stride(), *B4.stride(), sA_d, sA_n, **flags)
    _seg_fwd_output[grid](
        u, delta, At, B4, C4, D if D is not None else u, zz, bias, y, last, hseg, dsum,
        length, channels, chans_per_group, n_state, seg_len, n_seg,
        *u.stride(), *delta.stride(), *zz.stride(), *y.stride(),
        *B4.stride(), *C4.stride(), sA_d, sA_n,
        HAS_D=D is not None, HAS_Z=z is not None, ACCUMULATE=out is not None, **flags)
    return y, last, hseg, dsum


def seq_bwd(dy, u, delta, A, B, C, D, z, delta_bias, delta_softplus, hseg, dsum, dlast=None,
            reverse=False, z_mode=0, partner=None, entry_states=False) -> dict[str, Tensor]:
    """Backward on the segmented kernels (same outputs as ``triton_bwd.scan_bwd``). With
    ``entry_states``, ``hseg`` ``(B, (L - 1) // seg_len, N_pow2, D)`` holds the forward's state at
    each segment boundary (``triton_tile.tile_fwd`` with ``ck_steps=seg_len``) and ``dsum`` is
    unused; otherwise the segment summaries of ``seq_fwd``."""
    batch, channels, length = u.shape
    n_state = A.shape[1]
    B4, C4 = _b_c_rows(B), _b_c_rows(C)
    chans_per_group = channels // B4.shape[1]
    cfg = seq_config(batch, channels, length)
    # the segments must be those of the forward pass: its summaries are indexed by them
    seg_len, n_seg = cfg["seg_len"], cfg["n_seg"]
    n_entry = hseg.shape[1]
    expected = (max(length, 1) - 1) // seg_len if entry_states else n_seg
    assert n_entry == expected, "forward and backward segmentations differ"
    block_d = block_for_groups(cfg["block_d_bwd"], chans_per_group)
    n_pow2 = hseg.shape[2]
    sub = cfg["sub"]
    dev = u.device
    dy = dy.contiguous()
    f32 = dict(device=dev, dtype=torch.float32)
    n_blocks = triton.cdiv(channels, block_d)
    grid = (batch, n_blocks, n_seg)
    gseg = torch.empty(batch, n_seg, n_pow2, channels, **f32)
    dnext = torch.empty(batch, n_seg, channels, **f32)
    zz = z if z is not None else u
    bias = delta_bias if delta_bias is not None else u
    dl = dlast.contiguous().float() if dlast is not None else hseg
    flags = dict(N=n_pow2, BLOCK_D=block_d, HAS_BIAS=delta_bias is not None,
                 SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse),
                 HAS_DLAST=dlast is not None, HAS_Z=z is not None, num_warps=1)
    At, sA_d, sA_n = _a_by_state(A)
    _seg_bwd_summary[grid](
        delta, At, C4, zz, bias, dy, dl, gseg, dnext,
        length, channels, chans_per_group, n_state, seg_len, n_seg,
        *delta.stride(), *zz.stride(), *dy.stride(), *C4.stride(), sA_d, sA_n, **flags)
    du = torch.empty_like(dy, dtype=u.dtype)
    ddelta = torch.empty_like(dy, dtype=delta.dtype)
    dz = torch.empty_like(dy, dtype=z.dtype) if z is not None and z_mode != 1 else None
    dA = torch.zeros(channels, n_state, **f32)
    dB = torch.zeros(B4.shape[0], B4.shape[1], n_state, length, **f32)
    dC = torch.zeros(C4.shape[0], C4.shape[1], n_state, length, **f32)
    dD = torch.zeros(channels, **f32) if D is not None else None
    dbias = torch.zeros(channels, **f32) if delta_bias is not None else None
    per_program = (seg_len // sub + sub) * n_pow2 * block_d
    scratch = torch.empty(batch * n_blocks * n_seg * per_program, **f32)
    _seg_bwd_grads[grid](
        u, delta, At, B4, C4, D if D is not None else dA, zz, bias, dy, dl,
        hseg if hseg.numel() else gseg, dsum if dsum is not None else gseg, gseg, dnext, scratch,
        du, ddelta, dA, dB, dC, dD if dD is not None else dA, dz if dz is not None else du,
        dbias if dbias is not None else dA, partner if partner is not None else dA,
        length, channels, chans_per_group, n_state, seg_len, n_seg, n_entry,
        *u.stride(), *delta.stride(), *zz.stride(), *dy.stride(),
        *B4.stride(), *C4.stride(), sA_d, sA_n,
        SUB=sub, HAS_D=D is not None, Z_MODE=z_mode, ENTRY_STATES=bool(entry_states), **flags)
    return {"du": du, "ddelta": ddelta, "dA": dA, "dB": dB.view(B.shape), "dC": dC.view(C.shape),
            "dD": dD, "dz": dz, "ddelta_bias": dbias}
