"""Checkpoint I/O: official ``.pth`` files in, our ``model.safetensors`` + ``config.json`` out.

Official checkpoints come as a raw state dict, as ``{'model': ...}`` / ``{'module': ...}``
wrappers, with ``module.`` (DDP), ``backbone.`` or ``encoder.`` prefixes. They are read with
``torch.load(weights_only=True)`` (never arbitrary unpickling) and fitted to the model:

- ``pos_embed`` is resized bicubically over the spatial grid (the cls row is kept as is);
- ``temporal_pos_embedding`` is resized linearly in time; an image checkpoint has none, and the
  video model keeps its own (zeros), as the official inflation does;
- 2-D patch weights ``(d, C, p, p)`` are inflated into the video Conv3d: the 2-D kernel goes to the
  centre frame, the other frames are zero (the official ``inflate_weight(center=True)``);
- a head whose class count differs from the model's is dropped (logged) and keeps its fresh init;
- the masked-pretraining extras (``clip_*`` distillation decoder, its ``norm``) are dropped.

Anything else that does not fit is an error naming the file, the keys and the shapes.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videomamba.errors import CheckpointError
from videomamba.models.config import PRESETS, DataConfig, VideoMambaConfig, default_data_config
from videomamba.utils.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_NAME = "videomamba"
FORMAT_VERSION = 1

_WRAPPER_KEYS = ("model", "module", "state_dict", "model_state")
_PREFIXES = ("module.", "backbone.", "encoder.")
_PRETRAIN_ONLY = re.compile(r"^(clip_|norm\.)")  # masked pretraining's decoder and output norm


# ---------------------------------------------------------------------------------------- reading
def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a checkpoint file (``.pth``/``.pt``/``.bin`` or ``.safetensors``) or of a
    directory written by :func:`save_pretrained`, unwrapped and with prefixes stripped."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; check the path")
    raw = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch(path)
    return strip_prefixes(unwrap(raw, path))


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error types for bad headers/sizes
        raise CheckpointError(f"{path}: cannot read the safetensors file (corrupt or truncated?): "
                              f"{err}; download or convert it again") from err


def _read_torch(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if unsafe:
            raise CheckpointError(
                f"{path}: the checkpoint holds Python objects other than tensors ({unsafe[1]}), "
                f"which are not loaded for safety; re-save only its state dict, e.g. "
                f"torch.save(torch.load(path, weights_only=False)['model'], 'weights.pth') if "
                f"you trust the file") from err
        detail = re.search(r"WeightsUnpickler error: \s*(.+)", str(err))
        raise CheckpointError(f"{path}: cannot read the checkpoint (corrupt or truncated?): "
                              f"{detail[1] if detail else _first_line(err)}; download it again") \
            from err
    except Exception as err:  # zip, pickle and storage errors all mean a damaged file here
        raise CheckpointError(f"{path}: cannot read the checkpoint (corrupt or truncated?): "
                              f"{_first_line(err)}; download it again") from err


def _allowed_globals() -> list[Any]:
    """Harmless types the official training scripts store beside the weights (``args``)."""
    allowed: list[Any] = [argparse.Namespace]
    try:
        import numpy as np

        core = np._core if hasattr(np, "_core") else np.core
        allowed += [np.dtype, core.multiarray.scalar, *{type(np.dtype(t)) for t in "fdil?"}]
    except (ImportError, AttributeError):
        pass
    return allowed


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def unwrap(obj: Any, source: str | Path = "checkpoint") -> dict[str, Tensor]:
    """The state dict inside ``obj``: itself, or under ``model``/``module``/``state_dict``."""
    for _ in range(3):  # wrappers can nest, e.g. {'module': {'model': ...}}
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None or any(isinstance(v, Tensor) for v in obj.values()):
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a state dict (a dict of tensors), found "
                              f"{type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(f"{source}: no tensors found (top-level keys: "
                              f"{sorted(map(str, obj))[:10]}); is this a model checkpoint?")
    return tensors


def strip_prefixes(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove ``module.`` / ``backbone.`` / ``encoder.`` prefixes (repeatedly) from every key."""
    out = {}
    for key, value in state.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix):], True
        out[key] = value
    return out


# ------------------------------------------------------------------------------- fitting to a model
def resize_pos_embed(pos_embed: Tensor, grid: int) -> Tensor:
    """``(1, 1 + g*g, d)`` -> ``(1, 1 + grid*grid, d)``: bicubic over the patch grid
    (``align_corners=False``), cls row unchanged. Equal sizes return the input unchanged."""
    num_patches = pos_embed.shape[1] - 1
    old = math.isqrt(num_patches)
    if old * old != num_patches:
        raise ValueError(f"pos_embed has {num_patches} patch rows, not a square grid")
    if old == grid:
        return pos_embed
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    patches = patches.reshape(1, old, old, dim).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, dim).to(pos_embed.dtype)
    return torch.cat([cls, patches], dim=1)


def resize_temporal_pos_embed(embed: Tensor, length: int) -> Tensor:
    """``(1, T, d)`` -> ``(1, length, d)``, linear in time (``align_corners=False``)."""
    if embed.shape[1] == length:
        return embed
    resized = F.interpolate(embed.permute(0, 2, 1).float(), size=length, mode="linear",
                            align_corners=False)
    return resized.permute(0, 2, 1).to(embed.dtype)


def inflate_patch_weight(weight_2d: Tensor, time: int, center: bool = True) -> Tensor:
    """Conv2d weight ``(d, C, p, p)`` -> Conv3d weight ``(d, C, time, p, p)``: the 2-D kernel at
    the centre frame and zeros elsewhere (``center``), or spread evenly over ``time`` frames."""
    if center:
        weight_3d = weight_2d.new_zeros(*weight_2d.shape[:2], time, *weight_2d.shape[2:])
        weight_3d[:, :, time // 2] = weight_2d
        return weight_3d
    return weight_2d.unsqueeze(2).repeat(1, 1, time, 1, 1) / time


@dataclass
class LoadReport:
    """What fitting a checkpoint to a model changed; ``notes`` are also logged."""

    notes: list[str] = field(default_factory=list)
    kept_from_model: list[str] = field(default_factory=list)  # keys left at the model's init

    def note(self, message: str) -> None:
        self.notes.append(message)
        log.info(message)


def fit_state_dict(
    state: Mapping[str, Tensor], model: nn.Module, source: str = "checkpoint"
) -> tuple[dict[str, Tensor], LoadReport]:
    """Adapt ``state`` to ``model`` (resize, inflate, drop a foreign head); see module doc."""
    state = dict(state)
    target = model.state_dict()
    report = LoadReport()
    _drop_pretraining_extras(state, target, report, source)
    _fit_head(state, target, report, source)
    _fit_patch_weight(state, target, report, source)
    if "pos_embed" in state and "pos_embed" in target:
        _fit_pos_embed(state, target, report, source)
    _fit_temporal(state, target, report, source)
    return state, report


def _drop_pretraining_extras(state: dict, target: dict, report: LoadReport, source: str) -> None:
    extras = [k for k in state if _PRETRAIN_ONLY.match(k) and k not in target]
    if not any(k.startswith("clip_") for k in extras):
        return
    for key in extras:
        del state[key]
    report.note(f"{source}: dropped {len(extras)} masked-pretraining keys (clip decoder, its norm)")
    for key in target:  # the pretraining model has no final norm: keep the model's init
        if key.startswith("norm_f.") and key not in state:
            report.kept_from_model.append(key)


def _fit_head(state: dict, target: dict, report: LoadReport, source: str) -> None:
    if "head.weight" not in state:
        # A backbone-only checkpoint (masked pretraining, feature extractors): the head starts fresh.
        fresh = [k for k in ("head.weight", "head.bias") if k in target]
        if fresh:
            report.kept_from_model += fresh
            report.note(f"{source}: has no classification head; the model's "
                        f"{target['head.weight'].shape[0]}-class head keeps its fresh initialisation")
        return
    old = state["head.weight"].shape[0]
    new = target["head.weight"].shape[0] if "head.weight" in target else 0
    if old == new:  # same classes: any other difference is a mismatch check_fits reports
        return
    state.pop("head.weight")
    state.pop("head.bias", None)
    report.kept_from_model += [k for k in ("head.weight", "head.bias") if k in target]
    report.note(f"{source}: dropped its {old}-class head; the model's "
                f"{new}-class head keeps its fresh initialisation" if new else
                f"{source}: dropped its {old}-class head; the model has no head")


def _fit_patch_weight(state: dict, target: dict, report: LoadReport, source: str) -> None:
    key = "patch_embed.proj.weight"
    if key not in state or key not in target or state[key].shape == target[key].shape:
        return
    have, want = state[key], target[key]
    if have.dim() == 4 and want.dim() == 5 and have.shape == want[:, :, 0].shape:
        state[key] = inflate_patch_weight(have, want.shape[2], center=True)
        report.note(f"{source}: inflated 2-D patch weights {tuple(have.shape)} -> "
                    f"{tuple(want.shape)} (centre frame)")
    elif have.dim() == 5 and want.dim() == 4 and have.shape[2] == 1 and \
            have[:, :, 0].shape == want.shape:
        state[key] = have.squeeze(2)
        report.note(f"{source}: squeezed 3-D patch weights {tuple(have.shape)} -> "
                    f"{tuple(want.shape)}")


def _fit_pos_embed(state: dict, target: dict, report: LoadReport, source: str) -> None:
    have, want = state["pos_embed"], target["pos_embed"]
    if have.shape == want.shape or have.dim() != 3 or have.shape[-1] != want.shape[-1]:
        return
    grid = math.isqrt(want.shape[1] - 1)
    try:
        state["pos_embed"] = resize_pos_embed(have, grid)
    except ValueError as err:
        raise CheckpointError(f"{source}: cannot resize pos_embed {tuple(have.shape)} to "
                              f"{tuple(want.shape)}: {err}") from err
    old = math.isqrt(have.shape[1] - 1)
    report.note(f"{source}: resized pos_embed from a {old}x{old} to a {grid}x{grid} patch grid "
                f"(bicubic)")


def _fit_temporal(state: dict, target: dict, report: LoadReport, source: str) -> None:
    key = "temporal_pos_embedding"
    if key in target and key not in state:
        report.kept_from_model.append(key)
        report.note(f"{source}: has no {key} (an image checkpoint); the video model keeps its "
                    f"own (zeros)")
    elif key in state and key not in target:
        del state[key]
        report.note(f"{source}: dropped {key}: the image model has none")
    elif key in state and state[key].shape != target[key].shape and \
            state[key].shape[-1] == target[key].shape[-1]:
        old, new = state[key].shape[1], target[key].shape[1]
        state[key] = resize_temporal_pos_embed(state[key], new)
        report.note(f"{source}: resized {key} from {old} to {new} time steps (linear)")


def check_fits(state: Mapping[str, Tensor], model: nn.Module, source: str,
               allowed_missing: list[str] | tuple[str, ...] = ()) -> None:
    """Raise :class:`CheckpointError` naming every missing, unexpected or mis-shaped key."""
    target = model.state_dict()
    missing = [k for k in target if k not in state and k not in allowed_missing]
    unexpected = [k for k in state if k not in target]
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
                  for k in state if k in target and state[k].shape != target[k].shape]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    for title, items in (("shape mismatches", mismatched), ("missing keys", missing),
                         ("unexpected keys", unexpected)):
        if items:
            more = f", ... ({len(items)} in all)" if len(items) > 8 else ""
            shown = ", ".join(items[:8]) + more
            parts.append(f"{title}: {shown}")
    config = getattr(model, "config", None)
    mine = f" (embed_dim {config.embed_dim}, depth {config.depth})" if config else ""
    guess = guess_model_name(state)
    hint = (f"it looks like {guess}: build that model (--model {guess})" if guess else
            "build the model the checkpoint was trained with")
    raise CheckpointError(f"{source} does not fit the model{mine}; {hint}. {'; '.join(parts)}")


def guess_model_name(state: Mapping[str, Tensor]) -> str | None:
    """The preset whose width and depth match the checkpoint, if any."""
    if "cls_token" not in state:
        return None
    dim = state["cls_token"].shape[-1]
    depth = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"layers\.(\d+)\.", k))),
                    default=-1)
    video = "temporal_pos_embedding" in state or state.get(
        "patch_embed.proj.weight", torch.empty(0)).dim() == 5
    for name, preset in PRESETS.items():
        if (preset.embed_dim, preset.depth, preset.video) == (dim, depth, video):
            return name
    return None


def load_state_dict_into(
    model: nn.Module, state: Mapping[str, Tensor], source: str = "checkpoint"
) -> LoadReport:
    """Fit ``state`` to ``model`` and load it strictly (but for what fitting reports as kept)."""
    fitted, report = fit_state_dict(state, model, source)
    check_fits(fitted, model, source, allowed_missing=report.kept_from_model)
    with torch.no_grad():
        model.load_state_dict(fitted, strict=False)
    return report


def load_pretrained_weights(model: nn.Module, source: str | Path) -> LoadReport:
    """Load a checkpoint file or a :func:`save_pretrained` directory into ``model``."""
    return load_state_dict_into(model, read_state_dict(source), str(source))


def checkpoint_sizes(state: Mapping[str, Tensor], patch_size: int = 16,
                     tubelet_size: int = 1) -> dict[str, int]:
    """``num_classes``, ``num_frames`` and ``img_size`` a checkpoint was trained with, where its
    tensors tell (head rows, temporal embedding length, pos_embed grid)."""
    sizes = {}
    if "head.weight" in state:
        sizes["num_classes"] = int(state["head.weight"].shape[0])
    if "temporal_pos_embedding" in state:
        sizes["num_frames"] = int(state["temporal_pos_embedding"].shape[1]) * tubelet_size
    if "pos_embed" in state:
        grid = math.isqrt(state["pos_embed"].shape[1] - 1)
        if grid * grid == state["pos_embed"].shape[1] - 1:
            sizes["img_size"] = grid * patch_size
    return sizes


# ---------------------------------------------------------------------------------- our own format
def save_pretrained(model: nn.Module, directory: str | Path,
                    class_names: list[str] | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (config, data config, class names) into
    ``directory``, each atomically; ``config.json`` goes last so its presence means complete."""
    from safetensors.torch import save_file

    config: VideoMambaConfig = model.config
    if class_names is not None and config.num_classes and len(class_names) != config.num_classes:
        raise CheckpointError(f"{directory}: {len(class_names)} class names for a model with "
                              f"{config.num_classes} classes; pass one name per class")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_name": getattr(model, "model_name", None),
        "model_config": config.to_dict(),
        "data_config": _data_config_dict(default_data_config(config)),
        "class_names": class_names,
    }
    atomic_write_json(directory / CONFIG_NAME, meta)
    return directory


def _data_config_dict(data: DataConfig) -> dict[str, Any]:
    return {"input_size": data.input_size, "num_frames": data.num_frames, "mean": list(data.mean),
            "std": list(data.std), "interpolation": data.interpolation}


def read_pretrained_config(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a :func:`save_pretrained` directory."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; {directory} is not a directory written by "
                              f"save_pretrained / `videomamba convert`")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}); convert the checkpoint again") \
            from err
    if not (isinstance(meta, dict) and meta.get("format") == FORMAT_NAME
            and "model_config" in meta):
        raise CheckpointError(f"{path}: not a videomamba config (needs \"format\": "
                              f"\"{FORMAT_NAME}\" and \"model_config\")")
    return meta


def from_pretrained(directory: str | Path, **overrides: Any) -> nn.Module:
    """Rebuild the model saved in ``directory`` and load its weights. ``overrides`` change the
    config (e.g. ``scan_backend``, ``use_checkpoint``, or ``num_frames``: the embeddings are
    resized to fit). The model gets ``class_names`` (a list, or None when unknown)."""
    from videomamba.models.videomamba import build_model

    meta = read_pretrained_config(directory)
    config_path = str(Path(directory) / CONFIG_NAME)
    config = VideoMambaConfig.from_dict(meta["model_config"], source=config_path)
    config = config.replace(**overrides)
    model = build_model(config)
    load_state_dict_into(model, read_state_dict(directory), str(Path(directory) / WEIGHTS_NAME))
    model.model_name = meta.get("model_name")
    class_names = meta.get("class_names")
    model.class_names = class_names if config.num_classes == meta["model_config"]["num_classes"] \
        else None
    return model
