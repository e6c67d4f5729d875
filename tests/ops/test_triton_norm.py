"""The fused residual add + RMSNorm Triton kernels against the block's eager ``add_norm``:
values, the new residual and every gradient. On CPU through the Triton interpreter at tiny
sizes; a ``gpu`` test at VideoMamba-S's real size."""

from __future__ import annotations

import pytest
import torch

from triton_testlib import triton_device

ON_GPU, DEVICE = triton_device()

from videomamba.models.block import RMSNorm, add_norm  # noqa: E402
from videomamba.ops.triton_norm import (  # noqa: E402
    _add_rms_norm_bwd,
    _add_rms_norm_fwd,
    add_rms_norm_triton,
)


class ScaleDropPath(torch.nn.Module):
    """A drop path with a fixed per-sample scale, so both paths see the same mask."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def check(batch, length, dim, dtype, with_residual, with_scale, residual_fp32=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    h = (torch.randn(batch, length, dim, generator=gen) * 2).to(DEVICE, dtype).requires_grad_()
    residual = None
    if with_residual:
        res_dtype = torch.float32 if residual_fp32 else dtype
        residual = torch.randn(batch, length, dim, generator=gen).to(DEVICE, res_dtype)
        residual.requires_grad_()
    norm = RMSNorm(dim, eps=1e-5).to(DEVICE)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(dim, generator=gen) + 0.5)
    scale = None
    if with_scale:
        scale = (torch.tensor([0.0, 1.25] * batch)[:batch]).to(DEVICE)
    drop = ScaleDropPath(scale) if scale is not None else torch.nn.Identity()

    normed, summed = add_rms_norm_triton(h, residual, norm.weight, norm.eps, scale, residual_fp32)
    want_normed, want_summed = add_norm(h, residual, norm, drop, fused=True,
                                        residual_in_fp32=residual_fp32)
    assert normed.dtype == want_normed.dtype and summed.dtype == want_summed.dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    for name, got, want in (("normed", normed, want_normed), ("summed", summed, want_summed)):
        err = ((got.double() - want.double()).norm() / want.double().norm()).item()
        assert err < tol, f"{name}: {err:.2e}"

    d_normed = torch.randn(normed.shape, generator=gen).to(DEVICE, normed.dtype)
    d_summed = torch.randn(summed.shape, generator=gen).to(DEVICE, summed.dtype)
    leaves = [t for t in (h, residual, norm.weight) if t is not None]
    got = torch.autograd.grad([normed, summed], leaves, [d_normed, d_summed])
    want = torch.autograd.grad([want_normed, want_summed], leaves, [d_normed, d_summed])
    for name, g, w in zip(("dh", "dresidual", "dweight") if residual is not None
                          else ("dh", "dweight"), got, want):
        assert g.dtype == w.dtype, name
        err = ((g.double() - w.double()).norm() / w.double().norm()).item()
        assert err < tol, f"{name}: {err:.2e}"


@pytest.mark.parametrize("with_residual,with_scale", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_add_rms_norm_matches_eager(with_residual, with_scale, dtype):
    check(2, 7, 24, dtype, with_residual, with_scale)


def test_add_rms_norm_residual_in_model_dtype():
    check(2, 5, 16, torch.bfloat16, True, False, residual_fp32=False)
    check(1, 3, 16, torch.bfloat16, False, False, residual_fp32=False)


def test_add_rms_norm_without_residual_gradient():
    """The final norm's residual output is discarded: no gradient flows into it."""
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(2, 5, 8, generator=gen).to(DEVICE).requires_grad_()
    residual = torch.randn(2, 5, 8, generator=gen).to(DEVICE).requires_grad_()
    weight = (torch.rand(8, generator=gen) + 0.5).to(DEVICE).requires_grad_()
    normed, _ = add_rms_norm_triton(h, residual, weight, 1e-5)
    norm = RMSNorm(8).to(DEVICE)
    with torch.no_grad():
        norm.weight.copy_(weight)
    want, _ = add_norm(h, residual, norm, torch.nn.Identity(), True, True)
    dy = torch.randn(normed.shape, generator=gen).to(DEVICE)
    got = torch.autograd.grad(normed, (h, residual, weight), dy)
    ref = torch.autograd.grad(want, (h, residual, norm.weight), dy)
    for g, w in zip(got, ref):
        assert torch.allclose(g, w, atol=1e-5, rtol=1e-4)


def test_add_rms_norm_ops_pass_opcheck():
    gen = torch.Generator().manual_seed(2)
    h = torch.randn(2, 5, 8, generator=gen).to(DEVICE, torch.bfloat16)
    residual = torch.randn(2, 5, 8, generator=gen).to(DEVICE)
    weight = torch.rand(8, generator=gen).to(DEVICE)
    scale = torch.tensor([0.0, 2.0]).to(DEVICE)
    for args in ((h, residual, weight, scale, 1e-5, True), (h, None, weight, None, 1e-5, True)):
        torch.library.opcheck(_add_rms_norm_fwd, args, test_utils=("test_schema", "test_faketensor"))
        normed, res_out, rstd = _add_rms_norm_fwd(*args)
        has_res = args[1] is not None
        bwd = (torch.randn_like(normed), torch.randn_like(res_out), res_out, weight, rstd, args[3],
               h.dtype, has_res)
        torch.library.opcheck(_add_rms_norm_bwd, bwd, test_utils=("test_schema", "test_faketensor"))


def test_scale_without_residual_is_refused():
    h = torch.randn(2, 3, 8).to(DEVICE)
    with pytest.raises(ValueError, match="drop-path"):
        add_rms_norm_triton(h, None, torch.ones(8, device=DEVICE), 1e-5, torch.ones(2, device=DEVICE))


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
def test_gpu_add_rms_norm_real_size():
    check(8, 1569, 384, torch.bfloat16, True, True, seed=3)
    check(8, 1569, 384, torch.bfloat16, False, False, seed=4)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
def test_gpu_block_add_norm_uses_kernel_with_same_drop_path(monkeypatch):
    """On CUDA ``add_norm`` takes the kernel; with the same seed it draws the same drop-path mask
    as the eager composition and gives the same result."""
    import videomamba.models.block as block
    from videomamba.models.block import DropPath

    gen = torch.Generator().manual_seed(5)
    h = torch.randn(8, 33, 64, generator=gen).to(DEVICE, torch.bfloat16)
    residual = torch.randn(8, 33, 64, generator=gen).to(DEVICE)
    norm, drop = RMSNorm(64).to(DEVICE), DropPath(0.5).train()
    torch.manual_seed(0)
    fused = add_norm(h, residual, norm, drop, True, True)
    monkeypatch.setattr(block, "TRITON_INSTALLED", False)
    torch.manual_seed(0)
    eager = add_norm(h, residual, norm, drop, True, True)
    for got, want in zip(fused, eager):
        assert torch.allclose(got.float(), want.float(), atol=2e-2, rtol=1e-2)
    assert not torch.equal(fused[1], (residual + h.float()))  # some samples were dropped


def test_eager_route_matches_the_custom_op(monkeypatch):
    """Eager calls of the fused add + RMSNorm bypass ``torch.library`` (videomamba.ops.eager)
    with the same values and gradients."""
    from videomamba.ops import triton_norm

    gen = torch.Generator().manual_seed(3)
    h = torch.randn(2, 5, 16, generator=gen).to(DEVICE).requires_grad_()
    residual = torch.randn(2, 5, 16, generator=gen).to(DEVICE).requires_grad_()
    weight = (torch.rand(16, generator=gen) + 0.5).to(DEVICE).requires_grad_()
    d_normed, d_summed = torch.randn(2, 5, 16, generator=gen), torch.randn(2, 5, 16, generator=gen)

    def run():
        for t in (h, residual, weight):
            t.grad = None
        normed, summed = add_rms_norm_triton(h, residual, weight, 1e-5)
        ((normed * d_normed.to(DEVICE)).sum() + (summed * d_summed.to(DEVICE)).sum()).backward()
        return [normed.detach(), summed.detach(), h.grad, residual.grad, weight.grad]

    monkeypatch.setenv("VIDEOMAMBA_EAGER_OPS", "0")
    want = run()
    monkeypatch.setenv("VIDEOMAMBA_EAGER_OPS", "1")
    monkeypatch.setattr(triton_norm._ADD_RMS_NORM, "op", None)  # would fail if called
    got = run()
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=1e-6, atol=1e-7)


def test_fake_tensors_take_the_custom_op_and_its_fake_kernel():
    """Shape propagation with fake tensors (as ``torch.compile``'s tracing or a user's
    FakeTensorMode does) goes through the custom op's fake kernel, not the Triton kernels."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        h = torch.empty(2, 5, 16, device=DEVICE, requires_grad=True)
        residual = torch.empty(2, 5, 16, device=DEVICE)
        weight = torch.empty(16, device=DEVICE, requires_grad=True)
        normed, summed = add_rms_norm_triton(h, residual, weight, 1e-5)
        normed.sum().backward()
    assert normed.shape == summed.shape == (2, 5, 16)
    assert h.grad.shape == (2, 5, 16) and weight.grad.shape == (16,)
