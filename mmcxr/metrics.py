"""Classification metrics with the book's conventions, on top of scikit-learn.

Every number the book reports goes through here so that all five chapters agree on three
things scikit-learn leaves to the caller:

* **Thresholds.** Threshold metrics (accuracy, precision, recall, F1) binarise probabilities
  with ``prob >= threshold`` (0.5 unless told otherwise); ranking metrics (AUROC, average
  precision) use the raw scores.
* **Undefined values.** Precision/recall/F1 with an empty denominator are 0
  (``zero_division=0``: a model that never predicts positive gets no credit for precision).
  AUROC with one class absent, and average precision with no positive case, are NaN with a
  warning rather than scikit-learn's 0.0 for AP, which would read as "worst possible".
* **Uncertainty.** Point estimates come with percentile-bootstrap intervals that resample
  cases (:func:`bootstrap_ci`, :func:`metrics_with_ci`, both ``scipy.stats.bootstrap``), and
  :func:`comparison_table` sets them beside a paper's reported numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm
from tqdm.auto import tqdm

METRIC_NAMES: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "auroc",
    "average_precision",
)
"""Keys of :func:`binary_metrics`, in the order tables show them."""

ArrayLike = Sequence[float] | np.ndarray


# --------------------------------------------------------------------------------------------
# input checking


def _as_binary_labels(y_true: ArrayLike, name: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per case), got shape {y.shape}")
    if np.isnan(y).any():
        raise ValueError(f"{name} contains {int(np.isnan(y).sum())} NaN label(s)")
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"{name} must hold only 0/1 labels; found {sorted(set(y[bad].tolist()))[:5]}"
        )
    return y.astype(int)


def _as_scores(prob: ArrayLike, n: int, name: str = "prob") -> np.ndarray:
    p = np.asarray(prob, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per case), got shape {p.shape}")
    if len(p) != n:
        raise ValueError(f"{name} has {len(p)} entries but y_true has {n}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(p)).sum())} non-finite score(s)")
    return p


def _checked(y_true: ArrayLike, prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = _as_binary_labels(y_true)
    return y, _as_scores(prob, len(y))


# --------------------------------------------------------------------------------------------
# scalar binary metrics


def accuracy(y_true: ArrayLike, prob: ArrayLike, threshold: float = 0.5) -> float:
    """Fraction of cases whose thresholded prediction equals the label."""
    y, p = _checked(y_true, prob)
    return float(skm.accuracy_score(y, (p >= threshold).astype(int)))


def precision(y_true: ArrayLike, prob: ArrayLike, threshold: float = 0.5) -> float:
    """Positive predictive value; 0 when nothing is predicted positive."""
    y, p = _checked(y_true, prob)
    return float(skm.precision_score(y, (p >= threshold).astype(int), zero_division=0))


def recall(y_true: ArrayLike, prob: ArrayLike, threshold: float = 0.5) -> float:
    """Sensitivity; 0 when there is no positive case."""
    y, p = _checked(y_true, prob)
    return float(skm.recall_score(y, (p >= threshold).astype(int), zero_division=0))


def f1(y_true: ArrayLike, prob: ArrayLike, threshold: float = 0.5) -> float:
    """Harmonic mean of precision and recall; 0 when both are 0."""
    y, p = _checked(y_true, prob)
    return float(skm.f1_score(y, (p >= threshold).astype(int), zero_division=0))


def auroc(y_true: ArrayLike, prob: ArrayLike) -> float:
    """Area under the ROC curve; NaN (with a warning) when one class is absent."""
    y, p = _checked(y_true, prob)
    if len(np.unique(y)) < 2:
        warnings.warn(
            f"AUROC is undefined with only one class present in y_true ({len(y)} cases); "
            "returning NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return math.nan
    return float(skm.roc_auc_score(y, p))


def average_precision(y_true: ArrayLike, prob: ArrayLike) -> float:
    """Area under the precision-recall curve (step-wise, scikit-learn's AP).

    NaN (with a warning) when there is no positive case: scikit-learn returns 0.0 there,
    which a table would show as a real, terrible score.
    """
    y, p = _checked(y_true, prob)
    if not y.any():
        warnings.warn(
            f"average precision is undefined without positive cases ({len(y)} cases); "
            "returning NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return math.nan
    return float(skm.average_precision_score(y, p))


def binary_metrics(y_true: ArrayLike, prob: ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """All of :data:`METRIC_NAMES` for one binary task.

    ``prob`` are scores for the positive class (probabilities for the threshold metrics).
    Precision, recall and F1 use ``zero_division=0``; AUROC is NaN with a warning when one
    class is absent and average precision is NaN with a warning when no case is positive.
    """
    y, p = _checked(y_true, prob)
    pred = (p >= threshold).astype(int)
    prec, rec, f, _ = skm.precision_recall_fscore_support(
        y, pred, average="binary", zero_division=0
    )
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(prec),
        "recall": float(rec),
        "f1": float(f),
        "auroc": auroc(y, p),
        "average_precision": average_precision(y, p),
    }


def _binary_metrics_fast(y: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`binary_metrics` as an array in :data:`METRIC_NAMES` order, from counts and one
    sort, for checked inputs (0/1 ``y``, float ``p``): the numbers scikit-learn gives (tested
    against it, ties included), NaN where :func:`binary_metrics` gives NaN, without its input
    validation, which is most of the time of the thousands of calls a bootstrap makes."""
    y = y.astype(bool)
    pred = p >= threshold
    n_pos, n_pred, tp = int(y.sum()), int(pred.sum()), int((pred & y).sum())
    accuracy = float((pred == y).mean())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * tp / (n_pred + n_pos) if n_pred + n_pos else 0.0
    if n_pos == 0:
        return np.array([accuracy, precision, recall, f1, math.nan, math.nan])
    auc = auroc_ranks(y, p)
    # scikit-learn's step-wise AP: sum over distinct scores, high to low, of the recall gained
    # times the precision there (its precision_recall_curve without intermediate drops)
    order = np.argsort(-p, kind="mergesort")
    ends = np.r_[np.flatnonzero(np.diff(p[order])), len(p) - 1]
    tps = np.cumsum(y[order])[ends]
    ap = float(np.sum(np.diff(tps, prepend=0) / n_pos * tps / (ends + 1)))
    return np.array([accuracy, precision, recall, f1, auc, ap])


# --------------------------------------------------------------------------------------------
# multi-label


def _as_matrix(a: ArrayLike, name: str) -> np.ndarray:
    m = np.asarray(a, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"{name} must be 2-D (cases x labels), got shape {m.shape}")
    return m


def _nanmean(values: Sequence[float]) -> float:
    ok = [v for v in values if not math.isnan(v)]
    return float(np.mean(ok)) if ok else math.nan


def multilabel_metrics(
    Y: ArrayLike,
    P: ArrayLike,
    label_names: Sequence[str],
    threshold: float = 0.5,
    *,
    mask_missing: bool = False,
) -> pd.DataFrame:
    """Per-label metrics plus ``micro`` and ``macro`` rows.

    * per label: :func:`binary_metrics` on that column, with ``n`` cases and ``positives``;
    * ``micro``: the label matrix flattened into one binary problem (so micro accuracy is the
      fraction of correct label decisions, not scikit-learn's exact-match subset accuracy);
    * ``macro``: the unweighted mean over labels, ignoring labels whose value is NaN (e.g.
      AUROC for a label with no positive case in the test set; a warning names them).

    ``Y`` may hold NaN (CheXpert blanks) only with ``mask_missing=True``; each label is then
    scored on its labelled cases and the micro row on all labelled cells.
    """
    y = _as_matrix(Y, "Y")
    p = _as_matrix(P, "P")
    names = list(label_names)
    if y.shape != p.shape:
        raise ValueError(f"Y has shape {y.shape} but P has shape {p.shape}")
    if y.shape[1] != len(names):
        raise ValueError(f"{y.shape[1]} label columns but {len(names)} label_names")
    missing = np.isnan(y)
    if missing.any() and not mask_missing:
        raise ValueError(
            f"Y contains {int(missing.sum())} NaN label(s) (columns "
            f"{[names[j] for j in np.flatnonzero(missing.any(0))][:5]}); "
            "pass mask_missing=True to score each label on its labelled cases"
        )
    rows: dict[str, dict[str, float]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # reported once, by label, below
        for j, name in enumerate(names):
            keep = ~missing[:, j]
            r = binary_metrics(y[keep, j], p[keep, j], threshold)
            r["n"] = float(keep.sum())
            r["positives"] = float(y[keep, j].sum())
            rows[name] = r
        keep = ~missing
        micro = binary_metrics(y[keep], p[keep], threshold)
    undefined = [n for n in names if math.isnan(rows[n]["auroc"])]
    if undefined:
        warnings.warn(
            f"AUROC/AP undefined (one class present) for {len(undefined)} label(s): "
            f"{undefined}; they are left out of the macro means",
            RuntimeWarning,
            stacklevel=2,
        )
    micro["n"] = float(keep.sum())
    micro["positives"] = float(y[keep].sum())
    macro = {m: _nanmean([rows[n][m] for n in names]) for m in METRIC_NAMES}
    macro.update(n=math.nan, positives=math.nan)
    rows["micro"] = micro
    rows["macro"] = macro
    table = pd.DataFrame.from_dict(rows, orient="index")[[*METRIC_NAMES, "n", "positives"]]
    table.index.name = "label"
    return table


# --------------------------------------------------------------------------------------------
# curves and confusion matrices


@dataclass(frozen=True)
class RocCurve:
    """One ROC curve (scikit-learn's ``roc_curve``) and its area."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auroc: float


def roc_curve(y_true: ArrayLike, prob: ArrayLike) -> RocCurve:
    """ROC curve of one binary task; raises if one class is absent (there is no curve)."""
    y, p = _checked(y_true, prob)
    if len(np.unique(y)) < 2:
        raise ValueError("an ROC curve needs both classes in y_true; only one is present")
    fpr, tpr, thr = skm.roc_curve(y, p)
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thr, auroc=float(skm.auc(fpr, tpr)))


def roc_curves(
    Y: ArrayLike, P: ArrayLike, label_names: Sequence[str], *, micro: bool = True
) -> dict[str, RocCurve]:
    """Per-label ROC curves (labels with one class are skipped) plus the micro-average curve.

    The micro curve is the ROC of the flattened label matrix, as MEEMS (paper 000) plots it.
    """
    y = _as_matrix(Y, "Y")
    p = _as_matrix(P, "P")
    if y.shape != p.shape or y.shape[1] != len(label_names):
        raise ValueError(f"Y {y.shape}, P {p.shape} and {len(label_names)} label_names disagree")
    out: dict[str, RocCurve] = {}
    for j, name in enumerate(label_names):
        if len(np.unique(y[:, j])) == 2:
            out[name] = roc_curve(y[:, j], p[:, j])
    if micro:
        out["micro"] = roc_curve(y.ravel(), p.ravel())
    return out


def confusion_matrix(
    y_true: ArrayLike,
    prob: ArrayLike,
    threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Confusion counts, rows = true class, columns = predicted class.

    ``prob`` 1-D: binary, predicted positive when ``prob >= threshold``.
    ``prob`` 2-D (cases x classes) with integer ``y_true``: multiclass, predicted class =
    argmax (MEEMS's "No Finding"/"Finding" softmax head). For multi-label data use
    :func:`multilabel_confusion`.
    """
    p = np.asarray(prob, dtype=float)
    if p.ndim == 1:
        y, p = _checked(y_true, p)
        pred = (p >= threshold).astype(int)
        k = 2
    elif p.ndim == 2:
        y = np.asarray(y_true)
        if y.ndim != 1 or len(y) != len(p):
            raise ValueError(
                f"multiclass confusion needs 1-D integer y_true of length {len(p)}, "
                f"got shape {y.shape}"
            )
        k = p.shape[1]
        if not np.isin(y, np.arange(k)).all():
            raise ValueError(f"y_true must hold class indices 0..{k - 1}")
        y = y.astype(int)
        pred = p.argmax(axis=1)
    else:
        raise ValueError(f"prob must be 1-D or 2-D, got shape {p.shape}")
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class_names for {k} classes")
    cm = skm.confusion_matrix(y, pred, labels=np.arange(k))
    return pd.DataFrame(
        cm,
        index=pd.Index(names, name="true"),
        columns=pd.Index(names, name="predicted"),
    )


def multilabel_confusion(
    Y: ArrayLike, P: ArrayLike, label_names: Sequence[str], threshold: float = 0.5
) -> pd.DataFrame:
    """One row per label with thresholded ``tn, fp, fn, tp`` counts."""
    y = _as_matrix(Y, "Y")
    p = _as_matrix(P, "P")
    if y.shape != p.shape or y.shape[1] != len(label_names):
        raise ValueError(f"Y {y.shape}, P {p.shape} and {len(label_names)} label_names disagree")
    if np.isnan(y).any():
        raise ValueError("Y contains NaN labels; drop or fill them before counting")
    cms = skm.multilabel_confusion_matrix(y.astype(int), (p >= threshold).astype(int))
    return pd.DataFrame(
        cms.reshape(len(label_names), 4),
        index=pd.Index(list(label_names), name="label"),
        columns=["tn", "fp", "fn", "tp"],
    )


# --------------------------------------------------------------------------------------------
# bootstrap


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile-bootstrap interval; unpacks as ``point, lo, hi``.

    ``n_skipped`` resamples gave an undefined value (e.g. AUROC on a resample with one class)
    and were left out of the percentiles, so the interval rests on ``n_boot - n_skipped``.
    """

    point: float
    lo: float
    hi: float
    n_boot: int
    n_skipped: int
    alpha: float

    def __iter__(self) -> Iterator[float]:
        return iter((self.point, self.lo, self.hi))


def _check_boot_args(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _quiet_call(fn: Callable[..., float], *args: object) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = fn(*args)
    return float(value)


_BATCH_CELLS = 1 << 22
"""Resampled case indices scipy may hold at once (``batch * n``; 32 MB of int64)."""


def _bootstrap_distribution(
    statistic: Callable[[np.ndarray], float | np.ndarray],
    n: int,
    n_boot: int,
    seed: int,
    progress: bool,
) -> np.ndarray:
    """``statistic(idx)`` on ``n_boot`` resamples ``idx`` of the case indices ``0..n-1``.

    ``scipy.stats.bootstrap`` draws the resamples from ``np.random.default_rng(seed)``. Its
    stream does not depend on ``batch``, so every caller with the same ``seed`` and ``n`` sees
    the same resamples, and the ``batch`` cap only bounds memory (scipy draws a whole
    ``(batch, n)`` index block before scoring it). The statistic gets case indices and indexes
    labels and scores with them, which keeps each case's label, score and (for a multi-output
    statistic) all metrics on the same resample -- the pairing ``paired=True`` stands for.
    Passing ``(y, p)`` as scipy samples instead would not work for ``(N, C)`` multi-label
    inputs: the non-vectorised path concatenates samples into one 1-D array per resample.
    Non-vectorised because the metrics are scikit-learn calls; scipy's own part costs about
    0.03 s of the ~3 s that 500 AUROC resamples of 2,000 cases take (measured).

    Returns ``(n_boot,)``, or ``(k, n_boot)`` for a statistic of ``k`` values, NaN where the
    statistic was undefined. Warnings are silenced: metrics warn on every one-class resample,
    and scipy warns that its own interval is NaN as soon as one resample is -- callers count
    the NaNs and warn once instead.
    """
    if n < 2:
        raise ValueError(f"need at least 2 cases to bootstrap, got {n}")
    bar = tqdm(total=n_boot, desc="bootstrap", disable=not progress)

    def counted(idx: np.ndarray) -> float | np.ndarray:
        bar.update()
        return statistic(idx)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                (np.arange(n),),
                counted,
                n_resamples=n_boot,
                batch=max(1, min(n_boot, _BATCH_CELLS // n)),
                vectorized=False,
                paired=True,
                method="percentile",
                rng=np.random.default_rng(seed),
            )
    finally:
        bar.close()
    return np.asarray(res.bootstrap_distribution, dtype=float)


def _percentiles(values: np.ndarray, alpha: float) -> np.ndarray:
    """Percentile interval ``[..., (lo, hi)]`` over the last axis with NaNs left out.

    ``scipy.stats.quantile`` (``linear``) is what ``bootstrap(method="percentile")`` computes
    its interval with; it is called again here with ``nan_policy="omit"`` because scipy's own
    interval turns NaN as soon as one resample is undefined. NaN where nothing is left.
    """
    return stats.quantile(values, [alpha / 2, 1 - alpha / 2], axis=-1, nan_policy="omit")


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true: ArrayLike,
    prob: ArrayLike,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    progress: bool = False,
) -> BootstrapCI:
    """Percentile-bootstrap ``(point, lo, hi)`` of ``metric_fn(y_true, prob)``.

    Cases (rows) are resampled with replacement (``scipy.stats.bootstrap``, see
    :func:`_bootstrap_distribution`); ``y_true``/``prob`` may be 1-D or 2-D. The point estimate
    is the metric on the full sample, not a bootstrap mean. A resample whose metric is
    undefined -- NaN, as :func:`auroc` returns when a resample holds one class -- is skipped,
    and a warning says how many were, because many skips mean the interval describes only the
    resamples that happened to contain both classes.
    """
    _check_boot_args(n_boot, alpha)
    y = np.asarray(y_true)
    p = np.asarray(prob)
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} cases but prob has {len(p)}")
    if len(y) == 0:
        raise ValueError("cannot bootstrap an empty sample")
    point = _quiet_call(metric_fn, y, p)
    values = _bootstrap_distribution(
        lambda idx: float(metric_fn(y[idx], p[idx])), len(y), n_boot, seed, progress
    )
    n_skipped = int(np.isnan(values).sum())
    if n_skipped:
        name = getattr(metric_fn, "__name__", "metric")
        warnings.warn(
            f"bootstrap of {name}: skipped {n_skipped} of {n_boot} resamples where the metric "
            "was undefined (e.g. only one class present)",
            RuntimeWarning,
            stacklevel=2,
        )
    lo, hi = _percentiles(values, alpha)
    return BootstrapCI(point, float(lo), float(hi), n_boot=n_boot, n_skipped=n_skipped, alpha=alpha)


def metrics_with_ci(
    y_true: ArrayLike,
    prob: ArrayLike,
    threshold: float = 0.5,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    progress: bool = False,
) -> pd.DataFrame:
    """Every :func:`binary_metrics` value with its bootstrap interval.

    One row per metric, columns ``point, lo, hi, n_boot, n_skipped``. All metrics are scored
    on the same resamples, so their intervals are paired (a resample that flatters AUROC
    flatters AP with it), and the resamples are :func:`bootstrap_ci`'s for the same ``seed``
    -- its interval for one metric equals this table's row.
    """
    _check_boot_args(n_boot, alpha)
    y, p = _checked(y_true, prob)

    p = p.astype(np.float64)

    def all_metrics(idx: np.ndarray) -> np.ndarray:
        return _binary_metrics_fast(y[idx], p[idx], threshold)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        point = binary_metrics(y, p, threshold)
    values = _bootstrap_distribution(all_metrics, len(y), n_boot, seed, progress)
    intervals = _percentiles(values, alpha)
    table = pd.DataFrame(
        {
            "point": [point[m] for m in METRIC_NAMES],
            "lo": intervals[:, 0],
            "hi": intervals[:, 1],
            "n_boot": n_boot,
            "n_skipped": np.isnan(values).sum(axis=1),
        },
        index=pd.Index(METRIC_NAMES, name="metric"),
    )
    skipped = table["n_skipped"]
    if skipped.any():
        warnings.warn(
            "bootstrap skipped resamples with undefined metrics: "
            + ", ".join(f"{m} {int(s)}/{n_boot}" for m, s in skipped[skipped > 0].items()),
            RuntimeWarning,
            stacklevel=2,
        )
    return table


def ci_wide(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Turn ``{run: metrics_with_ci(...)}`` into one row per run.

    Columns ``<metric>``, ``<metric>_lo``, ``<metric>_hi`` -- the layout
    :func:`comparison_table` reads as "ours".
    """
    rows = {}
    for run, t in tables.items():
        row: dict[str, float] = {}
        for m, r in t.iterrows():
            row[str(m)] = r["point"]
            row[f"{m}_lo"] = r["lo"]
            row[f"{m}_hi"] = r["hi"]
        rows[run] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "run"
    return out


# --------------------------------------------------------------------------------------------
# ours vs the paper


def _fmt(x: float, digits: int) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def comparison_table(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    paper_scale: float = 1.0,
    ci_level: float = 0.95,
    digits: int = 3,
) -> pd.DataFrame:
    """Our numbers beside the paper's, one row per run.

    ``ours``: index = run names, a column per metric and optionally ``<metric>_lo`` /
    ``<metric>_hi`` (see :func:`ci_wide`). ``paper``: index = the same run names, a column per
    metric as reported (NaN where the paper gives none); ``paper_scale`` converts its units,
    e.g. ``0.01`` for papers that print percentages (paper 004).

    Returns numeric columns ``(metric, field)`` with fields ``ours``, ``lo`` and ``hi`` (our
    ``ci_level`` interval, NaN without one), ``paper`` and ``difference`` (ours - paper). Rows
    are the union of both indexes, ours first. :func:`style_comparison` renders it compactly.
    """
    if not isinstance(ours, pd.DataFrame) or not isinstance(paper, pd.DataFrame):
        raise TypeError("ours and paper must be DataFrames indexed by run name")
    if metrics is None:
        metrics = [c for c in paper.columns if c in ours.columns]
    missing_ours = [m for m in metrics if m not in ours.columns]
    missing_paper = [m for m in metrics if m not in paper.columns]
    if missing_ours or missing_paper:
        raise ValueError(
            f"metrics missing from ours: {missing_ours}; missing from paper: {missing_paper}"
        )
    if not metrics:
        raise ValueError(
            f"no metric in common: ours has {list(ours.columns)}, paper has {list(paper.columns)}"
        )
    runs = list(ours.index) + [r for r in paper.index if r not in ours.index]
    nan = pd.Series(math.nan, index=runs, dtype=float)
    cols = {}
    for m in metrics:
        o = pd.to_numeric(ours[m], errors="raise").reindex(runs).astype(float)
        pp = pd.to_numeric(paper[m], errors="raise").reindex(runs).astype(float) * paper_scale
        has_ci = f"{m}_lo" in ours.columns and f"{m}_hi" in ours.columns
        cols[(m, "ours")] = o
        for end in ("lo", "hi"):
            col = f"{m}_{end}"
            cols[(m, end)] = (
                pd.to_numeric(ours[col], errors="raise").reindex(runs).astype(float)
                if has_ci
                else nan
            )
        cols[(m, "paper")] = pp
        cols[(m, "difference")] = o - pp
    table = pd.DataFrame(cols, index=pd.Index(runs, name="run"))
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["metric", ""])
    table.attrs["digits"] = digits
    table.attrs["ci_level"] = ci_level
    return table


#: Column headings of :func:`style_comparison` (other metrics keep their own name).
METRIC_LABELS: dict[str, str] = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "auroc": "AUROC",
    "average_precision": "AP",
}


def _comparison_cell(row: pd.Series, metric: str, d: int) -> str:
    """One cell, three short lines (HTML): ours, its interval, the paper's number."""
    lo, hi = row[(metric, "lo")], row[(metric, "hi")]
    ci = "" if math.isnan(lo) or math.isnan(hi) else f"[{lo:.{d - 1}f}, {hi:.{d - 1}f}]"
    return (
        f'<span class="cmp-ours">{_fmt(row[(metric, "ours")], d)}</span>'
        f'<span class="cmp-ci">{ci}</span>'
        f'<span class="cmp-paper">paper {_fmt(row[(metric, "paper")], d)}</span>'
    )


def style_comparison(table: pd.DataFrame, digits: int | None = None):  # -> pandas Styler
    """Notebook rendering of :func:`comparison_table`, narrow enough for a book page.

    One column per metric (five fit the book's text column at a 1,400 px window); each cell
    stacks ours (bold), its interval and the paper's number ("paper 0.993"), a dash where a
    number is missing. Ours and the paper's have ``digits`` decimals, the interval one fewer;
    the difference stays in ``table``. Self-contained CSS: it reads the same in JupyterLab.
    """
    d = table.attrs.get("digits", 3) if digits is None else digits
    level = round(100 * table.attrs.get("ci_level", 0.95))
    metrics = list(dict.fromkeys(table.columns.get_level_values(0)))
    cells = pd.DataFrame(
        {
            METRIC_LABELS.get(m, m): [_comparison_cell(row, m, d) for _, row in table.iterrows()]
            for m in metrics
        },
        index=table.index,
    )
    styler = cells.style.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    styler = styler.hide(axis="index", names=True)  # no header row for the index name
    rule = "border-bottom: 1px solid rgba(128, 128, 128, 0.35);"
    return styler.set_caption(
        f"Each cell: ours (bold), our {level}% bootstrap interval, the paper's number."
    ).set_table_styles(
        [
            {"selector": "", "props": "border-collapse: collapse;"},
            {"selector": "caption", "props": "caption-side: top; text-align: left;"},
            {"selector": "th, td", "props": f"padding: 0.35em 0.6em; vertical-align: top; {rule}"},
            {"selector": "thead th", "props": "text-align: right; white-space: nowrap;"},
            {"selector": "tbody th", "props": "text-align: left; min-width: 7em;"},
            {
                "selector": "td",
                "props": "text-align: right; white-space: nowrap; line-height: 1.3;"
                " font-variant-numeric: tabular-nums;",
            },
            {"selector": "td span", "props": "display: block;"},
            {"selector": "td .cmp-ours", "props": "font-weight: 600;"},
            {"selector": "td .cmp-ci", "props": "font-size: 0.8em; opacity: 0.85;"},
            {"selector": "td .cmp-paper", "props": "font-size: 0.85em; opacity: 0.7;"},
        ]
    )


# --------------------------------------------------------------------------------------------
# rates at an operating point, and AUROC/F1 over a label matrix (paper 000's "AUC" and "F1")


def false_negative_rate(y_true: ArrayLike, prob: ArrayLike, threshold: float = 0.5) -> float:
    """Share of positives scored below ``threshold`` (1 - recall); NaN without positives. A
    matrix is flattened: every label decision counts once."""
    y, pred = np.asarray(y_true).ravel(), np.asarray(prob).ravel() >= threshold
    pos = y == 1
    return float((~pred[pos]).mean()) if pos.any() else math.nan


def false_positive_rate(y_true: ArrayLike, prob: ArrayLike, threshold: float = 0.5) -> float:
    """Share of negatives scored at or above ``threshold``; NaN without negatives (flattened
    like :func:`false_negative_rate`)."""
    y, pred = np.asarray(y_true).ravel(), np.asarray(prob).ravel() >= threshold
    neg = y == 0
    return float(pred[neg].mean()) if neg.any() else math.nan


def mean_auroc(y_true: ArrayLike, prob: ArrayLike) -> float:
    """AUROC of a binary task, or the mean over the columns of a label matrix that hold both
    classes (NaN when none does) -- the "AUC" papers report for multi-label tasks."""
    y, p = np.asarray(y_true), np.asarray(prob)
    if y.ndim == 1:
        return auroc(y, p) if 0 < y.sum() < len(y) else math.nan
    vals = [mean_auroc(y[:, j], p[:, j]) for j in range(y.shape[1])]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def micro_auroc(y_true: ArrayLike, prob: ArrayLike) -> float:
    """Micro-averaged AUROC: every cell of the binarised label matrix as one binary problem;
    a binary task first becomes two columns (negative, positive), as scikit-learn's
    label-binarised ROC examples do."""
    y, p = np.asarray(y_true, dtype=float), np.asarray(prob, dtype=float)
    if y.ndim == 1:
        y, p = np.stack([1 - y, y], 1), np.stack([1 - p, p], 1)
    return mean_auroc(y.ravel(), p.ravel())


def mean_f1(y_true: ArrayLike, prob: ArrayLike, threshold: float = 0.5) -> float:
    """F1 of a binary task, or the unweighted mean F1 over the columns of a label matrix."""
    y, p = np.asarray(y_true), np.asarray(prob)
    if y.ndim == 1:
        return f1(y, p, threshold)
    return float(np.mean([f1(y[:, j], p[:, j], threshold) for j in range(y.shape[1])]))


# --------------------------------------------------------------------------------------------
# images


def sharpness(images: np.ndarray) -> np.ndarray:
    """Mean gradient magnitude (Sobel) of each image ``(N, H, W)`` in display intensity:
    blur weakens edges and lowers it, so "less blurry" becomes "a higher value"."""
    from scipy import ndimage

    x = np.asarray(images, dtype=np.float64).reshape(len(images), *np.shape(images)[-2:])
    gx = ndimage.sobel(x, axis=-1, mode="nearest")
    gy = ndimage.sobel(x, axis=-2, mode="nearest")
    return np.hypot(gx, gy).mean(axis=(-2, -1))


def auroc_ranks(y_true: ArrayLike, prob: ArrayLike) -> float:
    """AUROC as the Mann-Whitney statistic over midranks: the same number as :func:`auroc`
    (ties count one half either way), without scikit-learn's input checks, which make up
    most of the time of the thousands of calls a bootstrap makes (about a hundred times
    faster on a few hundred cases, measured). NaN, silently, when one class is absent."""
    y = np.asarray(y_true).astype(bool).ravel()
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = stats.rankdata(np.asarray(prob, dtype=np.float64).ravel())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
