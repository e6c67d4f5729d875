"""VideoMamba models: the mixer, the block, the video and image models, the registry, and
checkpoint I/O (official ``.pth`` in, ``model.safetensors`` + ``config.json`` out)."""

from videomamba.models.checkpoint import (
    from_pretrained,
    load_pretrained_weights,
    load_state_dict_into,
    read_state_dict,
    save_pretrained,
)
from videomamba.models.config import DataConfig, VideoMambaConfig, default_data_config
from videomamba.models.registry import create_model, list_models
from videomamba.models.videomamba import ImageMamba, VideoMamba, VisionMambaBase, build_model

__all__ = [
    "DataConfig",
    "ImageMamba",
    "VideoMamba",
    "VideoMambaConfig",
    "VisionMambaBase",
    "build_model",
    "create_model",
    "default_data_config",
    "from_pretrained",
    "list_models",
    "load_pretrained_weights",
    "load_state_dict_into",
    "read_state_dict",
    "save_pretrained",
]
