import math

import numpy as np
import pytest
import torch

from engine_toys import ToyVideoNet
from videomamba.engine.config import OptimConfig
from videomamba.engine.optim import build_optimizer, layer_id, param_groups
from videomamba.engine.schedule import CosineWarmupScheduler, cosine_lr


def _groups_by_name(model, **kw):
    _, infos = param_groups(model, **kw)
    return {name: info for info in infos for name in info.names}


def test_layer_ids_follow_blocks_not_the_official_bug():
    depth = 24
    assert layer_id("patch_embed.proj.weight", depth) == 0
    assert layer_id("cls_token", depth) == 0
    assert layer_id("pos_embed", depth) == 0
    assert layer_id("temporal_pos_embedding", depth) == 0  # official code sends it to the head
    assert layer_id("layers.0.mixer.in_proj.weight", depth) == 1  # official: depth + 1
    assert layer_id("layers.23.norm.weight", depth) == 24
    assert layer_id("module.layers.5.mixer.A_log", depth) == 6  # DDP prefix
    assert layer_id("_orig_mod.layers.5.mixer.A_log", depth) == 6  # torch.compile prefix
    assert layer_id("norm_f.weight", depth) == 25
    assert layer_id("head.weight", depth) == 25


def test_param_groups_lr_scale_and_weight_decay():
    model = ToyVideoNet(depth=3)
    by_name = _groups_by_name(model, weight_decay=0.05, layer_decay=0.5)
    # lr scale = 0.5 ** (depth + 1 - id)
    assert by_name["patch_embed.proj.weight"].lr_scale == pytest.approx(0.5**4)
    assert by_name["layers.0.mixer.weight"].lr_scale == pytest.approx(0.5**3)
    assert by_name["layers.2.mixer.weight"].lr_scale == pytest.approx(0.5**1)
    assert by_name["head.weight"].lr_scale == 1.0
    decayed = {n for n, i in by_name.items() if i.weight_decay > 0}
    assert decayed == {"patch_embed.proj.weight", "head.weight",
                       *(f"layers.{i}.mixer.weight" for i in range(3))}
    for name in ("cls_token", "pos_embed", "temporal_pos_embedding", "head.bias", "norm_f.weight",
                 "layers.1.norm.weight", "patch_embed.proj.bias"):
        assert by_name[name].weight_decay == 0.0, name
    # every trainable parameter is in exactly one group
    groups, _ = param_groups(model, weight_decay=0.05, layer_decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_no_layer_decay_gives_two_groups_and_flagged_params_optional():
    model = ToyVideoNet(depth=2)
    model.layers[0].mixer.weight._no_weight_decay = True
    groups, infos = param_groups(model, weight_decay=0.1, layer_decay=1.0)
    assert len(groups) == 2 and all(g["lr_scale"] == 1.0 for g in groups)
    names = {n: i for i in infos for n in i.names}
    assert names["layers.0.mixer.weight"].weight_decay == 0.1  # official behaviour by default
    _, infos = param_groups(model, weight_decay=0.1, respect_no_weight_decay_flag=True)
    names = {n: i for i in infos for n in i.names}
    assert names["layers.0.mixer.weight"].weight_decay == 0.0


def test_real_model_groups_when_available():
    videomamba = pytest.importorskip("videomamba.models")
    model = videomamba.create_model("videomamba_tiny", num_classes=10, depth=2, embed_dim=32,
                                    img_size=32, num_frames=2)
    by_name = _groups_by_name(model, weight_decay=0.05, layer_decay=0.75)
    depth = 2
    for name, info in by_name.items():
        if name.startswith("layers."):
            assert info.layer_id == int(name.split(".")[1]) + 1
        elif name.startswith(("patch_embed", "cls_token", "pos_embed", "temporal_pos_embedding")):
            assert info.layer_id == 0
        else:
            assert info.layer_id == depth + 1, name
        assert info.lr_scale == pytest.approx(0.75 ** (depth + 1 - info.layer_id))
    assert by_name["layers.0.mixer.D"].weight_decay == 0.0
    assert by_name["layers.0.mixer.A_log"].weight_decay == 0.05
    assert by_name["layers.0.mixer.in_proj.weight"].weight_decay == 0.05


def test_cosine_schedule_matches_official_formula():
    base, final, warm_lr, epochs, niter, warm_epochs = 1e-3, 1e-6, 1e-6, 4, 5, 1
    warmup = warm_epochs * niter
    official = np.concatenate([
        np.linspace(warm_lr, base, warmup),
        [final + 0.5 * (base - final) * (1 + math.cos(math.pi * i / (epochs * niter - warmup)))
         for i in range(epochs * niter - warmup)],
    ])
    ours = [cosine_lr(s, base, final, epochs * niter, warmup, warm_lr) for s in range(epochs * niter)]
    np.testing.assert_allclose(ours, official, rtol=1e-12)
    assert cosine_lr(epochs * niter + 3, base, final, epochs * niter, warmup, warm_lr) == final
    assert cosine_lr(0, base, final, 10, 0, 0.0) == base


def test_scheduler_applies_lr_scale_per_group_and_resumes():
    model = ToyVideoNet(depth=2)
    cfg = OptimConfig(lr=1.0, layer_decay=0.5)
    opt = build_optimizer(model, cfg)
    sched = CosineWarmupScheduler(opt, base_lr=1.0, min_lr=0.0, total_steps=10, warmup_steps=0)
    sched.apply()
    scales = sorted({g["lr"] for g in opt.param_groups})
    assert scales == pytest.approx([0.125, 0.25, 0.5, 1.0])
    for _ in range(3):
        sched.advance()
    other = CosineWarmupScheduler(opt, 1.0, 0.0, 10, 0)
    other.load_state_dict(sched.state_dict())
    assert other.apply() == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 10)))
