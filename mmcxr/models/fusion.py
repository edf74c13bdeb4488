"""Image-only, text-only and multimodal classifiers sharing the same encoders and heads.

Two fusion designs, one per paper:

* ``"late"`` (paper 001): each encoder's pooled output -> Linear -> ReLU to ``proj_dim`` (256)
  features; the modalities' vectors are concatenated and one Linear layer predicts the class.
  The ReLU is our choice (the paper says only "transformed into 256-feature vectors"): without
  it projection and head would collapse into a single linear map.
* ``"concat_bn"`` (paper 002): the (pretrained) encoders' outputs are concatenated, batch-
  normalised and decoded by a small dense network (Linear -> ReLU -> Dropout -> Linear).

For paper 002's transfer step, build the multimodal model from the trained uni-modal models'
encoders (``copy.deepcopy(text_model.text_encoder)`` etc., so the baselines stay intact).
The uni-modal models are the same class with one encoder, so comparisons differ only in the
inputs. ``forward(batch)`` returns logits ``(B,)`` for one output, ``(B, C)`` otherwise.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcxr.models import image as _image

__all__ = ["Classifier", "build_classifier"]

KINDS = ("image", "text", "multimodal")
FUSIONS = ("late", "concat_bn")


class Classifier(nn.Module):
    def __init__(
        self,
        kind: str,
        image_encoder: nn.Module | None,
        text_encoder: nn.Module | None,
        *,
        n_outputs: int = 1,
        proj_dim: int = 256,
        fusion: str = "late",
        hidden: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        need_img, need_txt = kind in ("image", "multimodal"), kind in ("text", "multimodal")
        for needed, enc, what in (
            (need_img, image_encoder, "image"),
            (need_txt, text_encoder, "text"),
        ):
            if needed and enc is None:
                raise ValueError(f"a {kind!r} classifier needs a {what}_encoder")
            if not needed and enc is not None:
                raise ValueError(f"a {kind!r} classifier takes no {what}_encoder (got one)")
            if enc is not None and not hasattr(enc, "out_dim"):
                raise TypeError(f"{what}_encoder {type(enc).__name__} has no .out_dim")
        self.kind, self.fusion, self.n_outputs = kind, fusion, n_outputs
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        dims = [e.out_dim for e in (image_encoder, text_encoder) if e is not None]
        if fusion == "late":
            self.image_proj = self._proj(image_encoder, proj_dim, dropout)
            self.text_proj = self._proj(text_encoder, proj_dim, dropout)
            self.head = nn.Linear(proj_dim * len(dims), n_outputs)
            self.fused_dim = proj_dim * len(dims)
        else:
            self.image_proj = self.text_proj = None
            self.head = nn.Sequential(
                nn.BatchNorm1d(sum(dims)),
                nn.Linear(sum(dims), hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_outputs),
            )
            self.fused_dim = sum(dims)

    @staticmethod
    def _proj(enc: nn.Module | None, dim: int, dropout: float) -> nn.Module | None:
        if enc is None:
            return None
        return nn.Sequential(
            nn.Linear(enc.out_dim, dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )

    @property
    def input_keys(self) -> tuple[str, ...]:
        keys: tuple[str, ...] = ()
        if self.image_encoder is not None:
            keys += ("image",)
        if self.text_encoder is not None:
            keys += tuple(getattr(self.text_encoder, "input_keys", ()))
        return keys

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The fused vector the head sees (for embedding plots and probes)."""
        parts = []
        if self.image_encoder is not None:
            if "image" not in batch:
                raise KeyError(f"{self.kind} classifier needs batch['image']; got {sorted(batch)}")
            z = self.image_encoder(batch["image"])
            parts.append(self.image_proj(z) if self.image_proj is not None else z)
        if self.text_encoder is not None:
            missing = [k for k in getattr(self.text_encoder, "input_keys", ()) if k not in batch]
            if missing:
                raise KeyError(f"{self.kind} classifier needs batch{missing}; got {sorted(batch)}")
            z = self.text_encoder(batch)
            parts.append(self.text_proj(z) if self.text_proj is not None else z)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.head(self.features(batch))
        return logits.squeeze(1) if self.n_outputs == 1 else logits


def build_classifier(
    kind: str,
    image_encoder: nn.Module | str | None = None,
    text_encoder: nn.Module | None = None,
    *,
    n_outputs: int = 1,
    proj_dim: int = 256,
    fusion: str = "late",
    hidden: int = 256,
    dropout: float = 0.0,
) -> Classifier:
    """One factory for every chapter's classifiers; ``image_encoder`` may be a name
    (``"resnet50"``, ``"densenet-small"``, ...) or a built (possibly pretrained) encoder."""
    if isinstance(image_encoder, str):
        image_encoder = _image.image_encoder(image_encoder)
    return Classifier(
        kind,
        image_encoder,
        text_encoder,
        n_outputs=n_outputs,
        proj_dim=proj_dim,
        fusion=fusion,
        hidden=hidden,
        dropout=dropout,
    )
