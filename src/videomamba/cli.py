"""The `videomamba` command line.

Each sub-command lives in its own module under ``videomamba.apps`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy libraries inside
``run`` so that ``videomamba --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from videomamba.errors import VideoMambaError

# name -> (module under videomamba.apps, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("convert", "convert an official VideoMamba .pth checkpoint to our format"),
    "flops": ("flops", "count FLOPs (scan included) and parameters of a model"),
    "synth": ("synth", "write a synthetic video dataset (motion, longrange, captions)"),
    "demo": ("demo", "train VideoMamba vs an order-blind baseline on synthetic videos (CPU)"),
    "train": ("train", "train from a YAML recipe (torchrun for several GPUs); --resume continues"),
    "eval": ("eval", "multi-view test of a model: top-1/top-5, per-class, confusion matrix"),
    "predict": ("predict", "top-k labels of videos with a trained or official model"),
    "embed": ("embed", "write video features (.npy or .safetensors) for downstream use"),
    "index": ("index", "index a folder of videos for text search (incremental, kill-safe)"),
    "search": ("search", "search an index with a sentence; prints ranked segments"),
    "serve": ("serve", "serve a local search page over an index (127.0.0.1 by default)"),
    "pretrain": ("pretrain", "masked pretraining with a frozen teacher; export to a classifier"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    from videomamba import __version__

    parser = argparse.ArgumentParser(
        prog="videomamba",
        description="VideoMamba: video understanding with bidirectional state-space models.",
    )
    parser.add_argument("--version", action="version", version=f"videomamba {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"videomamba.apps.{module_name}")
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except (VideoMambaError, FileNotFoundError) as err:
        # User-facing failures (bad paths, bad checkpoints, bad configs) end with one clear line.
        if args.verbose:
            raise
        print(f"videomamba {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
