"""causal_conv1d against the loop that defines it, values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from videomamba.ops.causal_conv1d import causal_conv1d


def causal_conv1d_loop(x, weight, bias, activation):
    """out[b, d, t] = bias[d] + sum_k weight[d, k] * x[b, d, t - (K-1) + k], zero before t=0."""
    width = weight.shape[1]
    out = torch.zeros_like(x)
    for t in range(x.shape[-1]):
        for k in range(width):
            src = t - (width - 1) + k
            if src >= 0:
                out[..., t] = out[..., t] + weight[:, k] * x[..., src]
    if bias is not None:
        out = out + bias[:, None]
    return F.silu(out) if activation == "silu" else out


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


CASES = [(2, 5, 1, 4), (1, 8, 7, 4), (2, 3, 63, 3), (1, 4, 130, 2)]


@pytest.mark.parametrize("activation", [None, "silu"], ids=["act-none", "act-silu"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batch,channels,length,width", CASES,
                         ids=[f"B{b}-D{d}-L{l}-K{k}" for b, d, l, k in CASES])
def test_matches_loop_values_and_grads(batch, channels, length, width, with_bias, activation):
    torch.manual_seed(0)
    x = torch.randn(batch, channels, length, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(channels, width, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(channels, dtype=torch.float64, requires_grad=True) if with_bias else None
    inputs = [t for t in (x, weight, bias) if t is not None]
    grad_out = torch.randn(batch, channels, length, dtype=torch.float64)

    expected = causal_conv1d_loop(x, weight, bias, activation)
    expected_grads = torch.autograd.grad(expected, inputs, grad_out)
    got = causal_conv1d(x, weight, bias, activation)
    got_grads = torch.autograd.grad(got, inputs, grad_out)

    assert got.shape == (batch, channels, length)
    assert rel_err(got, expected) < 1e-12
    for g, e in zip(got_grads, expected_grads):
        assert rel_err(g, e) < 1e-12


def test_is_causal():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 20)
    weight = torch.randn(3, 4)
    changed = x.clone()
    changed[..., 10:] = torch.randn(1, 3, 10)
    a, b = causal_conv1d(x, weight), causal_conv1d(changed, weight)
    torch.testing.assert_close(a[..., :10], b[..., :10])
    assert not torch.allclose(a[..., 10:], b[..., 10:])


def test_accepts_conv1d_weight_and_matches_official_slicing():
    """The official mixer runs ``conv1d(x)[..., :L]`` with padding K-1; the function must agree
    when given that module's (D, 1, K) weight."""
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3, bias=True)
    x = torch.randn(2, 6, 11)
    expected = F.silu(conv(x)[..., :11])
    got = causal_conv1d(x, conv.weight, conv.bias, activation="silu")
    torch.testing.assert_close(got, expected)


def test_rejects_bad_activation_and_shape():
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d(torch.randn(1, 2, 3), torch.randn(2, 4), activation="relu")
    with pytest.raises(ValueError, match="match weight"):
        causal_conv1d(torch.randn(1, 3, 3), torch.randn(2, 4))
