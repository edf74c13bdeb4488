"""MIMIC-CXR (DICOM) and MIMIC-CXR-JPG trees: images, reports, and the release's CSV tables.

DICOM headers carry the tags the real release uses to say what an image is: the SOP class
(Digital X-Ray for presentation, or Computed Radiography), ViewPosition with
ViewCodeSequence, PatientOrientationCodeSequence (Erect / Recumbent), PixelSpacing, and the
display transform (WindowCenter/Width, or a VOI LUT sequence on a few). Most files are
MONOCHROME2; some are MONOCHROME1, whose stored pixels are inverted, so a loader that skips
the photometric interpretation sees a negative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from mmcxr import atomic
from mmcxr.labels import CHEXPERT_LABELS
from mmcxr.synth.cohort import ImagePlan, StudyPlan
from mmcxr.synth.writers import write_csv

#: ViewCodeSequence (SNOMED-RT codes as in DICOM CID 4010) per ViewPosition.
VIEW_CODES = {
    "PA": ("R-10214", "postero-anterior"),
    "AP": ("R-10206", "antero-posterior"),
    "LATERAL": ("R-10232", "lateral"),
    "LL": ("R-10236", "left lateral"),
}
#: PatientOrientationCodeSequence (DICOM CID 19).
ORIENTATION_CODES = {"Erect": ("F-10440", "Erect"), "Recumbent": ("F-10450", "Recumbent")}

#: Real detectors: ~0.139 mm pixels for 3056 rows; a smaller synthetic image keeps the
#: physical field of view, so the spacing scales with 3056 / rows.
FULL_ROWS, FULL_COLUMNS, FULL_SPACING_MM = 3056, 2544, 0.139


def subject_dir(subject_id: int) -> str:
    s = str(subject_id)
    return f"files/p{s[:2]}/p{s}"


def study_dir(subject_id: int, study_id: int) -> str:
    return f"{subject_dir(subject_id)}/s{study_id}"


def image_relpath(study: StudyPlan, image: ImagePlan, suffix: str) -> str:
    return f"{study_dir(study.subject_id, study.study_id)}/{image.dicom_id}{suffix}"


def report_relpath(study: StudyPlan) -> str:
    return f"{subject_dir(study.subject_id)}/s{study.study_id}.txt"


def procedure(study: StudyPlan) -> str:
    if study.portable:
        return "CHEST (PORTABLE AP)"
    return "CHEST (PA AND LAT)" if len(study.images) > 1 else "CHEST (SINGLE VIEW)"


def _code(value: str, meaning: str, scheme: str = "SRT") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def dicom_dataset(
    image: np.ndarray,
    study: StudyPlan,
    plan: ImagePlan,
    rng: np.random.Generator,
    *,
    monochrome1_rate: float,
    voi_lut_rate: float,
) -> tuple[Dataset, dict]:
    """A DICOM dataset holding ``image`` (float in [0, 1], bright = dense) and its header info."""
    rows, cols = image.shape
    cr = bool(rng.random() < 0.3)
    use_lut = bool(rng.random() < voi_lut_rate)
    bits = 12 if use_lut else int(rng.choice([12, 12, 12, 14, 15, 16]))  # LUT: 4,096 entries
    mono1 = (not use_lut) and bool(rng.random() < monochrome1_rate)
    maxval = (1 << bits) - 1
    x = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    if use_lut:
        # stored values are squared; the VOI LUT (a square root) brings the display back
        stored = np.rint(x**2 * maxval)
    else:
        stored = np.rint(x * maxval)
        if mono1:
            stored = maxval - stored
    stored = stored.astype(np.uint16)
    sop_class = ComputedRadiographyImageStorage if cr else DigitalXRayImageStorageForPresentation
    sop_uid = _uid("sop", plan.dicom_id)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = str(study.study_date)
    ds.StudyTime = f"{study.study_time:010.3f}"
    ds.AccessionNumber = ""
    ds.Modality = "CR" if cr else "DX"
    ds.Manufacturer = "SYNTHETIC"
    ds.PatientName = ""
    ds.PatientID = str(study.subject_id)
    ds.PatientSex = study.sex
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = plan.view
    ds.StudyInstanceUID = _uid("study", study.study_id)
    ds.SeriesInstanceUID = _uid("series", study.study_id, plan.view)
    ds.StudyID = str(study.study_id)
    ds.SeriesNumber = 1 + [im.dicom_id for im in study.images].index(plan.dicom_id)
    ds.InstanceNumber = 1
    lateral = plan.view in ("LATERAL", "LL")
    ds.PatientOrientation = ["P", "F"] if lateral else ["L", "F"]
    ds.PerformedProcedureStepDescription = procedure(study)
    ds.ProcedureCodeSequence = [
        _code("CXR" + ("PORT" if study.portable else "2V"), procedure(study), "L")
    ]
    code, meaning = VIEW_CODES[plan.view]
    ds.ViewCodeSequence = [_code(code, meaning)]
    ocode, omeaning = ORIENTATION_CODES[study.orientation]
    ds.PatientOrientationCodeSequence = [_code(ocode, omeaning)]
    if not cr:
        ds.PresentationIntentType = "FOR PRESENTATION"
    spacing = round(FULL_SPACING_MM * FULL_ROWS / rows, 6)
    ds.PixelSpacing = [spacing, spacing]
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.set_pixel_data(
        stored, "MONOCHROME1" if mono1 else "MONOCHROME2", bits, generate_instance_uid=False
    )
    if use_lut:
        item = Dataset()
        item.add_new(0x00283002, "US", [maxval + 1 if maxval + 1 < 65536 else 0, 0, 16])
        item.LUTExplanation = "SQRT"
        ramp = np.sqrt(np.arange(maxval + 1) / maxval) * 65535.0
        # LUTData is "US or OW": say which, or pydicom cannot encode it
        item.add_new(0x00283006, "US", np.rint(ramp).astype(np.uint16).tolist())
        ds.VOILUTSequence = [item]
    else:
        ds.WindowCenter = (maxval + 1) / 2
        ds.WindowWidth = maxval + 1
        ds.VOILUTFunction = "LINEAR"
    info = {
        "rows": rows,
        "columns": cols,
        "photometric": ds.PhotometricInterpretation,
        "bits_stored": bits,
        "voi_lut": use_lut,
        "modality": ds.Modality,
    }
    return ds, info


def write_dicom(path: Path, ds: Dataset) -> None:
    import io

    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    atomic.write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------------------------
# tables


def _split_by_patient(
    studies: list[StudyPlan], fractions: tuple[float, float, float], seed: int
) -> dict[int, str]:
    subjects = sorted({s.subject_id for s in studies})
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(5,)))
    order = rng.permutation(len(subjects))
    n_train = int(round(fractions[0] * len(subjects)))
    n_val = int(round(fractions[1] * len(subjects)))
    out = {}
    for rank, i in enumerate(order):
        out[subjects[i]] = (
            "train" if rank < n_train else "validate" if rank < n_train + n_val else "test"
        )
    return out


def write_tables(
    root: Path,
    studies: list[StudyPlan],
    labels: dict[int, dict[str, float]],
    image_info: dict[str, dict],
    *,
    dicom: bool,
    split_fractions: tuple[float, float, float],
    seed: int,
) -> dict[int, str]:
    """The release's CSV tables; returns the patient split (subject_id -> split).

    Both trees get the MIMIC-CXR-JPG tables (metadata, CheXpert and NegBio labels, split);
    the DICOM tree also gets the record and study lists of the DICOM release. The synthetic
    labels come from one labeler, so the CheXpert and NegBio files hold the same values.
    """
    records, study_rows, meta, split_rows, label_rows = [], [], [], [], []
    split_of = _split_by_patient(studies, split_fractions, seed)
    for s in studies:
        study_rows.append(
            {"subject_id": s.subject_id, "study_id": s.study_id, "path": report_relpath(s)}
        )
        lab = labels[s.study_id]
        label_rows.append(
            {
                "subject_id": s.subject_id,
                "study_id": s.study_id,
                **{k: lab[k] for k in CHEXPERT_LABELS},
            }
        )
        for im in s.images:
            info = image_info[im.dicom_id]
            records.append(
                {
                    "subject_id": s.subject_id,
                    "study_id": s.study_id,
                    "dicom_id": im.dicom_id,
                    "path": image_relpath(s, im, ".dcm"),
                }
            )
            meta.append(
                {
                    "dicom_id": im.dicom_id,
                    "subject_id": s.subject_id,
                    "study_id": s.study_id,
                    "PerformedProcedureStepDescription": procedure(s),
                    "ViewPosition": im.view,
                    "Rows": info["rows"],
                    "Columns": info["columns"],
                    "StudyDate": s.study_date,
                    "StudyTime": s.study_time,
                    "ProcedureCodeSequence_CodeMeaning": procedure(s),
                    "ViewCodeSequence_CodeMeaning": VIEW_CODES[im.view][1],
                    "PatientOrientationCodeSequence_CodeMeaning": s.orientation,
                }
            )
            split_rows.append(
                {
                    "dicom_id": im.dicom_id,
                    "study_id": s.study_id,
                    "subject_id": s.subject_id,
                    "split": split_of[s.subject_id],
                }
            )
    labels_df = pd.DataFrame(label_rows)
    written = {
        "mimic-cxr-2.0.0-metadata.csv.gz": pd.DataFrame(meta),
        "mimic-cxr-2.0.0-chexpert.csv.gz": labels_df,
        "mimic-cxr-2.0.0-negbio.csv.gz": labels_df,
        "mimic-cxr-2.0.0-split.csv.gz": pd.DataFrame(split_rows),
    }
    if dicom:
        written["cxr-record-list.csv.gz"] = pd.DataFrame(records)
        written["cxr-study-list.csv.gz"] = pd.DataFrame(study_rows)
    for name, df in written.items():
        write_csv(df, root / name)
    return split_of
