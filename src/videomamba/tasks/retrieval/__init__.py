"""Video-text retrieval: losses (VTC, VTM), metrics (R@K, ranks) and the engine task."""

from __future__ import annotations

from typing import Any, Mapping

from videomamba.tasks.retrieval.losses import similarity, vtc_loss, vtm_loss
from videomamba.tasks.retrieval.metrics import rank_metrics, retrieval_report
from videomamba.tasks.retrieval.task import RetrievalTask

__all__ = ["RetrievalTask", "build_video_text_model", "captions_of", "model_from_recipe",
           "rank_metrics", "task_from_recipe",
           "retrieval_report", "similarity", "split_model_options", "vtc_loss", "vtm_loss"]

# Keys of a retrieval recipe's ``model.kwargs`` that configure the task, not the model.
TASK_KEYS = ("vtc_weight", "vtm_weight", "hard_negatives", "rerank_k")


def split_model_options(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``model.kwargs`` of a retrieval recipe -> (video-text model options, task options)."""
    model = {k: v for k, v in kwargs.items() if k not in TASK_KEYS}
    task = {k: v for k, v in kwargs.items() if k in TASK_KEYS}
    return model, task


def build_video_text_model(name: str, kwargs: Mapping[str, Any], pretrained: str | None = None,
                           num_frames: int | None = None, img_size: int | None = None,
                           drop_path_rate: float | None = None) -> Any:
    """A :class:`~videomamba.models.video_text.VideoTextModel` from a recipe's ``model`` section:
    ``name`` is the video encoder, ``kwargs`` the video-text options (``text``, ``embed_dim``,
    ``fusion_layers``, ``vision_kwargs``...). ``pretrained``: a video-text directory (all
    weights), an official video_mm checkpoint (``vision_encoder.*`` keys) or a video encoder
    checkpoint (ours or official)."""
    from pathlib import Path

    from videomamba.models.video_text import (
        VideoTextConfig, VideoTextModel, is_video_text_dir, load_official_video_mm,
        load_video_text_model,
    )

    if pretrained and is_video_text_dir(pretrained):
        return load_video_text_model(pretrained)
    options = dict(kwargs)
    vision_kwargs = dict(options.pop("vision_kwargs", {}) or {})
    for key, value in (("num_frames", num_frames), ("img_size", img_size),
                       ("drop_path_rate", drop_path_rate)):
        if value is not None:
            vision_kwargs.setdefault(key, value)
    config = VideoTextConfig.from_dict({**options, "vision": name, "vision_kwargs": vision_kwargs},
                                       "model.kwargs")
    official_mm = bool(pretrained) and Path(pretrained).is_file() and _has_vision_prefix(pretrained)
    model = VideoTextModel(config, vision_pretrained=None if official_mm else pretrained)
    if official_mm:
        load_official_video_mm(model, pretrained)
    return model


def _has_vision_prefix(path: str) -> bool:
    from videomamba.models.checkpoint import read_state_dict

    return any(k.startswith("vision_encoder.") for k in read_state_dict(path))


def captions_of(dataset: Any) -> list[tuple[int, str]]:
    """``(video index, caption)`` for every caption of every record of a caption dataset."""
    return [(i, c) for i, record in enumerate(dataset.records) for c in record.captions]


def model_from_recipe(recipe: Any, **changes: Any) -> Any:
    """The video-text model of a retrieval recipe (``model`` section; ``changes`` override
    ``model.kwargs`` entries, e.g. ``frame_order_blind=True``)."""
    options, _ = split_model_options({**recipe.model.kwargs, **changes})
    return build_video_text_model(recipe.model.name, options, recipe.model.pretrained,
                                  num_frames=recipe.data.num_frames, img_size=recipe.data.crop_size,
                                  drop_path_rate=recipe.model.drop_path_rate)


def task_from_recipe(recipe: Any, eval_set: Any = None) -> RetrievalTask:
    """The retrieval task of a recipe, evaluating on every caption of ``eval_set`` (default: of
    the recipe's ``data.val`` annotation, read in the order the validation dataset uses)."""
    _, options = split_model_options(recipe.model.kwargs)
    if eval_set is None and getattr(recipe.data, "val", ""):
        from videomamba.data.annotations import read_annotations

        dataset = recipe.data.dataset
        records = read_annotations(recipe.data.val, dataset.get("format", "auto"),
                                   dataset.get("separator", " "), dataset.get("prefix", ""))
        return RetrievalTask([(i, c) for i, r in enumerate(records) for c in r.captions], **options)
    return RetrievalTask(captions_of(eval_set) if eval_set is not None else (), **options)
