"""How fast is the image cache? prepare() throughput, and cached reads vs decoding each time.

Writes MIMIC-like DICOMs (12-bit, windowed, a quarter MONOCHROME1) at 512 rows and at full
size (3056 x 2544) into a temporary folder, then measures side by side in this one run:

* ``prepare`` images/s from DICOM at both sizes (all cores by default);
* reading N cached images with ``ImageCache.get`` vs decoding + resizing the same DICOMs with
  ``read_image(path, size)``, and the ratio;
* JPEG draft-mode decoding (``read_image(p, size)``) vs full decoding + resize of a full-size
  JPEG, and the ratio.

Run: ``.venv/bin/python bench/bench_prepare.py [--n-small 64 --n-full 8 --size 256]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

from mmcxr.data import ImageCache, prepare, read_image, resize_square


def write_dicoms(folder: Path, n: int, rows: int, cols: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    out = []
    for i in range(n):
        phase = rng.random(2) * 6.28
        img = 0.5 + 0.4 * np.sin(xx / (cols / 7) + phase[0]) * np.cos(yy / (rows / 5) + phase[1])
        stored = np.rint(img * 4095).astype(np.uint16)
        mono1 = i % 4 == 3
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = (
            meta.MediaStorageSOPClassUID,
            meta.MediaStorageSOPInstanceUID,
        )
        ds.Modality = "DX"
        ds.set_pixel_data(
            4095 - stored if mono1 else stored, "MONOCHROME1" if mono1 else "MONOCHROME2", 12
        )
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        path = folder / f"{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append({"key": f"{rows}-{i:05d}", "path": str(path)})
    return pd.DataFrame(out)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-small", type=int, default=64, help="DICOMs at 512 rows")
    ap.add_argument("--n-full", type=int, default=8, help="DICOMs at 3056 x 2544")
    ap.add_argument("--size", type=int, default=256, help="cached square side")
    ap.add_argument("--workers", type=int, default=None, help="prepare processes (all cores)")
    args = ap.parse_args()
    workers = args.workers or os.cpu_count() or 1
    print(f"cores={os.cpu_count()} workers={workers} size={args.size}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = write_dicoms(tmp / "small", args.n_small, 512, 426, seed=0)
        full = write_dicoms(tmp / "full", args.n_full, 3056, 2544, seed=1)
        for name, table in (("512x426", small), ("3056x2544", full)):
            t = timed(
                lambda table=table, name=name: prepare(
                    "mimic-cxr",
                    tmp,
                    tmp / f"cache-{name}",
                    size=args.size,
                    workers=workers,
                    table=table,
                    progress=False,
                )
            )
            print(
                f"prepare from DICOM {name:>10}: {len(table) / t:8.1f} images/s "
                f"({len(table)} images, {t:.2f} s, incl. pool start and checksums)"
            )

        cache = ImageCache(tmp / "cache-512x426")
        keys = list(small.key)
        order = np.random.default_rng(0).permutation(len(keys))
        t_cache = timed(lambda: [cache.get([keys[i]]) for i in order])
        t_decode = timed(lambda: [read_image(small.path.iloc[i], args.size) for i in order])
        print(f"read 512 DICOM + resize      : {len(keys) / t_decode:8.1f} images/s")
        print(f"ImageCache.get (one at a time): {len(keys) / t_cache:8.1f} images/s")
        print(f"ratio cache / decode (512)   : {t_decode / t_cache:8.1f}x")
        fcache = ImageCache(tmp / "cache-3056x2544")
        fkeys = list(full.key)
        t_fc = timed(lambda: [fcache.get([k]) for k in fkeys])
        t_fd = timed(lambda: [read_image(p, args.size) for p in full.path])
        print(
            f"ratio cache / decode (full)  : {t_fd / t_fc:8.1f}x "
            f"({len(fkeys) / t_fd:.1f} vs {len(fkeys) / t_fc:.0f} images/s)"
        )

        jpg = tmp / "full.jpg"
        arr = np.rint(read_image(full.path.iloc[0]) * 255).astype(np.uint8)
        Image.fromarray(arr).save(jpg, quality=95)
        reps = 5
        t_draft = timed(lambda: [read_image(jpg, args.size) for _ in range(reps)])
        t_full = timed(lambda: [resize_square(read_image(jpg), args.size) for _ in range(reps)])
        print(
            f"JPEG 3056x2544 draft decode  : {reps / t_draft:8.1f} images/s; full decode + "
            f"resize {reps / t_full:.1f} images/s; ratio {t_full / t_draft:.1f}x"
        )


if __name__ == "__main__":
    main()
