"""The multimodal-VAE chapter's recipe: cohort on a hand-made release, run keys, Table 1 and
claims on hand-made tables, the paper's own numbers, the glued numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmcxr.chapters import multimodal_vae as mv
from mmcxr.chapters import multimodal_vae_reference as reference
from mmcxr.chapters import multimodal_vae_results as mvr
from mmcxr.data import DataWarning

# --------------------------------------------------------------------------------------------
# the cohort


def _image(subject, study, view, label=None, findings="lungs clear.", impression="normal."):
    row = {
        "subject_id": subject,
        "study_id": study,
        "dicom_id": f"d{study}-{view}",
        "path": f"/x/{study}/{view}.dcm",
        "view": view,
        "findings": findings,
        "impression": impression,
        "report": f"FINAL REPORT {findings} {impression}",
    }
    for c in mv.FINDING_LABELS + ("No Finding",):
        row[c] = np.nan
    if label is not None:
        row[label] = 1.0
    else:
        row["No Finding"] = 1.0
    return row


def hand_made_release() -> pd.DataFrame:
    """24 complete studies (12 with a finding) among incomplete ones and distractors."""
    rows = []
    for p in range(24):
        label = "Edema" if p % 2 else None
        rows += [_image(p, 100 + p, "PA", label), _image(p, 100 + p, "LATERAL", label)]
        if p < 4:  # an AP as well, and a left lateral: PA and LATERAL are preferred
            rows += [_image(p, 100 + p, "AP", label), _image(p, 100 + p, "LL", label)]
    rows += [_image(30, 130, "AP", "Support Devices"), _image(30, 130, "LL", "Support Devices")]
    rows += [_image(31, 131, "PA")]  # no lateral
    rows += [_image(32, 132, "LATERAL")]  # no frontal
    rows += [_image(33, 133, "PA", "Pneumonia"), _image(33, 133, "LATERAL", "Pneumonia")]
    rows[-1]["Pneumonia"] = rows[-2]["Pneumonia"] = -1.0  # uncertain only: no finding
    rows += [_image(34, 134, "SWIMMERS"), _image(34, 134, "LATERAL")]  # no frontal view
    return pd.DataFrame(rows)


def test_cohort_keeps_complete_studies_one_film_of_each():
    cohort = mv.build_cohort(hand_made_release(), seed=0, split_fractions=(0.6, 0.2, 0.2))
    flow = cohort.flow.set_index("step")
    assert flow["studies"].tolist() == [29, 29, 26, 26, 26]
    assert flow["removed"].tolist()[1] == 1, "the swimmer's view goes, its study stays"
    t = cohort.table
    assert len(t) == 26 and t["study_id"].is_unique
    assert set(t.loc[t["study_id"] < 104, "frontal_id"]) == {f"d{s}-PA" for s in range(100, 104)}
    assert set(t.loc[t["study_id"] < 104, "lateral_id"]) == {
        f"d{s}-LATERAL" for s in range(100, 104)
    }
    s130 = t.set_index("study_id").loc[130]
    assert (s130["frontal_view"], s130["lateral_id"]) == ("AP", "d130-LL"), "AP and LL if alone"
    labels = t.set_index("study_id")["label"]
    assert labels[130] == 1, "any of the 13 labels (Support Devices too) is a finding"
    assert labels[133] == 0, "an uncertain label is not a finding"
    assert labels.sum() == 13
    assert t["text"].iloc[0] == "lungs clear. normal.", "findings + impression, no header"
    assert t.groupby("subject_id")["split"].nunique().max() == 1


def test_cohort_text_field_and_missing_text_are_recorded():
    df = hand_made_release()
    df.loc[df["study_id"] == 105, ["findings", "impression"]] = ""
    with pytest.warns(DataWarning, match="1 studies have no 'findings_impression' text"):
        cohort = mv.build_cohort(df, seed=0, split_fractions=(0.6, 0.2, 0.2))
    assert 105 not in set(cohort.table["study_id"])
    assert cohort.flow["step"].iloc[3] == "with findings_impression text"
    report = mv.build_cohort(df, seed=0, split_fractions=(0.6, 0.2, 0.2), text_field="report")
    assert report.table["text"].str.startswith("FINAL REPORT").all() and len(report.table) == 26


def test_cohort_errors_name_the_problem():
    with pytest.raises(ValueError, match="lacks columns"):
        mv.build_cohort(hand_made_release().drop(columns="view"))
    only_normal = hand_made_release()
    only_normal = only_normal[only_normal["No Finding"] == 1.0]
    with pytest.raises(ValueError, match="too small"):
        mv.build_cohort(only_normal)


def test_cohort_split_is_deterministic_by_seed():
    a = mv.build_cohort(hand_made_release(), seed=1, split_fractions=(0.6, 0.2, 0.2))
    b = mv.build_cohort(hand_made_release(), seed=1, split_fractions=(0.6, 0.2, 0.2))
    c = mv.build_cohort(hand_made_release(), seed=2, split_fractions=(0.6, 0.2, 0.2))
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not a.table["split"].equals(c.table["split"])
    counts = a.split_counts()
    assert counts["studies"].sum() == 26 and list(counts.index) == ["train", "val", "test"]
    images = mv.image_table(a)
    assert len(images) == 52 and images["dicom_id"].is_unique


# --------------------------------------------------------------------------------------------
# run keys and models


def _params(**kw) -> dict:
    p = dict.fromkeys(mv.RUN_KEYS, 0)
    p.update(
        seed=0,
        image_size=16,
        max_length=8,
        latent_dim=4,
        image_channels=4,
        text_channels=8,
        beta=1.0,
        likelihood_weighting="size",
        laplace_scale=0.75,
        n_bootstrap=100,
        output_dir="/tmp/x",
    )
    p.update(kw)
    return p


def test_run_keys_follow_what_the_model_depends_on():
    from mmcxr.runs import run_key

    keys = lambda p: {j: run_key(mv.run_config(j, p), "data") for j in mv.JOINTS}  # noqa: E731
    base = keys(_params())
    assert len(set(base.values())) == 3
    assert keys(_params(n_bootstrap=5, output_dir="/y", device="cuda")) == base
    assert all(keys(_params(latent_dim=8))[j] != base[j] for j in mv.JOINTS)
    with pytest.raises(ValueError, match="joint must be one of"):
        mv.run_config("jsd", _params())
    p = _params()
    del p["lr"]
    with pytest.raises(KeyError, match="lr"):
        mv.run_config("mopoe", p)


def test_build_model_is_seeded_and_takes_the_joint():
    import torch

    a, b = mv.build_model("mopoe", _params(), 20), mv.build_model("mopoe", _params(), 20)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert len(a.components) == 7
    assert len(mv.build_model("poe", _params(), 20).components) == 1


# --------------------------------------------------------------------------------------------
# Table 1 and the claims


def _long(strength: dict[str, float], n: int = 80, seed: int = 0) -> pd.DataFrame:
    """Probe predictions whose separation per subset is ``strength`` (0: none)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 4 == 0).astype(int)
    parts = []
    for subset in mvr.SUBSET_NAMES:
        score = strength.get(subset, 1.0) * (2 * y - 1) + rng.normal(0, 1, n)
        parts.append(
            pd.DataFrame({"joint": "mopoe", "subset": subset, "case": range(n)}).assign(
                label=y, prob=1 / (1 + np.exp(-score))
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_table1_from_predictions_with_the_random_baseline():
    strength = {s: 2.0 for s in mvr.SUBSET_NAMES} | {"F": 0.0}
    t = mvr.table1_results(_long(strength), n_boot=50)
    assert len(t) == 8
    rnd = t.set_index("joint").loc["random"]
    assert rnd["average_precision"] == pytest.approx(0.25)
    assert rnd["average_precision_lo"] <= 0.25 <= rnd["average_precision_hi"]
    ap = t[t["joint"] == "mopoe"].set_index("subset")["average_precision"]
    assert ap["L,F,T"] > 0.8 and ap["F"] < 0.6, "the planted separations come back"
    assert (t["average_precision_lo"] <= t["average_precision"] + 1e-12).all()
    cmp = mvr.table1_comparison(t)
    assert cmp.loc["L,F,T", ("MoPoE", "paper")] == 0.494
    assert cmp.loc["Random", ("MoPoE", "paper")] == 0.235


def _table(ap: dict[str, float], random: float = 0.25) -> pd.DataFrame:
    rows = [{"joint": "mopoe", "subset": s, "average_precision": v} for s, v in ap.items()]
    return pd.DataFrame(rows + [{"joint": "random", "subset": "-", "average_precision": random}])


def _generation(f_lt=0.3, f_lft=0.6, l_lt=0.3, l_lft=0.5) -> pd.DataFrame:
    rows = []
    for subset, f, lat in (("L,T", f_lt, l_lt), ("L,F,T", f_lft, l_lft)):
        rows += [
            {"joint": "mopoe", "subset": subset, "modality": "F", "sharpness": f},
            {"joint": "mopoe", "subset": subset, "modality": "L", "sharpness": lat},
        ]
    return pd.DataFrame(rows).assign(coherence=np.nan)


def _holds(table1, generation=None, tol=0.0) -> dict:
    v = mvr.evaluate_claims(table1, generation, tol=tol)
    return dict(zip(v["id"], v["holds"], strict=True))


GOOD = {"F": 0.4, "L": 0.4, "T": 0.5, "L,F": 0.45, "F,T": 0.55, "L,T": 0.52, "L,F,T": 0.6}


def test_the_papers_numbers_pass_its_claims():
    v = mvr.evaluate_claims(reference.table1(), None).set_index("id")
    assert v.loc["every-subset-beats-random", "paper_holds"] is True
    assert v.loc["all-three-highest", "paper_holds"] is True
    assert "0.494" in v.loc["all-three-highest", "paper_evidence"]
    assert v.loc["frontal-sharpens-generation", "paper_holds"] is None
    assert "Figure 1" in v.loc["frontal-sharpens-generation", "paper_evidence"]
    assert v.loc["frontal-sharpens-generation", "holds"] is None, "nothing measured: undecided"


def test_claims_hold_on_a_table_built_for_them_and_fail_when_broken():
    assert set(_holds(_table(GOOD), _generation()).values()) == {True}
    assert _holds(_table(GOOD | {"L": 0.24}), _generation())["every-subset-beats-random"] is False
    h = _holds(_table(GOOD | {"F,T": 0.61}), _generation())
    assert h["all-three-highest"] is False and h["every-subset-beats-random"] is True
    assert _holds(_table(GOOD | {"F,T": 0.61}), _generation(), tol=0.02)["all-three-highest"]
    assert _holds(_table(GOOD), _generation(l_lft=0.2))["frontal-sharpens-generation"] is False
    assert _holds(_table(GOOD), _generation(f_lft=0.3))["frontal-sharpens-generation"] is False


def test_missing_numbers_leave_claims_undecided():
    partial = {k: v for k, v in GOOD.items() if k != "T"}
    h = _holds(_table(partial), _generation())
    assert h["every-subset-beats-random"] is None and h["all-three-highest"] is None
    assert h["frontal-sharpens-generation"] is True


def test_generation_tables_are_laid_out_by_subset():
    gen = pd.concat(
        [
            _generation(),
            pd.DataFrame(
                [
                    {
                        "joint": "real",
                        "subset": "-",
                        "modality": "F",
                        "coherence": 0.8,
                        "sharpness": 1,
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    wide = mvr.generation_wide(gen, "sharpness")
    assert list(wide.index) == ["real data", "L,T", "L,F,T"]
    assert wide.loc["L,F,T", ("MoPoE", "F")] == 0.6


def test_every_number_the_prose_quotes_is_glued():
    source = Path(__file__).resolve().parents[1] / "notebooks" / "multimodal-vae.py"
    quoted = set(re.findall(r"\{glue:text\}`mv_([A-Za-z0-9_]+)`", source.read_text()))
    assert quoted, "the chapter glues its numbers"
    cohort = mv.build_cohort(hand_made_release(), seed=0, split_fractions=(0.6, 0.2, 0.2))
    table1 = _table(GOOD)
    gen = pd.concat(
        [
            _generation().assign(coherence=0.6),
            pd.DataFrame(
                [
                    {"joint": "real", "subset": "-", "modality": m, "coherence": 0.9}
                    for m in ("F", "T")
                ]
            ),
        ],
        ignore_index=True,
    )
    verdicts = mvr.evaluate_claims(table1, gen)
    values = mvr.headline(cohort, table1, gen, verdicts)
    assert quoted <= set(values), f"quoted but never glued: {sorted(quoted - set(values))}"
    assert values["claims_total"] == 3 and values["n_studies"] == 26
    assert values["paper_spread"] == pytest.approx(0.034)


# --------------------------------------------------------------------------------------------
# intervals on the generation tables, the generations figure and explorer, the calibration


def test_generation_table_shows_each_number_with_its_interval():
    gen = _generation().assign(sharpness_lo=lambda d: d["sharpness"] - 0.1,
                               sharpness_hi=lambda d: d["sharpness"] + 0.1)  # fmt: skip
    real = pd.DataFrame(
        [{"joint": "real", "subset": "-", "modality": m, "sharpness": 1.0, "sharpness_lo": 1.0,
          "sharpness_hi": 1.0, "coherence": 0.8, "coherence_lo": 0.7, "coherence_hi": 0.9}
         for m in ("F", "L")]
    )  # fmt: skip
    styled = mvr.style_generation(pd.concat([gen, real], ignore_index=True), "sharpness")
    cells = styled.data
    assert list(cells.index) == ["L,T", "L,F,T"], "the real data's row goes to the caption"
    assert "<b>0.600</b>" in cells.loc["L,F,T", ("MoPoE", "F")]
    assert "[0.50, 0.70]" in cells.loc["L,F,T", ("MoPoE", "F")]
    coherence = mvr.style_generation(pd.concat([gen, real], ignore_index=True), "coherence")
    assert "real test data: F 0.800 [0.70, 0.90]" in coherence.caption


class _Cache:
    """Films of 16 x 16 whose brightness is the study number (a stand-in image cache)."""

    def get(self, keys):
        return np.stack([np.full((16, 16), 10 * int(str(k)[1:4]) % 256, np.uint8) for k in keys])


def _tiny_splits():
    cohort = mv.build_cohort(hand_made_release(), seed=0, split_fractions=(0.5, 0.2, 0.3))
    return mv.make_splits(cohort, _Cache(), max_length=8, vocab_size=50, min_count=1)


def test_generations_of_every_subset_for_the_book_and_the_explorer():
    splits = _tiny_splits()
    run = mv.TrainedRun("mopoe", mv.build_model("mopoe", _params(), len(splits.vocab)).eval(),
                        None, None)  # fmt: skip
    gens = mvr.generations(run, splits, [0, 1])
    assert list(gens) == list(mvr.SUBSET_NAMES)
    assert gens["L,T"]["frontal"].shape == (2, 16, 16) and gens["F"]["text"].shape == (2, 8)
    fig, texts = mvr.plot_generations(run, splits, [0, 1])
    assert len(fig.axes) == 2 * 2 * 8, "two studies, two films each, input + seven subsets"
    assert list(texts.columns) == ["study 1", "study 2"] and len(texts) == 8
    assert texts.loc["input", "study 1"].startswith("lungs clear")
    pytest.importorskip("ipywidgets")
    ui = mvr.explorer({"mopoe": run}, splits)
    names = [c.description for c in ui.children[:3]]
    assert names == ["model", "given", "test study"]
    assert ui.children[2].max == len(splits.test) - 1


def test_calibrations_compare_normalised_average_precision():
    from mmcxr import calibration
    from mmcxr.chapters import multimodal_vae_calibration as mvc

    assert mvc.normalised(0.235, 0.235) == 0 and mvc.normalised(1.0, 0.235) == 1
    cal = calibration.CALIBRATIONS[mv.SLUG]
    assert cal.knob == "synth_report_difficulty" and cal.metric == "t_nap"
    assert cal.target == pytest.approx((0.473 - 0.235) / (1 - 0.235), abs=1e-4)
    assert "synth_report_difficulty" not in cal.keys and "probe_c" in cal.keys
    assert set(mv.PARAMETERS) >= {"synth_report_difficulty", "synth_image_difficulty"}


def test_the_page_says_the_report_curve_misses_the_paper_and_where_the_f_probe_is():
    """The stored curve's generic checks are in tests/test_calibration.py; here what the page
    says of a curve that does not reach its target."""
    from mmcxr import calibration
    from mmcxr.chapters import multimodal_vae_calibration as mvc
    from mmcxr.profiles import resolved_parameters

    assert not calibration.reaches_target(calibration.load_curve(mv.SLUG))
    text = mvc.status_markdown(resolved_parameters(mv.SLUG, "book"))
    assert "which it does not reach" in text and "frontal film's probe" in text
    assert "not the calibrated one" not in text
    other = mvc.status_markdown(resolved_parameters(mv.SLUG, "book", synth_report_difficulty=0.5))
    assert "not the calibrated one" in other
