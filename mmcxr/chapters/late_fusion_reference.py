"""Numbers reported by Chao & Li, *Exploring Multimodal Learning in Classifiers for
Healthcare Applications* (shared/papers/001_ad573dd23246b193.txt), Figures 2-4.

These are the paper's test-set results on MIMIC-CXR-JPG (pneumonia vs no finding, PA erect
non-portable), typed from the paper so the chapter can show them beside its own numbers.
"""

from __future__ import annotations

import pandas as pd

METRICS = ("accuracy", "precision", "recall", "f1", "auroc")

# (model, dataset, loss) -> accuracy, precision, recall, F1, AUROC
RESULTS: dict[tuple[str, str, str], tuple[float, float, float, float, float]] = {
    ("multimodal", "full", "bce"): (0.9934, 0.9732, 0.9934, 0.9594, 0.9966),
    ("image", "full", "bce"): (0.9123, 0.2212, 0.0517, 0.0793, 0.7735),
    ("text", "full", "bce"): (0.9948, 0.9869, 0.9558, 0.9688, 0.9995),
    ("multimodal", "full", "focal"): (0.9911, 0.9339, 0.9728, 0.9492, 0.9991),
    ("image", "full", "focal"): (0.835, 0.2762, 0.5318, 0.352, 0.7812),
    ("text", "full", "focal"): (0.9917, 0.9272, 0.9868, 0.9522, 0.9997),
    ("multimodal", "75", "bce"): (0.9828, 0.9905, 0.9444, 0.966, 0.9971),
    ("image", "75", "bce"): (0.7595, 0.7465, 0.1567, 0.2541, 0.7636),
    ("text", "75", "bce"): (0.9489, 0.9588, 0.8486, 0.8975, 0.9933),
    ("multimodal", "75", "focal"): (0.9925, 0.9802, 0.9881, 0.9835, 0.9981),
    ("image", "75", "focal"): (0.624, 0.3988, 0.7307, 0.5113, 0.7417),
    ("text", "75", "focal"): (0.9817, 0.9377, 0.9957, 0.9652, 0.998),
}

# Figure 2 (bottom): the multimodal full-BCE model with one modality shuffled at test time.
SENSITIVITY: dict[tuple[str, str, str, str], tuple[float, float, float, float, float]] = {
    ("multimodal", "full", "bce", "none"): (0.9934, 0.9732, 0.9934, 0.9594, 0.9966),
    ("multimodal", "full", "bce", "image"): (0.9921, 0.9805, 0.9306, 0.9549, 0.9644),
    ("multimodal", "full", "bce", "text"): (0.8451, 0.113, 0.1065, 0.1097, 0.5121),
}

# Cohort sizes reported in section 2.1.1.
COHORT = {"pneumonia": 2323, "no_finding": 21790, "subsampled_negative": 6969}

# Training recipe of section 2.3 (the `full` profile).
RECIPE = {
    "batch_size": 64,
    "lr": 1e-4,
    "schedule": "linear",
    "patience": 3,
    "max_epochs": 15,
    "image_size": 256,
    "frozen": ("conv1", "layer1", "layer2"),
    "proj_dim": 256,
    "focal": {"full": {"alpha": 0.85, "gamma": 1.5}, "75": {"alpha": 0.95, "gamma": 2.0}},
}


def results_table() -> pd.DataFrame:
    """The paper's Figures 2-4 as one tidy table (one row per model/dataset/loss)."""
    rows = [
        dict(zip(("model", "dataset", "loss"), k, strict=True)) | dict(zip(METRICS, v, strict=True))
        for k, v in RESULTS.items()
    ]
    return pd.DataFrame(rows)


def sensitivity_table() -> pd.DataFrame:
    rows = [
        dict(zip(("model", "dataset", "loss", "shuffled"), k, strict=True))
        | dict(zip(METRICS, v, strict=True))
        for k, v in SENSITIVITY.items()
    ]
    return pd.DataFrame(rows)
