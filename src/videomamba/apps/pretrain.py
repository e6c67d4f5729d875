"""``videomamba pretrain``: masked (unmasked-teacher) pretraining, and its export to a classifier.

    videomamba pretrain --config configs/pretrain/videomamba_middle_k400_mask.yaml \\
        --set pretrain.teacher_path=/weights/ViT-B-16.pt data.train=/k400/train.csv
    videomamba pretrain --export-classifier runs/pt/model --num-classes 400 --output runs/pt_cls

The recipe is a training recipe (``model``, ``data``, ``optim``, ``schedule``, ``train``) plus a
``pretrain:`` section (:class:`videomamba.tasks.masked.MaskedPretrainConfig`: mask, teacher,
loss). The student is written to ``<output_dir>/model`` (our format, with the ``clip_decoder``
kept as in the official checkpoints). ``--export-classifier`` turns it, or an official
``*_mask_pt_*.pth``, into a classifier with a fresh head: the ``model.pretrained`` of fine-tuning.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("videomamba.pretrain")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="pretraining recipe (YAML), e.g. configs/pretrain/...")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recipe overrides, e.g. pretrain.mask_ratio=0.8 optim.lr=1.5e-4")
    parser.add_argument("--output", help="run folder (default: the recipe's train.output_dir)")
    parser.add_argument("--resume", help="'auto' (the run folder's last.pt), a run folder or a .pt")
    parser.add_argument("--export-classifier", metavar="SOURCE",
                        help="instead of training: turn a pretrained student (our model folder "
                             "or an official *_mask_pt_*.pth) into a classifier in --output")
    parser.add_argument("--num-classes", type=int, help="classes of the exported classifier")
    parser.add_argument("--model", help="model name for an official .pth (e.g. videomamba_middle)")
    parser.add_argument("--num-frames", type=int, help="frames of the exported classifier")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from videomamba.errors import ConfigError

    if args.export_classifier:
        if not args.num_classes or not args.output:
            raise ConfigError("--export-classifier needs --num-classes and --output")
        summary = export_classifier(args.export_classifier, args.num_classes, args.output,
                                    args.model, args.num_frames)
    else:
        if not args.config:
            raise ConfigError("give --config RECIPE (see configs/pretrain/) or --export-classifier")
        recipe, pretrain = load_pretrain_recipe(args.config, args.set)
        if args.output:
            recipe.train.output_dir = args.output
        summary = run_pretraining(recipe, pretrain, resume=args.resume,
                                  progress=not args.no_progress)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0


# ----------------------------------------------------------------------------------- the recipe
def load_pretrain_recipe(path: str | Path | None, overrides: list[str] | None = None,
                         data: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """``(Recipe, MaskedPretrainConfig)`` from a recipe file (or ``data``) and overrides."""
    from videomamba.engine.config import apply_overrides, load_recipe_dict, recipe_from_dict
    from videomamba.errors import ConfigError
    from videomamba.tasks.masked import MaskedPretrainConfig

    source = str(path) if path else "recipe"
    raw = dict(data) if data is not None else load_recipe_dict(path) if path else {}
    raw = apply_overrides(raw, list(overrides or []))
    section = raw.pop("pretrain", None) or {}
    known = {f.name for f in dataclasses.fields(MaskedPretrainConfig)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"{source}: pretrain: unknown key(s) {', '.join(unknown)}; valid keys: "
                          f"{', '.join(sorted(known))}")
    pretrain = MaskedPretrainConfig(**section)
    raw["task"] = raw.get("task", "masked_pretrain")
    if raw["task"] != "masked_pretrain":
        raise ConfigError(f"{source}: task is {raw['task']!r}; `videomamba pretrain` runs "
                          f"task: masked_pretrain (use `videomamba train` for the others)")
    return recipe_from_dict(raw, source), pretrain


def without_label_mixing(recipe: Any) -> Any:
    """Pretraining has no labels to mix: mixup, cutmix and label smoothing off."""
    mix = recipe.mixup
    if mix.mixup_alpha or mix.cutmix_alpha or mix.label_smoothing:
        log.info("masked pretraining: mixup, cutmix and label smoothing are turned off")
    recipe.mixup = dataclasses.replace(mix, mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.0)
    return recipe


# --------------------------------------------------------------------------------- the training
def build_student(recipe: Any, teacher_dim: int) -> Any:
    """The student: the recipe's model without a head, with the alignment decoder."""
    from videomamba.models import create_model
    from videomamba.tasks.masked import attach_alignment_decoder

    m = recipe.model
    options = {"drop_path_rate": m.drop_path_rate, **m.kwargs}
    if m.grad_checkpointing:
        options.update(use_checkpoint=True, checkpoint_num=options.get("checkpoint_num", 10**6))
    model = create_model(m.name, num_classes=0, num_frames=recipe.data.num_frames,
                         img_size=recipe.data.crop_size, pretrained=m.pretrained, **options)
    model.model_name = m.name
    return attach_alignment_decoder(model, teacher_dim)


def run_pretraining(recipe: Any, pretrain: Any, resume: str | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Train the student on ``recipe``'s data against the teacher of ``pretrain``; write it to
    ``<output_dir>/model``; returns the engine's summary plus where the model went."""
    from videomamba.engine.build import build_split
    from videomamba.engine.ema import unwrap
    from videomamba.engine.trainer import Trainer
    from videomamba.models import save_pretrained
    from videomamba.models.teachers import build_teacher
    from videomamba.tasks.masked import MaskedAlignmentTask

    recipe = without_label_mixing(recipe)
    teacher = build_teacher(pretrain.teacher_kind, pretrain.teacher_path, pretrain.teacher_name,
                            pretrain.teacher_quick_gelu, recipe.data.crop_size)
    model = build_student(recipe, teacher.feature_dim)
    train_set = build_split(recipe, "train")
    val_set = build_split(recipe, "val") if recipe.data.val else None
    task = MaskedAlignmentTask(teacher, pretrain, seed=recipe.train.seed)
    trainer = Trainer(recipe, task, model, train_set, val_set, progress=progress)
    summary = trainer.fit(resume=resume)
    fsdp = recipe.train.distributed == "fsdp" and trainer.dist.enabled
    if trainer.dist.is_main and not fsdp:  # FSDP: the full weights are in last.pt
        weights = trainer.ema.module if trainer.ema is not None else unwrap(trainer.model)
        summary["model_dir"] = str(save_pretrained(weights, Path(trainer.run_dir) / "model"))
    summary["run_dir"] = str(trainer.run_dir)
    from videomamba.engine import distributed

    distributed.cleanup()
    return summary


def export_classifier(source: str | Path, num_classes: int, output: str | Path,
                      model_name: str | None = None, num_frames: int | None = None
                      ) -> dict[str, Any]:
    """Write the classifier made from a pretrained student to ``output`` (our format)."""
    from videomamba.models import save_pretrained
    from videomamba.tasks.masked import classifier_from_pretrained

    overrides = {"num_frames": num_frames} if num_frames else {}
    model = classifier_from_pretrained(source, num_classes, model_name, **overrides)
    save_pretrained(model, output)
    return {"source": str(source), "model_dir": str(output), "num_classes": num_classes,
            "embed_dim": model.config.embed_dim, "depth": model.config.depth}


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"{key}: {value}" for key, value in summary.items()
             if not isinstance(value, dict) or key == "best"]
    return "\n".join(lines)
