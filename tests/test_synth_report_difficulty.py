"""The report informativeness knob: it changes what reports say (and OpenI's MeSH), never the
pixels; it is recorded; and a harder knob makes the text a weaker witness of the film."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import generate_at
from sklearn.metrics import roc_auc_score

from mmcxr import book, params
from mmcxr.names import CONFIG_FILE, GROUND_TRUTH_FILE
from mmcxr.synth import SynthConfig
from mmcxr.synth.cohort import MESH_FLIP, REPORT_OMIT, sample_cohort
from mmcxr.synth.write_openi import plan_mesh


def _plans(d: float, n: int = 3000, dataset: str = "mimic"):
    return sample_cohort(n, seed=1, config=SynthConfig(report_difficulty=d), dataset=dataset)


def _text_score(study, label: str) -> float:
    """What the report says of ``label``: stated 1, hedged 0.5, silent or negated 0."""
    s = study.status(label)
    return 0.0 if math.isnan(s) else (1.0 if s == 1.0 else 0.5)


@pytest.mark.parametrize("label", ["Pneumonia", "Pleural Effusion"])
def test_harder_knob_makes_the_text_a_weaker_witness_of_the_film(label):
    aurocs = []
    for d in (0.0, 0.4, 0.8):
        plans = _plans(d)
        truth = [s.truth(label) for s in plans]
        aurocs.append(roc_auc_score(truth, [_text_score(s, label) for s in plans]))
    assert aurocs[0] > 0.9, aurocs
    assert aurocs[0] - 0.05 > aurocs[1] > aurocs[2] + 0.05, aurocs


def test_zero_plans_the_same_cohort_and_the_knob_never_touches_what_is_drawn():
    base, zero, hard = _plans(0.0, 400), _plans(0.0, 400), _plans(0.9, 400)
    assert [s.report_edits for s in zero] == [[]] * 400
    for a, b in zip(base, hard, strict=True):
        drawn_a = [(f.label, f.side, f.zone, f.severity) for f in a.findings if f.drawn]
        drawn_b = [(f.label, f.side, f.zone, f.severity) for f in b.findings if f.drawn]
        assert drawn_a == drawn_b  # same films
        assert [im.dicom_id for im in a.images] == [im.dicom_id for im in b.images]
    edits = [e for s in hard for e in s.report_edits]
    kinds = {e.split(":")[0] for e in edits}
    assert {"omitted", "hedged", "false_hedge"} <= kinds
    stated = sum(f.drawn and f.status == 1.0 for s in base for f in s.findings)
    omitted = sum(e.startswith("omitted:") for e in edits)
    devices = sum(
        f.label == "Support Devices" and f.status == 1.0 for s in base for f in s.findings
    )
    share = omitted / (stated - devices)
    assert abs(share - REPORT_OMIT * 0.9) < 0.05, share


def test_openi_mesh_contradicts_the_text_only_when_asked():
    for d in (0.0, 1.0):
        plans = _plans(d, 1500, "openi")
        mesh = plan_mesh(plans, seed=1, agreement_rate=0.07)
        text_normal = [not any(f.status == 1.0 for f in s.findings) for s in plans]
        mesh_normal = [mesh[s.index].major == ("normal",) for s in plans]
        disagree = np.mean([a != b for a, b in zip(text_normal, mesh_normal, strict=True)])
        flipped = np.mean(["mesh_flipped" in s.report_edits for s in plans])
        assert disagree == pytest.approx(flipped)  # every contradiction is recorded
        if d == 0.0:
            assert disagree == 0.0
        else:
            assert 0.5 * MESH_FLIP < disagree <= MESH_FLIP + 0.03


def test_generator_records_the_knob_and_keeps_the_pixels(tmp_path):
    roots = generate_at("openi", tmp_path, "report_difficulty", (0.0, 1.0), n=12, seed=2)
    recorded = json.loads((roots[1.0] / CONFIG_FILE).read_text())["config"]
    assert recorded["report_difficulty"] == 1.0
    images = sorted(p.relative_to(roots[0.0]) for p in roots[0.0].rglob("*.png"))
    assert images
    assert all((roots[0.0] / p).read_bytes() == (roots[1.0] / p).read_bytes() for p in images)
    xmls = sorted(p.relative_to(roots[0.0]) for p in roots[0.0].rglob("*.xml"))
    assert any((roots[0.0] / p).read_bytes() != (roots[1.0] / p).read_bytes() for p in xmls)
    truth = {d: pd.read_csv(r / GROUND_TRUTH_FILE) for d, r in roots.items()}
    assert truth[0.0]["report_edits"].isna().all()
    assert truth[1.0]["report_edits"].notna().any()
    pd.testing.assert_series_equal(
        truth[0.0]["truth_Cardiomegaly"], truth[1.0]["truth_Cardiomegaly"]
    )


def test_config_validates_and_chapters_carry_the_knob():
    with pytest.raises(ValueError, match="report_difficulty"):
        SynthConfig(report_difficulty=-0.1)
    c = SynthConfig.from_chapter(
        {"synth_image_difficulty": 0.3, "synth_report_difficulty": 0.5, "synth_n": 10}
    )
    assert (c.image_difficulty, c.report_difficulty) == (0.3, 0.5)
    assert SynthConfig.from_chapter({"synth_n": 10}) == SynthConfig()
    spec = params.synthetic(report_difficulty=True)["synth_report_difficulty"]
    assert (spec.kind, spec.low, spec.high) == ("float", 0, 1)
    recipe = {"data_format": "openi", "synth_n": 10, "synth_seed": 0}
    a = book.cohort_fingerprint({**recipe, "synth_report_difficulty": 0.2})
    b = book.cohort_fingerprint({**recipe, "synth_report_difficulty": 0.6})
    assert a != b
