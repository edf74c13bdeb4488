"""The book's figures: ROC curves, confusion matrices, training curves, label counts, images.

Every function returns a :class:`matplotlib.figure.Figure` built directly (not through
``pyplot``), so nothing accumulates in pyplot's global figure list during long notebooks and a
returned figure is displayed exactly once. All drawing happens inside :func:`style`, one set of
rc parameters for the whole book; pass ``ax=`` to draw into a panel of a larger figure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mmcxr.metrics import RocCurve, roc_curve

PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#F0E442",
    "#000000",
)
"""Okabe-Ito colour-blind-safe palette, the default colour cycle."""

RC = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "image.interpolation": "nearest",
    "axes.prop_cycle": mpl.cycler(color=list(PALETTE)),
}

LABEL_STATES = {"positive": 1.0, "uncertain": -1.0, "negative": 0.0}
"""CheXpert label values: 1 positive, -1 uncertain, 0 negative, blank = not mentioned."""


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The book's matplotlib rc parameters, applied for the duration of the block."""
    with mpl.rc_context(RC):
        yield


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _to_numpy_image(image: np.ndarray | torch.Tensor) -> np.ndarray:
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    a = np.squeeze(a)
    if a.ndim != 2:
        raise ValueError(
            f"expected a single-channel image (H, W) or (1, H, W), got {np.shape(image)}"
        )
    return a


# --------------------------------------------------------------------------------------------
# performance


def plot_roc(
    runs: Mapping[str, RocCurve | tuple[Sequence[float], Sequence[float]]],
    *,
    ax: Axes | None = None,
    title: str | None = "ROC",
) -> Figure:
    """ROC curves of several runs (or labels) on one axes, AUROC in the legend.

    Values are :class:`~mmcxr.metrics.RocCurve` or ``(y_true, prob)`` pairs.
    """
    if not runs:
        raise ValueError("no runs to plot")
    with style():
        fig, ax = _figure_and_axes(ax, (4.5, 4.2))
        for name, r in runs.items():
            curve = r if isinstance(r, RocCurve) else roc_curve(*r)
            ax.plot(curve.fpr, curve.tpr, lw=1.6, label=f"{name} (AUROC {curve.auroc:.3f})")
        ax.plot([0, 1], [0, 1], ls="--", lw=1, color="grey", label="chance")
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.01),
            xlabel="false positive rate",
            ylabel="true positive rate",
            aspect="equal",
        )
        if title:
            ax.set_title(title)
        ax.legend(loc="lower right")
    return fig


def plot_confusion(
    cm: pd.DataFrame | np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    normalize: bool = False,
    ax: Axes | None = None,
    title: str | None = None,
    cmap: str = "Blues",
) -> Figure:
    """Annotated confusion matrix (rows true, columns predicted).

    ``normalize=True`` shows each row as fractions of that true class (recall per class), with
    the counts still printed underneath.
    """
    if isinstance(cm, pd.DataFrame):
        counts = cm.to_numpy()
        names = list(class_names) if class_names is not None else [str(c) for c in cm.columns]
    else:
        counts = np.asarray(cm)
        names = (
            list(class_names) if class_names is not None else [str(i) for i in range(len(counts))]
        )
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or len(names) != len(counts):
        raise ValueError(f"need a square matrix with one name per class, got {counts.shape}")
    shown = counts.astype(float)
    if normalize:
        totals = shown.sum(1, keepdims=True)
        shown = np.divide(shown, totals, out=np.zeros_like(shown), where=totals > 0)
    k = len(names)
    with style():
        fig, ax = _figure_and_axes(ax, (1.1 * k + 2, 1.0 * k + 1.5))
        im = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1 if normalize else max(shown.max(), 1))
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(
            range(k), names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center"
        )
        ax.set_yticks(range(k), names)
        ax.set(xlabel="predicted", ylabel="true")
        cut = shown.max() / 2
        for i in range(k):
            for j in range(k):
                text = f"{shown[i, j]:.2f}\n({counts[i, j]})" if normalize else f"{counts[i, j]}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if shown[i, j] > cut else "black",
                )
        if title:
            ax.set_title(title)
    return fig


def plot_training_curves(history: Any, *, title: str | None = None) -> Figure:
    """Loss per epoch (train and validation) and, in a second panel, any other logged metrics.

    ``history`` is a DataFrame (or ``mmcxr.train.History``, whose ``.table`` is one) with an
    ``epoch`` column, ``train_loss``/``val_loss`` and optionally more ``train_*``/``val_*``
    columns (accuracy, AUROC ...).
    """
    h = pd.DataFrame(getattr(history, "table", history))
    if "epoch" not in h.columns:
        raise ValueError(f"history needs an 'epoch' column, has {list(h.columns)}")
    losses = [c for c in ("train_loss", "val_loss") if c in h.columns]
    if not losses:
        raise ValueError(f"history needs train_loss and/or val_loss, has {list(h.columns)}")
    others = [
        c
        for c in h.columns
        if c.startswith(("train_", "val_"))
        and c not in losses
        and pd.api.types.is_numeric_dtype(h[c])
    ]
    with style():
        fig = Figure(figsize=(4.5 * (1 + bool(others)), 3.4), layout="constrained")
        axes = fig.subplots(1, 1 + bool(others), squeeze=False)[0]
        for c in losses:
            axes[0].plot(h["epoch"], h[c], marker="o", ms=3, label=c.replace("_", " "))
        axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
        axes[0].legend()
        if others:
            for c in others:
                axes[1].plot(h["epoch"], h[c], marker="o", ms=3, label=c.replace("_", " "))
            axes[1].set(xlabel="epoch", ylabel="value", title="metrics")
            axes[1].legend()
        if title:
            fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------
# data


def label_counts(df: pd.DataFrame, label_cols: Sequence[str]) -> pd.DataFrame:
    """Counts of positive (1), uncertain (-1), negative (0) and blank (NaN) per label column.

    Any other value is an error: it would mean the label table was mis-parsed.
    """
    missing = [c for c in label_cols if c not in df.columns]
    if missing:
        raise KeyError(f"label columns not in the table: {missing}")
    rows = {}
    for c in label_cols:
        v = pd.to_numeric(df[c], errors="raise")
        bad = v.notna() & ~v.isin(list(LABEL_STATES.values()))
        if bad.any():
            raise ValueError(
                f"column {c!r} has values other than 1/0/-1/blank: {sorted(v[bad].unique())[:5]}"
            )
        rows[c] = {state: int((v == code).sum()) for state, code in LABEL_STATES.items()}
        rows[c]["blank"] = int(v.isna().sum())
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "label"
    return out


def plot_label_histogram(
    df: pd.DataFrame,
    label_cols: Sequence[str],
    *,
    sort: bool = True,
    ax: Axes | None = None,
    title: str | None = "Label counts",
) -> Figure:
    """Stacked bars of positive / uncertain / negative counts per label (MEEMS Figure 1)."""
    counts = label_counts(df, label_cols)
    if sort:
        counts = counts.sort_values("positive", ascending=False)
    colours = {"positive": PALETTE[1], "uncertain": PALETTE[4], "negative": PALETTE[0]}
    with style():
        fig, ax = _figure_and_axes(ax, (max(5.0, 0.45 * len(counts) + 1.5), 3.8))
        bottom = np.zeros(len(counts))
        x = np.arange(len(counts))
        for state in ("positive", "uncertain", "negative"):
            ax.bar(x, counts[state], bottom=bottom, color=colours[state], label=state, width=0.75)
            bottom += counts[state].to_numpy()
        ax.set_xticks(x, counts.index, rotation=60, ha="right")
        ax.set_ylabel("images")
        ax.grid(axis="x", visible=False)
        ax.legend()
        if title:
            ax.set_title(title)
    return fig


def plot_image_grid(
    images: Sequence[np.ndarray | torch.Tensor],
    captions: Sequence[str] | None = None,
    *,
    ncols: int = 4,
    panel_size: float = 2.4,
    cmap: str = "gray",
    wrap: int = 40,
) -> Figure:
    """Images in a grid with optional captions (wrapped at ``wrap`` characters)."""
    import textwrap

    if len(images) == 0:
        raise ValueError("no images to show")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    ncols = max(1, min(ncols, len(images)))
    nrows = -(-len(images) // ncols)
    with style():
        fig = Figure(figsize=(panel_size * ncols, (panel_size + 0.5) * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for i, ax in enumerate(axes):
            ax.set_axis_off()
            if i >= len(images):
                continue
            ax.imshow(_to_numpy_image(images[i]), cmap=cmap)
            if captions is not None:
                ax.set_title(textwrap.fill(str(captions[i]), wrap), fontsize=8)
    return fig


def plot_boxes(
    image: np.ndarray | torch.Tensor,
    boxes: Mapping[str, Sequence[float]] | Sequence[Sequence[float]],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    cmap: str = "gray",
) -> Figure:
    """Boxes ``(x1, y1, x2, y2)`` (pixels, half-open) drawn over an image, named if a mapping."""
    img = _to_numpy_image(image)
    named = list(boxes.items()) if isinstance(boxes, Mapping) else [(None, b) for b in boxes]
    with style():
        fig, ax = _figure_and_axes(ax, (4.0, 4.0 * img.shape[0] / img.shape[1]))
        ax.imshow(img, cmap=cmap)
        ax.set_axis_off()
        for i, (name, b) in enumerate(named):
            if len(b) != 4:
                raise ValueError(f"box {name or i} must be (x1, y1, x2, y2), got {b}")
            x1, y1, x2, y2 = (float(v) for v in b)
            colour = PALETTE[i % len(PALETTE)]
            ax.add_patch(
                Rectangle(
                    (x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, lw=1.5, edgecolor=colour
                )
            )
            if name:
                ax.text(x1, y1 - 2, str(name), color=colour, fontsize=8, va="bottom")
        if title:
            ax.set_title(title)
    return fig
