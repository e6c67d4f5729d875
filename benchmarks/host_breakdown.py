"""Where the host's time goes in eager VideoMamba-S steps (GPU). On a clip so small (one frame
of 32x32 px, batch 1) that the GPU waits on the host: the time per step with the Triton launch
fast path (``ops/triton_launch.py``) and through Triton's own launch path
(``VIDEOMAMBA_FAST_LAUNCH=0``), alternating in one process, and with every launch a no-op (what
launching costs the host at all); the same comparison on real eager steps (224 px, batch 8);
then torch.profiler's CPU ops of one tiny training step and cProfile's top functions.

    python benchmarks/host_breakdown.py --out host_breakdown.txt
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from host_overhead import per_step_ms, steps  # noqa: E402
from host_python import without_triton_launches  # noqa: E402
from host_profile import profile_steps  # noqa: E402

from videomamba import create_model  # noqa: E402


def alternating(step, label: str, rounds: int = 4, steps: int = 20) -> list[str]:
    """Wall time per step with the launch fast path on and off (``VIDEOMAMBA_FAST_LAUNCH``, read
    at every launch), alternating within this process ``rounds`` times: medians and each
    round."""
    times: dict[str, list[float]] = {"1": [], "0": []}
    for _ in range(rounds):
        for fast in ("1", "0"):
            os.environ["VIDEOMAMBA_FAST_LAUNCH"] = fast
            times[fast].append(per_step_ms(step, steps=steps, repeats=1))
    os.environ.pop("VIDEOMAMBA_FAST_LAUNCH")
    line = (f"{label:34s} fast path {statistics.median(times['1']):8.2f} ms, Triton's path "
            f"{statistics.median(times['0']):8.2f} ms per step (rounds: "
            f"{', '.join(f'{a:.2f}/{b:.2f}' for a, b in zip(times['1'], times['0']))})")
    print(line, flush=True)
    return [line]


def tiny_clip_times(model) -> list[str]:
    lines = []
    for phase, step in steps(model.train()).items():
        if phase == "inference":
            model.eval()
        lines += alternating(step, f"1 frame 32 px, batch 1, {phase}")
        model.train()
    return lines


def real_size_times(frames: int) -> list[str]:
    """Eager bf16 steps of VideoMamba-S at 224 px, batch 8 (``model.py``'s), fast path on/off."""
    from model import build, inference_step, training_step

    model = build("ours", frames, None).cuda()
    lines = alternating(training_step(model.train(), frames), f"{frames} frames, training",
                        steps=5)
    lines += alternating(inference_step(model.eval(), frames), f"{frames} frames, inference")
    del model
    torch.cuda.empty_cache()
    return lines


def no_launch_times(model) -> list[str]:
    """Host time per step with every Triton launch a no-op."""
    restore = without_triton_launches()
    lines = []
    try:
        for phase, step in steps(model.train()).items():
            if phase == "inference":
                model.eval()
            lines.append(f"1 frame 32 px, batch 1, {phase}: no Triton launches "
                         f"{per_step_ms(step):8.2f} ms per step")
            print(lines[-1], flush=True)
            model.train()
    finally:
        restore()
    return lines


def torch_profile(step) -> str:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=45)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="host_breakdown.txt")
    parser.add_argument("--frames", type=lambda text: [int(f) for f in text.split(",") if f],
                        default=[8], help="real-size (224 px, batch 8) eager steps to time")
    args = parser.parse_args()
    model = create_model("videomamba_small", num_frames=1, img_size=32, num_classes=400,
                         scan_backend="triton").cuda()
    report = tiny_clip_times(model) + no_launch_times(model)
    for frames in args.frames:
        report += real_size_times(frames)
    training = steps(model.train())["training"]
    report += ["", "===== torch.profiler, one training step (CPU ops) =====",
               torch_profile(training)]
    report += ["", "===== cProfile, 5 training steps =====", profile_steps(training, 5)]
    with open(args.out, "w") as fh:
        fh.write("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
