"""Report sections: FINDINGS and IMPRESSION out of MIMIC-CXR text and OpenI abstracts.

MIMIC-CXR reports mark a section by a line starting with one space, an upper-case name and a
colon; the MIT-LCP section parser splits on exactly that pattern, and so do we (the regex is
the one in the release's documentation). Section names vary across radiologists, so a small
synonym table folds them onto canonical names. About a third of real reports have no
FINDINGS, and some no IMPRESSION; the MIT-LCP parser then takes the report's *last
paragraph*, which is where radiologists put the conclusion. :func:`report_fields` does the
same and records, per field, where the text came from, so a chapter can count or exclude the
fallbacks instead of silently training on them.
"""

from __future__ import annotations

import re

__all__ = ["SECTION_HEADER", "normalize_text", "parse_sections", "report_fields"]

#: A section header: newline, one space, upper-case name (letters, spaces, ()/,-), colon.
SECTION_HEADER = re.compile(r"\n ([A-Z ()/,-]+):\s")

#: Header spellings folded onto canonical section names (others are kept, lower-cased).
_SYNONYMS = {
    "finding": "findings",
    "findings": "findings",
    "findings and impression": "findings",
    "findings/impression": "findings",
    "impression and findings": "findings",
    "impressions": "impression",
    "impression": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "examination": "examination",
    "exam": "examination",
    "indication": "indication",
    "indications": "indication",
    "history": "indication",
    "clinical history": "indication",
    "reason for exam": "indication",
    "technique": "technique",
    "comparison": "comparison",
    "comparisons": "comparison",
    "wet read": "wet read",
}

#: Sections that describe the request rather than the image; never a findings fallback.
_ADMIN = {
    "preamble",
    "examination",
    "indication",
    "technique",
    "comparison",
    "wet read",
    "notification",
    "recommendation(s)",
    "recommendations",
    "addendum",
    "last_paragraph",
}

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_LEADING_HEADER = re.compile(r"^\s*[A-Z ()/,-]+:\s*")
_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Collapse every run of whitespace (line wraps at 79 characters included) to one space."""
    return _WS.sub(" ", text).strip()


def parse_sections(text: str) -> dict[str, str]:
    """Split a MIMIC-CXR report into ``{section name: text}``.

    Keys are canonical lower-case names (``findings``, ``impression``, ``indication`` ...),
    plus ``preamble`` (text before the first header: the ``FINAL REPORT`` line and any
    addenda) and ``last_paragraph``. Texts are whitespace-normalised. When a section appears
    twice (an addendum repeating IMPRESSION), the last one wins, as in the MIT-LCP parser.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.startswith("\n"):
        text = "\n" + text  # a header on the very first line still counts
    sections: dict[str, str] = {}
    matches = list(SECTION_HEADER.finditer(text))
    sections["preamble"] = normalize_text(text[: matches[0].start()] if matches else text)
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        name = _WS.sub(" ", m.group(1).strip().lower())
        name = _SYNONYMS.get(name, name)
        sections[name] = normalize_text(text[m.end() : end])
    sections["last_paragraph"] = _last_paragraph(text)
    return sections


def _last_paragraph(text: str) -> str:
    for para in reversed(_PARAGRAPH_BREAK.split(text)):
        body = normalize_text(_LEADING_HEADER.sub("", para.strip("\n"), count=1))
        if body and not set(body) <= {"_"}:
            return body
    return ""


def report_fields(sections: dict[str, str]) -> dict[str, str]:
    """``findings``/``impression`` with fallbacks, and ``*_source`` saying which was used.

    - findings: the FINDINGS section; else the image-describing sections that are neither
      administrative nor IMPRESSION (``"other_sections"``); else ``""`` (``"missing"``).
    - impression: the IMPRESSION section; else the report's last paragraph
      (``"last_paragraph"``, the MIT-LCP fallback); else ``""`` (``"missing"``).
    """
    out: dict[str, str] = {}
    if sections.get("findings"):
        out["findings"], out["findings_source"] = sections["findings"], "findings"
    else:
        other = [
            v for k, v in sections.items() if k not in _ADMIN | {"findings", "impression"} and v
        ]
        if other:
            out["findings"], out["findings_source"] = " ".join(other), "other_sections"
        else:
            out["findings"], out["findings_source"] = "", "missing"
    if sections.get("impression"):
        out["impression"], out["impression_source"] = sections["impression"], "impression"
    elif sections.get("last_paragraph"):
        out["impression"], out["impression_source"] = sections["last_paragraph"], "last_paragraph"
    else:
        out["impression"], out["impression_source"] = "", "missing"
    return out
