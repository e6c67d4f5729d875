"""Inference through captured CUDA graphs: one capture per input shape, then replays.

A VideoMamba forward is some 20 kernel launches per block; at small batches the host spends
longer issuing them (Python, custom-op dispatch, allocation) than the GPU spends running them. A
CUDA graph records the launches once and replays them with a single call, so the GPU time is
what is left. The model must not change between replays (eval mode, frozen weights): a replay
reuses the captured kernels, buffers and parameters' storage.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import Tensor, nn


class CudaGraphRunner:
    """``runner(x)`` == ``fn(x)`` under ``torch.no_grad()`` (and bf16/fp16 autocast when
    ``autocast_dtype`` is given) for a CUDA tensor ``x`` of any shape, replayed from a CUDA graph
    captured on the first call with that shape and dtype; the ``max_graphs`` most recently used
    shapes stay captured (each keeps its own memory pool). CPU inputs, and every input when CUDA
    graphs are unavailable, run eagerly. The returned tensor is a fresh copy."""

    def __init__(self, fn: Callable[[Tensor], Tensor] | nn.Module,
                 autocast_dtype: torch.dtype | None = None, warmup: int = 2,
                 max_graphs: int = 4) -> None:
        self.fn = fn
        self.autocast_dtype = autocast_dtype
        self.warmup = warmup
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, Tensor, Tensor]] = OrderedDict()

    def eager(self, x: Tensor) -> Tensor:
        with torch.no_grad(), torch.autocast(x.device.type, dtype=self.autocast_dtype or
                                             torch.float32, enabled=self.autocast_dtype is not None):
            return self.fn(x)

    def __call__(self, x: Tensor) -> Tensor:
        if not x.is_cuda:
            return self.eager(x)
        key = (tuple(x.shape), x.dtype, x.device)
        if key not in self._graphs:
            self._graphs[key] = self._capture(x)
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def _capture(self, x: Tensor) -> tuple[torch.cuda.CUDAGraph, Tensor, Tensor]:
        static_in = x.detach().clone()
        # warm-up on a side stream (lazy initialisation, Triton compilation, allocator state)
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(max(self.warmup, 1)):
                self.eager(static_in)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.eager(static_in)
        return graph, static_in, static_out

    def clear(self) -> None:
        """Drop every captured graph (and its memory pool)."""
        self._graphs.clear()
