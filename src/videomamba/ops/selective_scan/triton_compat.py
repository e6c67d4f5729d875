"""Compatibility shims for Triton's CPU interpreter (``TRITON_INTERPRET=1``), used by the CPU tests.
Compiled (GPU) kernels never touch this path.

1. Triton 3.6's interpreter turns a scalar kernel argument into a one-element array and converts
   it to a Python int with ``int(array)``, which NumPy >= 2.4 refuses for arrays that are not 0-d;
   a ``for i in range(n)`` over a run-time ``n`` then fails. We convert through the element.
2. Triton decides when it is imported whether its own library functions (``tl.zeros``,
   ``tl.sum``, ``tl.sigmoid``, ...) are interpreted. When something imported Triton before the
   variable was set (``torch.utils.flop_counter`` does), those stay compiled-only functions and
   raise when an interpreted kernel calls them; we run them through the interpreter instead.
"""

from __future__ import annotations

import functools


def patch_interpreter_index() -> None:
    """Make the interpreter's ``tensor.__index__`` accept one-element arrays (idempotent)."""
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor
    if getattr(original, "_videomamba_patched", False):
        return

    @functools.wraps(original)
    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    patched._videomamba_patched = True
    interpreter._patch_lang_tensor = patched


def interpret_library_calls() -> None:
    """Let interpreted kernels call ``@triton.jit`` functions made before interpretation was
    switched on (idempotent)."""
    from triton.runtime import interpreter, jit

    if getattr(jit.JITFunction.__call__, "_videomamba_patched", False):
        return
    interpreted: dict = {}

    def call(self, *args, **kwargs):
        fn = interpreted.get(self.fn)
        if fn is None:
            fn = interpreted[self.fn] = interpreter.InterpretedFunction(self.fn)
        return fn(*args, **kwargs)

    call._videomamba_patched = True
    jit.JITFunction.__call__ = call
