"""``videomamba flops NAME``: analytic GFLOPs per clip (selective scan included) and parameters."""

from __future__ import annotations

import argparse
import json

EPILOG = (
    "Convention: 1 multiply-add = 1 FLOP, as fvcore and the official VideoMamba tables. "
    "Unlike fvcore/thop, the count includes the selective scan, conv1d, x_proj and dt_proj, "
    "which run inside a fused kernel in the official code; 'fvcore-visible' is the subtotal "
    "fvcore reports on the official code (the number its tables print)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("name", help="model name, e.g. videomamba_tiny (see list_models())")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per clip (default: the model's, 8)")
    parser.add_argument("--img-size", type=int, default=None,
                        help="input side in pixels (default: the model's, 224)")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classes of the head (default: the model's)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from videomamba.models.flops import count_flops

    result = count_flops(args.name, num_frames=args.frames, img_size=args.img_size,
                         num_classes=args.num_classes)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['model']}: {result['num_frames']} frame(s) x {result['img_size']}px, "
          f"{result['tokens']} tokens")
    print(f"{'part':<14}{'GFLOPs':>10}{'share':>8}")
    for part, flops in result["breakdown"].items():
        print(f"{part:<14}{flops / 1e9:>10.3f}{100 * flops / result['flops']:>7.1f}%")
    print(f"{'total':<14}{result['gflops']:>10.2f}")
    print(f"fvcore-visible subtotal: {result['fvcore_visible_gflops']:.2f} GFLOPs")
    print(f"parameters: {result['params'] / 1e6:.2f} M")
    print(f"({result['convention']})")
    return 0
