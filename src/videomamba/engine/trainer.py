"""The training loop shared by every task.

``Trainer(recipe, task, model, train_set, val_set).fit(resume=...)`` trains with AdamW and
layer-wise lr decay, a per-step cosine schedule, optional mixup/cutmix, EMA, gradient clipping,
bf16 autocast on GPU, DDP/FSDP under torchrun, periodic evaluation that keeps ``best.pt``, and
checkpoints from which a killed run resumes bit-exactly (see :mod:`videomamba.engine.checkpoint`).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

from videomamba.engine import distributed
from videomamba.engine.checkpoint import (
    CheckpointManager, capture_rng, load_checkpoint, resolve_resume, restore_rng,
)
from videomamba.engine.config import Recipe, save_recipe
from videomamba.engine.ema import ModelEma, unwrap
from videomamba.engine.evaluate import autocast, evaluate, to_device
from videomamba.engine.logger import Progress, RunLogger
from videomamba.engine.mixup import VideoMixup
from videomamba.engine.optim import build_optimizer
from videomamba.engine.sampling import ResumableSampler, eval_loader, train_loader
from videomamba.engine.schedule import CosineWarmupScheduler
from videomamba.errors import CheckpointError, ConfigError, VideoMambaError
from videomamba.tasks.base import Task

log = logging.getLogger("videomamba.train")


class TrainingDiverged(VideoMambaError):
    """Too many non-finite losses in a row."""


def flatten_repeats(batch: dict[str, Any]) -> dict[str, Any]:
    """Repeated augmentation: ``video (B, R, C, T, H, W)`` and ``label (B, R)`` -> B*R samples."""
    video = batch["video"]
    if video.dim() != 6:
        return batch
    out = dict(batch)
    out["video"] = video.flatten(0, 1)
    for key in ("label", "index"):
        if isinstance(batch.get(key), torch.Tensor):
            out[key] = batch[key].flatten(0, 1)
    return out


class RepeatedAugDataset(Dataset):
    """Reads each sample ``repeats`` times (each with its own augmentation), stacked on dim 1.

    The official ``num_sample``: every clip yields several augmented copies per step.
    """

    def __init__(self, dataset: Dataset, repeats: int) -> None:
        self.dataset, self.repeats = dataset, repeats

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        samples = [self.dataset[index] for _ in range(self.repeats)]
        return {
            "video": torch.stack([s["video"] for s in samples]),
            "label": torch.tensor([int(s["label"]) for s in samples]),
            "index": torch.tensor([int(s["index"]) for s in samples]),
        }


def wrap_distributed(model: nn.Module, kind: str, device: torch.device) -> nn.Module:
    """DDP, or FSDP (``fully_shard`` on every block, then the root) when ``kind == "fsdp"``."""
    if kind == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in getattr(model, "layers", []):
            fully_shard(block)
        fully_shard(model)
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


class Trainer:
    """Owns the loop; ``task`` owns the loss and the metrics. See module doc."""

    def __init__(self, recipe: Recipe, task: Task, model: nn.Module, train_set: Dataset,
                 val_set: Dataset | None = None, *, run_dir: str | Path | None = None,
                 progress: bool = True,
                 callbacks: list[Callable[[Trainer], None]] | None = None) -> None:
        self.recipe, self.task, self.val_set = recipe, task, val_set
        cfg = recipe.train
        self.dist, self.device = distributed.init_distributed(cfg.device)
        self.run_dir = Path(run_dir or cfg.output_dir)
        self.progress = progress and self.dist.is_main
        self.callbacks = list(callbacks or [])
        torch.manual_seed(cfg.seed + self.dist.rank)

        repeats = max(recipe.data.repeated_aug, 1)
        self.train_set = RepeatedAugDataset(train_set, repeats) if repeats > 1 else train_set
        self.batch_size = recipe.data.batch_size
        self.sampler = ResumableSampler(len(train_set), shuffle=True, seed=cfg.seed,  # type: ignore[arg-type]
                                        rank=self.dist.rank, world_size=self.dist.world_size,
                                        drop_last=False)
        self.steps_per_epoch = self.sampler.per_rank() // self.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"data.batch_size={self.batch_size}: larger than this process's share of the "
                f"{len(train_set)} training clips; lower data.batch_size"  # type: ignore[arg-type]
            )
        self.total_steps = self.steps_per_epoch * recipe.schedule.epochs

        self.model = self._prepare_model(model)
        self.optimizer = build_optimizer(self.model, recipe.optim)
        self.scheduler = self._make_scheduler(repeats)
        fp16 = self.device.type == "cuda" and cfg.precision == "fp16"
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        if cfg.ema_decay and cfg.distributed == "fsdp" and self.dist.enabled:
            raise ConfigError("train.ema_decay: EMA is not supported with FSDP; use ddp or drop EMA")
        self.ema = ModelEma(self.model, cfg.ema_decay) if cfg.ema_decay else None
        self.mixup = VideoMixup(recipe.mixup, recipe.model.num_classes, seed=cfg.seed + 7919 * self.dist.rank)
        self.checkpoints = CheckpointManager(self.run_dir, cfg.keep_last)
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main)

        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.bad_steps_in_row = 0
        self.skipped_steps = 0
        self.best: dict[str, Any] = {"metric": task.best_metric, "value": None, "epoch": None}
        self.last_eval: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------ set-up
    def _prepare_model(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.dist.enabled:
            model = wrap_distributed(model, self.recipe.train.distributed, self.device)
        compile_with = self.recipe.train.compile
        if compile_with:
            from videomamba.utils.compile import compile_model

            backend = compile_with if isinstance(compile_with, str) else "inductor"
            model = compile_model(model, backend, self.recipe.train.compile_mode)
        return model

    def _make_scheduler(self, repeats: int) -> CosineWarmupScheduler:
        optim, schedule = self.recipe.optim, self.recipe.schedule
        scale = 1.0
        if optim.lr_batch_reference:
            scale = self.batch_size * repeats * self.dist.world_size / optim.lr_batch_reference
        warmup = schedule.warmup_steps if schedule.warmup_steps > 0 else int(
            schedule.warmup_epochs * self.steps_per_epoch)
        return CosineWarmupScheduler(self.optimizer, optim.lr * scale, optim.min_lr * scale,
                                     self.total_steps, warmup, optim.warmup_lr * scale)

    # ------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly; RNG states of all ranks are gathered."""
        model_state, optim_state = self._model_and_optimizer_state()
        return {
            "format": "videomamba-train",
            "model": model_state,
            "optimizer": optim_state,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "mixup": self.mixup.state_dict(),
            "task": self.task.state_dict(),
            "rng": distributed.all_gather_objects(capture_rng()),
            "position": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                         "global_step": self.global_step},
            "counters": {"bad_steps_in_row": self.bad_steps_in_row, "skipped_steps": self.skipped_steps},
            "best": self.best,
            "world_size": self.dist.world_size,
            "recipe": self.recipe.to_dict(),
            "model_name": getattr(unwrap(self.model), "model_name", None),
        }

    def _model_and_optimizer_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.dist.enabled and self.recipe.train.distributed == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
            )

            options = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return (get_model_state_dict(self.model, options=options),
                    get_optimizer_state_dict(self.model, self.optimizer, options=options))
        return unwrap(self.model).state_dict(), self.optimizer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any], source: str = "checkpoint") -> None:
        if state.get("format") != "videomamba-train":
            raise CheckpointError(f"{source}: not a training checkpoint of `videomamba train`")
        if self.dist.enabled and self.recipe.train.distributed == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions, set_model_state_dict, set_optimizer_state_dict,
            )

            options = StateDictOptions(full_state_dict=True)
            set_model_state_dict(self.model, state["model"], options=options)
            set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"], options=options)
        else:
            unwrap(self.model).load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.mixup.load_state_dict(state["mixup"])
        self.task.load_state_dict(state.get("task", {}))
        position = state["position"]
        self.epoch, self.step_in_epoch = int(position["epoch"]), int(position["step_in_epoch"])
        self.global_step = int(position["global_step"])
        self.bad_steps_in_row = int(state["counters"]["bad_steps_in_row"])
        self.skipped_steps = int(state["counters"]["skipped_steps"])
        self.best = dict(state["best"])
        rngs = state["rng"]
        if int(state.get("world_size", 1)) == self.dist.world_size:
            restore_rng(rngs[self.dist.rank])
        else:
            log.warning("%s: saved with %s processes, resumed with %d: data order and dropout "
                        "will not match the original run", source, state.get("world_size"),
                        self.dist.world_size)
            restore_rng(rngs[0])

    def resume(self, spec: str | Path) -> bool:
        """Load ``spec`` (``auto``, a run folder or a ``.pt``); False when ``auto`` finds nothing."""
        path = resolve_resume(spec, self.run_dir)
        if path is None:
            return False
        self.load_state_dict(load_checkpoint(path), str(path))
        if self.dist.is_main:
            log.info("resumed from %s at epoch %d, step %d of %d", path, self.epoch,
                     self.step_in_epoch, self.steps_per_epoch)
        return True

    def save(self, kind: str = "last") -> None:
        state = self.state_dict()  # every rank takes part (RNG gather, FSDP gather)
        if self.dist.is_main:
            if kind in ("last", "epoch"):
                self.checkpoints.save_last(state)
            if kind == "epoch":
                self.checkpoints.save_epoch(state, self.epoch)
            if kind == "best":
                self.checkpoints.save_best(state)
        distributed.barrier()

    # ------------------------------------------------------------------------------ steps
    def _prepare_batch(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        batch = flatten_repeats(to_device(batch, self.device))
        if self.mixup.active or self.recipe.mixup.label_smoothing > 0:
            batch["video"], batch["target"] = self.mixup(batch["video"], batch["label"])
        return batch

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """One optimiser step (or a skipped one when the loss or gradients are not finite)."""
        cfg = self.recipe.train
        batch = self._prepare_batch(batch)
        lr = self.scheduler.apply()
        with autocast(self.device, cfg.precision):
            out = self.task.training_step(self.model, batch)
        loss = out.loss
        if distributed.any_rank(not bool(torch.isfinite(loss.detach())), self.device):
            return self._skip_step(float(loss.detach()), "loss")
        self.scaler.scale(loss).backward()
        grad_norm = None
        if self.recipe.optim.clip_grad:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.optim.clip_grad))
            if not self.scaler.is_enabled() and not math.isfinite(grad_norm):
                return self._skip_step(float(loss.detach()), "gradient")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.advance()
        if self.ema is not None:
            self.ema.update(self.model)
        self.bad_steps_in_row = 0
        record = {"loss": float(loss.detach()), "lr": lr,
                  **{k: float(v) for k, v in out.metrics.items()}}
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        return record

    def _skip_step(self, loss: float, what: str) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.advance()  # the schedule follows the data position
        self.bad_steps_in_row += 1
        self.skipped_steps += 1
        limit = self.recipe.train.max_bad_steps
        log.warning("non-finite %s (loss=%s) at step %d: step skipped (%d in a row, limit %d)",
                    what, loss, self.global_step, self.bad_steps_in_row, limit)
        if self.bad_steps_in_row >= limit:
            raise TrainingDiverged(
                f"{self.bad_steps_in_row} non-finite losses in a row at step {self.global_step} "
                f"(train.max_bad_steps={limit}): training diverged. Lower optim.lr, set "
                f"optim.clip_grad, or resume from an earlier checkpoint in {self.run_dir}"
            )
        return {"loss": loss, "skipped": 1.0}

    # ------------------------------------------------------------------------------ loops
    def run_evaluation(self) -> dict[str, Any] | None:
        if self.val_set is None:
            return None
        eval_cfg = self.recipe.eval
        batch = eval_cfg.batch_size or self.batch_size
        loader = eval_loader(self.val_set, batch, self.recipe.data.num_workers, self.dist.rank,
                             self.dist.world_size)
        model = self.ema.module if (self.ema is not None and eval_cfg.use_ema) else self.model
        metrics, _ = evaluate(self.task, model, loader, self.device, self.recipe.train.precision,
                              progress=self.progress)
        self.last_eval = metrics
        return metrics

    def _is_better(self, metrics: Mapping[str, Any]) -> bool:
        value = metrics.get(self.task.best_metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return self.best["value"] is None or value > self.best["value"]

    def _end_of_epoch(self, finished_epoch: int) -> None:
        cfg = self.recipe.train
        last_epoch = finished_epoch + 1 == self.recipe.schedule.epochs
        due = cfg.eval_every_epochs > 0 and (finished_epoch + 1) % cfg.eval_every_epochs == 0
        metrics = self.run_evaluation() if (due or last_epoch) else None
        if metrics is not None:
            summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            self.logger.log({"kind": "eval", "epoch": finished_epoch, "step": self.global_step, **summary})
            if self.dist.is_main:
                log.info("epoch %d eval: %s", finished_epoch,
                         ", ".join(f"{k}={v:.4f}" for k, v in summary.items() if isinstance(v, float)))
            if self._is_better(metrics):
                self.best = {"metric": self.task.best_metric, "value": metrics[self.task.best_metric],
                             "epoch": finished_epoch}
                self.save("best")
        self.save("epoch")

    def _stop_requested(self) -> bool:
        max_steps = self.recipe.train.max_steps
        return bool(max_steps) and self.global_step >= max_steps

    def fit(self, resume: str | Path | None = None) -> dict[str, Any]:
        """Train to the end of the schedule (or ``train.max_steps``); returns a summary."""
        if resume:
            self.resume(resume)
        if self.dist.is_main:
            save_recipe(self.recipe, self.run_dir / "recipe.yaml")
        start = time.perf_counter()
        clips = 0
        try:
            while self.epoch < self.recipe.schedule.epochs and not self._stop_requested():
                clips += self._train_epoch()
                if self.step_in_epoch >= self.steps_per_epoch:
                    finished = self.epoch
                    self.epoch, self.step_in_epoch = self.epoch + 1, 0
                    self._end_of_epoch(finished)
            if self._stop_requested() and self.step_in_epoch:
                self.save("last")
        finally:
            self.logger.close()
        elapsed = time.perf_counter() - start
        return {"epochs": self.epoch, "global_step": self.global_step, "skipped_steps": self.skipped_steps,
                "best": self.best, "last_eval": self.last_eval, "seconds": elapsed,
                "clips_per_second": clips / max(elapsed, 1e-9)}

    def _train_epoch(self) -> int:
        """Run the rest of the current epoch; returns the number of clips seen."""
        cfg = self.recipe.train
        self.sampler.set_epoch(self.epoch, self.step_in_epoch * self.batch_size)
        loader = train_loader(self.train_set, self.sampler, self.batch_size, self.recipe.data.num_workers,
                              pin_memory=self.device.type == "cuda")
        self.model.train()
        bar = Progress(loader, self.steps_per_epoch - self.step_in_epoch,
                       f"epoch {self.epoch + 1}/{self.recipe.schedule.epochs}", enabled=self.progress)
        clips = 0
        for batch in bar:
            if self.step_in_epoch >= self.steps_per_epoch:
                break
            record = self.train_step(batch)
            size = int(batch["video"].shape[0]) * (batch["video"].shape[1] if batch["video"].dim() == 6 else 1)
            clips += size
            self.step_in_epoch += 1
            self.global_step += 1
            bar.update(size, loss=record["loss"], lr=record.get("lr", 0.0))
            if self.global_step % max(cfg.log_every_steps, 1) == 0 or "skipped" in record:
                self.logger.log({"kind": "train", "epoch": self.epoch, "step": self.global_step,
                                 "clips_per_s": bar.clips_per_second, **record})
            if cfg.save_every_steps and self.global_step % cfg.save_every_steps == 0:
                self.save("last")
            for callback in self.callbacks:
                callback(self)
            if self._stop_requested():
                break
        bar.close()
        return clips
