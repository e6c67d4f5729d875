"""The Triton launch fast path (ops/triton_launch.py): its key is at least as fine as Triton's
specialisation, and on the GPU it gives the results of Triton's own path."""

from __future__ import annotations

import pytest
import torch

from triton_testlib import triton_device

ON_GPU, DEVICE = triton_device()

from videomamba.ops.selective_scan.triton_tile import gate_sum  # noqa: E402
from videomamba.ops.triton_launch import _arg_key, _launches_of, fast_launch_enabled  # noqa: E402


def test_key_separates_what_triton_specialises_on():
    base = torch.zeros(64, dtype=torch.bfloat16)
    assert _arg_key(base) == _arg_key(torch.zeros(8, dtype=torch.bfloat16))
    assert _arg_key(base) != _arg_key(base[1:])  # 2 bytes off a 16-byte boundary
    assert _arg_key(base) != _arg_key(base.float())
    assert _arg_key(1) != _arg_key(2) and _arg_key(16) != _arg_key(17)
    assert _arg_key(32) == _arg_key(48) and _arg_key(3) == _arg_key(5)
    assert _arg_key(2**31) != _arg_key(2**31 - 16)  # 64-bit integers compile differently
    assert _arg_key(True) != _arg_key(1) and _arg_key(None) is None
    assert _arg_key(0.5) == _arg_key(3.0)


def test_interpreter_takes_tritons_path():
    if ON_GPU:
        pytest.skip("the interpreter runs on CPU only")
    assert not fast_launch_enabled()


def gate_sum_inputs(length, offset, gen):
    """(B, D, L) views of (B, L, D) memory, ``offset`` elements into their storage."""
    def one():
        flat = torch.randn(2 * length * 64 + offset, generator=gen).to(DEVICE, torch.bfloat16)
        return flat[offset:].view(2, length, 64).transpose(1, 2)

    return one(), one(), one()


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
def test_gpu_fast_path_matches_tritons_path_across_specialisations(monkeypatch):
    """gate_sum through both paths, its tensors 16-byte aligned and not (a specialisation
    Triton compiles separately): the same bits, and one compiled kernel kept per key."""
    from videomamba.ops.selective_scan.triton_tile import _gate_sum_kernel

    gen = torch.Generator().manual_seed(0)
    for length, offset in ((37, 0), (37, 1), (64, 0), (37, 0)):
        y_f, y_b, z = gate_sum_inputs(length, offset, gen)
        results = []
        for fast in ("0", "1", "1"):  # the second fast call is a hit
            monkeypatch.setenv("VIDEOMAMBA_FAST_LAUNCH", fast)
            results.append(gate_sum(y_f.clone(), y_b, z))
        assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])
    keys = list(_launches_of(_gate_sum_kernel).compiled)
    assert len({k[2] for k in keys}) == len(keys) >= 2


def test_no_launch_hooks_by_default():
    """Triton's default launch hooks (empty chains in 3.6) leave the fast path open; an
    installed hook (a profiler's) closes it."""
    from triton import knobs

    from videomamba.ops.triton_launch import _launch_hooks_set

    assert not _launch_hooks_set()
    chain = knobs.runtime.launch_enter_hook
    if not hasattr(chain, "add"):
        pytest.skip("this Triton keeps launch hooks as plain attributes")
    hook = lambda metadata: None  # noqa: E731
    chain.add(hook)
    try:
        assert _launch_hooks_set()
    finally:
        chain.remove(hook)


def test_host_grid_arithmetic_matches_tritons():
    """cdiv / next_power_of_2 replace triton's constexpr_function versions in host code."""
    import triton

    from videomamba.ops.selective_scan.triton_common import cdiv, next_power_of_2

    for n in range(0, 5000):
        assert next_power_of_2(n) == triton.next_power_of_2(n), n
        for d in (1, 2, 3, 8, 16, 31, 64, 128, 2048):
            assert cdiv(n, d) == triton.cdiv(n, d), (n, d)
    assert next_power_of_2(2**40 + 1) == triton.next_power_of_2(2**40 + 1)
