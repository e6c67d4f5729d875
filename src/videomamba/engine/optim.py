"""AdamW with layer-wise learning-rate decay and the usual no-weight-decay rules.

Layer ids (depth = number of blocks):
  * 0: the embedding (``patch_embed.*``, ``cls_token``, ``pos_embed``, ``temporal_pos_embedding``);
  * i + 1: everything under ``layers.{i}.``;
  * depth + 1: the rest (``norm_f``, ``head``, ...).
Group lr = lr * layer_decay ** (depth + 1 - layer_id), so the head trains at the full rate.

The official ``optim_factory.get_num_layer_for_vit`` has the ``layers.`` rule commented out (their
issue #109), which puts every block in the last group (no decay at all), and spells the temporal
embedding ``temporal_positional_embedding`` so ours lands with the head. Both are fixed here.

No weight decay on 1-D parameters (norms, ``D``), biases, the names of
``model.no_weight_decay()``, and (optionally) parameters flagged ``_no_weight_decay``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from videomamba.engine.config import OptimConfig
from videomamba.errors import ConfigError

EMBEDDING_NAMES = ("cls_token", "pos_embed", "temporal_pos_embedding", "mask_token")
EMBEDDING_PREFIXES = ("patch_embed.",)
_BLOCK = re.compile(r"^layers\.(\d+)\.")
# Prefixes added by wrappers: DDP/FSDP (module.), torch.compile (_orig_mod.).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "_fsdp_wrapped_module.")


def strip_wrapper_prefixes(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def num_blocks(model: nn.Module) -> int:
    """The model's depth: ``get_num_layers()`` when it has one, else ``layers.{i}`` counted."""
    if hasattr(model, "get_num_layers"):
        return int(model.get_num_layers())
    ids = {int(m.group(1)) for n, _ in model.named_parameters() if (m := _BLOCK.match(strip_wrapper_prefixes(n)))}
    return max(ids) + 1 if ids else 0


def layer_id(name: str, depth: int) -> int:
    """The layer-decay group of parameter ``name`` (see module doc)."""
    name = strip_wrapper_prefixes(name)
    if name in EMBEDDING_NAMES or name.startswith(EMBEDDING_PREFIXES):
        return 0
    match = _BLOCK.match(name)
    if match:
        return int(match.group(1)) + 1
    return depth + 1


def uses_weight_decay(name: str, param: torch.Tensor, skip: set[str], respect_flag: bool = True) -> bool:
    name = strip_wrapper_prefixes(name)
    if param.ndim <= 1 or name.endswith(".bias") or name in skip:
        return False
    return not (respect_flag and getattr(param, "_no_weight_decay", False))


@dataclass
class GroupInfo:
    """What one optimiser group holds (for logs and tests)."""

    layer_id: int
    weight_decay: float
    lr_scale: float
    names: list[str]


def param_groups(
    model: nn.Module,
    weight_decay: float,
    layer_decay: float = 1.0,
    respect_no_weight_decay_flag: bool = False,
) -> tuple[list[dict[str, Any]], list[GroupInfo]]:
    """Optimiser parameter groups keyed by (layer id, decay or not), each with an ``lr_scale``.

    ``respect_no_weight_decay_flag`` also exempts parameters carrying ``_no_weight_decay = True``
    (mamba_ssm marks ``A_log`` and ``D`` so); the official VideoMamba recipes do not, so it is off.
    """
    inner = getattr(model, "module", model)
    depth = num_blocks(inner)
    skip = set(inner.no_weight_decay()) if hasattr(inner, "no_weight_decay") else set()
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    infos: dict[tuple[int, bool], GroupInfo] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lid = layer_id(name, depth) if layer_decay < 1.0 else depth + 1
        decay = uses_weight_decay(name, param, skip, respect_no_weight_decay_flag)
        key = (lid, decay)
        if key not in groups:
            scale = layer_decay ** (depth + 1 - lid)
            wd = weight_decay if decay else 0.0
            groups[key] = {"params": [], "weight_decay": wd, "lr_scale": scale}
            infos[key] = GroupInfo(lid, wd, scale, [])
        groups[key]["params"].append(param)
        infos[key].names.append(strip_wrapper_prefixes(name))
    order = sorted(groups)
    return [groups[k] for k in order], [infos[k] for k in order]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW (or SGD) over :func:`param_groups`; lr is set per step by the scheduler."""
    groups, _ = param_groups(model, cfg.weight_decay, cfg.layer_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    raise ConfigError(f"optim.name: unknown optimiser {cfg.name!r}; use adamw or sgd")
