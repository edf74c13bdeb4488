"""The late-fusion chapter's calibration: its image-only model's test AUROC against
``synth_image_difficulty`` (see :mod:`mmcxr.calibration`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mmcxr import data, runs
from mmcxr.calibration import Calibration, image_cache, synthetic_root
from mmcxr.chapters import late_fusion as lf
from mmcxr.chapters import late_fusion_reference as ref


def _image_only(params: dict[str, Any], out: Path, device: str) -> dict[str, float]:
    """The late-fusion chapter's image-only model, full training set, BCE loss: its test
    AUROC, built with the chapter's own functions exactly as the notebook does."""
    t0 = time.perf_counter()
    root = synthetic_root(params)
    images = data.load_mimic_cxr_jpg(root, None, progress=False)
    cohort = lf.build_cohort(
        images,
        seed=params["seed"],
        split_fractions=params["split_fractions"],
        neg_frac=params["subsample_negative_fraction"],
        test_neg_frac=params["test_negative_fraction"],
        text_field=params["text_field"],
    )
    cache_dir = lf.image_cache_dir(out, cohort, params["image_size"])
    cache = image_cache(params["data_format"], root, cache_dir,
                        cohort.table[["dicom_id", "path"]], params["image_size"])  # fmt: skip
    splits = lf.make_splits(cohort, cache, {})  # image only: no report tokens
    t1 = time.perf_counter()
    run = lf.train_run(
        lf.RunSpec("image", "full", "bce"),
        params,
        splits,
        runs.RunStore(out / "runs"),
        lf.data_fingerprint(cohort, cache),
        None,
        device=device,
    )
    test = run.metrics["test"]
    return {
        "auroc": float(test["auroc"]),
        "test_positives": int(np.sum(run.predictions["labels"])),
        "data_seconds": t1 - t0,
        "train_seconds": time.perf_counter() - t1,
    }


def calibrations() -> tuple[Calibration, ...]:
    lf_keys = (
        "data_format",
        "synth_n",
        "synth_seed",
        "synth_image_size",
        "synth_report_difficulty",
        *(k for k in lf.SHARED_KEYS if k != "seed"),
        *lf.IMAGE_KEYS,
    )
    return (
        Calibration(
            slug=lf.SLUG,
            knob="synth_image_difficulty",
            metric="auroc",
            target=ref.RESULTS[("image", "full", "bce")][4],
            baseline="test AUROC of the image-only model (full training set, BCE loss)",
            source="Chao & Li, Figure 2: Image, Full, BCE loss",
            measure=_image_only,
            keys=lf_keys,
        ),
    )
