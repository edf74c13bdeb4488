"""Patient-level train/val/test splits.

A patient's studies look alike (same anatomy, same devices), so a split by image or study
lets a model recognise the patient instead of the disease and inflates test metrics. The
split is therefore drawn over patients with scikit-learn's ``train_test_split`` (optionally
stratified by each patient's label) and broadcast back to their rows. Where each row is its
own patient, :func:`stratified_splits` draws repeated stratified (train, held-out) splits.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedShuffleSplit, train_test_split

from mmcxr.data.errors import DataWarning

__all__ = ["SPLIT_NAMES", "patient_split", "patient_split_shares", "stratified_splits"]

SPLIT_NAMES = ("train", "val", "test")


def patient_split(
    df: pd.DataFrame,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    *,
    patient_col: str = "subject_id",
    stratify: str | None = None,
) -> pd.Series:
    """Assign every row to ``"train"``/``"val"``/``"test"`` so that no patient spans two.

    ``fractions`` are shares of *patients*. ``stratify`` names a 0/1 (or categorical) column;
    a patient's stratum is their most frequent value, so the class balance is similar across
    the three parts. Deterministic for a given ``seed`` and table (patients are sorted before
    drawing, so row order does not matter). Returns a Series aligned with ``df.index``.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}"
        )
    if patient_col not in df.columns:
        raise KeyError(f"patient_split needs column {patient_col!r}")
    if df[patient_col].isna().any():
        raise ValueError(f"patient_split: {patient_col} has blank values")
    if stratify is not None:
        per_patient = df.groupby(patient_col, sort=True)[stratify].agg(
            lambda s: s.value_counts().sort_index().idxmax()
        )
        patients, strata = per_patient.index.to_numpy(), per_patient.to_numpy()
    else:
        patients, strata = np.sort(df[patient_col].unique()), None
    f_train, f_val, f_test = fractions
    n = len(patients)
    assign = pd.Series("train", index=patients, dtype=object)
    rest, rest_strata = patients, strata
    if f_test > 0 and n > 1:
        rest, test, rest_strata, _ = _split(patients, strata, f_test, seed)
        assign[test] = "test"
    if f_val > 0 and len(rest) > 1:
        share = f_val / (f_train + f_val) if f_train + f_val > 0 else 1.0
        if share >= 1.0:
            assign[rest] = "val"
        else:
            _, val, _, _ = _split(rest, rest_strata, share, seed + 1)
            assign[val] = "val"
    return df[patient_col].map(assign).rename("split")


def _split(items: np.ndarray, strata: np.ndarray | None, test_share: float, seed: int):
    n_test = max(1, round(len(items) * test_share))
    if n_test >= len(items):
        return items[:0], items, (None if strata is None else strata[:0]), strata
    strat = strata
    if strata is not None:
        _, counts = np.unique(strata, return_counts=True)
        if counts.min() < 2 or n_test < len(counts) or len(items) - n_test < len(counts):
            strat = None  # too few patients in a stratum for sklearn to stratify
            warnings.warn(
                "patient_split: a stratum has too few patients to stratify; "
                "splitting without stratification",
                DataWarning,
                stacklevel=3,
            )
    if strata is None:
        a, b = train_test_split(items, test_size=n_test, random_state=seed, stratify=None)
        return a, b, None, None
    a, b, sa, sb = train_test_split(
        items, strata, test_size=n_test, random_state=seed, stratify=strat
    )
    return a, b, sa, sb


def patient_split_shares(
    df: pd.DataFrame,
    shares: dict[str, float],
    seed: int = 0,
    *,
    patient_col: str = "subject_id",
) -> pd.Series:
    """Assign rows to any number of named parts so that no patient spans two and each part
    holds about its share of *rows* (images), not of patients.

    Papers report split sizes in images (paper 000: four subsets of 103,864 / 206,888 / 2,813 /
    4,896 pairs); a patient with many films would skew a split drawn over patients. Patients
    are sorted, shuffled with ``seed`` and dealt in order, each to the first part still below
    its target row count. Shares must be positive and sum to 1. Returns a Series of part names
    aligned with ``df.index``.
    """
    if not shares or min(shares.values()) <= 0 or abs(sum(shares.values()) - 1) > 1e-6:
        raise ValueError(f"shares must be positive and sum to 1, got {shares}")
    if patient_col not in df.columns:
        raise KeyError(f"patient_split_shares needs column {patient_col!r}")
    if df[patient_col].isna().any():
        raise ValueError(f"patient_split_shares: {patient_col} has blank values")
    sizes = df.groupby(patient_col, sort=True).size()
    order = np.random.default_rng(seed).permutation(len(sizes))
    names = list(shares)
    targets = np.array([shares[n] * len(df) for n in names])
    filled = np.zeros(len(names))
    assign = {}
    for i in order:
        patient, n = sizes.index[i], sizes.iloc[i]
        # the part furthest below its target, relative to it (small parts get their share)
        j = int(np.argmax((targets - filled) / targets))
        assign[patient] = names[j]
        filled[j] += n
    return df[patient_col].map(assign).rename("split")


def stratified_splits(
    labels: Sequence[int], n_splits: int, holdout: float, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` stratified (train, held-out) index pairs over all cases (sorted indices;
    ``holdout``: the held-out share). Each case must be its own patient (one image per patient,
    say), or a patient may span both parts: split by patient with :func:`patient_split` then."""
    y = np.asarray(labels)
    sss = StratifiedShuffleSplit(n_splits=n_splits, test_size=holdout, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in sss.split(np.zeros(len(y)), y)]
