"""``torch.compile`` of a model the way the trainer and the benchmarks do it."""

from __future__ import annotations

import torch
from torch import nn

from videomamba.errors import ConfigError


def compile_model(model: nn.Module, backend: str = "inductor", mode: str | None = None) -> nn.Module:
    """``torch.compile(model, backend=backend, mode=mode)``. ``mode`` (``"reduce-overhead"``:
    Inductor with CUDA graphs, also for training steps; ``"max-autotune"``, ...) needs the Inductor
    backend. With Inductor, its coalescing-tiling analysis is switched off: on torch 2.11 + CUDA
    it fails an internal assertion (``tiling_utils._solve_simple_expr``: an index with
    ``ModularIndexing``/``FloorDiv``) on a VideoMamba graph, which stopped every compile of the
    whole model (H200, docs/benchmarks.md); without it, Inductor picks its tiling by the older
    heuristic."""
    if mode is not None and backend != "inductor":
        raise ConfigError(f"train.compile_mode={mode!r} needs the inductor backend, "
                          f"got train.compile={backend!r}; set train.compile: true")
    if backend == "inductor":
        import torch._inductor.config as inductor_config

        inductor_config.triton.coalesce_tiling_analysis = False
    return torch.compile(model, backend=backend, mode=mode)
