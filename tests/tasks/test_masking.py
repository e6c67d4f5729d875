"""Mask generators: promised ratios, tubes, attention guidance, kept-token indices."""

import pytest
import torch

from videomamba.errors import ConfigError
from videomamba.tasks.masking import (
    attention_mask, gather_tokens, kept_token_indices, make_mask, random_mask, tube_mask,
)

FRAMES, PATCHES = 4, 49  # 7 x 7 grid: int(0.8 * 49) = 39 is not a round fraction


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.8, 0.9])
def test_random_mask_masks_the_promised_number_anywhere(ratio):
    mask = random_mask(6, FRAMES, PATCHES, ratio, torch.Generator().manual_seed(0))
    assert mask.shape == (6, FRAMES * PATCHES) and mask.dtype == torch.bool
    assert (mask.sum(1) == int(ratio * FRAMES * PATCHES)).all()
    if ratio > 0:  # not a tube: frames differ
        per_frame = mask.view(6, FRAMES, PATCHES)
        assert not (per_frame == per_frame[:, :1]).all()


@pytest.mark.parametrize("ratio", [0.5, 0.8])
def test_tube_mask_repeats_one_spatial_mask_in_every_frame(ratio):
    mask = tube_mask(5, FRAMES, PATCHES, ratio, torch.Generator().manual_seed(1))
    per_frame = mask.view(5, FRAMES, PATCHES)
    assert (per_frame == per_frame[:, :1]).all()
    assert (per_frame.sum(-1) == int(ratio * PATCHES)).all()
    assert not (per_frame[0, 0] == per_frame[1, 0]).all()  # samples get their own tube


def test_attention_mask_keeps_per_frame_count_and_prefers_attended_tokens():
    attention = torch.rand(3, FRAMES, PATCHES).softmax(-1)
    mask = attention_mask(attention, 0.8, generator=torch.Generator().manual_seed(2))
    kept_per_frame = (~mask.view(3, FRAMES, PATCHES)).sum(-1)
    assert (kept_per_frame == PATCHES - int(0.8 * PATCHES)).all()
    # top-k: exactly the most attended tokens are kept
    top = attention_mask(attention, 0.8, sample=False).view(3, FRAMES, PATCHES)
    expected = attention.topk(PATCHES - int(0.8 * PATCHES), dim=-1).indices
    assert (~top).gather(-1, expected).all()
    # sampling follows the attention: a frame whose mass sits on 10 tokens keeps those 10
    peaked = torch.full((1, 1, PATCHES), 1e-9)
    peaked[..., :10] = 1.0
    sampled = attention_mask(peaked, 0.8, generator=torch.Generator().manual_seed(3))
    assert (~sampled[0, :10]).all() and sampled[0, 10:].all()


def test_make_mask_errors():
    with pytest.raises(ConfigError, match="attention"):
        make_mask("attention", 2, FRAMES, PATCHES, 0.8)
    with pytest.raises(ConfigError, match="unknown mask type"):
        make_mask("block", 2, FRAMES, PATCHES, 0.8)
    with pytest.raises(ConfigError, match="ratio"):
        make_mask("tube", 2, FRAMES, PATCHES, 1.0)


def test_kept_indices_start_with_cls_and_keep_scan_order():
    mask = random_mask(4, FRAMES, PATCHES, 0.75, torch.Generator().manual_seed(4))
    keep = kept_token_indices(mask)
    assert keep.shape == (4, 1 + FRAMES * PATCHES - int(0.75 * FRAMES * PATCHES))
    assert (keep[:, 0] == 0).all()
    assert (keep[:, 1:].diff(dim=1) > 0).all()
    for row in range(4):
        assert set((keep[row, 1:] - 1).tolist()) == set(torch.nonzero(~mask[row])[:, 0].tolist())
    tokens = torch.arange(1 + FRAMES * PATCHES).float().view(1, -1, 1).expand(4, -1, 3)
    assert torch.equal(gather_tokens(tokens, keep)[..., 0], keep.float())
