"""Chest ImaGenome 1.0.0: gold boxes and sentence-to-box links, silver scene graphs.

The layout is inferred from public loaders (no first-party spec was found), so the readers
require only the columns the book uses and keep every other column as it is. The gold set is
what the alignment chapter scores attention against: anatomical boxes per image (224-pixel
and original coordinates) and, per report sentence, the boxes it refers to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from mmcxr.data.errors import FormatError, MissingFileError, ReportError
from mmcxr.data.tables import read_table

__all__ = ["imagenome_root", "load_imagenome_gold", "load_imagenome_splits", "load_scene_graph"]

GOLD_BOXES = "gold_dataset/gold_bbox_coordinate_annotations_1000images.csv"
GOLD_SENTENCES = "gold_dataset/gold_object_attribute_with_coordinates.txt"
_BOX_COLUMNS = ["image_id", "bbox_name", "x1", "y1", "x2", "y2"]
_SENTENCE_COLUMNS = ["image_id", "sentence", "bbox", "label_name", "context"]


def imagenome_root(root: str | os.PathLike) -> Path:
    """The ImaGenome folder: ``root`` itself, or ``root/chest-imagenome`` (synthetic layout)."""
    r = Path(root).expanduser().resolve()
    for cand in (r, r / "chest-imagenome"):
        if (cand / "gold_dataset").is_dir() or (cand / "silver_dataset").is_dir():
            return cand
    if not r.is_dir():
        raise MissingFileError(r, "Chest ImaGenome root folder not found")
    raise FormatError(
        r,
        "does not look like Chest ImaGenome: no gold_dataset/ or "
        "silver_dataset/ (here or under chest-imagenome/)",
    )


def _dicom_id(image_id: pd.Series) -> pd.Series:
    return image_id.astype(str).str.strip().str.replace(r"\.dcm$", "", regex=True)


def load_imagenome_gold(root: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(boxes, sentences)`` of the gold set, each with a ``dicom_id`` column added.

    ``boxes``: one row per (image, anatomical box), coordinates in 224 space (``x1..y2``)
    and original pixels (``original_*``). ``sentences``: one row per (sentence, box, label)
    from the TSV, ``context`` yes/no.
    """
    r = imagenome_root(root)
    boxes = read_table(r / GOLD_BOXES, _BOX_COLUMNS, what="gold box table")
    boxes.insert(0, "dicom_id", _dicom_id(boxes["image_id"]))
    sent = read_table(r / GOLD_SENTENCES, _SENTENCE_COLUMNS, sep="\t", what="gold sentence table")
    sent.insert(0, "dicom_id", _dicom_id(sent["image_id"]))
    return boxes, sent


def load_imagenome_splits(root: str | os.PathLike) -> pd.DataFrame:
    """Silver split lists ``{train,valid,test}.csv`` concatenated with a ``split`` column."""
    r = imagenome_root(root)
    parts = []
    for name in ("train", "valid", "test"):
        p = r / "silver_dataset" / "splits" / f"{name}.csv"
        if p.is_file():
            t = read_table(p, ["dicom_id"], dtype={"dicom_id": str}, what="split list")
            parts.append(t.assign(split=name))
    if not parts:
        raise MissingFileError(r / "silver_dataset" / "splits", "no split lists found")
    return pd.concat(parts, ignore_index=True)


def load_scene_graph(path: str | os.PathLike) -> dict[str, Any]:
    """One silver scene graph as tables.

    Returns ``{"meta": dict, "objects": DataFrame, "attributes": DataFrame, "phrases":
    DataFrame, "relationships": DataFrame}``. ``phrases`` explodes the parallel per-phrase
    lists of each attribute entry into one row per (box, phrase) with its
    ``category|yes/no|label`` strings.
    """
    p = Path(path)
    try:
        g = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingFileError(p, "scene graph not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportError(p, f"not valid JSON ({e})") from None
    missing = [k for k in ("image_id", "objects", "attributes") if k not in g]
    if missing:
        raise ReportError(p, f"scene graph lacks key(s) {missing}")
    meta = {k: v for k, v in g.items() if k not in ("objects", "attributes", "relationships")}
    objects = pd.DataFrame(g["objects"])
    attributes = pd.DataFrame(g["attributes"])
    rows = []
    for a in g["attributes"]:
        phrases = a.get("phrases", [])
        for j, phrase in enumerate(phrases):
            rows.append(
                {
                    "bbox_name": a.get("bbox_name"),
                    "object_id": a.get("object_id"),
                    "phrase": phrase,
                    "phrase_id": _nth(a.get("phrase_IDs"), j),
                    "section": _nth(a.get("sections"), j),
                    "attributes": _nth(a.get("attributes"), j) or [],
                }
            )
    phrases = pd.DataFrame(
        rows, columns=["bbox_name", "object_id", "phrase", "phrase_id", "section", "attributes"]
    )
    return {
        "meta": meta,
        "objects": objects,
        "attributes": attributes,
        "phrases": phrases,
        "relationships": pd.DataFrame(g.get("relationships", [])),
    }


def _nth(values: Any, j: int) -> Any:
    return values[j] if isinstance(values, list) and j < len(values) else None
