"""Frozen teachers for masked pretraining, behind one small interface.

A teacher maps a clip ``(B, C, T, H, W)`` to :class:`TeacherOutput`: L2-normalised features
``(B, 1 + T*h*w, D)`` (a class token first, then the patch tokens frame by frame, row-major
inside a frame: the student's scan order) and, when it has one, the class token's attention
over each frame's patches ``(B, T, h*w)`` (for attention-guided masks). Teachers are frozen and
stay in eval mode; their forward runs without gradients.

- :class:`CLIPTeacher`: the CLIP ViT image tower (OpenAI CLIP / OpenCLIP ``visual``), applied
  frame by frame as the official unmasked-teacher code does. It is our own implementation with
  the OpenCLIP/OpenAI key names (``conv1``, ``class_embedding``, ``transformer.resblocks.*``,
  ``ln_post``, ``proj``) because ``open_clip`` imports ``torchvision`` at import time, which does
  not install beside a CPU build of torch from PyPI; weights come from a local file the user
  names (an OpenCLIP/OpenAI checkpoint, or the official ``vit_b16.pth`` extract).
- :class:`TimmViTTeacher`: any timm ViT with local weights; needs ``timm`` (and so torchvision).
- :class:`VideoMambaTeacher`: one of our own trained models.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videomamba.errors import BackendUnavailableError, CheckpointError, ConfigError


@dataclass
class TeacherOutput:
    features: Tensor  # (B, 1 + T*h*w, D), L2-normalised, cls first
    attention: Tensor | None = None  # (B, T, h*w) class-token attention, rows sum to 1


class Teacher(nn.Module):
    """Base class: frozen, always in eval mode, forward without gradients."""

    feature_dim: int
    patch_size: int
    input_size: int  # the clip is resized to this (bicubic) before the teacher sees it

    def freeze(self) -> Teacher:
        for param in self.parameters():
            param.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> Teacher:
        # A teacher never trains: dropout / drop-path stay off whatever the engine asks.
        return super().train(False)

    @torch.no_grad()
    def forward(self, video: Tensor) -> TeacherOutput:
        """``video`` ``(B, C, T, H, W)`` -> :class:`TeacherOutput` (see module doc)."""
        return self.encode(resize_clip(video, self.input_size))

    def encode(self, video: Tensor) -> TeacherOutput:
        raise NotImplementedError


def resize_clip(video: Tensor, size: int) -> Tensor:
    """``(B, C, T, H, W)`` -> ``(B, C, T, size, size)`` (bicubic per frame), as the official
    engine resizes clips for a teacher of another resolution."""
    batch, chans, time, height, width = video.shape
    if (height, width) == (size, size):
        return video
    frames = video.reshape(batch, chans * time, height, width)
    frames = F.interpolate(frames, size=(size, size), mode="bicubic", align_corners=False)
    return frames.reshape(batch, chans, time, size, size)


def frames_to_batch(video: Tensor) -> Tensor:
    """``(B, C, T, H, W)`` -> ``(B*T, C, H, W)``."""
    batch, chans, time, height, width = video.shape
    return video.permute(0, 2, 1, 3, 4).reshape(batch * time, chans, height, width)


def video_tokens(cls: Tensor, patches: Tensor, batch: int) -> Tensor:
    """Per-frame ``cls`` ``(B*T, D)`` and ``patches`` ``(B*T, N, D)`` -> ``(B, 1 + T*N, D)``:
    the class tokens averaged over frames (the official ``clip_return_cls``), then the patches
    in scan order."""
    dim = patches.shape[-1]
    cls = cls.reshape(batch, -1, dim).mean(dim=1, keepdim=True)
    return torch.cat([cls, patches.reshape(batch, -1, dim)], dim=1)


def patch_distribution(cls_attention: Tensor, batch: int, time: int) -> Tensor:
    """The class token's attention to each frame's patches ``(B*T, N)`` -> ``(B, T, N)``,
    renormalised over the patches (the share it gave itself is left out)."""
    weights = cls_attention.float()
    return (weights / weights.sum(-1, keepdim=True)).reshape(batch, time, -1)


# ------------------------------------------------------------------------------------------ CLIP
class QuickGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """The CLIP transformer block (pre-norm attention and MLP), OpenCLIP key names."""

    def __init__(self, width: int, heads: int, quick_gelu: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, 4 * width)),
            ("gelu", QuickGELU() if quick_gelu else nn.GELU()),
            ("c_proj", nn.Linear(4 * width, width)),
        ]))

    def forward(self, x: Tensor, need_attention: bool = False) -> tuple[Tensor, Tensor | None]:
        """``x`` ``(N, L, width)`` -> same, and the head-averaged attention ``(N, L, L)``."""
        normed = self.ln_1(x)
        out, attn = self.attn(normed, normed, normed, need_weights=need_attention,
                              average_attn_weights=True)
        x = x + out
        return x + self.mlp(self.ln_2(x)), attn


@dataclass(frozen=True)
class CLIPVisionConfig:
    width: int = 768
    layers: int = 12
    heads: int = 12
    patch_size: int = 16
    image_size: int = 224
    output_dim: int = 512
    quick_gelu: bool = True  # OpenAI weights; OpenCLIP's own trainings use GELU (no -quickgelu)


CLIP_PRESETS = {
    "ViT-B-16": CLIPVisionConfig(),
    "ViT-L-14": CLIPVisionConfig(width=1024, layers=24, heads=16, patch_size=14,
                                 output_dim=768),
}


class CLIPTeacher(Teacher):
    """The CLIP ViT image tower, frame by frame.

    Features follow the official unmasked-teacher setting (``clip_return_cls``): the output of
    the last block (before ``ln_post``) times ``proj``, L2-normalised; the class token is the
    mean of the per-frame class tokens. The attention is the last block's class-token row,
    averaged over heads."""

    def __init__(self, config: CLIPVisionConfig = CLIPVisionConfig()) -> None:
        super().__init__()
        c = self.config = config
        self.feature_dim, self.patch_size, self.input_size = c.output_dim, c.patch_size, c.image_size
        grid = c.image_size // c.patch_size
        scale = c.width**-0.5
        self.conv1 = nn.Conv2d(3, c.width, c.patch_size, c.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(c.width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, c.width))
        self.ln_pre = nn.LayerNorm(c.width)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(
            ResidualAttentionBlock(c.width, c.heads, c.quick_gelu) for _ in range(c.layers))
        self.ln_post = nn.LayerNorm(c.width)  # kept for key compatibility; unused (see above)
        self.proj = nn.Parameter(scale * torch.randn(c.width, c.output_dim))

    def encode(self, video: Tensor) -> TeacherOutput:
        batch, time = video.shape[0], video.shape[2]
        x = self.conv1(frames_to_batch(video)).flatten(2).transpose(1, 2)  # (B*T, N, width)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype))
        blocks = self.transformer.resblocks
        attn = None
        for index, block in enumerate(blocks):
            x, attn = block(x, need_attention=index == len(blocks) - 1)
        # The class tokens are averaged over frames before the projection (official order).
        tokens = video_tokens(x[:, 0], x[:, 1:], batch)
        features = F.normalize(tokens @ self.proj, dim=-1)
        return TeacherOutput(features, patch_distribution(attn[:, 0, 1:], batch, time))


def clip_state_dict(state: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """The image tower's keys of an OpenCLIP/OpenAI checkpoint (under ``visual.``) or of a bare
    tower file (the official ``vit_b16.pth`` extract), 3-D ``conv1`` squeezed to 2-D."""
    visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    state = visual or dict(state)
    if "conv1.weight" not in state or "proj" not in state:
        raise CheckpointError(f"{source}: not a CLIP ViT image tower (no visual.conv1.weight / "
                              f"visual.proj); pass an OpenCLIP or OpenAI CLIP ViT checkpoint")
    if state["conv1.weight"].dim() == 5:  # inflated (d, 3, 1, p, p)
        state["conv1.weight"] = state["conv1.weight"][:, :, state["conv1.weight"].shape[2] // 2]
    return state


def clip_config_from_state(state: dict[str, Tensor], quick_gelu: bool,
                           heads: int | None = None) -> CLIPVisionConfig:
    """The tower's sizes, read from its tensors; ``heads`` defaults to width / 64 (every
    released CLIP ViT uses 64-dim heads)."""
    width, _, patch, _ = state["conv1.weight"].shape
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    grid = math.isqrt(state["positional_embedding"].shape[0] - 1)
    return CLIPVisionConfig(width=width, layers=layers, heads=heads or max(1, width // 64),
                            patch_size=patch, image_size=grid * patch,
                            output_dim=state["proj"].shape[1], quick_gelu=quick_gelu)


def load_clip_teacher(path: str | Path, quick_gelu: bool = True,
                      heads: int | None = None) -> CLIPTeacher:
    """A :class:`CLIPTeacher` with the weights of the local file ``path`` (sizes read from it).
    ``quick_gelu``: True for OpenAI weights, False for OpenCLIP's own (non ``-quickgelu``)."""
    from videomamba.models.checkpoint import read_state_dict

    state = clip_state_dict(read_state_dict(path), str(path))
    teacher = CLIPTeacher(clip_config_from_state(state, quick_gelu, heads))
    expected = set(teacher.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{path}: does not fit a CLIP ViT tower (missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}); only plain CLIP ViTs are supported")
    teacher.load_state_dict(state)
    return teacher.freeze()


# ------------------------------------------------------------------------------------------ timm
def import_timm():
    """``timm``, or :class:`BackendUnavailableError` saying how to get it."""
    try:
        import timm
    except ImportError as err:
        raise BackendUnavailableError(
            f"the timm teacher needs timm, which failed to import ({err}); install timm and a "
            f"torchvision built for your torch (`pip install timm torchvision` with a CUDA torch, "
            f"or the CPU wheels from the PyTorch index), or use the clip/videomamba teacher"
        ) from None
    return timm


class TimmViTTeacher(Teacher):
    """A timm VisionTransformer (``cls_token`` first), frame by frame: its final-norm tokens,
    L2-normalised; the class-token attention of its last block, averaged over heads."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        if not hasattr(vit, "blocks") or getattr(vit, "cls_token", None) is None:
            raise ConfigError("the timm teacher must be a ViT with a class token "
                              "(timm VisionTransformer, e.g. vit_base_patch16_224)")
        self.vit = vit
        self.feature_dim = vit.embed_dim
        self.patch_size = vit.patch_embed.patch_size[0]
        self.input_size = vit.patch_embed.img_size[0]

    def encode(self, video: Tensor) -> TeacherOutput:
        vit, batch, time = self.vit, video.shape[0], video.shape[2]
        x = vit.norm_pre(vit._pos_embed(vit.patch_embed(frames_to_batch(video))))
        for block in vit.blocks[:-1]:
            x = block(x)
        attention = timm_cls_attention(vit.blocks[-1], x)
        x = vit.norm(vit.blocks[-1](x))
        prefix = getattr(vit, "num_prefix_tokens", 1)
        features = F.normalize(video_tokens(x[:, 0], x[:, prefix:], batch), dim=-1)
        return TeacherOutput(features, patch_distribution(attention[:, prefix:], batch, time))


def timm_cls_attention(block: nn.Module, x: Tensor) -> Tensor:
    """Head-averaged attention of the class token over all tokens ``(N, L)`` of a timm ViT
    block (recomputed from its ``qkv``: the fused kernel does not return weights)."""
    attn = block.attn
    qkv = attn.qkv(block.norm1(x)).reshape(x.shape[0], x.shape[1], 3, attn.num_heads, -1)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(q), attn.k_norm(k)
    scores = (q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)  # (N, heads, 1, L)
    return scores.softmax(dim=-1).mean(dim=1)[:, 0]


def load_timm_teacher(name: str, path: str | Path | None, img_size: int | None = None
                      ) -> TimmViTTeacher:
    """``timm.create_model(name)`` with the weights of the local file ``path`` (None: random
    weights, for tests)."""
    timm = import_timm()
    kwargs = {"num_classes": 0, "pretrained": False}
    if img_size is not None:
        kwargs["img_size"] = img_size
    vit = timm.create_model(name, **kwargs)
    if path is not None:
        from videomamba.models.checkpoint import read_state_dict

        state = {k: v for k, v in read_state_dict(path).items() if not k.startswith("head.")}
        result = vit.load_state_dict(state, strict=False)
        if result.missing_keys:
            raise CheckpointError(f"{path}: does not fit timm model {name!r}: missing "
                                  f"{result.missing_keys[:5]}")
    return TimmViTTeacher(vit).freeze()


# ------------------------------------------------------------------------------------ VideoMamba
class VideoMambaTeacher(Teacher):
    """One of our trained models: its final-norm tokens (cls first), L2-normalised.

    A Mamba has no attention map; for attention-guided masks the class token's "attention" is
    ``softmax(cos(cls, patch) / temperature)`` over each frame's patches: the tokens whose
    final features agree most with the clip's summary."""

    def __init__(self, model: nn.Module, temperature: float = 0.1) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature
        c = model.config
        self.feature_dim, self.patch_size, self.input_size = c.embed_dim, c.patch_size, c.img_size
        self.frames = c.num_tokens_t

    def encode(self, video: Tensor) -> TeacherOutput:
        tokens = F.normalize(self.model.forward_features(video, return_all_tokens=True), dim=-1)
        batch = tokens.shape[0]
        similarity = (tokens[:, 1:] * tokens[:, :1]).sum(-1) / self.temperature
        attention = similarity.reshape(batch, self.frames, -1).softmax(dim=-1)
        return TeacherOutput(tokens, attention)


def load_videomamba_teacher(path: str | Path) -> VideoMambaTeacher:
    """A :class:`VideoMambaTeacher` from a directory written by ``save_pretrained`` (or
    ``videomamba train``'s ``model/`` output)."""
    from videomamba.models.checkpoint import from_pretrained

    return VideoMambaTeacher(from_pretrained(resolve_model_dir(path))).freeze()


def resolve_model_dir(path: str | Path) -> Path:
    """``path`` itself when it holds ``config.json``, else a ``model/`` or ``best/`` inside it."""
    path = Path(path)
    for candidate in (path, path / "model", path / "best", path / "final"):
        if (candidate / "config.json").is_file():
            return candidate
    raise CheckpointError(f"{path}: no config.json here (nor in model/, best/, final/); pass a "
                          f"directory written by save_pretrained or `videomamba train`")


TEACHER_KINDS = ("videomamba", "clip", "timm")


def build_teacher(kind: str, path: str | Path | None = None, name: str | None = None,
                  quick_gelu: bool = True, img_size: int | None = None) -> Teacher:
    """A frozen teacher: ``videomamba`` (``path``: our model dir), ``clip`` (``path``: CLIP
    weights file), ``timm`` (``name``: timm model, ``path``: its weights)."""
    if kind == "videomamba":
        if path is None:
            raise ConfigError("teacher.kind=videomamba needs teacher.path (a trained model dir)")
        return load_videomamba_teacher(path)
    if kind == "clip":
        if path is None:
            raise ConfigError("teacher.kind=clip needs teacher.path: a local OpenCLIP/OpenAI "
                              "CLIP ViT checkpoint (nothing is downloaded)")
        return load_clip_teacher(path, quick_gelu=quick_gelu)
    if kind == "timm":
        if not name:
            raise ConfigError("teacher.kind=timm needs teacher.name (e.g. vit_base_patch16_224)")
        return load_timm_teacher(name, path, img_size)
    raise ConfigError(f"unknown teacher kind {kind!r}; choose one of {', '.join(TEACHER_KINDS)}")
