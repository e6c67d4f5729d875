"""The two-tower video-text model (the official ``UMT_VIDEOMAMBA``, retrieval part).

* video tower: a VideoMamba encoder without head; its normalised tokens give
  - ``video_tokens`` ``(B, T'*h*w, d_v)``: the patch tokens (cls dropped), fed to the fusion;
  - the pooled feature ``pool_norm(cls + mean of each frame's patches)`` ``(B, T', d_v)``
    (``keep_temporal``, the official retrieval setting) or ``(B, d_v)`` (cls + mean of all);
* text tower: a BERT-style Hugging Face encoder; its first token (``text_pool="cls"``, the
  official choice) or the masked mean of its tokens (``"mean"``, what MiniLM was trained for);
* ``vision_proj`` / ``text_proj`` to ``embed_dim``, a learnable temperature ``temp`` (0.07,
  clamped to [0.001, 0.5] as the official);
* a matching branch: ``fusion`` (layers of self-attention over the caption, cross-attention to the
  video tokens, feed-forward; BERT-style post-norm) and ``itm_head`` ``(width -> 2)``. The official
  model runs the upper BERT layers with cross-attention instead; ours is a separate small stack so
  that any text encoder (MiniLM included) can be used unchanged.

``frame_order_blind=True`` builds the baseline that cannot see frame order: each frame is
encoded on its own (a one-frame VideoMamba) and nothing downstream depends on their order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videomamba.errors import CheckpointError, ConfigError
from videomamba.models.text import MINILM, TextEncoder, build_text_encoder
from videomamba.utils.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

FORMAT_NAME = "videomamba-video-text"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


@dataclass
class VideoTextConfig:
    """Architecture of a :class:`VideoTextModel` (plain data, saved as ``config.json``)."""

    vision: str = "videomamba_tiny"  # a name of videomamba.list_models()
    vision_kwargs: dict[str, Any] = field(default_factory=dict)  # create_model overrides
    text: str = MINILM  # "minilm" or a local Hugging Face model directory
    text_config: dict[str, Any] | None = None  # set: a fresh text encoder of this architecture
    tokenizer: str | None = None  # tokenizer directory / vocab.txt; default: the text source's
    max_text_len: int = 32  # the official max_txt_l
    text_pool: str = "cls"  # cls (official) | mean
    embed_dim: int = 512
    temp: float = 0.07
    pool_type: str = "cls+avg"  # cls+avg (official) | cls | avg
    keep_temporal: bool = True  # one embedding per frame, similarities averaged (official)
    frame_order_blind: bool = False  # the baseline: frames encoded independently
    fusion_layers: int = 2
    fusion_heads: int = 0  # 0: the text encoder's number of heads
    freeze_text: bool = False  # keep the text encoder's weights (no gradient, dropout off)
    # With freeze_text: train the last N transformer layers of the text encoder all the same. A
    # frozen sentence encoder puts captions that differ in one word ("left" / "right") at cosine
    # ~0.99; a trained top layer can pull them apart, and costs only that layer's backward pass.
    text_trainable_layers: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.text_pool in ("cls", "mean"), "text_pool must be cls or mean"),
            (self.pool_type in ("cls+avg", "cls", "avg"), "pool_type must be cls+avg, cls or avg"),
            (self.embed_dim >= 1, "embed_dim must be >= 1"),
            (self.temp > 0, "temp must be > 0"),
            (self.fusion_layers >= 1, "fusion_layers must be >= 1"),
            (self.max_text_len >= 2, "max_text_len must be >= 2"),
            (self.text_trainable_layers >= 0, "text_trainable_layers must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"video-text model config: {message}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> VideoTextConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown video-text model keys {unknown}; known: "
                              f"{sorted(known)}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FusionLayer(nn.Module):
    """Post-norm BERT-style layer: self-attention on text, cross-attention to video, MLP."""

    def __init__(self, width: int, video_width: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(width, eps=1e-12)
        self.cross_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True,
                                                kdim=video_width, vdim=video_width)
        self.norm2 = nn.LayerNorm(width, eps=1e-12)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(4 * width, width))
        self.norm3 = nn.LayerNorm(width, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, text: Tensor, text_mask: Tensor, video: Tensor) -> Tensor:
        pad = text_mask == 0
        h, _ = self.self_attn(text, text, text, key_padding_mask=pad, need_weights=False)
        text = self.norm1(text + self.dropout(h))
        h, _ = self.cross_attn(text, video, video, need_weights=False)
        text = self.norm2(text + self.dropout(h))
        return self.norm3(text + self.dropout(self.mlp(text)))


class VideoTextModel(nn.Module):
    """Video and text encoders in a shared embedding space, plus a matching head."""

    def __init__(self, config: VideoTextConfig, text_encoder: TextEncoder | None = None,
                 vision_pretrained: str | Path | None = None) -> None:
        super().__init__()
        from videomamba.models.registry import create_model

        self.config = config
        vision_kwargs = dict(config.vision_kwargs)
        self.num_frames = int(vision_kwargs.pop("num_frames", 8))
        if config.frame_order_blind:
            # One frame per encoder call, so one frame per token too (a tubelet would need two).
            vision_kwargs["num_frames"], vision_kwargs["tubelet_size"] = 1, 1
        else:
            vision_kwargs["num_frames"] = self.num_frames
        self.vision_encoder = create_model(config.vision, num_classes=0,
                                           pretrained=vision_pretrained, **vision_kwargs)
        self.img_size = int(self.vision_encoder.config.img_size)
        self.text_encoder = text_encoder if text_encoder is not None else build_text_encoder(
            config.text, config.text_config, config.tokenizer, config.max_text_len)
        vision_width, text_width = self.vision_encoder.embed_dim, self.text_encoder.width
        self.vision_pool_norm = nn.LayerNorm(vision_width)  # the official `pool_norm`
        self.vision_proj = nn.Linear(vision_width, config.embed_dim)
        self.text_proj = nn.Linear(text_width, config.embed_dim)
        self.temp = nn.Parameter(torch.tensor(float(config.temp)))
        heads = config.fusion_heads or int(getattr(self.text_encoder.model.config,
                                                   "num_attention_heads", 1))
        self.fusion = nn.ModuleList(FusionLayer(text_width, vision_width, heads)
                                    for _ in range(config.fusion_layers))
        self.itm_head = nn.Linear(text_width, 2)
        self._text_cache: dict[tuple[int, ...], Tensor] = {}  # frozen text: caption ids -> tokens
        self._text_cache_fingerprint: tuple = ()
        if config.freeze_text:
            self.text_encoder.requires_grad_(False)
            for layer in self.text_encoder.top_layers(config.text_trainable_layers):
                layer.requires_grad_(True)

    def forward(self, *args: Any, objective: Any = None, **kwargs: Any) -> Any:
        """``objective(self, *args, **kwargs)`` when given (a training task's loss: running it
        inside ``forward`` lets DDP see every parameter it uses), else :meth:`embed_pairs`."""
        if objective is not None:
            return objective(self, *args, **kwargs)
        return self.embed_pairs(*args, **kwargs)

    def embed_pairs(self, video: Tensor, input_ids: Tensor, attention_mask: Tensor) -> dict[str, Tensor]:
        """Everything the losses need for a batch of (clip, caption) pairs."""
        video_tokens, video_pooled = self.encode_video(video)
        text_tokens, text_pooled = self.encode_text(input_ids, attention_mask)
        return {"video_tokens": video_tokens, "video_emb": self.project_video(video_pooled),
                "text_tokens": text_tokens, "text_emb": self.project_text(text_pooled)}

    def no_weight_decay(self) -> set[str]:
        return {f"vision_encoder.{name}" for name in self.vision_encoder.no_weight_decay()} | {"temp"}

    # ------------------------------------------------------------------------------ video
    def encode_video(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """Clip ``(B, C, T, H, W)`` -> ``(tokens (B, T'*h*w, d_v), pooled)`` with pooled
        ``(B, T', d_v)`` when ``keep_temporal`` else ``(B, d_v)``."""
        batch, frames = video.shape[0], video.shape[2]
        if self.config.frame_order_blind:
            per_frame = video.permute(0, 2, 1, 3, 4).reshape(batch * frames, video.shape[1], 1,
                                                            *video.shape[3:])
            tokens = self.vision_encoder.forward_features(per_frame, return_all_tokens=True)
            tokens = tokens.reshape(batch, frames, *tokens.shape[1:])  # (B, T, 1 + hw, d)
            cls, patches = tokens[:, :, 0], tokens[:, :, 1:]
        else:
            tokens = self.vision_encoder.forward_features(video, return_all_tokens=True)
            steps = self.vision_encoder.config.num_tokens_t
            cls = tokens[:, :1].expand(-1, steps, -1)  # (B, T', d)
            patches = tokens[:, 1:].reshape(batch, steps, -1, tokens.shape[-1])
        pooled = self._pool(cls, patches)
        return patches.flatten(1, 2), pooled

    def _pool(self, cls: Tensor, patches: Tensor) -> Tensor:
        """``cls`` ``(B, T', d)``, ``patches`` ``(B, T', hw, d)`` -> pooled per config."""
        kind = self.config.pool_type
        if self.config.keep_temporal:
            frame_mean = patches.mean(dim=2)
            pooled = {"cls+avg": cls + frame_mean, "cls": cls, "avg": frame_mean}[kind]
        else:
            mean = patches.mean(dim=(1, 2))
            # In the non-blind model every frame's cls row is the one cls token.
            pooled = {"cls+avg": cls.mean(1) + mean, "cls": cls.mean(1), "avg": mean}[kind]
        return self.vision_pool_norm(pooled)

    def project_video(self, pooled: Tensor) -> Tensor:
        return self.vision_proj(pooled)

    # ------------------------------------------------------------------------------ text
    def tokenize(self, texts: Sequence[str], device: torch.device | str | None = None) -> dict[str, Tensor]:
        device = device if device is not None else self.temp.device
        return self.text_encoder.tokenize(texts, device)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Token ids ``(B, L)`` -> ``(tokens (B, L, d_t), pooled (B, d_t))``."""
        if self.config.freeze_text and self.config.text_trainable_layers == 0:
            tokens = self._frozen_text_tokens(input_ids, attention_mask)
        elif self.config.freeze_text:
            self.text_encoder.eval()  # frozen layers: no dropout; only the top ones get gradients
            tokens = self.text_encoder(input_ids, attention_mask)
        else:
            tokens = self.text_encoder(input_ids, attention_mask)
        if self.config.text_pool == "cls":
            return tokens, tokens[:, 0]
        weights = attention_mask.unsqueeze(-1).to(tokens.dtype)
        return tokens, (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def _frozen_text_tokens(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Token features ``(B, L, d_t)`` of the fully frozen text encoder, each distinct caption
        computed once and kept (a caption set repeats the same sentences every epoch, and the
        frozen MiniLM was about half of a training step). Padding positions are zero. The cache
        is dropped whenever a text weight changes (tensor versions and storages are checked)."""
        fingerprint = tuple((p.data_ptr(), p._version) for p in self.text_encoder.parameters())
        if fingerprint != self._text_cache_fingerprint:
            self._text_cache.clear()
            self._text_cache_fingerprint = fingerprint
        masks = attention_mask.bool()
        keys = [tuple(ids[mask].tolist()) for ids, mask in zip(input_ids, masks)]
        first_row: dict[tuple[int, ...], int] = {}
        for row, key in enumerate(keys):
            if key not in self._text_cache:
                first_row.setdefault(key, row)
        if first_row:
            rows = torch.tensor(list(first_row.values()), device=input_ids.device)
            self.text_encoder.eval()
            with torch.no_grad():
                computed = self.text_encoder(input_ids[rows], attention_mask[rows])
            for (key, _), features, mask in zip(first_row.items(), computed, masks[rows]):
                self._text_cache[key] = features[mask]
        first = self._text_cache[keys[0]]
        tokens = first.new_zeros(*input_ids.shape, first.shape[-1])
        for row, key in enumerate(keys):
            tokens[row][masks[row]] = self._text_cache[key].to(tokens.device)
        return tokens

    def project_text(self, pooled: Tensor) -> Tensor:
        return self.text_proj(pooled)

    # ------------------------------------------------------------------------------ matching
    def match_logits(self, text_tokens: Tensor, text_mask: Tensor, video_tokens: Tensor) -> Tensor:
        """Matching logits ``(N, 2)`` (column 1 = match) for N (caption, video) pairs."""
        hidden = text_tokens
        for layer in self.fusion:
            hidden = layer(hidden, text_mask, video_tokens.to(hidden.dtype))
        return self.itm_head(hidden[:, 0])

    @torch.no_grad()
    def clamp_temperature(self, low: float = 0.001, high: float = 0.5) -> None:
        self.temp.clamp_(low, high)

    # ------------------------------------------------------------------------------ search vectors
    @torch.no_grad()
    def video_vectors(self, video: Tensor) -> Tensor:
        """Search vectors ``(B, E)`` float32 whose dot product with :meth:`text_vectors` equals the
        contrastive similarity (before the temperature): the mean over frames of unit
        per-frame embeddings (a unit vector without ``keep_temporal``)."""
        _, pooled = self.encode_video(video)
        return F.normalize(self.project_video(pooled).float(), dim=-1).reshape(
            video.shape[0], -1, self.config.embed_dim).mean(dim=1)

    @torch.no_grad()
    def text_vectors(self, texts: Sequence[str]) -> Tensor:
        """Unit caption embeddings ``(B, E)`` float32."""
        encoded = self.tokenize(texts)
        _, pooled = self.encode_text(encoded["input_ids"], encoded["attention_mask"])
        return F.normalize(self.project_text(pooled).float(), dim=-1)

    # ------------------------------------------------------------------------------ saving
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``model.safetensors``, the tokenizer and ``config.json`` (last, atomically) so
        that :func:`load_video_text_model` rebuilds the model with no other file."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.text_encoder.save_tokenizer(directory / TOKENIZER_DIR)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(tensors, str(tmp))
        config = self.config.to_dict()
        config.update(text=str(TOKENIZER_DIR), text_config=self.text_encoder.hf_config(),
                      tokenizer=TOKENIZER_DIR)
        config["vision_kwargs"] = {**config["vision_kwargs"], "num_frames": self.num_frames,
                                   "img_size": self.img_size}
        meta = {"format": FORMAT_NAME, "format_version": 1, "model_config": config}
        atomic_write_json(directory / CONFIG_NAME, meta)
        return directory


def is_video_text_dir(path: str | Path) -> bool:
    config = Path(path) / CONFIG_NAME
    try:
        return json.loads(config.read_text()).get("format") == FORMAT_NAME
    except (OSError, ValueError):
        return False


def load_video_text_model(directory: str | Path, **overrides: Any) -> VideoTextModel:
    """Rebuild a model written by :meth:`VideoTextModel.save_pretrained` (no download, no other
    file needed); ``overrides`` change config fields (e.g. ``fusion_layers`` must not)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    if not is_video_text_dir(directory):
        raise CheckpointError(f"{config_path}: not a video-text model directory (written by "
                              f"VideoTextModel.save_pretrained / `videomamba train` on a retrieval "
                              f"recipe)")
    data = json.loads(config_path.read_text())["model_config"]
    data.update(overrides)
    data["tokenizer"] = str(directory / TOKENIZER_DIR)
    config = VideoTextConfig.from_dict(data, str(config_path))
    text = build_text_encoder(None, config.text_config, config.tokenizer, config.max_text_len)
    model = VideoTextModel(config, text_encoder=text)
    state = load_file(str(directory / WEIGHTS_NAME))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{directory / WEIGHTS_NAME} does not fit its config: missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    return model


def weights_id(directory: str | Path) -> str:
    """Short content hash of a saved model's weights (identifies the checkpoint in an index)."""
    digest = hashlib.sha256()
    with open(Path(directory) / WEIGHTS_NAME, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------ official weights
# Key layout of the official video_mm checkpoints (UMT_VIDEOMAMBA state dict):
#   vision_encoder.{patch_embed,cls_token,pos_embed,temporal_pos_embedding,layers.*}  -> encoder
#   vision_encoder.norm.weight        (final RMSNorm)  -> vision_encoder.norm_f.weight
#   vision_encoder.pool_norm.*        (LayerNorm)      -> vision_pool_norm.*
#   vision_encoder.clip_decoder.*, clip_pos_embed ...  (masked-pretraining extras, dropped)
#   vision_proj.*, text_proj.*, temp                   -> same names, when the shapes fit
#   text_encoder.bert.{embeddings,encoder.layer.i}.*   -> text_encoder.model.* for the text-only
#       layers (i < fusion_layer, 9 for BERT-base) when our text encoder has that shape;
#   text_encoder.bert.encoder.layer.(>= fusion_layer).*, itm_head.*: the official fusion, which
#       ours does not replicate: not loaded.
_OFFICIAL_DROP = re.compile(r"^vision_encoder\.(clip_|img_pos|pos_embed_clip)")


def map_official_state(state: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """Split an official video_mm state dict into ``{"vision": ..., "pool_norm": ...,
    "heads": ..., "text": ...}`` with our key names."""
    out: dict[str, dict[str, Tensor]] = {"vision": {}, "pool_norm": {}, "heads": {}, "text": {}}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if _OFFICIAL_DROP.match(key):
            continue
        if key.startswith("vision_encoder.pool_norm."):
            out["pool_norm"][key[len("vision_encoder.pool_norm."):]] = value
        elif key.startswith("vision_encoder.norm."):
            out["vision"]["norm_f." + key[len("vision_encoder.norm."):]] = value
        elif key.startswith("vision_encoder."):
            out["vision"][key[len("vision_encoder."):]] = value
        elif key.split(".")[0] in ("vision_proj", "text_proj", "temp"):
            out["heads"][key] = value
        elif key.startswith("text_encoder.bert."):
            out["text"][key[len("text_encoder.bert."):]] = value
    return out


def load_official_video_mm(model: VideoTextModel, path: str | Path) -> list[str]:
    """Load an official video_mm checkpoint (``.pth``) into ``model``: the whole video tower
    (position embeddings resized to the model), the pool norm, and, where shapes fit, the
    projections, temperature and text layers. Returns notes on what was not loaded."""
    from videomamba.models.checkpoint import load_state_dict_into, read_state_dict

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; pass an official video_mm .pth checkpoint")
    parts = map_official_state(read_state_dict(path))
    if not parts["vision"]:
        raise CheckpointError(f"{path}: no 'vision_encoder.' keys; is this a video_mm "
                              f"(UMT_VIDEOMAMBA) checkpoint?")
    notes = [f"video tower: {n}" for n in load_state_dict_into(
        model.vision_encoder, parts["vision"], f"{path} (vision_encoder.*)").notes]
    notes += _load_matching(model.vision_pool_norm, parts["pool_norm"], "pool_norm")
    own = model.state_dict()
    with torch.no_grad():
        for key, value in parts["heads"].items():
            if key in own and own[key].shape == value.reshape(own[key].shape).shape \
                    and own[key].numel() == value.numel():
                own[key].copy_(value.reshape(own[key].shape))
            else:
                notes.append(f"{key}: shape {tuple(value.shape)} does not fit, not loaded")
    notes += _load_matching(model.text_encoder.model, parts["text"], "text encoder")
    for note in notes:
        log.info("%s: %s", path, note)
    return notes


def _load_matching(module: nn.Module, state: Mapping[str, Tensor], name: str) -> list[str]:
    """Copy the tensors of ``state`` whose key and shape exist in ``module``; report the rest."""
    own = module.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    with torch.no_grad():
        for key, value in fitting.items():
            own[key].copy_(value)
    notes = []
    skipped = len(state) - len(fitting)
    if skipped:
        notes.append(f"{name}: {skipped} official tensors without a same-shaped counterpart "
                     f"(fusion layers or another width) were not loaded")
    left = [k for k in own if k not in fitting]
    if left and fitting:
        notes.append(f"{name}: {len(left)} tensors keep their own values")
    elif not fitting and state:
        notes.append(f"{name}: nothing loaded (different architecture)")
    return notes
