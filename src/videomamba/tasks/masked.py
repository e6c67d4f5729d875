"""Masked (unmasked-teacher) pretraining: align the student's kept tokens with a frozen teacher.

The official recipe (``video_sm/models/videomamba_pretrain.py``,
``engines/engine_for_pretraining_videomamba.py``, ``exp/*/videomamba_middle_mask``):

1. a mask drops ``ratio`` (0.8) of the patch tokens; the class token is always kept;
2. the student runs on the kept tokens only (the masked ones are removed from the sequence, the
   rest keep their scan order and their position embeddings);
3. its kept-token features plus a fixed sinusoidal position table go through ``clip_decoder``
   (linear to the teacher's width, LayerNorm, L2 normalisation);
4. the loss is ``mean(2 - 2 * <student, teacher>)`` over the kept tokens, class token included
   (the official ``clip_loss_type='l2'``: the squared distance of unit vectors).

The decoder lives on the student (``model.clip_decoder``, the official key names), so that the
engine optimises it with the backbone and the checkpoint has the official layout; loading it into
a classifier drops ``clip_*`` (see :func:`videomamba.tasks.masked.classifier_from_pretrained`).

Which student feature is aligned (``student_feature``):
- ``final`` (default): the final-norm output of the last block, so every block learns;
- ``official``: what the official code aligns with ``clip_return_layer=1``: the residual stream
  entering the last block, un-normalised (its last mixer and final norm get no gradient).
"""

from __future__ import annotations

import logging
import math
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from videomamba.errors import ConfigError
from videomamba.models.teachers import Teacher, TeacherOutput
from videomamba.tasks.base import StepOutput, Task
from videomamba.tasks.masking import MASK_TYPES, gather_tokens, kept_token_indices, make_mask

log = logging.getLogger(__name__)

STUDENT_FEATURES = ("final", "official")


@dataclass
class MaskedPretrainConfig:
    """The ``pretrain:`` section of a masked-pretraining recipe."""

    mask_type: str = "attention"  # random | tube | attention (official: attention)
    mask_ratio: float = 0.8
    teacher_kind: str = "clip"  # clip | timm | videomamba
    teacher_path: str | None = None  # local weights file (clip, timm) or model dir (videomamba)
    teacher_name: str | None = None  # timm model name
    teacher_quick_gelu: bool = True  # CLIP activation: True for OpenAI weights
    loss_weight: float = 1.0  # the official clip_loss_ratio
    student_feature: str = "final"  # final | official (see module doc)

    def __post_init__(self) -> None:
        if self.mask_type not in MASK_TYPES:
            raise ConfigError(f"pretrain.mask_type: {self.mask_type!r} is not one of "
                              f"{', '.join(MASK_TYPES)}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ConfigError(f"pretrain.mask_ratio: {self.mask_ratio} is not in [0, 1); the "
                              f"official ratio is 0.8")
        if self.loss_weight <= 0:
            raise ConfigError(f"pretrain.loss_weight: must be > 0, got {self.loss_weight}")
        if self.student_feature not in STUDENT_FEATURES:
            raise ConfigError(f"pretrain.student_feature: {self.student_feature!r} is not one of "
                              f"{', '.join(STUDENT_FEATURES)}")


# ------------------------------------------------------------------------- objectives in forward
def enable_objective_forward(model: nn.Module) -> nn.Module:
    """Let ``model(video, objective=fn)`` return ``fn(model, video)``.

    DistributedDataParallel synchronises gradients only for computations that run inside the
    wrapped module's forward, so a task that needs more than the logits (kept tokens, all tokens)
    runs its objective through the forward. ``model(video)`` is unchanged. Installed on the
    instance as a bound method, so the class and the state dict stay the plain VideoMamba's and
    a deep copy (EMA) gets a forward bound to the copy."""
    model.forward = types.MethodType(_forward_with_objective, model)
    return model


def _forward_with_objective(self: nn.Module, video: Tensor, objective: Any = None) -> Any:
    return type(self).forward(self, video) if objective is None else objective(self, video)


# deepcopy rebuilds a bound method as getattr(copy, __name__): the copy's own forward.
_forward_with_objective.__name__ = "forward"


def unwrap_config(model: nn.Module) -> Any:
    """The VideoMambaConfig of ``model`` or of the model inside a DDP / compile wrapper."""
    while not hasattr(model, "config"):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model.config


def call_objective(model: nn.Module, objective: Any, video: Tensor) -> Any:
    """``objective(inner_model, video)`` through ``model``'s forward when the model allows it
    (see :func:`enable_objective_forward`), else directly."""
    inner = model
    while hasattr(inner, "module") or hasattr(inner, "_orig_mod"):  # DDP, torch.compile
        inner = getattr(inner, "module", None) or getattr(inner, "_orig_mod")
    if "forward" in vars(inner):
        return model(video, objective=objective)
    return objective(inner, video)


# ------------------------------------------------------------------------------------ the decoder
class AlignmentDecoder(nn.Module):
    """``head`` (linear to the teacher's width), ``norm`` (LayerNorm), then L2 normalisation."""

    def __init__(self, embed_dim: int, output_dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(embed_dim, output_dim)
        self.norm = nn.LayerNorm(output_dim)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., embed_dim)`` -> unit vectors ``(..., output_dim)``."""
        x = self.norm(self.head(x))
        return x / x.norm(dim=-1, keepdim=True)


def sinusoid_table(positions: int, dim: int) -> Tensor:
    """The fixed sin-cos position table ``(1, positions, dim)`` (even dims sin, odd dims cos)."""
    pos = torch.arange(positions, dtype=torch.float64).unsqueeze(1)
    rates = torch.pow(10000.0, 2 * (torch.arange(dim) // 2).double() / dim)
    table = pos / rates
    table[:, 0::2] = table[:, 0::2].sin()
    table[:, 1::2] = table[:, 1::2].cos()
    return table.float().unsqueeze(0)


def attach_alignment_decoder(model: nn.Module, output_dim: int) -> nn.Module:
    """Give the student ``clip_decoder`` (one decoder: the last layer is aligned) and its
    non-persistent ``clip_pos_embed`` buffer; returns ``model``."""
    c = model.config
    model.clip_decoder = nn.ModuleList([AlignmentDecoder(c.embed_dim, output_dim)])
    model.register_buffer("clip_pos_embed", sinusoid_table(c.seq_len, c.embed_dim),
                          persistent=False)
    return enable_objective_forward(model.to(model.pos_embed.device))


# ------------------------------------------------------------------------------ the student pass
def student_kept_features(model: nn.Module, video: Tensor, keep: Tensor,
                          feature: str = "final") -> Tensor:
    """The student's features ``(B, K, d)`` of the kept tokens ``keep`` ``(B, K)`` (indices into
    cls + patches, ascending), computed on the kept tokens only (see module doc for
    ``feature``)."""
    tokens = model.pos_drop(model.embed_tokens(video))
    hidden = gather_tokens(tokens, keep)
    if feature == "final":
        return model.run_blocks(hidden)
    c = model.config
    residual = None
    for index, layer in enumerate(model.layers):
        hidden, residual = layer(hidden, residual,
                                 use_checkpoint=c.use_checkpoint and index < c.checkpoint_num)
    return residual.to(hidden.dtype)


def decode_kept(model: nn.Module, features: Tensor, keep: Tensor) -> Tensor:
    """Kept-token features ``(B, K, d)`` + their sinusoidal positions -> unit vectors
    ``(B, K, D_teacher)`` through ``model.clip_decoder``."""
    positions = model.clip_pos_embed.to(features.dtype).expand(features.shape[0], -1, -1)
    return model.clip_decoder[0](features + gather_tokens(positions, keep))


def alignment_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Per clip ``mean over tokens of (2 - 2 * <s, t>)`` ``(B,)``; both ``(B, K, D)`` unit
    vectors. The official loss is its mean over the batch."""
    return (2 - 2 * (student.float() * teacher.float()).sum(dim=-1)).mean(dim=-1)


# ------------------------------------------------------------------------------------- the task
class MaskedAlignmentTask(Task):
    """Masked pretraining as an engine task; the model is a student with ``clip_decoder``."""

    best_metric = "neg_align_loss"

    def __init__(self, teacher: Teacher, config: MaskedPretrainConfig,
                 seed: int = 0) -> None:
        self.teacher = teacher
        self.config = config
        self.generator = torch.Generator().manual_seed(seed)

    def masked_step(self, model: nn.Module, video: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss per clip (B,), kept fraction)`` of a clip batch ``(B, C, T, H, W)``."""
        self.teacher.to(video.device).eval()
        target = self.teacher(video)
        c = unwrap_config(model)
        self.check_token_grid(target, c)
        mask = make_mask(self.config.mask_type, video.shape[0], c.num_tokens_t, c.num_patches,
                         self.config.mask_ratio, target.attention, self.generator)
        keep = kept_token_indices(mask).to(video.device)

        def objective(net: nn.Module, clips: Tensor) -> Tensor:
            features = student_kept_features(net, clips, keep, self.config.student_feature)
            return decode_kept(net, features, keep)

        student = call_objective(model, objective, video)
        loss = alignment_loss(student, gather_tokens(target.features, keep))
        return loss, torch.tensor(keep.shape[1] / c.seq_len)

    @staticmethod
    def check_token_grid(target: TeacherOutput, config: Any) -> None:
        if target.features.shape[1] != config.seq_len:
            raise ConfigError(
                f"teacher gives {target.features.shape[1]} tokens per clip, the student "
                f"{config.seq_len} (1 + {config.num_tokens_t} x {config.num_patches}); give them "
                f"the same patch grid (patch size x input size) and tubelet 1")

    def training_step(self, model: nn.Module, batch: Mapping[str, Any]) -> StepOutput:
        losses, kept = self.masked_step(model, batch["video"])
        loss = losses.mean()
        weighted = self.config.loss_weight * loss
        return StepOutput(weighted, {"align_loss": loss.detach(), "kept": kept},
                          int(batch["video"].shape[0]))

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        video = batch["video"]
        if video.dim() == 6:  # test views: the first one is enough for a loss estimate
            video = video[:, 0]
        losses, _ = self.masked_step(model, video)
        return {"align_loss": losses, "index": torch.as_tensor(batch["index"])}

    def summarize(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        mean = float(np.mean(outputs["align_loss"])) if len(outputs["align_loss"]) else math.nan
        return {"align_loss": mean, "neg_align_loss": -mean}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])


# ---------------------------------------------------------------------- pretrained -> classifier
def classifier_from_pretrained(source: str | Path, num_classes: int, model_name: str | None = None,
                               **overrides: Any) -> nn.Module:
    """A classifier with ``num_classes`` fresh outputs whose backbone comes from a masked-
    pretraining result: a directory written by ``videomamba pretrain`` (``save_pretrained``) or
    an official ``*_mask_pt_*.pth`` (``clip_decoder`` and the unused ``norm`` dropped, ``norm_f``
    at its init as in the official fine-tuning). ``model_name`` is needed for an official file."""
    from videomamba.models.checkpoint import (
        check_fits, fit_state_dict, read_pretrained_config, read_state_dict,
    )
    from videomamba.models.config import VideoMambaConfig
    from videomamba.models.registry import create_model
    from videomamba.models.videomamba import build_model

    from videomamba.models.teachers import resolve_model_dir

    source = Path(source)
    if source.is_dir():
        source = resolve_model_dir(source)  # a run folder holds its model in model/
        meta = read_pretrained_config(source)
        config = VideoMambaConfig.from_dict(meta["model_config"], source=str(source))
        model = build_model(config.replace(num_classes=num_classes, **overrides))
        model.model_name = meta.get("model_name")
    else:
        if model_name is None:
            raise ConfigError(f"{source}: an official checkpoint needs the model name "
                              f"(e.g. videomamba_middle) to build the classifier")
        model = create_model(model_name, num_classes=num_classes, **overrides)
        model.model_name = model_name
    state, report = fit_state_dict(read_state_dict(source), model, str(source))
    fresh = [k for k in ("head.weight", "head.bias") if k not in state]
    check_fits(state, model, str(source), allowed_missing=report.kept_from_model + fresh)
    model.load_state_dict(state, strict=False)
    log.info("%s: backbone loaded; new %d-class head%s", source, num_classes,
             "; " + "; ".join(report.notes) if report.notes else "")
    return model
