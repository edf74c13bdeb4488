"""Training losses for binary and multi-label logits: BCE and MONAI's sigmoid focal loss.

Alpha convention (checked against MONAI 1.6's ``sigmoid_focal_loss`` and asserted in the tests):
with ``use_softmax=False`` a scalar ``alpha`` multiplies the loss of **positive** targets by
``alpha`` and of negatives by ``1 - alpha``. Paper 001's alpha=0.85 (full data) and 0.95
(75/25 subsample) therefore up-weight the rare pneumonia class, as intended. ``alpha=None``
weights both classes by 1, and with ``gamma=0`` the focal loss is then exactly BCE.
"""

from __future__ import annotations

import torch
from monai.losses import FocalLoss
from torch import nn

__all__ = ["ChannelFirstFocalLoss", "make_loss"]


class ChannelFirstFocalLoss(nn.Module):
    """MONAI ``FocalLoss`` for logits shaped ``(B,)`` or ``(B, C)``.

    MONAI expects channel-first ``(B, C, ...)`` tensors; a binary head yields ``(B,)``, so this
    adds the channel axis. Nothing else is re-implemented.
    """

    def __init__(self, alpha: float | None = None, gamma: float = 2.0) -> None:
        super().__init__()
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"focal alpha must be in [0, 1] (weight of positives), got {alpha}")
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        self.alpha, self.gamma = alpha, gamma
        self.focal = FocalLoss(use_softmax=False, gamma=gamma, alpha=alpha, reduction="mean")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape != target.shape:
            raise ValueError(
                f"logits {tuple(logits.shape)} and targets {tuple(target.shape)} differ"
            )
        if logits.ndim == 1:
            logits, target = logits[:, None], target[:, None]
        return self.focal(logits, target.to(logits.dtype))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}"


def make_loss(
    name: str,
    alpha: float | None = None,
    gamma: float = 2.0,
    pos_weight: float | torch.Tensor | None = None,
) -> nn.Module:
    """``"bce"`` (``BCEWithLogitsLoss``, optional ``pos_weight``) or ``"focal"`` (see module doc).

    Both take raw logits and float targets of the same shape.
    """
    if name == "bce":
        if alpha is not None:
            raise ValueError("alpha is a focal-loss parameter; for BCE use pos_weight")
        pw = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
        return nn.BCEWithLogitsLoss(pos_weight=pw)
    if name == "focal":
        if pos_weight is not None:
            raise ValueError("pos_weight is a BCE parameter; for focal loss use alpha")
        return ChannelFirstFocalLoss(alpha=alpha, gamma=gamma)
    raise ValueError(f"unknown loss {name!r}; choose 'bce' or 'focal'")
