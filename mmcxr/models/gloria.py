"""A GLoRIA-style image-text encoder pair (Huang et al., ICCV 2021), written from its paper and
its public code (marshuang80/gloria), with MONAI image backbones and a BERT from transformers.

* :class:`GloriaImageEncoder`: a ResNet whose intermediate map (``local_stage``; GLoRIA:
  layer3, 19 x 19 regions of a 299-pixel input) is embedded by a 1x1 convolution into local
  region vectors ``v_l``, and whose pooled last stage is embedded linearly into ``v_g``;
* :class:`GloriaTextEncoder`: BERT's last ``last_n_layers`` hidden states summed, sub-word
  tokens summed into words (``t_l``, one vector per word), the sentence vector ``t_g`` the mean
  of its words; no projection, so the shared embedding size is the BERT's hidden size (as in
  GLoRIA, 768);
* :func:`word_region_attention`: eq. 1 of the "Wrong Lung" paper, every word's softmax over
  the regions with inverse temperature ``temp1``; ``word_softmax=True`` first normalises each
  region's scores over the words, as GLoRIA's code does (ControlGAN's attention);
* :func:`local_similarity`, :func:`global_similarity` and :class:`Gloria`'s ``forward``: the
  local and global contrastive losses (``temp2``: the word-context cosine's sharpness,
  ``temp3``: the logit scale), both directions, weighted as GLoRIA (1 and 1).

``Gloria.forward(batch)`` returns per-item loss terms ``(B, 5)`` (total, local image->text,
local text->image, global image->text, global text->image): the mean of column 0 is the
batch loss GLoRIA minimises, which :func:`gloria_loss` hands to :func:`mmcxr.train.fit`.
:func:`load_gloria_checkpoint` maps the released PyTorch Lightning checkpoint's weights
(``gloria.img_encoder.*``, ``gloria.text_encoder.*``) onto these modules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mmcxr.models.image import load_pretrained, prepared_image_encoder

__all__ = [
    "Gloria",
    "GloriaImageEncoder",
    "GloriaTextEncoder",
    "global_similarity",
    "gloria_checkpoint_key",
    "gloria_loss",
    "load_gloria_checkpoint",
    "local_similarity",
    "paired_local_similarity",
    "word_region_attention",
]

TERMS = ("loss", "local_i2t", "local_t2i", "global_i2t", "global_t2i")


class GloriaImageEncoder(nn.Module):
    """Image batch ``(B, 1, H, W)`` -> ``(v_l (B, D, h, w), v_g (B, D))``."""

    def __init__(
        self,
        backbone: str,
        embed_dim: int,
        local_stage: str = "layer3",
        weights: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.backbone = prepared_image_encoder(backbone, weights)
        if local_stage not in self.backbone.stages:
            raise ValueError(
                f"local_stage must be one of {self.backbone.stages}, got {local_stage!r}"
            )
        self.local_stage = local_stage
        channels = self.backbone.feature_channels(local_stage)
        self.local_embedder = nn.Conv2d(channels, embed_dim, kernel_size=1, bias=False)
        self.global_embedder = nn.Linear(self.backbone.out_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, fmap = self.backbone.forward_features(x, self.local_stage)
        return self.local_embedder(fmap), self.global_embedder(pooled)


class GloriaTextEncoder(nn.Module):
    """Token batch -> ``(t_l (B, W, D), word_mask (B, W), t_g (B, D))``.

    ``word_index`` (B, T) names the word each token belongs to (``-1`` for [CLS], [SEP] and
    padding; :func:`mmcxr.alignment.tokenize_words` makes it from a fast tokenizer's
    ``word_ids``); ``n_words`` (B,) how many words each sentence has. Tokens of a word are
    summed, as GLoRIA's ``aggregate_tokens`` does; the layers are summed too.
    """

    def __init__(self, bert: nn.Module, last_n_layers: int = 4, aggregate: str = "sum") -> None:
        super().__init__()
        if aggregate not in ("sum", "mean"):
            raise ValueError(f"aggregate must be 'sum' or 'mean', got {aggregate!r}")
        n_layers = int(bert.config.num_hidden_layers)
        if not 1 <= last_n_layers <= n_layers + 1:
            raise ValueError(f"last_n_layers must be in 1..{n_layers + 1}, got {last_n_layers}")
        self.bert = bert
        self.last_n_layers = int(last_n_layers)
        self.aggregate = aggregate
        self.out_dim = int(bert.config.hidden_size)

    def forward(self, batch: Mapping[str, torch.Tensor]):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        out = self.bert(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        layers = torch.stack(out.hidden_states[-self.last_n_layers :])
        h = layers.sum(0) if self.aggregate == "sum" else layers.mean(0)  # (B, T, D)
        index = batch["word_index"].long()
        n_slots = index.shape[1]
        keep = (index >= 0).unsqueeze(-1).to(h.dtype)
        slot = index.clamp(min=0).unsqueeze(-1).expand(-1, -1, h.shape[-1])
        words = torch.zeros(h.shape[0], n_slots, h.shape[-1], dtype=h.dtype, device=h.device)
        words = words.scatter_add(1, slot, h * keep)
        word_mask = (
            torch.arange(n_slots, device=h.device)[None, :] < batch["n_words"].long()[:, None]
        )
        m = word_mask.unsqueeze(-1).to(h.dtype)
        sentence = (words * m).sum(1) / m.sum(1).clamp(min=1.0)
        return words, word_mask, sentence


def word_region_attention(
    words: torch.Tensor,
    word_mask: torch.Tensor,
    regions: torch.Tensor,
    temp1: float = 4.0,
    word_softmax: bool = True,
) -> torch.Tensor:
    """Attention of every word over the regions of its paired image, ``(..., W, M)``.

    ``words`` (..., W, D), ``word_mask`` (..., W), ``regions`` (..., D, M), the leading
    dimensions broadcasting. Eq. 1 of the paper: ``a_ij = softmax_j(t_i . v_j / tau)`` with
    ``1 / tau = temp1``. With ``word_softmax`` each region's scores are first normalised over
    the sentence's words (GLoRIA's ``attention_fn``), then multiplied by ``temp1``. Padding
    words get a uniform row (they are masked out of every average).
    """
    scores = torch.matmul(words, regions)  # (..., W, M)
    if word_softmax:
        fill = torch.finfo(scores.dtype).min
        scores = scores.masked_fill(~word_mask.unsqueeze(-1), fill).softmax(dim=-2)
    attn = (scores * temp1).softmax(dim=-1)
    return attn.masked_fill(~word_mask.unsqueeze(-1), 1.0 / attn.shape[-1])


def local_similarity(
    words: torch.Tensor,
    word_mask: torch.Tensor,
    regions: torch.Tensor,
    *,
    temp1: float = 4.0,
    temp2: float = 5.0,
    word_softmax: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GLoRIA's local image-sentence similarity for every image x every sentence.

    ``words`` (S, W, D) with ``word_mask`` (S, W); ``regions`` (I, D, M). Each word attends
    over each image's regions; the attention-weighted region vector (its "context") is
    compared with the word by cosine; ``log sum_words exp(temp2 * cos)`` is the similarity.
    Returns ``(similarity (I, S), attention (I, S, W, M))``.
    """
    return paired_local_similarity(
        words[None], word_mask[None], regions[:, None], temp1=temp1, temp2=temp2,
        word_softmax=word_softmax,
    )  # fmt: skip


def paired_local_similarity(
    words: torch.Tensor,
    word_mask: torch.Tensor,
    regions: torch.Tensor,
    *,
    temp1: float = 4.0,
    temp2: float = 5.0,
    word_softmax: bool = True,
    aggregate: str = "sum",
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`local_similarity` for paired items only: ``words`` (n, W, D), ``regions``
    (n, D, M); returns ``(similarity (n,), attention (n, W, M))``. Leading dimensions
    broadcast, which is how :func:`local_similarity` pairs every image with every sentence. ``aggregate="sum"`` is the
    training form (log-sum-exp over words), ``"max"`` GLoRIA's retrieval form
    (``get_local_similarities``: the best-matching word)."""
    if aggregate not in ("sum", "max"):
        raise ValueError(f"aggregate must be 'sum' or 'max', got {aggregate!r}")
    attn = word_region_attention(words, word_mask, regions, temp1, word_softmax)
    context = torch.matmul(attn, regions.transpose(-1, -2))  # (n, W, D)
    cos = F.cosine_similarity(context, words.expand_as(context), dim=-1, eps=1e-8)
    logits = (cos * temp2).masked_fill(~word_mask, float("-inf"))
    sim = torch.logsumexp(logits, -1) if aggregate == "sum" else logits.max(-1).values
    return sim, attn


def global_similarity(images: torch.Tensor, sentences: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every global image vector (I, D) with every sentence's (S, D)."""
    return F.normalize(images, dim=-1, eps=1e-8) @ F.normalize(sentences, dim=-1, eps=1e-8).T


def _both_ways(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item cross-entropy of the matching pair, image -> text (rows) and text -> image."""
    target = torch.arange(len(logits), device=logits.device)
    return (
        F.cross_entropy(logits, target, reduction="none"),
        F.cross_entropy(logits.T, target, reduction="none"),
    )


class Gloria(nn.Module):
    """The encoder pair and GLoRIA's objective; ``forward(batch)`` -> loss terms ``(B, 5)``.

    A batch holds ``image`` and the paired sentence's ``input_ids``, ``attention_mask``,
    ``word_index`` and ``n_words``. Items of a batch are each other's negatives.
    """

    terms = TERMS

    def __init__(
        self,
        image: GloriaImageEncoder,
        text: GloriaTextEncoder,
        *,
        temp1: float = 4.0,
        temp2: float = 5.0,
        temp3: float = 10.0,
        local_weight: float = 1.0,
        global_weight: float = 1.0,
        word_softmax: bool = True,
    ) -> None:
        super().__init__()
        if image.local_embedder.out_channels != text.out_dim:
            raise ValueError(
                f"image embedding size {image.local_embedder.out_channels} != text hidden size "
                f"{text.out_dim}: build the image encoder with embed_dim={text.out_dim}"
            )
        self.image, self.text = image, text
        self.temp1, self.temp2, self.temp3 = float(temp1), float(temp2), float(temp3)
        self.local_weight, self.global_weight = float(local_weight), float(global_weight)
        self.word_softmax = bool(word_softmax)

    def encode_image(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(images)

    def encode_text(self, batch: Mapping[str, torch.Tensor]):
        return self.text(batch)

    def attention(self, words, word_mask, regions_map: torch.Tensor) -> torch.Tensor:
        """Eq. 1 for paired items: ``(B, W, h, w)`` from ``t_l`` and ``v_l (B, D, h, w)``."""
        b, d, h, w = regions_map.shape
        attn = word_region_attention(
            words, word_mask, regions_map.reshape(b, d, h * w), self.temp1, self.word_softmax
        )
        return attn.reshape(b, -1, h, w)

    def similarities(self, v_l, v_g, words, word_mask, t_g) -> tuple[torch.Tensor, torch.Tensor]:
        """``(local (I, S), global (I, S))``: the logits of the two contrastive losses
        before ``temp3``."""
        regions = v_l.flatten(2)
        local, _ = local_similarity(
            words, word_mask, regions, temp1=self.temp1, temp2=self.temp2,
            word_softmax=self.word_softmax,
        )  # fmt: skip
        return local, global_similarity(v_g, t_g)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        v_l, v_g = self.encode_image(batch["image"])
        words, word_mask, t_g = self.encode_text(batch)
        local, glob = self.similarities(v_l, v_g, words, word_mask, t_g)
        l0, l1 = _both_ways(local * self.temp3)
        g0, g1 = _both_ways(glob * self.temp3)
        total = self.local_weight * (l0 + l1) + self.global_weight * (g0 + g1)
        return torch.stack([total, l0, l1, g0, g1], dim=1)


def gloria_loss(terms: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The loss :func:`mmcxr.train.fit` minimises: the mean of :meth:`Gloria.forward`'s total
    (the labels are unused: the objective is self-supervised)."""
    return terms[:, 0].mean()


# --------------------------------------------------------------------------------------------
# the released checkpoint


def gloria_checkpoint_key(key: str) -> str | None:
    """Map a key of GLoRIA's released checkpoint (``chexpert_resnet50.ckpt``, a Lightning
    ``state_dict``) onto :class:`Gloria`; None drops it.

    ``gloria.img_encoder.model.<torchvision resnet>`` -> ``image.backbone.``,
    ``gloria.img_encoder.{global,local}_embedder`` -> ``image.{global,local}_embedder``,
    ``gloria.text_encoder.model.<bert>`` -> ``text.bert.`` (BERT's pooler and the ResNet's
    ``fc`` head are not used and dropped).
    """
    k = key.removeprefix("model.").removeprefix("gloria.")
    if k.startswith("img_encoder.model."):
        rest = k.removeprefix("img_encoder.model.")
        return None if rest.startswith("fc.") else "image.backbone." + rest
    if k.startswith(("img_encoder.global_embedder.", "img_encoder.local_embedder.")):
        return "image." + k.removeprefix("img_encoder.")
    if k.startswith("text_encoder.model."):
        rest = k.removeprefix("text_encoder.model.")
        if rest.startswith("pooler.") or rest.endswith("position_ids"):
            return None
        return "text.bert." + rest
    return None


def load_gloria_checkpoint(model: Gloria, path: str | os.PathLike):
    """Load GLoRIA's released weights (a local file) into ``model``, built with the released
    architecture: ``resnet50``, ``local_stage="layer3"`` and the Bio_ClinicalBERT the
    checkpoint was trained from (its config, e.g. a local ``bert_path``). The RGB first
    convolution is summed over its channels to read grayscale films. Returns the
    :class:`~mmcxr.models.image.LoadReport`; a key that does not fit raises, naming it."""
    return load_pretrained(model, path, strip_prefix=(), key_map=gloria_checkpoint_key)
