"""The analytic FLOPs / parameter counter against hooked real modules and the official tables."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import videomamba
from videomamba.cli import main
from videomamba.errors import ConfigError
from videomamba.models.flops import count_flops, count_params, flops_breakdown, resolve_config

# Parts whose work is matmuls/convolutions in the model, which FlopCounterMode sees; the scan
# (with the ref backend: elementwise only), gating and norms are not matmuls.
MATMUL_PARTS = ("patch_embed", "in_proj", "conv1d", "x_proj", "dt_proj", "out_proj", "head")

TINY_CONFIGS = {
    "video": dict(name="videomamba_tiny", embed_dim=32, depth=2, num_frames=4, img_size=32,
                  num_classes=5),
    "video-tubelet2-layernorm": dict(name="videomamba_tiny", embed_dim=48, depth=3, num_frames=4,
                                     img_size=48, num_classes=3, tubelet_size=2, rms_norm=False),
    "image": dict(name="videomamba_image_tiny", embed_dim=32, depth=2, img_size=32,
                  num_classes=7),
    "video-no-head": dict(name="videomamba_tiny", embed_dim=32, depth=1, num_frames=2,
                          img_size=32, num_classes=0, d_state=8),
}


def build(spec: dict) -> torch.nn.Module:
    spec = dict(spec)
    return videomamba.create_model(spec.pop("name"), scan_backend="ref", **spec).eval()


@pytest.mark.parametrize("spec", TINY_CONFIGS.values(), ids=TINY_CONFIGS.keys())
def test_matmul_parts_equal_hooked_counts(spec):
    model = build(spec)
    c = model.config
    clip = torch.randn(1, 3, c.num_frames, c.img_size, c.img_size) if c.video \
        else torch.randn(1, 3, c.img_size, c.img_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(clip)
    hooked_multiply_adds = counter.get_total_flops() // 2  # it counts 2 FLOPs per multiply-add
    parts = flops_breakdown(c)
    # The causal conv is computed with K-1 zeros of padding on both sides and its last K-1
    # outputs are dropped; the hook also counts those discarded outputs.
    discarded = c.depth * 2 * c.d_inner * c.d_conv * (c.d_conv - 1)
    assert hooked_multiply_adds == sum(parts[k] for k in MATMUL_PARTS) + discarded


@pytest.mark.parametrize("spec", TINY_CONFIGS.values(), ids=TINY_CONFIGS.keys())
def test_param_count_equals_the_built_model(spec):
    model = build(spec)
    assert count_params(model.config) == sum(p.numel() for p in model.parameters())
    assert count_flops(model)["params"] == count_params(model.config)


def test_scan_count_per_state_element():
    c = resolve_config("videomamba_tiny")
    parts = flops_breakdown(c)
    L, E, N = c.seq_len, c.d_inner, c.d_state
    assert L == 1 + 8 * 196
    assert parts["scan"] == c.depth * 2 * (4 * L * E * N + 2 * L * E)
    doubled = flops_breakdown(c.replace(d_state=2 * N))
    assert doubled["scan"] - parts["scan"] == c.depth * 2 * 4 * L * E * N


@pytest.mark.parametrize("name,params_m", [("videomamba_tiny", 7.03), ("videomamba_small", 25.57),
                                           ("videomamba_middle", 73.88)])
def test_official_parameter_counts(name, params_m):
    assert round(count_flops(name, num_frames=8)["params"] / 1e6, 2) == params_m


# The official image MODEL_ZOO (videomamba/image_sm/MODEL_ZOO.md) prints fvcore's GFLOPs at 224:
# 1.1, 4.3, 12.7, rounded to 0.1 G.
@pytest.mark.parametrize("name,gflops", [("videomamba_image_tiny", 1.1),
                                         ("videomamba_image_small", 4.3),
                                         ("videomamba_image_middle", 12.7)])
def test_fvcore_visible_subtotal_matches_official_table(name, gflops):
    got = count_flops(name)["fvcore_visible_gflops"]
    assert abs(got - gflops) <= 0.06, got


def test_frames_and_size_scale_the_count():
    eight, sixteen = count_flops("videomamba_tiny", 8), count_flops("videomamba_tiny", 16)
    assert sixteen["tokens"] == 1 + 16 * 196
    assert 1.9 < sixteen["gflops"] / eight["gflops"] < 2.01
    assert count_flops("videomamba_tiny", img_size=448)["tokens"] == 1 + 8 * 28 * 28


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model"):
        count_flops("videomamba_huge")


def test_cli_json_and_table(capsys):
    assert main(["flops", "videomamba_tiny", "--frames", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["params"] == count_params(resolve_config("videomamba_tiny"))
    assert result["breakdown"]["scan"] > 0 and result["num_frames"] == 8
    assert main(["flops", "videomamba_small", "--frames", "16", "--img-size", "224"]) == 0
    out = capsys.readouterr().out
    assert "scan" in out and "parameters: 25.57 M" in out and "multiply-add" in out
    assert main(["flops", "nope"]) == 2
