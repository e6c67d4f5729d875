"""Triton forward kernel of the selective scan (contract: ``ref.py``).

One program owns one batch row and a block of ``BLOCK_D`` channels. It walks the sequence in
chunks of ``BLOCK_L`` steps, keeping the ``(BLOCK_D, N)`` state in float32 registers. Inside a chunk
the recurrence ``h_t = a_t * h_{t-1} + b_t`` is a parallel associative scan over time, so every
input is read once with coalesced tile loads and ``y`` is written once: the kernel moves the
floor's bytes (u, delta, z, B, C in; y out) plus one small float32 state per chunk, which the
backward pass uses to recompute the chunk instead of storing every step.

``REVERSE`` scans from the end of the sequence to the start by index (the backward branch of the
bidirectional mixer) and ``ACCUMULATE`` adds the ungated output already in ``y`` before gating, so
the two directions of a block need two launches and no flipped copies.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from videomamba.ops.selective_scan.triton_compat import (
    interpret_library_calls,
    patch_interpreter_index,
)

LOG2E = 1.4426950408889634


@triton.jit
def _linear_combine(a_prev, b_prev, a_next, b_next):
    """Compose two steps of ``h -> a * h + b`` (``prev`` applied first)."""
    return a_prev * a_next, b_prev * a_next + b_next


@triton.jit
def _softplus(x):
    # log1p(exp(x)) through exp2/log2; above 20 softplus(x) == x in float32.
    return tl.where(x > 20.0, x, tl.log2(1.0 + tl.exp2(x * 1.4426950408889634)) * 0.6931471805599453)


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, y_ptr, last_ptr, states_ptr,
    length, channels, chans_per_group, n_state, n_chunks,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, sy_b, sy_d, sy_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t, sA_d, sA_n,
    N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, ACCUMULATE: tl.constexpr, SAVE_STATES: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N)
    mask_d = offs_d < channels
    mask_n = offs_n < n_state
    mask_dn = mask_d[:, None] & mask_n[None, :]
    group = (pid_d * BLOCK_D) // chans_per_group

    # A pre-scaled by log2(e): exp(delta * A) == exp2(delta * A2).
    A2 = tl.load(A_ptr + offs_d[:, None] * sA_d + offs_n[None, :] * sA_n, mask=mask_dn, other=0.0)
    A2 = A2.to(tl.float32) * 1.4426950408889634
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)

    u_base = u_ptr + pid_b * su_b + offs_d[:, None] * su_d
    d_base = delta_ptr + pid_b * sd_b + offs_d[:, None] * sd_d
    z_base = z_ptr + pid_b * sz_b + offs_d[:, None] * sz_d
    y_base = y_ptr + pid_b * sy_b + offs_d[:, None] * sy_d
    B_base = B_ptr + pid_b * sB_b + group * sB_g + offs_n[:, None] * sB_n
    C_base = C_ptr + pid_b * sC_b + group * sC_g + offs_n[:, None] * sC_n
    st_base = states_ptr + ((pid_b * channels + offs_d[:, None]) * n_chunks) * N + offs_n[None, :]

    h = tl.zeros((BLOCK_D, N), dtype=tl.float32)
    for step in range(0, n_chunks):
        if REVERSE:
            chunk = n_chunks - 1 - step
        else:
            chunk = step
        if SAVE_STATES:
            tl.store(st_base + chunk * N, h, mask=mask_dn)
        offs_t = chunk * BLOCK_L + tl.arange(0, BLOCK_L)
        mask_t = offs_t < length
        mask_dt = mask_d[:, None] & mask_t[None, :]
        mask_nt = mask_n[:, None] & mask_t[None, :]

        u = tl.load(u_base + offs_t[None, :] * su_t, mask=mask_dt, other=0.0).to(tl.float32)
        dt = tl.load(d_base + offs_t[None, :] * sd_t, mask=mask_dt, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt = dt + bias[:, None]
        if SOFTPLUS:
            dt = _softplus(dt)
        dt = tl.where(mask_dt, dt, 0.0)  # padded steps are the identity: a = 1, b = 0
        Bt = tl.load(B_base + offs_t[None, :] * sB_t, mask=mask_nt, other=0.0).to(tl.float32)
        Ct = tl.load(C_base + offs_t[None, :] * sC_t, mask=mask_nt, other=0.0).to(tl.float32)

        a = tl.exp2(dt[:, None, :] * A2[:, :, None])  # (BLOCK_D, N, BLOCK_L)
        b = (dt * u)[:, None, :] * Bt[None, :, :]
        a_run, hs = tl.associative_scan((a, b), 2, _linear_combine, reverse=REVERSE)
        hs = hs + a_run * h[:, :, None]
        out = tl.sum(hs * Ct[None, :, :], axis=1)  # (BLOCK_D, BLOCK_L)
        if REVERSE:
            edge = 0
        else:
            edge = BLOCK_L - 1
        is_edge = (tl.arange(0, BLOCK_L) == edge)[None, None, :]
        h = tl.sum(tl.where(is_edge, hs, 0.0), axis=2)

        if HAS_D:
            out = out + Dv[:, None] * u
        y_ptrs = y_base + offs_t[None, :] * sy_t
        if ACCUMULATE:
            out = out + tl.load(y_ptrs, mask=mask_dt, other=0.0).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_base + offs_t[None, :] * sz_t, mask=mask_dt, other=0.0).to(tl.float32)
            out = out * zt * tl.sigmoid(zt)
        tl.store(y_ptrs, out.to(y_ptr.dtype.element_ty), mask=mask_dt)

    tl.store(last_ptr + (pid_b * channels + offs_d[:, None]) * N + offs_n[None, :], h, mask=mask_dn)


def interpreting() -> bool:
    """True when Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


if interpreting():
    patch_interpreter_index()
    interpret_library_calls()


def _env_config(name: str) -> tuple[int, int, int] | None:
    """A ``"BLOCK_D,BLOCK_L,num_warps"`` override from the environment (benchmarks use it)."""
    text = os.environ.get(name)
    if not text:
        return None
    block_d, block_l, warps = (int(v) for v in text.split(","))
    return block_d, block_l, warps


def fwd_config(channels: int, length: int) -> tuple[int, int, int]:
    """(BLOCK_D, BLOCK_L, num_warps) for the forward kernel; measured choices in docs/kernels.md."""
    override = _env_config("VIDEOMAMBA_SCAN_FWD_CONFIG")
    if override:
        return override
    if interpreting():
        return 4, 16, 1
    return 8, 64, 4


def block_for_groups(block_d: int, chans_per_group: int) -> int:
    """Largest power of two <= block_d dividing the channels of one B/C group (a program reads one
    group's B and C)."""
    while chans_per_group % block_d:
        block_d //= 2
    return block_d


def as_groups(bc: Tensor) -> Tensor:
    """B or C as ``(B, G, N, L)`` (a view)."""
    return bc.unsqueeze(1) if bc.dim() == 3 else bc


def scan_fwd(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
    reverse: bool = False,
    out: Tensor | None = None,
    save_states: bool = True,
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Launch the forward kernel.

    u, delta, z ``(B, D, L)`` any strides; A ``(D, N)``; B, C ``(B, N, L)`` or ``(B, G, N, L)``;
    D, delta_bias ``(D,)``. With ``out`` given, its ungated content is added before gating (the
    bidirectional sum) and it is overwritten in place. Returns ``(y, last_state (B, D, N) float32,
    chunk_states (B, D, n_chunks, N_pow2) float32, block_l)``; ``last_state`` is the state after the
    final step in scan order (t = 0 when ``reverse``).
    """
    batch, channels, length = u.shape
    n_state = A.shape[1]
    B4, C4 = as_groups(B), as_groups(C)
    chans_per_group = channels // B4.shape[1]
    block_d, block_l, warps = fwd_config(channels, length)
    block_d = block_for_groups(block_d, chans_per_group)
    n_pow2 = max(triton.next_power_of_2(n_state), 2)
    n_chunks = max(triton.cdiv(length, block_l), 1)
    accumulate = out is not None
    y = out if accumulate else torch.empty_like(u, memory_format=torch.contiguous_format)
    last = torch.empty(batch, channels, n_pow2, device=u.device, dtype=torch.float32)
    states = torch.empty(
        (batch, channels, n_chunks if save_states else 1, n_pow2), device=u.device, dtype=torch.float32
    )
    zz = z if z is not None else u
    grid = (batch, triton.cdiv(channels, block_d))
    _fwd_kernel[grid](
        u, delta, A, B4, C4, D if D is not None else u, zz,
        delta_bias if delta_bias is not None else u, y, last, states,
        length, channels, chans_per_group, n_state, n_chunks,
        *u.stride(), *delta.stride(), *zz.stride(), *y.stride(),
        *B4.stride(), *C4.stride(), *A.stride(),
        N=n_pow2, BLOCK_D=block_d, BLOCK_L=block_l,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse), ACCUMULATE=accumulate,
        SAVE_STATES=bool(save_states), num_warps=warps,
    )
    return y, last[:, :, :n_state], states, block_l
