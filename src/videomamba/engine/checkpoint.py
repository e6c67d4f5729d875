"""Training checkpoints that lose nothing, written atomically.

A training checkpoint (``last.pt``, ``best.pt``, ``epoch_NNNN.pt`` in the run folder) holds the
model, optimiser, scheduler, grad scaler, EMA, task/mixup state, the RNG states of every rank
(python, NumPy, torch CPU and CUDA) and the data position (epoch, batches done in it, global
step), so that ``--resume`` continues bit-exactly. ``last.json`` says what ``last.pt`` holds.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videomamba.utils.io import atomic_torch_save, atomic_write_json
from videomamba.errors import CheckpointError

log = logging.getLogger(__name__)


def capture_rng() -> dict[str, Any]:
    """This process's RNG states."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except RuntimeError as err:  # a different number of GPUs: keep going, say so
            log.warning("could not restore CUDA RNG states (%s); dropout will differ", err)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A training checkpoint as a dict; a missing or damaged file raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; pass a run folder or a .pt file")
    try:
        # Our own files hold RNG states (NumPy arrays, tuples): they need the full unpickler.
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(f"{path}: cannot read checkpoint ({err}); it may be truncated") from None


def resolve_resume(spec: str | Path, run_dir: str | Path) -> Path | None:
    """The checkpoint ``--resume`` means: ``auto`` (run_dir/last.pt if any), a folder, or a file."""
    if str(spec) == "auto":
        candidate = Path(run_dir) / "last.pt"
        return candidate if candidate.is_file() else None
    path = Path(spec)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"--resume {spec}: no checkpoint at {path}")
    return path


class CheckpointManager:
    """Writes ``last.pt`` (+ ``last.json``), ``best.pt`` and a few ``epoch_NNNN.pt`` in ``run_dir``."""

    def __init__(self, run_dir: str | Path, keep_last: int = 1) -> None:
        self.run_dir = Path(run_dir)
        self.keep_last = keep_last

    @property
    def last(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best(self) -> Path:
        return self.run_dir / "best.pt"

    def save_last(self, state: dict[str, Any]) -> None:
        atomic_torch_save(state, self.last)
        atomic_write_json(self.run_dir / "last.json", {"position": state.get("position", {})})

    def save_best(self, state: dict[str, Any]) -> None:
        atomic_torch_save(state, self.best)

    def save_epoch(self, state: dict[str, Any], epoch: int) -> None:
        if self.keep_last <= 0:
            return
        atomic_torch_save(state, self.run_dir / f"epoch_{epoch:04d}.pt")
        epochs = sorted(self.run_dir.glob("epoch_*.pt"), key=_epoch_number)
        for old in epochs[: -self.keep_last]:
            old.unlink(missing_ok=True)


def _epoch_number(path: Path) -> int:
    match = re.search(r"epoch_(\d+)\.pt$", path.name)
    return int(match.group(1)) if match else -1
