"""Localization and alignment scores on constructed maps, boxes, similarities and captions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmcxr import localization as L


def test_boxes_to_mask_half_open_and_clipped():
    m = L.boxes_to_mask([(1, 2, 4, 4)], (5, 6))
    assert m.dtype == bool and m.shape == (5, 6)
    assert m.sum() == 6  # rows 2-3, columns 1-3
    assert m[2:4, 1:4].all()
    clipped = L.boxes_to_mask([(-3, -3, 2, 2), (4, 3, 99, 99)], (5, 6))
    assert clipped.sum() == 4 + 4  # 2x2 corner, then rows 3-4 x columns 4-5
    assert L.boxes_to_mask([], (5, 6)).sum() == 0
    assert L.boxes_to_mask((0, 0, 1, 1), (5, 6)).sum() == 1  # a single box works too
    with pytest.raises(ValueError, match="x2 < x1"):
        L.boxes_to_mask([(4, 0, 1, 2)], (5, 6))
    with pytest.raises(ValueError, match=r"\(x1, y1, x2, y2\)"):
        L.boxes_to_mask([(1, 2, 3)], (5, 6))


def test_upsample_is_bilinear():
    up = L.upsample(np.array([[0.0, 1.0], [0.0, 1.0]]), (4, 4))
    # align_corners=False: output pixel centres at 0.25, 0.75 ... of the input cells
    assert up[0].tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0])
    assert (up == up[0]).all()
    with pytest.raises(ValueError, match="2-D"):
        L.upsample(np.zeros((2, 2, 2)), (4, 4))


def test_pixel_auroc_perfect_and_noise():
    mask = L.boxes_to_mask([(10, 20, 40, 60)], (96, 80))
    assert L.pixel_auroc(mask.astype(float), mask) == 1.0
    assert L.pixel_average_precision(mask.astype(float), mask) == 1.0
    noise = np.random.default_rng(0).random(mask.shape)
    assert L.pixel_auroc(noise, mask) == pytest.approx(0.5, abs=0.05)
    # AP of noise is about the prevalence of box pixels
    assert L.pixel_average_precision(noise, mask) == pytest.approx(mask.mean(), abs=0.05)
    # an inverted map ranks every box pixel last
    assert L.pixel_auroc(1 - mask.astype(float), mask) == 0.0
    assert math.isnan(L.pixel_auroc(noise, np.zeros_like(mask)))


def test_coarse_attention_is_upsampled_to_the_image():
    mask = L.boxes_to_mask([(0, 0, 32, 64)], (64, 64))  # left half of the image
    coarse = torch.tensor([[1.0, 0.0]] * 4)  # 4x2 attention grid, left column hot
    assert L.pixel_auroc(coarse, mask) > 0.95
    assert L.pixel_auroc(coarse.flip(1), mask) < 0.05


def test_iou_and_precision_at_top_k_known_case():
    scores = np.arange(100, dtype=float).reshape(10, 10)
    mask = np.zeros((10, 10), dtype=bool)
    mask[8:] = True  # scores 80..99
    assert L.iou_at_top_k(scores, mask, 10) == pytest.approx(10 / 20)  # top 90..99
    assert L.iou_at_top_k(scores, mask, 20) == pytest.approx(1.0)
    assert L.iou_at_top_k(scores, mask, 50) == pytest.approx(20 / 50)
    assert L.precision_at_top_k(scores, mask, 10) == 1.0
    assert L.precision_at_top_k(scores, mask, 50) == pytest.approx(0.4)
    assert L.top_k_mask(scores, 5).sum() == 5
    # ties at the cut are all kept: a flat map selects every pixel
    assert L.top_k_mask(np.ones((10, 10)), 5).all()
    with pytest.raises(ValueError, match="percentage"):
        L.top_k_mask(scores, 0)


def test_localization_scores_and_table():
    scores = np.arange(100, dtype=float).reshape(10, 10)
    mask = np.zeros((10, 10), dtype=bool)
    mask[8:] = True
    s = L.localization_scores(scores, mask, top_k=(10, 50))
    assert set(s) == {
        "auroc",
        "average_precision",
        "iou@10",
        "iou@50",
        "precision@10",
        "precision@50",
    }
    assert s["auroc"] == 1.0 and s["iou@10"] == pytest.approx(0.5)
    table = L.localization_table(
        [scores, scores[::-1]],
        [[(0, 8, 10, 10)], [(0, 8, 10, 10)]],
        (10, 10),
        top_k=(10,),
        progress=False,
    )
    assert len(table) == 2
    assert table.loc[0, "auroc"] == 1.0 and table.loc[1, "auroc"] == 0.0


def test_symmetric_kl():
    rng = np.random.default_rng(1)
    a = rng.random((7, 7))
    b = rng.random((7, 7))
    assert L.symmetric_kl(a, a) == pytest.approx(0.0, abs=1e-12)
    assert L.symmetric_kl(a, 3 * a) == pytest.approx(0.0, abs=1e-9)  # maps are normalised
    assert L.symmetric_kl(a, b) > 0
    assert L.symmetric_kl(a, b) == pytest.approx(L.symmetric_kl(b, a))
    # hand value: p = [.5, .5], q = [.9, .1]
    # KL(p||q) = .5 ln(.5/.9) + .5 ln(.5/.1) = 0.51083; KL(q||p) = .9 ln 1.8 + .1 ln .2 = 0.36806
    assert L.symmetric_kl([0.5, 0.5], [0.9, 0.1], eps=0) == pytest.approx(0.87889, abs=1e-4)
    # eps smoothing keeps exact zeros finite
    assert math.isfinite(L.symmetric_kl([1.0, 0.0], [0.0, 1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        L.symmetric_kl([0.5, -0.1], [0.5, 0.5])
    with pytest.raises(ValueError, match="size"):
        L.symmetric_kl([0.5, 0.5], [0.3, 0.3, 0.4])


def test_attention_entropy():
    assert L.attention_entropy(np.ones((4, 4))) == pytest.approx(np.log(16))
    assert L.attention_entropy([0.0, 5.0, 0.0]) == pytest.approx(0.0)
    assert L.attention_entropy([1.0, 3.0]) == pytest.approx(
        -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    )
    with pytest.raises(ValueError):
        L.attention_entropy([0.0, 0.0])


def test_retrieval_accuracy_constructed():
    assert L.retrieval_accuracy([3, 3, 3, 1], [1, 1, 1, 2]) == 0.75
    assert L.retrieval_accuracy([1, 1], [1, 0]) == 0.75  # a tie counts one half
    n = 12
    good = np.eye(n) + 0.1
    assert L.retrieval_accuracy_matrix(good) == 1.0
    assert L.retrieval_accuracy_matrix(-good) == 0.0
    assert L.retrieval_accuracy_matrix(np.ones((n, n))) == 0.5  # ignores its input: chance
    # the first half of the images prefer every other sentence to their own -> exactly 0.5
    half = good.copy()
    half[: n // 2] = -half[: n // 2]
    assert L.retrieval_accuracy_matrix(half) == 0.5


def test_negatives_come_from_other_groups():
    groups = ["r1", "r1", "r1", "r2", "r2", "r3"]
    for seed in range(5):
        neg = L.sample_negatives(groups, seed)
        assert all(groups[i] != groups[j] for i, j in enumerate(neg))
    assert (L.sample_negatives(groups, 3) == L.sample_negatives(groups, 3)).all()
    with pytest.raises(ValueError, match="two groups"):
        L.sample_negatives(["a", "a"])
    # with groups, a sentence from the same report is never the negative
    s = np.eye(4)
    s[0, 1] = 5.0  # image 0 loves sentence 1, but 1 is from the same report
    assert L.retrieval_accuracy_matrix(s, groups=["a", "a", "b", "b"], seed=0) == 1.0


def test_caption_iou():
    assert L.caption_iou("Heart size is normal.", "heart is enlarged") == pytest.approx(2 / 5)
    assert L.caption_iou("no acute process", "No acute process!") == 1.0
    assert L.caption_iou("", "") == 1.0
    assert L.caption_iou("effusion", "") == 0.0
    assert L.mean_caption_iou(["a b", "c"], ["a", "d"]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        L.mean_caption_iou(["a"], [])


def test_disc_and_circle_scores_against_a_lesion_mask():
    d = L.disc_mask(5, 4, 2, (10, 12))
    assert d[4, 5] and d[4, 7] and d[2, 5] and not d[4, 8] and not d[1, 5]
    assert L.disc_mask(3, 3, 0, (6, 6)).sum() == 1  # a one-pixel cluster covers its pixel
    with pytest.raises(ValueError, match="radius"):
        L.disc_mask(1, 1, -1, (4, 4))
    import pandas as pd

    lesion = np.zeros((20, 20), bool)
    lesion[4:8, 4:8] = True
    circles = pd.DataFrame({"x": [5.5, 15.0], "y": [5.5, 15.0], "radius": [1.0, 2.0]})
    assert L.circle_overlaps(circles, lesion).tolist() == [True, False]
    s = L.circle_localization(circles, lesion)
    assert (s["hit"], s["n_circles"], s["true_circles"], s["false_circles"]) == (1, 2, 1, 1)
    assert 0 < s["covered"] < 1 and 0 < s["precision"] < 1
    # a circle around the whole image touches the lesion but is not centred on it
    big = pd.DataFrame({"x": [15.0], "y": [15.0], "radius": [30.0]})
    assert L.circle_overlaps(big, lesion).tolist() == [True]
    s = L.circle_localization(big, lesion)
    assert s["hit"] == 0 and s["covered"] == 1 and s["precision"] == pytest.approx(16 / 400)
    assert L.circle_localization(big, lesion, tolerance=8)["hit"] == 1
    none = L.circle_localization(circles.iloc[:0], lesion)
    assert none["hit"] == 0 and none["n_circles"] == 0 and none["covered"] == 0
    with pytest.raises(ValueError, match="lack columns"):
        L.circle_overlaps(circles.drop(columns="radius"), lesion)


def test_pointing_game():
    lesion = np.zeros((16, 16), bool)
    lesion[2:5, 2:5] = True
    amap = np.zeros((16, 16))
    amap[3, 3] = 1.0
    assert L.pointing_game(amap, lesion) == 1.0
    amap2 = np.zeros((16, 16))
    amap2[3, 6] = 1.0  # one pixel right of the lesion
    assert L.pointing_game(amap2, lesion) == 0.0
    assert L.pointing_game(amap2, lesion, tolerance=2) == 1.0
    assert L.pointing_game(np.ones((16, 16)), lesion) == 0.0  # a flat map points nowhere
    plateau = np.zeros((16, 16))
    plateau[1:6, 1:6] = 1.0  # tied maxima spilling past the lesion: their centroid (3, 3) is on it
    assert L.pointing_game(plateau, lesion) == 1.0
    plateau[1:6, 1:6], plateau[9:14, 9:14] = 0.0, 1.0
    assert L.pointing_game(plateau, lesion) == 0.0
    coarse = np.zeros((8, 8))
    coarse[1, 1] = 1.0  # covers pixels 2-3 of the 16-pixel grid
    assert L.pointing_game(coarse, lesion) == 1.0  # coarse maps are upsampled
    assert math.isnan(L.pointing_game(amap, np.zeros((16, 16), bool)))
    with pytest.raises(ValueError, match="tolerance"):
        L.pointing_game(amap, lesion, tolerance=-1)


def test_lesion_masks_follow_the_letterbox():
    import pandas as pd

    from mmcxr.data.images import square_geometry

    class FakeCache:
        def geometry(self, key):
            return square_geometry(100, 50, 20)  # scale 0.2, 5 columns of padding each side

    gt = pd.DataFrame({"image_id": ["a"], "box_Cardiomegaly": ["10 20 19 39"],
                       "box_Edema": [float("nan")]})  # fmt: skip
    (mask,) = L.lesion_masks(["a"], gt, FakeCache(), 20)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max()) == (4, 7) and (cols.min(), cols.max()) == (7, 8)
    thin = gt.assign(box_Cardiomegaly=["10 20 10 20"])  # one source pixel: 0.2 x 0.2 here
    (mask,) = L.lesion_masks(["a"], thin, FakeCache(), 20)
    assert mask.sum() == 1 and mask[4, 7]  # rounded outwards, not lost
    with pytest.raises(KeyError, match="not in the ground-truth"):
        L.lesion_masks(["b"], gt, FakeCache(), 20)
    # a key shared by both namings (an OpenI edition's file name vs the ground truth's id)
    (mask,) = L.lesion_masks(["a.png"], gt, FakeCache(), 20, key=lambda v: v.split(".")[0])
    assert mask.sum() == 8
