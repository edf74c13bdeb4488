"""CheXpert-style labels from report text: 1.0 positive, 0.0 negative, -1.0 uncertain, NaN blank.

Why hand-written: the CheXpert labeler and NegBio (what MIMIC-CXR's label files come from) need
a Java/BLLIP parsing stack that is not installable here, and no pip package reproduces them.
This labeler follows the same three stages (mention extraction, then classification of each
mention as uncertain / negated / positive by cue phrases in its clause, then aggregation with
positive > uncertain > negative > blank) and the same section rule as MIMIC-CXR (impression,
else findings, else the last section). It is a rule labeler tuned to the vocabulary of
:mod:`mmcxr.synth.reports`, so that the label files written with the synthetic cohort are what
a labeler *reads* from the text, hedges and negations included, not a copy of the plan.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from mmcxr.labels import CHEXPERT_LABELS

_W = r"(?:\w+ly )?"  # an optional adverb: "mildly", "moderately" ...

#: Mention patterns per label (lower-cased text).
MENTIONS: dict[str, list[str]] = {
    "Atelectasis": [r"\batelecta\w*", r"\bcollapse\b"],
    "Cardiomegaly": [
        r"\bcardiomegaly\b",
        r"\benlarged heart\b",
        rf"\bheart (?:size )?is {_W}enlarged",
        r"\benlarged cardiac silhouette",
        r"\benlargement of the cardiac silhouette",
        rf"\bcardiac silhouette is {_W}enlarged",
    ],
    "Consolidation": [r"\bconsolidat\w*"],
    "Edema": [r"\bedema\b"],
    "Enlarged Cardiomediastinum": [
        rf"\bcardiomediastinal silhouette is {_W}(?:enlarged|widened)",
        r"\benlarged cardiomediastinal silhouette",
        r"\bwidening of the mediastinum",
        r"\bmediastinal widening",
        rf"\bmediastinum is {_W}widened",
        r"\bwidened mediastinum",
    ],
    "Fracture": [r"\bfractures?\b"],
    "Lung Lesion": [r"\bnodules?\b", r"\bmass\b", r"\blesions?\b"],
    "Lung Opacity": [r"\bopacit\w*", r"\bopacification\b", r"\binfiltrat\w*"],
    "Pleural Effusion": [r"\beffusions?\b"],
    "Pleural Other": [r"\bpleural thickening\b", r"\bpleural plaques?\b", r"\bfibrothorax\b"],
    "Pneumonia": [r"\bpneumonias?\b", r"\binfectious process\b"],
    "Pneumothorax": [r"\bpneumothora(?:x|ces)\b"],
    "Support Devices": [
        r"\b(?:endotracheal|enteric|nasogastric|feeding|chest|tracheostomy) tubes?\b",
        r"\bcatheters?\b",
        r"\bpicc\b",
        r"\bpacemaker\b",
        r"\bpacer\b",
    ],
}

#: Normal statements that negate a label without naming it ("heart size is normal").
NORMALS: list[tuple[str, tuple[str, ...]]] = [
    (
        r"\bheart size and (?:the )?(?:cardio)?mediastinal (?:contours|silhouette) are "
        r"(?:normal|within normal limits|unremarkable)",
        ("Cardiomegaly", "Enlarged Cardiomediastinum"),
    ),
    (
        r"\bheart size is (?:normal|within normal limits)|\bnormal heart size\b|"
        r"\bheart is (?:normal in size|not enlarged)|"
        r"\bcardiac silhouette is (?:normal|within normal limits)",
        ("Cardiomegaly",),
    ),
    (
        r"\b(?:cardio)?mediastinal (?:and hilar )?(?:contours?|silhouettes?) (?:is|are) "
        r"(?:normal|within normal limits|unremarkable)|"
        r"\bnormal (?:cardio)?mediastinal (?:contours?|silhouette)",
        ("Enlarged Cardiomediastinum",),
    ),
]

#: Uncertainty cues before a mention (scope: to the end of the clause).
PRE_UNCERTAIN = (
    r"\bpossibl[ey]\b|\bprobabl[ey]\b|\bmay (?:represent|reflect|be)\b|\bcould (?:represent|"
    r"reflect|be)\b|\bconcerning for\b|\bsuspicious for\b|\bquestionable\b|\bquestion of\b|"
    r"\bcannot exclude\b|\bcan not exclude\b|\bborderline\b|\bversus\b|\bvs\.?\s|"
    r"\bsuggestive of\b|\bnot excluded\b"
)
#: Uncertainty cues after a mention (scope: from the start of the clause).
POST_UNCERTAIN = (
    r"\bcannot be (?:excluded|ruled out)\b|\bis not excluded\b|\bare not excluded\b|"
    r"\bnot (?:be )?ruled out\b|\bis possible\b|\bversus\b|\bis suspected\b"
)
#: Negation cues before a mention.
PRE_NEGATION = (
    r"\bno\b|\bwithout\b|\bnegative for\b|\bfree of\b|\bno evidence of\b|\bresolution of\b|"
    r"\bnor\b|\babsence of\b|\brather than\b"
)
#: Negation cues after a mention.
POST_NEGATION = (
    r"\b(?:is|are) not (?:seen|identified|present|visualized)\b|\bha(?:s|ve) resolved\b|"
    r"\b(?:is|are) no longer (?:seen|present|visualized)\b|\b(?:is|are) absent\b"
)

_CLAUSE = re.compile(r";|:|,?\s+\b(?:but|however|although|though|which|while)\b", re.I)
_SENTENCE = re.compile(r"(?<=[.?!])\s+(?=[A-Z0-9_])")
_SECTION = re.compile(r"\n ([A-Z ()/,-]+):\s")

_MENTION_RE = {lab: re.compile("|".join(p)) for lab, p in MENTIONS.items()}
_NORMAL_RE = [(re.compile(p), labs) for p, labs in NORMALS]
_PRE_U, _POST_U = re.compile(PRE_UNCERTAIN), re.compile(POST_UNCERTAIN)
_PRE_N, _POST_N = re.compile(PRE_NEGATION), re.compile(POST_NEGATION)


def _clauses(sentence: str) -> list[str]:
    return [c for c in _CLAUSE.split(sentence) if c and c.strip()]


def classify_mentions(text: str) -> dict[str, list[float]]:
    """Every mention in ``text``, classified: ``{label: [1.0 | 0.0 | -1.0, ...]}``."""
    out: dict[str, list[float]] = {}
    for sentence in _SENTENCE.split(" ".join(text.split())):
        for clause in _clauses(sentence.lower()):
            for rx, labs in _NORMAL_RE:
                if rx.search(clause):
                    for lab in labs:
                        out.setdefault(lab, []).append(0.0)
            for lab, rx in _MENTION_RE.items():
                for m in rx.finditer(clause):
                    before, after = clause[: m.start()], clause[m.end() :]
                    if _PRE_U.search(before) or _POST_U.search(after):
                        value = -1.0
                    elif _PRE_N.search(before) or _POST_N.search(after):
                        value = 0.0
                    else:
                        value = 1.0
                    out.setdefault(lab, []).append(value)
    return out


def aggregate(mentions: dict[str, list[float]]) -> dict[str, float]:
    """CheXpert aggregation per label, then the "No Finding" rule."""
    labels: dict[str, float] = {}
    for lab in CHEXPERT_LABELS:
        if lab == "No Finding":
            continue
        values = mentions.get(lab, [])
        labels[lab] = (
            1.0 if 1.0 in values else -1.0 if -1.0 in values else 0.0 if 0.0 in values else math.nan
        )
    findings = [v for lab, v in labels.items() if lab != "Support Devices"]
    labels["No Finding"] = math.nan if any(v in (1.0, -1.0) for v in findings) else 1.0
    return {lab: labels[lab] for lab in CHEXPERT_LABELS}


def label_text(text: str) -> dict[str, float]:
    """Label a piece of free text (no section selection)."""
    return aggregate(classify_mentions(text))


def split_sections(report: str) -> dict[str, str]:
    """``{SECTION NAME: text}`` by the MIMIC-CXR header pattern; "" holds the preamble.

    Kept here (not imported from :mod:`mmcxr.data`) so the generator does not depend on the
    loaders it is tested against.
    """
    text = "\n" + report.replace("\r\n", "\n")
    matches = list(_SECTION.finditer(text))
    out = {"": text[: matches[0].start()] if matches else text}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out[m.group(1).strip()] = text[m.end() : end]
    return out


def labeled_section(report: str) -> str:
    """The part of a MIMIC-CXR report its CheXpert labels come from.

    IMPRESSION, else FINDINGS, else the last section (the MIMIC-CXR convention).
    """
    sections = split_sections(report)
    for name in ("IMPRESSION", "FINDINGS"):
        if name in sections and sections[name].strip():
            return sections[name]
    named = [k for k in sections if k]
    return sections[named[-1]] if named else sections[""]


def label_report(report: str) -> dict[str, float]:
    """CheXpert-style labels of one MIMIC-CXR report (section rule applied)."""
    return label_text(labeled_section(report))


def label_reports(reports: Iterable[str]) -> list[dict[str, float]]:
    return [label_report(r) for r in reports]
