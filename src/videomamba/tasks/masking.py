"""Token masks for masked (unmasked-teacher) pretraining.

A mask is a bool tensor ``(B, T'*h*w)`` over the patch tokens in scan order (frame by frame,
row-major inside a frame), ``True`` = masked (dropped from the student's sequence), as in the
official generators. The class token is never masked. Three kinds, as in the official release
(``video_sm/datasets/masking_generator.py`` and ``engine_for_pretraining_videomamba.py``):

- ``random``: ``int(ratio * T'*h*w)`` tokens masked anywhere;
- ``tube``: ``int(ratio * h*w)`` positions masked, the same ones in every frame;
- ``attention``: per frame, ``h*w - int(ratio * h*w)`` tokens kept, drawn without replacement
  with probability proportional to the teacher's class-token attention (the official
  ``torch.multinomial``), or the most attended ones with ``sample=False``.

Every row masks the same number of tokens, so the kept tokens of a batch stack into one tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from videomamba.errors import ConfigError

MASK_TYPES = ("random", "tube", "attention")


def check_ratio(ratio: float) -> None:
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"mask ratio must be in [0, 1), got {ratio}; the official one is 0.8")


def random_mask(batch: int, frames: int, patches: int, ratio: float,
                generator: torch.Generator | None = None) -> Tensor:
    """``(B, frames*patches)`` bool, ``int(ratio * frames*patches)`` True per row, anywhere."""
    check_ratio(ratio)
    total = frames * patches
    return _mask_from_scores(torch.rand(batch, total, generator=generator), int(ratio * total))


def tube_mask(batch: int, frames: int, patches: int, ratio: float,
              generator: torch.Generator | None = None) -> Tensor:
    """``(B, frames*patches)`` bool: one spatial mask of ``int(ratio * patches)`` positions per
    sample, repeated in every frame (a tube through time)."""
    check_ratio(ratio)
    spatial = _mask_from_scores(torch.rand(batch, patches, generator=generator),
                                int(ratio * patches))
    return spatial.unsqueeze(1).expand(batch, frames, patches).reshape(batch, frames * patches)


def attention_mask(attention: Tensor, ratio: float, sample: bool = True,
                   generator: torch.Generator | None = None) -> Tensor:
    """Mask from the teacher's class-token attention ``(B, T', h*w)`` (non-negative, any
    scale): per frame ``h*w - int(ratio * h*w)`` tokens are kept, sampled in proportion to the
    attention (``sample=True``, the official rule) or the top ones. Returns ``(B, T'*h*w)``."""
    check_ratio(ratio)
    batch, frames, patches = attention.shape
    weights = attention.detach().float().reshape(batch * frames, patches).clamp_min(0)
    # A tiny floor keeps multinomial valid where the attention underflows to exact zeros.
    weights = weights + 1e-12
    keep = patches - int(ratio * patches)
    if sample:
        kept = torch.multinomial(weights, keep, replacement=False, generator=generator)
    else:
        kept = weights.topk(keep, dim=1).indices
    mask = torch.ones(batch * frames, patches, dtype=torch.bool, device=attention.device)
    mask.scatter_(1, kept.to(mask.device), False)
    return mask.reshape(batch, frames * patches)


def make_mask(kind: str, batch: int, frames: int, patches: int, ratio: float,
              attention: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """The mask of ``kind`` (``random`` | ``tube`` | ``attention``), see the module doc."""
    if kind == "random":
        return random_mask(batch, frames, patches, ratio, generator)
    if kind == "tube":
        return tube_mask(batch, frames, patches, ratio, generator)
    if kind == "attention":
        if attention is None:
            raise ConfigError("mask type 'attention' needs a teacher that returns class-token "
                              "attention; use mask.type=tube or random with this teacher")
        return attention_mask(attention, ratio, generator=generator)
    raise ConfigError(f"unknown mask type {kind!r}; choose one of {', '.join(MASK_TYPES)}")


def kept_token_indices(mask: Tensor) -> Tensor:
    """Indices ``(B, 1 + K)`` into the full sequence (cls at 0, then the patches) of the tokens
    the student sees: the cls token, then the unmasked patches in scan order."""
    batch = mask.shape[0]
    counts = (~mask).sum(dim=1)
    if not bool((counts == counts[0]).all()):
        raise ValueError("every row of the mask must keep the same number of tokens")
    # Stable sort of the 0/1 mask puts the kept positions first, still in ascending order.
    order = torch.sort(mask.to(torch.int8), dim=1, stable=True).indices[:, : int(counts[0])]
    cls = torch.zeros(batch, 1, dtype=order.dtype, device=order.device)
    return torch.cat([cls, order + 1], dim=1)


def gather_tokens(tokens: Tensor, indices: Tensor) -> Tensor:
    """``tokens`` ``(B, L, d)`` at ``indices`` ``(B, K)`` -> ``(B, K, d)``."""
    return tokens.gather(1, indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def _mask_from_scores(scores: Tensor, num_masked: int) -> Tensor:
    """True at the ``num_masked`` lowest scores of each row (random scores: a uniform draw)."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if num_masked:
        mask.scatter_(1, scores.argsort(dim=1)[:, :num_masked], True)
    return mask
