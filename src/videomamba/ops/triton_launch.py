"""Launching the Triton kernels with less work on the host.

``kernel[grid](*args)`` goes through ``JITFunction.run`` on every call: it specialises every
argument, builds a cache key (formatting the compile options as a string), looks the kernel up,
checks the kernel's globals and builds launch metadata for the (empty) launch hooks, before the
C launcher runs. :func:`launch` keeps, per kernel, the compiled kernels it has launched under a
key at least as fine as Triton's specialisation (each tensor's dtype and 16-byte alignment;
each integer's value class: 1, a multiple of 16, its width; every other value itself; the
launch options and the device), and calls the C launcher directly on a hit. A miss, installed
launch hooks (a profiler's), the CPU interpreter, a Triton other than 3.6 (whose launcher
contract this follows) or ``VIDEOMAMBA_FAST_LAUNCH=0`` take Triton's own path, which compiles
where needed; its result is what the key then maps to.

Run 89 (H200, eager VideoMamba-S, the fast path and Triton's alternating in one process, median
of four rounds; the host's times scatter by up to 1.5x between rounds): inference steps took
17.9 against 20.0 ms at 8 frames, batch 8, and 16.3 against 18.3 on a 1-frame clip where the
GPU waits on the host; training steps showed no difference beyond that scatter.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import torch
import triton
from triton import knobs

from videomamba.ops.selective_scan.triton_common import interpreting

_INT32 = range(-(2**31), 2**31)
_MAX_KEYS = 256  # per kernel; a call site whose keys keep changing stays on Triton's path
_CUDA = torch.cuda.is_available()
_TRITON_3_6 = triton.__version__.startswith("3.6.")


def fast_launch_enabled() -> bool:
    """Whether :func:`launch` may bypass ``JITFunction.run`` (``VIDEOMAMBA_FAST_LAUNCH``, on by
    default; never under the interpreter or without CUDA, where ``scripts/kernel_sass.py``
    compiles the launches instead of running them, nor with a Triton other than 3.6)."""
    return (_CUDA and _TRITON_3_6 and not interpreting()
            and os.environ.get("VIDEOMAMBA_FAST_LAUNCH", "1") != "0")


def _arg_key(value: Any) -> Any:
    """What Triton's specialisation of one argument depends on, or a finer key."""
    if isinstance(value, torch.Tensor):
        return (value.dtype, value.data_ptr() % 16 == 0)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return (value == 1, value % 16 == 0, value in _INT32, value >= 2**63)
    if isinstance(value, float):
        return float
    return value  # strings, dtypes, constexpr values: the value itself (hashable or a miss)


class _KernelLaunches:
    """One kernel's parameter order and defaults, and its compiled kernels by launch key."""

    def __init__(self, kernel) -> None:
        parameters = inspect.signature(kernel.fn).parameters
        self.names = list(parameters)
        self.defaults = {name: p.default for name, p in parameters.items()
                         if p.default is not inspect.Parameter.empty}
        self.compiled: dict[tuple, Any] = {}  # launch key -> triton CompiledKernel

    def bound_values(self, args: tuple, kwargs: dict) -> list:
        """Every parameter's value in signature order (constexprs included, as Triton's launcher
        takes them)."""
        values = list(args)
        for name in self.names[len(args):]:
            values.append(kwargs[name] if name in kwargs else self.defaults[name])
        return values


def _launches_of(kernel) -> _KernelLaunches:
    launches = getattr(kernel, "_videomamba_launches", None)
    if launches is None:
        launches = _KernelLaunches(kernel)
        kernel._videomamba_launches = launches
    return launches


def _launch_hooks_set() -> bool:
    """Whether launch hooks are installed (a profiler's): Triton 3.6 keeps them in ``HookChain``
    objects, empty by default; earlier versions in plain attributes, ``None`` by default."""
    for hook in (knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook):
        if hook is not None and getattr(hook, "calls", True):
            return True
    return False


def launch(kernel, grid: tuple[int, ...], *args: Any, **kwargs: Any) -> None:
    """``kernel[grid](*args, **kwargs)`` (kernel arguments positionally, constexprs and launch
    options such as ``num_warps`` by keyword), through the fast path where it applies."""
    if not fast_launch_enabled() or _launch_hooks_set():
        kernel[grid](*args, **kwargs)
        return
    device = torch.cuda.current_device()
    launches = _launches_of(kernel)
    key = (device, tuple(kwargs.items()), tuple(_arg_key(a) for a in args))
    try:
        compiled = launches.compiled.get(key)
    except TypeError:  # an unhashable argument: Triton's path
        kernel[grid](*args, **kwargs)
        return
    if compiled is None:
        compiled = kernel.run(*args, grid=grid, warmup=False, **kwargs)
        if compiled is not None and not hasattr(compiled, "result"):
            if len(launches.compiled) >= _MAX_KEYS:
                launches.compiled.clear()
            launches.compiled[key] = compiled
        return
    grid_1 = grid[1] if len(grid) > 1 else 1
    grid_2 = grid[2] if len(grid) > 2 else 1
    compiled.run(grid[0], grid_1, grid_2, torch._C._cuda_getCurrentRawStream(device),
                 compiled.function, compiled.packed_metadata, None, None, None,
                 *launches.bound_values(args, kwargs))
