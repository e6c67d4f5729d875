"""The block's residual add and RMSNorm in one Triton pass each way (the official fused kernel's
job: ``mamba_ssm``'s ``layer_norm_fn`` with ``prenorm`` and ``residual_in_fp32``).

For rows of ``d`` features (``h``, ``residual`` ``(B, L, d)`` flattened to ``(B*L, d)``):

* ``summed = residual + scale[b] * h`` in float32 (``scale``: the per-sample drop-path factor,
  0 or ``1/keep``; ``summed = h`` for the first block, which has no residual yet);
* ``normed = summed * rstd * weight`` with ``rstd = 1 / sqrt(mean(summed^2) + eps)``, written in
  ``h``'s dtype; ``summed`` is written as the new residual (float32 with ``residual_in_fp32``).

Eager autograd over that composition keeps about four float32 ``(B, L, d)`` tensors per block
and runs some ten elementwise kernels; the forward here writes two tensors and one float per
row, and the backward saves only the new residual and ``rstd`` (the residual stream exists
anyway). Weight gradients are summed per program into a ``(programs, d)`` float32 buffer and
reduced with ``torch.sum`` (deterministic, no atomics).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from videomamba.ops.eager import AutogradRoute
# (importing triton_common also installs the interpreter shims under TRITON_INTERPRET=1)
from videomamba.ops.selective_scan.triton_common import cdiv, next_power_of_2
from videomamba.ops.triton_launch import launch

_BLOCK_ROWS = 8
_ROW_BLOCKS_PER_BWD_PROGRAM = 8


@triton.jit
def _add_rms_norm_fwd_kernel(
    h_ptr, res_ptr, scale_ptr, w_ptr, out_ptr, res_out_ptr, rstd_ptr,
    n_rows, rows_per_sample, dim, eps,
    HAS_RES: tl.constexpr, HAS_SCALE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_N)
    row_ok = rows < n_rows
    mask = row_ok[:, None] & (cols < dim)[None, :]
    offs = rows[:, None].to(tl.int64) * dim + cols[None, :]
    x = tl.load(h_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_RES:
        if HAS_SCALE:
            scale = tl.load(scale_ptr + rows // rows_per_sample, mask=row_ok, other=0.0)
            x = x * scale.to(tl.float32)[:, None]
        x += tl.load(res_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(res_out_ptr + offs, x.to(res_out_ptr.dtype.element_ty), mask=mask)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / dim + eps)
    w = tl.load(w_ptr + cols, mask=cols < dim, other=0.0).to(tl.float32)
    y = x * rstd[:, None] * w[None, :]
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(rstd_ptr + rows, rstd, mask=row_ok)


@triton.jit
def _add_rms_norm_bwd_kernel(
    dy_ptr, dres_out_ptr, x_ptr, w_ptr, rstd_ptr, scale_ptr, dh_ptr, dres_ptr, dw_ptr,
    n_rows, rows_per_sample, dim,
    HAS_DRES_OUT: tl.constexpr, HAS_RES: tl.constexpr, HAS_SCALE: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, ROW_BLOCKS: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    col_ok = cols < dim
    w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    dw = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for block in range(ROW_BLOCKS):
        rows = (pid * ROW_BLOCKS + block) * BLOCK_R + tl.arange(0, BLOCK_R)
        row_ok = rows < n_rows
        mask = row_ok[:, None] & col_ok[None, :]
        offs = rows[:, None].to(tl.int64) * dim + cols[None, :]
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(rstd_ptr + rows, mask=row_ok, other=0.0)
        dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        x_hat = x * rstd[:, None]
        w_dy = dy * w[None, :]
        dx = (w_dy - x_hat * (tl.sum(x_hat * w_dy, axis=1) / dim)[:, None]) * rstd[:, None]
        if HAS_DRES_OUT:
            dx += tl.load(dres_out_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        dw += tl.sum(dy * x_hat, axis=0)
        if HAS_RES:
            tl.store(dres_ptr + offs, dx.to(dres_ptr.dtype.element_ty), mask=mask)
            if HAS_SCALE:
                scale = tl.load(scale_ptr + rows // rows_per_sample, mask=row_ok, other=0.0)
                dx = dx * scale.to(tl.float32)[:, None]
        tl.store(dh_ptr + offs, dx.to(dh_ptr.dtype.element_ty), mask=mask)
    tl.store(dw_ptr + pid * dim + cols, dw, mask=col_ok)


def _rows(t: Tensor) -> Tensor:
    return t.contiguous().view(-1, t.shape[-1])


def _rows_per_sample(h: Tensor) -> int:
    return max(h.numel() // max(h.shape[0] * h.shape[-1], 1), 1) if h.dim() > 1 else 1


def _add_rms_norm_fwd_impl(h: Tensor, residual: Tensor | None, weight: Tensor, scale: Tensor | None,
                      eps: float, residual_fp32: bool) -> tuple[Tensor, Tensor, Tensor]:
    dim = h.shape[-1]
    res_dtype = _residual_dtype(h, residual, residual_fp32)
    normed = torch.empty(h.shape, dtype=h.dtype, device=h.device)
    res_out = torch.empty(h.shape, dtype=res_dtype, device=h.device)
    n_rows = h.numel() // max(dim, 1)
    rstd = torch.empty((n_rows,), dtype=torch.float32, device=h.device)
    if n_rows == 0:
        return normed, res_out, rstd
    h2 = _rows(h)
    res2 = _rows(residual) if residual is not None else h2
    launch(
        _add_rms_norm_fwd_kernel, (cdiv(n_rows, _BLOCK_ROWS),),
        h2, res2, scale if scale is not None else h2, weight, normed, res_out, rstd,
        n_rows, _rows_per_sample(h), dim, eps,
        HAS_RES=residual is not None, HAS_SCALE=scale is not None, BLOCK_R=_BLOCK_ROWS,
        BLOCK_N=next_power_of_2(dim), num_warps=4,
    )
    return normed, res_out, rstd


_add_rms_norm_fwd = torch.library.custom_op("videomamba::add_rms_norm_fwd", _add_rms_norm_fwd_impl,
                                            mutates_args=())


def _residual_dtype(h: Tensor, residual: Tensor | None, residual_fp32: bool) -> torch.dtype:
    if residual is not None:
        return residual.dtype
    return torch.float32 if residual_fp32 else h.dtype


@_add_rms_norm_fwd.register_fake
def _(h, residual, weight, scale, eps, residual_fp32):
    n_rows = h.numel() // max(h.shape[-1], 1)
    return (torch.empty(h.shape, dtype=h.dtype, device=h.device),
            torch.empty(h.shape, dtype=_residual_dtype(h, residual, residual_fp32), device=h.device),
            torch.empty((n_rows,), dtype=torch.float32, device=h.device))


def _add_rms_norm_bwd_impl(d_normed: Tensor, d_res_out: Tensor | None, res_out: Tensor, weight: Tensor,
                      rstd: Tensor, scale: Tensor | None, h_dtype: torch.dtype,
                      has_residual: bool) -> tuple[Tensor, Tensor, Tensor]:
    dim = res_out.shape[-1]
    n_rows = rstd.shape[0]
    dh = torch.empty(res_out.shape, dtype=h_dtype, device=res_out.device)
    dres = torch.empty(res_out.shape if has_residual else (0,), dtype=res_out.dtype,
                       device=res_out.device)
    rows_per_program = _BLOCK_ROWS * _ROW_BLOCKS_PER_BWD_PROGRAM
    programs = max(cdiv(n_rows, rows_per_program), 1)
    dw = torch.zeros((programs, dim), dtype=torch.float32, device=res_out.device)
    if n_rows > 0:
        x2 = _rows(res_out)
        launch(
            _add_rms_norm_bwd_kernel, (programs,),
            _rows(d_normed), _rows(d_res_out) if d_res_out is not None else x2, x2, weight, rstd,
            scale if scale is not None else rstd, dh, dres if has_residual else dh, dw,
            n_rows, _rows_per_sample(res_out), dim,
            HAS_DRES_OUT=d_res_out is not None, HAS_RES=has_residual,
            HAS_SCALE=scale is not None, BLOCK_R=_BLOCK_ROWS, BLOCK_N=next_power_of_2(dim),
            ROW_BLOCKS=_ROW_BLOCKS_PER_BWD_PROGRAM, num_warps=4,
        )
    return dh, dres, dw.sum(0).to(weight.dtype)


_add_rms_norm_bwd = torch.library.custom_op("videomamba::add_rms_norm_bwd", _add_rms_norm_bwd_impl,
                                            mutates_args=())


@_add_rms_norm_bwd.register_fake
def _(d_normed, d_res_out, res_out, weight, rstd, scale, h_dtype, has_residual):
    return (torch.empty(res_out.shape, dtype=h_dtype, device=res_out.device),
            torch.empty(res_out.shape if has_residual else (0,), dtype=res_out.dtype,
                        device=res_out.device),
            torch.empty(weight.shape, dtype=weight.dtype, device=weight.device))


def _setup_context(ctx, inputs, output):
    h, residual, weight, scale, _eps, _residual_fp32 = inputs
    _, res_out, rstd = output
    ctx.save_for_backward(res_out, weight, rstd, scale)
    ctx.h_dtype = h.dtype
    ctx.has_residual = residual is not None


def _backward_with(bwd):
    def backward(ctx, d_normed, d_res_out, _d_rstd):
        res_out, weight, rstd, scale = ctx.saved_tensors
        dh, dres, dw = bwd(d_normed, d_res_out, res_out, weight, rstd, scale, ctx.h_dtype,
                           ctx.has_residual)
        return dh, dres if ctx.has_residual else None, dw, None, None, None
    return backward


_ADD_RMS_NORM = AutogradRoute.register(_add_rms_norm_fwd, _add_rms_norm_fwd_impl, _add_rms_norm_bwd,
                                       _add_rms_norm_bwd_impl, _setup_context, _backward_with)


def add_rms_norm_triton(h: Tensor, residual: Tensor | None, weight: Tensor, eps: float,
                        scale: Tensor | None = None,
                        residual_fp32: bool = True) -> tuple[Tensor, Tensor]:
    """``(normed, summed)`` for ``summed = residual + scale[:, None, None] * h`` (``h`` when
    ``residual`` is None) and ``normed = rms_norm(summed) * weight``: ``h``, ``residual``
    ``(B, L, d)``, ``weight`` ``(d,)``, ``scale`` ``(B,)`` or None. ``normed`` in ``h``'s dtype;
    ``summed`` in the residual's dtype, or float32 (``residual_fp32``) / ``h``'s dtype for the
    first block. Differentiable in ``h``, ``residual`` and ``weight``. CUDA or the Triton
    interpreter."""
    if scale is not None and residual is None:
        raise ValueError("a drop-path scale applies to the branch added to a residual; "
                         "the first block has none")
    normed, summed, _ = _ADD_RMS_NORM(h, residual, weight, scale, float(eps), bool(residual_fp32))
    return normed, summed
