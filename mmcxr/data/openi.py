"""IU X-ray / OpenI (NLMCXR): report XML files and their PNG images, one row per image.

Each ``ecgen-radiology/<n>.xml`` holds one study: four ``AbstractText`` sections
(COMPARISON, INDICATION, FINDINGS, IMPRESSION; empty ones self-closing), MeSH terms (major
``normal`` for normal studies) and one ``parentImage`` per image. The release has no view
tag; the frontal/lateral projection commonly used comes from the separately published
``indiana_projections.csv`` (``uid, filename, projection``), which is read when present
anywhere under the root. Without it ``view`` is blank and a warning says so.
"""

from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mmcxr.data.errors import (
    DataError,
    DataWarning,
    FormatError,
    MissingFileError,
    ReportError,
    SkipLog,
)
from mmcxr.data.images import check_raster
from mmcxr.data.sections import normalize_text, report_fields
from mmcxr.data.tables import read_table

__all__ = ["REPORT_DIR", "load_openi", "openi_image_table", "parse_openi_xml"]

REPORT_DIR = "ecgen-radiology"
PROJECTIONS_FILE = "indiana_projections.csv"
_SECTIONS = ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION")


def parse_openi_xml(path: str | os.PathLike) -> dict:
    """One OpenI report: uid, the four sections, MeSH terms and the images it lists."""
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except FileNotFoundError:
        raise MissingFileError(p, "report XML not found") from None
    except ET.ParseError as e:
        raise ReportError(p, f"malformed XML ({e})") from None
    uid_el = root.find("uId")
    if uid_el is None or not uid_el.get("id"):
        raise ReportError(p, "no <uId id=...> element (not an OpenI report?)")
    texts = {}
    for el in root.iter("AbstractText"):
        label = (el.get("Label") or "").strip().upper()
        if label in _SECTIONS:
            texts[label] = normalize_text("".join(el.itertext()))
    absent = [s for s in ("FINDINGS", "IMPRESSION") if s not in texts]
    if absent:
        raise ReportError(p, f"no AbstractText Label={'/'.join(absent)} element")
    mesh = root.find("MeSH")
    major = (
        [normalize_text(e.text or "") for e in mesh.findall("major")] if mesh is not None else []
    )
    automatic = (
        [normalize_text(e.text or "") for e in mesh.findall("automatic")]
        if mesh is not None
        else []
    )
    images = []
    for im in root.iter("parentImage"):
        cap = im.find("caption")
        images.append(
            {
                "image_id": im.get("id", "").strip(),
                "caption": normalize_text(cap.text or "") if cap is not None else "",
            }
        )
    sections = {
        "findings": texts["FINDINGS"],
        "impression": texts["IMPRESSION"],
        "last_paragraph": texts["IMPRESSION"] or texts["FINDINGS"],
    }
    report = "\n".join(f"{s}: {texts.get(s, '')}" for s in _SECTIONS)
    return {
        "uid": uid_el.get("id").strip(),
        "comparison": texts.get("COMPARISON", ""),
        "indication": texts.get("INDICATION", ""),
        **report_fields(sections),
        "report": report,
        "mesh_major": "; ".join(major),
        "mesh_automatic": "; ".join(automatic),
        "normal": len(major) > 0 and all(m.lower() == "normal" for m in major),
        "images": images,
    }


def _openi_root(root: str | os.PathLike) -> Path:
    r = Path(root).expanduser().resolve()
    if not r.is_dir():
        raise MissingFileError(r, "OpenI root folder not found")
    if not (r / REPORT_DIR).is_dir():
        raise FormatError(r, f"does not look like OpenI: no {REPORT_DIR}/ folder")
    return r


def _png_index(r: Path) -> dict[str, Path]:
    """Image id -> PNG path, wherever the PNGs were unpacked under the root."""
    return {p.stem: p for p in sorted(r.rglob("*.png"))}


def _xml_files(r: Path) -> list[Path]:
    def order(p: Path) -> tuple[int, str]:
        return (int(p.stem), p.name) if p.stem.isdigit() else (1 << 62, p.name)

    files = sorted((r / REPORT_DIR).glob("*.xml"), key=order)
    if not files:
        raise FormatError(r / REPORT_DIR, "no report .xml files")
    return files


def openi_image_table(root: str | os.PathLike) -> pd.DataFrame:
    """Every PNG referenced by an OpenI report, as ``key`` (image id) and ``path``."""
    df = load_openi(root, on_error="raise", check_images=False, progress=False)
    return pd.DataFrame({"key": df["image_id"], "path": df["path"]})


def load_openi(
    root: str | os.PathLike,
    *,
    on_error: str = "raise",
    check_images: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """OpenI as one row per image: ids, path, view, report sections, MeSH, ``normal``.

    ``subject_id`` and ``study_id`` are the report uid (``CXR1``): IU X-ray has one study per
    patient, and the shared names let the cohort helpers work on every dataset. Unusable
    reports or images are raised or skipped and listed (``on_error``).
    """
    r = _openi_root(root)
    log = SkipLog(on_error, "load_openi")
    pngs = _png_index(r)
    rows = []
    for xml in tqdm(_xml_files(r), desc="OpenI reports", disable=not progress, unit="report"):
        try:
            rep = parse_openi_xml(xml)
        except DataError as e:
            log.handle(e)
            continue
        images = rep.pop("images")
        for im in images:
            path = pngs.get(im["image_id"])
            try:
                if path is None:
                    raise MissingFileError(
                        r / f"{im['image_id']}.png",
                        f"image listed in {xml.name} not found under {r}",
                    )
                if check_images:
                    check_raster(path)
            except DataError as e:
                log.handle(e)
                continue
            rows.append(
                {
                    **rep,
                    "image_id": im["image_id"],
                    "caption": im["caption"],
                    "path": str(path),
                    "report_path": str(xml),
                }
            )
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=["uid", "image_id", "path", "report_path"])
    df["subject_id"] = df["uid"]
    df["study_id"] = df["uid"]
    df["view"] = _projections(r, df)
    first = [
        "subject_id",
        "study_id",
        "uid",
        "image_id",
        "path",
        "view",
        "findings",
        "impression",
        "report",
        "report_path",
    ]
    df = df[first + [c for c in df.columns if c not in first]].reset_index(drop=True)
    return log.attach(df)


def _projections(r: Path, df: pd.DataFrame) -> pd.Series:
    found = sorted(r.rglob(PROJECTIONS_FILE))
    if not found:
        warnings.warn(
            f"{r}: no {PROJECTIONS_FILE}; OpenI has no view tag, so the view column "
            f"is blank (frontal_only() needs it)",
            DataWarning,
            stacklevel=3,
        )
        return pd.Series(np.nan, index=df.index, dtype=object)
    proj = read_table(found[0], ["filename", "projection"], what="projection table")

    # the Kaggle table names images "1_IM-0001-4001.dcm.png" for OpenI's "CXR1_1_IM-0001-4001"
    def key(s: pd.Series) -> pd.Series:
        return (
            s.astype(str)
            .str.replace(r"(\.dcm)?\.png$", "", regex=True)
            .str.replace(r"^CXR", "", regex=True)
        )

    view = dict(zip(key(proj["filename"]), proj["projection"].astype(str).str.strip(), strict=True))
    return key(df["image_id"]).map(view)
