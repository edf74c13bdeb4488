"""Synthetic cohorts on disk: every format's files, columns, ids, headers, text and boxes.

Read back with pydicom / pandas / ElementTree / PIL directly (the loaders in mmcxr.data are
tested against these trees separately). Small cohorts at 64 px keep this fast.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("mmcxr.synth.phantom", reason="the image renderer is not in this checkout")

import pydicom  # noqa: E402
from pydicom.pixels import apply_voi_lut  # noqa: E402

from mmcxr.synth import CHEXPERT_LABELS, SynthConfig, generate  # noqa: E402
from mmcxr.synth.labeler import label_report, label_text, labeled_section  # noqa: E402
from mmcxr.synth.labels import LATERALISED, OPENI_NOT_AUTOMATIC  # noqa: E402

SEED, N, PX = 7, 40, 64
DICOM_ID = re.compile(r"([0-9a-f]{8}-){4}[0-9a-f]{8}")
SECTION = re.compile(r"\n ([A-Z ()/,-]+):\s")
LABEL_COLS = ["subject_id", "study_id", *CHEXPERT_LABELS]


def _small(tmp_path_factory, fmt: str) -> Path:
    out = tmp_path_factory.mktemp(fmt) / fmt
    return generate(fmt, out, n=N, seed=SEED, image_size=PX, workers=1, progress=False)


@pytest.fixture(scope="module")
def mimic(tmp_path_factory) -> Path:
    return _small(tmp_path_factory, "mimic-cxr")


@pytest.fixture(scope="module")
def jpg(tmp_path_factory) -> Path:
    return _small(tmp_path_factory, "mimic-cxr-jpg")


@pytest.fixture(scope="module")
def gt(mimic) -> pd.DataFrame:
    return pd.read_csv(mimic / "synthetic_ground_truth.csv.gz")


def _csv(path: Path, **kw) -> pd.DataFrame:
    with open(path, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b", f"{path} is not gzip"
    return pd.read_csv(path, **kw)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# ---------------------------------------------------------------------------- MIMIC-CXR


def test_mimic_tree_files_columns_and_ids(mimic):
    assert {p.name for p in mimic.iterdir()} == {
        "files",
        "chest-imagenome",
        "cxr-record-list.csv.gz",
        "cxr-study-list.csv.gz",
        "mimic-cxr-2.0.0-metadata.csv.gz",
        "mimic-cxr-2.0.0-chexpert.csv.gz",
        "mimic-cxr-2.0.0-negbio.csv.gz",
        "mimic-cxr-2.0.0-split.csv.gz",
        "synthetic_ground_truth.csv.gz",
        "synthetic_config.json",
    }
    rec = _csv(mimic / "cxr-record-list.csv.gz", dtype={"dicom_id": str})
    assert list(rec.columns) == ["subject_id", "study_id", "dicom_id", "path"]
    study = _csv(mimic / "cxr-study-list.csv.gz")
    assert list(study.columns) == ["subject_id", "study_id", "path"] and len(study) == N
    meta = _csv(mimic / "mimic-cxr-2.0.0-metadata.csv.gz")
    assert list(meta.columns) == [
        "dicom_id",
        "subject_id",
        "study_id",
        "PerformedProcedureStepDescription",
        "ViewPosition",
        "Rows",
        "Columns",
        "StudyDate",
        "StudyTime",
        "ProcedureCodeSequence_CodeMeaning",
        "ViewCodeSequence_CodeMeaning",
        "PatientOrientationCodeSequence_CodeMeaning",
    ]
    for name in ("chexpert", "negbio"):
        lab = _csv(mimic / f"mimic-cxr-2.0.0-{name}.csv.gz")
        assert list(lab.columns) == LABEL_COLS and len(lab) == N
        assert set(
            np.unique(lab[CHEXPERT_LABELS].to_numpy()[~lab[CHEXPERT_LABELS].isna().to_numpy()])
        ) <= {1.0, 0.0, -1.0}
    split = _csv(mimic / "mimic-cxr-2.0.0-split.csv.gz")
    assert list(split.columns) == ["dicom_id", "study_id", "subject_id", "split"]
    assert set(split["split"]) <= {"train", "validate", "test"}
    assert split.groupby("subject_id")["split"].nunique().max() == 1
    assert rec["subject_id"].astype(str).str.fullmatch(r"1\d{7}").all()
    assert rec["study_id"].astype(str).str.fullmatch(r"5\d{7}").all()
    assert rec["dicom_id"].str.fullmatch(DICOM_ID.pattern).all() and rec["dicom_id"].is_unique
    for r in rec.itertuples():
        s = str(r.subject_id)
        assert r.path == f"files/p{s[:2]}/p{s}/s{r.study_id}/{r.dicom_id}.dcm"
        assert (mimic / r.path).is_file()
    for r in study.itertuples():
        assert r.path == f"files/p{str(r.subject_id)[:2]}/p{r.subject_id}/s{r.study_id}.txt"
        assert (mimic / r.path).is_file()
    on_disk = sorted(p.relative_to(mimic).as_posix() for p in (mimic / "files").rglob("*.dcm"))
    assert on_disk == sorted(rec["path"])
    assert set(meta["ViewPosition"]) <= {"PA", "AP", "LATERAL", "LL"}
    assert (meta.groupby("study_id")["ViewPosition"].first().isin(["PA", "AP"])).all()


def test_dicom_headers(mimic):
    meta = _csv(mimic / "mimic-cxr-2.0.0-metadata.csv.gz").set_index("dicom_id")
    rec = _csv(mimic / "cxr-record-list.csv.gz")
    seen = {"MONOCHROME1": 0, "MONOCHROME2": 0, "lut": 0, "CR": 0, "DX": 0}
    for r in rec.itertuples():
        ds = pydicom.dcmread(mimic / r.path)
        m = meta.loc[r.dicom_id]
        assert ds.SOPClassUID in ("1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1")
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.BitsAllocated == 16 and 12 <= ds.BitsStored <= 16
        assert ds.HighBit == ds.BitsStored - 1 and ds.PixelRepresentation == 0
        assert ds.SamplesPerPixel == 1
        assert (ds.Rows, ds.Columns) == (m.Rows, m.Columns) == (PX, round(PX * 2544 / 3056))
        assert len(ds.PixelSpacing) == 2 and float(ds.PixelSpacing[0]) > 0
        assert ds.ViewPosition == m.ViewPosition
        assert ds.ViewCodeSequence[0].CodeMeaning == m.ViewCodeSequence_CodeMeaning
        assert (
            ds.PatientOrientationCodeSequence[0].CodeMeaning
            == m.PatientOrientationCodeSequence_CodeMeaning
        )
        assert ds.PatientID == str(r.subject_id) and ds.StudyID == str(r.study_id)
        assert ds.pixel_array.max() <= (1 << ds.BitsStored) - 1
        seen[ds.PhotometricInterpretation] += 1
        seen[ds.Modality] += 1
        if "VOILUTSequence" in ds:
            seen["lut"] += 1
        else:
            assert float(ds.WindowWidth) > 0 and "WindowCenter" in ds
    assert all(v > 0 for v in seen.values()), seen
    assert seen["MONOCHROME2"] > seen["MONOCHROME1"]


def test_dicom_display_matches_jpeg_pixels(mimic, jpg):
    """MONOCHROME1 is stored inverted and the VOI LUT undoes a squaring: once a viewer applies
    them the DICOM shows the same picture as the JPEG of the same cohort."""
    rec = _csv(mimic / "cxr-record-list.csv.gz")
    mono1 = 0
    for r in rec.itertuples():
        ds = pydicom.dcmread(mimic / r.path)
        raw = ds.pixel_array
        maxval = (1 << ds.BitsStored) - 1
        shown = apply_voi_lut(raw, ds).astype(np.float64)
        raw = raw.astype(np.float64)
        shown /= 65535.0 if "VOILUTSequence" in ds else maxval
        if ds.PhotometricInterpretation == "MONOCHROME1":
            shown = 1.0 - shown
            mono1 += 1
        ref = np.asarray(Image.open(jpg / r.path.replace(".dcm", ".jpg")), dtype=np.float64) / 255
        assert np.abs(shown - ref).mean() < 0.02, r.path
        if ds.PhotometricInterpretation == "MONOCHROME1":
            assert np.corrcoef((raw / maxval).ravel(), ref.ravel())[0, 1] < -0.9
    assert mono1 > 0


def test_reports_layout_and_labels_agree(mimic):
    study = _csv(mimic / "cxr-study-list.csv.gz")
    chex = _csv(mimic / "mimic-cxr-2.0.0-chexpert.csv.gz").set_index("study_id")
    for r in study.itertuples():
        text = (mimic / r.path).read_text()
        lines = text.rstrip("\n").split("\n")
        assert any(line == " " * 33 + "FINAL REPORT" for line in lines)
        assert all(len(line) <= 79 and line.startswith(" ") for line in lines if line)
        headers = SECTION.findall(text)
        assert {"EXAMINATION", "INDICATION", "TECHNIQUE", "COMPARISON"} <= set(headers)
        assert "FINDINGS" in headers or "IMPRESSION" in headers
        assert "___" in text
        got = label_report(text)
        assert all(_same(got[k], chex.loc[r.study_id, k]) for k in CHEXPERT_LABELS), r.path


def test_report_laterality_matches_drawn_side(mimic, gt):
    study = _csv(mimic / "cxr-study-list.csv.gz").set_index("study_id")
    checked = 0
    for g in gt[gt["frontal"] & gt["noise_label"].isna()].itertuples(index=False):
        g = g._asdict()
        section = labeled_section((mimic / study.loc[g["study_id"], "path"]).read_text())
        sentences = re.split(r"(?<=\.)\s+", " ".join(section.split()))
        for lab in LATERALISED:
            side = gt.loc[gt["image_id"] == g["image_id"], f"side_{lab}"].iloc[0]
            rep = gt.loc[gt["image_id"] == g["image_id"], f"reported_{lab}"].iloc[0]
            if side not in ("left", "right") or rep not in (1.0, -1.0):
                continue
            other = "left" if side == "right" else "right"
            hits = [s for s in sentences if label_text(s)[lab] in (1.0, -1.0)]
            assert hits
            for s in hits:
                words = set(re.findall(r"[a-z]+", s.lower()))
                assert side in words and other not in words, (lab, side, s)
                checked += 1
    assert checked >= 5


def test_ground_truth_table(mimic, gt):
    rec = _csv(mimic / "cxr-record-list.csv.gz")
    assert len(gt) == len(rec) and set(gt["image_id"]) == set(rec["dicom_id"])
    for col in (
        "view",
        "orientation",
        "spurious_marker",
        "noise_label",
        "noise_kind",
        "stratum_pneumothorax_chest_tube",
        "stratum_lesion",
    ):
        assert col in gt.columns
    for lab in CHEXPERT_LABELS:
        if lab != "No Finding":
            for pre in ("truth_", "reported_", "side_", "zone_", "severity_", "box_"):
                assert pre + lab in gt.columns
    assert not gt.loc[gt["view"] == "PA", "spurious_marker"].any()
    assert (
        gt.loc[~gt["frontal"], [c for c in gt.columns if c.startswith("box_")]].isna().all().all()
    )
    boxes = 0
    for lab in CHEXPERT_LABELS:
        if lab == "No Finding":
            continue
        for b in gt.loc[gt["frontal"] & gt[f"box_{lab}"].notna(), f"box_{lab}"]:
            x1, y1, x2, y2 = map(int, b.split())
            assert 0 <= x1 <= x2 < gt["columns"].iloc[0] and 0 <= y1 <= y2 < PX  # inclusive
            boxes += 1
    assert boxes > 0
    cfg = json.loads((mimic / "synthetic_config.json").read_text())
    assert cfg["seed"] == SEED and cfg["n"] == N and cfg["image_size"] == PX
    assert SynthConfig.from_dict(cfg["config"]) == SynthConfig()


# ---------------------------------------------------------------------------- Chest ImaGenome


def test_imagenome_tree(mimic, gt):
    base = mimic / "chest-imagenome"
    frontal = gt[gt["frontal"]]
    graphs = sorted((base / "silver_dataset" / "scene_graph").glob("*_SceneGraph.json"))
    assert {p.name.removesuffix("_SceneGraph.json") for p in graphs} == set(frontal["image_id"])
    g = json.loads(graphs[0].read_text())
    assert list(g) == [
        "image_id",
        "viewpoint",
        "patient_id",
        "study_id",
        "gender",
        "age_decile",
        "reason_for_exam",
        "StudyOrder",
        "StudyDateTime",
        "objects",
        "attributes",
        "relationships",
    ]
    obj = g["objects"][0]
    for k in (
        "object_id",
        "x1",
        "y1",
        "x2",
        "y2",
        "width",
        "height",
        "original_x1",
        "original_y1",
        "original_x2",
        "original_y2",
        "original_width",
        "original_height",
        "bbox_name",
        "synsets",
        "name",
    ):
        assert k in obj
    splits = {
        n: pd.read_csv(base / "silver_dataset" / "splits" / f"{n}.csv")
        for n in ("train", "valid", "test", "images_to_avoid")
    }
    for df in splits.values():
        assert list(df.columns) == ["subject_id", "study_id", "dicom_id", "path", "ViewPosition"]
    assert sum(len(df) for df in splits.values()) == len(frontal)
    boxes = pd.read_csv(base / "gold_dataset" / "gold_bbox_coordinate_annotations_1000images.csv")
    assert list(boxes.columns) == [
        "image_id",
        "x1",
        "y1",
        "x2",
        "y2",
        "width",
        "height",
        "bbox_name",
        "annot_id",
        "original_x1",
        "original_x2",
        "original_y1",
        "original_y2",
        "original_width",
        "original_height",
        "annotator",
        "coord224",
        "coord_original",
    ]
    assert boxes["image_id"].str.endswith(".dcm").all()
    gold = set(boxes["image_id"].str.removesuffix(".dcm"))
    assert gold == set(splits["images_to_avoid"]["dicom_id"]) and len(gold) > 5
    assert boxes[["x1", "y1", "x2", "y2"]].to_numpy().min() >= 0
    assert boxes[["x1", "y1", "x2", "y2"]].to_numpy().max() <= 224
    assert {"right lung", "left lung"} <= set(boxes["bbox_name"])
    sent = pd.read_csv(
        base / "gold_dataset" / "gold_object_attribute_with_coordinates.txt", sep="\t"
    )
    assert list(sent.columns) == [
        "patient_id",
        "study_id",
        "image_id",
        "row_id",
        "sentence",
        "bbox",
        "coord_original",
        "label_name",
        "context",
        "categoryID",
        "relation",
        "attribute",
        "section",
    ]
    assert set(sent["context"]) <= {"yes", "no"} and set(sent["image_id"]) <= {
        f"{d}.dcm" for d in gold
    }


def test_planted_lesions_lie_inside_their_imagenome_boxes(mimic, gt):
    """Each drawn, reported lateralised finding of a gold image sits inside the boxes that its
    sentence is linked to (so attention inside those boxes is attention on the lesion)."""
    from mmcxr.synth.labels import IMAGENOME_CONDITIONS

    base = mimic / "chest-imagenome" / "gold_dataset"
    sent = pd.read_csv(base / "gold_object_attribute_with_coordinates.txt", sep="\t")
    sent["dicom_id"] = sent["image_id"].str.removesuffix(".dcm")
    checked = 0
    for g in gt[gt["frontal"] & gt["image_id"].isin(sent["dicom_id"])].to_dict("records"):
        for lab in LATERALISED | {"Cardiomegaly"}:
            if not (
                g[f"truth_{lab}"] == 1
                and g[f"reported_{lab}"] == 1.0
                and isinstance(g[f"box_{lab}"], str)
            ):
                continue
            x1, y1, x2, y2 = map(int, g[f"box_{lab}"].split())
            links = sent[
                (sent["dicom_id"] == g["image_id"])
                & (sent["context"] == "yes")
                & (sent["label_name"] == IMAGENOME_CONDITIONS[lab][0])
            ]
            assert len(links), (g["image_id"], lab)
            coords = np.array([json.loads(c) for c in links["coord_original"]])
            ux1, uy1 = coords[:, 0].min(), coords[:, 1].min()
            ux2, uy2 = coords[:, 2].max(), coords[:, 3].max()
            assert ux1 - 2 <= x1 and uy1 - 2 <= y1 and x2 <= ux2 + 2 and y2 <= uy2 + 2, (
                lab,
                (x1, y1, x2, y2),
                (ux1, uy1, ux2, uy2),
            )
            checked += 1
    assert checked >= 3


# ---------------------------------------------------------------------------- MIMIC-CXR-JPG


def test_jpg_tree(jpg, mimic):
    names = {p.name for p in jpg.iterdir()}
    assert names == {
        "files",
        "mimic-cxr-2.0.0-metadata.csv.gz",
        "mimic-cxr-2.0.0-chexpert.csv.gz",
        "mimic-cxr-2.0.0-negbio.csv.gz",
        "mimic-cxr-2.0.0-split.csv.gz",
        "synthetic_ground_truth.csv.gz",
        "synthetic_config.json",
    }
    meta = _csv(jpg / "mimic-cxr-2.0.0-metadata.csv.gz")
    for r in meta.itertuples():
        s = str(r.subject_id)
        folder = jpg / f"files/p{s[:2]}/p{s}"
        im = Image.open(folder / f"s{r.study_id}" / f"{r.dicom_id}.jpg")
        assert im.format == "JPEG" and im.mode == "L" and im.size == (r.Columns, r.Rows)
        assert (folder / f"s{r.study_id}.txt").is_file()
    # same seed, same cohort: the JPG release's labels equal the DICOM release's
    a = _csv(jpg / "mimic-cxr-2.0.0-chexpert.csv.gz")
    b = _csv(mimic / "mimic-cxr-2.0.0-chexpert.csv.gz")
    pd.testing.assert_frame_equal(a, b)


# ---------------------------------------------------------------------------- OpenI


def test_openi_tree(tmp_path):
    root = generate(
        "openi", tmp_path / "openi", n=20, seed=SEED, image_size=PX, workers=1, progress=False
    )
    gt = pd.read_csv(root / "synthetic_ground_truth.csv.gz")
    xmls = sorted((root / "ecgen-radiology").glob("*.xml"))
    assert sorted(int(p.stem) for p in xmls) == list(range(1, 21))
    pngs = {p.stem: p for p in root.rglob("*.png")}
    assert set(pngs) == set(gt["image_id"])
    deid, infixed = 0, set()
    for p in xmls:
        r = ET.parse(p).getroot()
        assert r.tag == "eCitation" and r.find("uId").get("id") == f"CXR{p.stem}"
        texts = {a.get("Label"): a.text or "" for a in r.iter("AbstractText")}
        assert list(texts) == ["COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION"]
        assert "___" not in "".join(texts.values())
        deid += "XXXX" in "".join(texts.values())
        ids = [pi.get("id") for pi in r.iter("parentImage")]
        # both real id forms: CXR2_IM-0652-1001 and, with the _<k> infix, CXR1_1_IM-0001-3001
        form = rf"CXR{p.stem}(_1)?_IM-\d{{4}}-\d001"
        assert len(ids) >= 1 and all(re.fullmatch(form, i) for i in ids)
        if "_1_IM-" in ids[0]:
            infixed.add(int(p.stem))
        for i in ids:
            im = Image.open(pngs[i])
            assert im.mode == "L" and im.size[1] == PX
        majors = [m.text for m in r.find("MeSH").iter("major")]
        automatic = [m.text for m in r.find("MeSH").iter("automatic")]
        rows = gt[gt["image_id"] == ids[0]].iloc[0]
        positive = any(
            rows[f"reported_{lab}"] == 1.0 for lab in CHEXPERT_LABELS if lab != "No Finding"
        )
        assert (majors == ["normal"]) == (not positive), (majors, p)
        # automatic indexing: its own lower-case terms, never a copy of the major terms
        assert not set(automatic) & set(majors) and not set(automatic) & OPENI_NOT_AUTOMATIC
        assert all(a == a.lower() and "/" not in a for a in automatic)
        assert not automatic if majors == ["normal"] else len(automatic) <= len(majors)
    assert deid > 0
    assert 1 in infixed and len(infixed) < 20
    assert (gt.groupby("study_id")["view"].first().isin(["PA", "AP"])).all()
    proj = pd.read_csv(root / "indiana_projections.csv")
    assert list(proj.columns) == ["uid", "filename", "projection"]
    # the Kaggle table's names: no CXR, no infix, .dcm.png
    assert proj["filename"].str.fullmatch(r"\d+_IM-\d{4}-\d001\.dcm\.png").all()
    assert (proj["uid"] == proj["filename"].str.split("_").str[0].astype(int)).all()
    view = dict(zip(proj["filename"].str.removesuffix(".dcm.png"), proj["projection"], strict=True))
    key = gt["image_id"].str.replace(r"^CXR(\d+)(_\d+)?_", r"\1_", regex=True)
    assert [view[k] for k in key] == ["Frontal" if f else "Lateral" for f in gt["frontal"]]


def test_openi_kaggle_tree(tmp_path):
    """The Kaggle edition: the two CSVs with the real columns, PNGs under
    images/images_normalized named as in the projection table, and no XML."""
    root = generate(
        "openi-kaggle", tmp_path / "k", n=20, seed=SEED, image_size=PX, workers=1, progress=False
    )
    assert not (root / "ecgen-radiology").exists()
    rep = pd.read_csv(root / "indiana_reports.csv")
    assert list(rep.columns) == [
        "uid",
        "MeSH",
        "Problems",
        "image",
        "indication",
        "comparison",
        "findings",
        "impression",
    ]
    assert rep["uid"].tolist() == list(range(1, 21))
    normal = rep["MeSH"] == "normal"
    assert ((rep["Problems"] == "normal") == normal).all() and 0 < normal.sum() < 20
    for mesh, problems in zip(rep["MeSH"][~normal], rep["Problems"][~normal], strict=True):
        heads = [t.split("/")[0] for t in mesh.split(";")]
        assert problems.split(";") == list(dict.fromkeys(heads))
    assert rep["findings"].notna().mean() > 0.7 and "XXXX" in " ".join(rep["indication"])
    proj = pd.read_csv(root / "indiana_projections.csv")
    assert proj["filename"].str.fullmatch(r"\d+_IM-\d{4}-\d001\.dcm\.png").all()
    assert set(proj["projection"]) == {"Frontal", "Lateral"}
    files = sorted(p.name for p in (root / "images" / "images_normalized").iterdir())
    assert files == sorted(proj["filename"])
    gt = pd.read_csv(root / "synthetic_ground_truth.csv.gz")
    assert sorted(gt["image_id"] + ".dcm.png") == files
    # the same cohort as the XML edition: same reports, same pixels
    xml = generate(
        "openi", tmp_path / "x", n=20, seed=SEED, image_size=PX, workers=1, progress=False
    )
    first = ET.parse(xml / "ecgen-radiology" / "1.xml").getroot()
    texts = {a.get("Label"): a.text or "" for a in first.iter("AbstractText")}
    assert texts["FINDINGS"] == (rep["findings"].fillna("")[0])
    a = np.asarray(Image.open(root / "images" / "images_normalized" / proj["filename"][0]))
    b = np.asarray(Image.open(xml / "NLMCXR_png" / f"{first.find('parentImage').get('id')}.png"))
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- ChestX-ray14


def test_chestxray14_tree(tmp_path):
    root = generate(
        "chestx-ray14",
        tmp_path / "cxr14",
        n=30,
        seed=SEED,
        image_size=PX,
        workers=1,
        progress=False,
    )
    df = pd.read_csv(root / "Data_Entry_2017.csv")
    assert list(df.columns)[:7] == [
        "Image Index",
        "Finding Labels",
        "Follow-up #",
        "Patient ID",
        "Patient Age",
        "Patient Gender",
        "View Position",
    ]
    assert {"OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"} <= set(
        df.columns
    )
    assert len(df) == 30 and df["Image Index"].str.fullmatch(r"\d{8}_\d{3}\.png").all()
    assert (df["Image Index"].str[:8].astype(int) == df["Patient ID"]).all()
    allowed = {
        "Atelectasis",
        "Cardiomegaly",
        "Effusion",
        "Infiltration",
        "Mass",
        "Nodule",
        "Pneumonia",
        "Pneumothorax",
        "Consolidation",
        "Edema",
        "Emphysema",
        "Fibrosis",
        "Pleural_Thickening",
        "Hernia",
    }
    for labels in df["Finding Labels"]:
        parts = labels.split("|")
        assert labels == "No Finding" or (set(parts) <= allowed and parts == sorted(parts))
    for name in df["Image Index"]:
        im = Image.open(root / "images" / name)
        assert im.mode == "L" and im.size == (1024, 1024)  # the release's frame, any image_size
    bb = pd.read_csv(root / "BBox_List_2017.csv")
    assert list(bb.columns)[:3] == ["Image Index", "Finding Label", "Bbox [x"]
    test = (root / "test_list.txt").read_text().split()
    train = (root / "train_val_list.txt").read_text().split()
    assert sorted(test + train) == sorted(df["Image Index"]) and not set(test) & set(train)
    assert not {t[:8] for t in test} & {t[:8] for t in train}


# ---------------------------------------------------------------------------- generate()


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_deterministic_across_worker_counts(tmp_path):
    a = generate(
        "mimic-cxr", tmp_path / "a", n=10, seed=3, image_size=48, workers=1, progress=False
    )
    b = generate(
        "mimic-cxr", tmp_path / "b", n=10, seed=3, image_size=48, workers=2, progress=False
    )
    ta, tb = _tree_bytes(a), _tree_bytes(b)
    assert ta.keys() == tb.keys() and len(ta) > 30
    assert [k for k in ta if ta[k] != tb[k]] == []
    c = generate(
        "mimic-cxr", tmp_path / "c", n=10, seed=4, image_size=48, workers=1, progress=False
    )
    assert gzip.decompress(_tree_bytes(c)["cxr-record-list.csv.gz"]) != gzip.decompress(
        ta["cxr-record-list.csv.gz"]
    )


def test_resumes_after_interruption(tmp_path, monkeypatch):
    import importlib

    gen = importlib.import_module("mmcxr.synth.generate")  # the module, not the function
    fresh = generate(
        "mimic-cxr-jpg", tmp_path / "fresh", n=8, seed=5, image_size=48, workers=1, progress=False
    )
    real, calls = gen.render_study, []

    def flaky(task):
        calls.append(task.study.index)
        if task.study.index == 5:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(gen, "render_study", flaky)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        generate("mimic-cxr-jpg", out, n=8, seed=5, image_size=48, workers=1, progress=False)
    assert not out.exists() and (tmp_path / ".resumed.partial" / ".progress").is_dir()
    monkeypatch.setattr(gen, "render_study", real)
    generate("mimic-cxr-jpg", out, n=8, seed=5, image_size=48, workers=1, progress=False)
    assert _tree_bytes(out) == _tree_bytes(fresh)
    assert not (tmp_path / ".resumed.partial").exists()


def test_errors_are_clear(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="full.*not empty"):
        generate("openi", tmp_path / "full", n=2, image_size=48, workers=1, progress=False)
    with pytest.raises(ValueError, match="fmt must be one of"):
        generate("padchest", tmp_path / "p", n=2)
    with pytest.raises(ValueError, match="n must be"):
        generate("openi", tmp_path / "p", n=0)


def test_cli_synth(tmp_path):
    from mmcxr.cli import main

    out = tmp_path / "cli"
    assert (
        main(
            ["synth", "chestx-ray14", str(out), "--n", "4", "--image-size", "48", "--workers", "1"]
        )
        == 0
    )
    assert (out / "Data_Entry_2017.csv").is_file() and len(list((out / "images").iterdir())) == 4
