"""Encoders pretrained here, on the cohort's own text, when no pretrained weights are given.

Papers start from BioBERT or ClinicalBERT; no weights are downloaded here, so unless a local
folder is given a chapter trains a WordPiece vocabulary and a small BERT on its corpus by
masked-language modelling. The result is saved under a key of its settings and its corpus,
so a re-executed chapter (or another chapter with the same recipe) reuses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmcxr import models
from mmcxr.atomic import write_text
from mmcxr.runs import canonical_json, run_key

#: Reports per masked-language-model batch (fixed, so the encoder does not depend on the
#: classifiers' batch size).
MLM_BATCH_SIZE = 32
#: The settings of a small BERT pretrained here (keys of ``settings`` below).
BERT_SETTINGS = (
    "vocab_size",
    "bert_hidden",
    "bert_layers",
    "bert_heads",
    "max_length",
    "mlm_epochs",
    "mlm_lr",
    "seed",
)


def text_encoder_dir(
    corpus: Sequence[str],
    settings: Mapping[str, Any],
    out_dir: str | Path,
    *,
    bert_path: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> tuple[Path, list[float]]:
    """The folder of the BERT a chapter's text models start from, and its MLM loss curve.

    ``bert_path`` given: that local folder (e.g. BioBERT), loss curve empty. Otherwise a
    WordPiece vocabulary and a small BERT (``settings``: every key of :data:`BERT_SETTINGS`)
    are trained on ``corpus`` and saved under ``out_dir/text-encoder/<key>``; the loss file
    is written last, so its presence marks a complete folder.
    """
    if bert_path is not None:
        path = Path(bert_path).expanduser()
        models.load_text_model(path)  # fails here, naming the folder, if it is not a model
        return path, []
    missing = [k for k in BERT_SETTINGS if k not in settings]
    if missing:
        raise KeyError(f"text_encoder_dir: settings {missing} are not given")
    s = {k: settings[k] for k in BERT_SETTINGS}
    corpus_digest = hashlib.sha256(canonical_json(list(corpus)).encode()).hexdigest()
    d = Path(out_dir) / "text-encoder" / run_key(s, corpus_digest)[:16]
    losses_file = d / "mlm_losses.json"
    if (d / "config.json").is_file() and losses_file.is_file():
        return d, json.loads(losses_file.read_text())
    tokenizer = models.train_wordpiece(corpus, vocab_size=int(s["vocab_size"]))
    encoder = models.bert_from_scratch(
        tokenizer,
        seed=int(s["seed"]),
        hidden_size=int(s["bert_hidden"]),
        num_layers=int(s["bert_layers"]),
        num_heads=int(s["bert_heads"]),
        max_position=max(int(s["max_length"]), 32),
    )
    encoder, losses = models.train_mlm(
        encoder,
        tokenizer,
        corpus,
        epochs=int(s["mlm_epochs"]),
        batch_size=MLM_BATCH_SIZE,
        lr=float(s["mlm_lr"]),
        max_length=int(s["max_length"]),
        seed=int(s["seed"]),
        device=device,
        progress=progress,
    )
    models.save_text_model(d, encoder, tokenizer)
    write_text(losses_file, json.dumps(losses))
    return d, losses
