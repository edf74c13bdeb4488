"""Report section parsing for MIMIC-CXR text and OpenI XML, including the fallbacks."""

from __future__ import annotations

import pytest

from mmcxr.data import ReportError, parse_openi_xml, parse_sections, report_fields

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


def test_missing_impression_falls_back_to_last_paragraph():
    text = EXAMPLE.split(" IMPRESSION:")[0] + "\n Second paragraph, the conclusion.\n"
    f = report_fields(parse_sections(text))
    assert f["impression_source"] == "last_paragraph"
    assert f["impression"] == "Second paragraph, the conclusion."
    assert f["findings"].startswith("Large left pleural effusion is new.")


def test_missing_findings_uses_other_sections_or_reports_missing():
    no_findings = EXAMPLE.replace(" FINDINGS:", " PA AND LATERAL VIEWS OF THE CHEST:")
    f = report_fields(parse_sections(no_findings))
    assert f["findings_source"] == "other_sections"
    assert f["findings"].startswith("Large left pleural effusion is new.")
    only_impression = EXAMPLE.split(" FINDINGS:")[0] + " IMPRESSION:\n\n No acute process.\n"
    f = report_fields(parse_sections(only_impression))
    assert (f["findings"], f["findings_source"]) == ("", "missing")
    assert f["impression"] == "No acute process."


def test_addendum_and_repeated_section_last_wins():
    text = (
        "                                 ADDENDUM\n Findings discussed with Dr. ___.\n"
        " ______________________________________________________________________________\n"
        + EXAMPLE
        + "\n IMPRESSION:  Revised: small effusion.\n"
    )
    s = parse_sections(text)
    assert "ADDENDUM" in s["preamble"] and "discussed" in s["preamble"]
    assert s["impression"] == "Revised: small effusion."


def test_synonym_headers_are_folded():
    text = "\n FINDINGS AND IMPRESSION:  Clear lungs.\n\n CONCLUSION:  Normal.\n"
    s = parse_sections(text)
    assert s["findings"] == "Clear lungs." and s["impression"] == "Normal."


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
