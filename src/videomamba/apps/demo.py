"""``videomamba demo``: why order matters, shown on CPU in minutes.

1. motion: writes the synthetic motion set (5 pairs of classes, each the other played backwards),
   trains a small VideoMamba and the order-blind baseline (the same backbone per frame + mean
   pooling) with the same recipe (by default both at once, one process and one thread each),
   evaluates both on the test split, prints a table, writes plots, saves the VideoMamba
   checkpoint and predicts on one generated video;
2. long-range: the label is the order of two flashes far apart in a long video with distractors;
   the same comparison.
Pair accuracy (motion) = accuracy between the two classes of the true pair only; order accuracy
(long-range) = accuracy between "a then b" and "b then a" on clips with two different colours.
Both are 50 % for any order-blind model; on the motion test split, made of exact reversal pairs,
exactly 50 %.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger("videomamba.demo")

# The two experiments as recipes (configs/synthetic/*.yaml hold the same, for `videomamba train`).
# patch_size 32 on 32-pixel frames: one token per frame (+ cls), so that the mixer's causal conv
# (kernel 4) spans 4 consecutive frames and a CPU trains hundreds of steps in a minute.
# Motion samples "segment": on 8-frame clips it takes every frame once, while "sparse" (the
# official _get_seq_frames) takes frames 0-6 with 4 twice, a set that differs from the reversed
# clip's and would let the order-blind baseline tell them apart.
MOTION_RECIPE: dict[str, Any] = {
    "task": "classification",
    "model": {"name": "videomamba_tiny", "num_classes": 10, "drop_path_rate": 0.0,
              "kwargs": {"embed_dim": 64, "depth": 4, "patch_size": 32}},
    "data": {"batch_size": 16, "num_workers": 0, "repeated_aug": 1, "num_frames": 8,
             "sampling": "segment", "crop_size": 32, "short_side": 32, "flip": False,
             "rand_augment": None, "num_clips": 1, "num_crops": 1},
    "optim": {"lr": 1.0e-3, "lr_batch_reference": None, "min_lr": 1.0e-5, "warmup_lr": 1.0e-5,
              "weight_decay": 0.05, "layer_decay": 1.0, "clip_grad": 1.0},
    "schedule": {"epochs": 2, "warmup_epochs": 0.25},
    "mixup": {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "label_smoothing": 0.0},
    "train": {"precision": "fp32", "seed": 0, "eval_every_epochs": 0, "keep_last": 0,
              "log_every_steps": 25},
    "eval": {"use_ema": False},
}
LONGRANGE_RECIPE: dict[str, Any] = copy.deepcopy(MOTION_RECIPE)
LONGRANGE_RECIPE["model"]["num_classes"] = 9
LONGRANGE_RECIPE["data"]["num_frames"] = 8  # one frame in about 8: each 8-frame flash is seen
LONGRANGE_RECIPE["data"]["sampling"] = "sparse"
LONGRANGE_RECIPE["schedule"].update(epochs=10, warmup_epochs=0.5)

# Dataset sizes (training clips; val and test get val_fraction of it each) and frames per clip.
FULL = {"motion": {"num": 4000, "frames": 8, "size": 32, "val_fraction": 0.075},
        "longrange": {"num": 900, "frames": 64, "size": 32, "val_fraction": 0.2}}
# --quick: the whole pipeline on toy sizes (the tests run it); numbers mean nothing.
QUICK = {"motion": {"num": 20, "frames": 8, "size": 32, "val_fraction": 0.25, "epochs": 1},
         "longrange": {"num": 18, "frames": 64, "size": 32, "val_fraction": 0.25, "epochs": 1}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="folder for data, runs, plots (runs/demo)")
    parser.add_argument("--quick", action="store_true",
                        help="toy sizes, one epoch: checks the pipeline in about a minute")
    parser.add_argument("--skip-longrange", action="store_true", help="run the motion part only")
    parser.add_argument("--jobs", type=int, default=0,
                        help="models trained at once, one process each (0: 2 on a multi-core CPU)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads per model (0: 1 when training two at once or the "
                             "machine is busy, else all cores)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args: argparse.Namespace) -> int:
    import os

    import torch

    from videomamba.utils.io import atomic_write_text

    jobs = args.jobs or (2 if (os.cpu_count() or 1) >= 2 else 1)
    threads = args.threads or (1 if jobs > 1 else default_threads())
    torch.set_num_threads(threads)
    out = Path(args.out)
    sizes = QUICK if args.quick else FULL
    start = time.perf_counter()
    results: dict[str, Any] = {"device": "cpu", "jobs": jobs, "threads": threads,
                               "quick": args.quick}
    experiments = ["motion"] if args.skip_longrange else ["motion", "longrange"]
    data_seconds: dict[str, float] = {}
    for name in experiments:
        if not args.json:
            print(f"{name}: writing the set...", flush=True)
        data_seconds[name] = write_set(name, out, sizes[name])
    if not args.json:
        print(f"training VideoMamba and the order-blind baseline on each set ({jobs} at once, "
              f"{threads} thread(s) each)...", flush=True)
    quiet = args.json or jobs > 1
    with model_runner(jobs) as submit:
        # Longest first after the first two, so that the worker that finishes first takes it.
        order = [(n, k) for n in experiments for k in (KINDS if n == "motion" else KINDS[::-1])]
        pending = {(n, k): submit(train_and_test, n, k, out, sizes[n], quiet, threads)
                   for n, k in order}
        for name in experiments:
            models = {kind: pending[(name, kind)].result() for kind in KINDS}
            results[name] = experiment_results(name, out, data_seconds[name], models)
            if not args.json:
                print_table(name, results[name])
    motion_model_dir = out / "motion" / "videomamba" / "model"
    results["prediction"] = predict_one(motion_model_dir, out / "data" / "motion")
    results["seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results))
    else:
        pred = results["prediction"]
        print(f"\nprediction on {pred['video']} (true: {pred['true']}): "
              + ", ".join(f"{p['label']} {p['score']:.2f}" for p in pred["top"][:3]))
        print(f"checkpoint: {motion_model_dir}   plots: {out}/*.png   results: {out}/results.json")
        print(f"total wall time: {results['seconds']:.0f} s ({jobs} model(s) at once, "
              f"{threads} CPU thread(s) each)")
    return 0


def default_threads() -> int:
    """All cores on an idle machine; 1 when others keep it busy.

    Measured on a shared 2-core box (load average ~14), an earlier demo model (patch 16) trained
    at 0.6 clips/s with 2 threads and 12 clips/s with 1: OpenMP threads that wait for each other
    lose their time slices to the other processes.
    """
    import os

    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0] > 0.5 * cores
    except OSError:
        busy = False
    return 1 if busy else cores


def make_dataset(name: str, data_dir: Path, size: dict[str, int]) -> None:
    """Write the synthetic set unless the same one (same arguments and generator) is there."""
    import dataclasses

    from videomamba.data.synthetic import GENERATOR_VERSION, SynthConfig, generate

    cfg = SynthConfig(kind=name, out=str(data_dir), num=size["num"], frames=size["frames"],
                      size=size["size"], seed=0, val_fraction=size["val_fraction"])
    meta_path = data_dir / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        same = meta.get("config") == dataclasses.asdict(cfg)
        if same and meta.get("version") == GENERATOR_VERSION:
            return
    generate(cfg)


def experiment_recipe(name: str, data_dir: Path, run_dir: Path, size: dict[str, int]) -> Any:
    from videomamba.engine.config import deep_merge, recipe_from_dict

    base = MOTION_RECIPE if name == "motion" else LONGRANGE_RECIPE
    extra: dict[str, Any] = {
        "data": {"train": str(data_dir / "train.csv"), "val": str(data_dir / "val.csv"),
                 "test": str(data_dir / "test.csv"), "prefix": str(data_dir)},
        "train": {"output_dir": str(run_dir)},
    }
    if "epochs" in size:
        extra["schedule"] = {"epochs": size["epochs"]}
    return recipe_from_dict(deep_merge(base, extra), f"demo {name}")


def build_demo_model(recipe: Any, kind: str) -> Any:
    """VideoMamba from the recipe, or the order-blind baseline around a one-frame copy of it."""
    import dataclasses

    import torch

    from videomamba.apps.demo_models import FrameMeanBaseline
    from videomamba.engine.build import build_model

    torch.manual_seed(recipe.train.seed)
    if kind == "videomamba":
        return build_model(recipe)
    one_frame = dataclasses.replace(recipe, data=dataclasses.replace(
        recipe.data, dataset={**recipe.data.dataset, "num_frames": 1}))
    return FrameMeanBaseline(build_model(one_frame))


KINDS = ("videomamba", "baseline")


def write_set(name: str, out: Path, size: dict[str, Any]) -> float:
    """Write the set of experiment ``name`` under ``out/data``; the seconds it took."""
    t0 = time.perf_counter()
    make_dataset(name, out / "data" / name, size)
    return round(time.perf_counter() - t0, 1)


@contextlib.contextmanager
def model_runner(jobs: int) -> Iterator[Callable[..., Any]]:
    """``submit(fn, *args)`` -> an object whose ``result()`` is ``fn(*args)``.

    ``jobs > 1``: that many processes (spawned, so no torch state is shared), each with its own
    torch threads; on a 2-core CPU two 1-thread trainings of these small models run at nearly the
    speed of one. Otherwise ``fn`` runs in this process when its result is asked for.
    """
    if jobs <= 1:
        yield _Deferred
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool.submit
    finally:  # after an error, start no other model
        pool.shutdown(wait=True, cancel_futures=True)


class _Deferred:
    """A call made the first time its ``result()`` is asked for."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn, self.args, self.done, self.value = fn, args, False, None

    def result(self) -> Any:
        if not self.done:
            self.value, self.done = self.fn(*self.args), True
        return self.value


def experiment_results(name: str, out: Path, data_seconds: float,
                       models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One experiment's entry of results.json; also draws both models' training losses."""
    plot_losses(out / f"{name}_loss.png", {k: out / name / k / "log.jsonl" for k in models}, name)
    return {"data_seconds": data_seconds, "models": models,
            "chance_top1": 1.0 / (10 if name == "motion" else 9), "chance_order_accuracy": 0.5}


def train_and_test(name: str, kind: str, out: Path, size: dict[str, Any], quiet: bool,
                   threads: int) -> dict[str, Any]:
    """Train one model of experiment ``name`` on its written set; its test metrics and timings."""
    import numpy as np
    import torch

    from videomamba.engine.build import build_split, build_task_for
    from videomamba.engine.evaluate import evaluate
    from videomamba.engine.sampling import eval_loader
    from videomamba.engine.trainer import Trainer

    torch.set_num_threads(threads)
    data_dir, run_dir = out / "data" / name, out / name / kind
    recipe = experiment_recipe(name, data_dir, run_dir, size)
    # Clips are decoded once (centred view) and kept in memory: decoding, not the model, would
    # otherwise be most of the CPU time. More clips stand in for augmentation.
    train_set = CachedClips(build_split(recipe, "train", mode="val"))
    test_set = CachedClips(build_split(recipe, "test", mode="val"))
    task = build_task_for(recipe, train_set.classes)
    model = build_demo_model(recipe, kind)
    t0 = time.perf_counter()
    trainer = Trainer(recipe, task, model, train_set, None, run_dir=run_dir, progress=not quiet)
    summary = trainer.fit()
    train_seconds = time.perf_counter() - t0
    loader = eval_loader(test_set, recipe.data.batch_size, 0)
    metrics, merged = evaluate(task, trainer.model, loader, trainer.device)
    write_plots(run_dir, metrics, f"{name}: {kind}")
    if kind == "videomamba":
        save_model(trainer.model, run_dir / "model", train_set.classes)
    confusion = np.array(metrics["confusion_matrix"])
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    names = metrics["class_names"] or list(range(len(per_class)))
    return {
        "top1": metrics["top1"], "order_accuracy": order_accuracy(name, merged),
        "test_clips": metrics["num_samples"], "train_seconds": round(train_seconds, 1),
        "steps": summary["global_step"], "clips_per_second": round(summary["clips_per_second"], 1),
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "per_class_top1": {str(c): round(float(a), 4) for c, a in zip(names, per_class)},
    }


class CachedClips:
    """Every sample of a dataset read once; ``video`` kept as float16 ``(N, C, T, H, W)``."""

    def __init__(self, dataset: Any) -> None:
        import torch

        samples = [dataset[i] for i in range(len(dataset))]
        self.videos = torch.stack([s["video"] for s in samples]).half()
        self.labels = [int(s["label"]) for s in samples]
        self.paths = [s["path"] for s in samples]
        self.classes = list(dataset.classes) if getattr(dataset, "classes", None) else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"video": self.videos[index].float(), "label": self.labels[index], "index": index,
                "path": self.paths[index]}


def order_accuracy(name: str, merged: dict[str, Any]) -> float:
    """Accuracy between each clip's class and its time-reversed twin (see module doc)."""
    import numpy as np

    scores, labels = merged["scores"], merged["label"].astype(int)
    if name == "motion":
        twin = labels ^ 1  # pairs (0, 1), (2, 3), ...: the other class is the clip reversed
        keep = np.ones(len(labels), dtype=bool)
    else:
        first, second = labels // 3, labels % 3
        twin = second * 3 + first
        keep = first != second
    rows = np.arange(len(labels))[keep]
    if len(rows) == 0:
        return float("nan")
    correct = scores[rows, labels[rows]] > scores[rows, twin[rows]]
    return float(correct.mean())


def save_model(model: Any, directory: Path, classes: list[str] | None) -> None:
    from videomamba.engine.ema import unwrap
    from videomamba.models.checkpoint import save_pretrained

    save_pretrained(unwrap(model), directory, class_names=classes)


def write_plots(run_dir: Path, metrics: dict[str, Any], title: str) -> None:
    import numpy as np

    from videomamba.errors import BackendUnavailableError
    from videomamba.tasks.metrics import save_confusion_png

    try:
        save_confusion_png(np.array(metrics["confusion_matrix"]), metrics["class_names"],
                           run_dir / "confusion.png", title)
    except BackendUnavailableError as err:
        log.warning("no plots: %s", err)


def plot_losses(path: Path, logs: dict[str, Path], title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, log_path in logs.items():
        if not log_path.is_file():
            continue
        rows = [json.loads(line) for line in log_path.read_text().splitlines()]
        rows = [r for r in rows if r.get("kind") == "train" and isinstance(r.get("loss"), float)]
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=kind)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def predict_one(model_dir: Path, data_dir: Path) -> dict[str, Any]:
    """Top-3 of the saved VideoMamba on the first test video of the motion set."""
    from videomamba.apps.predict import Predictor

    first = (data_dir / "test.csv").read_text().splitlines()[0].split()
    video, label = data_dir / first[0], int(first[1])
    predictor = Predictor(model_dir)
    top = predictor(str(video), k=3)
    return {"video": str(video), "true": predictor.class_names[label] if predictor.class_names else label,
            "top": top}


def print_table(name: str, result: dict[str, Any]) -> None:
    order_name = "pair acc." if name == "motion" else "order acc."
    print(f"\n{name}: test top-1 (chance {result['chance_top1']:.0%}), {order_name} (chance 50%)")
    print(f"{'model':<12} {'top-1':>7} {order_name:>11} {'params':>9} {'train s':>8} {'clips/s':>8}")
    for kind, r in result["models"].items():
        print(f"{kind:<12} {r['top1']:>7.1%} {r['order_accuracy']:>11.1%} {r['parameters']:>9,} "
              f"{r['train_seconds']:>8.0f} {r['clips_per_second']:>8.1f}")
