"""MIMIC-CXR (DICOM + reports) and MIMIC-CXR-JPG v2.0.0 as one tidy image-level table.

Both releases share the ``files/pXX/p<subject>/s<study>/`` tree; they differ in where view
and orientation come from (DICOM headers vs ``mimic-cxr-2.0.0-metadata.csv.gz``) and in the
image suffix. Labels (CheXpert or NegBio), the official split and the metadata table ship with
the JPG release; for the DICOM release they are read from ``meta_root`` when given (users who
have both releases point it at the JPG root), else from the DICOM root itself, and a
:class:`~mmcxr.data.errors.DataWarning` says when they are absent (columns then stay blank).

What the real releases do that a loader must not take on trust, and what happens here:

- **Official split values.** ``mimic-cxr-2.0.0-split.csv.gz`` says ``train``, ``validate`` or
  ``test``. Anything else (``training``, ``TRAIN``, ``val``: an edited or foreign table) is a
  :class:`~mmcxr.data.errors.SchemaError` naming the file and the values, never a silent
  fourth split; an image the table does not list gets a blank split and a warning with the
  count.
- **View, orientation, procedure: one answer whatever is read.** The metadata table was
  made from the DICOM headers, so the header is the primary source. Reading headers
  (``check_images=True``, or no metadata table) takes each field from the header and fills
  it from the metadata table where the header lacks it; the fast path
  (``check_images=False``) takes it from the metadata table and reads a header only for an
  image the table does not list. ``view_source``, ``orientation_source`` and
  ``procedure_source`` say where each value came from (``header``, ``metadata`` or
  ``missing``); where both have a value and they differ the header's is kept, the field is
  named in ``header_metadata_conflict`` and a warning gives the counts. A DICOM without
  PatientOrientationCodeSequence therefore keeps its metadata orientation (``Erect``), and
  a PA-erect selection keeps the same films either way.
- **The wrong release.** The JPG loader pointed at a DICOM root (or the reverse) says which
  release the folder is, instead of reporting a missing ``.jpg`` (``.dcm``).
- **Empty report files.** A report file with no text is flagged: ``report_empty`` is True,
  its text fields are blank, and a warning gives the count (a chapter that needs the text
  then drops the image as a recorded step).
- **Report sections** follow the MIT-LCP parser (:mod:`mmcxr.data.sections`): a combined
  ``FINDINGS AND IMPRESSION`` header is the impression, and a findings-only report has no
  impression (``impression_source == "missing"``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from tqdm.auto import tqdm

from mmcxr.data.errors import (
    DataError,
    DataWarning,
    FormatError,
    ImageDecodeError,
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
    "OFFICIAL_SPLITS",
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

#: The values of ``split`` in the official split table, exactly (case included).
OFFICIAL_SPLITS = ("train", "validate", "test")

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
#: Fields a header or the metadata table can give; where each came from is recorded.
_SOURCED = ("view", "orientation", "procedure")
#: What the header and the metadata table call each field (for messages).
_TAG_NAMES = {
    "view": "ViewPosition/ViewCodeSequence",
    "orientation": "PatientOrientationCodeSequence",
    "procedure": "PerformedProcedureStepDescription",
}
#: How many images :func:`_check_release_kind` looks at to tell the releases apart.
_PROBE = 20

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
    "report_empty",
    "height",
    "width",
    "view_source",
    "orientation_source",
    "procedure_source",
    "header_metadata_conflict",
]


def study_relpath(subject_id: int, study_id: int) -> str:
    """``files/p10/p10000032/s50414267`` (the study's image folder)."""
    s = str(int(subject_id))
    return f"files/p{s[:2]}/p{s}/s{int(study_id)}"


def report_relpath(subject_id: int, study_id: int) -> str:
    """``files/p10/p10000032/s50414267.txt`` (one report per study)."""
    return study_relpath(subject_id, study_id) + ".txt"


def read_report(path: str | os.PathLike) -> dict[str, str | bool]:
    """Read one MIMIC-CXR report: full text, findings/impression with their sources, and
    ``report_empty`` (the file holds no text: every text field is then blank)."""
    text = text_file(path, "report")
    return {
        "report": text,
        **report_fields(parse_sections(text)),
        "report_empty": not text.strip(),
    }


def _root(root: str | os.PathLike, fmt: str) -> Path:
    """The release folder, checked for its marker table; a folder holding the *other*
    release's marker instead is named as that release, so the user picks the right loader."""
    what = {"mimic-cxr": "MIMIC-CXR", "mimic-cxr-jpg": "MIMIC-CXR-JPG"}[fmt]
    marker, other = (
        (RECORD_LIST, METADATA_FILE) if fmt == "mimic-cxr" else (METADATA_FILE, RECORD_LIST)
    )
    r = Path(root).expanduser().resolve()
    if not r.is_dir():
        raise MissingFileError(r, f"{what} root folder not found")
    if not (r / marker).is_file():
        if (r / other).is_file():
            raise FormatError(r, _wrong_release(fmt, f"it has {other} and no {marker}"))
        raise FormatError(r, f"does not look like {what}: no {marker} at its top level")
    return r


def _wrong_release(fmt: str, evidence: str) -> str:
    if fmt == "mimic-cxr-jpg":
        return (
            f"this is a MIMIC-CXR (DICOM) root, not MIMIC-CXR-JPG ({evidence}); read it "
            "with load_mimic_cxr (format 'mimic-cxr'), with meta_root= a MIMIC-CXR-JPG root "
            "for the labels and split"
        )
    return (
        f"this is a MIMIC-CXR-JPG root, not MIMIC-CXR (DICOM) ({evidence}); read it with "
        "load_mimic_cxr_jpg (format 'mimic-cxr-jpg'), with reports_root= the MIMIC-CXR root"
    )


def _check_release_kind(r: Path, paths: Sequence[str], fmt: str) -> None:
    """Raise :class:`FormatError` when the images are the other release's.

    A MIMIC-CXR-JPG root and a MIMIC-CXR root can hold the same tables (users copy the
    JPG tables next to the DICOMs, and the synthetic DICOM root has them too); what tells
    them apart is the image suffix. When none of the first images exists with the expected
    suffix but some exist with the other one, the folder is the other release.
    """
    want, other = (".dcm", ".jpg") if fmt == "mimic-cxr" else (".jpg", ".dcm")
    probe = [Path(p) for p in paths[:_PROBE]]
    if not probe or any(p.is_file() for p in probe):
        return
    twin = next((p.with_suffix(other) for p in probe if p.with_suffix(other).is_file()), None)
    if twin is not None:
        rel = twin.relative_to(r) if twin.is_relative_to(r) else twin
        raise FormatError(r, _wrong_release(fmt, f"its images are {other} files, e.g. {rel}"))


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
    rec = _ids(read_table(path, cols, dtype={"dicom_id": str}, what="record list"), path)
    if "path" not in rec.columns:
        rec["path"] = [
            f"{study_relpath(a, b)}/{d}.dcm"
            for a, b, d in zip(rec.subject_id, rec.study_id, rec.dicom_id, strict=True)
        ]
    rec["path"] = [str(r / p) for p in rec["path"]]
    return rec


def _jpg_paths(r: Path, meta: pd.DataFrame) -> list[str]:
    return [
        str(r / f"{study_relpath(a, b)}/{d}.jpg")
        for a, b, d in zip(meta.subject_id, meta.study_id, meta.dicom_id, strict=True)
    ]


def mimic_image_table(fmt: str, root: str | os.PathLike) -> pd.DataFrame:
    """Every image of a MIMIC root as ``key`` (dicom_id) and absolute ``path``, no checks.

    What :func:`mmcxr.data.prepare` caches by default; reading reports or headers is not
    needed for that. A root of the other release raises :class:`FormatError` saying so.
    """
    if fmt == "mimic-cxr":
        r = _root(root, fmt)
        rec = _record_list(r)
        keys, paths = rec["dicom_id"].to_numpy(), list(rec["path"])
    elif fmt == "mimic-cxr-jpg":
        r = _root(root, fmt)
        meta = _ids(
            read_table(
                r / METADATA_FILE, _META_COLUMNS[:3], dtype={"dicom_id": str}, what="metadata table"
            ),
            r / METADATA_FILE,
        )
        keys, paths = meta["dicom_id"].to_numpy(), _jpg_paths(r, meta)
    else:
        raise ValueError(f"not a MIMIC format: {fmt!r}")
    _check_release_kind(r, paths, fmt)
    return pd.DataFrame({"key": keys, "path": paths})


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

    View, orientation and procedure come from each DICOM header (ViewPosition or
    ViewCodeSequence, PatientOrientationCodeSequence, PerformedProcedureStepDescription),
    read with a check for damage (truncation, missing tags); a field the header lacks is
    filled from the metadata table. ``check_images=False`` reads no headers for images the
    metadata table lists (much faster on the 377k-image release) and only checks that each
    file exists; both ways give the same values, and the ``*_source`` columns say where each
    came from (module docstring). ``meta_root`` is where the ``mimic-cxr-2.0.0-*.csv.gz``
    tables (labels, split, metadata) live; default ``root``. ``on_error="skip"`` drops
    unusable images, studies whose report is missing and rows with invalid labels, listing
    them in ``df.attrs["skipped"]`` (see :func:`~mmcxr.data.skipped_files`) with a warning;
    ``"raise"`` stops at the first one.
    """
    r = _root(root, "mimic-cxr")
    log = SkipLog(on_error, "load_mimic_cxr")
    rec = _record_list(r)
    _check_release_kind(r, list(rec["path"]), "mimic-cxr")
    meta = Path(meta_root).expanduser().resolve() if meta_root is not None else r
    meta_path = meta / METADATA_FILE
    fields = _metadata_fields(meta_path) if meta_path.is_file() else None
    # the fast path trusts the table only for images it lists with every field
    complete = (
        set(fields.loc[(fields[list(_SOURCED)] != "").all(axis=1), "dicom_id"])
        if fields is not None
        else set()
    )
    header_rows: list[dict] = []
    keep = np.ones(len(rec), dtype=bool)
    desc = "DICOM headers" if check_images or fields is None else "DICOM files"
    for i, (path, dicom_id) in enumerate(
        tqdm(
            zip(rec["path"], rec["dicom_id"], strict=True),
            total=len(rec),
            desc=desc,
            disable=not progress,
            unit="img",
        )
    ):
        try:
            if check_images:
                ds = check_dicom_header(path)
            elif not Path(path).is_file():
                raise MissingFileError(path, "DICOM file not found")
            elif dicom_id in complete:
                ds = None  # the metadata table answers for it: no header read
            else:
                ds = _read_header(path)
        except DataError as e:
            log.handle(e)
            keep[i] = False
            header_rows.append({})
            continue
        header_rows.append(_header_fields(ds) if ds is not None else {})
    ids = rec[["subject_id", "study_id", "dicom_id", "path"]].reset_index(drop=True)
    header = pd.DataFrame(header_rows, columns=[*_SOURCED, "height", "width"])
    df = _combine_sources(ids[keep], header[keep], fields, meta_path, "load_mimic_cxr")
    df = _add_labels_split(df, meta, labels, log, required=False)
    df = _add_reports(df, r, log, progress, "load_mimic_cxr")
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
    and end marker (a truncated download); ``on_error`` as in :func:`load_mimic_cxr`. View,
    orientation and procedure come from the metadata table (``*_source == "metadata"``).
    """
    r = _root(root, "mimic-cxr-jpg")
    meta_path = r / METADATA_FILE
    fields = _metadata_fields(meta_path)
    paths = _jpg_paths(r, fields)
    _check_release_kind(r, paths, "mimic-cxr-jpg")
    rr = Path(reports_root).expanduser().resolve() if reports_root is not None else r
    if not (rr / "files").is_dir():
        raise MissingFileError(
            rr / "files",
            "reports folder not found (pass reports_root= the "
            "MIMIC-CXR root holding files/pXX/.../sNNN.txt)",
        )
    log = SkipLog(on_error, "load_mimic_cxr_jpg")
    keep = np.ones(len(fields), dtype=bool)
    for i, path in enumerate(tqdm(paths, desc="JPEG files", disable=not progress, unit="img")):
        try:
            if check_images:
                check_raster(path)
            elif not Path(path).is_file():
                raise MissingFileError(path, "image file not found")
        except DataError as e:
            log.handle(e)
            keep[i] = False
    ids = fields[["subject_id", "study_id", "dicom_id"]].assign(path=paths)
    df = _combine_sources(ids[keep], None, fields, meta_path, "load_mimic_cxr_jpg")
    df = _add_labels_split(df, r, labels, log, required=True)
    df = _add_reports(df, rr, log, progress, "load_mimic_cxr_jpg")
    return log.attach(_tidy(df))


def _read_header(path: str) -> pydicom.Dataset:
    """A DICOM header without pixels or integrity checks (the fast path's fallback)."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:  # pydicom raises many types on garbage headers
        raise ImageDecodeError(path, f"unreadable DICOM header ({type(e).__name__}: {e})") from None


def _metadata_fields(path: Path) -> pd.DataFrame:
    """Ids, view, orientation, procedure and size from ``mimic-cxr-2.0.0-metadata.csv.gz``.

    Text fields are ``""`` where the table is blank.
    """
    meta = _ids(
        read_table(path, _META_COLUMNS, dtype={"dicom_id": str}, what="metadata table"), path
    )
    if meta["dicom_id"].duplicated().any():
        raise SchemaError(
            path, f"duplicate dicom_id {meta.dicom_id[meta.dicom_id.duplicated()].iloc[0]}"
        )
    view = _text(meta["ViewPosition"])
    if "ViewCodeSequence_CodeMeaning" in meta.columns:
        coded = _text(meta["ViewCodeSequence_CodeMeaning"]).str.lower()
        view = view.where(view != "", coded.map(_VIEW_FROM_CODE).fillna(""))
    return pd.DataFrame(
        {
            "subject_id": meta.subject_id,
            "study_id": meta.study_id,
            "dicom_id": meta.dicom_id,
            "view": view,
            "orientation": _text(meta["PatientOrientationCodeSequence_CodeMeaning"]),
            "procedure": _text(meta["PerformedProcedureStepDescription"]),
            "height": pd.to_numeric(meta["Rows"], errors="coerce") if "Rows" in meta else np.nan,
            "width": pd.to_numeric(meta["Columns"], errors="coerce")
            if "Columns" in meta
            else np.nan,
        }
    )


def _text(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.strip()


def _header_fields(ds: pydicom.Dataset) -> dict:
    """View, orientation, procedure (``""`` where the header lacks the tag) and size."""
    view = str(ds.get("ViewPosition", "") or "").strip()
    if not view and ds.get("ViewCodeSequence"):
        view = _VIEW_FROM_CODE.get(
            str(ds.ViewCodeSequence[0].get("CodeMeaning", "")).strip().lower(), ""
        )
    orient = ""
    if ds.get("PatientOrientationCodeSequence"):
        orient = str(ds.PatientOrientationCodeSequence[0].get("CodeMeaning", "") or "").strip()
    rows, cols = ds.get("Rows"), ds.get("Columns")
    return {
        "view": view,
        "orientation": orient,
        "procedure": str(ds.get("PerformedProcedureStepDescription", "") or "").strip(),
        "height": int(rows) if rows is not None else np.nan,
        "width": int(cols) if cols is not None else np.nan,
    }


def _combine_sources(
    ids: pd.DataFrame,
    header: pd.DataFrame | None,
    fields: pd.DataFrame | None,
    meta_path: Path,
    who: str,
) -> pd.DataFrame:
    """View, orientation, procedure and size from the header, else the metadata table.

    ``header`` is aligned with ``ids`` (NaN where a header was not read, ``""`` where it was
    read and lacks the field); ``fields`` is the metadata table (or None). Adds the
    ``*_source`` columns and ``header_metadata_conflict`` (module docstring) and warns with
    counts when the header lacked a field the table filled, when the two disagree, and when
    neither has it.
    """
    ids = ids.reset_index(drop=True)
    n = len(ids)
    empty = pd.DataFrame(np.nan, index=range(n), columns=[*_SOURCED, "height", "width"])
    m = (
        ids[["dicom_id"]].merge(fields.drop(columns=["subject_id", "study_id"]), how="left")
        if fields is not None
        else empty
    )
    h = header.reset_index(drop=True) if header is not None else empty
    out = ids.copy()
    conflict = pd.Series("", index=range(n), dtype=object)
    filled: dict[str, int] = {}
    differ: dict[str, int] = {}
    blank: dict[str, int] = {}
    example = ""
    for f in _SOURCED:
        hv, mv = h[f], m[f]
        h_has = (hv.notna() & (hv.astype(str) != "")).to_numpy()
        m_has = (mv.notna() & (mv.astype(str) != "")).to_numpy()
        out[f] = pd.Series(np.where(h_has, hv, np.where(m_has, mv, "")), dtype=object)
        out[f"{f}_source"] = np.where(h_has, "header", np.where(m_has, "metadata", "missing"))
        clash = h_has & m_has & (_fold(hv) != _fold(mv)).to_numpy()
        conflict = conflict.where(~clash, conflict + np.where(conflict == "", f, "," + f))
        filled[f] = int((hv.notna().to_numpy() & ~h_has & m_has).sum())  # read, absent, filled
        differ[f] = int(clash.sum())
        blank[f] = int((~h_has & ~m_has).sum())
        if clash.any() and not example:
            i = int(np.flatnonzero(clash)[0])
            example = f"e.g. {ids['dicom_id'].iloc[i]}: {f} {hv.iloc[i]!r} vs {mv.iloc[i]!r}"
    for dim in ("height", "width"):
        out[dim] = pd.to_numeric(h[dim], errors="coerce").where(
            h[dim].notna(), pd.to_numeric(m[dim], errors="coerce")
        )
    out["header_metadata_conflict"] = conflict
    _warn_sources(who, meta_path, n, filled, differ, blank, example)
    return out


def _fold(s: pd.Series) -> pd.Series:
    return s.astype(str).str.strip().str.casefold()


def _counts(by_field: dict[str, int]) -> str:
    return ", ".join(f"{f} {k}" for f, k in by_field.items() if k)


def _warn_sources(
    who: str,
    meta_path: Path,
    n: int,
    filled: dict[str, int],
    differ: dict[str, int],
    blank: dict[str, int],
    example: str,
) -> None:
    """The three warnings of :func:`_combine_sources`, each with its counts per field."""
    if any(filled.values()):
        tags = ", ".join(_TAG_NAMES[f] for f, k in filled.items() if k)
        warnings.warn(
            f"{who}: DICOM headers lack {tags} for some images ({_counts(filled)} of {n}); "
            f"filled from {meta_path} (the *_source column says 'metadata')",
            DataWarning,
            stacklevel=4,
        )
    if any(differ.values()):
        warnings.warn(
            f"{who}: the DICOM header and {meta_path} disagree for some images "
            f"({_counts(differ)} of {n}; {example}); the header's value is kept (*_source "
            "'header', the field is listed in header_metadata_conflict)",
            DataWarning,
            stacklevel=4,
        )
    if any(blank.values()):
        warnings.warn(
            f"{who}: some images have no value in the DICOM header or the metadata table "
            f"({_counts(blank)} of {n}; *_source 'missing'); selections by view, orientation "
            "or procedure drop them",
            DataWarning,
            stacklevel=4,
        )


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
        sp = _split_table(split_path)
        df = df.merge(sp[["dicom_id", "split"]], on="dicom_id", how="left")
        unlisted = df["split"].isna()
        if unlisted.any():
            warnings.warn(
                f"{split_path}: {int(unlisted.sum())} of {len(df)} image(s) are not in the "
                f"split table (e.g. dicom_id {df.loc[unlisted, 'dicom_id'].iloc[0]}); their "
                "split is blank",
                DataWarning,
                stacklevel=3,
            )
    else:
        warnings.warn(
            f"{split_path}: no official split table; the split column is blank",
            DataWarning,
            stacklevel=3,
        )
        df["split"] = np.nan
    return df


def _split_table(path: Path) -> pd.DataFrame:
    """The official split table, its values checked against :data:`OFFICIAL_SPLITS`.

    A value outside them (``training``, ``TRAIN``, ``val``, blank) is a whole-file problem:
    a :class:`SchemaError` listing each bad value with its row count, whatever ``on_error``
    says, since a silently added fourth split would leak into every split-based count.
    """
    sp = read_table(path, ["dicom_id", "split"], dtype={"dicom_id": str}, what="split table")
    sp["dicom_id"] = sp["dicom_id"].astype(str).str.strip()
    if sp["dicom_id"].duplicated().any():
        raise SchemaError(path, "duplicate dicom_id rows")
    values = sp["split"].astype("string").str.strip()
    bad = ~values.isin(OFFICIAL_SPLITS).fillna(False).astype(bool)
    if bad.any():
        counts = values[bad].fillna("").value_counts().sort_index()
        listed = ", ".join(
            f"{repr(v) if v else 'blank'} ({k} row{'s' if k > 1 else ''})"
            for v, k in counts.items()
        )
        raise SchemaError(
            path,
            f"split values outside {list(OFFICIAL_SPLITS)}: {listed}; the official table uses "
            "exactly these three (fix the table, or map the values before loading)",
        )
    sp["split"] = values.astype(object)
    return sp


def _add_reports(
    df: pd.DataFrame, reports_root: Path, log: SkipLog, progress: bool, who: str
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
        "report_empty",
    ]
    rep = pd.DataFrame(rows, columns=cols)
    empty = rep[rep["report_empty"].astype(bool)]
    if len(empty):
        warnings.warn(
            f"{who}: {len(empty)} of {len(rep)} report file(s) are empty (e.g. "
            f"{empty['report_path'].iloc[0]}); their report, findings and impression are "
            "blank and report_empty is True",
            DataWarning,
            stacklevel=3,
        )
    return df.merge(rep, on="study_id", how="inner")


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    for c in OUTPUT_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    extra = [c for c in df.columns if c not in OUTPUT_COLUMNS]
    df = df[OUTPUT_COLUMNS + extra]
    df = df.astype(
        {
            "subject_id": np.int64,
            "study_id": np.int64,
            "report_empty": bool,
            **{c: np.float64 for c in CHEXPERT_LABELS},
        }
    )
    return df.sort_values(["subject_id", "study_id", "dicom_id"], kind="stable").reset_index(
        drop=True
    )
