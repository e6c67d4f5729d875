"""Clip transforms on uint8 ``(T, C, H, W)`` tensors, written with torch ops (no torchvision).

Every random transform takes a ``random.Random`` and draws its parameters once per clip, so all
frames of a clip get the same crop, flip and RandAugment ops (the official behaviour).

Training (official ``_aug_frame`` + ``spatial_sampling``): :class:`TrainTransform` =
random-resized crop (scale (0.08, 1), ratio (3/4, 4/3), bilinear) or TSN multi-scale crop,
RandAugment (``rand-m7-n4-mstd0.5-inc1`` by default), horizontal flip with p=0.5 (switch off for
direction-sensitive data such as SSv2 or the synthetic motion set), normalisation.
Difference from the official order: RandAugment runs on the crop instead of the full frame, so its
cost does not grow with the video's resolution; its translations are relative to the crop size
(``translate_const = 0.45 * crop``) as in the official hyper-parameters.

Evaluation: :class:`EvalTransform` = short-side resize, then the centre crop (``num_crops=1``) or
``num_crops`` crops spread along the long side (official 3-crop test), then normalisation.
Both return float ``(C, T, H, W)``.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OFFICIAL_RAND_AUGMENT = "rand-m7-n4-mstd0.5-inc1"


# --- geometry ---------------------------------------------------------------------------------

def resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of uint8 ``(T, C, H, W)`` to ``size = (h, w)`` (no antialias, as official)."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False)


def resize_short_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the short side is ``size``, keeping the aspect ratio."""
    h, w = frames.shape[-2:]
    if h <= w:
        new_h, new_w = size, int(round(w * size / h))
    else:
        new_h, new_w = int(round(h * size / w)), size
    return resize(frames, (new_h, new_w))


def crop(frames: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    return frames[..., top:top + height, left:left + width]


def random_resized_crop_params(height: int, width: int, scale: tuple[float, float],
                               ratio: tuple[float, float], rng: random.Random
                               ) -> tuple[int, int, int, int]:
    """Inception-style box ``(top, left, h, w)``: 10 tries of area x log-uniform aspect, then the
    official fallback (the central crop with the aspect clamped to ``ratio``)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(frames: torch.Tensor, size: int, rng: random.Random,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (0.75, 1.3333)) -> torch.Tensor:
    """Same random box on every frame, resized to ``(size, size)``."""
    top, left, h, w = random_resized_crop_params(*frames.shape[-2:], scale, ratio, rng)
    return resize(crop(frames, top, left, h, w), (size, size))


def multi_scale_crop_params(height: int, width: int, size: int, rng: random.Random,
                            scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66),
                            max_distort: int = 1, more_fix_crop: bool = True
                            ) -> tuple[int, int, int, int]:
    """TSN ``GroupMultiScaleCrop`` box: side lengths from ``scales`` x short side (snapped to
    ``size`` when within 3 px), aspect distortion <= ``max_distort`` steps, fixed offsets."""
    base = min(height, width)
    sides = [int(base * s) for s in scales]
    sides = [size if abs(s - size) < 3 else s for s in sides]
    pairs = [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides)
             if abs(i - j) <= max_distort]
    crop_w, crop_h = rng.choice(pairs)
    w_step, h_step = (width - crop_w) // 4, (height - crop_h) // 4
    offsets = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]
    if more_fix_crop:
        offsets += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    ox, oy = rng.choice(offsets)
    return oy * h_step, ox * w_step, crop_h, crop_w


def multi_scale_crop(frames: torch.Tensor, size: int, rng: random.Random,
                     scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)) -> torch.Tensor:
    top, left, h, w = multi_scale_crop_params(*frames.shape[-2:], size, rng, scales)
    return resize(crop(frames, top, left, h, w), (size, size))


def center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    h, w = frames.shape[-2:]
    top, left = int(math.ceil((h - size) / 2)), int(math.ceil((w - size) / 2))
    return crop(frames, max(top, 0), max(left, 0), size, size)


def spatial_crop(frames: torch.Tensor, size: int, crop_idx: int, num_crops: int) -> torch.Tensor:
    """Test crop ``crop_idx`` of ``num_crops`` (official: evenly spaced along the long side,
    ``start = int(idx * (long - size) / (num_crops - 1))``; centred on the short side)."""
    if num_crops == 1:
        return center_crop(frames, size)
    h, w = frames.shape[-2:]
    start = int(crop_idx * max(max(h, w) - size, 0) / (num_crops - 1))
    if h >= w:
        return crop(frames, start, max((w - size) // 2, 0), size, size)
    return crop(frames, max((h - size) // 2, 0), start, size, size)


def horizontal_flip(frames: torch.Tensor) -> torch.Tensor:
    return frames.flip(-1)


# --- RandAugment ------------------------------------------------------------------------------

_MAX_LEVEL = 10.0
_FILL = 128.0


def _gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma of float ``(T, 3, H, W)`` -> ``(T, 1, H, W)`` (PIL's "L" conversion)."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return (r * 299 + g * 587 + b * 114) / 1000


def _blend(img: torch.Tensor, degenerate: torch.Tensor, factor: float) -> torch.Tensor:
    """PIL ``ImageEnhance``: ``degenerate + factor * (img - degenerate)``, clipped."""
    return torch.lerp(degenerate.expand_as(img), img, factor).clamp_(0, 255)


def _affine(x: torch.Tensor, matrix: tuple[float, ...]) -> torch.Tensor:
    """PIL-style affine: output pixel (x, y) reads input (a x + b y + c, d x + e y + f); fill 128."""
    a, b, c, d, e, f = matrix
    t, ch, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype) + 0.5,
                            torch.arange(w, dtype=x.dtype) + 0.5, indexing="ij")
    in_x = a * xs + b * ys + c
    in_y = d * xs + e * ys + f
    grid = torch.stack((in_x / w * 2 - 1, in_y / h * 2 - 1), dim=-1).expand(t, h, w, 2)
    # Sampling (x - fill) with zero padding fills the outside with `fill`.
    out = F.grid_sample(x - _FILL, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + _FILL


def _rotate(x, degrees):
    h, w = x.shape[-2:]
    cx, cy = w / 2.0, h / 2.0
    a = -math.radians(degrees)
    cos, sin = math.cos(a), math.sin(a)
    return _affine(x, (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy))


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageOps.equalize`` per frame and channel."""
    t, c, h, w = x.shape
    flat = x.round().long().clamp(0, 255).reshape(t * c, h * w)
    offsets = torch.arange(t * c).unsqueeze(1) * 256
    hist = torch.bincount((flat + offsets).view(-1), minlength=t * c * 256).view(t * c, 256)
    last_nonzero = 255 - torch.argmax((hist.flip(1) > 0).long(), dim=1)
    step = (hist.sum(1) - hist.gather(1, last_nonzero[:, None])[:, 0]) // 255
    cum = torch.cumsum(hist, 1) - hist  # exclusive
    lut = ((step[:, None] // 2 + cum) // step.clamp(min=1)[:, None]).clamp(0, 255)
    out = torch.gather(lut, 1, flat).to(x.dtype)
    keep = (step == 0)[:, None]  # flat histograms are left alone
    return torch.where(keep, flat.to(x.dtype), out).reshape(t, c, h, w)


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    scale = 255.0 / (hi - lo).clamp(min=1)
    out = ((x - lo) * scale).floor().clamp(0, 255)
    return torch.where(hi > lo, out, x)


def _sharpness(x: torch.Tensor, factor: float) -> torch.Tensor:
    # PIL's SMOOTH kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 = (3x3 box sum + 4 * centre) / 13;
    # the box sum as two shifted-slice sums is far faster than a grouped conv2d on CPU.
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    smooth = ((box + 4 * x[..., 1:-1, 1:-1]) / 13).round()
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = smooth  # PIL keeps the border pixels
    return _blend(x, degenerate, factor)


def _solarize(x, threshold):
    return torch.where(x >= threshold, 255 - x, x)


def _posterize(x, bits):
    if bits >= 8:
        return x
    shift = 8 - bits
    return torch.div(x.round(), 2 ** shift, rounding_mode="floor") * 2 ** shift


def _negate(value: float, rng: random.Random) -> float:
    return -value if rng.random() > 0.5 else value


def _increasing_enhance(level: float, rng: random.Random) -> float:
    return 1.0 + _negate(level / _MAX_LEVEL * 0.9, rng)


# name -> fn(x float (T, C, H, W) in [0, 255], magnitude, rng) -> same; args follow official LEVEL_TO_ARG.
_OPS = {
    "AutoContrast": lambda x, m, rng: _autocontrast(x),
    "Equalize": lambda x, m, rng: _equalize(x),
    "Invert": lambda x, m, rng: 255 - x,
    "Rotate": lambda x, m, rng: _rotate(x, _negate(m / _MAX_LEVEL * 30.0, rng)),
    "Posterize": lambda x, m, rng: _posterize(x, int(m / _MAX_LEVEL * 4)),
    "PosterizeIncreasing": lambda x, m, rng: _posterize(x, 4 - int(m / _MAX_LEVEL * 4)),
    "Solarize": lambda x, m, rng: _solarize(x, int(m / _MAX_LEVEL * 256)),
    "SolarizeIncreasing": lambda x, m, rng: _solarize(x, 256 - int(m / _MAX_LEVEL * 256)),
    "SolarizeAdd": lambda x, m, rng: torch.where(
        x < 128, (x + int(m / _MAX_LEVEL * 110)).clamp(max=255), x),
    "Color": lambda x, m, rng: _blend(x, _gray(x), m / _MAX_LEVEL * 1.8 + 0.1),
    "ColorIncreasing": lambda x, m, rng: _blend(x, _gray(x), _increasing_enhance(m, rng)),
    "Contrast": lambda x, m, rng: _blend(
        x, _gray(x).mean(dim=(1, 2, 3), keepdim=True).round(), m / _MAX_LEVEL * 1.8 + 0.1),
    "ContrastIncreasing": lambda x, m, rng: _blend(
        x, _gray(x).mean(dim=(1, 2, 3), keepdim=True).round(), _increasing_enhance(m, rng)),
    "Brightness": lambda x, m, rng: _blend(x, torch.zeros_like(x), m / _MAX_LEVEL * 1.8 + 0.1),
    "BrightnessIncreasing": lambda x, m, rng: _blend(
        x, torch.zeros_like(x), _increasing_enhance(m, rng)),
    "Sharpness": lambda x, m, rng: _sharpness(x, m / _MAX_LEVEL * 1.8 + 0.1),
    "SharpnessIncreasing": lambda x, m, rng: _sharpness(x, _increasing_enhance(m, rng)),
    "ShearX": lambda x, m, rng: _affine(x, (1, _negate(m / _MAX_LEVEL * 0.3, rng), 0, 0, 1, 0)),
    "ShearY": lambda x, m, rng: _affine(x, (1, 0, 0, _negate(m / _MAX_LEVEL * 0.3, rng), 1, 0)),
    "TranslateXRel": lambda x, m, rng: _affine(
        x, (1, 0, _negate(m / _MAX_LEVEL * 0.45, rng) * x.shape[-1], 0, 1, 0)),
    "TranslateYRel": lambda x, m, rng: _affine(
        x, (1, 0, 0, 0, 1, _negate(m / _MAX_LEVEL * 0.45, rng) * x.shape[-2])),
}

RAND_TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize",
                   "SolarizeAdd", "Color", "Contrast", "Brightness", "Sharpness", "ShearX",
                   "ShearY", "TranslateXRel", "TranslateYRel")
RAND_INCREASING_TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate",
                              "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
                              "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
                              "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
                              "TranslateYRel")


@dataclass(frozen=True)
class RandAugment:
    """RandAugment for clips: ``num_ops`` ops drawn with replacement, each applied with
    probability ``prob`` at magnitude ~ N(magnitude, magnitude_std) clipped to [0, 10]; the draw
    happens once per clip, so every frame gets the same ops and parameters."""

    magnitude: float = 7.0
    num_ops: int = 4
    magnitude_std: float = 0.5
    increasing: bool = True
    prob: float = 0.5

    @classmethod
    def from_string(cls, config: str) -> "RandAugment":
        """Parse timm-style ``rand-m7-n4-mstd0.5-inc1``."""
        parts = config.split("-")
        if parts[0] != "rand":
            raise ValueError(f"RandAugment config {config!r} must start with 'rand-'")
        kwargs: dict = {"magnitude": 10.0, "num_ops": 2, "magnitude_std": 0.0, "increasing": False}
        for part in parts[1:]:
            key, _, val = re.match(r"([a-z]+)((\d.*)?)", part).groups()
            if key == "m":
                kwargs["magnitude"] = float(val)
            elif key == "n":
                kwargs["num_ops"] = int(val)
            elif key == "mstd":
                kwargs["magnitude_std"] = float(val)
            elif key == "inc":
                kwargs["increasing"] = bool(int(val))
            else:
                raise ValueError(f"RandAugment config {config!r}: unknown part {part!r} "
                                 "(known: m, n, mstd, inc)")
        return cls(**kwargs)

    @property
    def op_names(self) -> tuple[str, ...]:
        return RAND_INCREASING_TRANSFORMS if self.increasing else RAND_TRANSFORMS

    def sample_ops(self, rng: random.Random) -> list[tuple[str, float]]:
        """The ``(name, magnitude)`` ops this clip gets (skipped ones left out)."""
        chosen = []
        for name in (rng.choice(self.op_names) for _ in range(self.num_ops)):
            if self.prob < 1.0 and rng.random() > self.prob:
                continue
            m = rng.gauss(self.magnitude, self.magnitude_std) if self.magnitude_std > 0 \
                else self.magnitude
            chosen.append((name, min(_MAX_LEVEL, max(0.0, m))))
        return chosen

    def __call__(self, frames: torch.Tensor, rng: random.Random) -> torch.Tensor:
        """uint8 ``(T, C, H, W)`` -> uint8 ``(T, C, H, W)``."""
        ops = self.sample_ops(rng)
        if not ops:
            return frames
        x = frames.float()
        for name, m in ops:
            x = _OPS[name](x, m, rng)
        return x.round().clamp(0, 255).to(torch.uint8)


# --- normalisation and pipelines ---------------------------------------------------------------

def normalize(frames: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 ``(T, C, H, W)`` -> float ``(C, T, H, W)``, ``(x / 255 - mean) / std``."""
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)
    scale = 1.0 / (255.0 * std_t)
    shift = -torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1) / std_t
    # Reorder while still 1 byte per value, then one multiply-add in place.
    x = frames.permute(1, 0, 2, 3).contiguous().float()
    return x.mul_(scale).add_(shift)


def random_erasing(x: torch.Tensor, rng: random.Random, probability: float,
                   area: tuple[float, float] = (0.02, 1 / 3),
                   aspect: tuple[float, float] = (0.3, 1 / 0.3)) -> torch.Tensor:
    """Random erasing as the official fine-tuning applies it (``--reprob``, mode ``pixel``, one
    box): every frame independently, with ``probability``, gets one box of ``area`` (fraction of
    the frame) and ``aspect`` (h/w, log-uniform) filled with N(0, 1) noise. Applied after
    normalisation, in place on float ``(C, T, H, W)``; returns ``x``."""
    if probability <= 0:
        return x
    channels, frames, height, width = x.shape
    noise_gen = torch.Generator().manual_seed(rng.getrandbits(62))
    for t in range(frames):
        if rng.random() > probability:
            continue
        box = _erasing_box(height, width, rng, area, aspect)
        if box is not None:
            top, left, h, w = box
            x[:, t, top:top + h, left:left + w] = torch.randn(channels, h, w, generator=noise_gen)
    return x


def _erasing_box(height: int, width: int, rng: random.Random, area: tuple[float, float],
                 aspect: tuple[float, float]) -> tuple[int, int, int, int] | None:
    """(top, left, h, w) of a box that fits, in at most 10 tries (None if none fits)."""
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    for _ in range(10):
        target = rng.uniform(*area) * height * width
        ratio = math.exp(rng.uniform(*log_aspect))
        h, w = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if 0 < h < height and 0 < w < width:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    return None


@dataclass
class TrainTransform:
    """Training augmentation: uint8 ``(T, C, H, W)`` -> float ``(C, T, size, size)``.

    ``crop``: ``"random_resized"`` (official fine-tuning) or ``"multi_scale"`` (official
    pretraining); ``flip=False`` for direction-sensitive data; ``rand_augment=None`` disables it;
    ``random_erase``: per-frame probability of :func:`random_erasing` (official ``--reprob``).
    """

    size: int = 224
    crop: str = "random_resized"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (0.75, 1.3333)
    flip: bool = True
    rand_augment: str | None = OFFICIAL_RAND_AUGMENT
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    random_erase: float = 0.0

    def __post_init__(self):
        if self.crop not in ("random_resized", "multi_scale"):
            raise ValueError(f"crop must be 'random_resized' or 'multi_scale', not {self.crop!r}")
        self._rand_augment = RandAugment.from_string(self.rand_augment) if self.rand_augment \
            else None

    def __call__(self, frames: torch.Tensor, rng: random.Random) -> torch.Tensor:
        if self.crop == "random_resized":
            frames = random_resized_crop(frames, self.size, rng, self.scale, self.ratio)
        else:
            frames = multi_scale_crop(frames, self.size, rng)
        if self._rand_augment is not None:
            frames = self._rand_augment(frames, rng)
        if self.flip and rng.random() < 0.5:
            frames = horizontal_flip(frames)
        return random_erasing(normalize(frames, self.mean, self.std), rng, self.random_erase)


@dataclass
class EvalTransform:
    """Evaluation: short side -> ``short_side``, crop ``crop_idx`` of ``num_crops`` of ``size``,
    normalise. uint8 ``(T, C, H, W)`` -> float ``(C, T, size, size)``."""

    size: int = 224
    short_side: int | None = None  # None: same as size
    num_crops: int = 1
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __call__(self, frames: torch.Tensor, crop_idx: int = 0) -> torch.Tensor:
        frames = resize_short_side(frames, self.short_side or self.size)
        frames = spatial_crop(frames, self.size, crop_idx, self.num_crops)
        return normalize(frames, self.mean, self.std)
