"""IU chest X-ray collection (OpenI / NLMCXR) in both editions people download.

* The NLM edition (format ``openi``): ``ecgen-radiology/<n>.xml`` reports and one PNG per
  ``parentImage`` under ``NLMCXR_png/``, plus the ``indiana_projections.csv`` view table that
  the Kaggle copy added (the XML has no view tag, so users of the XML join it in).
* The Kaggle edition (format ``openi-kaggle``): ``indiana_reports.csv``,
  ``indiana_projections.csv`` and ``images/images_normalized/<filename>``, no XML.

Image ids come in the release's two forms: most are ``CXR<n>_IM-<series>-<k>001``, a few
carry an extra ``_<k>`` infix (``CXR1_1_IM-0001-3001``); the Kaggle file names drop both the
``CXR`` and the infix (``1_IM-0001-3001.dcm.png``), so a loader that only strips ``CXR``
loses the view of every infixed image. Both forms are written here so the loaders meet them.

OpenI has no CheXpert labels: what it carries is MeSH indexing, a manual ``<major>`` coding
(headings with qualifiers such as ``Pleural Effusion/right/small``, or ``normal``) and an
``<automatic>`` indexing of the text with its own, sparser vocabulary
(:data:`mmcxr.synth.labels.OPENI_AUTOMATIC`) that agrees with the major headings in only
about 7% of reports. The pixel truth stays in the ground-truth table. De-identified words are
``XXXX``, as in the release.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmcxr import atomic
from mmcxr.synth.cohort import PlannedFinding, StudyPlan
from mmcxr.synth.labels import OPENI_AUTOMATIC
from mmcxr.synth.reports import Report
from mmcxr.synth.writers import write_csv

XML_DIR = "ecgen-radiology"
PNG_DIR = "NLMCXR_png"
PROJECTIONS_FILE = "indiana_projections.csv"
KAGGLE_REPORTS_FILE = "indiana_reports.csv"
KAGGLE_IMAGE_DIR = "images/images_normalized"

#: Share of studies whose image ids carry the ``_<k>`` infix (report 1 always does, as in the
#: release); chosen from the study id, so every writer and the ground truth agree on it.
INFIX_SHARE = 0.1

#: Chance that a manual finding is also indexed automatically, in reports that do not agree.
AUTOMATIC_KEEP = 0.55
#: Chance that the automatic indexing picks an alternative term where it has one.
AUTOMATIC_ALTERNATIVE = 0.25

_ZONE_WORD = {
    "upper": "upper lobe",
    "mid": "middle lobe",
    "lower": "lower lobe",
    "basal": "base",
    "apical": "apex",
}


# --------------------------------------------------------------------------------------------
# ids and file names


def has_infix(n: int, study: StudyPlan) -> bool:
    """Whether report ``n``'s image ids take the ``_<k>`` infix (``CXR1_1_IM-...``)."""
    return n == 1 or (study.study_id % 1000) < INFIX_SHARE * 1000


def _image_tails(study: StudyPlan) -> list[str]:
    """``IM-<series>-<k>001`` per image (frontal first): the part every id form shares."""
    series = 1 + study.index % 9999
    return [f"IM-{series:04d}-{k + 1}001" for k in range(len(study.images))]


def image_ids(n: int, study: StudyPlan) -> list[str]:
    """The XML's ``parentImage`` ids (and PNG stems): ``CXR<n>[_1]_IM-<series>-<k>001``."""
    head = f"CXR{n}_1" if has_infix(n, study) else f"CXR{n}"
    return [f"{head}_{tail}" for tail in _image_tails(study)]


def kaggle_image_ids(n: int, study: StudyPlan) -> list[str]:
    """The Kaggle edition's image names without ``.dcm.png``: ``<n>_IM-...``, never an infix."""
    return [f"{n}_{tail}" for tail in _image_tails(study)]


def kaggle_filenames(n: int, study: StudyPlan) -> list[str]:
    """``indiana_projections.csv`` file names: ``<n>_IM-<series>-<k>001.dcm.png``."""
    return [f"{i}.dcm.png" for i in kaggle_image_ids(n, study)]


def _projection(view: str) -> str:
    return "Frontal" if view in ("PA", "AP") else "Lateral"


def projection_table(studies: list[StudyPlan]) -> pd.DataFrame:
    """``uid, filename, projection`` in the Kaggle table's real form (uid an integer)."""
    rows = []
    for s in studies:
        n = s.index + 1
        for im, filename in zip(s.images, kaggle_filenames(n, s), strict=True):
            rows.append({"uid": n, "filename": filename, "projection": _projection(im.view)})
    return pd.DataFrame(rows, columns=["uid", "filename", "projection"])


def write_projections(root: Path, studies: list[StudyPlan]) -> Path:
    """``indiana_projections.csv`` beside the XML: the view table that users of the NLM edition
    take from the Kaggle copy (the XML has no view tag); its names are Kaggle's, not the XML's."""
    return write_csv(projection_table(studies), root / PROJECTIONS_FILE)


# --------------------------------------------------------------------------------------------
# MeSH


def _deg(sev: float) -> str:
    return "mild" if sev < 0.4 else "moderate" if sev < 0.72 else "severe"


def _size(sev: float) -> str:
    return "small" if sev < 0.4 else "moderate" if sev < 0.72 else "large"


def major_term(f: PlannedFinding) -> str:
    """The manual (``<major>``) MeSH term for one positive finding: heading and qualifiers."""
    side = f.side or ""
    zone = _ZONE_WORD.get(f.zone or "", "")
    lab = f.label
    if lab == "Cardiomegaly":
        term = f"Cardiomegaly/{_deg(f.severity)}"
    elif lab == "Pleural Effusion":
        term = f"Pleural Effusion/{side}/{_size(f.severity)}"
    elif lab == "Pneumothorax":
        term = f"Pneumothorax/{side}/{_size(f.severity)}"
    elif lab == "Atelectasis":
        term = f"Pulmonary Atelectasis/{zone}/{side}/{_deg(f.severity)}"
    elif lab == "Consolidation":
        term = f"Consolidation/lung/{zone}/{side}"
    elif lab == "Lung Opacity":
        term = f"Opacity/lung/{zone}/{side}"
    elif lab == "Pneumonia":
        term = f"Pneumonia/{side}/{zone}"
    elif lab == "Edema":
        term = f"Pulmonary Edema/{_deg(f.severity)}"
    elif lab == "Enlarged Cardiomediastinum":
        term = "Mediastinum/enlarged"
    elif lab == "Fracture":
        term = f"Fractures, Bone/ribs/{side}"
    elif lab == "Lung Lesion":
        term = f"{'Mass' if f.severity >= 0.56 else 'Nodule'}/lung/{zone}/{side}"
    elif lab == "Pleural Other":
        term = f"Thickening/pleura/apex/{side}"
    elif lab == "Support Devices":
        device = str(f.attrs.get("device", ""))
        if device == "pacemaker":
            term = "Pacemaker, Artificial"
        elif device in ("central line", "picc"):
            term = "Catheters, Indwelling"
        else:
            term = "Tube, Inserted"
    else:
        raise ValueError(f"no MeSH term for {lab!r}")
    while "//" in term:
        term = term.replace("//", "/")
    return term.rstrip("/")


def heading(term: str) -> str:
    """A MeSH term's heading: the text before its first qualifier (``Opacity/lung`` -> Opacity)."""
    return term.split("/", 1)[0].strip()


def mesh_agrees(major: list[str] | tuple[str, ...], automatic: list[str] | tuple[str, ...]) -> bool:
    """The agreement the real release shows in 285 of 3,955 reports: the set of automatic
    terms equals the set of major headings, lower-cased. ``normal`` reports carry no automatic
    terms, so they never agree."""
    heads = {heading(t).lower() for t in major if t.strip()}
    return bool(heads) and heads == {t.strip().lower() for t in automatic if t.strip()}


@dataclass(frozen=True)
class MeshTerms:
    """One report's MeSH: ``major`` (``("normal",)`` for a normal study) and ``automatic``."""

    major: tuple[str, ...]
    automatic: tuple[str, ...]

    @property
    def problems(self) -> tuple[str, ...]:
        """The Kaggle table's ``Problems``: the major headings, each once."""
        return tuple(dict.fromkeys(heading(t) for t in self.major))


def plan_mesh(studies: list[StudyPlan], seed: int, agreement_rate: float) -> dict[int, MeshTerms]:
    """MeSH for every study (keyed by ``study.index``), the same in both editions.

    ``round(agreement_rate * n)`` abnormal studies whose every heading has an automatic term
    are indexed in full (they agree); every other abnormal study keeps each automatic term with
    probability :data:`AUTOMATIC_KEEP` (some with an alternative term), and one that would
    still agree by chance loses a term, so the measured agreement equals the rate whenever
    enough studies qualify. Normal studies get ``normal`` and no automatic terms. A study
    whose ``report_edits`` say ``mesh_flipped`` is indexed against its text: ``normal`` when
    the text states a finding, the drawn findings' terms when it states none.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(5,)))
    majors: dict[int, tuple[str, ...]] = {}
    for s in studies:
        positives = [f for f in s.findings if f.status == 1.0]
        if "mesh_flipped" in s.report_edits:  # the indexer contradicts the text (see cohort)
            positives = [] if positives else [f for f in s.findings if f.drawn]
        majors[s.index] = (
            tuple(dict.fromkeys(major_term(f) for f in positives)) if positives else ("normal",)
        )
    eligible = [
        s.index
        for s in studies
        if majors[s.index] != ("normal",)
        and all(OPENI_AUTOMATIC.get(heading(t)) for t in majors[s.index])
    ]
    k = min(len(eligible), int(round(agreement_rate * len(studies))))
    agree = {int(i) for i in rng.choice(eligible, size=k, replace=False)} if k else set()
    out: dict[int, MeshTerms] = {}
    for s in studies:
        major = majors[s.index]
        if major == ("normal",):
            out[s.index] = MeshTerms(major, ())
            continue
        heads = list(dict.fromkeys(heading(t) for t in major))
        if s.index in agree:
            auto = [OPENI_AUTOMATIC[h][0] for h in heads]
        else:
            auto = []
            for h in heads:
                terms = OPENI_AUTOMATIC.get(h, ())
                if terms and rng.random() < AUTOMATIC_KEEP:
                    alt = len(terms) > 1 and rng.random() < AUTOMATIC_ALTERNATIVE
                    auto.append(terms[1] if alt else terms[0])
            if mesh_agrees(major, auto):  # agreement is planted, never by chance
                auto.pop(int(rng.integers(len(auto))))
        out[s.index] = MeshTerms(major, tuple(dict.fromkeys(auto)))
    return out


# --------------------------------------------------------------------------------------------
# the NLM edition: one XML per report


def _text(s: str) -> str:
    return s.replace("___", "XXXX")


def _sections(report: Report) -> dict[str, str]:
    return {
        "COMPARISON": _text(report.comparison),
        "INDICATION": _text(report.indication),
        "FINDINGS": _text(report.findings_text()) if report.findings is not None else "",
        "IMPRESSION": _text(report.impression_text()) if report.impression is not None else "",
    }


def _caption(study: StudyPlan) -> str:
    return "Xray Chest PA and Lateral" if len(study.images) > 1 else "Xray Chest PA"


def openi_xml(n: int, study: StudyPlan, report: Report, mesh: MeshTerms) -> bytes:
    """Report ``n`` as the release's ``ecgen-radiology/<n>.xml``."""
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
    for label, text in _sections(report).items():
        el = ET.SubElement(ab, "AbstractText", Label=label)
        if text:
            el.text = text
    ET.SubElement(art, "Affiliation").text = "Indiana University"
    mesh_el = ET.SubElement(root, "MeSH")
    for term in mesh.major:
        ET.SubElement(mesh_el, "major").text = term
    for term in mesh.automatic:
        ET.SubElement(mesh_el, "automatic").text = term
    caption = _caption(study)
    for k, image_id in enumerate(image_ids(n, study)):
        pi = ET.SubElement(root, "parentImage", id=image_id)
        ET.SubElement(pi, "figureId").text = f"F{k + 1}"
        ET.SubElement(pi, "caption").text = caption
        panel = ET.SubElement(pi, "panel", type="single")
        ET.SubElement(panel, "url").text = f"/hadoop/storage/radiology/extract/{image_id}.jpg"
        ET.SubElement(panel, "imgModality").text = "7"
    ET.indent(root, space="   ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_report_xml(root: Path, n: int, study: StudyPlan, report: Report, mesh: MeshTerms) -> Path:
    return atomic.write_bytes(root / XML_DIR / f"{n}.xml", openi_xml(n, study, report, mesh))


# --------------------------------------------------------------------------------------------
# the Kaggle edition: two CSVs and a folder of PNGs


def kaggle_reports(
    studies: list[StudyPlan], reports: dict[int, Report], mesh: dict[int, MeshTerms]
) -> pd.DataFrame:
    """``indiana_reports.csv``: one row per report, ``MeSH`` the ``;``-joined major terms and
    ``Problems`` their headings (``normal`` for a normal study, in both), empty sections blank."""
    rows = []
    for s in studies:
        text = _sections(reports[s.study_id])
        m = mesh[s.index]
        rows.append(
            {
                "uid": s.index + 1,
                "MeSH": ";".join(m.major),
                "Problems": ";".join(m.problems),
                "image": _caption(s),
                "indication": text["INDICATION"],
                "comparison": text["COMPARISON"],
                "findings": text["FINDINGS"],
                "impression": text["IMPRESSION"],
            }
        )
    cols = ["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings"]
    return pd.DataFrame(rows, columns=[*cols, "impression"])


def write_kaggle_tables(
    root: Path,
    studies: list[StudyPlan],
    reports: dict[int, Report],
    mesh: dict[int, MeshTerms],
) -> None:
    """The Kaggle edition's two tables (the PNGs are written by the renderer)."""
    write_csv(kaggle_reports(studies, reports, mesh), root / KAGGLE_REPORTS_FILE)
    write_projections(root, studies)
