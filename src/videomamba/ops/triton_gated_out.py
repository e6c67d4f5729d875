"""The mixer's gate, the sum of its two directions and ``out_proj`` in one Triton GEMM.

Without it, an inference step writes ``y = (y_f + y_b) * silu(z)`` (``gate_sum``: three
``(B, L, D)`` reads and a write) and ``out_proj`` reads ``y`` again. Here ``y`` is formed
while loading the GEMM's A tiles: a program takes ``BLOCK_M`` rows (batch x positions) and,
for each ``BLOCK_K``-channel chunk, loads ``y_f``, ``y_b`` and ``z``, gates in float32, rounds to the weight's dtype (where ``gate_sum`` rounded ``y``) and
multiplies on tensor cores with the ``out_proj`` weight into up to four ``BLOCK_N``-feature
accumulators, so that each gated value is computed once for all of a block's features (d_model
384 of VideoMamba-S: three tiles of 128). Run 84's first version gave each program one tile of
128 features and gated every A tile three times: 0.045 ms against 0.031 for ``gate_sum`` and
cuBLAS at L=1569.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from videomamba.ops.selective_scan.triton_common import _sigmoid, interpreting
from videomamba.ops.triton_conv import _config_from_env
from videomamba.ops.triton_proj import _dot


@triton.jit
def _gated_tile(yf_ptr, yb_ptr, z_ptr, y_rows, z_rows, mask_m, offs_k, mask_k, dtype):
    """``(y_f + y_b) * silu(z)`` at rows (element offsets ``y_rows``, ``z_rows``) and channels
    ``offs_k``: ``(BLOCK_M, BLOCK_K)`` in float32 arithmetic, rounded to ``dtype``."""
    mask = mask_m[:, None] & mask_k[None, :]
    y = (tl.load(yf_ptr + y_rows[:, None] + offs_k[None, :], mask=mask, other=0.0).to(tl.float32)
         + tl.load(yb_ptr + y_rows[:, None] + offs_k[None, :], mask=mask, other=0.0)
         .to(tl.float32))
    z = tl.load(z_ptr + z_rows[:, None] + offs_k[None, :], mask=mask, other=0.0).to(tl.float32)
    return (y * z * _sigmoid(z)).to(dtype)


@triton.jit
def _weight_tile(w_ptr, sw_n, first_n, features, offs_k, mask_k, BLOCK_N: tl.constexpr):
    """``weight[first_n : first_n + BLOCK_N, offs_k].T``: ``(BLOCK_K, BLOCK_N)``, zeros past
    ``features``."""
    offs_n = first_n + tl.arange(0, BLOCK_N)
    return tl.load(w_ptr + offs_n[None, :] * sw_n + offs_k[:, None],
                   mask=mask_k[:, None] & (offs_n < features)[None, :], other=0.0)


@triton.jit
def _store_tile(acc, out_ptr, row, so_r, mask_m, first_n, features, BLOCK_N: tl.constexpr):
    offs_n = first_n + tl.arange(0, BLOCK_N)
    tl.store(out_ptr + row[:, None] * so_r + offs_n[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=mask_m[:, None] & (offs_n < features)[None, :])


@triton.jit
def _gated_out_kernel(
    yf_ptr, yb_ptr, z_ptr, w_ptr, out_ptr, rows, channels, features, sy_r, sz_r, sw_n, so_r,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    N_TILES: tl.constexpr, PRECISION: tl.constexpr,
):
    """Grid (row blocks, feature groups): a program gates each A tile once and multiplies it
    into ``N_TILES`` (1-4) accumulators of ``BLOCK_N`` features."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    first_n = tl.program_id(1) * (N_TILES * BLOCK_N)
    mask_m = offs_m < rows
    row = offs_m.to(tl.int64)
    y_rows, z_rows = row * sy_r, row * sz_r
    dtype = w_ptr.dtype.element_ty
    acc0 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc1 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc2 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc3 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, channels, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < channels
        gated = _gated_tile(yf_ptr, yb_ptr, z_ptr, y_rows, z_rows, mask_m, offs_k, mask_k, dtype)
        acc0 = _dot(gated, _weight_tile(w_ptr, sw_n, first_n, features, offs_k, mask_k,
                                        BLOCK_N), acc0, PRECISION)
        if N_TILES > 1:
            acc1 = _dot(gated, _weight_tile(w_ptr, sw_n, first_n + BLOCK_N, features, offs_k,
                                            mask_k, BLOCK_N), acc1, PRECISION)
        if N_TILES > 2:
            acc2 = _dot(gated, _weight_tile(w_ptr, sw_n, first_n + 2 * BLOCK_N, features, offs_k,
                                            mask_k, BLOCK_N), acc2, PRECISION)
        if N_TILES > 3:
            acc3 = _dot(gated, _weight_tile(w_ptr, sw_n, first_n + 3 * BLOCK_N, features, offs_k,
                                            mask_k, BLOCK_N), acc3, PRECISION)
    _store_tile(acc0, out_ptr, row, so_r, mask_m, first_n, features, BLOCK_N)
    if N_TILES > 1:
        _store_tile(acc1, out_ptr, row, so_r, mask_m, first_n + BLOCK_N, features, BLOCK_N)
    if N_TILES > 2:
        _store_tile(acc2, out_ptr, row, so_r, mask_m, first_n + 2 * BLOCK_N, features, BLOCK_N)
    if N_TILES > 3:
        _store_tile(acc3, out_ptr, row, so_r, mask_m, first_n + 3 * BLOCK_N, features, BLOCK_N)


def _row_major(t: Tensor) -> Tensor | None:
    """A ``(B, D, L)`` tensor as ``(B * L, D)`` rows with unit channel stride (a view), or None
    when its memory is not laid out that way."""
    batch, channels, length = t.shape
    if t.stride(1) != 1 or (batch > 1 and t.stride(0) != length * t.stride(2)):
        return None
    return t.as_strided((batch * length, channels), (t.stride(2), 1))


def fused_gated_out(y_f: Tensor, z: Tensor) -> bool:
    """Whether the mixer hands these ``(B, D, L)`` inputs to :func:`gated_out_projection`:
    16-bit CUDA tensors (float32 products would leave the tensor cores that cuBLAS uses for
    them; the Triton interpreter, for the tests, takes any dtype) with channels fastest in rows
    of positions (the pair forward's outputs, ``z`` a half of ``in_proj``'s output), unless
    ``VIDEOMAMBA_FUSED_OUT=0``."""
    if os.environ.get("VIDEOMAMBA_FUSED_OUT", "auto") == "0":
        return False
    device_ok = interpreting() or (y_f.is_cuda and y_f.dtype in (torch.bfloat16, torch.float16))
    return device_ok and _row_major(y_f) is not None and _row_major(z) is not None


def gated_out_config(dtype: torch.dtype) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) for inputs of ``dtype``, or the
    ``VIDEOMAMBA_FUSED_OUT_CONFIG`` override. Float32 tiles take twice the shared memory."""
    if interpreting():
        default = (16, 16, 32, 4, 1)
    else:
        default = (64, 128, 16, 8, 2) if dtype == torch.float32 else (64, 128, 32, 8, 3)
    return _config_from_env("VIDEOMAMBA_FUSED_OUT_CONFIG", default)


def _register_cap() -> dict:
    """``maxnreg`` from ``VIDEOMAMBA_FUSED_OUT_MAXNREG`` (unset: ptxas's choice)."""
    cap = os.environ.get("VIDEOMAMBA_FUSED_OUT_MAXNREG")
    return {"maxnreg": int(cap)} if cap else {}


def feature_tiling(features: int, block_n: int) -> tuple[int, int]:
    """(groups, tiles per group) for ``features`` output columns in tiles of ``block_n``: as
    few groups as hold at most 4 tiles each (a group's programs gate their A tiles once), the
    tiles spread evenly over them."""
    tiles = triton.cdiv(features, block_n)
    groups = triton.cdiv(tiles, 4)
    return groups, triton.cdiv(tiles, groups)


def gated_out_projection(y_f: Tensor, y_b: Tensor, z: Tensor, weight: Tensor) -> Tensor:
    """``((y_f + y_b) * silu(z)).transpose(1, 2) @ weight.T``: ``y_f``, ``y_b``, ``z``
    ``(B, D, L)`` with channels fastest in rows of positions (``y_b`` in ``y_f``'s strides; see
    :func:`fused_gated_out`), ``weight`` ``(F, D)`` -> ``(B, L, F)`` contiguous in ``weight``'s
    dtype. The gated values are rounded to that dtype before the product, as ``gate_sum``
    followed by ``F.linear`` rounds them."""
    batch, channels, length = y_f.shape
    if y_b.stride() != y_f.stride() or z.shape != y_f.shape:
        raise ValueError("gated_out_projection: y_b needs y_f's strides and z its shape, got "
                         f"{tuple(y_b.stride())} / {tuple(y_f.stride())}, {tuple(z.shape)}")
    y_rows, z_rows = _row_major(y_f), _row_major(z)
    if y_rows is None or z_rows is None:
        raise ValueError("gated_out_projection: y_f and z need channels fastest in rows of "
                         "positions ((B, L, D) memory seen as (B, D, L))")
    features = weight.shape[0]
    weight = weight.contiguous()
    out = torch.empty((batch, length, features), dtype=weight.dtype, device=y_f.device)
    rows = batch * length
    block_m, block_n, block_k, warps, stages = gated_out_config(weight.dtype)
    groups, n_tiles = feature_tiling(features, block_n)
    if rows > 0:
        _gated_out_kernel[(triton.cdiv(rows, block_m), groups)](
            y_f, y_b, z, weight, out, rows, channels, features, y_rows.stride(0),
            z_rows.stride(0), weight.stride(0), features, BLOCK_M=block_m, BLOCK_N=block_n,
            BLOCK_K=block_k, N_TILES=n_tiles,
            PRECISION="ieee" if weight.dtype == torch.float32 else "tf32",
            num_warps=warps, num_stages=stages, **_register_cap(),
        )
    return out
