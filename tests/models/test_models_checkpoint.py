"""Official state dicts, checkpoint forms, resizing, inflation, and clear errors."""

from __future__ import annotations

import argparse
import logging

import pytest
import torch
from models_testlib import perturb, tiny_image, tiny_video
from safetensors.torch import save_file

from videomamba.errors import CheckpointError
from videomamba.models import load_pretrained_weights, load_state_dict_into, read_state_dict
from videomamba.models.checkpoint import (
    inflate_patch_weight,
    resize_pos_embed,
    resize_temporal_pos_embed,
)

# The state dict of the official video_sm VisionMamba(depth=2, embed_dim=64, num_frames=2,
# img_size=32, num_classes=5), read from the official code: d_inner 128, dt_rank 4, d_state 16.
_LAYER = {
    "mixer.A_log": (128, 16), "mixer.D": (128,), "mixer.A_b_log": (128, 16), "mixer.D_b": (128,),
    "mixer.in_proj.weight": (256, 64),
    "mixer.conv1d.weight": (128, 1, 4), "mixer.conv1d.bias": (128,),
    "mixer.x_proj.weight": (36, 128),
    "mixer.dt_proj.weight": (128, 4), "mixer.dt_proj.bias": (128,),
    "mixer.conv1d_b.weight": (128, 1, 4), "mixer.conv1d_b.bias": (128,),
    "mixer.x_proj_b.weight": (36, 128),
    "mixer.dt_proj_b.weight": (128, 4), "mixer.dt_proj_b.bias": (128,),
    "mixer.out_proj.weight": (64, 128),
    "norm.weight": (64,),
}
OFFICIAL_VIDEO_KEYS = {
    "cls_token": (1, 1, 64), "pos_embed": (1, 5, 64), "temporal_pos_embedding": (1, 2, 64),
    "patch_embed.proj.weight": (64, 3, 1, 16, 16), "patch_embed.proj.bias": (64,),
    "head.weight": (5, 64), "head.bias": (5,), "norm_f.weight": (64,),
    **{f"layers.{i}.{k}": shape for i in range(2) for k, shape in _LAYER.items()},
}
OFFICIAL_IMAGE_KEYS = {
    **{k: v for k, v in OFFICIAL_VIDEO_KEYS.items() if k != "temporal_pos_embedding"},
    "patch_embed.proj.weight": (64, 3, 16, 16),
}


def official_state(keys: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=generator) for k, shape in keys.items()}


def shapes(model) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_state_dict_keys_and_shapes_are_official():
    assert shapes(tiny_video()) == OFFICIAL_VIDEO_KEYS
    assert shapes(tiny_image()) == OFFICIAL_IMAGE_KEYS


def test_official_state_dict_round_trips_strictly():
    for model, keys in ((tiny_video(), OFFICIAL_VIDEO_KEYS), (tiny_image(), OFFICIAL_IMAGE_KEYS)):
        state = official_state(keys)
        model.load_state_dict(state, strict=True)
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("form", ["raw", "model", "module", "module_prefix", "nested",
                                  "with_args", "safetensors"])
def test_every_checkpoint_form_loads(tmp_path, form, video_model):
    state = video_model.state_dict()
    path = tmp_path / ("w.safetensors" if form == "safetensors" else "w.pth")
    if form == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        obj = {
            "raw": state,
            "model": {"model": state, "epoch": 3},
            "module": {"module": state},
            "module_prefix": {f"module.{k}": v for k, v in state.items()},
            "nested": {"module": {"model": {f"module.{k}": v for k, v in state.items()}}},
            # official training scripts store their argparse namespace beside the weights
            "with_args": {"model": state, "args": argparse.Namespace(lr=1e-3), "epoch": 1},
        }[form]
        torch.save(obj, path)
    fresh = tiny_video().eval()
    load_pretrained_weights(fresh, path)
    x = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), video_model(x), rtol=0, atol=0)


def test_arbitrary_pickled_objects_are_refused(tmp_path, video_model):
    path = tmp_path / "unsafe.pth"
    torch.save({"model": video_model.state_dict(), "extra": logging.Formatter()}, path)
    with pytest.raises(CheckpointError, match=r"unsafe\.pth.*other than tensors"):
        read_state_dict(path)


def test_corrupt_truncated_and_missing_files_name_the_file(tmp_path, video_model):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(CheckpointError, match=r"corrupt\.pth.*corrupt or truncated"):
        read_state_dict(corrupt)
    good = tmp_path / "good.pth"
    torch.save(video_model.state_dict(), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pth.*corrupt or truncated"):
        read_state_dict(truncated)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match=r"bad\.safetensors"):
        read_state_dict(bad_st)
    with pytest.raises(CheckpointError, match=r"nowhere\.pth.*no such"):
        read_state_dict(tmp_path / "nowhere.pth")


def test_mismatched_checkpoint_names_keys_and_shapes(tmp_path):
    path = tmp_path / "wide.pth"
    torch.save(tiny_video(embed_dim=96).state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_pretrained_weights(tiny_video(), path)
    message = str(info.value)
    assert "wide.pth" in message
    assert "cls_token: checkpoint (1, 1, 96) vs model (1, 1, 64)" in message
    assert "(41 in all)" in message  # all but head.bias (5,)


def test_missing_and_unexpected_keys_are_listed():
    state = official_state(OFFICIAL_VIDEO_KEYS)
    del state["layers.1.mixer.D_b"]
    state["layers.2.norm.weight"] = torch.ones(64)
    with pytest.raises(CheckpointError, match=r"missing keys: layers\.1\.mixer\.D_b.*"
                                              r"unexpected keys: layers\.2\.norm\.weight"):
        load_state_dict_into(tiny_video(), state, "ckpt.pth")


def test_head_of_other_class_count_is_dropped_and_said(caplog):
    model = tiny_video()
    head_before = model.head.weight.clone()
    state = official_state({**OFFICIAL_VIDEO_KEYS, "head.weight": (400, 64), "head.bias": (400,)})
    with caplog.at_level(logging.INFO, logger="videomamba.models.checkpoint"):
        report = load_state_dict_into(model, state, "k400.pth")
    assert "dropped its 400-class head" in caplog.text
    assert any("400-class head" in note for note in report.notes)
    assert torch.equal(model.head.weight, head_before)
    assert torch.equal(model.layers[1].mixer.A_log, state["layers.1.mixer.A_log"])


def test_backbone_only_checkpoint_keeps_the_fresh_head_and_says_so(caplog):
    model = tiny_video()
    head_before = model.head.weight.clone()
    state = {k: v for k, v in official_state(OFFICIAL_VIDEO_KEYS).items() if not k.startswith("head.")}
    with caplog.at_level(logging.INFO, logger="videomamba.models.checkpoint"):
        report = load_state_dict_into(model, state, "backbone.pth")
    assert "has no classification head" in caplog.text
    assert set(report.kept_from_model) >= {"head.weight", "head.bias"}
    assert torch.equal(model.head.weight, head_before)
    assert torch.equal(model.layers[1].mixer.A_log, state["layers.1.mixer.A_log"])


def test_pos_embed_resize_keeps_values_when_sizes_are_equal():
    pos = torch.randn(1, 1 + 14 * 14, 8)
    assert resize_pos_embed(pos, 14) is pos


def test_pos_embed_resize_is_bicubic_and_keeps_cls():
    pos = torch.randn(1, 1 + 4 * 4, 3)
    resized = resize_pos_embed(pos, 7)
    assert resized.shape == (1, 1 + 49, 3)
    assert torch.equal(resized[:, 0], pos[:, 0])
    # a constant grid stays constant (bicubic weights sum to one) ...
    const = torch.cat([torch.zeros(1, 1, 3), torch.full((1, 16, 3), 2.5)], dim=1)
    torch.testing.assert_close(resize_pos_embed(const, 7)[:, 1:], torch.full((1, 49, 3), 2.5))
    # ... and the grid is interpolated row-major: the expected bicubic result
    grid = pos[0, 1:].reshape(4, 4, 3).permute(2, 0, 1)[None]
    expected = torch.nn.functional.interpolate(grid, size=(7, 7), mode="bicubic",
                                               align_corners=False)
    torch.testing.assert_close(resized[0, 1:], expected[0].permute(1, 2, 0).reshape(49, 3))


def test_temporal_resize_is_linear():
    embed = torch.tensor([[[0.0, 10.0], [4.0, 30.0]]])  # (1, T=2, d=2)
    resized = resize_temporal_pos_embed(embed, 4)
    # align_corners=False: source positions -0.25, 0.25, 0.75, 1.25 (clamped to the ends)
    expected = torch.tensor([[[0.0, 10.0], [1.0, 15.0], [3.0, 25.0], [4.0, 30.0]]])
    torch.testing.assert_close(resized, expected)
    assert resize_temporal_pos_embed(embed, 2) is embed


def test_loading_into_other_sizes_resizes_embeddings(caplog, video_model):
    bigger = tiny_video(num_frames=4, img_size=64)
    with caplog.at_level(logging.INFO):
        load_state_dict_into(bigger, video_model.state_dict(), "small.pth")
    assert bigger.pos_embed.shape == (1, 1 + 16, 64)
    torch.testing.assert_close(bigger.pos_embed, resize_pos_embed(video_model.pos_embed, 4))
    torch.testing.assert_close(bigger.temporal_pos_embedding,
                               resize_temporal_pos_embed(video_model.temporal_pos_embedding, 4))
    assert "2x2 to a 4x4" in caplog.text and "from 2 to 4 time steps" in caplog.text


def test_inflate_puts_the_2d_kernel_in_the_centre_frame():
    weight = torch.randn(4, 3, 16, 16)
    inflated = inflate_patch_weight(weight, 3)
    assert inflated.shape == (4, 3, 3, 16, 16)
    assert torch.equal(inflated[:, :, 1], weight)
    assert torch.all(inflated[:, :, [0, 2]] == 0)
    spread = inflate_patch_weight(weight, 4, center=False)
    torch.testing.assert_close(spread.sum(2), weight)


def test_image_checkpoint_inflates_into_video_model(tmp_path, image_model):
    """An image model's weights in a 1-frame video model give the image model's outputs (the
    temporal embedding stays zero); with a 2-frame tubelet the kernel sits in frame 1."""
    path = tmp_path / "in1k.pth"
    torch.save({"model": image_model.state_dict()}, path)
    video = tiny_video(num_frames=1).eval()
    report = load_pretrained_weights(video, path)
    assert any("inflated" in note for note in report.notes)
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(video(image[:, :, None]), image_model(image))
    tubelet = tiny_video(num_frames=2, tubelet_size=2)
    load_pretrained_weights(tubelet, path)
    assert torch.equal(tubelet.patch_embed.proj.weight[:, :, 1],
                       image_model.patch_embed.proj.weight)


def test_masked_pretraining_extras_are_dropped(caplog, video_model):
    state = {k: v for k, v in video_model.state_dict().items() if not k.startswith("norm_f")}
    state["clip_decoder.0.head.weight"] = torch.randn(8, 64)
    state["clip_pos_embed"] = torch.randn(1, 9, 8)
    state["norm.weight"] = torch.randn(64)
    model = tiny_video()
    with caplog.at_level(logging.INFO):
        load_state_dict_into(model, state, "mask_pt.pth")
    assert "masked-pretraining" in caplog.text
    assert torch.equal(model.layers[0].mixer.in_proj.weight,
                       video_model.layers[0].mixer.in_proj.weight)


def test_loaded_weights_reproduce_outputs(tmp_path):
    torch.manual_seed(1)
    source = perturb(tiny_video(), seed=3).eval()
    target = tiny_video().eval()
    load_state_dict_into(target, source.state_dict())
    x = torch.randn(2, 3, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_mismatch_error_names_the_preset_the_checkpoint_looks_like():
    from videomamba.models import create_model
    from videomamba.models.checkpoint import guess_model_name

    with torch.device("meta"):  # shapes only: nothing is allocated
        small = create_model("videomamba_small").state_dict()
        image_base = create_model("videomamba_image_base").state_dict()
        tiny = create_model("videomamba_tiny")
    assert guess_model_name(small) == "videomamba_small"
    assert guess_model_name(image_base) == "videomamba_image_base"
    with pytest.raises(CheckpointError, match=r"s\.pth does not fit the model \(embed_dim 192, "
                                              r"depth 24\); it looks like videomamba_small"):
        load_state_dict_into(tiny, small, "s.pth")
