"""A Chest ImaGenome-style tree for the frontal images of a synthetic MIMIC-CXR cohort.

Silver scene graphs for every frontal image, patient-level silver splits, and a gold subset
with anatomical boxes (from the renderer, so they are exact) and sentence-to-box links with
the condition and its yes/no context. The alignment chapter scores attention maps against
these boxes, so each positive sentence is linked to the boxes that contain what was drawn.

Coordinates: ``original_*`` are pixels of the written image; the 224 space is the image
resized so its longer side is 224 and centred with padding on the shorter side (the
resize-and-pad that GLoRIA-style models apply, inferred from public code; no first-party spec).

The scene graphs are written unpacked (``silver_dataset/scene_graph/``, the default) or as
the release ships them, ``silver_dataset/scene_graph.zip`` (``scene_graphs="zip"``), so the
book can exercise the reader on either form.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmcxr import atomic
from mmcxr.synth.cohort import StudyPlan
from mmcxr.synth.labels import IMAGENOME_CONDITIONS, IMAGENOME_DEVICES
from mmcxr.synth.reports import Mention, Report, Sentence
from mmcxr.synth.write_mimic import image_relpath
from mmcxr.synth.writers import write_csv

ROOT = "chest-imagenome"
GOLD_BOXES = "gold_dataset/gold_bbox_coordinate_annotations_1000images.csv"
GOLD_SENTENCES = "gold_dataset/gold_object_attribute_with_coordinates.txt"
GOLD_MAX_IMAGES = 1000
#: How the silver scene graphs are written: one file each, or the release's zip.
SCENE_GRAPH_FORMS = ("folder", "zip")
#: Timestamp of every zip member, so that the archive's bytes depend only on its content.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

_DEVICE_BOXES = {
    "endotracheal tube": ("trachea", "carina"),
    "enteric tube": ("abdomen",),
    "central line": ("svc", "cavoatrial junction"),
    "picc": ("svc", "cavoatrial junction"),
    "pacemaker": ("cardiac silhouette",),
}


def to_224(box: tuple[int, int, int, int], rows: int, cols: int) -> tuple[int, ...]:
    scale = 224.0 / max(rows, cols)
    px, py = (224.0 - cols * scale) / 2.0, (224.0 - rows * scale) / 2.0
    x1, y1, x2, y2 = box
    return (
        int(round(x1 * scale + px)),
        int(round(y1 * scale + py)),
        int(round(x2 * scale + px)),
        int(round(y2 * scale + py)),
    )


def mention_boxes(m: Mention, available: set[str]) -> list[str]:
    """Anatomical boxes a mention refers to (present in ``available``), most specific first.

    Findings use the renderer's own :func:`~mmcxr.synth.phantom.region_for` (the boxes it
    confines the drawing to), plus the whole lung of each side; a negated mention without a
    side ("no pleural effusion") refers to both sides.
    """
    from mmcxr.synth.phantom import Finding, region_for

    sides = ["right", "left"] if m.side in (None, "bilateral") else [m.side]
    if m.label == "Support Devices":
        if m.device == "chest tube":
            names = [f"{s} lung" for s in sides]
        else:
            names = list(_DEVICE_BOXES.get(m.device or "", ()))
    else:
        central = m.label in ("Cardiomegaly", "Enlarged Cardiomediastinum")
        f = Finding(m.label, None if central else m.side, None if central else m.zone, 0.5)
        names = region_for(f) + ([] if central else [f"{s} lung" for s in sides])
        if m.label == "Enlarged Cardiomediastinum":
            names.append("upper mediastinum")
    out = [n for n in dict.fromkeys(names) if n in available]
    if not out:  # the renderer did not provide the specific box: fall back to the lungs
        out = [n for n in (f"{s} lung" for s in sides) if n in available]
    return out


def _condition(m: Mention) -> tuple[str, str]:
    if m.label == "Support Devices":
        return IMAGENOME_DEVICES.get(m.device or "", "chest tube"), "tubesandlines"
    return IMAGENOME_CONDITIONS[m.label]


def _attribute(m: Mention) -> str:
    name, cat = _condition(m)
    return f"{cat}|{m.context}|{name}"


def _age_decile(age: int) -> str:
    lo = (age // 10) * 10
    return f"{lo}-{lo + 10}"


def _linked(report: Report, available: set[str]) -> list[tuple[int, Sentence, Mention, list]]:
    out = []
    for k, s in enumerate(report.sentences):
        for m in s.mentions:
            boxes = mention_boxes(m, available)
            if boxes:
                out.append((k, s, m, boxes))
    return out


def scene_graph(
    study: StudyPlan, dicom_id: str, view: str, report: Report, info: dict, prior_dicom: str | None
) -> dict:
    rows, cols = info["rows"], info["columns"]
    boxes: dict[str, tuple[int, int, int, int]] = info["anatomy_boxes"]
    objects = []
    for name in sorted(boxes):
        objects.append(
            {
                "object_id": f"{dicom_id}_{name}",
                **_box_fields(boxes[name], rows, cols),
                "bbox_name": name,
                "synsets": [],
                "name": name.capitalize(),
            }
        )
    per_box: dict[str, dict] = {}
    relationships = []
    for k, s, m, names in _linked(report, set(boxes)):
        attrs = [_attribute(m), f"nlp|yes|{'abnormal' if m.context == 'yes' else 'normal'}"]
        for name in names:
            a = per_box.setdefault(
                name,
                {
                    "bbox_name": name,
                    "name": name.capitalize(),
                    "object_id": f"{dicom_id}_{name}",
                    "synsets": [],
                    "attributes": [],
                    "attributes_ids": [],
                    "phrases": [],
                    "phrase_IDs": [],
                    "sections": [],
                    "comparison_cues": [],
                    "temporal_cues": [],
                    "severity_cues": [],
                    "texture_cues": [],
                },
            )
            a["attributes"].append(attrs)
            a["attributes_ids"].append([])
            a["phrases"].append(s.text)
            a["phrase_IDs"].append(f"{study.study_id}|{k}")
            a["sections"].append(s.section)
            a["comparison_cues"].append([f"comparison|yes|{s.comparison}"] if s.comparison else [])
            a["temporal_cues"].append([])
            a["severity_cues"].append([])
            a["texture_cues"].append([])
            if prior_dicom and s.comparison in ("improved", "worsened", "unchanged"):
                rel = {"unchanged": "no change", "improved": "improved", "worsened": "worsened"}[
                    s.comparison
                ]
                relationships.append(
                    {
                        "relationship_id": f"{dicom_id}_{prior_dicom}_{name}_{k}",
                        "predicate": f'["comparison|yes|{rel}"]',
                        "synsets": [],
                        "relationship_names": [f"comparison|yes|{rel}"],
                        "relationship_contexts": [1.0],
                        "phrase": s.text,
                        "attributes": [attrs],
                        "bbox_name": name,
                        "subject_id": f"{dicom_id}_{name}",
                        "object_id": f"{prior_dicom}_{name}",
                    }
                )
    hh = int(study.study_time // 10_000)
    mm = int(study.study_time // 100 % 100)
    ss = int(study.study_time % 100)
    d = str(study.study_date)
    return {
        "image_id": dicom_id,
        "viewpoint": view,
        "patient_id": study.subject_id,
        "study_id": study.study_id,
        "gender": study.sex,
        "age_decile": _age_decile(study.age),
        "reason_for_exam": report.indication,
        "StudyOrder": study.study_order,
        "StudyDateTime": f"{d[:4]}-{d[4:6]}-{d[6:]} {hh:02d}:{mm:02d}:{ss:02d} UTC",
        "objects": objects,
        "attributes": [per_box[k] for k in sorted(per_box)],
        "relationships": relationships,
    }


def write_imagenome(
    root: Path,
    studies: list[StudyPlan],
    reports: dict[int, Report],
    image_info: dict[str, dict],
    split_of: dict[int, str],
    *,
    gold_fraction: float,
    seed: int,
    scene_graphs: str = "folder",
) -> dict[str, bool]:
    """Write ``root/chest-imagenome``; returns ``{dicom_id: in gold set}`` for frontal images.

    ``scene_graphs`` is ``"folder"`` (``silver_dataset/scene_graph/<dicom_id>_SceneGraph.json``)
    or ``"zip"`` (those files as members ``scene_graph/<dicom_id>_SceneGraph.json`` of
    ``silver_dataset/scene_graph.zip``, the form the release is downloaded in).
    """
    if scene_graphs not in SCENE_GRAPH_FORMS:
        raise ValueError(f"scene_graphs must be one of {SCENE_GRAPH_FORMS}, got {scene_graphs!r}")
    base = root / ROOT
    frontal = [(s, s.images[0]) for s in studies if s.images[0].view in ("PA", "AP")]
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(6,)))
    n_gold = min(GOLD_MAX_IMAGES, int(round(gold_fraction * len(frontal))))
    gold_idx = (
        set(rng.choice(len(frontal), size=n_gold, replace=False).tolist()) if n_gold else set()
    )
    last_frontal: dict[int, str] = {}
    split_rows: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    avoid, box_rows, sent_rows = [], [], []
    gold: dict[str, bool] = {}
    with _SceneGraphWriter(base / "silver_dataset", scene_graphs) as graphs:
        for i, (study, im) in enumerate(frontal):
            info = image_info[im.dicom_id]
            report = reports[study.study_id]
            prior = last_frontal.get(study.patient_index)
            graph = scene_graph(study, im.dicom_id, im.view, report, info, prior)
            graphs.add(f"{im.dicom_id}_SceneGraph.json", json.dumps(graph, indent=1) + "\n")
            last_frontal[study.patient_index] = im.dicom_id
            row = {
                "subject_id": study.subject_id,
                "study_id": study.study_id,
                "dicom_id": im.dicom_id,
                "path": image_relpath(study, im, ".dcm"),
                "ViewPosition": im.view,
            }
            gold[im.dicom_id] = i in gold_idx
            if i in gold_idx:
                avoid.append(row)
                box_rows += _gold_boxes(im.dicom_id, info)
                sent_rows += _gold_sentences(study, im.dicom_id, report, info)
            else:
                split = {"train": "train", "validate": "valid", "test": "test"}[
                    split_of[study.subject_id]
                ]
                split_rows[split].append(row)
    cols = ["subject_id", "study_id", "dicom_id", "path", "ViewPosition"]
    for name, rows in split_rows.items():
        write_csv(
            pd.DataFrame(rows, columns=cols), base / "silver_dataset" / "splits" / f"{name}.csv"
        )
    write_csv(
        pd.DataFrame(avoid, columns=cols),
        base / "silver_dataset" / "splits" / "images_to_avoid.csv",
    )
    write_csv(
        pd.DataFrame(
            box_rows,
            columns=[
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
            ],
        ),
        base / GOLD_BOXES,
    )
    write_csv(
        pd.DataFrame(
            sent_rows,
            columns=[
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
            ],
        ),
        base / GOLD_SENTENCES,
        sep="\t",
    )
    return gold


class _SceneGraphWriter:
    """Writes scene graphs into ``silver/scene_graph/`` or, one member at a time, its zip.

    The zip is built under a temporary name and renamed into place when the ``with`` block
    ends without an error (:func:`mmcxr.atomic.replacing`; deleted when it fails), so a
    reader never meets half an archive; members carry a fixed timestamp and mode so that the
    same cohort gives the same bytes.
    """

    def __init__(self, silver: Path, form: str) -> None:
        self.silver = silver
        self._stack = contextlib.ExitStack()
        self._zip: zipfile.ZipFile | None = None
        if form == "zip":
            tmp = self._stack.enter_context(
                atomic.replacing(silver / "scene_graph.zip", suffix=".zip")
            )
            self._zip = self._stack.enter_context(
                zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED)
            )

    def add(self, name: str, text: str) -> None:
        if self._zip is None:
            atomic.write_text(self.silver / "scene_graph" / name, text)
            return
        info = zipfile.ZipInfo(f"scene_graph/{name}", date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        self._zip.writestr(info, text.encode("utf-8"))

    def __enter__(self) -> _SceneGraphWriter:
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._stack.__exit__(*exc)


def _box_fields(box, rows: int, cols: int) -> dict[str, int]:
    """A box's coordinates as Chest ImaGenome spells them: 224-space and original pixels."""
    b = tuple(int(v) for v in box)
    c = to_224(b, rows, cols)
    return {
        "x1": c[0],
        "y1": c[1],
        "x2": c[2],
        "y2": c[3],
        "width": c[2] - c[0],
        "height": c[3] - c[1],
        "original_x1": b[0],
        "original_y1": b[1],
        "original_x2": b[2],
        "original_y2": b[3],
        "original_width": b[2] - b[0],
        "original_height": b[3] - b[1],
    }


def _gold_boxes(dicom_id: str, info: dict) -> list[dict]:
    rows, cols = info["rows"], info["columns"]
    out = []
    for j, name in enumerate(sorted(info["anatomy_boxes"])):
        f = _box_fields(info["anatomy_boxes"][name], rows, cols)
        c = [f[k] for k in ("x1", "y1", "x2", "y2")]
        b = [f[f"original_{k}"] for k in ("x1", "y1", "x2", "y2")]
        out.append(
            {
                "image_id": f"{dicom_id}.dcm",
                **f,
                "bbox_name": name,
                "annot_id": f"{dicom_id}|{j}",
                "annotator": "synthetic",
                "coord224": f"[{c[0]}, {c[1]}, {c[2]}, {c[3]}]",
                "coord_original": f"[{b[0]}, {b[1]}, {b[2]}, {b[3]}]",
            }
        )
    return out


def _gold_sentences(study: StudyPlan, dicom_id: str, report: Report, info: dict) -> list[dict]:
    boxes = info["anatomy_boxes"]
    out = []
    for k, s, m, names in _linked(report, set(boxes)):
        label_name, category = _condition(m)
        for name in names:
            b = tuple(int(v) for v in boxes[name])
            out.append(
                {
                    "patient_id": study.subject_id,
                    "study_id": study.study_id,
                    "image_id": f"{dicom_id}.dcm",
                    "row_id": f"{dicom_id}|{k}",
                    "sentence": s.text,
                    "bbox": name,
                    "coord_original": f"[{b[0]}, {b[1]}, {b[2]}, {b[3]}]",
                    "label_name": label_name,
                    "context": m.context,
                    "categoryID": category,
                    "relation": 1,
                    "attribute": _attribute(m),
                    "section": s.section,
                }
            )
    return out
