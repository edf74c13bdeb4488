"""Benchmark the synthetic cohort: generation time, and how predictive its text and pixels are.

Run: ``python bench/bench_synth.py`` (defaults: 2,000 MIMIC-CXR studies at 512 px on all
cores; the target is under 3 minutes on 2 cores). It also times a subset with one worker, side
by side, to print the parallel speed-up, and fits two quick probes on the generated cohort:

* text: bag-of-words logistic regression on the report, per common finding (want > 0.95 AUROC:
  strongly predictive, as the labels are read from that text);
* pixels: logistic regression on the frontal image downsampled to 32x32 (want 0.6 - 0.95:
  learnable, but weaker than the text, as in the papers).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from PIL import Image
from pydicom.pixels import apply_voi_lut
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from mmcxr.synth import generate

COMMON = [
    "Atelectasis",
    "Cardiomegaly",
    "Edema",
    "Lung Opacity",
    "Pleural Effusion",
    "Pneumonia",
    "No Finding",
]


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (the pool's workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fmt: str, out: Path, n: int, size: int, workers: int | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds): on a shared machine the CPU time is the fairer number."""
    t0, c0 = time.perf_counter(), _cpu()
    generate(fmt, out, n=n, seed=0, image_size=size, workers=workers)
    return time.perf_counter() - t0, _cpu() - c0


def _display(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    x = apply_voi_lut(ds.pixel_array, ds).astype(np.float32)
    x /= 65535.0 if "VOILUTSequence" in ds else float((1 << ds.BitsStored) - 1)
    return 1.0 - x if ds.PhotometricInterpretation == "MONOCHROME1" else x


def _probe(x, y) -> float:
    if y.sum() < 10 or (1 - y).sum() < 10:
        return float("nan")
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    lr = LogisticRegression(max_iter=2000, C=0.5).fit(xtr, ytr)
    return roc_auc_score(yte, lr.predict_proba(xte)[:, 1])


def quality(root: Path) -> pd.DataFrame:
    """AUROC of a text probe and a 32x32-pixel probe per common finding."""
    rec = pd.read_csv(root / "cxr-record-list.csv.gz")
    meta = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz")
    labels = pd.read_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz")
    study = pd.read_csv(root / "cxr-study-list.csv.gz")
    frontal = rec.merge(meta[["dicom_id", "ViewPosition"]], on="dicom_id")
    frontal = frontal[frontal["ViewPosition"].isin(["PA", "AP"])].drop_duplicates("study_id")
    frontal = frontal.merge(labels, on=["subject_id", "study_id"]).merge(
        study.rename(columns={"path": "report"}), on=["subject_id", "study_id"]
    )
    pixels = np.stack(
        [
            np.asarray(
                Image.fromarray(_display(root / p)).resize((32, 32), Image.Resampling.BILINEAR)
            ).ravel()
            for p in tqdm(frontal["path"], desc="32x32 pixels")
        ]
    )
    texts = [(root / p).read_text() for p in frontal["report"]]
    bow = CountVectorizer(min_df=2).fit_transform(texts)
    rows = []
    for lab in COMMON:
        y = (frontal[lab] == 1.0).to_numpy().astype(int)
        rows.append(
            {
                "label": lab,
                "positives": int(y.sum()),
                "text_auroc": _probe(bow, y),
                "pixel32_auroc": _probe(pixels, y),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--subset", type=int, default=200, help="studies for the 1-worker timing")
    ap.add_argument("--keep", type=Path, default=None, help="keep the cohort here")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        (one, one_cpu) = _timed("mimic-cxr", tmp / "one", args.subset, args.image_size, 1)
        (par, par_cpu) = _timed(
            "mimic-cxr", tmp / "par", args.subset, args.image_size, args.workers
        )
        (full, full_cpu) = _timed("mimic-cxr", tmp / "full", args.n, args.image_size, args.workers)
        n_img = len(pd.read_csv(tmp / "full" / "cxr-record-list.csv.gz"))
        load = os.getloadavg()[0]
        print(
            f"\nmimic-cxr, {args.image_size} px, workers={args.workers or 'all'}, "
            f"{os.cpu_count()} cores, load average {load:.1f}"
        )
        print(
            f"  {args.n} studies ({n_img} images): {full:.1f} s wall, {full_cpu:.1f} s CPU "
            f"({n_img / full:.1f} images/s; target < 180 s wall on 2 free cores)"
        )
        print(
            f"  {args.subset} studies side by side: 1 worker {one:.1f} s wall "
            f"({one_cpu:.1f} s CPU), parallel {par:.1f} s wall ({par_cpu:.1f} s CPU): "
            f"speed-up x{one / par:.2f}"
        )
        q = quality(tmp / "full")
        print("\nprobe AUROC on the generated cohort (30% held out):")
        print(q.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if args.keep:
            shutil.move(str(tmp / "full"), args.keep)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
