"""The late-fusion chapter's pipeline: run grid and keys, claims on hand-made tables, cohort
recipe on a hand-made table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmcxr import pretrain
from mmcxr.chapters import late_fusion as lf
from mmcxr.chapters import late_fusion_reference as reference
from mmcxr.chapters import late_fusion_results as lfr

# --------------------------------------------------------------------------------------------
# run grid and run keys

FOCAL = {"full": (0.85, 1.5), "75": (0.95, 2.0)}


def params(**overrides) -> dict:
    p = {k: 0 for k in (*lf.SHARED_KEYS, *lf.IMAGE_KEYS, *lf.TEXT_KEYS)}
    p.update(
        seed=0,
        epochs=15,
        batch_size=64,
        lr=1e-4,
        patience=3,
        image_backbone="resnet50",
        bert_path=None,
        n_bootstrap=1000,
        output_dir="/tmp/x",
    )
    p.update(overrides)
    return p


def test_grid_is_the_papers_twelve_runs():
    grid = lf.run_grid(FOCAL)
    assert len(grid) == 12
    assert len({r.name for r in grid}) == 12
    assert {(r.model, r.dataset, r.loss) for r in grid} == set(reference.RESULTS)
    for r in grid:
        if r.loss == "focal":
            assert (r.alpha, r.gamma) == FOCAL[r.dataset]
        else:
            assert r.alpha is None and r.gamma is None
    labels = {r.label for r in grid}
    assert "Multimodal Full BCE loss" in labels and "Image 75 Focal loss" in labels


def test_grid_rejects_bad_specs():
    with pytest.raises(ValueError, match="missing for training set"):
        lf.run_grid({"full": (0.85, 1.5)})
    with pytest.raises(ValueError, match="model must be one of"):
        lf.RunSpec("audio", "full", "bce")
    with pytest.raises(ValueError, match="needs alpha and gamma"):
        lf.RunSpec("image", "full", "focal")
    with pytest.raises(ValueError, match="no focal"):
        lf.RunSpec("image", "full", "bce", alpha=0.5, gamma=2.0)


def test_run_config_names_only_what_the_run_depends_on():
    from mmcxr.runs import run_key

    grid = lf.run_grid(FOCAL)
    keys = lambda p, g=grid: {r.name: run_key(lf.run_config(r, p), "data") for r in g}  # noqa: E731
    base = keys(params())
    assert len(set(base.values())) == 12, "every run has its own key"
    assert keys(params()) == base, "keys are stable"
    assert keys(params(n_bootstrap=10, output_dir="/elsewhere", device="cuda")) == base
    changed = lambda new: {n for n in base if new[n] != base[n]}  # noqa: E731
    assert changed(keys(params(lr=3e-4))) == set(base)
    assert changed(keys(params(bert_hidden=256))) == {
        n for n in base if n.startswith(("text", "multimodal"))
    }
    assert changed(keys(params(image_size=256))) == {
        n for n in base if n.startswith(("image", "multimodal"))
    }
    focal = {"full": (0.9, 1.5), "75": (0.95, 2.0)}
    new = {r.name: run_key(lf.run_config(r, params()), "data") for r in lf.run_grid(focal)}
    assert changed(new) == {"multimodal-full-focal", "image-full-focal", "text-full-focal"}
    other_data = {r.name: run_key(lf.run_config(r, params()), "other") for r in grid}
    assert changed(other_data) == set(base)


def test_run_config_complains_about_missing_parameters():
    p = params()
    del p["lr"]
    with pytest.raises(KeyError, match="lr"):
        lf.run_config(lf.run_grid(FOCAL)[0], p)


# --------------------------------------------------------------------------------------------
# claims


def _results(values: dict[tuple[str, str, str], dict[str, float]] | None = None) -> pd.DataFrame:
    """A results table where every claim holds, with selected cells overridden."""
    base = {"accuracy": 0.9, "precision": 0.8, "recall": 0.8, "f1": 0.8}
    auroc = {"multimodal": 0.95, "image": 0.7, "text": 0.945}
    gaps = {"bce": 0.2, "focal": 0.05}
    rows = []
    for model in lf.MODELS:
        for dataset in lf.DATASETS:
            for loss in lf.LOSSES:
                r = dict(model=model, dataset=dataset, loss=loss, **base, auroc=auroc[model])
                if dataset == "75":
                    r["precision"] = 0.8 + gaps[loss]
                elif model == "multimodal":
                    r["recall"] = 0.8 - 0.1  # its 75-focal gap (0.05) is the smallest
                r.update((values or {}).get((model, dataset, loss), {}))
                rows.append(r)
    return pd.DataFrame(rows)


def _sensitivity(image_auroc: float = 0.85, text_auroc: float = 0.52) -> pd.DataFrame:
    rows = []
    for dataset in lf.DATASETS:
        for loss in lf.LOSSES:
            for shuffled, auroc in (("none", 0.95), ("image", image_auroc), ("text", text_auroc)):
                rows.append(
                    dict(
                        model="multimodal",
                        dataset=dataset,
                        loss=loss,
                        shuffled=shuffled,
                        accuracy=0.9,
                        precision=0.9,
                        recall=0.9,
                        f1=0.9,
                        auroc=auroc,
                    )
                )
    return pd.DataFrame(rows)


def _holds(results, sensitivity=None, tol=0.01) -> dict[str, bool | None]:
    table = lfr.evaluate_claims(results, sensitivity, tol=tol)
    return dict(zip(table["id"], table["holds"], strict=True))


def test_every_claim_holds_on_the_papers_own_numbers():
    results, sensitivity = (reference.results_table(), reference.sensitivity_table())
    table = lfr.evaluate_claims(results, sensitivity)
    assert list(table["id"]) == [c.id for c in lfr.CLAIMS]
    assert table["paper_holds"].tolist() == [True] * len(lfr.CLAIMS)
    evidence = table.set_index("id")["paper_evidence"]
    assert "0.9995" in evidence["text-beats-image"]  # the paper's text AUROC, as printed
    assert "0.5121" in evidence["text-shuffle-collapses"]  # its fused model with text shuffled


def test_claims_on_a_table_built_to_satisfy_them():
    assert set(_holds(_results(), _sensitivity()).values()) == {True}


@pytest.mark.parametrize(
    ("claim", "cells"),
    [
        ("text-beats-image", {("image", "75", "focal"): {"auroc": 0.955}}),
        ("text-matches-multimodal-full-bce", {("multimodal", "full", "bce"): {"f1": 0.95}}),
        ("focal-no-gain-full", {("image", "full", "focal"): {"auroc": 0.75}}),
        ("focal-balances-75", {("text", "75", "focal"): {"precision": 1.1}}),
        ("subsample-focal-best-balance", {("multimodal", "full", "bce"): {"recall": 0.8}}),
        ("multimodal-best-auroc-75", {("multimodal", "75", "bce"): {"auroc": 0.92}}),
    ],
)
def test_each_results_claim_fails_when_its_finding_is_broken(claim, cells):
    holds = _holds(_results(cells), _sensitivity())
    assert holds[claim] is False
    assert all(v for k, v in holds.items() if k != claim), holds


def test_tolerance_decides_near_ties():
    cells = {("multimodal", "75", "focal"): {"auroc": 0.94}}  # text 0.945: 0.005 short
    assert _holds(_results(cells), _sensitivity(), tol=0.01)["multimodal-best-auroc-75"] is True
    assert _holds(_results(cells), _sensitivity(), tol=0.0)["multimodal-best-auroc-75"] is False


def test_sensitivity_claims():
    # the planted model relies on text: shuffling text -> chance, shuffling images -> small loss
    h = _holds(_results(), _sensitivity(image_auroc=0.90, text_auroc=0.52))
    assert h["text-shuffle-collapses"] and h["image-shuffle-spares"] and h["multimodal-uses-images"]
    # a model that ignores images entirely: spared, but it does not use them
    h = _holds(_results(), _sensitivity(image_auroc=0.95, text_auroc=0.5))
    assert h["image-shuffle-spares"] and not h["multimodal-uses-images"]
    # an image-driven model: text shuffle does not collapse it, image shuffle does
    h = _holds(_results(), _sensitivity(image_auroc=0.55, text_auroc=0.9))
    assert h["text-shuffle-collapses"] is False and h["image-shuffle-spares"] is False


def test_missing_runs_leave_claims_undecided():
    results = _results()
    results = results[results["dataset"] == "full"]
    h = _holds(results, None)
    assert h["focal-balances-75"] is None and h["text-shuffle-collapses"] is None
    assert h["focal-no-gain-full"] is True
    table = lfr.evaluate_claims(results, None).set_index("id")
    assert table.loc["focal-balances-75", "ours"].startswith("not evaluated")


def test_claims_show_intervals_when_the_table_has_them():
    results = _results()
    results["auroc_lo"], results["auroc_hi"] = results["auroc"] - 0.05, results["auroc"] + 0.01
    table = lfr.evaluate_claims(results, _sensitivity()).set_index("id")
    assert "0.945 [0.895, 0.955]" in table.loc["text-beats-image", "ours"]


def test_claims_reject_a_table_without_run_columns():
    with pytest.raises(ValueError, match="lacks columns"):
        lfr.evaluate_claims(pd.DataFrame({"auroc": [0.5]}))


def test_nan_metric_is_undecided_not_false():
    cells = {("image", "full", "bce"): {"auroc": np.nan}}
    assert _holds(_results(cells), _sensitivity())["text-beats-image"] is None


# --------------------------------------------------------------------------------------------
# the cohort recipe


def _image(
    subject,
    study,
    view="PA",
    orientation="Erect",
    procedure="CHEST (PA AND LAT)",
    pneumonia=np.nan,
    no_finding=np.nan,
    report=None,
):
    return {
        "subject_id": subject,
        "study_id": study,
        "dicom_id": f"d{subject}-{study}-{view}",
        "path": f"/x/{subject}/{study}/{view}.jpg",
        "view": view,
        "orientation": orientation,
        "procedure": procedure,
        "Pneumonia": pneumonia,
        "No Finding": no_finding,
        "report": f"report of study {study}" if report is None else report,
        "report_path": f"/x/s{study}.txt",
    }


def hand_made_release() -> pd.DataFrame:
    """40 eligible patients (8 pneumonia, 32 no finding) among planted distractors."""
    rows = []
    for p in range(40):
        label = {"pneumonia": 1.0} if p < 8 else {"no_finding": 1.0}
        rows.append(_image(p, 1000 + p, **label))
        rows.append(_image(p, 1000 + p, view="LATERAL", orientation="Erect", **label))
        if p < 5:  # a second PA study of the same patient: a duplicate record
            rows.append(_image(p, 2000 + p, **label))
    for p in range(40, 45):  # portable AP films with pneumonia
        rows.append(_image(p, 1000 + p, view="AP", procedure="CHEST (PORTABLE AP)", pneumonia=1.0))
    rows.append(_image(45, 1045, orientation="Recumbent", pneumonia=1.0))  # PA but lying
    rows.append(_image(46, 1046, procedure="CHEST (PORTABLE PA)", pneumonia=1.0))  # portable
    for p in range(47, 50):  # uncertain pneumonia is no negative
        rows.append(_image(p, 1000 + p, pneumonia=-1.0))
    for p in range(50, 52):  # pneumonia negated, No Finding blank: neither class
        rows.append(_image(p, 1000 + p, pneumonia=0.0))
    return pd.DataFrame(rows)


def test_cohort_flow_counts_each_step():
    cohort = lf.build_cohort(hand_made_release(), seed=0, split_fractions=(0.5, 0.25, 0.25))
    flow = cohort.flow.set_index("step")
    assert flow["rows"].tolist() == [len(hand_made_release()), 50, 45, 40]
    assert flow.loc["one image per patient", ["positives", "negatives"]].tolist() == [8, 32]
    assert flow.loc["Pneumonia = 1.0 or No Finding = 1.0", "positives"] == 13
    t = cohort.table
    assert len(t) == 40 and t["subject_id"].is_unique
    assert set(t["view"]) == {"PA"} and set(t["orientation"]) == {"Erect"}
    assert t["text"].str.startswith("report of study").all()


def test_split_is_by_patient_and_shares_one_test_set():
    cohort = lf.build_cohort(hand_made_release(), seed=0, split_fractions=(0.5, 0.25, 0.25))
    t = cohort.table
    assert t.groupby("subject_id")["split"].nunique().max() == 1
    assert (t["split"] == "test").sum() == 10
    assert t.loc[t["split"] == "test", "label"].sum() == 2, "stratified: 20% of 10 patients"
    assert not t.loc[t["split"] == "test", "in_75"].any()
    pd.testing.assert_frame_equal(cohort.rows("full", "test"), cohort.rows("75", "test"))
    for split in ("train", "val"):
        full, sub = cohort.rows("full", split), cohort.rows("75", split)
        assert set(sub.index) <= set(full.index)
        assert sub["label"].sum() == full["label"].sum(), "every positive is kept"
        assert sub["label"].mean() == pytest.approx(0.25, abs=0.05)
    counts = cohort.split_counts().set_index(["training set", "split"])
    assert counts.loc[("Full", "test"), "images"] == counts.loc[("75", "test"), "images"] == 10
    assert counts.loc[("Full", "train"), "images"] == 20
    assert counts.loc[("75", "train"), "pneumonia share"] == pytest.approx(0.25)


def test_cohort_is_deterministic_by_seed():
    a = lf.build_cohort(hand_made_release(), seed=3, split_fractions=(0.5, 0.25, 0.25))
    b = lf.build_cohort(hand_made_release(), seed=3, split_fractions=(0.5, 0.25, 0.25))
    c = lf.build_cohort(hand_made_release(), seed=4, split_fractions=(0.5, 0.25, 0.25))
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not a.table["split"].equals(c.table["split"])


def test_missing_report_text_is_a_recorded_step_not_a_silent_drop():
    from mmcxr.data import DataWarning

    df = hand_made_release()
    df.loc[(df["subject_id"] == 12) & (df["view"] == "PA"), "report"] = ""
    with pytest.warns(DataWarning, match="1 of 40 selected images have no 'report' text"):
        cohort = lf.build_cohort(df, seed=0, split_fractions=(0.5, 0.25, 0.25))
    assert cohort.flow["step"].iloc[-1] == "with report text"
    assert cohort.flow["rows"].iloc[-1] == 39 and 12 not in set(cohort.table["subject_id"])


def test_cohort_errors_name_the_problem():
    with pytest.raises(ValueError, match="lacks columns"):
        lf.build_cohort(hand_made_release().drop(columns="report"))
    one_class = hand_made_release()
    one_class = one_class[one_class["Pneumonia"] != 1.0]
    with pytest.raises(ValueError, match="holds only no finding"):
        lf.build_cohort(one_class)


def test_cohort_beside_the_papers_counts_and_mlm_corpus():
    df = hand_made_release()
    cohort = lf.build_cohort(df, seed=0, split_fractions=(0.5, 0.25, 0.25))
    table = lfr.cohort_vs_paper(cohort)
    assert table.loc["pneumonia (Pneumonia = 1.0)"].tolist() == ["8", "2,323"]
    assert table.loc["no finding (No Finding = 1.0)"].tolist() == ["32", "21,790"]
    assert table.loc["pneumonia share"].tolist() == ["20.0%", "9.6%"]
    corpus = lf.mlm_corpus(df, cohort)
    held_out = cohort.table.loc[cohort.table["split"] != "train", "study_id"]
    assert not {f"report of study {s}" for s in held_out} & set(corpus)
    assert "report of study 1040" in corpus, "studies outside the cohort still teach the BERT"
    assert len(corpus) == len(set(corpus)), "one text per study"


# --------------------------------------------------------------------------------------------
# from stored predictions to the chapter's tables, figures and records


def _fake_runs(n: int = 60, seed: int = 0):
    """Stored-run stand-ins: text separates the classes perfectly, images partly, and the
    fused model loses everything when its reports are shuffled."""
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 4 == 0).astype(np.float32)
    strength = {"text": 3.0, "image": 0.8, "multimodal": 3.0}
    runs = {}
    for spec in lf.run_grid(FOCAL):
        logit = strength[spec.model] * (2 * labels - 1) + rng.normal(0, 1, n)
        pred = {"labels": labels, "probs": 1 / (1 + np.exp(-logit))}
        if spec.model == "multimodal":
            pred["probs_image_shuffled"] = pred["probs"]
            pred["probs_text_shuffled"] = rng.uniform(0, 1, n)
        history = pd.DataFrame(
            {"epoch": [1, 2, 3], "train_loss": [0.6, 0.4, 0.3], "val_loss": [0.5, 0.45, 0.47]}
        )
        runs[spec.name] = SimpleNamespace(
            predictions=pred,
            history=history,
            path="/x",
            metrics={"best_epoch": 2, "epochs_run": 3, "stopped_early": False},
        )
    return runs


@pytest.mark.slow
def test_tables_from_stored_predictions():
    grid = lf.run_grid(FOCAL)
    long = lf.predictions_long(grid, _fake_runs())
    assert len(long) == 60 * (12 + 4 * 2)
    results, sensitivity = lf.results_tables(long, n_boot=30, seed=0)
    assert len(results) == 12 and len(sensitivity) == 12
    assert set(sensitivity["shuffled"]) == {"none", "image", "text"}
    assert (results["auroc_lo"] <= results["auroc"]).all()
    assert (results["auroc"] <= results["auroc_hi"]).all()
    text = results[(results["model"] == "text")]
    image = results[(results["model"] == "image")]
    assert text["auroc"].min() > image["auroc"].max(), "the planted strengths come back"
    claims = lfr.evaluate_claims(results, sensitivity).set_index("id")["holds"]
    assert claims["text-beats-image"] and claims["text-shuffle-collapses"]
    assert claims["image-shuffle-spares"] and not claims["multimodal-uses-images"]

    fig2 = lfr.figure_table(results, "2")
    assert list(fig2.index) == [
        "Multimodal Full BCE loss",
        "Image Full BCE loss",
        "Text Full BCE loss",
    ]
    assert fig2[("auroc", "paper")].tolist() == [0.9966, 0.7735, 0.9995]
    assert len(lfr.figure_table(results, "4")) == 8
    sens = lfr.sensitivity_table(sensitivity)
    assert sens.loc["Multimodal Full BCE loss Text Shuffle", ("auroc", "paper")] == 0.5121
    assert np.isnan(sens.loc["Multimodal 75 Focal loss Text Shuffle", ("auroc", "paper")])
    with pytest.raises(ValueError, match="figure must be one of"):
        lfr.figure_table(results, "5")


@pytest.mark.slow
def test_figures_draw_every_run():
    grid = lf.run_grid(FOCAL)
    runs = _fake_runs()
    long = lf.predictions_long(grid, runs)
    results, sensitivity = lf.results_tables(long, n_boot=10, seed=0)
    assert len(lfr.plot_roc_grid(long).axes) == 4
    assert len(lfr.plot_confusion_grid(long).axes) >= 12  # + colour bars
    fig = lfr.plot_training_grid(lf.histories(grid, runs))
    assert sum(len(ax.lines) for ax in fig.axes) == 12 * 3  # train, val, best epoch
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["Multimodal", "Image", "Text"], "models, not shuffle conditions"
    fig = lfr.plot_sensitivity(sensitivity)
    assert len(fig.axes[0].patches) == 12  # 4 runs x 3 conditions
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"intact", "image shuffled", "text shuffled"} <= set(legend)
    # few resamples: an interval can miss its point estimate, or be undefined
    odd = sensitivity.assign(auroc_lo=sensitivity["auroc"] + 0.01)
    odd.loc[0, "auroc_hi"] = np.nan
    assert len(lfr.plot_sensitivity(odd).axes[0].patches) == 12


def test_claims_record_follows_the_books_schema(tmp_path):
    from mmcxr.claims import read_claims, write_claims

    results, sensitivity = (reference.results_table(), reference.sensitivity_table())
    claims = lfr.evaluate_claims(results, sensitivity)
    from mmcxr import claims as claims_engine

    params = {"data_root": None, "data_format": "mimic-cxr-jpg", "profile": "smoke"}
    record = claims_engine.claims_record(claims, chapter=lf.SLUG, paper=lf.PAPER, params=params)
    assert record["profile"] == "smoke", "the profile the executor passed in"
    assert record["data"]["kind"] == "synthetic"
    no_profile = claims_engine.claims_record(claims, chapter=lf.SLUG, paper=lf.PAPER, params={})
    assert no_profile["profile"] == "custom" and no_profile["data"]["format"] == "mimic-cxr-jpg"
    path = write_claims(tmp_path, **record)
    back = read_claims(path)
    assert [c["id"] for c in back["claims"]] == [c.id for c in lfr.CLAIMS]
    assert all(c["holds"] is True for c in back["claims"])


def test_test_set_can_be_subsampled_like_the_papers():
    cohort = lf.build_cohort(
        hand_made_release(), seed=0, split_fractions=(0.5, 0.25, 0.25), test_neg_frac=0.75
    )
    test = cohort.rows("full", "test")
    assert test["label"].sum() == 2 and len(test) == 8  # 2 positives + 6 of the 8 negatives
    assert cohort.flow["step"].iloc[-1] == "test set subsampled to 25% pneumonia"
    assert len(cohort.rows("full", "train")) == 20, "training patients untouched"


# --------------------------------------------------------------------------------------------
# models and the text encoder


def _model_params(**overrides) -> dict:
    base = dict(
        seed=0,
        image_backbone="resnet10-half",
        image_weights=None,
        frozen_layers=[],
        proj_dim=8,
        bert_pooling="mean",
    )
    return params(**{**base, **overrides})


def test_build_model_follows_the_spec_and_warns_about_frozen_random_layers():
    import torch

    spec = lf.RunSpec("image", "full", "bce")
    a = lf.build_model(spec, _model_params(), None)
    b = lf.build_model(spec, _model_params(), None)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q), f"{n}: same seed, same initial weights"
    assert a.kind == "image" and a.text_encoder is None
    with pytest.warns(UserWarning, match="randomly initialised"):
        frozen = lf.build_model(spec, _model_params(frozen_layers=["conv1", "layer1"]), None)
    names = {n for n, p in frozen.named_parameters() if not p.requires_grad}
    assert names and all(
        n.startswith(("image_encoder.conv1", "image_encoder.layer1")) for n in names
    )
    with pytest.raises(ValueError, match="reads text but no text encoder"):
        lf.build_model(lf.RunSpec("multimodal", "75", "bce"), _model_params(), None)


def test_text_encoder_is_trained_once_and_reused(tmp_path):
    corpus = [
        f"FINDINGS: {w} in the {z} lung. IMPRESSION: {w}."
        for w in ("pneumonia", "no acute process", "clear lungs", "consolidation")
        for z in ("right", "left", "upper", "lower")
    ]
    p = params(
        seed=0,
        bert_path=None,
        text_field="report",
        max_length=32,
        bert_pooling="mean",
        bert_hidden=16,
        bert_layers=1,
        bert_heads=2,
        vocab_size=100,
        mlm_epochs=1,
        mlm_lr=1e-3,
    )
    d, losses = pretrain.text_encoder_dir(corpus, p, tmp_path, device="cpu", progress=False)
    assert (d / "config.json").is_file() and len(losses) == 1
    stamp = (d / "config.json").stat().st_mtime_ns
    d2, losses2 = pretrain.text_encoder_dir(corpus, p, tmp_path, device="cpu", progress=False)
    assert d2 == d and losses2 == losses and (d / "config.json").stat().st_mtime_ns == stamp
    d3, _ = pretrain.text_encoder_dir(corpus[:-1], p, tmp_path, device="cpu", progress=False)
    assert d3 != d, "another corpus, another encoder"
    model = lf.build_model(lf.RunSpec("text", "full", "bce"), _model_params(), d)
    assert model.text_encoder.pooling == "mean"
    with pytest.raises(FileNotFoundError, match="no-such-bert"):
        pretrain.text_encoder_dir(corpus, p, tmp_path, bert_path=tmp_path / "no-such-bert")


def test_every_number_the_prose_quotes_is_glued():
    import re
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "notebooks" / "late-fusion-pneumonia.py"
    quoted = set(re.findall(r"\{glue:text\}`lf_([A-Za-z0-9_]+)`", source.read_text()))
    assert quoted, "the chapter glues its numbers"
    grid = lf.run_grid(FOCAL)
    results, sensitivity = lf.results_tables(
        lf.predictions_long(grid, _fake_runs()), n_boot=5, seed=0
    )
    cohort = lf.build_cohort(hand_made_release(), seed=0, split_fractions=(0.5, 0.25, 0.25))
    claims = lfr.evaluate_claims(results, sensitivity)
    values = lfr.headline(cohort, results, sensitivity, claims)
    # the one number the notebook glues itself, from the runs' histories
    glued_here = set(re.findall(r'glue_value\("lf_([A-Za-z0-9_]+)"', source.read_text()))
    missing = quoted - set(values) - glued_here
    assert not missing, f"quoted but never glued: {sorted(missing)}"
    assert values["claims_hold"] + values["claims_fail"] <= values["claims_total"] == 9
    assert values["n_images"] == 40 and values["n_pneumonia"] == 8


def test_profile_table_lists_what_the_profiles_change(monkeypatch):
    from mmcxr import chapter_page, profiles

    defaults = profiles.resolved_parameters(lf.SLUG, "book")
    table = chapter_page.profile_table(lf.SLUG, {**defaults, "epochs": 99})
    assert {"synth_n", "image_size", "image_backbone", "epochs"} <= set(table.index)
    assert "seed" not in table.index, "parameters no profile changes are left out"
    assert table.loc["epochs", "this run"] == "99"
    assert table.loc["image_backbone", "full"] == "'resnet50'"

    def outside_a_checkout(*args, **kwargs):
        raise RuntimeError("no checkout")

    monkeypatch.setattr(profiles, "resolved_parameters", outside_a_checkout)
    table = chapter_page.profile_table(lf.SLUG, {"epochs": 3})
    assert table.loc["epochs", "this run"] == "3"
