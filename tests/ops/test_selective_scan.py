"""Selective-scan backends against the sequential reference: values and every gradient."""

from __future__ import annotations

import itertools
import logging

import pytest
import torch

import videomamba.ops.selective_scan as dispatch
import videomamba.ops.selective_scan.torch_chunked as chunked
from videomamba.errors import BackendUnavailableError
from videomamba.ops.selective_scan import (
    available_backends,
    selective_scan,
    selective_scan_ref,
    selective_scan_torch,
    set_default_backend,
)

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
DTYPE_IDS = {torch.float32: "float32", torch.float64: "float64"}


def assert_close(name: str, got: torch.Tensor, ref: torch.Tensor, tol: float) -> None:
    """Relative error ||got - ref|| / ||ref|| under ``tol`` (absolute when ref is zero)."""
    assert got.shape == ref.shape, f"{name}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    assert torch.isfinite(got).all(), f"{name}: non-finite values"
    diff = (got.double() - ref.double()).norm().item()
    scale = ref.double().norm().item()
    err = diff / scale if scale > 0 else diff
    assert err < tol, f"{name}: relative error {err:.2e} >= {tol:.0e}"


def make_inputs(batch, channels, state, length, groups, dtype, seed=0, delta_scale=0.5,
                a_scale=2.0):
    """Random scan inputs, all requiring grad. ``groups`` 0 gives B, C as ``(B, N, L)``."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0, shift=0.0):
        t = torch.randn(*shape, generator=gen, dtype=dtype) * scale + shift
        return t.requires_grad_()

    bc_shape = (batch, state, length) if groups == 0 else (batch, groups, state, length)
    return {
        "u": rand(batch, channels, length),
        "delta": rand(batch, channels, length, scale=delta_scale),
        "A": (-torch.rand(channels, state, generator=gen, dtype=dtype) * a_scale).requires_grad_(),
        "B": rand(*bc_shape),
        "C": rand(*bc_shape),
        "D": rand(channels),
        "z": rand(batch, channels, length),
        "delta_bias": rand(channels, scale=0.5),
    }


def run_with_grads(fn, inputs, options, seed=1):
    """Output, last state and the gradient of every input under random upstream gradients."""
    y, last = fn(**inputs, **options, return_last_state=True)
    gen = torch.Generator().manual_seed(seed)
    dy = torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device)
    dlast = torch.randn(last.shape, generator=gen, dtype=last.dtype).to(last.device)
    names = [k for k, v in inputs.items() if v is not None]
    grads = torch.autograd.grad((y * dy).sum() + (last * dlast).sum(),
                                [inputs[k] for k in names])
    return y, last, dict(zip(names, grads))


def compare_to_ref(inputs, options, dtype):
    ref_y, ref_last, ref_grads = run_with_grads(selective_scan_ref, inputs, options)
    y, last, grads = run_with_grads(selective_scan_torch, inputs, options)
    assert y.dtype == dtype
    assert_close("y", y, ref_y, TOL[dtype])
    assert_close("last_state", last, ref_last, TOL[dtype])
    for name, ref_grad in ref_grads.items():
        assert_close(f"d{name}", grads[name], ref_grad, TOL[dtype])


# How the torch backend scans: one op per step (the CPU path for big steps), the two-level
# chunked scheme (small steps, CUDA), and both over many small blocks (exercises the state
# carried between blocks, forward and backward, and the reuse of the scratch buffers).
STRATEGIES = {
    "sequential": {"SEQUENTIAL_MIN_STEP": 0},
    "sequential_blocks": {"SEQUENTIAL_MIN_STEP": 0, "BLOCK_BYTES": 700},
    "two_level": {"SEQUENTIAL_MIN_STEP": 10**12},
    "two_level_blocks": {"SEQUENTIAL_MIN_STEP": 10**12, "BLOCK_BYTES": 1500},
}


@pytest.fixture(params=list(STRATEGIES), ids=list(STRATEGIES))
def strategy(request, monkeypatch):
    for name, value in STRATEGIES[request.param].items():
        monkeypatch.setattr(chunked, name, value)
    return request.param


SIZES = [(2, 4, 3, 1), (2, 4, 3, 7), (1, 6, 4, 63), (2, 4, 3, 130)]
SIZE_IDS = [f"B{b}-D{d}-N{n}-L{l}" for b, d, n, l in SIZES]
ALL_OPTIONS = {"with_D": True, "with_z": True, "with_bias": True, "softplus": True}


def options_for(inputs, with_D, with_z, with_bias, softplus):
    """Drop the optional inputs that are switched off; returns (inputs, keyword options)."""
    inputs = dict(inputs)
    for key, on in (("D", with_D), ("z", with_z), ("delta_bias", with_bias)):
        if not on:
            inputs[key] = None
    return inputs, {"delta_softplus": softplus}


@pytest.mark.parametrize("dtype", list(TOL), ids=DTYPE_IDS.get)
@pytest.mark.parametrize("groups", [0, 1, 2], ids=["BC3d", "G1", "G2"])
@pytest.mark.parametrize("batch,channels,state,length", SIZES, ids=SIZE_IDS)
def test_torch_matches_ref_all_lengths(batch, channels, state, length, groups, dtype, strategy):
    inputs = make_inputs(batch, channels, state, length, groups, dtype)
    compare_to_ref(*options_for(inputs, **ALL_OPTIONS), dtype)


COMBOS = list(itertools.product([False, True], repeat=4))


@pytest.mark.parametrize("dtype", list(TOL), ids=DTYPE_IDS.get)
@pytest.mark.parametrize(
    "with_D,with_z,with_bias,softplus", COMBOS,
    ids=["-".join(n if on else f"no_{n}" for n, on in zip(["D", "z", "bias", "softplus"], c))
         for c in COMBOS])
def test_torch_matches_ref_every_option(with_D, with_z, with_bias, softplus, dtype):
    inputs = make_inputs(2, 4, 3, 37, 0, dtype, seed=3)
    compare_to_ref(*options_for(inputs, with_D, with_z, with_bias, softplus), dtype)


@pytest.mark.parametrize("dtype", list(TOL), ids=DTYPE_IDS.get)
def test_stable_for_large_delta_times_A(dtype, strategy):
    """delta * |A| up to ~1000: decays underflow to zero; nothing may overflow or turn NaN."""
    inputs = make_inputs(1, 4, 3, 130, 0, dtype, seed=5, delta_scale=30.0, a_scale=20.0)
    inputs, options = options_for(inputs, **ALL_OPTIONS)
    with torch.no_grad():
        lowest = (torch.nn.functional.softplus(inputs["delta"] + inputs["delta_bias"][:, None])
                  .amax() * inputs["A"].amin())
    assert lowest < -500  # the regime where exp of a positive cumulative sum would overflow
    compare_to_ref(inputs, options, dtype)


def test_half_precision_inputs_keep_their_dtype():
    inputs = make_inputs(1, 4, 3, 20, 0, torch.float32)
    half = {k: v.detach().to(torch.bfloat16) for k, v in inputs.items()}
    got = selective_scan_torch(**half, delta_softplus=True)
    ref = selective_scan_ref(**half, delta_softplus=True)
    assert got.dtype == torch.bfloat16
    assert_close("y", got.float(), ref.float(), 1e-2)


def test_inference_mode_matches_autograd_path():
    inputs = make_inputs(2, 4, 3, 50, 2, torch.float32)
    with_grad = selective_scan_torch(**inputs, delta_softplus=True)
    with torch.inference_mode():
        without = selective_scan_torch(**{k: v.detach() for k, v in inputs.items()},
                                       delta_softplus=True)
    torch.testing.assert_close(without, with_grad.detach())


def test_rejects_channels_not_divisible_by_groups():
    inputs = make_inputs(1, 5, 3, 8, 2, torch.float32)
    with pytest.raises(ValueError, match="groups"):
        selective_scan_torch(**inputs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_backend_on_cuda_matches_ref():
    inputs = make_inputs(2, 8, 4, 130, 2, torch.float32)
    cuda = {k: v.detach().cuda().requires_grad_() for k, v in inputs.items()}
    options = {"delta_softplus": True}
    ref_y, ref_last, ref_grads = run_with_grads(selective_scan_ref, inputs, options)
    y, last, grads = run_with_grads(selective_scan_torch, cuda, options)
    assert_close("y", y.cpu(), ref_y, 1e-5)
    assert_close("last_state", last.cpu(), ref_last, 1e-5)
    for name, ref_grad in ref_grads.items():
        assert_close(f"d{name}", grads[name].cpu(), ref_grad, 1e-5)


# ---- the dispatcher ---------------------------------------------------------------------------

@pytest.fixture
def clean_default(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    set_default_backend(None)
    yield
    set_default_backend(None)


def small_inputs():
    return {k: v.detach() for k, v in make_inputs(1, 4, 3, 9, 0, torch.float32).items()}


@pytest.mark.parametrize("backend", ["ref", "torch", "auto"])
def test_dispatcher_backends_agree(backend, clean_default):
    inputs = small_inputs()
    expected = selective_scan_ref(**inputs, delta_softplus=True)
    got = selective_scan(**inputs, delta_softplus=True, backend=backend)
    assert_close("y", got, expected, 1e-5)


def test_available_backends_lists_the_cpu_ones():
    names = available_backends()
    assert {"ref", "torch"} <= set(names)
    assert set(names) <= set(dispatch.BACKENDS)


def record_calls(monkeypatch, backend: str) -> list[int]:
    """Wrap a backend's function so that each call appends to the returned list."""
    module_name, attr, _ = dispatch.BACKENDS[backend]
    module = __import__(module_name, fromlist=[attr])
    original, calls = getattr(module, attr), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, attr, wrapper)
    return calls


def test_auto_uses_torch_on_cpu_and_logs_once(clean_default, monkeypatch, caplog):
    calls = record_calls(monkeypatch, "torch")
    dispatch._auto_logged.clear()
    with caplog.at_level(logging.DEBUG, logger=dispatch.__name__):
        selective_scan(**small_inputs())
        selective_scan(**small_inputs())
    assert len(calls) == 2
    messages = [r.getMessage() for r in caplog.records if "auto" in r.getMessage()]
    assert len(messages) == 1 and "'torch'" in messages[0]


def test_set_default_backend_switches_auto(clean_default, monkeypatch):
    calls = record_calls(monkeypatch, "ref")
    set_default_backend("ref")
    selective_scan(**small_inputs())
    assert calls == [1]
    selective_scan(**small_inputs(), backend="torch")  # an explicit backend still wins
    assert calls == [1]
    set_default_backend(None)
    selective_scan(**small_inputs())
    assert calls == [1]


def test_environment_variable_switches_auto(clean_default, monkeypatch):
    calls = record_calls(monkeypatch, "ref")
    monkeypatch.setenv(dispatch.ENV_VAR, "ref")
    selective_scan(**small_inputs())
    assert calls == [1]


def test_unknown_backend_is_a_clear_error(clean_default):
    with pytest.raises(BackendUnavailableError, match="unknown selective-scan backend 'nope'"):
        selective_scan(**small_inputs(), backend="nope")
    with pytest.raises(BackendUnavailableError, match="choose one of"):
        set_default_backend("nope")


def test_mamba_ssm_backend_names_the_install_command(clean_default):
    try:
        import mamba_ssm  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailableError, match="pip install mamba-ssm"):
            selective_scan(**small_inputs(), backend="mamba_ssm")
    else:  # installed: on CPU tensors it must refuse with the CUDA message
        with pytest.raises(BackendUnavailableError, match="CUDA"):
            selective_scan(**small_inputs(), backend="mamba_ssm")


def test_triton_backend_on_cpu_tensors_is_a_clear_error(clean_default):
    with pytest.raises(BackendUnavailableError, match="triton"):
        selective_scan(**small_inputs(), backend="triton")



def test_sequential_path_is_taken(monkeypatch):
    """Guards the strategy tests: with big steps the CPU path is one op per step."""
    calls = []
    original = chunked._sequential_
    monkeypatch.setattr(chunked, "_sequential_",
                        lambda *args: calls.append(len(args[1])) or original(*args))
    monkeypatch.setattr(chunked, "SEQUENTIAL_MIN_STEP", 0)
    inputs = make_inputs(2, 4, 3, 63, 0, torch.float64)
    compare_to_ref(*options_for(inputs, **ALL_OPTIONS), torch.float64)
    assert calls == [63, 63, 63]  # forward, then states and adjoint in backward


def test_scratch_buffers_are_reused_safely():
    """Two calls of different sizes in a row (the workspace grows, views are rebuilt) and a
    repeated call give the same results as fresh ones."""
    small = make_inputs(1, 4, 3, 20, 0, torch.float32, seed=1)
    big = make_inputs(2, 8, 3, 90, 2, torch.float32, seed=2)
    with torch.no_grad():
        first = selective_scan_torch(**small, delta_softplus=True)
        selective_scan_torch(**big, delta_softplus=True)
        again = selective_scan_torch(**small, delta_softplus=True)
        ref = selective_scan_ref(**small, delta_softplus=True)
    torch.testing.assert_close(again, first)
    assert_close("y", again, ref, 1e-5)


def test_inference_mode_then_training_then_inference():
    """The per-thread scratch buffers must not leak inference tensors into autograd code."""
    inputs = make_inputs(1, 8, 4, 50, 0, torch.float32, seed=4)
    detached = {k: v.detach() for k, v in inputs.items()}
    with torch.inference_mode():
        before = selective_scan_torch(**detached, delta_softplus=True)
    y = selective_scan_torch(**inputs, delta_softplus=True)
    y.sum().backward()
    assert inputs["u"].grad is not None
    with torch.inference_mode():
        after = selective_scan_torch(**detached, delta_softplus=True)
    torch.testing.assert_close(after, before)
    torch.testing.assert_close(y.detach(), before)
