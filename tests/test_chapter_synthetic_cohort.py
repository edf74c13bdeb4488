"""The synthetic-cohort chapter's helpers: tree listing, planted-structure and agreement tables
on hand-made ground truth, DICOM raw vs display, example choice, figures, and the signal check
recovering planted pixel and word signals (and ignoring noise)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mmcxr.chapters import synthetic_cohort as sc
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


def test_synthetic_roots_are_told_apart_and_their_config_read(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    assert not sc.is_synthetic(real)
    with pytest.raises(FileNotFoundError, match="synthetic_config.json"):
        sc.load_synth_config(real)
    synth = tmp_path / "synth"
    synth.mkdir()
    (synth / sc.CONFIG_FILE).write_text(json.dumps({"config": {"label_noise_rate": 0.03}}))
    assert sc.is_synthetic(synth)
    assert sc.load_synth_config(synth)["config"]["label_noise_rate"] == 0.03
    (synth / sc.CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        sc.load_synth_config(synth)
    (synth / sc.CONFIG_FILE).write_text(json.dumps({"n": 3}))
    with pytest.raises(ValueError, match="'config' object"):
        sc.load_synth_config(synth)


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


def test_cooccurrence_is_a_share_of_the_row_labels_positives():
    t = labels_table()
    m = sc.cooccurrence(t, ["Edema", "Cardiomegaly", "Fracture"])
    # Edema positive in rows 0,1,2; of those, Cardiomegaly == 1.0 in rows 0,1 (row 2 is -1)
    assert m.loc["Edema", "Cardiomegaly"] == pytest.approx(2 / 3)
    assert m.loc["Cardiomegaly", "Edema"] == pytest.approx(2 / 3)
    assert m.loc["Edema", "Edema"] == 1.0
    assert m.loc["Fracture"].isna().all(), "no positives: the row is undefined, not zero"


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
    assert off.loc["subtle_rate", "planted"] is False
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


def test_raw_and_display_inverts_monochrome1(tmp_path, dicom_writer):
    stored = np.tile(np.arange(0, 4000, 100, dtype=np.uint16), (30, 1))  # dark left, bright right
    path = dicom_writer(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", window=(2000, 4000))
    raw, shown, tags = sc.raw_and_display(path)
    assert raw.shape == shown.shape == stored.shape
    assert raw[0, 0] == 0.0 and raw[0, -1] == 1.0, "stored values, min-max scaled"
    assert shown[0, 0] > shown[0, -1], "MONOCHROME1: low stored values display bright"
    assert tags["PhotometricInterpretation"] == "MONOCHROME1" and not tags["VOI LUT"]
    headers = sc.dicom_headers([path], progress=False)
    assert headers.loc[0, "photometric"] == "MONOCHROME1" and bool(headers.loc[0, "window"])
    bad = tmp_path / "not.dcm"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not.dcm"):
        sc.dicom_headers([bad], progress=False)


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


def test_figures_keep_line_breaks_and_name_boxes():
    img = np.zeros((20, 16), dtype=np.float32)
    fig = sc.image_grid([img, img], ["PA: Edema\nfirst words", "AP"], ncols=2)
    assert fig.axes[0].get_title() == "PA: Edema\nfirst words"
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        sc.image_grid([img, img], ["x"])
    fig = sc.boxed_grid(
        [("a", img, {"left lung": (1, 1, 8, 10), "heart": (4, 6, 12, 14)}), ("b", img, {})],
        ncols=2,
    )
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["left lung", "heart"]
    assert len(fig.axes[0].patches) == 2 and fig.axes[1].get_legend() is None
    m = sc.cooccurrence(labels_table(), ["Edema", "Cardiomegaly"])
    assert sc.plot_cooccurrence(m, title="t").axes[0].get_title() == "t"


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
