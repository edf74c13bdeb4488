"""Shared file writing for every synthetic format: atomic, byte-reproducible, and the GT table.

Every file is written to a temporary name in its own folder and moved into place with
``os.replace``, so a reader never sees half a file. Gzip members carry no timestamp or file
name, and PNG/JPEG/DICOM encoders get fixed settings, so the same seed gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mmcxr import atomic
from mmcxr.names import CONFIG_FILE, GROUND_TRUTH_FILE
from mmcxr.synth.cohort import ImagePlan, StudyPlan
from mmcxr.synth.config import SynthConfig
from mmcxr.synth.labels import FINDING_LABELS

Box = tuple[int, int, int, int]


def csv_bytes(df: pd.DataFrame, *, compress: bool, sep: str = ",") -> bytes:
    """CSV text of ``df`` (no index; NaN as blank), gzip-compressed without a timestamp."""
    raw = df.to_csv(index=False, sep=sep, lineterminator="\n").encode("utf-8")
    return gzip.compress(raw, compresslevel=6, mtime=0) if compress else raw


def write_csv(df: pd.DataFrame, path: str | os.PathLike, *, sep: str = ",") -> Path:
    """Write ``df`` as CSV (gzip when the name ends in ``.gz``), atomically and reproducibly."""
    p = Path(path)
    return atomic.write_bytes(p, csv_bytes(df, compress=p.suffix == ".gz", sep=sep))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Rendered float image in [0, 1] to 8-bit (clipped, rounded)."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def png_bytes(image8: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image8, mode="L").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def jpeg_bytes(image8: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image8, mode="L").save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()


def box_str(box: Sequence[float] | None) -> str | float:
    """Boxes in the GT table: "x1 y1 x2 y2" (pixels of that image), blank when absent."""
    if box is None:
        return math.nan
    return " ".join(str(int(v)) for v in box)


def scale_box(box: Box, sx: float, sy: float) -> Box:
    x1, y1, x2, y2 = box
    return (int(round(x1 * sx)), int(round(y1 * sy)), int(round(x2 * sx)), int(round(y2 * sy)))


def ground_truth_rows(
    study: StudyPlan,
    image: ImagePlan,
    info: dict,
    *,
    image_key: str,
    path: str,
    config: SynthConfig,
    mimic: bool,
) -> dict:
    """One GT row: ids, view, per-label pixel truth with side/zone/severity/box, strata.

    ``image_id`` is the format's image key (dicom_id, OpenI image id, ChestX-ray14 file
    name); MIMIC trees also get a ``dicom_id`` column so the table joins the loaders' tables.
    """
    frontal = image.view in ("PA", "AP")
    row: dict = {
        "subject_id": study.subject_id,
        "study_id": study.study_id,
        "image_id": image_key,
        **({"dicom_id": image.dicom_id} if mimic else {}),
        "path": path,
        "view": image.view,
        "frontal": frontal,
        "orientation": study.orientation,
        "portable": study.portable,
        "study_order": study.study_order,
        "process": study.process,
        "rows": info.get("rows"),
        "columns": info.get("columns"),
        "spurious_marker": image.marker == "spurious",
        "spurious_label": config.spurious_label if config.spurious_label else math.nan,
        "noise_label": study.noise_label or math.nan,
        "noise_kind": study.noise_kind or math.nan,
        "report_edits": ";".join(study.report_edits) or math.nan,
    }
    ptx = [f for f in study.findings if f.label == "Pneumothorax" and f.drawn]
    row["stratum_pneumothorax_chest_tube"] = (
        float(any(f.attrs.get("chest_tube") for f in ptx)) if ptx else math.nan
    )
    lesion = [f for f in study.findings if f.label == "Lung Lesion" and f.drawn]
    row["stratum_lesion"] = (
        ("subtle" if lesion[0].severity <= config.subtle_threshold else "obvious")
        if lesion
        else math.nan
    )
    boxes = info.get("lesion_boxes", {}) if frontal else {}
    for lab in FINDING_LABELS:
        drawn = [f for f in study.findings if f.label == lab and f.drawn]
        f0 = drawn[0] if drawn else None
        status = study.status(lab)
        row[f"truth_{lab}"] = int(bool(drawn))
        row[f"reported_{lab}"] = status
        row[f"side_{lab}"] = f0.side if f0 and f0.side else math.nan
        row[f"zone_{lab}"] = f0.zone if f0 and f0.zone else math.nan
        row[f"severity_{lab}"] = round(f0.severity, 4) if f0 else math.nan
        if lab == "Support Devices":
            row[f"severity_{lab}"] = math.nan
            row["devices"] = (
                ";".join(sorted({str(f.attrs.get("device")) for f in drawn})) if drawn else math.nan
            )
        row[f"box_{lab}"] = box_str(boxes.get(lab)) if f0 is not None else math.nan
    return row


def write_ground_truth(rows: list[dict], root: Path) -> Path:
    df = pd.DataFrame(rows)
    return write_csv(df, root / GROUND_TRUTH_FILE)


def write_config(config: SynthConfig, root: Path, extra: dict) -> Path:
    import json

    payload = {"config": config.to_dict(), **extra}
    return atomic.write_text(
        root / CONFIG_FILE, json.dumps(payload, indent=2, sort_keys=True) + "\n"
    )
