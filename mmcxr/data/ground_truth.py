"""The synthetic cohort's answer key (``synthetic_ground_truth.csv.gz``), for tests and checks.

Real releases have no such file; chapters use it only to show what a model should have found
(planted strata, markers, label noise), never as a training input.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mmcxr.data.tables import read_table
from mmcxr.names import GROUND_TRUTH_FILE

__all__ = ["GROUND_TRUTH_FILE", "load_ground_truth"]


def load_ground_truth(root: str | os.PathLike) -> pd.DataFrame:
    """One row per synthetic image: ids, view, per-label truth and the planted structure."""
    path = Path(root).expanduser().resolve() / GROUND_TRUTH_FILE
    return read_table(
        path,
        dtype={"dicom_id": str, "image_id": str},
        what="synthetic ground-truth table (only synthetic cohorts have one)",
    )
