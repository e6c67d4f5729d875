"""The fused bidirectional depthwise conv + SiLU Triton kernel against the ``F.conv1d``
formulation (flip, causal conv, SiLU, flip back): values and every gradient. On CPU through the
Triton interpreter at tiny sizes; a ``gpu`` test at the mixer's real size."""

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

from videomamba.ops.triton_conv import (  # noqa: E402
    _bi_conv_silu_bwd,
    _bi_conv_silu_fwd,
    bidirectional_conv_silu_triton,
)

DEVICE = "cuda" if ON_GPU else "cpu"


def reference(x, w_f, b_f, w_b, b_b):
    """The two branches as the official mixer computes them: causal conv + SiLU, the backward
    one on the flipped sequence and flipped back."""
    channels, length = x.shape[1], x.shape[2]

    def causal(x, w, b):
        w = w.reshape(channels, 1, -1)
        return F.silu(F.conv1d(x, w, b, padding=w.shape[-1] - 1, groups=channels)[..., :length])

    return causal(x, w_f, b_f), causal(x.flip(-1), w_b, b_b).flip(-1)


def make_inputs(batch, channels, length, width, dtype, bias, transposed, seed, weight_shape_3d):
    gen = torch.Generator().manual_seed(seed)
    if transposed:  # the mixer's x: a (B, D, L) view of a (B, L, 2D) tensor, stride 1 along D
        xz = torch.randn(batch, length, 2 * channels, generator=gen)
        x = xz.to(DEVICE, dtype)[..., :channels].transpose(1, 2)
    else:
        x = torch.randn(batch, channels, length, generator=gen).to(DEVICE, dtype)
    x = x.detach().requires_grad_()
    shape = (channels, 1, width) if weight_shape_3d else (channels, width)

    def param(*shape):
        return (torch.randn(*shape, generator=gen) * 0.5).to(DEVICE).requires_grad_()

    w_f, w_b = param(*shape), param(*shape)
    b_f, b_b = (param(channels), param(channels)) if bias else (None, None)
    return x, w_f, b_f, w_b, b_b


def relative_error(got, want):
    return ((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-12)).item()


def check_against_reference(batch, channels, length, width, dtype, bias, transposed,
                            weight_shape_3d=True, seed=0):
    x, w_f, b_f, w_b, b_b = make_inputs(batch, channels, length, width, dtype, bias, transposed,
                                        seed, weight_shape_3d)
    leaves = [t for t in (x, w_f, b_f, w_b, b_b) if t is not None]
    y_f, y_b = bidirectional_conv_silu_triton(x, w_f, b_f, w_b, b_b)
    assert y_f.dtype == dtype and y_b.dtype == dtype
    assert y_f.is_contiguous() and y_b.is_contiguous()

    # reference in float64 from the same (rounded) inputs
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    it = iter(ref_leaves)
    rx, rwf = next(it), next(it)
    rbf = next(it) if bias else None
    rwb = next(it)
    rbb = next(it) if bias else None
    r_f, r_b = reference(rx, rwf, rbf, rwb, rbb)

    gen = torch.Generator().manual_seed(seed + 1)
    dy_f = torch.randn(r_f.shape, generator=gen).to(DEVICE)
    dy_b = torch.randn(r_b.shape, generator=gen).to(DEVICE)
    grads = torch.autograd.grad((y_f.float() * dy_f).sum() + (y_b.float() * dy_b).sum(), leaves)
    ref_grads = torch.autograd.grad((r_f * dy_f.double()).sum() + (r_b * dy_b.double()).sum(),
                                    ref_leaves)

    tol = 1e-5 if dtype == torch.float32 else 1e-2
    names = ["x", "w_f"] + (["b_f"] if bias else []) + ["w_b"] + (["b_b"] if bias else [])
    for name, got, want in [("y_f", y_f, r_f), ("y_b", y_b, r_b),
                            *zip(names, grads, ref_grads)]:
        assert got.shape == want.shape, name
        assert torch.isfinite(got).all(), name
        err = relative_error(got, want)
        assert err < tol, f"{name}: relative error {err:.2e} (L={length}, K={width}, {dtype})"


@pytest.mark.parametrize("length,width", [(1, 4), (3, 4), (13, 4), (70, 4), (9, 3), (5, 2),
                                          (6, 1)])
def test_matches_conv1d_formulation_fp32(length, width):
    check_against_reference(2, 5, length, width, torch.float32, bias=True, transposed=True)


def test_many_tiles_per_program():
    """Longer than one program's run of tiles: several programs add into the weight grads."""
    check_against_reference(1, 2, 1100, 4, torch.float32, bias=True, transposed=True)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("transposed", [True, False])
def test_bias_and_layout_variants(bias, transposed):
    check_against_reference(2, 6, 11, 4, torch.float32, bias=bias, transposed=transposed,
                            weight_shape_3d=not transposed)


def test_matches_conv1d_formulation_bf16():
    check_against_reference(2, 6, 67, 4, torch.bfloat16, bias=True, transposed=True)


def test_rejects_too_wide_kernel():
    x = torch.randn(1, 2, 5, device=DEVICE)
    w = torch.randn(2, 5, device=DEVICE)
    with pytest.raises(ValueError, match="width"):
        bidirectional_conv_silu_triton(x, w, None, w, None)


@pytest.mark.parametrize("bias", [True, False])
def test_custom_ops_pass_opcheck(bias):
    """Fake kernels (contiguous outputs, strides included) and autograd registration match the
    real ones, for the mixer's transposed input."""
    x, w_f, b_f, w_b, b_b = make_inputs(2, 4, 7, 4, torch.float32, bias, True, 3, True)
    torch.library.opcheck(_bi_conv_silu_fwd, (x, w_f, b_f, w_b, b_b))
    dy = torch.randn(2, 4, 7, device=DEVICE)
    dy_t = torch.randn(2, 7, 4, device=DEVICE).transpose(1, 2)  # a non-contiguous upstream grad
    with torch.no_grad():
        args = (dy, dy_t, x.detach(), w_f.detach(), None if b_f is None else b_f.detach(),
                w_b.detach(), None if b_b is None else b_b.detach())
    torch.library.opcheck(_bi_conv_silu_bwd, args)


def test_mixer_entry_point_uses_kernel_for_inference_only(monkeypatch):
    """The mixer's entry point runs the fused kernel without autograd (same values as its
    grouped-conv path) and the grouped conv when gradients are needed (the kernel's backward is
    slower, docs/kernels.md)."""
    from videomamba.ops import triton_conv
    from videomamba.ops.selective_scan import triton_bidir

    calls = []
    real = triton_conv._bi_conv_silu_fwd
    monkeypatch.setattr(triton_bidir, "bidirectional_conv_silu_triton",
                        lambda *args: calls.append(1) or real(*args))
    x, w_f, b_f, w_b, b_b = make_inputs(1, 4, 10, 4, torch.float32, True, True, 7, True)
    with torch.no_grad():
        fused = triton_bidir.bidirectional_conv_silu(x, w_f, b_f, w_b, b_b)
        grouped = triton_bidir.bidirectional_conv_silu_grouped(x, w_f, b_f, w_b, b_b)
    assert calls == [1]
    for got, want in zip(fused, grouped):
        assert relative_error(got, want) < 1e-6
    with_grad = triton_bidir.bidirectional_conv_silu(x, w_f, b_f, w_b, b_b)
    assert calls == [1] and with_grad[0].requires_grad


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_gpu_real_size(dtype):
    """VideoMamba-S at 8 frames: B=8, D=768, L=1569, transposed input."""
    check_against_reference(8, 768, 1569, 4, dtype, bias=True, transposed=True)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
def test_gpu_odd_sizes():
    check_against_reference(3, 100, 1000, 4, torch.float32, bias=False, transposed=True)
    check_against_reference(2, 64, 3, 4, torch.bfloat16, bias=True, transposed=False)
