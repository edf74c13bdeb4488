"""Numbers and recipe reported in *That's the Wrong Lung! Evaluating and Improving the
Interpretability of Unsupervised Multimodal Encoders for Medical Data* (anonymous ACL
submission, shared/papers/004_c2f9737dcadaeb0b.txt), Tables 2-14.

Typed once, here, as the paper prints them (percentages, except the KL divergences and the
entropies), and served as tidy tables in fractions so that the chapter shows them beside its
own numbers and the claims run on them with the same code as on ours. The changes under the
perturbations (Figures 4, 5, 7, 8 and 9) are bar charts without printed numbers: nothing is
typed for them, and a claim that needs them is left undecided on the paper's side.
"""

from __future__ import annotations

import pandas as pd

#: The five models of section 4.1, in the paper's order.
MODELS = ("gloria", "retrained", "abnormal", "masking", "randsents")
#: The paper's names for them.
MODEL_NAMES = {
    "gloria": "GLoRIA",
    "retrained": "Retrained",
    "abnormal": "Retrained w/ Abnormal",
    "masking": "Retrained w/ Masking",
    "randsents": "Retrained w/ Rand Sents",
}
#: Sentences: the report's own ("real", the paper's Synth ✗) or built by Table 1 ("synthetic").
SENTENCES = ("real", "synthetic")
#: The subsets of section 3.2 ("all": the whole gold set).
SUBSETS = ("all", "abnormal", "one_lung", "mdrb")
SUBSET_NAMES = {"all": "All", "abnormal": "Abnormal", "one_lung": "One Lung", "mdrb": "MDRB"}
TOP_K = (5, 10, 30)

# (model, sentences) -> subset -> (AUROC, average precision); Tables 2, 3, 4 and 7.
_AUROC_AP: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    ("gloria", "real"): {"all": (69.07, 51.68), "abnormal": (69.51, 48.29),
                         "one_lung": (65.48, 38.67), "mdrb": (65.03, 36.96)},
    ("gloria", "synthetic"): {"all": (69.35, 52.30), "abnormal": (70.22, 49.93),
                              "one_lung": (66.48, 41.36), "mdrb": (66.26, 38.08)},
    ("retrained", "real"): {"all": (58.44, 43.31), "abnormal": (57.68, 39.40),
                            "one_lung": (55.84, 30.88), "mdrb": (58.60, 32.91)},
    ("retrained", "synthetic"): {"all": (58.14, 43.18), "abnormal": (57.18, 39.08),
                                 "one_lung": (56.52, 31.17), "mdrb": (57.87, 32.29)},
    ("abnormal", "real"): {"all": (61.18, 45.78), "abnormal": (62.24, 43.63),
                           "one_lung": (60.52, 36.71), "mdrb": (59.08, 33.56)},
    ("abnormal", "synthetic"): {"all": (59.05, 44.84), "abnormal": (58.20, 41.80),
                                "one_lung": (55.98, 34.39), "mdrb": (57.44, 32.74)},
    ("masking", "real"): {"all": (64.71, 51.40), "abnormal": (65.70, 49.78),
                          "one_lung": (62.07, 40.41), "mdrb": (64.73, 39.95)},
    ("masking", "synthetic"): {"all": (63.69, 51.63), "abnormal": (64.37, 49.62),
                               "one_lung": (61.51, 41.44), "mdrb": (63.56, 39.76)},
    ("randsents", "real"): {"all": (38.88, 30.55), "abnormal": (41.10, 28.16),
                            "one_lung": (41.15, 22.45), "mdrb": (41.47, 21.60)},
    ("randsents", "synthetic"): {"all": (36.09, 29.15), "abnormal": (39.84, 27.73),
                                 "one_lung": (36.81, 20.76), "mdrb": (39.73, 20.77)},
}  # fmt: skip

# (model, sentences) -> precision at the top 5/10/30 % pixels per subset; Table 13.
_PRECISION: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = {
    ("gloria", "real"): {"all": (58.58, 59.20, 54.93), "abnormal": (53.63, 54.60, 51.54),
                         "one_lung": (42.65, 43.55, 39.82), "mdrb": (40.98, 41.46, 37.90)},
    ("gloria", "synthetic"): {"all": (58.88, 59.19, 55.23), "abnormal": (57.28, 57.06, 50.95),
                              "one_lung": (50.87, 48.12, 38.80), "mdrb": (42.77, 43.30, 38.39)},
    ("retrained", "real"): {"all": (46.54, 41.07, 39.78), "abnormal": (46.53, 37.20, 35.20),
                            "one_lung": (35.86, 29.05, 28.03), "mdrb": (38.89, 30.61, 27.73)},
    ("retrained", "synthetic"): {"all": (45.01, 40.51, 39.92), "abnormal": (43.04, 35.72, 35.74),
                                 "one_lung": (33.20, 29.09, 29.10), "mdrb": (34.84, 29.73, 27.91)},
    ("abnormal", "real"): {"all": (40.13, 39.58, 44.11), "abnormal": (49.27, 40.56, 39.76),
                           "one_lung": (45.22, 35.10, 31.44), "mdrb": (32.08, 28.84, 30.55)},
    ("abnormal", "synthetic"): {"all": (35.78, 35.19, 43.24), "abnormal": (42.34, 33.56, 38.29),
                                "one_lung": (39.90, 29.20, 29.73), "mdrb": (28.52, 25.73, 29.96)},
    ("masking", "real"): {"all": (71.38, 63.68, 44.90), "abnormal": (74.19, 65.01, 39.72),
                          "one_lung": (64.26, 53.01, 31.19), "mdrb": (55.22, 48.93, 32.01)},
    ("masking", "synthetic"): {"all": (73.97, 64.99, 44.76), "abnormal": (74.59, 63.65, 39.52),
                               "one_lung": (66.36, 53.28, 31.74), "mdrb": (56.73, 48.83, 31.76)},
    ("randsents", "real"): {"all": (14.54, 14.98, 23.22), "abnormal": (15.66, 15.37, 22.26),
                            "one_lung": (11.66, 11.61, 17.05), "mdrb": (9.31, 10.18, 16.61)},
    ("randsents", "synthetic"): {"all": (8.68, 8.94, 20.00), "abnormal": (13.62, 12.92, 21.15),
                                 "one_lung": (4.78, 4.32, 12.75), "mdrb": (4.67, 5.68, 14.81)},
}  # fmt: skip

# (model, sentences) -> IoU of the top 5/10/30 % pixels per subset; Tables 2, 3 and 14.
_IOU: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = {
    ("gloria", "real"): {"all": (3.79, 6.69, 20.10), "abnormal": (4.10, 7.25, 19.06),
                         "one_lung": (4.42, 8.05, 20.55), "mdrb": (3.56, 6.36, 16.92)},
    ("gloria", "synthetic"): {"all": (4.92, 9.12, 23.82), "abnormal": (7.17, 13.28, 29.12),
                              "one_lung": (7.56, 12.95, 27.68), "mdrb": (4.90, 8.55, 20.29)},
    ("retrained", "real"): {"all": (5.59, 7.61, 7.99), "abnormal": (6.48, 8.54, 8.64),
                            "one_lung": (5.95, 7.15, 7.37), "mdrb": (5.98, 8.57, 8.84)},
    ("retrained", "synthetic"): {"all": (5.50, 7.11, 7.65), "abnormal": (6.24, 7.39, 7.53),
                                 "one_lung": (5.47, 6.31, 6.55), "mdrb": (5.60, 7.64, 8.03)},
    ("abnormal", "real"): {"all": (4.27, 6.48, 7.18), "abnormal": (5.87, 9.30, 9.51),
                           "one_lung": (6.92, 10.31, 10.24), "mdrb": (4.53, 6.57, 7.08)},
    ("abnormal", "synthetic"): {"all": (4.21, 5.66, 6.41), "abnormal": (5.60, 7.49, 7.61),
                                "one_lung": (6.66, 8.15, 8.35), "mdrb": (4.41, 5.77, 6.11)},
    ("masking", "real"): {"all": (7.76, 15.43, 20.60), "abnormal": (9.01, 18.12, 22.76),
                          "one_lung": (8.98, 17.62, 20.76), "mdrb": (8.40, 14.93, 18.83)},
    ("masking", "synthetic"): {"all": (9.41, 16.74, 21.61), "abnormal": (11.35, 19.12, 22.00),
                               "one_lung": (10.73, 18.29, 20.26), "mdrb": (9.45, 15.70, 19.25)},
    ("randsents", "real"): {"all": (0.35, 0.76, 5.51), "abnormal": (0.36, 0.62, 4.85),
                            "one_lung": (0.43, 0.76, 4.68), "mdrb": (0.16, 0.59, 4.46)},
    ("randsents", "synthetic"): {"all": (0.45, 0.94, 7.35), "abnormal": (0.47, 0.75, 5.90),
                                 "one_lung": (0.66, 1.11, 7.18), "mdrb": (0.22, 0.70, 6.22)},
}  # fmt: skip

#: Tables 5 and 8: mean Random Attention KL divergence (nats), real sentences.
KL: dict[str, dict[str, float]] = {
    "gloria": {"all": 7.99, "abnormal": 7.71, "one_lung": 8.09, "mdrb": 8.68},
    "retrained": {"all": 4.98, "abnormal": 5.31, "one_lung": 4.63, "mdrb": 5.28},
    "abnormal": {"all": 6.74, "abnormal": 6.89, "one_lung": 6.01, "mdrb": 6.46},
    "masking": {"all": 10.63, "abnormal": 10.54, "one_lung": 9.94, "mdrb": 11.27},
    "randsents": {"all": 0.01, "abnormal": 0.01, "one_lung": 0.01, "mdrb": 0.01},
}

#: Tables 6 and 9: sentence retrieval accuracy (%), (local, global) similarity per subset.
RETRIEVAL: dict[str, dict[str, tuple[float, float]]] = {
    "gloria": {"all": (54.9, 71.0), "abnormal": (41.3, 77.3),
               "one_lung": (40.4, 74.4), "mdrb": (53.6, 76.6)},
    "retrained": {"all": (72.5, 82.8), "abnormal": (69.7, 86.5),
                  "one_lung": (74.4, 88.1), "mdrb": (74.6, 86.5)},
    "abnormal": {"all": (68.7, 76.4), "abnormal": (79.3, 85.4),
                 "one_lung": (83.2, 84.9), "mdrb": (70.2, 76.2)},
    "masking": {"all": (66.6, 83.3), "abnormal": (64.0, 86.5),
                "one_lung": (61.4, 86.7), "mdrb": (67.5, 84.5)},
    "randsents": {"all": (51.4, 51.3), "abnormal": (44.8, 60.6),
                  "one_lung": (44.6, 59.6), "mdrb": (50.8, 48.4)},
}  # fmt: skip

#: Table 10: entropy (nats) of the sentence-averaged attention over GLoRIA's 19 x 19 regions
#: (the maximum, a uniform map, is ln 361 = 5.889: Rand Sents).
ENTROPY: dict[str, dict[str, float]] = {
    "gloria": {"all": 5.828, "abnormal": 5.841, "one_lung": 5.833, "mdrb": 5.822},
    "retrained": {"all": 5.825, "abnormal": 5.833, "one_lung": 5.841, "mdrb": 5.827},
    "abnormal": {"all": 5.839, "abnormal": 5.840, "one_lung": 5.849, "mdrb": 5.845},
    "masking": {"all": 5.791, "abnormal": 5.809, "one_lung": 5.815, "mdrb": 5.793},
    "randsents": {"all": 5.889, "abnormal": 5.889, "one_lung": 5.889, "mdrb": 5.889},
}
#: GLoRIA's attention grid: 19 x 19 regions of a 299-pixel input (layer3 of a ResNet-50).
REGIONS = 19 * 19

#: Table 12: Pearson correlations over the gold instances (real sentences), lower triangle.
CORRELATION_VARIABLES = (
    "local_similarity", "global_similarity", "entropy", "auroc", "average_precision",
    "precision@10", "iou@10", "abnormal",
)  # fmt: skip
CORRELATIONS: dict[str, tuple[tuple[float, ...], ...]] = {
    "gloria": ((0.059,), (-0.275, 0.220), (0.053, 0.040, 0.089),
               (0.116, 0.004, -0.006, 0.592), (0.154, -0.028, -0.041, 0.593, 0.970),
               (-0.168, -0.012, -0.238, 0.152, 0.177, 0.168),
               (-0.307, -0.007, 0.158, 0.033, -0.092, -0.100, 0.059)),
    "retrained": ((0.410,), (-0.023, 0.189), (0.384, 0.106, -0.117),
                  (-0.050, -0.028, -0.076, 0.203), (-0.027, -0.013, -0.067, 0.163, 0.927),
                  (0.431, 0.232, 0.000, 0.588, -0.012, -0.090),
                  (-0.119, 0.163, 0.099, -0.080, -0.131, -0.116, 0.083)),
    "abnormal": ((0.488,), (-0.212, 0.086), (0.309, 0.204, -0.298),
                 (0.135, 0.169, -0.203, 0.499), (0.206, 0.219, -0.206, 0.562, 0.821),
                 (0.378, 0.296, -0.259, 0.557, 0.282, 0.489),
                 (0.286, 0.188, 0.020, 0.107, -0.064, 0.025, 0.303)),
    "masking": ((0.138,), (-0.324, 0.250), (-0.162, 0.229, -0.046),
                (0.251, 0.038, -0.175, 0.211), (0.223, 0.151, -0.156, 0.236, 0.927),
                (-0.129, 0.116, -0.057, 0.435, 0.113, 0.260),
                (-0.062, 0.109, 0.144, 0.080, -0.052, 0.031, 0.221)),
}  # fmt: skip

#: Facts of the data the paper states (sections 2.2 and 4).
DATA = {
    "gold_images": 1000,
    "chexpert_no_finding_share": 0.0886,
    "imagenome_train_images_without_abnormal_sentence": 0.2180,
    "imagenome_train_sentences_abnormal": 0.4233,
}

#: The recipe (section 4.1 and GLoRIA's released pretraining configuration, which the paper
#: says it used): the `full` profile follows it.
RECIPE = {
    "image_backbone": "resnet50",
    "local_stage": "layer3",
    "image_size": 299,
    "text_encoder": "Bio_ClinicalBERT (last 4 layers summed)",
    "embed_dim": 768,
    "temp1": 4.0,
    "temp2": 5.0,
    "temp3": 10.0,
    "batch_size": 48,
    "lr": 5e-5,
    "max_epochs": 50,
    "patience": 10,
    "max_words": 97,
    "masking": "SciSpaCy entity linker, entities replaced by [MASK]",
}


def localization_table() -> pd.DataFrame:
    """Tables 2, 3, 4, 7, 13 and 14 as one tidy table in fractions: ``model, sentences,
    subset`` + ``auroc, average_precision, iou@5/10/30, precision@5/10/30``."""
    rows = []
    for (model, sentences), by_subset in _AUROC_AP.items():
        for subset, (auroc, ap) in by_subset.items():
            row = {"model": model, "sentences": sentences, "subset": subset,
                   "auroc": auroc / 100, "average_precision": ap / 100}  # fmt: skip
            for name, table in (("iou", _IOU), ("precision", _PRECISION)):
                for k, v in zip(TOP_K, table[(model, sentences)][subset], strict=True):
                    row[f"{name}@{k}"] = v / 100
            rows.append(row)
    return pd.DataFrame(rows)


def kl_table() -> pd.DataFrame:
    """Tables 5 and 8: ``model, subset, kl``."""
    return pd.DataFrame(
        [{"model": m, "subset": s, "kl": v} for m, d in KL.items() for s, v in d.items()]
    )


def retrieval_table() -> pd.DataFrame:
    """Tables 6 and 9 in fractions: ``model, subset, retrieval_local, retrieval_global``."""
    return pd.DataFrame(
        [
            {"model": m, "subset": s, "retrieval_local": lo / 100, "retrieval_global": gl / 100}
            for m, d in RETRIEVAL.items()
            for s, (lo, gl) in d.items()
        ]
    )


def entropy_table() -> pd.DataFrame:
    """Table 10: ``model, subset, entropy`` (nats) and ``entropy_norm`` (over ln 361)."""
    import math

    return pd.DataFrame(
        [
            {"model": m, "subset": s, "entropy": v, "entropy_norm": v / math.log(REGIONS)}
            for m, d in ENTROPY.items()
            for s, v in d.items()
        ]
    )


def correlation_table() -> pd.DataFrame:
    """Table 12 in long form: ``model, a, b, r`` (each unordered pair once)."""
    rows = []
    names = CORRELATION_VARIABLES
    for model, tri in CORRELATIONS.items():
        for i, row in enumerate(tri, start=1):
            for j, r in enumerate(row):
                rows.append({"model": model, "a": names[i], "b": names[j], "r": r})
    return pd.DataFrame(rows)
