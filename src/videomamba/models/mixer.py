"""The bidirectional Mamba mixer ("v2" of the official release).

One input projection feeds two selective-scan branches: the forward one reads the sequence in
order, the backward one (``*_b`` parameters) reads it reversed; the backward output is reversed
back, **summed** with the forward output, and projected out. Parameter names and shapes are the
official ones (``in_proj, conv1d, x_proj, dt_proj, A_log, D, conv1d_b, x_proj_b, dt_proj_b,
A_b_log, D_b, out_proj``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videomamba.ops import TRITON_INSTALLED
from videomamba.ops.causal_conv1d import causal_conv1d
from videomamba.ops.selective_scan import get_default_backend, selective_scan


def s4d_real_log_A(d_inner: int, d_state: int) -> Tensor:
    """``log(A)`` with ``A[d, n] = n + 1`` for every channel (S4D-real), ``(d_inner, d_state)``."""
    return torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1)


def inverse_softplus_dt(d_inner: int, dt_min: float, dt_max: float, floor: float) -> Tensor:
    """A bias whose softplus is log-uniform in ``[dt_min, dt_max]``, ``(d_inner,)``."""
    log_dt = torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    dt = torch.exp(log_dt).clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))


class BiMambaMixer(nn.Module):
    """Bidirectional selective-state-space mixer: ``(B, L, d)`` -> ``(B, L, d)``."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        scan_backend: str = "auto",
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.scan_backend = scan_backend

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        # forward direction
        self.conv1d = self._depthwise_conv()
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = self._dt_proj(dt_min, dt_max, dt_init_floor)
        self.A_log = self._no_decay(nn.Parameter(s4d_real_log_A(self.d_inner, d_state)))
        self.D = self._no_decay(nn.Parameter(torch.ones(self.d_inner)))
        # backward direction, same initialisation
        self.A_b_log = self._no_decay(nn.Parameter(s4d_real_log_A(self.d_inner, d_state)))
        self.conv1d_b = self._depthwise_conv()
        self.x_proj_b = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj_b = self._dt_proj(dt_min, dt_max, dt_init_floor)
        self.D_b = self._no_decay(nn.Parameter(torch.ones(self.d_inner)))

        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def _depthwise_conv(self) -> nn.Conv1d:
        return nn.Conv1d(self.d_inner, self.d_inner, kernel_size=self.d_conv, groups=self.d_inner,
                         padding=self.d_conv - 1, bias=True)

    def _dt_proj(self, dt_min: float, dt_max: float, floor: float) -> nn.Linear:
        proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        std = self.dt_rank**-0.5
        with torch.no_grad():
            nn.init.uniform_(proj.weight, -std, std)
            proj.bias.copy_(inverse_softplus_dt(self.d_inner, dt_min, dt_max, floor))
        proj.bias._no_reinit = True  # type: ignore[attr-defined]
        return proj

    @staticmethod
    def _no_decay(param: nn.Parameter) -> nn.Parameter:
        param._no_weight_decay = True  # type: ignore[attr-defined]
        return param

    def forward(self, hidden_states: Tensor) -> Tensor:
        """``hidden_states`` ``(B, L, d)`` -> ``(B, L, d)``."""
        if self._fused_triton(hidden_states):
            return self.out_proj(self._bidirectional_triton(hidden_states).transpose(1, 2))
        xz = self.in_proj(hidden_states).transpose(1, 2)  # (B, 2*d_inner, L)
        forward = self._scan(xz, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D)
        backward = self._scan(xz.flip(-1), self.conv1d_b, self.x_proj_b, self.dt_proj_b,
                              self.A_b_log, self.D_b)
        y = forward + backward.flip(-1)  # (B, d_inner, L)
        return self.out_proj(y.transpose(1, 2))

    def _fused_triton(self, hidden_states: Tensor) -> bool:
        """Whether in_proj and both branches run as one Triton op pair (no flipped copies): CUDA
        tensors and a scan backend that resolves to ``triton``."""
        if not hidden_states.is_cuda or not TRITON_INSTALLED:
            return False
        name = self.scan_backend
        if name == "auto":
            name = get_default_backend() or "triton"
        return name == "triton"

    def _bidirectional_triton(self, hidden_states: Tensor) -> Tensor:
        """``hidden_states`` ``(B, L, d)`` -> the summed, gated branches ``(B, d_inner, L)``,
        in_proj included: the op keeps ``hidden_states`` for the backward and recomputes
        in_proj's output there (``triton_bidir.bimamba_mixer_triton``)."""
        from videomamba.ops.selective_scan.triton_bidir import BranchWeights, bimamba_mixer_triton

        dtype = hidden_states.dtype  # what autocast would run in_proj in
        if torch.is_autocast_enabled(hidden_states.device.type):
            dtype = torch.get_autocast_dtype(hidden_states.device.type)
        forward = BranchWeights(self.conv1d.weight, self.conv1d.bias, self.x_proj.weight,
                                self.dt_proj.weight, self.dt_proj.bias, self.A_log, self.D)
        backward = BranchWeights(self.conv1d_b.weight, self.conv1d_b.bias, self.x_proj_b.weight,
                                 self.dt_proj_b.weight, self.dt_proj_b.bias, self.A_b_log, self.D_b)
        return bimamba_mixer_triton(hidden_states.to(dtype), self.in_proj.weight, forward,
                                    backward, self.d_state, self.dt_rank)

    def _scan(
        self,
        xz: Tensor,
        conv: nn.Conv1d,
        x_proj: nn.Linear,
        dt_proj: nn.Linear,
        A_log: Tensor,
        D: Tensor,
    ) -> Tensor:
        """One direction: ``xz`` ``(B, 2*d_inner, L)`` -> gated scan output ``(B, d_inner, L)``."""
        x, z = xz.chunk(2, dim=1)
        x = causal_conv1d(x, conv.weight.squeeze(1), conv.bias, activation="silu")
        x_dbl = x_proj(x.transpose(1, 2))  # (B, L, dt_rank + 2N)
        dt, B, C = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, dt_proj.weight).transpose(1, 2)  # bias goes in as delta_bias
        A = -torch.exp(A_log.float())
        return selective_scan(
            x, delta, A, B.transpose(1, 2), C.transpose(1, 2), D.float(), z=z,
            delta_bias=dt_proj.bias.float(), delta_softplus=True, backend=self.scan_backend,
        )
