"""The retrieval demonstration: ``python -m videomamba.apps.retrieval_demo --out runs/retrieval_demo``.

1. Writes the synthetic captions set (``videomamba synth captions``: disjoint train / test clips
   and a long video made of 8 known segments).
2. Builds the *direction pairs* test set: every test clip and its time-reversed copy, captioned
   with the opposite motion ("moves to the left" <-> "moves to the right", "grows" <->
   "shrinks"...). Both clips have exactly the same frames, so a model blind to frame order cannot
   beat chance (50 % R@1 within a pair).
3. Trains, through the engine, the VideoMamba video-text model and the frame-order-blind baseline
   (same recipe, each frame encoded on its own), then evaluates both on the test split and on the
   direction pairs (text-to-video R@1/5/10, video-to-text, median/mean rank).
4. Indexes the long video with the trained model (2 s windows, 1 s stride) and searches each
   segment's caption: the top hit should be that segment, with its timestamps.

Writes ``results.json`` in ``--out`` and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("videomamba.retrieval_demo")

VARIANTS = {"videomamba": False, "frame_order_blind": True}  # name -> frame_order_blind
TIE_TOLERANCE = 1e-5  # similarities closer than this are a tie (float32 rounding is ~1e-7)
RECIPE = Path(__file__).resolve().parents[3] / "configs" / "retrieval" / "synthetic_captions.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/retrieval_demo", help="working folder")
    parser.add_argument("--recipe", default=str(RECIPE), help="retrieval recipe (YAML)")
    parser.add_argument("--num", type=int, default=2000, help="training clips to generate")
    parser.add_argument("--epochs", type=int, default=None, help="override schedule.epochs")
    parser.add_argument("--set", nargs="*", default=[], help="recipe overrides a.b=value")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="models to train (run them as separate processes to use more cores)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    data_dir = out / "data"
    timings: dict[str, float] = {}
    started = time.perf_counter()
    make_data(data_dir, args.num)
    pairs = make_direction_pairs(data_dir)
    timings["data_s"] = time.perf_counter() - started
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg()}
    for variant in args.variants:
        t0 = time.perf_counter()
        results[variant] = train_and_evaluate(args, data_dir, pairs, out / variant,
                                              VARIANTS[variant])
        timings[f"{variant}_s"] = time.perf_counter() - t0
    if "videomamba" in args.variants:
        t0 = time.perf_counter()
        results["long_video"] = search_long_video(data_dir, out / "videomamba" / "model",
                                                  out / "index")
        timings["long_video_s"] = time.perf_counter() - t0
    results["timings"] = timings
    results["load_after"] = os.getloadavg()
    name = "results.json" if len(args.variants) == len(VARIANTS) else \
        f"results_{'_'.join(args.variants)}.json"
    (out / name).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2) if args.json else summary_markdown(results))
    return 0


# ---------------------------------------------------------------------------------------- data
def make_data(data_dir: Path, num: int) -> None:
    """The captions set in ``data_dir``, generated again when its size or generator changed."""
    import shutil
    from dataclasses import asdict

    from videomamba.data.synthetic import GENERATOR_VERSION, SynthConfig, generate

    cfg = SynthConfig(kind="captions", out=str(data_dir), num=num, frames=16, size=32, fps=8.0,
                      segments=8)
    if (data_dir / "meta.json").is_file():
        meta = json.loads((data_dir / "meta.json").read_text())
        if meta.get("config") == asdict(cfg) and meta.get("version") == GENERATOR_VERSION:
            return
        for stale in ("pairs.json", "videos/test_reversed"):  # derived from the old clips
            path = data_dir / stale
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    generate(cfg)


def opposite_caption(caption: str, label: int) -> str:
    """The caption with its motion phrase replaced by the time-reversed one."""
    from videomamba.data.synthetic import MOTION_PHRASES

    phrase, opposite = MOTION_PHRASES[label], MOTION_PHRASES[label ^ 1]
    if phrase not in caption:
        raise ValueError(f"caption {caption!r} lacks its motion phrase {phrase!r}")
    return caption.replace(phrase, opposite)


def make_direction_pairs(data_dir: Path) -> Path:
    """``pairs.json``: every test clip and its reversed copy, with opposite captions."""
    from videomamba.data.decoding import open_video
    from videomamba.data.video_io import write_video

    path = data_dir / "pairs.json"
    if path.is_file():
        return path
    rows = []
    for row in json.loads((data_dir / "test.json").read_text()):
        with open_video(str(data_dir / row["video"])) as reader:
            frames = reader.get_frames(list(range(reader.num_frames)))  # (T, C, H, W)
            fps = reader.fps
        reversed_rel = row["video"].replace("videos/test/", "videos/test_reversed/")
        write_video(str(data_dir / reversed_rel), frames.flip(0).permute(0, 2, 3, 1).numpy(), fps)
        rows.append({"video": row["video"], "caption": row["caption"], "label": row["label"]})
        rows.append({"video": reversed_rel, "caption": opposite_caption(row["caption"], row["label"]),
                     "label": row["label"] ^ 1})
    path.write_text(json.dumps(rows, indent=1) + "\n")
    return path


# ---------------------------------------------------------------------------------------- training
def load_demo_recipe(args: argparse.Namespace, data_dir: Path, run_dir: Path) -> Any:
    from videomamba.engine.config import load_recipe

    overrides = [f"data.prefix={data_dir}", f"data.train={data_dir / 'train.json'}",
                 f"data.val={data_dir / 'test.json'}", f"train.output_dir={run_dir}", *args.set]
    if args.epochs:
        overrides.append(f"schedule.epochs={args.epochs}")
    return load_recipe(args.recipe, overrides)


def train_and_evaluate(args: argparse.Namespace, data_dir: Path, pairs: Path, run_dir: Path,
                       blind: bool) -> dict[str, Any]:
    import torch

    from videomamba.data import build_dataset
    from videomamba.engine.build import build_split
    from videomamba.engine.trainer import Trainer
    from videomamba.tasks.retrieval import model_from_recipe, task_from_recipe

    recipe = load_demo_recipe(args, data_dir, run_dir)
    torch.manual_seed(recipe.train.seed)
    model = model_from_recipe(recipe, frame_order_blind=blind)
    train_set = frames_in_memory(build_split(recipe, "train"))
    test_set = frames_in_memory(build_split(recipe, "val"))
    pair_set = frames_in_memory(
        build_dataset({"annotation": str(pairs), **recipe.data.dataset}, mode="val"))
    zero_shot = reversal_pairs(model, test_set)
    trainer = Trainer(recipe, task_from_recipe(recipe, test_set), model, train_set, test_set,
                      run_dir=run_dir, progress=False)
    fit = trainer.fit()
    model.save_pretrained(run_dir / "model")
    return {"train_seconds": fit["seconds"], "steps": fit["global_step"],
            "clips_per_second": fit["clips_per_second"],
            "test": evaluate_on(recipe, model, test_set),
            "direction_pairs": evaluate_on(recipe, model, pair_set),
            "reversal_pairs": reversal_pairs(model, test_set),
            "direction_pairs_before_training": zero_shot}


def frames_in_memory(dataset: Any) -> Any:
    """``dataset`` (a ``VideoDataset``) drawing the same samples (frame sampling and
    augmentation included) from videos decoded once and kept in memory: the synthetic clips are
    tiny (16 x 32 x 32 x 3 bytes) and decoding them again at every step was about half of a
    training step on one CPU thread."""
    import random

    from videomamba.data.datasets import VideoDataset
    from videomamba.data.decoding import open_video
    from videomamba.data.sampling import sample_indices, window

    class FramesInMemory(VideoDataset):
        def __init__(self, base: VideoDataset) -> None:  # noqa: D107 (no new state but the cache)
            self.__dict__.update(base.__dict__)
            self.decoded: dict[str, tuple[Any, float]] = {}

        def load_clip(self, index: int, rng: random.Random | None = None) -> Any:
            rng = rng or random.Random()
            record, cfg = self.records[index], self.config
            if record.path not in self.decoded:
                with open_video(record.path, cfg.backend) as reader:
                    self.decoded[record.path] = (
                        reader.get_frames(list(range(reader.num_frames))), reader.fps)
            frames, fps = self.decoded[record.path]  # (N, C, H, W) uint8
            frame_range = window(record.start, record.end, fps, len(frames))
            views = [sample_indices(cfg.sampling, len(frames), cfg.num_frames, stride=cfg.stride,
                                    clip_idx=clip, num_clips=cfg.num_clips, rng=rng,
                                    frame_range=frame_range)
                     for clip in sorted({clip for clip, _ in self.views()})]
            unique = sorted({i for view in views for i in view})
            info = {"fps": fps, "duration": len(frames) / fps,
                    "position": {f: row for row, f in enumerate(unique)}}
            return frames[unique], views, info

    return FramesInMemory(dataset)


def reversal_pairs(model: Any, test_set: Any) -> dict[str, Any]:
    """Every test clip and the *same sampled frames in reverse order* (so the two differ only in
    frame order, exactly), captioned with the opposite motion. Returns text-to-video R@1 within
    each pair (a tie counts one half) and the full retrieval report over all 2N clips."""
    import torch

    from videomamba.data.synthetic import MOTION_CLASSES
    from videomamba.tasks.retrieval.metrics import retrieval_report

    model.eval()
    clips = torch.stack([test_set[i]["video"] for i in range(len(test_set))])  # (N, C, T, H, W)
    videos = torch.stack([clips, clips.flip(2)], dim=1).flatten(0, 1)  # clip, reversal, ...
    captions = []
    for record in test_set.records:
        captions += [record.captions[0], opposite_caption(record.captions[0], record.label)]
    with torch.no_grad():
        vectors = torch.cat([model.video_vectors(videos[i:i + 64])
                             for i in range(0, len(videos), 64)])
        sim = model.text_vectors(captions) @ vectors.T
    rows = torch.arange(len(captions))
    own, twin = sim[rows, rows], sim[rows, rows ^ 1]
    # A tie (here: within float rounding, as the order-blind model's two vectors are the same up
    # to the order of a sum) counts one half.
    tie = (own - twin).abs() <= TIE_TOLERANCE
    within = ((own > twin) & ~tie).float() + 0.5 * tie.float()
    report = retrieval_report(sim.numpy(), list(range(len(captions))))
    pair_of = torch.tensor([record.label // 2 for record in test_set.records]).repeat_interleave(2)
    by_motion = {f"{MOTION_CLASSES[2 * k]}/{MOTION_CLASSES[2 * k + 1]}":
                 round(float(100 * within[pair_of == k].mean()), 2)
                 for k in range(len(MOTION_CLASSES) // 2) if bool((pair_of == k).any())}
    return {"within_pair_t2v_r1": round(float(100 * within.mean()), 2),
            "within_pair_by_motion": by_motion,
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in report.items()}}


def evaluate_on(recipe: Any, model: Any, dataset: Any) -> dict[str, Any]:
    import torch

    from videomamba.engine.evaluate import evaluate
    from videomamba.engine.sampling import eval_loader
    from videomamba.tasks.retrieval import task_from_recipe

    loader = eval_loader(dataset, 64, 0)
    metrics, _ = evaluate(task_from_recipe(recipe, dataset), model, loader, torch.device("cpu"))
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in metrics.items()}


# ---------------------------------------------------------------------------------------- search
def search_long_video(data_dir: Path, model_dir: Path, index_dir: Path) -> dict[str, Any]:
    from videomamba.apps.search_index import LoadedIndex, VideoTextEmbedder, build_index

    segments = json.loads((data_dir / "long" / "segments.json").read_text())
    embedder = VideoTextEmbedder(model_dir)
    report = build_index(data_dir / "long", index_dir, embedder, window=2.0, stride=1.0,
                         rebuild=True)
    index = LoadedIndex(index_dir)
    queries = []
    for seg in segments:
        hits = index.search_vector(embedder.embed_texts([seg["caption"]])[0], 3)
        top = hits[0]
        queries.append({"query": seg["caption"], "segment": [seg["start"], seg["end"]],
                        "top1": [top.start, top.end], "score": round(top.score, 4),
                        "correct": abs(top.start - seg["start"]) < 1e-6 and
                        abs(top.end - seg["end"]) < 1e-6})
    return {"windows": len(index), "index_seconds": report.seconds,
            "video_seconds": report.video_seconds,
            "correct_top1": sum(q["correct"] for q in queries), "queries": queries}


def summary_markdown(results: dict[str, Any]) -> str:
    lines = ["| model | test t2v R@1 | test v2t R@1 | reversal pairs: within-pair t2v R@1 | "
             "all 2N t2v R@1 | re-encoded pairs t2v R@1 |", "| --- | --- | --- | --- | --- | --- |"]
    for variant in VARIANTS:
        if variant not in results:
            continue
        r = results[variant]
        pairs = r["reversal_pairs"]
        lines.append(f"| {variant} | {r['test']['t2v_r1']} | {r['test']['v2t_r1']} | "
                     f"{pairs['within_pair_t2v_r1']} | {pairs['t2v_r1']} | "
                     f"{r['direction_pairs']['t2v_r1']} |")
    long = results.get("long_video")
    if long is None:
        return "\n".join(lines)
    lines.append(f"\nlong video: {long['correct_top1']}/{len(long['queries'])} queries return their "
                 f"segment at rank 1 ({long['windows']} windows)")
    for q in long["queries"]:
        lines.append(f"- {q['query']!r}: segment {q['segment']} -> top hit {q['top1']} "
                     f"({'ok' if q['correct'] else 'WRONG'})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
