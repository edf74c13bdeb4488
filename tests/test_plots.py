"""Every plot returns a Figure that renders (Agg), with the expected artists on it."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from mmcxr import metrics as M
from mmcxr import plots


def _renders(fig):
    assert isinstance(fig, Figure)
    fig.savefig(io.BytesIO(), format="png")
    return fig


def test_style_is_scoped():
    before = mpl.rcParams["axes.spines.top"]
    with plots.style():
        assert mpl.rcParams["axes.spines.top"] is False
    assert mpl.rcParams["axes.spines.top"] == before


def test_roc_several_runs_on_one_axes():
    y = np.array([0, 0, 1, 1, 0, 1])
    runs = {
        "image": (y, [0.2, 0.6, 0.4, 0.9, 0.3, 0.7]),
        "text": M.roc_curve(y, [0.1, 0.2, 0.8, 0.9, 0.3, 0.7]),
    }
    fig = _renders(plots.plot_roc(runs))
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # two runs + chance
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[1] == "text (AUROC 1.000)"
    with pytest.raises(ValueError):
        plots.plot_roc({})


def test_confusion_matrix_annotated():
    cm = M.confusion_matrix([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], class_names=["no", "yes"])
    fig = _renders(plots.plot_confusion(cm, title="test"))
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["1", "1", "1", "1"]
    fig = _renders(plots.plot_confusion(np.array([[3, 1], [0, 4]]), normalize=True))
    assert "0.75\n(3)" in [t.get_text() for t in fig.axes[0].texts]
    with pytest.raises(ValueError, match="square"):
        plots.plot_confusion(np.zeros((2, 3)))


def test_training_curves():
    h = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [0.9, 0.6, 0.5],
            "val_loss": [1.0, 0.7, 0.65],
            "val_auroc": [0.6, 0.7, 0.75],
            "val_accuracy": [0.5, 0.6, 0.7],
        }
    )
    fig = _renders(plots.plot_training_curves(h))
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 2

    class History:  # mmcxr.train.History keeps its per-epoch rows in .table
        table = h

    assert len(_renders(plots.plot_training_curves(History())).axes) == 2
    fig = _renders(plots.plot_training_curves(h[["epoch", "train_loss"]]))
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="epoch"):
        plots.plot_training_curves(h.drop(columns="epoch"))


def test_label_counts_and_histogram():
    df = pd.DataFrame(
        {"Edema": [1.0, -1.0, 0.0, np.nan, 1.0], "Fracture": [np.nan, np.nan, 0.0, 1.0, 0.0]}
    )
    counts = plots.label_counts(df, ["Edema", "Fracture"])
    assert counts.loc["Edema"].tolist() == [2, 1, 1, 1]  # positive, uncertain, negative, blank
    assert counts.loc["Fracture"].tolist() == [1, 0, 2, 2]
    fig = _renders(plots.plot_label_histogram(df, ["Edema", "Fracture"]))
    assert len(fig.axes[0].patches) == 3 * 2  # three stacked states per label
    with pytest.raises(ValueError, match="1/0/-1"):
        plots.label_counts(pd.DataFrame({"Edema": [2.0]}), ["Edema"])
    with pytest.raises(KeyError):
        plots.label_counts(df, ["Cardiomegaly"])


def test_image_grid_and_boxes():
    rng = np.random.default_rng(0)
    imgs = [rng.random((16, 12)) for _ in range(4)] + [torch.rand(1, 16, 12)]
    fig = _renders(plots.plot_image_grid(imgs, [f"case {i}" for i in range(5)], ncols=3))
    assert len(fig.axes) == 6 and fig.axes[4].get_title() == "case 4"
    with pytest.raises(ValueError, match="captions"):
        plots.plot_image_grid(imgs, ["only one"])
    fig = _renders(
        plots.plot_boxes(imgs[0], {"right lung": (1, 2, 5, 10), "heart": (6, 8, 11, 14)})
    )
    assert len(fig.axes[0].patches) == 2
    assert [t.get_text() for t in fig.axes[0].texts] == ["right lung", "heart"]
    with pytest.raises(ValueError, match="x1, y1, x2, y2"):
        plots.plot_boxes(imgs[0], [(1, 2, 3)])
