"""The scan kernels, compiled for sm_90 as the mixer launches them (no GPU needed), keep the
register layout they are written for: a channel's 16 states on 4 lanes with 4 states per thread,
8 channels per warp. Session 5 found the compiled forward with one state per lane instead (9x
the shuffles, 1.6x slower) after an unrelated change to how A reached the kernel."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed (pip install -e .[dev])", allow_module_level=True)
TOOLS = Path(importlib.util.find_spec("triton").origin).parent / "backends" / "nvidia" / "bin"
if not (TOOLS / "ptxas").exists() or not (TOOLS / "cuobjdump").exists():
    pytest.skip("Triton's bundled ptxas/cuobjdump are missing", allow_module_level=True)

# order: states fastest across lanes, so a channel's bits are lane bits 2-4 (the backward's dB/dC
# reduce-scatter exchanges partners by those bits)
INTENDED = "sizePerThread = [1, 4, 1], threadsPerWarp = [8, 4, 1], warpsPerCTA = [1, 1, 1], order = [1, 0, 2]"
# the pair forward's 8-step tiles of 8 channels (batch 8): 2 states x 2 channels per thread, a
# state lane's bits are lane bits 0-2 (its output reduce-scatter exchanges partners by them)
PAIRS = "sizePerThread = [1, 2, 1], threadsPerWarp = [4, 8, 1], warpsPerCTA = [1, 1, 1], order = [1, 0, 2]"


def compile_launches(folder: Path, pair: str) -> list[dict]:
    """Summary of the scan launches of one mixer step (scripts/kernel_sass.py), compiled in a
    process of its own (the other tests switch this one to Triton's CPU interpreter), with the
    backward's two directions in one launch (``pair`` "1") or segmented per direction ("0")."""
    out = folder / f"summary_{pair}.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["VIDEOMAMBA_LEAN_PAIR"] = env["VIDEOMAMBA_FWD_PAIR"] = pair
    subprocess.run([sys.executable, str(ROOT / "scripts" / "kernel_sass.py"), "--which", "all",
                    "--json", str(out)], check=True, env=env, capture_output=True, timeout=600)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> list[dict]:
    """The launches one direction at a time (a forward per direction, SUMMARY + gradient pass
    per direction), then the scan kernels of the paired ones (both forwards in one launch, both
    backwards in one launch; their gate kernels are elementwise)."""
    folder = tmp_path_factory.mktemp("sass")
    segmented, paired = compile_launches(folder, "0"), compile_launches(folder, "1")
    assert [r["kernel"] for r in segmented] == ["_tile_fwd"] * 2 + ["_tile_bwd_lean"] * 4
    assert [r["kernel"] for r in paired] == ["_tile_fwd_pair", "_gate_sum_kernel",
                                             "_tile_bwd_pair", "_gate_grad_kernel"]
    return segmented + [paired[0], paired[2]]


def test_every_scan_launch_computes_in_the_intended_layout(compiled):
    for launch in compiled:
        intended = PAIRS if launch["kernel"] == "_tile_fwd_pair" else INTENDED
        assert intended in launch["layout"], (launch["kernel"], launch["flags"], launch["layout"])


def test_pair_forward_reduce_scatters_its_output_without_spills(compiled):
    # 3 exchange levels over the 8 state lanes: 8 + 4 + 2 shuffles per tile, 2 more moving the
    # finished sums to the store's layout (an all-reduce would take 48)
    pair = next(r for r in compiled if r["kernel"] == "_tile_fwd_pair")
    tile_loop = pair["loops"][0]
    assert tile_loop["opcodes"].get("SHFL", 0) <= 16, tile_loop
    assert not {"LDL", "STL"} & set(tile_loop["opcodes"]), tile_loop


def test_forward_tile_reduces_states_with_two_shuffle_levels(compiled):
    # <h, C> over 4 lanes: 2 levels x 16 steps; the regressed layout took 288 per tile
    for launch in [r for r in compiled if r["kernel"].startswith("_tile_fwd")]:
        tile_loop = launch["loops"][0]
        assert tile_loop["opcodes"].get("SHFL", 0) <= 40, tile_loop
        assert tile_loop["instructions"] < 1300, tile_loop


def test_gradient_pass_sums_dB_dC_by_reduce_scatter_without_spills(compiled):
    # dB/dC over 8 channel lanes: 28 exchanges (reduce-scatter) + 26 for the sums over states,
    # where two butterfly all-reduces took 96 + 26; B/C loaded once per (state, step)
    for launch in [r for r in compiled if r["kernel"].startswith("_tile_bwd")]:
        if launch["flags"].get("SUMMARY"):
            continue
        # the innermost loop with the channel sums (the pair kernel nests it in its segments')
        grad_loop = min((loop for loop in launch["loops"] if loop["opcodes"].get("SHFL", 0) > 20),
                        key=lambda loop: loop["instructions"])
        assert grad_loop["opcodes"].get("SHFL", 0) <= 60, grad_loop
        assert grad_loop["opcodes"].get("LDG", 0) <= 16, grad_loop
        assert not {"LDL", "STL"} & set(grad_loop["opcodes"]), grad_loop
