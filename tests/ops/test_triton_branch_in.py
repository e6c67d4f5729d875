"""The fused conv + SiLU + x_proj + dt_proj kernel of both branches against the unfused path
(the conv reference and ``F.linear``), on random inputs."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
import torch.nn.functional as F

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed (pip install -e .[dev])", allow_module_level=True)
ON_GPU = torch.cuda.is_available()
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"

from videomamba.ops.selective_scan.triton_bidir import (  # noqa: E402
    bidirectional_conv_silu_grouped,
)
from videomamba.ops.triton_branch_in import branch_inputs, fused_branch_inputs  # noqa: E402

DEVICE = "cuda" if ON_GPU else "cpu"


def check_branch_inputs(batch, channels, length, dt_rank, d_state, width, bias, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(DEVICE)

    # the mixer's x: the first half of a (B, L, 2D) tensor, seen as (B, D, L)
    x = randn(batch, length, 2 * channels)[..., :channels].to(dtype).transpose(1, 2)
    convs = [(randn(channels, 1, width, scale=0.5), randn(channels) if bias else None)
             for _ in range(2)]
    n_out = dt_rank + 2 * d_state
    x_projs = [randn(n_out, channels, scale=channels ** -0.5).to(dtype) for _ in range(2)]
    dt_projs = [randn(channels, dt_rank, scale=dt_rank ** -0.5).to(dtype) for _ in range(2)]
    got = branch_inputs(x, *convs, tuple(x_projs), tuple(dt_projs), dt_rank)

    u_refs = bidirectional_conv_silu_grouped(x.double(), *[t.double() if t is not None else None
                                                           for t in (*convs[0], *convs[1])])
    # 16-bit: every stage against float64 from the kernel's own (rounded) previous stage
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    for (u, x_dbl, delta), u_ref, x_proj, dt_proj in zip(got, u_refs, x_projs, dt_projs):
        assert u.shape == (batch, channels, length) and u.stride(1) == 1
        assert x_dbl.shape == (batch, length, n_out) and x_dbl.is_contiguous()
        assert delta.shape == (batch, channels, length) and delta.stride(1) == 1
        assert u.dtype == x_dbl.dtype == delta.dtype == dtype
        x_dbl_ref = F.linear(u.transpose(1, 2).double(), x_proj.double())
        delta_ref = F.linear(x_dbl[..., :dt_rank].double(), dt_proj.double()).transpose(1, 2)
        for name, value, want in (("u", u, u_ref), ("x_dbl", x_dbl, x_dbl_ref),
                                  ("delta", delta, delta_ref)):
            err = ((value.double() - want).norm() / want.norm()).item()
            assert err < tol, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize(("channels", "length", "dt_rank", "width", "bias"),
                         [(48, 37, 5, 4, True), (40, 9, 3, 2, False), (16, 1, 8, 4, True)])
def test_branch_inputs_match_the_unfused_path(channels, length, dt_rank, width, bias):
    # channel counts that do not fill the last chunk, dt_rank below and at a power of two,
    # positions that do not fill the last block
    check_branch_inputs(2, channels, length, dt_rank, 8, width, bias, torch.float32)


def test_branch_inputs_in_bfloat16():
    check_branch_inputs(1, 64, 20, 8, 16, 3, False, torch.bfloat16)


def test_branch_inputs_reject_other_layouts(monkeypatch):
    monkeypatch.setenv("VIDEOMAMBA_BRANCH_IN", "1")
    x = torch.zeros(1, 8, 5, device=DEVICE)  # positions fastest
    assert not fused_branch_inputs(x)
    w = (torch.zeros(8, 1, 4, device=DEVICE), None)
    with pytest.raises(ValueError, match="channels-fastest"):
        branch_inputs(x, w, w, (torch.zeros(3, 8),) * 2, (torch.zeros(8, 1),) * 2, 1)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(("channels", "length", "dt_rank", "d_state"),
                         [(768, 1569, 24, 16), (192, 1000, 12, 16), (576, 7, 36, 16),
                          (100, 300, 7, 8)])
def test_gpu_branch_inputs_match_the_unfused_path(channels, length, dt_rank, d_state, dtype):
    check_branch_inputs(2, channels, length, dt_rank, d_state, 4, True, dtype)
