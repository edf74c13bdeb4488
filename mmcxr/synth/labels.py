"""Label vocabularies shared by the synthetic cohort, its writers and the data layer.

The CheXpert order is the column order of ``mimic-cxr-2.0.0-chexpert.csv.gz``; the other
vocabularies translate a CheXpert finding into the names the other releases use, so that one
sampled finding can be written into every format.
"""

from __future__ import annotations

from mmcxr.labels import CHEXPERT_LABELS

#: Every CheXpert label except "No Finding": the findings a study can carry.
FINDING_LABELS: list[str] = [lab for lab in CHEXPERT_LABELS if lab != "No Finding"]

#: Findings that have a side and a zone in a frontal film (the others are central or diffuse).
LATERALISED: frozenset[str] = frozenset(
    {
        "Atelectasis",
        "Consolidation",
        "Fracture",
        "Lung Lesion",
        "Lung Opacity",
        "Pleural Effusion",
        "Pleural Other",
        "Pneumonia",
        "Pneumothorax",
    }
)


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

# --------------------------------------------------------------------------------------------
# what the phantom needs: where each finding can sit in a film

SIDES: tuple[str, ...] = ("right", "left", "bilateral")  # the patient's side, not the image's
ZONES: tuple[str, ...] = ("upper", "mid", "lower", "apical", "basal")

#: Zones each lateralised finding may take (None always means "wherever it usually is").
#: Effusion layers at the base and a pneumothorax on an erect film rises to the apex, so those
#: two take only the zone they occupy; "basal" is the lower zone for the parenchymal findings.
LABEL_ZONES: dict[str, tuple[str, ...]] = {
    "Atelectasis": ("mid", "lower", "basal"),
    "Consolidation": ("apical", "upper", "mid", "lower", "basal"),
    "Fracture": ("upper", "mid", "lower"),
    "Lung Lesion": ("apical", "upper", "mid", "lower", "basal"),
    "Lung Opacity": ("apical", "upper", "mid", "lower", "basal"),
    "Pleural Effusion": ("basal", "lower"),
    "Pleural Other": ("apical", "upper", "mid", "lower"),
    "Pneumonia": ("upper", "mid", "lower", "basal"),
    "Pneumothorax": ("apical",),
}

#: Findings that take a side but no zone (edema is bilateral unless a side is forced; devices
#: use the side for a pacemaker pocket or the vein a line enters).
SIDED_WITHOUT_ZONE: frozenset[str] = frozenset({"Edema", "Support Devices"})

#: Central findings: no side, no zone.
CENTRAL: frozenset[str] = frozenset({"Cardiomegaly", "Enlarged Cardiomediastinum"})

#: Device kinds the phantom draws for ``Finding("Support Devices", attrs={"device": ...})``
#: (one name or a list of names), keyed by the names of ``IMAGENOME_DEVICES``; the short
#: aliases are accepted too. A chest tube is also drawn by
#: ``Finding("Pneumothorax", attrs={"chest_tube": True})``.
DEVICE_ALIASES: dict[str, str] = {
    "endotracheal tube": "endotracheal tube",
    "ett": "endotracheal tube",
    "enteric tube": "enteric tube",
    "ng tube": "enteric tube",
    "ng_tube": "enteric tube",
    "central line": "central line",
    "central_line": "central line",
    "picc": "picc",
    "pacemaker": "pacemaker",
    "chest tube": "chest tube",
    "chest_tube": "chest tube",
}
DEVICES: tuple[str, ...] = tuple(dict.fromkeys(DEVICE_ALIASES.values()))

# --------------------------------------------------------------------------------------------
# IU X-ray / OpenI: MeSH indexing
#
# Each OpenI report carries two kinds of MeSH terms. ``<major>`` is the manual coding: a
# heading with qualifiers ("Pleural Effusion/right/small"), or ``normal``. ``<automatic>`` is
# MeSH automatic indexing of the report text: lower-case headings, no qualifiers, fewer of
# them, and drawn from the indexer's own vocabulary, which has no term at all for several
# manual headings. In the real release the two agree (the automatic set equals the lower-cased
# major headings) in only 285 of 3,955 reports; third-party loaders label from either, so the
# synthetic files keep the two apart the same way.

#: The automatic-indexing term(s) for each ``<major>`` heading the cohort writes: the first is
#: the usual one, any others are alternatives the indexer also gives. An empty tuple means the
#: real automatic vocabulary has no such term (it never contains "consolidation", "mass",
#: "mediastinum" or "tube, inserted"), so that finding is never indexed automatically.
OPENI_AUTOMATIC: dict[str, tuple[str, ...]] = {
    "Cardiomegaly": ("cardiomegaly",),
    "Pleural Effusion": ("pleural effusion",),
    "Pneumothorax": ("pneumothorax",),
    "Pulmonary Atelectasis": ("pulmonary atelectasis",),
    "Consolidation": (),
    "Opacity": ("opacity",),
    "Pneumonia": ("pneumonia",),
    "Pulmonary Edema": ("pulmonary edema", "pulmonary congestion"),
    "Mediastinum": (),
    "Fractures, Bone": ("fractures, bone",),
    "Nodule": ("nodule",),
    "Mass": (),
    "Thickening": ("thickening",),
    "Pacemaker, Artificial": ("pacemaker, artificial",),
    "Catheters, Indwelling": ("catheters, indwelling",),
    "Tube, Inserted": (),
}

#: Terms that the real automatic indexing never produces (checked by the tests).
OPENI_NOT_AUTOMATIC: frozenset[str] = frozenset(
    {"consolidation", "mass", "mediastinum", "tube, inserted"}
)

#: Share of real OpenI reports whose automatic terms equal their major headings (285 / 3,955).
OPENI_MESH_AGREEMENT: float = 285 / 3955
