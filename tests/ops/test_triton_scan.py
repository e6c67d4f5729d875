"""The Triton selective scan against the sequential reference: values, every gradient and the
last state. Without CUDA the kernels run in Triton's CPU interpreter at tiny sizes; with CUDA the
``gpu`` tests run at real sizes (run them on the device machine)."""

from __future__ import annotations

import pytest
import torch

from triton_testlib import triton_device

ON_GPU, DEVICE = triton_device()

from videomamba.ops.selective_scan.ref import selective_scan_ref  # noqa: E402
from videomamba.ops.selective_scan.triton_op import selective_scan_triton  # noqa: E402

OPTIONAL = ("D", "z", "delta_bias", "delta_softplus")
# relative (norm-wise) error allowed per input dtype: float32 arithmetic in both, rounding of
# the low-precision inputs/outputs otherwise
TOLERANCE = {torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 2e-2}


def make_inputs(batch, channels, n_state, length, dtype, groups=None, seed=0):
    """Fresh random inputs with requires_grad; delta around softplus's knee, A negative."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0, dt=dtype):
        t = torch.randn(*shape, generator=gen) * scale
        return t.to(device=DEVICE, dtype=dt).requires_grad_()

    bc = (batch, n_state, length) if groups is None else (batch, groups, n_state, length)
    A = (-torch.rand(channels, n_state, generator=gen) * 2 - 0.1).to(DEVICE).requires_grad_()
    return {
        "u": rand(batch, channels, length), "delta": rand(batch, channels, length, scale=0.5),
        "A": A, "B": rand(*bc), "C": rand(*bc),
        "D": rand(channels, dt=torch.float32), "z": rand(batch, channels, length),
        "delta_bias": rand(channels, scale=0.3, dt=torch.float32), "delta_softplus": True,
    }


def relative_error(got, want):
    """Norm-wise relative error; a reference that is (almost) zero, such as dA at L=1 where no
    earlier state exists, is compared on the scale of float32 rounding instead of dividing by 0."""
    got, want = got.double(), want.double()
    floor = 1e-6 * want.numel() ** 0.5
    return ((got - want).norm() / want.norm().clamp_min(floor)).item()


def assert_close(name, got, want, tol):
    assert got.shape == want.shape, name
    assert torch.isfinite(got).all(), f"{name}: non-finite values"
    if not want.any():  # exactly zero (dA at L=1): ours may hold the float32 rounding of h - B x
        # (a compiled kernel contracts it into one FMA), ~1e-7 of values of order 1
        worst = got.double().abs().max().item()
        assert worst <= 1e-5, f"{name}: reference is 0, ours reaches {worst:.1e}"
        return
    err = relative_error(got, want)
    assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"


def check_against_ref(inputs, use, tol, reverse=False):
    """Run both implementations with the optional arguments in ``use``; compare y, last state
    and the gradient of every tensor that takes part."""
    if "delta_softplus" not in use:  # without softplus the contract needs delta (+ bias) >= 0
        for key in ("delta", "delta_bias"):
            inputs[key] = inputs[key].detach().abs().requires_grad_()
    kwargs = {k: inputs[k] for k in use}
    core = [inputs[k] for k in ("u", "delta", "A", "B", "C")]
    leaves = core + [v for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
    y, last = selective_scan_triton(*core, **kwargs, return_last_state=True, reverse=reverse)
    dy, dlast = torch.randn_like(y), torch.randn_like(last)
    grads = torch.autograd.grad((y * dy).float().sum() + (last * dlast).sum(), leaves)

    flip = (lambda t: t.flip(-1)) if reverse else (lambda t: t)
    ref_kwargs = {k: flip(v) if k == "z" else v for k, v in kwargs.items()}
    y_ref, last_ref = selective_scan_ref(*[flip(t) if t.dim() >= 3 else t for t in core],
                                         **ref_kwargs, return_last_state=True)
    y_ref = flip(y_ref)
    ref_grads = torch.autograd.grad((y_ref * dy).float().sum() + (last_ref * dlast).sum(), leaves)

    assert y.dtype == inputs["u"].dtype and last.dtype == torch.float32
    assert_close("y", y, y_ref, tol)
    assert_close("last_state", last, last_ref, tol)
    names = ["u", "delta", "A", "B", "C"] + [k for k in kwargs if k != "delta_softplus"]
    for name, got, want in zip(names, grads, ref_grads):
        assert got.dtype == want.dtype, name
        assert_close(f"d{name}", got, want, tol)


# --- CPU (Triton interpreter): tiny sizes, odd lengths ------------------------------------------

CPU_CASES = [  # (dtype, length, optional arguments, reverse, B/C groups)
    pytest.param(torch.float32, 7, OPTIONAL, False, None, id="f32-L7-all"),
    pytest.param(torch.float32, 30, OPTIONAL, True, None, id="f32-L30-all-reverse"),
    pytest.param(torch.float32, 29, (), False, None, id="f32-L29-none"),
    # reverse with a partial last backward segment whose higher tile is all padding (a GPU bug)
    pytest.param(torch.float32, 25, OPTIONAL, True, None, id="f32-L25-all-reverse"),
    pytest.param(torch.float32, 11, OPTIONAL, False, 2, id="f32-L11-groups2"),
    pytest.param(torch.bfloat16, 21, (), True, 2, id="bf16-L21-none-groups2-reverse"),
    pytest.param(torch.bfloat16, 9, OPTIONAL, False, None, id="bf16-L9-all"),
    pytest.param(torch.float16, 1, OPTIONAL, False, None, id="f16-L1-all"),
    pytest.param(torch.float32, 5, ("D",), False, None, id="f32-L5-D"),
    pytest.param(torch.float32, 5, ("z",), True, None, id="f32-L5-z-reverse"),
    pytest.param(torch.float32, 5, ("delta_bias",), False, None, id="f32-L5-bias"),
    pytest.param(torch.float32, 5, ("delta_softplus",), False, None, id="f32-L5-softplus"),
]


@pytest.mark.skipif(ON_GPU, reason="CPU interpreter tests; the gpu tests cover CUDA")
@pytest.mark.parametrize("dtype,length,use,reverse,groups", CPU_CASES)
def test_interpreter_matches_ref(dtype, length, use, reverse, groups):
    inputs = make_inputs(1, 8, 5, length, dtype, groups=groups, seed=length)
    check_against_ref(inputs, use, TOLERANCE[dtype], reverse=reverse)


@pytest.mark.skipif(ON_GPU, reason="CPU interpreter test")
@pytest.mark.parametrize("segments,slots,prefetch", [
    ("1", "1", "0"), ("3", "1", "0"), ("3", "0", "0"), ("3", "0", "1"), ("3", "1", "1")])
def test_interpreter_tile_segments(segments, slots, prefetch, monkeypatch):
    """The tiled forward walked in one segment and in three (summaries folded), both ways, with
    the lean backward as 2 persistent programs looping over the work items or one program per
    item, with and without prefetching (three backward segments in each case)."""
    monkeypatch.setenv("VIDEOMAMBA_TILE_SEGMENTS", segments)
    monkeypatch.setenv("VIDEOMAMBA_LEAN_SLOTS", slots)
    monkeypatch.setenv("VIDEOMAMBA_LEAN_PREFETCH", prefetch)
    for reverse in (False, True):
        inputs = make_inputs(1, 8, 5, 23, torch.float32, seed=11)
        check_against_ref(inputs, OPTIONAL, TOLERANCE[torch.float32], reverse=reverse)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_lean_backward_with_per_lane_bc_atomics(reverse, monkeypatch):
    """``VIDEOMAMBA_LEAN_BC=lanes``: dB/dC added by every lane for its own channel instead of
    summed over the warp's channels first (interpreter on CPU; real size on the GPU), B/C in
    groups so that several channel blocks add into one row."""
    monkeypatch.setenv("VIDEOMAMBA_LEAN_BC", "lanes")
    if ON_GPU:
        inputs = make_inputs(2, 64, 16, 1000, torch.bfloat16, groups=2, seed=6)
        check_against_ref(inputs, OPTIONAL, TOLERANCE[torch.bfloat16], reverse=reverse)
    else:
        inputs = make_inputs(1, 16, 5, 23, torch.float32, groups=2, seed=12)
        check_against_ref(inputs, OPTIONAL, TOLERANCE[torch.float32], reverse=reverse)


@pytest.mark.skipif(ON_GPU, reason="the interpreter's segmentation")
def test_segments_link_forward_and_backward():
    """The forward stores a state at every backward segment boundary: several segments even at
    the interpreter's tiny sizes, each a whole number of the kernels' tiles."""
    from videomamba.ops.selective_scan.triton_common import segment_length
    from videomamba.ops.selective_scan.triton_op import saved_shape

    seg_len = segment_length(1, 8, 23)
    assert seg_len % 4 == 0 and 23 / seg_len > 2
    assert saved_shape(1, 8, 23, 5) == (1, (23 - 1) // seg_len, 8, 8)
    assert saved_shape(2, 8, 1, 16)[1] == 0  # one step: no boundary


@pytest.mark.skipif(ON_GPU, reason="CPU interpreter test")
def test_vector_widths_follow_the_memory_layout():
    """The host check that lets the kernels read B and C in 16-byte vectors answers from the
    tensors' strides, starts and dtypes, and says 1 wherever a vector could straddle."""
    from videomamba.ops.selective_scan.triton_common import as_groups, bc_alignment

    def b_slice(width, start, dtype=torch.bfloat16, length=9):  # x_proj-like (B, L, width)
        return as_groups(torch.empty(2, length, width, dtype=dtype)[..., start:start + 16]
                         .transpose(1, 2))

    assert bc_alignment(b_slice(56, 24), b_slice(56, 40)) == 8  # VideoMamba-S
    assert bc_alignment(b_slice(44, 12), b_slice(44, 28)) == 4  # Tiny: 8-byte starts
    assert bc_alignment(b_slice(56, 24, torch.float32)) == 4  # 16 bytes of float32
    assert bc_alignment(b_slice(56, 24), b_slice(57, 25)) == 1  # one odd tensor: none
    assert bc_alignment(as_groups(torch.empty(2, 16, 9))) == 1  # states not contiguous
    assert bc_alignment(b_slice(58, 26)) == 2  # starts 4 bytes in


def test_compiles_without_graph_breaks():
    """The custom op traces under torch.compile(fullgraph=True), forward and backward."""
    inputs = make_inputs(1, 4, 3, 5, torch.float32)
    core = [inputs[k] for k in ("u", "delta", "A", "B", "C")]

    def f(u, delta, A, B, C, D, z):
        return selective_scan_triton(u, delta, A, B, C, D=D, z=z, delta_softplus=True).sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    args = core + [inputs["D"], inputs["z"]]
    got = torch.autograd.grad(compiled(*args), args)
    want = torch.autograd.grad(f(*args), args)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


# --- GPU: real sizes ----------------------------------------------------------------------------

GPU_LENGTHS = [1, 7, 64, 1000, 3137]


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
@pytest.mark.parametrize("length", GPU_LENGTHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16],
                         ids=["f32", "bf16", "f16"])
@pytest.mark.parametrize("use", [OPTIONAL, ()], ids=["all", "none"])
def test_gpu_matches_ref(length, dtype, use):
    inputs = make_inputs(2, 96, 16, length, dtype, seed=length)
    tol = TOLERANCE[dtype] * (5 if dtype == torch.float32 and length > 64 else 1)
    check_against_ref(inputs, use, tol)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
@pytest.mark.parametrize("opt", OPTIONAL)
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_gpu_each_optional_argument(opt, reverse):
    inputs = make_inputs(2, 64, 16, 1000, torch.bfloat16, groups=None, seed=3)
    check_against_ref(inputs, (opt,), TOLERANCE[torch.bfloat16], reverse=reverse)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
@pytest.mark.parametrize("config", ["4,32,1", "8,32,3", "8,8,1", "4,8,2", "16,8,1", "8,16,2"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_gpu_tile_configs(config, reverse, monkeypatch):
    """The tiled forward (``T,BLOCK_D,segments``) at each configuration the benchmark may pick,
    with the default backward."""
    monkeypatch.setenv("VIDEOMAMBA_TILE_CONFIG", config)
    inputs = make_inputs(2, 64, 16, 1000, torch.bfloat16, seed=4)
    check_against_ref(inputs, OPTIONAL, TOLERANCE[torch.bfloat16], reverse=reverse)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
@pytest.mark.parametrize("config,segments", [
    ("4,8,10,200", None), ("4,8,12,168", None), ("4,8,8,0,1", None), ("4,8,0,0", None),
    ("2,8,14,144", None), ("8,8,0,0", None), ("2,8,0,0", None), ("4,8,0,0", "16,2048"),
    ("4,8,0,0", "16,8192")])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_gpu_lean_backward_configs(config, segments, reverse, monkeypatch):
    """The lean backward (persistent or one program per item, register caps, prefetch, tile
    lengths) and the segmentations at each configuration the benchmark may pick."""
    monkeypatch.setenv("VIDEOMAMBA_LEAN_BWD_CONFIG", config)
    if segments:
        monkeypatch.setenv("VIDEOMAMBA_SEGMENT_CONFIG", segments)
    inputs = make_inputs(2, 64, 16, 1000, torch.bfloat16, seed=5)
    check_against_ref(inputs, OPTIONAL, TOLERANCE[torch.bfloat16], reverse=reverse)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
def test_gpu_compile_inductor():
    inputs = make_inputs(2, 64, 16, 300, torch.bfloat16)
    core = [inputs[k] for k in ("u", "delta", "A", "B", "C")]

    def f(u, delta, A, B, C, D, z, bias):
        y = selective_scan_triton(u, delta, A, B, C, D=D, z=z, delta_bias=bias, delta_softplus=True)
        return (y.float() ** 2).sum()

    args = core + [inputs["D"], inputs["z"], inputs["delta_bias"]]
    compiled = torch.compile(f, fullgraph=True)
    got = torch.autograd.grad(compiled(*args), args)
    want = torch.autograd.grad(f(*args), args)
    for g, w in zip(got, want):
        assert relative_error(g, w) < 1e-5


def test_custom_ops_pass_opcheck_with_transposed_B_C():
    """Fake kernels must give the real kernels' shapes, dtypes and strides, also when B and C
    are transposed views (as the mixer passes them); a mismatch breaks Inductor's backward."""
    from videomamba.ops.selective_scan.triton_op import _scan_bwd_op, _scan_fwd_op

    inputs = make_inputs(1, 4, 3, 6, torch.float32, seed=3)
    B = inputs["B"].detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    C = inputs["C"].detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    assert not B.is_contiguous()
    u, delta, A = inputs["u"], inputs["delta"], inputs["A"]
    D, z, bias = inputs["D"], inputs["z"], inputs["delta_bias"]
    fwd_args = (u, delta, A, B, C, D, z, bias, True, False)
    # the saved states are scratch with unwritten padding, so eager-vs-traced equality of all
    # outputs (test_aot_dispatch_dynamic) is not a property of this op; values are tested above
    checks = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(_scan_fwd_op, fwd_args, test_utils=checks)
    with torch.no_grad():
        y, last, ck = _scan_fwd_op(*fwd_args)
    bwd_args = (torch.randn_like(y), None, u.detach(), delta.detach(), A.detach(), B.detach(),
                C.detach(), D.detach(), z.detach(), bias.detach(), ck, True, False)
    torch.library.opcheck(_scan_bwd_op, bwd_args, test_utils=checks)


