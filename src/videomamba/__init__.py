"""videomamba: VideoMamba (bidirectional state-space models for video) in PyTorch.

The one way to build a model is :func:`videomamba.create_model`; :func:`videomamba.list_models`
names what it can build. Attributes are imported on first use so that ``import videomamba``
(and ``videomamba --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "create_model": "videomamba.models",
    "list_models": "videomamba.models",
    "Predictor": "videomamba.apps.predict",
    "selective_scan": "videomamba.ops.selective_scan",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'videomamba' has no attribute {name!r}")
