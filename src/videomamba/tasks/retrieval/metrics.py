"""Retrieval metrics: R@1/5/10, median and mean rank, in both directions.

A query may have several correct answers (a video with several captions, or a caption that
describes several videos). Following the official evaluation, a query's rank is the position of
its best-placed correct answer: the number of *wrong* candidates scored above it. Unlike a plain
argsort, ties are counted fairly: a wrong candidate with exactly the same score as the best
correct one moves the correct one down by half a place on average, and R@K is the probability
that a uniform random tie-break puts it in the top K. A model that cannot tell two videos apart
(identical scores) therefore gets chance level, not an arbitrary win from the sort order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

RECALL_KS = (1, 5, 10)


def query_ranks(scores: np.ndarray, positives: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``scores`` (Q, N): wrong candidates strictly above and tied with the best
    correct one. ``positives[q]`` lists the correct columns of query ``q``.

    Returns ``(above, tied)``, two int arrays ``(Q,)``; the 0-based rank lies in
    ``[above, above + tied]``, uniformly under a random tie-break.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(positives):
        raise ValueError(f"scores {scores.shape} must be (Q, N) with Q = len(positives) = {len(positives)}")
    above = np.zeros(len(positives), dtype=np.int64)
    tied = np.zeros(len(positives), dtype=np.int64)
    for q, cols in enumerate(positives):
        cols = np.asarray(list(cols), dtype=np.int64)
        if cols.size == 0:
            raise ValueError(f"query {q} has no correct answer")
        row = scores[q]
        best = row[cols].max()
        wrong = np.ones(row.shape[0], dtype=bool)
        wrong[cols] = False
        above[q] = int(np.count_nonzero(row[wrong] > best))
        tied[q] = int(np.count_nonzero(row[wrong] == best))
    return above, tied


def recall_at(above: np.ndarray, tied: np.ndarray, k: int) -> float:
    """Percentage of queries whose best correct answer is in the top ``k`` (ties shared fairly)."""
    hit = np.clip((k - above) / (tied + 1.0), 0.0, 1.0)
    return float(100.0 * hit.mean())


def rank_metrics(scores: np.ndarray, positives: Sequence[Sequence[int]]) -> dict[str, float]:
    """``{"r1", "r5", "r10", "medr", "meanr"}`` for queries ``scores`` (Q, N); ranks are 1-based."""
    above, tied = query_ranks(scores, positives)
    expected_rank = above + tied / 2.0 + 1.0
    out = {f"r{k}": recall_at(above, tied, k) for k in RECALL_KS}
    out["medr"] = float(np.median(expected_rank))
    out["meanr"] = float(np.mean(expected_rank))
    return out


def retrieval_report(sim_t2v: np.ndarray, text_to_video: Sequence[int]) -> dict[str, float]:
    """Both directions from a text-by-video similarity ``(N_text, N_video)``.

    ``text_to_video[i]`` is the video that caption ``i`` describes; a video's correct answers in
    video-to-text are all its captions. Keys: ``t2v_r1 ... t2v_meanr``, ``v2t_r1 ... v2t_meanr``,
    and ``r_mean`` (the mean of the six recalls, the official model-selection number).
    """
    sim_t2v = np.asarray(sim_t2v, dtype=np.float64)
    num_texts, num_videos = sim_t2v.shape
    if len(text_to_video) != num_texts:
        raise ValueError(f"{len(text_to_video)} caption->video ids for {num_texts} captions")
    video_to_texts: list[list[int]] = [[] for _ in range(num_videos)]
    for text_id, video_id in enumerate(text_to_video):
        video_to_texts[int(video_id)].append(text_id)
    missing = [v for v, texts in enumerate(video_to_texts) if not texts]
    if missing:
        raise ValueError(f"videos {missing[:5]} have no caption; drop them before evaluating")
    t2v = rank_metrics(sim_t2v, [[int(v)] for v in text_to_video])
    v2t = rank_metrics(sim_t2v.T, video_to_texts)
    report = {f"t2v_{k}": v for k, v in t2v.items()} | {f"v2t_{k}": v for k, v in v2t.items()}
    recalls = [report[f"{d}_r{k}"] for d in ("t2v", "v2t") for k in RECALL_KS]
    report["r_mean"] = float(np.mean(recalls))
    report["num_texts"] = num_texts
    report["num_videos"] = num_videos
    return report
