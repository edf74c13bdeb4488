"""Label vocabularies shared by the synthetic cohort, its writers and the data layer.

The CheXpert order is the column order of ``mimic-cxr-2.0.0-chexpert.csv.gz``; the other
vocabularies translate a CheXpert finding into the names the other releases use, so that one
sampled finding can be written into every format.
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

#: Every CheXpert label except "No Finding": the findings a study can carry.
FINDING_LABELS: list[str] = [lab for lab in CHEXPERT_LABELS if lab != "No Finding"]

#: Findings that have a side and a zone in a frontal film (the others are central or diffuse).
LATERALISED: frozenset[str] = frozenset(
    {"Atelectasis", "Consolidation", "Fracture", "Lung Lesion", "Lung Opacity",
     "Pleural Effusion", "Pleural Other", "Pneumonia", "Pneumothorax"}
)

#: ChestX-ray14's 14 labels (``Finding Labels`` joined by "|"), in the release's usual order.
CHESTXRAY14_LABELS: list[str] = [
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
    "Hernia",
]

#: Chest ImaGenome condition name and category for each CheXpert finding (Support Devices is
#: resolved per device, see ``IMAGENOME_DEVICES``).
IMAGENOME_CONDITIONS: dict[str, tuple[str, str]] = {
    "Atelectasis": ("atelectasis", "anatomicalfinding"),
    "Cardiomegaly": ("enlarged cardiac silhouette", "anatomicalfinding"),
    "Consolidation": ("consolidation", "anatomicalfinding"),
    "Edema": ("pulmonary edema/hazy opacity", "anatomicalfinding"),
    "Enlarged Cardiomediastinum": ("mediastinal widening", "anatomicalfinding"),
    "Fracture": ("fracture", "anatomicalfinding"),
    "Lung Lesion": ("lung lesion", "anatomicalfinding"),
    "Lung Opacity": ("lung opacity", "anatomicalfinding"),
    "Pleural Effusion": ("pleural effusion", "anatomicalfinding"),
    "Pleural Other": ("pleural/parenchymal scarring", "anatomicalfinding"),
    "Pneumonia": ("pneumonia", "disease"),
    "Pneumothorax": ("pneumothorax", "anatomicalfinding"),
    "Support Devices": ("chest tube", "tubesandlines"),
}

#: Chest ImaGenome tube/line names for the devices the cohort draws.
IMAGENOME_DEVICES: dict[str, str] = {
    "chest tube": "chest tube",
    "endotracheal tube": "endotracheal tube",
    "enteric tube": "enteric tube",
    "central line": "ij line",
    "picc": "picc",
    "pacemaker": "cardiac pacer and wires",
}
