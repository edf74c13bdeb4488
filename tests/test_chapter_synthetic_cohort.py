"""The synthetic-cohort chapter's helpers: the release loader, labels per study, the images
each figure shows and the numbers the prose quotes. The shared pieces it uses are tested with
their modules: tests/test_data_roots.py (tree listing, config), tests/test_data_ground_truth.py
(planted structure, label-truth agreement, strata films) and tests/test_probes.py (the signal
check)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_data_ground_truth import gt_table  # the hand-made answer key, shared

from mmcxr import data
from mmcxr.chapters import synthetic_cohort as sc
from mmcxr.labels import CHEXPERT_LABELS

# --------------------------------------------------------------------------------------------
# the root


def test_load_release_dispatches_on_the_format(openi_tree):
    root, truth = openi_tree
    t = sc.load_release("openi", root, progress=False)
    assert len(t) == len(truth) and {"subject_id", "study_id", "path", "view"} <= set(t.columns)
    with pytest.raises(ValueError, match="unknown format 'dicom'"):
        sc.load_release("dicom", root)


# --------------------------------------------------------------------------------------------
# labels


def labels_table() -> pd.DataFrame:
    nan = np.nan
    return pd.DataFrame(
        {
            "subject_id": [1, 1, 2, 3, 4],
            "study_id": [10, 10, 20, 30, 40],
            "Edema": [1.0, 1.0, 1.0, 0.0, nan],
            "Cardiomegaly": [1.0, 1.0, -1.0, 1.0, nan],
            "Fracture": [nan, nan, nan, nan, 0.0],
        }
    )


def test_study_labels_keep_one_row_per_study():
    t = labels_table()
    s = sc.study_labels(t, ["Edema"])
    assert s["study_id"].tolist() == [10, 20, 30, 40]
    with pytest.raises(KeyError, match="Pneumonia"):
        sc.study_labels(t, ["Pneumonia"])


def test_agreement_numbers_quote_noise_and_the_weakest_finding():
    gt = gt_table()
    labels = pd.DataFrame({"dicom_id": [f"d{i}" for i in range(6)]})
    labels["Edema"] = [1.0, np.nan, -1.0, 0.0, np.nan, np.nan]  # drawn d0, d1; said d0, d2
    labels["Pneumonia"] = [1.0, 1.0, np.nan, np.nan, np.nan, 1.0]  # exactly what is drawn
    numbers = sc.agreement_numbers(data.label_truth_agreement(gt, labels), gt)
    assert numbers["noise_studies"] == 1 and numbers["noise_share"] == pytest.approx(1 / 6)
    assert numbers["kappa_min_finding"] == "Edema"
    assert numbers["kappa_min"] == pytest.approx(0.25)  # po 4/6, pe 5/9: (6/9-5/9)/(4/9)
    assert numbers["devices_unlabelled"] == 0, "no Support Devices column: none unlabelled"
    assert set(sc.agreement_numbers(None, None).values()) == {sc.NOT_REAL}


def test_report_card_parses_sections_and_names_labels():
    text = (
        "                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n\n"
        " FINDINGS:\n\n Small left effusion.\n\n IMPRESSION:\n\n Left effusion.\n"
    )
    row = pd.Series({"report": text, "Pleural Effusion": 1.0, "Edema": 0.0, "Pneumonia": -1.0})
    card = sc.report_card(row)
    assert card["sections"]["findings"] == "Small left effusion."
    assert card["sections"]["impression"] == "Left effusion."
    assert card["labels"] == {
        "Edema": "negative",
        "Pleural Effusion": "positive",
        "Pneumonia": "uncertain",
    }


# --------------------------------------------------------------------------------------------
# DICOM


def test_stored_and_displayed_shows_one_film_of_each_kind(tmp_path, dicom_writer):
    from mmcxr.data import dicom_headers

    stored = np.tile(np.arange(0, 4000, 100, dtype=np.uint16), (30, 1))
    m1 = dicom_writer(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", window=(2000, 4000))
    lut = list(range(0, 65536, 256))  # 256 entries: an identity ramp
    voi = dicom_writer(tmp_path / "voi.dcm", stored // 16, bits=8, voi_lut=lut)
    plain = dicom_writer(tmp_path / "plain.dcm", stored, window=(2000, 4000))
    headers = dicom_headers([plain, m1, voi], progress=False)
    fig = sc.plot_stored_and_displayed(headers)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "stored values, MONOCHROME1\n(12-bit, min-max scaled)",
        "read_image: window applied,\ninverted",
        "stored values, MONOCHROME2\n(8-bit, min-max scaled)",
        "read_image: VOI LUT applied,\nnot inverted",
    ]
    assert all(ax.images[0].get_clim() == (0, 1) for ax in fig.axes), "one grey scale"
    assert sc.plot_stored_and_displayed(headers.iloc[:1]) is None, "neither kind: no figure"
    assert sc.display_numbers(headers) == {
        "share_mono1": pytest.approx(1 / 3),
        "share_voi_lut": pytest.approx(1 / 3),
    }
    assert sc.display_numbers(None)["share_mono1"] == "n/a (JPG release)"


# --------------------------------------------------------------------------------------------
# examples and figures


def test_pick_examples_covers_labels_and_is_deterministic():
    rng = np.random.default_rng(0)
    n = 60
    t = pd.DataFrame({"study_id": np.arange(n), "subject_id": np.arange(n)})
    for lab in CHEXPERT_LABELS:
        t[lab] = np.nan
    t.loc[:39, "No Finding"] = 1.0  # two thirds normal, as in a real cohort
    for i, lab in zip(
        range(40, 60), ["Edema", "Fracture", "Pneumothorax", "Cardiomegaly"] * 5, strict=True
    ):
        t.loc[i, lab] = 1.0
    t = t.iloc[rng.permutation(n)]
    picked = sc.pick_examples(t, 5, seed=3)
    shown = {c for c in CHEXPERT_LABELS if (picked[c] == 1.0).any()}
    assert shown == {"No Finding", "Edema", "Fracture", "Pneumothorax", "Cardiomegaly"}
    assert picked["study_id"].is_unique
    assert picked.equals(sc.pick_examples(t, 5, seed=3))
    assert len(sc.pick_examples(t.head(3), 10)) == 3
    with pytest.raises(ValueError, match="n must be"):
        sc.pick_examples(t, 0)


def test_cache_dir_depends_on_the_images_and_size(tmp_path):
    a = sc.cache_dir_for(tmp_path, ["k1", "k2"], 32)
    assert a == sc.cache_dir_for(tmp_path, ["k1", "k2"], 32)
    assert a != sc.cache_dir_for(tmp_path, ["k1", "k3"], 32)
    assert a != sc.cache_dir_for(tmp_path, ["k1", "k2"], 64)
    assert a.parent == tmp_path and a.name.startswith("cache-32px-")


def test_view_panels_pair_a_department_study_and_show_a_bedside_film():
    images = pd.DataFrame(
        {
            "study_id": [1, 1, 2, 3],
            "view": ["pa", "LATERAL", "AP", "PA"],
            "orientation": ["Erect", "Erect", "", "Erect"],
            "procedure": ["CHEST (PA AND LAT)", "CHEST (PA AND LAT)", "CHEST (PORTABLE AP)", "X"],
            "path": ["1pa", "1lat", "2ap", "3pa"],
        }
    )
    panels = sc.view_panels(images, seed=0)
    assert panels["path"].tolist() == ["1pa", "1lat", "2ap"], "PA and lateral of one study"
    assert panels["caption"].iloc[0] == "PA, Erect\nCHEST (PA AND LAT)"
    assert panels["caption"].iloc[2] == "AP, orientation not recorded\nCHEST (PORTABLE AP)"
    assert sc.view_panels(images[images["study_id"] == 3]).empty, "neither kind of study"


def test_strata_panels_show_each_group_that_has_a_film():
    gt = gt_table().assign(path=lambda d: "files/" + d["dicom_id"] + ".dcm")
    for finding in ("Pneumothorax", "Lung Lesion", "Pneumonia"):
        gt[f"box_{finding}"] = pd.Series(np.nan, index=gt.index, dtype=object)  # text or blank
    gt.loc[gt["dicom_id"] == "d4", "box_Pneumothorax"] = "1 2 30 40"
    all_six = sc.strata_panels(gt, pd.DataFrame({"dicom_id": ["d0", "d1", "d2"]}))
    assert len(all_six) == 6
    panels = sc.strata_panels(gt, pd.DataFrame({"dicom_id": ["d3", "d4", "d5"]}), seed=1)
    assert panels["caption"].tolist() == ["pneumothorax, chest tube", "lung lesion, subtle"]
    assert panels["path"].tolist() == ["files/d4.dcm", "files/d3.dcm"]
    assert panels["boxes"].tolist() == [{"Pneumothorax, as drawn": (1, 2, 30, 40)}, {}]


def imagenome_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    boxes = [
        {"dicom_id": d, "bbox_name": name, "original_x1": x, "original_y1": 10,
         "original_x2": x + 50, "original_y2": 90}
        for d in ("a", "b")
        for x, name in enumerate(
            ["right lower lung zone", "cardiac silhouette", "left lung", "right lung"]
        )
    ]  # fmt: skip
    sentences = pd.DataFrame(
        {
            "dicom_id": ["a", "a", "a", "b"],
            "sentence": ["Basal atelectasis.", "Basal opacity.", "Heart normal.", "Left clear."],
            "bbox": ["right lower lung zone", "right lower lung zone", "cardiac silhouette",
                     "left lung"],
            "label_name": ["atelectasis", "lung opacity", "enlarged cardiac silhouette",
                           "lung opacity"],
            "context": ["yes", "yes", "no", "yes"],
            "section": ["finding"] * 4,
        }
    )  # fmt: skip
    return pd.DataFrame(boxes), sentences


def test_imagenome_panels_name_each_linked_box_once_with_all_its_conditions():
    boxes, sentences = imagenome_tables()
    images = pd.DataFrame({"dicom_id": ["a", "b"], "path": ["a.dcm", "b.dcm"]})
    panels, said = sc.imagenome_panels(boxes, sentences, images, seed=5)
    assert panels["path"].tolist() == ["a.dcm", "a.dcm"], "the image with a localised finding"
    anatomy, linked = panels["boxes"]
    assert list(anatomy) == ["right lung", "left lung", "cardiac silhouette"], "in a fixed order"
    assert anatomy["left lung"] == [2, 10, 52, 90]
    assert linked == {"right lower lung zone: atelectasis, lung opacity": [0, 10, 50, 90]}
    assert said["sentence"].tolist() == ["Basal atelectasis.", "Basal opacity."]
    panels, said = sc.imagenome_panels(boxes, sentences, images[images["dicom_id"] == "b"])
    assert panels["path"].tolist() == ["b.dcm", "b.dcm"] and panels["boxes"].iloc[1] == {}
    with pytest.raises(ValueError, match="no gold image"):
        sc.imagenome_panels(boxes, sentences, images.assign(dicom_id=["x", "y"]))


# --------------------------------------------------------------------------------------------
# the numbers the prose quotes


def test_glue_text_formats_each_number_as_the_prose_shows_it():
    text = sc.glue_text(
        {
            "n_images": np.int64(12345),
            "share_mono1": 0.1834,
            "findings_ratio": 1.857,
            "kappa_min_finding": "Edema",
            "noise_share": sc.NOT_REAL,
            "paper_001_text_auroc": 0.9995,
            "synthetic": True,
        }
    )
    assert text == {
        "n_images": "12,345",
        "share_mono1": "18.3%",
        "findings_ratio": "1.86",
        "kappa_min_finding": "Edema",
        "noise_share": sc.NOT_REAL,
        "paper_001_text_auroc": "0.9995",
        "synthetic": "True",
    }


def test_paper_numbers_are_the_reference_tables_pneumonia_aurocs():
    assert sc.paper_numbers() == {"paper_001_text_auroc": 0.9995, "paper_001_image_auroc": 0.7735}
