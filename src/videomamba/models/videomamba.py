"""VideoMamba: the video model and the image model.

Both embed patches, prepend a cls token, add position embeddings, run ``depth`` bidirectional
Mamba blocks over the token sequence, apply the final norm and classify the cls token.

Token order (video): cls first, then patches frame by frame, row-major inside a frame.
``pos_embed`` ``(1, 1 + h*w, d)`` is added to every frame (cls included, before the cls is taken
out); ``temporal_pos_embedding`` ``(1, T', d)`` is added to the patch tokens only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videomamba.models.block import Block, DropPath, add_norm, make_norm
from videomamba.models.config import VideoMambaConfig
from videomamba.models.mixer import BiMambaMixer


def trunc_normal_(tensor: Tensor, std: float) -> Tensor:
    """The official ``trunc_normal_(std=0.02)``. Its cut is at +-2 absolute, 100 standard
    deviations, which a normal draw never reaches; a plain normal draw is therefore the same
    distribution, and much faster on CPU than the inverse-CDF sampler."""
    with torch.no_grad():
        return tensor.normal_(0.0, std)


class VisionMambaBase(nn.Module):
    """What the video and the image models share: the blocks, the final norm and the head."""

    def __init__(self, config: VideoMambaConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = self.num_features = config.embed_dim
        self.num_classes = config.num_classes
        d = config.embed_dim
        self.patch_embed = self._make_patch_embed()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, d))
        self.pos_drop = nn.Dropout(config.drop_rate)
        self.head = nn.Linear(d, config.num_classes) if config.num_classes > 0 else nn.Identity()
        # Block i gets the rate of block i-1 of the linear rule (block 0 none), and the final
        # add-norm the full rate: the official schedule.
        rates = torch.linspace(0, config.drop_path_rate, config.depth, device="cpu").tolist()
        block_rates = [0.0] + rates
        self.drop_path = DropPath(config.drop_path_rate) if config.drop_path_rate else nn.Identity()
        self.layers = nn.ModuleList(self._make_block(block_rates[i]) for i in range(config.depth))
        self.norm_f = make_norm(d, config.norm_eps, config.rms_norm)
        self._init_weights()

    # ------------------------------------------------------------------ construction
    def _make_patch_embed(self) -> nn.Module:
        raise NotImplementedError

    def _make_block(self, drop_path: float) -> Block:
        c = self.config
        mixer = BiMambaMixer(
            c.embed_dim, d_state=c.d_state, d_conv=c.d_conv, expand=c.expand, dt_rank=c.dt_rank,
            dt_min=c.dt_min, dt_max=c.dt_max, dt_init_floor=c.dt_init_floor,
            scan_backend=c.scan_backend,
        )
        return Block(c.embed_dim, mixer, drop_path=drop_path, norm_eps=c.norm_eps,
                     rms_norm=c.rms_norm, fused_add_norm=c.fused_add_norm,
                     residual_in_fp32=c.residual_in_fp32)

    def _init_weights(self) -> None:
        """The official order: ``segm_init_weights`` on every module (truncated normal 0.02 on
        all Linear weights, zero Linear biases, dt_proj included, as the official code ends up
        doing), ``pos_embed`` truncated normal 0.02, then the Mamba rescale of each ``out_proj``
        (Kaiming-uniform divided by sqrt(depth))."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        trunc_normal_(self.pos_embed, std=0.02)
        for layer in self.layers:
            weight = layer.mixer.out_proj.weight
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            with torch.no_grad():
                weight /= math.sqrt(self.config.depth)

    # ------------------------------------------------------------------ public API
    def no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay (as the official model lists them)."""
        return {"pos_embed", "cls_token"}

    def get_num_layers(self) -> int:
        return len(self.layers)

    def layer_id(self, param_name: str) -> int:
        """Depth of a parameter for layer-wise lr decay: embeddings 0, ``layers.i`` i+1, the
        final norm and head ``depth + 1``."""
        if param_name.startswith(("patch_embed", "cls_token", "pos_embed", "temporal_pos")):
            return 0
        if param_name.startswith("layers."):
            return int(param_name.split(".")[1]) + 1
        return len(self.layers) + 1

    def set_scan_backend(self, backend: str) -> None:
        """Run every mixer's selective scan on ``backend`` (``auto``, ``torch``, ``ref``, ...)."""
        self.config = self.config.replace(scan_backend=backend)
        for layer in self.layers:
            layer.mixer.scan_backend = backend

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head by a freshly initialised one with ``num_classes`` outputs (0: none)."""
        self.num_classes = num_classes
        self.config = self.config.replace(num_classes=num_classes)
        device = self.pos_embed.device
        if num_classes > 0:
            head = nn.Linear(self.embed_dim, num_classes, device=device)
            trunc_normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)
            self.head = head
        else:
            self.head = nn.Identity()

    def forward_features(self, x: Tensor, return_all_tokens: bool = False) -> Tensor:
        """Normalised cls feature ``(B, d)``, or every token ``(B, 1 + T'*h*w, d)`` (cls first)."""
        hidden_states = self.pos_drop(self.embed_tokens(x))
        hidden_states = self.run_blocks(hidden_states)
        return hidden_states if return_all_tokens else hidden_states[:, 0, :]

    def forward_head(self, features: Tensor) -> Tensor:
        """Class scores ``(B, num_classes)`` from the cls feature ``(B, d)``."""
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def run_blocks(self, hidden_states: Tensor) -> Tensor:
        """Tokens ``(B, L, d)`` -> normalised tokens ``(B, L, d)`` after all blocks and norm_f."""
        c = self.config
        residual = None
        for index, layer in enumerate(self.layers):
            checkpointed = c.use_checkpoint and index < c.checkpoint_num
            hidden_states, residual = layer(hidden_states, residual, use_checkpoint=checkpointed)
        normed, _ = add_norm(hidden_states, residual, self.norm_f, self.drop_path,
                             c.fused_add_norm, c.residual_in_fp32)
        return normed

    def embed_tokens(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class VideoMamba(VisionMambaBase):
    """The video model: input ``(B, C, T, H, W)``."""

    def __init__(self, config: VideoMambaConfig) -> None:
        super().__init__(config)
        self.temporal_pos_embedding = nn.Parameter(torch.zeros(1, config.num_tokens_t,
                                                               config.embed_dim))
        self.head_drop = nn.Dropout(config.fc_drop_rate) if config.fc_drop_rate else nn.Identity()

    def _make_patch_embed(self) -> nn.Module:
        c = self.config
        kernel = (c.tubelet_size, c.patch_size, c.patch_size)
        return PatchEmbed(nn.Conv3d(c.in_chans, c.embed_dim, kernel_size=kernel, stride=kernel))

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "temporal_pos_embedding"}

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(self.head_drop(features))

    def embed_tokens(self, x: Tensor) -> Tensor:
        """Clip ``(B, C, T, H, W)`` -> tokens ``(B, 1 + T'*h*w, d)`` with position embeddings."""
        self._check_input(x)
        patches = patchify(x, self.patch_embed.proj)  # (B, T', h*w, d)
        batch, dim = patches.shape[0], patches.shape[-1]
        # pos_embed covers cls + one frame; the cls row only reaches the cls token.
        cls = self.cls_token + self.pos_embed[:, :1]  # (1, 1, d)
        patches = patches + self.pos_embed[:, 1:].unsqueeze(1)
        patches = patches + self.temporal_pos_embedding.unsqueeze(2)  # (1, T', 1, d)
        return torch.cat([cls.expand(batch, -1, -1), patches.reshape(batch, -1, dim)], dim=1)

    def _check_input(self, x: Tensor) -> None:
        c = self.config
        expected = (c.in_chans, c.num_frames, c.img_size, c.img_size)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"video model expects (B, C, T, H, W) = (B, {', '.join(map(str, expected))}), got "
                f"{tuple(x.shape)}; build it with num_frames=/img_size= matching the input")


class ImageMamba(VisionMambaBase):
    """The image model: input ``(B, C, H, W)``."""

    def _make_patch_embed(self) -> nn.Module:
        c = self.config
        return PatchEmbed(nn.Conv2d(c.in_chans, c.embed_dim, kernel_size=c.patch_size,
                                    stride=c.patch_size))

    def embed_tokens(self, x: Tensor) -> Tensor:
        """Image ``(B, C, H, W)`` -> tokens ``(B, 1 + h*w, d)`` with position embeddings."""
        c = self.config
        expected = (c.in_chans, c.img_size, c.img_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"image model expects (B, C, H, W) = (B, {', '.join(map(str, expected))}), got "
                f"{tuple(x.shape)}; build it with img_size= matching the input")
        patches = self.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (B, h*w, d)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.pos_embed


def patchify(x: Tensor, proj: nn.Conv3d) -> Tensor:
    """``proj(x)`` for a clip ``(B, C, T, H, W)``, as tokens ``(B, T', h*w, d)``. In bf16/fp16
    (autocast or half inputs) it is :func:`patch_gemm`: cuDNN's bf16 Conv3d takes an
    implicit-GEMM kernel ~20x slower than the GEMM (0.36 ms of an 11.7 ms VideoMamba-S inference
    step at 8 frames, run 27). float32 keeps the convolution, whose numerics the official model
    has (on a GPU cuDNN computes float32 convolutions in TF32 by default, matmuls not: the GEMM
    moved the fp32 logits 1.6e-4 from the official's, run 50)."""
    reduced = x.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(
        x.device.type)
    if reduced and _tiles_exactly(x, proj):
        return patch_gemm(x, proj)
    return proj(x).flatten(3).permute(0, 2, 3, 1)


def _tiles_exactly(x: Tensor, proj: nn.Conv3d) -> bool:
    """Whether ``proj`` cuts ``x`` into non-overlapping patches that cover it."""
    t, p, q = proj.kernel_size
    return (tuple(proj.stride) == (t, p, q) and not any(proj.padding) and proj.groups == 1
            and x.shape[2] % t == 0 and x.shape[3] % p == 0 and x.shape[4] % q == 0)


def patch_gemm(x: Tensor, proj: nn.Conv3d) -> Tensor:
    """The non-overlapping patch projection ``proj`` of ``x`` ``(B, C, T, H, W)`` as one matrix
    product of the unfolded patches with the kernel ``(d, C*t*p*p)``: ``(B, T', h*w, d)``."""
    batch, chans, frames, height, width = x.shape
    t, p, q = proj.kernel_size
    cols = x.reshape(batch, chans, frames // t, t, height // p, p, width // q, q)
    cols = cols.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(
        batch, frames // t, (height // p) * (width // q), chans * t * p * q)
    return F.linear(cols, proj.weight.reshape(proj.weight.shape[0], -1), proj.bias)


class PatchEmbed(nn.Module):
    """Holds the patch projection as ``patch_embed.proj`` (the official key)."""

    def __init__(self, proj: nn.Module) -> None:
        super().__init__()
        self.proj = proj

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


def build_model(config: VideoMambaConfig) -> VisionMambaBase:
    """The video or the image model for ``config``."""
    return VideoMamba(config) if config.video else ImageMamba(config)
