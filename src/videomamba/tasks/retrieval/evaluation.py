"""``videomamba eval RETRIEVAL_RECIPE --model M``: text-to-video and video-to-text R@1/5/10,
median and mean rank of a video-text model on the recipe's ``data.test`` split (``data.val``
when no test split is given), every caption of the split queried.

``M`` is a video-text model folder (``save_pretrained`` / ``RUN/model``) or a training checkpoint
of a retrieval run (``last.pt`` / ``best.pt``). Writes ``results.json`` into ``--out`` (default
``M/eval``) and prints a summary (``--json``: the metrics as one JSON line).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from videomamba.errors import CheckpointError

SUMMARY_KEYS = ("t2v_r1", "t2v_r5", "t2v_r10", "t2v_medr", "t2v_meanr",
                "v2t_r1", "v2t_r5", "v2t_r10", "v2t_medr", "v2t_meanr", "r_mean",
                "num_texts", "num_videos")


def load_retrieval_model(source: str | Path) -> torch.nn.Module:
    """A video-text model from its folder or from a retrieval run's training checkpoint."""
    from videomamba.models.video_text import is_video_text_dir, load_video_text_model

    path = Path(source)
    if path.is_dir() and is_video_text_dir(path):
        return load_video_text_model(path)
    if path.is_file() and path.suffix == ".pt":
        from videomamba.engine.checkpoint import load_checkpoint
        from videomamba.engine.config import recipe_from_dict
        from videomamba.tasks.retrieval import model_from_recipe

        state = load_checkpoint(path)
        if state.get("format") == "videomamba-train" and state["recipe"].get("task") == "retrieval":
            recipe = recipe_from_dict(state["recipe"], str(path))
            recipe.model.pretrained = None
            model = model_from_recipe(recipe)
            model.load_state_dict(state["model"])
            return model.eval()
    raise CheckpointError(f"{source}: not a video-text model; pass the folder a retrieval run "
                          f"wrote (RUN/model) or its last.pt / best.pt")


def evaluate_retrieval(recipe: Any, model: torch.nn.Module, batch_size: int = 8,
                       device: torch.device | None = None, rank: int = 0, world_size: int = 1,
                       progress: bool = False) -> dict[str, Any]:
    """Retrieval metrics of ``model`` on the recipe's test split (val when none)."""
    from videomamba.engine.build import build_split
    from videomamba.engine.evaluate import evaluate
    from videomamba.engine.sampling import eval_loader
    from videomamba.tasks.retrieval import task_from_recipe

    device = device or torch.device("cpu")
    dataset = build_split(recipe, "test", mode="val")  # one centred view, as in training's eval
    loader = eval_loader(dataset, batch_size, recipe.data.num_workers, rank, world_size)
    metrics, _ = evaluate(task_from_recipe(recipe, dataset), model.to(device), loader, device,
                          recipe.train.precision, progress=progress)
    return {"data": dataset.config.annotation, **metrics}


def run_retrieval_eval(args: argparse.Namespace, recipe: Any) -> int:
    """The ``videomamba eval`` command for a recipe whose ``task`` is ``retrieval``."""
    from videomamba.engine import distributed
    from videomamba.utils.io import atomic_write_json

    info, device = distributed.init_distributed(recipe.train.device)
    model = load_retrieval_model(args.model)
    metrics = evaluate_retrieval(recipe, model, args.batch_size, device, info.rank,
                                 info.world_size, progress=info.is_main and not args.json)
    if info.is_main:
        path = Path(args.model)
        out = Path(args.out) if args.out else (path if path.is_dir() else path.parent) / "eval"
        summary = {"model": str(args.model), "data": metrics["data"],
                   **{k: metrics[k] for k in SUMMARY_KEYS}}
        atomic_write_json(out / "results.json", {"model": str(args.model), **metrics})
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"{summary['num_texts']} captions x {summary['num_videos']} videos: "
                  f"t2v R@1/5/10 {summary['t2v_r1']:.1f}/{summary['t2v_r5']:.1f}/"
                  f"{summary['t2v_r10']:.1f} (MdR {summary['t2v_medr']:g}, MnR "
                  f"{summary['t2v_meanr']:.1f}), v2t R@1/5/10 {summary['v2t_r1']:.1f}/"
                  f"{summary['v2t_r5']:.1f}/{summary['v2t_r10']:.1f}; results in {out}")
    distributed.cleanup()
    return 0
