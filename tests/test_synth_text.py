"""Synthetic cohort without pixels: findings sampling, planted structure, report text, labeler."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from mmcxr.data.sections import parse_sections, report_fields
from mmcxr.synth.cohort import GRADED, no_finding, sample_cohort
from mmcxr.synth.config import MIMIC_LAYOUTS, SynthConfig, mimic_report_layouts
from mmcxr.synth.generate import child_rng
from mmcxr.synth.labeler import label_report, label_text, labeled_section
from mmcxr.synth.labels import CHEXPERT_LABELS, FINDING_LABELS, LATERALISED
from mmcxr.synth.reports import compose_report, planned_labels, report_kwargs

SECTION = re.compile(r"\n ([A-Z ()/,-]+):\s")


def _texts(studies, seed, **rates):
    return [compose_report(s, child_rng(seed, 3, s.index), **rates) for s in studies]


#: The default MIMIC layout with the rare variants made common enough to check each often.
RICH = SynthConfig(addendum_rate=0.04, mimic_combined_header_rate=0.03, mimic_no_sections_rate=0.04)


@pytest.fixture(scope="module")
def big():
    """A plan-only cohort large enough to measure rates (no pixels: fast)."""
    studies = sample_cohort(6000, seed=11)
    reports = _texts(studies, 11, **report_kwargs(RICH, "mimic"))
    texts = [r.mimic_text() for r in reports]
    labels = pd.DataFrame([label_report(t) for t in texts])
    meta = pd.DataFrame(
        {"view": [s.frontal_view for s in studies], "portable": [s.portable for s in studies]}
    )
    return studies, reports, texts, labels, meta


# ---------------------------------------------------------------------------- labeler rules


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "No pleural effusion, pneumothorax, or focal consolidation.",
            {"Pleural Effusion": 0.0, "Pneumothorax": 0.0, "Consolidation": 0.0, "No Finding": 1.0},
        ),
        ("Right lower lobe opacity, possibly pneumonia.", {"Lung Opacity": 1.0, "Pneumonia": -1.0}),
        ("A small left pleural effusion cannot be excluded.", {"Pleural Effusion": -1.0}),
        ("Cardiomegaly without pulmonary edema.", {"Cardiomegaly": 1.0, "Edema": 0.0}),
        (
            "Heart size and mediastinal contours are normal.",
            {"Cardiomegaly": 0.0, "Enlarged Cardiomediastinum": 0.0, "No Finding": 1.0},
        ),
        (
            "The previously seen pneumothorax has resolved.",
            {"Pneumothorax": 0.0, "No Finding": 1.0},
        ),
        (
            "Endotracheal tube terminates 4 cm above the carina.",
            {"Support Devices": 1.0, "No Finding": 1.0},
        ),
        ("Nipple shadow versus 8 mm nodule in the left mid lung.", {"Lung Lesion": -1.0}),
        ("Small pleural effusion. No pleural effusion.", {"Pleural Effusion": 1.0}),
    ],
)
def test_labeler_rules(text, expected):
    got = label_text(text)
    for lab in CHEXPERT_LABELS:
        want = expected.get(lab, math.nan)
        assert (math.isnan(got[lab]) and math.isnan(want)) or got[lab] == want, (lab, got[lab])


def test_labeler_reads_impression_then_findings():
    report = (
        " " * 33 + "FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n \n FINDINGS:\n \n"
        " Small right pleural effusion.\n \n IMPRESSION:\n \n No acute process.\n"
    )
    assert "No acute process" in labeled_section(report)
    assert math.isnan(label_report(report)["Pleural Effusion"])
    no_impression = report.split(" IMPRESSION:")[0]
    assert label_report(no_impression)["Pleural Effusion"] == 1.0


# ---------------------------------------------------------------------------- report text


#: The headers after COMPARISON of each layout (the combined one has two spellings).
LAYOUT_HEADERS = {
    "standard": [["FINDINGS", "IMPRESSION"]],
    "impression_only": [["IMPRESSION"]],
    "findings_only": [["FINDINGS"]],
    "combined": [["FINDINGS AND IMPRESSION"], ["FINDINGS/IMPRESSION"]],
    "no_sections": [[]],
}


@pytest.mark.slow
def test_report_layout(big):
    _, reports, texts, _, _ = big
    assert {r.layout for r in reports} == set(MIMIC_LAYOUTS)
    assert any(r.addendum for r in reports)
    for r, t in zip(reports[:3000], texts[:3000], strict=True):
        lines = t.rstrip("\n").split("\n")
        final = [i for i, line in enumerate(lines) if line.strip() == "FINAL REPORT"]
        assert len(final) == 1 and lines[final[0]].startswith(" " * 30)
        assert all(len(line) <= 79 and line.startswith(" ") for line in lines if line), t
        headers = SECTION.findall(t)
        start = headers.index("EXAMINATION")
        assert headers[start:][:4] == ["EXAMINATION", "INDICATION", "TECHNIQUE", "COMPARISON"]
        assert headers[start + 4 :] in LAYOUT_HEADERS[r.layout], (r.layout, t)
        assert "___" in t
        if r.addendum:  # the release's addendum block, on top
            assert lines[0].strip() == "FINAL ADDENDUM" and headers[0] == "ADDENDUM"
            assert lines[final[0] - 1].strip() == "_" * 78
        else:
            assert final == [0] and "ADDENDUM" not in headers
        if r.layout == "no_sections":  # the text follows COMPARISON after a blank line
            after = lines[[i for i, x in enumerate(lines) if x.startswith(" COMPARISON:")][0] :]
            assert after[1] == " " and after[2].strip()


@pytest.mark.slow
def test_section_statistics_follow_the_release(big):
    """Read back with the loader's parser (the MIT-LCP rules), the default layout has the
    real release's section statistics: a third without FINDINGS, a sixth without IMPRESSION;
    the combined header counts as the impression and only a report with neither section
    falls back to its last paragraph."""
    studies = sample_cohort(6000, seed=12)
    cfg = SynthConfig()
    reports = _texts(studies, 12, **report_kwargs(cfg, "mimic"))
    fields = pd.DataFrame([report_fields(parse_sections(r.mimic_text())) for r in reports])
    no_findings = (fields.findings_source == "missing").mean()
    no_impression = (fields.impression_source != "impression").mean()
    assert abs(no_findings - cfg.mimic_no_findings_rate) < 0.02
    assert abs(no_impression - cfg.mimic_no_impression_rate) < 0.015
    layouts = pd.Series([r.layout for r in reports])
    want = mimic_report_layouts(cfg)
    for name, share in want.items():
        assert abs((layouts == name).mean() - share) < 0.02, name
    fallback = fields.impression_source == "last_paragraph"
    assert (fallback == (layouts == "no_sections")).all()
    assert (fields.impression_source[layouts == "combined"] == "impression").all()
    assert (fields.findings_source[layouts == "findings_only"] == "findings").all()
    assert (fields.impression_source[layouts == "findings_only"] == "missing").all()
    assert abs(np.mean([r.addendum is not None for r in reports]) - cfg.addendum_rate) < 0.005


def test_layout_rates_are_validated_and_recorded():
    with pytest.raises(ValueError, match="MIMIC layout rates do not fit"):
        SynthConfig(mimic_no_sections_rate=0.3, mimic_no_impression_rate=0.2)
    with pytest.raises(ValueError, match="MIMIC layout rates do not fit"):
        SynthConfig(mimic_no_findings_rate=0.7, mimic_no_impression_rate=0.5)
    cfg = SynthConfig(mimic_no_findings_rate=0.5)
    assert SynthConfig.from_dict(cfg.to_dict()) == cfg
    shares = mimic_report_layouts(cfg)
    assert set(shares) == set(MIMIC_LAYOUTS) and math.isclose(sum(shares.values()), 1.0)
    assert math.isclose(shares["impression_only"] + shares["combined"] + shares["no_sections"], 0.5)
    study = sample_cohort(1, seed=0)[0]
    with pytest.raises(ValueError, match="layouts are MIMIC-CXR"):
        compose_report(study, child_rng(0, 3, 0), style="openi", layouts=shares)
    with pytest.raises(ValueError, match="layouts must share 1"):
        compose_report(study, child_rng(0, 3, 0), layouts={"standard": 0.5})
    assert set(report_kwargs(cfg, "openi")) == {"no_findings_rate", "no_impression_rate"}


@pytest.mark.slow
def test_labels_agree_with_text_and_plan(big):
    studies, reports, texts, labels, _ = big
    for s, r, t, (_, row) in zip(studies, reports, texts, labels.iterrows(), strict=True):
        plan = planned_labels(s, r)
        plan["No Finding"] = no_finding(s)
        for lab in CHEXPERT_LABELS:
            want, got = plan.get(lab, math.nan), row[lab]
            assert (math.isnan(want) and math.isnan(got)) or want == got, (lab, want, got, t)
        for lab in (x for x in FINDING_LABELS if x != "Support Devices"):  # said in the section
            assert (s.status(lab) in (1.0, -1.0)) == (row[lab] in (1.0, -1.0))


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=\.)\s+", " ".join(text.split()))


@pytest.mark.slow
def test_laterality_words_match_side(big):
    studies, _, texts, _, _ = big
    checked = 0
    for s, t in zip(studies, texts, strict=True):
        section = labeled_section(t)
        for f in s.findings:
            if f.label not in LATERALISED or f.side not in ("left", "right") or not f.reported:
                continue
            other = "left" if f.side == "right" else "right"
            hits = [x for x in _sentences(section) if label_text(x)[f.label] in (1.0, -1.0)]
            assert hits, (f, section)
            for x in hits:
                words = set(re.findall(r"[a-z]+", x.lower()))
                assert f.side in words and other not in words, (f.label, f.side, x)
                checked += 1
    assert checked > 500


@pytest.mark.slow
def test_text_is_strongly_predictive():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    studies = sample_cohort(1500, seed=3)
    texts = [r.mimic_text() for r in _texts(studies, 3)]
    labels = pd.DataFrame([label_report(t) for t in texts])
    vec = CountVectorizer(min_df=2).fit(texts[:1000])
    x_tr, x_te = vec.transform(texts[:1000]), vec.transform(texts[1000:])
    for lab in (
        "Atelectasis",
        "Cardiomegaly",
        "Edema",
        "Lung Opacity",
        "Pleural Effusion",
        "No Finding",
    ):
        y = (labels[lab] == 1.0).to_numpy().astype(int)
        lr = LogisticRegression(solver="liblinear").fit(x_tr, y[:1000])
        assert roc_auc_score(y[1000:], lr.predict_proba(x_te)[:, 1]) > 0.95, lab


# ---------------------------------------------------------------------------- cohort structure


@pytest.mark.slow
def test_ids_and_patients(big):
    studies = big[0]
    assert all(re.fullmatch(r"1\d{7}", str(s.subject_id)) for s in studies)
    assert all(re.fullmatch(r"5\d{7}", str(s.study_id)) for s in studies)
    ids = [im.dicom_id for s in studies for im in s.images]
    assert all(re.fullmatch(r"([0-9a-f]{8}-){4}[0-9a-f]{8}", d) for d in ids)
    assert len(set(ids)) == len(ids) and len({s.study_id for s in studies}) == len(studies)
    per_patient = pd.Series([s.subject_id for s in studies]).value_counts()
    assert per_patient.min() == 1 and per_patient.max() > 1
    for s in studies:
        assert s.images[0].view in ("PA", "AP")
        assert (s.frontal_view == "AP") == s.portable
        assert all(im.view in ("LATERAL", "LL") for im in s.images[1:])
    pa = [s for s in studies if not s.portable]
    assert np.mean([len(s.images) == 2 for s in pa]) > 0.85


@pytest.mark.slow
def test_prevalence_and_cooccurrence(big):
    studies, _, _, labels, meta = big
    pos = (labels[CHEXPERT_LABELS] == 1.0).mean()
    assert 0.28 < pos["No Finding"] < 0.38
    for lab in ("Fracture", "Lung Lesion", "Pleural Other"):
        assert pos[lab] < 0.05
    for lab in ("Atelectasis", "Cardiomegaly", "Pleural Effusion", "Lung Opacity"):
        assert 0.1 < pos[lab] < 0.3
    truth = pd.DataFrame([{lab: s.truth(lab) for lab in FINDING_LABELS} for s in studies])
    pn = truth[truth["Pneumonia"]]
    assert (pn["Consolidation"] | pn["Lung Opacity"]).all()
    assert truth.loc[truth["Cardiomegaly"], "Edema"].mean() > 2 * truth["Edema"].mean()
    assert truth.loc[truth["Edema"], "Pleural Effusion"].mean() > truth["Pleural Effusion"].mean()
    sd = truth["Support Devices"]
    assert sd[meta["portable"]].mean() > 4 * sd[~meta["portable"]].mean()


@pytest.mark.slow
def test_planted_pneumonia_share_in_pa_erect(big):
    _, _, _, labels, meta = big
    pa = labels[(meta["view"] == "PA").to_numpy()]
    pneu, nf = (pa["Pneumonia"] == 1.0).sum(), (pa["No Finding"] == 1.0).sum()
    assert abs(pneu / (pneu + nf) - 0.10) < 0.025
    off = sample_cohort(3000, seed=11, config=SynthConfig(pneumonia_share_pa=0.3))
    pa = [s for s in off if not s.portable]
    pneu = sum(s.status("Pneumonia") == 1.0 for s in pa)
    nf = sum(no_finding(s) == 1.0 for s in pa)
    assert abs(pneu / (pneu + nf) - 0.3) < 0.05


@pytest.mark.slow
def test_hidden_strata_spurious_marker_and_noise(big):
    studies = big[0]
    cfg = SynthConfig()
    ptx = [f for s in studies for f in s.findings if f.label == "Pneumothorax" and f.drawn]
    tube = np.mean([bool(f.attrs.get("chest_tube")) for f in ptx])
    assert abs(tube - cfg.chest_tube_rate_pneumothorax) < 0.12
    for s in studies:  # a tube drawn with the pneumothorax is reported as a device
        if any(f.attrs.get("chest_tube") for f in s.findings):
            assert any(f.attrs.get("device") == "chest tube" for f in s.findings)
    drawn = [f for s in studies for f in s.findings if f.drawn]
    sev = [f.severity for f in drawn if f.label not in GRADED]
    assert not any(cfg.subtle_threshold < v < 0.55 for v in sev)  # two separated strata
    # graded findings (heart size, mediastinum, edema) run on a continuum, mostly mild
    for lab in GRADED:
        graded = np.array([f.severity for f in drawn if f.label == lab])
        assert len(graded) > 50 and 0.1 <= graded.min() and graded.max() <= 0.98, lab
        assert np.median(graded) < 0.4 and (graded > 0.7).mean() > 0.05, lab
        assert ((graded > cfg.subtle_threshold) & (graded < 0.55)).any(), lab
    ap = [s for s in studies if s.portable]
    assert not any(s.spurious_marker for s in studies if not s.portable)
    with_l = [s.spurious_marker for s in ap if s.truth("Pneumonia")]
    without = [s.spurious_marker for s in ap if not s.truth("Pneumonia")]
    assert abs(np.mean(with_l) - cfg.spurious_p_positive) < 0.08
    assert abs(np.mean(without) - cfg.spurious_p_negative) < 0.03
    noisy = [s for s in studies if s.noise_label]
    assert abs(len(noisy) / len(studies) - cfg.label_noise_rate) < 0.012
    for s in studies:
        lab = s.noise_label
        disagree = {
            f.label
            for f in s.findings
            if f.drawn != f.reported and not (not f.drawn and f.status == -1.0)
        }  # hedges about absent things
        assert disagree == ({lab} if lab else set()), (s.noise_label, s.findings)


def test_switches_turn_structure_off():
    cfg = SynthConfig(
        plant_strata=False, spurious_label=None, label_noise_rate=0.0, pneumonia_share_pa=None
    )
    studies = sample_cohort(2000, seed=5, config=cfg)
    assert not any(s.spurious_marker or s.noise_label for s in studies)
    assert not any(f.attrs.get("chest_tube") for s in studies for f in s.findings)
    sev = [
        f.severity for s in studies for f in s.findings if f.drawn and f.label != "Support Devices"
    ]
    assert any(cfg.subtle_threshold < v < 0.55 for v in sev)


def test_plan_is_deterministic_and_seed_dependent():
    a = sample_cohort(200, seed=1)
    b = sample_cohort(200, seed=1)
    c = sample_cohort(200, seed=2)
    assert [s.images[0].dicom_id for s in a] == [s.images[0].dicom_id for s in b]
    ta = [r.mimic_text() for r in _texts(a, 1)]
    assert ta == [r.mimic_text() for r in _texts(b, 1)]
    assert [s.study_id for s in a] != [s.study_id for s in c]


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="uncertain_rate"):
        SynthConfig(uncertain_rate=1.5)
    with pytest.raises(ValueError, match="spurious_label"):
        SynthConfig(spurious_label="Flu")
    with pytest.raises(ValueError, match="process_weights"):
        SynthConfig(process_weights={"plague": 1.0})
    cfg = SynthConfig(label_noise_rate=0.1, split_fractions=(0.7, 0.15, 0.15))
    assert SynthConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="n must be"):
        sample_cohort(0)
