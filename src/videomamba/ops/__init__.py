"""Compute kernels: the selective scan (reference, PyTorch, Triton) and its dispatcher."""
