"""Our format (save_pretrained / from_pretrained) and the `videomamba convert` command."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from models_testlib import perturb, tiny_image

from videomamba.apps import convert
from videomamba.errors import CheckpointError, ConfigError
from videomamba.models import create_model, from_pretrained, save_pretrained


def main(argv: list[str]) -> int:
    """`videomamba convert ...` through the command's own parser (the CLI table imports every
    command; this keeps the test independent of the others)."""
    parser = argparse.ArgumentParser()
    convert.add_arguments(parser)
    return convert.run(parser.parse_args(argv[1:]))


def test_save_and_load_round_trip(tmp_path, video_model):
    names = [f"class {i}" for i in range(5)]
    out = save_pretrained(video_model, tmp_path / "model", class_names=names)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((out / "config.json").read_text())
    assert meta["model_config"]["embed_dim"] == 64 and meta["class_names"] == names
    assert meta["data_config"]["mean"] == [0.485, 0.456, 0.406]
    loaded = from_pretrained(out).eval()
    assert loaded.class_names == names and loaded.model_name == "videomamba_tiny"
    x = torch.randn(2, 3, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), video_model(x), rtol=0, atol=0)


def test_from_pretrained_overrides_resize(tmp_path, image_model):
    save_pretrained(image_model, tmp_path)
    bigger = from_pretrained(tmp_path, img_size=64, scan_backend="ref")
    assert bigger.pos_embed.shape == (1, 17, 64) and bigger.config.scan_backend == "ref"
    assert bigger(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    with pytest.raises(ConfigError, match="bogus"):
        from_pretrained(tmp_path, bogus=1)


def test_wrong_number_of_class_names_is_refused(tmp_path, video_model):
    with pytest.raises(CheckpointError, match="3 class names for a model with 5 classes"):
        save_pretrained(video_model, tmp_path, class_names=["a", "b", "c"])


def test_from_pretrained_on_a_non_model_directory(tmp_path):
    with pytest.raises(CheckpointError, match="config.json: missing"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        from_pretrained(tmp_path)


def test_create_model_pretrained_accepts_a_directory(tmp_path, video_model):
    save_pretrained(video_model, tmp_path)
    model = create_model("videomamba_tiny", embed_dim=64, depth=2, num_frames=2, img_size=32,
                         num_classes=5, pretrained=tmp_path)
    torch.testing.assert_close(model.state_dict()["pos_embed"], video_model.pos_embed.detach())


def test_convert_cli_end_to_end(tmp_path, capsys):
    """An official-style checkpoint (``model`` wrapper, ``module.`` prefixes) of a tiny model at
    2 frames of 32 px, converted and reloaded: same sizes, class names, identical outputs."""
    torch.manual_seed(0)
    official = perturb(create_model("videomamba_tiny", num_frames=2, img_size=32,
                                    num_classes=7, depth=24)).eval()
    pth = tmp_path / "videomamba_t16_k400_f2_res32.pth"
    torch.save({"model": {f"module.{k}": v for k, v in official.state_dict().items()}}, pth)
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(f"c{i}" for i in range(7)) + "\n")
    out = tmp_path / "converted"
    assert main(["convert", str(pth), str(out), "--model", "videomamba_tiny",
                 "--class-names", str(names), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["num_classes"], summary["num_frames"], summary["img_size"]) == (7, 2, 32)
    loaded = from_pretrained(out)
    assert loaded.class_names[6] == "c6" and loaded.config == official.config
    expected = official.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_convert_cli_resizes_and_drops_head(tmp_path, capsys):
    official = create_model("videomamba_image_tiny", img_size=32, num_classes=10)
    pth = tmp_path / "in1k.pth"
    torch.save(official.state_dict(), pth)
    out = tmp_path / "video"
    code = main(["convert", str(pth), str(out), "--model", "videomamba_tiny", "--num-frames", "4",
                 "--num-classes", "3"])
    assert code == 0 and "3 classes, 4 frames, 32 px" in capsys.readouterr().out
    model = from_pretrained(out)
    assert model.patch_embed.proj.weight.shape == (192, 3, 1, 16, 16)
    assert model.temporal_pos_embedding.shape == (1, 4, 192)


def test_convert_cli_refuses_a_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"broken\.pth.*corrupt or truncated"):
        main(["convert", str(bad), str(tmp_path / "out"), "--model", "videomamba_tiny"])
    assert not (tmp_path / "out").exists()


def test_convert_cli_mismatched_model(tmp_path):
    small = tiny_image()
    pth = tmp_path / "tiny.pth"
    torch.save(small.state_dict(), pth)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        main(["convert", str(pth), str(tmp_path / "o"), "--model", "videomamba_image_small"])
