"""Where the host's time goes in eager VideoMamba-S steps (GPU): cProfile over a few bf16
training and inference steps after warm-up; prints the top functions by own time and by
cumulative time (the GPU's busy time per step is in ``model.py --profile``).

    python benchmarks/host_profile.py --steps 5 --out host_profile.txt
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from model import build, inference_step, training_step  # noqa: E402


def profile_steps(step, steps: int) -> str:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    prof.disable()
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(45)
    stats.sort_stats("cumulative").print_stats(70)
    return text.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--out", default="host_profile.txt")
    args = parser.parse_args()
    report = []
    for phase in ("training", "inference"):
        model = build("ours", args.frames, None).cuda().train(phase == "training")
        step = (training_step(model, args.frames) if phase == "training"
                else inference_step(model, args.frames))
        report.append(f"===== {phase}, {args.steps} steps =====\n" + profile_steps(step, args.steps))
        del model, step
        torch.cuda.empty_cache()
    with open(args.out, "w") as fh:
        fh.write("\n".join(report))
    print("\n".join(line for text in report for line in text.splitlines()[:40]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
