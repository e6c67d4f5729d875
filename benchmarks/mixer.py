"""One bidirectional mixer of VideoMamba-S at the model's shapes (GPU): the time of its forward
and of its forward+backward (bf16 autocast, the Triton path), and a small fixed workload for a
profiler (``--profile-steps``: run that many forward+backward steps and nothing else).

    python benchmarks/mixer.py --lengths 1569,6273 --out mixer.json
    ncu -k regex:_tile python benchmarks/mixer.py --profile-steps 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from model import cuda_median_ms  # benchmarks/model.py, beside this file

from videomamba.models.mixer import BiMambaMixer


def mixer_and_input(length: int, batch: int, dim: int) -> tuple[BiMambaMixer, torch.Tensor]:
    """The mixer of a VideoMamba-S block (``dim`` 384) and a random ``(batch, length, dim)``
    input that requires grad."""
    torch.manual_seed(0)
    mixer = BiMambaMixer(dim, scan_backend="triton").cuda()
    x = torch.randn(batch, length, dim, device="cuda", requires_grad=True)
    return mixer, x


def forward_backward(mixer: BiMambaMixer, x: torch.Tensor) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = mixer(x)
    y.float().square().mean().backward()


def measure(length: int, batch: int, dim: int) -> dict:
    mixer, x = mixer_and_input(length, batch, dim)

    def forward():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            mixer(x)

    torch.cuda.reset_peak_memory_stats()
    row = {"length": length, "batch": batch, "dim": dim,
           "forward_ms": cuda_median_ms(forward, warmup=3, iters=20),
           "forward_backward_ms": cuda_median_ms(lambda: forward_backward(mixer, x), warmup=3,
                                                  iters=20)}
    row["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1569,6273", help="tokens (8 frames: 1569)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--out", default="mixer.json")
    parser.add_argument("--profile-steps", type=int, default=0,
                        help="only run this many forward+backward steps at the first length")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    lengths = [int(v) for v in args.lengths.split(",")]
    if args.profile_steps:
        mixer, x = mixer_and_input(lengths[0], args.batch, args.dim)
        for _ in range(args.profile_steps):
            forward_backward(mixer, x)
        torch.cuda.synchronize()
        return 0
    rows = [measure(length, args.batch, args.dim) for length in lengths]
    print("| L | forward ms | forward+backward ms | peak MiB |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['length']} | {r['forward_ms']:.3f} | {r['forward_backward_ms']:.3f} "
              f"| {r['peak_mib']:.0f} |")
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(0), "rows": rows,
                   "env": {k: v for k, v in os.environ.items() if k.startswith("VIDEOMAMBA_")}},
                  f, indent=1)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
