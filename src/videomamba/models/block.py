"""The residual block: ``residual += drop_path(h); h = mixer(norm(residual))``.

The block takes and returns the pair ``(hidden_states, residual)`` as the official one does: the
add of the previous mixer output happens at the start of the next block (fused with the norm),
and the last add happens in the model's final norm. With ``fused_add_norm`` the add and the norm
run in float32 and the residual is stored in float32 (``residual_in_fp32``) whatever the compute
dtype, which is what the official Triton kernel does; without it, the un-fused official path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from videomamba.ops import TRITON_INSTALLED


def add_rms_norm_triton(*args, **kwargs):
    """:func:`videomamba.ops.triton_norm.add_rms_norm_triton`, imported on first use (Triton is
    optional)."""
    from videomamba.ops.triton_norm import add_rms_norm_triton as fused

    return fused(*args, **kwargs)


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dim, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = None

    def forward(self, x: Tensor) -> Tensor:
        return normalize(self, x.float()).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def normalize(norm: nn.Module, x: Tensor) -> Tensor:
    """Apply ``norm`` (RMSNorm or LayerNorm) to float32 ``x`` with float32 parameters."""
    weight = norm.weight.float()
    bias = norm.bias.float() if norm.bias is not None else None
    if isinstance(norm, nn.LayerNorm):
        return F.layer_norm(x, x.shape[-1:], weight, bias, norm.eps)
    out = x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + norm.eps) * weight
    return out + bias if bias is not None else out


def make_norm(dim: int, eps: float, rms: bool) -> nn.Module:
    return RMSNorm(dim, eps) if rms else nn.LayerNorm(dim, eps=eps)


class DropPath(nn.Module):
    """Stochastic depth: zero a whole sample's branch with probability ``p``, rescale the rest."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        scale = self.sample_scale(x)
        if scale is None:
            return x
        return x * scale.view((x.shape[0],) + (1,) * (x.dim() - 1))

    def sample_scale(self, x: Tensor) -> Tensor | None:
        """A fresh per-sample factor ``(B,)``: 0 (branch dropped) or ``1 / keep``; None when
        nothing is dropped (eval mode or ``p == 0``)."""
        if self.p == 0.0 or not self.training:
            return None
        keep = 1.0 - self.p
        return x.new_empty((x.shape[0],)).bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def add_norm(
    hidden_states: Tensor,
    residual: Tensor | None,
    norm: nn.Module,
    drop_path: nn.Module,
    fused: bool,
    residual_in_fp32: bool,
) -> tuple[Tensor, Tensor]:
    """``residual = residual + drop_path(h)`` (or ``h`` first), then ``norm(residual)``.

    Returns ``(normed, residual)``. ``normed`` has the dtype of ``hidden_states`` (fused) or of
    the norm weight (un-fused), as in the official code; the residual is float32 when
    ``residual_in_fp32`` (or when it already was)."""
    if fused and _fused_kernel_applies(hidden_states, norm, drop_path):
        scale = None
        if residual is not None and isinstance(drop_path, DropPath):
            scale = drop_path.sample_scale(hidden_states)
        return add_rms_norm_triton(hidden_states, residual, norm.weight, norm.eps, scale,
                                   residual_in_fp32)
    if fused:
        # The official kernel: add in float32, store the sum in the residual dtype, norm in float32.
        if residual is None:
            summed = hidden_states.float()
            res_dtype = torch.float32 if residual_in_fp32 else hidden_states.dtype
        else:
            summed = drop_path(hidden_states).float() + residual.float()
            res_dtype = residual.dtype
        normed = normalize(norm, summed).to(hidden_states.dtype)
        return normed, summed.to(res_dtype)
    residual = hidden_states if residual is None else residual + drop_path(hidden_states)
    normed = norm(residual.to(norm.weight.dtype))
    if residual_in_fp32:
        residual = residual.float()
    return normed, residual


def _fused_kernel_applies(hidden_states: Tensor, norm: nn.Module, drop_path: nn.Module) -> bool:
    """The Triton add + RMSNorm kernel serves CUDA tensors (the eager composition is the same
    function, for every device and for LayerNorm)."""
    return (hidden_states.is_cuda and TRITON_INSTALLED and isinstance(norm, RMSNorm)
            and isinstance(drop_path, (DropPath, nn.Identity)))


class Block(nn.Module):
    """One VideoMamba layer: ``layers.{i}.norm`` and ``layers.{i}.mixer``."""

    def __init__(
        self,
        dim: int,
        mixer: nn.Module,
        drop_path: float = 0.0,
        norm_eps: float = 1e-5,
        rms_norm: bool = True,
        fused_add_norm: bool = True,
        residual_in_fp32: bool = True,
    ) -> None:
        super().__init__()
        self.mixer = mixer
        self.norm = make_norm(dim, norm_eps, rms_norm)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.fused_add_norm = fused_add_norm
        self.residual_in_fp32 = residual_in_fp32

    def forward(
        self, hidden_states: Tensor, residual: Tensor | None = None, use_checkpoint: bool = False
    ) -> tuple[Tensor, Tensor]:
        """``hidden_states``, ``residual`` ``(B, L, d)`` -> the new pair; ``use_checkpoint``
        recomputes the mixer in the backward pass instead of storing its activations."""
        normed, residual = add_norm(hidden_states, residual, self.norm, self.drop_path,
                                    self.fused_add_norm, self.residual_in_fp32)
        if use_checkpoint and torch.is_grad_enabled():
            out = torch.utils.checkpoint.checkpoint(self.mixer, normed, use_reentrant=False)
        else:
            out = self.mixer(normed)
        return out, residual
