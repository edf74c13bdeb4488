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


def label_cooccurrence(df: pd.DataFrame, label_cols: Sequence[str]) -> pd.DataFrame:
    """``P(column positive | row positive)``: each row is a share of that row label's positives.

    Read a row as "of the rows positive for this label, the share also positive for each
    column"; only 1.0 counts as positive (uncertain -1.0 does not). A label with no positives
    gets a row of NaN: undefined, not zero.
    """
    missing = [c for c in label_cols if c not in df.columns]
    if missing:
        raise KeyError(f"label columns not in the table: {missing}")
    pos = (df[list(label_cols)] == 1.0).astype(float)
    counts = pos.T @ pos
    n = np.diag(counts.to_numpy())
    out = counts.div(np.where(n > 0, n, np.nan), axis=0)
    out.index.name, out.columns.name = "given", "also positive"
    return out


def plot_cooccurrence(
    matrix: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Heat map of :func:`label_cooccurrence`, each off-diagonal share printed in its cell.

    The diagonal (always 1) is left unprinted so that the eye goes to the pairs.
    """
    k = len(matrix)
    with style():
        fig, ax = _figure_and_axes(ax, (0.5 * k + 3.2, 0.45 * k + 1.8))
        im = ax.imshow(matrix.to_numpy(dtype=float), cmap="Blues", vmin=0, vmax=1)
        ax.grid(False)
        ax.set_xticks(range(k), matrix.columns, rotation=60, ha="right")
        ax.set_yticks(range(k), matrix.index)
        ax.set(xlabel="also positive", ylabel="given positive")
        for i in range(k):
            for j in range(k):
                v = matrix.iat[i, j]
                if np.isfinite(v) and i != j:
                    text = f"{v:.2f}"[1:] if v < 1 else "1"  # ".37": 2 characters fit a cell
                    colour = "white" if v > 0.5 else "black"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="share of the row's positives")
        if title:
            ax.set_title(title)
    return fig


def plot_score_pairs(
    table: pd.DataFrame,
    columns: Mapping[str, str],
    *,
    chance: float | None = 0.5,
    xlabel: str = "AUROC",
    title: str | None = None,
) -> Figure:
    """Scores in [0, 1] of several models per row of ``table``, as grouped horizontal bars.

    ``columns`` maps score columns to their names in the legend. Rows are sorted by the first
    column, whose bars (the lowest of each group) carry their values, so the figure reads as a
    ranking of the rows by that model with the others beside it; ``chance`` draws a dashed
    line. The x axis starts 0.05 below the lowest score or below 0.4, whichever is lower
    (never below 0), so that differences between good scores stay visible.
    """
    if not len(table) or not columns:
        raise ValueError("no rows or no score columns to plot")
    names = list(columns)
    t = table.sort_values(names[0])
    y = np.arange(len(t))
    h = 0.8 / len(names)
    with style():
        fig = Figure(figsize=(6.0, 0.19 * len(names) * len(t) + 1.7), layout="constrained")
        ax = fig.add_subplot()
        for i, col in enumerate(names):
            bars = ax.barh(y - 0.4 + h * (i + 0.5), t[col], height=h, label=columns[col])
            if i == 0:
                ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
        if chance is not None:
            ax.axvline(chance, color="grey", ls="--", lw=1, label="chance")
        low = np.nanmin(t[names].to_numpy(dtype=float), initial=0.4)
        ax.set(xlim=(max(0.0, min(0.4, low - 0.05)), 1.04), xlabel=xlabel)
        ax.set_yticks(y, t.index)
        ax.grid(axis="y", visible=False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncols=len(names) + 1)
        if title:
            ax.set_title(title, loc="left")
    return fig


# --------------------------------------------------------------------------------------------
# images


Box = Sequence[float]
"""``(x1, y1, x2, y2)`` in pixels of the image it is drawn on, half-open (the GT tables' form)."""

Boxes = Mapping[str, Box] | Sequence[Box]
"""The boxes of one image: named (a mapping, in drawing order) or not (a sequence)."""


def _named_boxes(boxes: Boxes | None) -> list[tuple[str | None, tuple[float, ...]]]:
    """``(name or None, box)`` pairs, each box checked to have four corners."""
    if boxes is None:
        return []
    items = list(boxes.items()) if isinstance(boxes, Mapping) else [(None, b) for b in boxes]
    out = []
    for i, (name, b) in enumerate(items):
        if len(b) != 4:
            raise ValueError(f"box {name or i} must be (x1, y1, x2, y2), got {b}")
        out.append((None if name is None else str(name), tuple(float(v) for v in b)))
    return out


def _draw_image(
    ax: Axes,
    image: np.ndarray | torch.Tensor,
    cmap: str,
    value_range: tuple[float, float] | None,
) -> None:
    lo, hi = value_range if value_range is not None else (None, None)
    ax.imshow(_to_numpy_image(image), cmap=cmap, vmin=lo, vmax=hi)
    ax.set_axis_off()


def _draw_boxes(
    ax: Axes, named: Sequence[tuple[str | None, tuple[float, ...]]], *, legend: bool
) -> None:
    """Outline each box in its palette colour; name it beside the box or in a legend below."""
    in_legend = []
    for i, (name, (x1, y1, x2, y2)) in enumerate(named):
        colour = PALETTE[i % len(PALETTE)]
        # pixel x covers x - 0.5 .. x + 0.5, so a half-open box is outlined at its pixel edges
        rect = Rectangle(
            (x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, lw=1.5, edgecolor=colour, label=name
        )
        ax.add_patch(rect)
        if name and legend:
            in_legend.append(rect)
        elif name:
            ax.text(x1, y1 - 2, name, color=colour, fontsize=8, va="bottom")
    if in_legend:
        ax.legend(
            handles=in_legend,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            fontsize=7,
            handlelength=1.2,
        )


def _wrap_lines(text: str, width: int) -> str:
    """Wrap each line of ``text`` on its own, so that its line breaks are kept."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) or line for line in text.splitlines())


def plot_image_grid(
    images: Sequence[np.ndarray | torch.Tensor],
    captions: Sequence[str] | None = None,
    *,
    ncols: int = 4,
    panel_size: float = 2.4,
    cmap: str = "gray",
    wrap: int = 40,
    boxes: Sequence[Boxes | None] | None = None,
    legend: bool = False,
    value_range: tuple[float, float] | None = None,
) -> Figure:
    """Images in a grid, each with an optional caption and optional boxes drawn over it.

    Each line of a caption is wrapped at ``wrap`` characters on its own, so a caption can set
    a heading ("PA: Edema") over a quote. ``boxes`` gives each image its boxes in the form
    :func:`plot_boxes` takes (None or empty: none); ``legend=True`` names them in a legend
    under their panel instead of beside each box, which stays legible where boxes overlap
    (anatomical regions do). Each image is stretched to its own min..max unless
    ``value_range=(lo, hi)`` fixes one grey scale for all: ``(0, 1)`` for display-ready
    images, so that a window's black and white stay black and white. Rows are made taller
    for long captions and legends, so the images keep ``panel_size``.
    """
    images = list(images)
    n = len(images)
    if n == 0:
        raise ValueError("no images to show")
    if captions is not None and len(captions) != n:
        raise ValueError(f"{n} images but {len(captions)} captions")
    if boxes is not None and len(boxes) != n:
        raise ValueError(f"{n} images but {len(boxes)} sets of boxes")
    titles = [_wrap_lines(str(c), wrap) for c in captions] if captions is not None else [None] * n
    named = [_named_boxes(b) for b in boxes] if boxes is not None else [[]] * n
    lines = max((t.count("\n") + 1 for t in titles if t), default=0)
    entries = max(sum(name is not None for name, _ in b) for b in named) if legend else 0
    extra = max(0.5, 0.25 + 0.14 * lines + 0.17 * entries)  # inches per row under the image
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    with style():
        fig = Figure(
            figsize=(panel_size * ncols, (panel_size + extra) * nrows), layout="constrained"
        )
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[n:]:
            ax.set_axis_off()
        for ax, image, title, b in zip(axes, images, titles, named, strict=False):
            _draw_image(ax, image, cmap, value_range)
            _draw_boxes(ax, b, legend=legend)
            if title is not None:
                ax.set_title(title, fontsize=8)
    return fig


def plot_boxes(
    image: np.ndarray | torch.Tensor,
    boxes: Boxes,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    cmap: str = "gray",
    legend: bool = False,
    value_range: tuple[float, float] | None = None,
) -> Figure:
    """Boxes ``(x1, y1, x2, y2)`` (pixels, half-open) drawn over an image, named if a mapping.

    Names are written beside their boxes, or with ``legend=True`` in a legend under the image
    (legible where boxes overlap); ``value_range`` as in :func:`plot_image_grid`. For many
    images with boxes, :func:`plot_image_grid` takes ``boxes=`` per image.
    """
    img = _to_numpy_image(image)
    named = _named_boxes(boxes)
    n_names = sum(name is not None for name, _ in named) if legend else 0
    height = 4.0 * img.shape[0] / img.shape[1] + (0.2 + 0.17 * n_names if n_names else 0.0)
    with style():
        fig, ax = _figure_and_axes(ax, (4.0, height))
        _draw_image(ax, img, cmap, value_range)
        _draw_boxes(ax, named, legend=legend)
        if title:
            ax.set_title(title)
    return fig


# --------------------------------------------------------------------------------------------
# grids of panels over a tidy table (one panel per combination of facet values)


def panels(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows x ncols`` panels of ``size`` inches each (axes always 2-D)."""
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _levels(table: pd.DataFrame, column: str, order: Sequence[Any] | None) -> list[Any]:
    return list(order) if order is not None else list(pd.unique(table[column]))


def _select(table: pd.DataFrame, **values: Any) -> pd.DataFrame:
    mask = pd.Series(True, index=table.index)
    for col, v in values.items():
        mask &= table[col] == v
    return table[mask]


def _name(names: Mapping[Any, str] | None, value: Any) -> str:
    return str((names or {}).get(value, value))


def roc_grid(
    predictions: pd.DataFrame,
    *,
    row: str,
    col: str,
    hue: str,
    orders: Mapping[str, Sequence[Any]] | None = None,
    names: Mapping[Any, str] | None = None,
    size: float = 4.0,
) -> Figure:
    """ROC curves of ``hue`` groups, one panel per (``row``, ``col``) value.

    ``predictions``: one row per case with ``label`` and ``prob`` and the facet columns.
    ``orders`` fixes the order of a facet's values, ``names`` how values are printed.
    """
    orders = orders or {}
    rows, cols = (
        _levels(predictions, row, orders.get(row)),
        _levels(predictions, col, orders.get(col)),
    )
    hues = _levels(predictions, hue, orders.get(hue))
    with style():
        fig, axes = panels(len(rows), len(cols), (size, size))
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                part = _select(predictions, **{row: r, col: c})
                curves = {
                    _name(names, h): (g["label"].to_numpy(), g["prob"].to_numpy())
                    for h in hues
                    if len(g := _select(part, **{hue: h}))
                }
                if curves:
                    plot_roc(curves, ax=axes[i, j], title=f"{_name(names, r)}, {_name(names, c)}")
                else:
                    axes[i, j].set_axis_off()
    return fig


def confusion_grid(
    predictions: pd.DataFrame,
    *,
    row: str,
    col: Sequence[str],
    class_names: Sequence[str],
    threshold: float = 0.5,
    orders: Mapping[str, Sequence[Any]] | None = None,
    names: Mapping[Any, str] | None = None,
    size: tuple[float, float] = (2.3, 2.2),
) -> Figure:
    """Row-normalised confusion matrices at ``threshold``: one panel per ``row`` value and
    combination of the ``col`` columns; one shared 0-1 colour scale, so no colour bars."""
    from mmcxr.metrics import confusion_matrix

    orders = orders or {}
    rows = _levels(predictions, row, orders.get(row))
    combos = list(pd.MultiIndex.from_product([_levels(predictions, c, orders.get(c)) for c in col]))
    with style():
        fig, axes = panels(len(rows), len(combos), size)
        for i, r in enumerate(rows):
            for j, combo in enumerate(combos):
                ax = axes[i, j]
                g = _select(predictions, **{row: r}, **dict(zip(col, combo, strict=True)))
                if not len(g):
                    ax.set_axis_off()
                    continue
                cm = confusion_matrix(g["label"], g["prob"], threshold, class_names=class_names)
                plot_confusion(cm, normalize=True, ax=ax)
                ax.set_title(" ".join(_name(names, v) for v in (r, *combo)), fontsize=9)
                ax.tick_params(labelsize=8)
                if i < len(rows) - 1:
                    ax.set(xlabel="", xticklabels=[])
                if j > 0:
                    ax.set(ylabel="", yticklabels=[])
        grid_axes = set(axes.ravel())
        for ax in list(fig.axes):
            if ax not in grid_axes:  # the colour bars
                ax.remove()
    return fig


def loss_curves_grid(
    history: pd.DataFrame,
    *,
    row: str,
    col: str,
    hue: str,
    orders: Mapping[str, Sequence[Any]] | None = None,
    names: Mapping[Any, str] | None = None,
    size: tuple[float, float] = (4.2, 3.0),
) -> Figure:
    """Training (dashed) and validation (solid) loss per epoch of each ``hue`` group, one
    panel per (``row``, ``col``); each panel has its own y axis (losses differ in scale), and
    a dot marks the epoch whose weights were kept (lowest validation loss)."""
    orders = orders or {}
    rows, cols = _levels(history, row, orders.get(row)), _levels(history, col, orders.get(col))
    hues = _levels(history, hue, orders.get(hue))
    with style():
        fig, axes = panels(len(rows), len(cols), size)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                ax = axes[i, j]
                for k, h in enumerate(hues):
                    part = _select(history, **{row: r, col: c, hue: h})
                    if not len(part):
                        continue
                    colour = PALETTE[k % len(PALETTE)]
                    ax.plot(part["epoch"], part["train_loss"], ls="--", lw=1.2, color=colour)
                    ax.plot(
                        part["epoch"], part["val_loss"], lw=1.6, color=colour, label=_name(names, h)
                    )
                    best = part.loc[part["val_loss"].idxmin()]
                    ax.plot(best["epoch"], best["val_loss"], "o", color=colour, ms=5)
                ax.set(title=f"{_name(names, r)}, {_name(names, c)}", xlabel="epoch", ylabel="loss")
                ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0, 0].legend(title="validation (solid)\ntraining (dashed)", loc="upper right")
    return fig


def interval_bars(
    table: pd.DataFrame,
    *,
    group: Sequence[str],
    hue: str,
    value: str,
    reference: pd.DataFrame | None = None,
    reference_label: str = "paper",
    orders: Mapping[str, Sequence[Any]] | None = None,
    names: Mapping[Any, str] | None = None,
    chance: float | None = 0.5,
    ylabel: str | None = None,
    title: str | None = None,
) -> Figure:
    """Grouped bars of ``value`` with their ``<value>_lo``/``_hi`` intervals: one group per
    combination of the ``group`` columns, one bar per ``hue`` value; rows of ``reference``
    (same columns) are drawn as black ticks over the matching bars."""
    orders = orders or {}
    groups = list(pd.MultiIndex.from_product([_levels(table, c, orders.get(c)) for c in group]))
    hues = _levels(table, hue, orders.get(hue))
    width = 0.8 / len(hues)
    with style():
        fig, axes = panels(1, 1, (max(5.0, 1.75 * len(groups)), 3.4))
        ax = axes[0, 0]
        ref_drawn = False
        for k, h in enumerate(hues):
            xs, ys, err = [], [], [[], []]
            for gi, combo in enumerate(groups):
                key = {**dict(zip(group, combo, strict=True)), hue: h}
                rows = _select(table, **key)
                if not len(rows):
                    continue
                r = rows.iloc[0]
                xs.append(gi + (k - (len(hues) - 1) / 2) * width)
                ys.append(r[value])
                err[0].append(r[value] - r.get(f"{value}_lo", r[value]))
                err[1].append(r.get(f"{value}_hi", r[value]) - r[value])
                ref = _select(reference, **key) if reference is not None else []
                if len(ref):
                    ax.plot(
                        [xs[-1] - width / 2, xs[-1] + width / 2],
                        [ref[value].iloc[0]] * 2,
                        color="black",
                        lw=2,
                        label=None if ref_drawn else reference_label,
                    )
                    ref_drawn = True
            ax.bar(
                xs,
                ys,
                width,
                # a percentile interval from few resamples can miss the point estimate, and an
                # undefined one is NaN: draw what lies on each side, never a negative bar
                yerr=np.nan_to_num(np.clip(np.asarray(err, dtype=float), 0, None)),
                color=PALETTE[k % len(PALETTE)],
                label=_name(names, h),
                capsize=2,
                error_kw={"lw": 0.8},
            )
        if chance is not None:
            ax.axhline(chance, color="grey", ls=":", lw=1)
        ax.set_xticks(
            range(len(groups)), [", ".join(_name(names, v) for v in combo) for combo in groups]
        )
        ax.set(ylim=(0, 1.05), ylabel=ylabel or value, title=title)
        ax.legend(ncols=len(hues) + 1, loc="lower center", bbox_to_anchor=(0.5, 1.08))
    return fig


def plot_attention_words(image: np.ndarray, alphas: np.ndarray, words: Sequence[str], grid, *,
                         truth: str, caption: str, n_words: int = 10, box=None) -> Figure:  # fmt: skip
    """Attention of a captioner's first ``n_words`` generated words (``alphas``: one row of
    ``grid`` regions per word), upsampled and overlaid on the image, with the generated and the
    true caption above; ``box`` (x1, y1, x2, y2 in image pixels) outlines a known finding.
    Paper 000's Figure 4 shows this for a Show-Attend-Tell captioner."""
    n = min(n_words, len(words))
    fig, axes = panels(1, max(n, 1), (1.6, 2.4))
    axes = np.asarray(axes).reshape(1, -1)
    size = image.shape[-1]
    for j, ax in enumerate(axes[0]):
        ax.imshow(np.asarray(image).squeeze(), cmap="gray")
        if j < n:
            a = alphas[j].reshape(grid)
            up = np.kron(a, np.ones((size // grid[0], size // grid[1])))
            ax.imshow(up, cmap="gist_earth", alpha=0.55, extent=(0, size, size, 0))
            ax.set_title(words[j], fontsize=9)
            if box is not None:
                x1, y1, x2, y2 = box
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="red"))
        ax.axis("off")
    fig.suptitle(f"generated: {caption[:150]}\ntruth: {truth[:150]}", fontsize=8)
    return fig


def plot_embedding_pca(
    emb: np.ndarray, labels: np.ndarray, names: Sequence[str]
) -> tuple[Figure, Figure]:
    """L2-normalised embeddings projected by PCA: 2-D and two views of 3-D, coloured by the
    integer ``labels`` (indices into ``names``), and a grid with one panel per class over the
    grey cloud of all points (paper 000's Figure 5 and its supplementary per-class plot)."""
    from sklearn.decomposition import PCA

    z = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
    xyz = PCA(3).fit_transform(z)
    colours = mpl.colormaps["tab20"](np.linspace(0, 1, len(names)))
    present = [j for j in range(len(names)) if (labels == j).any()]
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    ax = fig.add_subplot(1, 3, 1)
    for j in present:
        ax.scatter(*xyz[labels == j, :2].T, s=6, color=colours[j], label=names[j])
    ax.set(title="PCA to 2-D", xlabel="PC1", ylabel="PC2")
    ax.legend(fontsize=6, markerscale=2)
    for k, azim in enumerate((30, 120)):
        ax = fig.add_subplot(1, 3, k + 2, projection="3d")
        for j in present:
            ax.scatter(*xyz[labels == j].T, s=4, color=colours[j])
        ax.view_init(20, azim)
        ax.set_title(f"PCA to 3-D (azimuth {azim})")
    ncols = 7
    grid, axes = panels(-(-len(names) // ncols), ncols, (2.3, 2.3))
    for j, ax in enumerate(axes.flat):
        if j >= len(names):
            ax.axis("off")
            continue
        ax.scatter(*xyz[:, :2].T, s=2, color="0.85")
        ax.scatter(*xyz[labels == j, :2].T, s=4, color=colours[j])
        ax.set_title(f"{names[j]} ({int((labels == j).sum())})", fontsize=8)
    return fig, grid


def animate_embedding_pca(
    emb: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    *,
    frames: int = 18,
    size: float = 4.0,
    dpi: int = 50,
) -> str:
    """A rotating 3-D view of :func:`plot_embedding_pca`'s projection (paper 000 made one):
    ``frames`` azimuths over a full turn, as a self-contained HTML/JavaScript player (frames
    embedded as PNG) that a notebook shows with ``IPython.display.HTML`` and the book keeps."""
    from matplotlib.animation import FuncAnimation
    from sklearn.decomposition import PCA

    if frames < 2:
        raise ValueError(f"an animation needs at least 2 frames, got {frames}")
    z = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
    xyz = PCA(3).fit_transform(z)
    colours = mpl.colormaps["tab20"](np.linspace(0, 1, len(names)))
    fig = Figure(figsize=(size, size), dpi=dpi, layout="constrained")
    ax = fig.add_subplot(projection="3d")
    for j in range(len(names)):
        if (labels == j).any():
            ax.scatter(*xyz[labels == j].T, s=4, color=colours[j], label=names[j])
    ax.set(xlabel="PC1", ylabel="PC2", zlabel="PC3", title="PCA to 3-D, rotating")
    ax.legend(fontsize=5, markerscale=2, loc="upper left")

    def turn(k: int):
        ax.view_init(20, 360 * k / frames)
        return ()

    anim = FuncAnimation(fig, turn, frames=frames, interval=150, blit=False)
    return anim.to_jshtml(fps=8, default_mode="loop")
