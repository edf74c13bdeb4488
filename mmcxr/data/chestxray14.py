"""NIH ChestX-ray14: the data entry table, the image folders, boxes and the official split.

The release has been shipped in several shapes, and the loaders read each as it is
downloaded:

- the table is ``Data_Entry_2017.csv`` (the 2017 release, and Kaggle's copy) or
  ``Data_Entry_2017_v2020.csv`` (what NIH ships since 2020; its header says ``Patient Sex``
  where the 2017 one says ``Patient Gender``). When both are present the v2020 table is read,
  with a warning, since it is the one NIH ships now;
- the images sit in ``images/`` (NIH's twelve ``images_NNN.tar.gz`` unpack there) or in
  ``images_001/images/`` ... ``images_012/images/`` (the Kaggle layout);
- the box table spells one label ``Infiltrate`` where the data entry table says
  ``Infiltration``; boxes are returned under the data entry table's name.

The CSV headers are famously irregular: ``OriginalImage[Width, Height]`` and
``OriginalImagePixelSpacing[x, y]`` are written unquoted, so a CSV reader sees the columns
``OriginalImage[Width`` and ``Height]`` (and, in the 2017 table, a trailing unnamed column);
the box file's ``Bbox [x, y, w, h]`` likewise spreads over four columns. The loaders find
these columns by position and prefix instead of by exact name.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mmcxr.data.errors import (
    DataError,
    DataWarning,
    FormatError,
    LabelValueError,
    MissingFileError,
    SchemaError,
    SkipLog,
)
from mmcxr.data.images import check_raster
from mmcxr.data.tables import read_table
from mmcxr.labels import CHESTXRAY14_LABELS

__all__ = [
    "BOX_LABEL_NAMES",
    "CHESTXRAY14_LABELS",
    "DATA_ENTRY",
    "DATA_ENTRY_V2020",
    "IMAGE_SIDE",
    "data_entry_path",
    "load_chestxray14",
    "load_chestxray14_boxes",
    "chestxray14_image_table",
]

DATA_ENTRY = "Data_Entry_2017.csv"
#: The table NIH ships since 2020 (same rows; ``Patient Sex`` instead of ``Patient Gender``).
DATA_ENTRY_V2020 = "Data_Entry_2017_v2020.csv"
BBOX_FILE = "BBox_List_2017.csv"
#: Side of the release's PNGs, and so the pixel frame of ``BBox_List_2017.csv``.
IMAGE_SIDE = 1024
#: Box-table spellings that differ from the data entry table's label names.
BOX_LABEL_NAMES = {"Infiltrate": "Infiltration"}
_REQUIRED = ["Image Index", "Finding Labels", "Patient ID", "View Position"]
_SEX_COLUMNS = ("Patient Gender", "Patient Sex")


def _cxr14_root(root: str | os.PathLike) -> Path:
    r = Path(root).expanduser().resolve()
    if not r.is_dir():
        raise MissingFileError(r, "ChestX-ray14 root folder not found")
    if not any((r / name).is_file() for name in (DATA_ENTRY_V2020, DATA_ENTRY)):
        raise FormatError(
            r, f"does not look like ChestX-ray14: no {DATA_ENTRY} (or {DATA_ENTRY_V2020})"
        )
    return r


def data_entry_path(root: str | os.PathLike) -> Path:
    """The data entry table of a ChestX-ray14 root: the v2020 table if present, else 2017's.

    NIH replaced ``Data_Entry_2017.csv`` by ``Data_Entry_2017_v2020.csv`` in 2020, while
    Kaggle's copy and older downloads carry the 2017 name; a root holding both (a re-download
    into the same folder) is read from the newer table, with a :class:`DataWarning` so the
    choice is never silent.
    """
    r = _cxr14_root(root)
    new, old = r / DATA_ENTRY_V2020, r / DATA_ENTRY
    if new.is_file() and old.is_file():
        warnings.warn(
            f"{r}: has both {DATA_ENTRY_V2020} and {DATA_ENTRY}; reading {DATA_ENTRY_V2020}"
            " (the table NIH ships now)",
            DataWarning,
            stacklevel=3,
        )
    return new if new.is_file() else old


def _split_pair(df: pd.DataFrame, prefix: str) -> tuple[pd.Series, pd.Series]:
    """The two numbers of a ``Name[a, b]`` header, whether pandas split it or not."""
    cols = list(df.columns)
    start = [i for i, c in enumerate(cols) if c.replace(" ", "").startswith(prefix)]
    if not start:
        nan = pd.Series(np.nan, index=df.index)
        return nan, nan
    i = start[0]
    if i + 1 < len(cols) and "]" not in cols[i]:  # split header: values sit in i and i+1
        return (
            pd.to_numeric(df[cols[i]], errors="coerce"),
            pd.to_numeric(df[cols[i + 1]], errors="coerce"),
        )
    parts = df[cols[i]].astype(str).str.strip("[]() ").str.split(r"[,\s]+", n=1, expand=True)
    return pd.to_numeric(parts[0], errors="coerce"), pd.to_numeric(parts[1], errors="coerce")


def _image_paths(r: Path, names: pd.Series) -> list[Path | None]:
    """Where each image is: ``images/<name>``, else the one PNG of that name under the root.

    NIH's archives unpack into ``images/``; Kaggle's copy splits the same files over
    ``images_001/images/`` ... ``images_012/images/``. Anything else under the root (a
    partial download spread over other folders) is found too. A name that occurs in more
    than one place is taken from the first path in sorted order, with a warning and a count.
    """
    direct = [r / "images" / n for n in names]
    if all(p.is_file() for p in direct):
        return direct
    found: dict[str, Path] = {}
    dupes: list[str] = []
    for p in sorted(r.rglob("*.png")):
        if p.name in found:
            dupes.append(p.name)
        else:
            found[p.name] = p
    listed = set(names)
    dupes = [d for d in dict.fromkeys(dupes) if d in listed]
    if dupes:
        warnings.warn(
            f"{r}: {len(dupes)} image name(s) occur in more than one folder (first:"
            f" {dupes[0]}); each is read from the first path in sorted order",
            DataWarning,
            stacklevel=3,
        )
    return [p if p.is_file() else found.get(n) for p, n in zip(direct, names, strict=True)]


def chestxray14_image_table(root: str | os.PathLike) -> pd.DataFrame:
    """Every image the data entry table lists, as ``key`` (Image Index) and ``path``.

    An image that is not found keeps the path where the release puts it
    (``images/<name>``), so that :func:`mmcxr.data.prepare` names the missing file (and with
    ``on_error="skip"`` records it and builds the rest) instead of this table failing first.
    """
    r = _cxr14_root(root)
    names = _read_entry(data_entry_path(r))["Image Index"].str.strip()
    paths = _image_paths(r, names)
    return pd.DataFrame(
        {
            "key": names.to_numpy(),
            "path": [
                str(p if p is not None else r / "images" / n)
                for p, n in zip(paths, names, strict=True)
            ],
        }
    )


def _read_entry(entry: Path) -> pd.DataFrame:
    """The data entry table with its required columns checked (either release's header)."""
    return read_table(
        entry, _REQUIRED, dtype={"Image Index": str, "Finding Labels": str}, what="data entry table"
    )


def load_chestxray14(
    root: str | os.PathLike,
    *,
    on_error: str = "raise",
    check_images: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per image: ids, path, view, the 14 labels as 0/1 columns, split, metadata.

    Reads ``Data_Entry_2017_v2020.csv`` or ``Data_Entry_2017.csv`` (see
    :func:`data_entry_path`) and finds the images in ``images/`` or ``images_NNN/images/``.
    ``subject_id`` is the integer Patient ID (so patient-level splitting works as for MIMIC);
    ``sex`` comes from ``Patient Gender`` (2017) or ``Patient Sex`` (v2020); ``split`` is
    ``train_val``/``test`` from the official lists when present. With ``check_images`` each
    PNG's header and end are checked and its ``height``/``width`` reported (the release's are
    1024 x 1024, the frame of the box table); otherwise those two columns are NaN. A
    ``Finding Labels`` entry outside the 14 names (or "No Finding" combined with a finding)
    is a :class:`~mmcxr.data.errors.LabelValueError`; a listed image that is missing or
    unreadable is a :class:`~mmcxr.data.errors.DataError` naming the file. With
    ``on_error="skip"`` such rows are set aside (see :func:`mmcxr.data.skipped_files`) with a
    warning giving their count.
    """
    r = _cxr14_root(root)
    entry = data_entry_path(r)
    log = SkipLog(on_error, "load_chestxray14")
    raw = _read_entry(entry)
    pid = pd.to_numeric(raw["Patient ID"], errors="coerce")
    if pid.isna().any():
        raise SchemaError(
            entry,
            f"Patient ID has a non-integer value {raw.loc[pid.isna(), 'Patient ID'].iloc[0]!r}",
        )
    known = set(CHESTXRAY14_LABELS)
    labels = np.zeros((len(raw), len(CHESTXRAY14_LABELS)), dtype=np.float64)
    keep = np.ones(len(raw), dtype=bool)
    for i, (name, text) in enumerate(zip(raw["Image Index"], raw["Finding Labels"], strict=True)):
        toks = [t.strip() for t in str(text if isinstance(text, str) else "").split("|")]
        bad = [t for t in toks if t not in known and t != "No Finding"]
        if bad or (("No Finding" in toks) and len(toks) > 1) or not toks[0]:
            what = f"has unknown label(s) {bad}" if bad else "is invalid"
            err = LabelValueError(
                entry,
                f"Image Index {name}: Finding Labels {text!r} {what} (allowed: "
                f"{CHESTXRAY14_LABELS} joined by '|', or 'No Finding' alone)",
            )
            log.handle(err)
            keep[i] = False
            continue
        for t in toks:
            if t in known:
                labels[i, CHESTXRAY14_LABELS.index(t)] = 1.0
    w, h = _split_pair(raw, "OriginalImage[Width")
    sx, sy = _split_pair(raw, "OriginalImagePixelSpacing[x")
    sex_col = next((c for c in _SEX_COLUMNS if c in raw), None)
    df = pd.DataFrame(
        {
            "subject_id": pid.astype(np.int64),
            "image_id": raw["Image Index"].str.strip(),
            "view": raw["View Position"].astype(str).str.strip(),
            "follow_up": pd.to_numeric(raw.get("Follow-up #"), errors="coerce")
            if "Follow-up #" in raw
            else np.nan,
            "age": pd.to_numeric(raw.get("Patient Age"), errors="coerce")
            if "Patient Age" in raw
            else np.nan,
            "sex": raw[sex_col] if sex_col is not None else np.nan,
            "finding_labels": raw["Finding Labels"],
            "orig_width": w,
            "orig_height": h,
            "pixel_spacing_x": sx,
            "pixel_spacing_y": sy,
        }
    )
    df["study_id"] = df["image_id"]
    df[CHESTXRAY14_LABELS] = labels
    df["No Finding"] = (labels.sum(axis=1) == 0).astype(np.float64)
    df = df.loc[keep].reset_index(drop=True)
    paths = _image_paths(r, df["image_id"])
    ok = np.ones(len(df), dtype=bool)
    size = np.full((len(df), 2), np.nan)
    for i, (name, p) in enumerate(
        tqdm(
            list(zip(df["image_id"], paths, strict=True)),
            desc="ChestX-ray14 images",
            disable=not progress,
            unit="img",
        )
    ):
        try:
            if p is None:
                raise MissingFileError(
                    r / "images" / name,
                    f"image listed in {entry.name} not found (looked in images/ and in every"
                    " folder under the root, e.g. images_001/images/)",
                )
            if check_images:
                size[i] = check_raster(p)
        except DataError as e:
            log.handle(e)
            ok[i] = False
    df["path"] = [str(p) if p is not None else "" for p in paths]
    df["height"], df["width"] = size[:, 0], size[:, 1]
    df["split"] = _official_split(r, df["image_id"])
    df = df.loc[ok].reset_index(drop=True)
    first = ["subject_id", "study_id", "image_id", "path", "view", "split"]
    return log.attach(df[first + [c for c in df.columns if c not in first]])


def _official_split(r: Path, names: pd.Series) -> pd.Series:
    out = pd.Series(np.nan, index=names.index, dtype=object)
    for fname, tag in (("train_val_list.txt", "train_val"), ("test_list.txt", "test")):
        p = r / fname
        if p.is_file():
            listed = {line.strip() for line in p.read_text().splitlines() if line.strip()}
            out[names.isin(listed).to_numpy()] = tag
    return out


def load_chestxray14_boxes(root: str | os.PathLike, *, on_error: str = "raise") -> pd.DataFrame:
    """``BBox_List_2017.csv`` as ``image_id, label, x, y, w, h``.

    ``x, y`` is the top-left corner and ``w, h`` the size, in pixels of the PNG as shipped:
    the release's images are 1024 x 1024 (:data:`IMAGE_SIDE`), and so are the synthetic
    cohort's, so the boxes of either are in that frame (``load_chestxray14(...)[["height",
    "width"]]`` gives the size of each file). ``label`` uses the data entry table's names:
    the box table's ``Infiltrate`` becomes ``Infiltration`` (:data:`BOX_LABEL_NAMES`), so
    boxes join the label columns. A label that is still not one of the 14 is a
    :class:`~mmcxr.data.errors.LabelValueError` naming the file and the row; with
    ``on_error="skip"`` such rows are set aside with a warning giving their count.
    """
    r = _cxr14_root(root)
    path = r / BBOX_FILE
    log = SkipLog(on_error, "load_chestxray14_boxes")
    raw = read_table(path, ["Image Index", "Finding Label"], what="bounding-box table")
    cols = list(raw.columns)
    after = cols[cols.index("Finding Label") + 1 :]
    if len(after) < 4:
        raise SchemaError(
            path, f"expected four box columns (x, y, w, h) after 'Finding Label', found {after}"
        )
    box = raw[after[:4]].apply(pd.to_numeric, errors="coerce")
    if box.isna().any().any():
        i = int(np.flatnonzero(box.isna().any(axis=1).to_numpy())[0])
        raise SchemaError(path, f"non-numeric box for Image Index {raw['Image Index'].iloc[i]}")
    names = raw["Image Index"].astype(str).str.strip()
    spelled = raw["Finding Label"].astype(str).str.strip()
    label = spelled.replace(BOX_LABEL_NAMES)
    keep = label.isin(CHESTXRAY14_LABELS).to_numpy()
    for i in np.flatnonzero(~keep):
        log.handle(
            LabelValueError(
                path,
                f"row {i + 2} (Image Index {names.iloc[i]}): Finding Label {spelled.iloc[i]!r}"
                f" is not a ChestX-ray14 label (allowed: {CHESTXRAY14_LABELS}, or"
                f" {sorted(BOX_LABEL_NAMES)})",
            )
        )
    out = pd.DataFrame(
        {
            "image_id": names,
            "label": label,
            "x": box.iloc[:, 0],
            "y": box.iloc[:, 1],
            "w": box.iloc[:, 2],
            "h": box.iloc[:, 3],
        }
    )
    return log.attach(out.loc[keep].reset_index(drop=True))
