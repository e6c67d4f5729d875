"""Both branches' x_proj and dt_proj in one Triton launch against F.linear, on random inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from triton_testlib import triton_device

ON_GPU, DEVICE = triton_device()

from videomamba.ops.triton_proj import branch_projections, fused_projections  # noqa: E402


def check_projections(batch, channels, length, dt_rank, d_state, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(DEVICE, dtype)

    # the conv outputs: (B, D, L) views of (B, L, D) memory
    us = [randn(batch, length, channels).transpose(1, 2) for _ in range(2)]
    n_out = dt_rank + 2 * d_state
    x_projs = [randn(n_out, channels, scale=channels ** -0.5) for _ in range(2)]
    dt_projs = [randn(channels, dt_rank, scale=dt_rank ** -0.5) for _ in range(2)]
    got = branch_projections(us[0], us[1], tuple(x_projs), tuple(dt_projs), dt_rank)
    # 16-bit: each stage against float64 from the kernel's own (rounded) previous stage; the
    # CPU interpreter rounds 16-bit stores toward zero, twice the error of a GPU's rounding
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    for (x_dbl, delta), u, x_proj, dt_proj in zip(got, us, x_projs, dt_projs):
        assert x_dbl.shape == (batch, length, n_out) and x_dbl.is_contiguous()
        assert delta.shape == (batch, channels, length) and delta.stride(1) == 1
        assert x_dbl.dtype == delta.dtype == dtype
        x_dbl_ref = F.linear(u.transpose(1, 2).double(), x_proj.double())
        delta_ref = F.linear(x_dbl[..., :dt_rank].double(), dt_proj.double()).transpose(1, 2)
        for name, value, want in (("x_dbl", x_dbl, x_dbl_ref), ("delta", delta, delta_ref)):
            err = ((value.double() - want).norm() / want.norm()).item()
            assert err < tol, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize(("channels", "length", "dt_rank", "d_state"),
                         [(48, 37, 5, 8), (100, 9, 36, 16), (16, 1, 8, 4)])
def test_projections_match_f_linear(channels, length, dt_rank, d_state):
    # channels that do not fill the last chunk, dt_rank below, at and above a power of two,
    # rows that do not fill the last block
    check_projections(2, channels, length, dt_rank, d_state, torch.float32)


def test_projections_in_bfloat16():
    check_projections(1, 64, 20, 8, 16, torch.bfloat16)


def test_fused_projections_take_dense_channels_fastest_outputs_only(monkeypatch):
    monkeypatch.delenv("VIDEOMAMBA_FUSED_PROJ", raising=False)
    assert fused_projections(torch.zeros(2, 5, 8, device=DEVICE).transpose(1, 2))
    assert not fused_projections(torch.zeros(2, 8, 5, device=DEVICE))  # positions fastest
    assert not fused_projections(torch.zeros(2, 5, 16, device=DEVICE)[..., :8].transpose(1, 2))
    monkeypatch.setenv("VIDEOMAMBA_FUSED_PROJ", "0")
    assert not fused_projections(torch.zeros(2, 5, 8, device=DEVICE).transpose(1, 2))


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(("channels", "length", "dt_rank", "d_state"),
                         [(768, 1569, 24, 16), (192, 1000, 12, 16), (576, 7, 36, 16),
                          (100, 300, 7, 8)])
def test_gpu_projections_match_f_linear(channels, length, dt_rank, d_state, dtype):
    check_projections(2, channels, length, dt_rank, d_state, dtype)
