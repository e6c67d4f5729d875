"""Pieces of the retrieval demonstration (``videomamba.apps.retrieval_demo``) on a tiny set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videomamba.apps.retrieval_demo import frames_in_memory, make_direction_pairs, opposite_caption


@pytest.fixture(scope="module")
def captions_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from videomamba.data.synthetic import SynthConfig, generate

    out = tmp_path_factory.mktemp("captions")
    generate(SynthConfig(kind="captions", out=str(out), num=4, frames=8, size=32, segments=2))
    return out


def dataset(root: Path, annotation: str, mode: str, frames: int = 4):
    from videomamba.data import build_dataset

    return build_dataset({"annotation": str(root / annotation), "prefix": str(root),
                          "num_frames": frames, "crop_size": 32, "crop": "random_resized",
                          "scale": [0.5, 1.0], "flip": False, "rand_augment": None}, mode=mode)


@pytest.mark.parametrize("mode", ["train", "val"])
def test_frames_in_memory_gives_the_samples_of_decoding(captions_set: Path, mode: str) -> None:
    plain = dataset(captions_set, "train.json", mode)
    cached = frames_in_memory(dataset(captions_set, "train.json", mode))
    for index in range(len(plain)):
        torch.manual_seed(index)  # the sample's frame offsets and crop come from torch's RNG
        expected = plain[index]
        torch.manual_seed(index)
        got = cached[index]
        assert torch.equal(got["video"], expected["video"])
        assert got["caption"] == expected["caption"] and got["index"] == index
    assert len(cached.decoded) == len(plain)  # each video decoded once, then reused
    torch.manual_seed(0)
    first = cached[0]["video"]
    torch.manual_seed(1)
    if mode == "train":  # augmentation still draws a new crop / frame offsets at every call
        assert not torch.equal(cached[0]["video"], first)


def test_direction_pairs_reverse_the_clip_and_the_motion_phrase(captions_set: Path) -> None:
    assert opposite_caption("a red square moves to the left", 1) == \
        "a red square moves to the right"
    assert opposite_caption("the blue cross grows larger", 4) == "the blue cross shrinks"
    pairs = dataset(captions_set, make_direction_pairs(captions_set).name, "val", frames=8)
    assert len(pairs) == 2 * len(dataset(captions_set, "test.json", "val"))
    forward, backward = pairs[0], pairs[1]
    assert opposite_caption(forward["caption"], pairs.records[0].label) == backward["caption"]
    # the second clip is the first played backwards (re-encoded: close, not equal): frame t of
    # one is nearest to frame T-1-t of the other, or to a neighbour of it (slow motions)
    a, b = forward["video"].transpose(0, 1).flatten(1), backward["video"].transpose(0, 1).flatten(1)
    nearest = torch.cdist(a, b).argmin(dim=1)
    mirrored = torch.arange(len(a) - 1, -1, -1)
    assert (nearest - mirrored).abs().max() <= 1 and nearest[0] == len(a) - 1


@pytest.mark.parametrize("blind", [True, False])
def test_reversal_pairs_report(captions_set: Path, tmp_path: Path, blind: bool) -> None:
    pytest.importorskip("transformers")
    from search_fixtures import write_vocab

    from videomamba.apps.retrieval_demo import reversal_pairs
    from videomamba.models.video_text import VideoTextConfig, VideoTextModel

    torch.manual_seed(0)
    model = VideoTextModel(VideoTextConfig(
        vision_kwargs={"num_frames": 4, "img_size": 32, "patch_size": 16, "depth": 1,
                       "embed_dim": 16, "scan_backend": "torch"},
        text_config={"vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "intermediate_size": 32,
                     "max_position_embeddings": 64},
        tokenizer=str(write_vocab(tmp_path / "vocab.txt")), text_pool="mean", embed_dim=8,
        fusion_layers=1, frame_order_blind=blind))
    test_set = dataset(captions_set, "train.json", "val")  # 4 clips: motion pairs 0, 0, 1, 1
    report = reversal_pairs(model, test_set)
    assert report["num_videos"] == 8 and report["num_texts"] == 8
    assert set(report["within_pair_by_motion"]) == {"move_right/move_left", "move_down/move_up"}
    if blind:  # a clip and its reversal get the same vector: every pair is a tie, i.e. chance
        assert report["within_pair_t2v_r1"] == 50.0
        assert set(report["within_pair_by_motion"].values()) == {50.0}
    else:  # both motion pairs have 2 clips: the overall number is the mean of the two
        by_motion = list(report["within_pair_by_motion"].values())
        assert report["within_pair_t2v_r1"] == pytest.approx(sum(by_motion) / 2)


def test_make_data_regenerates_when_the_generator_changes(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import videomamba.data.synthetic as synthetic
    from videomamba.apps.retrieval_demo import make_data

    data = tmp_path / "data"
    make_data(data, 2)
    pairs = make_direction_pairs(data)
    written = (data / "meta.json").stat().st_mtime_ns
    make_data(data, 2)  # same size and generator: kept as is
    assert (data / "meta.json").stat().st_mtime_ns == written and pairs.is_file()
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    make_data(data, 2)
    assert json.loads((data / "meta.json").read_text())["version"] == synthetic.GENERATOR_VERSION
    assert not pairs.exists() and not (data / "videos" / "test_reversed").exists()
