"""The synthetic-cohort chapter's helpers: tree listing, planted-structure and agreement tables
on hand-made ground truth, the images each figure shows, the numbers the prose quotes, and the
signal check recovering planted pixel and word signals (and ignoring noise)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mmcxr.chapters import synthetic_cohort as sc
from mmcxr.names import CONFIG_FILE
from mmcxr.provenance import describe_source
from mmcxr.synth.labels import CHEXPERT_LABELS, FINDING_LABELS

# --------------------------------------------------------------------------------------------
# the root


def test_tree_listing_shows_the_shape_and_counts_the_rest(tmp_path):
    root = tmp_path / "rel"
    for p in ("p10/p1001/s1", "p10/p1002", "p11/p1100", "p12", "p13"):
        (root / "files" / p).mkdir(parents=True)
    (root / "files/p10/p1001/s1/a.dcm").write_text("x")
    (root / "files/p10/p1001/s1.txt").write_text("x")
    for name in ("b.csv.gz", "a.csv.gz", ".hidden"):
        (root / name).write_text("x")
    text = sc.tree_listing(root, max_entries=2, max_top=5)
    assert text.splitlines() == [
        "rel/",
        "|-- files/",
        "|   |-- p10/",  # only the first subfolder is opened ...
        "|   |   |-- p1001/",
        "|   |   |   |-- s1/",
        "|   |   |   |   `-- a.dcm",
        "|   |   |   `-- s1.txt",
        "|   |   `-- p1002/",
        "|   |-- p11/",  # ... its siblings are listed closed
        "|   `-- ... (2 more folders)",
        "|-- a.csv.gz",
        "`-- b.csv.gz",
    ]
    assert ".hidden" not in text
    assert "files" not in sc.tree_listing(root, exclude=["files"])
    with pytest.raises(FileNotFoundError, match="not a folder"):
        sc.tree_listing(tmp_path / "absent")


def test_the_config_is_read_from_the_file_that_makes_a_root_synthetic(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    assert describe_source(real, None)["kind"] == "real"
    with pytest.raises(FileNotFoundError, match="synthetic_config.json"):
        sc.load_synth_config(real)
    synth = tmp_path / "synth"
    synth.mkdir()
    (synth / CONFIG_FILE).write_text(json.dumps({"config": {"label_noise_rate": 0.03}}))
    assert describe_source(synth, None)["kind"] == "synthetic", "one name, one rule"
    assert sc.load_synth_config(synth)["config"]["label_noise_rate"] == 0.03
    (synth / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        sc.load_synth_config(synth)
    (synth / CONFIG_FILE).write_text(json.dumps({"n": 3}))
    with pytest.raises(ValueError, match="'config' object"):
        sc.load_synth_config(synth)


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


def test_common_labels_and_study_labels():
    t = labels_table()
    assert sc.common_labels(t, ["Edema", "Cardiomegaly", "Fracture"], 0.5) == [
        "Edema",
        "Cardiomegaly",
    ]
    assert sc.common_labels(t, ["Edema", "Cardiomegaly"], 0.7) == []
    s = sc.study_labels(t, ["Edema"])
    assert s["study_id"].tolist() == [10, 20, 30, 40]
    with pytest.raises(KeyError, match="Pneumonia"):
        sc.study_labels(t, ["Pneumonia"])


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
    t = sc.planted_structure(gt_table(), cfg).set_index("knob")
    assert t.loc["portable_rate", "measured"] == pytest.approx(4 / 6)
    assert t.loc["portable_rate", "n"] == 6, "studies, not images: the lateral is not counted"
    assert t.loc["spurious_p_positive", "measured"] == pytest.approx(1 / 2)  # AP with pneumonia
    assert t.loc["spurious_p_positive", "n"] == 2
    assert t.loc["spurious_p_negative", "measured"] == pytest.approx(1 / 2)
    assert t.loc["chest_tube_rate_pneumothorax", "measured"] == pytest.approx(2 / 3)
    assert t.loc["subtle_rate", "measured"] == pytest.approx(2 / 3)
    assert t.loc["label_noise_rate", "measured"] == pytest.approx(1 / 6)
    assert t.loc["label_noise_rate", "planted"] == 0.03
    off = sc.planted_structure(gt_table(), {**cfg, "spurious_label": None, "plant_strata": False})
    off = off.set_index("knob")
    assert off.loc["spurious_label", "planted"] is None
    assert off.loc["spurious_label", "measured"] == pytest.approx(2 / 6), "frontal images"
    assert off.loc["subtle_rate", "planted"] is False
    marker_off = sc.planted_structure(gt_table(), {**cfg, "spurious_label": None})
    # the other knobs are all numbers: None must not become NaN (shown "off", not "missing")
    assert marker_off.set_index("knob").loc["spurious_label", "planted"] is None
    with pytest.raises(KeyError, match="noise_label"):
        sc.planted_structure(gt_table().drop(columns="noise_label"), cfg)


def test_label_truth_agreement_counts_each_kind_of_disagreement():
    gt = gt_table()
    labels = pd.DataFrame({"dicom_id": [f"d{i}" for i in range(6)] + ["lat0"]})
    labels["Edema"] = [1.0, np.nan, -1.0, 0.0, np.nan, np.nan, 1.0]
    labels["Pneumonia"] = [1.0, 1.0, np.nan, np.nan, np.nan, 1.0, 1.0]
    a = sc.label_truth_agreement(gt, labels, ["Edema", "Pneumonia"])
    edema = a.loc["Edema"]  # drawn in d0, d1; labelled 1 in d0, blank in d1, -1 in d2
    assert (edema["drawn"], edema["labelled 1"], edema["unlabelled"]) == (2, 1, 1)
    assert edema["labelled, not drawn"] == 1
    assert edema["agreement"] == pytest.approx(4 / 6), "frontal images only"
    assert a.loc["Pneumonia", "kappa"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no frontal image"):
        sc.label_truth_agreement(gt, labels.assign(dicom_id=labels["dicom_id"] + "x"), ["Edema"])
    with pytest.raises(ValueError, match="unique dicom_id"):
        sc.label_truth_agreement(gt, labels.assign(dicom_id="zz"), ["Edema"])


def test_agreement_numbers_quote_noise_and_the_weakest_finding():
    gt = gt_table()
    labels = pd.DataFrame({"dicom_id": [f"d{i}" for i in range(6)]})
    labels["Edema"] = [1.0, np.nan, -1.0, 0.0, np.nan, np.nan]  # drawn d0, d1; said d0, d2
    labels["Pneumonia"] = [1.0, 1.0, np.nan, np.nan, np.nan, 1.0]  # exactly what is drawn
    numbers = sc.agreement_numbers(sc.label_truth_agreement(gt, labels), gt)
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


def test_parse_box():
    assert sc.parse_box("10 20 30 40") == (10, 20, 30, 40)
    assert sc.parse_box(math.nan) is None and sc.parse_box(None) is None
    with pytest.raises(ValueError, match="x1 y1 x2 y2"):
        sc.parse_box("10 20 30")


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
# the signal check


def planted_signal(n_patients: int = 150, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two images per patient. Edema lights one pixel and is named in the text; Fracture is
    in the text only; Cardiomegaly is in neither (pure noise)."""
    rng = np.random.default_rng(seed)
    n = 2 * n_patients
    t = pd.DataFrame({"subject_id": np.repeat(np.arange(n_patients), 2), "study_id": np.arange(n)})
    edema = rng.random(n) < 0.3
    fracture = rng.random(n) < 0.3
    t["Edema"] = np.where(edema, 1.0, np.nan)
    t["Fracture"] = np.where(fracture, 1.0, 0.0)
    t["Cardiomegaly"] = np.where(rng.random(n) < 0.3, 1.0, np.nan)
    t.loc[t.index[:10], "Edema"] = -1.0  # uncertain rows: left out of the Edema probe
    words = ["lungs", "clear", "heart", "normal", "size", "seen"]
    t["report"] = [
        " ".join(rng.choice(words, 6))
        + (" edema present" if e else "")
        + (" rib fracture" if f else "")
        for e, f in zip(edema, fracture, strict=True)
    ]
    pixels = rng.normal(0.5, 0.1, size=(n, 8, 8)).astype(np.float32)
    pixels[edema, 3, 3] += 1.0
    return t, pixels


def test_signal_check_recovers_planted_signals():
    t, pixels = planted_signal()
    r = sc.signal_check(t, pixels, ["Edema", "Fracture", "Cardiomegaly"], progress=False)
    assert r.loc["Edema", "image_auroc"] > 0.95 and r.loc["Edema", "text_auroc"] > 0.95
    assert r.loc["Fracture", "text_auroc"] > 0.95
    assert 0.3 < r.loc["Fracture", "image_auroc"] < 0.7, "no pixel signal planted"
    assert 0.3 < r.loc["Cardiomegaly", "image_auroc"] < 0.7
    assert 0.3 < r.loc["Cardiomegaly", "text_auroc"] < 0.7
    edema = r.loc["Edema"]
    assert edema["train"] + edema["test"] == len(t) - 10, "uncertain rows are left out"
    assert r.loc["Fracture", "train"] + r.loc["Fracture", "test"] == len(t)
    assert 0.2 < r.loc["Fracture", "test"] / len(t) < 0.4
    again = sc.signal_check(t, pixels, ["Edema", "Fracture", "Cardiomegaly"], progress=False)
    pd.testing.assert_frame_equal(r, again)


def test_signal_check_picks_common_labels_and_rejects_bad_input():
    t, pixels = planted_signal(60)
    r = sc.signal_check(t, pixels, min_prevalence=0.2, progress=False)
    assert set(r.index) == {"Edema", "Fracture", "Cardiomegaly"}
    with pytest.raises(ValueError, match="table rows but"):
        sc.signal_check(t, pixels[:-1], progress=False)
    with pytest.raises(ValueError, match="no label is positive"):
        sc.signal_check(t, pixels, min_prevalence=0.9, progress=False)
    with pytest.raises(KeyError, match="findings"):
        sc.signal_check(t, pixels, ["Edema"], text_col="findings", progress=False)
    with pytest.raises(ValueError, match="test_share"):
        sc.signal_check(t, pixels, ["Edema"], test_share=1.0, progress=False)
    one_class = t.assign(Pleural=0.0)
    r = sc.signal_check(one_class, pixels, ["Pleural"], progress=False)
    assert np.isnan(r.loc["Pleural", "image_auroc"]), "one class: undefined, not a number"


def test_signal_numbers_count_only_labels_both_probes_scored():
    signal = pd.DataFrame(
        {"image_auroc": [0.6, 0.8, np.nan], "text_auroc": [0.9, 0.7, 0.95]},
        index=["Edema", "Fracture", "Pleural"],
    )
    numbers = sc.signal_numbers(signal)
    assert numbers["n_signal_labels"] == 2 and numbers["n_text_wins"] == 1
    assert numbers["image_auroc_mean"] == pytest.approx(0.7)
    assert (numbers["image_auroc_min"], numbers["image_auroc_max"]) == (0.6, 0.8)
    assert numbers["text_auroc_mean"] == pytest.approx(0.8)
    none = sc.signal_numbers(None)
    assert none["n_signal_labels"] == 0 and math.isnan(none["image_auroc_mean"])


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
