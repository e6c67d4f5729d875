"""Shapes, registry, parameter counts and the model API."""

from __future__ import annotations

import pytest
import torch

import videomamba
from videomamba.errors import ConfigError
from videomamba.models import create_model, list_models
from videomamba.models.config import default_data_config

from models_testlib import tiny_video


def test_list_models_names_every_preset():
    assert videomamba.list_models() == [
        "videomamba_image_base", "videomamba_image_middle", "videomamba_image_small",
        "videomamba_image_tiny", "videomamba_middle", "videomamba_small", "videomamba_tiny",
    ]
    assert list_models("image_t") == ["videomamba_image_tiny"]


def test_unknown_model_name_lists_known_ones():
    with pytest.raises(ConfigError, match="videomamba_tiny"):
        create_model("videomamba_huge")


def test_unknown_override_is_an_error():
    with pytest.raises(ConfigError, match="no_such_option"):
        create_model("videomamba_tiny", no_such_option=1)


def test_video_model_shapes(video_model):
    x = torch.randn(3, 3, 2, 32, 32)
    assert video_model(x).shape == (3, 5)
    assert video_model.forward_features(x).shape == (3, 64)
    tokens = video_model.forward_features(x, return_all_tokens=True)
    assert tokens.shape == (3, 1 + 2 * 2 * 2, 64)
    # the cls feature is the first token; the head works on it
    torch.testing.assert_close(tokens[:, 0], video_model.forward_features(x))
    torch.testing.assert_close(video_model.forward_head(tokens[:, 0]), video_model(x))


def test_image_model_shapes(image_model):
    x = torch.randn(2, 3, 32, 32)
    assert image_model(x).shape == (2, 5)
    assert image_model.forward_features(x, return_all_tokens=True).shape == (2, 1 + 4, 64)
    assert "temporal_pos_embedding" not in image_model.state_dict()


def test_tubelet_groups_frames():
    model = tiny_video(num_frames=4, tubelet_size=2).eval()
    tokens = model.forward_features(torch.randn(1, 3, 4, 32, 32), return_all_tokens=True)
    assert tokens.shape == (1, 1 + 2 * 4, 64)
    assert model.temporal_pos_embedding.shape == (1, 2, 64)


@pytest.mark.parametrize("kernel,shape", [((2, 4, 4), (2, 3, 4, 8, 12)),
                                          ((1, 4, 4), (1, 3, 3, 8, 8))])
def test_patch_gemm_is_the_patch_convolution(kernel, shape):
    from videomamba.models.videomamba import patch_gemm

    torch.manual_seed(0)
    proj = torch.nn.Conv3d(3, 5, kernel_size=kernel, stride=kernel)
    x = torch.randn(*shape, requires_grad=True)
    got = patch_gemm(x, proj)
    want = proj(x).flatten(3).permute(0, 2, 3, 1)  # (B, T', h*w, d)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(got.square().sum(), [x, proj.weight, proj.bias])
    want_grads = torch.autograd.grad(want.square().sum(), [x, proj.weight, proj.bias])
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


def test_patchify_takes_the_gemm_in_reduced_precision_only(monkeypatch):
    """float32 keeps the convolution (the official model's numerics, bit for bit); bf16 inputs
    or autocast take the GEMM where the kernel tiles the clip, the convolution where not."""
    from videomamba.models import videomamba as vm

    proj = torch.nn.Conv3d(3, 5, kernel_size=(1, 4, 4), stride=(1, 4, 4))
    calls = []
    monkeypatch.setattr(vm, "patch_gemm", lambda x, p: calls.append(x.dtype) or
                        p(x).flatten(3).permute(0, 2, 3, 1))
    x = torch.randn(1, 3, 2, 8, 8)
    torch.testing.assert_close(vm.patchify(x, proj), proj(x).flatten(3).permute(0, 2, 3, 1),
                               rtol=0, atol=0)
    assert calls == []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        vm.patchify(x, proj)
        vm.patchify(torch.randn(1, 3, 2, 10, 8), proj)  # 10 % 4: the convolution
    vm.patchify(x.bfloat16(), proj.bfloat16())
    assert calls == [torch.float32, torch.bfloat16]


def test_wrong_input_shape_says_what_is_expected(video_model, image_model):
    with pytest.raises(ValueError, match=r"\(B, 3, 2, 32, 32\)"):
        video_model(torch.randn(1, 3, 4, 32, 32))
    with pytest.raises(ValueError, match="image model"):
        image_model(torch.randn(1, 3, 2, 32, 32))


def test_frame_order_matters(video_model):
    """A bidirectional scan over time-ordered tokens sees the order of frames."""
    x = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(video_model(x), video_model(x.flip(2)), atol=1e-4)


def test_api_attributes_and_reset_classifier(video_model):
    assert video_model.embed_dim == 64 and video_model.num_classes == 5
    assert video_model.config.depth == 2
    assert video_model.no_weight_decay() == {"pos_embed", "cls_token", "temporal_pos_embedding"}
    video_model.reset_classifier(7)
    assert video_model(torch.randn(1, 3, 2, 32, 32)).shape == (1, 7)
    assert video_model.config.num_classes == 7
    video_model.reset_classifier(0)
    assert video_model(torch.randn(1, 3, 2, 32, 32)).shape == (1, 64)


def test_layer_ids_for_layerwise_decay(video_model):
    assert video_model.layer_id("pos_embed") == 0
    assert video_model.layer_id("patch_embed.proj.weight") == 0
    assert video_model.layer_id("layers.1.mixer.in_proj.weight") == 2
    assert video_model.layer_id("head.weight") == video_model.get_num_layers() + 1 == 3


def test_default_data_config():
    model = create_model("videomamba_tiny", num_frames=16, depth=1)
    data = default_data_config(model.config)
    assert (data.input_size, data.num_frames) == (224, 16)
    assert data.mean == (0.485, 0.456, 0.406) and data.std == (0.229, 0.224, 0.225)


# The official counts (VideoMamba paper, Table 1 / the model zoo) with a 400-class head at 8
# frames; the image counts are those of the official image_sm models (1000-class head).
@pytest.mark.parametrize("name,millions", [
    ("videomamba_tiny", 7.03), ("videomamba_small", 25.57), ("videomamba_middle", 73.88),
])
def test_video_parameter_counts(name, millions):
    with torch.device("meta"):  # counts need no memory nor initialisation
        model = create_model(name, num_classes=400, num_frames=8)
    count = sum(p.numel() for p in model.parameters())
    assert round(count / 1e6, 2) == millions


@pytest.mark.parametrize("name,count", [
    ("videomamba_image_tiny", 7_148_008), ("videomamba_image_small", 25_796_584),
    ("videomamba_image_middle", 74_217_448), ("videomamba_image_base", 97_598_440),
])
def test_image_parameter_counts(name, count):
    with torch.device("meta"):
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == count


def test_official_initialisation():
    """As the official code ends up initialising: A_log = log(1..N), D = 1, dt_proj bias zero and
    weights N(0, 0.02) (segm_init overrides the Mamba dt init), out_proj rescaled by 1/sqrt(depth),
    cls token and temporal embedding zero, RMSNorm weights one."""
    torch.manual_seed(0)
    model = create_model("videomamba_tiny", depth=4, num_frames=2, img_size=32)
    mixer = model.layers[0].mixer
    torch.testing.assert_close(mixer.A_log[0].exp(), torch.arange(1.0, 17.0))
    torch.testing.assert_close(mixer.A_b_log, mixer.A_log)
    assert torch.all(mixer.D == 1) and torch.all(mixer.D_b == 1)
    assert torch.all(mixer.dt_proj.bias == 0) and torch.all(mixer.dt_proj_b.bias == 0)
    assert 0.015 < mixer.in_proj.weight.std() < 0.025
    bound = 1 / mixer.d_inner**0.5 / 4**0.5  # kaiming_uniform(a=sqrt 5) bound / sqrt(depth)
    assert mixer.out_proj.weight.abs().max() <= bound
    assert mixer.out_proj.weight.abs().max() > 0.9 * bound
    assert torch.all(model.cls_token == 0) and torch.all(model.temporal_pos_embedding == 0)
    assert 0.015 < model.pos_embed.std() < 0.025
    assert torch.all(model.layers[1].norm.weight == 1) and torch.all(model.norm_f.weight == 1)
    assert mixer.A_log._no_weight_decay and mixer.D_b._no_weight_decay


def test_drop_path_schedule_is_official():
    model = create_model("videomamba_tiny", depth=4, drop_path_rate=0.3, num_frames=2, img_size=32)
    rates = [getattr(layer.drop_path, "p", 0.0) for layer in model.layers]
    assert rates == pytest.approx([0.0, 0.0, 0.1, 0.2])  # block i gets linspace(0, r, depth)[i-1]
    assert model.drop_path.p == pytest.approx(0.3)  # the final add-norm gets the full rate


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    plain = tiny_video()
    checkpointed = tiny_video(use_checkpoint=True, checkpoint_num=2)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 2, 32, 32)
    for model in (plain, checkpointed):
        model(x).square().sum().backward()
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name)


def test_checkpoint_num_counts_leading_blocks(monkeypatch):
    import torch.utils.checkpoint as ckpt

    calls = []
    real = ckpt.checkpoint
    def recording(fn, *args, **kwargs):
        calls.append(fn)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(ckpt, "checkpoint", recording)
    model = tiny_video(depth=3, use_checkpoint=True, checkpoint_num=2)
    model(torch.randn(1, 3, 2, 32, 32)).sum().backward()
    assert calls == [model.layers[0].mixer, model.layers[1].mixer]


def test_residual_stream_stays_float32_under_bfloat16():
    from videomamba.models.block import add_norm

    model = tiny_video()
    h = torch.randn(1, 9, 64, dtype=torch.bfloat16)
    block = model.layers[0]
    normed, residual = add_norm(h, None, block.norm, block.drop_path, True, True)
    assert normed.dtype == torch.bfloat16 and residual.dtype == torch.float32
    normed2, residual2 = add_norm(h, residual, block.norm, block.drop_path, True, True)
    torch.testing.assert_close(residual2, residual + h.float())


def test_scan_backend_can_be_switched(video_model):
    """The `ref` and `torch` scans give the same model outputs; an unknown backend is an error."""
    from videomamba.errors import BackendUnavailableError

    x = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        video_model.set_scan_backend("ref")
        reference = video_model(x)
        video_model.set_scan_backend("torch")
        torch.testing.assert_close(video_model(x), reference, rtol=1e-5, atol=1e-6)
        video_model.set_scan_backend("no_such_backend")
        with pytest.raises(BackendUnavailableError):
            video_model(x)
    assert video_model.config.scan_backend == "no_such_backend"


def test_trains_under_bfloat16_autocast():
    model = tiny_video(drop_path_rate=0.1).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(2, 3, 2, 32, 32))
    assert logits.dtype == torch.bfloat16
    logits.float().square().sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
