"""Models: image encoders (MONAI), report encoders (BERT, Kim CNN), fusion classifiers, losses.

Every classifier's ``forward(batch)`` takes the dict items of ``mmcxr.data.MultimodalDataset``
and returns logits, reading only the keys it needs.

Names are resolved lazily (``mmcxr.models.image_encoder`` imports only the image module), so
a process that needs only a tokenizer does not pay for MONAI and gensim, nor the reverse.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "cnn_text": (
        "KimCNN",
        "WordVocab",
        "embedding_matrix",
        "general_vectors",
        "lee_corpus",
        "load_glove",
        "load_word_vectors",
        "train_word2vec",
        "words",
    ),
    "fusion": ("Classifier", "build_classifier"),
    "image": (
        "IMAGE_ENCODERS",
        "DenseNetEncoder",
        "ImageEncoder",
        "LoadReport",
        "ResNetEncoder",
        "StateDictMismatchError",
        "freeze",
        "frozen_parameters",
        "image_encoder",
        "load_pretrained",
        "prepared_image_encoder",
        "torchvision_densenet_key",
    ),
    "losses": ("ChannelFirstFocalLoss", "make_loss"),
    "summary": ("model_summary",),
    "text": (
        "BertTextEncoder",
        "bert_from_pretrained",
        "bert_from_scratch",
        "load_text_model",
        "save_text_model",
        "small_bert_config",
        "tokenize",
        "train_mlm",
        "train_wordpiece",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"mmcxr.models.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmcxr.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
