"""Retrieval losses and metrics on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from videomamba.tasks.retrieval.losses import sample_negatives, similarity, vtc_loss, vtm_loss
from videomamba.tasks.retrieval.metrics import rank_metrics, retrieval_report


def unit_rows(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


# ---------------------------------------------------------------------------------------- VTC
def test_vtc_aligned_orthogonal_pairs_reach_the_minimum() -> None:
    # Orthogonal unit embeddings, video i == text i: the loss is log(1 + (B-1) e^{-1/temp}),
    # which tends to 0 as temp -> 0; any misalignment is worse.
    emb = torch.eye(4)
    ids = torch.arange(4)
    temp = 0.5
    expected = math.log(1 + 3 * math.exp(-1 / temp))
    assert vtc_loss(emb, emb, ids, temp).item() == pytest.approx(expected, rel=1e-5)
    assert vtc_loss(emb, emb, ids, 0.01).item() < 1e-6
    shuffled = emb[[1, 0, 2, 3]]
    assert vtc_loss(emb, shuffled, ids, temp).item() > 1.0


def test_vtc_aligned_beats_random_and_is_symmetric() -> None:
    video, text = unit_rows(8, 16, 1), unit_rows(8, 16, 2)
    ids = torch.arange(8)
    aligned = vtc_loss(video, video.clone(), ids, 0.07)
    random = vtc_loss(video, text, ids, 0.07)
    assert aligned < random
    assert vtc_loss(video, text, ids, 0.07).item() == pytest.approx(
        vtc_loss(text, video, ids, 0.07).item(), rel=1e-6)


def test_vtc_shares_target_between_captions_of_one_video() -> None:
    # Two captions of video 0 in the batch are both positives (target 1/2 each): the best the
    # loss can do is the entropy of those targets, reached when both captions sit on video 0.
    video = torch.eye(3)[[0, 0, 1]]
    ids = torch.tensor([0, 0, 1])
    floor = 2 * math.log(2) / 3  # rows 0 and 1: log 2; row 2: 0
    assert vtc_loss(video, video, ids, 0.01).item() == pytest.approx(floor, rel=1e-4)
    text = torch.eye(3)[[0, 2, 1]]  # caption 1 moved away from its video
    assert vtc_loss(video, text, ids, 0.01).item() > floor + 1.0


def test_similarity_with_time_axis_is_mean_of_frame_cosines() -> None:
    frames = unit_rows(6, 8, 3).view(2, 3, 8)
    text = unit_rows(4, 8, 4)
    expected = torch.einsum("vtc,nc->vtn", frames, text).mean(1) / 0.5
    assert torch.allclose(similarity(frames, text, 0.5), expected, atol=1e-6)


# ---------------------------------------------------------------------------------------- VTM
def test_hard_negatives_never_pick_a_positive() -> None:
    ids = torch.tensor([0, 0, 1, 2, 2, 3])
    sim = torch.randn(6, 6)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        video_for_text, text_for_video, usable = sample_negatives(sim, ids, True, gen)
        assert usable.all()
        assert (ids[video_for_text] != ids).all()
        assert (ids[text_for_video] != ids).all()


def test_hard_negatives_follow_the_similarity() -> None:
    ids = torch.arange(3)
    sim = torch.tensor([[5.0, 4.0, -20.0], [4.0, 5.0, -20.0], [0.0, 0.0, 5.0]])
    gen = torch.Generator().manual_seed(0)
    picks = [int(sample_negatives(sim, ids, True, gen)[1][0]) for _ in range(200)]
    assert picks.count(1) > 190  # the confusable caption, not the far one


def test_a_batch_of_one_video_has_no_usable_negative() -> None:
    _, _, usable = sample_negatives(torch.zeros(2, 2), torch.tensor([7, 7]))
    assert not usable.any()


def test_vtm_loss_is_minimal_for_a_perfect_matcher() -> None:
    # Tokens carry their video id; the matcher says "match" iff text and video ids agree.
    ids = torch.tensor([0, 1, 2, 3])
    text_tokens = ids.float().view(4, 1, 1).expand(4, 2, 1).clone()
    video_tokens = ids.float().view(4, 1, 1).expand(4, 3, 1).clone()
    mask = torch.ones(4, 2, dtype=torch.long)

    def perfect(t, m, v):
        same = (t[:, 0, 0] == v[:, 0, 0]).float()
        return torch.stack([-20 * same + 10, 20 * same - 10], dim=1)

    def blind(t, m, v):
        return torch.zeros(t.shape[0], 2)

    sim = torch.randn(4, 4)
    best = vtm_loss(perfect, video_tokens, text_tokens, mask, sim, ids)
    chance = vtm_loss(blind, video_tokens, text_tokens, mask, sim, ids)
    assert best.item() < 1e-6
    assert chance.item() == pytest.approx(math.log(2), rel=1e-6)


# ---------------------------------------------------------------------------------------- metrics
def test_recall_on_a_known_matrix() -> None:
    # Query q's correct answer is column q; its rank is set by construction: 0, 1, 4, 9, 2.
    ranks = [0, 1, 4, 9, 2]
    n = 12
    scores = np.zeros((5, n))
    for q, r in enumerate(ranks):
        others = [c for c in range(n) if c != q]
        scores[q, others] = np.linspace(1.0, 0.0, n - 1)
        scores[q, q] = 0.5 * (scores[q, others[r - 1]] + scores[q, others[r]]) if r else 2.0
    m = rank_metrics(scores, [[q] for q in range(5)])
    assert m["r1"] == pytest.approx(20.0)
    assert m["r5"] == pytest.approx(80.0)
    assert m["r10"] == pytest.approx(100.0)
    assert m["medr"] == pytest.approx(3.0)  # 1-based ranks 1, 2, 5, 10, 3
    assert m["meanr"] == pytest.approx(4.2)


def test_ties_give_chance_not_a_free_win() -> None:
    # Two videos with identical scores for every caption (a frame-order-blind model on a
    # direction pair): each caption is right half of the time.
    scores = np.ones((2, 2))
    report = retrieval_report(scores, [0, 1])
    assert report["t2v_r1"] == pytest.approx(50.0)
    assert report["v2t_r1"] == pytest.approx(50.0)
    assert report["t2v_medr"] == pytest.approx(1.5)


def test_several_captions_per_video() -> None:
    # 3 videos; captions 0,1 -> video 0, caption 2 -> video 1, captions 3,4 -> video 2.
    text_to_video = [0, 0, 1, 2, 2]
    sim = np.array([
        [0.9, 0.1, 0.0],   # right
        [0.1, 0.8, 0.0],   # wrong (rank 2)
        [0.0, 0.7, 0.2],   # right
        [0.5, 0.0, 0.1],   # wrong (rank 2)
        [0.0, 0.0, 0.3],   # right
    ])
    report = retrieval_report(sim, text_to_video)
    assert report["t2v_r1"] == pytest.approx(60.0)
    # v2t: video 0's best caption is 0 (0.9 is its top score): rank 1; video 1: caption 1 (0.8)
    # beats caption 2 (0.7): rank 2; video 2: caption 4 (0.3) is top -> rank 1.
    assert report["v2t_r1"] == pytest.approx(100 * 2 / 3)
    assert report["v2t_r5"] == pytest.approx(100.0)
    assert report["num_texts"] == 5 and report["num_videos"] == 3


def test_a_video_without_caption_is_an_error() -> None:
    with pytest.raises(ValueError, match="no caption"):
        retrieval_report(np.zeros((2, 3)), [0, 1])
