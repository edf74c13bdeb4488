"""The synthetic cohort's answer key (``synthetic_ground_truth.csv.gz``) and what it shows.

Real releases have no such file; chapters use it only to show what a model should have found
(planted strata, markers, label noise), never as a training input. The analyses of the table
live here, beside its reader, so that every chapter (and every check of the generator) that
asks what is really in a cohort counts it the same way:

* :func:`planted_structure` — each planted knob of the cohort's config beside what the
  cohort shows;
* :func:`label_truth_agreement` — how the report-derived labels relate to the pixel truth;
* :func:`strata_films` — one film per hidden stratum and marker group, with its box;
* :func:`parse_box` — the table's ``"x1 y1 x2 y2"`` boxes as integers.

Like the rest of :mod:`mmcxr.data` it reads the files and never imports the generator: the
column names are the file's format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmcxr.data.tables import read_table
from mmcxr.labels import CHEXPERT_LABELS
from mmcxr.names import GROUND_TRUTH_FILE

__all__ = [
    "GROUND_TRUTH_FILE",
    "label_truth_agreement",
    "load_ground_truth",
    "parse_box",
    "planted_structure",
    "strata_films",
]

_FINDINGS: tuple[str, ...] = tuple(c for c in CHEXPERT_LABELS if c != "No Finding")
"""The labels that can be drawn: each has a ``truth_<label>`` column ("No Finding" has none)."""


def load_ground_truth(root: str | os.PathLike) -> pd.DataFrame:
    """One row per synthetic image: ids, view, per-label truth and the planted structure."""
    path = Path(root).expanduser().resolve() / GROUND_TRUTH_FILE
    return read_table(
        path,
        dtype={"dicom_id": str, "image_id": str},
        what="synthetic ground-truth table (only synthetic cohorts have one)",
    )


def planted_structure(gt: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """Each planted structure: its knob in the cohort's config and what the cohort shows.

    ``gt`` is the ground-truth table (one row per image); ``config`` the ``config`` object of
    :func:`mmcxr.data.roots.load_synth_config`. ``planted`` is the knob's value, ``measured``
    the same quantity counted in the cohort, over ``n`` units (studies or images, see
    ``over``). A knob switched off (None, False, 0) is reported as such and measured all the
    same, so a chapter that claims to recover a structure can be checked against what is
    really there.
    """
    need = ["study_id", "frontal", "portable", "orientation", "spurious_marker", "noise_label"]
    missing = [c for c in need if c not in gt.columns]
    if missing:
        raise KeyError(f"planted_structure: ground-truth table lacks {missing}")
    studies = gt.sort_values("frontal", ascending=False).drop_duplicates("study_id")
    frontal = gt[gt["frontal"].astype(bool)]
    knob = config.get
    strata = bool(knob("plant_strata"))  # off: the two stratum knobs are reported as False
    spur = knob("spurious_label")
    # (structure, knob, planted value, one 0/1 outcome per unit, unit)
    spec: list[tuple[str, str, Any, pd.Series, str]] = [
        ("portable AP films", "portable_rate", knob("portable_rate"), studies["portable"].astype(bool),
         "studies")
    ]  # fmt: skip
    if spur:
        ap = frontal[frontal["portable"].astype(bool)]
        drawn, marker = ap[f"truth_{spur}"].astype(bool), ap["spurious_marker"].astype(bool)
        spec += [
            (f"spurious marker | {spur} drawn (AP)", "spurious_p_positive",
             knob("spurious_p_positive"), marker[drawn], "AP images"),
            (f"spurious marker | no {spur} (AP)", "spurious_p_negative",
             knob("spurious_p_negative"), marker[~drawn], "AP images"),
        ]  # fmt: skip
    else:
        spec.append(("spurious marker (switched off)", "spurious_label", None,
                     frontal["spurious_marker"].astype(bool), "frontal images"))  # fmt: skip
    spec += [
        ("chest tube | pneumothorax (hidden stratum)", "chest_tube_rate_pneumothorax",
         strata and knob("chest_tube_rate_pneumothorax"),
         studies["stratum_pneumothorax_chest_tube"].dropna(), "pneumothorax studies"),
        ("subtle lung lesions (hidden stratum)", "subtle_rate", strata and knob("subtle_rate"),
         studies["stratum_lesion"].dropna() == "subtle", "lesion studies"),
        ("label noise (report disagrees with pixels)", "label_noise_rate",
         knob("label_noise_rate"), studies["noise_label"].notna(), "studies"),
    ]  # fmt: skip
    rows = [
        (name, k, planted, x.astype(float).mean() if len(x) else np.nan, len(x), over)
        for name, k, planted, x, over in spec
    ]
    columns = ["structure", "knob", "planted", "measured", "n", "over"]
    # object columns keep a knob's None and False apart from NaN ("off", not "missing")
    out = pd.DataFrame(rows, columns=columns, dtype=object)
    return out.astype({"measured": float, "n": int})


def label_truth_agreement(
    gt: pd.DataFrame, labels: pd.DataFrame, findings: Sequence[str] = _FINDINGS
) -> pd.DataFrame:
    """Per finding, frontal images: drawn in the pixels vs what the CheXpert-style label says.

    ``labels`` is the loader's image table (label columns, ``dicom_id`` or ``image_id``);
    ``gt`` the ground-truth table. ``drawn`` counts images with the finding in the pixels;
    of those, ``labelled 1`` / ``labelled -1`` / ``unlabelled`` (0 or blank) say what the
    report-derived label made of them; ``labelled, not drawn`` counts positive or uncertain
    labels with nothing drawn (label noise and hedges about absent findings). ``kappa`` is
    Cohen's kappa (scikit-learn) between drawn and labelled positive-or-uncertain.
    """
    from sklearn.metrics import cohen_kappa_score

    key = "dicom_id" if "dicom_id" in gt.columns and "dicom_id" in labels.columns else "image_id"
    lab_cols = [c for c in findings if c in labels.columns]
    for name, table in (("ground-truth", gt), ("labels", labels)):
        if key not in table.columns or table[key].duplicated().any():
            raise ValueError(f"label_truth_agreement: the {name} table needs unique {key} values")
    m = gt[gt["frontal"].astype(bool)][[key, *[f"truth_{c}" for c in lab_cols]]].merge(
        labels[[key, *lab_cols]], on=key, how="inner", validate="one_to_one"
    )
    if m.empty:
        raise ValueError("label_truth_agreement: no frontal image of the labels is in the GT")
    rows = []
    for c in lab_cols:
        drawn = m[f"truth_{c}"].astype(bool).to_numpy()
        lab = m[c].to_numpy(dtype=float)
        said = np.isin(lab, (1.0, -1.0))
        rows.append(
            {
                "finding": c,
                "drawn": int(drawn.sum()),
                "labelled 1": int((drawn & (lab == 1.0)).sum()),
                "labelled -1": int((drawn & (lab == -1.0)).sum()),
                "unlabelled": int((drawn & ~said).sum()),
                "labelled, not drawn": int((~drawn & said).sum()),
                "agreement": float((drawn == said).mean()),
                "kappa": float(cohen_kappa_score(drawn, said))
                if drawn.any() or said.any()
                else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("finding")


def parse_box(text: Any) -> tuple[int, int, int, int] | None:
    """A ground-truth box ``"x1 y1 x2 y2"`` as integers; None when blank."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
        return None
    parts = str(text).split()
    if len(parts) != 4:
        raise ValueError(f"a box is 'x1 y1 x2 y2', got {text!r}")
    x1, y1, x2, y2 = (int(float(v)) for v in parts)
    return x1, y1, x2, y2


def strata_films(gt: pd.DataFrame, images: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One frontal film per hidden stratum and per marker group, with its finding's box.

    The groups are those the generator plants and the table records: pneumothorax with and
    without a chest tube, obvious and subtle lung lesions, and AP films with the spurious
    marker with and without pneumonia. Films are drawn (seeded) among the ground truth's
    frontal images that ``images`` holds; a group without any film (a small cohort) is left
    out. Columns: ``group``, ``finding`` (the label the group is about), ``path`` (relative
    to the root, as in the ground-truth table) and ``box`` (:func:`parse_box` of the
    finding's box as drawn; None when there is none).
    """
    f = gt[gt["frontal"].astype(bool)].merge(images[["dicom_id"]], on="dicom_id")
    tube, lesion = f["stratum_pneumothorax_chest_tube"], f["stratum_lesion"]
    marker, pneumonia = f["spurious_marker"].astype(bool), f["truth_Pneumonia"] == 1
    groups = (
        ("pneumothorax, chest tube", "Pneumothorax", tube == 1.0),
        ("pneumothorax, no tube", "Pneumothorax", tube == 0.0),
        ("lung lesion, obvious", "Lung Lesion", lesion == "obvious"),
        ("lung lesion, subtle", "Lung Lesion", lesion == "subtle"),
        ("AP, marker, pneumonia", "Pneumonia", marker & pneumonia),
        ("AP, marker, no pneumonia", "Pneumonia", marker & ~pneumonia),
    )
    rows = []
    for name, finding, mask in groups:
        if mask.any():
            row = f[mask].sample(1, random_state=seed).iloc[0]
            box = parse_box(row[f"box_{finding}"])
            rows.append({"group": name, "finding": finding, "path": row["path"], "box": box})
    return pd.DataFrame(rows, columns=["group", "finding", "path", "box"])
