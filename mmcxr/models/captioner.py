"""A Show, Attend and Tell captioner (Xu et al. 2015) for radiology reports, and its tools.

Paper 000 (MEEMS) generates a report from an image with this architecture so that an image
alone can be projected into a multimodal (image + text) space; any chapter that captions
images can use it. The pieces:

* :class:`CaptionVocab` -- word ids with ``<pad>``, ``<unk>``, ``<start>``, ``<end>``; reports
  are lower-cased with punctuation removed and sections merged (the paper's Figure 1);
* :class:`SoftAttention` -- three fully-connected layers, the last one the attention layer;
* :class:`ShowAttendTell` -- an LSTM decoder with four fully-connected layers (initial hidden
  and cell state, the attention gate, the vocabulary scores), trained with teacher forcing;
* :func:`beam_search` -- batched beam search over any step function (width 3 in the paper);
* :func:`caption_dataset` / :func:`fit_captioner` -- training through :func:`mmcxr.train.fit`
  (Adam, reduce-on-plateau and early stopping on validation loss, checkpoints and resume):
  the caption's word ids are the items' labels and :func:`caption_loss` the loss, with
  per-epoch caption metrics (:func:`word_iou`, :func:`bleu4`, :func:`label_agreement`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mmcxr.models.cnn_text import words

__all__ = [
    "BeamResult",
    "CaptionVocab",
    "ShowAttendTell",
    "SoftAttention",
    "beam_search",
    "bleu4",
    "caption_dataset",
    "caption_loss",
    "caption_words",
    "fit_captioner",
    "label_agreement",
    "word_iou",
]

PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"


def caption_words(text: str) -> list[str]:
    """A report as the paper's captioner reads it: sections merged, lower case, no punctuation."""
    return words(text)


class CaptionVocab:
    """Word ids for captions: ``<pad>`` 0, ``<unk>`` 1, ``<start>`` 2, ``<end>`` 3, then words by
    frequency (ties by word, so a corpus always gives the same ids)."""

    def __init__(self, itos: Sequence[str]) -> None:
        if list(itos[:4]) != [PAD, UNK, START, END]:
            raise ValueError(f"vocabulary must start with {[PAD, UNK, START, END]}")
        if len(set(itos)) != len(itos):
            raise ValueError("vocabulary has duplicate words")
        self.itos = list(itos)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(
        cls, texts: Sequence[str], max_size: int | None = None, min_count: int = 1
    ) -> CaptionVocab:
        counts = Counter(w for t in texts for w in caption_words(t))
        ranked = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 4)]
        return cls([PAD, UNK, START, END, *ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, texts: Sequence[str], max_words: int) -> torch.Tensor:
        """``(N, max_words + 2)`` ids: ``<start>``, the first ``max_words`` words, ``<end>``,
        right-padded."""
        if max_words < 1:
            raise ValueError(f"max_words must be >= 1, got {max_words}")
        out = np.zeros((len(texts), max_words + 2), dtype=np.int64)
        for i, t in enumerate(texts):
            ids = [self.stoi.get(w, 1) for w in caption_words(t)[:max_words]]
            out[i, : len(ids) + 2] = [2, *ids, 3]
        return torch.from_numpy(out)

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Words up to the first ``<end>``; ``<start>`` and padding dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == 3:
                break
            if i not in (0, 2):
                out.append(self.itos[i])
        return out


class SoftAttention(nn.Module):
    """Additive attention over ``P`` image regions: encoder and decoder projections and the
    attention layer that scores each region (three fully-connected layers, as in the paper)."""

    def __init__(self, enc_dim: int, dec_dim: int, att_dim: int) -> None:
        super().__init__()
        self.enc_att = nn.Linear(enc_dim, att_dim)
        self.dec_att = nn.Linear(dec_dim, att_dim)
        self.full_att = nn.Linear(att_dim, 1)

    def forward(self, enc: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(context (B, enc_dim), alpha (B, P))`` for regions ``enc`` (B, P, enc_dim)."""
        e = self.full_att(torch.relu(self.enc_att(enc) + self.dec_att(h).unsqueeze(1)))
        alpha = torch.softmax(e.squeeze(2), dim=1)
        return (enc * alpha.unsqueeze(2)).sum(1), alpha


class ShowAttendTell(nn.Module):
    """Attention LSTM decoder over a frozen encoder's feature map.

    ``forward(batch)`` takes ``batch["features"]`` (B, P, enc_dim) -- the regions of a feature
    map, flattened -- and ``batch["tokens"]`` (B, L) caption ids, and returns teacher-forced
    next-word logits (B, L-1, V): the true previous word is fed at every step. ``embedding``
    initialises the word embeddings (e.g. Word2Vec vectors, :func:`mmcxr.models.embedding_matrix`).
    """

    def __init__(
        self,
        vocab_size: int,
        enc_dim: int,
        *,
        embed_dim: int = 200,
        dec_dim: int = 512,
        att_dim: int = 512,
        dropout: float = 0.5,
        embedding: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size, self.enc_dim, self.dec_dim = vocab_size, enc_dim, dec_dim
        self.attention = SoftAttention(enc_dim, dec_dim, att_dim)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        if embedding is not None:
            if tuple(embedding.shape) != (vocab_size, embed_dim):
                raise ValueError(
                    f"embedding is {tuple(embedding.shape)}, expected {(vocab_size, embed_dim)}"
                )
            self.embedding.weight.data.copy_(embedding)
        self.lstm = nn.LSTMCell(embed_dim + enc_dim, dec_dim)
        self.init_h = nn.Linear(enc_dim, dec_dim)
        self.init_c = nn.Linear(enc_dim, dec_dim)
        self.f_beta = nn.Linear(dec_dim, enc_dim)
        self.fc = nn.Linear(dec_dim, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def init_state(self, enc: torch.Tensor) -> dict[str, torch.Tensor]:
        """The LSTM's first hidden and cell state, from the mean region."""
        mean = enc.mean(1)
        return {"h": torch.tanh(self.init_h(mean)), "c": torch.tanh(self.init_c(mean)), "enc": enc}

    def step(
        self, prev: torch.Tensor, state: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """One decoding step: ``(logits (B, V), new state, alpha (B, P))`` after word ``prev``."""
        enc, h, c = state["enc"], state["h"], state["c"]
        context, alpha = self.attention(enc, h)
        context = torch.sigmoid(self.f_beta(h)) * context
        h, c = self.lstm(torch.cat([self.embedding(prev), context], dim=1), (h, c))
        return self.fc(self.dropout(h)), {"h": h, "c": c, "enc": enc}, alpha

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        enc, tokens = batch["features"].float(), batch["tokens"].long()
        state = self.init_state(enc)
        out = []
        for t in range(tokens.shape[1] - 1):
            logits, state, _ = self.step(tokens[:, t], state)
            out.append(logits)
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def generate(self, features: torch.Tensor, *, beam: int = 3, max_len: int = 50) -> BeamResult:
        """Beam-search captions for ``features`` (B, P, enc_dim), with the attention of every
        generated word and the final hidden state (what the MEEMS embedder reads)."""
        was = self.training
        self.eval()
        try:

            def step(prev, state):
                logits, new, alpha = self.step(prev, state)
                return torch.log_softmax(logits, dim=1), new, alpha

            dev = next(self.parameters()).device
            return beam_search(
                step,
                self.init_state(features.to(dev).float()),
                bos=2,
                eos=3,
                beam=beam,
                max_len=max_len,
            )
        finally:
            self.train(was)


@dataclass
class BeamResult:
    """Per item: the best sequence (ids, without ``<start>``/``<end>``), its summed
    log-probability, the attention of each of its words (T, P) and the final state."""

    tokens: list[list[int]]
    scores: np.ndarray
    alphas: list[np.ndarray]
    hidden: torch.Tensor


def beam_search(
    step: Callable[
        [torch.Tensor, dict[str, torch.Tensor]], tuple[torch.Tensor, dict, torch.Tensor]
    ],
    state: dict[str, torch.Tensor],
    *,
    bos: int,
    eos: int,
    beam: int = 3,
    max_len: int = 50,
) -> BeamResult:
    """Batched beam search: keep the ``beam`` best partial sequences per item by summed
    log-probability and return each item's best finished one.

    ``step(prev (N,), state) -> (log_probs (N, V), state, alpha (N, P))``; every tensor of
    ``state`` has the batch first. A sequence finishes when it emits ``eos`` (not part of the
    returned ids) or reaches ``max_len`` words. The search stops for an item once its best
    finished score beats every live beam, which is exact because log-probabilities only add
    negative terms. The returned ``hidden`` is ``state["h"]`` after the best sequence's last
    word (its ``eos`` step included).
    """
    if beam < 1 or max_len < 1:
        raise ValueError(f"need beam >= 1 and max_len >= 1, got {beam}, {max_len}")
    first = next(iter(state.values()))
    b, dev = first.shape[0], first.device
    k = beam
    state = {n: v.repeat_interleave(k, 0) for n, v in state.items()}
    scores = torch.full((b, k), -math.inf, device=dev)
    scores[:, 0] = 0.0  # one live beam at the start, or the k copies would fill the beam
    seqs = torch.zeros(b, k, 0, dtype=torch.long, device=dev)
    alphas: torch.Tensor | None = None
    prev = torch.full((b * k,), bos, dtype=torch.long, device=dev)
    best: list[tuple[float, list[int], np.ndarray, torch.Tensor] | None] = [None] * b
    for t in range(max_len + 1):
        logp, new_state, alpha = step(prev, state)
        v = logp.shape[1]
        total = (scores.reshape(-1, 1) + logp).reshape(b, k * v)
        if t == max_len:  # no more words: only <end> may follow
            mask = torch.full_like(total, -math.inf)
            mask[:, eos::v] = 0.0
            total = total + mask
        top, idx = total.topk(k, dim=1)
        origin, word = idx // v, idx % v
        flat = (origin + torch.arange(b, device=dev).unsqueeze(1) * k).reshape(-1)
        state = {n: s.index_select(0, flat) for n, s in new_state.items()}
        a = alpha.index_select(0, flat).reshape(b, k, 1, -1)
        alphas = (
            a
            if alphas is None
            else torch.cat(
                [alphas.reshape(b * k, t, -1).index_select(0, flat).reshape(b, k, t, -1), a], dim=2
            )
        )
        seqs = torch.cat([seqs.reshape(b * k, -1).index_select(0, flat).reshape(b, k, -1),
                          word.unsqueeze(2)], dim=2)  # fmt: skip
        scores = top.clone()
        done = (word == eos) & torch.isfinite(top)
        for i, j in zip(*torch.nonzero(done, as_tuple=True), strict=True):
            i, j, s = int(i), int(j), float(top[i, j])
            if best[i] is None or s > best[i][0]:
                best[i] = (s, seqs[i, j, :-1].tolist(), alphas[i, j, :-1].cpu().numpy(),
                           state["h"][i * k + j].cpu().clone())  # fmt: skip
        scores[done] = -math.inf
        live_best = scores.max(dim=1).values
        for i in range(b):
            if best[i] is not None and best[i][0] >= float(live_best[i]):
                scores[i] = -math.inf  # nothing live can still win
        if not torch.isfinite(scores).any():
            break
        prev = word.reshape(-1)
    out = [x for x in best]
    if any(x is None for x in out):  # pragma: no cover - the last step forces <end>
        raise RuntimeError("beam search ended without a finished sequence")
    return BeamResult(
        tokens=[x[1] for x in out],
        scores=np.array([x[0] for x in out]),
        alphas=[x[2] for x in out],
        hidden=torch.stack([x[3] for x in out]),
    )


def caption_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next word over the non-padding targets ``tokens[:, 1:]``."""
    target = tokens[:, 1:].long()
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=0
    )


# --------------------------------------------------------------------------------------------
# caption metrics


def word_iou(generated: Sequence[str], truth: Sequence[str]) -> float:
    """Intersection over union of the two captions' word *sets* (the paper's caption score)."""
    a, b = set(generated), set(truth)
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def bleu4(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 (Papineni et al.): geometric mean of clipped 1- to 4-gram precisions times
    the brevity penalty, one reference per hypothesis; 0 when any n-gram order has no match."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    matches, totals = [0] * 4, [0] * 4
    ref_len = hyp_len = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        ref_len, hyp_len = ref_len + len(ref), hyp_len + len(hyp)
        for n in range(1, 5):
            h = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
            r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
            matches[n - 1] += sum(min(c, r[g]) for g, c in h.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / 4
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(log_p)


def label_agreement(
    generated: Sequence[str],
    truth: Sequence[str],
    labeler: Callable[[str], Mapping[str, float]],
    labels: Sequence[str],
) -> float:
    """Share of (caption, label) decisions on which ``labeler`` says the same of the generated
    caption as of the true report (positive-or-uncertain vs not): clinical, not lexical,
    agreement."""
    if len(generated) != len(truth):
        raise ValueError(f"{len(generated)} generated captions but {len(truth)} reports")
    if not generated:
        return math.nan

    def said(text: str) -> np.ndarray:
        out = labeler(text)
        return np.array([out.get(c) in (1.0, -1.0) for c in labels])

    agree = [said(g) == said(t) for g, t in zip(generated, truth, strict=True)]
    return float(np.mean(agree))


# --------------------------------------------------------------------------------------------
# training


def caption_dataset(features: torch.Tensor, tokens: torch.Tensor):
    """Items for :func:`fit_captioner`: ``features`` (N, P, enc_dim) regions and ``tokens``
    (N, L) caption ids, which are also the items' labels (what :func:`caption_loss` reads)."""
    from mmcxr.data import MultimodalDataset

    return MultimodalDataset(tokens.float(), text={"features": features, "tokens": tokens})


def fit_captioner(
    model: ShowAttendTell,
    train_ds: torch.utils.data.Dataset,
    val_ds: torch.utils.data.Dataset,
    *,
    epochs: int,
    batch_size: int = 32,
    lr: float = 4e-4,
    plateau_patience: int = 3,
    plateau_factor: float = 0.1,
    patience: int = 5,
    grad_clip: float | None = 5.0,
    seed: int = 0,
    epoch_metrics: Callable[[ShowAttendTell], Mapping[str, float]] | None = None,
    checkpoint_dir=None,
    device: str = "auto",
):
    """Teacher-forced training with the paper's recipe, through :func:`mmcxr.train.fit`: Adam
    at ``lr``, learning rate times ``plateau_factor`` after ``plateau_patience`` epochs without
    a lower validation loss, early stop after ``patience``; the best epoch's weights are kept.
    The datasets come from :func:`caption_dataset`. Returns fit's
    :class:`~mmcxr.train.History`, whose table holds ``epoch_metrics(model)`` as extra columns
    (its ``val_auroc`` / ``val_accuracy`` are NaN: vocabulary scores are not one per label).
    """
    from mmcxr import train

    return train.fit(
        model,
        train_ds,
        val_ds,
        loss=caption_loss,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        schedule="plateau",
        schedule_kwargs={"factor": plateau_factor, "patience": plateau_patience},
        patience=patience,
        grad_clip=grad_clip,
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        device=device,
        progress=False,
        epoch_metrics=epoch_metrics,
    )
