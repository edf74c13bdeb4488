"""Shared fixtures. Data-layer fixtures write tiny release trees (a few studies, 40-pixel
images) in the real on-disk formats, with known content, so loaders can be checked against
what was planted without the synthetic generator."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from mmcxr.labels import CHEXPERT_LABELS

CHEXPERT = CHEXPERT_LABELS  # the release's column order


def _code(meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "X", "SRT", meaning
    return item


def write_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits: int = 12,
    window: tuple[float, float] | None = None,
    voi_lut: list[int] | None = None,
    rescale: tuple[float, float] | None = None,
    view: str = "PA",
    orientation: str = "Erect",
    procedure: str = "CHEST (PA AND LAT)",
    compress: bool = False,
    lut_vr: str = "US",
) -> Path:
    """A minimal DX DICOM holding ``stored`` (uint16) with the given display tags."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.ViewPosition = view
    ds.ViewCodeSequence = [
        _code({"PA": "postero-anterior", "AP": "antero-posterior"}.get(view, "lateral"))
    ]
    ds.PatientOrientationCodeSequence = [_code(orientation)]
    ds.PerformedProcedureStepDescription = procedure
    ds.set_pixel_data(
        np.asarray(stored, dtype=np.uint16), photometric, bits, generate_instance_uid=False
    )
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        item = Dataset()
        item.LUTDescriptor = [len(voi_lut), 0, 16]
        if lut_vr == "OW":
            item.add_new(0x00283006, "OW", np.asarray(voi_lut, dtype="<u2").tobytes())
        else:
            item.add_new(0x00283006, "US", [int(v) for v in voi_lut])
        ds.VOILUTSequence = [item]
    if compress:
        ds.compress(RLELossless)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def planted_image(rows: int, cols: int, seed: int) -> np.ndarray:
    """A float [0, 1] test image: a horizontal ramp plus a bright square whose place is seeded."""
    rng = np.random.default_rng(seed)
    img = np.tile(np.linspace(0.1, 0.6, cols, dtype=np.float32), (rows, 1))
    y, x = rng.integers(2, rows - 10), rng.integers(2, cols - 10)
    img[y : y + 8, x : x + 8] = 0.95
    return img


def report_text(
    findings: str | None,
    impression: str | None,
    *,
    addendum: str | None = None,
    impression_header: str = "IMPRESSION",
) -> str:
    """A report in the release's layout: centred ``FINAL REPORT``, every line starting with
    one space (blank lines are a single space), headers as `` NAME:`` lines; an addendum, when
    given, on top (``FINAL ADDENDUM``, ``ADDENDUM:``, a line of underscores)."""
    lines = []
    if addendum is not None:
        lines += [
            " " * 33 + "FINAL ADDENDUM",
            " ADDENDUM:",
            " ",
            f" {addendum}",
            " ",
            " " + "_" * 78,
        ]
    lines += [
        " " * 33 + "FINAL REPORT",
        " EXAMINATION:  CHEST (PA AND LAT)",
        " ",
        " INDICATION:  ___ year old woman with cough",
        " ",
        " TECHNIQUE:  Chest PA and lateral",
        " ",
        " COMPARISON:  ___",
        " ",
    ]
    if findings is not None:
        lines += [" FINDINGS:", " ", f" {findings}", " "]
    if impression is not None:
        lines += [f" {impression_header}:", " ", f" {impression}", " "]
    return "\n".join(lines) + "\n"


def _gz_csv(df: pd.DataFrame, path: Path) -> None:
    path.write_bytes(gzip.compress(df.to_csv(index=False).encode()))


_VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral"}


def build_mimic_tree(
    root: Path,
    fmt: str = "mimic-cxr",
    *,
    n_subjects: int = 5,
    rows: int = 40,
    cols: int = 32,
    seed: int = 0,
) -> pd.DataFrame:
    """A tiny MIMIC-CXR (DICOM) or MIMIC-CXR-JPG tree; returns the planted truth, one row per
    image (ids, view, orientation, procedure, split, labels, findings/impression, image).

    As the releases ship them: reports with one-space blank lines, one of them with an
    addendum on top; some without FINDINGS, some without IMPRESSION (``impression`` None in
    the truth: the loader then reports it missing); the DICOM tree with the record and study
    lists; the metadata, CheXpert and split tables beside either.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    truth, records, studies, meta, label_rows, split_rows = [], [], [], [], [], []
    study = 50000000
    for i in range(n_subjects):
        subject = 10000001 + i * 7
        split = ["train", "validate", "test"][i % 3]
        for k in range(1 + i % 2):
            study += 13
            portable = (i + k) % 3 == 2
            views = ["AP"] if portable else ["PA", "LATERAL"]
            orientation = "Recumbent" if portable and k else "Erect"
            proc = "CHEST (PORTABLE AP)" if portable else "CHEST (PA AND LAT)"
            labels = {c: rng.choice([1.0, 0.0, -1.0, np.nan]) for c in CHEXPERT}
            labels["No Finding"] = 1.0 if i % 2 else np.nan
            labels["Pneumonia"] = np.nan if i % 2 else 1.0
            findings = None if (i + k) % 4 == 3 else f"Lungs are clear in study {study}."
            impression = None if (i + k) % 5 == 4 else f"No acute process {study}."
            addendum = "Findings discussed with Dr. ___ at ___." if (i, k) == (1, 1) else None
            sdir = f"files/p{str(subject)[:2]}/p{subject}/s{study}"
            rep_path = root / f"{sdir}.txt"
            rep_path.parent.mkdir(parents=True, exist_ok=True)
            rep_path.write_text(report_text(findings, impression, addendum=addendum))
            label_rows.append({"subject_id": subject, "study_id": study, **labels})
            studies.append({"subject_id": subject, "study_id": study, "path": f"{sdir}.txt"})
            for j, view in enumerate(views):
                dicom_id = "-".join(f"{rng.integers(16**8):08x}" for _ in range(5))
                img = planted_image(rows, cols, seed=study * 10 + j)
                if fmt == "mimic-cxr":
                    path = root / sdir / f"{dicom_id}.dcm"
                    mono1 = j == 1
                    stored = np.rint(img * 4095).astype(np.uint16)
                    write_dicom(
                        path,
                        4095 - stored if mono1 else stored,
                        photometric="MONOCHROME1" if mono1 else "MONOCHROME2",
                        window=(2048, 4096),
                        view=view,
                        orientation=orientation,
                        procedure=proc,
                    )
                else:
                    path = root / sdir / f"{dicom_id}.jpg"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(path, quality=95)
                records.append(
                    {
                        "subject_id": subject,
                        "study_id": study,
                        "dicom_id": dicom_id,
                        "path": f"{sdir}/{dicom_id}.dcm",
                    }
                )
                meta.append(
                    {
                        "dicom_id": dicom_id,
                        "subject_id": subject,
                        "study_id": study,
                        "PerformedProcedureStepDescription": proc,
                        "ViewPosition": view,
                        "Rows": rows,
                        "Columns": cols,
                        "StudyDate": 21500101,
                        "StudyTime": 101010.0,
                        "ProcedureCodeSequence_CodeMeaning": proc,
                        "ViewCodeSequence_CodeMeaning": _VIEW_MEANING[view],
                        "PatientOrientationCodeSequence_CodeMeaning": orientation,
                    }
                )
                split_rows.append(
                    {"dicom_id": dicom_id, "study_id": study, "subject_id": subject, "split": split}
                )
                truth.append(
                    {
                        "subject_id": subject,
                        "study_id": study,
                        "dicom_id": dicom_id,
                        "path": str(path),
                        "view": view,
                        "orientation": orientation,
                        "procedure": proc,
                        "split": split,
                        **labels,
                        "findings": findings or "",
                        "impression": impression,
                        "addendum": addendum is not None,
                        "image": img,
                    }
                )
    _gz_csv(pd.DataFrame(meta), root / "mimic-cxr-2.0.0-metadata.csv.gz")
    _gz_csv(pd.DataFrame(label_rows), root / "mimic-cxr-2.0.0-chexpert.csv.gz")
    _gz_csv(pd.DataFrame(split_rows), root / "mimic-cxr-2.0.0-split.csv.gz")
    if fmt == "mimic-cxr":
        _gz_csv(pd.DataFrame(records), root / "cxr-record-list.csv.gz")
        _gz_csv(pd.DataFrame(studies), root / "cxr-study-list.csv.gz")
    return pd.DataFrame(truth)


OPENI_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
  <meta type="rr"/>
  <uId id="CXR{n}"/>
  <pmcId id="{n}"/>
  <IUXRId id="{n}"/>
  <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
    <Article PubModel="Electronic">
      <Abstract>
        <AbstractText Label="COMPARISON">None.</AbstractText>
        <AbstractText Label="INDICATION">XXXX-year-old with cough.</AbstractText>
        {findings}
        {impression}
      </Abstract>
    </Article>
  </MedlineCitation>
  <MeSH>
    <major>{major}</major>{automatic}
  </MeSH>
  {images}
</eCitation>
"""


def openi_ids(k: int) -> list[str]:
    """Report ``k``'s two image ids in the release's forms: report 1 has the ``_<k>`` infix
    (``CXR1_1_IM-0001-3001``), the others do not (``CXR2_IM-0002-1001``)."""
    if k == 1:
        return ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]
    return [f"CXR{k}_IM-{k:04d}-1001", f"CXR{k}_IM-{k:04d}-2001"]


def kaggle_name(image_id: str) -> str:
    """The Kaggle projection table's name of an XML image id: no ``CXR``, no infix, and
    ``.dcm.png`` (``CXR1_1_IM-0001-3001`` -> ``1_IM-0001-3001.dcm.png``), as in the real table."""
    uid, _, tail = image_id.removeprefix("CXR").partition("_IM-")
    return f"{uid.split('_')[0]}_IM-{tail}.dcm.png"


def build_openi_tree(root: Path, n: int = 4) -> pd.DataFrame:
    """A tiny OpenI tree (XML reports, PNGs, a projections table); returns the truth."""
    (root / "ecgen-radiology").mkdir(parents=True, exist_ok=True)
    (root / "NLMCXR_png").mkdir(exist_ok=True)
    truth, proj = [], []
    for k in range(1, n + 1):
        findings = f"The lungs are clear {k}." if k != 2 else None
        impression = f"Normal chest {k}." if k != 3 else None
        ids = openi_ids(k)
        imgs = "\n".join(
            f'<parentImage id="{i}"><figureId>F{j + 1}</figureId><caption>Xray Chest PA and '
            f'Lateral</caption><panel type="single"><url>/hadoop/{i}.jpg</url></panel>'
            f"</parentImage>"
            for j, i in enumerate(ids)
        )
        xml = OPENI_XML.format(
            n=k,
            major="normal" if k % 2 else "Opacity/lung/base/left",
            automatic="" if k % 2 else "\n    <automatic>opacity</automatic>",
            images=imgs,
            findings=f'<AbstractText Label="FINDINGS">{findings}</AbstractText>'
            if findings
            else '<AbstractText Label="FINDINGS"/>',
            impression=f'<AbstractText Label="IMPRESSION">{impression}</AbstractText>'
            if impression
            else '<AbstractText Label="IMPRESSION"/>',
        )
        (root / "ecgen-radiology" / f"{k}.xml").write_text(xml)
        for j, i in enumerate(ids):
            img = planted_image(36, 36, seed=k * 10 + j)
            Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(
                root / "NLMCXR_png" / f"{i}.png"
            )
            view = "Frontal" if j == 0 else "Lateral"
            proj.append({"uid": k, "filename": kaggle_name(i), "projection": view})
            truth.append(
                {
                    "uid": f"CXR{k}",
                    "image_id": i,
                    "view": view,
                    "findings": findings or "",
                    "impression": impression or "",
                    "normal": k % 2 == 1,
                }
            )
    pd.DataFrame(proj).to_csv(root / "indiana_projections.csv", index=False)
    return pd.DataFrame(truth)


def build_cxr14_tree(
    root: Path,
    *,
    entry: str = "Data_Entry_2017.csv",
    layout: str = "nih",
    side: int = 1024,
) -> pd.DataFrame:
    """A tiny ChestX-ray14 tree as the release ships it; returns the planted truth.

    ``entry``: ``Data_Entry_2017.csv`` (header ``Patient Gender`` and a trailing comma on
    every line, the split-column quirk) or ``Data_Entry_2017_v2020.csv`` (NIH's table since
    2020: ``Patient Sex``, no trailing comma). ``layout``: ``nih`` puts the PNGs in
    ``images/``, ``kaggle`` spreads them over ``images_001/images/`` and
    ``images_002/images/``. Images are ``side`` x ``side`` 8-bit PNGs (the release's 1024),
    and the box table gives 1024-frame boxes, one of them labelled ``Infiltrate`` as the
    release spells it.
    """
    entries = [
        ("00000001_000.png", "Cardiomegaly", 0, 1, "PA"),
        ("00000001_001.png", "Cardiomegaly|Emphysema", 1, 1, "PA"),
        ("00000002_000.png", "No Finding", 0, 2, "AP"),
        ("00000003_000.png", "Effusion|Infiltration|Pleural_Thickening", 0, 3, "PA"),
    ]
    v2020 = entry.endswith("_v2020.csv")
    end = "" if v2020 else ","
    header = (
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,"
        f"{'Patient Sex' if v2020 else 'Patient Gender'},"
        f"View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]{end}\n"
    )
    lines = [header]
    paths = []
    for k, (name, labels, fu, pid, view) in enumerate(entries):
        lines.append(
            f"{name},{labels},{fu},{pid},{50 + pid},{'MF'[pid % 2]},{view},2500,2048,"
            f"0.143,0.143{end}\n"
        )
        folder = root / "images" if layout == "nih" else root / f"images_00{1 + k // 2}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        img = planted_image(side, side, seed=pid * 10 + fu)
        Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(folder / name)
        paths.append(str((folder / name).resolve()))
    (root / entry).write_text("".join(lines))
    (root / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
        "00000001_000.png,Cardiomegaly,225.084745762712,547.019216763771,"
        "86.7796610169491,79.1864406779661\n"
        "00000003_000.png,Effusion,610.5,420.25,300,388.0\n"
        "00000003_000.png,Infiltrate,140,300.75,250.5,310\n"
    )
    (root / "train_val_list.txt").write_text(
        "00000001_000.png\n00000001_001.png\n00000002_000.png\n"
    )
    (root / "test_list.txt").write_text("00000003_000.png\n")
    truth = pd.DataFrame(entries, columns=["image_id", "labels", "follow_up", "subject_id", "view"])
    truth["sex"] = ["MF"[pid % 2] for pid in truth.subject_id]
    truth["path"] = paths
    return truth


def build_imagenome_tree(root: Path, dicom_ids: list[str]) -> None:
    """Gold box/sentence tables and one silver scene graph, ImaGenome-style."""
    gold = root / "chest-imagenome" / "gold_dataset"
    gold.mkdir(parents=True, exist_ok=True)
    rows, sents = [], []
    for d in dicom_ids:
        for name, box in (("right lung", (20, 30, 100, 180)), ("left lung", (120, 30, 200, 180))):
            rows.append(
                {
                    "image_id": f"{d}.dcm",
                    "x1": box[0],
                    "y1": box[1],
                    "x2": box[2],
                    "y2": box[3],
                    "width": box[2] - box[0],
                    "height": box[3] - box[1],
                    "bbox_name": name,
                    "annot_id": 1,
                    "original_x1": box[0] * 10,
                    "original_x2": box[2] * 10,
                    "original_y1": box[1] * 10,
                    "original_y2": box[3] * 10,
                    "original_width": 2544,
                    "original_height": 3056,
                    "annotator": "A",
                    "coord224": str(box),
                    "coord_original": "",
                }
            )
        sents.append(
            {
                "patient_id": 1,
                "study_id": 2,
                "image_id": f"{d}.dcm",
                "row_id": 1,
                "sentence": "Right lower lobe opacity.",
                "bbox": "right lung",
                "coord_original": "",
                "label_name": "lung opacity",
                "context": "yes",
                "categoryID": "anatomicalfinding",
                "relation": 1,
                "attribute": "",
                "section": "finding",
            }
        )
    pd.DataFrame(rows).to_csv(gold / "gold_bbox_coordinate_annotations_1000images.csv", index=False)
    pd.DataFrame(sents).to_csv(
        gold / "gold_object_attribute_with_coordinates.txt", sep="\t", index=False
    )
    sg = root / "chest-imagenome" / "silver_dataset" / "scene_graph"
    sg.mkdir(parents=True, exist_ok=True)
    d = dicom_ids[0]
    graph = {
        "image_id": d,
        "viewpoint": "PA",
        "patient_id": 1,
        "study_id": 2,
        "gender": "F",
        "age_decile": "50-60",
        "reason_for_exam": "cough",
        "StudyOrder": 1,
        "StudyDateTime": "2150-01-01",
        "objects": [
            {
                "object_id": f"{d}_right lung",
                "x1": 20,
                "y1": 30,
                "x2": 100,
                "y2": 180,
                "width": 80,
                "height": 150,
                "bbox_name": "right lung",
                "synsets": ["C0225706"],
                "name": "Right lung",
            }
        ],
        "attributes": [
            {
                "bbox_name": "right lung",
                "name": "Right lung",
                "object_id": f"{d}_right lung",
                "synsets": ["C0225706"],
                "attributes": [["anatomicalfinding|yes|lung opacity", "nlp|yes|abnormal"]],
                "attributes_ids": [["CL1", "CL2"]],
                "phrases": ["Right lower lobe opacity."],
                "phrase_IDs": ["p1"],
                "sections": ["finding"],
                "comparison_cues": [[]],
                "temporal_cues": [[]],
                "severity_cues": [[]],
                "texture_cues": [[]],
            }
        ],
        "relationships": [],
    }
    (sg / f"{d}_SceneGraph.json").write_text(json.dumps(graph))
    splits = root / "chest-imagenome" / "silver_dataset" / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"subject_id": [1], "study_id": [2], "dicom_id": [d], "path": ["x"], "ViewPosition": ["PA"]}
    ).to_csv(splits / "train.csv", index=False)


@pytest.fixture
def dicom_writer():
    """``write_dicom(path, stored, **tags)`` for building test DICOMs."""
    return write_dicom


@pytest.fixture
def mimic_tree(tmp_path):
    """A tiny MIMIC-CXR DICOM tree and its planted truth: ``(root, truth)``."""
    root = tmp_path / "mimic-cxr"
    return root, build_mimic_tree(root, "mimic-cxr")


@pytest.fixture
def mimic_jpg_tree(tmp_path):
    root = tmp_path / "mimic-cxr-jpg"
    return root, build_mimic_tree(root, "mimic-cxr-jpg")


@pytest.fixture
def mimic_report():
    """``report_text(findings, impression, *, addendum=, impression_header=)``: a report
    in the release's layout, for tests that write their own report variants."""
    return report_text


@pytest.fixture
def openi_tree(tmp_path):
    root = tmp_path / "openi"
    return root, build_openi_tree(root)


@pytest.fixture
def cxr14_tree(tmp_path):
    root = tmp_path / "cxr14"
    return root, build_cxr14_tree(root)


@pytest.fixture
def imagenome_tree(tmp_path):
    root = tmp_path / "mimic"
    ids = [
        "aaaaaaaa-bbbbbbbb-cccccccc-dddddddd-eeeeeeee",
        "11111111-22222222-33333333-44444444-55555555",
    ]
    build_imagenome_tree(root, ids)
    return root, ids


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests' models and tensors are tiny: intra-op threads only spin against each other
    and against the notebook kernels on a 2-core machine, slowing each step several-fold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def generate_at(fmt: str, tmp_path: Path, knob: str, values, *, n: int, seed: int) -> dict:
    """A tiny synthetic cohort of ``fmt`` per value of one ``SynthConfig`` knob (same seed),
    by value: how a test compares what a knob changes."""
    from mmcxr.synth import SynthConfig, generate

    return {
        v: generate(
            fmt,
            tmp_path / f"{knob}-{v}",
            n=n,
            seed=seed,
            image_size=48,
            workers=1,
            config=SynthConfig(**{knob: v}),
            progress=False,
        )
        for v in values
    }
