"""Label vocabularies of the real releases (facts of their formats, shared by every layer).

The CheXpert order is the column order of ``mimic-cxr-2.0.0-chexpert.csv.gz``;
ChestX-ray14's names are those joined by "|" in ``Finding Labels`` of ``Data_Entry_2017.csv``.
"""

from __future__ import annotations

CHEXPERT_LABELS: list[str] = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
]

CHESTXRAY14_LABELS: list[str] = [
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
]
