"""Multimodal VAEs with one generic joint posterior: MVAE (PoE), MMVAE (MoE) and MoPoE.

Each modality has a Gaussian encoder ``q(z | x_m)`` and a decoder ``p(x_m | z)``. What the
three methods differ in is how the unimodal posteriors are merged, and the generalised
multimodal ELBO of Sutter et al. (ICLR 2021) covers all three with one switch: the joint
posterior is a *mixture* over a set of subsets of the modalities, each subset's posterior
being the *product* of its members' experts.

* ``joint="poe"`` (Wu & Goodman's MVAE): one component, the product of all experts;
* ``joint="moe"`` (Shi et al.'s MMVAE): the unimodal experts, mixed;
* ``joint="mopoe"``: every non-empty subset (7 for three modalities), each a product.

The objective (``forward``) reconstructs every modality from one sample of the joint
posterior (each item of a batch draws its mixture component, as the reference code does with
a stratified split of the batch), weighted per modality, and adds the KL of the mixture as
the method defines it: the mean over components of ``KL(q_S || N(0, I))``, an upper bound on
the KL of the mixture itself. ``forward`` returns the per-item terms, so that
:func:`mmcxr.train.fit` trains it with :func:`elbo_loss` like any other model and the
per-term curves come from :func:`elbo_terms`.

The networks follow the reference code's layout at a size a CPU can train: strided
convolutions down to 4 x 4 for images (Laplace likelihood, fixed scale), a word-embedding
and 1-D convolutions for fixed-length word sequences (categorical likelihood per position).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's own convention

from mmcxr.metrics import sharpness  # re-exported: the measure of generated films

__all__ = [
    "JOINTS",
    "Modality",
    "MultimodalVAE",
    "build_mvae",
    "elbo_loss",
    "elbo_terms",
    "generate_all",
    "kl_normal",
    "mixture_components",
    "poe",
    "sharpness",
    "subset_latents",
    "subsets",
]

JOINTS = ("poe", "moe", "mopoe")
_LOGVAR_RANGE = (-12.0, 8.0)  # keeps exp(logvar) finite early in training


# --------------------------------------------------------------------------------------------
# the algebra of experts


def poe(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Product of Gaussian experts: ``(K, ..., D)`` means and log-variances -> one Gaussian.

    The product of Gaussians is Gaussian with precision the sum of the precisions and mean
    the precision-weighted mean of the means (no prior expert: the reference MoPoE code
    multiplies the subset's own experts only).
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} differ")
    precision = torch.exp(-logvar)
    total = precision.sum(dim=0)
    return (mu * precision).sum(dim=0) / total, -torch.log(total)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over the last dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``modalities``, smallest first, in the given order
    (``2**M - 1`` of them: 7 for three modalities)."""
    if len(set(modalities)) != len(modalities):
        raise ValueError(f"modalities must be distinct, got {list(modalities)}")
    return [c for k in range(1, len(modalities) + 1) for c in itertools.combinations(modalities, k)]


def mixture_components(joint: str, modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """The subsets whose products the joint posterior mixes, for each method."""
    if joint == "poe":
        return [tuple(modalities)]
    if joint == "moe":
        return [(m,) for m in modalities]
    if joint == "mopoe":
        return subsets(modalities)
    raise ValueError(f"joint must be one of {JOINTS}, got {joint!r}")


# --------------------------------------------------------------------------------------------
# networks


def _levels(size: int, floor: int = 4) -> int:
    """How many stride-2 steps take ``size`` down to ``floor`` (size must be floor * 2**k)."""
    steps = int(round(math.log2(size / floor))) if size >= floor else -1
    if steps < 1 or floor * 2**steps != size:
        raise ValueError(f"size must be {floor} times a power of two (>= {2 * floor}), got {size}")
    return steps


class ImageEncoder(nn.Module):
    """Strided 4x4 convolutions (channels doubling, capped at 8x) to a 4 x 4 map, then one
    linear layer to the posterior's mean and log-variance."""

    def __init__(self, size: int, latent_dim: int, channels: int = 32) -> None:
        super().__init__()
        layers, c_in = [], 1
        for i in range(_levels(size)):
            c_out = channels * min(2**i, 8)
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.SiLU()]
            c_in = c_out
        self.conv = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * 16, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.conv(x).flatten(1)).chunk(2, dim=-1)
        return mu, logvar.clamp(*_LOGVAR_RANGE)


class ImageDecoder(nn.Module):
    """The encoder mirrored: a linear layer to a 4 x 4 map, transposed convolutions up to
    ``size``; the output is the Laplace location in the dataset's normalised intensity."""

    def __init__(self, size: int, latent_dim: int, channels: int = 32) -> None:
        super().__init__()
        steps = _levels(size)
        widths = [channels * min(2**i, 8) for i in range(steps)][::-1]
        self.start = widths[0]
        self.fc = nn.Linear(latent_dim, widths[0] * 16)
        layers = []
        for i, c_in in enumerate(widths):
            last = i == len(widths) - 1
            c_out = 1 if last else widths[i + 1]
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
            if not last:
                layers.append(nn.SiLU())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(F.silu(self.fc(z)).view(len(z), self.start, 4, 4))


def _seq_conv(channels: int, up: bool) -> nn.Module:
    """A stride-2, width-4 convolution along a word sequence, written as a 2-D convolution
    over a ``(channels, 1, length)`` map: on the CPU builds of torch used here ``Conv1d`` is
    about ten times slower than the same computation as ``Conv2d`` (measured)."""
    conv = nn.ConvTranspose2d if up else nn.Conv2d
    return conv(channels, channels, (1, 4), (1, 2), (0, 1))


class TextEncoder(nn.Module):
    """Word embeddings and three strided convolutions along a fixed-length word sequence."""

    def __init__(self, vocab_size: int, length: int, latent_dim: int, channels: int = 64) -> None:
        super().__init__()
        if length % 8:
            raise ValueError(f"text length must be a multiple of 8, got {length}")
        self.embed = nn.Embedding(vocab_size, channels, padding_idx=0)
        self.conv = nn.Sequential(
            *[m for _ in range(3) for m in (_seq_conv(channels, False), nn.SiLU())]
        )
        self.head = nn.Linear(channels * (length // 8), 2 * latent_dim)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(self.embed(ids).transpose(1, 2).unsqueeze(2))
        mu, logvar = self.head(h.flatten(1)).chunk(2, dim=-1)
        return mu, logvar.clamp(*_LOGVAR_RANGE)


class TextDecoder(nn.Module):
    """The text encoder mirrored: logits over the vocabulary at every word position."""

    def __init__(self, vocab_size: int, length: int, latent_dim: int, channels: int = 64) -> None:
        super().__init__()
        self.channels, self.short = channels, length // 8
        self.fc = nn.Linear(latent_dim, channels * self.short)
        self.deconv = nn.Sequential(
            *[m for _ in range(3) for m in (_seq_conv(channels, True), nn.SiLU())]
        )
        self.out = nn.Linear(channels, vocab_size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.fc(z)).view(len(z), self.channels, 1, self.short)
        h = self.deconv(h).squeeze(2).transpose(1, 2)  # (B, length, channels)
        return self.out(h).transpose(1, 2)  # (B, vocab, length)


# --------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class Modality:
    """One modality: its name, the batch key holding it, and its likelihood
    (``"laplace"`` for images, ``"categorical"`` for word ids)."""

    name: str
    key: str
    likelihood: str

    def __post_init__(self) -> None:
        if self.likelihood not in ("laplace", "categorical"):
            raise ValueError(f"likelihood must be laplace or categorical, got {self.likelihood!r}")


class MultimodalVAE(nn.Module):
    """A multimodal VAE whose joint posterior is a mixture of products of experts.

    ``forward(batch)`` returns a ``(B, 2 + M)`` tensor of per-item terms, columns
    :attr:`terms`: the weighted negative ELBO (``loss``), the KL term, and each modality's
    negative log-likelihood. ``weights`` multiply the likelihoods (the reference code scales
    each modality by the size of a reference modality over its own, so a 64-word report is
    not drowned by 4,096 pixels); ``beta`` multiplies the KL.
    """

    def __init__(
        self,
        modalities: Sequence[Modality],
        encoders: Mapping[str, nn.Module],
        decoders: Mapping[str, nn.Module],
        *,
        latent_dim: int,
        joint: str = "mopoe",
        weights: Mapping[str, float] | None = None,
        beta: float = 1.0,
        laplace_scale: float = 0.75,
    ) -> None:
        super().__init__()
        names = [m.name for m in modalities]
        for what, nets in (("encoders", encoders), ("decoders", decoders)):
            if set(nets) != set(names):
                raise ValueError(f"{what} must be given for {names}, got {sorted(nets)}")
        self.modalities = tuple(modalities)
        self.names = tuple(names)
        self.encoders = nn.ModuleDict(dict(encoders))
        self.decoders = nn.ModuleDict(dict(decoders))
        self.latent_dim = int(latent_dim)
        self.joint = joint
        self.components = mixture_components(joint, names)
        self.weights = {n: float((weights or {}).get(n, 1.0)) for n in names}
        self.beta = float(beta)
        self.laplace_scale = float(laplace_scale)

    @property
    def terms(self) -> list[str]:
        """Names of the columns ``forward`` returns."""
        return ["loss", "kl", *[f"nll_{n}" for n in self.names]]

    # -- posteriors

    def encode(
        self, batch: Mapping[str, torch.Tensor], names: Iterable[str] | None = None
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each modality's Gaussian posterior ``(mu, logvar)``, ``(B, D)`` each."""
        wanted = self.names if names is None else tuple(names)
        return {
            m.name: self.encoders[m.name](batch[m.key]) for m in self.modalities if m.name in wanted
        }

    def subset_posterior(
        self, experts: Mapping[str, tuple[torch.Tensor, torch.Tensor]], subset: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The product of the subset's experts."""
        mus = torch.stack([experts[n][0] for n in subset])
        logvars = torch.stack([experts[n][1] for n in subset])
        return poe(mus, logvars)

    def represent(
        self,
        batch: Mapping[str, torch.Tensor],
        subset: Sequence[str],
        experts: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """The latent representation of a subset of modalities: the mean of its posterior.

        A product for PoE and MoPoE models, the mixture of the unimodal experts for an MoE
        model (whose mean is the mean of the experts' means), as each method infers from a
        subset. ``experts`` (from :meth:`encode`) saves encoding again for every subset.
        """
        experts = self.encode(batch, subset) if experts is None else experts
        if self.joint == "moe":
            return torch.stack([experts[n][0] for n in subset]).mean(dim=0)
        return self.subset_posterior(experts, subset)[0]

    def sample_posterior(
        self,
        batch: Mapping[str, torch.Tensor],
        subset: Sequence[str],
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One draw of ``z`` from the subset's posterior (for an MoE model each item draws
        its expert uniformly)."""
        experts = self.encode(batch, subset)
        if self.joint == "moe":
            n = len(next(iter(experts.values()))[0])
            pick = torch.randint(len(subset), (n,), generator=generator)
            mus = torch.stack([experts[s][0] for s in subset])
            logvars = torch.stack([experts[s][1] for s in subset])
            idx = torch.arange(n)
            mu, logvar = mus[pick, idx], logvars[pick, idx]
        else:
            mu, logvar = self.subset_posterior(experts, subset)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each modality's decoder output: image locations ``(B, 1, S, S)``, text logits
        ``(B, vocab, length)``."""
        return {n: self.decoders[n](z) for n in self.names}

    @torch.no_grad()
    def generate(
        self,
        batch: Mapping[str, torch.Tensor],
        subset: Sequence[str],
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Every modality generated from one posterior draw given ``subset``: images as
        decoded, text as the most likely word at each position."""
        out = self.decode(self.sample_posterior(batch, subset, generator))
        return {
            m.name: out[m.name].argmax(dim=1) if m.likelihood == "categorical" else out[m.name]
            for m in self.modalities
        }

    # -- the objective

    def _nll(self, m: Modality, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if m.likelihood == "categorical":
            return F.cross_entropy(out, target.long(), reduction="none").sum(dim=-1)
        b = self.laplace_scale
        nll = (target - out).abs() / b + math.log(2 * b)
        return nll.flatten(1).sum(dim=-1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        experts = self.encode(batch)
        posts = [self.subset_posterior(experts, s) for s in self.components]
        n, k = len(posts[0][0]), len(posts)
        # each item draws one mixture component: a stratified split of the batch, as the
        # reference code's mixture_component_selection (batches are shuffled every epoch)
        pick = torch.div(torch.arange(n) * k, n, rounding_mode="floor").clamp(max=k - 1)
        idx = torch.arange(n)
        mu = torch.stack([p[0] for p in posts])[pick, idx]
        logvar = torch.stack([p[1] for p in posts])[pick, idx]
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        out = self.decode(z)
        nlls = [self._nll(m, out[m.name], batch[m.key]) for m in self.modalities]
        kl = torch.stack([kl_normal(*p) for p in posts]).mean(dim=0)
        loss = sum(self.weights[m.name] * v for m, v in zip(self.modalities, nlls, strict=True))
        loss = loss + self.beta * kl
        return torch.stack([loss, kl, *nlls], dim=1)


def elbo_loss(terms: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The training loss :func:`mmcxr.train.fit` minimises: the mean weighted negative ELBO
    (column 0 of ``forward``'s terms; the labels are not used, the model is unsupervised)."""
    return terms[:, 0].mean()


@torch.no_grad()
def elbo_terms(
    model: MultimodalVAE, batches: Iterable[Mapping[str, torch.Tensor]], prefix: str = ""
) -> dict[str, float]:
    """Mean of every ELBO term over ``batches`` (e.g. a DataLoader), keyed ``prefix + term``:
    the per-term curves of a training run (``fit(..., epoch_metrics=...)``)."""
    device = next(model.parameters()).device
    totals, n = None, 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        t = model(batch).sum(dim=0)
        totals = t if totals is None else totals + t
        n += len(next(iter(batch.values())))
    if totals is None:
        raise ValueError("elbo_terms: no batches")
    return {f"{prefix}{name}": float(v) / n for name, v in zip(model.terms, totals, strict=True)}


@torch.no_grad()
def subset_latents(
    model: MultimodalVAE,
    batches: Iterable[Mapping[str, torch.Tensor]],
    subsets: Sequence[Sequence[str]],
) -> dict[tuple[str, ...], np.ndarray]:
    """The latent representation (:meth:`MultimodalVAE.represent`) of every subset, over
    all ``batches`` in order; each batch is encoded once for all subsets."""
    parts: dict[tuple[str, ...], list[np.ndarray]] = {tuple(s): [] for s in subsets}
    for batch in batches:
        experts = model.encode(batch)
        for s in parts:
            parts[s].append(model.represent(batch, s, experts).numpy())
    return {s: np.concatenate(v) for s, v in parts.items()}


@torch.no_grad()
def generate_all(
    model: MultimodalVAE,
    batches: Iterable[Mapping[str, torch.Tensor]],
    subset: Sequence[str],
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """:meth:`MultimodalVAE.generate` over all ``batches``, from one seeded generator (the
    same seed gives the same samples)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, list[torch.Tensor]] = {n: [] for n in model.names}
    for batch in batches:
        for name, x in model.generate(batch, subset, generator=g).items():
            out[name].append(x)
    return {n: torch.cat(v) for n, v in out.items()}


def build_mvae(
    *,
    image_size: int,
    vocab_size: int,
    text_length: int,
    latent_dim: int = 32,
    joint: str = "mopoe",
    image_channels: int = 32,
    text_channels: int = 64,
    beta: float = 1.0,
    likelihood_weights: str | Mapping[str, float] = "size",
    laplace_scale: float = 0.75,
    images: Sequence[str] = ("frontal", "lateral"),
    text: str = "text",
    text_key: str = "token_ids",
) -> MultimodalVAE:
    """A multimodal VAE over square single-channel images (batch keys = their names) and one
    word-id sequence (``text_key``).

    ``likelihood_weights="size"`` weights each modality by the number of elements of the
    first image over its own (the reference code's rule), ``"equal"`` weights all by 1, and a
    mapping gives each modality's weight.
    """
    mods = [Modality(n, n, "laplace") for n in images] + [Modality(text, text_key, "categorical")]
    enc: dict[str, nn.Module] = {
        n: ImageEncoder(image_size, latent_dim, image_channels) for n in images
    }
    dec: dict[str, nn.Module] = {
        n: ImageDecoder(image_size, latent_dim, image_channels) for n in images
    }
    enc[text] = TextEncoder(vocab_size, text_length, latent_dim, text_channels)
    dec[text] = TextDecoder(vocab_size, text_length, latent_dim, text_channels)
    if likelihood_weights == "size":
        sizes = {**{n: image_size**2 for n in images}, text: text_length}
        ref = sizes[images[0]] if images else text_length
        weights = {n: ref / s for n, s in sizes.items()}
    elif likelihood_weights == "equal":
        weights = {m.name: 1.0 for m in mods}
    elif isinstance(likelihood_weights, Mapping):
        weights = dict(likelihood_weights)
    else:
        raise ValueError(
            f"likelihood_weights must be 'size', 'equal' or a mapping, got {likelihood_weights!r}"
        )
    return MultimodalVAE(
        mods,
        enc,
        dec,
        latent_dim=latent_dim,
        joint=joint,
        weights=weights,
        beta=beta,
        laplace_scale=laplace_scale,
    )
