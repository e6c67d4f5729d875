"""The host's time per eager VideoMamba-S step (GPU): the whole model on a clip so small (one
frame of 32x32 px, batch 1: 5 tokens) that the GPU finishes each kernel at once, so the wall
time per step is what Python, PyTorch and the kernel launches cost on the host. Compare it with
the GPU's busy time per step at the real size (``model.py --profile``): a step whose host time
is the larger is bound by the host. Measured with the custom ops called directly
(``VIDEOMAMBA_EAGER_OPS=1``, the default) and through ``torch.library`` (``0``), alternating.

    python benchmarks/host_overhead.py --out host_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from model import inference_step, training_step  # benchmarks/model.py, beside this file

from videomamba import create_model


def per_step_ms(step, steps: int = 20, repeats: int = 3) -> float:
    """Median over ``repeats`` of the wall time of ``steps`` back-to-back steps (one sync)."""
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3 / steps)
    return statistics.median(times)


def steps(model: torch.nn.Module) -> dict:
    """Inference, training (``model.py``'s steps) and forward+backward alone, on the tiny clip."""
    clip = torch.randn(1, 3, 1, 32, 32, device="cuda")

    def forward_backward():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(clip).float().sum()
        loss.backward()
        model.zero_grad(set_to_none=True)

    return {"inference": inference_step(model, 1, batch=1, img=32),
            "training": training_step(model, 1, batch=1, img=32),
            "forward_backward": forward_backward}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="host_overhead.json")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    model = create_model("videomamba_small", num_frames=1, img_size=32, num_classes=400,
                         scan_backend="triton").cuda()
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "model": "videomamba_small, 1 frame, 32 px, batch 1 (5 tokens)", "results": []}
    for round_ in range(args.rounds):
        for eager in ("1", "0"):
            os.environ["VIDEOMAMBA_EAGER_OPS"] = eager
            for phase, step in steps(model.train()).items():
                if phase == "inference":
                    model.eval()
                ms = per_step_ms(step)
                model.train()
                row = {"round": round_, "eager_ops": eager == "1", "phase": phase, "host_ms": ms}
                report["results"].append(row)
                print(f"round {round_} eager_ops={eager} {phase:17s} {ms:8.2f} ms per step",
                      flush=True)
                with open(args.out, "w") as fh:  # as we go: a timeout keeps what was measured
                    json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
