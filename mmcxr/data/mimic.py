"""MIMIC-CXR (DICOM + reports) and MIMIC-CXR-JPG v2.0.0 as one tidy image-level table.

Both releases share the ``files/pXX/p<subject>/s<study>/`` tree; they differ in where view
and orientation come from (DICOM headers vs ``mimic-cxr-2.0.0-metadata.csv.gz``) and in the
image suffix. Labels (CheXpert or NegBio), the official split and the metadata table ship with
the JPG release; for the DICOM release they are read from ``meta_root`` when given (users who
have both releases point it at the JPG root), else from the DICOM root itself, and a
:class:`~mmcxr.data.errors.DataWarning` says when they are absent (columns then stay blank).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from tqdm.auto import tqdm

from mmcxr.data.errors import (
    DataError,
    DataWarning,
    FormatError,
    MissingFileError,
    SchemaError,
    SkipLog,
)
from mmcxr.data.images import check_dicom_header, check_raster
from mmcxr.data.sections import parse_sections, report_fields
from mmcxr.data.tables import bad_label_rows, label_error, read_table, text_file
from mmcxr.labels import CHEXPERT_LABELS

__all__ = [
    "CHEXPERT_FILE",
    "METADATA_FILE",
    "NEGBIO_FILE",
    "RECORD_LIST",
    "SPLIT_FILE",
    "STUDY_LIST",
    "load_mimic_cxr",
    "load_mimic_cxr_jpg",
    "mimic_image_table",
    "read_report",
    "report_relpath",
    "study_relpath",
]

RECORD_LIST = "cxr-record-list.csv.gz"
STUDY_LIST = "cxr-study-list.csv.gz"
METADATA_FILE = "mimic-cxr-2.0.0-metadata.csv.gz"
CHEXPERT_FILE = "mimic-cxr-2.0.0-chexpert.csv.gz"
NEGBIO_FILE = "mimic-cxr-2.0.0-negbio.csv.gz"
SPLIT_FILE = "mimic-cxr-2.0.0-split.csv.gz"

_META_COLUMNS = [
    "dicom_id",
    "subject_id",
    "study_id",
    "ViewPosition",
    "PerformedProcedureStepDescription",
    "PatientOrientationCodeSequence_CodeMeaning",
]
_VIEW_FROM_CODE = {
    "postero-anterior": "PA",
    "antero-posterior": "AP",
    "lateral": "LATERAL",
    "left lateral": "LL",
    "right lateral": "RL",
}
OUTPUT_COLUMNS = [
    "subject_id",
    "study_id",
    "dicom_id",
    "path",
    "view",
    "orientation",
    "procedure",
    "split",
    *CHEXPERT_LABELS,
    "report_path",
    "findings",
    "impression",
    "report",
    "findings_source",
    "impression_source",
    "height",
    "width",
]


def study_relpath(subject_id: int, study_id: int) -> str:
    """``files/p10/p10000032/s50414267`` (the study's image folder)."""
    s = str(int(subject_id))
    return f"files/p{s[:2]}/p{s}/s{int(study_id)}"


def report_relpath(subject_id: int, study_id: int) -> str:
    """``files/p10/p10000032/s50414267.txt`` (one report per study)."""
    return study_relpath(subject_id, study_id) + ".txt"


def read_report(path: str | os.PathLike) -> dict[str, str]:
    """Read one MIMIC-CXR report: full text plus findings/impression with their sources."""
    text = text_file(path, "report")
    return {"report": text, **report_fields(parse_sections(text))}


def _root(root: str | os.PathLike, marker: str, what: str) -> Path:
    r = Path(root).expanduser().resolve()
    if not r.is_dir():
        raise MissingFileError(r, f"{what} root folder not found")
    if not (r / marker).is_file():
        raise FormatError(r, f"does not look like {what}: no {marker} at its top level")
    return r


def _ids(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    df = df.copy()
    for col in ("subject_id", "study_id"):
        if col in df.columns:
            num = pd.to_numeric(df[col], errors="coerce")
            if num.isna().any():
                bad = df.loc[num.isna(), col].iloc[0]
                raise SchemaError(path, f"column {col} has a non-integer value {bad!r}")
            df[col] = num.astype(np.int64)
    if "dicom_id" in df.columns:
        df["dicom_id"] = df["dicom_id"].astype(str).str.strip()
    return df


def _record_list(r: Path) -> pd.DataFrame:
    path = r / RECORD_LIST
    cols = ["subject_id", "study_id", "dicom_id"]
    return _ids(read_table(path, cols, dtype={"dicom_id": str}, what="record list"), path)


def mimic_image_table(fmt: str, root: str | os.PathLike) -> pd.DataFrame:
    """Every image of a MIMIC root as ``key`` (dicom_id) and absolute ``path``, no checks.

    What :func:`mmcxr.data.prepare` caches by default; reading reports or headers is not
    needed for that.
    """
    if fmt == "mimic-cxr":
        r = _root(root, RECORD_LIST, "MIMIC-CXR")
        rec = _record_list(r)
        rel = (
            rec["path"]
            if "path" in rec.columns
            else [
                f"{study_relpath(a, b)}/{d}.dcm"
                for a, b, d in zip(rec.subject_id, rec.study_id, rec.dicom_id, strict=True)
            ]
        )
    elif fmt == "mimic-cxr-jpg":
        r = _root(root, METADATA_FILE, "MIMIC-CXR-JPG")
        rec = _ids(
            read_table(
                r / METADATA_FILE, _META_COLUMNS[:3], dtype={"dicom_id": str}, what="metadata table"
            ),
            r / METADATA_FILE,
        )
        rel = [
            f"{study_relpath(a, b)}/{d}.jpg"
            for a, b, d in zip(rec.subject_id, rec.study_id, rec.dicom_id, strict=True)
        ]
    else:
        raise ValueError(f"not a MIMIC format: {fmt!r}")
    return pd.DataFrame({"key": rec["dicom_id"].to_numpy(), "path": [str(r / p) for p in rel]})


def load_mimic_cxr(
    root: str | os.PathLike,
    *,
    meta_root: str | os.PathLike | None = None,
    labels: str = "chexpert",
    on_error: str = "raise",
    check_images: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """MIMIC-CXR (DICOM release): one row per image, with labels, split and report sections.

    View, orientation and procedure come from each DICOM header (ViewPosition,
    PatientOrientationCodeSequence, PerformedProcedureStepDescription), read with a check for
    damage (truncation, missing tags). ``check_images=False`` skips both when the metadata
    table is available (much faster on the 377k-image release) and only checks that each
    file exists. ``meta_root`` is where the ``mimic-cxr-2.0.0-*.csv.gz`` tables (labels,
    split, metadata) live; default ``root``. ``on_error="skip"`` drops unusable images, studies
    whose report is missing and rows with invalid labels, listing them in
    ``df.attrs["skipped"]`` (see :func:`~mmcxr.data.skipped_files`) with a warning; ``"raise"`` stops at the first one.
    """
    r = _root(root, RECORD_LIST, "MIMIC-CXR")
    log = SkipLog(on_error, "load_mimic_cxr")
    rec = _record_list(r)
    if "path" not in rec.columns:
        rec["path"] = [
            f"{study_relpath(a, b)}/{d}.dcm"
            for a, b, d in zip(rec.subject_id, rec.study_id, rec.dicom_id, strict=True)
        ]
    rec["path"] = [str(r / p) for p in rec["path"]]
    meta = Path(meta_root).expanduser().resolve() if meta_root is not None else r
    ids = rec[["subject_id", "study_id", "dicom_id", "path"]]
    if not check_images and (meta / METADATA_FILE).is_file():
        # trust the metadata table for view/orientation (no header reads): much faster
        fields = _metadata_fields(meta / METADATA_FILE)
        df = ids.merge(fields.drop(columns=["subject_id", "study_id"]), on="dicom_id", how="left")
        keep = np.ones(len(df), dtype=bool)
        for i, path in enumerate(
            tqdm(df["path"], desc="DICOM files", disable=not progress, unit="img")
        ):
            if not Path(path).is_file():
                log.handle(MissingFileError(path, "DICOM file not found"))
                keep[i] = False
    else:
        header_rows, keep = [], []
        for path in tqdm(rec["path"], desc="DICOM headers", disable=not progress, unit="img"):
            try:
                if check_images:
                    ds = check_dicom_header(path)
                else:
                    if not Path(path).is_file():
                        raise MissingFileError(path, "DICOM file not found")
                    ds = pydicom.dcmread(path, stop_before_pixels=True)
            except DataError as e:
                log.handle(e)
                keep.append(False)
                header_rows.append({})
                continue
            keep.append(True)
            header_rows.append(_header_fields(ds))
        df = pd.concat([ids, pd.DataFrame(header_rows, index=rec.index)], axis=1)
    df = df.loc[np.asarray(keep, dtype=bool)]
    df = _add_labels_split(df, meta, labels, log, required=False)
    df = _add_reports(df, r, log, progress)
    return log.attach(_tidy(df))


def load_mimic_cxr_jpg(
    root: str | os.PathLike,
    reports_root: str | os.PathLike | None = None,
    *,
    labels: str = "chexpert",
    on_error: str = "raise",
    check_images: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """MIMIC-CXR-JPG v2.0.0 joined with the MIMIC-CXR reports (by study), one row per image.

    ``reports_root`` is where the reports' ``files/`` tree lives (default: ``root``, as when
    both releases are unzipped into one folder). ``check_images`` verifies each JPEG's header
    and end marker (a truncated download); ``on_error`` as in :func:`load_mimic_cxr`.
    """
    r = _root(root, METADATA_FILE, "MIMIC-CXR-JPG")
    rr = Path(reports_root).expanduser().resolve() if reports_root is not None else r
    if not (rr / "files").is_dir():
        raise MissingFileError(
            rr / "files",
            "reports folder not found (pass reports_root= the "
            "MIMIC-CXR root holding files/pXX/.../sNNN.txt)",
        )
    log = SkipLog(on_error, "load_mimic_cxr_jpg")
    df = _metadata_fields(r / METADATA_FILE)
    df.insert(
        3,
        "path",
        [
            str(r / f"{study_relpath(a, b)}/{d}.jpg")
            for a, b, d in zip(df.subject_id, df.study_id, df.dicom_id, strict=True)
        ],
    )
    keep = np.ones(len(df), dtype=bool)
    for i, path in enumerate(tqdm(df["path"], desc="JPEG files", disable=not progress, unit="img")):
        try:
            if check_images:
                check_raster(path)
            elif not Path(path).is_file():
                raise MissingFileError(path, "image file not found")
        except DataError as e:
            log.handle(e)
            keep[i] = False
    df = df.loc[keep]
    df = _add_labels_split(df, r, labels, log, required=True)
    df = _add_reports(df, rr, log, progress)
    return log.attach(_tidy(df))


def _metadata_fields(path: Path) -> pd.DataFrame:
    """Ids, view, orientation, procedure and size from ``mimic-cxr-2.0.0-metadata.csv.gz``."""
    meta = _ids(
        read_table(path, _META_COLUMNS, dtype={"dicom_id": str}, what="metadata table"), path
    )
    if meta["dicom_id"].duplicated().any():
        raise SchemaError(
            path, f"duplicate dicom_id {meta.dicom_id[meta.dicom_id.duplicated()].iloc[0]}"
        )
    view = meta["ViewPosition"].fillna("").astype(str).str.strip()
    if "ViewCodeSequence_CodeMeaning" in meta.columns:
        coded = meta["ViewCodeSequence_CodeMeaning"].fillna("").astype(str).str.strip().str.lower()
        view = view.where(view != "", coded.map(_VIEW_FROM_CODE).fillna(""))
    return pd.DataFrame(
        {
            "subject_id": meta.subject_id,
            "study_id": meta.study_id,
            "dicom_id": meta.dicom_id,
            "view": view,
            "orientation": meta["PatientOrientationCodeSequence_CodeMeaning"]
            .fillna("")
            .astype(str),
            "procedure": meta["PerformedProcedureStepDescription"].fillna("").astype(str),
            "height": pd.to_numeric(meta["Rows"], errors="coerce") if "Rows" in meta else np.nan,
            "width": pd.to_numeric(meta["Columns"], errors="coerce")
            if "Columns" in meta
            else np.nan,
        }
    )


def _header_fields(ds) -> dict:
    view = str(ds.get("ViewPosition", "") or "").strip()
    if not view and ds.get("ViewCodeSequence"):
        view = _VIEW_FROM_CODE.get(str(ds.ViewCodeSequence[0].get("CodeMeaning", "")).lower(), "")
    orient = ""
    if ds.get("PatientOrientationCodeSequence"):
        orient = str(ds.PatientOrientationCodeSequence[0].get("CodeMeaning", "") or "")
    return {
        "view": view,
        "orientation": orient,
        "procedure": str(ds.get("PerformedProcedureStepDescription", "") or ""),
        "height": int(ds.Rows),
        "width": int(ds.Columns),
    }


def _add_labels_split(
    df: pd.DataFrame, meta: Path, labels: str, log: SkipLog, required: bool
) -> pd.DataFrame:
    files = {"chexpert": CHEXPERT_FILE, "negbio": NEGBIO_FILE}
    if labels not in files:
        raise ValueError(f"labels must be 'chexpert' or 'negbio', got {labels!r}")
    lab_path = meta / files[labels]
    if lab_path.is_file() or required:
        raw = _ids(
            read_table(
                lab_path, ["subject_id", "study_id", *CHEXPERT_LABELS], what=f"{labels} label table"
            ),
            lab_path,
        )
        if raw["study_id"].duplicated().any():
            raise SchemaError(
                lab_path, f"duplicate study_id {raw.study_id[raw.study_id.duplicated()].iloc[0]}"
            )
        lab, bad = bad_label_rows(raw, CHEXPERT_LABELS, lab_path)
        if bad.any():
            if log.on_error == "raise":
                raise label_error(raw, bad, CHEXPERT_LABELS, lab_path, "study_id")
            for sid in lab.loc[bad, "study_id"]:
                log.record(lab_path, f"study_id={sid}: label values outside {{1, 0, -1, blank}}")
            bad_studies = set(lab.loc[bad, "study_id"])
            lab = lab.loc[~bad]
            df = df.loc[~df.study_id.isin(bad_studies)]
        df = df.merge(lab[["study_id", *CHEXPERT_LABELS]], on="study_id", how="left")
    else:
        warnings.warn(
            f"{lab_path}: no {labels} label table; label columns are blank (pass "
            f"meta_root= the MIMIC-CXR-JPG root to use its labels)",
            DataWarning,
            stacklevel=3,
        )
        for c in CHEXPERT_LABELS:
            df[c] = np.nan
    split_path = meta / SPLIT_FILE
    if split_path.is_file():
        sp = read_table(
            split_path, ["dicom_id", "split"], dtype={"dicom_id": str}, what="split table"
        )
        sp["dicom_id"] = sp["dicom_id"].astype(str).str.strip()
        if sp["dicom_id"].duplicated().any():
            raise SchemaError(split_path, "duplicate dicom_id rows")
        df = df.merge(sp[["dicom_id", "split"]], on="dicom_id", how="left")
    else:
        warnings.warn(
            f"{split_path}: no official split table; the split column is blank",
            DataWarning,
            stacklevel=3,
        )
        df["split"] = np.nan
    return df


def _add_reports(
    df: pd.DataFrame, reports_root: Path, log: SkipLog, progress: bool
) -> pd.DataFrame:
    studies = df[["subject_id", "study_id"]].drop_duplicates()
    rows = []
    for sub, st in tqdm(
        studies.itertuples(index=False),
        total=len(studies),
        desc="reports",
        disable=not progress,
        unit="study",
    ):
        path = reports_root / report_relpath(sub, st)
        try:
            rows.append({"study_id": st, "report_path": str(path), **read_report(path)})
        except DataError as e:
            log.handle(e)
    cols = [
        "study_id",
        "report_path",
        "report",
        "findings",
        "impression",
        "findings_source",
        "impression_source",
    ]
    rep = pd.DataFrame(rows, columns=cols)
    return df.merge(rep, on="study_id", how="inner")


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    for c in OUTPUT_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    extra = [c for c in df.columns if c not in OUTPUT_COLUMNS]
    df = df[OUTPUT_COLUMNS + extra]
    df = df.astype(
        {"subject_id": np.int64, "study_id": np.int64, **{c: np.float64 for c in CHEXPERT_LABELS}}
    )
    return df.sort_values(["subject_id", "study_id", "dicom_id"], kind="stable").reset_index(
        drop=True
    )
