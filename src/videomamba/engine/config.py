"""Recipes: plain dataclasses read from YAML, with ``section.key=value`` overrides.

A recipe file holds the sections below (any may be left out: the defaults apply). A file may
start from another with ``base: other.yaml`` (a path relative to the file); keys it sets win.
Every key can be overridden on the command line, e.g. ``--set optim.lr=1e-4 data.num_frames=16``;
values are parsed as YAML (``1e-4``, ``true``, ``[0.9, 0.999]``, ``null``).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from videomamba.errors import ConfigError


@dataclass
class ModelConfig:
    name: str = "videomamba_tiny"  # any name of videomamba.list_models()
    num_classes: int = 400
    pretrained: str | None = None  # a save_pretrained folder or an official .pth to start from
    drop_path_rate: float = 0.1
    fc_drop_rate: float = 0.0  # dropout before the head
    grad_checkpointing: bool = False  # recompute the blocks in backward: less memory, slower
    kwargs: dict[str, Any] = field(default_factory=dict)  # more create_model options


@dataclass
class DataConfig:
    """Where the splits are and how they are batched. Every other key of the section is a key of
    :class:`videomamba.data.DataConfig` (``prefix``, ``num_frames``, ``sampling``, ``crop_size``,
    ``num_clips``, ``num_crops``, ``flip``, ``rand_augment``, ...) and lands in ``dataset``."""

    train: str = ""  # annotation (CSV/JSON) or class-per-folder root of the training split
    val: str = ""  # evaluated during training (one centred view per clip)
    test: str = ""  # `videomamba eval` (all test views); defaults to val
    batch_size: int = 64  # clips per process per step (before repeated augmentation)
    num_workers: int = 8
    repeated_aug: int = 2  # the official num_sample: each clip read once per step, augmented N times
    dataset: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.dataset.get("num_frames", 8))

    @property
    def crop_size(self) -> int:
        return int(self.dataset.get("crop_size", 224))


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 2e-4  # base learning rate, see lr_batch_reference
    # The official scripts scale lr, min_lr and warmup_lr by global_batch * repeated_aug / 256;
    # set to null to use the numbers as written.
    lr_batch_reference: int | None = 256
    min_lr: float = 1e-6
    warmup_lr: float = 1e-6
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    layer_decay: float = 1.0  # lr scale layer_decay ** (depth + 1 - layer_id); 1.0 = off
    clip_grad: float | None = None  # max global gradient norm


@dataclass
class ScheduleConfig:
    epochs: int = 30
    warmup_epochs: float = 5.0
    warmup_steps: int = -1  # when > 0, overrides warmup_epochs


@dataclass
class MixupConfig:
    mixup_alpha: float = 0.8  # 0 disables mixup
    cutmix_alpha: float = 1.0  # 0 disables cutmix
    prob: float = 1.0  # probability of mixing a batch at all
    switch_prob: float = 0.5  # probability of cutmix instead of mixup when both are on
    label_smoothing: float = 0.1


@dataclass
class TrainConfig:
    output_dir: str = "runs/default"
    seed: int = 0
    precision: str = "bf16"  # bf16 | fp16 | fp32 (autocast is used on GPU only)
    compile: bool | str = False  # torch.compile the model: true (Inductor) or a backend name
    compile_mode: str | None = None  # with Inductor: reduce-overhead (CUDA graphs) | max-autotune
    ema_decay: float | None = None  # e.g. 0.9999; null = no EMA
    distributed: str = "ddp"  # ddp | fsdp, used when launched by torchrun
    max_bad_steps: int = 5  # stop after this many non-finite losses in a row
    save_every_steps: int = 0  # also checkpoint every N optimiser steps (0 = at epoch ends only)
    eval_every_epochs: int = 1  # 0 = only at the end
    keep_last: int = 1  # epoch checkpoints to keep besides last.pt and best.pt
    log_every_steps: int = 10
    max_steps: int = 0  # stop early after this many steps in total (0 = run all epochs)
    device: str = "auto"  # auto | cpu | cuda | cuda:N


@dataclass
class EvalConfig:
    batch_size: int = 0  # 0 = the training batch size
    confusion_matrix: bool = True  # write confusion.png (needs matplotlib)
    use_ema: bool = True  # evaluate the EMA weights when there are some


@dataclass
class Recipe:
    task: str = "classification"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    mixup: MixupConfig = field(default_factory=MixupConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with ``data.dataset`` keys written flat as in recipe files."""
        out = dataclasses.asdict(self)
        out["data"] = {**{k: v for k, v in out["data"].items() if k != "dataset"},
                       **out["data"]["dataset"]}
        return out


_SECTIONS = {f.name: f for f in dataclasses.fields(Recipe)}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: recipe not found; see configs/ for the ones shipped") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}); fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``; nested mappings merge, everything else is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_recipe_dict(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe at ``path`` as a dict, with its ``base:`` chain merged in."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    return deep_merge(load_recipe_dict(path.parent / base, (*_seen, path)), data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-4"`` -> ``(["optim", "lr"], 1e-4)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. optim.lr=1e-4")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads "1e-4" as a string; numbers written that way are meant as floats.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``data`` with each ``a.b=value`` override set (nested dicts are created as needed)."""
    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
        node[parts[-1]] = value
    return out


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Light type checking of YAML values against the dataclass annotation (given as a string)."""
    ann = str(annotation)
    if value is None:
        if "None" in ann:
            return None
        raise ConfigError(f"{where}: null is not allowed here (expected {ann})")
    if ann.startswith("tuple"):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list like [0.9, 0.999], got {value!r}")
        return tuple(float(v) for v in value)
    if ann.startswith("dict"):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if ann == "bool | str" and isinstance(value, str):
        return value
    if ann.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if ann.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if ann.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if ann.startswith("str"):
        return str(value)
    return value


def _dataset_keys() -> set[str]:
    from videomamba.data import DataConfig as DatasetConfig

    return {f.name for f in dataclasses.fields(DatasetConfig)} - {"annotation", "mode"}


def _split_data_section(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Move the dataset keys of the ``data`` section into its ``dataset`` mapping."""
    ours = {f.name for f in dataclasses.fields(DataConfig)}
    dataset = dict(data.get("dataset") or {})
    out = {}
    allowed = _dataset_keys()
    for key, value in data.items():
        if key == "dataset":
            continue
        if key in ours:
            out[key] = value
        elif key in allowed:
            dataset[key] = value
        else:
            raise ConfigError(f"{where}: unknown key {key}; valid keys: {', '.join(sorted(ours - {'dataset'}))} "
                              f"and the dataset keys {', '.join(sorted(allowed))}")
    out["dataset"] = dataset
    return out


def _build_section(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    if cls is DataConfig:
        data = _split_data_section(data, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(fields)}"
        )
    kwargs = {k: _coerce(v, fields[k].type, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def recipe_from_dict(data: Mapping[str, Any], source: str = "recipe") -> Recipe:
    """A validated :class:`Recipe`; unknown sections or keys raise :class:`ConfigError`."""
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown section(s) {', '.join(unknown)}; valid: {', '.join(_SECTIONS)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name == "task":
            kwargs[name] = str(value)
            continue
        section_cls = type(getattr(Recipe(), name))
        kwargs[name] = _build_section(section_cls, value or {}, f"{source}: {name}")
    recipe = Recipe(**kwargs)
    validate_recipe(recipe, source)
    return recipe


def validate_recipe(recipe: Recipe, source: str = "recipe") -> None:
    """Checks of values that types alone do not catch."""
    checks = [
        (recipe.data.num_frames >= 1, "data.num_frames must be >= 1"),
        (recipe.data.batch_size >= 1, "data.batch_size must be >= 1"),
        (recipe.data.repeated_aug >= 1, "data.repeated_aug must be >= 1"),
        (recipe.optim.lr > 0, "optim.lr must be > 0"),
        (0 < recipe.optim.layer_decay <= 1, "optim.layer_decay must be in (0, 1]"),
        (recipe.optim.name in ("adamw", "sgd"), "optim.name must be adamw or sgd"),
        (recipe.schedule.epochs >= 1, "schedule.epochs must be >= 1"),
        (0 <= recipe.mixup.label_smoothing < 1, "mixup.label_smoothing must be in [0, 1)"),
        (recipe.train.precision in ("bf16", "fp16", "fp32"), "train.precision: bf16|fp16|fp32"),
        (recipe.train.distributed in ("ddp", "fsdp"), "train.distributed must be ddp or fsdp"),
        (recipe.train.max_bad_steps >= 1, "train.max_bad_steps must be >= 1"),
        (recipe.model.num_classes >= 1, "model.num_classes must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{source}: {message}")


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe file (or the defaults when ``path`` is None) and apply overrides."""
    data = load_recipe_dict(path) if path is not None else {}
    data = apply_overrides(data, list(overrides or []))
    return recipe_from_dict(data, str(path) if path is not None else "recipe")


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe as YAML (atomically), e.g. next to a run's checkpoints."""
    from videomamba.utils.io import atomic_write_text

    data = recipe.to_dict()
    data["optim"]["betas"] = list(data["optim"]["betas"])
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
