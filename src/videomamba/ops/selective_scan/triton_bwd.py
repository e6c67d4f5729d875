"""Triton backward kernel of the selective scan (contract: ``ref.py``; forward: ``triton_fwd.py``).

One program owns one batch row and ``BLOCK_D`` channels and walks the chunks against the forward
scan order. For each chunk it recomputes the states from the chunk-boundary state the forward pass
saved (``h_t``, an associative scan), then runs the adjoint recurrence
``g_t = dout_t * C_t + exp(delta_{t+1} A) * g_{t+1}`` as a scan the other way, carrying ``g`` across
chunks. With ``x_t = delta_t B_t u_t`` and ``exp(delta_t A) h_{t-1} = h_t - x_t`` (no division by a
decay that may underflow), the gradients are

    du     = delta * sum_n g B + D * dout            ddelta = u * sum_n g B + sum_n g A (h - x)
    dA     = sum_{b,t} g delta (h - x)               dB = sum_d g delta u,   dC = sum_d dout h
    dD     = sum_{b,t} dout u                        dz = dy * out * silu'(z)

then ``ddelta`` goes through softplus (times sigmoid of its input) and sums into ``ddelta_bias``.
dB and dC sum over channel blocks and dA, dD, ddelta_bias over batch rows with float32 atomics.

The gate: ``Z_MODE`` 0 takes ``dz`` from this direction's own output; 1 only writes the ungated
output to ``partner`` (the first of two directions, no gate); 2 adds ``partner`` to its own output
before computing ``dz`` (the second direction of the bidirectional pair, which owns the gate).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from videomamba.ops.selective_scan.triton_fwd import (
    _linear_combine,
    _softplus,
    as_groups,
    block_for_groups,
    interpreting,
    _env_config,
)


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dy_ptr, states_ptr, dlast_ptr,
    du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr, partner_ptr,
    length, channels, chans_per_group, n_state, n_chunks,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sg_b, sg_d, sg_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, HAS_DLAST: tl.constexpr, Z_MODE: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N)
    lane_t = tl.arange(0, BLOCK_L)
    mask_d = offs_d < channels
    mask_n = offs_n < n_state
    mask_dn = mask_d[:, None] & mask_n[None, :]
    group = (pid_d * BLOCK_D) // chans_per_group

    A = tl.load(A_ptr + offs_d[:, None] * sA_d + offs_n[None, :] * sA_n, mask=mask_dn, other=0.0)
    A = A.to(tl.float32)
    A2 = A * 1.4426950408889634
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)

    # Elementwise (B, D, L) tensors: inputs share u's strides, gradients share dy's (contiguous).
    u_base = u_ptr + pid_b * su_b + offs_d[:, None] * su_d
    d_base = delta_ptr + pid_b * sd_b + offs_d[:, None] * sd_d
    z_base = z_ptr + pid_b * sz_b + offs_d[:, None] * sz_d
    g_base = pid_b * sg_b + offs_d[:, None] * sg_d
    B_base = B_ptr + pid_b * sB_b + group * sB_g + offs_n[:, None] * sB_n
    C_base = C_ptr + pid_b * sC_b + group * sC_g + offs_n[:, None] * sC_n
    # dB, dC: float32 (B, G, N, L) contiguous.
    dbc_base = ((pid_b * (channels // chans_per_group) + group) * n_state + offs_n[:, None]) * length
    st_base = states_ptr + ((pid_b * channels + offs_d[:, None]) * n_chunks) * N + offs_n[None, :]

    if HAS_DLAST:
        dlast = tl.load(dlast_ptr + (pid_b * channels + offs_d[:, None]) * n_state + offs_n[None, :],
                        mask=mask_dn, other=0.0)
    if REVERSE:
        last_t = 0
        step_t = -1
    else:
        last_t = length - 1
        step_t = 1

    g_carry = tl.zeros((BLOCK_D, N), dtype=tl.float32)
    dA_acc = tl.zeros((BLOCK_D, N), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for step in range(0, n_chunks):
        if REVERSE:
            chunk = step
        else:
            chunk = n_chunks - 1 - step
        offs_t = chunk * BLOCK_L + lane_t
        mask_t = offs_t < length
        mask_dt = mask_d[:, None] & mask_t[None, :]
        mask_nt = mask_n[:, None] & mask_t[None, :]

        u = tl.load(u_base + offs_t[None, :] * su_t, mask=mask_dt, other=0.0).to(tl.float32)
        dt_raw = tl.load(d_base + offs_t[None, :] * sd_t, mask=mask_dt, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt_raw = dt_raw + bias[:, None]
        dt = dt_raw
        if SOFTPLUS:
            dt = _softplus(dt_raw)
        dt = tl.where(mask_dt, dt, 0.0)
        # delta one step later in scan order: the decay that carries g_{t+1} back to g_t.
        offs_nx = offs_t + step_t
        mask_nx = mask_d[:, None] & ((offs_nx >= 0) & (offs_nx < length))[None, :]
        dt_nx = tl.load(d_base + offs_nx[None, :] * sd_t, mask=mask_nx, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt_nx = dt_nx + bias[:, None]
        if SOFTPLUS:
            dt_nx = _softplus(dt_nx)
        dt_nx = tl.where(mask_nx, dt_nx, 0.0)
        Bt = tl.load(B_base + offs_t[None, :] * sB_t, mask=mask_nt, other=0.0).to(tl.float32)
        Ct = tl.load(C_base + offs_t[None, :] * sC_t, mask=mask_nt, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + g_base + offs_t[None, :] * sg_t, mask=mask_dt, other=0.0).to(tl.float32)

        # Recompute the chunk's states from its saved entry state.
        a = tl.exp2(dt[:, None, :] * A2[:, :, None])  # (BLOCK_D, N, BLOCK_L)
        du_t = dt * u
        x = du_t[:, None, :] * Bt[None, :, :]
        h_in = tl.load(st_base + chunk * N, mask=mask_dn, other=0.0)
        a_run, hs = tl.associative_scan((a, x), 2, _linear_combine, reverse=REVERSE)
        hs = hs + a_run * h_in[:, :, None]

        dout = dy
        if HAS_Z:
            zt = tl.load(z_base + offs_t[None, :] * sz_t, mask=mask_dt, other=0.0).to(tl.float32)
            sig = tl.sigmoid(zt)
            out = tl.sum(hs * Ct[None, :, :], axis=1)
            if HAS_D:
                out = out + Dv[:, None] * u
            if Z_MODE == 1:
                tl.store(partner_ptr + g_base + offs_t[None, :] * sg_t, out, mask=mask_dt)
            else:
                if Z_MODE == 2:
                    out = out + tl.load(partner_ptr + g_base + offs_t[None, :] * sg_t, mask=mask_dt,
                                        other=0.0)
                dz = dy * out * sig * (1.0 + zt * (1.0 - sig))
                tl.store(dz_ptr + g_base + offs_t[None, :] * sg_t, dz.to(dz_ptr.dtype.element_ty),
                         mask=mask_dt)
            dout = dy * zt * sig
        if HAS_D:
            dD_acc += tl.sum(dout * u, axis=1)

        # Adjoint scan, against the forward order: g_t = b_t + a_next_t * g_{t+1}.
        a_nx = tl.exp2(dt_nx[:, None, :] * A2[:, :, None])
        b = dout[:, None, :] * Ct[None, :, :]
        if HAS_DLAST:
            b += tl.where((offs_t == last_t)[None, None, :], dlast[:, :, None], 0.0)
        g_run, g = tl.associative_scan((a_nx, b), 2, _linear_combine, reverse=not REVERSE)
        g = g + g_run * g_carry[:, :, None]
        if REVERSE:
            edge = BLOCK_L - 1
        else:
            edge = 0
        g_carry = tl.sum(tl.where((lane_t == edge)[None, None, :], g, 0.0), axis=2)

        decayed = hs - x  # exp(delta_t A) h_{t-1}
        gB = tl.sum(g * Bt[None, :, :], axis=1)  # (BLOCK_D, BLOCK_L)
        du = dt * gB
        if HAS_D:
            du += Dv[:, None] * dout
        ddt = u * gB + tl.sum(g * decayed * A[:, :, None], axis=1)
        dA_acc += tl.sum(g * decayed * dt[:, None, :], axis=2)
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(dt_raw)
        ddt = tl.where(mask_dt, ddt, 0.0)
        if HAS_BIAS:
            dbias_acc += tl.sum(ddt, axis=1)
        tl.store(du_ptr + g_base + offs_t[None, :] * sg_t, du.to(du_ptr.dtype.element_ty), mask=mask_dt)
        tl.store(ddelta_ptr + g_base + offs_t[None, :] * sg_t, ddt.to(ddelta_ptr.dtype.element_ty),
                 mask=mask_dt)

        dB_part = tl.sum(g * du_t[:, None, :], axis=0)  # (N, BLOCK_L)
        dC_part = tl.sum(hs * dout[:, None, :], axis=0)
        tl.atomic_add(dB_ptr + dbc_base + offs_t[None, :], dB_part, mask=mask_nt, sem="relaxed")
        tl.atomic_add(dC_ptr + dbc_base + offs_t[None, :], dC_part, mask=mask_nt, sem="relaxed")

    tl.atomic_add(dA_ptr + offs_d[:, None] * n_state + offs_n[None, :], dA_acc, mask=mask_dn,
                  sem="relaxed")
    if HAS_D:
        tl.atomic_add(dD_ptr + offs_d, dD_acc, mask=mask_d, sem="relaxed")
    if HAS_BIAS:
        tl.atomic_add(dbias_ptr + offs_d, dbias_acc, mask=mask_d, sem="relaxed")


def bwd_config(channels: int, length: int) -> tuple[int, int, int]:
    """(BLOCK_D, BLOCK_L, num_warps) for the backward kernel; measured choices in docs/kernels.md."""
    override = _env_config("VIDEOMAMBA_SCAN_BWD_CONFIG")
    if override:
        return override
    if interpreting():
        return 4, 16, 1
    return 8, 32, 4


def scan_bwd(
    dy: Tensor,
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
    states: Tensor,
    block_l: int,
    dlast: Tensor | None = None,
    reverse: bool = False,
    z_mode: int = 0,
    partner: Tensor | None = None,
) -> dict[str, Tensor]:
    """Launch the backward kernel. ``dy`` ``(B, D, L)``; ``states`` and ``block_l`` come from
    ``scan_fwd``; ``dlast`` ``(B, D, N)`` is the gradient of the returned last state. Returns float32
    ``dA (D, N)``, ``dB``/``dC`` shaped like B/C, ``dD``/``ddelta_bias (D,)`` and, in the input dtypes,
    ``du``, ``ddelta`` and ``dz`` (``(B, D, L)``; ``dz`` absent when ``z_mode == 1``: the ungated
    output goes to ``partner`` instead)."""
    batch, channels, length = u.shape
    n_state = A.shape[1]
    B4, C4 = as_groups(B), as_groups(C)
    chans_per_group = channels // B4.shape[1]
    block_d, bwd_block_l, warps = bwd_config(channels, length)
    if bwd_block_l != block_l:  # the chunk states were saved at the forward's chunk size
        bwd_block_l = block_l
    block_d = block_for_groups(block_d, chans_per_group)
    n_chunks = states.shape[2]
    n_pow2 = states.shape[3]
    dy = dy.contiguous()
    dev = u.device
    du = torch.empty_like(dy, dtype=u.dtype)
    ddelta = torch.empty_like(dy, dtype=delta.dtype)
    dz = torch.empty_like(dy, dtype=z.dtype) if z is not None and z_mode != 1 else None
    f32 = dict(device=dev, dtype=torch.float32)
    dA = torch.zeros(channels, n_state, **f32)
    dB = torch.zeros(B4.shape, **f32)
    dC = torch.zeros(C4.shape, **f32)
    dD = torch.zeros(channels, **f32) if D is not None else None
    dbias = torch.zeros(channels, **f32) if delta_bias is not None else None
    zz = z if z is not None else u
    dl = dlast.contiguous().float() if dlast is not None else dA
    grid = (batch, triton.cdiv(channels, block_d))
    _bwd_kernel[grid](
        u, delta, A, B4, C4, D if D is not None else dA, zz,
        delta_bias if delta_bias is not None else dA, dy, states, dl,
        du, ddelta, dA, dB, dC, dD if dD is not None else dA, dz if dz is not None else du,
        dbias if dbias is not None else dA, partner if partner is not None else dA,
        length, channels, chans_per_group, n_state, n_chunks,
        *u.stride(), *delta.stride(), *zz.stride(), *dy.stride(),
        *B4.stride(), *C4.stride(), *A.stride(),
        N=n_pow2, BLOCK_D=block_d, BLOCK_L=bwd_block_l,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse), HAS_DLAST=dlast is not None,
        Z_MODE=z_mode, num_warps=warps,
    )
    return {
        "du": du, "ddelta": ddelta, "dA": dA, "dB": dB.view(B.shape), "dC": dC.view(C.shape),
        "dD": dD, "dz": dz, "ddelta_bias": dbias,
    }
