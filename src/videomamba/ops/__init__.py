"""Compute kernels: the selective scan (reference, PyTorch, Triton) and its dispatcher."""

import importlib.util

# Whether the optional Triton kernels can be imported, checked once: a module constant keeps the
# check out of torch.compile's traced code.
TRITON_INSTALLED = importlib.util.find_spec("triton") is not None
