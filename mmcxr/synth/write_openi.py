"""IU chest X-ray collection (OpenI / NLMCXR): ``ecgen-radiology/<n>.xml`` and one PNG per image.

OpenI has no CheXpert labels: what it carries is MeSH indexing (``major`` terms such as
``Pleural Effusion/right/small``, or ``normal``, and lower-case ``automatic`` terms), so that
is all this writer emits; the pixel truth stays in the ground-truth table. De-identified words
are ``XXXX``, as in the release.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from mmcxr import atomic
from mmcxr.synth.cohort import PlannedFinding, StudyPlan
from mmcxr.synth.reports import Report
from mmcxr.synth.writers import write_csv

XML_DIR = "ecgen-radiology"
PNG_DIR = "NLMCXR_png"

_ZONE_WORD = {
    "upper": "upper lobe",
    "mid": "middle lobe",
    "lower": "lower lobe",
    "basal": "base",
    "apical": "apex",
}


PROJECTIONS_FILE = "indiana_projections.csv"


def image_ids(n: int, study: StudyPlan) -> list[str]:
    """``CXR<n>_IM-<series>-<k>001`` for the study's views (frontal first)."""
    series = 1 + study.index % 9999
    return [f"CXR{n}_IM-{series:04d}-{k + 1}001" for k in range(len(study.images))]


def write_projections(root: Path, studies: list[StudyPlan]) -> Path:
    """``indiana_projections.csv`` (``uid, filename, projection``), the view table that the
    widely used Kaggle copy of the collection adds (the XML has no view tag); its file names
    drop the ``CXR`` prefix and end in ``.dcm.png``."""
    rows = []
    for s in studies:
        n = s.index + 1
        for im, image_id in zip(s.images, image_ids(n, s), strict=True):
            rows.append(
                {
                    "uid": n,
                    "filename": f"{image_id.removeprefix('CXR')}.dcm.png",
                    "projection": "Frontal" if im.view in ("PA", "AP") else "Lateral",
                }
            )
    return write_csv(pd.DataFrame(rows), root / PROJECTIONS_FILE)


def _deg(sev: float) -> str:
    return "mild" if sev < 0.4 else "moderate" if sev < 0.72 else "severe"


def _size(sev: float) -> str:
    return "small" if sev < 0.4 else "moderate" if sev < 0.72 else "large"


def mesh_terms(f: PlannedFinding) -> tuple[str, str]:
    """``(major, automatic)`` MeSH-style terms for one positive finding."""
    side = f.side or ""
    zone = _ZONE_WORD.get(f.zone or "", "")
    lab = f.label
    if lab == "Cardiomegaly":
        return f"Cardiomegaly/{_deg(f.severity)}", "cardiomegaly"
    if lab == "Pleural Effusion":
        return f"Pleural Effusion/{side}/{_size(f.severity)}", "pleural effusion"
    if lab == "Pneumothorax":
        return f"Pneumothorax/{side}/{_size(f.severity)}", "pneumothorax"
    if lab == "Atelectasis":
        return f"Pulmonary Atelectasis/{zone}/{side}/{_deg(f.severity)}", "pulmonary atelectasis"
    if lab == "Consolidation":
        return f"Consolidation/lung/{zone}/{side}", "consolidation"
    if lab == "Lung Opacity":
        return f"Opacity/lung/{zone}/{side}", "opacity"
    if lab == "Pneumonia":
        return f"Pneumonia/{side}/{zone}", "pneumonia"
    if lab == "Edema":
        return f"Pulmonary Edema/{_deg(f.severity)}", "pulmonary edema"
    if lab == "Enlarged Cardiomediastinum":
        return "Mediastinum/enlarged", "mediastinum"
    if lab == "Fracture":
        return f"Fractures, Bone/ribs/{side}", "fractures, bone"
    if lab == "Lung Lesion":
        kind = "Mass" if f.severity >= 0.56 else "Nodule"
        return f"{kind}/lung/{zone}/{side}", kind.lower()
    if lab == "Pleural Other":
        return f"Thickening/pleura/apex/{side}", "thickening"
    if lab == "Support Devices":
        device = str(f.attrs.get("device", ""))
        if device == "pacemaker":
            return "Pacemaker, Artificial", "pacemaker, artificial"
        if device in ("central line", "picc"):
            return "Catheters, Indwelling", "catheters, indwelling"
        return "Tube, Inserted", "tube, inserted"
    raise ValueError(f"no MeSH term for {lab!r}")


def _text(s: str) -> str:
    return s.replace("___", "XXXX")


def openi_xml(n: int, study: StudyPlan, report: Report) -> bytes:
    root = ET.Element("eCitation")
    ET.SubElement(root, "meta", type="rr")
    ET.SubElement(root, "uId", id=f"CXR{n}")
    ET.SubElement(root, "pmcId", id=str(n))
    ET.SubElement(root, "docSource").text = "CXR"
    ET.SubElement(root, "IUXRId", id=str(n))
    ET.SubElement(root, "licenseType").text = "open-access"
    ET.SubElement(root, "publisher").text = "Indiana University"
    ET.SubElement(root, "title").text = "Indiana University Chest X-ray Collection"
    ET.SubElement(root, "specialty").text = "pulmonary diseases"
    ET.SubElement(root, "subset").text = "CXR"
    mc = ET.SubElement(
        root, "MedlineCitation", Owner="Indiana University", Status="supplied by publisher"
    )
    art = ET.SubElement(mc, "Article", PubModel="Electronic")
    ET.SubElement(art, "ArticleTitle").text = "Indiana University Chest X-ray Collection"
    ab = ET.SubElement(art, "Abstract")
    sections = {
        "COMPARISON": report.comparison,
        "INDICATION": report.indication,
        "FINDINGS": report.findings_text() if report.findings is not None else "",
        "IMPRESSION": report.impression_text() if report.impression is not None else "",
    }
    for label, text in sections.items():
        el = ET.SubElement(ab, "AbstractText", Label=label)
        if text:
            el.text = _text(text)
    ET.SubElement(art, "Affiliation").text = "Indiana University"
    mesh = ET.SubElement(root, "MeSH")
    positives = [f for f in study.findings if f.status == 1.0]
    if not positives:
        ET.SubElement(mesh, "major").text = "normal"
    else:
        automatic = []
        for f in positives:
            major, auto = mesh_terms(f)
            ET.SubElement(mesh, "major").text = major.replace("//", "/").rstrip("/")
            automatic.append(auto)
        for auto in dict.fromkeys(automatic):
            ET.SubElement(mesh, "automatic").text = auto
    caption = "Xray Chest PA and Lateral" if len(study.images) > 1 else "Xray Chest PA"
    for k, image_id in enumerate(image_ids(n, study)):
        pi = ET.SubElement(root, "parentImage", id=image_id)
        ET.SubElement(pi, "figureId").text = f"F{k + 1}"
        ET.SubElement(pi, "caption").text = caption
        panel = ET.SubElement(pi, "panel", type="single")
        ET.SubElement(panel, "url").text = f"/hadoop/storage/radiology/extract/{image_id}.jpg"
        ET.SubElement(panel, "imgModality").text = "7"
    ET.indent(root, space="   ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_report_xml(root: Path, n: int, study: StudyPlan, report: Report) -> Path:
    return atomic.write_bytes(root / XML_DIR / f"{n}.xml", openi_xml(n, study, report))
