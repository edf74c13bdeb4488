"""The MIMIC-CXR and MIMIC-CXR-JPG variants users meet with the real releases (issue 11).

Each test starts from the hand-built release trees of ``conftest.py`` (the release's own
layout, not the generator's output) and changes one thing the way real copies differ: an
edited split table, a DICOM without PatientOrientationCodeSequence, the other release's root,
an empty report file, the report layouts the MIT-LCP parser handles.
"""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from mmcxr.data import (
    DataWarning,
    FormatError,
    MissingFileError,
    SchemaError,
    load_mimic_cxr,
    load_mimic_cxr_jpg,
    select_pa_erect_nonportable,
)
from mmcxr.data.mimic import mimic_image_table

SPLIT = "mimic-cxr-2.0.0-split.csv.gz"
META = "mimic-cxr-2.0.0-metadata.csv.gz"
SOURCES = ["view_source", "orientation_source", "procedure_source"]


def _rewrite_gz(path: Path, fn) -> None:
    df = pd.read_csv(path, dtype={"dicom_id": str})
    path.write_bytes(gzip.compress(fn(df).to_csv(index=False).encode()))


def _load(fn, root, **kw) -> tuple[pd.DataFrame, list[str]]:
    """Load with every DataWarning recorded (their messages returned)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = fn(root, progress=False, **kw)
    return df, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def _edit_dicom(path: str | Path, fn) -> None:
    ds = pydicom.dcmread(path)
    fn(ds)
    ds.save_as(path, enforce_file_format=True)


def _report_path(root: Path, row) -> Path:
    s = str(row.subject_id)
    return root / f"files/p{s[:2]}/p{s}/s{row.study_id}.txt"


# ------------------------------------------------------------------------------ split values


@pytest.mark.parametrize("bad", ["training", "TRAIN", "val"])
@pytest.mark.parametrize("fmt", ["mimic-cxr", "mimic-cxr-jpg"])
def test_split_values_outside_the_official_three_are_a_schema_error(
    fmt, bad, mimic_tree, mimic_jpg_tree
):
    root, truth = mimic_tree if fmt == "mimic-cxr" else mimic_jpg_tree
    loader = load_mimic_cxr if fmt == "mimic-cxr" else load_mimic_cxr_jpg
    first = truth.dicom_id.iloc[0]

    def edit(d: pd.DataFrame) -> pd.DataFrame:
        d.loc[d.split == "train", "split"] = bad
        d.loc[d.dicom_id == first, "split"] = "Test "  # and a second bad value, padded
        return d

    _rewrite_gz(root / SPLIT, edit)
    n_bad = int(((truth.split == "train") & (truth.dicom_id != first)).sum())
    for mode in ("raise", "skip"):  # a whole-file problem is never skipped
        with pytest.raises(SchemaError) as err:
            loader(root, on_error=mode, progress=False)
        msg = str(err.value)
        assert msg.startswith(str(root / SPLIT))
        assert f"{bad!r} ({n_bad} rows)" in msg and "'Test' (1 row)" in msg
        assert "['train', 'validate', 'test']" in msg


def test_blank_split_value_is_a_schema_error(mimic_jpg_tree):
    root, truth = mimic_jpg_tree
    _rewrite_gz(root / SPLIT, lambda d: d.assign(split=d.split.where(d.index != 3)))
    with pytest.raises(
        SchemaError, match=r"split\.csv\.gz: split values outside .*blank \(1 row\)"
    ):
        load_mimic_cxr_jpg(root, progress=False)


def test_padded_official_values_are_accepted(mimic_jpg_tree):
    root, truth = mimic_jpg_tree
    _rewrite_gz(root / SPLIT, lambda d: d.assign(split=" " + d.split + " "))
    df, msgs = _load(load_mimic_cxr_jpg, root)
    assert not msgs and set(df.split) == set(truth.split)


def test_image_missing_from_split_table_warns_with_count(mimic_tree):
    root, truth = mimic_tree
    gone = list(truth.dicom_id.iloc[[1, 4]])
    _rewrite_gz(root / SPLIT, lambda d: d[~d.dicom_id.isin(gone)])
    df, msgs = _load(load_mimic_cxr, root)
    assert len(df) == len(truth)
    assert df.loc[df.dicom_id.isin(gone), "split"].isna().all()
    assert df.loc[~df.dicom_id.isin(gone), "split"].notna().all()
    hits = [m for m in msgs if "not in the split table" in m]
    assert len(hits) == 1 and f"2 of {len(truth)} image(s)" in hits[0] and SPLIT in hits[0]


# ------------------------------------------------------------------- view and orientation


def test_orientation_missing_from_headers_is_filled_from_metadata(mimic_tree):
    """The bug: with check_images=True the orientation came only from the header, so
    DICOMs without PatientOrientationCodeSequence lost every PA-erect film."""
    root, truth = mimic_tree
    for p in truth.path:
        _edit_dicom(p, lambda ds: delattr(ds, "PatientOrientationCodeSequence"))
    checked, msgs = _load(load_mimic_cxr, root)
    fast, fast_msgs = _load(load_mimic_cxr, root, check_images=False)
    pa_erect = (truth.view == "PA") & (truth.orientation == "Erect")
    expected = int((pa_erect & ~truth.procedure.str.contains("PORTABLE")).sum())
    assert expected > 0 and len(select_pa_erect_nonportable(checked)) == expected
    assert len(select_pa_erect_nonportable(fast)) == expected
    by_id = truth.set_index("dicom_id")
    assert (checked.orientation == by_id.loc[checked.dicom_id, "orientation"].to_numpy()).all()
    assert (checked.orientation_source == "metadata").all()
    assert (checked.view_source == "header").all()
    cols = ["dicom_id", "view", "orientation", "procedure"]
    pd.testing.assert_frame_equal(checked[cols], fast[cols])
    hits = [m for m in msgs if "lack PatientOrientationCodeSequence" in m]
    assert len(hits) == 1 and f"orientation {len(truth)} of {len(truth)}" in hits[0]
    assert not any("lack" in m for m in fast_msgs)  # no header read, nothing filled


def test_header_and_metadata_disagree_header_wins_and_says_so(mimic_tree):
    root, truth = mimic_tree
    victim = truth[truth.orientation == "Erect"].iloc[0]
    code = pydicom.Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "F-10450", "SRT", "Recumbent"
    _edit_dicom(victim.path, lambda ds: setattr(ds, "PatientOrientationCodeSequence", [code]))
    df, msgs = _load(load_mimic_cxr, root)
    row = df.set_index("dicom_id").loc[victim.dicom_id]
    assert row.orientation == "Recumbent" and row.orientation_source == "header"
    assert row.header_metadata_conflict == "orientation"
    assert (df.header_metadata_conflict != "").sum() == 1
    hits = [m for m in msgs if "disagree" in m]
    assert len(hits) == 1 and f"orientation 1 of {len(truth)}" in hits[0]
    assert victim.dicom_id in hits[0] and "header's value is kept" in hits[0]


def test_view_from_code_sequence_then_metadata(mimic_tree):
    root, truth = mimic_tree
    a, b = truth.path.iloc[0], truth.path.iloc[2]
    _edit_dicom(a, lambda ds: delattr(ds, "ViewPosition"))  # ViewCodeSequence still says it

    def strip_view(ds: pydicom.Dataset) -> None:
        del ds.ViewPosition
        del ds.ViewCodeSequence

    _edit_dicom(b, strip_view)
    df, msgs = _load(load_mimic_cxr, root)
    rows = df.set_index("path")
    assert rows.loc[a, "view"] == truth.view.iloc[0] and rows.loc[a, "view_source"] == "header"
    assert rows.loc[b, "view"] == truth.view.iloc[2] and rows.loc[b, "view_source"] == "metadata"
    assert any("lack ViewPosition/ViewCodeSequence" in m and "view 1 of" in m for m in msgs)


def test_fast_path_reads_the_header_where_the_table_is_blank(mimic_tree):
    """check_images=False trusts the metadata table only where it has a value, so both
    ways give the same answer; with neither source the field is 'missing', with a warning."""
    root, truth = mimic_tree
    ids = list(truth.dicom_id.iloc[[0, 1]])
    col = "PatientOrientationCodeSequence_CodeMeaning"

    def blank(d: pd.DataFrame) -> pd.DataFrame:
        d[col] = d[col].where(~d.dicom_id.isin(ids))
        return d

    _rewrite_gz(root / META, blank)
    fast, _ = _load(load_mimic_cxr, root, check_images=False)
    rows = fast.set_index("dicom_id")
    assert (rows.loc[ids, "orientation_source"] == "header").all()
    assert (rows.loc[ids, "orientation"] == truth.orientation.iloc[:2].to_numpy()).all()
    _edit_dicom(truth.path.iloc[0], lambda ds: delattr(ds, "PatientOrientationCodeSequence"))
    for check in (True, False):
        df, msgs = _load(load_mimic_cxr, root, check_images=check)
        row = df.set_index("dicom_id").loc[ids[0]]
        assert row.orientation == "" and row.orientation_source == "missing"
        assert any("no value in the DICOM header or the metadata table" in m for m in msgs)
        assert any(f"orientation 1 of {len(truth)}" in m for m in msgs)


def test_jpg_release_fields_come_from_metadata(mimic_jpg_tree):
    root, truth = mimic_jpg_tree
    df, msgs = _load(load_mimic_cxr_jpg, root)
    assert not msgs
    assert (df[SOURCES] == "metadata").all().all() and (df.header_metadata_conflict == "").all()


# ----------------------------------------------------------------------- the wrong release


def test_jpg_loader_on_a_dicom_root_names_the_release(mimic_tree):
    root, _ = mimic_tree  # holds the JPG tables too, as a synthetic DICOM root does
    for call in (
        lambda: load_mimic_cxr_jpg(root, progress=False),
        lambda: mimic_image_table("mimic-cxr-jpg", root),
    ):
        with pytest.raises(FormatError, match=r"this is a MIMIC-CXR \(DICOM\) root") as err:
            call()
        assert "load_mimic_cxr" in str(err.value) and ".dcm" in str(err.value)
    (root / META).unlink()  # the DICOM release as shipped: no metadata table
    with pytest.raises(FormatError, match=r"this is a MIMIC-CXR \(DICOM\) root.*record-list"):
        load_mimic_cxr_jpg(root, progress=False)


def test_dicom_loader_on_a_jpg_root_names_the_release(mimic_jpg_tree, mimic_tree):
    root, _ = mimic_jpg_tree
    with pytest.raises(FormatError, match=r"this is a MIMIC-CXR-JPG root.*no cxr-record-list"):
        load_mimic_cxr(root, progress=False)
    # a record list copied next to the JPEGs: the images' suffix tells
    dcm_root, _ = mimic_tree
    (root / "cxr-record-list.csv.gz").write_bytes(
        (dcm_root / "cxr-record-list.csv.gz").read_bytes()
    )
    # the copied list names the DICOM tree's ids; point it at this tree's images
    meta = pd.read_csv(root / META, dtype={"dicom_id": str})
    rec = meta[["subject_id", "study_id", "dicom_id"]].assign(
        path=[
            f"files/p{str(a)[:2]}/p{a}/s{b}/{d}.dcm"
            for a, b, d in zip(meta.subject_id, meta.study_id, meta.dicom_id, strict=True)
        ]
    )
    (root / "cxr-record-list.csv.gz").write_bytes(gzip.compress(rec.to_csv(index=False).encode()))
    for call in (
        lambda: load_mimic_cxr(root, progress=False),
        lambda: mimic_image_table("mimic-cxr", root),
    ):
        with pytest.raises(FormatError, match=r"this is a MIMIC-CXR-JPG root.*\.jpg files"):
            call()


def test_a_missing_jpeg_in_a_real_jpg_root_is_still_a_missing_file(mimic_jpg_tree):
    """The release check looks at the suffix of the images that exist: one lost JPEG is
    a missing file, not a wrong release."""
    root, truth = mimic_jpg_tree
    Path(truth.path.iloc[0]).unlink()
    with pytest.raises(MissingFileError, match="image file not found"):
        load_mimic_cxr_jpg(root, progress=False)


# ------------------------------------------------------------------------------- reports


def test_empty_report_file_is_flagged(mimic_tree):
    root, truth = mimic_tree
    studies = truth.drop_duplicates("study_id")
    empty, blank = studies.iloc[0], studies.iloc[3]
    _report_path(root, empty).write_text("")
    _report_path(root, blank).write_text(" \n \n")
    df, msgs = _load(load_mimic_cxr, root)
    flagged = df.study_id.isin([empty.study_id, blank.study_id])
    assert df.report_empty.dtype == bool
    assert df.report_empty[flagged].all() and not df.report_empty[~flagged].any()
    assert (df.loc[flagged, ["findings", "impression"]] == "").all().all()
    assert (df.loc[flagged, ["findings_source", "impression_source"]] == "missing").all().all()
    hits = [m for m in msgs if "empty" in m]
    assert len(hits) == 1 and f"2 of {len(studies)} report file(s) are empty" in hits[0]


def test_report_layouts_through_the_loader(mimic_jpg_tree, mimic_report):
    """A combined header, a report with neither section, an addendum on top: the sections
    the loader returns are the ones the MIT-LCP parser cuts."""
    root, truth = mimic_jpg_tree
    studies = truth.drop_duplicates("study_id").reset_index(drop=True)
    combined, neither, addendum = studies.iloc[0], studies.iloc[1], studies.iloc[2]
    _report_path(root, combined).write_text(
        mimic_report(None, "Clear lungs.", impression_header="FINDINGS AND IMPRESSION")
    )
    text = mimic_report(None, None).rstrip() + "\n \n Lungs are clear.\n \n No acute process.\n"
    _report_path(root, neither).write_text(text)
    _report_path(root, addendum).write_text(
        mimic_report("Small effusion.", "Effusion.", addendum="Discussed with Dr. ___.")
    )
    df, msgs = _load(load_mimic_cxr_jpg, root)
    assert not msgs
    rows = df.drop_duplicates("study_id").set_index("study_id")
    r = rows.loc[combined.study_id]
    assert (r.impression, r.impression_source) == ("Clear lungs.", "impression")
    assert (r.findings, r.findings_source) == ("", "missing")
    r = rows.loc[neither.study_id]
    assert r.impression == "Lungs are clear. No acute process."
    assert r.impression_source == "last_paragraph" and r.findings_source == "missing"
    r = rows.loc[addendum.study_id]
    assert (r.findings, r.impression) == ("Small effusion.", "Effusion.")
    assert r.report.startswith(" " * 33 + "FINAL ADDENDUM")
