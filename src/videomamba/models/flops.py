"""Analytic FLOPs and parameter counts of VideoMamba models, selective scan included.

Convention (as fvcore, which the official tables use): one multiply-add counts as one FLOP;
additions that are not part of a multiply-add (biases, residuals, the sum of the two directions)
and transcendental functions (exp, softplus, SiLU) are not counted.

What each part counts, per clip of ``L = 1 + T' * h * w`` tokens (``d`` embed_dim,
``E = expand * d``, ``R`` dt_rank, ``N`` d_state, ``K`` d_conv):

- ``patch_embed``: the Conv3d/Conv2d as a matmul, ``T' h w * (C t p p) * d``;
- ``in_proj``: ``L d 2E``; ``out_proj``: ``L E d``; per direction (two of each):
  ``conv1d`` ``L E K`` (depthwise), ``x_proj`` ``L E (R + 2N)``, ``dt_proj`` ``L R E``;
- ``scan`` (both directions): per token, channel and state element 4 multiply-adds
  (``delta*A``, ``delta*u*B``, ``h = a*h + x``, ``y += C*h``), plus ``delta*u`` and ``D*u`` per
  token and channel; fvcore and thop miss all of it because it runs inside a custom kernel;
- ``gating``: ``y * silu(z)``, ``L E`` per direction;
- ``norms``: every block's norm and the final one over all L tokens, 4 per element for RMSNorm
  (square, mean, scale, weight) and 5 for LayerNorm (fvcore's count);
- ``head``: ``d * num_classes``.

``fvcore_visible`` is what fvcore reports on the official code (patch embed, in_proj, out_proj,
norms, head: conv1d, x_proj, dt_proj and the scan run inside ``mamba_inner_fn``, which it cannot
trace); with it the image models give the official table's 1.1 / 4.3 / 12.7 GFLOPs.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from videomamba.models.config import VideoMambaConfig, preset

CONVENTION = "1 multiply-add = 1 FLOP (fvcore's convention, used by the official tables)"
# Parts that fvcore sees in the official implementation.
FVCORE_VISIBLE = ("patch_embed", "in_proj", "out_proj", "norms", "head")


def resolve_config(
    model_or_name: str | nn.Module | VideoMambaConfig,
    num_frames: int | None = None,
    img_size: int | None = None,
    num_classes: int | None = None,
) -> VideoMambaConfig:
    """The config of a preset name, a model (its ``.config``) or a config, with overrides."""
    if isinstance(model_or_name, VideoMambaConfig):
        config = model_or_name
    elif isinstance(model_or_name, str):
        config = preset(model_or_name)
    else:
        config = model_or_name.config  # type: ignore[assignment]
    changes = {k: v for k, v in (("num_frames", num_frames), ("img_size", img_size),
                                 ("num_classes", num_classes)) if v is not None}
    return config.replace(**changes) if changes else config


def flops_breakdown(config: VideoMambaConfig) -> dict[str, int]:
    """Multiply-adds of one clip (batch 1) per part of the model; see the module doc."""
    d, E, R, N, K = (config.embed_dim, config.d_inner, config.dt_rank_value, config.d_state,
                     config.d_conv)
    L, depth = config.seq_len, config.depth
    patches = config.num_tokens_t * config.num_patches
    patch_volume = config.in_chans * config.patch_size**2 * (
        config.tubelet_size if config.video else 1)
    directions = 2
    per_norm_element = 4 if config.rms_norm else 5
    return {
        "patch_embed": patches * patch_volume * d,
        "in_proj": depth * L * d * 2 * E,
        "conv1d": depth * directions * L * E * K,
        "x_proj": depth * directions * L * E * (R + 2 * N),
        "dt_proj": depth * directions * L * R * E,
        "scan": depth * directions * (4 * L * E * N + 2 * L * E),
        "gating": depth * directions * L * E,
        "out_proj": depth * L * E * d,
        "norms": (depth + 1) * L * d * per_norm_element,
        "head": d * config.num_classes,
    }


def count_params(config: VideoMambaConfig) -> int:
    """Parameters of the model ``config`` builds (official structure), computed from sizes."""
    d, E, R, N, K = (config.embed_dim, config.d_inner, config.dt_rank_value, config.d_state,
                     config.d_conv)
    norm = d if config.rms_norm else 2 * d
    direction = (E * K + E) + E * (R + 2 * N) + (R * E + E) + E * N + E
    block = norm + d * 2 * E + 2 * direction + E * d
    tubelet = config.tubelet_size if config.video else 1
    embed = (d * config.in_chans * tubelet * config.patch_size**2 + d) + d \
        + (config.num_patches + 1) * d
    if config.video:
        embed += config.num_tokens_t * d
    head = d * config.num_classes + config.num_classes if config.num_classes > 0 else 0
    return embed + config.depth * block + norm + head


def count_flops(
    model_or_name: str | nn.Module | VideoMambaConfig,
    num_frames: int | None = None,
    img_size: int | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """FLOPs (multiply-adds) of one clip and parameters of a model.

    ``model_or_name``: a preset name (``videomamba_tiny``), a built model or a config;
    ``num_frames`` / ``img_size`` / ``num_classes`` override its values (presets: 8 frames, 224).
    Returns ``{"model", "num_frames", "img_size", "tokens", "params", "flops", "gflops",
    "breakdown", "fvcore_visible_gflops", "convention"}``.
    """
    config = resolve_config(model_or_name, num_frames, img_size, num_classes)
    parts = flops_breakdown(config)
    total = sum(parts.values())
    if isinstance(model_or_name, nn.Module):
        params = sum(p.numel() for p in model_or_name.parameters())
        name = getattr(model_or_name, "model_name", type(model_or_name).__name__)
    else:
        params = count_params(config)
        name = model_or_name if isinstance(model_or_name, str) else "custom"
    return {
        "model": name,
        "num_frames": config.num_frames if config.video else 1,
        "img_size": config.img_size,
        "tokens": config.seq_len,
        "params": params,
        "flops": total,
        "gflops": total / 1e9,
        "breakdown": parts,
        "fvcore_visible_gflops": sum(parts[k] for k in FVCORE_VISIBLE) / 1e9,
        "convention": CONVENTION,
    }
