"""Attributions for the book's batch-dict models: integrated gradients, sight sensitivity, words.

* :func:`integrated_gradients_image` / :func:`integrated_gradients_text` run captum's
  ``IntegratedGradients`` / ``LayerIntegratedGradients`` through :class:`BatchForward`, which
  adapts ``model(batch: dict) -> logits`` to captum's positional-tensor calling convention,
  and return the convergence delta with the attributions (IG's completeness check).
* :func:`sight_sensitivity` is paper 002's detector: keep the pixels whose attribution passes a
  threshold ("sight sensitivity"), cluster them without supervision, and draw one bounding
  circle per cluster (centre = centroid, radius = farthest member).
* :func:`token_scores` / :func:`token_gradient_scores` are paper 002's text explanations: the
  squared gradient summed over each token's embedding row, normalised to shares of 1;
  :func:`word_scores` gives them per report with its words, top word and hit rate.
* :func:`attribution_maps` computes IG, the plain gradient and Grad-CAM (at :func:`cam_layer`)
  for a dataset of images; :func:`sensitivity_sweep` scores them against lesion masks.
* :func:`plot_attribution`, :func:`token_scores_html`, :func:`plot_token_scores` draw them.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients, LayerGradientXActivation, LayerIntegratedGradients
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from sklearn.cluster import DBSCAN, AgglomerativeClustering
from sklearn.metrics import silhouette_score
from torch import nn

from mmcxr.localization import upsample
from mmcxr.plots import style

Batch = Mapping[str, torch.Tensor]
Target = int | None


# --------------------------------------------------------------------------------------------
# captum adapter


class BatchForward:
    """Calls ``model(batch)`` from captum's ``forward(*tensors)``.

    Captum interpolates its ``inputs`` and repeats ``additional_forward_args`` along the batch
    dimension for every IG step; the book's models take one dict instead. This rebuilds the dict
    from the positional tensors (``keys`` names them, in order) and optionally turns logits into
    probabilities so attributions can be read in either unit.
    """

    def __init__(self, model: nn.Module, keys: Sequence[str], output: str = "logit") -> None:
        if output not in ("logit", "prob"):
            raise ValueError(f"output must be 'logit' or 'prob', got {output!r}")
        self.model = model
        self.keys = tuple(keys)
        self.output = output

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        if len(tensors) != len(self.keys):
            raise TypeError(f"expected tensors for {self.keys}, got {len(tensors)}")
        out = self.model(dict(zip(self.keys, tensors, strict=True)))
        return torch.sigmoid(out) if self.output == "prob" else out


def _split(batch: Batch, key: str) -> tuple[torch.Tensor, list[str], tuple[torch.Tensor, ...]]:
    """The attributed tensor, and every other per-case tensor (to pass through unchanged)."""
    if key not in batch:
        raise KeyError(f"batch has no {key!r} entry (keys: {sorted(batch)})")
    x = batch[key]
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise TypeError(f"batch[{key!r}] must be a batched tensor")
    n = x.shape[0]
    keys, extras = [], []
    for k, v in batch.items():
        if k != key and isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n:
            keys.append(k)
            extras.append(v)
    return x, keys, tuple(extras)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Attributions must be deterministic: dropout off, batch norm on running statistics."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _resolve_target(model: nn.Module, batch: Batch, target: Target) -> Target:
    with torch.no_grad():
        out = model(dict(batch))
    if out.ndim == 1:
        if target not in (None, 0):
            raise ValueError(f"model returns one logit per case; target={target} is meaningless")
        return None
    if out.ndim == 2 and out.shape[1] == 1:
        return 0
    if target is None:
        raise ValueError(
            f"model returns {out.shape[1]} logits per case; pass target=<label index> "
            "to say which one to explain"
        )
    if not 0 <= int(target) < out.shape[1]:
        raise ValueError(f"target={target} out of range for {out.shape[1]} outputs")
    return int(target)


@dataclass
class Attribution:
    """Integrated-gradients result.

    ``attributions`` has the attributed tensor's shape (images: ``(B, 1, H, W)``; text: the
    embedding output ``(B, T, D)``). ``delta`` (``(B,)``) is captum's convergence delta:
    ``sum(attributions) - (f(x) - f(baseline))``, which IG's completeness axiom says is 0; a
    large value means more ``n_steps`` are needed.
    """

    attributions: torch.Tensor
    delta: torch.Tensor

    @property
    def per_token(self) -> torch.Tensor:
        """Signed attribution per token (summed over the embedding dimension), ``(B, T)``."""
        if self.attributions.ndim != 3:
            raise ValueError("per_token needs (B, T, D) text attributions")
        return self.attributions.sum(-1)


def integrated_gradients_image(
    model: nn.Module,
    batch: Batch,
    *,
    target: Target = None,
    baseline: float | torch.Tensor = 0.0,
    n_steps: int = 64,
    image_key: str = "image",
    output: str = "logit",
    internal_batch_size: int | None = None,
) -> Attribution:
    """IG attributions for ``batch[image_key]`` with every other input held fixed.

    ``baseline`` is the reference image (default: all zeros, which after the data layer's
    normalisation is mid-grey). For multi-label models pass ``target`` = the label's column.
    """
    x, keys, extras = _split(batch, image_key)
    with _eval_mode(model):
        tgt = _resolve_target(model, batch, target)
        ig = IntegratedGradients(BatchForward(model, (image_key, *keys), output))
        attr, delta = ig.attribute(
            x.float(),
            baselines=baseline,
            target=tgt,
            additional_forward_args=extras or None,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
    return Attribution(attr.detach(), delta.detach())


def integrated_gradients_text(
    model: nn.Module,
    batch: Batch,
    embedding: nn.Module,
    *,
    target: Target = None,
    baseline_id: int = 0,
    n_steps: int = 64,
    ids_key: str = "input_ids",
    output: str = "logit",
    internal_batch_size: int | None = None,
) -> Attribution:
    """IG over the output of ``embedding`` (captum's ``LayerIntegratedGradients``).

    Token ids cannot be interpolated, their embeddings can: the path runs from the embedding of
    an all-``baseline_id`` sequence (the padding id by default) to the real one, with the
    attention mask and any other input unchanged. Attributions are ``(B, T, D)``; use
    :attr:`Attribution.per_token` or :func:`token_scores` for one number per token.
    """
    ids, keys, extras = _split(batch, ids_key)
    with _eval_mode(model):
        tgt = _resolve_target(model, batch, target)
        lig = LayerIntegratedGradients(BatchForward(model, (ids_key, *keys), output), embedding)
        attr, delta = lig.attribute(
            ids,
            baselines=torch.full_like(ids, baseline_id),
            target=tgt,
            additional_forward_args=extras or None,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
    if attr.ndim != 3:
        raise ValueError(
            f"attributions at {type(embedding).__name__} have shape {tuple(attr.shape)}, not "
            "(B, T, D): pass the per-token embedding layer (an nn.EmbeddingBag pools tokens "
            "away, so it cannot give per-token scores)"
        )
    return Attribution(attr.detach(), delta.detach())


# --------------------------------------------------------------------------------------------
# text: paper 002's per-token scores


def token_scores(rows: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token share of the squared signal: ``sum_d rows[b,t,d]^2``, normalised over ``t``.

    ``rows`` are gradients (paper 002) or IG attributions, ``(B, T, D)``. Padding positions
    (``attention_mask == 0``) get 0 and the rest sum to 1; a sequence with no signal at all is
    left at 0 everywhere rather than divided by zero.
    """
    if rows.ndim != 3:
        raise ValueError(f"rows must be (B, T, D), got shape {tuple(rows.shape)}")
    s = rows.detach().float().pow(2).sum(-1)
    if attention_mask is not None:
        if attention_mask.shape != s.shape:
            raise ValueError(
                f"attention_mask {tuple(attention_mask.shape)} vs tokens {tuple(s.shape)}"
            )
        s = s * (attention_mask > 0)
    total = s.sum(-1, keepdim=True)
    return torch.where(total > 0, s / total.clamp_min(torch.finfo(s.dtype).tiny), s)


def token_gradient_scores(
    model: nn.Module,
    batch: Batch,
    embedding: nn.Module,
    *,
    target: Target = None,
    ids_key: str = "input_ids",
    mask_key: str | None = "attention_mask",
    output: str = "logit",
) -> torch.Tensor:
    """Paper 002's text explanation: plain gradients of the output w.r.t. each word's
    embedding row, squared, summed per row and normalised (``(B, T)``, rows sum to 1).

    The gradient at the embedding output comes from captum's ``LayerGradientXActivation`` with
    ``multiply_by_inputs=False`` (gradient only).
    """
    ids, keys, extras = _split(batch, ids_key)
    with _eval_mode(model):
        tgt = _resolve_target(model, batch, target)
        grad = LayerGradientXActivation(
            BatchForward(model, (ids_key, *keys), output), embedding, multiply_by_inputs=False
        ).attribute(ids, target=tgt, additional_forward_args=extras or None)
    mask = batch.get(mask_key) if mask_key else None
    return token_scores(grad, mask)


def word_scores(
    model: nn.Module,
    token_ids: torch.Tensor,
    itos: Sequence[str],
    targets: Sequence[set[str]] | None = None,
    *,
    embedding: nn.Module | None = None,
    ids_key: str = "token_ids",
) -> pd.DataFrame:
    """Per-word scores (:func:`token_gradient_scores`) of a word-id text model on reports
    ``token_ids`` ``(B, T)`` (0 is padding), with ``itos`` naming the ids.

    One row per report: ``prob`` (the model's sigmoid output), ``words``, ``scores`` (one per
    word, summing to 1), ``top_word``, ``top_hit`` (1 when ``targets[b]``, the report's words
    that name what it shows, holds the top word) and ``chance`` (the share of the report's words
    in ``targets[b]``: the hit rate of a word picked at random). ``embedding``: the layer whose
    rows are scored, by default ``model.text_encoder.embedding``.
    """
    ids = torch.as_tensor(token_ids)
    layer = embedding if embedding is not None else model.text_encoder.embedding
    batch = {ids_key: ids, "attention_mask": (ids != 0).long()}
    model = model.eval()
    scores = token_gradient_scores(model, batch, layer, ids_key=ids_key)
    with torch.no_grad():
        probs = torch.sigmoid(model({ids_key: ids})).numpy()
    out = []
    for j in range(len(ids)):
        n = int((ids[j] != 0).sum())
        ws = [itos[int(t)] for t in ids[j, :n]]
        s = scores[j, :n].numpy()
        target = targets[j] if targets is not None else set()
        top = ws[int(np.argmax(s))] if n else ""
        out.append(
            {
                "prob": float(probs[j]),
                "words": ws,
                "scores": s,
                "top_word": top,
                "top_hit": float(top in target),
                "chance": float(np.mean([w in target for w in ws])) if n else np.nan,
            }
        )
    return pd.DataFrame(out, columns=["prob", "words", "scores", "top_word", "top_hit", "chance"])


# --------------------------------------------------------------------------------------------
# images: paper 002's sight sensitivity


def _as_map(attribution: np.ndarray | torch.Tensor) -> np.ndarray:
    a = attribution.detach().cpu().numpy() if isinstance(attribution, torch.Tensor) else attribution
    a = np.asarray(a, dtype=float)
    if a.ndim == 3:  # (C, H, W): channels add up (IG attributions are additive)
        a = a.sum(0)
    if a.ndim != 2:
        raise ValueError(f"attribution must be (H, W) or (C, H, W), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("attribution map contains non-finite values")
    return a


def _ward_auto(
    points: np.ndarray, max_clusters: int, min_silhouette: float, seed: int
) -> np.ndarray:
    """Ward clustering with the number of clusters chosen by the silhouette score.

    Paper 002 clusters by an information-loss (Ward) criterion but does not say how many
    clusters; the silhouette picks the k in 2..max_clusters that separates best, and a single
    cluster is kept when even the best split is poor (silhouette < ``min_silhouette``).
    """
    best_k, best_s, best_labels = 1, -1.0, np.zeros(len(points), dtype=int)
    for k in range(2, min(max_clusters, len(points) - 1) + 1):
        labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(points)
        s = silhouette_score(points, labels, sample_size=min(len(points), 2000), random_state=seed)
        if s > best_s:
            best_k, best_s, best_labels = k, s, labels
    return best_labels if best_k > 1 and best_s >= min_silhouette else np.zeros(len(points), int)


def sight_sensitivity(
    attribution: np.ndarray | torch.Tensor,
    threshold: float,
    *,
    relative: bool = True,
    signal: str = "positive",
    method: str = "ward",
    n_clusters: int | None = None,
    distance_threshold: float | None = None,
    max_clusters: int = 8,
    min_silhouette: float = 0.5,
    eps: float = 2.0,
    min_samples: int = 5,
    max_points: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Bounding circles around clusters of strong attribution (paper 002, section 3.1).

    1. ``signal="positive"`` keeps attributions pushing towards the class, ``"absolute"`` both
       signs; every pixel whose signal exceeds the threshold is a point on the image plane
       (``relative=True``: the threshold is a fraction of the map's maximum signal, so one value
       works across images; otherwise it is in attribution units). A higher threshold (higher
       "sight sensitivity") trades true positive pixels for less structured noise.
    2. Points are clustered: ``method="ward"`` (the paper's information-loss criterion) with
       ``n_clusters`` or a ``distance_threshold``, else the count is chosen by silhouette;
       ``method="dbscan"`` groups points within ``eps`` pixels and drops isolated ones as noise.
    3. Each cluster gives a circle: centre = centroid of its points, radius = distance to the
       farthest point.

    Returns one row per circle, strongest first: ``x, y`` (column, row of the centre),
    ``radius``, ``n_points``, ``attribution`` (summed signal). ``attrs`` records the absolute
    cut, the number of points and (DBSCAN) of noise points.
    """
    a = _as_map(attribution)
    if signal == "positive":
        sig = np.clip(a, 0, None)
    elif signal == "absolute":
        sig = np.abs(a)
    else:
        raise ValueError(f"signal must be 'positive' or 'absolute', got {signal!r}")
    if relative and not 0 <= threshold < 1:
        raise ValueError(
            f"a relative threshold is a fraction of the maximum in [0, 1), got {threshold}"
        )
    cut = threshold * sig.max() if relative else threshold
    rows, cols = np.nonzero(sig > cut)
    points = np.column_stack([cols, rows]).astype(float)  # (x, y)
    weights = sig[rows, cols]
    columns = ["x", "y", "radius", "n_points", "attribution"]
    attrs = {"cut": float(cut), "n_points": len(points), "n_noise": 0, "method": method}
    if len(points) == 0:
        out = pd.DataFrame(columns=columns)
        out.attrs.update(attrs)
        return out
    if len(points) > max_points:
        raise ValueError(
            f"{len(points)} pixels pass the threshold (> max_points={max_points}); raise the "
            "sight-sensitivity threshold or max_points"
        )
    if method == "ward":
        if len(points) < 3:
            labels = np.zeros(len(points), dtype=int)
        elif n_clusters is not None or distance_threshold is not None:
            labels = AgglomerativeClustering(
                n_clusters=None if distance_threshold is not None else min(n_clusters, len(points)),
                distance_threshold=distance_threshold,
                linkage="ward",
            ).fit_predict(points)
        else:
            labels = _ward_auto(points, max_clusters, min_silhouette, seed)
    elif method == "dbscan":
        labels = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(points)
        attrs["n_noise"] = int((labels == -1).sum())
    else:
        raise ValueError(f"method must be 'ward' or 'dbscan', got {method!r}")
    circles = []
    for lab in np.unique(labels[labels >= 0]):
        pts = points[labels == lab]
        centre = pts.mean(0)
        circles.append(
            {
                "x": float(centre[0]),
                "y": float(centre[1]),
                "radius": float(np.sqrt(((pts - centre) ** 2).sum(1)).max()),
                "n_points": len(pts),
                "attribution": float(weights[labels == lab].sum()),
            }
        )
    out = pd.DataFrame(circles, columns=columns)
    out = out.sort_values("attribution", ascending=False, ignore_index=True)
    out.attrs.update(attrs)
    return out


# --------------------------------------------------------------------------------------------
# drawing


def _image2d(image: np.ndarray | torch.Tensor) -> np.ndarray:
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    a = np.squeeze(np.asarray(a, dtype=float))
    if a.ndim != 2:
        raise ValueError(f"expected a single-channel image, got shape {np.shape(image)}")
    return a


def plot_attribution(
    image: np.ndarray | torch.Tensor,
    attribution: np.ndarray | torch.Tensor,
    *,
    circles: pd.DataFrame | None = None,
    ax: Axes | None = None,
    alpha: float = 0.5,
    cmap: str = "inferno",
    signal: str = "positive",
    title: str | None = None,
) -> Figure:
    """The image in grey with the attribution map on top (and sight-sensitivity circles).

    A coarser map (attention over a feature grid) is upsampled bilinearly to the image.
    """
    img = _image2d(image)
    amap = upsample(_as_map(attribution), img.shape)
    amap = np.clip(amap, 0, None) if signal == "positive" else np.abs(amap)
    with style():
        if ax is None:
            fig = Figure(figsize=(4, 4 * img.shape[0] / img.shape[1]))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        ax.imshow(img, cmap="gray")
        shown = np.ma.masked_where(amap <= 0, amap)
        im = ax.imshow(shown, cmap=cmap, alpha=alpha, vmin=0, vmax=amap.max() or 1.0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attribution")
        if circles is not None:
            for _, c in circles.iterrows():
                ax.add_patch(
                    Circle((c["x"], c["y"]), c["radius"], fill=False, lw=1.5, edgecolor="#00e5ff")
                )
        ax.set_axis_off()
        if title:
            ax.set_title(title)
    return fig


def sensitivity_explorer(
    images: Sequence[np.ndarray], maps: Mapping[str, Sequence[np.ndarray]],
    masks: Sequence[np.ndarray] | None, sensitivities: Sequence[float], **circle_kwargs: object,
):  # fmt: skip
    """Pick an image, an attribution method and a sight sensitivity and see the circles
    (:func:`sight_sensitivity` on the positive part of the map, :func:`plot_attribution`),
    the lesion ``masks`` outlined in green when given (ipywidgets: JupyterLab only)."""
    import ipywidgets as w
    from IPython.display import display

    def show(image: int, method: str, sensitivity: float) -> None:
        a = np.clip(maps[method][image], 0, None)
        circles = sight_sensitivity(a, sensitivity, **circle_kwargs)
        fig = plot_attribution(images[image], a, circles=circles, title=method)
        if masks is not None and np.asarray(masks[image]).any():
            fig.axes[0].contour(np.asarray(masks[image], dtype=float), levels=[0.5],
                                colors="#39ff14", linewidths=1.0)  # fmt: skip
        display(fig)

    return w.interactive(
        show,
        image=w.IntSlider(0, 0, len(images) - 1),
        method=w.Dropdown(options=list(maps)),
        sensitivity=w.FloatSlider(
            value=float(np.median(sensitivities)), min=0.0, max=0.95, step=0.05
        ),  # fmt: skip
    )


class TokenHTML(str):
    """An HTML string that notebooks render (``_repr_html_``) and tests can read as text."""

    def _repr_html_(self) -> str:
        return str(self)


def _colour(score: float, vmax: float, cmap: str) -> str:
    frac = 0.0 if vmax <= 0 else min(max(score / vmax, 0.0), 1.0)
    return mcolors.to_hex(colormaps[cmap](frac))


def token_scores_html(
    tokens: Sequence[str],
    scores: Sequence[float] | torch.Tensor,
    *,
    cmap: str = "Reds",
    show_scores: bool = False,
) -> TokenHTML:
    """Words with background colours by score (paper 002, Figure 3), for a notebook cell.

    The colour scale runs from 0 to the largest score, so the most important word is the
    darkest; the score is in each word's tooltip (and inline with ``show_scores``).
    """
    s = [float(v) for v in (scores.tolist() if isinstance(scores, torch.Tensor) else scores)]
    if len(s) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(s)} scores")
    vmax = max(s, default=0.0)
    spans = []
    for tok, v in zip(tokens, s, strict=True):
        bg = _colour(v, vmax, cmap)
        fg = "#fff" if vmax > 0 and v / vmax > 0.6 else "#000"
        label = html.escape(tok) + (f"<sub>{v:.2f}</sub>" if show_scores else "")
        spans.append(
            f'<span title="{v:.3f}" style="background:{bg};color:{fg};padding:1px 3px;'
            f'margin:1px;border-radius:3px;display:inline-block">{label}</span>'
        )
    return TokenHTML(
        '<div style="line-height:1.9;font-family:sans-serif">' + " ".join(spans) + "</div>"
    )


def plot_token_scores(
    tokens: Sequence[str],
    scores: Sequence[float] | torch.Tensor,
    *,
    cmap: str = "Reds",
    width: int = 80,
    title: str | None = None,
) -> Figure:
    """Matplotlib fallback of :func:`token_scores_html` (for PDFs and static pages).

    Words are laid out in a monospace font, wrapped at ``width`` characters per line, each on a
    box coloured by its score.
    """
    s = [float(v) for v in (scores.tolist() if isinstance(scores, torch.Tensor) else scores)]
    if len(s) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(s)} scores")
    vmax = max(s, default=0.0)
    lines: list[list[tuple[int, str, float]]] = [[]]
    col = 0
    for tok, v in zip(tokens, s, strict=True):
        if col and col + len(tok) > width:
            lines.append([])
            col = 0
        lines[-1].append((col, tok, v))
        col += len(tok) + 1
    with style():
        fig = Figure(figsize=(0.1 * width, 0.3 * len(lines) + 0.4))
        ax = fig.add_subplot()
        ax.set_xlim(0, width)
        ax.set_ylim(len(lines), 0)
        ax.set_axis_off()
        for i, line in enumerate(lines):
            for c, tok, v in line:
                ax.text(
                    c,
                    i + 0.5,
                    tok,
                    family="monospace",
                    va="center",
                    ha="left",
                    fontsize=9,
                    bbox={"facecolor": _colour(v, vmax, cmap), "edgecolor": "none", "pad": 1.5},
                )
        if title:
            ax.set_title(title)
    return fig


# --------------------------------------------------------------------------------------------
# baselines to integrated gradients, and the sight-sensitivity sweep against known lesions

#: The image attributions of :func:`attribution_maps`, in the order it computes them.
IMAGE_METHODS = ("integrated gradients", "gradient", "grad-cam")
#: The columns of :func:`sensitivity_sweep`'s two tables.
SWEEP_COLUMNS = (
    ("method", "threshold", "image", "hit", "n_circles", "true_circles", "false_circles",
     "covered", "precision"),
    ("method", "image", "pointing"),
)  # fmt: skip


def gradient_image(
    model: nn.Module,
    batch: Batch,
    *,
    target: Target = None,
    image_key: str = "image",
    output: str = "logit",
) -> torch.Tensor:
    """Plain (signed) input gradient of the output, ``(B, 1, H, W)``: IG's one-step baseline.

    Paper 002 calls IG's attributions "partial gradients"; the raw gradient is what IG improves
    on (it is local, so it saturates and is noisy), hence the comparison. captum's ``Saliency``
    with ``abs=False`` keeps the sign, so ``signal="positive"`` means the same as for IG.
    """
    from captum.attr import Saliency

    x, keys, extras = _split(batch, image_key)
    with _eval_mode(model):
        tgt = _resolve_target(model, batch, target)
        inp = x.detach().float().clone().requires_grad_(True)  # captum warns otherwise
        grad = Saliency(BatchForward(model, (image_key, *keys), output)).attribute(
            inp, target=tgt, abs=False, additional_forward_args=extras or None
        )
    return grad.detach()


def grad_cam_image(
    model: nn.Module,
    batch: Batch,
    layer: nn.Module,
    *,
    target: Target = None,
    image_key: str = "image",
    output: str = "logit",
) -> torch.Tensor:
    """Grad-CAM (captum ``LayerGradCam``) at ``layer``, ReLU'd and upsampled to the image,
    ``(B, 1, H, W)``.

    A class-activation map lives on the coarse grid of the layer (1/32 of the image for a
    DenseNet's last block), so it is smooth by construction: the point of comparing it with
    IG's pixel-level map under the same sight-sensitivity clustering.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    x, keys, extras = _split(batch, image_key)
    with _eval_mode(model):
        tgt = _resolve_target(model, batch, target)
        cam = LayerGradCam(BatchForward(model, (image_key, *keys), output), layer).attribute(
            x.float(), target=tgt, additional_forward_args=extras or None, relu_attributions=True
        )
    up = LayerAttribution.interpolate(cam.detach().float(), tuple(x.shape[-2:]), "bilinear")
    return up


def sensitivity_sweep(
    maps: Mapping[str, Sequence[np.ndarray | torch.Tensor]],
    masks: Sequence[np.ndarray] | None,
    thresholds: Sequence[float],
    *,
    tolerance: int = 0,
    **circle_kwargs: object,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paper 002's detector at every sight sensitivity, scored against known lesion masks.

    ``maps`` holds one attribution map per image for each method (e.g. ``{"integrated
    gradients": [...], "gradient": [...], "grad-cam": [...]}``), aligned with ``masks``.
    Returns ``(circles, pointing)``: one row per method, threshold and image with
    :func:`mmcxr.localization.circle_localization`'s columns, and one row per method and image
    with its pointing-game score (which needs no threshold); ``tolerance`` grows the lesion
    masks for both (pixels). ``circle_kwargs`` go to
    :func:`sight_sensitivity` (clustering method, ``max_clusters`` ...). Without lesion masks
    (``masks=None``: a real root has none) both tables are empty, with their columns.
    """
    from mmcxr.localization import circle_localization, pointing_game

    if masks is None:
        return tuple(pd.DataFrame(columns=list(cols)) for cols in SWEEP_COLUMNS)

    rows, points = [], []
    for method, method_maps in maps.items():
        if len(method_maps) != len(masks):
            raise ValueError(f"{method}: {len(method_maps)} maps for {len(masks)} masks")
        for i, (amap, mask) in enumerate(zip(method_maps, masks, strict=True)):
            a = _as_map(amap)
            if a.shape != np.shape(mask):
                raise ValueError(
                    f"{method}: map {i} has shape {a.shape}, its mask {np.shape(mask)}; "
                    "upsample maps to the image first"
                )
            points.append(
                {"method": method, "image": i, "pointing": pointing_game(a, mask, tolerance)}
            )
            for t in thresholds:
                circles = sight_sensitivity(a, float(t), **circle_kwargs)
                rows.append(
                    {"method": method, "threshold": float(t), "image": i}
                    | circle_localization(circles, mask, tolerance)
                )
    return pd.DataFrame(rows), pd.DataFrame(points)


# --------------------------------------------------------------------------------------------
# the three image attributions of an image classifier


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads in a classifier's ``image_encoder``: a DenseNet's final norm
    (its last map), a ResNet's ``layer4``."""
    enc = model.image_encoder
    if hasattr(enc, "features") and hasattr(enc.features, "norm5"):
        return enc.features.norm5
    return enc.layer4


def cam_grid(model: nn.Module, image_size: int, image_key: str = "image") -> int:
    """Cells a side of the map Grad-CAM reads (:func:`cam_layer`) for a square image."""
    grid: list[int] = []
    hook = cam_layer(model).register_forward_hook(lambda m, i, o: grid.append(o.shape[-1]))
    try:
        with torch.no_grad():
            model.eval()({image_key: torch.zeros(1, 1, image_size, image_size)})
    finally:
        hook.remove()
    return grid[0]


def attribution_maps(
    model: nn.Module,
    ds: Sequence[Mapping[str, torch.Tensor]],
    *,
    ig_steps: int = 32,
    batch_size: int = 8,
    image_key: str = "image",
) -> dict[str, list[np.ndarray]]:
    """For each image of ``ds`` (items holding ``image_key``): integrated gradients (from a
    black image), the plain gradient and Grad-CAM (at :func:`cam_layer`), each an ``(H, W)``
    map of the output logit, keyed by :data:`IMAGE_METHODS`."""
    from mmcxr.data.datasets import IMAGE_MEAN, IMAGE_STD

    black = (0.0 - IMAGE_MEAN) / IMAGE_STD  # the letterbox's padding, after normalisation
    maps: dict[str, list[np.ndarray]] = {m: [] for m in IMAGE_METHODS}
    model = model.eval()
    for start in range(0, len(ds), batch_size):
        batch = torch.utils.data.default_collate(
            [ds[i] for i in range(start, min(len(ds), start + batch_size))]
        )
        batch = {image_key: batch[image_key]}
        ig = integrated_gradients_image(
            model, batch, baseline=black, n_steps=ig_steps, image_key=image_key
        )
        grad = gradient_image(model, batch, image_key=image_key)
        cam = grad_cam_image(model, batch, cam_layer(model), image_key=image_key)
        for name, a in zip(IMAGE_METHODS, (ig.attributions, grad, cam), strict=True):
            maps[name] += [m.sum(0).numpy() for m in a]
    return maps
