"""Numbers and recipe reported by *Multimodal classification and detection in small data*
(shared/papers/002_fec24d92fd86ae33.txt), typed once so the chapter shows them beside its own.

The paper prints three tables (text accuracy on two datasets, multimodal vs single-modality
accuracy at two learning rates) and the cohort's size; its Figures 2, 4 and 5 have no numbers
in our copy (the figures are absent), so claims that rest on them alone are left undecided on
the paper's side rather than read off a plot we cannot see.
"""

from __future__ import annotations

import pandas as pd

#: Section 4: the Indiana University collection as the paper used it.
COHORT = {"cases": 3955, "abnormal_share": 0.60, "words_per_report": 27.4}
#: The private Alfred Hospital text set (no data here; shown as the paper's only).
ALFRED = {"cases": 3000, "abnormal_share": 0.60}

#: Tables 1-2: text-model accuracy, (dataset, embedding) -> (training, validation, testing).
TEXT_ACCURACY: dict[tuple[str, str], tuple[float, float, float]] = {
    ("alfred", "custom"): (0.88, 0.80, 0.76),
    ("alfred", "generic"): (0.73, 0.73, 0.68),
    ("indiana", "custom"): (0.88, 0.80, 0.75),
    ("indiana", "generic"): (0.72, 0.71, 0.69),
}

#: Table 3: mean accuracy over stratified splits and epochs, (learning rate, model) -> accuracy.
MULTIMODAL_ACCURACY: dict[tuple[str, str], float] = {
    ("low", "multimodal"): 0.77,
    ("low", "text"): 0.74,
    ("low", "image"): 0.66,
    ("high", "multimodal"): 0.81,
    ("high", "text"): 0.77,
    ("high", "image"): 0.74,
}

#: The abstract's summary: the multimodal's average gain over the text and the image model.
ABSTRACT_GAINS = {"text": 0.04, "image": 0.07}

#: The recipe of sections 2 and 4 (the ``full`` profile follows it where it is stated).
RECIPE = {
    "max_words": 140,
    "kernel_sizes": (3, 4, 5),
    "embedding_dim": 300,
    "embedding_frozen": False,
    "image_backbone": "densenet121",
    "pretraining": "ChestX-ray14 (14 labels)",
    "lr_high": 1e-2,
    "lr_low": 1e-5,
    "splits_high": 10,
    "epochs_high": 10,
    "splits_low": 3,
    "epochs_low": 50,
}


def text_table() -> pd.DataFrame:
    """Tables 1-2 as one tidy table: ``dataset, embedding, train, val, test``."""
    rows = [
        {"dataset": d, "embedding": e, "train": a, "val": b, "test": c}
        for (d, e), (a, b, c) in TEXT_ACCURACY.items()
    ]
    return pd.DataFrame(rows)


def multimodal_table() -> pd.DataFrame:
    """Table 3 as a tidy table: ``lr, model, accuracy``."""
    rows = [{"lr": lr, "model": m, "accuracy": v} for (lr, m), v in MULTIMODAL_ACCURACY.items()]
    return pd.DataFrame(rows)
