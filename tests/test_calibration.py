"""Calibration curves: summaries, the knob value that meets a target (hand-made curves), the
stored file, the figure, and the late-fusion chapter's default read off its stored curve."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from mmcxr import calibration as cal
from mmcxr.profiles import default_parameters, resolved_parameters

SLUG = "late-fusion-pneumonia"


def _curve(means: dict[float, list[float]], target: float = 0.77) -> dict:
    points = [
        {"value": v, "seed": s, "auroc": a} for v, runs in means.items() for s, a in enumerate(runs)
    ]
    return {"slug": "toy", "knob": "k", "metric": "auroc", "target": target, "points": points}


# --------------------------------------------------------------------------------------------
# pick_value on hand-made curves


def test_falling_curve_is_interpolated():
    assert cal.pick_value([0.0, 0.5, 1.0], [0.9, 0.8, 0.6], 0.7) == pytest.approx(0.75)
    assert cal.pick_value([0.0, 1.0], [0.92, 0.62], 0.77) == pytest.approx(0.5)


def test_rising_curve_and_any_order():
    assert cal.pick_value([1.0, 0.0, 0.5], [0.9, 0.5, 0.7], 0.8) == pytest.approx(0.75)


def test_exact_hit_returns_the_measured_value():
    assert cal.pick_value([0.0, 0.4, 0.8], [0.9, 0.77, 0.6], 0.77) == 0.4
    assert cal.pick_value([0.0, 0.4], [0.9, 0.77], 0.9) == 0.0


def test_wiggly_curve_is_made_monotone_before_it_is_read():
    # seed noise puts the 0.4 mean above the 0.2 one: the fit pools them (0.77, 0.77)
    values, means = [0.0, 0.2, 0.4, 0.6], [0.9, 0.74, 0.80, 0.6]
    assert cal.monotone_fit(values, means) == pytest.approx([0.9, 0.77, 0.77, 0.6])
    assert cal.pick_value(values, means, 0.7) == pytest.approx(0.4 + 0.2 * 0.07 / 0.17)
    # read raw, the means cross 0.78 first between 0 and 0.2 (and again at 0.2-0.4)
    raw = cal.pick_value(values, means, 0.78, monotone=False)
    assert raw == pytest.approx(0.2 * 0.12 / 0.16)  # first crossing from the easy end
    assert cal.pick_value(values, means, 0.78) == pytest.approx(0.2 * 0.12 / 0.13)


def test_weights_pull_the_fit_towards_the_better_measured_mean():
    fit = cal.monotone_fit([0.0, 0.2, 0.4], [0.9, 0.7, 0.8], weights=[1, 9, 1])
    assert fit[1] == pytest.approx(fit[2]) and fit[1] == pytest.approx(0.71)


@pytest.mark.parametrize("target", [0.95, 0.5])
def test_target_outside_the_curve_is_an_error_not_a_guess(target):
    with pytest.raises(ValueError, match="outside the measured curve"):
        cal.pick_value([0.0, 0.5, 1.0], [0.9, 0.8, 0.6], target)


@pytest.mark.parametrize(
    "values,means",
    [([0.0], [0.9]), ([0.0, 0.5], [0.9]), ([0.0, 0.0], [0.9, 0.8]), ([0.0, 0.5], [0.9, math.nan])],
)
def test_bad_curves_are_refused(values, means):
    with pytest.raises(ValueError):
        cal.pick_value(values, means, 0.85)


# --------------------------------------------------------------------------------------------
# summaries, defaults, files, figures


def test_summary_has_mean_and_spread_per_value():
    s = cal.summarize(_curve({0.5: [0.8, 0.7, 0.75], 0.0: [0.9, 0.92, 0.94]}))
    assert list(s.index) == [0.0, 0.5]
    assert s.loc[0.0, "mean"] == pytest.approx(0.92)
    assert s.loc[0.0, "std"] == pytest.approx(0.02)
    assert (s.loc[0.5, "min"], s.loc[0.5, "max"], s.loc[0.5, "n"]) == (0.7, 0.8, 3)


def test_default_value_is_the_interpolated_mean_rounded():
    curve = _curve({0.0: [0.9, 0.92], 0.5: [0.8, 0.82], 1.0: [0.6, 0.62]}, target=0.76)
    assert cal.default_value(curve) == round(0.5 + 0.5 * (0.81 - 0.76) / (0.81 - 0.61), 2)


def test_curve_file_round_trip(tmp_path):
    curve = _curve({0.0: [0.9, 0.8], 1.0: [0.6, 0.5]})
    path = cal.write_curve(curve, tmp_path / "sub" / "toy.json")
    assert cal.load_curve(path) == curve
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left
    with pytest.raises(FileNotFoundError, match="python -m mmcxr.calibration"):
        cal.load_curve(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"knob": "k"}))
    with pytest.raises(ValueError, match="needs"):
        cal.load_curve(tmp_path / "bad.json")


def test_plot_shows_seeds_spread_target_and_default():
    fig = cal.plot_curve(_curve({0.0: [0.9, 0.92, 0.91], 0.5: [0.78, 0.8, 0.7], 1.0: [0.6] * 3}))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("paper 0.77") for t in labels)
    assert any(t.startswith("default") for t in labels)
    horizontal = [ln for ln in ax.get_lines() if len(set(ln.get_ydata())) == 1]
    assert any(np.allclose(ln.get_ydata(), 0.77) for ln in horizontal)


def test_plot_without_a_crossing_still_draws():
    fig = cal.plot_curve(_curve({0.0: [0.9, 0.92], 0.5: [0.85, 0.86]}))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert not any(t.startswith("default") for t in labels)


def test_stale_parameters_names_what_changed():
    curve = {"parameters": {"synth_n": 3000, "epochs": 8}, "depends_on": ["synth_n", "epochs"]}
    assert cal.stale_parameters(curve, {"synth_n": 3000, "epochs": 8, "lr": 1}) == {}
    assert cal.stale_parameters(curve, {"synth_n": 6000, "epochs": 8}) == {"synth_n": (3000, 6000)}


def test_registry_knows_the_late_fusion_target():
    c = cal.CALIBRATIONS[SLUG]
    assert (c.knob, c.metric) == ("synth_image_difficulty", "auroc")
    assert c.target == pytest.approx(0.7735)
    with pytest.raises(KeyError, match="no calibration"):
        cal.CALIBRATIONS["no-such-chapter"]


def test_chapter_status_says_when_a_run_is_not_the_calibrated_one(monkeypatch):
    curve = _curve({0.0: [0.9, 0.92], 0.5: [0.8, 0.82], 1.0: [0.6, 0.62]}, target=0.76)
    curve |= {"parameters": {"synth_n": 100}, "depends_on": ["synth_n"]}
    monkeypatch.setattr(cal, "load_curve", lambda slug: curve)
    knob = cal.CALIBRATIONS[SLUG].knob
    default = cal.default_value(curve)
    ok = cal.chapter_status(SLUG, {knob: default, "synth_n": 100, "data_root": None})
    assert ok["calibrated"] and ok["seeds"] == 2
    assert ok["expected"] == pytest.approx(0.76, abs=0.01)
    assert "not the calibrated one" not in cal.status_markdown(ok)
    assert ok["seed_sd"] == pytest.approx(0.02 / math.sqrt(2))  # two seeds 0.02 apart
    assert "differ by 0.014" in cal.status_markdown(ok)
    other = cal.chapter_status(SLUG, {knob: 0.9, "synth_n": 200, "data_root": None})
    text = cal.status_markdown(other)
    assert not other["calibrated"] and "not the calibrated one" in text
    assert "`synth_n`" in text and f"the knob is 0.9, not {default:g}" in text
    real = cal.chapter_status(SLUG, {knob: default, "synth_n": 100, "data_root": "/data"})
    assert "real release" in cal.status_markdown(real)


def test_a_curve_that_misses_its_target_defaults_to_the_closest_value(monkeypatch):
    curve = _curve({0.0: [0.95, 0.93], 0.5: [0.8, 0.82], 1.0: [0.7, 0.72]}, target=0.5)
    assert not cal.reaches_target(curve)
    assert cal.default_value(curve) == 1.0  # closest fitted mean (0.71) to 0.5
    with pytest.raises(ValueError, match="outside the measured curve"):
        cal.pick_value([0.0, 0.5, 1.0], [0.94, 0.81, 0.71], 0.5)
    curve |= {"parameters": {}, "depends_on": []}
    monkeypatch.setattr(cal, "load_curve", lambda name: curve)
    status = cal.chapter_status(SLUG, {cal.CALIBRATIONS[SLUG].knob: 1.0, "data_root": None})
    assert not status["reached"] and status["calibrated"]
    text = cal.status_markdown(status)
    assert "comes closest to the paper's 0.5" in text and "does not reach" in text
    assert "runs from 0.940 at 0 to 0.710 at 1" in text


def test_a_flat_curve_leaves_the_generator_as_drawn(monkeypatch):
    """A curve that misses its target and moves by less than twice the seeds' spread is
    flat: its default is the lowest knob value, not a point picked off seed noise."""
    flat = _curve({0.0: [0.60, 0.62, 0.58], 0.5: [0.61, 0.59, 0.60], 1.0: [0.59, 0.57, 0.61]},
                  target=0.74)  # fmt: skip
    assert cal.curve_state(flat) == "flat" and cal.default_value(flat) == 0.0
    # the same shape moving by more than the seeds' spread is merely unreached
    moving = _curve({0.0: [0.70, 0.71, 0.69], 0.5: [0.65, 0.66, 0.64], 1.0: [0.6, 0.61, 0.59]},
                    target=0.74)  # fmt: skip
    assert cal.curve_state(moving) == "unreached" and cal.default_value(moving) == 0.0
    crossing = _curve({0.0: [0.9, 0.9], 1.0: [0.6, 0.6]}, target=0.75)
    assert cal.curve_state(crossing) == "reached" and cal.default_value(crossing) == 0.5
    flat |= {"parameters": {}, "depends_on": []}
    monkeypatch.setattr(cal, "load_curve", lambda name: flat)
    knob = cal.CALIBRATIONS[SLUG].knob
    status = cal.chapter_status(SLUG, {knob: 0.0, "data_root": None})
    assert status["state"] == "flat" and status["calibrated"]
    text = cal.status_markdown(status)
    assert "not calibrated" in text and "does not move with it" in text
    assert "Only this input was calibrated" not in text and "not the calibrated one" not in text
    assert "not the calibrated one" in cal.status_markdown(
        cal.chapter_status(SLUG, {knob: 0.5, "data_root": None})
    )


def test_report_witness_falls_with_the_report_knob():
    table = cal.report_witness([0.0, 1.0], labels=("Pneumonia", "Cardiomegaly"), n=800)
    wide = table.pivot(index="report_difficulty", columns="label", values="auroc")
    assert (wide.loc[0.0] > 0.95).all() and (wide.loc[1.0] < wide.loc[0.0] - 0.1).all()
    assert isinstance(cal.plot_report_witness(table), Figure)


# --------------------------------------------------------------------------------------------
# the stored late-fusion curve and the chapter's default


def test_every_stored_curve_belongs_to_a_registered_calibration():
    stored = {p.stem for p in cal.CURVE_DIR.glob("*.json")}
    assert SLUG in stored
    assert stored <= set(cal.CALIBRATIONS), "a curve file with no calibration that measures it"


def _stored_curves():
    """Every registered calibration that has a stored curve (a chapter adds its curve with
    the chapter; until then its calibration has none)."""
    return [name for name in cal.CALIBRATIONS if cal.curve_path(name).is_file()]


@pytest.mark.parametrize("name", _stored_curves())
def test_stored_curve_has_three_seeds_per_value_and_moves_with_the_knob(name):
    stored = cal.load_curve(name)
    s = cal.summarize(stored)
    assert len(s) >= 3 and (s["n"] >= 3).all()
    if cal.curve_state(stored) != "flat":  # flat: the knob does not move this baseline
        assert abs(s["mean"].iloc[0] - s["mean"].iloc[-1]) > 0.1  # the knob moves it
    assert stored["profile"] == "book" and stored["knob"] == cal.CALIBRATIONS[name].knob


@pytest.mark.parametrize("name", _stored_curves())
def test_stored_curve_was_measured_in_the_current_book_profile(name):
    stored = cal.load_curve(name)
    slug = cal.CALIBRATIONS[name].slug
    stale = cal.stale_parameters(stored, resolved_parameters(slug, "book"))
    assert not stale, (
        f"the book profile changed since the curve was measured {stale}: re-measure it with"
        f" python -m mmcxr.calibration {name} --seeds 3 --values ..."
    )


@pytest.mark.parametrize("name", _stored_curves())
def test_chapter_default_is_read_off_the_stored_curve(name):
    c = cal.CALIBRATIONS[name]
    literal = default_parameters(c.slug)[c.knob]
    assert round(literal, 2) == cal.default_value(name)


def test_late_fusion_curve_falls_with_the_image_knob():
    s = cal.summarize(cal.load_curve(SLUG))
    assert s["mean"].iloc[0] > s["mean"].iloc[-1] + 0.1  # harder films, lower image AUROC
