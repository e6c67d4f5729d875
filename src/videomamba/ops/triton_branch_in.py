"""Both branches' scan inputs in one Triton kernel: the two depthwise convs with their SiLU,
``x_proj`` and ``dt_proj``, for the mixer's channels-fastest ``x``.

For ``x`` ``(B, D, L)`` (a view of ``(B, L, D)`` memory) and each branch's conv taps ``(D, K)``,
``x_proj`` weight ``(R, D)`` (R = dt_rank + 2N) and ``dt_proj`` weight ``(D, dt_rank)``, a
program takes one batch row and ``BLOCK_M`` positions and walks the channels in chunks of
``BLOCK_K``:

1. both convs + SiLU of the chunk: ``u_f`` causal, ``u_b`` anti-causal (``ops/triton_conv.py``
   has the formulas), written out for the scans;
2. ``x_dbl += u @ x_proj[:, chunk].T`` for both branches on tensor cores, in two accumulators per
   branch (the dt_rank columns, the 2N columns of B and C);

then it writes ``x_dbl`` and ``delta = x_dbl[:, :dt_rank] @ dt_proj.T`` in chunks of ``BLOCK_N``
channels. Values are rounded to the input dtype where the unfused path rounds them (``u``,
``x_dbl``, ``delta``); the sums are float32. Against the conv kernel and four GEMMs per block it
saves reading ``u_f`` and ``u_b`` again (2 x B x L x D values) and four launches.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from videomamba.ops.selective_scan.triton_common import _sigmoid, interpreting
from videomamba.ops.triton_conv import MAX_WIDTH, _per_channel, _source, _taps, _tile_at

# Triton's CPU interpreter multiplies 16-bit floats in tl.dot as their bit patterns (3.6)
_UPCAST_DOT: tl.constexpr = tl.constexpr(interpreting())


@triton.jit
def _dot(a, b, acc, PRECISION: tl.constexpr):
    """``acc + a @ b`` (float32 ``acc``)."""
    if _UPCAST_DOT:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a, b, acc, input_precision=PRECISION)


@triton.jit
def _conv_silu_tile(x_base, sx_l, w_ptr, sw_d, sw_k, b_ptr, offs_k, mask_k, t, length,
                    K: tl.constexpr, ANTI: tl.constexpr, HAS_BIAS: tl.constexpr):
    """float32 ``silu(conv)`` ``(BLOCK_M, BLOCK_K)`` of one branch at positions ``t`` and
    channels ``offs_k`` (x channels-fastest)."""
    pre = _per_channel(w_ptr, offs_k * sw_d, mask_k, True) * _tile_at(
        x_base, 1, sx_l, offs_k, mask_k, _source(t, 0, K, ANTI), length, True)
    for k in tl.static_range(1, K):
        pre += _per_channel(w_ptr + k * sw_k, offs_k * sw_d, mask_k, True) * _tile_at(
            x_base, 1, sx_l, offs_k, mask_k, _source(t, k, K, ANTI), length, True)
    if HAS_BIAS:
        pre += _per_channel(b_ptr, offs_k, mask_k, True)
    return pre * _sigmoid(pre)


@triton.jit
def _weight_cols(w_ptr, sw_r, first_r, n_r, offs_k, mask_k, BLOCK_R: tl.constexpr):
    """``x_proj`` rows ``first_r .. first_r + n_r - 1`` at channels ``offs_k``, transposed:
    ``(BLOCK_K, BLOCK_R)``, zeros past ``n_r`` rows."""
    r = tl.arange(0, BLOCK_R)
    return tl.load(w_ptr + (first_r + r)[None, :] * sw_r + offs_k[:, None],
                   mask=mask_k[:, None] & (r < n_r)[None, :], other=0.0)


@triton.jit
def _store_cols(ptr, acc, rows, mask_m, first_c, n_c, BLOCK_C: tl.constexpr):
    """``acc`` ``(BLOCK_M, BLOCK_C)`` into columns ``first_c ..`` of row pointers ``rows``."""
    c = tl.arange(0, BLOCK_C)
    tl.store(rows[:, None] + (first_c + c)[None, :], acc.to(ptr.dtype.element_ty),
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
def _branch_inputs_kernel(
    x_ptr, cwf_ptr, cbf_ptr, cwb_ptr, cbb_ptr, pxf_ptr, pxb_ptr, pdf_ptr, pdb_ptr,
    uf_ptr, ub_ptr, dblf_ptr, dblb_ptr, df_ptr, db_ptr,
    channels, length, dt_rank, n_bc,
    sx_b, sx_l, scf_d, scf_k, scb_d, scb_k, spx_r, spd_d, su_b, su_l, sdbl_b, sdbl_l,
    sd_b, sd_l,
    K: tl.constexpr, HAS_BF: tl.constexpr, HAS_BB: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_DT: tl.constexpr, BLOCK_BC: tl.constexpr, PRECISION: tl.constexpr,
):
    """Grid (position blocks, batch): both branches' ``u``, ``x_dbl`` and ``delta`` for
    ``BLOCK_M`` positions of one row. Every tensor is channels-fastest (``x_dbl``: its R columns
    fastest); ``n_bc`` = 2N."""
    pid_m, pid_b = tl.program_id(0), tl.program_id(1)
    t = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = t < length
    row = pid_b.to(tl.int64)
    x_base = x_ptr + row * sx_b
    uf_rows = uf_ptr + row * su_b + t * su_l
    ub_rows = ub_ptr + row * su_b + t * su_l
    dt_f = tl.zeros((BLOCK_M, BLOCK_DT), dtype=tl.float32)
    dt_b = tl.zeros((BLOCK_M, BLOCK_DT), dtype=tl.float32)
    bc_f = tl.zeros((BLOCK_M, BLOCK_BC), dtype=tl.float32)
    bc_b = tl.zeros((BLOCK_M, BLOCK_BC), dtype=tl.float32)
    for k0 in range(0, channels, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < channels
        mask = mask_m[:, None] & mask_k[None, :]
        u_f = _conv_silu_tile(x_base, sx_l, cwf_ptr, scf_d, scf_k, cbf_ptr, offs_k, mask_k, t,
                              length, K, False, HAS_BF).to(uf_ptr.dtype.element_ty)
        tl.store(uf_rows[:, None] + offs_k[None, :], u_f, mask=mask)
        dt_f = _dot(u_f, _weight_cols(pxf_ptr, spx_r, 0, dt_rank, offs_k, mask_k, BLOCK_DT),
                    dt_f, PRECISION)
        bc_f = _dot(u_f, _weight_cols(pxf_ptr, spx_r, dt_rank, n_bc, offs_k, mask_k, BLOCK_BC),
                    bc_f, PRECISION)
        u_b = _conv_silu_tile(x_base, sx_l, cwb_ptr, scb_d, scb_k, cbb_ptr, offs_k, mask_k, t,
                              length, K, True, HAS_BB).to(ub_ptr.dtype.element_ty)
        tl.store(ub_rows[:, None] + offs_k[None, :], u_b, mask=mask)
        dt_b = _dot(u_b, _weight_cols(pxb_ptr, spx_r, 0, dt_rank, offs_k, mask_k, BLOCK_DT),
                    dt_b, PRECISION)
        bc_b = _dot(u_b, _weight_cols(pxb_ptr, spx_r, dt_rank, n_bc, offs_k, mask_k, BLOCK_BC),
                    bc_b, PRECISION)
    dblf_rows = dblf_ptr + row * sdbl_b + t * sdbl_l
    dblb_rows = dblb_ptr + row * sdbl_b + t * sdbl_l
    _store_cols(dblf_ptr, dt_f, dblf_rows, mask_m, 0, dt_rank, BLOCK_DT)
    _store_cols(dblf_ptr, bc_f, dblf_rows, mask_m, dt_rank, n_bc, BLOCK_BC)
    _store_cols(dblb_ptr, dt_b, dblb_rows, mask_m, 0, dt_rank, BLOCK_DT)
    _store_cols(dblb_ptr, bc_b, dblb_rows, mask_m, dt_rank, n_bc, BLOCK_BC)
    # dt_proj reads dt as x_proj wrote it (rounded to the input dtype); its zero columns past
    # dt_rank meet zero weights
    _delta_tiles(dt_f.to(dblf_ptr.dtype.element_ty), pdf_ptr, spd_d, dt_rank,
                 df_ptr + row * sd_b + t * sd_l, mask_m, channels, BLOCK_DT, BLOCK_N, PRECISION)
    _delta_tiles(dt_b.to(dblb_ptr.dtype.element_ty), pdb_ptr, spd_d, dt_rank,
                 db_ptr + row * sd_b + t * sd_l, mask_m, channels, BLOCK_DT, BLOCK_N, PRECISION)


def fused_branch_inputs(x: Tensor) -> bool:
    """Whether :func:`branch_inputs` takes ``x`` (``VIDEOMAMBA_BRANCH_IN``: ``1``: for
    channels-fastest ``x`` on CUDA or the Triton interpreter; ``0``, the default: never). Run 74,
    H200, VideoMamba-S at batch 8: 0.28 ms per block at L=1569 against ~0.06 for the conv kernel
    and four GEMMs (1.59 against ~0.45 at 12545; ~200 registers, the conv computed in the
    tensor-core operand layout), graphed inference 0.61x / 0.68x / 0.67x at 8 / 32 / 64
    frames."""
    if os.environ.get("VIDEOMAMBA_BRANCH_IN", "0") != "1":
        return False
    return (x.is_cuda or interpreting()) and x.stride(1) == 1 and x.shape[2] > 0


def branch_inputs_config() -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_K, BLOCK_N, num_warps), or the ``VIDEOMAMBA_BRANCH_IN_CONFIG`` override."""
    text = os.environ.get("VIDEOMAMBA_BRANCH_IN_CONFIG")
    if not text:
        return (16, 32, 32, 4) if interpreting() else (32, 64, 128, 4)
    values = tuple(int(v) for v in text.split(","))
    if len(values) != 4:
        raise ValueError(f"VIDEOMAMBA_BRANCH_IN_CONFIG={text!r}: expected BLOCK_M,BLOCK_K,"
                         "BLOCK_N,warps")
    return values  # type: ignore[return-value]


def branch_inputs(x: Tensor, conv_f: tuple[Tensor, Tensor | None],
                  conv_b: tuple[Tensor, Tensor | None], x_proj: tuple[Tensor, Tensor],
                  dt_proj: tuple[Tensor, Tensor], dt_rank: int
                  ) -> tuple[tuple[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]:
    """Per branch (forward, then backward) ``(u, x_dbl, delta)``: ``u = silu(conv(x))`` and
    ``delta`` ``(B, D, L)`` views of ``(B, L, D)`` memory, ``x_dbl`` ``(B, L, R)`` contiguous, all
    in ``x``'s dtype. ``x`` ``(B, D, L)`` channels-fastest; ``conv_*`` = (taps ``(D, K)`` or
    ``(D, 1, K)``, bias or None); ``x_proj`` = both branches' ``(R, D)`` weights, ``dt_proj``
    both ``(D, dt_rank)`` weights, in ``x``'s dtype. The same values as the conv kernel
    followed by ``F.linear`` for x_proj and dt_proj, up to the order of float32 sums."""
    batch, channels, length = x.shape
    width = conv_f[0].shape[-1]
    if width > MAX_WIDTH or x.stride(1) != 1:
        raise ValueError(f"branch_inputs: needs channels-fastest x and conv width <= {MAX_WIDTH}")
    n_out = x_proj[0].shape[0]
    n_bc = n_out - dt_rank
    dev, dtype = x.device, x.dtype

    def channels_last(width_: int) -> Tensor:
        return torch.empty((batch, length, width_), dtype=dtype, device=dev)

    u_f, u_b, delta_f, delta_b = (channels_last(channels) for _ in range(4))
    dbl_f, dbl_b = channels_last(n_out), channels_last(n_out)
    wf, wb = _taps(conv_f[0], channels), _taps(conv_b[0], channels)
    pxf, pxb = (w.contiguous() for w in x_proj)
    pdf, pdb = (w.contiguous() for w in dt_proj)
    block_m, block_k, block_n, warps = branch_inputs_config()
    _branch_inputs_kernel[(triton.cdiv(length, block_m), batch)](
        x, wf, conv_f[1] if conv_f[1] is not None else wf, wb,
        conv_b[1] if conv_b[1] is not None else wb, pxf, pxb, pdf, pdb,
        u_f, u_b, dbl_f, dbl_b, delta_f, delta_b,
        channels, length, dt_rank, n_bc,
        x.stride(0), x.stride(2), *wf.stride(), *wb.stride(), pxf.stride(0), pdf.stride(0),
        u_f.stride(0), u_f.stride(1), dbl_f.stride(0), dbl_f.stride(1),
        delta_f.stride(0), delta_f.stride(1),
        K=width, HAS_BF=conv_f[1] is not None, HAS_BB=conv_b[1] is not None,
        BLOCK_M=block_m, BLOCK_K=block_k, BLOCK_N=block_n,
        BLOCK_DT=max(triton.next_power_of_2(dt_rank), 16),
        BLOCK_BC=max(triton.next_power_of_2(n_bc), 16),
        PRECISION="ieee" if dtype == torch.float32 else "tf32", num_warps=warps,
    )
    return ((u_f.transpose(1, 2), dbl_f, delta_f.transpose(1, 2)),
            (u_b.transpose(1, 2), dbl_b, delta_b.transpose(1, 2)))
