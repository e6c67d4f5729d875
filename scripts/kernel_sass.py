"""Compile the scan kernels exactly as the bidirectional mixer launches them, for a Hopper GPU
(sm_90), on a machine without one, and count the machine instructions of their loops.

The kernels' speed depends on which register layout Triton picks for their arithmetic (it takes
the layout of the kernel's last load, see docs/kernels.md "Session 5"), and a change elsewhere
can silently move it. This tool runs the real launchers (``triton_bidir``'s forward and
backward of the scan pair) on CPU tensors with the mixer's shapes and strides, and compiles each
launch through Triton's own argument specialisation instead of running it. Needs Triton with its
bundled ``ptxas``/``cuobjdump``; not the CPU interpreter (unset ``TRITON_INTERPRET``).

    python scripts/kernel_sass.py                      # VideoMamba-S, B=8, 8 frames
    python scripts/kernel_sass.py --which fwd --json sass.json --keep /tmp/sass
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime import jit as triton_jit

TARGET = GPUTarget("cuda", 90, 32)
TOOLS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"


def capture_compiles(fn, *args, **kwargs) -> list[dict]:
    """Call ``fn`` with every Triton launch replaced by a compile for :data:`TARGET`; returns
    one record per launch (kernel name, constexpr flags, TTGIR, SASS)."""
    backend = make_backend(TARGET)
    records: list[dict] = []

    def compile_instead(self, *call_args, grid, warmup, **call_kwargs):
        call_kwargs.setdefault("debug", False)
        binder = triton_jit.create_function_from_signature(self.signature, self.params, backend)
        bound, specialization, options = binder(*call_args, **call_kwargs)
        options, signature, constexprs, attrs = self._pack_args(backend, call_kwargs, bound,
                                                                specialization, options)
        kernel = triton.compile(ASTSource(self, signature, constexprs, attrs), target=TARGET,
                                options=options.__dict__)
        records.append({"kernel": self.fn.__name__, "grid": list(grid),
                        "flags": {k: v for k, v in call_kwargs.items() if k.isupper()},
                        "ttgir": kernel.asm["ttgir"], "sass": disassemble(kernel.asm["cubin"]),
                        "resources": resource_usage(kernel.asm["cubin"])})

    saved = triton_jit.JITFunction.run
    triton_jit.JITFunction.run = compile_instead
    try:
        fn(*args, **kwargs)
    finally:
        triton_jit.JITFunction.run = saved
    return records


def _cuobjdump(cubin: bytes, *flags: str) -> str:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kernel_sass_{os.getpid()}.cubin"
    path.write_bytes(cubin)
    try:
        return subprocess.run([str(TOOLS / "cuobjdump"), *flags, str(path)], check=True,
                              capture_output=True, text=True).stdout
    finally:
        path.unlink()


def disassemble(cubin: bytes) -> str:
    return _cuobjdump(cubin, "-sass")


def resource_usage(cubin: bytes) -> dict[str, int]:
    """Registers per thread, stack (where ptxas spills registers) and local memory in bytes."""
    text = _cuobjdump(cubin, "-res-usage")
    found = dict(re.findall(r"\b(REG|STACK|LOCAL|SHARED):(\d+)", text))
    return {key.lower(): int(value) for key, value in found.items()}


def loops(sass: str) -> list[dict]:
    """The loops of a SASS listing (a backward branch and what it jumps over), largest first,
    each with its instruction count and opcode histogram."""
    instructions = [(int(a, 16), text.strip()) for a, text in
                    re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)]
    found = []
    for address, text in instructions:
        target = re.search(r"BRA\s+(?:`\(.*?\)\s*)?0x([0-9a-f]+)", text)
        if target and int(target.group(1), 16) <= address:
            start = int(target.group(1), 16)
            body = [t for a, t in instructions if start <= a <= address]
            opcodes = collections.Counter(
                re.sub(r"^@!?U?P\w+\s+", "", t).split()[0].split(".")[0] for t in body)
            found.append({"start": hex(start), "instructions": len(body),
                          "opcodes": dict(opcodes.most_common())})
    return sorted(found, key=lambda loop: -loop["instructions"])


def mixer_scan_inputs(batch: int, length: int, channels: int, n_state: int, dt_rank: int):
    """CPU tensors with the mixer's shapes and memory layouts: the conv outputs, deltas and the
    output in ``(B, L, D)`` memory seen as ``(B, D, L)``; B and C slices of x_proj's output."""
    bf16 = torch.bfloat16

    def channels_last():
        return torch.empty(batch, length, channels, dtype=bf16).transpose(1, 2)

    def branch():
        x_dbl = torch.empty(batch, length, dt_rank + 2 * n_state, dtype=bf16)
        B = x_dbl[..., dt_rank:dt_rank + n_state].transpose(1, 2)
        C = x_dbl[..., dt_rank + n_state:].transpose(1, 2)
        return (channels_last().normal_(), channels_last().normal_(),
                torch.zeros(channels, n_state), B, C, torch.ones(channels), torch.zeros(channels))

    xz = torch.empty(batch, length, 2 * channels, dtype=bf16).transpose(1, 2)
    return branch(), branch(), xz[:, channels:]


def compile_mixer_scans(which: str = "all", batch: int = 8, length: int = 1569,
                        channels: int = 768, n_state: int = 16, dt_rank: int = 24) -> list[dict]:
    """Records of the scan launches of one mixer step (VideoMamba-S defaults): the forward pair
    (``which`` fwd or all: both directions in one launch and the gate that sums them where they
    fit the GPU in one wave, one launch per direction otherwise or with
    ``VIDEOMAMBA_FWD_PAIR=0``) and the backward's launches (bwd or all): the pair kernel and the
    dz kernel where the grid fills the GPU (VideoMamba-S at batch 8), SUMMARY + gradient pass per
    direction otherwise or with ``VIDEOMAMBA_LEAN_PAIR=0``."""
    from videomamba.ops.selective_scan import triton_bidir

    f, b, z = mixer_scan_inputs(batch, length, channels, n_state, dt_rank)

    def one_step():  # launches are compiled, not run: the tensors keep their (empty) contents
        _, ck_f, ck_b = triton_bidir._scan_pair_forward(f, b, z)
        if which in ("bwd", "all"):
            dy = torch.empty(batch, length, channels, dtype=torch.bfloat16).transpose(1, 2)
            dxz = torch.empty(batch, length, 2 * channels, dtype=torch.bfloat16).transpose(1, 2)
            triton_bidir._scan_pair_backward(dy, f, b, z, ck_f, ck_b, dz_out=dxz[:, channels:])

    records = capture_compiles(one_step)
    forward = [r for r in records if r["kernel"] in FORWARD_KERNELS]
    return {"fwd": forward, "bwd": records[len(forward):], "all": records}[which]


# the forward's launches: one per direction, or the pair kernel and the gate that sums them
FORWARD_KERNELS = ("_tile_fwd", "_tile_fwd_pair", "_gate_sum_kernel")


def arithmetic_layout(ttgir: str) -> str:
    """The layout of the first ``tt.scan`` (the recurrence) in a TTGIR listing."""
    match = re.search(r'"tt\.scan".*?\}\) : \(tensor<[^,>]*,\s*#(\w+)>', ttgir, re.S)
    if not match:
        return ""
    definition = re.search(rf"^#{match.group(1)} = (.*)$", ttgir, re.M)
    return definition.group(1) if definition else match.group(1)


def summary(records: list[dict]) -> list[dict]:
    rows = []
    for r in records:
        loop = loops(r["sass"])
        rows.append({"kernel": r["kernel"], "flags": r["flags"],
                     "layout": arithmetic_layout(r["ttgir"]),
                     "resources": r["resources"],
                     "instructions": len(re.findall(r"/\*[0-9a-f]{4,}\*/", r["sass"])),
                     "loops": loop[:5]})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", choices=("fwd", "bwd", "all"), default="all")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=1569)
    parser.add_argument("--json", help="write the summary here")
    parser.add_argument("--keep", help="folder for each launch's TTGIR and SASS")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("unset TRITON_INTERPRET: the interpreter compiles nothing", file=sys.stderr)
        return 2
    records = compile_mixer_scans(args.which, args.batch, args.length)
    rows = summary(records)
    for i, (r, row) in enumerate(zip(records, rows)):
        flags = ", ".join(f"{k}={v}" for k, v in r["flags"].items()
                          if k in ("SUMMARY", "REVERSE", "T", "BLOCK_D", "PREFETCH", "Z_MODE"))
        res = row["resources"]
        print(f"{i} {r['kernel']} ({flags}): {row['instructions']} instructions, "
              f"{res.get('reg')} registers, {res.get('stack', 0)} bytes stack (spills)")
        print(f"   arithmetic layout {row['layout']}")
        for loop in row["loops"][:2]:
            top = ", ".join(f"{k} {v}" for k, v in list(loop["opcodes"].items())[:8])
            print(f"   loop at {loop['start']}: {loop['instructions']} ({top})")
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for ext in ("ttgir", "sass"):
                Path(args.keep, f"{i}_{r['kernel']}.{ext}").write_text(r[ext])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
