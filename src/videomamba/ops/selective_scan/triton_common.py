"""What the tiled forward (``triton_tile.py``) and the lean backward (``triton_tile_bwd.py``)
share: the ``@triton.jit`` math helpers (exponential, sigmoid, softplus, ``A`` from ``A_log``,
the affine combine), the interpreter switch, the layout of A, B/C group handling and the length
of the sequence segments that link the two passes (the forward stores the state at every
segment boundary; the backward starts each of its segments from it)."""

from __future__ import annotations

import os

import triton
import triton.language as tl
from torch import Tensor

from videomamba.ops.selective_scan.triton_compat import (
    interpret_library_calls,
    patch_interpreter_index,
)


def interpreting() -> bool:
    """True when Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


if interpreting():
    patch_interpreter_index()
    interpret_library_calls()


# Inline PTX needs the GPU; Triton's CPU interpreter takes the ``tl`` functions instead.
FAST_MATH: tl.constexpr = tl.constexpr(not interpreting())


@triton.jit
def _exp2(x):
    """``2**x`` in float32. On the GPU ``ex2.approx.ftz``: results below 2**-126 flush to 0 (a
    decay that small is 0 to the scan anyway), which spares the denormal range fix-up that
    ``tl.exp2`` wraps around the same instruction (three more instructions per exponential)."""
    if FAST_MATH:
        return tl.inline_asm_elementwise("ex2.approx.ftz.f32 $0, $1;", "=f,f", [x],
                                         dtype=tl.float32, is_pure=True, pack=1)
    else:
        return tl.exp2(x)


@triton.jit
def _sigmoid(x):
    """``1 / (1 + exp(-x))`` in float32 through :func:`_exp2` and, on the GPU, the approximate
    reciprocal (``tl.sigmoid`` divides exactly)."""
    d = 1.0 + _exp2(x * -1.4426950408889634)
    if FAST_MATH:
        return tl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;", "=f,f", [d],
                                         dtype=tl.float32, is_pure=True, pack=1)
    else:
        return 1.0 / d


@triton.jit
def _softplus(x):
    # log1p(exp(x)) through exp2/log2; above 20 softplus(x) == x in float32.
    return tl.where(x > 20.0, x,
                    tl.log2(1.0 + _exp2(x * 1.4426950408889634)) * 0.6931471805599453)


@triton.jit
def _a_log2e(a, A_IS_LOG: tl.constexpr):
    """``A * log2(e)`` in float32 from a loaded ``A``, or from ``log(-A)`` when ``A_IS_LOG`` (the
    mixer passes its ``A_log`` parameter, so that ``A = -exp(A_log)`` costs no launch)."""
    a = a.to(tl.float32)
    if A_IS_LOG:
        a = -_exp2(a * 1.4426950408889634)
    return a * 1.4426950408889634


@triton.jit
def _affine_combine(a_prev, b_prev, a_next, b_next):
    """Compose ``h -> a h + b`` steps (``prev`` first)."""
    return a_prev * a_next, b_prev * a_next + b_next


def a_layout(A: Tensor) -> tuple[Tensor, int, int]:
    """What the kernels take for A (or ``A_log``): ``(D, N)`` contiguous along states, with its
    (channel, state) strides. The kernels' arithmetic takes the layout of their A loads, and a
    state stride known to be 1 gives the layout they are written for: 4 states per thread, a
    channel's states on 4 lanes, 8 channels on the other lanes (docs/kernels.md, session 5)."""
    At = A.contiguous()
    return At, At.stride(0), At.stride(1)


def block_for_groups(block_d: int, chans_per_group: int) -> int:
    """Largest power of two <= block_d dividing the channels of one B/C group (a program reads one
    group's B and C)."""
    while chans_per_group % block_d:
        block_d //= 2
    return block_d


def as_groups(bc: Tensor) -> Tensor:
    """B or C as ``(B, G, N, L)`` (a view)."""
    return bc.unsqueeze(1) if bc.dim() == 3 else bc


def segment_length(batch: int, channels: int, length: int) -> int:
    """Steps per sequence segment of the backward pass (also the forward's interval between stored
    states): the sequence is cut into about ``target / (batch * ceil(channels / 64))`` segments,
    each a multiple of ``step`` steps (``VIDEOMAMBA_SEGMENT_CONFIG="step,target"``, default
    ``16,2048`` since run 26: fewer, longer segments than ``16,4096`` keep fewer states for the
    backward (training peak 2.30 instead of 2.55 GiB for VideoMamba-S at batch 8, 8 frames) and
    the backward was as fast or faster; docs/kernels.md). ``step`` must be a multiple of the
    forward's and the backward's tile lengths."""
    if interpreting():  # tiny problems still get several segments
        channels_per_block, step, target = 8, 4, 4
    else:
        text = os.environ.get("VIDEOMAMBA_SEGMENT_CONFIG")
        step, target = (int(v) for v in text.split(",")) if text else (16, 2048)
        channels_per_block = 64
    blocks = batch * triton.cdiv(channels, channels_per_block)
    n_seg = max(1, min(triton.cdiv(target, blocks), triton.cdiv(length, step)))
    return triton.cdiv(triton.cdiv(length, n_seg), step) * step

