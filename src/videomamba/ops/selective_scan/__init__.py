"""The selective scan and its dispatcher.

``selective_scan(..., backend="auto")`` runs one of the registered backends:

- ``ref``: :func:`selective_scan_ref`, sequential, the oracle;
- ``torch``: :func:`selective_scan_torch`, chunked PyTorch with autograd, any device;
- ``triton``: GPU kernels (``videomamba.ops.selective_scan.triton_op``), CUDA tensors only;
- ``mamba_ssm``: ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` when installed.

``auto`` takes the process-wide default (:func:`set_default_backend` or the environment variable
``VIDEOMAMBA_SCAN_BACKEND``) if one is set, else the fastest available for the tensor's device:
on CUDA ``triton`` (measured 1.7-2.1x faster than ``mamba_ssm``'s forward and 1.4-1.6x its
forward+backward on an H200, docs/benchmarks.md "Session 5"), then ``mamba_ssm`` if Triton is
missing; elsewhere ``torch``.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Callable

from torch import Tensor

from videomamba.errors import BackendUnavailableError
from videomamba.ops.selective_scan.ref import selective_scan_ref
from videomamba.ops.selective_scan.torch_chunked import selective_scan_torch

__all__ = [
    "BACKENDS",
    "available_backends",
    "get_default_backend",
    "selective_scan",
    "selective_scan_ref",
    "selective_scan_torch",
    "set_default_backend",
]

ENV_VAR = "VIDEOMAMBA_SCAN_BACKEND"
logger = logging.getLogger(__name__)

# name -> (module, function with the selective_scan_ref signature, how to make it available)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "ref": ("videomamba.ops.selective_scan.ref", "selective_scan_ref", ""),
    "torch": ("videomamba.ops.selective_scan.torch_chunked", "selective_scan_torch", ""),
    "triton": ("videomamba.ops.selective_scan.triton_op", "selective_scan_triton",
               "needs a CUDA GPU and `pip install videomamba[triton]`"),
    "mamba_ssm": ("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn",
                  "needs a CUDA GPU and `pip install mamba-ssm`"),
}
# backends that only take CUDA tensors
_CUDA_ONLY = {"triton", "mamba_ssm"}
# what `auto` tries on CUDA, fastest first as measured (docs/benchmarks.md, GPU section)
_CUDA_PREFERENCE = ("triton", "mamba_ssm")

_default: str | None = None
_auto_logged: set[tuple[str, str]] = set()


def _load(name: str) -> Callable[..., object]:
    """The backend's function, or BackendUnavailableError saying how to get it."""
    if name not in BACKENDS:
        raise BackendUnavailableError(
            f"unknown selective-scan backend {name!r}; choose one of {sorted(BACKENDS)} or 'auto'")
    module_name, attr, how = BACKENDS[name]
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise BackendUnavailableError(
            f"selective-scan backend {name!r} is not available ({err}); it {how}") from err


def available_backends() -> list[str]:
    """Backends whose code imports here (a CUDA-only one also needs a GPU to run)."""
    names = []
    for name in BACKENDS:
        try:
            _load(name)
        except BackendUnavailableError:
            continue
        names.append(name)
    return names


def set_default_backend(name: str | None) -> None:
    """Make ``name`` what ``backend="auto"`` means in this process (None: choose per call).
    Overrides the ``VIDEOMAMBA_SCAN_BACKEND`` environment variable."""
    global _default
    if name is not None and name != "auto":
        _load(name)  # fail now, not at the first forward pass
    _default = None if name == "auto" else name


def get_default_backend() -> str | None:
    """The process-wide choice for ``auto``: set_default_backend's, else the environment's."""
    if _default is not None:
        return _default
    env = os.environ.get(ENV_VAR, "").strip()
    return env if env and env != "auto" else None


def _choose(u: Tensor) -> str:
    chosen = get_default_backend()
    if chosen is None:
        chosen = "torch"
        if u.is_cuda:
            for name in _CUDA_PREFERENCE:
                try:
                    _load(name)
                except BackendUnavailableError:
                    continue
                chosen = name
                break
    key = (chosen, u.device.type)
    if key not in _auto_logged:
        _auto_logged.add(key)
        logger.debug("selective scan: backend 'auto' uses %r on %s", chosen, u.device.type)
    return chosen


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    backend: str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """``y = scan(u, delta, A, B, C, ...)`` as ``mamba_ssm.selective_scan_fn``: u, delta, z
    ``(B, D, L)``; A ``(D, N)``; B, C ``(B, N, L)`` or ``(B, G, N, L)``; D, delta_bias ``(D,)``.
    Returns y ``(B, D, L)`` (and the last state ``(B, D, N)`` if ``return_last_state``)."""
    name = _choose(u) if backend == "auto" else backend
    fn = _load(name)
    if name in _CUDA_ONLY and not u.is_cuda:
        raise BackendUnavailableError(
            f"selective-scan backend {name!r} runs on CUDA tensors only, got a {u.device.type} "
            "tensor; use backend='torch' (or 'auto') on this device")
    return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
