"""Run logs: JSON lines (always), TensorBoard (when installed), and tqdm progress bars.

Only rank 0 writes; other ranks get a logger that does nothing.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

log = logging.getLogger("videomamba.train")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    return value


class RunLogger:
    """``log(record)`` appends one JSON object per line to ``run_dir/log.jsonl``.

    Numeric fields also go to TensorBoard (``run_dir/tb``) when ``tensorboard`` is installed.
    """

    def __init__(self, run_dir: str | Path | None, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled and run_dir is not None
        self.path = Path(run_dir) / "log.jsonl" if run_dir is not None else None
        self.tb = None
        if self.enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except ImportError:
                log.debug("tensorboard not installed: JSON-lines logs only")

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: _plain(v) for k, v in record.items()}
        record.setdefault("time", round(time.time(), 3))
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        if self.tb is not None:
            step = int(record.get("step", 0))
            prefix = record.get("kind", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch", "time"):
                    self.tb.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class Progress:
    """A tqdm bar over ``iterable`` showing loss, lr and clips/s (ETA comes from tqdm itself)."""

    def __init__(self, iterable: Iterable, total: int, desc: str, enabled: bool = True) -> None:
        self.iterable = iterable
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False,
                            file=sys.stderr, disable=None)
        self.start = time.perf_counter()
        self.clips = 0

    def __iter__(self) -> Iterator:
        return iter(self.iterable)

    def update(self, clips: int, **fields: Any) -> None:
        self.clips += clips
        if self.bar is None:
            return
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in fields.items()}
        shown["clips/s"] = f"{self.clips / elapsed:.1f}"
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    @property
    def clips_per_second(self) -> float:
        return self.clips / max(time.perf_counter() - self.start, 1e-9)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
