"""The torch Dataset every chapter trains on: cached images, tokenised text, labels.

Items are dicts so that one dataset feeds image-only, text-only and fusion models alike (a
model reads the keys it needs). :meth:`MultimodalDataset.shuffled` builds the bimodal
sensitivity test of Chao & Li: one modality is permuted across items while the labels and the
other modality stay, so a model that truly uses that modality loses accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.data import MetaTensor
from monai.transforms import NormalizeIntensity
from torch.utils.data import Dataset

from mmcxr.data.cache import ImageCache

__all__ = ["IMAGE_MEAN", "IMAGE_STD", "InMemoryViews", "MultimodalDataset", "to_display"]

IMAGE_MEAN = 0.5
IMAGE_STD = 0.25


def _plain(x: Any) -> torch.Tensor:
    """MONAI transforms return MetaTensors; items stay plain float32 tensors."""
    if isinstance(x, MetaTensor):
        x = x.as_tensor()
    return torch.as_tensor(x, dtype=torch.float32)


class MultimodalDataset(Dataset):
    """Aligned labels, images (from an :class:`ImageCache`) and text tensors.

    ``labels``: ``(N,)`` for a binary task (item ``"label"`` has shape ``()``) or ``(N, C)``
    for multi-label. ``images`` + ``image_keys`` (``N`` cache keys) give ``"image"``: float32
    ``(1, size, size)``, scaled to [0, 1], passed through ``transform`` (e.g. a MONAI
    ``RandAffine`` for training; it sees the [0, 1] image, so padding stays black), then
    normalised with mean 0.5 and std 0.25. ``text`` maps names (``input_ids``,
    ``attention_mask``, ``token_ids`` ...) to tensors whose first dimension is ``N``.
    Random transforms draw from their own generator: seed them with
    ``transform.set_random_state(seed)`` for a reproducible epoch.
    """

    def __init__(
        self,
        labels: np.ndarray | Sequence[float] | torch.Tensor,
        images: ImageCache | None = None,
        image_keys: Sequence[str] | None = None,
        text: dict[str, torch.Tensor] | None = None,
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        y = torch.as_tensor(np.asarray(labels, dtype=np.float32))
        if y.ndim not in (1, 2):
            raise ValueError(f"labels must be (N,) or (N, C), got shape {tuple(y.shape)}")
        self.labels = y
        n = len(y)
        if (images is None) != (image_keys is None):
            raise ValueError("images and image_keys go together (both or neither)")
        self.images = images
        self.image_keys = None if image_keys is None else [str(k) for k in image_keys]
        self._rows = None
        if images is not None:
            if len(self.image_keys) != n:
                raise ValueError(f"{len(self.image_keys)} image keys for {n} labels")
            self._rows = images.rows(self.image_keys)
        self.text = {}
        for name, t in (text or {}).items():
            t = torch.as_tensor(t)
            if len(t) != n:
                raise ValueError(f"text[{name!r}] has {len(t)} rows for {n} labels")
            if name in ("image", "label"):
                raise ValueError(f"text key {name!r} clashes with the item's own keys")
            self.text[name] = t
        if images is None and not self.text:
            raise ValueError("a MultimodalDataset needs images, text or both")
        self.transform = transform
        self._normalize = NormalizeIntensity(subtrahend=IMAGE_MEAN, divisor=IMAGE_STD)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(
            m for m, on in (("image", self.images is not None), ("text", bool(self.text))) if on
        )

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item: dict[str, torch.Tensor] = {}
        if self.images is not None:
            pixels = self.images.get_rows([self._rows[i]])[0]
            scaled = pixels.astype(np.float32) / 255.0
            if self.transform is None:
                # NormalizeIntensity's float32 arithmetic, in NumPy: the same numbers, without
                # MetaTensor dispatch and torch's intra-op threads, which on a busy CPU cost a
                # small image ten times the arithmetic (the loader share, bench/pipeline.py)
                item["image"] = torch.from_numpy((scaled - IMAGE_MEAN) / IMAGE_STD).unsqueeze(0)
            else:
                img = _plain(self.transform(torch.from_numpy(scaled).unsqueeze(0)))
                item["image"] = _plain(self._normalize(img))
        for name, t in self.text.items():
            item[name] = t[i]
        item["label"] = self.labels[i]
        return item

    def shuffled(self, modality: str, seed: int = 0) -> MultimodalDataset:
        """A copy with ``modality`` ("image" or "text") permuted across items; labels stay."""
        if modality not in self.modalities:
            raise ValueError(f"cannot shuffle {modality!r}: this dataset has {self.modalities}")
        perm = np.random.default_rng(seed).permutation(len(self))
        keys = self.image_keys
        text = self.text
        if modality == "image":
            keys = [self.image_keys[j] for j in perm]
        else:
            idx = torch.as_tensor(perm)
            text = {k: v[idx] for k, v in self.text.items()}
        return MultimodalDataset(self.labels, self.images, keys, text or None, self.transform)

    def subset(self, indices: Sequence[int] | np.ndarray) -> MultimodalDataset:
        """The items at ``indices`` as a new dataset (same cache, same transform)."""
        idx = np.asarray(indices, dtype=np.int64)
        keys = None if self.image_keys is None else [self.image_keys[j] for j in idx]
        text = {k: v[torch.as_tensor(idx)] for k, v in self.text.items()}
        return MultimodalDataset(
            self.labels[torch.as_tensor(idx)], self.images, keys, text or None, self.transform
        )


def to_display(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images of the datasets' normalised intensity back to 0..1, ``(N, H, W)``: for display
    and for measures taken on what a reader sees (sharpness)."""
    x = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return np.clip(x * IMAGE_STD + IMAGE_MEAN, 0.0, 1.0).reshape(len(x), *x.shape[-2:])


class InMemoryViews(Dataset):
    """Items ``{<view>..., "token_ids", "label"}``: several films per item (one per view),
    the report's word ids and a binary label, with every film held in memory.

    ``views`` maps each view's item key to the column of ``rows`` holding its cache key
    (e.g. ``{"frontal": "frontal_id", "lateral": "lateral_id"}``). The films of a few
    thousand studies at training size fit in memory, so they are read from the image cache
    once (uint8) and normalised per item exactly as :class:`MultimodalDataset` does (mean
    0.5, std 0.25): a per-item read of the cache would cost more than a step of a small
    network.
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        cache: ImageCache,
        token_ids: torch.Tensor,
        *,
        views: Mapping[str, str],
        label_col: str = "label",
    ) -> None:
        self.labels = rows[label_col].to_numpy(dtype="float32")
        self.keys = {v: rows[col].tolist() for v, col in views.items()}
        self.pixels = {v: torch.from_numpy(cache.get(k)) for v, k in self.keys.items()}
        self.token_ids = torch.as_tensor(token_ids, dtype=torch.long)
        if len(self.token_ids) != len(self.labels):
            raise ValueError(f"{len(self.token_ids)} token rows for {len(self.labels)} studies")

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, view: str, i) -> torch.Tensor:
        """Films of ``view`` at index ``i`` (an int or an index array), normalised."""
        x = self.pixels[view][i].float() / 255.0
        return ((x - IMAGE_MEAN) / IMAGE_STD).unsqueeze(-3)

    def display_images(self, view: str) -> np.ndarray:
        """Every film of ``view`` in display intensity (0..1), ``(N, S, S)``."""
        return self.pixels[view].numpy().astype(np.float64) / 255.0

    def _item(self, i) -> dict[str, torch.Tensor]:
        return {v: self.image(v, i) for v in self.pixels} | {"token_ids": self.token_ids[i]}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self._item(i) | {"label": torch.tensor(self.labels[i])}

    def subset(self, indices: Sequence[int]) -> InMemoryViews:
        """The items at ``indices``, as a dataset of their own."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        out = object.__new__(type(self))
        out.labels = self.labels[idx.numpy()]
        out.keys = {v: [k[i] for i in idx.tolist()] for v, k in self.keys.items()}
        out.pixels = {v: x[idx] for v, x in self.pixels.items()}
        out.token_ids = self.token_ids[idx]
        return out

    def batches(self, size: int = 256) -> Iterator[dict[str, torch.Tensor]]:
        """The whole set in order, as batches (evaluation reads it this way, fast)."""
        for start in range(0, len(self), size):
            idx = torch.arange(start, min(start + size, len(self)))
            yield self._item(idx) | {"label": torch.as_tensor(self.labels[idx.numpy()])}
