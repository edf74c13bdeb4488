"""The cohort selections the five papers describe, and a record of what each step removed.

Each helper takes the tidy image-level table of a loader and returns a filtered copy (never a
view), so steps chain freely. :class:`CohortFlow` runs them in order and records rows,
studies, patients and class counts after each, which is the table a chapter shows beside the
paper's own cohort description.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mmcxr.data.errors import DataWarning

__all__ = [
    "FRONTAL_VIEWS",
    "CohortFlow",
    "SplitCohort",
    "binary_cohort",
    "frontal_only",
    "one_per_patient",
    "select_pa_erect_nonportable",
    "subsample_ratio",
]

#: View values counted as frontal: MIMIC ViewPosition, ChestX-ray14 View Position, OpenI
#: projection.
FRONTAL_VIEWS = frozenset({"PA", "AP", "FRONTAL", "POSTERO-ANTERIOR", "ANTERO-POSTERIOR"})


def _require(df: pd.DataFrame, cols: list[str], who: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{who} needs column(s) {missing}; the table has {list(df.columns)}")


def _upper(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.strip().str.upper()


def select_pa_erect_nonportable(df: pd.DataFrame) -> pd.DataFrame:
    """PA films taken erect on a fixed (non-portable) unit, as in Chao & Li.

    ``view == "PA"``, ``orientation == "Erect"`` and a procedure description without
    "PORTABLE" (MIMIC describes bedside films as e.g. ``CHEST (PORTABLE AP)``).
    """
    _require(df, ["view", "orientation", "procedure"], "select_pa_erect_nonportable")
    keep = (
        (_upper(df["view"]) == "PA")
        & (_upper(df["orientation"]) == "ERECT")
        & ~_upper(df["procedure"]).str.contains("PORTABLE", regex=False)
    )
    return df.loc[keep].copy()


def frontal_only(df: pd.DataFrame) -> pd.DataFrame:
    """Frontal images (PA or AP, or OpenI's "Frontal"); laterals and unknown views dropped.

    An image whose view is not known at all is not a lateral: dropping it is said, with a
    count (a warning), so that a loader's failed view join cannot empty a cohort unseen.
    """
    _require(df, ["view"], "frontal_only")
    unknown = df["view"].isna() | (df["view"].astype(str).str.strip() == "")
    if unknown.any():
        warnings.warn(
            f"frontal_only: {int(unknown.sum())} of {len(df)} images have no view and are "
            "dropped with the laterals",
            DataWarning,
            stacklevel=2,
        )
    return df.loc[_upper(df["view"]).isin(FRONTAL_VIEWS)].copy()


def binary_cohort(
    df: pd.DataFrame,
    positive: str = "Pneumonia",
    negative: str = "No Finding",
    label_col: str = "label",
) -> pd.DataFrame:
    """Rows certain about one of two labels: ``positive == 1.0`` -> 1, ``negative == 1.0`` -> 0.

    Uncertain (-1.0), negative-mentioned (0.0) and blank rows of the positive label are not
    negatives: only an explicit ``negative == 1.0`` is. A row positive for both (which a
    labeller should not produce) is contradictory and dropped. Adds an int ``label_col``.
    """
    _require(df, [positive, negative], "binary_cohort")
    pos = df[positive] == 1.0
    neg = df[negative] == 1.0
    out = df.loc[pos ^ neg].copy()
    out[label_col] = pos[pos ^ neg].astype(np.int64).to_numpy()
    return out


def one_per_patient(
    df: pd.DataFrame,
    seed: int = 0,
    *,
    keep: str = "row",
    patient_col: str = "subject_id",
    study_col: str = "study_id",
) -> pd.DataFrame:
    """Remove repeat records of a patient, choosing at random (by ``seed``) which to keep.

    ``keep="row"`` keeps one row per patient; ``keep="study"`` keeps every row of one study
    per patient (e.g. a frontal and a lateral of the same visit). Row order is preserved.
    """
    if keep not in ("row", "study"):
        raise ValueError(f"keep must be 'row' or 'study', got {keep!r}")
    _require(df, [patient_col] + ([study_col] if keep == "study" else []), "one_per_patient")
    rng = np.random.default_rng(seed)
    unit = df if keep == "row" else df[[patient_col, study_col]].drop_duplicates()
    order = rng.permutation(len(unit))
    chosen = unit.iloc[order].drop_duplicates(subset=patient_col, keep="first")
    if keep == "row":
        return df.loc[df.index.isin(chosen.index)].copy()
    return df.loc[df[study_col].isin(chosen[study_col])].copy()


def subsample_ratio(
    df: pd.DataFrame, label_col: str = "label", neg_frac: float = 0.75, seed: int = 0
) -> pd.DataFrame:
    """Keep every positive and sample negatives so they are ``neg_frac`` of the result.

    Chao & Li's 75/25 set (2,323 positives, 6,969 negatives) is ``neg_frac=0.75``. When there
    are too few negatives for the ratio, all negatives are kept and positives are sampled
    instead. Row order is preserved; deterministic by ``seed``.
    """
    if not 0.0 < neg_frac < 1.0:
        raise ValueError(f"neg_frac must be in (0, 1), got {neg_frac}")
    _require(df, [label_col], "subsample_ratio")
    y = df[label_col]
    if not y.isin([0, 1]).all():
        raise ValueError(
            f"subsample_ratio: {label_col} must be 0/1, found "
            f"{sorted(set(y.dropna().unique()) - {0, 1})[:5]}"
        )
    pos, neg = df.index[y == 1], df.index[y == 0]
    want_neg = round(len(pos) * neg_frac / (1 - neg_frac))
    rng = np.random.default_rng(seed)
    if want_neg <= len(neg):
        neg = rng.choice(neg, size=want_neg, replace=False)
    else:
        pos = rng.choice(pos, size=round(len(neg) * (1 - neg_frac) / neg_frac), replace=False)
    return df.loc[df.index.isin(pos) | df.index.isin(neg)].copy()


class CohortFlow:
    """Apply selection steps in order and record counts after each one.

    >>> flow = CohortFlow(df, "loaded")
    >>> df = flow.apply("PA, erect, non-portable", select_pa_erect_nonportable)
    >>> df = flow.apply("pneumonia vs no finding", binary_cohort)
    >>> flow.table   # step, rows, studies, patients, removed (+ positives/negatives)
    """

    def __init__(
        self,
        df: pd.DataFrame,
        name: str = "start",
        *,
        label_col: str = "label",
        patient_col: str = "subject_id",
        study_col: str = "study_id",
    ) -> None:
        self.label_col, self.patient_col, self.study_col = label_col, patient_col, study_col
        self.rows: list[dict[str, Any]] = []
        self.df = df
        self.record(name, df)

    def apply(
        self, name: str, fn: Callable[..., pd.DataFrame], *args: Any, **kwargs: Any
    ) -> pd.DataFrame:
        """Run ``fn(current_df, *args, **kwargs)``, record the counts, return the result."""
        return self.record(name, fn(self.df, *args, **kwargs))

    def record(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        """Record a table filtered by other means as the next step."""
        prev = self.rows[-1]["rows"] if self.rows else len(df)
        row: dict[str, Any] = {"step": name, "rows": len(df)}
        if self.study_col in df.columns:
            row["studies"] = df[self.study_col].nunique()
        if self.patient_col in df.columns:
            row["patients"] = df[self.patient_col].nunique()
        row["removed"] = prev - len(df)
        if self.label_col in df.columns:
            row["positives"] = int((df[self.label_col] == 1).sum())
            row["negatives"] = int((df[self.label_col] == 0).sum())
        self.rows.append(row)
        self.df = df
        return df

    @property
    def table(self) -> pd.DataFrame:
        cols = ["step", "rows", "studies", "patients", "removed", "positives", "negatives"]
        t = pd.DataFrame(self.rows)
        return t[[c for c in cols if c in t.columns]].astype(
            {c: "Int64" for c in cols[1:] if c in t.columns}
        )

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False)

    def __repr__(self) -> str:
        return f"CohortFlow(\n{self.table.to_string(index=False)}\n)"


@dataclass
class SplitCohort:
    """A chapter's cohort: ``table``, one row per case with a ``split`` column naming one of
    :attr:`SPLITS`, and ``flow``, the counts after each selection step (:class:`CohortFlow`).

    A chapter subclasses it (documenting its columns) and sets ``SPLITS`` when its splits are
    not train/val/test.
    """

    SPLITS: ClassVar[tuple[str, ...]] = ("train", "val", "test")

    table: pd.DataFrame
    flow: pd.DataFrame

    def rows(self, split: str) -> pd.DataFrame:
        """The rows of one split."""
        if split not in self.SPLITS:
            raise ValueError(f"split must be one of {self.SPLITS}, got {split!r}")
        return self.table[self.table["split"] == split]
