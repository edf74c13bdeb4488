"""Linear probes of how much signal a modality carries.

Before a chapter trains a network it helps to know what a cheap model can read from each
modality: a logistic regression on small thumbnails and one on a bag of words of the report,
per label, on a patient-level split. The synthetic-cohort chapter uses it to show the cohort
is learnable but not trivial (and, as in the papers, that the text is far stronger than the
image); tests use it to check the generator's planted signal. It sits beside
:mod:`mmcxr.evaluate` rather than in a chapter so that any chapter or check can probe any
release the same way; it reads tables and arrays only (:mod:`mmcxr.data` for the split).

Two more probes read what a model has made rather than the raw data: :func:`latent_probes`
fits a logistic regression per set of latent features (a representation per subset of
modalities, say) and scores it on held-out items; :func:`train_judges` fits the judges that
score generated films and reports for the label of the item they were generated from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mmcxr.data.splits import patient_split
from mmcxr.labels import CHEXPERT_LABELS

__all__ = [
    "Judges",
    "bag_of_ids",
    "common_labels",
    "latent_probes",
    "signal_check",
    "signal_numbers",
    "train_judges",
]


def common_labels(
    table: pd.DataFrame, labels: Sequence[str] = CHEXPERT_LABELS, min_prevalence: float = 0.05
) -> list[str]:
    """Labels positive (1.0) in at least ``min_prevalence`` of the rows, in the given order.

    The labels worth probing (or plotting): on rarer ones a test split holds too few positives
    for an AUROC to mean much.
    """
    return [c for c in labels if c in table.columns and (table[c] == 1.0).mean() >= min_prevalence]


def signal_check(
    table: pd.DataFrame,
    pixels: np.ndarray,
    labels: Sequence[str] | None = None,
    *,
    text_col: str = "report",
    patient_col: str = "subject_id",
    test_share: float = 0.3,
    min_prevalence: float = 0.05,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """AUROC of an image probe and a text probe per common finding, on a patient-level split.

    ``table`` has one row per (frontal) image, aligned with ``pixels`` (``(n, h, w)`` or
    ``(n, features)``, e.g. 32x32 thumbnails). Both probes are scikit-learn logistic
    regressions: on the standardised pixels, and on a bag of words of ``text_col``
    (``CountVectorizer``, words seen in at least two training reports). A row is positive
    when its label is 1.0, negative when 0.0 or blank; uncertain (-1.0) rows are left out of
    that label's fit and score (the "U-ignore" policy). ``labels=None`` takes every CheXpert
    label positive in at least ``min_prevalence`` of the rows. Patients are split with
    :func:`mmcxr.data.patient_split`, so no patient is in both parts.
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(pixels, dtype=np.float32).reshape(len(pixels), -1)
    if len(x) != len(table):
        raise ValueError(f"signal_check: {len(table)} table rows but {len(x)} pixel rows")
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    if text_col not in table.columns:
        raise KeyError(f"signal_check: no text column {text_col!r}")
    if labels is None:
        labels = common_labels(table, CHEXPERT_LABELS, min_prevalence)
    if not labels:
        raise ValueError(f"signal_check: no label is positive in >= {min_prevalence:.0%} of rows")
    split = patient_split(
        table, (1.0 - test_share, 0.0, test_share), seed=seed, patient_col=patient_col
    ).to_numpy()
    train, test = split == "train", split == "test"
    texts = table[text_col].fillna("").astype(str).to_numpy()
    vectorizer = CountVectorizer(min_df=2).fit(texts[train])
    bow = vectorizer.transform(texts)
    rows = []
    for lab in tqdm(list(labels), desc="signal check", unit="label", disable=not progress):
        v = table[lab].to_numpy(dtype=float)
        y = (v == 1.0).astype(int)
        keep = v != -1.0
        a, b = train & keep, test & keep
        row: dict[str, Any] = {
            "label": lab,
            "prevalence": float((v == 1.0).mean()),
            "train": int(a.sum()),
            "test": int(b.sum()),
            "test positives": int(y[b].sum()),
        }
        if len(np.unique(y[a])) < 2 or len(np.unique(y[b])) < 2:
            row.update(image_auroc=np.nan, text_auroc=np.nan)  # one class only: undefined
        else:
            # liblinear: ten times faster than lbfgs on 1,024 dense pixels, same optimum
            image = make_pipeline(
                StandardScaler(),
                LogisticRegression(C=0.1, solver="liblinear", max_iter=2000, random_state=seed),
            )
            image.fit(x[a], y[a])
            text = LogisticRegression(
                C=1.0, solver="liblinear", max_iter=2000, random_state=seed
            ).fit(bow[a], y[a])
            row["image_auroc"] = float(roc_auc_score(y[b], image.predict_proba(x[b])[:, 1]))
            row["text_auroc"] = float(roc_auc_score(y[b], text.predict_proba(bow[b])[:, 1]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("label")


def signal_numbers(signal: pd.DataFrame | None) -> dict[str, Any]:
    """A :func:`signal_check` table in a few numbers, over the labels both probes scored.

    How many labels were scored, on how many the text probe beat the image probe, the mean
    AUROC of each and the range of the image's: what a page says about the table. A label
    with one class in a split has no AUROC and is left out; no table (or no scored label)
    gives NaN means and ranges, so a page can still quote them.
    """
    cols = ["image_auroc", "text_auroc"]
    scored = signal.dropna(subset=cols) if signal is not None else pd.DataFrame(columns=cols)
    image, text = scored["image_auroc"].astype(float), scored["text_auroc"].astype(float)
    return {
        "n_signal_labels": len(scored),
        "n_text_wins": int((text > image).sum()),
        "image_auroc_mean": float(image.mean()),
        "text_auroc_mean": float(text.mean()),
        "image_auroc_min": float(image.min()),
        "image_auroc_max": float(image.max()),
    }


def latent_probes(
    train: Mapping[str, np.ndarray],
    y_train: np.ndarray,
    test: Mapping[str, np.ndarray],
    y_test: np.ndarray,
    *,
    c: float = 1.0,
) -> pd.DataFrame:
    """A logistic regression (on standardised features, inverse regularisation ``c``) per
    named feature set, fitted on ``train[name]`` and scored on ``test[name]``. Long, in the
    order of ``train``: ``subset, case, label, prob`` (``case``: the test item's position)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    missing = [k for k in train if k not in test]
    if missing:
        raise KeyError(f"latent_probes: no test features for {missing}")
    parts = []
    for name in train:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        clf.fit(train[name], y_train)
        prob = clf.predict_proba(test[name])[:, 1]
        parts.append(
            pd.DataFrame({"subset": name, "case": range(len(prob)), "label": y_test, "prob": prob})
        )
    return pd.concat(parts, ignore_index=True)


def bag_of_ids(ids: np.ndarray, vocab_size: int, skip: int = 2) -> np.ndarray:
    """Word counts per row of word ids ``(N, L)``, ``(N, vocab_size)``; the first ``skip``
    ids (padding and unknown words of :class:`mmcxr.models.cnn_text.WordVocab`) left out."""
    ids = np.asarray(ids)
    out = np.zeros((len(ids), vocab_size))
    for i, row in enumerate(ids):
        out[i] = np.bincount(row, minlength=vocab_size)[:vocab_size]
    out[:, :skip] = 0
    return out


@dataclass
class Judges:
    """Classifiers trained on real items that judge generated samples: one on a film's
    pixels (display intensity), one on the report's bag of word ids."""

    image: Any
    text: Any
    vocab_size: int

    def bag(self, ids: np.ndarray) -> np.ndarray:
        """Word counts per report (:func:`bag_of_ids`)."""
        return bag_of_ids(ids, self.vocab_size)

    def score_images(self, images: np.ndarray) -> np.ndarray:
        return self.image.predict_proba(np.asarray(images).reshape(len(images), -1))[:, 1]

    def score_text(self, ids: np.ndarray) -> np.ndarray:
        return self.text.predict_proba(self.bag(ids))[:, 1]


def train_judges(
    images: np.ndarray,
    ids: np.ndarray,
    y: np.ndarray,
    vocab_size: int,
    *,
    c: float = 0.1,
    seed: int = 0,
) -> Judges:
    """Logistic regressions on real films (standardised pixels, inverse regularisation
    ``c``) and on the bag of words of real reports (``C=1``), for the binary label ``y``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    images = np.asarray(images)
    image = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed)
    ).fit(images.reshape(len(images), -1), y)
    judges = Judges(image, None, vocab_size)
    judges.text = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(
        judges.bag(ids), y
    )
    return judges
