"""Numbers and recipe reported by Cooper & Vainio, *Multimodal Semantic Embeddings to Reduce
Hidden Stratification in Medical Imaging Data* (shared/papers/000_e6028d3d5c486beb.txt).

Typed once, here, so the chapter shows them beside its own numbers and the claims run on
them with the same code as on ours. Where the paper gives no number (it shows a figure),
nothing is typed and a claim that needs one is left undecided on the paper's side.
"""

from __future__ import annotations

import pandas as pd

#: Section 4: the four patient-disjoint subsets (image-report pairs).
SPLITS: dict[str, int] = {
    "captioning": 103_864,
    "embedding": 206_888,
    "val": 2_813,
    "test": 4_896,
}

#: Section 3: studies with and without findings.
STUDIES = {"with findings": 152_372, "no finding": 75_455, "images": 377_110}

#: Sections 5.3 and 5.4 (test set). FNR/FPR of the binary task are read from the text
#: ("MEEMS reduces the false negative rate from 0.25 to 0.08 ... increases the false positive
#: rate from 0.34 to 0.60"); the MEEMS binary micro AUC is the flattened 2-column one.
RESULTS: dict[tuple[str, str], dict[str, float]] = {
    ("binary", "baseline"): {"auroc": 0.76, "f1": 0.815, "fnr": 0.25, "fpr": 0.34},
    ("binary", "meems"): {
        "auroc": 0.79,
        "auroc_micro": 0.89,
        "f1": 0.817,
        "fnr": 0.08,
        "fpr": 0.60,
    },  # fmt: skip
    ("14-label", "baseline"): {"auroc": 0.82, "f1": 0.364},
    ("14-label", "meems"): {"auroc": 0.85, "f1": 0.378},
}

#: Sections 4.1-4.3 and 5.3-5.4: the recipe (the `full` profile follows it).
RECIPE = {
    "backbone": "resnet50",
    "image_features": 2048,
    "hidden": 512,
    "concat": 2560,
    "embed_dims": (1000, 200),
    "classifier_dims": (200, 50),
    "word_vectors": "BioWordVec (200-d)",
    "beam": 3,
    "lr": 4e-4,
    "plateau": {"factor": 0.1, "patience": 3},
    "early_stopping": 5,
    "captioner_epochs": 50,
    "classifier_epochs": 50,
    "baseline_epochs": {"binary": 20, "14-label": 9},
    "caption_sample": 1_000,
}


def results_table() -> pd.DataFrame:
    """The paper's two result tables as one tidy table (``task, model`` + metrics)."""
    rows = [{"task": t, "model": m, **v} for (t, m), v in RESULTS.items()]
    return pd.DataFrame(rows)


def split_shares() -> dict[str, float]:
    """The paper's split sizes as shares of its 318,461 pairs."""
    total = sum(SPLITS.values())
    return {k: v / total for k, v in SPLITS.items()}
