"""Masked pretraining and self-distillation with 10 % of the labels, on the synthetic motion set.

For each seed, with the same recipe, epochs and seed for every classifier:

1. ``small``: a small VideoMamba trained on the labelled 10 % (the teacher of both methods);
2. ``scratch``: the larger student trained from scratch on the 10 % (the baseline);
3. ``masked``: the student pretrained on *all* training videos (no labels) by aligning its kept
   tokens (tube mask) with the small model's features, then fine-tuned on the 10 %;
4. ``distill``: the student trained on the 10 % with the small model as distillation teacher.

Reports top-1 on the test split (evaluated once, at the end of training). CPU-sized models
(tiny widths and depths, 32 px, patch 16, 4 frames, one thread per run): a demonstration of the
mechanics, not of the paper's numbers. Seeds can run as parallel processes (each writes
``seed<N>/result.json``); ``--report`` merges them into ``results.json``.

    python benchmarks/pretraining_demo.py --seeds 0 1 2 --out runs/pretraining_demo
    python benchmarks/pretraining_demo.py --out runs/pretraining_demo --report
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

SMALL = {"embed_dim": 32, "depth": 2}
STUDENT = {"embed_dim": 64, "depth": 2}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/pretraining_demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--clips", type=int, default=1000, help="training videos (all unlabelled)")
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every classifier")
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--mask-ratio", type=float, default=0.5)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--steps", type=int, default=0, help="cap on steps per run (smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--report", action="store_true", help="only merge the seeds' results")
    return parser.parse_args()


def make_data(root: Path, clips: int, fraction: float) -> dict[str, str]:
    """The motion set (written once) and the CSV of its first ``fraction`` of training clips
    (labels cycle through the classes, so the subset stays balanced)."""
    from videomamba.data.synthetic import SynthConfig, generate

    if not (root / "meta.json").is_file():
        generate(SynthConfig(kind="motion", out=str(root), num=clips, frames=16, size=32, seed=0))
    rows = (root / "train.csv").read_text().splitlines()
    labelled = root / f"train_{int(round(fraction * 100))}pct.csv"
    text = "\n".join(rows[: int(round(fraction * len(rows)))]) + "\n"
    if not labelled.is_file() or labelled.read_text() != text:  # atomic: seeds run in parallel
        tmp = labelled.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, labelled)
    return {"all": str(root / "train.csv"), "labelled": str(labelled),
            "test": str(root / "test.csv"), "root": str(root)}


def base_recipe(data: dict[str, str], out: Path, seed: int, epochs: int, frames: int,
                steps: int, size: dict[str, int]) -> dict[str, Any]:
    return {
        "task": "classification",
        "model": {"name": "videomamba_tiny", "num_classes": 10, "drop_path_rate": 0.1,
                  "kwargs": dict(size)},
        "data": {"train": data["labelled"], "val": data["test"], "batch_size": 10,
                 "num_workers": 0, "repeated_aug": 1, "prefix": data["root"],
                 "num_frames": frames, "sampling": "sparse", "crop_size": 32, "short_side": 32,
                 "crop": "random_resized", "scale": [0.6, 1.0], "flip": False,
                 "rand_augment": None},
        "optim": {"lr": 1.5e-3, "lr_batch_reference": None, "min_lr": 1e-5, "warmup_lr": 1e-5,
                  "weight_decay": 0.05, "clip_grad": 1.0},
        "schedule": {"epochs": epochs, "warmup_epochs": 2},
        "mixup": {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "label_smoothing": 0.1},
        "train": {"output_dir": str(out), "seed": seed, "precision": "fp32", "device": "cpu",
                  "eval_every_epochs": 0, "log_every_steps": 50, "max_steps": steps},
        "eval": {"confusion_matrix": False},
    }


def train_classifier(raw: dict[str, Any], teacher_dir: str | None = None) -> tuple[float, Any]:
    """Train (optionally with a distillation teacher); returns (test top-1, model)."""
    from videomamba.engine.build import build_model, build_split
    from videomamba.engine.config import recipe_from_dict
    from videomamba.engine.trainer import Trainer
    from videomamba.models import save_pretrained
    from videomamba.tasks.classification import ClassificationTask

    recipe = recipe_from_dict(raw)
    torch.manual_seed(recipe.train.seed)
    model = build_model(recipe)
    task: Any = ClassificationTask(10, recipe.mixup.label_smoothing)
    if teacher_dir is not None:
        from videomamba.models.teachers import resolve_model_dir
        from videomamba.models import from_pretrained
        from videomamba.tasks.distill import DistillationTask, attach_distill_head

        teacher = from_pretrained(resolve_model_dir(teacher_dir))
        attach_distill_head(model, teacher.config.embed_dim)
        task = DistillationTask(teacher, 10, recipe.mixup.label_smoothing)
    trainer = Trainer(recipe, task, model, build_split(recipe, "train"), build_split(recipe, "val"),
                      progress=False)
    summary = trainer.fit()
    if teacher_dir is not None:
        from videomamba.tasks.distill import remove_distill_head

        remove_distill_head(model)
    save_pretrained(model, Path(recipe.train.output_dir) / "model")
    return float(summary["last_eval"]["top1"]), summary


def pretrain(raw: dict[str, Any], teacher_dir: str, ratio: float, epochs: int) -> str:
    """Masked pretraining of the student on every training video; returns its model dir."""
    from videomamba.apps.pretrain import load_pretrain_recipe, run_pretraining

    raw = {**raw, "task": "masked_pretrain",
           "pretrain": {"mask_type": "tube", "mask_ratio": ratio, "teacher_kind": "videomamba",
                        "teacher_path": teacher_dir}}
    raw["data"] = {**raw["data"], "val": ""}
    raw["schedule"] = {**raw["schedule"], "epochs": epochs, "warmup_epochs": 0.3}
    raw["model"] = {**raw["model"], "drop_path_rate": 0.1}
    recipe, config = load_pretrain_recipe(None, data=raw)
    return run_pretraining(recipe, config, progress=False)["model_dir"]


def run_seed(args: argparse.Namespace, data: dict[str, str], seed: int, out: Path) -> dict:
    from videomamba.apps.pretrain import export_classifier

    def recipe(name: str, size: dict[str, int]) -> dict[str, Any]:
        return base_recipe(data, out / f"seed{seed}" / name, seed, args.epochs, args.frames,
                           args.steps, size)

    result: dict[str, Any] = {"seed": seed}
    start = time.perf_counter()
    result["small"], _ = train_classifier(recipe("small", SMALL))
    small_dir = str(out / f"seed{seed}" / "small" / "model")
    result["scratch"], _ = train_classifier(recipe("scratch", STUDENT))
    result["distill"], _ = train_classifier(recipe("distill", STUDENT), teacher_dir=small_dir)
    pt = recipe("pretrain", STUDENT)
    pt["data"] = {**pt["data"], "train": data["all"], "batch_size": 20}
    pt_dir = pretrain(pt, small_dir, args.mask_ratio, args.pretrain_epochs)
    classifier_dir = out / f"seed{seed}" / "pretrain" / "classifier"
    export_classifier(pt_dir, 10, classifier_dir)
    finetune = recipe("masked", STUDENT)
    finetune["model"] = {**finetune["model"], "pretrained": str(classifier_dir)}
    result["masked"], _ = train_classifier(finetune)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def summarize(results: list[dict]) -> dict[str, Any]:
    out = {}
    for key in ("small", "scratch", "masked", "distill"):
        values = [r[key] for r in results]
        out[key] = {"mean": statistics.mean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "values": values}
    return out


def report(out: Path, args: argparse.Namespace) -> None:
    """Merge every ``seed*/result.json`` under ``out`` into ``results.json`` and print it."""
    results = [json.loads(p.read_text()) for p in sorted(out.glob("seed*/result.json"))]
    summary = summarize(results)
    (out / "results.json").write_text(json.dumps(
        {"args": vars(args), "small": SMALL, "student": STUDENT, "runs": results,
         "summary": summary}, indent=2) + "\n")
    for key, stats in summary.items():
        print(f"{key:8s} top-1 {100 * stats['mean']:.1f} ± {100 * stats['std']:.1f} "
              f"(seeds: {', '.join(f'{100 * v:.0f}' for v in stats['values'])})")


def main() -> None:
    args = parse_args()
    # One thread: on a small shared CPU, intra-op threads of these tiny ops only contend.
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.report:
        report(out, args)
        return
    data = make_data(out / "data", args.clips, args.label_fraction)
    for seed in args.seeds:  # seeds may also run as parallel processes: each writes its own
        result = run_seed(args, data, seed, out)
        (out / f"seed{seed}" / "result.json").write_text(json.dumps(result) + "\n")
        print(json.dumps(result), flush=True)
    report(out, args)


if __name__ == "__main__":
    main()
