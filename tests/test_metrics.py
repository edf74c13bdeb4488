"""Metrics against hand-worked examples, bootstrap behaviour, and the paper comparison table."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmcxr import metrics as M

# Worked example: y = [0, 0, 1, 1], p = [.1, .6, .4, .9].
# threshold .5 -> predictions [0, 1, 0, 1]: one TP, one FP, one FN, one TN.
# AUROC: positive/negative pairs (.4>.1 yes, .4>.6 no, .9>.1 yes, .9>.6 yes) -> 3/4.
# AP: ranking .9(+) .6(-) .4(+) .1(-): recall steps of 1/2 at precision 1 and 2/3 -> 5/6.
Y = [0, 0, 1, 1]
P = [0.1, 0.6, 0.4, 0.9]


def test_binary_metrics_worked_example():
    got = M.binary_metrics(Y, P)
    assert list(got) == list(M.METRIC_NAMES)
    expected = {
        "accuracy": 0.5,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "auroc": 0.75,
        "average_precision": 5 / 6,
    }
    for k, v in expected.items():
        assert got[k] == pytest.approx(v), k


def test_single_metrics_and_threshold():
    # threshold .3 -> predictions [0, 1, 1, 1]: TP 2, FP 1, TN 1, FN 0.
    assert M.accuracy(Y, P, 0.3) == pytest.approx(0.75)
    assert M.precision(Y, P, 0.3) == pytest.approx(2 / 3)
    assert M.recall(Y, P, 0.3) == pytest.approx(1.0)
    assert M.f1(Y, P, 0.3) == pytest.approx(0.8)
    assert M.auroc(Y, P) == pytest.approx(0.75)
    assert M.average_precision(Y, P) == pytest.approx(5 / 6)
    # threshold is inclusive: p == threshold predicts positive
    assert M.accuracy([1], [0.5]) == 1.0


def test_zero_division_is_zero():
    got = M.binary_metrics([0, 1, 1], [0.1, 0.2, 0.3])  # nothing predicted positive
    assert got["precision"] == 0.0 and got["recall"] == 0.0 and got["f1"] == 0.0
    assert got["auroc"] == pytest.approx(1.0)


def test_undefined_ranking_metrics_are_nan_with_warning():
    with pytest.warns(RuntimeWarning, match="one class"):
        assert math.isnan(M.auroc([0, 0, 0], [0.1, 0.5, 0.9]))
    with pytest.warns(RuntimeWarning, match="positive"):
        assert math.isnan(M.average_precision([0, 0, 0], [0.1, 0.5, 0.9]))
    with pytest.warns(RuntimeWarning):
        got = M.binary_metrics([1, 1], [0.2, 0.7])
    assert math.isnan(got["auroc"]) and got["accuracy"] == 0.5


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 2], [0.1, 0.2], "0/1"),
        ([0, 1], [0.1], "entries"),
        ([0, 1], [0.1, np.nan], "non-finite"),
        ([0, np.nan], [0.1, 0.2], "NaN"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_bad_input_raises(y, p, match):
    with pytest.raises(ValueError, match=match):
        M.binary_metrics(y, p)


def _two_label_example():
    # column A = the worked example; column B is separated perfectly.
    Yml = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
    Pml = np.array([[0.1, 0.8], [0.6, 0.3], [0.4, 0.7], [0.9, 0.2]])
    return Yml, Pml


def test_multilabel_metrics_per_label_micro_macro():
    Yml, Pml = _two_label_example()
    t = M.multilabel_metrics(Yml, Pml, ["A", "B"])
    assert list(t.index) == ["A", "B", "micro", "macro"]
    assert t.loc["A", "auroc"] == pytest.approx(0.75)
    assert t.loc["B", "auroc"] == pytest.approx(1.0)
    assert t.loc["B", "f1"] == pytest.approx(1.0)
    assert t.loc["macro", "auroc"] == pytest.approx(0.875)
    assert t.loc["macro", "accuracy"] == pytest.approx(0.75)
    # micro: flattened y = [0,1,0,0,1,1,1,0], p = [.1,.8,.6,.3,.4,.7,.9,.2]
    # positive scores {.8,.4,.7,.9} beat negatives {.1,.6,.3,.2} in 15 of 16 pairs.
    assert t.loc["micro", "auroc"] == pytest.approx(15 / 16)
    assert t.loc["micro", "accuracy"] == pytest.approx(6 / 8)
    assert t.loc["micro", "precision"] == pytest.approx(3 / 4)
    assert t.loc["micro", "recall"] == pytest.approx(3 / 4)
    assert t.loc["A", "positives"] == 2 and t.loc["micro", "n"] == 8


def test_multilabel_absent_class_left_out_of_macro():
    Yml = np.array([[0, 0], [1, 0], [0, 0], [1, 0]])
    Pml = np.array([[0.2, 0.1], [0.7, 0.3], [0.4, 0.2], [0.9, 0.6]])
    with pytest.warns(RuntimeWarning, match=r"\['B'\]"):
        t = M.multilabel_metrics(Yml, Pml, ["A", "B"])
    assert math.isnan(t.loc["B", "auroc"])
    assert t.loc["macro", "auroc"] == pytest.approx(t.loc["A", "auroc"])


def test_multilabel_missing_labels():
    Yml = np.array([[0, 1], [np.nan, 0], [1, 1], [1, 0]])
    Pml = np.array([[0.1, 0.8], [0.6, 0.3], [0.4, 0.7], [0.9, 0.2]])
    with pytest.raises(ValueError, match="NaN"):
        M.multilabel_metrics(Yml, Pml, ["A", "B"])
    t = M.multilabel_metrics(Yml, Pml, ["A", "B"], mask_missing=True)
    assert t.loc["A", "n"] == 3 and t.loc["B", "n"] == 4
    assert t.loc["A", "auroc"] == pytest.approx(1.0)  # .4 and .9 vs .1
    with pytest.raises(ValueError, match="label_names"):
        M.multilabel_metrics(Yml, Pml, ["A"])


def test_roc_curves():
    r = M.roc_curve(Y, P)
    assert r.auroc == pytest.approx(0.75)
    assert r.fpr[0] == 0 and r.tpr[-1] == 1 and r.fpr[-1] == 1
    Yml, Pml = _two_label_example()
    curves = M.roc_curves(Yml, Pml, ["A", "B"])
    assert set(curves) == {"A", "B", "micro"}
    assert curves["micro"].auroc == pytest.approx(15 / 16)
    with pytest.raises(ValueError, match="both classes"):
        M.roc_curve([1, 1], [0.2, 0.3])


def test_confusion_matrices():
    cm = M.confusion_matrix(Y, P, threshold=0.3, class_names=["neg", "pos"])
    # predictions [0, 1, 1, 1]: TN 1, FP 1, FN 0, TP 2
    assert cm.to_numpy().tolist() == [[1, 1], [0, 2]]
    assert list(cm.index) == ["neg", "pos"] and cm.index.name == "true"
    # multiclass by argmax: predictions [0, 2, 2, 1] for truth [0, 1, 2, 2]
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.2, 0.6], [0.1, 0.5, 0.4]])
    cm3 = M.confusion_matrix([0, 1, 2, 2], probs)
    assert cm3.to_numpy().tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    with pytest.raises(ValueError, match="class indices"):
        M.confusion_matrix([0, 3, 1, 1], probs)
    Yml, Pml = _two_label_example()
    mc = M.multilabel_confusion(Yml, Pml, ["A", "B"])
    assert mc.loc["A"].tolist() == [1, 1, 1, 1]
    assert mc.loc["B"].tolist() == [2, 0, 0, 2]


def _sample(n, seed, acc=0.8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    correct = rng.random(n) < acc
    pred = np.where(correct, y, 1 - y)
    prob = np.clip(pred * 0.6 + 0.2 + rng.normal(0, 0.1, n), 0, 1)
    return y, prob


def test_bootstrap_contains_point_narrows_and_matches_binomial_width():
    y_small, p_small = _sample(60, 1)
    y_big, p_big = _sample(1500, 2)
    small = M.bootstrap_ci(M.accuracy, y_small, p_small, n_boot=400, seed=0)
    big = M.bootstrap_ci(M.accuracy, y_big, p_big, n_boot=400, seed=0)
    for ci in (small, big):
        assert ci.lo <= ci.point <= ci.hi
    assert (big.hi - big.lo) < 0.5 * (small.hi - small.lo)
    # accuracy is a binomial proportion: 95% width ~ 2 * 1.96 * sqrt(p(1-p)/n)
    expected = 2 * 1.96 * math.sqrt(big.point * (1 - big.point) / 1500)
    assert (big.hi - big.lo) == pytest.approx(expected, rel=0.25)
    point, lo, hi = big  # unpacks as a 3-tuple
    assert (point, lo, hi) == (big.point, big.lo, big.hi)
    assert big.n_skipped == 0


def test_bootstrap_is_seeded():
    y, p = _sample(100, 3)
    a = M.bootstrap_ci(M.auroc, y, p, n_boot=200, seed=5)
    b = M.bootstrap_ci(M.auroc, y, p, n_boot=200, seed=5)
    c = M.bootstrap_ci(M.auroc, y, p, n_boot=200, seed=6)
    assert tuple(a) == tuple(b)
    assert tuple(a) != tuple(c)


def test_bootstrap_skips_one_class_resamples_and_says_so():
    y = np.array([1] + [0] * 9)  # P(no positive in a resample) = 0.9**10 ~ 0.35
    p = np.linspace(0.9, 0.0, 10)
    with pytest.warns(RuntimeWarning, match=r"skipped \d+ of 500"):
        ci = M.bootstrap_ci(M.auroc, y, p, n_boot=500, seed=0)
    assert 100 < ci.n_skipped < 250
    assert ci.point == 1.0 and ci.lo == 1.0 and ci.hi == 1.0


@pytest.mark.slow
def test_metrics_with_ci_table():
    y, p = _sample(300, 4)
    t = M.metrics_with_ci(y, p, n_boot=300, seed=0)
    assert list(t.index) == list(M.METRIC_NAMES)
    assert list(t.columns) == ["point", "lo", "hi", "n_boot", "n_skipped"]
    point = M.binary_metrics(y, p)
    for m in M.METRIC_NAMES:
        assert t.loc[m, "point"] == pytest.approx(point[m])
        assert t.loc[m, "lo"] <= t.loc[m, "point"] <= t.loc[m, "hi"]
    # every metric is scored on the same resamples, bootstrap_ci's for the same seed
    for m in M.METRIC_NAMES:
        ci = M.bootstrap_ci(getattr(M, m), y, p, n_boot=300, seed=0)
        assert (t.loc[m, "lo"], t.loc[m, "hi"]) == pytest.approx((ci.lo, ci.hi)), m


def test_bootstrap_is_scipys_percentile_bootstrap_of_paired_cases():
    y, p = _sample(120, 7)
    ci = M.bootstrap_ci(M.f1, y, p, n_boot=250, alpha=0.1, seed=3)
    ref = stats.bootstrap(
        (y, p),
        M.f1,
        n_resamples=250,
        vectorized=False,
        paired=True,
        confidence_level=0.9,
        method="percentile",
        rng=np.random.default_rng(3),
    )
    assert (ci.lo, ci.hi) == pytest.approx(tuple(ref.confidence_interval))
    assert ci.point == M.f1(y, p) and ci.n_boot == 250 and ci.alpha == 0.1


def test_bootstrap_resamples_whole_rows_of_2d_inputs():
    y, p = _sample(90, 8)
    y2 = np.stack([y, 1 - y], axis=1)
    p2 = np.stack([p, 1 - p], axis=1)
    first_column = M.bootstrap_ci(lambda a, b: M.auroc(a[:, 0], b[:, 0]), y2, p2, n_boot=100)
    assert tuple(first_column) == tuple(M.bootstrap_ci(M.auroc, y, p, n_boot=100))
    # the second column is the mirror image: same AUROC on every resample only if rows move
    # together
    second = M.bootstrap_ci(lambda a, b: M.auroc(a[:, 1], b[:, 1]), y2, p2, n_boot=100)
    assert tuple(second) == pytest.approx(tuple(first_column))


def test_bootstrap_needs_two_cases():
    with pytest.raises(ValueError, match="at least 2 cases"):
        M.bootstrap_ci(M.accuracy, [1], [0.7], n_boot=10)
    with pytest.raises(ValueError, match="empty"):
        M.bootstrap_ci(M.accuracy, [], [], n_boot=10)
    with pytest.raises(ValueError, match="n_boot"):
        M.metrics_with_ci([0, 1], [0.2, 0.8], n_boot=0)


def _comparison_inputs():
    y, p = _sample(200, 5)
    ours = M.ci_wide(
        {
            "image": M.metrics_with_ci(y, p, n_boot=100),
            "text": M.metrics_with_ci(y, p, n_boot=100, seed=1),
        }
    )
    paper = pd.DataFrame(
        {"accuracy": [91.23, 99.48, 99.34], "auroc": [77.35, 99.95, np.nan]},
        index=["image", "text", "fusion"],
    )
    return ours, paper


def test_comparison_table():
    ours, paper = _comparison_inputs()
    t = M.comparison_table(ours, paper, paper_scale=0.01)
    assert list(t.index) == ["image", "text", "fusion"]
    assert list(t.columns.get_level_values(0).unique()) == ["accuracy", "auroc"]
    assert list(t["auroc"].columns) == ["ours", "lo", "hi", "paper", "difference"]
    assert all(dtype.kind == "f" for dtype in t.dtypes), "every field stays numeric"
    assert t.loc["image", ("accuracy", "paper")] == pytest.approx(0.9123)
    assert t.loc["text", ("auroc", "difference")] == pytest.approx(
        ours.loc["text", "auroc"] - 0.9995
    )
    assert t.loc["image", ("accuracy", "lo")] == ours.loc["image", "accuracy_lo"]
    assert t.loc["image", ("accuracy", "hi")] == ours.loc["image", "accuracy_hi"]
    assert math.isnan(t.loc["fusion", ("auroc", "ours")])
    assert math.isnan(t.loc["fusion", ("auroc", "lo")])
    assert t.attrs == {"digits": 3, "ci_level": 0.95}
    no_ci = M.comparison_table(ours[["accuracy"]], paper[["accuracy"]])
    assert no_ci[("accuracy", "lo")].isna().all(), "no interval columns: NaN, not an error"
    with pytest.raises(ValueError, match="no metric in common"):
        M.comparison_table(ours, pd.DataFrame({"bleu": [1.0]}, index=["image"]))


def _cell_lines(cell: str) -> list[str]:
    return re.findall(r'<span class="cmp-\w+">([^<]*)</span>', cell)


def test_style_comparison_is_one_compact_column_per_metric():
    ours, paper = _comparison_inputs()
    t = M.comparison_table(ours, paper, paper_scale=0.01)
    styler = M.style_comparison(t)
    cells = styler.data
    assert list(cells.columns) == ["Accuracy", "AUROC"], "one column per metric, not four"
    assert list(cells.index) == ["image", "text", "fusion"]
    o = ours.loc["image"]
    assert _cell_lines(cells.loc["image", "Accuracy"]) == [
        f"{o['accuracy']:.3f}",
        f"[{o['accuracy_lo']:.2f}, {o['accuracy_hi']:.2f}]",
        "paper 0.912",
    ], "ours, its interval (one decimal fewer), the paper's number"
    assert _cell_lines(cells.loc["fusion", "AUROC"]) == ["—", "", "paper —"]
    assert _cell_lines(cells.loc["fusion", "Accuracy"]) == ["—", "", "paper 0.993"]
    widest = max(len(line) for c in cells.to_numpy().ravel() for line in _cell_lines(c))
    assert widest <= 12, "no line of a cell is longer than '[0.00, 1.00]'"
    html = styler.to_html()
    assert "difference" not in html and "ours 95% CI" not in html
    assert "95% bootstrap interval" in html, "the caption says how to read a cell"
    assert re.search(r"td span \{\s*display: block;", html), "the three lines stack"
    two = M.style_comparison(t, digits=2).data.loc["text", "AUROC"]
    assert _cell_lines(two)[2] == "paper 1.00"
    level90 = M.comparison_table(ours, paper, paper_scale=0.01, ci_level=0.9)
    assert "90% bootstrap interval" in M.style_comparison(level90).to_html()
    odd = M.comparison_table(ours.rename(index={"image": "a<b"}), paper)
    assert "a&lt;b" in M.style_comparison(odd).to_html(), "run labels are escaped"


def test_quiet_metrics_do_not_leak_warnings_from_bootstrap():
    y, p = _sample(80, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        M.metrics_with_ci(y, p, n_boot=50)


def test_sharpness_falls_with_blur():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (3, 32, 32))
    blurred = ndimage.gaussian_filter(images, sigma=(0, 1.5, 1.5))
    assert (M.sharpness(blurred) < 0.5 * M.sharpness(images)).all()
    assert M.sharpness(np.full((2, 8, 8), 0.7)).tolist() == [0.0, 0.0]


def test_auroc_ranks_is_auroc_ties_included():
    rng = np.random.default_rng(3)
    for _ in range(5):
        y = rng.integers(0, 2, 200)
        p = np.round(rng.random(200), 1) + 0.1 * y  # many ties
        assert M.auroc_ranks(y, p) == pytest.approx(M.auroc(y, p), abs=1e-12)
    assert math.isnan(M.auroc_ranks(np.ones(5), np.arange(5.0))), "one class: NaN, no warning"


def test_the_bootstraps_fast_metrics_are_scikit_learns():
    """metrics_with_ci scores its resamples with a numpy path; it must give binary_metrics'
    numbers (scikit-learn's), ties, one-class samples and every threshold included."""
    rng = np.random.default_rng(5)
    cases = []
    for n in (2, 7, 60, 400):
        y = rng.integers(0, 2, n)
        cases += [(y, np.round(rng.random(n), 1) + 0.2 * y), (y, rng.random(n))]
    cases += [(np.zeros(9, int), rng.random(9)), (np.ones(9, int), rng.random(9))]
    cases += [(np.array([0, 1, 1, 0]), np.full(4, 0.5))]
    for y, p in cases:
        for threshold in (0.0, 0.3, 0.5, 1.01):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ref = M.binary_metrics(y, p, threshold)
            fast = M._binary_metrics_fast(y, p.astype(float), threshold)
            np.testing.assert_allclose(
                fast, [ref[m] for m in M.METRIC_NAMES], rtol=0, atol=1e-12, equal_nan=True
            )
