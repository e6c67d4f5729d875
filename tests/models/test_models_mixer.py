"""The bidirectional mixer and the block against literal re-statements of the official maths."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from models_testlib import perturb

from videomamba.models.block import RMSNorm
from videomamba.models.mixer import BiMambaMixer


def literal_direction(x_in, z, conv, x_proj, dt_proj, A_log, D, d_state, dt_rank):
    """One direction token by token: causal depthwise conv + SiLU, projections, the recurrence
    h_t = exp(dt*A) h_{t-1} + dt*B_t*u_t, y_t = C_t.h_t + D*u_t, gated by SiLU(z). x_in, z (L, E)."""
    length, inner = x_in.shape
    kernel = conv.weight.shape[-1]
    padded = torch.cat([torch.zeros(kernel - 1, inner), x_in])
    u = torch.stack([(padded[t:t + kernel].T * conv.weight[:, 0]).sum(-1) + conv.bias
                     for t in range(length)])
    u = F.silu(u)
    proj = u @ x_proj.weight.T
    dt = F.softplus(proj[:, :dt_rank] @ dt_proj.weight.T + dt_proj.bias)  # (L, E)
    B, C = proj[:, dt_rank:dt_rank + d_state], proj[:, dt_rank + d_state:]
    A = -torch.exp(A_log)  # (E, N)
    h = torch.zeros(inner, d_state)
    ys = []
    for t in range(length):
        h = torch.exp(dt[t, :, None] * A) * h + (dt[t] * u[t])[:, None] * B[t]
        ys.append(h @ C[t] + D * u[t])
    return torch.stack(ys) * F.silu(z)


def literal_mixer(m: BiMambaMixer, hidden):
    """hidden (L, d): forward on the sequence, backward on the reversed one, reversed back, summed."""
    xz = hidden @ m.in_proj.weight.T
    x, z = xz.chunk(2, dim=-1)
    args = (m.d_state, m.dt_rank)
    fwd = literal_direction(x, z, m.conv1d, m.x_proj, m.dt_proj, m.A_log, m.D, *args)
    bwd = literal_direction(x.flip(0), z.flip(0), m.conv1d_b, m.x_proj_b, m.dt_proj_b, m.A_b_log,
                            m.D_b, *args).flip(0)
    return (fwd + bwd) @ m.out_proj.weight.T


def test_mixer_matches_the_literal_maths():
    torch.manual_seed(0)
    mixer = perturb(BiMambaMixer(16, d_state=4, dt_rank=3), seed=1)
    hidden = torch.randn(2, 11, 16)
    with torch.no_grad():
        out = mixer(hidden)
        expected = torch.stack([literal_mixer(mixer, h) for h in hidden])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_mixer_is_bidirectional():
    """Output t depends on inputs after t (the backward branch) and before t (the forward one)."""
    torch.manual_seed(0)
    mixer = perturb(BiMambaMixer(16, d_state=4))
    hidden = torch.randn(1, 9, 16, requires_grad=True)
    mixer(hidden)[0, 4].sum().backward()
    reach = hidden.grad[0].abs().sum(-1)
    assert reach[0] > 0 and reach[8] > 0


def test_rms_norm_formula():
    norm = RMSNorm(8, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 9.0))
    x = torch.randn(3, 8)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected)
