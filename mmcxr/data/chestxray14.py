"""NIH ChestX-ray14: ``Data_Entry_2017.csv``, the image folder, boxes and the official split.

The release's CSV headers are famously irregular: ``OriginalImage[Width, Height]`` and
``OriginalImagePixelSpacing[x, y]`` are written unquoted, so a CSV reader sees the columns
``OriginalImage[Width`` and ``Height]`` (and a trailing unnamed column); the box file's
``Bbox [x, y, w, h]`` likewise spreads over four columns. The loaders find these columns by
position and prefix instead of by exact name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mmcxr.data.errors import (
    DataError,
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
    "CHESTXRAY14_LABELS",
    "DATA_ENTRY",
    "load_chestxray14",
    "load_chestxray14_boxes",
    "chestxray14_image_table",
]

DATA_ENTRY = "Data_Entry_2017.csv"
BBOX_FILE = "BBox_List_2017.csv"
_REQUIRED = ["Image Index", "Finding Labels", "Patient ID", "View Position"]


def _cxr14_root(root: str | os.PathLike) -> Path:
    r = Path(root).expanduser().resolve()
    if not r.is_dir():
        raise MissingFileError(r, "ChestX-ray14 root folder not found")
    if not (r / DATA_ENTRY).is_file():
        raise FormatError(r, f"does not look like ChestX-ray14: no {DATA_ENTRY}")
    return r


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
    """``images/<name>``, else wherever under the root the name occurs (images_001/images)."""
    direct = [r / "images" / n for n in names]
    if all(p.is_file() for p in direct):
        return direct
    found = {p.name: p for p in sorted(r.rglob("*.png"))}
    return [p if p.is_file() else found.get(n) for p, n in zip(direct, names, strict=True)]


def chestxray14_image_table(root: str | os.PathLike) -> pd.DataFrame:
    """Every image of the release as ``key`` (Image Index) and ``path``."""
    df = load_chestxray14(root, check_images=False, progress=False)
    return pd.DataFrame({"key": df["image_id"], "path": df["path"]})


def load_chestxray14(
    root: str | os.PathLike,
    *,
    on_error: str = "raise",
    check_images: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per image: ids, path, view, the 14 labels as 0/1 columns, split, metadata.

    ``subject_id`` is the integer Patient ID (so patient-level splitting works as for MIMIC);
    ``split`` is ``train_val``/``test`` from the official lists when present. A ``Finding
    Labels`` entry outside the 14 names (or "No Finding" combined with a finding) is a
    :class:`~mmcxr.data.errors.LabelValueError`.
    """
    r = _cxr14_root(root)
    entry = r / DATA_ENTRY
    log = SkipLog(on_error, "load_chestxray14")
    raw = read_table(
        entry, _REQUIRED, dtype={"Image Index": str, "Finding Labels": str}, what="data entry table"
    )
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
            "sex": raw["Patient Gender"] if "Patient Gender" in raw else np.nan,
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
                    r / "images" / name, f"image listed in {DATA_ENTRY} not found"
                )
            if check_images:
                check_raster(p)
        except DataError as e:
            log.handle(e)
            ok[i] = False
    df["path"] = [str(p) if p is not None else "" for p in paths]
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


def load_chestxray14_boxes(root: str | os.PathLike) -> pd.DataFrame:
    """``BBox_List_2017.csv`` as ``image_id, label, x, y, w, h`` (pixels of the 1024 image)."""
    r = _cxr14_root(root)
    path = r / BBOX_FILE
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
    return pd.DataFrame(
        {
            "image_id": raw["Image Index"].astype(str).str.strip(),
            "label": raw["Finding Label"].astype(str).str.strip(),
            "x": box.iloc[:, 0],
            "y": box.iloc[:, 1],
            "w": box.iloc[:, 2],
            "h": box.iloc[:, 3],
        }
    )
