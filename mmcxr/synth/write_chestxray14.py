"""NIH ChestX-ray14: ``images/NNNNNNNN_NNN.png``, ``Data_Entry_2017.csv``, boxes and split lists.

The release's labels were mined from reports by NLP, uncertain mentions excluded; here they
come from the synthetic report through the same labeler as the MIMIC labels (positive only),
mapped onto ChestX-ray14's names. Labels the renderer never draws (Emphysema, Fibrosis,
Hernia) never occur. Images are square like the release's 1024x1024 PNGs (the portrait render
is resized), and boxes are given in those square pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcxr import atomic
from mmcxr.synth.cohort import StudyPlan

DATA_ENTRY = "Data_Entry_2017.csv"
BBOX_FILE = "BBox_List_2017.csv"

#: CheXpert label -> ChestX-ray14 label (Lung Lesion splits into Nodule / Mass by size).
TO_CXR14 = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Pleural Effusion": "Effusion",
    "Lung Opacity": "Infiltration",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Pleural Other": "Pleural_Thickening",
}
#: The eight labels that have boxes in BBox_List_2017.csv (the box file spells "Infiltrate").
BBOX_LABELS = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Effusion": "Effusion",
    "Infiltration": "Infiltrate",
    "Mass": "Mass",
    "Nodule": "Nodule",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
}


def image_index(study: StudyPlan) -> str:
    return f"{study.patient_index + 1:08d}_{study.study_order - 1:03d}.png"


def cxr14_labels(study: StudyPlan, chexpert: dict[str, float]) -> list[tuple[str, str]]:
    """``[(ChestX-ray14 label, source CheXpert label)]`` positive in the report, sorted."""
    out = []
    for lab, v in chexpert.items():
        if v != 1.0:
            continue
        if lab == "Lung Lesion":
            sev = max((f.severity for f in study.findings if f.label == lab), default=0.0)
            out.append(("Mass" if sev >= 0.56 else "Nodule", lab))
        elif lab in TO_CXR14:
            out.append((TO_CXR14[lab], lab))
    return sorted(out)


def write_tables(
    root: Path,
    studies: list[StudyPlan],
    labels: dict[int, dict[str, float]],
    image_info: dict[str, dict],
    *,
    bbox_fraction: float,
    test_fraction: float,
    seed: int,
) -> None:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    lines = [
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
        "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
    ]
    bbox_lines = ["Image Index,Finding Label,Bbox [x,y,w,h],,,"]
    for s in studies:
        name = image_index(s)
        info = image_info[s.images[0].dicom_id]
        found = cxr14_labels(s, labels[s.study_id])
        finding = "|".join(lab for lab, _ in found) or "No Finding"
        w0 = int(2544 + rng.integers(-150, 150))
        h0 = int(3056 + rng.integers(-200, 200)) if rng.random() < 0.7 else w0
        lines.append(
            f"{name},{finding},{s.study_order - 1},{s.patient_index + 1},{s.age},"
            f"{s.sex},{s.images[0].view},{w0},{h0},0.143,0.143,"
        )
        boxed = [
            (c, src)
            for c, src in found
            if c in BBOX_LABELS and src in info.get("lesion_boxes", {}) and s.truth(src)
        ]
        if boxed and rng.random() < bbox_fraction:
            for c, src in boxed:
                x1, y1, x2, y2 = info["lesion_boxes"][src]
                bbox_lines.append(
                    f"{name},{BBOX_LABELS[c]},{float(x1)!r},{float(y1)!r},"
                    f"{float(x2 - x1)!r},{float(y2 - y1)!r},,,"
                )
    atomic.write_text(root / DATA_ENTRY, "\n".join(lines) + "\n")
    atomic.write_text(root / BBOX_FILE, "\n".join(bbox_lines) + "\n")
    patients = sorted({s.patient_index for s in studies})
    n_test = int(round(test_fraction * len(patients)))
    test = set(rng.choice(patients, size=n_test, replace=False).tolist()) if n_test else set()
    names = sorted(image_index(s) for s in studies)
    by_name = {image_index(s): s for s in studies}
    atomic.write_text(
        root / "test_list.txt", "".join(f"{n}\n" for n in names if by_name[n].patient_index in test)
    )
    atomic.write_text(
        root / "train_val_list.txt",
        "".join(f"{n}\n" for n in names if by_name[n].patient_index not in test),
    )


def write_png(root: Path, study: StudyPlan, data: bytes) -> str:
    rel = f"images/{image_index(study)}"
    atomic.write_bytes(root / rel, data)
    return rel
