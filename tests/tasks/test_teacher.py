"""Teachers: one interface, frozen, no gradients, the student's token order."""

import pytest
import torch

from videomamba.errors import BackendUnavailableError, CheckpointError, ConfigError
from videomamba.models import create_model, save_pretrained
from videomamba.models.teachers import (
    CLIPTeacher, CLIPVisionConfig, Teacher, build_teacher, import_timm,
    load_clip_teacher,
)

TINY_CLIP = CLIPVisionConfig(width=32, layers=2, heads=2, patch_size=16, image_size=32,
                             output_dim=24)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_video_model(dim=32):
    return create_model("videomamba_tiny", num_classes=0, depth=2, embed_dim=dim, img_size=32,
                        num_frames=4)


def check_teacher_contract(teacher: Teacher, video: torch.Tensor, dim: int) -> None:
    out = teacher(video.requires_grad_())
    batch, time = video.shape[0], video.shape[2]
    assert out.features.shape == (batch, 1 + time * 4, dim)
    assert not out.features.requires_grad  # computed without gradients
    torch.testing.assert_close(out.features.norm(dim=-1), torch.ones(batch, 1 + time * 4))
    assert out.attention.shape == (batch, time, 4)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(batch, time))
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not any(m.training for m in teacher.modules())


def test_clip_teacher_contract_and_frame_independence():
    torch.manual_seed(0)
    teacher = CLIPTeacher(TINY_CLIP).freeze()
    video = torch.randn(2, 3, 4, 32, 32)
    check_teacher_contract(teacher, video, 24)
    out = teacher(video)
    # frame t's patch tokens depend on frame t only (the tower runs frame by frame)
    one_frame = teacher(video[:, :, 2:3]).features[:, 1:]
    torch.testing.assert_close(out.features[:, 1 + 2 * 4: 1 + 3 * 4], one_frame)


def test_clip_teacher_matches_a_hand_written_vit_forward():
    torch.manual_seed(0)
    teacher = CLIPTeacher(TINY_CLIP).freeze()
    frame = torch.randn(1, 3, 32, 32)
    x = teacher.conv1(frame).flatten(2).transpose(1, 2)
    x = torch.cat([teacher.class_embedding.view(1, 1, -1), x], 1) + teacher.positional_embedding
    x = teacher.ln_pre(x)
    for block in teacher.transformer.resblocks:
        h = block.ln_1(x)
        q, k, v = torch.nn.functional.linear(h, block.attn.in_proj_weight,
                                             block.attn.in_proj_bias).chunk(3, dim=-1)
        heads = lambda t: t.view(1, 5, 2, 16).transpose(1, 2)  # noqa: E731
        weights = (heads(q) @ heads(k).transpose(-1, -2) / 4.0).softmax(-1)
        attn = (weights @ heads(v)).transpose(1, 2).reshape(1, 5, 32)
        x = x + block.attn.out_proj(attn)
        fc = block.mlp.c_fc(block.ln_2(x))
        x = x + block.mlp.c_proj(fc * torch.sigmoid(1.702 * fc))
    expected = torch.nn.functional.normalize(x @ teacher.proj, dim=-1)
    out = teacher(frame.unsqueeze(2))
    torch.testing.assert_close(out.features[0], expected[0], rtol=1e-4, atol=1e-5)
    cls_row = weights.mean(1)[0, 0, 1:]
    torch.testing.assert_close(out.attention[0, 0], cls_row / cls_row.sum(), rtol=1e-4,
                               atol=1e-6)


def test_clip_teacher_loads_an_open_clip_checkpoint(tmp_path):
    torch.manual_seed(0)
    source = CLIPTeacher(TINY_CLIP)
    # a whole OpenCLIP model file: the tower under visual., a text tower beside it
    state = {f"visual.{k}": v for k, v in source.state_dict().items()}
    state["token_embedding.weight"] = torch.zeros(10, 8)
    torch.save({"state_dict": state}, tmp_path / "open_clip.pt")
    teacher = load_clip_teacher(tmp_path / "open_clip.pt", heads=2)
    assert teacher.config == TINY_CLIP
    video = torch.randn(1, 3, 2, 32, 32)
    torch.testing.assert_close(teacher(video).features, source.freeze()(video).features)
    torch.save({"conv1.weight": torch.zeros(8, 3, 16, 16)}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="CLIP"):
        load_clip_teacher(tmp_path / "bad.pt")


def test_clip_teacher_equals_open_clip_when_installed():
    try:
        import open_clip.transformer as oct
    except ImportError:
        pytest.skip("open_clip not importable here (it needs torchvision)")
    torch.manual_seed(0)
    reference = oct.VisionTransformer(image_size=32, patch_size=16, width=32, layers=2, heads=2,
                                      mlp_ratio=4.0, output_dim=24, act_layer=oct.QuickGELU)
    teacher = CLIPTeacher(TINY_CLIP)
    teacher.load_state_dict({k: v for k, v in reference.state_dict().items()
                             if k in teacher.state_dict()})
    frame = torch.randn(2, 3, 32, 32)
    # open_clip pools the cls through ln_post then proj; compare the cls on that path
    tokens = reference.transformer(reference.ln_pre(torch.cat([
        reference.class_embedding.expand(2, 1, -1),
        reference.conv1(frame).flatten(2).transpose(1, 2)], 1) + reference.positional_embedding))
    expected = torch.nn.functional.normalize(tokens @ reference.proj, dim=-1)
    torch.testing.assert_close(teacher.freeze()(frame.unsqueeze(2)).features[:, 1:],
                               expected[:, 1:], rtol=1e-4, atol=1e-5)


def test_videomamba_teacher_from_a_model_dir(tmp_path):
    torch.manual_seed(0)
    model = tiny_video_model(dim=40)
    save_pretrained(model, tmp_path / "m")
    teacher = build_teacher("videomamba", tmp_path / "m")
    video = torch.randn(2, 3, 4, 32, 32)
    check_teacher_contract(teacher, video, 40)
    expected = torch.nn.functional.normalize(
        model.eval().forward_features(video, return_all_tokens=True), dim=-1)
    torch.testing.assert_close(teacher(video).features, expected)


def test_build_teacher_errors(tmp_path):
    with pytest.raises(ConfigError, match="teacher.path"):
        build_teacher("videomamba")
    with pytest.raises(ConfigError, match="unknown teacher"):
        build_teacher("dino", tmp_path)
    with pytest.raises(CheckpointError, match="config.json"):
        build_teacher("videomamba", tmp_path)


def test_timm_teacher_when_installed():
    try:
        import_timm()
    except BackendUnavailableError as err:
        assert "torchvision" in str(err)
        pytest.skip("timm not importable here (it needs torchvision)")
    torch.manual_seed(0)
    teacher = build_teacher("timm", name="vit_tiny_patch16_224", img_size=32)
    video = torch.randn(2, 3, 4, 32, 32)
    check_teacher_contract(teacher, video, teacher.feature_dim)
    # the patch tokens are timm's own forward_features, frame by frame
    frames = video.permute(0, 2, 1, 3, 4).reshape(8, 3, 32, 32)
    expected = torch.nn.functional.normalize(teacher.vit.forward_features(frames)[:, 1:], dim=-1)
    torch.testing.assert_close(teacher(video).features[:, 1:], expected.reshape(2, 16, -1),
                               rtol=1e-4, atol=1e-5)
