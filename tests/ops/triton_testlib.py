"""What every Triton test module does before it imports the kernels."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch


def triton_device() -> tuple[bool, str]:
    """``(on_gpu, device)`` for the calling test module, which is skipped without triton. On a
    machine without CUDA the kernels go through Triton's CPU interpreter: ``TRITON_INTERPRET``
    is set here, before the module imports them (Triton's own functions, if torch's flop
    counter imported Triton already, are routed through the interpreter by triton_compat)."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed (pip install -e .[dev])", allow_module_level=True)
    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        os.environ["TRITON_INTERPRET"] = "1"
    return on_gpu, "cuda" if on_gpu else "cpu"
