"""Transforms: shapes, one set of parameters per clip, flip switch, crops, RandAugment vs PIL."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from videomamba.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, RandAugment, \
    TrainTransform, _OPS, multi_scale_crop_params, normalize, random_resized_crop_params, \
    resize_short_side, spatial_crop


def image(seed=0, h=48, w=64) -> torch.Tensor:
    """A smooth random RGB image, uint8 (1, 3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 6, 8, generator=g) * 255
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear").round().byte()


def test_train_transform_same_params_on_every_frame():
    clip = image().repeat(6, 1, 1, 1)  # 6 identical frames
    for seed in range(10):
        out = TrainTransform(size=32)(clip, random.Random(seed))
        assert out.shape == (3, 6, 32, 32) and out.dtype == torch.float32
        assert torch.equal(out[:, :1].expand_as(out), out)


def test_flip_can_be_switched_off():
    clip = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    clip[..., :8] = 255  # bright on the left
    t = TrainTransform(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False, rand_augment=None)
    for seed in range(20):
        out = t(clip, random.Random(seed))
        assert out[..., :4].mean() > out[..., -4:].mean()
    flipped = [TrainTransform(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0), rand_augment=None)(
        clip, random.Random(s))[..., :4].mean() < 0 for s in range(40)]
    assert 5 < sum(flipped) < 35  # about half


def test_random_resized_crop_boxes_are_inside():
    rng = random.Random(0)
    for _ in range(200):
        top, left, h, w = random_resized_crop_params(240, 320, (0.08, 1.0), (0.75, 1.3333), rng)
        assert 0 <= top and top + h <= 240 and 0 <= left and left + w <= 320 and h > 0 and w > 0


def test_multi_scale_crop_uses_tsn_sizes():
    rng = random.Random(0)
    sides = {int(256 * s) for s in (1.0, 0.875, 0.75, 0.66)} | {224}
    for _ in range(100):
        top, left, h, w = multi_scale_crop_params(256, 340, 224, rng)
        assert h in sides and w in sides and top + h <= 256 and left + w <= 340
    out = TrainTransform(size=32, crop="multi_scale")(image().repeat(2, 1, 1, 1), rng)
    assert out.shape == (3, 2, 32, 32)


def test_eval_three_crops_cover_the_long_side():
    clip = torch.arange(64, dtype=torch.uint8).view(1, 1, 1, 64).expand(1, 3, 32, 64).contiguous()
    crops = [spatial_crop(clip, 32, k, 3) for k in range(3)]
    assert [int(c[0, 0, 0, 0]) for c in crops] == [0, 16, 32]
    assert int(spatial_crop(clip, 32, 0, 1)[0, 0, 0, 0]) == 16  # centre
    assert resize_short_side(torch.zeros(2, 3, 240, 320, dtype=torch.uint8), 224).shape[-2:] == \
        (224, 299)
    out = EvalTransform(size=32, num_crops=3)(image(h=40, w=80).repeat(3, 1, 1, 1), crop_idx=2)
    assert out.shape == (3, 3, 32, 32)


def test_normalize_layout_and_values():
    clip = torch.full((4, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(clip)
    assert out.shape == (3, 4, 2, 2)
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[:, 0, 0, 0], expected)


def test_rand_augment_parsing():
    ra = RandAugment.from_string("rand-m7-n4-mstd0.5-inc1")
    assert (ra.magnitude, ra.num_ops, ra.magnitude_std, ra.increasing) == (7, 4, 0.5, True)
    assert "PosterizeIncreasing" in ra.op_names
    with pytest.raises(ValueError, match="unknown part"):
        RandAugment.from_string("rand-m7-q3")
    ops = ra.sample_ops(random.Random(0))
    assert len(ops) <= 4 and all(0 <= m <= 10 for _, m in ops)


def pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(x[0].permute(1, 2, 0).numpy())


def from_pil(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(np.float32)


class _FixedSign(random.Random):
    """rng whose random() > 0.5 never fires, so ops keep the positive sign."""

    def random(self):
        return 0.0


PIL_REFERENCE = {
    "Invert": lambda img, m: ImageOps.invert(img),
    "AutoContrast": lambda img, m: ImageOps.autocontrast(img),
    "Equalize": lambda img, m: ImageOps.equalize(img),
    "PosterizeIncreasing": lambda img, m: ImageOps.posterize(img, 4 - int(m / 10 * 4)),
    "SolarizeIncreasing": lambda img, m: ImageOps.solarize(img, 256 - int(m / 10 * 256)),
    "ColorIncreasing": lambda img, m: ImageEnhance.Color(img).enhance(1 + m / 10 * 0.9),
    "ContrastIncreasing": lambda img, m: ImageEnhance.Contrast(img).enhance(1 + m / 10 * 0.9),
    "BrightnessIncreasing": lambda img, m: ImageEnhance.Brightness(img).enhance(1 + m / 10 * 0.9),
    "SharpnessIncreasing": lambda img, m: ImageEnhance.Sharpness(img).enhance(1 + m / 10 * 0.9),
    "Rotate": lambda img, m: img.rotate(m / 10 * 30, resample=Image.BILINEAR,
                                        fillcolor=(128, 128, 128)),
    "ShearX": lambda img, m: img.transform(img.size, Image.AFFINE, (1, m / 10 * 0.3, 0, 0, 1, 0),
                                           resample=Image.BILINEAR, fillcolor=(128, 128, 128)),
    "TranslateXRel": lambda img, m: img.transform(
        img.size, Image.AFFINE, (1, 0, m / 10 * 0.45 * img.size[0], 0, 1, 0),
        resample=Image.BILINEAR, fillcolor=(128, 128, 128)),
}


@pytest.mark.parametrize("name", sorted(PIL_REFERENCE))
def test_rand_augment_ops_match_pil(name):
    x = image(seed=3, h=40, w=40)
    ours = _OPS[name](x.float(), 7.0, _FixedSign()).round().clamp(0, 255)[0].permute(1, 2, 0)
    ref = from_pil(PIL_REFERENCE[name](pil(x), 7.0))
    diff = np.abs(ours.numpy() - ref)
    geometric = name in ("Rotate", "ShearX", "TranslateXRel")
    # pixel ops agree to rounding; resampling ops differ at edges and by interpolation detail
    assert diff.mean() < (6.0 if geometric else 1.0), f"{name}: mean |diff| {diff.mean():.2f}"


def test_random_erasing_boxes_are_per_frame_noise_and_respect_probability():
    from videomamba.data.transforms import random_erasing

    base = torch.zeros(3, 200, 16, 16)
    out = random_erasing(base.clone(), random.Random(0), probability=0.25)
    erased = [(out[:, t] != 0).any().item() for t in range(200)]
    assert 30 <= sum(erased) <= 70  # about a quarter of the frames, each decided on its own
    for t in [t for t, e in enumerate(erased) if e][:10]:
        rows = (out[:, t] != 0).any(0).any(1).nonzero().flatten()
        cols = (out[:, t] != 0).any(0).any(0).nonzero().flatten()
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        area = (h * w).item() / 256
        assert 0.02 * 0.5 <= area <= 1 / 3 * 1.5  # one rectangle of the promised size
        assert (out[:, t, rows.min():rows.max() + 1, cols.min():cols.max() + 1] != 0).float().mean() > 0.99
    untouched = [t for t, e in enumerate(erased) if not e]
    assert torch.equal(out[:, untouched], base[:, untouched])
    assert torch.equal(random_erasing(base.clone(), random.Random(0), 0.0), base)
    again = random_erasing(base.clone(), random.Random(0), probability=0.25)
    assert torch.equal(again, out)  # a function of the rng's state


def test_train_transform_applies_random_erasing():
    clip = torch.full((4, 3, 32, 32), 128, dtype=torch.uint8)
    plain = TrainTransform(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False, rand_augment=None)
    erasing = TrainTransform(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False,
                             rand_augment=None, random_erase=1.0)
    a, b = plain(clip, random.Random(1)), erasing(clip, random.Random(1))
    assert a.shape == b.shape == (3, 4, 32, 32)
    assert all(not torch.equal(a[:, t], b[:, t]) for t in range(4))
