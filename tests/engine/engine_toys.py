"""Tiny stand-ins for the engine tests: a model shaped like VideoMamba and a dict dataset."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from videomamba.engine.config import Recipe, recipe_from_dict


class ToyBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mixer = nn.Linear(dim, dim)
        self.drop = nn.Dropout(0.1)  # draws from the torch RNG, like drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.mixer(self.norm(x)))


class ToyVideoNet(nn.Module):
    """``(B, C, T, H, W)`` -> logits; parameter names follow the VideoMamba layout."""

    def __init__(self, num_classes: int = 4, dim: int = 8, depth: int = 3, frames: int = 2,
                 size: int = 4) -> None:
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(3, dim, kernel_size=(1, size, size), stride=(1, size, size))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 2, dim))
        self.temporal_pos_embedding = nn.Parameter(torch.zeros(1, frames, dim))
        self.layers = nn.ModuleList(ToyBlock(dim) for _ in range(depth))
        self.norm_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "temporal_pos_embedding"}

    def get_num_layers(self) -> int:
        return len(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed.proj(x).flatten(3).mean(-1).transpose(1, 2)  # (B, T, D)
        tokens = tokens + self.temporal_pos_embedding[:, : tokens.shape[1]]
        cls = self.cls_token.expand(x.shape[0], -1, -1) + self.pos_embed[:, :1]
        h = torch.cat([cls, tokens + self.pos_embed[:, 1:]], dim=1)
        for layer in self.layers:
            h = layer(h)
        return self.head(self.norm_f(h.mean(1)))


class ToyClips(Dataset):
    """Random clips whose label is a linear function of the mean of channel 0 (learnable)."""

    def __init__(self, n: int = 24, num_classes: int = 4, frames: int = 2, size: int = 4,
                 seed: int = 0, augment: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        self.videos = torch.randn(n, 3, frames, size, size, generator=g)
        self.labels = (self.videos[:, 0].mean(dim=(1, 2, 3)) * 3 + 2).clamp(0, num_classes - 1).long()
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        video = self.videos[index]
        if self.augment:  # random noise: uses the (seeded) global torch RNG, like a transform
            video = video + 0.01 * torch.randn_like(video)
        return {"video": video, "label": int(self.labels[index]), "index": index, "path": f"clip{index}"}


def toy_recipe(tmp_dir: str, **sections: dict) -> Recipe:
    data = {
        "model": {"num_classes": 4},
        "data": {"batch_size": 4, "num_workers": 0, "repeated_aug": 1},
        "optim": {"lr": 1e-2, "lr_batch_reference": None, "weight_decay": 0.05, "layer_decay": 0.9,
                  "clip_grad": 1.0, "min_lr": 1e-4, "warmup_lr": 1e-4},
        "schedule": {"epochs": 2, "warmup_epochs": 1},
        "mixup": {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "label_smoothing": 0.1},
        "train": {"output_dir": tmp_dir, "seed": 3, "precision": "fp32", "ema_decay": 0.9,
                  "log_every_steps": 1},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return recipe_from_dict(data, "toy")
