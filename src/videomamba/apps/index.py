"""`videomamba index DIR --model M --out INDEX`: embed overlapping windows of every video in DIR.

Incremental: only new or changed files (size + modification time, or ``--hash``) are embedded;
removed files are dropped. A kill at any moment leaves a consistent index; run it again to go on.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="folder of videos (searched recursively)")
    parser.add_argument("--model", required=True,
                        help="video-text model directory (written by training a retrieval recipe)")
    parser.add_argument("--out", required=True, help="index directory (created or updated)")
    parser.add_argument("--window", type=float, default=2.0, help="window length in seconds")
    parser.add_argument("--stride", type=float, default=1.0, help="seconds between window starts")
    parser.add_argument("--batch-size", type=int, default=16, help="windows embedded at once")
    parser.add_argument("--hash", action="store_true",
                        help="detect changed files by SHA-256 instead of size + mtime")
    parser.add_argument("--rebuild", action="store_true", help="re-index every file")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from videomamba.apps.search_index import VideoTextEmbedder, build_index

    embedder = VideoTextEmbedder(args.model, args.device)
    progress = None if args.json else print
    report = build_index(args.folder, args.out, embedder, window=args.window, stride=args.stride,
                         batch_size=args.batch_size, use_hash=args.hash, rebuild=args.rebuild,
                         progress=progress)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        rate = report.video_seconds / report.seconds if report.seconds > 0 else 0.0
        print(f"{args.out}: {len(report.added)} added, {len(report.updated)} updated, "
              f"{len(report.removed)} removed, {len(report.unchanged)} unchanged, "
              f"{len(report.failed)} failed; {report.windows} windows, "
              f"{report.video_seconds:.1f} video-seconds in {report.seconds:.1f}s ({rate:.2f}x)")
        for rel, err in report.failed.items():
            print(f"  failed {rel}: {err}")
    return 1 if report.failed else 0
