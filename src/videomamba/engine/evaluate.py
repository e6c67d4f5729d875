"""Evaluation over a whole split, on one process or many.

Each rank runs ``task.eval_step`` on its shard; the per-sample outputs of all ranks are gathered,
de-duplicated by dataset index (a padded sampler repeats a few samples) and sorted back into
dataset order before ``task.summarize`` turns them into metrics, so the numbers do not depend on
the number of processes.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from videomamba.engine import distributed
from videomamba.engine.ema import unwrap
from videomamba.engine.logger import Progress
from videomamba.tasks.base import Task


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of ``batch`` moved to ``device`` (non-blocking); other fields unchanged."""
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast on CUDA; full precision elsewhere (CPU autocast is slower, not faster)."""
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def merge_outputs(per_rank: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate ranks' outputs, keep the first copy of each index, order by index."""
    per_rank = [r for r in per_rank if r] or per_rank
    keys = per_rank[0].keys()
    merged = {k: np.concatenate([r[k] for r in per_rank if len(r[k])] or [per_rank[0][k]]) for k in keys}
    _, first = np.unique(merged["index"], return_index=True)  # sorted by index
    return {k: v[first] for k, v in merged.items()}


@torch.no_grad()
def collect_outputs(task: Task, model: nn.Module, loader: Iterable, device: torch.device,
                    precision: str = "fp32", progress: bool = False,
                    total: int | None = None) -> dict[str, np.ndarray]:
    """This rank's ``eval_step`` outputs over ``loader`` as NumPy arrays."""
    chunks: dict[str, list[torch.Tensor]] = defaultdict(list)
    bar = Progress(loader, total or len(loader), "eval", enabled=progress)  # type: ignore[arg-type]
    for batch in bar:
        batch = to_device(batch, device)
        with autocast(device, precision):
            out = task.eval_step(model, batch)
        for key, value in out.items():
            chunks[key].append(value.detach().cpu())
        bar.update(int(out["index"].shape[0]))
    bar.close()
    return {k: torch.cat(v).float().numpy() if v[0].is_floating_point() else torch.cat(v).numpy()
            for k, v in chunks.items()}


def evaluate(task: Task, model: nn.Module, loader: Iterable, device: torch.device,
             precision: str = "fp32", progress: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics of the split and the merged per-sample outputs (identical on every rank)."""
    # Evaluate the bare module: DDP's forward would broadcast buffers, a collective that
    # deadlocks when ranks hold different numbers of batches.
    inner = unwrap(model)
    was_training = inner.training
    inner.eval()
    try:
        local = collect_outputs(task, inner, loader, device, precision, progress)
    finally:
        inner.train(was_training)
    merged = merge_outputs(distributed.all_gather_objects(local))
    return task.summarize(merged), merged
