"""Search benchmarks (issue 7): indexing throughput and query latency.

    python benchmarks/search.py                       # CPU: both parts, JSON to stdout
    python benchmarks/search.py --device cuda         # GPU: indexing throughput on the GPU
    python benchmarks/search.py --skip-index --sizes 10000 100000 1000000

* Indexing throughput: ``build_index`` over generated videos (decode + sample + embed + write),
  in video-seconds indexed per wall-clock second, with a randomly initialised video-text model
  of the chosen size (the weights do not change the cost). The text tower is not used when
  indexing; a tiny one is built to keep start-up short.
* Query latency: top-k over N random unit vectors of dimension ``--dim``, exact inner product in
  NumPy and with FAISS ``IndexFlatIP`` (exact too), median and p90 over ``--queries`` single
  queries; plus the time to embed one query with the text encoder of the model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda (indexing only)")
    p.add_argument("--vision", default="videomamba_tiny", help="video encoder preset")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--videos", type=int, default=2, help="generated videos to index")
    p.add_argument("--seconds", type=float, default=6.0, help="length of each video")
    p.add_argument("--video-size", type=int, default=256, help="frame side of generated videos")
    p.add_argument("--window", type=float, default=2.0)
    p.add_argument("--stride", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=512, help="embedding size (official: 512)")
    p.add_argument("--queries", type=int, default=20)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--skip-index", action="store_true")
    p.add_argument("--skip-query", action="store_true")
    return p.parse_args()


def make_model(args: argparse.Namespace, directory: Path) -> Path:
    import torch

    from videomamba.models.video_text import VideoTextConfig, VideoTextModel

    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "ball"]) + "\n")
    config = VideoTextConfig(
        vision=args.vision,
        vision_kwargs={"num_frames": args.frames, "img_size": args.img_size,
                       "scan_backend": "auto" if args.device != "cpu" else "torch"},
        text_config={"vocab_size": 16, "hidden_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "intermediate_size": 128},
        tokenizer=str(vocab), embed_dim=args.dim, fusion_layers=1)
    torch.manual_seed(0)
    return VideoTextModel(config).save_pretrained(directory / "model")


def make_videos(args: argparse.Namespace, folder: Path) -> None:
    from videomamba.data.video_io import write_video

    folder.mkdir(parents=True, exist_ok=True)
    fps, size = 25.0, args.video_size
    frames = int(args.seconds * fps)
    rng = np.random.default_rng(0)
    for i in range(args.videos):
        clip = np.empty((frames, size, size, 3), np.uint8)
        base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        for t in range(frames):
            clip[t] = np.roll(base, shift=4 * t, axis=1)
        write_video(str(folder / f"video_{i:03d}.mp4"), clip, fps)


def bench_indexing(args: argparse.Namespace) -> dict:
    from videomamba.apps.search_index import VideoTextEmbedder, build_index

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_dir = make_model(args, tmp_path)
        make_videos(args, tmp_path / "videos")
        embedder = VideoTextEmbedder(model_dir, args.device)
        report = build_index(tmp_path / "videos", tmp_path / "index", embedder, args.window,
                             args.stride, args.batch_size)
        query_times = []
        for _ in range(5):
            start = time.perf_counter()
            embedder.embed_texts(["a ball"])
            query_times.append(time.perf_counter() - start)
    return {"device": args.device, "vision": args.vision, "frames": args.frames,
            "img_size": args.img_size, "video_size": args.video_size, "videos": args.videos,
            "window": args.window, "stride": args.stride, "windows": report.windows,
            "video_seconds": round(report.video_seconds, 2), "seconds": round(report.seconds, 2),
            "video_seconds_per_second": round(report.video_seconds / report.seconds, 3),
            "windows_per_second": round(report.windows / report.seconds, 3)}


def bench_queries(args: argparse.Namespace) -> list[dict]:
    from videomamba.apps.search_index import VectorSearch, faiss_available

    rng = np.random.default_rng(0)
    rows = []
    backends = ["numpy"] + (["faiss"] if faiss_available() else [])
    for size in args.sizes:
        vectors = rng.standard_normal((size, args.dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
        for backend in backends:
            start = time.perf_counter()
            search = VectorSearch(vectors, backend)
            build_s = time.perf_counter() - start
            search.search(queries[:1], args.k)  # warm-up
            times = []
            for q in queries:
                start = time.perf_counter()
                search.search(q, args.k)
                times.append(time.perf_counter() - start)
            times.sort()
            rows.append({"vectors": size, "dim": args.dim, "backend": backend, "k": args.k,
                         "median_ms": round(1e3 * statistics.median(times), 3),
                         "p90_ms": round(1e3 * times[int(0.9 * (len(times) - 1))], 3),
                         "build_s": round(build_s, 3)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            del search
        del vectors
    return rows


def main() -> int:
    args = parse_args()
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "load_before": os.getloadavg()}}
    if not args.skip_index:
        result["indexing"] = bench_indexing(args)
        print(json.dumps(result["indexing"]), file=sys.stderr, flush=True)
    if not args.skip_query:
        result["queries"] = bench_queries(args)
    result["machine"]["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
