"""Encoders pretrained here, on the cohort's own text, when no pretrained weights are given.

Papers start from BioBERT or ClinicalBERT; no weights are downloaded here, so unless a local
folder is given a chapter trains a WordPiece vocabulary and a small BERT on its corpus by
masked-language modelling. The result is saved under a key of its settings and its corpus,
so a re-executed chapter (or another chapter with the same recipe) reuses it.

Image encoders are pretrained the same way on a labelled image release:
:func:`chestxray14_run` trains an image classifier on ChestX-ray14's 14 findings, as a keyed
run of a :class:`~mmcxr.runs.RunStore`, whose encoder a chapter then fine-tunes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmcxr import models
from mmcxr.atomic import write_text
from mmcxr.runs import RunResult, RunStore, canonical_json, fingerprint_table, run_key

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


#: The :class:`~mmcxr.runs.RunStore` name of :func:`chestxray14_run`'s run.
CHESTXRAY14_RUN = "pretrain-chestxray14"


def chestxray14_run(
    cxr: Any,
    cache: Any,
    store: RunStore,
    config: Mapping[str, Any],
    *,
    build: Callable[[int], Any],
    fit: Callable[..., Any],
    seed: int = 0,
) -> tuple[RunResult, str]:
    """An image classifier trained on ChestX-ray14's 14 labels, patients split 90/10: the run
    (reused when finished) and its key, with which ``store.load_model(CHESTXRAY14_RUN, key,
    build(14))`` gives back its weights.

    ``cxr``: a ChestX-ray14 image table (:func:`mmcxr.data.load_chestxray14`) whose images
    ``cache`` holds; ``config``: the settings the run depends on (its key, with the images);
    ``build(n_outputs)``: a fresh model (built under ``seed``); ``fit(model, train_ds, val_ds,
    checkpoint_dir)``: trains it and returns its :class:`mmcxr.train.History` (with
    ``val_auroc``).
    """
    import torch

    from mmcxr import data

    labels = list(data.CHESTXRAY14_LABELS)
    table = cxr.reset_index(drop=True)
    split = data.patient_split(table, (0.9, 0.1, 0.0), int(seed))
    y = table[labels].to_numpy(dtype="float32")

    def ds(mask):
        rows = table[mask]
        return data.MultimodalDataset(
            y[mask.to_numpy()], images=cache, image_keys=rows["image_id"].tolist()
        )

    fp = hashlib.sha256(
        f"{fingerprint_table(table, ['image_id', *labels])}:{cache.manifest.get('sha256')}".encode()
    ).hexdigest()

    def work(ckpt: Path) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = build(len(labels))
        history = fit(model, ds(split == "train"), ds(split == "val"), ckpt)
        last = history.table.iloc[-1]
        return {
            "metrics": {"val_auroc": float(last["val_auroc"]), "n_images": len(table)},
            "history": history,
            "model": model,
        }

    return store.get_or_run(CHESTXRAY14_RUN, config, fp, work), run_key(config, fp)
