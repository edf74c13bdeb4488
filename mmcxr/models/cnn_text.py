"""Paper 002's text branch: a Kim (2014)-style 1-D CNN over Word2Vec-initialised embeddings.

Reports are lower-cased and split into words with gensim's ``simple_preprocess`` (the same
tokeniser feeds Word2Vec and the classifier, so every vocabulary word can receive its vector),
cut or padded to a fixed length (140 words in the paper), mapped to ids by :class:`WordVocab`
and fed to :class:`KimCNN` (kernels 3/4/5, max-over-time pooling, trainable embedding).
The embeddings: Word2Vec on the reports (:func:`train_word2vec`), or a general-English one
(:func:`general_vectors`: a local GloVe file, else Word2Vec on gensim's :func:`lee_corpus`).
"""

from __future__ import annotations

import json
import os
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from gensim.models import KeyedVectors, Word2Vec
from gensim.utils import simple_preprocess
from torch import nn

from mmcxr import atomic

__all__ = [
    "LEE_CORPUS",
    "KimCNN",
    "WordVocab",
    "embedding_matrix",
    "general_vectors",
    "lee_corpus",
    "load_glove",
    "load_word_vectors",
    "train_word2vec",
    "words",
]

PAD, UNK = "<pad>", "<unk>"
#: The word2vec-format corpus gensim ships with its tests: the Lee background corpus, 300
#: news articles of the Australian Broadcasting Corporation (gensim's Word2Vec tutorial data).
LEE_CORPUS = "lee_background.cor"


def words(text: str) -> list[str]:
    """Lower-cased word tokens (gensim ``simple_preprocess``; 1- to 30-letter words)."""
    if not isinstance(text, str):
        raise ValueError(f"expected a report string, got {text!r} ({type(text).__name__})")
    return simple_preprocess(text, min_len=1, max_len=30)


def _texts_to_words(texts: Sequence[str]) -> list[list[str]]:
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] is {t!r} ({type(t).__name__}), expected a string")
        out.append(words(t))
    return out


class WordVocab:
    """Word -> id table with ``<pad>`` = 0 and ``<unk>`` = 1; ids ordered by frequency then word
    (so the same corpus always gives the same ids)."""

    def __init__(self, itos: Sequence[str]) -> None:
        if list(itos[:2]) != [PAD, UNK]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {UNK!r}; got {list(itos[:2])}")
        if len(set(itos)) != len(itos):
            raise ValueError("vocabulary has duplicate words")
        self.itos = list(itos)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(
        cls, texts: Sequence[str], min_count: int = 1, max_size: int | None = None
    ) -> WordVocab:
        counts = Counter(w for ws in _texts_to_words(texts) for w in ws)
        ranked = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls([PAD, UNK, *ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, texts: Sequence[str], length: int = 140) -> torch.Tensor:
        """``(N, length)`` long ids: first ``length`` words, right-padded with ``<pad>``."""
        out = np.zeros((len(texts), length), dtype=np.int64)
        for i, ws in enumerate(_texts_to_words(texts)):
            ids = [self.stoi.get(w, 1) for w in ws[:length]]
            out[i, : len(ids)] = ids
        return torch.from_numpy(out)

    def tokenize(self, texts: Sequence[str], length: int = 140) -> dict[str, torch.Tensor]:
        """``{"token_ids": (N, length)}``, the text dict ``MultimodalDataset(text=...)`` takes."""
        return {"token_ids": self.encode(texts, length)}

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Words for ids, padding dropped (for per-word explanations)."""
        return [self.itos[int(i)] for i in ids if int(i) != 0]

    def save(self, path: str | os.PathLike) -> None:
        atomic.write_text(path, json.dumps({"itos": self.itos}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordVocab:
        try:
            return cls(json.loads(Path(path).read_text())["itos"])
        except (OSError, KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a WordVocab file ({e})") from e


def _stable_hash(s: str) -> int:
    """gensim seeds some vectors with ``hash(word)``, which Python salts per process; crc32 is
    the same in every process, keeping Word2Vec reproducible without PYTHONHASHSEED."""
    return zlib.crc32(s.encode("utf-8"))


def train_word2vec(
    texts: Sequence[str],
    dim: int = 300,
    seed: int = 0,
    *,
    window: int = 5,
    min_count: int = 1,
    epochs: int = 10,
    sg: int = 1,
) -> KeyedVectors:
    """Word2Vec on the report corpus (paper 002's "custom embedding"). Deterministic: one worker,
    fixed seed, process-independent hashing. Skip-gram by default (better on small corpora)."""
    sentences = _texts_to_words(texts)
    model = Word2Vec(
        sentences=sentences,
        vector_size=dim,
        window=window,
        min_count=min_count,
        sg=sg,
        epochs=epochs,
        seed=seed,
        workers=1,
        hashfxn=_stable_hash,
    )
    return model.wv


def load_word_vectors(path: str | os.PathLike, binary: bool | None = None) -> KeyedVectors:
    """Read a local vectors file in word2vec format (text, or binary for ``.bin``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word vectors not found: {path}")
    if binary is None:
        binary = path.suffix == ".bin"
    try:
        return KeyedVectors.load_word2vec_format(str(path), binary=binary)
    except Exception as e:
        raise ValueError(f"{path}: not a word2vec-format vectors file ({e})") from e


def embedding_matrix(
    vocab: WordVocab, vectors: KeyedVectors, seed: int = 0, scale: float | None = None
) -> tuple[torch.Tensor, float]:
    """``(len(vocab), dim)`` float32 initial embedding and the fraction of words covered.

    Covered words get their vector; uncovered ones ``N(0, scale)`` with ``scale`` = std of the
    known vectors (so they are neither dominant nor dead); ``<pad>`` is zero.
    """
    dim = vectors.vector_size
    rng = np.random.default_rng(seed)
    known = [w for w in vocab.itos[2:] if w in vectors.key_to_index]
    if scale is None:
        scale = float(np.std(vectors.vectors)) if len(vectors) else 0.1
    mat = rng.normal(0.0, scale, size=(len(vocab), dim)).astype(np.float32)
    mat[0] = 0.0
    for w in known:
        mat[vocab.stoi[w]] = vectors[w]
    coverage = len(known) / max(1, len(vocab) - 2)
    return torch.from_numpy(mat), coverage


class KimCNN(nn.Module):
    """Embedding -> parallel Conv1d (kernels 3/4/5) + ReLU -> max over time -> concat -> dropout.

    Reads ``batch["token_ids"]`` and returns ``(B, n_filters * len(kernel_sizes))`` features
    (the head is added by :func:`mmcxr.models.fusion.build_classifier`). ``embedding_weights``
    initialises the embedding (trainable unless ``freeze_embedding``), as in paper 002.
    """

    input_keys = ("token_ids",)

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 300,
        *,
        kernel_sizes: Sequence[int] = (3, 4, 5),
        n_filters: int = 100,
        dropout: float = 0.5,
        embedding_weights: torch.Tensor | None = None,
        freeze_embedding: bool = False,
    ) -> None:
        super().__init__()
        if embedding_weights is not None:
            if tuple(embedding_weights.shape) != (vocab_size, embed_dim):
                raise ValueError(
                    f"embedding_weights shape {tuple(embedding_weights.shape)} != "
                    f"(vocab_size, embed_dim) = {(vocab_size, embed_dim)}"
                )
            self.embedding = nn.Embedding.from_pretrained(
                embedding_weights.float().clone(), freeze=freeze_embedding, padding_idx=0
            )
        else:
            self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, n_filters, k) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.kernel_sizes = tuple(kernel_sizes)
        self.out_dim = n_filters * len(self.kernel_sizes)

    def forward_embedded(self, emb: torch.Tensor) -> torch.Tensor:
        """Features from already-embedded tokens ``(B, L, D)`` (gradient-based word attributions)."""
        if emb.shape[1] < max(self.kernel_sizes):
            raise ValueError(
                f"sequence length {emb.shape[1]} is shorter than the widest kernel "
                f"{max(self.kernel_sizes)}; pad token_ids to a fixed length"
            )
        x = emb.transpose(1, 2)
        pooled = [torch.relu(conv(x)).amax(dim=2) for conv in self.convs]
        return self.dropout(torch.cat(pooled, dim=1))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.forward_embedded(self.embedding(batch["token_ids"]))


def load_glove(path: str | os.PathLike) -> KeyedVectors:
    """Read a local GloVe file (``word v1 v2 ...`` per line, no header) or any word2vec-format
    file: GloVe's own text files lack the ``<count> <dim>`` first line that word2vec has, so
    the header is looked for rather than assumed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word vectors not found: {path}")
    if path.suffix == ".bin":
        return load_word_vectors(path, binary=True)
    with path.open(encoding="utf-8", errors="replace") as f:
        first = f.readline().split()
    has_header = len(first) == 2 and all(t.isdigit() for t in first)
    try:
        return KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=not has_header)
    except Exception as e:
        raise ValueError(f"{path}: not a GloVe or word2vec-format vectors file ({e})") from e


def lee_corpus() -> list[str]:
    """A general-English corpus available offline: gensim's Lee background corpus
    (:data:`LEE_CORPUS`, one news article per line), shipped with gensim."""
    from gensim.test.utils import datapath

    return Path(datapath(LEE_CORPUS)).read_text(encoding="latin-1").splitlines()


def general_vectors(
    path: str | os.PathLike | None = None, *, dim: int = 300, seed: int = 0, epochs: int = 10
) -> KeyedVectors:
    """A generic (not clinical) embedding: GloVe or any word2vec-format file at ``path`` when
    given (:func:`load_glove`), else :func:`train_word2vec` with these settings on
    :func:`lee_corpus`, so that it differs from a report-trained one only in its corpus."""
    if path:
        return load_glove(path)
    return train_word2vec(lee_corpus(), dim=dim, seed=seed, epochs=epochs)
