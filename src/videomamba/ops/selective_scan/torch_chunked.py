"""The ``torch`` backend: a blocked, chunked selective scan in plain PyTorch with autograd.

Same contract as :func:`videomamba.ops.selective_scan.ref.selective_scan_ref`. With
``a_t = exp(delta_t * A)`` and ``x_t = delta_t * B_t * u_t`` the state follows the linear
recurrence ``h_t = a_t * h_{t-1} + x_t`` and ``y_t = <h_t, C_t>``.

Time is cut into blocks whose ``(B, block, N, D)`` temporaries stay small (``BLOCK_BYTES``) and,
on CPU, live in per-thread scratch buffers reused across calls (fresh multi-MB tensors are fresh
pages, faulted in on every call). For each block, ``a`` and ``x`` are materialised in a few
vectorised passes, the recurrence runs from the state the previous block left, and ``y`` is read
out with one batched matmul. Inside a block the recurrence is solved one of two ways, both exact
and neither exponentiating a positive number (decays are only ever multiplied together):

- on CPU, when a step holds at least ``SEQUENTIAL_MIN_STEP`` state elements (VideoMamba-Tiny:
  384 x 16), one in-place ``addcmul`` per step: the fewest passes over memory. On the 2-core CPU
  this measured faster than the two-level scheme and than chunks of 2-6 steps;
- otherwise (small steps, or CUDA where every op is a kernel launch) in two levels: a short loop
  inside every chunk at once (vectorised across chunks) from a zero state, which also turns ``a``
  into the running product of decays; a loop over chunks that carries the true state across chunk
  boundaries; and a correction of every step by ``running product * state entering its chunk``.

On CPU, decays below ``exp(DECAY_EXPONENT_FLOOR)`` are raised to it: their contribution is many
orders of magnitude under the result's rounding, and the denormal numbers they would otherwise
produce make CPU arithmetic 10-100x slower.

The backward pass saves only each block's entry state, recomputes a block's states from it, and
runs the same scan backwards in time for the adjoint ``g_t = C_t dy_t + a_{t+1} g_{t+1}``.
"""

from __future__ import annotations

import threading
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# Bytes of one (block, B, D, N) float temporary; chosen by measurement (benchmarks/cpu_forward.py).
BLOCK_BYTES = 4 * 2**20
# On CPU, time steps of at least this many state elements are scanned one op per step: each op is
# then big enough to amortise its overhead, and the two-level scheme's extra passes cost more.
SEQUENTIAL_MIN_STEP = 4096
# Floor on delta * A (float32, float64). A decay below exp(floor) contributes far below the
# rounding of the result, and the denormals that such decays create run 10-100x slower on CPUs.
DECAY_EXPONENT_FLOOR = {torch.float32: -40.0, torch.float64: -80.0}


def _block_len(length: int, state_size: int, element_size: int) -> int:
    return max(1, min(length, BLOCK_BYTES // max(1, state_size * element_size)))


def _chunk_len(length: int) -> int:
    """Steps per chunk: the inner loop costs 2 ops per step, the boundary loop 1 per chunk."""
    return max(1, round((length / 2) ** 0.5))


def _two_level_scan_(a: Tensor, x: Tensor, h0: Tensor | None, reverse: bool = False) -> Tensor:
    """In place, time on dim 0: ``x`` becomes the states h of ``h_t = a_t * h_{t-1} + x_t``
    (``h_t = a_t * h_{t+1} + x_t`` when ``reverse``) started from ``h0`` (zero if None), with
    the two-level scheme. ``a`` is overwritten. Returns ``x``."""
    length = x.shape[0]
    chunk = _chunk_len(length)
    num_chunks = length // chunk
    main = num_chunks * chunk
    if reverse:
        h0 = _sequential_(a[main:].unbind(0), x[main:].unbind(0), h0, reverse=True)
    if num_chunks:
        _two_level_(a[:main].unflatten(0, (num_chunks, chunk)),
                    x[:main].unflatten(0, (num_chunks, chunk)), h0, reverse)
    if not reverse:
        _sequential_(a[main:].unbind(0), x[main:].unbind(0), x[main - 1] if main else h0,
                     reverse=False)
    return x


def _sequential_(
    a: Sequence[Tensor], x: Sequence[Tensor], h0: Tensor | None, reverse: bool
) -> Tensor | None:
    """One in-place op per time step over per-step views; returns the state at the far end
    (h0 if there are no steps)."""
    pairs = zip(reversed(a), reversed(x)) if reverse else zip(a, x)
    prev = h0
    if prev is None:
        first = next(pairs, None)
        if first is None:
            return None
        prev = first[1]
    for a_t, x_t in pairs:
        x_t.addcmul_(a_t, prev)
        prev = x_t
    return prev


def _two_level_(a: Tensor, x: Tensor, h0: Tensor | None, reverse: bool) -> None:
    """``a``, ``x``: ``(chunks, chunk, ...)``; see :func:`_two_level_scan_`."""
    num_chunks, chunk = x.shape[:2]
    steps = range(chunk - 2, -1, -1) if reverse else range(1, chunk)
    for t in steps:
        src = t + 1 if reverse else t - 1
        x[:, t].addcmul_(a[:, t], x[:, src])
        a[:, t].mul_(a[:, src])
    # entering[c]: the true state flowing into chunk c (from its left, or its right if reverse).
    entering = x.new_empty((num_chunks,) + x.shape[2:])
    if reverse:
        first, order, edge = num_chunks - 1, range(num_chunks - 1, 0, -1), 0
    else:
        first, order, edge = 0, range(num_chunks - 1), chunk - 1
    if h0 is None:
        entering[first].zero_()
    else:
        entering[first].copy_(h0)
    for c in order:
        nxt = c - 1 if reverse else c + 1
        torch.addcmul(x[c, edge], a[c, edge], entering[c], out=entering[nxt])
    if h0 is None:  # the first chunk already started from the true (zero) state
        rest = slice(0, num_chunks - 1) if reverse else slice(1, num_chunks)
        x[rest].addcmul_(a[rest], entering[rest].unsqueeze(1))
    else:
        x.addcmul_(a, entering.unsqueeze(1))


_local = threading.local()


def _workspace(like: Tensor, index: int, numel: int) -> Tensor:
    """Scratch buffer ``index`` of at least ``numel`` elements, kept per thread between calls on
    CPU: fresh multi-MB buffers would be new pages, faulted in and zeroed on every call."""
    if like.device.type != "cpu":
        return like.new_empty(numel)
    buffers = _local.__dict__.setdefault("buffers", {})
    # tensors made under inference_mode may not be updated outside it: one set per mode
    key = (like.dtype, index, torch.is_inference_mode_enabled())
    buf = buffers.get(key)
    if buf is None or buf.numel() < numel:
        buf = buffers[key] = like.new_empty(numel)
        _local.__dict__.setdefault("views", {}).clear()  # views of replaced buffers are stale
    return buf[:numel]


def _step_views(buffer: Tensor, steps: Tensor) -> tuple[Tensor, ...]:
    """``steps.unbind(0)`` (``steps`` a view of ``buffer``), made once per thread and shape:
    making ~2 views per step costs as much as the step's arithmetic."""
    views = _local.__dict__.setdefault("views", {})
    key = (buffer.data_ptr(), steps.data_ptr(), tuple(steps.shape), steps.stride())
    if key not in views:
        if len(views) >= 64:  # shapes keep changing: do not hoard views
            views.clear()
        views[key] = steps.unbind(0)
    return views[key]


class _Layout:
    """The scan's inputs, batch first and time second, in the compute dtype: u, delta
    ``(B, L, D)``; B, C ``(B, L, G, N)``; A ``(D, N)``. Channels form G groups of ``dg``
    consecutive channels that share B and C.

    States and scratch tensors are ``(B, l, N, D)``, channels last: the read-out
    ``y_t = C_t . h_t`` is then a ``(1, N) @ (N, D)`` matmul per step, which runs about three times
    faster than the ``(D, N) @ (N, 1)`` of the ``(.., D, N)`` layout."""

    def __init__(self, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> None:
        self.batch, self.length, self.channels = u.shape
        self.groups, self.state = B.shape[2], A.shape[1]
        self.dg = self.channels // self.groups
        self.u, self.delta = u.contiguous(), delta.contiguous()
        self.A_t = A.t().contiguous()  # (N, D)
        self.B, self.C = B.contiguous(), C.contiguous()
        self.du = self.delta * self.u
        self.block = _block_len(self.length, self.batch * self.channels * self.state,
                                u.element_size())
        self.floor = self._decay_floor()

    def _decay_floor(self) -> float | None:
        """The floor on delta * A if some decay could fall below it (CPU only: GPUs handle
        denormals at full speed)."""
        floor = DECAY_EXPONENT_FLOOR.get(self.u.dtype)
        if floor is None or self.u.device.type != "cpu" or self.length == 0:
            return None
        lowest = (self.delta.amax(dim=(0, 1)) * self.A_t.amin(dim=0)).min()
        return floor if lowest.item() < floor else None

    def blocks(self) -> list[tuple[int, int]]:
        return [(s, min(s + self.block, self.length)) for s in range(0, self.length, self.block)]

    def buffer(self, index: int) -> Tensor:
        """Flat scratch space ``index`` for one ``(B, block, N, D)`` tensor; see :meth:`view`."""
        return _workspace(self.u, index, self.batch * self.block * self.state * self.channels)

    def view(self, buffer: Tensor, steps: int) -> Tensor:
        """A contiguous ``(B, steps, N, D)`` tensor in ``buffer``."""
        size = self.batch * steps * self.state * self.channels
        return buffer[:size].view(self.batch, steps, self.state, self.channels)

    def scan_(self, a_buf: Tensor, x_buf: Tensor, steps: int, h0: Tensor | None,
              reverse: bool = False) -> None:
        """Run the recurrence on ``view(x_buf, steps)`` with decays ``view(a_buf, steps)``."""
        a = self.view(a_buf, steps).transpose(0, 1)
        x = self.view(x_buf, steps).transpose(0, 1)
        on_cpu = x.device.type == "cpu"
        if not on_cpu or self.batch * self.state * self.channels < SEQUENTIAL_MIN_STEP:
            _two_level_scan_(a, x, h0, reverse)
        else:
            _sequential_(_step_views(a_buf, a), _step_views(x_buf, x), h0, reverse)

    def decay_(self, out: Tensor, s: int, e: int) -> Tensor:
        """``exp(delta_t * A)`` for t in [s, e) into ``out`` ``(B, e-s, N, D)``."""
        torch.mul(self.delta[:, s:e, None, :], self.A_t, out=out)
        if self.floor is not None:
            out.clamp_(min=self.floor)
        return out.exp_()

    def outer_(self, out: Tensor, per_channel: Tensor, bc: Tensor) -> Tensor:
        """``per_channel (B, l, D)`` times ``bc (B, l, G, N)`` as ``(B, l, N, D)`` into ``out``."""
        b, l = per_channel.shape[:2]
        torch.mul(per_channel.view(b, l, 1, self.groups, self.dg),
                  bc.transpose(2, 3).unsqueeze(4),
                  out=out.view(b, l, self.state, self.groups, self.dg))
        return out

    def contract_state(self, h: Tensor, bc: Tensor, out: Tensor | None = None) -> Tensor:
        """``sum_n h[.., n, d] * bc[.., g(d), n]``: ``(B, l, N, D), (B, l, G, N) -> (B, l, D)``,
        written into ``out`` if given."""
        b, l = h.shape[:2]
        if self.groups == 1:
            args = (bc.reshape(b * l, 1, self.state), h.view(b * l, self.state, self.channels))
            if out is not None and out.is_contiguous():
                return torch.bmm(*args, out=out.view(b * l, 1, self.channels)).view_as(out)
            result = torch.bmm(*args).view(b, l, self.channels)
        else:
            result = torch.einsum("blngc,blgn->blgc",
                                  h.view(b, l, self.state, self.groups, self.dg), bc)
            result = result.reshape(b, l, self.channels)
        if out is None:
            return result
        return out.copy_(result)

    def contract_channels(self, h: Tensor, per_channel: Tensor) -> Tensor:
        """``sum_{d in g} h[.., n, d] * w[.., d]``: ``(B, l, N, D), (B, l, D) -> (B, l, G, N)``."""
        b, l = h.shape[:2]
        if self.groups == 1:
            out = torch.bmm(h.view(b * l, self.state, self.channels),
                            per_channel.reshape(b * l, self.channels, 1))
            return out.view(b, l, 1, self.state)
        return torch.einsum("blngc,blgc->blgn", h.view(b, l, self.state, self.groups, self.dg),
                            per_channel.reshape(b, l, self.groups, self.dg))


def _forward(lay: _Layout, keep_entry_states: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """y ``(B, L, D)`` without the D/z terms, the last state ``(B, N, D)`` and, if asked, the
    state entering every block ``(blocks, B, N, D)``."""
    y = lay.u.new_empty(lay.batch, lay.length, lay.channels)
    decay, states = lay.buffer(0), lay.buffer(1)
    blocks = lay.blocks()
    entry = lay.u.new_zeros(len(blocks), lay.batch, lay.state, lay.channels) \
        if keep_entry_states else None
    carry = None
    for k, (s, e) in enumerate(blocks):
        a, h = lay.view(decay, e - s), lay.view(states, e - s)
        lay.decay_(a, s, e)
        lay.outer_(h, lay.du[:, s:e], lay.B[:, s:e])
        lay.scan_(decay, states, e - s, carry)
        lay.contract_state(h, lay.C[:, s:e], out=y[:, s:e])
        if entry is not None and carry is not None:
            entry[k] = carry
        carry = h[:, -1].clone()
    if carry is None:  # L == 0
        carry = lay.u.new_zeros(lay.batch, lay.state, lay.channels)
    return y, carry, entry


def _backward(lay: _Layout, entry: Tensor, dy: Tensor, dlast: Tensor | None):
    """Gradients of u, delta, A, B, C (in the layout's shapes) given dy ``(B, L, D)`` and the
    gradient of the last state ``(B, N, D)``."""
    du_total, ddelta = torch.empty_like(lay.delta), torch.empty_like(lay.delta)
    dA_t = torch.zeros_like(lay.A_t)
    dB, dC = torch.empty_like(lay.B), torch.empty_like(lay.C)
    bufs = [lay.buffer(i) for i in range(4)]
    g_next = dlast.clone() if dlast is not None else None  # adjoint entering from the right
    a_next = None  # decay of the first step of the block to the right
    blocks = lay.blocks()
    for k in range(len(blocks) - 1, -1, -1):
        s, e = blocks[k]
        a, w, h, g = (lay.view(buf, e - s) for buf in bufs)
        h0 = entry[k] if k > 0 else None
        lay.decay_(a, s, e)
        w.copy_(a)
        lay.outer_(h, lay.du[:, s:e], lay.B[:, s:e])
        lay.scan_(bufs[1], bufs[2], e - s, h0)
        # adjoint g_t = C_t dy_t + a_{t+1} g_{t+1}: a reverse scan with decays shifted by one
        lay.outer_(g, dy[:, s:e], lay.C[:, s:e])
        w[:, :-1].copy_(a[:, 1:])
        if a_next is not None:
            w[:, -1].copy_(a_next)
        elif g_next is not None:  # last block: dlast is the gradient of h_{L-1} itself
            g[:, -1].add_(g_next)
            g_next = None
        lay.scan_(bufs[1], bufs[3], e - s, g_next, reverse=True)
        a_next, g_next = a[:, 0].clone(), g[:, 0].clone()
        dC[:, s:e] = lay.contract_channels(h, dy[:, s:e])
        d_du = lay.contract_state(g, lay.B[:, s:e])
        dB[:, s:e] = lay.contract_channels(g, lay.du[:, s:e])
        # d(a_t) = g_t * h_{t-1}; a_t = exp(delta_t A) so d(delta_t A) = g_t * h_{t-1} * a_t
        w[:, 1:].copy_(h[:, :-1])
        if h0 is None:
            w[:, 0].zero_()
        else:
            w[:, 0].copy_(h0)
        w.mul_(g).mul_(a)
        dA_t.add_(torch.einsum("blnd,bld->nd", w, lay.delta[:, s:e]))
        ddelta[:, s:e] = torch.einsum("blnd,nd->bld", w, lay.A_t).addcmul_(d_du, lay.u[:, s:e])
        du_total[:, s:e] = d_du * lay.delta[:, s:e]
    return du_total, ddelta, dA_t.t(), dB, dC


class _ScanFunction(torch.autograd.Function):
    """The bare scan ``(u, delta (B, L, D), A, B, C (B, L, G, N)) -> (y (B, L, D), last
    (B, N, D))``."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C):  # type: ignore[override]
        lay = _Layout(u, delta, A, B, C)
        y, last, entry = _forward(lay, keep_entry_states=True)
        ctx.save_for_backward(u, delta, A, B, C, entry)
        return y, last

    @staticmethod
    def backward(ctx, dy, dlast):  # type: ignore[override]
        u, delta, A, B, C, entry = ctx.saved_tensors
        lay = _Layout(u, delta, A, B, C)
        dy = torch.zeros_like(lay.delta) if dy is None else dy.contiguous()
        return _backward(lay, entry, dy, dlast)


def _time_second(bc: Tensor) -> Tensor:
    """B or C ``(B, N, L)`` or ``(B, G, N, L)`` as ``(B, L, G, N)``."""
    if bc.dim() == 3:
        bc = bc.unsqueeze(1)
    return bc.permute(0, 3, 1, 2)


def selective_scan_torch(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Chunked selective scan with autograd; shapes and semantics as ``selective_scan_ref``:
    u, delta, z ``(B, D, L)``; A ``(D, N)``; B, C ``(B, N, L)`` or ``(B, G, N, L)``;
    D, delta_bias ``(D,)``. Returns y ``(B, D, L)`` in u's dtype (a transposed view of a
    ``(B, L, D)`` tensor) and, when ``return_last_state``, the last state ``(B, D, N)`` in the
    compute dtype (float32, or float64 for float64 inputs)."""
    out_dtype = u.dtype
    compute = torch.float64 if torch.float64 in (u.dtype, delta.dtype, A.dtype) else torch.float32
    B, C = _time_second(B).to(compute), _time_second(C).to(compute)
    channels = u.shape[1]
    if B.shape[2] != C.shape[2] or channels % B.shape[2]:
        raise ValueError(f"{channels} channels cannot be split into the {B.shape[2]} groups "
                         f"of B and {C.shape[2]} of C")
    u_t = u.transpose(1, 2).to(compute)  # (B, L, D): the layout the projections produce
    delta_t = delta.transpose(1, 2).to(compute)
    if delta_bias is not None:
        delta_t = delta_t + delta_bias.to(compute)
    if delta_softplus:
        delta_t = F.softplus(delta_t)
    A = A.to(compute)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (u_t, delta_t, A, B, C)):
        y, last = _ScanFunction.apply(u_t, delta_t, A, B, C)
        if D is not None:
            y = y + u_t * D.to(compute)
        if z is not None:
            y = y * F.silu(z.transpose(1, 2).to(compute))
    else:
        y, last, _ = _forward(_Layout(u_t, delta_t, A, B, C), keep_entry_states=False)
        if D is not None:
            y.addcmul_(u_t, D.to(compute))
        if z is not None:
            y.mul_(F.silu(z.transpose(1, 2).to(compute)))
    y = y.to(out_dtype).transpose(1, 2)
    return (y, last.transpose(1, 2)) if return_last_state else y
