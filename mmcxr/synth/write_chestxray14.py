"""NIH ChestX-ray14: ``images/NNNNNNNN_NNN.png``, ``Data_Entry_2017.csv``, boxes and split lists.

The release's labels were mined from reports by NLP, uncertain mentions excluded; here they
come from the synthetic report through the same labeler as the MIMIC labels (positive only),
mapped onto ChestX-ray14's names. Labels the renderer never draws (Emphysema, Fibrosis,
Hernia) never occur.

Every PNG is 1024 x 1024 (:data:`IMAGE_SIDE`), the release's frame, whatever the
``image_size`` of the cohort: that sets the resolution the phantom is drawn at, and the
portrait render is then resized onto the square. ``BBox_List_2017.csv`` gives boxes in those
1024-pixel coordinates, as the release does, so a reader that assumes the 1024 frame (as
third-party ChestX-ray14 code does) puts them where the findings are drawn. Writing 1024 px
costs a resize and a larger PNG per image; :func:`png_up_filtered` keeps both small.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from mmcxr import atomic
from mmcxr.synth.cohort import StudyPlan
from mmcxr.synth.writers import scale_box

DATA_ENTRY = "Data_Entry_2017.csv"
BBOX_FILE = "BBox_List_2017.csv"
#: Side of every written PNG: the release's 1024 x 1024 frame, which the boxes share.
IMAGE_SIDE = 1024
#: zlib level of the PNGs (see :func:`png_up_filtered`).
PNG_COMPRESS_LEVEL = 3

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


def write_image(root: Path, rel: str, image8: np.ndarray, info: dict) -> dict:
    """Write one rendered image as a 1024 x 1024 PNG at ``root/rel``; return the info updates.

    ``image8`` is the uint8 render (``image_size`` rows, portrait); it is resized onto the
    square with bilinear interpolation, as the release's originals, of varied aspect (see
    ``OriginalImage[Width, Height]``), were resized to 1024 x 1024. The returned ``rows``/``columns`` and the
    ``lesion_boxes``/``anatomy_boxes`` (from ``info``, in render pixels) are in the 1024
    frame, so the box table and the ground truth describe the file as written.
    """
    rows, cols = image8.shape
    square = Image.fromarray(np.ascontiguousarray(image8, dtype=np.uint8)).resize(
        (IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BILINEAR
    )
    atomic.write_bytes(root / rel, png_up_filtered(np.asarray(square)))
    sx, sy = IMAGE_SIDE / cols, IMAGE_SIDE / rows
    out: dict = {"rows": IMAGE_SIDE, "columns": IMAGE_SIDE}
    for key in ("lesion_boxes", "anatomy_boxes"):
        out[key] = {n: list(scale_box(tuple(b), sx, sy)) for n, b in info.get(key, {}).items()}
    return out


def png_up_filtered(image8: np.ndarray, level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """An 8-bit grayscale PNG whose rows all use the PNG "Up" filter, deflated at ``level``.

    Why not PIL: its encoder tries every filter on every row, which dominates the cost of a
    1024 x 1024 file. An image upsampled from a smaller render changes little from one row to
    the next, so the Up filter alone (the difference to the row above, computed in numpy)
    compresses it well: on synthetic renders this wrote files about 40% smaller than PIL at
    ``compress_level=1``, in about half the time. The file is a standard PNG (IHDR, one IDAT,
    IEND) that any reader decodes to exactly ``image8``.
    """
    a = np.ascontiguousarray(image8, dtype=np.uint8)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 image, got shape {a.shape}")
    h, w = a.shape
    raw = np.empty((h, w + 1), dtype=np.uint8)
    raw[:, 0] = 2  # filter type Up; the first row's "row above" is zeros, so it is unchanged
    raw[0, 1:] = a[0]
    np.subtract(a[1:], a[:-1], out=raw[1:, 1:])  # modulo 256, as the filter is defined

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit, grayscale, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
        + chunk(b"IEND", b"")
    )
