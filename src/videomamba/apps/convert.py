"""``videomamba convert OFFICIAL.pth OUT_DIR --model NAME``: an official checkpoint to our format.

The output directory holds ``model.safetensors`` and ``config.json`` (see
``videomamba.models.checkpoint.save_pretrained``) and loads with ``from_pretrained(OUT_DIR)``.
Class count, frames and image size default to what the checkpoint's own tensors say, so the
conversion keeps its head and embeddings; give them to resize or drop the head instead.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="official .pth (or .safetensors) checkpoint")
    parser.add_argument("out_dir", help="directory to write model.safetensors + config.json into")
    parser.add_argument("--model", required=True,
                        help="videomamba_{tiny,small,middle} (video) or "
                             "videomamba_image_{tiny,small,middle,base}")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classes of the converted head (default: the checkpoint's; another "
                             "count drops its head)")
    parser.add_argument("--num-frames", type=int, default=None,
                        help="frames per clip (default: the checkpoint's; else its temporal "
                             "embedding is resized)")
    parser.add_argument("--img-size", type=int, default=None,
                        help="input size in pixels (default: the checkpoint's; else its position "
                             "embedding is resized)")
    parser.add_argument("--class-names", default=None,
                        help="text file with one class name per line, stored in config.json")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from videomamba.errors import CheckpointError
    from videomamba.models import create_model, save_pretrained
    from videomamba.models.checkpoint import checkpoint_sizes, load_state_dict_into, read_state_dict
    from videomamba.models.config import preset

    config = preset(args.model)
    state = read_state_dict(args.checkpoint)
    sizes = checkpoint_sizes(state, config.patch_size, config.tubelet_size)
    if not config.video:
        sizes.pop("num_frames", None)
    chosen = {
        "num_classes": args.num_classes, "num_frames": args.num_frames, "img_size": args.img_size,
    }
    options = {k: v if v is not None else sizes.get(k) for k, v in chosen.items()}
    options = {k: v for k, v in options.items() if v is not None}
    if not config.video:
        options.pop("num_frames", None)
    class_names = _read_class_names(args.class_names) if args.class_names else None
    model = create_model(args.model, **options)
    report = load_state_dict_into(model, state, str(args.checkpoint))
    if class_names is not None and len(class_names) != model.num_classes:
        raise CheckpointError(f"{args.class_names}: {len(class_names)} class names for a "
                              f"{model.num_classes}-class head; give one name per class")
    out = save_pretrained(model, Path(args.out_dir), class_names=class_names)
    summary = {
        "model": args.model,
        "out_dir": str(out),
        "parameters": sum(p.numel() for p in model.parameters()),
        "num_classes": model.num_classes,
        "num_frames": model.config.num_frames if model.config.video else None,
        "img_size": model.config.img_size,
        "notes": report.notes,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        frames = f", {summary['num_frames']} frames" if summary["num_frames"] else ""
        print(f"converted {args.checkpoint} -> {out} ({args.model}, "
              f"{summary['parameters'] / 1e6:.2f} M parameters, {model.num_classes} classes"
              f"{frames}, {summary['img_size']} px)")  # what was adapted is logged above
    return 0


def _read_class_names(path: str) -> list[str]:
    from pathlib import Path

    from videomamba.errors import CheckpointError

    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read class names ({err})") from err
    return [line.strip() for line in lines if line.strip()]
