"""Video-text losses, as the official ``criterions.py`` defines them.

* VTC (contrastive): cosine similarities divided by a learnable temperature, cross-entropy in
  both directions (video->text and text->video) averaged. Pairs that share a video id (two
  captions of one video in a batch) are all positives, with the target mass split between them.
* VTM (matching): for each video a hard negative caption and for each caption a hard negative
  video are drawn with probability softmax(similarity), positives excluded; a matching head
  classifies the B positive and 2B negative pairs (label 1 = match).

Video embeddings may keep a time axis ``(B, T, C)``: the similarity is then the mean over frames
of the per-frame cosine similarity (the official ``keep_temporal`` retrieval setting).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

MatchFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # (text_tokens, text_mask, video_tokens) -> (N, 2)


def similarity(video_emb: Tensor, text_emb: Tensor, temp: Tensor | float = 1.0) -> Tensor:
    """Video-to-text similarity ``(B_v, B_t)`` in float32.

    ``video_emb`` is ``(B_v, C)`` or ``(B_v, T, C)`` (per-frame, averaged after the cosine);
    ``text_emb`` is ``(B_t, C)``.
    """
    video = F.normalize(video_emb.float(), dim=-1)
    text = F.normalize(text_emb.float(), dim=-1)
    if video.dim() == 3:
        sim = torch.einsum("vtc,nc->vtn", video, text).mean(dim=1)
    else:
        sim = video @ text.T
    return sim / temp


def positive_mask(video_ids: Tensor) -> Tensor:
    """``(B, B)`` bool: True where two rows of a batch come from the same video."""
    ids = video_ids.view(-1, 1)
    return ids == ids.T


def vtc_loss(video_emb: Tensor, text_emb: Tensor, video_ids: Tensor, temp: Tensor | float) -> Tensor:
    """Symmetric contrastive loss over a batch of B (video, caption) pairs; a scalar.

    ``video_emb`` ``(B, C)`` or ``(B, T, C)``, ``text_emb`` ``(B, C)``, ``video_ids`` ``(B,)``.
    """
    sim_v2t = similarity(video_emb, text_emb, temp)
    with torch.no_grad():
        targets = positive_mask(video_ids).float()
        targets = targets / targets.sum(dim=1, keepdim=True)
    loss_v2t = -(F.log_softmax(sim_v2t, dim=1) * targets).sum(dim=1).mean()
    loss_t2v = -(F.log_softmax(sim_v2t.T, dim=1) * targets).sum(dim=1).mean()
    return (loss_v2t + loss_t2v) / 2


def sample_negatives(sim_v2t: Tensor, video_ids: Tensor, hard: bool = True,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Pick one negative per row, never a pair of the same video.

    Returns ``(video_for_text, text_for_video, usable)``: indices ``(B,)`` of the negative video
    of each caption and of the negative caption of each video, and a bool ``(B,)`` that is False
    for rows whose whole batch is the same video (no negative exists; those rows are skipped).
    ``hard`` samples with probability softmax(similarity) (the official ``vtm_hard_neg``);
    otherwise uniformly among the negatives.
    """
    with torch.no_grad():
        negatives = ~positive_mask(video_ids)
        usable = negatives.any(dim=1)
        if hard:
            weights_v2t = F.softmax(sim_v2t.float(), dim=1)
            weights_t2v = F.softmax(sim_v2t.float().T, dim=1)
        else:
            weights_v2t = torch.ones_like(sim_v2t, dtype=torch.float32)
            weights_t2v = weights_v2t.clone()
        # A softmax can underflow to exactly 0 for every negative; a floor keeps them drawable.
        weights_v2t = (weights_v2t + 1e-12) * negatives
        weights_t2v = (weights_t2v + 1e-12) * negatives
        # Rows without a negative get a dummy weight; they are masked out by `usable`.
        weights_v2t[~usable] = 1.0
        weights_t2v[~usable] = 1.0
        text_for_video = torch.multinomial(weights_v2t, 1, generator=generator).squeeze(1)
        video_for_text = torch.multinomial(weights_t2v, 1, generator=generator).squeeze(1)
    return video_for_text, text_for_video, usable


def vtm_loss(match_fn: MatchFn, video_tokens: Tensor, text_tokens: Tensor, text_mask: Tensor,
             sim_v2t: Tensor, video_ids: Tensor, hard: bool = True,
             generator: torch.Generator | None = None) -> Tensor:
    """Matching loss on B positive and up to 2B negative pairs; a scalar.

    ``video_tokens`` ``(B, N_v, C_v)``, ``text_tokens`` ``(B, L, C_t)``, ``text_mask`` ``(B, L)``
    (1 = real token), ``sim_v2t`` ``(B, B)`` the (detached) contrastive similarity, ``match_fn``
    returns logits ``(N, 2)`` for N (text, video) pairs.
    """
    video_for_text, text_for_video, usable = sample_negatives(sim_v2t, video_ids, hard, generator)
    rows = usable.nonzero().squeeze(1)
    # positives, (caption, its hard negative video), (hard negative caption, video)
    texts = torch.cat([text_tokens, text_tokens[rows], text_tokens[text_for_video[rows]]])
    masks = torch.cat([text_mask, text_mask[rows], text_mask[text_for_video[rows]]])
    videos = torch.cat([video_tokens, video_tokens[video_for_text[rows]], video_tokens[rows]])
    logits = match_fn(texts, masks, videos)
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    labels[: text_tokens.shape[0]] = 1
    return F.cross_entropy(logits.float(), labels)


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from every process along dim 0, gradients flowing back to each
    process's own part (identity when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)
