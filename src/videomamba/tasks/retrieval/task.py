"""Video-text retrieval as an engine task: VTC + VTM training, R@K evaluation.

Training batches carry ``"video"`` ``(B, C, T, H, W)``, ``"caption"`` (B strings: one caption
drawn per clip) and ``"index"`` ``(B,)`` (the video's id; two captions of one video are both
positives). The losses run inside the model's ``forward`` (``objective=``) so that DDP sees every
parameter; contrastive embeddings are gathered from all processes before the loss, as the official
``all_gather`` does.

Evaluation: ``eval_step`` returns each video's per-frame unit embeddings; the captions of the split
(every caption of every video, given at construction) are embedded once per evaluation, and
``summarize`` ranks text-to-video and video-to-text (several captions per video handled: see
:mod:`videomamba.tasks.retrieval.metrics`). With ``rerank_k > 0`` the top-k candidates of every
query are re-scored by the matching head (the official ``k_test``), which needs the video tokens
of the whole split in memory (``T'*h*w*d`` floats per video).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videomamba.tasks.base import StepOutput, Task
from videomamba.tasks.retrieval.losses import gather_with_grad, similarity, vtc_loss, vtm_loss
from videomamba.tasks.retrieval.metrics import retrieval_report


def _inner(model: nn.Module) -> nn.Module:
    """The model under DDP / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


class RetrievalTask(Task):
    best_metric = "r_mean"

    def __init__(self, captions: Sequence[tuple[int, str]] = (), vtc_weight: float = 1.0,
                 vtm_weight: float = 1.0, hard_negatives: bool = True, rerank_k: int = 0,
                 text_batch_size: int = 256) -> None:
        """``captions``: ``(video index, caption)`` for every caption of the evaluation split;
        empty: each video is queried by the one caption its evaluation sample carries."""
        self.captions = [(int(v), str(c)) for v, c in captions]
        self.vtc_weight, self.vtm_weight = float(vtc_weight), float(vtm_weight)
        self.hard_negatives = hard_negatives
        self.rerank_k = int(rerank_k)
        self.text_batch_size = text_batch_size
        self._model: nn.Module | None = None
        self._text: dict[str, Tensor] | None = None

    # ------------------------------------------------------------------------------ training
    def training_step(self, model: nn.Module, batch: Mapping[str, Any]) -> StepOutput:
        inner = _inner(model)
        tokens = inner.tokenize(list(batch["caption"]), batch["video"].device)
        video_ids = torch.as_tensor(batch["index"], device=batch["video"].device)
        losses = model(batch["video"], tokens["input_ids"], tokens["attention_mask"], video_ids,
                       objective=self.objective)
        loss = self.vtc_weight * losses["loss_vtc"] + self.vtm_weight * losses["loss_vtm"]
        metrics = {k: v.detach() for k, v in losses.items()}
        metrics["temp"] = inner.temp.detach()
        return StepOutput(loss, metrics, int(batch["video"].shape[0]))

    def objective(self, net: nn.Module, video: Tensor, input_ids: Tensor, attention_mask: Tensor,
                  video_ids: Tensor) -> dict[str, Tensor]:
        """The losses of one batch, computed inside the model's forward."""
        net.clamp_temperature()
        out = net.embed_pairs(video, input_ids, attention_mask)
        all_video = gather_with_grad(out["video_emb"])
        all_text = gather_with_grad(out["text_emb"])
        all_ids = gather_with_grad(video_ids)
        losses = {"loss_vtc": vtc_loss(all_video, all_text, all_ids, net.temp)}
        if self.vtm_weight > 0:
            with torch.no_grad():
                sim = similarity(out["video_emb"], out["text_emb"], net.temp)
            losses["loss_vtm"] = vtm_loss(net.match_logits, out["video_tokens"], out["text_tokens"],
                                          attention_mask, sim, video_ids, self.hard_negatives)
        else:
            losses["loss_vtm"] = out["video_emb"].new_zeros(())
        return losses

    # ------------------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        net = _inner(model)
        self._model = net
        if self.captions and self._text is None:
            self._text = self.embed_captions(net, batch["video"].device)
        video = batch["video"]
        if video.dim() == 6:  # test views (B, V, C, T, H, W): keep the first (centre) view
            video = video[:, 0]
        tokens, pooled = net.encode_video(video)
        emb = F.normalize(net.project_video(pooled).float(), dim=-1)
        out = {"video_emb": emb, "index": torch.as_tensor(batch["index"], device=emb.device)}
        if not self.captions:
            # No caption list given: each video is queried by the caption its sample carries
            # (the first one in val mode); carried per sample so that DDP ranks merge correctly.
            enc = net.tokenize(list(batch["caption"]), emb.device)
            _, text_pooled = net.encode_text(enc["input_ids"], enc["attention_mask"])
            out["text_emb"] = F.normalize(net.project_text(text_pooled).float(), dim=-1)
        elif self.rerank_k > 0:
            out["video_tokens"] = tokens.float()
        return out

    @torch.no_grad()
    def embed_captions(self, net: nn.Module, device: torch.device) -> dict[str, Tensor]:
        """Unit embeddings ``(N_text, E)`` and tokens of every evaluation caption."""
        embs, tokens, masks = [], [], []
        texts = [c for _, c in self.captions]
        for first in range(0, len(texts), self.text_batch_size):
            enc = net.tokenize(texts[first:first + self.text_batch_size], device)
            tok, pooled = net.encode_text(enc["input_ids"], enc["attention_mask"])
            embs.append(F.normalize(net.project_text(pooled).float(), dim=-1))
            if self.rerank_k > 0:
                tokens += list(tok.float().cpu())
                masks += list(enc["attention_mask"].cpu())
        return {"emb": torch.cat(embs).cpu() if embs else torch.zeros(0),
                "tokens": tokens, "masks": masks}

    def summarize(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        if not self.captions:
            sim = text_similarity(outputs["text_emb"], outputs["video_emb"])
            return retrieval_report(sim, list(range(len(outputs["index"]))))
        text = self._text
        self._text = None  # embed again at the next evaluation (the weights will have changed)
        row_of_video = {int(v): row for row, v in enumerate(outputs["index"])}
        missing = sorted({v for v, _ in self.captions if v not in row_of_video})
        if missing:
            raise ValueError(f"retrieval task: captions refer to videos {missing[:5]} that the "
                             f"evaluation did not produce")
        text_to_video = [row_of_video[v] for v, _ in self.captions]
        sim = text_similarity(text["emb"].numpy(), outputs["video_emb"])
        report = {f"{k}": v for k, v in retrieval_report(sim, text_to_video).items()}
        if self.rerank_k > 0 and self._model is not None:
            reranked = rerank(self._model, sim, text, outputs["video_tokens"], self.rerank_k)
            report.update({f"rerank_{k}": v for k, v in
                           retrieval_report(reranked[0], text_to_video).items()
                           if k.startswith("t2v")})
            report.update({f"rerank_{k}": v for k, v in
                           retrieval_report(reranked[1].T, text_to_video).items()
                           if k.startswith("v2t")})
        return report


def text_similarity(text_emb: np.ndarray, video_emb: np.ndarray) -> np.ndarray:
    """``(N_text, N_video)`` contrastive similarity: unit text ``(N_t, E)`` against unit
    per-frame video embeddings ``(N_v, T, E)`` (averaged over T) or ``(N_v, E)``."""
    video = video_emb if video_emb.ndim == 3 else video_emb[:, None]
    return np.einsum("ne,vte->nvt", text_emb, video).mean(-1)


@torch.no_grad()
def rerank(net: nn.Module, sim_t2v: np.ndarray, text: Mapping[str, Any],
           video_tokens: np.ndarray, k: int, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Matching-head scores for the top-``k`` of each query, in both directions.

    Returns ``(t2v, v2t)`` score matrices ``(N_text, N_video)`` and ``(N_video, N_text)`` where
    the top-k of each row hold the matching score (its logit margin) offset above every
    non-candidate, which keep their order below (so R@K beyond k is still defined).
    """
    device = next(net.parameters()).device
    videos = torch.as_tensor(video_tokens)

    def score(text_ids: Sequence[int], video_ids: Sequence[int]) -> np.ndarray:
        out = []
        for first in range(0, len(text_ids), batch):
            t_ids, v_ids = text_ids[first:first + batch], video_ids[first:first + batch]
            tokens = torch.nn.utils.rnn.pad_sequence([text["tokens"][i] for i in t_ids],
                                                     batch_first=True).to(device)
            masks = torch.nn.utils.rnn.pad_sequence([text["masks"][i] for i in t_ids],
                                                    batch_first=True).to(device)
            logits = net.match_logits(tokens, masks, videos[list(v_ids)].to(device)).float()
            out.append((logits[:, 1] - logits[:, 0]).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def one_direction(scores: np.ndarray, pair: Any) -> np.ndarray:
        k_eff = min(k, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k_eff]
        rows = np.repeat(np.arange(scores.shape[0]), k_eff)
        cols = top.reshape(-1)
        matched = score(*pair(rows, cols))
        result = scores - scores.max() - 1.0  # non-candidates stay below every candidate
        offset = matched.min() if len(matched) else 0.0
        result[rows, cols] = matched - offset + 1.0
        return result

    t2v = one_direction(sim_t2v, lambda r, c: (list(r), list(c)))
    v2t = one_direction(sim_t2v.T, lambda r, c: (list(c), list(r)))
    return t2v, v2t
