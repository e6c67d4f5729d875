"""Two CPU processes with gloo under torchrun: DDP training, sharded evaluation, rank-0 files."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from engine_toys import ToyClips, ToyVideoNet
from videomamba.engine.evaluate import evaluate
from videomamba.engine.sampling import ShardSampler, eval_loader
from videomamba.tasks import ClassificationTask

HERE = Path(__file__).parent


def test_shard_sampler_pads_like_distributed_sampler():
    shards = [list(ShardSampler(9, r, 2)) for r in range(2)]
    assert shards == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 0]]


def test_two_process_gloo_run_matches_single_process_evaluation(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(HERE.parent.parent / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "train_toy.py"), str(tmp_path / "run"), str(tmp_path / "out.pt"),
           "--val-size", "9", "--set", "schedule.epochs=2", "train.save_every_steps=0"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    out = torch.load(tmp_path / "out.pt", weights_only=False)
    # 24 clips over 2 ranks with batch 4: 3 steps per epoch
    assert out["summary"]["global_step"] == 6
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert not (tmp_path / "run" / "log.jsonl").read_text().count('"rank"')  # rank 0 writes alone

    # The gathered evaluation (9 clips: rank 1 gets a padding duplicate) equals one process's.
    ema = ToyVideoNet()
    ema.load_state_dict(out["ema"]["module"])
    task = ClassificationTask(4)
    metrics, merged = evaluate(task, ema, eval_loader(ToyClips(9, seed=1, augment=False), 4, 0),
                               torch.device("cpu"))
    distributed_eval = out["summary"]["last_eval"]
    assert distributed_eval["num_samples"] == metrics["num_samples"] == 9
    assert distributed_eval["top1"] == metrics["top1"]
    assert np.array_equal(np.array(distributed_eval["confusion_matrix"]), np.array(metrics["confusion_matrix"]))
    np.testing.assert_array_equal(merged["index"], np.arange(9))


def test_two_process_fsdp_run_saves_full_weights(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(HERE.parent.parent / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "train_toy.py"), str(tmp_path / "run"), str(tmp_path / "out.pt"),
           "--set", "train.distributed=fsdp", "train.ema_decay=null", "schedule.epochs=1",
           "train.save_every_steps=0"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    out = torch.load(tmp_path / "out.pt", weights_only=False)
    reference = ToyVideoNet().state_dict()
    assert {k: v.shape for k, v in out["model"].items()} == {k: v.shape for k, v in reference.items()}
    assert out["summary"]["global_step"] == 3 and out["summary"]["last_eval"]["num_samples"] == 10
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert set(ckpt["model"]) == set(reference)  # gathered, unsharded, no wrapper prefixes
