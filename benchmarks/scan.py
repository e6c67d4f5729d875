"""Selective-scan kernel benchmark (GPU): ours (Triton), the ``torch`` path, the official CUDA
kernel (``mamba_ssm``, when installed) and SDPA attention over the same tokens, side by side.

Problem: B=8, D=768 (VideoMamba-S's d_inner), N=16, bf16 u/delta/z/B/C, float32 A/D/delta_bias,
softplus on, at L in {1569, 3137, 6273, 12545} (1 + 196*T tokens for T = 8..64 frames). Each time
is the median of ``triton.testing.do_bench``; beside it the memory floor: the bytes a kernel must
move (inputs read once, outputs written once) over the copy bandwidth measured at the start.

    python benchmarks/scan.py --out scan.json [--sweep] [--backends triton,torch,mamba_ssm,sdpa]

Backends: ``triton`` (ours: the tiled forward with the lean backward), ``torch``, ``mamba_ssm``
(the official CUDA kernel), ``sdpa``. ``--sweep`` first tunes the tiled forward's config, then the
lean backward's config with the segmentation, at ``--sweep-length`` and keeps the best for the
table; ``--bwd-check`` times backward configurations (``lean:T,BLOCK_D,slots,maxnreg[,prefetch]``)
at ``--bwd-check-lengths`` and keeps the best for the table. The JSON is rewritten after each
step, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F

LENGTHS = (1569, 3137, 6273, 12545)
BATCH, CHANNELS, N_STATE = 8, 768, 16
# tiled forward: "T, BLOCK_D, segments" (BLOCK_D 8: 4 lanes share a channel's 16 states)
TILE_SWEEP = ["8,8,1", "8,8,2", "8,8,3", "4,8,1", "4,8,2", "16,8,1", "8,16,1", "8,16,2",
              "4,32,3", "4,32,6"]
# lean backward "T,BLOCK_D,slots per SM (0: a program per work item),maxnreg (0: uncapped)
# [,prefetch]" (ptxas: T=4 needs 254 registers uncapped, none spilled at 200, one reload per tile
# at 168; T=2 none at 144)
BWD_CHECK = ["lean:4,8,10,200", "lean:4,8,12,168", "lean:4,8,8,0", "lean:4,8,8,0,1",
             "lean:4,8,0,0", "lean:4,8,0,200", "lean:2,8,14,144", "lean_noatomics:4,8,10,200"]
# lean backward with the segmentation ("step,target": segments of a multiple of `step` steps for
# about `target` (row, 64-channel block, segment) items), "lean config/segment config"
BWD_SWEEP = ["4,8,0,0/16,4096", "4,8,0,0/16,2048", "4,8,0,0/16,8192", "8,8,0,0/16,4096",
             "2,8,0,0/16,4096"]


def bench_ms(fn) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=150, return_mode="median"))


def copy_bandwidth_gbs() -> float:
    """Device-to-device copy of 1 GiB: (bytes read + bytes written) / time."""
    src = torch.randn(256 * 1024 * 1024, device="cuda")
    dst = torch.empty_like(src)
    ms = bench_ms(lambda: dst.copy_(src))
    return 2 * src.numel() * 4 / (ms * 1e-3) / 1e9


def warm_up_gpu(seconds: float = 2.0) -> None:
    """Keep the GPU busy for a while before the first timing: the first kernels timed in a
    process otherwise run while the clocks still rise (docs/kernels.md, runs 26-27)."""
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()


DT_RANK = 24  # VideoMamba-S: x_proj's output is (B, L, 24 + 2 * 16)


def make_inputs(length: int, grad: bool, seed: int = 0, batch: int = BATCH,
                layout: str = "contiguous") -> dict:
    """The scan's inputs, ``(B, D, L)``/``(B, N, L)`` contiguous, or with ``layout="model"`` in
    the memory the mixer hands our kernels: u, delta, z in ``(B, L, D)`` memory, B and C slices
    of x_proj's ``(B, L, dt_rank + 2N)`` output. ``leaves`` holds the tensors gradients reach."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    leaves = []

    def leaf(t):
        t = t.requires_grad_(grad)
        leaves.append(t)
        return t

    def rand(*shape, scale=1.0, dtype=torch.bfloat16):
        t = torch.randn(*shape, generator=gen, device="cuda") * scale
        if layout == "model" and len(shape) == 3:  # (B, D, L) from (B, L, D) memory
            return leaf(t.transpose(1, 2).contiguous().to(dtype)).transpose(1, 2)
        return leaf(t.to(dtype))

    def b_and_c():
        if layout != "model":
            return rand(batch, N_STATE, length), rand(batch, N_STATE, length)
        x_dbl = leaf(torch.randn(batch, length, DT_RANK + 2 * N_STATE, generator=gen,
                                 device="cuda").to(torch.bfloat16))
        return (x_dbl[..., DT_RANK:DT_RANK + N_STATE].transpose(1, 2),
                x_dbl[..., DT_RANK + N_STATE:].transpose(1, 2))

    A = (-torch.exp(torch.log(torch.arange(1, N_STATE + 1, device="cuda").float()))
         .repeat(CHANNELS, 1) * (1 + 0.1 * torch.rand(CHANNELS, N_STATE, generator=gen, device="cuda")))
    u, delta = rand(batch, CHANNELS, length), rand(batch, CHANNELS, length, scale=0.5)
    B, C = b_and_c()
    return {
        "u": u, "delta": delta, "A": leaf(A), "B": B, "C": C,
        "D": rand(CHANNELS, dtype=torch.float32), "z": rand(batch, CHANNELS, length),
        "delta_bias": leaf(torch.rand(CHANNELS, generator=gen, device="cuda") * -4 - 1),
        "leaves": leaves,
    }


def floor_bytes(length: int) -> dict:
    """Fewest bytes: forward reads u, delta, z, B, C and writes y (bf16); backward reads those and
    dy and writes du, ddelta, dz, dB, dC."""
    big = BATCH * CHANNELS * length * 2
    small = BATCH * N_STATE * length * 2
    fwd = 4 * big + 2 * small
    bwd = 4 * big + 2 * small + 3 * big + 2 * small
    return {"fwd": fwd, "fwd_bwd": fwd + bwd}


def scan_fn(backend: str):
    if backend == "triton":
        from videomamba.ops.selective_scan.triton_op import selective_scan_triton

        return selective_scan_triton
    if backend == "torch":
        from videomamba.ops.selective_scan.torch_chunked import selective_scan_torch

        return selective_scan_torch
    if backend == "mamba_ssm":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        return selective_scan_fn
    raise ValueError(backend)


def time_scan(backend: str, length: int, backward: bool = True, batch: int = BATCH,
              layout: str = "contiguous") -> dict:
    fn = scan_fn(backend)
    x = make_inputs(length, grad=True, batch=batch, layout=layout)
    args = (x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"], x["delta_bias"], True)
    with torch.no_grad():
        fwd = bench_ms(lambda: fn(*args))
    if not backward:
        return {"fwd_ms": fwd}
    dy = torch.randn_like(x["u"])
    leaves = x["leaves"]

    def fwd_bwd():
        for t in leaves:
            t.grad = None
        fn(*args).backward(dy)

    both = bench_ms(fwd_bwd)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fwd_bwd()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return {"fwd_ms": fwd, "fwd_bwd_ms": both, "peak_extra_mib": peak}


def time_sdpa(length: int) -> dict:
    """Joint attention over the same tokens: 12 heads of 64 (d=768), bf16, flash path."""
    q, k, v = (torch.randn(BATCH, CHANNELS // 64, length, 64, device="cuda", dtype=torch.bfloat16,
                           requires_grad=True) for _ in range(3))
    with torch.no_grad():
        fwd = bench_ms(lambda: F.scaled_dot_product_attention(q, k, v))
    do = torch.randn_like(q)

    def fwd_bwd():
        for t in (q, k, v):
            t.grad = None
        F.scaled_dot_product_attention(q, k, v).backward(do)

    return {"fwd_ms": fwd, "fwd_bwd_ms": bench_ms(fwd_bwd)}


def cross_check(length: int, backends: list[str]) -> dict:
    """Each backend against the sequential reference (float32 on the same bf16 inputs):
    relative errors of y and of every gradient."""
    from videomamba.ops.selective_scan.ref import selective_scan_ref

    runs = {}
    for name in ["ref"] + backends:
        fn = selective_scan_ref if name == "ref" else scan_fn(name)
        x = make_inputs(length, grad=True, seed=7)
        y = fn(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"], x["delta_bias"], True)
        y.float().square().mean().backward()
        runs[name] = (y, {k: x[k].grad for k in ("u", "delta", "A", "B", "C", "D", "z",
                                                  "delta_bias")})
    rel = lambda a, b: ((a.float() - b.float()).norm() / b.float().norm()).item()  # noqa: E731
    y_ref, g_ref = runs.pop("ref")
    return {name: {"y": rel(y, y_ref), **{"d" + k: rel(g[k], g_ref[k]) for k in g}}
            for name, (y, g) in runs.items()}


def _sweep_one(env: str, configs: list[str], length: int, key: str, backward: bool) -> dict:
    res = {}
    for cfg in configs:
        os.environ[env] = cfg
        try:
            res[cfg] = time_scan("triton", length, backward=backward)
        except Exception as err:  # a configuration that does not compile is reported
            res[cfg] = {"error": repr(err)[:200]}
        print(f"  {env} {cfg}: {res[cfg]}", flush=True)
    ok = {k: v[key] for k, v in res.items() if key in v}
    best = min(ok, key=ok.get)
    os.environ[env] = best
    return {"results": res, "best": best, "length": length}


def sweep(length: int) -> dict:
    """Tune the tiled forward (forward time), then the lean backward with the segmentation
    (forward+backward time, with the best forward), at one length; the best stays set."""
    tile = _sweep_one("VIDEOMAMBA_TILE_CONFIG", TILE_SWEEP, length, "fwd_ms", backward=False)
    res = {}
    for pair in BWD_SWEEP:
        _set_backward_configs(pair)
        try:
            res[pair] = time_scan("triton", length)
        except Exception as err:  # a configuration that does not compile is reported
            res[pair] = {"error": repr(err)[:200]}
        print(f"  bwd {pair}: {res[pair]}", flush=True)
    ok = {k: v["fwd_bwd_ms"] for k, v in res.items() if "fwd_bwd_ms" in v}
    best = min(ok, key=ok.get)
    _set_backward_configs(best)
    return {"tile": tile, "bwd": {"results": res, "best": best, "length": length}}


def occupancy_probe(length: int, configs: list[str], layout: str = "contiguous") -> dict:
    """Forward time of each tiled-forward config ``T,BLOCK_D,n_seg`` at batch 8 and 16: whether
    twice the programs (what one launch for both directions of a block would run) take less
    than twice the time, i.e. whether the forward is short of resident warps."""
    res = {}
    for cfg in configs:
        os.environ["VIDEOMAMBA_TILE_CONFIG"] = cfg
        res[cfg] = {}
        for batch in (BATCH, 2 * BATCH):
            try:
                res[cfg][batch] = time_scan("triton", length, backward=False, batch=batch,
                                            layout=layout)["fwd_ms"]
            except Exception as err:  # a configuration that does not compile is reported
                res[cfg][batch] = repr(err)[:200]
        print(f"  occupancy {cfg}: {res[cfg]}", flush=True)
    os.environ.pop("VIDEOMAMBA_TILE_CONFIG")
    return {"length": length, "fwd_ms_by_batch": res}


def pair_probe(lengths: list[int], configs: list[str], batches: list[int]) -> dict:
    """The mixer's two forward scans in the model's layout (``triton_bidir._scan_pair_forward``:
    gated ``scan_f + reverse scan_b`` with segment states) for each both-directions-in-one-launch
    config ``T,BLOCK_D[,maxnreg]``, and ``split``: one launch per direction."""
    from videomamba.ops.selective_scan.triton_bidir import _scan_pair_forward

    def branch(x: dict) -> tuple:  # (u, delta, A_log, B, C, D, delta_bias), as the mixer's
        return x["u"], x["delta"], torch.log(-x["A"]), x["B"], x["C"], x["D"], x["delta_bias"]

    res: dict = {}
    for batch in batches:
        for length in lengths:
            xf = make_inputs(length, grad=False, seed=0, batch=batch, layout="model")
            xb = make_inputs(length, grad=False, seed=1, batch=batch, layout="model")
            f, b, z = branch(xf), branch(xb), xf["z"]
            key = f"B={batch} L={length}"
            res[key] = {}
            for cfg in ["split"] + configs:
                os.environ["VIDEOMAMBA_FWD_PAIR"] = "0" if cfg == "split" else "1"
                if cfg != "split":
                    os.environ["VIDEOMAMBA_FWD_PAIR_TILE"] = cfg
                try:
                    res[key][cfg] = bench_ms(lambda: _scan_pair_forward(f, b, z))
                except Exception as err:  # a configuration that does not compile is reported
                    res[key][cfg] = repr(err)[:200]
            print(f"  pair {key}: " + ", ".join(
                f"{c} {v:.4f}" if isinstance(v, float) else f"{c} {v}"
                for c, v in res[key].items()), flush=True)
    for var in ("VIDEOMAMBA_FWD_PAIR", "VIDEOMAMBA_FWD_PAIR_TILE"):
        os.environ.pop(var, None)
    return {"fwd_ms": res}


def _set_backward_configs(pair: str) -> None:
    """``"lean config/segment config"`` into the environment the kernels read."""
    lean, segments = pair.split("/")
    os.environ["VIDEOMAMBA_LEAN_BWD_CONFIG"] = lean
    os.environ["VIDEOMAMBA_SEGMENT_CONFIG"] = segments


def bwd_check(lengths: list[int], entries: list[str], save=None) -> dict:
    """Forward+backward time and extra peak memory of each backward configuration
    (``kind:config``) at each length; the best lean configuration (sum over lengths) stays set.
    ``save(partial)`` is called after each configuration."""
    key = "VIDEOMAMBA_LEAN_BWD_CONFIG"
    res = {}
    for entry in entries:
        kind, cfg = entry.split(":")
        if kind not in ("lean", "lean_reduce", "lean_noatomics", "lean_lanes"):
            raise SystemExit(f"--bwd-check entry {entry!r}: the kind must be lean, lean_reduce, "
                             "lean_lanes or lean_noatomics (the other backwards were removed)")
        # lean: dB/dC summed over the warp's channels by the default (reduce-scatter on the GPU);
        # lean_reduce: by butterfly all-reduces (tl.sum); lean_lanes: atomics from every lane;
        # lean_noatomics: a timing ablation (dB and dC not accumulated, so wrong): their cost
        os.environ["VIDEOMAMBA_LEAN_ABLATE"] = "atomics" if kind == "lean_noatomics" else ""
        os.environ["VIDEOMAMBA_LEAN_BC"] = {"lean_lanes": "lanes",
                                            "lean_noatomics": "reduce",
                                            "lean_reduce": "reduce"}.get(kind, "scatter")
        saved = os.environ.get(key)
        os.environ[key] = cfg
        res[entry] = {}
        for length in lengths:
            try:
                res[entry][length] = time_scan("triton", length)
            except Exception as err:  # a configuration that does not compile is reported
                res[entry][length] = {"error": repr(err)[:200]}
            torch.cuda.empty_cache()
            print(f"  bwd {entry} L={length}: {res[entry][length]}", flush=True)
        if save is not None:
            save({"results": res, "lengths": lengths})
        if saved is None:
            del os.environ[key]
        else:
            os.environ[key] = saved
    os.environ.pop("VIDEOMAMBA_LEAN_ABLATE", None)
    os.environ.pop("VIDEOMAMBA_LEAN_BC", None)
    totals = {e: sum(r["fwd_bwd_ms"] for r in v.values()) for e, v in res.items()
              if e.startswith("lean:") and all("fwd_bwd_ms" in r for r in v.values())}
    best = min(totals, key=totals.get) if totals else None
    if best:
        os.environ["VIDEOMAMBA_LEAN_BWD_CONFIG"] = best.split(":")[1]
    return {"results": res, "best_lean": best, "lengths": lengths}


def plot(json_paths: list[str], png: str) -> None:
    """Forward and forward+backward time against L for every backend in the given runs (run files
    are labelled by their date), beside the memory floor; written atomically to ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    seen = set()
    for path in json_paths:
        with open(path) as fh:
            report = json.load(fh)
        rows = report["rows"]
        lengths = [r["L"] for r in rows]
        names = [k for k in rows[0] if isinstance(rows[0][k], dict) and "fwd_ms" in rows[0][k]]
        for ax, key, floor_key in ((axes[0], "fwd_ms", "floor_fwd_ms"),
                                   (axes[1], "fwd_bwd_ms", "floor_fwd_bwd_ms")):
            if "floor" not in seen:
                ax.plot(lengths, [r[floor_key] for r in rows], "k--", label="memory floor")
            for name in names:
                if (name, key) in seen:
                    continue
                seen.add((name, key))
                pts = [(r["L"], r[name][key]) for r in rows if key in r.get(name, {})]
                label = {"triton": "ours (Triton, tiled, lean backward)",
                         # backends of earlier runs' files (kernels removed after 353f833)
                         "triton_prev": "ours (Triton, tiled, previous backward)",
                         "triton_seq": "ours (Triton, segmented)",
                         "triton_chunk": "ours (Triton, chunked)",
                         "mamba_ssm": "official CUDA (mamba_ssm 2.3.2.post1)",
                         "torch": "torch path", "sdpa": "SDPA attention, same tokens"}.get(name, name)
                ax.plot(*zip(*pts), marker="o", label=label)
        seen.add("floor")
    for ax, title in zip(axes, ("forward", "forward + backward")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L (B=8, D=768, N=16, bf16)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms (median)")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"selective scan on {report['device']}")
    fig.tight_layout()
    from videomamba.utils.io import atomic_path

    with atomic_path(png, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="scan.json")
    parser.add_argument("--backends", default="triton,torch,mamba_ssm,sdpa")
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    parser.add_argument("--layout", choices=("contiguous", "model"), default="contiguous",
                        help="memory layout of our kernel's inputs: contiguous (B, D, L), or the "
                             "mixer's (u, delta, z in (B, L, D) memory, B/C slices of x_proj's "
                             "output); the official kernel always gets contiguous inputs, as its "
                             "model gives it")
    parser.add_argument("--sweep", action="store_true", help="tune the Triton configs first")
    parser.add_argument("--sweep-length", type=int, default=3137)
    parser.add_argument("--check-lengths", default="1569", help="lengths of the reference check")
    parser.add_argument("--bwd-check", nargs="?", const=",".join(BWD_CHECK), default=None,
                        help="time these backward configurations first (comma-separated "
                        "kind:config; no value: the built-in list)")
    parser.add_argument("--bwd-check-lengths", default="1569,6273")
    parser.add_argument("--occupancy", default=None, metavar="CONFIGS",
                        help="first time these tiled-forward configs (T,BLOCK_D,n_seg;T,...) at "
                             "batch 8 and 16, at the first of --lengths")
    parser.add_argument("--pair", default=None, metavar="CONFIGS",
                        help="first time the mixer's two forward scans (model layout) with both "
                             "directions in one launch for these configs (T,BLOCK_D[,maxnreg];"
                             "...) and with one launch per direction, at --lengths and "
                             "--pair-batches")
    parser.add_argument("--pair-batches", default="8")
    parser.add_argument("--torch-max-length", type=int, default=3137,
                        help="skip the (slow) torch path above this length")
    parser.add_argument("--plot", nargs="+", metavar="JSON",
                        help="no benchmark: plot these result files into --png (first wins)")
    parser.add_argument("--png", default="docs/benchmarks/gpu_scan.png")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot, args.png)
        return 0
    lengths = [int(v) for v in args.lengths.split(",")]
    backends = [b for b in args.backends.split(",") if b]
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "python": platform.python_version(),
        "problem": {"batch": BATCH, "channels": CHANNELS, "n_state": N_STATE, "dtype": "bf16"},
        "triton_layout": args.layout,
    }
    import triton

    report["triton"] = triton.__version__
    warm_up_gpu()
    bw = copy_bandwidth_gbs()
    report["copy_bandwidth_gbs"] = bw
    print(f"{report['device']}  copy bandwidth {bw:.0f} GB/s", flush=True)
    if "mamba_ssm" in backends:
        try:
            scan_fn("mamba_ssm")
        except ImportError as err:
            print(f"mamba_ssm not importable: {err}", flush=True)
            backends.remove("mamba_ssm")
            report["mamba_ssm_error"] = str(err)
    if args.occupancy:
        report["occupancy"] = occupancy_probe(lengths[0], args.occupancy.split(";"), args.layout)
        write_report(report, args.out)
    if args.pair:
        report["pair"] = pair_probe(lengths, args.pair.split(";"),
                                    [int(v) for v in args.pair_batches.split(",")])
        write_report(report, args.out)
    if args.sweep and "triton" in backends:
        report["sweep"] = sweep(args.sweep_length)
    if args.bwd_check:
        def save(partial: dict) -> None:
            report["bwd_check"] = partial
            write_report(report, args.out)

        report["bwd_check"] = bwd_check([int(v) for v in args.bwd_check_lengths.split(",")],
                                        _split_entries(args.bwd_check), save)
        write_report(report, args.out)
    report["configs"] = {k: os.environ.get(k, "default") for k in (
        "VIDEOMAMBA_TILE_CONFIG", "VIDEOMAMBA_LEAN_BWD_CONFIG", "VIDEOMAMBA_SEGMENT_CONFIG",
        "VIDEOMAMBA_LEAN_BC")}
    rows = []
    for length in lengths:
        floor = floor_bytes(length)
        row = {"L": length, "floor_fwd_ms": floor["fwd"] / bw / 1e6,
               "floor_fwd_bwd_ms": floor["fwd_bwd"] / bw / 1e6}
        for backend in backends:
            if backend == "torch" and length > args.torch_max_length:
                continue
            try:
                layout = args.layout if backend == "triton" else "contiguous"
                row[backend] = (time_sdpa(length) if backend == "sdpa"
                                else time_scan(backend, length, layout=layout))
            except torch.cuda.OutOfMemoryError as err:
                row[backend] = {"error": f"out of memory: {str(err)[:120]}"}
            torch.cuda.empty_cache()
        if str(length) in args.check_lengths.split(","):
            row["vs_ref"] = cross_check(length, [b for b in backends if b not in ("sdpa", "torch")])
        rows.append(row)
        report["rows"] = rows
        write_report(report, args.out)
        print(json.dumps(row), flush=True)
    print_table(report, backends)
    return 0


def _split_entries(text: str) -> list[str]:
    """``"lean:4,8,10,200,lean:4,8,0,0"`` -> ``["lean:4,8,10,200", "lean:4,8,0,0"]``."""
    entries: list[str] = []
    for part in text.split(","):
        if ":" in part or not entries:
            entries.append(part)
        else:
            entries[-1] += "," + part
    return entries


def write_report(report: dict, path: str) -> None:
    from videomamba.utils.io import atomic_write_json

    atomic_write_json(path, report)


def print_table(report: dict, backends: list[str]) -> None:
    print(f"\n{report['device']}, B={BATCH} D={CHANNELS} N={N_STATE} bf16; ms (median)")
    head = ["L", "floor fwd", "floor f+b"] + [f"{b} fwd" for b in backends] + [
        f"{b} f+b" for b in backends]
    print(" | ".join(head))
    for row in report["rows"]:
        cells = [str(row["L"]), f"{row['floor_fwd_ms']:.3f}", f"{row['floor_fwd_bwd_ms']:.3f}"]
        for key in ("fwd_ms", "fwd_bwd_ms"):
            for b in backends:
                v = row.get(b, {}).get(key)
                cells.append(f"{v:.3f}" if isinstance(v, float) else "-")
        print(" | ".join(cells))


if __name__ == "__main__":
    sys.exit(main())
