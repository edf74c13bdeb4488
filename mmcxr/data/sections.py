"""Report sections: FINDINGS and IMPRESSION out of MIMIC-CXR text and OpenI abstracts.

MIMIC-CXR's labels (CheXpert, NegBio) were computed from sections that the MIT-LCP parser
(``txt/section_parser.py`` and ``txt/create_section_files.py`` in MIT-LCP/mimic-cxr) cut out
of each report. A loader that cuts them differently trains on other text than the labels
were read from, so :func:`parse_sections` follows that parser's behaviour rule by rule:

1. **Headers.** A section starts at a newline, one space, an upper-case name (letters,
   spaces, ``()/,-``) and a colon followed by whitespace (:data:`SECTION_HEADER`, the
   release's own pattern). Text before the first header is the ``preamble`` (the centred
   ``FINAL REPORT`` / ``FINAL ADDENDUM`` line); a report without any header is all preamble.
   A header on the report's very first line has no newline before it and does not count.
2. **Skip after a header.** After a header the search for the next one resumes at the end of
   that header's line, so a header line directly followed by another header line
   (``FINDINGS:`` then `` IMPRESSION: ...``) leaves the second inside the first's text; the
   parser does this "to avoid some bad parses".
3. **Names.** A name is lower-cased and looked up in the parser's table of frequent
   spellings (``conclusion`` -> impression, ``reason for exam`` -> indication, typos such as
   ``impresson`` ...). In particular the **combined headers** ``FINDINGS AND IMPRESSION:``
   and ``FINDINGS/IMPRESSION:`` **count as the impression** (there is then no findings
   section). A name not in the table that *contains* ``impression``, ``findings``,
   ``history``, ``comparison`` or ``addendum`` (tried in that order) takes that name; one
   that names a view or the study (``chest``, ``portable``, ``pa and lateral``, ``two views``
   ...) is ``findings``. Other names are kept, lower-cased.
4. **Empty sections.** A FINDINGS or IMPRESSION section with no text is dropped (a report
   title such as ``CHEST, PA LATERAL:`` or an empty duplicate must not hide the real one).
5. **Repeats.** When a name occurs twice (an addendum repeating IMPRESSION) the *last*
   (non-empty, by rule 4) occurrence wins.
6. **Last paragraph, only when neither section exists.** A report with neither a FINDINGS
   nor an IMPRESSION section (a short report whose text follows COMPARISON without a header)
   gets a ``last_paragraph`` section: the text of its last section after that section's first
   paragraph, and the last section keeps only its first paragraph. A report with either
   section never gets one, so a findings-only report has no impression.

Two differences are ours, and small: texts are whitespace-normalised (line wraps at 79
characters collapse to one space), and a paragraph break is any blank line (the release
writes ``"\\n \\n"``; a blank line without the space, as in hand-edited files, counts too).
The official table sends the one-off typo ``ndication`` to impression, which looks like a
slip; here it is an indication.

:func:`report_fields` then picks the text of ``findings`` and ``impression`` and records,
per field, where it came from (``*_source``), so a chapter can count or exclude fallbacks
instead of silently training on them.
"""

from __future__ import annotations

import re

__all__ = [
    "SECTION_HEADER",
    "join_sections",
    "normalize_text",
    "parse_sections",
    "report_fields",
    "section_name",
]

#: A section header: newline, one space, upper-case name (letters, spaces, ()/,-), colon.
SECTION_HEADER = re.compile(r"\n ([A-Z ()/,-]+):\s")

#: Canonical section name -> the spellings the MIT-LCP parser's table folds onto it.
_SPELLINGS: dict[str, tuple[str, ...]] = {
    "impression": (
        "impression",
        "conclusion",
        "findings and impression",
        "findings/impression",
        "findings/ impression",
        "impresson",
        "imprression",
        "imoression",
        "impressoin",
        "imprssion",
        "impresion",
        "imperssion",
        "mpression",
        "impession",
    ),
    "findings": (
        "findings",
        "finding",
        "chest, two views",
        "findins",
        "findindgs",
        "findgings",
        "findngs",
        "findnings",
        "finidngs",
        "reference findings",
    ),
    "comparison": (
        "comparison",
        "comparisons",
        "reference exam",
        "comparison exam",
        "comparison film",
        "comparision",
        "comparsion",
        "comparrison",
        "comparisions",
    ),
    "indication": (
        "indication",
        "reason for examination",
        "reason for exam",
        "clinical indication",
        "idication",
        "ndication",
    ),
    "history": ("history", "clinical history", "clinical information", "patient history", "pfi"),
    "examination": ("examination", "exam", "type of examination"),
    "technique": ("technique",),
    "notification": ("notification",),
    "recommendations": ("recommendation(s)", "recommendations", "recommendation"),
    "addendum": ("addendum",),
    "date": ("date",),
    "comment": ("comment",),
    "wet read": ("wet read", "wetread"),
}
_CANONICAL = {spelling: name for name, spellings in _SPELLINGS.items() for spelling in spellings}

#: Rule 3's substring test, in the parser's order (``impression and findings`` -> impression).
_MAIN_SECTIONS = ("impression", "findings", "history", "comparison", "addendum")

#: Rule 3's view/study words: a header naming the study describes the image (findings).
_STUDY_WORDS = re.compile(
    "|".join(
        re.escape(w)
        for w in (
            "chest",
            "portable",
            "pa and lateral",
            "lateral and pa",
            "ap and lateral",
            "lateral and ap",
            "frontal and",
            "two views",
            "frontal view",
            "pa view",
            "ap view",
            "one view",
            "lateral view",
            "bone window",
            "frontal upright",
            "frontal semi-upright",
            "ribs",
            "pa and lat",
        )
    )
)

#: Sections about the request or the paperwork, never an image description: the findings
#: fallback (ours, see :func:`report_fields`) skips them.
_ADMIN = {
    "preamble",
    "examination",
    "indication",
    "history",
    "technique",
    "comparison",
    "wet read",
    "notification",
    "recommendations",
    "addendum",
    "date",
    "comment",
    "note",
    "last_paragraph",
}

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Collapse every run of whitespace (line wraps at 79 characters included) to one space."""
    return _WS.sub(" ", text).strip()


def join_sections(*parts: object) -> str:
    """Sections' texts joined with a space, in order (findings then impression, say): blank
    or missing (None, NaN) ones left out, and so is one that repeats an earlier one word for
    word (a report without headings gives the same text as findings and as impression)."""
    kept: list[str] = []
    for p in parts:
        s = "" if p is None or (isinstance(p, float) and p != p) else str(p).strip()
        if s and s not in kept:
            kept.append(s)
    return " ".join(kept)


def section_name(header: str) -> str:
    """The canonical name of a section header (rule 3 of the module docstring).

    ``"FINDINGS AND IMPRESSION"`` -> ``"impression"``, ``"CLINICAL HISTORY"`` ->
    ``"history"``, ``"PA AND LATERAL VIEWS OF THE CHEST"`` -> ``"findings"``.
    """
    name = _WS.sub(" ", header.strip().lower())
    if name in _CANONICAL:
        return _CANONICAL[name]
    for main in _MAIN_SECTIONS:
        if main in name:
            return main
    if _STUDY_WORDS.search(name):
        return "findings"
    return name


def _raw_sections(text: str) -> list[tuple[str, str]]:
    """``[(canonical name, raw text), ...]`` in report order (rules 1-3), preamble first."""
    m = SECTION_HEADER.search(text)
    if m is None:
        return [("preamble", text)]
    out = [("preamble", text[: m.start()])]
    while m is not None:
        start = m.end()
        line_end = text.find("\n", start)  # rule 2: resume at the end of the header's line
        nxt = SECTION_HEADER.search(text, line_end if line_end != -1 else start)
        out.append((section_name(m.group(1)), text[start : nxt.start() if nxt else len(text)]))
        m = nxt
    return out


def parse_sections(text: str) -> dict[str, str]:
    """Split a MIMIC-CXR report into ``{section name: text}`` as the MIT-LCP parser does.

    Keys are canonical lower-case names (``findings``, ``impression``, ``indication``,
    ``history`` ...), ``preamble`` (text before the first header), and ``last_paragraph``
    only for a report with neither FINDINGS nor IMPRESSION (rule 6). Texts are
    whitespace-normalised. The rules, each the official parser's, are listed in the module
    docstring.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    raw = [
        (name, body)
        for name, body in _raw_sections(text)
        if name not in ("findings", "impression") or normalize_text(body)  # rule 4
    ]
    names = {name for name, _ in raw}
    last_paragraph = ""
    if "findings" not in names and "impression" not in names:  # rule 6
        last_name, last_body = raw[-1]
        paragraphs = _PARAGRAPH_BREAK.split(last_body, maxsplit=1)
        if len(paragraphs) == 2 and normalize_text(paragraphs[1]):
            raw[-1] = (last_name, paragraphs[0])
            last_paragraph = normalize_text(paragraphs[1])
    sections: dict[str, str] = {}
    for name, body in raw:  # rule 5: a later occurrence overwrites an earlier one
        sections[name] = normalize_text(body)
    if last_paragraph:
        sections["last_paragraph"] = last_paragraph
    return sections


def report_fields(sections: dict[str, str]) -> dict[str, str]:
    """``findings``/``impression`` with fallbacks, and ``*_source`` saying which was used.

    - impression: the IMPRESSION section (a combined ``FINDINGS AND IMPRESSION`` one
      included, rule 3); else ``last_paragraph`` (``"last_paragraph"``), which
      :func:`parse_sections` only makes for a report with neither section, as the MIT-LCP
      parser does; else ``""`` (``"missing"``). A findings-only report therefore has no
      impression: its findings are not copied into it.
    - findings: the FINDINGS section; else the image-describing sections that are neither
      administrative nor IMPRESSION, e.g. ``LUNGS:`` and ``HEART:`` of a structured report
      (``"other_sections"``; ours, the official parser has no findings fallback); else
      ``""`` (``"missing"``).

    Callers that build ``sections`` themselves (the OpenI reader) decide what their
    ``last_paragraph`` holds.
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
