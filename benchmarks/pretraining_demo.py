"""Masked pretraining and self-distillation with 10 % of the labels, on the synthetic motion set.

4000 training videos of ``videomamba synth motion`` (8 frames, 32 px), of which the first 10 %
(400, 40 per class) have labels; 300 val and 300 test clips. For each seed:

1. ``small`` (embed 64, depth 2): trained on the labelled 10 % for ``--teacher-epochs``; the
   teacher of both methods;
2. ``scratch``: the student (embed 96, depth 4) trained from scratch on the 10 % (the baseline);
3. ``masked``: the student pretrained on *all* 4000 training videos (no labels; 2 epochs = 500
   steps) by aligning its kept tokens (random mask, ratio 0.5) with ``small``'s features, then
   fine-tuned on the 10 %;
4. ``distill``: the student trained on the 10 % with ``small`` as distillation teacher (the
   official engine: feature loss on the labelled batch only, ``--distill-weight`` 1);
5. ``distill_unlabelled`` (our extension, opt-in): as ``distill``, plus
   ``--unlabelled-per-clip`` clips of the 3600 unlabelled ones per labelled clip, which get only
   the feature loss (weight ``--unlabelled-weight``).

The students use the same seed, recipe and number of labelled steps (``--epochs`` over the
400 clips, batch 16). Recipe: the motion recipe of ``videomamba demo`` (one token per 32-px
frame, 8 frames sampled ``segment``, AdamW lr 1e-3 with cosine decay, no drop path, no label
smoothing). Every model is scored once on val and test at the end of training (no checkpoint
selection). Clips are decoded once per process and kept in memory (centred view, no
augmentation); one torch thread per process. The two tables of the README:

    python benchmarks/pretraining_demo.py --seeds 0 1 2 3 4 --out runs/pretraining_demo
    python benchmarks/pretraining_demo.py --seeds 0 1 2 3 4 --epochs 5 --teacher-epochs 20 \
        --data runs/pretraining_demo/data --out runs/pretraining_demo_e5

The self-distillation rows of the README (the second command adds ``distill_unlabelled`` to the
same seeds' results, reusing their ``small``; the others reuse those teachers too):

    python benchmarks/pretraining_demo.py --seeds 0 1 2 3 4 --epochs 5 --teacher-epochs 20 \
        --only small scratch distill --data runs/pretraining_demo/data --out runs/distill_demo_e5
    python benchmarks/pretraining_demo.py --seeds 0 1 2 3 4 --epochs 5 --distill-weight 10 \
        --unlabelled-weight 10 --unlabelled-per-clip 4 --only distill_unlabelled \
        --data runs/pretraining_demo/data --out runs/distill_demo_e5
    python benchmarks/pretraining_demo.py --seeds 0 1 2 3 4 --epochs 5 --distill-weight 10 \
        --only distill --small-from runs/distill_demo_e5 --data runs/pretraining_demo/data \
        --out runs/distill_demo_e5_w10
    python benchmarks/pretraining_demo.py --seeds 0 1 2 3 4 --epochs 20 --distill-weight 10 \
        --unlabelled-weight 10 --unlabelled-per-clip 4 --only scratch distill_unlabelled \
        --small-from runs/distill_demo_e5 --data runs/pretraining_demo/data \
        --out runs/distill_demo_e20_unl
    python benchmarks/pretraining_demo.py --seeds 0 1 2 3 4 --epochs 80 --only scratch distill \
        --small-from runs/distill_demo_e5 --data runs/pretraining_demo/data \
        --out runs/distill_demo_e80

Each seed writes ``OUT/seed<N>/result.json`` (seeds may run as separate processes);
``--report`` merges them into ``OUT/results.json`` and prints mean ± std.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from videomamba.utils.io import atomic_write_json

SMALL = {"embed_dim": 64, "depth": 2, "patch_size": 32}
STUDENT = {"embed_dim": 96, "depth": 4, "patch_size": 32}
MODELS = ("small", "scratch", "masked", "distill", "distill_unlabelled")
SETTINGS = ("clips", "label_fraction", "epochs", "teacher_epochs", "pretrain_epochs",
            "mask_ratio", "distill_weight", "unlabelled_weight", "unlabelled_per_clip", "small_from",
            "steps", "threads")

# The motion recipe of src/videomamba/apps/demo.py (MOTION_RECIPE), copied so that this table
# does not move when the demo is retuned.
RECIPE: dict[str, Any] = {
    "task": "classification",
    "model": {"name": "videomamba_tiny", "num_classes": 10, "drop_path_rate": 0.0, "kwargs": {}},
    "data": {"batch_size": 16, "num_workers": 0, "repeated_aug": 1, "num_frames": 8,
             "sampling": "segment", "crop_size": 32, "short_side": 32, "flip": False,
             "rand_augment": None, "num_clips": 1, "num_crops": 1},
    "optim": {"lr": 1.0e-3, "lr_batch_reference": None, "min_lr": 1.0e-5, "warmup_lr": 1.0e-5,
              "weight_decay": 0.05, "layer_decay": 1.0, "clip_grad": 1.0},
    "schedule": {"epochs": 1, "warmup_epochs": 1},
    "mixup": {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "label_smoothing": 0.0},
    "train": {"precision": "fp32", "device": "cpu", "seed": 0, "eval_every_epochs": 0,
              "keep_last": 0, "log_every_steps": 100},
    "eval": {"use_ema": False, "confusion_matrix": False},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/pretraining_demo")
    parser.add_argument("--data", default="", help="the motion set's folder (default: OUT/data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--clips", type=int, default=4000, help="training videos (all unlabelled)")
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=20,
                        help="epochs over the labelled clips, for every classifier")
    parser.add_argument("--teacher-epochs", type=int, default=0,
                        help="epochs of the small teacher (0: --epochs)")
    parser.add_argument("--pretrain-epochs", type=int, default=2, help="epochs over all clips")
    parser.add_argument("--mask-ratio", type=float, default=0.5)
    parser.add_argument("--distill-weight", type=float, default=1.0,
                        help="distill, distill_unlabelled: weight of the feature loss on labelled "
                             "clips (1, as the official engine)")
    parser.add_argument("--unlabelled-weight", type=float, default=1.0,
                        help="distill_unlabelled: weight of the feature loss on unlabelled clips")
    parser.add_argument("--unlabelled-per-clip", type=int, default=1,
                        help="distill_unlabelled: unlabelled clips per labelled clip")
    parser.add_argument("--small-from", default="",
                        help="use the teachers saved under this output folder "
                             "(DIR/seed<N>/small/model) instead of training small")
    parser.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS[:4]),
                        help="train only these models (small is reused when already saved)")
    parser.add_argument("--steps", type=int, default=0, help="cap on steps per run (smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--report", action="store_true", help="only merge the seeds' results")
    return parser.parse_args()


# --- data ----------------------------------------------------------------------------------------

def make_data(root: Path, clips: int) -> None:
    """Write the motion set unless the same one (same arguments, same generator) is there."""
    from videomamba.data.synthetic import GENERATOR_VERSION, SynthConfig, generate

    cfg = SynthConfig(kind="motion", out=str(root), num=clips, frames=8, size=32, seed=0,
                      val_fraction=0.075)
    meta = root / "meta.json"
    if meta.is_file():
        saved = json.loads(meta.read_text())
        if saved.get("config") == dataclasses.asdict(cfg) and saved.get("version") == GENERATOR_VERSION:
            return
    generate(cfg)


class Clips:
    """Clips decoded once (centred view) and kept as float16 ``(N, C, T, H, W)``."""

    def __init__(self, videos: torch.Tensor, labels: list[int]) -> None:
        self.videos, self.labels = videos, labels

    @classmethod
    def read(cls, dataset: Any) -> "Clips":
        samples = [dataset[i] for i in range(len(dataset))]
        return cls(torch.stack([s["video"] for s in samples]).half(),
                   [int(s["label"]) for s in samples])

    def head(self, count: int) -> "Clips":
        """The first ``count`` clips (labels cycle through the classes: a balanced subset)."""
        return Clips(self.videos[:count], self.labels[:count])

    def tail(self, start: int) -> "Clips":
        """The clips from ``start`` on (the unlabelled ones when ``start`` = labelled count)."""
        return Clips(self.videos[start:], self.labels[start:])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"video": self.videos[index].float(), "label": self.labels[index], "index": index}


def load_splits(root: Path, fraction: float) -> dict[str, Clips]:
    from videomamba.engine.build import build_split
    from videomamba.engine.config import recipe_from_dict

    raw = copy.deepcopy(RECIPE)
    raw["data"].update(train=str(root / "train.csv"), val=str(root / "val.csv"),
                       test=str(root / "test.csv"), prefix=str(root))
    recipe = recipe_from_dict(raw, "pretraining demo data")
    splits = {name: Clips.read(build_split(recipe, name, mode="val"))
              for name in ("train", "val", "test")}
    labelled = int(round(fraction * len(splits["train"])))
    splits["labelled"] = splits["train"].head(labelled)
    splits["unlabelled"] = splits["train"].tail(labelled)
    return splits


# --- runs ----------------------------------------------------------------------------------------

def recipe_dict(out: Path, seed: int, size: dict[str, int], epochs: int, steps: int) -> dict:
    raw = copy.deepcopy(RECIPE)
    raw["model"]["kwargs"] = dict(size)
    raw["schedule"] = {"epochs": epochs, "warmup_epochs": 0.05 * epochs}
    raw["train"].update(output_dir=str(out), seed=seed, max_steps=steps)
    return raw


def top1(model: Any, clips: Clips) -> float:
    from videomamba.engine.evaluate import evaluate
    from videomamba.engine.sampling import eval_loader
    from videomamba.tasks.classification import ClassificationTask

    metrics, _ = evaluate(ClassificationTask(10), model, eval_loader(clips, 64, 0),
                          torch.device("cpu"))
    return float(metrics["top1"])


def train_classifier(raw: dict[str, Any], splits: dict[str, Clips],
                     teacher_dir: str | None = None, distill: Any = None) -> dict[str, Any]:
    """Train on the labelled clips (optionally with a distillation teacher and a
    ``DistillConfig``); save the model; returns val / test top-1 and timings."""
    from videomamba.engine.build import build_model
    from videomamba.engine.config import recipe_from_dict
    from videomamba.engine.ema import unwrap
    from videomamba.engine.trainer import Trainer
    from videomamba.models import save_pretrained
    from videomamba.tasks.classification import ClassificationTask

    recipe = recipe_from_dict(raw, "pretraining demo")
    torch.manual_seed(recipe.train.seed)
    model = build_model(recipe)
    task: Any = ClassificationTask(10, recipe.mixup.label_smoothing)
    train_set: Any = splits["labelled"]
    if teacher_dir is not None:
        from videomamba.models import from_pretrained
        from videomamba.tasks.distill import (
            DistillConfig, DistillationTask, WithUnlabelledClips, attach_distill_head,
        )

        distill = distill or DistillConfig()
        teacher = from_pretrained(teacher_dir)
        attach_distill_head(model, teacher.config.embed_dim)
        task = DistillationTask(teacher, 10, recipe.mixup.label_smoothing,
                                distill_weight=distill.weight,
                                unlabelled_weight=distill.unlabelled_weight)
        if distill.unlabelled_weight > 0:
            train_set = WithUnlabelledClips(train_set, splits["unlabelled"],
                                            distill.unlabelled_per_clip)
    start = time.perf_counter()
    trainer = Trainer(recipe, task, model, train_set, None, progress=False)
    summary = trainer.fit()
    seconds = time.perf_counter() - start
    model = unwrap(trainer.model)
    if teacher_dir is not None:
        from videomamba.tasks.distill import remove_distill_head

        remove_distill_head(model)
    save_pretrained(model, Path(recipe.train.output_dir) / "model")
    result = {"val": top1(model, splits["val"]), "test": top1(model, splits["test"]),
              "steps": summary["global_step"], "seconds": round(seconds, 1)}
    if distill is not None:  # runs of one seed may come from several invocations
        result["distill"] = dataclasses.asdict(distill)
    return result


def pretrain(raw: dict[str, Any], splits: dict[str, Clips], teacher_dir: str,
             ratio: float) -> dict[str, Any]:
    """Masked pretraining of the student on every training clip (labels unused); saves it."""
    from videomamba.apps.pretrain import build_student, load_pretrain_recipe, without_label_mixing
    from videomamba.engine.ema import unwrap
    from videomamba.engine.evaluate import evaluate
    from videomamba.engine.sampling import eval_loader
    from videomamba.engine.trainer import Trainer
    from videomamba.models import save_pretrained
    from videomamba.models.teachers import build_teacher
    from videomamba.tasks.masked import MaskedAlignmentTask

    # One token per frame: a tube mask would drop all or nothing, so frames are dropped at random.
    raw = {**raw, "task": "masked_pretrain",
           "pretrain": {"mask_type": "random", "mask_ratio": ratio, "teacher_kind": "videomamba",
                        "teacher_path": teacher_dir}}
    recipe, config = load_pretrain_recipe(None, data=raw)
    recipe = without_label_mixing(recipe)
    teacher = build_teacher("videomamba", teacher_dir, img_size=recipe.data.crop_size)
    torch.manual_seed(recipe.train.seed)
    model = build_student(recipe, teacher.feature_dim)
    task = MaskedAlignmentTask(teacher, config, seed=recipe.train.seed)
    start = time.perf_counter()
    trainer = Trainer(recipe, task, model, splits["train"], None, progress=False)
    summary = trainer.fit()
    seconds = time.perf_counter() - start
    model_dir = save_pretrained(unwrap(trainer.model), Path(recipe.train.output_dir) / "model")
    val_metrics, _ = evaluate(task, unwrap(trainer.model), eval_loader(splits["val"], 64, 0),
                              torch.device("cpu"))
    return {"model_dir": str(model_dir), "steps": summary["global_step"],
            "seconds": round(seconds, 1), "val_align_loss": float(val_metrics["align_loss"])}


def run_seed(args: argparse.Namespace, splits: dict[str, Clips], seed: int, out: Path) -> dict:
    from videomamba.apps.pretrain import export_classifier
    from videomamba.tasks.distill import DistillConfig

    def recipe(name: str, size: dict[str, int], epochs: int = args.epochs) -> dict[str, Any]:
        return recipe_dict(out / f"seed{seed}" / name, seed, size, epochs, args.steps)

    path = out / f"seed{seed}" / "result.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    result["seed"] = seed
    result["settings"] = {key: getattr(args, key) for key in SETTINGS}
    small_dir = Path(args.small_from or out) / f"seed{seed}" / "small" / "model"
    if args.small_from and not small_dir.is_dir():
        raise SystemExit(f"--small-from: {small_dir} does not exist; train it first")
    if not args.small_from and ("small" in args.only or not small_dir.is_dir()):
        result["small"] = train_classifier(
            recipe("small", SMALL, args.teacher_epochs or args.epochs), splits)
    if "scratch" in args.only:
        result["scratch"] = train_classifier(recipe("scratch", STUDENT), splits)
    if "distill" in args.only:
        result["distill"] = train_classifier(recipe("distill", STUDENT), splits, str(small_dir),
                                             DistillConfig(weight=args.distill_weight))
    if "distill_unlabelled" in args.only:
        config = DistillConfig(weight=args.distill_weight, unlabelled_weight=args.unlabelled_weight,
                               unlabelled_per_clip=args.unlabelled_per_clip)
        result["distill_unlabelled"] = train_classifier(
            recipe("distill_unlabelled", STUDENT), splits, str(small_dir), config)
    if "masked" in args.only:
        pt = pretrain(recipe("pretrain", STUDENT, args.pretrain_epochs), splits, str(small_dir),
                      args.mask_ratio)
        classifier_dir = out / f"seed{seed}" / "pretrain" / "classifier"
        export_classifier(pt["model_dir"], 10, classifier_dir)
        finetune = recipe("masked", STUDENT)
        finetune["model"]["pretrained"] = str(classifier_dir)
        result["masked"] = {**train_classifier(finetune, splits), "pretrain": pt}
    atomic_write_json(path, result)
    return result


# --- report --------------------------------------------------------------------------------------

def summarize(results: list[dict], split: str) -> dict[str, Any]:
    out = {}
    for key in MODELS:
        values = [r[key][split] for r in results if key in r]
        if values:
            out[key] = {"mean": statistics.mean(values),
                        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                        "values": values}
    return out


def report(out: Path, args: argparse.Namespace) -> None:
    """Merge every ``seed*/result.json`` under ``out`` into ``results.json`` and print it."""
    results = [json.loads(p.read_text()) for p in sorted(out.glob("seed*/result.json"))]
    summary = {split: summarize(results, split) for split in ("val", "test")}
    atomic_write_json(out / "results.json", {"small": SMALL, "student": STUDENT, "recipe": RECIPE,
                                             "runs": results, "summary": summary})
    seeds = ", ".join(str(r["seed"]) for r in results)
    for split, stats in summary.items():
        print(f"{split} top-1 (seeds {seeds}):")
        for key, s in stats.items():
            print(f"  {key:18s} {100 * s['mean']:.1f} ± {100 * s['std']:.1f}  "
                  f"({', '.join(f'{100 * v:.1f}' for v in s['values'])})")


def main() -> None:
    args = parse_args()
    # One thread: on a small shared CPU, intra-op threads of these tiny ops only contend.
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = Path(args.out)
    if args.report:
        report(out, args)
        return
    start = time.perf_counter()
    data = Path(args.data or out / "data")
    make_data(data, args.clips)
    splits = load_splits(data, args.label_fraction)
    print(f"data ready in {time.perf_counter() - start:.0f} s", flush=True)
    for seed in args.seeds:
        result = run_seed(args, splits, seed, out)
        print(json.dumps(result), flush=True)
    report(out, args)
    print(f"total wall time {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
