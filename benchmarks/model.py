"""Whole-model benchmark (GPU): VideoMamba-S (ours, Triton scan), the official VideoMamba-S (its
own model code on mamba_ssm / causal_conv1d, when importable) and a joint space-time ViT-S with
``scaled_dot_product_attention``, side by side: bf16 autocast, batch 8 (``--batch``), 224 px.

Inference: clips/s and peak memory at 8/16/32/64 frames. Training (forward, backward, AdamW
step): clips/s and peak memory at 8/16 frames. Before timing, ours is loaded with the official
model's weights and both are run on the same clip in float32 to check they compute the same.

    python benchmarks/model.py --out model.json [--official-dir .devcarry/official]

``--conv-bench`` times only the fused bidirectional conv + SiLU kernel against the grouped conv.
``--models`` also takes ``ours_compiled`` (ours under ``torch.compile``) and ``ours_compiled_ro``
(the same with ``mode="reduce-overhead"``: CUDA graphs for training steps too). ``--cuda-graph`` adds
inference replayed from CUDA graphs (phase ``inference_graph``: the GPU's time without the host's
launch overhead). ``--profile`` adds, per model and step (torch.profiler), the top CUDA kernels,
the GPU's busy time per step beside the profiled step's wall time (much longer: the host's
launches bound the step) and the top host-side ops by their own CPU time, to the JSON and the
printout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH, IMG = 8, 224


class JointAttentionViT(nn.Module):
    """ViT over all space-time patches jointly (1 + T*196 tokens), pre-norm blocks with SDPA."""

    def __init__(self, dim: int = 384, depth: int = 12, frames: int = 8, classes: int = 400):
        super().__init__()
        heads = dim // 64
        self.patch = nn.Conv3d(3, dim, (1, 16, 16), (1, 16, 16))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + frames * (IMG // 16) ** 2, dim))
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):  # (B, 3, T, H, W)
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(
            2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


# Names the official mamba_ssm code imports from ``transformers.generation`` (for its language
# model's ``generate``, never called here) that newer transformers releases removed.
REMOVED_GENERATION_NAMES = ("GreedySearchDecoderOnlyOutput", "SampleDecoderOnlyOutput")


def patch_transformers_generation() -> list[str]:
    """Give ``transformers.generation`` the output classes the official code imports where this
    transformers no longer has them (the current ``GenerateDecoderOnlyOutput``, or a plain class),
    so that the official model imports; a runtime patch of the installed package, nothing in our
    code. Returns the names added."""
    try:
        import transformers.generation as generation
    except ImportError:
        return []
    added = []
    for name in REMOVED_GENERATION_NAMES:
        try:
            getattr(generation, name)
        except (AttributeError, ImportError):
            try:
                replacement = generation.GenerateDecoderOnlyOutput
            except (AttributeError, ImportError):
                replacement = type(name, (), {})
            setattr(generation, name, replacement)
            added.append(name)
    return added


def import_official(official_dir: str):
    """The official model module (``videomamba_official.py`` beside its ``mamba_ssm`` copy)."""
    if official_dir not in sys.path:
        sys.path.insert(0, official_dir)
    patch_transformers_generation()
    import videomamba_official

    return videomamba_official


def build(name: str, frames: int, official_dir: str | None) -> nn.Module:
    if name == "ours":
        from videomamba import create_model

        return create_model("videomamba_small", num_frames=frames, num_classes=400,
                            scan_backend="triton")
    if name in ("ours_compiled", "ours_compiled_ro"):  # torch.compile (Inductor); _ro: with
        from videomamba.utils.compile import compile_model  # CUDA graphs ("reduce-overhead")

        mode = "reduce-overhead" if name == "ours_compiled_ro" else None
        return compile_model(build("ours", frames, official_dir), "inductor", mode)
    if name == "official":
        return import_official(official_dir).videomamba_small(num_frames=frames, num_classes=400)
    if name == "vit_sdpa":
        return JointAttentionViT(frames=frames)
    raise ValueError(name)


def cuda_median_ms(fn, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def timed_with_peak(step, warmup: int, iters: int) -> dict:
    """Peak memory of the second call of ``step`` (the first one warms up), then its median
    time: clips/s of a batch of ``BATCH``, ms, peak GiB."""
    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30
    ms = cuda_median_ms(step, warmup=warmup, iters=iters)
    return {"clips_per_s": BATCH / ms * 1e3, "ms": ms, "peak_gib": peak}


def inference_step(model: nn.Module, frames: int, cuda_graph: bool = False,
                   batch: int | None = None, img: int = IMG):
    """One bf16-autocast forward of a random batch (default ``BATCH``), without gradients; with
    ``cuda_graph``, replayed from a CUDA graph (videomamba.utils.cuda_graph), which takes the
    host's launch overhead out."""
    clip = torch.randn(batch or BATCH, 3, frames, img, img, device="cuda")
    if cuda_graph:
        from videomamba.utils.cuda_graph import CudaGraphRunner

        runner = CudaGraphRunner(model, autocast_dtype=torch.bfloat16)
        return lambda: runner(clip)

    @torch.no_grad()
    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            model(clip)

    return step


def training_step(model: nn.Module, frames: int, batch: int | None = None, img: int = IMG):
    """One bf16-autocast forward, backward and AdamW step on a random batch (default
    ``BATCH``)."""
    batch = batch or BATCH
    clip = torch.randn(batch, 3, frames, img, img, device="cuda")
    labels = torch.randint(0, 400, (batch,), device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(clip).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def measure(step, phase: str, frames: int) -> dict:
    if phase == "training":
        return timed_with_peak(step, warmup=3, iters=12)
    if phase == "inference_graph":
        return timed_with_peak(step, warmup=2, iters=20)
    return timed_with_peak(step, warmup=2, iters=8 if frames <= 16 else 4)


def profile_step(step, top: int = 15) -> dict:
    """Two calls of ``step`` under torch.profiler: the ``top`` CUDA kernels by total GPU time (ms
    per step), the GPU's busy time per step (the sum of all kernels) against the step's wall
    time (a step that takes much longer than its kernels is bound by the host's launches), and
    the ``top`` host-side ops by their own CPU time."""
    from torch.profiler import ProfilerActivity, profile

    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(2):
            step()
        torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - start) * 1e3 / 2
    kernels, host, gpu_us = [], [], 0.0
    for event in prof.key_averages():
        device_us = getattr(event, "self_device_time_total", 0) or 0
        on_device = getattr(event, "device_type", None) == torch.autograd.DeviceType.CUDA
        if on_device and "#" in event.key:  # a record_function range (the optimizer's step),
            continue                        # not a kernel: it spans idle time between them
        if on_device and device_us > 0:
            gpu_us += device_us
            kernels.append({"kernel": event.key[:90], "ms_per_step": device_us / 2e3,
                            "calls_per_step": event.count / 2})
        elif event.self_cpu_time_total > 0:
            host.append({"op": event.key[:90], "self_cpu_ms_per_step": event.self_cpu_time_total / 2e3,
                         "calls_per_step": event.count / 2})
    kernels.sort(key=lambda r: -r["ms_per_step"])
    host.sort(key=lambda r: -r["self_cpu_ms_per_step"])
    return {"top_kernels": kernels[:top], "gpu_ms_per_step": gpu_us / 2e3,
            "profiled_wall_ms_per_step": wall_ms, "top_host_ops": host[:top]}


def conv_bench(lengths: tuple[int, ...] = (1569, 6273)) -> list[str]:
    """The mixer's two depthwise convs + SiLU (B=8, D=768, K=4, bf16, x a transposed view of a
    (B, L, 2D) tensor): grouped ``F.conv1d`` path against the fused Triton kernel, forward (no
    grad) and forward+backward, median ms of 20 CUDA-event timings; then the Triton backward
    alone over a few tile configurations (:func:`conv_bwd_sweep`)."""
    from videomamba.ops.selective_scan.triton_bidir import bidirectional_conv_silu_grouped
    from videomamba.ops.triton_conv import bidirectional_conv_silu_triton

    lines = []
    for length in lengths:
        xz = torch.randn(BATCH, length, 1536, device="cuda", dtype=torch.bfloat16)
        x = xz[..., :768].transpose(1, 2).detach().requires_grad_()
        ws = [torch.randn(768, 1, 4, device="cuda", requires_grad=True) for _ in range(2)]
        bs = [torch.randn(768, device="cuda", requires_grad=True) for _ in range(2)]
        dy = torch.randn(BATCH, 768, length, device="cuda", dtype=torch.bfloat16)
        for name, conv in (("grouped", bidirectional_conv_silu_grouped),
                           ("triton", bidirectional_conv_silu_triton)):
            def forward(conv=conv):
                with torch.no_grad():
                    conv(x, ws[0], bs[0], ws[1], bs[1])

            def forward_backward(conv=conv):
                outs = conv(x, ws[0], bs[0], ws[1], bs[1])
                torch.autograd.backward(list(outs), [dy, dy])

            floor = 3 * x.numel() * 2 / 3.0e12 * 1e3  # read x, write two outputs
            lines.append(f"L={length} {name}: fwd {cuda_median_ms(forward, 3, 20):.3f} ms, "
                         f"fwd+bwd {cuda_median_ms(forward_backward, 3, 20):.3f} ms "
                         f"(fwd floor ~{floor:.3f} ms at 3 TB/s)")
            print(lines[-1], flush=True)
        lines += conv_bwd_sweep(x.detach(), [w.detach() for w in ws], [b.detach() for b in bs])
    return lines


# (BLOCK_D, BLOCK_L, num_warps, tiles per program) of the Triton backward, the default first
CONV_BWD_CONFIGS = ("default", "64,16,8,8", "64,8,4,16", "32,16,4,4", "32,32,4,4", "128,8,4,8",
                    "16,32,4,8", "64,16,4,8", "64,32,4,4", "128,16,4,4", "128,16,8,8",
                    "32,16,4,16", "64,16,4,16")


@contextlib.contextmanager
def kernel_config(variable: str, config: str):
    """Run the block with the environment ``variable`` set to ``config`` ("default": unset),
    restoring what it was."""
    saved = os.environ.get(variable)
    if config == "default":
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = config
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = saved


def conv_inputs(length: int) -> tuple[torch.Tensor, list, list]:
    """The mixer's conv input ``x`` (B=8, D=768, a transposed view of a (B, L, 2D) tensor, bf16)
    and both branches' taps and biases."""
    xz = torch.randn(BATCH, length, 1536, device="cuda", dtype=torch.bfloat16)
    ws = [torch.randn(768, 1, 4, device="cuda") for _ in range(2)]
    bs = [torch.randn(768, device="cuda") for _ in range(2)]
    return xz[..., :768].transpose(1, 2), ws, bs


def conv_bwd_sweep(x: torch.Tensor, ws: list, bs: list) -> list[str]:
    """The Triton backward alone (``videomamba::bi_conv_silu_bwd``, both passes and the partial
    sums) for each of ``CONV_BWD_CONFIGS``, with ``dy`` contiguous (positions fastest) and
    channels-fastest, against its traffic floor: read x and two dy, write and read two float32
    g, write dx (24 bytes per element in bf16), and the floor of x, dy and dx alone (8 bytes)."""
    from videomamba.ops.triton_conv import _bi_conv_silu_bwd

    batch, channels, length = x.shape
    dys = {"dy L-fastest": torch.randn(batch, channels, length, device="cuda",
                                       dtype=torch.bfloat16),
           "dy D-fastest": torch.randn(batch, length, channels, device="cuda",
                                       dtype=torch.bfloat16).transpose(1, 2)}
    floor = x.numel() * 24 / 3.0e12 * 1e3
    least = x.numel() * 8 / 3.0e12 * 1e3
    lines = []
    for config in CONV_BWD_CONFIGS:
        with kernel_config("VIDEOMAMBA_CONV_BWD_CONFIG", config):
            for dy_name, dy in dys.items():
                def backward(dy=dy):
                    _bi_conv_silu_bwd(dy, dy, x, ws[0], bs[0], ws[1], bs[1])

                lines.append(f"L={length} triton bwd alone, config {config}, {dy_name}: "
                             f"{cuda_median_ms(backward, 3, 20):.3f} ms (floor ~{floor:.3f} ms, "
                             f"x/dy/dx only ~{least:.3f} ms, at 3 TB/s)")
                print(lines[-1], flush=True)
    return lines


# (BLOCK_D, BLOCK_L, num_warps) of the Triton forward, the default first
CONV_FWD_CONFIGS = ("default", "32,128,8", "32,128,4", "64,128,8", "32,64,4", "64,32,4",
                    "128,32,4", "32,256,8", "16,256,4", "128,64,8", "16,128,4")
# the sliding-window forward's (BLOCK_C, CHUNK, P, num_warps)
CONV_SLIDE_CONFIGS = ("256,64,8,4", "256,128,8,4", "128,64,8,4", "256,64,4,4", "512,64,8,8",
                      "256,32,8,4", "128,128,8,2")


def conv_bwd_only_sweep(lengths: tuple[int, ...] = (1569, 6273, 12545)) -> list[str]:
    """The fused conv + SiLU backward alone (both passes and the partial sums; the mixer's
    layouts: x a view of a (B, L, 2D) tensor, dy channels-fastest) for each of
    ``CONV_BWD_CONFIGS``: median of ``triton.testing.do_bench``."""
    import triton.testing

    from videomamba.ops.triton_conv import conv_silu_backward

    lines = []
    for length in lengths:
        x, ws, bs = conv_inputs(length)
        dy = torch.randn(BATCH, length, 768, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
        for config in CONV_BWD_CONFIGS:
            with kernel_config("VIDEOMAMBA_CONV_BWD_CONFIG", config):
                try:
                    ms = triton.testing.do_bench(
                        lambda: conv_silu_backward(dy, dy, x, ws[0], bs[0], ws[1], bs[1]),
                        return_mode="median")
                except Exception as err:  # a configuration the compiler rejects
                    print(f"L={length} conv bwd config {config} failed: {err!r}"[:300], flush=True)
                    continue
            lines.append(f"L={length} conv bwd config {config}: {ms:.4f} ms")
            print(lines[-1], flush=True)
    return lines


def conv_fwd_sweep(lengths: tuple[int, ...] = (1569, 6273, 12545)) -> list[str]:
    """The fused conv + SiLU forward alone (the mixer's layout) for each of
    ``CONV_FWD_CONFIGS``: median of ``triton.testing.do_bench`` (back-to-back launches, so the
    host's dispatch time is hidden), against the floor of reading x once and writing both
    outputs at 3 TB/s."""
    import triton.testing

    from videomamba.ops.triton_conv import conv_silu_forward

    lines = []
    for length in lengths:
        x, ws, bs = conv_inputs(length)
        floor = 3 * x.numel() * 2 / 3.0e12 * 1e3
        configs = [("tile", c) for c in CONV_FWD_CONFIGS] + [("slide", c) for c in
                                                             CONV_SLIDE_CONFIGS]
        for algo, config in configs:
            variable = "VIDEOMAMBA_CONV_FWD_CONFIG" if algo == "tile" else \
                "VIDEOMAMBA_CONV_SLIDE_CONFIG"
            with kernel_config("VIDEOMAMBA_CONV_FWD_ALGO", algo), kernel_config(variable, config):
                ms = triton.testing.do_bench(
                    lambda: conv_silu_forward(x, ws[0], bs[0], ws[1], bs[1]), return_mode="median")
            lines.append(f"L={length} conv fwd {algo} {config}: {ms:.4f} ms "
                         f"(floor ~{floor:.4f} ms)")
            print(lines[-1], flush=True)
    return lines


# the fused projections kernel's (BLOCK_M, BLOCK_K, BLOCK_N, num_warps), default first
PROJ_CONFIGS = ("default", "64,64,64,4", "128,64,128,8", "64,128,128,4", "128,64,64,4",
                "64,64,256,4", "32,64,128,4")


def proj_sweep(lengths: tuple[int, ...] = (1569, 6273, 12545)) -> list[str]:
    """Both branches' x_proj and dt_proj (VideoMamba-S: D=768, dt_rank 24, N=16; bf16, the
    conv outputs channels-fastest): the fused kernel (``ops/triton_proj.py``) for each of
    ``PROJ_CONFIGS`` against four ``F.linear`` (cuBLAS); median of
    ``triton.testing.do_bench_cudagraph`` (GPU time, no host), and the traffic floor (read both
    u, write both delta and x_dbl) at 3 TB/s."""
    import torch.nn.functional as F
    import triton.testing

    from videomamba.ops.triton_proj import branch_projections

    lines = []
    for length in lengths:
        us = [torch.randn(BATCH, length, 768, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
              for _ in range(2)]
        pxs = [torch.randn(56, 768, device="cuda", dtype=torch.bfloat16) * 0.05 for _ in range(2)]
        pds = [torch.randn(768, 24, device="cuda", dtype=torch.bfloat16) * 0.1 for _ in range(2)]
        floor = (4 * us[0].numel() + 2 * BATCH * length * 56) * 2 / 3.0e12 * 1e3

        def unfused():
            for u, px, pd in zip(us, pxs, pds):
                F.linear(F.linear(u.transpose(1, 2), px)[..., :24], pd)

        ms = triton.testing.do_bench_cudagraph(unfused, return_mode="median")
        lines.append(f"L={length} projections unfused (4 x F.linear): {ms:.4f} ms "
                     f"(floor ~{floor:.4f} ms)")
        print(lines[-1], flush=True)
        for config in PROJ_CONFIGS:
            with kernel_config("VIDEOMAMBA_FUSED_PROJ_CONFIG", config):
                def fused():
                    branch_projections(us[0], us[1], tuple(pxs), tuple(pds), 24)

                try:
                    fused()
                    ms = triton.testing.do_bench_cudagraph(fused, return_mode="median")
                except Exception as err:  # a configuration the compiler rejects
                    print(f"L={length} projections {config} failed: {err!r}"[:300], flush=True)
                    continue
            lines.append(f"L={length} projections fused {config}: {ms:.4f} ms "
                         f"(floor ~{floor:.4f} ms)")
            print(lines[-1], flush=True)
    return lines


def parity(official_dir: str) -> dict:
    """Ours with the official model's weights (strict load) against the official model, float32,
    same clip: relative error of the logits."""
    torch.manual_seed(0)
    official = build("official", 8, official_dir).cuda().eval()
    ours = build("ours", 8, None).cuda().eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    clip = torch.randn(2, 3, 8, IMG, IMG, device="cuda")
    with torch.no_grad():
        a, b = ours(clip).float(), official(clip).float()
    return {"logits_rel_err": ((a - b).norm() / b.norm()).item(),
            "max_abs": (a - b).abs().max().item()}


def plot(json_path: str, png: str) -> None:
    """Inference clips/s against frames for every model in a result file, written to ``png``:
    with CUDA graphs where the file has them (eager steps of a short clip are bound by the
    host), else eager."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(json_path) as fh:
        report = json.load(fh)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    labels = {"ours": "VideoMamba-S (ours, Triton scan)", "official": "VideoMamba-S (official)",
              "vit_sdpa": "ViT-S joint space-time (SDPA)"}
    phase = "inference"
    if any(res.get("inference_graph") for res in report["results"].values()):
        phase = "inference_graph"
    for name, res in report["results"].items():
        pts = sorted((int(f), r["clips_per_s"]) for f, r in res.get(phase, {}).items()
                     if "clips_per_s" in r)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=labels.get(name, name))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"frames (224 px, batch {report.get('batch', 8)}, bf16 autocast)")
    ax.set_ylabel("inference clips/s" + (", CUDA graphs" if phase == "inference_graph" else ""))
    ax.set_title(report["device"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from videomamba.utils.io import atomic_path

    with atomic_path(png, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=110)


def main() -> int:
    global BATCH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="model.json")
    parser.add_argument("--models", default="ours,official,vit_sdpa")
    parser.add_argument("--frames", default="8,16,32,64")
    parser.add_argument("--train-frames", default="8,16")
    parser.add_argument("--batch", type=int, default=BATCH,
                        help="clips per step of every model and phase")
    parser.add_argument("--official-dir", default=os.path.abspath(".devcarry/official"))
    parser.add_argument("--profile", action="store_true",
                        help="also record the top CUDA kernels of each model's inference "
                             "and training steps")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="also time inference replayed from CUDA graphs (phase "
                             "inference_graph): GPU time without the host's launch overhead")
    parser.add_argument("--conv-fwd-sweep", action="store_true",
                        help="no model: time the conv forward's tile configurations")
    parser.add_argument("--conv-bwd-sweep", action="store_true",
                        help="no model: time the conv backward's tile configurations")
    parser.add_argument("--proj-sweep", action="store_true",
                        help="no model: time the fused x_proj + dt_proj kernel's configurations "
                             "against four cuBLAS GEMMs")
    parser.add_argument("--conv-bench", action="store_true",
                        help="no model: time the fused bidirectional conv + SiLU kernel against "
                             "the grouped conv")
    parser.add_argument("--plot", metavar="JSON", help="no benchmark: plot this result into --png")
    parser.add_argument("--png", default="docs/benchmarks/gpu_model.png")
    args = parser.parse_args()
    BATCH = args.batch
    if args.plot:
        plot(args.plot, args.png)
        return 0
    if args.conv_bench:
        conv_bench()
        return 0
    if args.conv_fwd_sweep:
        conv_fwd_sweep()
        return 0
    if args.conv_bwd_sweep:
        conv_bwd_only_sweep()
        return 0
    if args.proj_sweep:
        proj_sweep()
        return 0
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "batch": BATCH, "img": IMG, "dtype": "bf16 autocast", "results": {},
              "kernel_env": {k: v for k, v in os.environ.items() if k.startswith("VIDEOMAMBA_")}}
    models = args.models.split(",")
    if "official" in models:
        try:
            report["parity_fp32_8f"] = parity(args.official_dir)
            print("parity", report["parity_fp32_8f"], flush=True)
        except Exception as err:  # the official stack may not import on this machine
            report["official_error"] = repr(err)[:500]
            print("official model unavailable:", report["official_error"], flush=True)
            models.remove("official")
    for name in models:
        report["results"][name] = {"inference": {}, "inference_graph": {}, "training": {}}
    phases = [("inference", args.frames), ("training", args.train_frames)]
    if args.cuda_graph:
        phases.insert(1, ("inference_graph", args.frames))
    for phase, frame_list in phases:
        for frames in (int(f) for f in frame_list.split(",") if f):  # "" skips the phase
            for name in models:  # models side by side at each size, saved as we go
                torch.cuda.empty_cache()
                model = None
                try:
                    model = build(name, frames, args.official_dir).cuda()
                    model.train(phase == "training")
                    if phase == "training":
                        step = training_step(model, frames)
                    else:
                        step = inference_step(model, frames, phase == "inference_graph")
                    result = measure(step, phase, frames)
                    if args.profile:
                        try:
                            result.update(profile_step(step))
                        except Exception as err:  # the timing above stands without it
                            result["profile_error"] = repr(err)[:300]
                except Exception as err:
                    traceback.print_exc()  # the whole story in the log; the JSON keeps the gist
                    result = {"error": repr(err)[:300]}
                del model
                report["results"][name][phase][frames] = result
                kernels = result.get("top_kernels", [])
                print(name, phase, frames, {k: v for k, v in result.items()
                                            if k not in ("top_kernels", "top_host_ops")}, flush=True)
                for row in kernels[:8]:
                    print(f"    {row['ms_per_step']:8.3f} ms  x{row['calls_per_step']:<5g} "
                          f"{row['kernel'][:70]}", flush=True)
                for row in result.get("top_host_ops", [])[:8]:
                    print(f"    host {row['self_cpu_ms_per_step']:8.3f} ms  "
                          f"x{row['calls_per_step']:<5g} {row['op'][:64]}", flush=True)
                write_json(report, args.out)
    print_table(report)
    return 0


def write_json(report: dict, path: str) -> None:
    from videomamba.utils.io import atomic_write_json

    atomic_write_json(path, report)


def print_table(report: dict) -> None:
    names = list(report["results"])
    print(f"\n{report['device']}, batch {BATCH}, {IMG}px, bf16 autocast: clips/s (peak GiB)")
    print(" | ".join(["phase", "frames"] + names))
    for phase in ("inference", "inference_graph", "training"):
        frames = sorted({f for n in names for f in report["results"][n].get(phase, {})},
                        key=int)
        for f in frames:
            cells = [phase, str(f)]
            for n in names:
                r = report["results"][n].get(phase, {}).get(f, {})
                cells.append(f"{r['clips_per_s']:.1f} ({r['peak_gib']:.2f})" if "clips_per_s" in r
                             else "error")
            print(" | ".join(cells))


if __name__ == "__main__":
    sys.exit(main())
