"""Loaders read tiny release trees back into the planted truth, and name bad files."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmcxr.data import (
    CHESTXRAY14_LABELS,
    CHEXPERT_LABELS,
    DataWarning,
    FormatError,
    ImageDecodeError,
    LabelValueError,
    MissingFileError,
    SchemaError,
    load_chestxray14,
    load_chestxray14_boxes,
    load_imagenome_gold,
    load_imagenome_splits,
    load_mimic_cxr,
    load_mimic_cxr_jpg,
    load_openi,
    load_scene_graph,
    read_image,
    resolve_root,
    skipped_files,
)

ID_COLS = ["subject_id", "study_id", "dicom_id", "view", "orientation", "procedure", "split"]


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # a clean tree warns about nothing
        return fn(*args, progress=False, **kw)


def _check_mimic(df: pd.DataFrame, truth: pd.DataFrame) -> None:
    truth = truth.sort_values(["subject_id", "study_id", "dicom_id"]).reset_index(drop=True)
    assert len(df) == len(truth)
    pd.testing.assert_frame_equal(df[ID_COLS], truth[ID_COLS], check_dtype=False)
    assert df.subject_id.dtype == np.int64 and df.study_id.dtype == np.int64
    np.testing.assert_array_equal(
        df[CHEXPERT_LABELS].to_numpy(), truth[CHEXPERT_LABELS].to_numpy(dtype=float)
    )
    assert list(df.path) == list(truth.path)
    assert (df.findings == truth.findings).all()
    has_impr = truth.impression.notna().to_numpy()
    assert (df.impression[has_impr] == truth.impression[has_impr]).all()
    assert (df.impression_source[has_impr] == "impression").all()
    # a findings-only report has no impression (the MIT-LCP parser's last-paragraph fallback
    # is for reports with neither section): the findings are not copied into it
    assert (df.impression_source[~has_impr] == "missing").all()
    assert (df.impression[~has_impr] == "").all()
    assert (df.findings_source == np.where(truth.findings == "", "missing", "findings")).all()
    assert df.report.str.contains("FINAL REPORT").all()
    assert not df.report_empty.any()
    # the DICOM release's view comes from the headers, the JPG release's from the metadata
    source = "header" if df.path.iloc[0].endswith(".dcm") else "metadata"
    assert (df[["view_source", "orientation_source", "procedure_source"]] == source).all().all()
    assert (df.header_metadata_conflict == "").all()


def test_mimic_dicom_round_trip(mimic_tree):
    root, truth = mimic_tree
    df = _quiet(load_mimic_cxr, root)
    _check_mimic(df, truth)
    assert skipped_files(df).empty
    t = truth.set_index("dicom_id")
    for r in df.itertuples():  # pixels: windowing + MONOCHROME1 give back the planted image
        np.testing.assert_allclose(read_image(r.path), t.loc[r.dicom_id, "image"], atol=1e-3)
    assert set(df.height) == {40} and set(df.width) == {32}


def test_mimic_jpg_round_trip(mimic_jpg_tree):
    root, truth = mimic_jpg_tree
    df = _quiet(load_mimic_cxr_jpg, root)
    _check_mimic(df, truth)
    t = truth.set_index("dicom_id")
    for r in df.itertuples():
        assert np.abs(read_image(r.path) - t.loc[r.dicom_id, "image"]).mean() < 0.02


def test_mimic_missing_report_raise_and_skip(mimic_tree):
    root, truth = mimic_tree
    victim = truth.iloc[0]
    rep = root / f"files/p{str(victim.subject_id)[:2]}/p{victim.subject_id}/s{victim.study_id}.txt"
    rep.unlink()
    with pytest.raises(MissingFileError, match=rf"s{victim.study_id}\.txt: report file not found"):
        load_mimic_cxr(root, progress=False)
    with pytest.warns(DataWarning, match="skipped 1"):
        df = load_mimic_cxr(root, on_error="skip", progress=False)
    assert victim.study_id not in set(df.study_id)
    assert len(df) == len(truth) - (truth.study_id == victim.study_id).sum()
    assert skipped_files(df).path.tolist() == [str(rep)]


def test_mimic_missing_and_truncated_images(mimic_tree):
    root, truth = mimic_tree
    gone, cut = truth.path.iloc[0], truth.path.iloc[1]
    os_gone = Path(gone)
    os_gone.unlink()
    with pytest.raises(MissingFileError, match=gone.split("/")[-1]):
        load_mimic_cxr(root, progress=False)
    data = open(cut, "rb").read()
    open(cut, "wb").write(data[: len(data) - 500])
    with pytest.warns(DataWarning, match="skipped 2"):
        df = load_mimic_cxr(root, on_error="skip", progress=False)
    skipped = skipped_files(df).set_index("path")
    assert "not found" in skipped.loc[gone, "reason"]
    assert "truncated" in skipped.loc[cut, "reason"]
    assert not ({gone, cut} & set(df.path)) and len(df) == len(truth) - 2
    os_gone.write_bytes(b"\x00" * 200)  # now present but garbage
    with pytest.raises(ImageDecodeError, match=gone.split("/")[-1]):
        load_mimic_cxr(root, progress=False)


def test_mimic_jpg_truncated_jpeg(mimic_jpg_tree):
    root, truth = mimic_jpg_tree
    p = truth.path.iloc[2]
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match=p.split("/")[-1] + ".*truncated"):
        load_mimic_cxr_jpg(root, progress=False)


def _rewrite_gz(path, fn):
    df = pd.read_csv(path)
    df = fn(df)
    path.write_bytes(gzip.compress(df.to_csv(index=False).encode()))


def test_label_csv_missing_column(mimic_jpg_tree):
    root, _ = mimic_jpg_tree
    path = root / "mimic-cxr-2.0.0-chexpert.csv.gz"
    _rewrite_gz(path, lambda d: d.drop(columns=["Pneumonia"]))
    for mode in ("raise", "skip"):  # a whole-file problem is never skipped
        with pytest.raises(SchemaError, match=r"chexpert\.csv\.gz: .*lacks required.*Pneumonia"):
            load_mimic_cxr_jpg(root, on_error=mode, progress=False)


def test_metadata_missing_column(mimic_jpg_tree):
    root, _ = mimic_jpg_tree
    _rewrite_gz(
        root / "mimic-cxr-2.0.0-metadata.csv.gz", lambda d: d.drop(columns=["ViewPosition"])
    )
    with pytest.raises(SchemaError, match=r"metadata\.csv\.gz.*ViewPosition"):
        load_mimic_cxr_jpg(root, progress=False)


def test_labels_outside_code_set(mimic_jpg_tree):
    root, truth = mimic_jpg_tree
    path = root / "mimic-cxr-2.0.0-chexpert.csv.gz"
    bad_study = int(truth.study_id.iloc[0])

    def poison(d):
        d["Edema"] = d["Edema"].astype(object)
        d.loc[d.study_id == bad_study, "Edema"] = "yes"
        d.loc[d.study_id == int(truth.study_id.iloc[-1]), "Atelectasis"] = 2.0
        return d

    _rewrite_gz(path, poison)
    with pytest.raises(
        LabelValueError,
        match=rf"chexpert\.csv\.gz: 2 row\(s\).*"
        rf"study_id={bad_study} \(Edema='yes'\)",
    ):
        load_mimic_cxr_jpg(root, progress=False)
    with pytest.warns(DataWarning, match="skipped 2"):
        df = load_mimic_cxr_jpg(root, on_error="skip", progress=False)
    assert bad_study not in set(df.study_id)
    assert skipped_files(df).reason.str.contains("label values outside").all()


def test_dicom_root_without_label_tables_warns(mimic_tree):
    root, truth = mimic_tree
    (root / "mimic-cxr-2.0.0-chexpert.csv.gz").unlink()
    (root / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_mimic_cxr(root, progress=False)
    messages = [str(w.message) for w in caught if w.category is DataWarning]
    assert any("no chexpert label table" in m for m in messages)
    assert any("no official split table" in m for m in messages)
    assert len(df) == len(truth) and df[CHEXPERT_LABELS].isna().all().all()
    assert df.split.isna().all()


def test_not_a_release(tmp_path):
    with pytest.raises(FormatError, match="does not look like MIMIC-CXR"):
        load_mimic_cxr(tmp_path)
    with pytest.raises(MissingFileError, match="root folder not found"):
        load_openi(tmp_path / "nothing")
    with pytest.raises(FormatError, match="no Data_Entry_2017.csv"):
        load_chestxray14(tmp_path)


def test_resolve_root_checks_given_roots(tmp_path, mimic_jpg_tree):
    root, _ = mimic_jpg_tree
    assert resolve_root("mimic-cxr-jpg", root, n=1, image_size=8) == root.resolve()
    with pytest.raises(FormatError, match="does not look like mimic-cxr"):
        resolve_root("mimic-cxr", root, n=1, image_size=8)
    with pytest.raises(MissingFileError, match="does not exist"):
        resolve_root("openi", tmp_path / "missing", n=1, image_size=8)
    with pytest.raises(ValueError, match="unknown format"):
        resolve_root("dicom-zoo", root, n=1, image_size=8)


def test_openi_table(openi_tree):
    root, truth = openi_tree
    df = _quiet(load_openi, root)
    assert list(df.image_id) == list(truth.image_id)
    assert list(df.view) == list(truth.view)
    assert list(df.subject_id) == list(truth.uid)
    assert list(df.findings) == list(truth.findings)
    assert list(df.normal) == list(truth.normal)
    assert (df.impression[truth.impression != ""] == truth.impression[truth.impression != ""]).all()


def test_openi_missing_png(openi_tree):
    root, truth = openi_tree
    (root / "NLMCXR_png" / f"{truth.image_id.iloc[3]}.png").unlink()
    with pytest.raises(MissingFileError, match=truth.image_id.iloc[3]):
        load_openi(root, progress=False)
    with pytest.warns(DataWarning, match="skipped 1"):
        df = load_openi(root, on_error="skip", progress=False)
    assert len(df) == len(truth) - 1


def test_chestxray14_header_quirk_labels_split(cxr14_tree):
    root, truth = cxr14_tree
    df = _quiet(load_chestxray14, root)
    assert list(df.image_id) == list(truth.image_id)
    assert list(df.subject_id) == list(truth.subject_id)
    assert list(df.view) == list(truth.view)
    assert df.orig_width.tolist() == [2500] * 4 and df.orig_height.tolist() == [2048] * 4
    assert df.pixel_spacing_y.tolist() == [0.143] * 4
    for r, lab in zip(df.itertuples(), truth.labels, strict=True):
        want = set() if lab == "No Finding" else set(lab.split("|"))
        got = {c for c in CHESTXRAY14_LABELS if df.loc[r.Index, c] == 1.0}
        assert got == want
    assert df["No Finding"].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert df.split.tolist() == ["train_val", "train_val", "train_val", "test"]
    boxes = load_chestxray14_boxes(root)
    assert boxes.iloc[0].tolist() == [
        "00000001_000.png",
        "Cardiomegaly",
        225.084745762712,
        547.019216763771,
        86.7796610169491,
        79.1864406779661,
    ]


def test_chestxray14_bad_label_and_missing_column(cxr14_tree):
    root, _ = cxr14_tree
    path = root / "Data_Entry_2017.csv"
    text = path.read_text()
    path.write_text(text.replace("Cardiomegaly|Emphysema", "Cardiomegaly|Flu"))
    with pytest.raises(
        LabelValueError,
        match=r"Data_Entry_2017\.csv: Image Index "
        r"00000001_001\.png.*\['Flu'\]",
    ):
        load_chestxray14(root, progress=False)
    path.write_text(text.replace("Patient ID", "PatientIdent"))
    with pytest.raises(SchemaError, match=r"Data_Entry_2017\.csv.*Patient ID"):
        load_chestxray14(root, progress=False)


def test_imagenome_gold_and_scene_graph(imagenome_tree):
    root, ids = imagenome_tree
    boxes, sents = load_imagenome_gold(root)
    assert set(boxes.dicom_id) == set(ids) and len(boxes) == 4
    assert boxes.loc[boxes.bbox_name == "left lung", "x1"].tolist() == [120, 120]
    assert list(sents.dicom_id) == ids and (sents.context == "yes").all()
    g = load_scene_graph(
        root / "chest-imagenome/silver_dataset/scene_graph" / f"{ids[0]}_SceneGraph.json"
    )
    assert g["meta"]["viewpoint"] == "PA"
    assert g["objects"].bbox_name.tolist() == ["right lung"]
    assert g["phrases"].attributes.iloc[0] == [
        "anatomicalfinding|yes|lung opacity",
        "nlp|yes|abnormal",
    ]
    assert load_imagenome_splits(root).split.tolist() == ["train"]
    with pytest.raises(FormatError, match="Chest ImaGenome"):
        load_imagenome_gold(root / "chest-imagenome" / "gold_dataset")


def test_mimic_dicom_fast_path_uses_metadata_table(mimic_tree):
    root, truth = mimic_tree
    checked = _quiet(load_mimic_cxr, root)
    fast = _quiet(load_mimic_cxr, root, check_images=False)
    sources = ["view_source", "orientation_source", "procedure_source"]
    pd.testing.assert_frame_equal(
        fast.drop(columns=sources), checked.drop(columns=sources), check_dtype=False
    )
    assert (checked[sources] == "header").all().all()
    assert (fast[sources] == "metadata").all().all()  # no header was read


def test_skip_report_survives_concat(mimic_tree):
    root, truth = mimic_tree
    Path(truth.path.iloc[0]).unlink()
    with pytest.warns(DataWarning, match="skipped 1"):
        df = load_mimic_cxr(root, on_error="skip", progress=False)
    both = pd.concat([df.iloc[:3], df.iloc[3:]])  # pandas compares attrs here
    assert skipped_files(both).path.tolist() == [truth.path.iloc[0]]
