"""What the tiled forward (``triton_tile.py``) and the lean backward (``triton_tile_bwd.py``)
share: the ``@triton.jit`` math helpers (exponential, sigmoid, softplus, ``A`` from ``A_log``,
the affine combine), host-side grid arithmetic, the interpreter switch, the layout of A, B/C
group handling and the length of the sequence segments that link the two passes (the forward
stores the state at every segment boundary; the backward starts each of its segments from
it)."""

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


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for launch grids and block counts on the host: ``triton.cdiv`` is a
    ``constexpr_function`` in Triton 3.6, whose wrapper costs microseconds per host call."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= ``n`` (0 for 0), as ``triton.next_power_of_2`` without its
    ``constexpr_function`` wrapper."""
    return 0 if n <= 0 else 1 << (n - 1).bit_length()


# Read once: Triton decides when a kernel is decorated (at import) whether it is interpreted, so
# the launchers follow the value our kernels were defined under, and hot paths skip the lookup.
_INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def interpreting() -> bool:
    """True when Triton runs our kernels through its CPU interpreter (``TRITON_INTERPRET=1`` when
    this module was imported)."""
    return _INTERPRETING


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
def _rcp(x):
    """``1 / x`` in float32: on the GPU the approximate reciprocal (``rcp.approx.ftz``, 1 ulp)."""
    if FAST_MATH:
        return tl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;", "=f,f", [x],
                                         dtype=tl.float32, is_pure=True, pack=1)
    else:
        return 1.0 / x


@triton.jit
def _sigmoid(x):
    """``1 / (1 + exp(-x))`` in float32 through :func:`_exp2` and :func:`_rcp` (``tl.sigmoid``
    divides exactly)."""
    return _rcp(1.0 + _exp2(x * -1.4426950408889634))


@triton.jit
def _log1p_small(e):
    """``log(1 + e)`` for ``e`` in [0, 1] to float32 precision, as ``2 atanh(s)`` with
    ``s = e / (2 + e)`` <= 1/3: the odd series to ``s**13`` (the next term is below 2.2e-8 of
    the sum). One reciprocal and eight multiply-adds where ``tl.log2`` compiles to a ~30
    instruction range reduction and polynomial."""
    s = e * _rcp(2.0 + e)
    w = s * s
    p = w * (1.0 / 13.0) + 1.0 / 11.0
    p = p * w + 1.0 / 9.0
    p = p * w + 1.0 / 7.0
    p = p * w + 1.0 / 5.0
    p = p * w + 1.0 / 3.0
    p = p * w + 1.0
    return 2.0 * s * p


@triton.jit
def _softplus(x):
    """``log(1 + exp(x))`` in float32 as ``max(x, 0) + log1p(exp(-|x|))``: no overflow, no
    threshold (for large ``|x|`` the correction underflows to 0)."""
    e = _exp2(tl.abs(x) * -1.4426950408889634)
    return tl.maximum(x, 0.0) + _log1p_small(e)


@triton.jit
def _softplus_sigmoid(x):
    """``(softplus(x), sigmoid(x))`` sharing one exponential ``e = exp(-|x|)``:
    ``sigmoid(x) = (x >= 0 ? 1 : e) / (1 + e)``."""
    e = _exp2(tl.abs(x) * -1.4426950408889634)
    sig = tl.where(x >= 0.0, 1.0, e) * _rcp(1.0 + e)
    return tl.maximum(x, 0.0) + _log1p_small(e), sig


# One level of a butterfly reduce-scatter between lanes ``lane`` and ``lane ^ $4``: a lane whose
# ``$3`` is 0 keeps ``$1`` and hands ``$2`` to its partner, which keeps ``$2`` and hands ``$1``;
# each returns what it kept plus what it received (the inline PTX is on the GPU only).
_EXCHANGE_ADD = tl.constexpr("""{
.reg .pred p;
.reg .b32 s, k, r;
setp.ne.s32 p, $3, 0;
selp.b32 s, $1, $2, p;
selp.b32 k, $2, $1, p;
shfl.sync.bfly.b32 r, s, $4, 0x1f, 0xffffffff;
add.f32 $0, k, r;
}""")


@triton.jit
def _exchange_add(a, b, bit, lanes):
    """``a`` where ``bit`` is 0 else ``b``, plus the other one of the lane ``lane ^ lanes``
    (``bit`` must be that lane bit's value: partners hold the same element of opposite halves)."""
    return tl.inline_asm_elementwise(_EXCHANGE_ADD, "=r,r,r,r,r", [a, b, bit, lanes],
                                     dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def _row_tile(length, channels, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's tile of a (positions, channels, batch) grid over ``(B, D, L)`` tensors:
    its batch row, positions ``(BLOCK_L, 1)``, channels ``(1, BLOCK_C)`` and their mask (the
    elementwise gate kernels)."""
    pid_l, pid_c, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    t = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)[:, None]
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    return pid_b, t, c, (t < length) & (c < channels)


ROW_TILE = (32, 64)  # (BLOCK_L, BLOCK_C) of the gate kernels, 4 warps


def row_tile_grid(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The launch grid of :func:`_row_tile` for a ``(B, D, L)`` shape."""
    batch, channels, length = shape
    return (cdiv(length, ROW_TILE[0]), cdiv(channels, ROW_TILE[1]), batch)


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


@triton.jit
def _aligned(stride, ALIGN: tl.constexpr):
    """``stride``, declared a multiple of ``ALIGN`` elements (a promise the host checked, see
    :func:`bc_alignment`) so that Triton can vectorise loads along the contiguous axis."""
    if ALIGN > 1:  # (tl.multiple_of cannot mark a kernel argument; this product is exact)
        stride = (stride // ALIGN) * ALIGN
    return stride


def _vector_width(tensors: tuple[Tensor, ...], contiguous_dim: int, run: int) -> int:
    """The widest vector (elements, a power of two up to 8 and 16 bytes) that every tensor's
    rows along ``contiguous_dim`` (stride 1, ``run`` elements per program) can be read in: each
    start and every other stride a multiple of it. 1 when none is. (One pass of bit arithmetic:
    it runs on every launch.)"""
    bits, cap = run, 8
    for t in tensors:
        size, start = t.element_size(), t.data_ptr()
        if t.stride(contiguous_dim) != 1 or start % size:
            return 1
        bits |= start // size
        for i, (n, stride) in enumerate(zip(t.shape, t.stride())):
            if i != contiguous_dim and n > 1:
                bits |= stride
        cap = min(cap, 16 // size)
    lowest = bits & -bits if bits else cap  # the largest power of two dividing them all
    width = min(cap, lowest)
    return width if width >= 2 else 1


def bc_alignment(*tensors: Tensor) -> int:
    """Vector width for the states of ``(B, G, N, L)`` B/C tensors (:func:`_vector_width`). The
    mixer's B and C are slices of x_proj's ``(B, L, dt_rank + 2N)`` output: for VideoMamba-S
    (24 + 32) 8 states are one 16-byte load, though the strides are not multiples of 16, which
    is all Triton checks on its own; Tiny and Middle (12 + 32, 36 + 32) get 4."""
    return _vector_width(tensors, 2, tensors[0].shape[2])


def multiprocessors(without_gpu: int) -> int:
    """SMs of GPU 0, or ``without_gpu`` when none is visible (132 to compile for an H100/H200,
    a couple for the interpreter's persistent grids)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).multi_processor_count
    return without_gpu


def pair_groups(f: tuple, b: tuple, caller: str) -> tuple[tuple[Tensor, Tensor],
                                                          tuple[Tensor, Tensor]]:
    """Both directions' B and C as ``(B, G, N, L)`` (``(B_f, B_b), (C_f, C_b)``), after checking
    that the two directions' ``(u, delta, A, B, C, D, delta_bias)`` can share one launch: the
    same strides for u, delta, B and C, and D and delta_bias given for both or neither."""
    B4s, C4s = (as_groups(f[3]), as_groups(b[3])), (as_groups(f[4]), as_groups(b[4]))
    for x, other in ((f[0], b[0]), (f[1], b[1]), (B4s[0], B4s[1]), (C4s[0], C4s[1])):
        if x.stride() != other.stride():
            raise ValueError(f"{caller}: both directions' inputs need the same strides")
    if (f[5] is None) != (b[5] is None) or (f[6] is None) != (b[6] is None):
        raise ValueError(f"{caller}: both directions need D and delta_bias alike")
    return B4s, C4s


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
    blocks = batch * cdiv(channels, channels_per_block)
    n_seg = max(1, min(cdiv(target, blocks), cdiv(length, step)))
    return cdiv(cdiv(length, n_seg), step) * step

