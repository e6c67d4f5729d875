"""The gate, the sum of both directions and out_proj in one Triton GEMM, against gate_sum's
formula followed by F.linear, on random inputs."""

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

from videomamba.ops.triton_gated_out import fused_gated_out, gated_out_projection  # noqa: E402

DEVICE = "cuda" if ON_GPU else "cpu"


def mixer_like_inputs(batch, channels, length, features, dtype, seed=0):
    """``y_f``, ``y_b`` as the pair forward leaves them ((B, D, L) views of (B, L, D) memory),
    ``z`` the second half of an in_proj output ((B, L, 2D) memory), out_proj's weight."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(DEVICE, dtype)

    y_f, y_b = (randn(batch, length, channels).transpose(1, 2) for _ in range(2))
    z = randn(batch, length, 2 * channels).transpose(1, 2)[:, channels:]
    weight = randn(features, channels, scale=channels ** -0.5)
    return y_f, y_b, z, weight


def check_gated_out(batch, channels, length, features, dtype, tol):
    y_f, y_b, z, weight = mixer_like_inputs(batch, channels, length, features, dtype)
    got = gated_out_projection(y_f, y_b, z, weight)
    assert got.shape == (batch, length, features) and got.is_contiguous()
    assert got.dtype == dtype
    # the gated values rounded to the weight's dtype, as gate_sum writes them
    gated = ((y_f.double() + y_b.double()) * F.silu(z.double())).to(dtype)
    want = F.linear(gated.transpose(1, 2).double(), weight.double())
    err = ((got.double() - want).norm() / want.norm()).item()
    assert err < tol, f"relative error {err:.2e}"


@pytest.mark.parametrize(("batch", "channels", "length", "features"),
                         [(2, 48, 37, 24), (1, 64, 16, 16), (3, 20, 1, 40), (1, 32, 5, 80)])
def test_gated_out_matches_gate_then_linear(batch, channels, length, features):
    # channels that do not fill the last chunk, rows and features that do not fill their last
    # block, one position; the interpreter's 16-feature tiles: 2, 1, 3 per program, and 5 as
    # two programs of 3
    check_gated_out(batch, channels, length, features, torch.float32, 1e-6)


def test_gated_out_in_bfloat16():
    # the CPU interpreter rounds 16-bit stores toward zero, twice the error of a GPU's rounding
    check_gated_out(2, 64, 20, 32, torch.bfloat16, 1e-2)


def test_gated_out_takes_rows_of_positions_only(monkeypatch):
    y_f, y_b, z, weight = mixer_like_inputs(2, 16, 9, 8, torch.float32)
    assert fused_gated_out(y_f, z)
    dense_bdl = y_f.contiguous()  # (B, D, L) memory: positions fastest
    assert not fused_gated_out(dense_bdl, z)
    with pytest.raises(ValueError, match="channels fastest"):
        gated_out_projection(dense_bdl, dense_bdl, z, weight)
    with pytest.raises(ValueError, match="strides"):
        gated_out_projection(y_f, y_b.contiguous(), z, weight)
    monkeypatch.setenv("VIDEOMAMBA_FUSED_OUT", "0")
    assert not fused_gated_out(y_f, z)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(("batch", "channels", "length", "features"),
                         [(8, 768, 1569, 384), (2, 384, 197, 192), (1, 1152, 30, 576),
                          (3, 100, 7, 40), (1, 64, 9, 1100)])
def test_gpu_gated_out_matches_gate_then_linear(batch, channels, length, features, dtype):
    # VideoMamba-S at 8 frames, Ti at 1, M's widths (five 128-feature tiles: two programs of
    # three), sizes that fill no block, and more features than four tiles of any config
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    check_gated_out(batch, channels, length, features, dtype, tol)
