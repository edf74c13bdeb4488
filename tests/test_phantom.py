"""The procedural radiograph: shapes, determinism, laterality, pixel truth, boxes, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mmcxr.synth.labels import CHEXPERT_LABELS, FINDING_LABELS
from mmcxr.synth.phantom import (
    ANATOMY_BOX_NAMES,
    Finding,
    cardiothoracic_ratio,
    film_shape,
    region_for,
    render,
    sample_anatomy,
)

ROWS = 160

#: One representative, obvious instance of every drawable label.
CASES = {
    "Atelectasis": Finding("Atelectasis", "right", "basal", 1.0),
    "Cardiomegaly": Finding("Cardiomegaly", None, None, 1.0),
    "Consolidation": Finding("Consolidation", "right", "lower", 1.0),
    "Edema": Finding("Edema", "bilateral", None, 1.0),
    "Enlarged Cardiomediastinum": Finding("Enlarged Cardiomediastinum", None, None, 1.0),
    "Fracture": Finding("Fracture", "left", "mid", 1.0),
    "Lung Lesion": Finding("Lung Lesion", "left", "upper", 1.0),
    "Lung Opacity": Finding("Lung Opacity", "left", "lower", 1.0),
    "Pleural Effusion": Finding("Pleural Effusion", "right", None, 1.0),
    "Pleural Other": Finding("Pleural Other", "left", "mid", 1.0),
    "Pneumonia": Finding("Pneumonia", "left", "mid", 1.0),
    "Pneumothorax": Finding("Pneumothorax", "right", "apical", 1.0),
    "Support Devices": Finding(
        "Support Devices", "left", None, 1.0, {"device": ["endotracheal tube", "pacemaker"]}
    ),
}


def _anatomy(seed: int = 0):
    return sample_anatomy(np.random.default_rng(seed))


def _render(findings, view="PA", rows=ROWS, seed=0, anatomy_seed=0, **kw):
    return render(_anatomy(anatomy_seed), findings, view, rows, np.random.default_rng(seed), **kw)


def _with(finding: Finding, severity: float) -> Finding:
    return Finding(finding.label, finding.side, finding.zone, severity, finding.attrs)


def test_labels_cover_every_finding() -> None:
    assert set(CASES) == set(FINDING_LABELS) == set(CHEXPERT_LABELS) - {"No Finding"}


@pytest.mark.parametrize("view", ["PA", "AP", "LATERAL", "LL"])
def test_shape_dtype_range(view: str) -> None:
    r = _render([CASES["Pleural Effusion"]], view=view, rows=128)
    assert r.image.shape == film_shape(128) == (128, 107)
    assert r.image.dtype == np.float32
    assert 0.0 <= r.image.min() and r.image.max() <= 1.0
    # a radiograph: black air outside the body, bright abdomen/mediastinum, grey lungs
    assert r.image[:, :3].mean() < 0.2
    assert r.image.std() > 0.15


def test_full_size_film() -> None:
    r = _render([CASES["Lung Lesion"]], rows=3056)
    assert r.image.shape == (3056, 2544)
    x1, y1, x2, y2 = r.lesion_boxes["Lung Lesion"]
    assert 0 <= x1 < x2 < 2544 and 0 <= y1 < y2 < 3056


def test_deterministic_and_one_draw() -> None:
    fs = [CASES["Consolidation"], CASES["Support Devices"]]
    a, b = _render(fs, seed=4), _render(fs, seed=4)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.lesion_boxes == b.lesion_boxes and a.anatomy_boxes == b.anatomy_boxes
    assert not np.array_equal(a.image, _render(fs, seed=5).image)
    rng, ref = np.random.default_rng(9), np.random.default_rng(9)
    render(_anatomy(), fs, "PA", 64, rng)
    ref.integers(0, 2**62)
    assert rng.integers(1 << 30) == ref.integers(1 << 30)


def test_sample_anatomy() -> None:
    a, b = _anatomy(3), _anatomy(3)
    assert a == b and a != _anatomy(4)
    ctrs = np.array([_anatomy(s).ctr for s in range(200)])
    assert 0.37 <= ctrs.min() and ctrs.max() <= 0.525
    assert 0.44 < np.median(ctrs) < 0.48
    assert 0.03 < (ctrs > 0.5).mean() < 0.25  # borderline normal hearts exist, as in real films


@pytest.mark.parametrize("view", ["PA", "AP"])
@pytest.mark.parametrize(
    "label", ["Pleural Effusion", "Pneumothorax", "Lung Lesion", "Consolidation", "Fracture"]
)
def test_laterality(view: str, label: str) -> None:
    """The patient's right is drawn on the image's left in PA and AP films."""
    cols = film_shape(ROWS)[1]
    base = CASES[label]
    for side in ("right", "left"):
        f = Finding(label, side, base.zone, 1.0, base.attrs)
        m = _render([f], view=view).masks[label]
        centroid = np.nonzero(m)[1].mean()
        assert (centroid < cols / 2) == (side == "right"), (label, side, centroid)


def test_bilateral_effusion_on_both_sides() -> None:
    m = _render([Finding("Pleural Effusion", "bilateral", None, 1.0)]).masks["Pleural Effusion"]
    cols = m.shape[1]
    assert m[:, : cols // 2].sum() > 20 and m[:, cols // 2 :].sum() > 20


@pytest.mark.parametrize("label", sorted(CASES))
def test_finding_changes_pixels_only_inside_its_mask(label: str) -> None:
    """Same seed with and without the finding: every visible change lies in its mask."""
    f = CASES[label]
    base = _render([], seed=2).image
    strong = _render([f], seed=2)
    mask = strong.masks[label]
    assert strong.lesion_boxes[label] == _bbox(mask)
    diff = np.abs(strong.image - base)
    visible = diff > max(0.02, 0.1 * float(diff.max()))
    assert visible.sum() >= 4, "finding left no visible trace"
    outside = visible & ~mask
    assert outside.sum() <= 0.02 * visible.sum() + 1, (label, outside.sum(), visible.sum())
    # severity controls conspicuity: a subtle one changes the film less
    weak = np.abs(_render([_with(f, 0.2)], seed=2).image - base)
    if label != "Support Devices":  # devices are radio-opaque at any severity
        assert weak.sum() < 0.8 * diff.sum(), (label, weak.sum(), diff.sum())
        assert weak.max() > 0.01, "a subtle finding must still be drawn"


def _bbox(m: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(m)
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


def test_cardiothoracic_ratio() -> None:
    """Normal hearts measure up to a little over 0.5; cardiomegaly always measures over 0.5
    and bigger than the same patient's normal heart, even at severity 0.

    Measured on straight films: axis-aligned boxes on a tilted film distort both widths by
    a percent or two, whereas a radiologist measures along the patient's own axis.
    """
    for seed in range(12):
        anatomy = dataclasses.replace(_anatomy(seed), rotation=0.0)

        def ctr(findings: list[Finding], anatomy=anatomy) -> float:
            return cardiothoracic_ratio(
                render(anatomy, findings, "PA", 320, np.random.default_rng(0))
            )

        normal = ctr([])
        subtle = ctr([_with(CASES["Cardiomegaly"], 0.0)])
        big = ctr([CASES["Cardiomegaly"]])
        assert 0.36 < normal < 0.535, (seed, normal)
        assert max(0.5, normal) < subtle < big < 0.75, (seed, normal, subtle, big)
        assert big > 0.6, (seed, big)
    tilted = _anatomy(0)
    assert tilted.rotation != 0.0
    normal = cardiothoracic_ratio(_render([], anatomy_seed=0))
    assert cardiothoracic_ratio(_render([CASES["Cardiomegaly"]], anatomy_seed=0)) > normal + 0.1


def _lateralised_cases() -> list[Finding]:
    out = []
    for label, zones in (
        ("Atelectasis", ("mid", "lower", "basal", None)),
        ("Consolidation", ("apical", "upper", "mid", "lower", None)),
        ("Lung Lesion", ("apical", "upper", "mid", "lower")),
        ("Lung Opacity", ("upper", "mid", "basal")),
        ("Pneumonia", ("upper", "mid", "lower")),
        ("Fracture", ("upper", "mid", "lower")),
        ("Pleural Other", ("apical", "upper", "lower", None)),
        ("Pleural Effusion", ("basal",)),
        ("Pneumothorax", ("apical",)),
    ):
        for i, zone in enumerate(zones):
            side = ("right", "left", "bilateral")[i % 3] if label != "Fracture" else "right"
            out.append(Finding(label, side, zone, (0.25, 1.0)[i % 2]))
    out += [
        Finding("Edema", None, None, 0.9),
        CASES["Cardiomegaly"],
        CASES["Enlarged Cardiomediastinum"],
        Finding("Pneumothorax", "left", None, 0.4),
    ]
    return out


@pytest.mark.parametrize("view", ["PA", "AP"])
def test_masks_lie_inside_their_imagenome_boxes(view: str) -> None:
    for anatomy_seed in range(3):
        for f in _lateralised_cases():
            r = _render([f], view=view, rows=128, seed=anatomy_seed, anatomy_seed=anatomy_seed)
            names = region_for(f)
            assert names and all(n in r.anatomy_boxes for n in names), (f, names)
            inside = np.zeros_like(r.image, bool)
            for n in names:
                x1, y1, x2, y2 = r.anatomy_boxes[n]
                inside[y1 : y2 + 1, x1 : x2 + 1] = True
            m = r.masks[f.label]
            assert m.any(), f
            assert not (m & ~inside).any(), (f, names, int((m & ~inside).sum()))


def test_region_for_names() -> None:
    assert region_for(Finding("Consolidation", "right", "lower")) == ["right lower lung zone"]
    assert region_for(Finding("Lung Lesion", "left", "apical")) == ["left apical zone"]
    assert region_for(Finding("Atelectasis", "left", "basal")) == ["left lower lung zone"]
    assert region_for(Finding("Pleural Effusion", "left")) == [
        "left costophrenic angle",
        "left lower lung zone",
    ]
    assert region_for(Finding("Edema")) == ["right lung", "left lung"]
    assert region_for(Finding("Cardiomegaly")) == ["cardiac silhouette"]
    assert region_for(Finding("Support Devices", attrs={"device": "picc"})) == []


@pytest.mark.parametrize("view", ["PA", "AP"])
def test_anatomy_boxes(view: str) -> None:
    r = _render([], view=view)
    b = r.anatomy_boxes
    assert set(ANATOMY_BOX_NAMES) <= set(b)
    rows, cols = r.image.shape
    for name, (x1, y1, x2, y2) in b.items():
        assert 0 <= x1 <= x2 < cols and 0 <= y1 <= y2 < rows, name

    def centre(n: str) -> tuple[float, float]:
        x1, y1, x2, y2 = b[n]
        return (x1 + x2) / 2, (y1 + y2) / 2

    def within(inner: str, outer: str) -> bool:
        i, o = b[inner], b[outer]
        return o[0] <= i[0] and o[1] <= i[1] and i[2] <= o[2] and i[3] <= o[3]

    assert centre("right lung")[0] < centre("spine")[0] < centre("left lung")[0]
    assert centre("right clavicle")[0] < centre("left clavicle")[0]
    for side in ("right", "left"):
        ys = [centre(f"{side} {z} lung zone")[1] for z in ("upper", "mid", "lower")]
        assert ys == sorted(ys)
        for z in (
            "upper lung zone",
            "mid lung zone",
            "lower lung zone",
            "apical zone",
            "costophrenic angle",
        ):
            assert within(f"{side} {z}", f"{side} lung"), (side, z)
        assert b[f"{side} costophrenic angle"][3] == b[f"{side} lung"][3]
    assert b["trachea"][1] < b["carina"][1] < b["cardiac silhouette"][1]
    assert within("cardiac silhouette", "mediastinum")
    assert b["abdomen"][1] > b["carina"][3]
    assert centre("cardiac silhouette")[0] > centre("spine")[0]  # heart sits to the left


def test_lateral_has_no_pixel_truth_but_draws_findings() -> None:
    base = _render([], view="LATERAL").image
    r = _render([CASES["Pleural Effusion"], CASES["Cardiomegaly"]], view="LATERAL")
    assert r.masks == {} and r.lesion_boxes == {} and r.anatomy_boxes == {}
    assert np.abs(r.image - base).max() > 0.1


def test_chest_tube_is_a_device() -> None:
    f = Finding("Pneumothorax", "left", "apical", 0.8, {"chest_tube": True})
    r = _render([f])
    assert {"Pneumothorax", "Support Devices"} <= set(r.masks)
    cols = r.image.shape[1]
    assert np.nonzero(r.masks["Support Devices"])[1].mean() > cols / 2
    x1, y1, x2, y2 = r.anatomy_boxes["left lung"]  # the tube is not part of the pneumothorax
    ys, xs = np.nonzero(r.masks["Pneumothorax"])
    assert x1 <= xs.min() and xs.max() <= x2 and y1 <= ys.min() and ys.max() <= y2
    ty, tx = np.nonzero(r.masks["Support Devices"])  # the tube enters through the chest wall
    assert tx.max() > x2 or ty.max() > y2
    # asked for twice (pneumothorax attribute and device), drawn once
    both = _render([f, Finding("Support Devices", "left", None, 1.0, {"device": "chest tube"})])
    np.testing.assert_allclose(both.image, r.image, atol=1e-6)


@pytest.mark.parametrize("marker,corner", [("PORTABLE", "right"), ("spurious", "left")])
def test_markers_burn_a_bright_corner_tag(marker: str, corner: str) -> None:
    base = _render([], view="AP").image
    r = _render([], view="AP", marker=marker).image
    changed = np.abs(r - base) > 0.05
    rows_, cols_ = np.nonzero(changed)
    assert changed.sum() > 5
    assert rows_.max() < 0.15 * r.shape[0]
    assert (cols_.min() > r.shape[1] / 2) if corner == "right" else (cols_.max() < r.shape[1] / 2)
    assert np.percentile(r[changed], 90) > 0.85  # burned in: near-white


def test_markers_differ() -> None:
    a = _render([], marker="PORTABLE").image
    b = _render([], marker="spurious").image
    assert not np.array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"label": "No Finding"}, "not a drawable"),
        ({"label": "Pneumonia", "side": "middle"}, "side"),
        ({"label": "Cardiomegaly", "side": "left"}, "central"),
        ({"label": "Pleural Effusion", "zone": "upper"}, "zone"),
        ({"label": "Edema", "severity": 1.5}, "severity"),
        ({"label": "Support Devices", "attrs": {"device": "toaster"}}, "unknown device"),
    ],
)
def test_bad_findings_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Finding(**kwargs)


def test_bad_render_arguments_raise() -> None:
    a, rng = _anatomy(), np.random.default_rng(0)
    with pytest.raises(ValueError, match="view"):
        render(a, [], "OBLIQUE", 128, rng)
    with pytest.raises(ValueError, match="rows"):
        render(a, [], "PA", 8, rng)
    with pytest.raises(TypeError, match="Finding"):
        render(a, ["Pneumonia"], "PA", 128, rng)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="marker"):
        render(a, [], "PA", 128, rng, marker="")
