"""``videomamba train RECIPE.yaml [--set key=value ...] [--resume auto|DIR|FILE]``.

The same command runs on one process or under ``torchrun --nproc_per_node=N`` (DDP, or FSDP with
``--set train.distributed=fsdp``). The run folder (``train.output_dir``) receives ``recipe.yaml``,
``log.jsonl`` (+ ``tb/`` when TensorBoard is installed), ``last.pt``/``best.pt`` training
checkpoints and, at the end, ``model/`` (``save_pretrained`` format, for predict/embed/eval).
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

log = logging.getLogger("videomamba.train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="YAML recipe (see configs/)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override recipe keys, e.g. --set optim.lr=1e-4 data.num_frames=16")
    parser.add_argument("--resume", default=None, metavar="auto|DIR|FILE",
                        help="continue a run: 'auto' = the run folder's last.pt if there is one")
    parser.add_argument("--output-dir", default=None, help="run folder (overrides train.output_dir)")
    parser.add_argument("--save-every-steps", type=int, default=None,
                        help="also checkpoint every N steps (overrides train.save_every_steps)")
    parser.add_argument("--teacher", default=None, metavar="DIR",
                        help="self-distillation: a trained smaller VideoMamba (model folder or run "
                             "folder) whose token features the student also learns")
    parser.add_argument("--distill-weight", type=float, default=1.0,
                        help="weight of the distillation loss (1.0, as the official engine)")
    parser.add_argument("--unlabelled", default=None, metavar="ANNOTATION",
                        help="with --teacher, our extension: videos (an annotation file in the "
                             "training set's format; labels ignored) that get the distillation "
                             "term only; needs --unlabelled-weight > 0")
    parser.add_argument("--unlabelled-weight", type=float, default=0.0,
                        help="weight of the distillation term on --unlabelled clips (0: off, "
                             "the official behaviour)")
    parser.add_argument("--unlabelled-per-clip", type=int, default=1,
                        help="unlabelled clips drawn per labelled clip (1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")


def with_unlabelled(args: argparse.Namespace, recipe: Any, train_set: Any) -> Any:
    """The training set, each sample with ``--unlabelled-per-clip`` clips of ``--unlabelled`` when
    ``--unlabelled-weight > 0`` (our extension of self-distillation), else as it is."""
    from videomamba.errors import ConfigError

    if args.unlabelled_weight <= 0:
        if args.unlabelled:
            raise ConfigError(f"--unlabelled {args.unlabelled} is unused without "
                              f"--unlabelled-weight > 0")
        return train_set
    if not args.unlabelled:
        raise ConfigError("--unlabelled-weight > 0 needs --unlabelled ANNOTATION (the videos "
                          "that get the distillation term only)")
    from videomamba.data import build_dataset
    from videomamba.tasks.distill import WithUnlabelledClips

    unlabelled = build_dataset({"annotation": args.unlabelled, **recipe.data.dataset}, mode="train")
    return WithUnlabelledClips(train_set, unlabelled, args.unlabelled_per_clip)


def run(args: argparse.Namespace) -> int:
    from videomamba.engine.build import build_model, build_split, build_task_for, class_names_of
    from videomamba.engine.config import load_recipe
    from videomamba.engine.ema import unwrap
    from videomamba.engine.trainer import Trainer
    from videomamba.models.checkpoint import save_pretrained

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"train.output_dir={args.output_dir}")
    if args.save_every_steps is not None:
        overrides.append(f"train.save_every_steps={args.save_every_steps}")
    recipe = load_recipe(args.recipe, overrides)

    import torch

    torch.manual_seed(recipe.train.seed)
    train_set = build_split(recipe, "train")
    val_set = build_split(recipe, "val") if recipe.data.val else None
    classes = class_names_of(train_set)
    task = build_task_for(recipe, classes)
    model = build_model(recipe)
    if args.teacher:
        from videomamba.tasks.distill import setup_distillation

        task = setup_distillation(model, task, args.teacher, args.distill_weight,
                                  args.unlabelled_weight)
        train_set = with_unlabelled(args, recipe, train_set)
    elif args.unlabelled or args.unlabelled_weight:
        from videomamba.errors import ConfigError

        raise ConfigError("--unlabelled/--unlabelled-weight belong to self-distillation: "
                          "add --teacher DIR")
    trainer = Trainer(recipe, task, model, train_set, val_set, progress=not args.no_progress)
    summary = trainer.fit(resume=args.resume)
    if trainer.dist.is_main:
        model_dir = trainer.run_dir / "model"
        weights = trainer.ema.module if trainer.ema is not None else unwrap(trainer.model)
        if args.teacher:  # the student is exported as a plain classifier
            from videomamba.tasks.distill import remove_distill_head

            remove_distill_head(weights)
        if not (recipe.train.distributed == "fsdp" and trainer.dist.enabled):
            if recipe.task == "retrieval":  # the video-text model writes its own format
                weights.save_pretrained(model_dir)
            else:
                save_pretrained(weights, model_dir, class_names=classes)
            summary["model_dir"] = str(model_dir)
        summary["run_dir"] = str(trainer.run_dir)
        if args.json:
            print(json.dumps(summary, default=str))
        else:
            best = summary["best"]
            print(f"done: {summary['global_step']} steps in {summary['seconds']:.0f} s "
                  f"({summary['clips_per_second']:.1f} clips/s), skipped {summary['skipped_steps']}; "
                  f"best {best['metric']}={best['value']} at epoch {best['epoch']}; run: {trainer.run_dir}")
    from videomamba.engine import distributed

    distributed.cleanup()
    return 0
