"""Eager calls of the Triton custom ops without the ``torch.library`` machinery.

Each fused op is a ``torch.library.custom_op`` pair so that ``torch.compile`` traces a model
through it as one opaque node. Called eagerly, that machinery (dispatcher redispatch, the
autograd wrapper, default filling, aliasing checks) runs around every call on the host, which
bounds eager training and short-clip inference (docs/kernels.md, session 6). An
:class:`AutogradRoute` calls the same implementation directly instead: through a plain
``torch.autograd.Function`` when a gradient is needed, as a function call when none is, and
through the custom op while ``torch.compile`` traces and for fake or meta tensors.
``VIDEOMAMBA_EAGER_OPS=0`` sends eager calls through the custom ops too (the comparison in
``benchmarks/host_overhead.py``).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake


def eager_routes_enabled() -> bool:
    """Whether eager calls bypass the custom ops (``VIDEOMAMBA_EAGER_OPS``, default on)."""
    return os.environ.get("VIDEOMAMBA_EAGER_OPS", "1") != "0"


def _needs_grad(args: tuple) -> bool:
    return torch.is_grad_enabled() and any(
        isinstance(a, Tensor) and a.requires_grad for a in args)


def _use_op(args: tuple) -> bool:
    """Whether a call goes through the custom op: while compiling, when eager routes are off, and
    for fake or meta tensors (shape propagation: the op has a fake kernel, the kernels do not)."""
    if torch.compiler.is_compiling() or not eager_routes_enabled():
        return True
    first = next((a for a in args if isinstance(a, Tensor)), None)
    return first is not None and (first.is_meta or is_fake(first))


class AutogradRoute:
    """A custom op with autograd: the op while compiling; eagerly, ``impl`` through
    :class:`_EagerFunction` with the op's own ``setup_context`` and a ``backward`` that calls the
    backward implementation directly (``backward_eager``), or ``impl`` alone without gradients."""

    def __init__(self, op: Callable, impl: Callable, setup_context: Callable,
                 backward_eager: Callable):
        self.op, self.impl = op, impl
        self.setup_context, self.backward = setup_context, backward_eager

    @classmethod
    def register(cls, op: Callable, impl: Callable, bwd_op: Callable, bwd_impl: Callable,
                 setup_context: Callable, backward_with: Callable) -> "AutogradRoute":
        """Register ``op``'s autograd (``backward_with(bwd_op)``, for ``torch.compile``) and
        return its eager route, whose backward is ``backward_with(bwd_impl)``: one backward
        written once for both ways in."""
        op.register_autograd(backward_with(bwd_op), setup_context=setup_context)
        return cls(op, impl, setup_context, backward_with(bwd_impl))

    def __call__(self, *args: Any) -> Any:
        if _use_op(args):
            return self.op(*args)
        if _needs_grad(args):
            return _EagerFunction.apply(self, *args)
        return self.impl(*args)


class _EagerFunction(torch.autograd.Function):
    """Autograd of an :class:`AutogradRoute`: the custom op's ``setup_context`` and backward
    contracts (``backward(ctx, *output_grads)`` returns one gradient per op input)."""

    @staticmethod
    def forward(ctx, route: AutogradRoute, *inputs: Any) -> Any:
        outputs = route.impl(*inputs)
        route.setup_context(ctx, inputs, outputs)
        ctx.set_materialize_grads(False)  # unused outputs' gradients stay None, as for the op
        ctx.route = route
        return outputs

    @staticmethod
    def backward(ctx, *grads: Any) -> Any:
        return (None, *ctx.route.backward(ctx, *grads))
