"""The fused bidirectional depthwise conv + SiLU Triton kernel (forward and its two-pass backward)
against the grouped ``F.conv1d`` path of the mixer, evaluated in float64: values and every
gradient. On CPU through the Triton interpreter at tiny sizes; ``gpu`` tests at the mixer's real
size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from triton_testlib import triton_device

ON_GPU, DEVICE = triton_device()

from videomamba.ops.selective_scan.triton_bidir import (  # noqa: E402
    bidirectional_conv_silu_grouped,
)
from videomamba.ops.triton_conv import (  # noqa: E402
    _bi_conv_silu_bwd,
    _bi_conv_silu_fwd,
    bidirectional_conv_silu_triton,
)

# x: the mixer's (B, D, L) view of a (B, L, 2D) tensor (channels fastest) or a contiguous one
X_LAYOUTS = ("transposed", "contiguous")
# upstream gradients: contiguous, channels fastest, every other element of a longer tensor,
# or one value broadcast over everything (what the backward of a plain .sum() hands over)
DY_LAYOUTS = ("contiguous", "transposed", "strided", "expanded")


def flip_reference(x, w_f, b_f, w_b, b_b):
    """The two branches as the official mixer computes them: causal conv + SiLU, the backward
    one on the flipped sequence and flipped back."""
    channels, length = x.shape[1], x.shape[2]

    def causal(x, w, b):
        w = w.reshape(channels, 1, -1)
        return F.silu(F.conv1d(x, w, b, padding=w.shape[-1] - 1, groups=channels)[..., :length])

    return causal(x, w_f, b_f), causal(x.flip(-1), w_b, b_b).flip(-1)


def make_x(batch, channels, length, dtype, layout, gen):
    if layout == "transposed":
        xz = torch.randn(batch, length, 2 * channels, generator=gen)
        return xz.to(DEVICE, dtype)[..., :channels].transpose(1, 2)
    return torch.randn(batch, channels, length, generator=gen).to(DEVICE, dtype)


def make_dy(shape, dtype, layout, gen):
    batch, channels, length = shape
    if layout == "transposed":
        dy = torch.randn(batch, length, channels, generator=gen).transpose(1, 2)
    elif layout == "strided":
        dy = torch.randn(batch, channels, 2 * length, generator=gen)[..., ::2]
    elif layout == "expanded":
        dy = torch.randn(1, generator=gen).reshape(1, 1, 1).expand(shape)
    else:
        dy = torch.randn(shape, generator=gen)
    return dy.to(DEVICE, dtype)


def make_inputs(batch, channels, length, width, dtype, bias, x_layout, seed, weight_shape_3d):
    gen = torch.Generator().manual_seed(seed)
    x = make_x(batch, channels, length, dtype, x_layout, gen).detach().requires_grad_()
    shape = (channels, 1, width) if weight_shape_3d else (channels, width)

    def param(*shape):
        return (torch.randn(*shape, generator=gen) * 0.5).to(DEVICE).requires_grad_()

    w_f, w_b = param(*shape), param(*shape)
    b_f, b_b = (param(channels), param(channels)) if bias else (None, None)
    return x, w_f, b_f, w_b, b_b


def relative_error(got, want):
    return ((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-12)).item()


def float64_leaves(leaves):
    return [t.detach().double().requires_grad_() for t in leaves]


def with_biases(leaves, bias):
    """(x, w_f, b_f, w_b, b_b) from the differentiable leaves (biases only when present)."""
    if bias:
        return leaves
    x, w_f, w_b = leaves
    return x, w_f, None, w_b, None


def check_against_reference(batch, channels, length, width, dtype, bias=True,
                            x_layout="transposed", dy_layouts=("contiguous", "contiguous"),
                            weight_shape_3d=True, seed=0):
    """Outputs and the gradients of x, both weights and both biases against the grouped conv in
    float64 from the same (rounded) inputs; returns the relative errors by name."""
    x, w_f, b_f, w_b, b_b = make_inputs(batch, channels, length, width, dtype, bias, x_layout,
                                        seed, weight_shape_3d)
    leaves = [t for t in (x, w_f, b_f, w_b, b_b) if t is not None]
    y_f, y_b = bidirectional_conv_silu_triton(x, w_f, b_f, w_b, b_b)
    assert y_f.dtype == dtype and y_b.dtype == dtype
    for y in (y_f, y_b):  # dense, in x's memory order
        if x_layout == "transposed":
            assert y.transpose(1, 2).is_contiguous()
        else:
            assert y.is_contiguous()
    ref_leaves = float64_leaves(leaves)
    r_f, r_b = bidirectional_conv_silu_grouped(*with_biases(ref_leaves, bias))

    gen = torch.Generator().manual_seed(seed + 1)
    dy_f, dy_b = (make_dy(r_f.shape, dtype, layout, gen) for layout in dy_layouts)
    grads = torch.autograd.grad((y_f, y_b), leaves, (dy_f, dy_b))
    ref_grads = torch.autograd.grad((r_f, r_b), ref_leaves, (dy_f.double(), dy_b.double()))
    fast_axis = 1 if x_layout == "transposed" else 2
    assert grads[0].stride(fast_axis) == 1, "dx is laid out like x"

    tol = 1e-5 if dtype == torch.float32 else 1e-2
    names = ["x", "w_f"] + (["b_f"] if bias else []) + ["w_b"] + (["b_b"] if bias else [])
    errors = {}
    for name, got, want in [("y_f", y_f, r_f), ("y_b", y_b, r_b),
                            *zip(names, grads, ref_grads)]:
        assert got.shape == want.shape, name
        assert torch.isfinite(got).all(), name
        errors[name] = relative_error(got, want)
        assert errors[name] < tol, (f"{name}: relative error {errors[name]:.2e} (L={length}, "
                                    f"K={width}, {dtype}, x {x_layout}, dy {dy_layouts})")
    return errors


def test_grouped_reference_matches_flip_formulation():
    """The reference itself: the grouped conv equals flip, causal conv, SiLU, flip back."""
    x, w_f, b_f, w_b, b_b = (None if t is None else t.detach().double() for t in
                             make_inputs(2, 3, 9, 3, torch.float32, True, "transposed", 5, True))
    for got, want in zip(bidirectional_conv_silu_grouped(x, w_f, b_f, w_b, b_b),
                         flip_reference(x, w_f, b_f, w_b, b_b)):
        assert relative_error(got, want) < 1e-12


@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("length", [1, 3, 7, 70])
def test_matches_grouped_conv_fp32(length, width):
    check_against_reference(2, 5, length, width, torch.float32)


@pytest.mark.parametrize("length,width", [(70, 4), (7, 3), (3, 2)])
def test_matches_grouped_conv_bf16(length, width):
    check_against_reference(2, 6, length, width, torch.bfloat16,
                            dy_layouts=("contiguous", "transposed"))


def test_width_one():
    check_against_reference(2, 5, 6, 1, torch.float32)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_layout", X_LAYOUTS)
def test_bias_and_x_layout_variants(bias, x_layout):
    check_against_reference(2, 6, 11, 4, torch.float32, bias=bias, x_layout=x_layout,
                            weight_shape_3d=x_layout == "contiguous")


@pytest.mark.parametrize("x_layout", X_LAYOUTS)
@pytest.mark.parametrize("dy_f_layout,dy_b_layout", [("transposed", "strided"),
                                                     ("expanded", "transposed")])
def test_non_contiguous_upstream_gradients(x_layout, dy_f_layout, dy_b_layout):
    check_against_reference(2, 5, 19, 4, torch.float32, x_layout=x_layout,
                            dy_layouts=(dy_f_layout, dy_b_layout))


@pytest.mark.parametrize("x_layout", X_LAYOUTS)
def test_many_programs_along_both_axes(monkeypatch, x_layout):
    """Small blocks (BLOCK_D=4, BLOCK_L=4, 2 tiles per program): two channel blocks, a partial
    last one, and 5 programs along L whose partial weight/bias sums are reduced."""
    monkeypatch.setenv("VIDEOMAMBA_CONV_BWD_CONFIG", "4,4,1,2")
    check_against_reference(1, 6, 37, 4, torch.float32, x_layout=x_layout,
                            dy_layouts=("transposed", "contiguous"))


# The sliding-window forward (channels-fastest x): small blocks, so that a sequence spans several
# chunks and the channels a partial block; every kernel width. Outputs only: the backward
# recomputes the pre-activations with its own kernels (checked above).
@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("length", [1, 7, 70])
def test_sliding_forward_matches_grouped_conv(monkeypatch, length, width):
    monkeypatch.setenv("VIDEOMAMBA_CONV_FWD_ALGO", "slide")
    monkeypatch.setenv("VIDEOMAMBA_CONV_SLIDE_CONFIG", "8,8,4,1")
    bias = width != 2
    x, w_f, b_f, w_b, b_b = make_inputs(2, 11, length, width, torch.float32, bias, "transposed",
                                        0, True)
    with torch.no_grad():
        outs = bidirectional_conv_silu_triton(x, w_f, b_f, w_b, b_b)
        refs = bidirectional_conv_silu_grouped(*(None if t is None else t.double()
                                                 for t in (x, w_f, b_f, w_b, b_b)))
    for got, want in zip(outs, refs):
        assert got.transpose(1, 2).is_contiguous()  # dense, in x's memory order
        assert relative_error(got, want) < 1e-5


@pytest.mark.parametrize("length", [7, 70])
def test_tiled_forward_on_channels_fastest_x(monkeypatch, length):
    """The tiles (the forward for contiguous x) also on the mixer's layout, when asked for."""
    monkeypatch.setenv("VIDEOMAMBA_CONV_FWD_ALGO", "tile")
    check_against_reference(2, 5, length, 4, torch.float32, x_layout="transposed")


def test_default_config_over_several_programs_along_length():
    """The default tiles, with more positions than one program covers (partial sums reduced)."""
    check_against_reference(1, 3, 300, 4, torch.float32)


def test_rejects_too_wide_kernel():
    x = torch.randn(1, 2, 5, device=DEVICE)
    w = torch.randn(2, 5, device=DEVICE)
    with pytest.raises(ValueError, match="width"):
        bidirectional_conv_silu_triton(x, w, None, w, None)


@pytest.mark.parametrize("bias,x_layout", [(True, "transposed"), (False, "contiguous")])
def test_custom_ops_pass_opcheck(bias, x_layout):
    """Fake kernels (output strides included: dx follows x's layout) and autograd registration
    match the real ones."""
    x, w_f, b_f, w_b, b_b = make_inputs(2, 4, 7, 4, torch.float32, bias, x_layout, 3, True)
    torch.library.opcheck(_bi_conv_silu_fwd, (x, w_f, b_f, w_b, b_b))
    gen = torch.Generator().manual_seed(4)
    dy = make_dy((2, 4, 7), torch.float32, "contiguous", gen)
    dy_t = make_dy((2, 4, 7), torch.float32, "transposed", gen)
    with torch.no_grad():
        args = (dy, dy_t, x.detach(), w_f.detach(), None if b_f is None else b_f.detach(),
                w_b.detach(), None if b_b is None else b_b.detach())
    torch.library.opcheck(_bi_conv_silu_bwd, args)


def grouped_errors(batch, channels, length, width, dtype, dy_layouts, seed=0):
    """The same errors for the grouped conv run in ``dtype`` (what training uses without the
    kernel): the precision the kernel is held to."""
    leaves = [t for t in make_inputs(batch, channels, length, width, dtype, True, "transposed",
                                     seed, True)]
    outs = bidirectional_conv_silu_grouped(*leaves)
    ref_leaves = float64_leaves(leaves)
    refs = bidirectional_conv_silu_grouped(*ref_leaves)
    gen = torch.Generator().manual_seed(seed + 1)
    dys = [make_dy(r.shape, dtype, layout, gen) for r, layout in zip(refs, dy_layouts)]
    grads = torch.autograd.grad(outs, leaves, dys)
    ref_grads = torch.autograd.grad(refs, ref_leaves, [dy.double() for dy in dys])
    names = ["x", "w_f", "b_f", "w_b", "b_b"]
    return {n: relative_error(g, r) for n, g, r in zip(names, grads, ref_grads)}


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
@pytest.mark.parametrize("algo", ["tile", "slide"])
@pytest.mark.parametrize("dy_layouts", [("contiguous", "contiguous"),
                                        ("transposed", "contiguous")])
def test_gpu_real_size_bf16(dy_layouts, algo, monkeypatch):
    """VideoMamba-S at 8 frames: B=8, D=768, L=1569, bf16, transposed x; every gradient within
    1.5x of the grouped bf16 path's own error (float64 reference)."""
    monkeypatch.setenv("VIDEOMAMBA_CONV_FWD_ALGO", algo)
    ours = check_against_reference(8, 768, 1569, 4, torch.bfloat16, dy_layouts=dy_layouts)
    theirs = grouped_errors(8, 768, 1569, 4, torch.bfloat16, dy_layouts)
    print("relative errors, kernel:", ours, "grouped bf16:", theirs)
    for name, err in theirs.items():
        assert ours[name] <= 1.5 * err + 1e-4, (name, ours[name], err)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
@pytest.mark.parametrize("algo", ["tile", "slide"])
def test_gpu_real_size_fp32(algo, monkeypatch):
    monkeypatch.setenv("VIDEOMAMBA_CONV_FWD_ALGO", algo)
    check_against_reference(8, 768, 1569, 4, torch.float32)
    check_against_reference(3, 100, 1000, 3, torch.float32, bias=False)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
def test_gpu_backward_is_deterministic():
    """No atomics: two backward calls give bitwise equal gradients."""
    x, w_f, b_f, w_b, b_b = make_inputs(8, 768, 1569, 4, torch.bfloat16, True, "transposed", 0,
                                        True)
    gen = torch.Generator().manual_seed(1)
    dy_f = make_dy(x.shape, torch.bfloat16, "contiguous", gen)
    dy_b = make_dy(x.shape, torch.bfloat16, "transposed", gen)
    with torch.no_grad():
        args = (dy_f, dy_b, x, w_f, b_f, w_b, b_b)
        first, second = _bi_conv_silu_bwd(*args), _bi_conv_silu_bwd(*args)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
def test_gpu_odd_sizes():
    check_against_reference(3, 100, 1000, 4, torch.float32, bias=False)
    check_against_reference(2, 64, 3, 4, torch.bfloat16, x_layout="contiguous",
                            dy_layouts=("strided", "transposed"))
    check_against_reference(2, 770, 6273, 3, torch.bfloat16, x_layout="contiguous")
