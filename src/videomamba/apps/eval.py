"""``videomamba eval --model DIR|FILE [RECIPE.yaml] [--set ...]``: multi-view test of a model.

Reads the recipe's ``data.test`` split (or ``--data ANNOTATION``) in test mode: every clip gives
``num_clips x num_crops`` views whose softmax scores are averaged. Writes ``results.json`` (top-1,
top-5, mean and per-class accuracy, confusion matrix), ``predictions.json`` and ``confusion.png``
into ``--out``. Runs under torchrun too (each rank reads a shard; results are gathered).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", default=None, help="YAML recipe for the data keys")
    parser.add_argument("--model", required=True,
                        help="model folder (save_pretrained), a run's .pt, or an official .pth")
    parser.add_argument("--model-name", default=None, help="architecture of an official checkpoint")
    parser.add_argument("--data", default=None, help="annotation to test on (overrides data.test)")
    parser.add_argument("--prefix", default=None, help="folder the annotation's paths are in")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per batch (8)")
    parser.add_argument("--out", default=None, help="folder for results (default: next to --model)")
    parser.add_argument("--no-confusion", action="store_true", help="skip confusion.png")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from videomamba.apps.predict import load_model
    from videomamba.engine import distributed
    from videomamba.engine.build import build_split, class_names_of
    from videomamba.engine.config import load_recipe
    from videomamba.engine.evaluate import evaluate
    from videomamba.utils.io import atomic_write_json
    from videomamba.engine.sampling import eval_loader
    from videomamba.errors import ConfigError
    from videomamba.tasks import ClassificationTask
    from videomamba.tasks.metrics import save_confusion_png

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.test={args.data}")
    if args.prefix:
        overrides.append(f"data.prefix={args.prefix}")
    recipe = load_recipe(args.recipe, overrides)
    if recipe.task == "retrieval":  # video-text model: R@K and ranks (docs/retrieval.md)
        from videomamba.tasks.retrieval.evaluation import run_retrieval_eval

        return run_retrieval_eval(args, recipe)
    info, device = distributed.init_distributed(recipe.train.device)
    model = load_model_any(args.model, args.model_name, load_model).to(device).eval()
    dataset = build_split(recipe, "test", mode="test")
    classes = class_names_of(dataset) or getattr(model, "class_names", None)
    num_classes = int(model.config.num_classes)
    if classes and len(classes) != num_classes:
        raise ConfigError(f"{args.model} has {num_classes} classes but the data has {len(classes)}")
    task = ClassificationTask(num_classes, class_names=classes)
    loader = eval_loader(dataset, args.batch_size, recipe.data.num_workers, info.rank, info.world_size)
    metrics, merged = evaluate(task, model, loader, device, recipe.train.precision,
                               progress=info.is_main and not args.json)
    if info.is_main:
        out = Path(args.out) if args.out else default_out(args.model)
        views = dataset.config.num_clips * dataset.config.num_crops
        summary = {"model": str(args.model), "data": dataset.config.annotation, "views": views,
                   **{k: metrics[k] for k in ("num_samples", "top1", "top5", "mean_class_accuracy", "loss")}}
        atomic_write_json(out / "results.json", {**summary, **metrics})
        atomic_write_json(out / "predictions.json", [
            {"index": int(i), "path": dataset.records[int(i)].path, "label": int(l),
             "prediction": int(s.argmax()), "score": float(s.max())}
            for i, l, s in zip(merged["index"], merged["label"], merged["scores"])])
        if not args.no_confusion:
            save_confusion_png(torch.tensor(metrics["confusion_matrix"]).numpy(), metrics["class_names"],
                               out / "confusion.png")
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"{summary['num_samples']} clips x {views} views: top-1 {summary['top1']:.2%}, "
                  f"top-5 {summary['top5']:.2%}, mean class {summary['mean_class_accuracy']:.2%}; "
                  f"results in {out}")
    distributed.cleanup()
    return 0


def load_model_any(source: str, model_name: str | None, load_model) -> "torch.nn.Module":  # noqa: F821
    """A model folder / official file, or a training checkpoint (``last.pt``/``best.pt``)."""
    path = Path(source)
    if path.is_file() and path.suffix == ".pt":
        from videomamba.engine.checkpoint import load_checkpoint
        from videomamba.engine.config import recipe_from_dict
        from videomamba.engine.build import build_model

        state = load_checkpoint(path)
        if state.get("format") == "videomamba-train":
            recipe = recipe_from_dict(state["recipe"], str(path))
            recipe.model.pretrained = None
            model = build_model(recipe)
            model.load_state_dict(state["model"])
            model.class_names = None
            return model
    return load_model(source, model_name)


def default_out(model: str) -> Path:
    path = Path(model)
    return (path if path.is_dir() else path.parent) / "eval"
