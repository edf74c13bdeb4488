"""The image difficulty knob: what it changes on the film, what it leaves alone, where it is
recorded, and that a harder knob gives a lower image-only AUROC (seeds fixed)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import generate_at

from mmcxr import book, params
from mmcxr.data.roots import synthetic_root_name
from mmcxr.names import CONFIG_FILE
from mmcxr.synth import SynthConfig
from mmcxr.synth.labels import LABEL_ZONES
from mmcxr.synth.phantom import Conspicuity, Finding, render, sample_anatomy

ROWS = 64


def _film(findings, d=None, seed=0, anatomy_seed=0, view="PA"):
    anatomy = sample_anatomy(np.random.default_rng(anatomy_seed))
    c = None if d is None else Conspicuity(d)
    return render(anatomy, findings, view, ROWS, np.random.default_rng(seed), conspicuity=c)


# --------------------------------------------------------------------------------------------
# the phantom


def test_zero_difficulty_changes_no_pixel():
    fs = [Finding("Pneumonia", "right", "lower", 0.8), Finding("Pleural Effusion", "left")]
    for view in ("PA", "LATERAL"):
        a, b = _film(fs, None, view=view), _film(fs, 0.0, view=view)
        assert np.array_equal(a.image, b.image)


@pytest.mark.parametrize("view", ["PA", "LATERAL"])
def test_harder_knob_lowers_the_finding_contrast(view):
    """The film minus the same film without the finding shrinks as the knob grows."""
    f = [Finding("Pneumonia", "right", "lower", 0.9, {"conspicuity_draw": 0.5})]
    signal = []
    for d in (0.0, 0.5, 1.0):
        with_f, without = _film(f, d, view=view), _film([], d, view=view)
        signal.append(float(np.abs(with_f.image - without.image).sum()))
    assert signal[0] > signal[1] > signal[2] > 0


def test_texture_falls_on_normal_films_only_in_the_lungs_and_only_when_asked():
    normal0, normal1 = _film([], 0.0), _film([], 1.0)
    diff = np.abs(normal1.image - normal0.image)
    assert diff.max() > 0.02  # normal films carry the texture too
    lungs = np.zeros(diff.shape, bool)
    for side in ("right lung", "left lung"):
        x1, y1, x2, y2 = normal0.anatomy_boxes[side]
        lungs[y1 : y2 + 1, x1 : x2 + 1] = True
    assert diff[~lungs].max() < 1e-6


def test_knob_keeps_the_truth_inside_its_box_and_smaller():
    f = [Finding("Pneumonia", "left", "mid", 0.9)]
    easy, hard = _film(f, 0.0), _film(f, 1.0)
    assert easy.anatomy_boxes == hard.anatomy_boxes
    assert 0 < hard.masks["Pneumonia"].sum() < easy.masks["Pneumonia"].sum()
    x1, y1, x2, y2 = hard.anatomy_boxes["left mid lung zone"]
    bx1, by1, bx2, by2 = hard.lesion_boxes["Pneumonia"]
    assert x1 <= bx1 <= bx2 <= x2 and y1 <= by1 <= by2 <= y2


def test_devices_are_exempt_unless_named():
    dev = Finding("Support Devices", "left", None, 1.0, {"device": "pacemaker"})
    hard = Conspicuity(1.0)
    assert hard.of("Support Devices") == 0.0 and hard.contrast(dev) == 1.0
    assert hard.drawn(dev) is dev
    named = Conspicuity(1.0, {"Support Devices": 0.5})
    assert named.of("Support Devices") == 0.5


def _drawn_at(u: float, label: str = "Edema", severity: float = 0.5) -> Finding:
    return Finding(label, "bilateral", None, severity, {"conspicuity_draw": u})


def test_per_label_override():
    c = Conspicuity(0.2, {"Pneumonia": 0.5})
    assert c.of("Pneumonia") == 0.5 and c.of("Edema") == 0.2
    pneumonia = Finding("Pneumonia", "left", "mid", 0.8, {"conspicuity_draw": 0.6})
    assert c.level(pneumonia) == pytest.approx(0.6)  # d = 0.5: e = u
    assert c.level(_drawn_at(0.6)) == pytest.approx(0.6**4)  # d = 0.2: e = u ** 4


def test_each_finding_has_its_own_level_rising_with_the_knob():
    f = _drawn_at(0.3)
    levels = [Conspicuity(d).level(f) for d in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)]
    assert levels[0] == 0.0 and levels[-1] == 1.0 and levels[3] == pytest.approx(0.3)
    assert all(a < b for a, b in zip(levels, levels[1:], strict=False))
    c = Conspicuity(0.5)
    e = c.level(Finding("Pneumonia", "left", "mid", 0.8))
    assert c.level(Finding("Pneumonia", "left", "mid", 0.8)) == e  # fixed by the finding
    sev = 1.0 - 0.5 * e  # SIZE_LOSS
    assert c.drawn(Finding("Pneumonia", "left", "mid", 0.8)).severity == pytest.approx(0.8 * sev)


@pytest.mark.parametrize("d", [0.2, 0.5, 0.8])
def test_the_knob_sets_the_share_of_hard_findings(d):
    """Over many findings, the share harder than x is 1 - x ** (d / (1 - d))."""
    rng = np.random.default_rng(0)
    c = Conspicuity(d)
    levels = np.array(
        [c.level(Finding("Pneumonia", "left", "mid", float(s))) for s in rng.uniform(0, 1, 4000)]
    )
    for x in (0.25, 0.5, 0.75):
        assert (levels > x).mean() == pytest.approx(1 - x ** (d / (1 - d)), abs=0.03)


@pytest.mark.parametrize(
    "kw", [{"difficulty": 1.5}, {"difficulty": -0.1}, {"by_label": {"Pneumonia": 2.0}}]
)
def test_conspicuity_checks_its_range(kw):
    with pytest.raises(ValueError):
        Conspicuity(**kw)


def test_conspicuity_checks_labels_and_type():
    with pytest.raises(ValueError, match="unknown labels"):
        Conspicuity(0.5, {"Pneumonitis": 0.5})
    with pytest.raises(TypeError):
        render(
            sample_anatomy(np.random.default_rng(0)),
            [],
            "PA",
            ROWS,
            np.random.default_rng(0),
            conspicuity=0.5,
        )  # type: ignore[arg-type]


def _probe_auroc(d: float, n: int = 120) -> float:
    """Image-only AUROC of a pixel logistic regression, pneumonia vs normal PA films, 5-fold
    cross-validated; anatomies, findings and noise drawn from fixed seeds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(123)
    zones = LABEL_ZONES["Pneumonia"]
    x, y = [], []
    for i in range(2 * n):
        positive = i % 2 == 1
        sev = float(rng.uniform(0.12, 0.35) if rng.random() < 0.4 else rng.uniform(0.55, 0.98))
        side = ("right", "left")[int(rng.integers(2))]
        zone = zones[int(rng.integers(len(zones)))]
        f = [Finding("Pneumonia", side, zone, sev)] if positive else []
        img = _film(f, d, seed=1000 + i, anatomy_seed=i).image
        x.append(img[::2, ::2].ravel())
        y.append(int(positive))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=3000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    p = cross_val_predict(model, np.array(x), np.array(y), cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def test_harder_knob_gives_a_lower_image_auroc():
    aurocs = [_probe_auroc(d) for d in (0.0, 0.5, 1.0)]
    assert aurocs[0] > 0.65, aurocs  # the easy films carry signal
    assert aurocs[0] - 0.03 > aurocs[1] > aurocs[2] + 0.03, aurocs


# --------------------------------------------------------------------------------------------
# the config, the generator, the cache and the chapter parameters


def test_config_validates_and_round_trips():
    c = SynthConfig(image_difficulty=0.4, image_difficulty_by_label={"Pneumonia": 0.7})
    assert SynthConfig.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ValueError, match="image_difficulty"):
        SynthConfig(image_difficulty=1.2)
    with pytest.raises(ValueError, match="image_difficulty_by_label"):
        SynthConfig(image_difficulty_by_label={"Pneumonia": -0.1})
    with pytest.raises(ValueError, match="not one of"):
        SynthConfig(image_difficulty_by_label={"Pneumonitis": 0.5})


def test_two_difficulties_never_share_a_cached_cohort():
    names = {
        synthetic_root_name("mimic-cxr-jpg", 100, 0, 64, SynthConfig(image_difficulty=d))
        for d in (0.0, 0.3, 0.31, 1.0)
    }
    assert len(names) == 4


def test_generator_records_the_knob_and_changes_only_the_pixels(tmp_path):
    roots = generate_at("mimic-cxr-jpg", tmp_path, "image_difficulty", (0.0, 1.0), n=4, seed=3)
    recorded = json.loads((roots[1.0] / CONFIG_FILE).read_text())["config"]
    assert recorded["image_difficulty"] == 1.0
    assert recorded["image_difficulty_by_label"] == {}
    truth = {d: pd.read_csv(r / "synthetic_ground_truth.csv.gz") for d, r in roots.items()}
    keep = [c for c in truth[0.0].columns if not c.startswith("box_")]  # boxes follow pixels
    pd.testing.assert_frame_equal(truth[0.0][keep], truth[1.0][keep])  # same plan and labels
    jpgs = sorted(p.relative_to(roots[0.0]) for p in roots[0.0].rglob("*.jpg"))
    assert jpgs and any(
        (roots[0.0] / p).read_bytes() != (roots[1.0] / p).read_bytes() for p in jpgs
    )


def test_chapter_parameters_and_book_recipe_carry_the_knob():
    assert "synth_image_difficulty" not in params.synthetic()
    spec = params.synthetic(image_difficulty=True)["synth_image_difficulty"]
    assert (spec.kind, spec.low, spec.high) == ("float", 0, 1)
    from mmcxr.chapters import late_fusion as lf

    assert "synth_image_difficulty" in lf.PARAMETERS
    recipe = {"data_format": "mimic-cxr-jpg", "synth_n": 10, "synth_seed": 0}
    a = book.cohort_fingerprint({**recipe, "synth_image_difficulty": 0.2})
    b = book.cohort_fingerprint({**recipe, "synth_image_difficulty": 0.6})
    assert a != b
