"""A run killed with SIGKILL mid-epoch and resumed ends bit-identical to an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
SCRIPT = HERE / "train_toy.py"


def _env():
    env = dict(os.environ)
    src = str(HERE.parent.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(*args, timeout=120):
    result = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], env=_env(),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _wait_for_step(run_dir: Path, step: int, proc, timeout=60.0) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "training finished before it could be killed"
        try:
            position = json.loads((run_dir / "last.json").read_text())["position"]
            if position["global_step"] >= step:
                return position["global_step"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_mid_epoch_then_resume_is_bit_exact(tmp_path):
    full_proc = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path / "full"),
                                  str(tmp_path / "full.pt")], env=_env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), str(tmp_path / "unused.pt"),
                             "--sleep", "0.25"], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    step = _wait_for_step(run_dir, 8, proc)  # 6 steps per epoch: this is inside epoch 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    position = json.loads((run_dir / "last.json").read_text())["position"]
    assert position["step_in_epoch"] not in (0,), position  # really mid-epoch
    assert step < 18

    _run(run_dir, tmp_path / "resumed.pt", "--resume")
    assert full_proc.wait(timeout=120) == 0, full_proc.stderr.read()[-3000:]
    full = torch.load(tmp_path / "full.pt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=False)
    assert resumed["summary"]["global_step"] == full["summary"]["global_step"] == 18
    for name, tensor in full["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    for name, tensor in full["ema"]["module"].items():
        assert torch.equal(tensor, resumed["ema"]["module"][name]), name
    assert resumed["summary"]["best"] == full["summary"]["best"]
    # the logs of the resumed run continue where the killed one stopped
    lines = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert lines[-1]["kind"] == "eval"


def test_resume_without_checkpoint_with_auto_starts_fresh(tmp_path):
    result = _run(tmp_path / "run", tmp_path / "out.pt", "--resume", "--set", "schedule.epochs=1")
    assert torch.load(tmp_path / "out.pt", weights_only=False)["summary"]["global_step"] == 6
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "best.pt").is_file()
    del result
