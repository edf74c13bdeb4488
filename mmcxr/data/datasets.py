"""The torch Dataset every chapter trains on: cached images, tokenised text, labels.

Items are dicts so that one dataset feeds image-only, text-only and fusion models alike (a
model reads the keys it needs). :meth:`MultimodalDataset.shuffled` builds the bimodal
sensitivity test of Chao & Li: one modality is permuted across items while the labels and the
other modality stay, so a model that truly uses that modality loses accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import NormalizeIntensity
from torch.utils.data import Dataset

from mmcxr.data.cache import ImageCache

__all__ = ["IMAGE_MEAN", "IMAGE_STD", "MultimodalDataset"]

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
