"""Model and data configuration as plain data: one dataclass, named presets.

The defaults reproduce the official release (OpenGVLab/VideoMamba, ``video_sm`` and ``image_sm``
``VisionMamba``): RMSNorm with eps 1e-5, the residual stream kept in float32, the add of the
residual fused into the norm, bidirectional ("v2") mixers with ``d_state=16, d_conv=4, expand=2``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from videomamba.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class VideoMambaConfig:
    """Everything that fixes a VideoMamba model's architecture and behaviour."""

    embed_dim: int = 192
    depth: int = 24
    video: bool = True  # False: the image model (Conv2d patches, no temporal embedding)
    # mixer ("v2" bidirectional Mamba)
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | str = "auto"  # "auto" -> ceil(embed_dim / 16)
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    # tokens
    patch_size: int = 16
    tubelet_size: int = 1  # frames per token (the official ``kernel_size``)
    img_size: int = 224
    num_frames: int = 8  # ignored by the image model
    in_chans: int = 3
    num_classes: int = 400  # 0: no head, forward returns the feature
    # regularisation
    drop_rate: float = 0.0  # dropout after the position embeddings (``pos_drop``)
    drop_path_rate: float = 0.1  # the official default; recipes override it
    fc_drop_rate: float = 0.0  # dropout before the head (video model's ``head_drop``)
    # norms and residual stream
    rms_norm: bool = True  # False: LayerNorm (the official FLOPs setting)
    norm_eps: float = 1e-5
    residual_in_fp32: bool = True
    fused_add_norm: bool = True  # add the residual inside the norm, in float32 (official kernel)
    # compute
    use_checkpoint: bool = False
    checkpoint_num: int = 0  # the first `checkpoint_num` mixers are recomputed in backward
    scan_backend: str = "auto"

    def __post_init__(self) -> None:
        if self.embed_dim <= 0 or self.depth <= 0:
            raise ConfigError(f"embed_dim and depth must be positive, got {self.embed_dim}, "
                              f"{self.depth}")
        if self.img_size % self.patch_size:
            raise ConfigError(f"img_size {self.img_size} is not a multiple of patch_size "
                              f"{self.patch_size}; pick img_size = k * {self.patch_size}")
        if self.video and self.num_frames % self.tubelet_size:
            raise ConfigError(f"num_frames {self.num_frames} is not a multiple of tubelet_size "
                              f"{self.tubelet_size}")
        if not (self.dt_rank == "auto" or (isinstance(self.dt_rank, int) and self.dt_rank > 0)):
            raise ConfigError(f"dt_rank must be 'auto' or a positive int, got {self.dt_rank!r}")
        if self.checkpoint_num < 0:
            raise ConfigError(f"checkpoint_num must be >= 0, got {self.checkpoint_num}")

    @property
    def d_inner(self) -> int:
        return int(self.expand * self.embed_dim)

    @property
    def dt_rank_value(self) -> int:
        return math.ceil(self.embed_dim / 16) if self.dt_rank == "auto" else int(self.dt_rank)

    @property
    def grid_size(self) -> int:
        """Patches per side."""
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Patches per frame."""
        return self.grid_size**2

    @property
    def num_tokens_t(self) -> int:
        """Tokens along time (frames / tubelet); 1 for the image model."""
        return self.num_frames // self.tubelet_size if self.video else 1

    @property
    def seq_len(self) -> int:
        """Sequence length the blocks see: cls + T' * h * w."""
        return 1 + self.num_tokens_t * self.num_patches

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> VideoMambaConfig:
        """Build from a dict (e.g. ``config.json``); unknown keys are an error naming ``source``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown model config keys {unknown}; "
                              f"known keys are {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> VideoMambaConfig:
        """A copy with ``changes``; unknown names are an error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown model option(s) {unknown}; known options are "
                              f"{sorted(known)}")
        return replace(self, **changes)


@dataclass(frozen=True)
class DataConfig:
    """How inputs must be prepared for a model: what its weights were trained with."""

    input_size: int = 224
    num_frames: int = 8
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    class_names: list[str] | None = field(default=None, compare=False)


# name -> (sizes, whether video); the official register_model functions pick exactly these.
_SIZES = {
    "tiny": {"embed_dim": 192, "depth": 24},
    "small": {"embed_dim": 384, "depth": 24},
    "middle": {"embed_dim": 576, "depth": 32},
    "base": {"embed_dim": 768, "depth": 24},
}

PRESETS: dict[str, VideoMambaConfig] = {
    **{
        f"videomamba_{size}": VideoMambaConfig(**dims, video=True, num_classes=400)
        for size, dims in _SIZES.items()
        if size != "base"
    },
    **{
        f"videomamba_image_{size}": VideoMambaConfig(**dims, video=False, num_classes=1000)
        for size, dims in _SIZES.items()
    },
}


def preset(name: str) -> VideoMambaConfig:
    """A fresh copy of the named preset; an unknown name is an error listing the known ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(PRESETS))}")
    return replace(PRESETS[name])


def default_data_config(config: VideoMambaConfig) -> DataConfig:
    """Input size, frames and normalisation the official weights of ``config`` expect."""
    # The official video recipes resize with bilinear, the image (timm/DeiT) ones with bicubic.
    return DataConfig(input_size=config.img_size,
                      num_frames=config.num_frames if config.video else 1,
                      interpolation="bilinear" if config.video else "bicubic")
