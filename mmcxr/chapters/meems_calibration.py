"""The MEEMS chapter's calibration: its ResNet baseline's binary (Finding / No Finding) test
AUC against ``synth_image_difficulty`` (see :mod:`mmcxr.calibration`).

The baseline is the chapter's single-modality model: a ResNet trained on the raw
$D_{embedding}$ films. Its 14-label mean AUC (paper 0.82) is not calibrated separately: one
image knob cannot set two targets, and the binary task is the paper's headline comparison.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mmcxr import data, metrics, runs
from mmcxr.calibration import Calibration, image_cache, synthetic_root
from mmcxr.chapters import meems as mm
from mmcxr.chapters import meems_reference as ref


def _baseline_binary(params: dict[str, Any], out: Path, device: str) -> dict[str, float]:
    """The chapter's ResNet baseline on the binary task, built with the chapter's own functions
    exactly as the notebook does: its test AUC (the mean over classes of the paper's table,
    which for one output is the AUC)."""
    t0 = time.perf_counter()
    root = synthetic_root(params)
    images = data.load_mimic_cxr(root, progress=False, check_images=False)
    shares = dict(zip(mm.SPLITS, params["split_shares"], strict=True))
    cohort = mm.build_cohort(images, shares=shares, seed=params["seed"])
    cache_dir = mm.image_cache_dir(out, cohort, params["image_size"])
    cache = image_cache(params["data_format"], root, cache_dir,
                        cohort.table[["dicom_id", "path"]], params["image_size"])  # fmt: skip
    t1 = time.perf_counter()
    store = runs.RunStore(out / "runs")
    run = mm.train_image_model(
        "baseline", "binary", params, cohort, cache, store, mm.data_fingerprint(cohort, cache),
        device=device,
    )  # fmt: skip
    y, p = run.predictions["labels"], run.predictions["probs"]
    return {
        "auroc": float(metrics.mean_auroc(y, p)),
        "test_positives": int(np.sum(y)),
        "test_n": len(y),
        "data_seconds": t1 - t0,
        "train_seconds": time.perf_counter() - t1,
    }


def calibrations() -> tuple[Calibration, ...]:
    keys = (
        "data_format",
        "synth_n",
        "synth_seed",
        "synth_image_size",
        "split_shares",
        *(k for k in mm._KEYS["baseline"] if k != "seed"),
    )
    return (
        Calibration(
            slug=mm.SLUG,
            knob="synth_image_difficulty",
            metric="auroc",
            target=ref.RESULTS[("binary", "baseline")]["auroc"],
            baseline="test AUC of the ResNet baseline, binary (Finding / No Finding)",
            source="Cooper & Vainio, section 5.3: ResNet-50 baseline, binary task",
            measure=_baseline_binary,
            keys=keys,
        ),
    )
