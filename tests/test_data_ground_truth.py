"""The ground-truth analyses on a hand-made answer key: the planted-structure table counts
what the table holds (studies or images, knobs switched off), label-truth agreement counts
each kind of disagreement, and the strata films draw one film per group with its box."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmcxr import data
from mmcxr.labels import CHEXPERT_LABELS
from mmcxr.names import GROUND_TRUTH_FILE

FINDING_LABELS = [c for c in CHEXPERT_LABELS if c != "No Finding"]


def gt_table() -> pd.DataFrame:
    """Six frontal images of six studies (four AP) plus one lateral, with known structure."""
    nan = np.nan
    rows = []
    spec = [
        # portable, pneumonia drawn, marker, chest tube stratum, lesion stratum, noise
        (True, 1, True, 1.0, nan, nan),
        (True, 1, False, 0.0, "subtle", "Edema"),
        (True, 0, True, nan, "obvious", nan),
        (True, 0, False, nan, "subtle", nan),
        (False, 0, False, 1.0, nan, nan),
        (False, 1, False, nan, nan, nan),
    ]
    for i, (portable, pna, marker, tube, lesion, noise) in enumerate(spec):
        row = {
            "subject_id": i,
            "study_id": 100 + i,
            "dicom_id": f"d{i}",
            "frontal": True,
            "view": "AP" if portable else "PA",
            "portable": portable,
            "orientation": "Erect",
            "spurious_marker": marker,
            "noise_label": noise,
            "noise_kind": "added" if isinstance(noise, str) else nan,
            "stratum_pneumothorax_chest_tube": tube,
            "stratum_lesion": lesion,
        }
        for lab in FINDING_LABELS:
            row[f"truth_{lab}"] = 0
        row["truth_Pneumonia"] = pna
        row["truth_Edema"] = int(i < 2)
        rows.append(row)
    lateral = dict(rows[0], dicom_id="lat0", frontal=False, view="LATERAL", spurious_marker=False)
    return pd.DataFrame([*rows, lateral])


def test_planted_structure_counts_what_the_ground_truth_holds():
    cfg = {
        "portable_rate": 0.4,
        "spurious_label": "Pneumonia",
        "spurious_p_positive": 0.85,
        "spurious_p_negative": 0.1,
        "plant_strata": True,
        "chest_tube_rate_pneumothorax": 0.55,
        "subtle_rate": 0.4,
        "label_noise_rate": 0.03,
    }
    t = data.planted_structure(gt_table(), cfg).set_index("knob")
    assert t.loc["portable_rate", "measured"] == pytest.approx(4 / 6)
    assert t.loc["portable_rate", "n"] == 6, "studies, not images: the lateral is not counted"
    assert t.loc["spurious_p_positive", "measured"] == pytest.approx(1 / 2)  # AP with pneumonia
    assert t.loc["spurious_p_positive", "n"] == 2
    assert t.loc["spurious_p_negative", "measured"] == pytest.approx(1 / 2)
    assert t.loc["chest_tube_rate_pneumothorax", "measured"] == pytest.approx(2 / 3)
    assert t.loc["subtle_rate", "measured"] == pytest.approx(2 / 3)
    assert t.loc["label_noise_rate", "measured"] == pytest.approx(1 / 6)
    assert t.loc["label_noise_rate", "planted"] == 0.03
    off = data.planted_structure(gt_table(), {**cfg, "spurious_label": None, "plant_strata": False})
    off = off.set_index("knob")
    assert off.loc["spurious_label", "planted"] is None
    assert off.loc["spurious_label", "measured"] == pytest.approx(2 / 6), "frontal images"
    assert off.loc["subtle_rate", "planted"] is False
    marker_off = data.planted_structure(gt_table(), {**cfg, "spurious_label": None})
    # the other knobs are all numbers: None must not become NaN (shown "off", not "missing")
    assert marker_off.set_index("knob").loc["spurious_label", "planted"] is None
    with pytest.raises(KeyError, match="noise_label"):
        data.planted_structure(gt_table().drop(columns="noise_label"), cfg)


def test_label_truth_agreement_counts_each_kind_of_disagreement():
    gt = gt_table()
    labels = pd.DataFrame({"dicom_id": [f"d{i}" for i in range(6)] + ["lat0"]})
    labels["Edema"] = [1.0, np.nan, -1.0, 0.0, np.nan, np.nan, 1.0]
    labels["Pneumonia"] = [1.0, 1.0, np.nan, np.nan, np.nan, 1.0, 1.0]
    a = data.label_truth_agreement(gt, labels, ["Edema", "Pneumonia"])
    edema = a.loc["Edema"]  # drawn in d0, d1; labelled 1 in d0, blank in d1, -1 in d2
    assert (edema["drawn"], edema["labelled 1"], edema["unlabelled"]) == (2, 1, 1)
    assert edema["labelled, not drawn"] == 1
    assert edema["agreement"] == pytest.approx(4 / 6), "frontal images only"
    assert a.loc["Pneumonia", "kappa"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no frontal image"):
        data.label_truth_agreement(gt, labels.assign(dicom_id=labels["dicom_id"] + "x"), ["Edema"])
    with pytest.raises(ValueError, match="unique dicom_id"):
        data.label_truth_agreement(gt, labels.assign(dicom_id="zz"), ["Edema"])


def test_parse_box():
    assert data.parse_box("10 20 30 40") == (10, 20, 30, 40)
    assert data.parse_box(math.nan) is None and data.parse_box(None) is None
    with pytest.raises(ValueError, match="x1 y1 x2 y2"):
        data.parse_box("10 20 30")


def test_strata_films_draw_one_film_per_group_with_its_box():
    gt = gt_table().assign(path=lambda d: "files/" + d["dicom_id"] + ".dcm")
    for finding in ("Pneumothorax", "Lung Lesion", "Pneumonia"):
        gt[f"box_{finding}"] = pd.Series(np.nan, index=gt.index, dtype=object)  # text or blank
    gt.loc[gt["dicom_id"] == "d4", "box_Pneumothorax"] = "1 2 30 40"
    every = data.strata_films(gt, pd.DataFrame({"dicom_id": ["d0", "d1", "d2"]}))
    findings = ["Pneumothorax", "Lung Lesion", "Pneumonia"]
    assert every["finding"].tolist() == [f for f in findings for _ in range(2)], "all six"
    films = data.strata_films(gt, pd.DataFrame({"dicom_id": ["d3", "d4", "d5", "lat0"]}), seed=1)
    assert films["group"].tolist() == ["pneumothorax, chest tube", "lung lesion, subtle"]
    assert films["path"].tolist() == ["files/d4.dcm", "files/d3.dcm"], "frontal films only"
    assert films["box"].tolist() == [(1, 2, 30, 40), None]
    none = data.strata_films(gt, pd.DataFrame({"dicom_id": ["d5"]}))
    assert none.empty and list(none.columns) == ["group", "finding", "path", "box"]


def test_the_ground_truth_is_read_from_its_file(tmp_path):
    gt_table().to_csv(tmp_path / GROUND_TRUTH_FILE, index=False)
    gt = data.load_ground_truth(tmp_path)
    assert gt["dicom_id"].tolist()[:2] == ["d0", "d1"] and len(gt) == 7
    assert math.isnan(gt.loc[0, "noise_label"]) and gt.loc[1, "noise_label"] == "Edema"
