"""Time one VideoMamba clip forward on CPU with each selective-scan backend.

For each backend (set through the dispatcher's process-wide default), runs a warm-up forward and
then ``--repeats`` timed forwards of one clip (batch 1, float32, ``torch.inference_mode``), and
times every scan call by wrapping the backend's function, to report the share of the forward spent
in the scan. Prints a table and writes JSON with ``--out``.

    python benchmarks/cpu_forward.py --model videomamba_tiny --frames 8 --out results.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from typing import Callable, Iterator

import torch

import videomamba
from videomamba.ops import selective_scan as scan_dispatch
from videomamba.utils.io import atomic_write_json


@contextlib.contextmanager
def timed_backend(name: str, seconds: list[float]) -> Iterator[None]:
    """Append the wall time of every call of backend ``name`` to ``seconds`` while active."""
    module_name, attr, _ = scan_dispatch.BACKENDS[name]
    module = importlib.import_module(module_name)
    original: Callable = getattr(module, attr)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        seconds.append(time.perf_counter() - start)
        return out

    setattr(module, attr, timed)
    try:
        yield
    finally:
        setattr(module, attr, original)


def time_backend(model: torch.nn.Module, clip: torch.Tensor, backend: str, repeats: int,
                 warmup: int) -> dict:
    """Median forward time and scan time over ``repeats`` runs after ``warmup`` runs."""
    scan_dispatch.set_default_backend(backend)
    totals, scans, calls = [], [], 0
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(clip)
            for _ in range(repeats):
                scan_seconds: list[float] = []
                with timed_backend(backend, scan_seconds):
                    start = time.perf_counter()
                    model(clip)
                    totals.append(time.perf_counter() - start)
                scans.append(sum(scan_seconds))
                calls = len(scan_seconds)
    finally:
        scan_dispatch.set_default_backend(None)
    forward_s, scan_s = statistics.median(totals), statistics.median(scans)
    return {"backend": backend, "forward_s": forward_s, "forward_all_s": totals,
            "scan_s": scan_s, "scan_share": scan_s / forward_s, "scan_calls": calls,
            "scan_ms_per_call": 1e3 * scan_s / max(calls, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="videomamba_tiny")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--backends", nargs="+", default=["torch", "ref"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = videomamba.create_model(args.model, num_frames=args.frames, img_size=args.img_size)
    model.eval()
    clip = torch.randn(1, 3, args.frames, args.img_size, args.img_size)
    results = [time_backend(model, clip, b, args.repeats, args.warmup) for b in args.backends]

    print(f"{args.model} {args.frames}x{args.img_size}, batch 1, float32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'backend':<10} {'forward s':>10} {'scan s':>8} {'scan %':>7} {'ms/scan':>8}")
    for r in results:
        print(f"{r['backend']:<10} {r['forward_s']:>10.3f} {r['scan_s']:>8.3f} "
              f"{100 * r['scan_share']:>6.1f}% {r['scan_ms_per_call']:>8.2f}")
    by_name = {r["backend"]: r for r in results}
    speedups = {}
    if "torch" in by_name and "ref" in by_name:
        speedups = {"scan": by_name["ref"]["scan_s"] / by_name["torch"]["scan_s"],
                    "forward": by_name["ref"]["forward_s"] / by_name["torch"]["forward_s"]}
        print(f"torch vs ref: scan {speedups['scan']:.1f}x faster, "
              f"forward {speedups['forward']:.1f}x faster")
    if args.out:
        atomic_write_json(args.out, {
            "model": args.model, "frames": args.frames, "img_size": args.img_size,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "repeats": args.repeats, "warmup": args.warmup,
            "results": results, "torch_vs_ref_speedup": speedups})


if __name__ == "__main__":
    main()
