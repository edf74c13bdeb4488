"""Report section parsing for MIMIC-CXR text (the MIT-LCP parser's rules, each on a report in
the release's layout) and OpenI XML, including the fallbacks."""

from __future__ import annotations

import pytest

from mmcxr.data import ReportError, parse_openi_xml, parse_sections, report_fields
from mmcxr.data.sections import join_sections, section_name

EXAMPLE = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ year old woman with ?pleural effusion  // ?pleural effusion

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  ___

 FINDINGS:

 Large left pleural effusion is new.  There is no pneumothorax.  Heart size
 is normal.

 IMPRESSION:

 Large left pleural effusion
"""


def test_mimic_sections_as_documented():
    s = parse_sections(EXAMPLE)
    assert s["examination"] == "CHEST (PA AND LAT)"
    assert s["indication"].startswith("___ year old woman")
    assert s["comparison"] == "___"
    assert s["findings"] == (
        "Large left pleural effusion is new. There is no pneumothorax. Heart size is normal."
    )
    assert s["impression"] == "Large left pleural effusion"
    assert s["preamble"] == "FINAL REPORT"
    f = report_fields(s)
    assert (f["findings_source"], f["impression_source"]) == ("findings", "impression")


def _report(body: str) -> str:
    """EXAMPLE's administrative sections followed by ``body`` (the release's layout)."""
    return EXAMPLE.split(" FINDINGS:")[0] + body


def test_findings_only_report_has_no_impression():
    """The last-paragraph fallback is for reports with neither section (MIT-LCP rule 6):
    a findings-only report keeps its findings, and its impression is missing, not a copy."""
    text = EXAMPLE.split(" IMPRESSION:")[0] + " \n Second paragraph of the findings.\n"
    s = parse_sections(text)
    assert "last_paragraph" not in s
    f = report_fields(s)
    assert (f["impression"], f["impression_source"]) == ("", "missing")
    assert f["findings"].startswith("Large left pleural effusion is new.")
    assert f["findings"].endswith("Second paragraph of the findings.")


def test_neither_section_falls_back_to_last_paragraph():
    """A report written on under COMPARISON: everything after that section's first
    paragraph is ``last_paragraph``, and the section keeps only its first paragraph."""
    s = parse_sections(_report(" \n Lungs are clear.\n \n No acute process.\n"))
    assert s["comparison"] == "___"
    assert s["last_paragraph"] == "Lungs are clear. No acute process."
    f = report_fields(s)
    assert (f["impression"], f["impression_source"]) == (s["last_paragraph"], "last_paragraph")
    assert (f["findings"], f["findings_source"]) == ("", "missing")
    # a blank line without the release's one space is a paragraph break too
    s = parse_sections(_report("\n\n Lungs are clear.\n"))
    assert s["last_paragraph"] == "Lungs are clear."
    # no paragraph break in the last section: nothing to fall back on
    text = EXAMPLE.split(" FINDINGS:")[0].rstrip() + "  Lungs are clear.\n"
    f = report_fields(parse_sections(text))
    assert (f["impression"], f["impression_source"]) == ("", "missing")


@pytest.mark.parametrize(
    "header", ["FINDINGS AND IMPRESSION", "FINDINGS/IMPRESSION", "IMPRESSION AND FINDINGS"]
)
def test_combined_header_counts_as_impression(header):
    s = parse_sections(_report(f" {header}:\n \n Clear lungs.  No effusion.\n"))
    assert s["impression"] == "Clear lungs. No effusion." and "findings" not in s
    f = report_fields(s)
    assert (f["impression_source"], f["findings_source"]) == ("impression", "missing")
    assert "last_paragraph" not in s


def test_other_sections_fallback_for_findings_and_study_headers():
    structured = _report(" LUNGS:  Clear.\n \n HEART:  Normal size.\n \n IMPRESSION:  Normal.\n")
    f = report_fields(parse_sections(structured))
    assert (f["findings"], f["findings_source"]) == ("Clear. Normal size.", "other_sections")
    # a header naming the study is a findings section (MIT-LCP rule 3), not a fallback
    views = EXAMPLE.replace(" FINDINGS:", " PA AND LATERAL VIEWS OF THE CHEST:")
    f = report_fields(parse_sections(views))
    assert f["findings_source"] == "findings"
    assert f["findings"].startswith("Large left pleural effusion is new.")
    only_impression = _report(" IMPRESSION:\n\n No acute process.\n")
    f = report_fields(parse_sections(only_impression))
    assert (f["findings"], f["findings_source"]) == ("", "missing")
    assert f["impression"] == "No acute process."


def test_addendum_and_repeated_section_last_wins():
    text = (
        " " * 33 + "FINAL ADDENDUM\n ADDENDUM:\n \n Findings discussed with Dr. ___.\n \n"
        " ______________________________________________________________________________\n"
        + EXAMPLE
        + "\n IMPRESSION:  Revised: small effusion.\n"
    )
    s = parse_sections(text)
    assert s["preamble"] == "FINAL ADDENDUM"
    assert s["addendum"].startswith("Findings discussed") and "FINAL REPORT" in s["addendum"]
    assert s["impression"] == "Revised: small effusion."


def test_empty_sections_are_dropped_before_the_last_one_wins():
    """A report title such as ``CHEST, PA LATERAL:`` and an empty repeated FINDINGS do not
    hide the real section (MIT-LCP rule 4)."""
    text = (
        " " * 33 + "FINAL REPORT\n CHEST, PA LATERAL:\n \n INDICATION:  cough\n \n"
        " FINDINGS:  Clear lungs.\n \n FINDINGS:\n \n IMPRESSION:\n \n"
    )
    s = parse_sections(text)
    assert s["findings"] == "Clear lungs." and "impression" not in s
    assert "last_paragraph" not in s  # a findings section exists


def test_header_rules_of_the_official_parser():
    # rule 2: a header line directly followed by another header line hides the second
    assert parse_sections("\n FINDINGS:\n IMPRESSION:  No acute process.\n") == {
        "preamble": "",
        "findings": "IMPRESSION: No acute process.",
    }
    # rule 1: a header on the very first line (no newline before it) is preamble
    s = parse_sections(" FINDINGS:  Clear.\n \n IMPRESSION:  Normal.\n")
    assert "findings" not in s and s["preamble"] == "FINDINGS: Clear."
    assert s["impression"] == "Normal."
    # CRLF line ends read like LF
    assert parse_sections(EXAMPLE.replace("\n", "\r\n")) == parse_sections(EXAMPLE)


@pytest.mark.parametrize(
    "header, name",
    [
        ("IMPRESSION", "impression"),
        ("CONCLUSION", "impression"),
        ("IMPRESSON", "impression"),
        ("FINDINGS AND IMPRESSION", "impression"),
        ("FINDING", "findings"),
        ("CHEST, TWO VIEWS", "findings"),
        ("PORTABLE SEMI-UPRIGHT RADIOGRAPH", "findings"),
        ("REASON FOR EXAM", "indication"),
        ("CLINICAL HISTORY", "history"),
        ("COMPARISONS", "comparison"),
        ("RECOMMENDATION(S)", "recommendations"),
        ("WET READ", "wet read"),
        ("LUNGS", "lungs"),
    ],
)
def test_section_names(header, name):
    assert section_name(header) == name


def test_openi_xml(openi_tree):
    root, truth = openi_tree
    rep = parse_openi_xml(root / "ecgen-radiology" / "1.xml")
    assert rep["uid"] == "CXR1"
    assert rep["findings"] == "The lungs are clear 1." and rep["impression"] == "Normal chest 1."
    assert rep["normal"] is True and rep["mesh_major"] == "normal"
    assert [im["image_id"] for im in rep["images"]] == list(truth.image_id[truth.uid == "CXR1"])
    empty_impr = parse_openi_xml(root / "ecgen-radiology" / "3.xml")
    assert empty_impr["impression_source"] == "last_paragraph"
    assert empty_impr["impression"] == "The lungs are clear 3."
    empty_find = parse_openi_xml(root / "ecgen-radiology" / "2.xml")
    assert (empty_find["findings"], empty_find["findings_source"]) == ("", "missing")
    assert empty_find["normal"] is False


def test_openi_malformed_xml_names_file(tmp_path):
    p = tmp_path / "9.xml"
    p.write_text("<eCitation><uId id='CXR9'/><Abstract>")
    with pytest.raises(ReportError, match=r"9\.xml: malformed XML"):
        parse_openi_xml(p)
    p.write_text("<eCitation><uId id='CXR9'/></eCitation>")
    with pytest.raises(ReportError, match=r"9\.xml: no AbstractText"):
        parse_openi_xml(p)


def test_join_sections_leaves_out_blank_and_repeated_ones():
    assert join_sections("A.", "B.") == "A. B."
    assert join_sections("A.", "A.") == "A."
    assert join_sections(float("nan"), " B. ", None, "") == "B."
