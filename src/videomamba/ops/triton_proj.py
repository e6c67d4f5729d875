"""Both branches' x_proj and dt_proj in one Triton launch, reading the conv outputs once.

For each branch's conv output ``u`` (rows = batch x positions, ``D`` channels fastest), its
x_proj weight ``(R, D)`` (R = dt_rank + 2N) and dt_proj weight ``(D, dt_rank)``, a program takes
``BLOCK_M`` rows of one branch: ``x_dbl = u @ x_proj.T`` on tensor cores over ``BLOCK_K``-channel
chunks, in two float32 accumulators (the dt_rank columns; the 2N columns of B and C), written in
the input dtype; then ``delta = x_dbl[:, :dt_rank] @ dt_proj.T`` from the rounded ``dt``, written
``BLOCK_N`` channels at a time. The same values as ``F.linear`` twice, up to the order of float32
sums; one launch instead of four per block and no round trip of ``dt`` through memory.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from videomamba.ops.selective_scan.triton_common import cdiv, interpreting, next_power_of_2
from videomamba.ops.triton_conv import _config_from_env
from videomamba.ops.triton_launch import launch

# Triton's CPU interpreter multiplies 16-bit floats in tl.dot as their bit patterns (3.6)
_UPCAST_DOT: tl.constexpr = tl.constexpr(interpreting())


@triton.jit
def _dot(a, b, acc, PRECISION: tl.constexpr):
    """``acc + a @ b`` (float32 ``acc``)."""
    if _UPCAST_DOT:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a, b, acc, input_precision=PRECISION)


@triton.jit
def _weight_cols(w_ptr, sw_r, first_r, n_r, offs_k, mask_k, BLOCK_R: tl.constexpr):
    """``x_proj`` rows ``first_r .. first_r + n_r - 1`` at channels ``offs_k``, transposed:
    ``(BLOCK_K, BLOCK_R)``, zeros past ``n_r`` rows."""
    r = tl.arange(0, BLOCK_R)
    return tl.load(w_ptr + (first_r + r)[None, :] * sw_r + offs_k[:, None],
                   mask=mask_k[:, None] & (r < n_r)[None, :], other=0.0)


@triton.jit
def _store_cols(acc, rows, mask_m, first_c, n_c, BLOCK_C: tl.constexpr):
    """``acc`` ``(BLOCK_M, BLOCK_C)`` into columns ``first_c ..`` of row pointers ``rows``."""
    c = tl.arange(0, BLOCK_C)
    tl.store(rows[:, None] + (first_c + c)[None, :], acc.to(rows.dtype.element_ty),
             mask=mask_m[:, None] & (c < n_c)[None, :])


@triton.jit
def _delta_tiles(dt, wdt_ptr, sdt_d, dt_rank, delta_rows, mask_m, channels,
                 BLOCK_DT: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    """``delta = dt @ dt_proj.T`` ``(BLOCK_M, D)`` written ``BLOCK_N`` channels at a time (``dt``
    ``(BLOCK_M, BLOCK_DT)`` in the input dtype, zero past ``dt_rank`` columns)."""
    r = tl.arange(0, BLOCK_DT)
    for n0 in range(0, channels, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < channels
        w = tl.load(wdt_ptr + offs_n[None, :] * sdt_d + r[:, None],
                    mask=(r < dt_rank)[:, None] & mask_n[None, :], other=0.0)
        delta = _dot(dt, w, tl.zeros((dt.shape[0], BLOCK_N), dtype=tl.float32), PRECISION)
        tl.store(delta_rows[:, None] + offs_n[None, :], delta.to(delta_rows.dtype.element_ty),
                 mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _projections_kernel(
    uf_ptr, ub_ptr, pxf_ptr, pxb_ptr, pdf_ptr, pdb_ptr, dblf_ptr, dblb_ptr, df_ptr, db_ptr,
    rows, channels, dt_rank, n_bc, su_r, spx_r, spd_d, sdbl_r, sd_r,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_DT: tl.constexpr, BLOCK_BC: tl.constexpr, PRECISION: tl.constexpr,
):
    """Grid (row blocks, 2 branches)."""
    second = tl.program_id(1) == 1
    u_ptr, px_ptr = tl.where(second, ub_ptr, uf_ptr), tl.where(second, pxb_ptr, pxf_ptr)
    pd_ptr, dbl_ptr = tl.where(second, pdb_ptr, pdf_ptr), tl.where(second, dblb_ptr, dblf_ptr)
    d_ptr = tl.where(second, db_ptr, df_ptr)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < rows
    row = offs_m.to(tl.int64)
    u_rows = u_ptr + row * su_r
    dt = tl.zeros((BLOCK_M, BLOCK_DT), dtype=tl.float32)
    bc = tl.zeros((BLOCK_M, BLOCK_BC), dtype=tl.float32)
    for k0 in range(0, channels, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < channels
        u = tl.load(u_rows[:, None] + offs_k[None, :], mask=mask_m[:, None] & mask_k[None, :],
                    other=0.0)
        dt = _dot(u, _weight_cols(px_ptr, spx_r, 0, dt_rank, offs_k, mask_k, BLOCK_DT), dt,
                  PRECISION)
        bc = _dot(u, _weight_cols(px_ptr, spx_r, dt_rank, n_bc, offs_k, mask_k, BLOCK_BC), bc,
                  PRECISION)
    dbl_rows = dbl_ptr + row * sdbl_r
    _store_cols(dt, dbl_rows, mask_m, 0, dt_rank, BLOCK_DT)
    _store_cols(bc, dbl_rows, mask_m, dt_rank, n_bc, BLOCK_BC)
    # dt_proj reads dt as x_proj wrote it (rounded to the input dtype); its columns past
    # dt_rank are zero and meet zero weights
    _delta_tiles(dt.to(dbl_ptr.dtype.element_ty), pd_ptr, spd_d, dt_rank, d_ptr + row * sd_r,
                 mask_m, channels, BLOCK_DT, BLOCK_N, PRECISION)


def fused_projections(u: Tensor) -> bool:
    """Whether :func:`branch_projections` takes the conv output ``u`` ``(B, D, L)``: for
    channels-fastest ``u`` with dense rows (the conv kernel's output for the mixer) on CUDA or
    the Triton interpreter, unless ``VIDEOMAMBA_FUSED_PROJ=0``. Run 81 (H200, VideoMamba-S,
    batch 8, bf16, GPU time without the host): 0.029 ms against 0.034 for four ``F.linear`` at
    L=1569 (0.107 / 0.119 at 6273, 0.208 / 0.210 at 12545; floor 0.027 / 0.107 / 0.213 at
    3 TB/s); graphed inference 1.02x at 8 frames, 1.01x at 32, 1.00x at 64."""
    if os.environ.get("VIDEOMAMBA_FUSED_PROJ", "auto") == "0":
        return False
    return ((u.is_cuda or interpreting()) and u.stride(1) == 1
            and u.stride(0) == u.shape[1] * u.shape[2] and u.stride(2) == u.shape[1])


def projections_config() -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_K, BLOCK_N, num_warps), or the ``VIDEOMAMBA_FUSED_PROJ_CONFIG``
    override. The default was the fastest of run 81's seven at L=1569 and within 2 % of the
    fastest (128,64,128,8) at 6273 and 12545."""
    default = (16, 32, 32, 4) if interpreting() else (64, 64, 128, 4)
    return _config_from_env("VIDEOMAMBA_FUSED_PROJ_CONFIG", default)


def branch_projections(u_f: Tensor, u_b: Tensor, x_proj: tuple[Tensor, Tensor],
                       dt_proj: tuple[Tensor, Tensor], dt_rank: int
                       ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Per branch ``(x_dbl, delta)``: ``x_dbl = u.T @ x_proj.T`` ``(B, L, R)`` contiguous and
    ``delta = x_dbl[..., :dt_rank] @ dt_proj.T`` as a ``(B, D, L)`` view of ``(B, L, D)``
    memory, in ``u``'s dtype. ``u_f``, ``u_b``: ``(B, D, L)`` views of dense ``(B, L, D)``
    memory; ``x_proj``: both ``(R, D)`` weights, ``dt_proj``: both ``(D, dt_rank)`` weights, in
    ``u``'s dtype."""
    batch, channels, length = u_f.shape
    n_out = x_proj[0].shape[0]
    rows, dtype, dev = batch * length, u_f.dtype, u_f.device
    dbl = [torch.empty((batch, length, n_out), dtype=dtype, device=dev) for _ in range(2)]
    delta = [torch.empty((batch, length, channels), dtype=dtype, device=dev) for _ in range(2)]
    pxf, pxb = (w.contiguous() for w in x_proj)
    pdf, pdb = (w.contiguous() for w in dt_proj)
    block_m, block_k, block_n, warps = projections_config()
    if rows > 0:
        launch(
            _projections_kernel, (cdiv(rows, block_m), 2),
            u_f, u_b, pxf, pxb, pdf, pdb, dbl[0], dbl[1], delta[0], delta[1],
            rows, channels, dt_rank, n_out - dt_rank, channels, pxf.stride(0), pdf.stride(0),
            n_out, channels, BLOCK_M=block_m, BLOCK_K=block_k, BLOCK_N=block_n,
            BLOCK_DT=max(next_power_of_2(dt_rank), 16),
            BLOCK_BC=max(next_power_of_2(n_out - dt_rank), 16),
            PRECISION="ieee" if dtype == torch.float32 else "tf32", num_warps=warps,
        )
    return ((dbl[0], delta[0].transpose(1, 2)), (dbl[1], delta[1].transpose(1, 2)))
