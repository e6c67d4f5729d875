"""``videomamba synth motion|longrange|captions``: write a synthetic video dataset to disk."""

from __future__ import annotations

import argparse
import json
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("motion", "longrange", "captions"),
                        help="motion: 10 order-sensitive classes; longrange: 9 classes decided by "
                             "two distant events; captions: clips with sentences + a long video")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--num", type=int, default=200,
                        help="training clips; val and test get a quarter of it each (default 200)")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per clip (default 16; longrange 128)")
    parser.add_argument("--size", type=int, default=32, help="frame side in pixels, even (32)")
    parser.add_argument("--seed", type=int, default=0, help="the dataset is a function of it (0)")
    parser.add_argument("--fps", type=float, default=8.0, help="frames per second (8)")
    parser.add_argument("--val-fraction", type=float, default=0.25,
                        help="size of val and of test relative to --num (0.25)")
    parser.add_argument("--segments", type=int, default=8,
                        help="captions: clips in long/long_video.mp4 (8)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from videomamba.data.synthetic import SynthConfig, generate

    frames = args.frames or (128 if args.kind == "longrange" else 16)
    cfg = SynthConfig(kind=args.kind, out=args.out, num=args.num, frames=frames, size=args.size,
                      seed=args.seed, fps=args.fps, val_fraction=args.val_fraction,
                      segments=args.segments)
    start = time.perf_counter()
    with tqdm(total=None, unit="clip", disable=args.json, leave=False) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        meta = generate(cfg, progress)
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({**meta, "out": args.out, "seconds": round(seconds, 2)}))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in meta["splits"].items())
        print(f"wrote {args.kind} to {args.out}: {counts} clips of {frames}x{args.size}x{args.size} "
              f"at {args.fps:g} fps, {len(meta['classes'])} classes, in {seconds:.1f} s")
        print(f"use: annotation {args.out}/train.{'json' if args.kind == 'captions' else 'csv'}, "
              f"prefix {args.out}")
    return 0
