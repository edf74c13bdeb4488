"""A cohort of image-report pairs ready for training: its cached images and its reports' word ids.

A chapter whose models read a frontal film and its report (paper 002's, say) keeps one
:class:`PairedData` per cohort and asks it for the dataset of any rows and modalities: the
image model reads the cached pixels, the text model the word ids, a multimodal model both.
The vocabulary comes from the training rows only, so no test report adds a word.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmcxr.data.datasets import MultimodalDataset

__all__ = ["PairedData"]


@dataclass
class PairedData:
    """Everything a run reads: the cohort's cached images, its token ids and their vocabulary.

    ``cohort``: anything with a ``table`` holding ``image_id``, ``label``, ``text`` and
    ``split`` columns (row ``i`` of ``tokens`` is row ``i`` of the table); ``cache``: an
    :class:`~mmcxr.data.ImageCache` of the table's images; ``vocab``: a
    :class:`~mmcxr.models.WordVocab`; ``fingerprint``: what the runs are keyed by.
    """

    cohort: Any
    cache: Any
    vocab: Any
    tokens: torch.Tensor
    fingerprint: str

    @classmethod
    def build(cls, cohort: Any, cache: Any, *, max_words: int, fingerprint: str) -> PairedData:
        """Token ids of every report, ``max_words`` long (vocabulary from the training
        reports, the rest ``<unk>``); the runs' fingerprint is ``fingerprint`` (the cohort's
        and the cache's) with ``max_words``."""
        from mmcxr.models.cnn_text import WordVocab

        table = cohort.table
        vocab = WordVocab.build(table.loc[table["split"] == "train", "text"].tolist())
        tokens = vocab.encode(table["text"].tolist(), length=int(max_words))
        fp = hashlib.sha256(f"{fingerprint}:{max_words}".encode()).hexdigest()
        return cls(cohort, cache, vocab, tokens, fp)

    def dataset(
        self,
        index: Sequence[int] | np.ndarray,
        modalities: Sequence[str] = ("image", "text"),
    ) -> MultimodalDataset:
        """The rows at ``index`` with the modalities a model reads: ``"image"``, ``"text"``,
        or ``"multimodal"`` (both)."""
        rows = self.cohort.table.iloc[np.asarray(index, dtype=int)]
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        want_image = "image" in modalities or "multimodal" in modalities
        want_text = "text" in modalities or "multimodal" in modalities
        return MultimodalDataset(
            rows["label"].to_numpy(dtype="float32"),
            images=self.cache if want_image else None,
            image_keys=rows["image_id"].tolist() if want_image else None,
            text={"token_ids": self.tokens[idx]} if want_text else None,
        )

    def split(self, split: str, modalities: Sequence[str] = ("image", "text")) -> MultimodalDataset:
        """The rows of one split (``"train"``, ``"val"``, ``"test"``)."""
        return self.dataset(np.flatnonzero(self.cohort.table["split"] == split), modalities)
