"""Evaluation procedures built on :mod:`mmcxr.metrics`: the bimodal sensitivity test and
bootstrap intervals for whole prediction tables, and the scores of generated samples.

The sensitivity test is paper 001's (Figure 2, bottom table): a fused model is re-scored with one
modality permuted across the test set, so each case keeps its label and its other modality but
gets a stranger's image (or report). A model that uses a modality loses performance when that
modality is shuffled; a model that ignores it does not.

Prediction helpers take a ``predict_fn(model, dataset) -> (probs, labels)`` (e.g.
``mmcxr.train.predict``) so that this module does not depend on the training loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mmcxr.metrics import (
    METRIC_NAMES,
    auroc,
    binary_metrics,
    ci_wide,
    metrics_with_ci,
    multilabel_metrics,
    sharpness,
)

CONDITIONS = {"normal": None, "image shuffled": "image", "text shuffled": "text"}
"""Rows of the sensitivity table and the modality each one shuffles."""


class ShufflableDataset(Protocol):
    """The data layer's ``MultimodalDataset`` contract used here."""

    def shuffled(self, modality: str, seed: int) -> Any: ...


PredictFn = Callable[[Any, Any], Any]


def _unpack(pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(probs, labels)`` from a tuple or from an object with ``.probs`` and ``.labels``."""
    if hasattr(pred, "probs") and hasattr(pred, "labels"):
        probs, labels = pred.probs, pred.labels
    else:
        try:
            probs, labels = pred
        except (TypeError, ValueError) as err:
            raise TypeError(
                "predict_fn must return (probs, labels) or an object with .probs and .labels, "
                f"got {type(pred).__name__}"
            ) from err
    to_np = lambda a: a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)  # noqa: E731
    return to_np(probs).astype(float), to_np(labels).astype(float)


def score(
    probs: np.ndarray,
    labels: np.ndarray,
    threshold: float = 0.5,
    label_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Binary metrics, or for ``(N, C)`` multi-label predictions the macro row of
    :func:`~mmcxr.metrics.multilabel_metrics`."""
    if labels.ndim == 1:
        return binary_metrics(labels, probs, threshold)
    names = (
        list(label_names) if label_names is not None else [str(i) for i in range(labels.shape[1])]
    )
    macro = multilabel_metrics(labels, probs, names, threshold).loc["macro"]
    return {m: float(macro[m]) for m in METRIC_NAMES}


def bimodal_sensitivity(
    model: Any,
    test_ds: ShufflableDataset,
    predict_fn: PredictFn,
    *,
    seed: int = 0,
    threshold: float = 0.5,
    modalities: Sequence[str] = ("image", "text"),
    label_names: Sequence[str] | None = None,
    n_boot: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Paper 001's bimodal sensitivity test.

    Scores ``model`` on ``test_ds`` as is and on ``test_ds.shuffled(modality, seed)`` for each
    modality. Returns one row per condition (``normal``, ``image shuffled``, ``text shuffled``),
    a ``shuffled`` column (``none``/``image``/``text``, for joining with run tables) and a
    column per metric; with ``n_boot > 0`` (binary tasks) also ``<metric>_lo`` /
    ``<metric>_hi`` bootstrap bounds. Labels returned for a shuffled set must equal the normal
    ones -- shuffling a modality must never move labels -- or this raises.
    """
    wanted = {"normal": None} | {f"{m} shuffled": m for m in modalities}
    for m in modalities:
        if m not in ("image", "text"):
            raise ValueError(f"modality must be 'image' or 'text', got {m!r}")
    results: dict[str, dict[str, float]] = {}
    reference: np.ndarray | None = None
    for name, modality in tqdm(wanted.items(), desc="bimodal sensitivity"):
        ds = test_ds if modality is None else test_ds.shuffled(modality, seed)
        probs, labels = _unpack(predict_fn(model, ds))
        if reference is None:
            reference = labels
        elif labels.shape != reference.shape or not np.array_equal(labels, reference):
            raise ValueError(
                f"labels changed when the {modality} modality was shuffled: shuffled() must "
                "permute that modality only"
            )
        if n_boot > 0:
            if labels.ndim != 1:
                raise ValueError("bootstrap intervals here are for binary tasks only")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                table = metrics_with_ci(labels, probs, threshold, n_boot, alpha, seed)
            results[name] = ci_wide({name: table}).iloc[0].to_dict()
        else:
            results[name] = score(probs, labels, threshold, label_names)
    out = pd.DataFrame.from_dict(results, orient="index")
    out.insert(0, "shuffled", [wanted[c] or "none" for c in out.index])
    out.index.name = "condition"
    return out


def predictions_table(predictions: Mapping[str, Any]) -> pd.DataFrame:
    """Long table ``run, case, label, prob`` from ``{run: (probs, labels)}`` (binary tasks).

    The format :func:`predictions_ci` reads and the book saves next to each chapter's figures.
    """
    parts = []
    for run, pred in predictions.items():
        probs, labels = _unpack(pred)
        if probs.ndim != 1 or labels.shape != probs.shape:
            raise ValueError(f"run {run!r}: need 1-D probs and labels of equal length")
        parts.append(
            pd.DataFrame(
                {"run": run, "case": np.arange(len(probs)), "label": labels, "prob": probs}
            )
        )
    if not parts:
        raise ValueError("no predictions given")
    return pd.concat(parts, ignore_index=True)


def predictions_ci(
    table: pd.DataFrame,
    *,
    by: str | Sequence[str] = "run",
    label_col: str = "label",
    prob_col: str = "prob",
    threshold: float = 0.5,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Bootstrap intervals for every metric of every run in a long prediction table.

    One row per group of ``by`` with columns ``<metric>``, ``<metric>_lo``, ``<metric>_hi``
    (ready for :func:`~mmcxr.metrics.comparison_table`), plus ``n`` and ``positives``.
    Each run is resampled by :func:`~mmcxr.metrics.metrics_with_ci` (``scipy.stats.bootstrap``)
    within itself, with the same seed for every run; this loop is over runs only. A warning
    per run counts resamples where a metric was undefined.
    """
    needed = [*([by] if isinstance(by, str) else by), label_col, prob_col]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise KeyError(f"prediction table lacks columns {missing}; has {list(table.columns)}")
    tables, sizes = {}, {}
    groups = table.groupby(by, sort=False)
    for key, g in tqdm(groups, total=groups.ngroups, desc="bootstrap runs"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            tables[key] = metrics_with_ci(g[label_col], g[prob_col], threshold, n_boot, alpha, seed)
        sizes[key] = (len(g), float(g[label_col].sum()))
        skipped = tables[key]["n_skipped"]
        if skipped.any():
            warnings.warn(
                f"run {key!r}: bootstrap skipped undefined resamples "
                + ", ".join(f"{m} {int(s)}/{n_boot}" for m, s in skipped[skipped > 0].items()),
                RuntimeWarning,
                stacklevel=2,
            )
    out = ci_wide(tables)
    out["n"] = [sizes[k][0] for k in out.index]
    out["positives"] = [sizes[k][1] for k in out.index]
    if not isinstance(by, str):
        out.index = pd.MultiIndex.from_tuples(out.index, names=list(by))
    else:
        out.index.name = by
    return out


def shuffled_predictions(
    model: Any,
    test_ds: ShufflableDataset,
    predict_fn: PredictFn,
    *,
    modalities: Sequence[str] = ("image", "text"),
    seed: int = 0,
) -> dict[str, Any]:
    """The predictions behind the bimodal sensitivity test, kept whole: ``{"none": ...,
    "<modality>": ...}``, each what ``predict_fn`` returned for the test set as is and with
    that modality shuffled (``test_ds.shuffled(modality, seed)``, as
    :func:`bimodal_sensitivity` scores them). A chapter stores these with its run and
    computes every table, interval and figure from them later without the model.
    """
    out = {"none": predict_fn(model, test_ds)}
    reference = _unpack(out["none"])[1]
    for m in modalities:
        if m not in ("image", "text"):
            raise ValueError(f"modality must be 'image' or 'text', got {m!r}")
        out[m] = predict_fn(model, test_ds.shuffled(m, seed))
        if not np.array_equal(_unpack(out[m])[1], reference):
            raise ValueError(
                f"labels changed when the {m} modality was shuffled: shuffled() must "
                "permute that modality only"
            )
    return out


def worst_error_cluster(
    features: np.ndarray, errors: np.ndarray, k: int = 3, seed: int = 0
) -> tuple[np.ndarray, int]:
    """Slice discovery without subgroup labels (in the spirit of Domino / GEORGE): k-means on
    L2-normalised ``features`` and the cluster whose mean ``errors`` is highest. Returns the
    cluster of every row and the worst cluster's id; which subgroup it is, is for the caller to
    check against whatever truth it has."""
    from sklearn.cluster import KMeans

    x = np.asarray(features, dtype=float)
    if len(x) < k:
        raise ValueError(f"{len(x)} rows cannot form {k} clusters")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
    labels = KMeans(k, n_init=10, random_state=seed).fit_predict(x)
    err = np.asarray(errors, dtype=float)
    means = [err[labels == c].mean() if (labels == c).any() else -np.inf for c in range(k)]
    return labels, int(np.argmax(means))


def generation_scores(
    y: np.ndarray,
    samples: Mapping[str, np.ndarray],
    judges: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    real_sharpness: Mapping[str, float],
) -> list[dict[str, Any]]:
    """How samples generated for items with labels ``y`` score, one row per modality of
    ``samples`` (in that order): ``{"modality", "coherence", "sharpness"}``.

    ``coherence`` is the AUROC with which the modality's judge (a classifier trained on real
    data, scores from samples) recovers the label of the item each sample was generated
    from: a threshold-free form of the coherence accuracy of the multimodal-VAE papers.
    ``sharpness`` is the mean :func:`~mmcxr.metrics.sharpness` of generated images (display
    intensity) over ``real_sharpness`` of that modality (1: as sharp as real). A modality
    without a judge, or without a real sharpness, gets NaN there.
    """
    rows = []
    for name, x in samples.items():
        judge = judges.get(name)
        real = real_sharpness.get(name)
        rows.append(
            {
                "modality": name,
                "coherence": auroc(y, judge(x)) if judge is not None else np.nan,
                "sharpness": float(sharpness(x).mean()) / real if real is not None else np.nan,
            }
        )
    return rows


def generation_scores_ci(
    y: np.ndarray,
    samples: Mapping[str, np.ndarray],
    judges: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    real_sharpness: Mapping[str, np.ndarray],
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """:func:`generation_scores` with percentile-bootstrap intervals over the items
    (:func:`~mmcxr.metrics.bootstrap_ci`): ``coherence_lo/_hi`` and ``sharpness_lo/_hi``.

    ``real_sharpness`` here holds each modality's *per-item* sharpness of the real items
    the samples were generated from (``(N,)``), so that a resample of the items draws the
    same items' real and generated films: the sharpness ratio is then the mean over the
    resampled generated films over the mean over the same items' real films (its point value
    is :func:`generation_scores`'s). Every interval of one call uses the same resamples.
    """
    from mmcxr.metrics import auroc_ranks, bootstrap_ci

    y = np.asarray(y)
    rows = []
    for name, x in samples.items():
        row: dict[str, Any] = {"modality": name}
        judge = judges.get(name)
        if judge is not None:
            row |= _ci_row("coherence", bootstrap_ci(auroc_ranks, y, judge(x), n_boot, alpha, seed))
        else:
            row |= _ci_row("coherence", None)
        real = real_sharpness.get(name)
        if real is not None:
            gen = sharpness(x)
            ratio = lambda r, g: float(np.mean(g) / np.mean(r))  # noqa: E731
            row |= _ci_row(
                "sharpness", bootstrap_ci(ratio, np.asarray(real), gen, n_boot, alpha, seed)
            )
        else:
            row |= _ci_row("sharpness", None)
        rows.append(row)
    return rows


def _ci_row(name: str, ci: Any) -> dict[str, float]:
    if ci is None:
        return {name: np.nan, f"{name}_lo": np.nan, f"{name}_hi": np.nan}
    return {name: ci.point, f"{name}_lo": ci.lo, f"{name}_hi": ci.hi}
