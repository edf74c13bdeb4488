"""Radiology report text for a planned study, in MIMIC-CXR's layout or OpenI's sections.

The text is built from the study's *reported* findings (which differ from the drawn ones only
where label noise or a hedge was planted), sentence by sentence, with varied phrasing:
synonyms, severity words, laterality and zone words matching the drawn side, hedges ("possible",
"cannot be excluded") for uncertain findings, negated normal statements for absent ones, and
comparison cues for follow-up studies. Each sentence keeps a record of what it asserts
(:class:`Sentence`), which the Chest ImaGenome writer turns into sentence-to-box links.

Phrasing is chosen so that :mod:`mmcxr.synth.labeler` reads back exactly the planned labels
(a test checks it), and so that the text is strongly but not trivially predictive: negated
mentions share words with positive ones, and the INDICATION leaks only part of the answer.

MIMIC-CXR reports come in the layouts of the real release, at the shares the generator
config records (:func:`~mmcxr.synth.config.mimic_report_layouts`): FINDINGS and IMPRESSION;
IMPRESSION only (a third of real reports have no FINDINGS); FINDINGS only; one combined
``FINDINGS AND IMPRESSION:`` section; no section at all (the text follows COMPARISON); and
now and then an addendum block on top. A reader must cope with each, as the chapters do.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmcxr.synth.cohort import PlannedFinding, StudyPlan
from mmcxr.synth.config import MIMIC_LAYOUTS, SynthConfig, mimic_report_layouts
from mmcxr.synth.labels import FINDING_LABELS

_SIDE_ADJ = {"right": "right", "left": "left", "bilateral": "bilateral"}


@dataclass
class Mention:
    """One assertion of a sentence: a label, yes/no context, and where (for box links)."""

    label: str
    context: str  # "yes" (present or hedged) | "no" (negated)
    side: str | None = None
    zone: str | None = None
    device: str | None = None


@dataclass
class Sentence:
    text: str
    section: str  # "findings" | "impression"
    mentions: list[Mention] = field(default_factory=list)
    comparison: str | None = None  # new | unchanged | improved | worsened | resolved


@dataclass
class Report:
    """A report as sections of sentences; :meth:`mimic_text` lays it out like MIMIC-CXR.

    ``findings``/``impression`` are None when the report has no such section.
    ``impression_header`` is the header the impression is written under: ``IMPRESSION``;
    ``FINDINGS AND IMPRESSION`` or ``FINDINGS/IMPRESSION`` for a combined section (which
    readers count as the impression); ``""`` for a report whose text follows COMPARISON with
    no header at all (the MIT-LCP parser's last-paragraph case).
    """

    examination: str
    indication: str
    technique: str
    comparison: str
    findings: list[Sentence] | None
    impression: list[Sentence] | None
    addendum: str | None = None
    paragraph_breaks: list[int] = field(default_factory=list)
    impression_header: str = "IMPRESSION"

    @property
    def layout(self) -> str:
        """The section layout, one of :data:`~mmcxr.synth.config.MIMIC_LAYOUTS`."""
        if self.findings is not None:
            return "standard" if self.impression is not None else "findings_only"
        if self.impression is None or not self.impression_header:
            return "no_sections"
        return "impression_only" if self.impression_header == "IMPRESSION" else "combined"

    @property
    def sentences(self) -> list[Sentence]:
        return (self.findings or []) + (self.impression or [])

    def findings_text(self) -> str:
        return " ".join(s.text for s in self.findings or [])

    def impression_text(self) -> str:
        return " ".join(s.text for s in self.impression or [])

    def mimic_text(self) -> str:
        lines: list[str] = []
        if self.addendum:
            lines += [_centred("FINAL ADDENDUM"), " ADDENDUM:", " "]
            lines += _wrap(self.addendum)
            lines += [" ", " " + "_" * 78]
        lines += [_centred("FINAL REPORT")]
        lines += _wrap(f"EXAMINATION:  {self.examination}")
        lines += [" "] + _wrap(f"INDICATION:  {self.indication}")
        lines += [" "] + _wrap(f"TECHNIQUE:  {self.technique}")
        lines += [" "] + _wrap(f"COMPARISON:  {self.comparison}")
        if self.findings is not None:
            lines += [" ", " FINDINGS:", " "]
            paragraphs: list[list[str]] = [[]]
            for i, s in enumerate(self.findings):
                if i in self.paragraph_breaks and paragraphs[-1]:
                    paragraphs.append([])
                paragraphs[-1].append(s.text)
            for j, para in enumerate(paragraphs):
                if j:
                    lines.append(" ")
                lines += _wrap("  ".join(para))
        if self.impression is not None:
            header = [f" {self.impression_header}:", " "] if self.impression_header else []
            lines += [" ", *header]
            lines += _wrap(" ".join(s.text for s in self.impression))
        return "\n".join(lines) + "\n"


def _centred(word: str) -> str:
    return " " * 33 + word


def _wrap(text: str) -> list[str]:
    """MIMIC's layout: every line starts with one space and is at most 79 characters."""
    return [
        " " + line
        for line in textwrap.wrap(text, width=78, break_long_words=True, break_on_hyphens=False)
    ] or [" "]


# --------------------------------------------------------------------------------------------
# words


def _size(sev: float) -> str:
    return "small" if sev < 0.4 else "moderate" if sev < 0.72 else "large"


def _degree(sev: float) -> str:
    return "mild" if sev < 0.4 else "moderate" if sev < 0.72 else "severe"


def _adv(sev: float) -> str:
    return "mildly" if sev < 0.4 else "moderately" if sev < 0.72 else "markedly"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


class _Words:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def pick(self, *options: str) -> str:
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def region(self, side: str | None, zone: str | None) -> str:
        """'the right lower lobe', 'both lung bases', 'the left apex' ..."""
        s = _SIDE_ADJ.get(side or "", "")
        if side == "bilateral":
            return {
                "upper": self.pick("both upper lobes", "the upper lungs bilaterally"),
                "mid": self.pick("both mid lungs", "the mid lung zones bilaterally"),
                "lower": self.pick("both lower lobes", "the lung bases bilaterally"),
                "basal": self.pick("both lung bases", "the bases bilaterally"),
                "apical": self.pick("both apices", "the apices bilaterally"),
            }.get(zone or "lower", "both lungs")
        mid = "middle lobe" if side == "right" else "lingula"
        return (
            "the "
            + s
            + " "
            + {
                "upper": self.pick("upper lobe", "upper lung", "upper lung zone"),
                "mid": self.pick("mid lung", "mid lung zone", mid),
                "lower": self.pick("lower lobe", "lower lung", "lung base"),
                "basal": self.pick("lung base", "base", "costophrenic angle"),
                "apical": self.pick("apex", "lung apex", "apical region"),
            }.get(zone or "lower", "lung")
        )

    def lobe_adj(self, side: str | None, zone: str | None) -> str:
        """'right lower lobe', 'left basilar', 'bibasilar' ..."""
        if side == "bilateral":
            return {
                "lower": "bibasilar",
                "basal": "bibasilar",
                "upper": "bilateral upper lobe",
                "mid": "bilateral mid lung",
                "apical": "biapical",
            }.get(zone or "", "bilateral")
        s = side or ""
        return {
            "upper": f"{s} upper lobe",
            "mid": f"{s} mid lung",
            "lower": self.pick(f"{s} lower lobe", f"{s} basilar"),
            "basal": f"{s} basilar",
            "apical": f"{s} apical",
        }.get(zone or "", s)


# --------------------------------------------------------------------------------------------
# positive / hedged sentences per finding


def _finding_sentence(w: _Words, f: PlannedFinding, short: bool) -> str:
    """One sentence asserting ``f`` (hedged when ``f.status`` is -1)."""
    unc = f.status == -1.0
    side, zone, sev = f.side, f.zone, f.severity
    s = side or ""
    lab = f.label
    if lab == "Pleural Effusion":
        both = side == "bilateral"
        noun = "pleural effusions" if both else "pleural effusion"
        if unc:
            return w.pick(
                f"Possible small {s} {noun}.",
                f"A small {s} {noun} cannot be excluded.",
                f"Blunting of the {s} costophrenic angle{'s' if both else ''} "
                f"may reflect {'small effusions' if both else 'a small effusion'}.",
            )
        size = _size(sev)
        if short:
            return _cap(f"{size} {s} {noun}.")
        return w.pick(
            _cap(f"{size} {s} {noun} {'are' if both else 'is'} seen."),
            f"There {'are' if both else 'is a'} {size} {s} {noun}.",
            _cap(f"{size} {s} {noun}, layering dependently."),
            f"Blunting of the {s} costophrenic angle{'s' if both else ''} reflects "
            f"{size + ' effusions' if both else 'a ' + size + ' effusion'}.",
        )
    if lab == "Pneumothorax":
        size = "tiny" if sev < 0.22 else _size(sev)
        where = w.pick(f"{s} apical", s) if side != "bilateral" else "bilateral"
        if unc:
            return w.pick(
                f"Possible tiny {s} apical pneumothorax.",
                f"A small {s} apical pneumothorax cannot be excluded.",
            )
        if f.attrs.get("chest_tube") and not short:
            return f"There is a {size} residual {where} pneumothorax."
        return w.pick(
            _cap(f"{size} {where} pneumothorax."), f"There is a {size} {where} pneumothorax."
        )
    if lab == "Edema":
        deg = _degree(sev)
        if unc:
            return w.pick(
                "Possible mild interstitial edema.", "Mild pulmonary edema cannot be excluded."
            )
        if short:
            return _cap(f"{deg} pulmonary edema.")
        return w.pick(
            _cap(f"{deg} pulmonary edema."),
            f"There is {deg} interstitial pulmonary edema.",
            _cap(f"{deg} pulmonary vascular congestion with interstitial edema."),
            f"Findings are consistent with {deg} pulmonary edema.",
        )
    if lab == "Cardiomegaly":
        if unc:
            return w.pick("Borderline cardiomegaly.", "Possible mild cardiomegaly.")
        if short:
            return _cap(f"{_degree(sev)} cardiomegaly.")
        return w.pick(
            _cap(f"{_degree(sev)} cardiomegaly."),
            f"The heart is {_adv(sev)} enlarged.",
            f"Heart size is {_adv(sev)} enlarged.",
            _cap(f"{_degree(sev)} enlargement of the cardiac silhouette."),
        )
    if lab == "Enlarged Cardiomediastinum":
        if unc:
            return w.pick("Possible mediastinal widening.", "Possible widening of the mediastinum.")
        return w.pick(
            "The cardiomediastinal silhouette is enlarged.",
            "Mediastinal widening is noted.",
            "The mediastinum is widened.",
            "Widening of the mediastinum.",
        )
    if lab == "Atelectasis":
        adj = w.lobe_adj(side, zone)
        if unc:
            return w.pick(
                f"Possible {adj} atelectasis.",
                f"Atelectasis in {w.region(side, zone)} cannot be excluded.",
            )
        deg = "minimal" if sev < 0.3 else _degree(sev)
        if sev > 0.85 and side != "bilateral" and not short:
            return (
                _cap(f"{s} lower lobe collapse.")
                if zone in ("lower", "basal")
                else _cap(f"{deg} {adj} atelectasis.")
            )
        return w.pick(
            _cap(f"{deg} {adj} atelectasis."),
            _cap(
                f"{w.pick('linear', 'plate-like', 'subsegmental')} atelectasis "
                f"in {w.region(side, zone)}."
            ),
            f"There is {deg} atelectasis in {w.region(side, zone)}.",
        )
    if lab == "Consolidation":
        if unc:
            return w.pick(
                f"Possible consolidation in {w.region(side, zone)}.",
                f"Early consolidation in {w.region(side, zone)} is not excluded.",
            )
        return w.pick(
            f"Focal consolidation in {w.region(side, zone)}.",
            _cap(f"{w.lobe_adj(side, zone)} consolidation."),
            f"There is {'dense ' if sev > 0.6 else ''}consolidation in {w.region(side, zone)}.",
        )
    if lab == "Lung Opacity":
        if unc:
            return w.pick(
                f"Possible subtle opacity in {w.region(side, zone)}.",
                f"Questionable opacity in {w.region(side, zone)}.",
            )
        kind = "hazy" if sev < 0.4 else "patchy" if sev < 0.72 else "confluent"
        return w.pick(
            _cap(f"{kind} opacity in {w.region(side, zone)}."),
            _cap(f"{kind} {w.lobe_adj(side, zone)} opacities."),
            f"Increased opacification of {w.region(side, zone)}.",
            f"There is an ill-defined opacity in {w.region(side, zone)}.",
        )
    if lab == "Pneumonia":
        if unc:
            return w.pick(
                f"Pneumonia in {w.region(side, zone)} cannot be excluded.",
                f"Findings may represent early pneumonia in {w.region(side, zone)}.",
                f"Possible {w.lobe_adj(side, zone)} pneumonia.",
            )
        return w.pick(
            _cap(f"{w.lobe_adj(side, zone)} pneumonia."),
            f"Findings in {w.region(side, zone)} are consistent with pneumonia.",
            f"Pneumonia in {w.region(side, zone)}.",
        )
    if lab == "Lung Lesion":
        mm = int(round(5 + 45 * sev))
        if mm >= 30:
            thing = f"{mm / 10:.1f} cm mass"
        else:
            thing = f"{mm} mm nodule"
        if unc:
            return w.pick(
                f"Possible {thing} in {w.region(side, zone)}.",
                f"Nipple shadow versus {mm} mm nodule in {w.region(side, zone)}.",
            )
        tail = "; recommend chest CT." if not short and w.chance(0.4) else "."
        return w.pick(
            f"A {thing} is seen in {w.region(side, zone)}{tail}",
            _cap(f"{thing} in {w.region(side, zone)}{tail}"),
        )
    if lab == "Fracture":
        ribs = ("third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
        k = {"upper": 0, "mid": 2, "lower": 4}.get(zone or "mid", 2)
        rib = ribs[min(k + int(sev > 0.6), len(ribs) - 1)]
        if unc:
            return w.pick(
                f"Possible nondisplaced {s} {rib} rib fracture.",
                f"A {s} {rib} rib fracture cannot be excluded.",
            )
        return w.pick(
            f"{'Displaced' if sev > 0.6 else 'Nondisplaced'} fracture of the {s} {rib} rib.",
            _cap(f"{s} {rib} rib fracture, {'acute' if sev > 0.5 else 'likely healing'}."),
        )
    if lab == "Pleural Other":
        where = "biapical" if side == "bilateral" else f"{s} apical"
        if unc:
            return f"Possible {where} pleural thickening."
        return w.pick(
            _cap(f"{where} pleural thickening."),
            f"Pleural thickening at the {s + ' ' if side != 'bilateral' else ''}"
            f"ap{'ex' if side != 'bilateral' else 'ices'}.",
            _cap(f"calcified pleural plaques along the {s} hemithorax.")
            if side != "bilateral"
            else "Bilateral calcified pleural plaques.",
        )
    if lab == "Support Devices":
        return _device_sentence(w, f)
    raise ValueError(f"no sentence template for label {lab!r}")


def _device_sentence(w: _Words, f: PlannedFinding) -> str:
    d = f.attrs.get("device", "enteric tube")
    s = f.side or "right"
    if d == "endotracheal tube":
        return w.pick(
            f"Endotracheal tube terminates {w.pick('3', '4', '5')} cm above the carina.",
            "The endotracheal tube is in standard position.",
        )
    if d == "enteric tube":
        return w.pick(
            "Enteric tube courses below the diaphragm, tip in the stomach.",
            "Nasogastric tube tip is in the stomach.",
        )
    if d == "central line":
        return w.pick(
            f"{_cap(s)} internal jugular central venous catheter ends in the mid SVC.",
            f"{_cap(s)} subclavian catheter terminates at the cavoatrial junction.",
        )
    if d == "picc":
        return w.pick(
            f"{_cap(s)} PICC ends in the lower SVC.",
            f"{_cap(s)}-sided PICC terminates at the cavoatrial junction.",
        )
    if d == "pacemaker":
        return w.pick(
            "Left-sided pacemaker with leads in the right atrium and right ventricle.",
            "Dual-lead pacer device is unchanged in position.",
        )
    if d == "chest tube":
        return w.pick(
            f"{_cap(s)} chest tube is in place.",
            f"{_cap(s)}-sided chest tube terminates at the apex.",
        )
    return f"{_cap(d)} in place."


# --------------------------------------------------------------------------------------------
# normal statements for absent findings


def _negative_sentences(w: _Words, absent: set[str]) -> list[Sentence]:
    out: list[Sentence] = []

    def add(text: str, labels: tuple[str, ...]) -> None:
        out.append(Sentence(text, "findings", [Mention(lab, "no") for lab in labels]))

    pleural = [
        lab
        for lab in ("Consolidation", "Pleural Effusion", "Pneumothorax")
        if lab in absent and w.chance(0.8)
    ]
    if pleural:
        words = {
            "Consolidation": "focal consolidation",
            "Pleural Effusion": "pleural effusion",
            "Pneumothorax": "pneumothorax",
        }
        names = [words[lab] for lab in pleural]
        if len(names) == 1:
            listed = names[0]
        else:
            sep = w.pick(", or ", " or ") if len(names) > 2 else " or "
            listed = ", ".join(names[:-1]) + sep + names[-1]
        add(
            w.pick(f"No {listed}.", f"There is no {listed}.", f"No {listed} is seen."),
            tuple(pleural),
        )
    if "Edema" in absent and w.chance(0.45):
        add(w.pick("No pulmonary edema.", "There is no evidence of pulmonary edema."), ("Edema",))
    heart, media = "Cardiomegaly" in absent, "Enlarged Cardiomediastinum" in absent
    if heart and media and w.chance(0.5):
        add(
            w.pick(
                "Heart size and mediastinal contours are normal.",
                "Heart size and cardiomediastinal silhouette are within normal limits.",
            ),
            ("Cardiomegaly", "Enlarged Cardiomediastinum"),
        )
    else:
        if heart and w.chance(0.7):
            add(
                w.pick(
                    "Heart size is normal.",
                    "The heart is normal in size.",
                    "The cardiac silhouette is within normal limits.",
                    "Normal heart size.",
                ),
                ("Cardiomegaly",),
            )
        if media and w.chance(0.6):
            add(
                w.pick(
                    "The mediastinal contours are normal.",
                    "Mediastinal and hilar contours are unremarkable.",
                    "Normal cardiomediastinal silhouette.",
                ),
                ("Enlarged Cardiomediastinum",),
            )
    if "Fracture" in absent and w.chance(0.25):
        add(w.pick("No displaced rib fracture is seen.", "No acute fracture."), ("Fracture",))
    return out


# --------------------------------------------------------------------------------------------
# the report


_REASONS_BY_PROCESS = {
    "pneumonia": ("fever and cough", "productive cough", "fever, leukocytosis"),
    "heart_failure": ("shortness of breath", "dyspnea and leg swelling", "CHF exacerbation"),
    "pneumothorax": (
        "chest pain after fall",
        "status post chest tube placement",
        "sudden onset shortness of breath",
    ),
    "fracture": ("fall, chest wall pain", "trauma"),
    "lesion": ("weight loss", "hemoptysis", "smoker"),
}
_REASONS = (
    "chest pain",
    "shortness of breath",
    "cough",
    "preoperative evaluation",
    "hypoxia",
    "weakness",
    "fever",
    "tachycardia",
    "line placement",
    "altered mental status",
)
_QUESTIONS = {
    "pneumonia": "?pneumonia",
    "heart_failure": "?CHF",
    "pneumothorax": "?ptx",
    "effusion": "?effusion",
    "atelectasis": "?infiltrate",
}


def _indication(w: _Words, study: StudyPlan, style: str) -> str:
    reasons = _REASONS_BY_PROCESS.get(study.process, ())
    reason = w.pick(*reasons) if reasons and w.chance(0.6) else w.pick(*_REASONS)
    q = _QUESTIONS.get(study.process) if w.chance(0.5) else None
    if q is None and w.chance(0.12):
        q = w.pick(*_QUESTIONS.values())  # radiologists are asked about what is not there too
    who = "man" if study.sex == "M" else "woman"
    if style == "openi":
        text = f"XXXX-year-old {'male' if study.sex == 'M' else 'female'} with {reason}."
        return text if q is None else text[:-1] + f", {q.lstrip('?')}."
    text = f"___ year old {who} with {reason}"
    return text + (f"  // {q}" if q else "")


def _technique(study: StudyPlan) -> tuple[str, str]:
    views = [im.view for im in study.images]
    if study.portable:
        return "CHEST (PORTABLE AP)", "Single portable AP view of the chest." if len(
            views
        ) == 1 else "Portable AP and lateral views of the chest."
    if len(views) == 1:
        return "CHEST (SINGLE VIEW)", "Single PA view of the chest."
    return "CHEST (PA AND LAT)", "Chest PA and lateral"


def _comparison_phrase(w: _Words, f: PlannedFinding, prior: frozenset[str]) -> str | None:
    if f.label == "Support Devices":
        return None
    if f.label in prior:
        return w.pick("unchanged", "improved", "worsened") if w.chance(0.6) else None
    return "new" if w.chance(0.5) else None


def _attach_comparison(text: str, cue: str) -> str:
    tail = {
        "unchanged": ", unchanged from the prior study.",
        "new": ", new since ___.",
        "improved": ", improved compared to ___.",
        "worsened": ", increased since ___.",
    }[cue]
    return text[:-1] + tail if text.endswith(".") and not text.endswith("CT.") else text


def report_kwargs(config: SynthConfig, style: str) -> dict[str, Any]:
    """The :func:`compose_report` rates of ``config`` for one report ``style``.

    MIMIC-CXR reports take the addendum rate and the layout shares
    (:func:`~mmcxr.synth.config.mimic_report_layouts`); OpenI reports their own empty-section
    rates. The generator passes these, so the layout a cohort was written with is the one
    recorded in its ``synthetic_config.json``.
    """
    if style == "mimic":
        return {"addendum_rate": config.addendum_rate, "layouts": mimic_report_layouts(config)}
    if style == "openi":
        return {
            "no_findings_rate": config.no_findings_section_rate,
            "no_impression_rate": config.no_impression_section_rate,
        }
    raise ValueError(f"style must be 'mimic' or 'openi', got {style!r}")


def compose_report(
    study: StudyPlan,
    rng: np.random.Generator,
    *,
    style: str = "mimic",
    addendum_rate: float = 0.0,
    no_findings_rate: float = 0.0,
    no_impression_rate: float = 0.0,
    layouts: Mapping[str, float] | None = None,
) -> Report:
    """Write the report of ``study`` (``style`` "mimic" or "openi").

    The sections present are drawn either from ``layouts`` (MIMIC-CXR only: the share of
    each of :data:`~mmcxr.synth.config.MIMIC_LAYOUTS`, e.g. from :func:`report_kwargs`), or
    else from ``no_findings_rate`` and ``no_impression_rate`` (the latter among reports with
    FINDINGS). Without FINDINGS, everything the report says goes into the impression (as
    radiologists write a single-section report). ``addendum_rate`` applies to MIMIC-CXR only.
    """
    if style not in ("mimic", "openi"):
        raise ValueError(f"style must be 'mimic' or 'openi', got {style!r}")
    if layouts is not None:
        if style != "mimic":
            raise ValueError("layouts are MIMIC-CXR report layouts; OpenI takes the rates")
        unknown = set(layouts) - set(MIMIC_LAYOUTS)
        total = sum(layouts.values())
        if unknown or min(layouts.values(), default=0.0) < 0 or abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"layouts must share 1 over {MIMIC_LAYOUTS} (non-negative), got {dict(layouts)}"
            )
    w = _Words(rng)
    reported = study.reported()
    # every finding a report may call absent (devices are described, never negated)
    absent = {
        lab
        for lab in FINDING_LABELS
        if lab != "Support Devices"
        if not any(f.label == lab for f in reported)
    }
    followup = study.prior_study_id is not None

    # findings
    order = {
        "Support Devices": 0,
        "Lung Lesion": 1,
        "Consolidation": 2,
        "Lung Opacity": 3,
        "Pneumonia": 4,
        "Atelectasis": 5,
        "Edema": 6,
        "Pleural Effusion": 7,
        "Pneumothorax": 8,
        "Pleural Other": 9,
        "Cardiomegaly": 10,
        "Enlarged Cardiomediastinum": 11,
        "Fracture": 12,
    }
    findings: list[Sentence] = []
    for f in sorted(reported, key=lambda f: order[f.label]):
        text = _finding_sentence(w, f, short=False)
        cue = _comparison_phrase(w, f, study.prior_labels) if followup else None
        if cue:
            text = _attach_comparison(text, cue)
        findings.append(
            Sentence(
                text,
                "findings",
                [Mention(f.label, "yes", f.side, f.zone, f.attrs.get("device"))],
                cue,
            )
        )
    lungs_clear = not any(
        f.label
        in ("Consolidation", "Lung Opacity", "Pneumonia", "Edema", "Atelectasis", "Lung Lesion")
        for f in reported
    )
    intro: list[Sentence] = []
    if lungs_clear and w.chance(0.7):
        intro.append(
            Sentence(
                w.pick(
                    "The lungs are clear.",
                    "Lungs are well expanded and clear.",
                    "The lungs are well expanded and clear.",
                ),
                "findings",
            )
        )
    negatives = _negative_sentences(w, absent)
    if followup:
        for lab in sorted(study.prior_labels & absent):
            if lab in ("Pleural Effusion", "Pneumothorax", "Consolidation", "Edema") and w.chance(
                0.4
            ):
                word = {
                    "Pleural Effusion": "pleural effusion",
                    "Pneumothorax": "pneumothorax",
                    "Consolidation": "consolidation",
                    "Edema": "pulmonary edema",
                }[lab]
                negatives.append(
                    Sentence(
                        f"The previously seen {word} has resolved.",
                        "findings",
                        [Mention(lab, "no")],
                        "resolved",
                    )
                )
    # support devices first (as radiologists do), then parenchyma, then the negatives
    devices = [s for s in findings if s.mentions[0].label == "Support Devices"]
    others = [s for s in findings if s.mentions[0].label != "Support Devices"]
    body = devices + intro + others + negatives
    breaks = [len(devices)] if devices and len(body) > len(devices) else []
    if w.chance(0.3) and len(body) > 3:
        breaks.append(len(body) - len(negatives))

    # impression
    impression: list[Sentence] = []
    key = [f for f in reported if f.label != "Support Devices" or w.chance(0.6)]
    for f in sorted(key, key=lambda f: order[f.label]):
        impression.append(
            Sentence(
                _finding_sentence(w, f, short=True),
                "impression",
                [Mention(f.label, "yes", f.side, f.zone, f.attrs.get("device"))],
            )
        )
    if not any(f.label != "Support Devices" for f in reported):
        impression.insert(
            0,
            Sentence(
                w.pick(
                    "No acute cardiopulmonary process.",
                    "No acute intrathoracic process.",
                    "No acute cardiopulmonary abnormality.",
                    "Normal chest radiograph.",
                )
                if style == "mimic" or w.chance(0.6)
                else "Normal chest x-XXXX.",
                "impression",
            ),
        )
        if "Pneumonia" in absent and w.chance(0.25):
            impression.append(
                Sentence(
                    "No radiographic evidence of pneumonia.",
                    "impression",
                    [Mention("Pneumonia", "no")],
                )
            )
    elif "Pneumothorax" in absent and w.chance(0.3):
        impression.append(
            Sentence("No pneumothorax.", "impression", [Mention("Pneumothorax", "no")])
        )

    exam, technique = _technique(study)
    comparison = (
        ("___." if w.chance(0.5) else "___")
        if followup
        else w.pick("None.", "___", "None available.")
    )
    if style == "openi":
        comparison = "XXXX" if followup else w.pick("None.", "None", "")
    if layouts is None:  # FINDINGS, then IMPRESSION among the reports with FINDINGS
        has_findings = not w.chance(no_findings_rate)
        has_impression = not w.chance(no_impression_rate) if has_findings else True
        layout = "standard" if has_findings and has_impression else "other"
    else:
        names = [k for k in MIMIC_LAYOUTS if layouts.get(k, 0.0) > 0]
        cum = np.cumsum([layouts[k] for k in names])
        layout = names[min(int(np.searchsorted(cum, w.rng.random(), side="right")), len(names) - 1)]
        has_findings = layout in ("standard", "findings_only")
        has_impression = layout != "findings_only" or not body  # never an empty report
    header = "IMPRESSION"
    if layout == "combined":  # the release's spellings, about 2:1 (87 and 47 reports)
        header = w.pick("FINDINGS AND IMPRESSION", "FINDINGS AND IMPRESSION", "FINDINGS/IMPRESSION")
    elif layout == "no_sections":
        header = ""
    if not has_findings:
        # everything said goes into the impression
        impression = [Sentence(s.text, "impression", s.mentions, s.comparison) for s in body] + [
            s for s in impression if not s.mentions
        ]
        body_out = None
    else:
        body_out = body
    addendum = None
    if style == "mimic" and w.chance(addendum_rate):
        addendum = w.pick(
            "Findings were discussed with Dr. ___ by telephone at ___ on ___, "
            "at the time of discovery.",
            "The above findings were communicated to the covering team by Dr. ___ at ___.",
            "Comparison is made to the outside study from ___ which is similar.",
        )
    return Report(
        examination=exam,
        indication=_indication(w, study, style),
        technique=technique,
        comparison=comparison,
        findings=body_out,
        impression=impression if has_impression else None,
        addendum=addendum,
        paragraph_breaks=breaks,
        impression_header=header,
    )


def planned_labels(study: StudyPlan, report: Report) -> dict[str, float]:
    """What the labeled section asserts per label, from the plan (for tests and the GT table).

    The labeled section is the impression (a combined section, or the text under COMPARISON
    of a report without sections, included), else the findings.
    """
    section = report.impression if report.impression is not None else report.findings or []
    out: dict[str, float] = {}
    for s in section:
        for m in s.mentions:
            v = 0.0 if m.context == "no" else study.status(m.label)
            prev = out.get(m.label, math.nan)
            out[m.label] = (
                v if math.isnan(prev) or v == 1.0 or (v == -1.0 and prev == 0.0) else prev
            )
    return out
