"""Every shipped recipe loads and validates; key values mirror the official scripts."""

from pathlib import Path

import pytest

from videomamba.engine.config import (
    apply_overrides, deep_merge, load_recipe, load_recipe_dict, recipe_from_dict,
)
from videomamba.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Classification recipes (other folders hold the recipes of other tasks, tested with them).
FOLDERS = ("k400", "ssv2", "breakfast", "coin", "lvu", "synthetic")
RECIPES = sorted(p for d in FOLDERS for p in (CONFIGS / d).glob("*.yaml"))


def test_there_are_recipes_for_every_dataset():
    names = {str(p.relative_to(CONFIGS)) for p in RECIPES}
    for ds, frames in (("k400", (8, 16)), ("ssv2", (8, 16)), ("breakfast", (32, 64)), ("coin", (32, 64))):
        for size in ("tiny", "small", "middle"):
            for f in frames:
                assert f"{ds}/videomamba_{size}_f{f}.yaml" in names
    assert {"lvu/videomamba_tiny_f32.yaml", "synthetic/motion.yaml", "synthetic/longrange.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_recipe_loads_and_is_consistent(path):
    from videomamba.models import list_models

    recipe = load_recipe(path)
    assert recipe.model.name in list_models()
    assert recipe.data.train and recipe.data.val
    if path.parent.name != "synthetic":
        assert recipe.data.num_frames == int(path.stem.rsplit("_f", 1)[-1])
    from videomamba.data import DataConfig

    DataConfig.from_dict({"annotation": "x.csv", **recipe.data.dataset}).validate()


@pytest.mark.parametrize("path, expected", [
    ("k400/videomamba_tiny_f8.yaml", dict(lr=2e-4, batch=64, epochs=70, drop_path=0.1, wd=0.1,
                                          clips=4, crops=3, classes=400, layer_decay=0.75)),
    ("k400/videomamba_middle_f16.yaml", dict(lr=1e-4, batch=16, epochs=50, drop_path=0.8, wd=0.05,
                                             clips=4, crops=3, classes=400, layer_decay=0.75)),
    ("ssv2/videomamba_small_f8.yaml", dict(lr=4e-4, batch=64, epochs=30, drop_path=0.35, wd=0.05,
                                           clips=2, crops=3, classes=174, layer_decay=0.75)),
    ("breakfast/videomamba_middle_f64.yaml", dict(lr=2e-4, batch=4, epochs=50, drop_path=0.8,
                                                  wd=0.05, clips=4, crops=3, classes=10, layer_decay=0.8)),
    ("coin/videomamba_tiny_f32.yaml", dict(lr=2e-4, batch=32, epochs=40, drop_path=0.1, wd=0.1,
                                           clips=10, crops=3, classes=180, layer_decay=0.75)),
    ("lvu/videomamba_tiny_f32.yaml", dict(lr=4e-4, batch=8, epochs=70, drop_path=0.15, wd=0.1,
                                          clips=4, crops=3, classes=10, layer_decay=0.75)),
])
def test_official_hyper_parameters(path, expected):
    r = load_recipe(CONFIGS / path)
    got = dict(lr=r.optim.lr, batch=r.data.batch_size, epochs=r.schedule.epochs,
               drop_path=r.model.drop_path_rate, wd=r.optim.weight_decay,
               clips=r.data.dataset["num_clips"], crops=r.data.dataset["num_crops"],
               classes=r.model.num_classes, layer_decay=r.optim.layer_decay)
    assert got == expected
    assert r.schedule.warmup_epochs == 5 and r.data.repeated_aug == 2
    assert (r.mixup.mixup_alpha, r.mixup.cutmix_alpha, r.mixup.label_smoothing) == (0.8, 1.0, 0.1)
    assert r.data.dataset["flip"] is (not path.startswith("ssv2"))
    assert r.data.dataset["sampling"] == ("segment" if path.startswith("ssv2") else "sparse")


def test_overrides_reach_every_key_and_are_typed():
    r = load_recipe(CONFIGS / "k400/videomamba_tiny_f8.yaml",
                    ["optim.lr=1e-4", "data.num_frames=16", "optim.betas=[0.9, 0.95]",
                     "train.ema_decay=0.999", "model.kwargs.scan_backend=ref", "data.flip=false"])
    assert r.optim.lr == 1e-4 and r.data.num_frames == 16 and r.optim.betas == (0.9, 0.95)
    assert r.train.ema_decay == 0.999 and r.model.kwargs == {"scan_backend": "ref"}
    assert r.data.dataset["flip"] is False


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown key"), ("data.num_framez=3", "unknown key"), ("optim.lr=abc", "number"),
    ("nosection.x=1", "unknown section"), ("optim.lr", "expected section.key=value"),
    ("train.precision=fp8", "bf16|fp16|fp32"), ("optim.layer_decay=1.5", "layer_decay"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(CONFIGS / "k400/videomamba_tiny_f8.yaml", [override])


def test_base_chain_and_saved_recipe_round_trip(tmp_path):
    from videomamba.engine.config import save_recipe

    r = load_recipe(CONFIGS / "coin/videomamba_small_f32.yaml")
    save_recipe(r, tmp_path / "r.yaml")
    again = load_recipe(tmp_path / "r.yaml")
    assert again == r
    raw = load_recipe_dict(CONFIGS / "coin/videomamba_small_f32.yaml")
    assert "base" not in raw and raw["optim"]["name"] == "adamw"  # from the base file


def test_demo_recipes_equal_the_shipped_synthetic_recipes():
    from videomamba.apps.demo import LONGRANGE_RECIPE, MOTION_RECIPE

    for name, code in (("motion", MOTION_RECIPE), ("longrange", LONGRANGE_RECIPE)):
        shipped = load_recipe(CONFIGS / f"synthetic/{name}.yaml")
        same_paths = {k: getattr(shipped.data, k) for k in ("train", "val", "test")}
        from_code = recipe_from_dict(deep_merge(code, {
            "data": {**same_paths, "prefix": shipped.data.dataset["prefix"]},
            "train": {"output_dir": shipped.train.output_dir}}))
        assert from_code == shipped, name


def test_apply_overrides_creates_nested_keys():
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}
