"""BERT-family report encoders: local pretrained models, or a small BERT trained here.

Paper 001 uses BioBERT. Nothing is downloaded in this project, so two routes exist:

* a user who has BioBERT / ClinicalBERT on disk passes its folder to :func:`bert_from_pretrained`
  (``AutoModel`` + ``AutoTokenizer`` with ``local_files_only``; a hub id is refused);
* otherwise :func:`train_wordpiece` learns a WordPiece vocabulary from the cohort's reports,
  :func:`bert_from_scratch` builds a small ``BertConfig`` and :func:`train_mlm` optionally
  pretrains it with masked-language modelling on the same reports.

:class:`BertTextEncoder` reads ``input_ids``/``attention_mask`` from a batch dict and returns a
pooled vector ([CLS] or masked mean); the 256-d projection of paper 001 lives in the classifier.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    BertTokenizerFast,
    DataCollatorForLanguageModeling,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mmcxr.train import fit

__all__ = [
    "BertTextEncoder",
    "bert_from_pretrained",
    "bert_from_scratch",
    "load_text_model",
    "save_text_model",
    "small_bert_config",
    "tokenize",
    "train_mlm",
    "train_wordpiece",
]

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"{what}[{i}] is {t!r} ({type(t).__name__}), expected a string")
        out.append(t)
    if not out:
        raise ValueError(f"{what} is empty")
    return out


def train_wordpiece(
    texts: Sequence[str],
    vocab_size: int = 4000,
    min_frequency: int = 2,
    lowercase: bool = True,
) -> PreTrainedTokenizerBase:
    """Learn a BERT WordPiece vocabulary from ``texts`` (tokenizers' ``BertWordPieceTokenizer``).

    Returned wrapped as a transformers fast tokenizer so ``save_pretrained``/``AutoTokenizer``
    round-trip and ``DataCollatorForLanguageModeling`` can use it.

    Reproducibility: the tokenizers trainer gives continuation symbols (``##e``) ids in hash-map
    order, which is salted per process, and breaks ties between equally frequent merges by those
    ids — so the same corpus gave different vocabularies run to run. Registering every
    continuation symbol up front (sorted) fixes their ids and makes training deterministic; the
    vocabulary is then reloaded so they are ordinary (non-special) tokens again.
    """
    from tokenizers import BertWordPieceTokenizer

    texts = _check_texts(texts)
    wp = BertWordPieceTokenizer(lowercase=lowercase)
    backend = wp._tokenizer
    continuation: set[str] = set()
    for t in texts:
        normalized = backend.normalizer.normalize_str(t)
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized):
            continuation.update(word[1:])
    fixed = [f"##{c}" for c in sorted(continuation)]
    wp.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS + fixed,
        show_progress=False,
    )
    clean = BertWordPieceTokenizer(vocab=wp.get_vocab(), lowercase=lowercase)
    return BertTokenizerFast(tokenizer_object=clean._tokenizer, do_lower_case=lowercase)


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int = 128
) -> dict[str, torch.Tensor]:
    """Pad/truncate every text to ``max_length``: ``{"input_ids", "attention_mask"}`` (long),
    rows aligned with ``texts`` (what ``MultimodalDataset(text=...)`` takes)."""
    texts = _check_texts(texts)
    enc = tokenizer(
        texts,
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return {
        "input_ids": enc["input_ids"].long(),
        "attention_mask": enc["attention_mask"].long(),
    }


def small_bert_config(
    vocab_size: int,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int | None = None,
    max_position: int = 256,
    dropout: float = 0.1,
) -> BertConfig:
    """A BERT small enough to train on CPU (defaults: 2 layers, hidden 128, ~0.9M params + vocab)."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size or 4 * hidden_size,
        max_position_embeddings=max_position,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=0,
    )


class BertTextEncoder(nn.Module):
    """Batch dict -> pooled report vector ``(B, hidden)``.

    ``pooling="cls"`` takes the final [CLS] state (BERT's sentence token); ``"mean"`` averages
    non-padding tokens. BERT's own pooler is not used (and not built) so no parameter sits
    idle, which distributed training would otherwise reject.
    """

    input_keys = ("input_ids", "attention_mask")

    def __init__(self, bert: PreTrainedModel, pooling: str = "cls") -> None:
        super().__init__()
        if pooling not in {"cls", "mean"}:
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.bert = bert
        self.pooling = pooling
        self.out_dim = int(bert.config.hidden_size)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(ids)
        hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def bert_from_scratch(
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int = 0,
    pooling: str = "cls",
    **config_kwargs,
) -> BertTextEncoder:
    """Randomly initialised small BERT (see :func:`small_bert_config`) sized to ``tokenizer``."""
    config = small_bert_config(len(tokenizer), **config_kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bert = BertModel(config, add_pooling_layer=False)
    return BertTextEncoder(bert, pooling=pooling)


def _local_dir(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(
            f"{what}: {str(path)!r} is not a local directory. Models are never downloaded here; "
            "pass the folder holding config.json and the weights (e.g. a BioBERT download)."
        )
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{what}: {p} has no config.json (not a save_pretrained folder)")
    return p


def bert_from_pretrained(
    path: str | os.PathLike, pooling: str = "cls"
) -> tuple[BertTextEncoder, PreTrainedTokenizerBase]:
    """Load a local BERT-family model and its tokenizer from a directory (never the hub)."""
    p = _local_dir(path, "bert_from_pretrained")
    try:
        bert = AutoModel.from_pretrained(p, local_files_only=True, add_pooling_layer=False)
    except TypeError:  # a non-BERT architecture without a pooler switch
        bert = AutoModel.from_pretrained(p, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(p, local_files_only=True)
    return BertTextEncoder(bert, pooling=pooling), tokenizer


def save_text_model(
    directory: str | os.PathLike,
    encoder: BertTextEncoder,
    tokenizer: PreTrainedTokenizerBase,
) -> Path:
    """``save_pretrained`` model + tokenizer into one folder, atomically (temp dir + rename)."""
    import shutil
    import tempfile

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        encoder.bert.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "mmcxr_pooling.txt").write_text(encoder.pooling)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_text_model(
    directory: str | os.PathLike,
) -> tuple[BertTextEncoder, PreTrainedTokenizerBase]:
    """Inverse of :func:`save_text_model` (also reads any local BERT folder)."""
    p = _local_dir(directory, "load_text_model")
    pooling_file = p / "mmcxr_pooling.txt"
    pooling = pooling_file.read_text().strip() if pooling_file.is_file() else "cls"
    return bert_from_pretrained(p, pooling=pooling)


def train_mlm(
    encoder: BertTextEncoder,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 5e-4,
    max_length: int = 128,
    mlm_probability: float = 0.15,
    weight_decay: float = 0.01,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> tuple[BertTextEncoder, list[float]]:
    """Masked-language-model pretraining of ``encoder.bert`` on ``texts``; returns the same
    encoder (weights updated in place, back on CPU) and the mean loss per epoch.

    A ``BertForMaskedLM`` with ``encoder``'s config is built, its ``bert`` body replaced by the
    encoder's, and trained by :func:`mmcxr.train.fit` -- the loop every classifier uses, so MLM
    gets the same device handling and seeding -- with ``DataCollatorForLanguageModeling``
    (seeded masking) as the batch builder, AdamW without decay on biases and LayerNorm weights,
    no validation set, and fp32. Short runs by design (minutes on CPU); cache the result with
    :func:`save_text_model` in the run's folder rather than checkpointing mid-way.

    The caller's random streams (Python, NumPy, torch) and torch's deterministic-algorithms
    setting are as they were afterwards: ``fit`` seeds and sets them globally, a chapter may
    pretrain in the middle of its own seeded sequence.
    """
    from mmcxr.env import resolve_device

    if not isinstance(encoder.bert, BertModel):
        raise TypeError(f"train_mlm needs a BertModel body, got {type(encoder.bert).__name__}")
    texts = _check_texts(texts)
    resolve_device(device)  # a bad device fails before the model is built
    with _caller_rng_kept():
        torch.manual_seed(seed)  # the MLM head's initialisation
        mlm = _MaskedLM(encoder.bert)
        enc = tokenizer(texts, truncation=True, max_length=max_length)
        features = [{"input_ids": ids} for ids in enc["input_ids"]]
        collator = DataCollatorForLanguageModeling(
            tokenizer, mlm=True, mlm_probability=mlm_probability, seed=seed
        )
        history = fit(
            mlm,
            features,
            None,
            loss=_masked_lm_loss,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer="adamw",
            weight_decay=weight_decay,
            no_decay=("bias", "LayerNorm.weight"),
            patience=None,
            restore_best=False,
            seed=seed,
            device=device,
            mixed_precision=False,
            collate_fn=functools.partial(_mlm_batch, collator),
            progress=progress,
        )
    encoder.bert = mlm.mlm.bert.cpu()
    encoder.eval()
    return encoder, [float(x) for x in history.table["train_loss"]]


class _MaskedLM(nn.Module):
    """``BertForMaskedLM`` around an existing body, in :func:`~mmcxr.train.fit`'s contract:
    batch dict in, per-token vocabulary logits out (the loss is :func:`_masked_lm_loss`)."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.mlm = BertForMaskedLM(bert.config)
        self.mlm.bert = bert
        self.mlm.tie_weights()  # the output layer is the body's word embeddings

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "label"}
        return self.mlm(**inputs).logits


def _mlm_batch(
    collator: DataCollatorForLanguageModeling, features: list[dict[str, list[int]]]
) -> dict[str, torch.Tensor]:
    """Pad and mask ``features``; the targets go under ``"label"``, where ``fit`` reads them."""
    batch = collator(features)
    batch["label"] = batch.pop("labels")
    return batch


def _masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the masked tokens (``labels != -100``), as ``BertForMaskedLM``
    computes it; 0 rather than NaN for a batch in which nothing happened to be masked (a
    single short report often is), which ``fit`` would stop on as a diverged loss."""
    target = labels.long().flatten()
    total = nn.functional.cross_entropy(
        logits.flatten(0, -2), target, ignore_index=-100, reduction="sum"
    )
    return total / (target != -100).sum().clamp(min=1)


@contextlib.contextmanager
def _caller_rng_kept() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's (CPU and CUDA) global random state and torch's
    determinism switches (``use_deterministic_algorithms``, cuDNN's) on exit."""
    py_state = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - saving the global stream for the caller
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
