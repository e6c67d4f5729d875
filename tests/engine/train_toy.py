"""Trains the toy model with the real Trainer; run as a script by the resume and DDP tests.

usage: train_toy.py RUN_DIR OUT.pt [--resume] [--sleep S] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from engine_toys import ToyClips, ToyVideoNet, toy_recipe  # noqa: E402

from videomamba.engine import distributed  # noqa: E402
from videomamba.engine.config import apply_overrides, recipe_from_dict  # noqa: E402
from videomamba.engine.trainer import Trainer  # noqa: E402
from videomamba.tasks import ClassificationTask  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--val-size", type=int, default=10)
    parser.add_argument("--set", nargs="*", default=[])
    args = parser.parse_args()

    base = toy_recipe(args.run_dir, train={"save_every_steps": 1}, schedule={"epochs": 3})
    recipe = recipe_from_dict(apply_overrides(base.to_dict(), args.set), "toy")
    torch.manual_seed(0)
    model = ToyVideoNet()
    task = ClassificationTask(4, label_smoothing=recipe.mixup.label_smoothing)
    callbacks = [lambda trainer: time.sleep(args.sleep)] if args.sleep else []
    trainer = Trainer(recipe, task, model, ToyClips(24), ToyClips(args.val_size, seed=1, augment=False),
                      progress=False, callbacks=callbacks)
    summary = trainer.fit(resume="auto" if args.resume else None)
    state = trainer.state_dict()  # a collective under torchrun: every rank takes part
    if trainer.dist.is_main:
        torch.save({"model": state["model"], "ema": state["ema"], "summary": summary}, args.out)
    # leave the process group as the apps do: exiting with gloo's threads still up aborted a rank
    # now and then ("terminate called without an active exception")
    distributed.cleanup()


if __name__ == "__main__":
    main()
