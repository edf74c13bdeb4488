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


def test_image_grid_keeps_caption_lines_and_wraps_each_on_its_own():
    img = np.zeros((20, 16), dtype=np.float32)
    long = "no acute cardiopulmonary process seen on this film today"
    fig = _renders(plots.plot_image_grid([img, img], [f"PA: Edema\n{long}", "AP"], wrap=20))
    lines = fig.axes[0].get_title().splitlines()
    assert lines[0] == "PA: Edema", "a line break of the caption is kept"
    assert " ".join(lines[1:]) == long and all(len(line) <= 20 for line in lines[1:])
    assert fig.axes[1].get_title() == "AP"


def test_image_grid_layout_for_a_stack_of_thumbnails():
    # the late-fusion call: an (n, h, w) array, captions in a Series with its own index
    stack = np.random.default_rng(0).random((5, 8, 8))
    captions = pd.Series([f"case {i}" for i in range(5)], index=range(10, 15))
    fig = _renders(plots.plot_image_grid(stack, captions, ncols=3, panel_size=1.6))
    assert tuple(fig.get_size_inches()) == pytest.approx((3 * 1.6, 2 * (1.6 + 0.5)))
    assert [ax.get_title() for ax in fig.axes] == [f"case {i}" for i in range(5)] + [""]
    assert not fig.axes[5].images, "the spare panel stays empty"
    clim = fig.axes[0].images[0].get_clim()
    assert clim == pytest.approx((stack[0].min(), stack[0].max())), "own min..max by default"
    fixed = plots.plot_image_grid(stack, value_range=(0, 1))
    assert all(ax.images[0].get_clim() == (0, 1) for ax in fixed.axes[:5])


def test_image_grid_draws_each_panels_boxes_and_names_them_in_a_legend():
    img = np.zeros((20, 16), dtype=np.float32)
    boxes = [{"left lung": (1, 1, 8, 10), "heart": (4, 6, 12, 14)}, None, [(2, 2, 5, 5)]]
    fig = _renders(plots.plot_image_grid([img] * 3, ["a", "b", "c"], boxes=boxes, legend=True))
    first, second, third = fig.axes[:3]
    assert [t.get_text() for t in first.get_legend().get_texts()] == ["left lung", "heart"]
    assert not first.texts, "named in the legend, not at the box"
    rect = first.patches[0]  # pixel edges of the half-open box [1, 8) x [1, 10)
    assert (rect.get_xy(), rect.get_width(), rect.get_height()) == ((0.5, 0.5), 7, 9)
    assert not second.patches and second.get_legend() is None
    assert len(third.patches) == 1 and third.get_legend() is None, "unnamed: no legend"
    plain = plots.plot_image_grid([img] * 3, ["a", "b", "c"], boxes=boxes)
    assert [t.get_text() for t in plain.axes[0].texts] == ["left lung", "heart"]
    assert fig.get_size_inches()[1] > plain.get_size_inches()[1], "room for the legends"
    with pytest.raises(ValueError, match="3 images but 2 sets of boxes"):
        plots.plot_image_grid([img] * 3, boxes=boxes[:2])
    with pytest.raises(ValueError, match="x1, y1, x2, y2"):
        plots.plot_image_grid([img], boxes=[{"heart": (1, 2, 3)}])


def test_boxes_can_be_named_in_a_legend():
    img = np.zeros((20, 16), dtype=np.float32)
    boxes = {"right lung": (1, 2, 5, 10), "heart": (6, 8, 11, 14)}
    fig = _renders(plots.plot_boxes(img, boxes, legend=True, value_range=(0, 1)))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["right lung", "heart"]
    assert not ax.texts and ax.images[0].get_clim() == (0, 1)


def test_label_cooccurrence_is_a_share_of_the_row_labels_positives():
    t = pd.DataFrame(
        {
            "Edema": [1.0, 1.0, 1.0, 0.0, np.nan],
            "Cardiomegaly": [1.0, 1.0, -1.0, 1.0, np.nan],
            "Fracture": [np.nan, np.nan, np.nan, np.nan, 0.0],
        }
    )
    m = plots.label_cooccurrence(t, ["Edema", "Cardiomegaly", "Fracture"])
    # Edema positive in rows 0,1,2; of those, Cardiomegaly == 1.0 in rows 0,1 (row 2 is -1)
    assert m.loc["Edema", "Cardiomegaly"] == pytest.approx(2 / 3)
    assert m.loc["Cardiomegaly", "Edema"] == pytest.approx(2 / 3)
    assert m.loc["Edema", "Edema"] == 1.0
    assert m.loc["Fracture"].isna().all(), "no positives: the row is undefined, not zero"
    fig = _renders(plots.plot_cooccurrence(m.iloc[:2, :2], title="t"))
    assert sorted(t.get_text() for t in fig.axes[0].texts) == [".67", ".67"], "no diagonal"
    assert fig.axes[0].get_title() == "t"
    with pytest.raises(KeyError, match="Pneumonia"):
        plots.label_cooccurrence(t, ["Pneumonia"])


def test_score_pairs_rank_rows_by_the_first_score():
    scores = pd.DataFrame(
        {"image": [0.9, 0.6, 0.75], "text": [0.95, 0.99, np.nan]}, index=["a", "b", "c"]
    )
    fig = _renders(plots.plot_score_pairs(scores, {"image": "pixels", "text": "words"}))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "c", "a"], "lowest first"
    assert len(ax.patches) == 2 * 3
    assert [t.get_text() for t in ax.texts] == ["0.60", "0.75", "0.90"], "first score labelled"
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert legend == {"pixels", "words", "chance"}
    assert ax.get_xlim()[0] == pytest.approx(0.35), "0.05 below 0.4 or the lowest score"
    low = plots.plot_score_pairs(scores.assign(text=0.16), {"image": "pixels", "text": "words"})
    assert low.axes[0].get_xlim() == pytest.approx((0.11, 1.04))
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_score_pairs(scores.iloc[:0], {"image": "pixels"})
