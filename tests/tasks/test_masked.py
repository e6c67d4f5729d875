"""Masked pretraining: the student on kept tokens, the decoder, the loss, the task, the classifier."""

import pytest
import torch

from videomamba.models import create_model, save_pretrained
from videomamba.models.teachers import VideoMambaTeacher
from videomamba.tasks.masked import (
    MaskedAlignmentTask, MaskedPretrainConfig, alignment_loss, attach_alignment_decoder,
    classifier_from_pretrained, decode_kept, sinusoid_table, student_kept_features,
)
from videomamba.tasks.masking import kept_token_indices, random_mask, tube_mask

SIZES = dict(depth=2, embed_dim=32, img_size=32, num_frames=4)  # 1 + 4 * 2 * 2 = 17 tokens


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(num_classes=0, **kwargs):
    return create_model("videomamba_tiny", num_classes=num_classes, **{**SIZES, **kwargs})


def tiny_teacher(dim=48, seed=1):
    torch.manual_seed(seed)
    return VideoMambaTeacher(tiny(embed_dim=dim)).freeze()


@pytest.mark.parametrize("feature", ["final", "official"])
def test_student_on_kept_tokens_equals_the_hand_selected_sequence(feature):
    torch.manual_seed(0)
    model = tiny().eval()
    video = torch.randn(3, 3, 4, 32, 32)
    mask = random_mask(3, 4, 4, 0.5, torch.Generator().manual_seed(0))
    keep = kept_token_indices(mask)
    got = student_kept_features(model, video, keep, feature)

    # By hand: the full token sequence, the cls and the unmasked patches picked in scan order
    # (the official x[~mask] with the cls always visible), then the blocks on that sequence.
    tokens = model.embed_tokens(video)
    visible = torch.cat([torch.zeros(3, 1, dtype=torch.bool), mask], dim=1)
    picked = tokens[~visible].reshape(3, -1, tokens.shape[-1])
    if feature == "final":
        expected = model.run_blocks(picked)
    else:
        hidden, residual = picked, None
        for layer in model.layers:
            hidden, residual = layer(hidden, residual)
        expected = residual
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # and the masked tokens really are gone: the full sequence, then selected, differs
    full = model.run_blocks(tokens).gather(1, keep.unsqueeze(-1).expand(-1, -1, 32))
    if feature == "final":
        assert not torch.allclose(got, full, atol=1e-3)


def test_decoder_outputs_unit_vectors_and_loss_bounds():
    torch.manual_seed(0)
    model = attach_alignment_decoder(tiny(), 24)
    assert sorted(k for k in model.state_dict() if k.startswith("clip_")) == [
        "clip_decoder.0.head.bias", "clip_decoder.0.head.weight",
        "clip_decoder.0.norm.bias", "clip_decoder.0.norm.weight"]  # official names, no pos table
    keep = kept_token_indices(tube_mask(2, 4, 4, 0.5))
    out = decode_kept(model, torch.randn(2, keep.shape[1], 32), keep)
    assert out.shape == (2, keep.shape[1], 24)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2, keep.shape[1]))
    assert torch.allclose(alignment_loss(out, out), torch.zeros(2), atol=1e-6)
    assert torch.allclose(alignment_loss(out, -out), torch.full((2,), 4.0), atol=1e-6)
    table = sinusoid_table(5, 8)
    assert table.shape == (1, 5, 8) and table[0, 0, 1] == 1.0 and table[0, 1, 0] == torch.sin(
        torch.tensor(1.0))


@pytest.mark.parametrize("mask_type", ["tube", "attention"])
def test_masked_task_trains_and_loss_falls(mask_type):
    torch.manual_seed(0)
    student = attach_alignment_decoder(tiny(drop_path_rate=0.0), 48)
    task = MaskedAlignmentTask(tiny_teacher(), MaskedPretrainConfig(
        mask_type=mask_type, mask_ratio=0.5, teacher_kind="videomamba"), seed=0)
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)
    video = torch.randn(2, 3, 4, 32, 32)
    losses = []
    for _ in range(6):
        out = task.training_step(student, {"video": video})
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
    assert abs(float(out.metrics["kept"]) - 9 / 17) < 1e-6  # cls + 8 of 16 patches
    assert sum(losses[-3:]) / 3 < 0.7 * losses[0], losses
    assert all(p.grad is None for p in task.teacher.parameters())
    summary = task.summarize({k: v.numpy() for k, v in task.eval_step(
        student, {"video": video, "index": torch.arange(2)}).items()})
    assert 0 <= summary["align_loss"] < losses[0]


def test_pretrained_student_becomes_a_classifier(tmp_path):
    torch.manual_seed(0)
    student = attach_alignment_decoder(tiny(), 48)
    save_pretrained(student, tmp_path / "pt")
    classifier = classifier_from_pretrained(tmp_path / "pt", num_classes=5)
    assert classifier.head.out_features == 5 and not hasattr(classifier, "clip_decoder")
    for key, value in tiny().state_dict().items():
        if not key.startswith("head."):
            torch.testing.assert_close(classifier.state_dict()[key], student.state_dict()[key])


def test_official_mask_checkpoint_becomes_a_classifier(tmp_path):
    # The official pretraining checkpoint: backbone keys at top level, an unused `norm`, the
    # clip decoder, no norm_f, no head, wrapped in {"model": ...}.
    torch.manual_seed(0)
    student = attach_alignment_decoder(tiny(), 48)
    state = {k: v for k, v in student.state_dict().items() if not k.startswith("norm_f.")}
    state["norm.weight"] = torch.ones(32)
    torch.save({"model": state}, tmp_path / "videomamba_t_mask_pt.pth")
    classifier = classifier_from_pretrained(tmp_path / "videomamba_t_mask_pt.pth", 7,
                                            model_name="videomamba_tiny", **SIZES)
    torch.testing.assert_close(classifier.layers[1].mixer.in_proj.weight,
                               student.layers[1].mixer.in_proj.weight)
    assert classifier.head.out_features == 7


def test_objective_runs_inside_forward_and_copies_stay_independent():
    import copy

    torch.manual_seed(0)
    model = attach_alignment_decoder(tiny(), 48).eval()
    video = torch.randn(1, 3, 4, 32, 32)
    seen = []
    out = model(video, objective=lambda net, clips: seen.append(net) or net.embed_tokens(clips))
    assert seen == [model] and out.shape == (1, 17, 32)
    twin = copy.deepcopy(model)  # what EMA does
    with torch.no_grad():
        twin.layers[0].mixer.out_proj.weight.mul_(0.0)
    assert not torch.allclose(twin(video), model(video))  # the copy runs its own weights
    torch.testing.assert_close(model(video), tiny().eval().__class__.forward(model, video))


def test_attention_masks_from_a_clip_teacher():
    from videomamba.models.teachers import CLIPTeacher, CLIPVisionConfig

    torch.manual_seed(0)
    teacher = CLIPTeacher(CLIPVisionConfig(width=32, layers=1, heads=2, patch_size=16,
                                           image_size=32, output_dim=24)).freeze()
    student = attach_alignment_decoder(tiny(), teacher.feature_dim)
    task = MaskedAlignmentTask(teacher, MaskedPretrainConfig(mask_type="attention",
                                                             mask_ratio=0.5))
    out = task.training_step(student, {"video": torch.randn(2, 3, 4, 32, 32)})
    out.loss.backward()
    assert 0 < float(out.loss.detach()) < 4 and abs(float(out.metrics["kept"]) - 9 / 17) < 1e-6
    assert student.clip_decoder[0].head.weight.grad is not None
