"""The host's Python and dispatch cost of one mixer call on the Triton path, measured on CPU: the
mixer op's forward (inference, ``bimamba_mixer_triton`` without gradients) and forward+backward
(training) at tiny widths (d_model 16, 5 positions) so that the CPU's arithmetic is negligible,
with every Triton launch replaced by a no-op. What it measures is the part of an eager GPU step's
host time that our own code adds around the kernels (configuration, layouts, allocations, op
dispatch), without a GPU; launches themselves are in ``host_breakdown.py`` (GPU).

    python benchmarks/host_python.py --out host_python.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def without_triton_launches():
    """Replace ``JITFunction.run`` by a no-op (nothing the host does depends on the kernels'
    results); returns the function that restores it."""
    from triton.runtime import jit as triton_jit

    saved = triton_jit.JITFunction.run
    triton_jit.JITFunction.run = lambda self, *args, grid, warmup, **kwargs: None

    def restore():
        triton_jit.JITFunction.run = saved

    return restore


def mixer_calls(d_model: int = 16, channels: int = 32, d_state: int = 16, dt_rank: int = 4,
                length: int = 5) -> dict:
    """Inference and training calls of the mixer op on CPU tensors."""
    from videomamba.ops.selective_scan.triton_bidir import BranchWeights, bimamba_mixer_triton

    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen).requires_grad_()

    def branch():
        return BranchWeights(randn(channels, 1, 4), randn(channels),
                             randn(dt_rank + 2 * d_state, channels), randn(channels, dt_rank),
                             randn(channels), randn(channels, d_state), randn(channels))

    fw, bw = branch(), branch()
    w_in = randn(2 * channels, d_model)
    hidden = torch.randn(1, length, d_model, generator=gen).to(torch.bfloat16)

    def inference():
        with torch.no_grad():
            bimamba_mixer_triton(hidden, w_in, fw, bw, d_state, dt_rank)

    def training():
        bimamba_mixer_triton(hidden, w_in, fw, bw, d_state, dt_rank).float().sum().backward()

    return {"inference": inference, "training": training}


def per_call_us(fn, calls: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean wall time of ``calls`` calls, in microseconds."""
    for _ in range(50):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def python_calls(fn, calls: int = 50) -> float:
    """Python function calls per call of ``fn`` (cProfile's count: unlike the wall time, the
    same on every run)."""
    import cProfile
    import pstats

    fn()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        fn()
    profile.disable()
    return pstats.Stats(profile).total_calls / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="host_python.json")
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    without_triton_launches()
    torch.set_num_threads(1)
    results = {}
    for phase, fn in mixer_calls().items():
        results[phase] = {
            "us_per_call": per_call_us(fn, args.calls if phase == "inference" else args.calls // 4),
            "python_calls_per_call": python_calls(fn)}
    print("| mixer call, launches stubbed | us per call | Python calls per call |\n| --- | --- | --- |")
    for phase, r in results.items():
        print(f"| {phase} | {r['us_per_call']:.1f} | {r['python_calls_per_call']:.0f} |")
    with open(args.out, "w") as fh:
        json.dump({"torch": torch.__version__, "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
