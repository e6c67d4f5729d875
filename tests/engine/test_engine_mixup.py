import pytest
import torch

from videomamba.engine.config import MixupConfig
from videomamba.engine.mixup import VideoMixup


def _batch(b=6, k=5):
    video = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, 3, 4, 8, 8).clone()
    return video, torch.arange(b) % k


@pytest.mark.parametrize("mode", ["mixup", "cutmix", "both", "smoothing-only"])
def test_shapes_and_label_sums(mode):
    cfg = {
        "mixup": MixupConfig(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1),
        "cutmix": MixupConfig(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.1),
        "both": MixupConfig(label_smoothing=0.1),
        "smoothing-only": MixupConfig(mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.1),
    }[mode]
    mixer = VideoMixup(cfg, num_classes=5, seed=1)
    video, labels = _batch()
    for _ in range(5):
        mixed, targets = mixer(video, labels)
        assert mixed.shape == video.shape and targets.shape == (6, 5)
        torch.testing.assert_close(targets.sum(1), torch.ones(6))
        assert targets.min() >= 0.1 / 5 - 1e-6
        if mode == "smoothing-only":
            assert torch.equal(mixed, video)
            assert torch.allclose(targets.max(1).values, torch.full((6,), 0.9 + 0.02))


def test_mixup_blends_partner_and_targets_follow_lambda():
    mixer = VideoMixup(MixupConfig(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0), 6, seed=2)
    video, labels = _batch(6, 6)
    mixed, targets = mixer(video, labels)
    lam = float(targets[0, 0])  # sample 0 (label 0) mixes with sample 5 (label 5)
    torch.testing.assert_close(mixed[0], video[0] * lam + video[5] * (1 - lam))
    assert float(targets[0, 5]) == pytest.approx(1 - lam, abs=1e-6)


def test_cutmix_box_is_the_same_in_every_frame_and_lambda_is_area():
    mixer = VideoMixup(MixupConfig(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0), 6, seed=3)
    video, labels = _batch(6, 6)
    for _ in range(10):
        mixed, targets = mixer(video, labels)
        pasted = mixed[0] != video[0]  # (C, T, H, W): where sample 5's pixels landed
        assert torch.equal(pasted, pasted[:, :1].expand_as(pasted))  # same box in every frame
        area = pasted[0, 0].float().mean()
        assert float(targets[0, 5]) == pytest.approx(float(area), abs=1e-6)


def test_state_round_trip_reproduces_draws():
    mixer = VideoMixup(MixupConfig(), 5, seed=4)
    video, labels = _batch()
    mixer(video, labels)
    state = mixer.state_dict()
    first = mixer(video, labels)
    other = VideoMixup(MixupConfig(), 5, seed=99)
    other.load_state_dict(state)
    second = other(video, labels)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
