"""Round trip: a small generated cohort in every format reads back as its ground truth."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from mmcxr.data import (
    CHESTXRAY14_LABELS,
    CHEXPERT_LABELS,
    DataWarning,
    ImageCache,
    frontal_only,
    load_chestxray14,
    load_chestxray14_boxes,
    load_ground_truth,
    load_imagenome_gold,
    load_mimic_cxr,
    load_mimic_cxr_jpg,
    load_openi,
    prepare,
    read_image,
    skipped_files,
    to_uint8,
)
from mmcxr.synth import generate

N, PX = 40, 96


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth")
    return {
        fmt: generate(fmt, base / fmt, n=N, seed=0, image_size=PX, workers=1, progress=False)
        for fmt in ("mimic-cxr", "mimic-cxr-jpg", "openi", "openi-kaggle", "chestx-ray14")
    }


def _by_key(df: pd.DataFrame, key: str, gt: pd.DataFrame) -> pd.DataFrame:
    assert df[key].is_unique and set(df[key]) == set(gt.image_id), "same images as planted"
    return gt.set_index("image_id").loc[df[key]].reset_index()


@pytest.mark.parametrize("fmt", ["mimic-cxr", "mimic-cxr-jpg"])
@pytest.mark.slow
def test_mimic_reads_back_ground_truth(cohorts, fmt):
    root = cohorts[fmt]
    df = (load_mimic_cxr if fmt == "mimic-cxr" else load_mimic_cxr_jpg)(root, progress=False)
    assert skipped_files(df).empty
    gt = _by_key(df, "dicom_id", load_ground_truth(root))
    for col in ("subject_id", "study_id", "view", "orientation"):
        assert df[col].tolist() == gt[col].tolist(), col
    assert df.path.tolist() == [str(root / p) for p in gt.path]
    assert df.procedure.str.contains("PORTABLE").tolist() == gt.portable.astype(bool).tolist()
    assert df.height.tolist() == gt.rows.tolist() and df.width.tolist() == gt["columns"].tolist()
    # labels joined by study: each image carries its study's row of the CheXpert table
    lab = pd.read_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz").set_index("study_id")
    np.testing.assert_array_equal(
        df[CHEXPERT_LABELS].to_numpy(), lab.loc[df.study_id, CHEXPERT_LABELS].to_numpy()
    )
    assert set(df.split) <= {"train", "validate", "test"}
    assert df.groupby("subject_id").split.nunique().max() == 1
    # real section statistics: about a third of reports have no FINDINGS, some no IMPRESSION
    assert (df.findings_source == "findings").mean() > 0.4
    no_impr = df.impression_source == "missing"
    assert (df.findings_source[no_impr] == "findings").all()
    assert (df.findings.str.len() + df.impression.str.len()).gt(0).all()


@pytest.mark.slow
def test_dicom_display_matches_jpeg_release(cohorts):
    """Every synthetic DICOM (MONOCHROME1, VOI LUT, 12-16 bit) displays like its JPEG twin."""
    dcm = load_mimic_cxr(cohorts["mimic-cxr"], progress=False).set_index("dicom_id")
    jpg = load_mimic_cxr_jpg(cohorts["mimic-cxr-jpg"], progress=False).set_index("dicom_id")
    assert set(dcm.index) == set(jpg.index)
    kinds = set()
    for key in dcm.index:
        ds = pydicom.dcmread(dcm.path[key], stop_before_pixels=True)
        kinds.add(ds.PhotometricInterpretation)
        kinds.add("VOILUT" if "VOILUTSequence" in ds else "window")
        diff = np.abs(read_image(dcm.path[key]) - read_image(jpg.path[key])).mean()
        assert diff < 0.02, (key, ds.PhotometricInterpretation, diff)  # inverted would be ~0.5
    assert kinds == {"MONOCHROME1", "MONOCHROME2", "VOILUT", "window"}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["openi", "openi-kaggle"])
def test_openi_reads_back(cohorts, fmt):
    root = cohorts[fmt]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # every image finds its view
        df = load_openi(root, progress=False)
    assert df.attrs["edition"] == ("kaggle" if fmt == "openi-kaggle" else "xml")
    gt = _by_key(df, "image_id", load_ground_truth(root))
    assert (df.view == "Frontal").tolist() == gt.frontal.astype(bool).tolist()
    assert df.path.tolist() == [str(root / p) for p in gt.path]
    assert df.groupby("uid").subject_id.nunique().max() == 1
    assert len(frontal_only(df)) == int(gt.frontal.sum())
    assert (df.findings_source == "findings").mean() > 0.7
    if fmt == "openi":  # both real id forms, the infixed one included
        infixed = df.image_id.str.contains("_1_IM-")
        assert infixed.any() and not infixed.all()


@pytest.mark.slow
def test_openi_editions_load_to_the_same_table(cohorts, tmp_path):
    """The generator's NLM (XML) and Kaggle (CSV) editions of one cohort read back as the same
    table, joined on the id both share; only the edition's own names and the MeSH automatic
    indexing (not in the Kaggle edition) differ. The image cache reads both."""
    xml = load_openi(cohorts["openi"], progress=False).set_index("image_key")
    kag = load_openi(cohorts["openi-kaggle"], progress=False).set_index("image_key")
    assert xml.index.tolist() == kag.index.tolist()
    same = [c for c in xml.columns if c not in ("image_id", "path", "report_path")]
    same.remove("mesh_automatic")
    pd.testing.assert_frame_equal(xml[same], kag[same])
    assert kag.mesh_automatic.isna().all() and xml.mesh_automatic.notna().all()
    assert (xml.mesh_automatic != "").any() and (xml.mesh_automatic != xml.mesh_major).all()
    for a, b in zip(xml.path[:4], kag.path[:4], strict=True):
        np.testing.assert_array_equal(read_image(a), read_image(b))
    caches = {
        fmt: ImageCache(
            prepare(fmt, cohorts[fmt], tmp_path / fmt, size=16, workers=0, progress=False)
        )
        for fmt in ("openi", "openi-kaggle")
    }
    np.testing.assert_array_equal(
        caches["openi"].get(list(xml.image_id)), caches["openi-kaggle"].get(list(kag.image_id))
    )


@pytest.mark.slow
def test_chestxray14_reads_back(cohorts):
    root = cohorts["chestx-ray14"]
    df = load_chestxray14(root, progress=False)
    gt = _by_key(df, "image_id", load_ground_truth(root))
    assert df.subject_id.tolist() == gt.subject_id.tolist()
    assert df.view.tolist() == gt.view.tolist()
    assert df.path.tolist() == [str(root / p) for p in gt.path]
    assert set(df.split) == {"train_val", "test"}
    n_labels = df[CHESTXRAY14_LABELS].sum(axis=1)
    assert ((n_labels == 0) == (df["No Finding"] == 1)).all()
    boxes = load_chestxray14_boxes(root)
    assert set(boxes.image_id) <= set(df.image_id) and set(boxes.label) <= set(CHESTXRAY14_LABELS)


@pytest.mark.slow
def test_imagenome_gold_refers_to_frontal_mimic_images(cohorts):
    root = cohorts["mimic-cxr"]
    df = load_mimic_cxr(root, progress=False)
    boxes, sentences = load_imagenome_gold(root)
    frontal = set(frontal_only(df).dicom_id)
    assert set(boxes.dicom_id) <= frontal and set(sentences.dicom_id) <= set(boxes.dicom_id)
    assert (boxes.x2 > boxes.x1).all() and boxes[["x1", "y1", "x2", "y2"]].le(224).all().all()


@pytest.mark.slow
def test_prepare_synthetic_cohort(cohorts, tmp_path):
    root = cohorts["mimic-cxr"]
    df = frontal_only(load_mimic_cxr(root, progress=False))
    cache = ImageCache(
        prepare("mimic-cxr", root, tmp_path / "c", size=32, workers=0, table=df, progress=False)
    )
    want = np.stack([to_uint8(read_image(p, 32)) for p in df.path])
    np.testing.assert_array_equal(cache.get(list(df.dicom_id)), want)
    with gzip.open(root / "cxr-record-list.csv.gz", "rt") as f:
        assert len(cache) < sum(1 for _ in f) - 1  # only the selected cohort was cached
