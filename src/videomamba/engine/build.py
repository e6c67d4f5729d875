"""Recipe -> model, datasets and task: the glue used by ``videomamba train`` and ``eval``."""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from videomamba.engine.config import Recipe
from videomamba.errors import ConfigError
from videomamba.tasks import Task, build_task

log = logging.getLogger(__name__)


def build_model(recipe: Recipe) -> nn.Module:
    """``create_model`` with the recipe's size, classes, frames, regularisation and weights."""
    from videomamba.models import create_model

    if recipe.task == "retrieval":  # the two-tower video-text model (issue 7)
        from videomamba.tasks.retrieval import model_from_recipe

        return model_from_recipe(recipe)
    m = recipe.model
    options: dict[str, Any] = {"drop_path_rate": m.drop_path_rate, "fc_drop_rate": m.fc_drop_rate,
                               **m.kwargs}
    if m.grad_checkpointing:
        options.update(use_checkpoint=True, checkpoint_num=options.get("checkpoint_num", 10**6))
    return create_model(m.name, num_classes=m.num_classes, num_frames=recipe.data.num_frames,
                        img_size=recipe.data.crop_size, pretrained=m.pretrained, **options)


def build_split(recipe: Recipe, split: str, mode: str | None = None) -> Any:
    """The dataset of ``split`` (train / val / test) in ``mode`` (train / val / test)."""
    from videomamba.data import build_dataset

    annotation = getattr(recipe.data, split) or (recipe.data.val if split == "test" else "")
    if not annotation:
        raise ConfigError(f"data.{split}: no annotation given; set it in the recipe or with "
                          f"--set data.{split}=PATH")
    return build_dataset({"annotation": annotation, **recipe.data.dataset},
                         mode=mode or ("train" if split == "train" else "val"))


def class_names_of(dataset: Any) -> list[str] | None:
    names = getattr(dataset, "classes", None)
    return list(names) if names else None


def build_task_for(recipe: Recipe, class_names: list[str] | None = None) -> Task:
    if recipe.task == "classification":
        if class_names is not None and len(class_names) != recipe.model.num_classes:
            raise ConfigError(f"model.num_classes={recipe.model.num_classes} but the data has "
                              f"{len(class_names)} classes; set --set model.num_classes="
                              f"{len(class_names)}")
        return build_task("classification", num_classes=recipe.model.num_classes,
                          label_smoothing=recipe.mixup.label_smoothing, class_names=class_names)
    if recipe.task == "retrieval":
        from videomamba.tasks.retrieval import task_from_recipe

        return task_from_recipe(recipe)
    return build_task(recipe.task)

